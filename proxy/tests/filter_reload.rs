//! Hot reload of filter chains through the real `wasp` binary.

mod support;

use support::*;

use std::time::{Duration, Instant};

use http::StatusCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_swap_chains_reject_bad_modules_and_reuse_compiled_ones() {
    let dir = temp_dir();
    let up = upstream().await;
    let modules = [
        ("first", header_filter("first")),
        ("second", header_filter("second")),
        ("bad", unknown_import_filter()),
    ];
    let chains = |module: &str| {
        format!(
            "  - name: c\n    plugins:\n      - {{name: p, module: DIR/{module}.wat}}\n  - name: keep\n    plugins:\n      - {{name: k, module: DIR/first.wat}}\n"
        )
    };
    let routes = [route("/c", "c"), route("/keep", "keep")].concat();
    let (path, listen, admin) = config(&dir, up, &modules, &chains("first"), &routes);
    let proxy = start(&path, listen, admin).await;
    assert_eq!(
        get(listen, "/c", &[]).await.unwrap().1,
        "x-filter=first\nbody="
    );
    let compiled = json(admin, "/filters").await["compiled_modules"].clone();
    assert_eq!(compiled, 1, "both chains share one compiled module");

    // Requests keep succeeding while the configuration changes underneath.
    let load = tokio::spawn(async move {
        let mut failures = 0;
        for _ in 0..400 {
            match get(listen, "/keep", &[]).await {
                Ok((StatusCode::OK, body)) if body == "x-filter=first\nbody=" => {}
                _ => failures += 1,
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        failures
    });

    let rewrite = |module: &str| {
        let yaml = std::fs::read_to_string(&path).unwrap();
        let start = yaml.find("filter_chains:").unwrap();
        let chains = chains(module).replace("DIR", &dir.display().to_string());
        std::fs::write(&path, format!("{}filter_chains:\n{chains}", &yaml[..start])).unwrap();
    };
    let wait_for = |check: fn(&serde_json::Value, &str) -> bool, what: &'static str| async move {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let dump = json(admin, "/config_dump").await;
            let (_, body) = get(listen, "/c", &[]).await.unwrap();
            if check(&dump, &body) {
                return dump;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };

    // A module with an unknown import rejects the whole reload; the old chain serves.
    rewrite("bad");
    let dump = wait_for(
        |d, _| d["last_reload_error"].is_string(),
        "the reload error",
    )
    .await;
    let error = dump["last_reload_error"].as_str().unwrap();
    assert!(
        error.contains("filter_chains[0].plugins[0].module"),
        "{error}"
    );
    assert!(error.contains("env.proxy_no_such_call"), "{error}");
    assert_eq!(
        get(listen, "/c", &[]).await.unwrap().1,
        "x-filter=first\nbody="
    );

    // A changed module takes effect; the unchanged one is not recompiled.
    rewrite("second");
    wait_for(|_, body| body == "x-filter=second\nbody=", "the new module").await;
    assert_eq!(json(admin, "/filters").await["compiled_modules"], 2);

    assert_eq!(load.await.unwrap(), 0, "no request failed during reloads");
    drop(proxy);
    let _ = std::fs::remove_dir_all(dir);
}
