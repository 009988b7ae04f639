//! Hot reload of filter chains through the real `wasp` binary: a changed
//! module takes effect, a bad one is rejected while the old chain serves,
//! unchanged modules are not compiled again, and no request fails.

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
