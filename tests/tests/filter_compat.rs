//! What filters written for Envoy expect of their host, through the real
//! `wasp` binary: metrics under the names the filters gave them (shared by
//! every plugin defining a name, refused in wasp's own namespace), critical
//! log lines kept apart from errors, and a C filter built with Emscripten.

use wasp_e2e::emscripten::build_c_filter;
use wasp_e2e::wat::wat;
use wasp_e2e::{
    Client, Cluster, Config, FilterChain, Listener, Plugin, Route, Upstream, Wasp, WatDir,
    free_addr,
};

/// Defines the counter `metric` on each request's headers and, when that
/// succeeds, adds 1; answers the define's status as `x-define-<tag>`.
fn counting_filter(metric: &str, tag: &str) -> String {
    let header = format!("x-define-{tag}");
    wat(
        r#"(import "env" "proxy_define_metric" (func $define (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_increment_metric" (func $inc (param i32 i64) (result i32)))
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))"#,
        &format!(
            r#"(data (i32.const 100) "{metric}")
  (data (i32.const 200) "{header}")
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    ;; the status as one ASCII digit at 40
    (i32.store8 (i32.const 40) (i32.add (i32.const 48)
      (call $define (i32.const 0) (i32.const 100) (i32.const {metric_len}) (i32.const 32))))
    (if (i32.eq (i32.load8_u (i32.const 40)) (i32.const 48))
      (then (drop (call $inc (i32.load (i32.const 32)) (i64.const 1)))))
    i32.const 0)
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32)
    (drop (call $add (i32.const 2) (i32.const 200) (i32.const {header_len}) (i32.const 40) (i32.const 1)))
    i32.const 0)"#,
            metric_len = metric.len(),
            header_len = header.len(),
        ),
    )
}

/// Logs `message` at `critical` (level 5) on each request's headers.
fn critical_log_filter(message: &str) -> String {
    wat(
        r#"(import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))"#,
        &format!(
            r#"(data (i32.const 100) "{message}")
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (drop (call $log (i32.const 5) (i32.const 100) (i32.const {len})))
    i32.const 0)"#,
            len = message.len()
        ),
    )
}

/// wasp on `listen` with the chain `compat` of `plugins` on every route.
async fn start(listen: std::net::SocketAddr, up: &Upstream, plugins: Vec<Plugin>) -> Wasp {
    let mut chain = FilterChain::new("compat");
    for plugin in plugins {
        chain = chain.plugin(plugin);
    }
    let config = Config::new()
        .filter_chain(chain)
        .listener(
            Listener::new("main", listen)
                .filter_chain("compat")
                .route(Route::prefix("/").cluster("up")),
        )
        .cluster(Cluster::new("up").endpoint(up.addr));
    Wasp::start(&config).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_metrics_are_exported_under_the_filters_own_names() {
    let listen = free_addr();
    let up = Upstream::start("up").await;
    let modules = WatDir::new();
    // Two plugins define the same name (as two Envoy plugins share one
    // stat); a third names a metric in wasp's own namespace.
    let plugins = vec![
        Plugin::new(
            "first",
            modules.write("first", &counting_filter("compat_requests_total", "first")),
        ),
        Plugin::new(
            "second",
            modules.write(
                "second",
                &counting_filter("compat.requests_total", "second"),
            ),
        ),
        Plugin::new(
            "squatter",
            modules.write(
                "squatter",
                &counting_filter("wasp_requests_total", "squatter"),
            ),
        ),
    ];
    let wasp = start(listen, &up, plugins).await;
    let client = Client::http1();
    for _ in 0..3 {
        let resp = client.get(&format!("http://{listen}/count")).await.unwrap();
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("x-define-first"), Some("0"), "Ok");
        assert_eq!(resp.header("x-define-second"), Some("0"), "Ok");
        assert_eq!(resp.header("x-define-squatter"), Some("2"), "BadArgument");
    }

    let metrics = wasp.metrics().await;
    assert_eq!(
        metrics.matching("compat_requests_total", &[]).count(),
        1,
        "{}",
        metrics.text
    );
    assert_eq!(
        metrics.sum("compat_requests_total", &[]),
        6.0,
        "{}",
        metrics.text
    );
    assert!(
        !metrics.text.contains("wasp_filter_metric_"),
        "{}",
        metrics.text
    );
    // wasp's own metric is untouched: labeled, counting requests.
    assert_eq!(
        metrics.sum("wasp_requests_total", &[("listener", "main")]),
        3.0,
        "{}",
        metrics.text
    );
    assert!(
        metrics
            .matching("wasp_requests_total", &[])
            .all(|s| s.label("listener").is_some())
    );
    let log = wasp.log();
    assert!(
        log.contains("filter metric not defined") && log.contains("squatter"),
        "{log}"
    );
    assert!(
        log.contains("reserved for the proxy's own metrics"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn critical_filter_logs_stay_distinguishable_from_errors() {
    let listen = free_addr();
    let up = Upstream::start("up").await;
    let modules = WatDir::new();
    let plugin = Plugin::new(
        "alarm",
        modules.write("alarm", &critical_log_filter("compat critical line")),
    );
    let wasp = start(listen, &up, vec![plugin]).await;
    let resp = Client::http1()
        .get(&format!("http://{listen}/"))
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
    let log = wasp.log();
    let line = log
        .lines()
        .find(|line| line.contains("compat critical line"))
        .unwrap_or_else(|| panic!("no critical line in:\n{log}"));
    assert!(line.contains("ERROR"), "{line}");
    assert!(line.contains("severity=\"critical\""), "{line}");
    assert!(line.contains("plugin=\"alarm\""), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_c_filter_built_with_emscripten_loads_and_grows_its_memory() {
    let listen = free_addr();
    let up = Upstream::start("up").await;
    let modules = WatDir::new();
    let module = build_c_filter("emscripten-c", modules.path());
    let wasp = start(listen, &up, vec![Plugin::new("emscripten", module)]).await;
    let resp = Client::http1()
        .get(&format!("http://{listen}/"))
        .await
        .unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("x-emscripten"), Some("grown"));
    let log = wasp.log();
    assert!(log.contains("emscripten filter ran"), "{log}");
}
