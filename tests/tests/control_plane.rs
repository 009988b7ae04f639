//! The control plane end to end, through the real `wasp-cp`, `waspctl` and
//! `wasp` binaries: pushed modules and chains reach a running proxy within
//! a second, bad modules are NACKed while the old chain serves, waspctl
//! fails cleanly on bad input, and both sides survive restarts.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use wasp_e2e::controlplane::{TOKEN, assert_one_line_failure};
use wasp_e2e::{
    Client, Cluster, Config, ControlPlane, FilterChain, Listener, Plugin, Route, Upstream, Wasp,
    filter_module, free_addr,
};

/// Routes everything to `up` through chain `edge` running `module` with the
/// filter template's configuration `value` (none: `on_configure` fails).
fn document(
    listen: SocketAddr,
    admin: SocketAddr,
    up: &Upstream,
    module: &str,
    value: Option<&str>,
) -> String {
    let mut plugin = Plugin::new("served-by", module);
    if let Some(value) = value {
        plugin = plugin.configuration(serde_json::json!({"header": "x-served-by", "value": value}));
    }
    Config::new()
        .filter_chain(FilterChain::new("edge").plugin(plugin))
        .listener(
            Listener::new("main", listen)
                .route(Route::prefix("/").filter_chain("edge").cluster("up")),
        )
        .cluster(Cluster::new("up").endpoint(up.addr))
        .raw(&format!("admin: {{address: \"{admin}\"}}"))
        .to_string()
}

/// The `x-served-by` header of a GET through the proxy.
async fn served_by(listen: SocketAddr) -> String {
    let resp = Client::http1()
        .get(&format!("http://{listen}/"))
        .await
        .expect("GET through wasp");
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.header("x-served-by").unwrap_or_default().to_owned()
}

/// Waits until `check` holds, at most `timeout`; returns how long it took.
async fn within<F, Fut>(timeout: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < timeout, "{what} not within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `waspctl proxies -o json`, the entry of `node`.
fn proxy_status(cp: &ControlPlane, node: &str) -> serde_json::Value {
    let all = cp.ctl(&["-o", "json", "proxies"]).json();
    all.as_array()
        .and_then(|a| a.iter().find(|p| p["node_id"] == node).cloned())
        .unwrap_or_default()
}

fn push(cp: &ControlPlane, file: &Path, name: &str, tag: &str) -> serde_json::Value {
    cp.ctl(&[
        "-o",
        "json",
        "module",
        "push",
        file.to_str().unwrap(),
        "--name",
        name,
        "--tag",
        tag,
    ])
    .json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_chains_apply_within_a_second_and_bad_modules_are_nacked_while_the_old_chain_serves()
{
    let up = Upstream::start("up").await;
    let (listen, admin) = (free_addr(), free_addr());
    let cp = ControlPlane::start().await;
    let template = filter_module("wasp_filter_template");
    let pushed = push(&cp, &template, "served-by", "v1");
    assert_eq!(pushed["size"], std::fs::metadata(&template).unwrap().len());
    assert_eq!(
        cp.apply(&document(listen, admin, &up, "served-by@v1", Some("one"))),
        1
    );

    let cache = cp.dir().join("proxy-cache");
    let wasp = cp.proxy("node-a", &cache, admin);
    wasp.wait_ready().await;
    assert_eq!(served_by(listen).await, "one");
    within(Duration::from_secs(5), "ACK of version 1", || async {
        proxy_status(&cp, "node-a")["running_version"] == 1
    })
    .await;

    // A new chain is serving within a second of `waspctl apply`.
    assert_eq!(
        cp.apply(&document(listen, admin, &up, "served-by@v1", Some("two"))),
        2
    );
    let took = within(Duration::from_secs(5), "version 2 serving", || async {
        served_by(listen).await == "two"
    })
    .await;
    assert!(took < Duration::from_secs(1), "version 2 took {took:?}");

    // Bytes that are not Wasm: NACKed with the plugin's path; v2 serves.
    let garbage = cp.dir().join("garbage.wasm");
    std::fs::write(&garbage, b"\0asm\x01\0\0\0 not really").unwrap();
    push(&cp, &garbage, "garbage", "latest");
    assert_eq!(
        cp.apply(&document(listen, admin, &up, "garbage", Some("three"))),
        3
    );
    within(Duration::from_secs(5), "NACK of version 3", || async {
        proxy_status(&cp, "node-a")["last_version"] == 3
    })
    .await;
    let status = proxy_status(&cp, "node-a");
    assert_eq!(status["last_result"], "NACK", "{status}");
    assert_eq!(status["running_version"], 2, "{status}");
    assert!(
        status["last_error"]
            .as_str()
            .unwrap()
            .starts_with("filter_chains[0].plugins[0].module: "),
        "{status}"
    );
    assert_eq!(served_by(listen).await, "two");

    // A module whose proxy_on_configure returns false (the template without
    // its configuration): NACKed too, and the table shows it.
    assert_eq!(
        cp.apply(&document(listen, admin, &up, "served-by@v1", None)),
        4
    );
    within(Duration::from_secs(5), "NACK of version 4", || async {
        proxy_status(&cp, "node-a")["last_version"] == 4
    })
    .await;
    let status = proxy_status(&cp, "node-a");
    assert!(
        status["last_error"]
            .as_str()
            .unwrap()
            .contains("proxy_on_configure returned false"),
        "{status}"
    );
    assert_eq!(served_by(listen).await, "two");
    let table = cp.ctl(&["proxies"]);
    let row = table
        .ok()
        .lines()
        .find(|l| l.starts_with("node-a"))
        .expect("a row for node-a")
        .to_owned();
    // The address its subscription came from: loopback, the proxy's port.
    let address: SocketAddr = status["address"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {status}"));
    assert_eq!(address.ip(), std::net::Ipv4Addr::LOCALHOST, "{status}");
    assert_ne!(address.port(), 0, "{status}");
    let over_http = Client::http1()
        .get(&cp.http_url("/proxies"))
        .await
        .unwrap()
        .json();
    assert_eq!(over_http[0]["address"], address.to_string(), "{over_http}");
    let address_cell = address.to_string();
    for cell in [
        "team=e2e",
        address_cell.as_str(),
        "yes",
        "NACK v4",
        "proxy_on_configure returned false",
    ] {
        assert!(row.contains(cell), "{cell} missing from {row}");
    }
    assert!(table.ok().starts_with("NODE  "), "{table:?}");
    assert!(
        table.ok().lines().next().unwrap().contains("ADDRESS"),
        "{table:?}"
    );
    assert!(wasp.config_dump().await["last_reload"]["result"] == "rejected");

    // Rolling back to version 2 is a new version the proxy accepts.
    let back = cp.ctl(&["-o", "json", "rollback", "2"]).json();
    assert_eq!(back["version"], 5);
    within(Duration::from_secs(5), "ACK of version 5", || async {
        proxy_status(&cp, "node-a")["running_version"] == 5
    })
    .await;
    assert_eq!(served_by(listen).await, "two");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waspctl_reports_bad_input_in_one_line_and_fails() {
    let up = Upstream::start("up").await;
    let cp = ControlPlane::start().await;
    let template = filter_module("wasp_filter_template");
    let file = template.to_str().unwrap();

    assert_one_line_failure(
        &cp.ctl(&["module", "push", "/nonexistent.wasm", "--name", "a"]),
        "cannot read /nonexistent.wasm",
    );
    assert_one_line_failure(
        &cp.ctl(&["module", "push", file, "--name", "a/b"]),
        "module name 'a/b'",
    );
    assert_one_line_failure(
        &cp.ctl_with_env(&["module", "push", file, "--name", "a"], &[]),
        "this request needs a token",
    );
    assert_one_line_failure(
        &cp.ctl_with_env(
            &["module", "push", file, "--name", "a"],
            &[("WASP_TOKEN", "wrong")],
        ),
        "invalid token",
    );
    let token_file = cp.dir().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let with_file = cp.ctl_with_env(
        &[
            "--token-file",
            token_file.to_str().unwrap(),
            "module",
            "push",
            file,
            "--name",
            "a",
        ],
        &[],
    );
    assert!(
        with_file.ok().starts_with("pushed a@latest sha256:"),
        "{with_file:?}"
    );
    assert_one_line_failure(&cp.ctl(&["module", "rm", "nope@v1"]), "no module nope@v1");
    assert_one_line_failure(
        &cp.ctl(&["get", "config", "--version", "9"]),
        "no configuration version 9",
    );
    assert_one_line_failure(&cp.ctl(&["rollback"]), "no configuration applied yet");

    // Invalid YAML and a missing module: the first line says how many
    // errors, each follows with its path.
    let bad = cp.dir().join("bad.yaml");
    std::fs::write(&bad, "listeners: [{name: l, address: nope, routes: []}]\n").unwrap();
    let out = cp.ctl(&["apply", "-f", bad.to_str().unwrap()]);
    assert_eq!(out.code, Some(1), "{out:?}");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines[0], "waspctl: 1 configuration error(s):", "{out:?}");
    assert!(lines[1].starts_with("  listeners[0].address: "), "{out:?}");
    // YAML that does not parse: one error at the document, where it broke.
    std::fs::write(&bad, "listeners: [{name: l\n  address: [\n").unwrap();
    let out = cp.ctl(&["apply", "-f", bad.to_str().unwrap()]);
    assert_eq!(out.code, Some(1), "{out:?}");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{out:?}");
    assert_eq!(lines[0], "waspctl: 1 configuration error(s):", "{out:?}");
    assert!(lines[1].contains("line "), "{out:?}");
    assert_one_line_failure(
        &cp.ctl(&["apply", "-f", "/nonexistent.yaml"]),
        "cannot read /nonexistent.yaml",
    );
    let (listen, admin) = (free_addr(), free_addr());
    std::fs::write(&bad, document(listen, admin, &up, "a@v9", Some("x"))).unwrap();
    let out = cp.ctl(&["apply", "--dry-run", "-f", bad.to_str().unwrap()]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr
            .contains("filter_chains[0].plugins[0].module: no module a@v9 in the registry"),
        "{out:?}"
    );

    // A dry run stores nothing; a module in use cannot be removed.
    std::fs::write(&bad, document(listen, admin, &up, "a", Some("x"))).unwrap();
    let dry = cp.ctl(&["apply", "--dry-run", "-f", bad.to_str().unwrap()]);
    assert!(dry.ok().contains("valid"), "{dry:?}");
    assert_eq!(
        cp.ctl(&["-o", "json", "get", "versions"]).json(),
        serde_json::json!([])
    );
    assert_eq!(cp.apply(&std::fs::read_to_string(&bad).unwrap()), 1);
    assert_one_line_failure(
        &cp.ctl(&["module", "rm", "a"]),
        "module a@latest is used by configuration version 1",
    );

    // The server is down, or not a URL.
    let down = ControlPlane::ctl_for_url(&format!("http://{}", free_addr()), &["module", "ls"]);
    assert_one_line_failure(&down, "cannot connect to http://");
    let not_url = ControlPlane::ctl_for_url("nope nope", &["module", "ls"]);
    assert_one_line_failure(&not_url, "--server nope nope");

    // A bad command line: clap's error on one line, without its usage.
    assert_one_line_failure(
        &cp.ctl(&["apply"]),
        "the following required arguments were not provided: --file <FILE>",
    );
    assert_one_line_failure(
        &cp.ctl(&["-o", "xml", "proxies"]),
        "invalid value 'xml' for '--output <OUTPUT>' [possible values: table, json]",
    );
    assert_one_line_failure(
        &cp.ctl(&["rollback", "abc"]),
        "invalid value 'abc' for '[VERSION]'",
    );
    assert_one_line_failure(&cp.ctl(&["--bogus", "proxies"]), "'--bogus'");
    assert_one_line_failure(
        &cp.ctl(&["module"]),
        "'waspctl module' requires a subcommand",
    );
    assert_one_line_failure(&cp.ctl(&[]), "'waspctl' requires a subcommand");
    // Help and version still print in full and succeed.
    let help = cp.ctl(&["apply", "--help"]);
    assert!(help.ok().contains("Usage: waspctl apply"), "{help:?}");
    assert!(help.ok().lines().count() > 5, "{help:?}");
    let version = cp.ctl(&["--version"]);
    assert!(version.ok().starts_with("waspctl "), "{version:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_control_plane_keeps_modules_and_versions() {
    let up = Upstream::start("up").await;
    let (listen, admin) = (free_addr(), free_addr());
    let mut cp = ControlPlane::start().await;
    let template = filter_module("wasp_filter_template");
    let first = push(&cp, &template, "served-by", "v1");
    // The same bytes under another name are stored once.
    push(&cp, &template, "alias", "latest");
    cp.apply(&document(listen, admin, &up, "served-by@v1", Some("one")));
    cp.apply(&document(listen, admin, &up, "alias", Some("two")));

    cp.restart().await;
    let modules = cp.ctl(&["-o", "json", "module", "ls"]).json();
    assert_eq!(modules.as_array().unwrap().len(), 2, "{modules}");
    assert_eq!(modules[1]["sha256"], first["sha256"]);
    assert_eq!(modules[1]["uploaded_at"], first["uploaded_at"]);
    let versions = cp.ctl(&["-o", "json", "get", "versions"]).json();
    assert_eq!(versions.as_array().unwrap().len(), 2, "{versions}");
    let v1 = cp.ctl(&["get", "config", "--version", "1"]);
    assert!(v1.ok().contains("served-by@v1"), "{v1:?}");
    assert_eq!(
        cp.apply(&document(listen, admin, &up, "alias", Some("three"))),
        3
    );
    let http = Client::http1().get(&cp.http_url("/configs")).await.unwrap();
    assert_eq!(http.json().as_array().unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_serves_while_the_control_plane_is_down_restarts_from_its_cache_and_reconnects() {
    let up = Upstream::start("up").await;
    let (listen, admin) = (free_addr(), free_addr());
    let mut cp = ControlPlane::start().await;
    push(
        &cp,
        &filter_module("wasp_filter_template"),
        "served-by",
        "v1",
    );
    cp.apply(&document(listen, admin, &up, "served-by@v1", Some("one")));
    let cache = cp.dir().join("proxy-cache");
    let wasp = cp.proxy("node-b", &cache, admin);
    wasp.wait_ready().await;
    within(Duration::from_secs(5), "ACK of version 1", || async {
        proxy_status(&cp, "node-b")["running_version"] == 1
    })
    .await;

    cp.stop();
    assert_eq!(served_by(listen).await, "one");
    drop(wasp);
    let wasp = cp.proxy("node-b", &cache, admin);
    wasp.wait_ready().await;
    assert_eq!(served_by(listen).await, "one", "restarted from the cache");

    cp.restart().await;
    within(Duration::from_secs(10), "node-b reconnected", || async {
        proxy_status(&cp, "node-b")["connected"] == true
    })
    .await;
    cp.apply(&document(listen, admin, &up, "served-by@v1", Some("two")));
    within(Duration::from_secs(5), "version 2 serving", || async {
        served_by(listen).await == "two"
    })
    .await;
    drop(wasp);
}

#[tokio::test]
async fn a_file_and_a_control_plane_at_once_is_a_clear_error() {
    let mut wasp = Wasp::spawn_run_args(
        free_addr(),
        &[
            "--config".into(),
            "wasp.yaml".into(),
            "--control-plane".into(),
            "http://127.0.0.1:1".into(),
            "--node-id".into(),
            "n".into(),
        ],
        &[],
    );
    let status = wasp
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("exits");
    assert_eq!(status.code(), Some(2));
    assert!(
        wasp.log()
            .contains("the argument '--config <FILE>' cannot be used with '--control-plane <URL>'"),
        "{}",
        wasp.log()
    );
}

/// Runs `wasp-cp ARGS` (with `WASP_TOKEN` unless `token` is false), which
/// must fail at once; returns its stderr.
fn wasp_cp_failure(args: &[&str], token: bool) -> String {
    let mut command = std::process::Command::new(wasp_e2e::controlplane::cp_binary());
    command.args(args).env_remove("WASP_TOKEN");
    if token {
        command.env("WASP_TOKEN", TOKEN);
    }
    let output = command.output().expect("running wasp-cp");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("wasp-cp: "))
        .collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    lines[0].to_owned()
}

#[tokio::test]
async fn wasp_cp_reports_a_bad_setup_in_one_line_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let no_token = wasp_cp_failure(&["--data-dir", data], false);
    assert!(no_token.contains("no token: set WASP_TOKEN"), "{no_token}");

    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let not_dir = wasp_cp_failure(&["--data-dir", file.to_str().unwrap()], true);
    assert!(not_dir.contains("a-file"), "{not_dir}");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let in_use = wasp_cp_failure(&["--data-dir", data, "--listen", &addr], true);
    assert!(
        in_use.contains(&format!("cannot listen on {addr}")),
        "{in_use}"
    );
}
