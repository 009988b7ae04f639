//! Plugin-level features on the mock host: configuration through serde,
//! ticks, shared data with CAS, shared queues, metrics, logs, properties and
//! panic reporting.

use serde::Deserialize;
use std::time::Duration;
use wasp_filter_sdk::prelude::*;
use wasp_filter_sdk::testing::{Harness, LogLevel, MetricType};
use wasp_filter_sdk::{shared, warn};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    tick_ms: u64,
    #[serde(default)]
    reject: bool,
}

#[derive(Default)]
struct Root {
    ticks: u64,
    requests: Option<Counter>,
    inflight: Option<Gauge>,
    sizes: Option<Histogram>,
    queue: Option<SharedQueue>,
}

struct Probe {
    requests: Counter,
    inflight: Gauge,
    sizes: Histogram,
}

impl RootFilter for Root {
    type Config = Config;
    type Http = Probe;

    fn on_configure(&mut self, ctx: &mut RootCtx<Self>, config: Config) -> Result<(), String> {
        if config.reject {
            return Err("reject was set".into());
        }
        ctx.set_tick_period(Duration::from_millis(config.tick_ms));
        self.requests = Some(Counter::define("probe_requests_total").map_err(|e| e.to_string())?);
        self.inflight = Some(Gauge::define("probe_inflight").map_err(|e| e.to_string())?);
        self.sizes = Some(Histogram::define("probe_body_bytes").map_err(|e| e.to_string())?);
        self.queue = Some(SharedQueue::register("probe-events").map_err(|e| e.to_string())?);
        Ok(())
    }

    fn on_tick(&mut self, _: &mut RootCtx<Self>) {
        self.ticks += 1;
        shared::set("ticks", self.ticks.to_string().as_bytes(), None).unwrap();
    }

    fn on_queue_ready(&mut self, _: &mut RootCtx<Self>, queue: SharedQueue) {
        while let Some(message) = queue.dequeue().unwrap() {
            let text = String::from_utf8_lossy(&message).into_owned();
            shared::set("last-event", text.as_bytes(), None).unwrap();
        }
    }

    fn create_http_filter(&mut self, _: &mut RootCtx<Self>) -> Option<Probe> {
        Some(Probe {
            requests: self.requests?,
            inflight: self.inflight?,
            sizes: self.sizes?,
        })
    }
}

impl HttpFilter for Probe {
    fn on_request_headers(&mut self, ctx: &mut HttpCtx<Self>, _: bool) -> Action {
        self.requests.increment(1);
        if let Some(method) = ctx.request_headers().get("x-method-label") {
            Counter::with_labels(
                "probe_by_method_total",
                &[("method", &method), ("kind", "x")],
            )
            .unwrap()
            .increment(1);
        }
        self.inflight.add(1);
        let principal = ctx.source_principal().unwrap_or_else(|| "anonymous".into());
        ctx.request_headers().set("x-principal", &principal);
        let path = ctx.property(["request", "path"]).unwrap_or_default();
        ctx.request_headers()
            .set("x-path", &String::from_utf8_lossy(&path));
        ctx.set_property(["wasp", "probe"], b"seen").unwrap();
        let hits = shared::increment("hits", 1).unwrap();
        ctx.request_headers().set("x-hits", &hits.to_string());
        if ctx.request_headers().get("x-panic").is_some() {
            panic!("asked to panic");
        }
        if let Some(event) = ctx.request_headers().get("x-event") {
            let queue = SharedQueue::resolve("", "probe-events").unwrap().unwrap();
            queue.enqueue(event.as_bytes()).unwrap();
        }
        warn!("request for {}", String::from_utf8_lossy(&path));
        Action::Continue
    }

    fn on_request_body(&mut self, _: &mut HttpCtx<Self>, size: usize, _: bool) -> Action {
        self.sizes.record(size as u64);
        Action::Continue
    }

    fn on_log(&mut self, _: &mut HttpCtx<Self>) {
        self.inflight.add(-1);
    }
}

#[test]
fn bad_configuration_fails_on_configure_and_is_logged() {
    let mut host = Harness::new(Root::default());
    assert!(!host.configure(r#"{"tick_ms": "soon"}"#));
    assert!(host.logged(LogLevel::Error, "invalid plugin configuration"));
    assert!(host.logged(LogLevel::Error, "invalid type"));
    assert!(!host.configure(r#"{"tick_ms": 5, "typo": 1}"#));
    assert!(host.logged(LogLevel::Error, "unknown field `typo`"));
    assert!(!host.configure(r#"{"tick_ms": 5, "reject": true}"#));
    assert!(host.logged(LogLevel::Error, "reject was set"));
    assert!(!host.configure(""), "an empty configuration lacks tick_ms");
    assert!(host.configure(r#"{"tick_ms": 5}"#));
}

#[test]
fn ticks_run_at_the_configured_period() {
    let mut host = Harness::new(Root::default());
    assert!(host.configure(r#"{"tick_ms": 100}"#));
    assert_eq!(host.tick_period(), Some(Duration::from_millis(100)));
    host.advance(Duration::from_millis(350));
    assert_eq!(host.shared_data("ticks").unwrap().0, b"3");
}

#[test]
fn metrics_properties_shared_data_and_logs() {
    let mut host = Harness::new(Root::default());
    assert!(host.configure(r#"{"tick_ms": 0}"#));
    host.set_property(&["source", "principal"], b"spiffe://mesh/ns/a/sa/b");
    host.set_property(&["request", "path"], b"/orders");
    host.set_shared_data("hits", &41u64.to_le_bytes());
    let mut stream = host.stream();
    stream.request_headers(&[(":path", "/orders")], false);
    stream.request_body(b"12345", true);
    assert_eq!(
        stream.request_header("x-principal").as_deref(),
        Some("spiffe://mesh/ns/a/sa/b")
    );
    assert_eq!(stream.request_header("x-path").as_deref(), Some("/orders"));
    assert_eq!(stream.request_header("x-hits").as_deref(), Some("42"));
    assert_eq!(
        host.property(&["wasp", "probe"]).as_deref(),
        Some(&b"seen"[..])
    );
    assert!(host.logged(LogLevel::Warn, "request for /orders"));

    let requests = host.metric("probe_requests_total").unwrap();
    assert_eq!((requests.kind, requests.value), (MetricType::Counter, 1));
    assert_eq!(host.metric("probe_inflight").unwrap().value, 1);
    assert_eq!(host.metric("probe_body_bytes").unwrap().samples, [5]);
    stream.finish();
    assert_eq!(host.metric("probe_inflight").unwrap().value, 0);
}

#[test]
fn log_level_filters_messages() {
    let mut host = Harness::new(Root::default());
    assert!(host.configure(r#"{"tick_ms": 0}"#));
    host.set_log_level(LogLevel::Error);
    host.stream().request_headers(&[(":path", "/")], true);
    assert!(!host.logged(LogLevel::Warn, "request for"));
}

#[test]
fn shared_data_cas_detects_concurrent_writers() {
    let _host = Harness::new(Root::default());
    shared::set("k", b"v1", None).unwrap();
    let first = shared::get("k").unwrap().unwrap();
    shared::set("k", b"v2", Some(first.cas)).unwrap();
    let error = shared::set("k", b"v3", Some(first.cas)).unwrap_err();
    assert!(error.is_cas_mismatch(), "{error}");
    assert_eq!(shared::get("k").unwrap().unwrap().value, b"v2");
    assert_eq!(shared::get("missing").unwrap(), None);
}

#[test]
fn queue_messages_reach_on_queue_ready() {
    let mut host = Harness::new(Root::default());
    assert!(host.configure(r#"{"tick_ms": 0}"#));
    host.stream()
        .request_headers(&[("x-event", "deployed")], true);
    assert_eq!(host.shared_data("last-event").unwrap().0, b"deployed");
    assert!(host.enqueue("probe-events", b"from-another-vm"));
    assert_eq!(
        host.shared_data("last-event").unwrap().0,
        b"from-another-vm"
    );
    assert!(!host.enqueue("no-such-queue", b"x"));
}

#[test]
fn panics_are_logged_with_their_message() {
    let mut host = Harness::new(Root::default());
    assert!(host.configure(r#"{"tick_ms": 0}"#));
    let mut stream = host.stream();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        stream.request_headers(&[("x-panic", "1")], true)
    }));
    assert!(outcome.is_err());
    assert!(host.logged(LogLevel::Critical, "asked to panic"));
    assert!(host.logged(LogLevel::Critical, "plugin.rs"));
}

#[test]
fn labeled_series_are_defined_once_per_label_set() {
    let mut host = Harness::new(Root::default());
    assert!(host.configure(r#"{"tick_ms": 0}"#));
    for method in ["GET", "GET", "POST", "GET"] {
        let mut stream = host.stream();
        stream.request_headers(&[(":path", "/"), ("x-method-label", method)], true);
    }
    let family = host.metric_family("probe_by_method_total");
    assert_eq!(family.len(), 2, "{family:?}");
    let get = host
        .labeled_metric("probe_by_method_total", &[("method", "GET"), ("kind", "x")])
        .unwrap();
    assert_eq!(get.name, r#"probe_by_method_total{kind="x",method="GET"}"#);
    assert_eq!((get.kind, get.value), (MetricType::Counter, 3));
    let post = host
        .labeled_metric(
            "probe_by_method_total",
            &[("kind", "x"), ("method", "POST")],
        )
        .unwrap();
    assert_eq!(post.value, 1);
}
