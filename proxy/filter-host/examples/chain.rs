//! What a filter chain costs per request in wasp's Wasm host alone, without
//! sockets or HTTP: the chain's stream is started, request and response
//! headers pass through it, and the stream ends (`proxy_on_done`,
//! `proxy_on_log`, `proxy_on_delete`; each filter gets the callbacks it
//! declared it needs), on one thread, as a worker runs it.
//! Prints the mean time per request (and per filter) and the thread's CPU
//! time per request (steadier on a shared machine: time the thread spends
//! waiting for a CPU is not in it), and the `malloc` calls per request are
//! countable with a uprobe on the same loop. A
//! benchmark program: run it in release mode (`bench/chain-host.sh` builds
//! the modules and does).
//!
//! ```text
//! cargo run --release -p wasp-filter-host --example chain -- CHAIN.tsv [REQUESTS] [HEADER: VALUE ...]
//! ```
//!
//! `CHAIN.tsv` has one line per plugin, in request order: the module's
//! path, a tab, and its configuration (may be empty). With `WASP_PERF_MAP`
//! set, wasmtime writes `/tmp/perf-PID.map` so that `perf report` names the
//! filters' functions (build the modules with their name section).

#![allow(clippy::print_stdout)]

use std::error::Error;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use wasp_filter_host::{
    EngineOptions, FailurePolicy, FilterChain, FilterEngine, HeaderList, PluginSpec, StreamInfo,
};

/// Requests run unless told otherwise.
const DEFAULT_REQUESTS: u64 = 200_000;

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        return Err("usage: chain CHAIN.tsv [REQUESTS] [HEADER: VALUE ...]".into());
    };
    let requests: u64 = match args.next() {
        Some(n) => n.parse().map_err(|e| format!("REQUESTS `{n}`: {e}"))?,
        None => DEFAULT_REQUESTS,
    };
    let mut extra: HeaderList = Vec::new();
    for header in args {
        let (name, value) = header
            .split_once(':')
            .ok_or_else(|| format!("header `{header}`: expected NAME: VALUE"))?;
        extra.push((
            name.trim().to_ascii_lowercase(),
            value.trim().as_bytes().to_vec(),
        ));
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let _guard = runtime.enter();
    let engine = FilterEngine::new(EngineOptions {
        perf_map: std::env::var_os("WASP_PERF_MAP").is_some(),
        ..EngineOptions::default()
    })?;
    let mut plugins = Vec::new();
    let chain_text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    for (n, line) in chain_text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
    {
        let (module, configuration) = line.split_once('\t').unwrap_or((line, ""));
        let wasm = std::fs::read(module).map_err(|e| format!("{module}: {e}"))?;
        plugins.push(engine.load(PluginSpec {
            name: format!("p{}", n + 1),
            wasm: Bytes::from(wasm),
            configuration: Bytes::from(configuration.to_owned()),
            failure_policy: FailurePolicy::FailClosed,
            ..PluginSpec::default()
        })?);
    }
    let filters = plugins.len();
    let chain = FilterChain::new("bench", plugins);

    let mut request: HeaderList = [
        (":method", "GET"),
        (":path", "/"),
        (":authority", "127.0.0.1:8080"),
        (":scheme", "http"),
        ("user-agent", "oha/1.4.5"),
        ("accept", "*/*"),
        ("x-request-id", "0b6c1a52-3b7e-4d5e-9f3a-2f1d0a9c8e7b"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
    .collect();
    request.extend(extra);
    let response: HeaderList = [
        (":status", "200"),
        ("server", "nginx"),
        ("date", "Wed, 02 Dec 2026 12:00:00 GMT"),
        ("content-type", "application/octet-stream"),
        ("content-length", "1024"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
    .collect();

    let one = |id: u64| {
        let request = request.clone();
        let response = response.clone();
        let chain = &chain;
        async move {
            let stream = chain.start(StreamInfo {
                connection_id: id,
                request_id: "0b6c1a52-3b7e-4d5e-9f3a-2f1d0a9c8e7b".into(),
                facts: Arc::default(),
                ..StreamInfo::default()
            });
            let passed = stream.filter_request_headers(request, true).await;
            if let Err(reply) = passed {
                return Err(format!(
                    "the chain answered {}: {:?}",
                    reply.status, reply.details
                ));
            }
            let _ = stream.filter_response_headers(response, false).await;
            drop(stream);
            Ok(())
        }
    };

    // Warm up: every VM exists, caches filled.
    runtime.block_on(async {
        for id in 0..2_000 {
            one(id).await?;
        }
        Ok::<(), String>(())
    })?;
    let cpu_before = thread_cpu_ns();
    let started = Instant::now();
    runtime.block_on(async {
        for id in 0..requests {
            one(id).await?;
        }
        Ok::<(), String>(())
    })?;
    let elapsed = started.elapsed();
    let cpu = thread_cpu_ns().saturating_sub(cpu_before);
    let per_request = elapsed.as_secs_f64() * 1e9 / requests as f64;
    println!("chain                  {path} ({filters} filters)");
    println!("requests               {requests}");
    println!("per request            {:.0} ns", per_request);
    println!(
        "cpu per request        {:.0} ns",
        cpu as f64 / requests as f64
    );
    if filters > 0 {
        println!(
            "per filter             {:.0} ns",
            per_request / filters as f64
        );
    }
    Ok(())
}

/// This thread's time on a CPU so far in ns (`/proc/thread-self/schedstat`;
/// 0 where there is none).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}
