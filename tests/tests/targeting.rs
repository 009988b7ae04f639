//! Which proxies get which configuration, end to end through the real
//! `wasp-cp`, `waspctl` and `wasp`: a version applied with `--selector`
//! reaches only the proxies whose labels match while the others keep
//! theirs, and twenty proxies on one control plane (sharing this machine
//! through per-node `--admin-address` and `--listener-address`) all
//! converge on each new version.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use wasp_e2e::controlplane::{Node, within};
use wasp_e2e::wat::header_filter;
use wasp_e2e::{
    Client, Cluster, Config, ControlPlane, FilterChain, Listener, Plugin, Route, Upstream,
};

/// Everything to `up` through a chain running `module`.
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

/// Pushes a filter adding `x-filter: value` as module `value`.
fn push_header_module(cp: &ControlPlane, value: &str) {
    let path = cp.dir().join(format!("{value}.wat"));
    std::fs::write(&path, header_filter(value)).unwrap();
    cp.ctl(&["module", "push", path.to_str().unwrap(), "--name", value])
        .ok();
}

async fn x_filter(listen: SocketAddr) -> String {
    let resp = Client::http1()
        .get(&format!("http://{listen}/"))
        .await
        .expect("GET through wasp");
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.header("x-filter").unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_selector_delivers_a_configuration_only_to_matching_proxies() {
    let up = Upstream::start("up").await;
    let cp = ControlPlane::start().await;
    for value in ["everyone", "web-only"] {
        push_header_module(&cp, value);
    }
    let (web_listen, db_listen) = (wasp_e2e::free_addr(), wasp_e2e::free_addr());
    let web = cp.node(&Node::new("web-1", "app=web,zone=a").listener("main", web_listen));
    let db = cp.node(&Node::new("db-1", "app=db,zone=a").listener("main", db_listen));

    let v1 = cp.apply(&document(&up, "everyone"));
    web.wait_ready().await;
    db.wait_ready().await;
    assert_eq!(x_filter(web_listen).await, "everyone");
    assert_eq!(x_filter(db_listen).await, "everyone");

    let v2 = cp.apply_for(&document(&up, "web-only"), "app=web");
    within(Duration::from_secs(10), "web-1 ACKs version 2", || async {
        cp.proxy_status("web-1")["running_version"] == v2
    })
    .await;
    assert_eq!(x_filter(web_listen).await, "web-only");
    // Give a wrong delivery time to show up before checking it did not.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let db_status = cp.proxy_status("db-1");
    assert_eq!(db_status["last_version"], v1, "{db_status}");
    assert_eq!(x_filter(db_listen).await, "everyone");

    let versions = cp.ctl(&["get", "versions"]);
    let row = versions
        .ok()
        .lines()
        .find(|l| l.starts_with(&v2.to_string()))
        .unwrap()
        .to_owned();
    assert!(row.contains("app=web"), "{row}");

    // A newer version for every proxy reaches both again.
    let v3 = cp.apply(&document(&up, "everyone"));
    within(Duration::from_secs(10), "both ACK version 3", || async {
        cp.proxy_status("web-1")["running_version"] == v3
            && cp.proxy_status("db-1")["running_version"] == v3
    })
    .await;
    assert_eq!(x_filter(web_listen).await, "everyone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_proxies_on_one_control_plane_all_converge() {
    const PROXIES: usize = 20;
    let up = Upstream::start("up").await;
    let cp = ControlPlane::start().await;
    push_header_module(&cp, "first");
    push_header_module(&cp, "second");
    let listens: Vec<SocketAddr> = (0..PROXIES).map(|_| wasp_e2e::free_addr()).collect();
    let proxies: Vec<_> = listens
        .iter()
        .enumerate()
        .map(|(i, listen)| {
            cp.node(&Node::new(&format!("node-{i:02}"), "team=e2e").listener("main", *listen))
        })
        .collect();
    let all_running = |version: u64| {
        let cp = &cp;
        move || async move {
            let all = cp.ctl(&["-o", "json", "proxies"]).json();
            let all = all.as_array().cloned().unwrap_or_default();
            all.len() == PROXIES && all.iter().all(|p| p["running_version"] == version)
        }
    };

    let v1 = cp.apply(&document(&up, "first"));
    within(
        Duration::from_secs(60),
        "20 proxies on version 1",
        all_running(v1),
    )
    .await;
    for proxy in &proxies {
        proxy.wait_ready().await;
    }

    let start = Instant::now();
    let v2 = cp.apply(&document(&up, "second"));
    within(
        Duration::from_secs(30),
        "20 proxies on version 2",
        all_running(v2),
    )
    .await;
    eprintln!(
        "20 proxies ACKed version 2 {:?} after apply",
        start.elapsed()
    );
    for listen in &listens {
        assert_eq!(x_filter(*listen).await, "second");
    }
}
