//! Filter hardening through the real binary: callouts bounded by the
//! plugin's `max_callout_response_bytes` (the call fails and is counted);
//! misuse warnings rate-limited while the counter counts every one; and
//! `wasp validate` naming a capped `cpu_deadline`, a zero callout limit, a
//! module that is neither a Wasm binary nor WAT text and a configuration the
//! filter refuses (with the filter's own log), each at its path.

use std::net::SocketAddr;
use std::time::Duration;

use wasp_e2e::wat::{callout_filter, upstream_saw, wat};
use wasp_e2e::{
    Client, Cluster, Config, FilterChain, Listener, Plugin, Route, Upstream, Wasp, WatDir,
    free_addr,
};

/// `/small` and `/big` call out to wasp's own `/side` (a 300-byte answer)
/// through chains whose plugin allows 4 MiB and 64 bytes of response.
fn callout_config(listen: SocketAddr, up: &Upstream, modules: &WatDir) -> Config {
    let module = modules.write("callout", &callout_filter("side"));
    let plugin = |name: &str, max: u64| {
        Plugin::new(name, &module).set(
            "limits",
            serde_json::json!({ "max_callout_response_bytes": max }),
        )
    };
    Config::new()
        .filter_chain(FilterChain::new("roomy").plugin(plugin("roomy", 4 << 20)))
        .filter_chain(FilterChain::new("tight").plugin(plugin("tight", 64)))
        .listener(
            Listener::new("main", listen)
                .route(Route::path("/side").direct(200, &"y".repeat(300)))
                .route(Route::prefix("/small").filter_chain("roomy").cluster("up"))
                .route(Route::prefix("/big").filter_chain("tight").cluster("up")),
        )
        .cluster(Cluster::new("up").endpoint(up.addr))
        .cluster(Cluster::new("side").endpoint(listen))
}

#[tokio::test]
async fn a_callout_response_past_max_callout_response_bytes_fails_the_call() {
    let listen = free_addr();
    let up = Upstream::start("up").await;
    let modules = WatDir::new();
    let wasp = Wasp::start(callout_config(listen, &up, &modules)).await;
    let client = Client::http1();

    let resp = client.get(&format!("http://{listen}/small")).await.unwrap();
    assert_eq!(resp.status, 200);
    assert!(upstream_saw(&resp).starts_with(&format!("x-filter={}\n", "y".repeat(300))));

    let resp = client.get(&format!("http://{listen}/big")).await.unwrap();
    assert_eq!(resp.status, 200, "the filter resumes after the failed call");
    assert!(
        upstream_saw(&resp) == "x-filter=\nbody=",
        "a response past the limit reached the filter: {}",
        upstream_saw(&resp)
    );
    let metrics = wasp.metrics().await;
    let refused = |plugin| {
        metrics.sum(
            "wasp_filter_limit_exceeded_total",
            &[("plugin", plugin), ("limit", "max_callout_response_bytes")],
        )
    };
    assert_eq!(refused("tight"), 1.0);
    assert_eq!(refused("roomy"), 0.0);
}

#[tokio::test]
async fn misuse_warnings_are_rate_limited_and_every_one_is_counted() {
    let listen = free_addr();
    let up = Upstream::start("up").await;
    let modules = WatDir::new();
    // proxy_log with a pointer past the end of memory, on every request.
    let module = modules.write(
        "misuse",
        &wat(
            r#"(import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))"#,
            r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (drop (call $log (i32.const 2) (i32.const -16) (i32.const 64)))
    i32.const 0)"#,
        ),
    );
    let config = Config::new()
        .filter_chain(FilterChain::new("c").plugin(Plugin::new("misuser", &module)))
        .listener(
            Listener::new("main", listen).route(Route::prefix("/").filter_chain("c").cluster("up")),
        )
        .cluster(Cluster::new("up").endpoint(up.addr));
    let wasp = Wasp::start(config).await;
    let client = Client::http1();
    for _ in 0..200 {
        let resp = client.get(&format!("http://{listen}/")).await.unwrap();
        assert_eq!(resp.status, 200);
    }
    let metrics = wasp.metrics().await;
    let counted = metrics.sum(
        "wasp_filter_abi_misuse_total",
        &[("plugin", "misuser"), ("call", "proxy_log")],
    );
    assert_eq!(counted, 200.0);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let warnings = wasp
        .log()
        .matches("filter misused the proxy-wasm ABI")
        .count();
    assert!(
        (1..=3).contains(&warnings),
        "{warnings} warnings logged for 200 misuses (one per 10 s expected)"
    );
}

/// `wasp validate` on `config`: whether it passed, and what it printed.
fn validate(modules: &WatDir, config: Config) -> (bool, String) {
    let file = modules.path().join("config.yaml");
    std::fs::write(&file, config.to_string()).unwrap();
    let out = std::process::Command::new(wasp_e2e::wasp::binary())
        .arg("validate")
        .arg(&file)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn one_plugin(plugin: Plugin) -> Config {
    Config::new()
        .filter_chain(FilterChain::new("c").plugin(plugin))
        .listener(Listener::new("main", free_addr()).route(Route::prefix("/").direct(200, "ok")))
}

#[test]
fn validate_names_each_bad_plugin_setting_at_its_path() {
    let modules = WatDir::new();
    // The document's own errors come first, all at once.
    let ok = modules.write("ok", &wat("", ""));
    let limits = serde_json::json!({"cpu_deadline": "1h", "max_callouts_in_flight": 0});
    let (passed, text) = validate(
        &modules,
        one_plugin(Plugin::new("p", &ok).set("limits", limits)),
    );
    assert!(!passed, "{text}");
    for expected in [
        "filter_chains[0].plugins[0].limits.cpu_deadline: must be greater than zero and at most 1s",
        "filter_chains[0].plugins[0].limits.max_callouts_in_flight: must be at least 1",
    ] {
        assert!(text.contains(expected), "no `{expected}` in:\n{text}");
    }
    // Then each module is loaded.
    let garbage = modules.path().join("garbage.wasm");
    std::fs::write(&garbage, [0xde, 0xad, 0xbe, 0xef, 0xff, 0xfe, 0x00, 0x01]).unwrap();
    let (passed, text) = validate(&modules, one_plugin(Plugin::new("p", &garbage)));
    assert!(!passed, "{text}");
    for expected in ["filter_chains[0].plugins[0].module", "not a Wasm module"] {
        assert!(text.contains(expected), "no `{expected}` in:\n{text}");
    }
    // A configuration the filter refuses is reported at `.configuration`,
    // with what the filter logged while refusing it.
    let picky = modules.write(
        "picky",
        &wat(
            r#"(import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))"#,
            r#"(data (i32.const 100) "missing field `header` at line 1")
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    (drop (call $log (i32.const 4) (i32.const 100) (i32.const 32)))
    i32.const 0)"#,
        ),
    );
    let (passed, text) = validate(&modules, one_plugin(Plugin::new("p", &picky)));
    assert!(!passed, "{text}");
    for expected in [
        "filter_chains[0].plugins[0].configuration",
        "proxy_on_configure returned false",
        "its log: missing field `header` at line 1",
    ] {
        assert!(text.contains(expected), "no `{expected}` in:\n{text}");
    }
}
