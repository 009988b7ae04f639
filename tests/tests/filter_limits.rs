//! Host limits through the real `wasp` binary: a filter flooding headers or
//! shared data cannot grow the proxy past its limits (measured as the
//! process's resident memory), and reloading large modules over and over
//! keeps only the modules in use.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use wasp_e2e::wat::wat;
use wasp_e2e::{
    Client, Cluster, Config, FilterChain, Listener, Plugin, Route, Upstream, Wasp, WatDir,
    free_addr,
};

/// Adds a 64 KiB `x-flood` header 2000 times per request (128 MiB if the
/// host took them all), ignoring every status, then continues.
fn header_flood() -> String {
    wat(
        r#"(import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))"#,
        r#"(data (i32.const 100) "x-flood")
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (local $n i32)
    (loop $again
      (drop (call $add (i32.const 0) (i32.const 100) (i32.const 7) (i32.const 1024) (i32.const 65536)))
      (local.set $n (i32.add (local.get $n) (i32.const 1)))
      (br_if $again (i32.lt_u (local.get $n) (i32.const 2000))))
    i32.const 0)"#,
    )
}

/// Sets 1 MiB of shared data under a new key on every request and adds
/// `x-status: <status digit>` to the request.
fn shared_data_flood() -> String {
    r#"(module
  (import "env" "proxy_set_shared_data" (func $set (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 20)
  (global $heap (mut i32) (i32.const 1200000))
  (global $n (mut i32) (i32.const 0))
  (func (export "proxy_on_memory_allocate") (param $size i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $size)))
    local.get $p)
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_context_create") (param i32 i32))
  (data (i32.const 100) "kxx")
  (data (i32.const 110) "x-status")
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (i32.store8 (i32.const 101) (i32.add (i32.const 97) (i32.rem_u (global.get $n) (i32.const 26))))
    (i32.store8 (i32.const 102) (i32.add (i32.const 97) (i32.div_u (global.get $n) (i32.const 26))))
    (global.set $n (i32.add (global.get $n) (i32.const 1)))
    (i32.store8 (i32.const 120) (i32.add (i32.const 48)
      (call $set (i32.const 100) (i32.const 3) (i32.const 65536) (i32.const 1048576) (i32.const 0))))
    (drop (call $add (i32.const 0) (i32.const 110) (i32.const 8) (i32.const 120) (i32.const 1)))
    i32.const 0)
)"#
    .to_owned()
}

fn flood_config(listen: SocketAddr, up: &Upstream, module: &std::path::Path) -> Config {
    Config::new()
        .filter_chain(FilterChain::new("flood").plugin(
            Plugin::new("flood", module).fail_open().set(
                "limits",
                serde_json::json!({"cpu_deadline": "1s", "max_vms": 1}),
            ),
        ))
        .listener(
            Listener::new("main", listen)
                .route(Route::prefix("/").filter_chain("flood").cluster("up")),
        )
        .cluster(Cluster::new("up").endpoint(up.addr))
}

/// Sends `n` GETs, four at a time; returns the bodies (what the upstream saw).
async fn requests(listen: SocketAddr, n: usize) -> Vec<String> {
    let mut bodies = Vec::new();
    for _ in 0..n / 4 {
        let batch: Vec<_> = (0..4)
            .map(|_| {
                tokio::spawn(async move {
                    let resp = Client::http1()
                        .get(&format!("http://{listen}/"))
                        .await
                        .unwrap();
                    assert_eq!(resp.status, 200);
                    String::from_utf8_lossy(&resp.body).into_owned()
                })
            })
            .collect();
        for task in batch {
            bodies.push(task.await.unwrap());
        }
    }
    bodies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_flood_is_refused_and_does_not_grow_the_proxy() {
    let listen = free_addr();
    let up = Upstream::start("up").await;
    let modules = WatDir::new();
    let module = modules.write("flood", &header_flood());
    let wasp = Wasp::start(flood_config(listen, &up, &module)).await;
    let before = wasp.rss_kib();
    let bodies = requests(listen, 40).await;
    assert!(
        bodies.iter().all(|b| !b.contains("x-flood")),
        "no 64 KiB header passed the 60 KiB limit: {:?}",
        &bodies[0]
    );
    let peak = wasp.peak_rss_kib();
    eprintln!("header flood: RSS before {before} KiB, peak {peak} KiB");
    assert!(
        peak < before + 64 * 1024,
        "peak RSS {peak} KiB grew more than 64 MiB over {before} KiB"
    );
    let metrics = wasp.metrics().await;
    let refused = metrics.sum(
        "wasp_filter_limit_exceeded_total",
        &[("plugin", "flood"), ("limit", "max_header_bytes")],
    );
    assert_eq!(refused, 40.0 * 2000.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_data_flood_stops_at_max_shared_data_bytes() {
    let listen = free_addr();
    let up = Upstream::start("up").await;
    let modules = WatDir::new();
    let module = modules.write("shared", &shared_data_flood());
    let wasp = Wasp::start(flood_config(listen, &up, &module)).await;
    let before = wasp.rss_kib();
    let bodies = requests(listen, 200).await;
    let status = |b: &String| {
        let seen: serde_json::Value = serde_json::from_str(b).unwrap_or_default();
        seen["headers"]["x-status"]
            .as_str()
            .unwrap_or("?")
            .to_owned()
    };
    let ok = bodies.iter().filter(|b| status(b) == "0").count();
    let refused = bodies.iter().filter(|b| status(b) == "2").count();
    // 16 MiB of keys plus values: 15 values of 1 MiB (+ 3-byte keys) fit.
    assert_eq!((ok, refused), (15, 185), "{:?}", bodies.first());
    let after = wasp.rss_kib();
    let peak = wasp.peak_rss_kib();
    eprintln!("shared-data flood: RSS before {before} KiB, after {after} KiB, peak {peak} KiB");
    assert!(
        peak < before + 48 * 1024,
        "peak RSS {peak} KiB grew more than 48 MiB over {before} KiB"
    );
    let metrics = wasp.metrics().await;
    let counted = metrics.sum(
        "wasp_filter_limit_exceeded_total",
        &[("plugin", "flood"), ("limit", "max_shared_data_bytes")],
    );
    assert_eq!(counted, 185.0);
}

/// A filter module of about 4 MiB (a data segment), distinct per `nonce`.
fn large_module(nonce: u32) -> String {
    let mut state = nonce.wrapping_mul(2_654_435_761).wrapping_add(1);
    let data: String = (0..4 << 20)
        .map(|_| {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            char::from(b'a' + ((state >> 16) % 26) as u8)
        })
        .collect();
    format!(
        r#"(module
  (memory (export "memory") 80)
  (func (export "proxy_on_memory_allocate") (param i32) (result i32) i32.const 8)
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_context_create") (param i32 i32))
  (data (i32.const 65536) "{data}")
)"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloading_large_modules_keeps_only_the_module_in_use() {
    let listen = free_addr();
    let up = Upstream::start("up").await;
    let modules = WatDir::new();
    let config = |n: u32| {
        let path = modules.write(&format!("m{n}"), &large_module(n));
        flood_config(listen, &up, &path)
    };
    let wasp = Wasp::start(config(0)).await;
    let filters = || async {
        Client::http1()
            .get(&wasp.admin_url("/filters"))
            .await
            .unwrap()
            .json()
    };
    let first = wasp.rss_kib();
    for n in 1..=8 {
        let version = wasp.version().await;
        wasp.write_config(config(n));
        wasp.wait_version(version + 1, Duration::from_secs(60))
            .await;
    }
    // The last snapshot's predecessors are dropped once no request holds them.
    let deadline = Instant::now() + Duration::from_secs(10);
    let cache = loop {
        let cache = filters().await["module_cache"].clone();
        if cache["modules"].as_array().map_or(0, Vec::len) <= 2 || Instant::now() > deadline {
            break cache;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The running module, and at most the one before it: the proxy keeps
    // the previous snapshot's plugins until the next reload replaces them.
    assert!(cache["modules"].as_array().unwrap().len() <= 2, "{cache}");
    assert!(cache["bytes"].as_u64().unwrap() > 4 << 20, "{cache}");
    let last = wasp.rss_kib();
    eprintln!("module reloads: RSS after the first module {first} KiB, after 8 reloads {last} KiB");
    assert!(
        last < first + 40 * 1024,
        "RSS {last} KiB grew more than 40 MiB over {first} KiB after 8 reloads of 4 MiB modules (all nine cached would be about 75 MiB)"
    );
    assert_eq!(requests(listen, 4).await.len(), 4);
}
