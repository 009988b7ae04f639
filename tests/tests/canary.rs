//! Canary rollouts end to end through the real `wasp-cp`, `waspctl` and
//! `wasp`: a canary version that traps is rolled back automatically while
//! every request of the stable version succeeds; a healthy canary gets
//! its share of requests, the proxy's reported counts match what clients
//! saw, a newer version supersedes a rollout, and a rollout continues
//! across a `wasp-cp` restart (SIGKILL) until it is promoted; bad canary
//! configurations are refused with their paths; a file configuration
//! splits requests the same way.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::json;
use wasp_e2e::controlplane::{Node, within};
use wasp_e2e::wat::{header_filter, wat};
use wasp_e2e::{Client, Cluster, Config, ControlPlane, FilterChain, Listener, Plugin, Route};
use wasp_e2e::{Upstream, Wasp, free_addr};

/// Traps in `proxy_on_request_headers`: every request it sees fails.
fn trap_filter() -> String {
    wat(
        "",
        r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    unreachable)"#,
    )
}

/// Everything to `up` through chain `edge`: plugin `header` running
/// `module`, with `canary` when given.
fn document(up: &Upstream, module: &str, canary: Option<serde_json::Value>) -> String {
    let mut plugin = Plugin::new("header", module);
    if let Some(canary) = canary {
        plugin = plugin.set("canary", canary);
    }
    Config::new()
        .filter_chain(FilterChain::new("edge").plugin(plugin))
        .listener(
            Listener::new("main", "127.0.0.1:18080")
                .route(Route::prefix("/").filter_chain("edge").cluster("up")),
        )
        .cluster(Cluster::new("up").endpoint(up.addr))
        .to_string()
}

fn push(cp: &ControlPlane, name: &str, text: &str) {
    let path = cp.dir().join(format!("{name}.wat"));
    std::fs::write(&path, text).unwrap();
    cp.ctl(&["module", "push", path.to_str().unwrap(), "--name", name])
        .ok();
}

/// A proxy on `listen` reporting canary counts every 200 ms.
fn start_proxy(cp: &ControlPlane, listen: SocketAddr) -> Wasp {
    cp.node(
        &Node::new("node-1", "app=web")
            .listener("main", listen)
            .args(&["--report-interval", "200ms"]),
    )
}

/// One response: status, `x-filter` and body.
type Outcome = (u16, String, String);

/// `count` GETs through the proxy, `tasks` at a time.
async fn requests(listen: SocketAddr, tasks: usize, count: usize) -> Vec<Outcome> {
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let n = count / tasks + usize::from(t < count % tasks);
            tokio::spawn(async move {
                let client = Client::http1();
                let mut out = Vec::with_capacity(n);
                for _ in 0..n {
                    let resp = client
                        .get(&format!("http://{listen}/"))
                        .await
                        .expect("GET through wasp");
                    let filter = resp.header("x-filter").unwrap_or_default().to_owned();
                    out.push((resp.status, filter, resp.text()));
                }
                out
            })
        })
        .collect();
    let mut all = Vec::new();
    for handle in handles {
        all.extend(handle.await.unwrap());
    }
    all
}

/// `waspctl -o json get rollout ID`.
fn rollout(cp: &ControlPlane, id: &str) -> serde_json::Value {
    cp.ctl(&["-o", "json", "get", "rollout", id]).json()[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trapping_canary_is_rolled_back_while_the_stable_version_keeps_serving() {
    let up = Upstream::start("up").await;
    let cp = ControlPlane::start().await;
    push(&cp, "stable", &header_filter("stable"));
    push(&cp, "trapper", &trap_filter());
    let canary = json!({"module": "trapper", "percent": 20,
        "rollout": {"healthy_period": "1h", "max_error_percent": 5, "min_requests": 10}});
    let version = cp.apply(&document(&up, "stable", Some(canary)));
    let id = format!("{version}:edge/header");
    let listen = free_addr();
    let proxy = start_proxy(&cp, listen);
    proxy.wait_ready().await;
    assert_eq!(rollout(&cp, &id)["state"], "running");

    // Traffic until the control plane rolls the canary back.
    let start = Instant::now();
    let mut outcomes = Vec::new();
    while rollout(&cp, &id)["state"] == "running" {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "not rolled back: {}",
            rollout(&cp, &id)
        );
        outcomes.extend(requests(listen, 4, 40).await);
    }
    // Every request that ran the stable version succeeded; the others are
    // the canary's fail-closed replies.
    let stable_ok = outcomes
        .iter()
        .filter(|(s, f, _)| *s == 200 && f == "stable")
        .count();
    let canary_failed = outcomes
        .iter()
        .filter(|(s, _, b)| *s == 503 && b.contains("filter plugin `header` failed"))
        .count();
    assert_eq!(stable_ok + canary_failed, outcomes.len(), "{outcomes:?}");
    assert!(
        canary_failed > 0 && stable_ok > canary_failed,
        "{stable_ok} {canary_failed}"
    );

    let r = rollout(&cp, &id);
    assert_eq!(r["state"], "rolled_back", "{r}");
    assert!(r["canary"]["traps"].as_u64().unwrap() >= 10, "{r}");
    assert!(r["canary"]["errors"].as_u64().unwrap() >= 10, "{r}");
    assert_eq!(r["stable"]["errors"], 0, "{r}");
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .starts_with("canary trapper rolled back: error rate 100.0%"),
        "{r}"
    );
    let back = version + 1;
    assert_eq!(r["result_version"], back);
    let versions = cp.ctl(&["-o", "json", "get", "versions"]).json();
    let last = versions.as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["version"].as_u64(), &last["author"]),
        (Some(back), &json!("rollout"))
    );
    assert!(
        last["message"]
            .as_str()
            .unwrap()
            .starts_with(&format!("rollout {id}: canary trapper rolled back")),
        "{last}"
    );

    within(
        Duration::from_secs(10),
        "the proxy runs the rollback",
        || async { cp.proxy_status("node-1")["running_version"] == back },
    )
    .await;
    for (status, filter, body) in requests(listen, 4, 100).await {
        assert_eq!((status, filter.as_str()), (200, "stable"), "{body}");
    }

    // Where it stands, per proxy and as a table.
    let status = cp.proxy_status("node-1");
    let part = &status["rollouts"][0];
    assert_eq!(
        (part["id"].as_str(), part["state"].as_str()),
        (Some(&*id), Some("rolled_back"))
    );
    assert!(part["canary"]["traps"].as_u64().unwrap() >= 10, "{status}");
    let table = cp.ctl(&["proxies"]);
    assert!(
        table.ok().contains(&format!("{id} rolled_back canary ")),
        "{table:?}"
    );
    let table = cp.ctl(&["get", "rollout"]);
    let row = table.ok().lines().nth(1).unwrap_or_default().to_owned();
    for cell in [
        &*id,
        "stable",
        "trapper",
        "20%",
        "rolled_back",
        &format!("v{back}"),
    ] {
        assert!(row.contains(cell), "{cell} missing from {row}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_canary_gets_its_share_and_is_promoted_across_a_control_plane_restart() {
    let up = Upstream::start("up").await;
    let mut cp = ControlPlane::start().await;
    push(&cp, "v1", &header_filter("v1"));
    push(&cp, "v2", &header_filter("v2"));
    let split = json!({"module": "v2", "percent": 25,
        "rollout": {"healthy_period": "1h", "max_error_percent": 1, "min_requests": 50}});
    let first = cp.apply(&document(&up, "v1", Some(split)));
    let first_id = format!("{first}:edge/header");
    let listen = free_addr();
    let proxy = start_proxy(&cp, listen);
    proxy.wait_ready().await;

    // The split: about a quarter of 1000 requests run v2, and the counts
    // the proxy reported are exactly what the clients saw.
    let outcomes = requests(listen, 8, 1000).await;
    assert!(outcomes.iter().all(|(s, _, _)| *s == 200), "{outcomes:?}");
    let v2 = outcomes.iter().filter(|(_, f, _)| f == "v2").count();
    let v1 = outcomes.iter().filter(|(_, f, _)| f == "v1").count();
    assert_eq!(v1 + v2, 1000);
    assert!((200..=300).contains(&v2), "v2 served {v2} of 1000");
    within(
        Duration::from_secs(10),
        "every request reported",
        || async {
            let r = rollout(&cp, &first_id);
            r["canary"]["requests"].as_u64().unwrap_or(0)
                + r["stable"]["requests"].as_u64().unwrap_or(0)
                == 1000
        },
    )
    .await;
    let r = rollout(&cp, &first_id);
    assert_eq!(r["canary"]["requests"], v2 as u64, "{r}");
    assert_eq!(r["state"], "running");
    assert!(
        r["reason"].as_str().unwrap().starts_with("healthy for "),
        "{r}"
    );

    // A newer version for the same proxies supersedes it and starts its own.
    let quick = json!({"module": "v2", "percent": 50,
        "rollout": {"healthy_period": "3s", "max_error_percent": 1, "min_requests": 20}});
    let second = cp.apply(&document(&up, "v1", Some(quick)));
    let second_id = format!("{second}:edge/header");
    assert_eq!(rollout(&cp, &first_id)["state"], "superseded");
    within(
        Duration::from_secs(10),
        "the proxy runs the second rollout",
        || async { cp.proxy_status("node-1")["running_version"] == second },
    )
    .await;
    let outcomes = requests(listen, 4, 40).await;
    assert!(outcomes.iter().all(|(s, _, _)| *s == 200), "{outcomes:?}");

    // wasp-cp killed and restarted: the rollout carries on from the store
    // and the proxies' reports until the canary is promoted.
    cp.restart().await;
    assert_eq!(rollout(&cp, &second_id)["state"], "running");
    let start = Instant::now();
    while rollout(&cp, &second_id)["state"] == "running" {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "not promoted: {}",
            rollout(&cp, &second_id)
        );
        let outcomes = requests(listen, 4, 20).await;
        assert!(outcomes.iter().all(|(s, _, _)| *s == 200), "{outcomes:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = rollout(&cp, &second_id);
    assert_eq!(r["state"], "promoted", "{r}");
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .starts_with("canary v2 promoted: healthy for 3s"),
        "{r}"
    );
    let promoted = second + 1;
    assert_eq!(r["result_version"], promoted);
    let config = cp.ctl(&["get", "config"]);
    assert!(config.ok().contains("module: v2"), "{config:?}");
    assert!(!config.ok().contains("canary"), "{config:?}");
    within(
        Duration::from_secs(15),
        "the proxy runs the promotion",
        || async { cp.proxy_status("node-1")["running_version"] == promoted },
    )
    .await;
    for (status, filter, _) in requests(listen, 4, 100).await {
        assert_eq!((status, filter.as_str()), (200, "v2"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_canary_configurations_are_refused_with_their_paths() {
    let up = Upstream::start("up").await;
    let cp = ControlPlane::start().await;
    push(&cp, "v1", &header_filter("v1"));
    let path = cp.dir().join("bad.yaml");
    let bad = json!({"module": "v9", "percent": 0,
        "rollout": {"max_error_percent": 100, "min_requests": 0}});
    std::fs::write(&path, document(&up, "v1", Some(bad))).unwrap();
    let out = cp.ctl(&["apply", "-f", path.to_str().unwrap()]);
    assert_eq!(out.code, Some(1), "{out:?}");
    for line in [
        "waspctl: 3 configuration error(s):",
        "  filter_chains[0].plugins[0].canary.percent: must be greater than 0 and less than 100, not 0",
        "  filter_chains[0].plugins[0].canary.rollout.max_error_percent: must be at least 0 and less than 100, not 100",
        "  filter_chains[0].plugins[0].canary.rollout.min_requests: must be at least 1",
    ] {
        assert!(
            out.stderr.lines().any(|l| l == line),
            "{line:?} missing: {out:?}"
        );
    }
    // Valid otherwise, but the canary's module is not in the registry.
    let missing = json!({"module": "v9", "percent": 5});
    std::fs::write(&path, document(&up, "v1", Some(missing))).unwrap();
    let out = cp.ctl(&["apply", "--dry-run", "-f", path.to_str().unwrap()]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.contains(
            "filter_chains[0].plugins[0].canary.module: no module v9@latest in the registry"
        ),
        "{out:?}"
    );
    assert_eq!(cp.ctl(&["-o", "json", "get", "rollout"]).json(), json!([]));
    let out = cp.ctl(&["get", "rollout", "1:edge/header"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_eq!(out.stderr, "waspctl: no rollout 1:edge/header\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_configuration_splits_requests_and_shows_the_canary_in_filters() {
    let up = Upstream::start("up").await;
    let dir = wasp_e2e::wat::WatDir::new();
    let stable = dir.write("stable", &header_filter("stable"));
    let canary = dir.write("canary", &header_filter("canary"));
    let config = Config::new()
        .filter_chain(FilterChain::new("edge").plugin(
            Plugin::new("header", &stable).set("canary", json!({"module": canary, "percent": 40})),
        ))
        .listener(
            Listener::new("main", free_addr())
                .route(Route::prefix("/").filter_chain("edge").cluster("up")),
        )
        .cluster(Cluster::new("up").endpoint(up.addr));
    let wasp = Wasp::start(config).await;
    let listen = wasp.config_dump().await["config"]["listeners"][0]["address"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let outcomes = requests(listen, 4, 500).await;
    assert!(outcomes.iter().all(|(s, _, _)| *s == 200), "{outcomes:?}");
    let canaries = outcomes.iter().filter(|(_, f, _)| f == "canary").count();
    assert!(
        (150..=250).contains(&canaries),
        "canary served {canaries} of 500"
    );
    let filters = Client::http1()
        .get(&wasp.admin_url("/filters"))
        .await
        .unwrap()
        .json();
    let shown = &filters["filter_chains"][0]["canary"];
    assert_eq!(
        (&shown["plugin"], &shown["percent"]),
        (&json!("header"), &json!(40.0)),
        "{filters}"
    );
    assert_eq!(shown["traps"], 0, "{filters}");
}
