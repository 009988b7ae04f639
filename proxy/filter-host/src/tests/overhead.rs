//! Overhead figures (run with `cargo test -p wasp-filter-host overhead --
//! --ignored --nocapture`): per-request cost of chains of no-op filters and
//! the time to start a VM. Ignored by default: timings, not assertions.

use std::time::Instant;

use super::*;
use crate::StreamInfo;

fn noop(name: &str) -> Arc<Plugin> {
    load(spec(
        name,
        wat(
            "",
            r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) i32.const 0)
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32) i32.const 0)"#,
        ),
    ))
}

#[tokio::test]
#[ignore = "prints timings"]
async fn overhead_of_noop_chains_and_vm_start() {
    const ROUNDS: u32 = 2000;
    let response = vec![(":status".to_owned(), b"200".to_vec())];
    let mut base = 0.0;
    for filters in [0usize, 1, 5, 10] {
        let plugins = (0..filters).map(|i| noop(&format!("noop-{i}"))).collect();
        let chain = chain(plugins);
        let started = Instant::now();
        for _ in 0..ROUNDS {
            let stream = chain.start(StreamInfo::default());
            stream.request_headers(request(), true).await.unwrap();
            stream
                .response_headers(response.clone(), true)
                .await
                .unwrap();
        }
        let per_request = started.elapsed().as_secs_f64() * 1e6 / f64::from(ROUNDS);
        if filters == 0 {
            base = per_request;
        }
        let per_filter = if filters == 0 {
            0.0
        } else {
            (per_request - base) / filters as f64
        };
        eprintln!(
            "{filters:>2} filters: {per_request:8.2} µs/request, {per_filter:6.2} µs per filter"
        );
    }
    let module = wat("", "");
    let started = Instant::now();
    for i in 0..50 {
        load(spec(&format!("start-{i}"), module.clone()));
    }
    eprintln!(
        "VM start (cached module, instantiate + configure): {:.1} µs",
        started.elapsed().as_secs_f64() * 1e6 / 50.0
    );
}
