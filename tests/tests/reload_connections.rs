//! Reloads and open client connections: a connection does not pin the
//! snapshot it was accepted under, so reloads with kept-alive clients free
//! the old filter VMs and never run into the engine's instance limit; a
//! listener a reload removes drains its connections.

use std::net::SocketAddr;
use std::time::Duration;

use wasp_e2e::wat::header_filter;
use wasp_e2e::{
    Client, Cluster, Config, FilterChain, Listener, Plugin, RawConn, Route, Upstream, Wasp, WatDir,
    free_addr,
};

/// Reloads in the leak test: past the engine's 256 instances even at one
/// VM per snapshot.
const RELOADS: u64 = 300;

/// `/c` through chain `c`, whose plugin's configuration is `generation`
/// (so every generation loads new VMs), on listener `main`.
fn config(listen: SocketAddr, up: &Upstream, modules: &WatDir, generation: u64) -> Config {
    Config::new()
        .filter_chain(
            FilterChain::new("c").plugin(
                Plugin::new("p", modules.path().join("filter.wat"))
                    .configuration(serde_json::json!({ "generation": generation })),
            ),
        )
        .listener(
            Listener::new("main", listen)
                .route(Route::prefix("/c").filter_chain("c").cluster("up")),
        )
        .cluster(Cluster::new("up").endpoint(up.addr))
}

/// Sends `GET /c` on `conn` and checks the filter ran and the connection
/// stays open.
async fn get_filtered(conn: &mut RawConn, what: &str) {
    conn.get("/c", "app.test").await;
    let response = conn
        .response()
        .await
        .unwrap_or_else(|| panic!("{what}: closed"));
    assert_eq!(response.status, 200, "{what}: {}", response.text());
    assert_eq!(response.header("x-filter"), Some("gen"), "{what}");
    assert_eq!(response.header("connection"), None, "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_with_kept_alive_clients_free_old_filter_vms() {
    let listen = free_addr();
    let up = Upstream::start("up").await;
    let modules = WatDir::new();
    modules.write("filter", &header_filter("gen"));
    let wasp = Wasp::start(config(listen, &up, &modules, 0)).await;
    let rss_at_start = wasp.rss_kib();

    // One client stays on one connection across every reload; every
    // generation also gets a connection of its own that stays open.
    let mut long_lived = RawConn::connect(listen).await;
    let mut kept = Vec::new();
    for generation in 1..=RELOADS {
        let mut conn = RawConn::connect(listen).await;
        get_filtered(&mut conn, "a new connection").await;
        kept.push(conn);
        get_filtered(&mut long_lived, "the long-lived connection").await;
        wasp.write_config(config(listen, &up, &modules, generation));
        wasp.sighup();
        wasp.wait_version(generation + 1, Duration::from_secs(10))
            .await;
    }
    for (i, conn) in kept.iter_mut().enumerate() {
        get_filtered(conn, &format!("connection {i}")).await;
    }
    get_filtered(&mut long_lived, "the long-lived connection").await;

    let metrics = wasp.metrics().await;
    assert_eq!(
        metrics.sum("wasp_config_reloads_total", &[("result", "failed")]),
        0.0,
        "{}",
        wasp.log_tail(2000)
    );
    // Only the running generation's VMs are alive (at most `max_vms`).
    let vms = metrics.sum("wasp_filter_vms", &[("plugin", "p")]);
    assert!(vms <= 4.0, "{vms} live VMs after {RELOADS} reloads");
    let filters = Client::http1()
        .get(&wasp.admin_url("/filters"))
        .await
        .unwrap()
        .json();
    eprintln!(
        "{RELOADS} reloads, {} kept-alive connections: live VMs {vms}, RSS at start {} KiB, \
         now {} KiB, peak {} KiB; /filters: {}",
        kept.len() + 1,
        rss_at_start,
        wasp.rss_kib(),
        wasp.peak_rss_kib(),
        filters["filter_chains"]
    );
}

#[tokio::test]
async fn a_removed_listener_drains_its_kept_alive_connections() {
    let (kept_addr, removed_addr) = (free_addr(), free_addr());
    let up = Upstream::start("up").await;
    let listener =
        |name: &str, addr: SocketAddr| Listener::new(name, addr).route(Route::any().cluster("up"));
    let both = Config::new()
        .listener(listener("kept", kept_addr))
        .listener(listener("removed", removed_addr))
        .cluster(Cluster::new("up").endpoint(up.addr));
    let wasp = Wasp::start(both).await;
    let mut conn = RawConn::connect(removed_addr).await;
    conn.get("/", "app.test").await;
    assert_eq!(conn.response().await.unwrap().status, 200);

    wasp.write_config(
        Config::new()
            .listener(listener("kept", kept_addr))
            .cluster(Cluster::new("up").endpoint(up.addr)),
    );
    wasp.sighup();
    wasp.wait_version(2, Duration::from_secs(10)).await;
    // The idle connection of the removed listener is closed.
    assert!(
        tokio::time::timeout(Duration::from_secs(5), conn.closed())
            .await
            .expect("the removed listener's connection closes"),
    );
}
