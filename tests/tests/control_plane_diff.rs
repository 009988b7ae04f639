//! `waspctl diff` end to end, through the real `wasp-cp` and `waspctl`:
//! the lines two configuration versions changed, as a unified diff with
//! headers naming each version and as JSON; the defaults (the version
//! before the current one, and the current one); one-line errors for an
//! unknown version.

use wasp_e2e::ControlPlane;
use wasp_e2e::controlplane::assert_one_line_failure;
use wasp_e2e::wat::header_filter;
use wasp_e2e::{Config, FilterChain, Listener, Plugin, Route};

/// A listener answering `body` itself, through chain `edge` (module
/// `header`).
fn document(body: &str) -> String {
    Config::new()
        .filter_chain(FilterChain::new("edge").plugin(Plugin::new("header", "header")))
        .listener(
            Listener::new("main", "127.0.0.1:18080")
                .route(Route::prefix("/").filter_chain("edge").direct(200, body)),
        )
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waspctl_diff_shows_the_lines_two_versions_changed() {
    let cp = ControlPlane::start().await;
    let module = cp.dir().join("header.wat");
    std::fs::write(&module, header_filter("diff")).unwrap();
    let push = || {
        cp.ctl(&[
            "module",
            "push",
            module.to_str().unwrap(),
            "--name",
            "header",
        ])
    };
    push().ok();
    assert_one_line_failure(&cp.ctl(&["diff"]), "no configuration applied yet");
    let apply = |value: &str, message: &str| {
        let path = cp.dir().join("diff.yaml");
        std::fs::write(&path, document(value)).unwrap();
        let out = cp.ctl(&["apply", "-f", path.to_str().unwrap(), "-m", message]);
        assert!(out.ok().starts_with("applied as version"), "{out:?}");
    };
    apply("one", "first");
    assert_one_line_failure(
        &cp.ctl(&["diff"]),
        "version 1 is the only configuration version",
    );
    apply("two", "second");
    apply("two", "same again");

    // Two versions: a unified diff, headers naming each version.
    let out = cp.ctl(&["diff", "1", "2"]);
    let text = out.ok();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("--- version 1 (") && lines[0].ends_with("): first"),
        "{text}"
    );
    assert!(
        lines[1].starts_with("+++ version 2 (") && lines[1].ends_with("): second"),
        "{text}"
    );
    assert!(lines[2].starts_with("@@ -"), "{text}");
    let changed: Vec<&str> = lines[3..]
        .iter()
        .copied()
        .filter(|l| l.starts_with('-') || l.starts_with('+'))
        .collect();
    assert_eq!(changed.len(), 2, "{text}");
    assert!(
        changed[0].starts_with('-') && changed[0].contains("one"),
        "{text}"
    );
    assert!(
        changed[1].starts_with('+') && changed[1].contains("two"),
        "{text}"
    );

    // One version: against the current one (3, the same document as 2).
    assert_eq!(cp.ctl(&["diff", "1"]).ok().lines().count(), lines.len());
    let same = cp.ctl(&["diff"]);
    assert_eq!(
        same.ok().trim_end(),
        "versions 2 and 3 have the same document"
    );
    // Backwards, in JSON: the same changed lines, swapped.
    let json = cp.ctl(&["-o", "json", "diff", "3", "1"]).json();
    assert_eq!(json["from"]["version"], 3, "{json}");
    assert_eq!(json["from"]["message"], "same again", "{json}");
    assert_eq!(json["to"]["version"], 1, "{json}");
    assert_eq!(json["same"], false, "{json}");
    assert!(
        json["diff"]
            .as_str()
            .unwrap()
            .starts_with("--- version 3 (")
    );
    let hunk = &json["hunks"][0];
    assert!(
        hunk["header"].as_str().unwrap().starts_with("@@ -"),
        "{json}"
    );
    let changed: Vec<&str> = hunk["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l.as_str())
        .filter(|l| !l.starts_with(' '))
        .collect();
    assert_eq!(changed.len(), 2, "{json}");
    assert!(
        changed[0].starts_with('-') && changed[0].contains("two"),
        "{json}"
    );
    assert!(
        changed[1].starts_with('+') && changed[1].contains("one"),
        "{json}"
    );

    // The tag moves to other bytes: the same document, another module.
    std::fs::write(&module, header_filter("moved")).unwrap();
    push().ok();
    apply("two", "tag moved");
    let same = cp.ctl(&["diff"]);
    assert_eq!(
        same.ok().trim_end(),
        "versions 3 and 4 have the same document"
    );
    // The resolved documents show the module each version pinned.
    let resolved = cp.ctl(&["diff", "--resolved"]);
    let changed: Vec<&str> = resolved
        .ok()
        .lines()
        .skip(2)
        .filter(|l| l.starts_with('-') || l.starts_with('+'))
        .collect();
    // Each plugin's `module` and `sha256`, old and new.
    assert_eq!(changed.len(), 4, "{resolved:?}");
    assert!(
        changed[0].starts_with("-  - module: sha256:"),
        "{resolved:?}"
    );
    assert!(
        changed[1].starts_with("+  - module: sha256:"),
        "{resolved:?}"
    );
    assert_ne!(changed[0][1..], changed[1][1..], "{resolved:?}");
    assert!(changed.iter().all(|l| l.contains("sha256")), "{resolved:?}");

    // An unknown version: one line, exit code 1.
    assert_one_line_failure(&cp.ctl(&["diff", "1", "9"]), "no configuration version 9");
    assert_one_line_failure(&cp.ctl(&["diff", "7"]), "no configuration version 7");
    assert_one_line_failure(&cp.ctl(&["diff", "x"]), "invalid value 'x'");
}
