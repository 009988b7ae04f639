//! Measures request latency while the control plane swaps a proxy's filter
//! chain, against the same proxy in steady state: `oha` at a fixed rate
//! with latency correction (no coordinated omission) for `--duration`
//! seconds, once with no change and once with `waspctl apply` of a new
//! chain version every `--every` milliseconds (each swap loads a new
//! plugin: the chain alternates between two modules, so every version
//! instantiates VMs). Prints p50/p99/max of both runs and their ratio.
//!
//! ```sh
//! WASP_BIN=… WASP_CP_BIN=… WASPCTL_BIN=… \
//!   cargo run -p wasp-e2e --bin cp-swap-latency -- [--rate 1000] [--duration 10] [--every 1000]
//! ```
//! Needs `oha` on the PATH (`cargo install oha`).

// A measurement program: its figures go to standard output.
#![allow(clippy::print_stdout)]

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use wasp_e2e::controlplane::{Node, within};
use wasp_e2e::wat::header_filter;
use wasp_e2e::{Cluster, Config, ControlPlane, FilterChain, Listener, Plugin, Route, Upstream};

fn document(up: &Upstream, round: usize) -> String {
    let plugin = Plugin::new("header", format!("m{}", round % 2))
        .configuration(serde_json::json!({ "round": round }));
    Config::new()
        .filter_chain(FilterChain::new("edge").plugin(plugin))
        .listener(
            Listener::new("main", "127.0.0.1:18080")
                .route(Route::prefix("/").filter_chain("edge").cluster("up")),
        )
        .cluster(Cluster::new("up").endpoint(up.addr))
        .to_string()
}

/// Latency percentiles of one oha run, in milliseconds.
struct Figures {
    requests: u64,
    errors: u64,
    /// oha's error kinds with counts (requests cut off by the end of the
    /// run count here as `aborted due to deadline`) and non-200 statuses.
    error_kinds: String,
    p50: f64,
    p99: f64,
    max: f64,
}

fn oha(url: &str, rate: u32, duration: u32) -> anyhow::Result<Figures> {
    let out = Command::new("oha")
        .args([
            "--no-tui",
            "--output-format",
            "json",
            "--latency-correction",
        ])
        .args([
            "-c",
            "50",
            "-q",
            &rate.to_string(),
            "-z",
            &format!("{duration}s"),
        ])
        .arg(url)
        .output()
        .context("running oha (cargo install oha)")?;
    if !out.status.success() {
        bail!("oha failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).context("oha's JSON")?;
    let ms = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN) * 1000.0;
    let codes = json["statusCodeDistribution"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let ok = codes.get("200").and_then(|v| v.as_u64()).unwrap_or(0);
    let all: u64 = codes.values().filter_map(|v| v.as_u64()).sum();
    let error_map = json["errorDistribution"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let failed: u64 = error_map.values().filter_map(|v| v.as_u64()).sum();
    let error_kinds = error_map
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .chain(
            codes
                .iter()
                .filter(|(code, _)| *code != "200")
                .map(|(code, n)| format!("status {code}: {n}")),
        )
        .collect::<Vec<_>>()
        .join("; ");
    Ok(Figures {
        requests: all + failed,
        errors: all - ok + failed,
        error_kinds,
        p50: ms(&json["latencyPercentiles"]["p50"]),
        p99: ms(&json["latencyPercentiles"]["p99"]),
        max: ms(&json["summary"]["slowest"]),
    })
}

fn arg(name: &str, default: u32) -> u32 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let (rate, duration, every) = (
        arg("--rate", 1000),
        arg("--duration", 10),
        arg("--every", 1000),
    );
    let up = Upstream::start("up").await;
    let cp = ControlPlane::start().await;
    for m in 0..2 {
        let path = cp.dir().join(format!("m{m}.wat"));
        std::fs::write(&path, header_filter(&format!("m{m}")))?;
        cp.ctl(&[
            "module",
            "push",
            path.to_str().unwrap(),
            "--name",
            &format!("m{m}"),
        ])
        .ok();
    }
    let listen = wasp_e2e::free_addr();
    let mut round = 0;
    cp.apply(&document(&up, round));
    let proxy = cp.node(&Node::new("bench", "app=bench").listener("main", listen));
    proxy.wait_ready().await;
    let url = format!("http://{listen}/");
    // Warm-up: connections, VMs.
    oha(&url, rate, 2)?;

    let steady = oha(&url, rate, duration)?;

    let swapping = {
        let url = url.clone();
        std::thread::spawn(move || oha(&url, rate, duration))
    };
    let start = Instant::now();
    let mut swaps = 0;
    let mut ack_ms = Vec::new();
    while start.elapsed() + Duration::from_millis(u64::from(every))
        < Duration::from_secs(u64::from(duration))
    {
        tokio::time::sleep(Duration::from_millis(u64::from(every))).await;
        round += 1;
        let applied = Instant::now();
        let version = cp.apply(&document(&up, round));
        within(Duration::from_secs(10), "the swap is ACKed", || async {
            cp.proxy_status("bench")["running_version"] == version
        })
        .await;
        ack_ms.push(applied.elapsed().as_millis());
        swaps += 1;
    }
    let swapping = swapping.join().expect("oha thread")?;
    drop(proxy);

    println!(
        "rate {rate}/s for {duration}s, 50 connections; {swaps} swaps (one every {every} ms, \
         apply → ACK {:?} ms)",
        ack_ms
    );
    println!("| run | requests | errors | p50 ms | p99 ms | max ms | error kinds |");
    println!("|---|---:|---:|---:|---:|---:|---|");
    for (name, f) in [("steady", &steady), ("swapping", &swapping)] {
        println!(
            "| {name} | {} | {} | {:.3} | {:.3} | {:.3} | {} |",
            f.requests, f.errors, f.p50, f.p99, f.max, f.error_kinds
        );
    }
    println!("p99 swapping / steady: {:.2}", swapping.p99 / steady.p99);
    Ok(())
}
