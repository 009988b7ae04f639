//! Chain swaps under load, end to end through the real `wasp-cp`,
//! `waspctl` and `wasp`: while clients keep a proxy busy for 10 s (offering
//! 800 requests/s, at least 500/s achieved), the control plane swaps its
//! chain three times; no request fails and every exchange ran exactly one
//! chain version, the same on the way up (what the upstream saw) and on the
//! way back, never an older one after a newer one on the same client.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use wasp_e2e::controlplane::{Node, within};
use wasp_e2e::wat::header_filter;
use wasp_e2e::{Client, Cluster, Config, ControlPlane, FilterChain, Listener, Plugin, Route};
use wasp_e2e::{Upstream, free_addr};

/// Chain versions, in the order they are applied.
const VERSIONS: [&str; 4] = ["one", "two", "three", "four"];
/// Concurrent clients.
const CLIENTS: usize = 16;
/// How long the load lasts.
const LOAD: Duration = Duration::from_secs(10);
/// The rate each client aims at (together 800 requests/s); a client that
/// fell behind catches up in a burst, so short stalls cost no requests.
const PER_CLIENT_INTERVAL: Duration = Duration::from_millis(20);
/// The rate the test requires, over the whole load.
const MIN_RATE: f64 = 500.0;

fn document(up: &Upstream, module: &str) -> String {
    Config::new()
        .filter_chain(FilterChain::new("edge").plugin(Plugin::new("header", module)))
        .listener(
            Listener::new("main", "127.0.0.1:18080")
                .route(Route::prefix("/").filter_chain("edge").cluster("up")),
        )
        .cluster(Cluster::new("up").endpoint(up.addr))
        .to_string()
}

/// What one client saw: the version index of each exchange, or a failure.
async fn client(listen: SocketAddr, stop: Arc<AtomicBool>) -> Vec<Result<usize, String>> {
    let client = Client::http1();
    let mut seen = Vec::new();
    let mut tick = tokio::time::interval(PER_CLIENT_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let resp = match client.get(&format!("http://{listen}/")).await {
            Ok(resp) => resp,
            Err(err) => {
                seen.push(Err(format!("request failed: {err:#}")));
                continue;
            }
        };
        let values: Vec<&str> = resp
            .headers
            .get_all("x-filter")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let upstream = if resp.status == 200 {
            resp.json()["headers"]["x-filter"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        } else {
            String::new()
        };
        seen.push(match (resp.status, values.as_slice()) {
            (200, [value]) if *value == upstream => VERSIONS
                .iter()
                .position(|v| v == value)
                .ok_or_else(|| format!("unknown chain {value}")),
            (status, values) => Err(format!(
                "status {status}, x-filter {values:?} back, {upstream:?} up: {}",
                resp.text()
            )),
        });
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_chain_swaps_under_load_fail_no_request_and_mix_no_chains() {
    let up = Upstream::start("up").await;
    let cp = ControlPlane::start().await;
    for value in VERSIONS {
        let path = cp.dir().join(format!("{value}.wat"));
        std::fs::write(&path, header_filter(value)).unwrap();
        cp.ctl(&["module", "push", path.to_str().unwrap(), "--name", value])
            .ok();
    }
    let listen = free_addr();
    let first = cp.apply(&document(&up, VERSIONS[0]));
    let proxy = cp.node(&Node::new("node-1", "app=web").listener("main", listen));
    proxy.wait_ready().await;

    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| tokio::spawn(client(listen, Arc::clone(&stop))))
        .collect();
    let start = Instant::now();
    // waspctl runs off the async workers, which the clients need.
    let cp = Arc::new(cp);
    for (i, value) in VERSIONS.iter().enumerate().skip(1) {
        tokio::time::sleep_until((start + LOAD * i as u32 / 4).into()).await;
        let document = document(&up, value);
        let version = blocking(&cp, move |cp| cp.apply(&document)).await;
        assert_eq!(version, first + i as u64);
        within(Duration::from_secs(5), "the swap is ACKed", || async {
            blocking(&cp, move |cp| {
                cp.proxy_status("node-1")["running_version"] == version
            })
            .await
        })
        .await;
    }
    tokio::time::sleep_until((start + LOAD).into()).await;
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    let mut per_version = [0usize; VERSIONS.len()];
    for handle in clients {
        let seen = handle.await.unwrap();
        total += seen.len();
        let mut newest = 0;
        for outcome in seen {
            let version = outcome.unwrap_or_else(|err| panic!("{err}"));
            assert!(version >= newest, "chain {version} after chain {newest}");
            newest = version;
            per_version[version] += 1;
        }
    }
    let elapsed = start.elapsed();
    let rate = total as f64 / elapsed.as_secs_f64();
    eprintln!("{total} requests in {elapsed:?} ({rate:.0}/s), per chain version {per_version:?}");
    assert!(per_version.iter().all(|n| *n > 0), "{per_version:?}");
    assert!(
        rate >= MIN_RATE,
        "only {rate:.0} requests/s, not {MIN_RATE}"
    );
}

/// Runs `job` (which runs waspctl and waits for it) on a blocking thread.
async fn blocking<T: Send + 'static>(
    cp: &Arc<ControlPlane>,
    job: impl FnOnce(&ControlPlane) -> T + Send + 'static,
) -> T {
    let cp = Arc::clone(cp);
    tokio::task::spawn_blocking(move || job(&cp))
        .await
        .expect("waspctl job")
}
