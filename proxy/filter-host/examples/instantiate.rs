//! What loading a filter module costs in wasp's Wasm host: the module's
//! size, its compilation (cold, and from the sha256 cache), the time to
//! create one VM (instantiate, `proxy_on_context_create`,
//! `proxy_on_vm_start`, `proxy_on_configure`) and the linear memory and
//! resident memory each VM takes. A benchmark program: run it in release
//! mode (`bench/instantiate.sh` builds the modules and does).
//!
//! ```text
//! cargo run --release -p wasp-filter-host --example instantiate -- FILE.wasm [CONFIGURATION] [VMS]
//! ```

#![allow(clippy::print_stdout)]

use std::error::Error;
use std::time::{Duration, Instant};

use bytes::Bytes;
use wasp_filter_host::{EngineOptions, FilterEngine, PluginSpec};

/// VMs created (and kept alive) for the per-VM figures unless told otherwise.
const DEFAULT_VMS: usize = 100;

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        return Err("usage: instantiate FILE.wasm [CONFIGURATION] [VMS]".into());
    };
    let configuration = args.next().unwrap_or_default();
    let vms: usize = match args.next() {
        Some(n) => n.parse().map_err(|e| format!("VMS `{n}`: {e}"))?,
        None => DEFAULT_VMS,
    };
    let wasm = Bytes::from(std::fs::read(&path).map_err(|e| format!("{path}: {e}"))?);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let _guard = runtime.enter();

    let engine = FilterEngine::new(EngineOptions {
        max_instances: (vms + 1) as u32,
        ..EngineOptions::default()
    })?;
    let started = Instant::now();
    engine.compile(&wasm)?;
    let cold = started.elapsed();
    let started = Instant::now();
    engine.compile(&wasm)?;
    let cached = started.elapsed();

    let spec = PluginSpec {
        name: "measured".into(),
        wasm: wasm.clone(),
        configuration: Bytes::from(configuration),
        ..PluginSpec::default()
    };
    let rss_before = rss_kib();
    let mut times = Vec::with_capacity(vms);
    let mut plugins = Vec::with_capacity(vms);
    for _ in 0..vms {
        let started = Instant::now();
        plugins.push(engine.load(spec.clone())?);
        times.push(started.elapsed());
    }
    let rss_after = rss_kib();
    times.sort_unstable();
    let linear: u64 = plugins.iter().map(|p| p.status().memory_bytes).sum();

    println!("module                 {path}");
    println!(
        "size                   {} bytes ({:.1} KiB)",
        wasm.len(),
        wasm.len() as f64 / 1024.0
    );
    println!("compile, cold          {:.1} ms", ms(cold));
    println!("compile, cached        {:.1} µs", us(cached));
    println!(
        "new VM, median         {:.1} µs  (instantiate + context create + vm_start + configure)",
        us(times[vms / 2])
    );
    println!(
        "new VM, p99            {:.1} µs",
        us(times[(vms * 99 / 100).min(vms - 1)])
    );
    println!(
        "linear memory / VM     {:.0} KiB",
        linear as f64 / 1024.0 / vms as f64
    );
    println!(
        "RSS / VM               {:.0} KiB  ({vms} VMs alive)",
        (rss_after.saturating_sub(rss_before)) as f64 / vms as f64
    );
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Resident memory of this process.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0)
}
