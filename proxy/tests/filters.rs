//! Wasm filters through the real `wasp` binary: a temp configuration, WAT
//! filters, a tiny upstream that echoes what it received.

mod support;

use support::*;

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;

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
    let dir = temp_dir();
    let up = upstream().await;
    let modules = [
        ("adder", add_header_filter()),
        ("deny", deny_filter()),
        ("trap-closed", trap_filter()),
        ("trap-open", trap_filter()),
        ("looper", loop_filter()),
        ("upper", upper_body_filter()),
        ("callout", callout_filter()),
    ];
    let chains = [
        chain("add", "adder", "fail_closed", ""),
        chain("deny", "deny", "fail_closed", ""),
        chain("closed", "trap-closed", "fail_closed", ""),
        chain("open", "trap-open", "fail_open", ""),
        chain(
            "loop",
            "looper",
            "fail_closed",
            "        limits: {cpu_deadline: 500ms}\n",
        ),
        chain("upper", "upper", "fail_closed", ""),
        chain("callout", "callout", "fail_closed", ""),
    ]
    .concat();
    let routes = [
        route("/add", "add"),
        route("/deny", "deny"),
        route("/closed", "closed"),
        route("/open", "open"),
        route("/loop", "loop"),
        route("/upper", "upper"),
        route("/callout", "callout"),
        "      - match: {prefix: /}\n        route: {cluster: up}\n".to_owned(),
    ]
    .concat();
    let (path, listen, admin) = config(&dir, up, &modules, &chains, &routes);
    let proxy = start(&path, listen, admin).await;

    // A header added by the filter reaches the upstream, and one comes back.
    let req = Request::get("/add")
        .header("host", "t")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = send(proxy.listen, req).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(String::from_utf8_lossy(response.body()).starts_with("x-filter=added\n"));
    assert_eq!(response.headers()["x-filter"], "added");

    // A local reply never reaches the upstream.
    assert_eq!(
        get(proxy.listen, "/deny", &[]).await.unwrap(),
        (StatusCode::FORBIDDEN, "denied by filter".to_owned())
    );

    // A trapping filter: fail_closed answers 503 naming it, fail_open skips it.
    let (status, body) = get(proxy.listen, "/closed", &[]).await.unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("trap-closed"), "{body}");
    let (status, body) = get(proxy.listen, "/open", &[]).await.unwrap();
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "x-filter=\nbody=")
    );

    // A paused request resumes with what an HTTP callout to a cluster answered.
    assert_eq!(
        get(proxy.listen, "/callout", &[]).await.unwrap(),
        (StatusCode::OK, "x-filter=side-answer\nbody=".to_owned())
    );

    // The request body streams through the chain.
    let req = Request::post("/upper")
        .header("host", "t")
        .body(Full::new(Bytes::from_static(b"hello wasm")))
        .unwrap();
    let response = send(proxy.listen, req).await.unwrap();
    assert_eq!(
        String::from_utf8_lossy(response.body()),
        "x-filter=\nbody=HELLO WASM"
    );

    // An infinite loop is cut off at its deadline while other requests succeed.
    let started = Instant::now();
    let looping = tokio::spawn(async move { get(listen, "/loop", &[]).await });
    let mut ok = 0;
    while !looping.is_finished() && started.elapsed() < Duration::from_secs(5) {
        if let Ok((StatusCode::OK, _)) = get(listen, "/plain", &[]).await {
            ok += 1;
        }
    }
    let (status, body) = looping.await.unwrap().unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(get(listen, "/plain", &[]).await.unwrap().0, StatusCode::OK);
    assert!(ok > 0, "no request completed while the filter looped");

    // /filters shows the plugins with their module hash and failures.
    let (status, filters) = get(proxy.admin, "/filters", &[]).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    let filters: serde_json::Value = serde_json::from_str(&filters).unwrap();
    let plugin = |chain: &str| {
        filters["filter_chains"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == chain)
            .map(|c| c["plugins"][0].clone())
            .unwrap()
    };
    let sha = wasp_filter_host::FilterEngine::sha256(add_header_filter().as_bytes());
    assert_eq!(plugin("add")["sha256"], sha.as_str());
    assert_eq!(plugin("closed")["traps"], 1);
    assert_eq!(plugin("loop")["timeouts"], 1);
    let (_, metrics) = get(proxy.admin, "/metrics", &[]).await.unwrap();
    assert!(
        metrics.contains("wasp_filter_timeouts_total{plugin=\"looper\"} 1"),
        "{metrics}"
    );
    drop(proxy);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_module_with_an_unknown_import_is_rejected_naming_it() {
    let dir = temp_dir();
    let up: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let (path, _, _) = config(
        &dir,
        up,
        &[("bad", unknown_import_filter())],
        &chain("bad", "bad", "fail_closed", ""),
        &route("/", "bad"),
    );
    let output = Command::new(env!("CARGO_BIN_EXE_wasp"))
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
    let _ = std::fs::remove_dir_all(dir);
}
