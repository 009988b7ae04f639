//! Wasm filters written as WAT, through the real `wasp` binary: a filter
//! adding headers, a local reply, traps under both failure policies, an
//! HTTP callout, a request body rewritten, an endless loop cut off at its
//! deadline, `/filters` and `/metrics` counting it, and a module with an
//! unknown import rejected by `wasp validate`.

use std::time::{Duration, Instant};

use http::Request;
use sha2::{Digest, Sha256};
use wasp_e2e::client::full;
use wasp_e2e::wat::{add_header_filter, callout_filter, unknown_import_filter, upstream_saw, wat};
use wasp_e2e::{
    Client, Cluster, Config, FilterChain, Listener, Plugin, Resp, Route, Upstream, Wasp, WatDir,
    free_addr,
};

fn deny_filter() -> String {
    wat(
        r#"(import "env" "proxy_send_local_response" (func $reply (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))"#,
        r#"(data (i32.const 100) "denied by filter")
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (drop (call $reply (i32.const 403) (i32.const 0) (i32.const 0) (i32.const 100) (i32.const 16) (i32.const 0) (i32.const 0) (i32.const -1)))
    i32.const 1)"#,
    )
}

fn trap_filter() -> String {
    wat(
        "",
        r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) unreachable)"#,
    )
}

fn loop_filter() -> String {
    wat(
        "",
        r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (loop (br 0)) i32.const 0)"#,
    )
}

/// Upper-cases the request body (buffering it whole first), proving the
/// body streams through the chain.
fn upper_body_filter() -> String {
    wat(
        r#"(import "env" "proxy_get_buffer_bytes" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_buffer_bytes" (func $set (param i32 i32 i32 i32 i32) (result i32)))"#,
        r#"(func (export "proxy_on_request_body") (param $ctx i32) (param $size i32) (param $eos i32) (result i32)
    (local $p i32) (local $i i32) (local $c i32)
    (if (i32.eqz (local.get $eos)) (then (return (i32.const 1))))
    (if (i32.eqz (local.get $size)) (then (return (i32.const 0))))
    (drop (call $get (i32.const 0) (i32.const 0) (local.get $size) (i32.const 16) (i32.const 20)))
    (local.set $p (i32.load (i32.const 16)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $size)))
        (local.set $c (i32.load8_u (i32.add (local.get $p) (local.get $i))))
        (if (i32.and (i32.ge_u (local.get $c) (i32.const 97)) (i32.le_u (local.get $c) (i32.const 122)))
          (then (i32.store8 (i32.add (local.get $p) (local.get $i)) (i32.sub (local.get $c) (i32.const 32)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (drop (call $set (i32.const 0) (i32.const 0) (local.get $size) (local.get $p) (local.get $size)))
    i32.const 0)"#,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_modify_reply_fail_and_are_cut_off_through_the_binary() {
    let listen = free_addr();
    let up = Upstream::start("up").await;
    let modules = WatDir::new();
    // Each route `/<name>` runs the chain `<name>` of one plugin.
    let filters = [
        ("add", "adder", add_header_filter()),
        ("deny", "deny", deny_filter()),
        ("closed", "trap-closed", trap_filter()),
        ("open", "trap-open", trap_filter()),
        ("loop", "looper", loop_filter()),
        ("upper", "upper", upper_body_filter()),
        ("callout", "callout", callout_filter("side")),
    ];
    // The callout goes to wasp's own listener, whose `/side` answers itself.
    let mut listener =
        Listener::new("main", listen).route(Route::path("/side").direct(200, "side-answer"));
    let mut config = Config::new();
    for (chain, plugin, text) in &filters {
        let mut plugin = Plugin::new(plugin, modules.write(plugin, text));
        match *chain {
            "open" => plugin = plugin.fail_open(),
            "loop" => plugin = plugin.set("limits", serde_json::json!({"cpu_deadline": "500ms"})),
            _ => {}
        }
        config = config.filter_chain(FilterChain::new(chain).plugin(plugin));
        listener = listener.route(
            Route::prefix(&format!("/{chain}"))
                .filter_chain(chain)
                .cluster("up"),
        );
    }
    let config = config
        .listener(listener.route(Route::prefix("/").cluster("up")))
        .cluster(Cluster::new("up").endpoint(up.addr))
        .cluster(Cluster::new("side").endpoint(listen));
    let wasp = Wasp::start(&config).await;
    let client = Client::http1();
    let url = move |path: &str| format!("http://{listen}{path}");

    // A header added by the filter reaches the upstream, and one comes back.
    let resp = client.get(&url("/add")).await.unwrap();
    assert_eq!(resp.status, 200);
    assert!(upstream_saw(&resp).starts_with("x-filter=added\n"));
    assert_eq!(resp.header("x-filter"), Some("added"));

    // A local reply never reaches the upstream.
    let resp = client.get(&url("/deny")).await.unwrap();
    assert_eq!(
        (resp.status, resp.text().as_str()),
        (403, "denied by filter")
    );

    // A trapping filter: fail_closed answers 503 naming it, fail_open skips it.
    let resp = client.get(&url("/closed")).await.unwrap();
    assert_eq!(resp.status, 503);
    assert!(resp.text().contains("trap-closed"), "{}", resp.text());
    let resp = client.get(&url("/open")).await.unwrap();
    assert_eq!(
        (resp.status, upstream_saw(&resp).as_str()),
        (200, "x-filter=\nbody=")
    );

    // A paused request resumes with what an HTTP callout to a cluster answered.
    let resp = client.get(&url("/callout")).await.unwrap();
    assert_eq!(
        (resp.status, upstream_saw(&resp).as_str()),
        (200, "x-filter=side-answer\nbody=")
    );

    // The request body streams through the chain.
    let request = Request::post(url("/upper"))
        .body(full("hello wasm"))
        .unwrap();
    let resp = client.request(request).await.unwrap();
    assert_eq!(upstream_saw(&resp), "x-filter=\nbody=HELLO WASM");

    // An infinite loop is cut off at its deadline while other requests succeed.
    let started = Instant::now();
    let looping = tokio::spawn({
        let client = client.clone();
        async move { client.get(&url("/loop")).await }
    });
    let mut ok = 0;
    while !looping.is_finished() && started.elapsed() < Duration::from_secs(5) {
        if let Ok(Resp { status: 200, .. }) = client.get(&url("/plain")).await {
            ok += 1;
        }
    }
    let resp = looping.await.unwrap().unwrap();
    assert_eq!(resp.status, 503, "{}", resp.text());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(client.get(&url("/plain")).await.unwrap().status, 200);
    assert!(ok > 0, "no request completed while the filter looped");

    // /filters shows the plugins with their module hash and failures.
    let resp = client.get(&wasp.admin_url("/filters")).await.unwrap();
    assert_eq!(resp.status, 200);
    let filters = resp.json();
    let plugin = |chain: &str| {
        filters["filter_chains"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == chain)
            .map(|c| c["plugins"][0].clone())
            .unwrap()
    };
    let sha = hex::encode(Sha256::digest(add_header_filter().as_bytes()));
    assert_eq!(plugin("add")["sha256"], sha.as_str());
    assert_eq!(plugin("closed")["traps"], 1);
    assert_eq!(plugin("loop")["timeouts"], 1);
    let metrics = wasp.metrics().await;
    assert!(
        metrics
            .text
            .contains("wasp_filter_timeouts_total{plugin=\"looper\"} 1"),
        "{}",
        metrics.text
    );
}

#[tokio::test]
async fn a_module_with_an_unknown_import_is_rejected_naming_it() {
    let modules = WatDir::new();
    let config = Config::new()
        .filter_chain(FilterChain::new("bad").plugin(Plugin::new(
            "bad",
            modules.write("bad", &unknown_import_filter()),
        )))
        .listener(
            Listener::new("main", free_addr())
                .route(Route::prefix("/").filter_chain("bad").cluster("up")),
        )
        .cluster(Cluster::new("up").endpoint("127.0.0.1:9"));
    let path = modules.path().join("wasp.yaml");
    std::fs::write(&path, config.to_string()).unwrap();
    let output = std::process::Command::new(wasp_e2e::wasp::binary())
        .arg("validate")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("filter_chains[0].plugins[0].module"),
        "{stderr}"
    );
    assert!(stderr.contains("env.proxy_no_such_call"), "{stderr}");
}
