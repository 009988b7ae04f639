//! Measures how fast a configuration reaches proxies: the time from
//! running `waspctl apply` to every proxy having ACKed the new version (as
//! `ListProxies` on the control plane reports, polled every millisecond),
//! and `wasp-cp`'s resident memory.
//!
//! ```sh
//! cargo run -p wasp-e2e --bin cp-converge -- real 20        # 20 wasp processes
//! cargo run -p wasp-e2e --bin cp-converge -- simulated 100  # 100 Discovery clients
//! ```
//!
//! `real N` starts N `wasp` processes on this machine (each with its own
//! `--admin-address` and `--listener-address`); `simulated N` opens N
//! subscriptions from this process, each a separate HTTP/2 connection
//! speaking the Discovery protocol and ACKing each version as soon as it
//! arrives (no module fetch, no snapshot build: what the control plane
//! itself costs). `--modules M` pushes M modules first (default 1); every
//! configuration's chain uses all of them.

// A measurement program: its figures go to standard output.
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use tonic::transport::{Channel, Endpoint};
use wasp_controlplane_api as api;
use wasp_controlplane_api::admin_client::AdminClient;
use wasp_controlplane_api::discovery_client::DiscoveryClient;
use wasp_controlplane_api::subscribe_request::Kind;
use wasp_e2e::controlplane::{Node, TOKEN};
use wasp_e2e::wat::header_filter;
use wasp_e2e::{Cluster, Config, ControlPlane, FilterChain, Listener, Plugin, Route, Upstream};

/// Rounds measured after the first (warm-up) version.
const ROUNDS: usize = 5;

/// A chain running modules `m0..m{modules}`, the last one's header set to `round`.
fn document(up: &Upstream, modules: usize, round: usize) -> String {
    let mut chain = FilterChain::new("edge");
    for m in 0..modules {
        let plugin = Plugin::new(&format!("p{m}"), format!("m{m}@r{}", round % 2));
        chain = chain.plugin(plugin);
    }
    Config::new()
        .filter_chain(chain)
        .listener(
            Listener::new("main", "127.0.0.1:18080")
                .route(Route::prefix("/").filter_chain("edge").cluster("up")),
        )
        .cluster(Cluster::new("up").endpoint(up.addr))
        .to_string()
}

async fn channel(url: String) -> Channel {
    Endpoint::from_shared(url)
        .expect("a URL")
        .connect()
        .await
        .expect("connecting to wasp-cp")
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Waits until `n` proxies run `version`; returns when.
async fn all_acked(admin: &mut AdminClient<Channel>, n: usize, version: u64) -> Instant {
    loop {
        let proxies = admin
            .list_proxies(api::ListProxiesRequest {})
            .await
            .expect("ListProxies")
            .into_inner()
            .proxies;
        let acked = proxies
            .iter()
            .filter(|p| p.running_version == version)
            .count();
        if acked >= n {
            return Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// One simulated proxy: subscribes with the token and ACKs every version
/// at once.
async fn subscriber(url: String, node: String) {
    let token: tonic::metadata::MetadataValue<_> =
        format!("Bearer {TOKEN}").parse().expect("token");
    let mut client =
        DiscoveryClient::with_interceptor(channel(url).await, move |mut r: tonic::Request<()>| {
            r.metadata_mut().insert("authorization", token.clone());
            Ok::<_, tonic::Status>(r)
        });
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tx.send(api::SubscribeRequest {
        kind: Some(Kind::Hello(api::Hello {
            node_id: node,
            labels: [("sim".to_owned(), "yes".to_owned())].into(),
            running_version: 0,
        })),
    })
    .unwrap();
    let outbound =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
    let mut inbound = client
        .subscribe(outbound)
        .await
        .expect("subscribe")
        .into_inner();
    while let Ok(Some(update)) = inbound.message().await {
        let _ = tx.send(api::SubscribeRequest {
            kind: Some(Kind::Ack(api::Ack {
                version: update.version,
            })),
        });
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map(String::as_str).unwrap_or("simulated");
    let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(100);
    let modules: usize = args
        .iter()
        .position(|a| a == "--modules")
        .and_then(|i| args.get(i + 1))
        .and_then(|a| a.parse().ok())
        .unwrap_or(1);

    let up = Upstream::start("up").await;
    let cp = ControlPlane::start().await;
    for m in 0..modules {
        for tag in ["r0", "r1"] {
            let path = cp.dir().join(format!("m{m}-{tag}.wat"));
            std::fs::write(&path, header_filter(&format!("{m}-{tag}"))).unwrap();
            let file = path.to_str().unwrap();
            cp.ctl(&[
                "module",
                "push",
                file,
                "--name",
                &format!("m{m}"),
                "--tag",
                tag,
            ])
            .ok();
        }
    }
    let mut admin = AdminClient::new(channel(cp.url()).await);

    let mut proxies = Vec::new();
    match mode {
        "real" => {
            for i in 0..n {
                let node = Node::new(&format!("node-{i:03}"), "team=bench")
                    .listener("main", wasp_e2e::free_addr());
                proxies.push(cp.node(&node));
            }
        }
        _ => {
            for i in 0..n {
                tokio::spawn(subscriber(cp.url(), format!("sim-{i:03}")));
            }
        }
    }

    let first = cp.apply(&document(&up, modules, 0));
    all_acked(&mut admin, n, first).await;
    let mut took = Vec::new();
    for round in 1..=ROUNDS {
        let start = Instant::now();
        let version = cp.apply(&document(&up, modules, round));
        let applied = start.elapsed();
        let done = all_acked(&mut admin, n, version).await;
        took.push((done - start, applied));
    }
    took.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let (median, applied) = took[took.len() / 2];
    let rss = cp.pid().map(rss_kib).unwrap_or(0);
    println!(
        "{mode} proxies={n} modules={modules}: apply -> all ACKed median {:.1} ms (min {:.1}, max {:.1}; waspctl apply itself {:.1} ms) over {ROUNDS} versions; wasp-cp RSS {:.1} MiB",
        ms(median),
        ms(took[0].0),
        ms(took[took.len() - 1].0),
        ms(applied),
        rss as f64 / 1024.0
    );
    drop(proxies);
}
