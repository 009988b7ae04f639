//! Hot reload of filter chains through the real `wasp` binary: a changed
//! module takes effect, a bad one is rejected while the old chain serves,
//! unchanged modules are not compiled again, and no request fails; with
//! `--compiled-cache-dir` a restart compiles nothing.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use wasp_e2e::wat::{header_filter, unknown_import_filter, upstream_saw};
use wasp_e2e::{
    Client, Cluster, Config, FilterChain, Listener, Plugin, Route, Upstream, Wasp, WatDir,
    free_addr,
};

/// Routes `/c` through chain `c` running `module`, and `/keep` through
/// chain `keep` running `first`.
fn config(listen: SocketAddr, up: &Upstream, modules: &WatDir, module: &str) -> Config {
    Config::new()
        .filter_chain(FilterChain::new("c").plugin(Plugin::new(
            "p",
            modules.path().join(format!("{module}.wat")),
        )))
        .filter_chain(
            FilterChain::new("keep").plugin(Plugin::new("k", modules.path().join("first.wat"))),
        )
        .listener(
            Listener::new("main", listen)
                .route(Route::prefix("/c").filter_chain("c").cluster("up"))
                .route(Route::prefix("/keep").filter_chain("keep").cluster("up")),
        )
        .cluster(Cluster::new("up").endpoint(up.addr))
}

/// What the upstream saw of a GET of `path`.
async fn saw(listen: SocketAddr, path: &str) -> String {
    let resp = Client::http1()
        .get(&format!("http://{listen}{path}"))
        .await
        .unwrap();
    upstream_saw(&resp)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_swap_chains_reject_bad_modules_and_reuse_compiled_ones() {
    let listen = free_addr();
    let up = Upstream::start("up").await;
    let modules = WatDir::new();
    modules.write("first", &header_filter("first"));
    modules.write("second", &header_filter("second"));
    modules.write("bad", &unknown_import_filter());
    let wasp = Wasp::start(config(listen, &up, &modules, "first")).await;
    assert_eq!(saw(listen, "/c").await, "x-filter=first\nbody=");
    let filters = |wasp: &Wasp| {
        let url = wasp.admin_url("/filters");
        async move { Client::http1().get(&url).await.unwrap().json() }
    };
    let compiled = filters(&wasp).await["compiled_modules"].clone();
    assert_eq!(compiled, 1, "both chains share one compiled module");

    // Requests keep succeeding while the configuration changes underneath.
    let load = tokio::spawn(async move {
        let client = Client::http1();
        let mut failures = 0;
        for _ in 0..400 {
            match client.get(&format!("http://{listen}/keep")).await {
                Ok(resp)
                    if resp.status == 200 && upstream_saw(&resp) == "x-filter=first\nbody=" => {}
                _ => failures += 1,
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        failures
    });

    let wait_for = |check: fn(&serde_json::Value, &str) -> bool, what: &'static str| {
        let wasp = &wasp;
        async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let dump = wasp.config_dump().await;
                let body = saw(listen, "/c").await;
                if check(&dump, &body) {
                    return dump;
                }
                assert!(Instant::now() < deadline, "timed out waiting for {what}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };

    // A module with an unknown import rejects the whole reload; the old chain serves.
    wasp.write_config(config(listen, &up, &modules, "bad"));
    let dump = wait_for(
        |d, _| d["last_reload_error"].is_string(),
        "the reload error",
    )
    .await;
    let error = dump["last_reload_error"].as_str().unwrap();
    assert!(
        error.contains("filter_chains[0].plugins[0].module"),
        "{error}"
    );
    assert!(error.contains("env.proxy_no_such_call"), "{error}");
    assert_eq!(saw(listen, "/c").await, "x-filter=first\nbody=");

    // A changed module takes effect; the unchanged one is not recompiled.
    wasp.write_config(config(listen, &up, &modules, "second"));
    wait_for(|_, body| body == "x-filter=second\nbody=", "the new module").await;
    assert_eq!(filters(&wasp).await["compiled_modules"], 2);

    assert_eq!(load.await.unwrap(), 0, "no request failed during reloads");
}

/// With `--compiled-cache-dir`, a restarted proxy loads the compiled module
/// from disk (compiling nothing), and a damaged entry is compiled again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_loads_compiled_modules_from_the_disk_cache() {
    let listen = free_addr();
    let up = Upstream::start("up").await;
    let modules = WatDir::new();
    modules.write("first", &header_filter("first"));
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().join("compiled");
    let args = ["--compiled-cache-dir", cache_dir.to_str().unwrap()];
    let compiled = |wasp: &Wasp| {
        let url = wasp.admin_url("/filters");
        async move { Client::http1().get(&url).await.unwrap().json()["compiled_modules"].clone() }
    };
    let entries = || -> Vec<std::path::PathBuf> {
        let mut entries: Vec<_> = std::fs::read_dir(&cache_dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
            .collect();
        entries.sort();
        entries
    };

    let mut wasp = Wasp::start_with_args(config(listen, &up, &modules, "first"), &args).await;
    assert_eq!(compiled(&wasp).await, 1);
    assert_eq!(entries().len(), 1, "one compiled module on disk");
    wasp.sigterm();
    wasp.wait_exit(Duration::from_secs(10))
        .await
        .expect("exits");

    let mut wasp = Wasp::start_with_args(config(listen, &up, &modules, "first"), &args).await;
    assert_eq!(compiled(&wasp).await, 0, "loaded from disk, not compiled");
    assert_eq!(saw(listen, "/c").await, "x-filter=first\nbody=");
    wasp.sigterm();
    wasp.wait_exit(Duration::from_secs(10))
        .await
        .expect("exits");

    // A damaged entry is dropped and the module compiled (and cached) again.
    let entry = entries().remove(0);
    std::fs::write(&entry, b"not machine code").unwrap();
    let wasp = Wasp::start_with_args(config(listen, &up, &modules, "first"), &args).await;
    assert_eq!(compiled(&wasp).await, 1);
    assert_eq!(saw(listen, "/c").await, "x-filter=first\nbody=");
    assert!(std::fs::read(&entry).unwrap().len() > 100, "rewritten");
}
