//! Load balancing and endpoint health end to end: outlier ejection and
//! return, active health checks, the panic threshold, ring-hash affinity
//! and its stability when an endpoint leaves, least request versus round
//! robin with a slow endpoint, and endpoint weights.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::json;
use wasp_e2e::{
    Client, Cluster, Config, HealthCheck, Listener, Mode, Route, Upstream, Wasp, free_addr,
};

/// The addresses of `ups`.
fn endpoints(ups: &[&Upstream]) -> Vec<SocketAddr> {
    ups.iter().map(|u| u.addr).collect()
}

/// Listener `main` sending every request through `route` to `cluster` (named `c`).
fn one_route(listen: SocketAddr, route: Route, cluster: Cluster) -> Config {
    Config::new()
        .listener(Listener::new("main", listen).route(route.cluster("c")))
        .cluster(cluster)
}

/// GETs `path` `n` times; returns how many answers each upstream gave.
async fn spread(client: &Client, url: &str, n: usize) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for _ in 0..n {
        let resp = client.get(url).await.unwrap();
        let name = resp.header("x-upstream").unwrap_or("none").to_owned();
        *counts.entry(name).or_default() += 1;
    }
    counts
}

fn endpoint_state<'a>(dump: &'a serde_json::Value, addr: &str) -> &'a serde_json::Value {
    dump["clusters"][0]["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["address"] == addr)
        .unwrap_or_else(|| panic!("{addr} not in {dump}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_endpoint_is_ejected_then_returns() {
    let listen = free_addr();
    let bad = Upstream::start_with("bad", Mode::Status(500)).await;
    let ok1 = Upstream::start("ok1").await;
    let ok2 = Upstream::start("ok2").await;
    let cluster = Cluster::new("c")
        .endpoints(endpoints(&[&bad, &ok1, &ok2]))
        .outlier_detection(3, "2s", 50);
    let wasp = Wasp::start(one_route(listen, Route::prefix("/"), cluster)).await;
    let client = Client::http1();
    let url = format!("http://{listen}/o");

    // Round robin sends every third request to `bad`: after 3 failures
    // (within 9 requests) it is ejected.
    let counts = spread(&client, &url, 9).await;
    assert_eq!(counts.get("bad"), Some(&3), "{counts:?}");
    let ejected_at = Instant::now();
    let counts = spread(&client, &url, 60).await;
    assert_eq!(
        counts.get("bad"),
        None,
        "no traffic to the ejected endpoint: {counts:?}"
    );
    assert_eq!(
        (counts.get("ok1"), counts.get("ok2")),
        (Some(&30), Some(&30)),
        "the ejected endpoint's share spreads evenly"
    );
    assert!(
        ejected_at.elapsed() < Duration::from_secs(2),
        "checked within the ejection"
    );

    let dump = wasp.config_dump().await;
    let state = endpoint_state(&dump, &bad.addr.to_string());
    assert_eq!(state["ejected"], true, "{state}");
    assert_eq!(state["times_ejected"], 1);
    assert_eq!(
        endpoint_state(&dump, &ok1.addr.to_string())["ejected"],
        false
    );
    tokio::time::sleep(Duration::from_millis(1100)).await; // gauge refresh
    let m = wasp.metrics().await;
    assert_eq!(
        m.sum("wasp_upstream_ejections_total", &[("cluster", "c")]),
        1.0
    );
    let bad_label = bad.addr.to_string();
    let ejected_gauge = m.sum(
        "wasp_upstream_endpoint_ejected",
        &[("cluster", "c"), ("endpoint", &bad_label)],
    );
    // The gauge may already be back to 0 if the 2 s ejection just ended.
    if ejected_at.elapsed() < Duration::from_millis(1800) {
        assert_eq!(ejected_gauge, 1.0, "ejection visible in /metrics");
    }

    // After the ejection time the endpoint (now fixed) gets traffic again.
    bad.set_mode(Mode::Echo);
    tokio::time::sleep(Duration::from_millis(2200).saturating_sub(ejected_at.elapsed())).await;
    let counts = spread(&client, &url, 30).await;
    assert!(
        counts.get("bad").copied().unwrap_or(0) >= 5,
        "back in rotation: {counts:?}"
    );
    let dump = wasp.config_dump().await;
    assert_eq!(
        endpoint_state(&dump, &bad.addr.to_string())["ejected"],
        false
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_health_checks_take_endpoints_out_and_back() {
    let listen = free_addr();
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let check = HealthCheck::new("/healthz", "100ms", "500ms")
        .healthy_threshold(2)
        .unhealthy_threshold(2);
    let cluster = Cluster::new("c")
        .endpoints(endpoints(&[&a, &b]))
        .set("panic_threshold", 0)
        .health_check(check);
    let wasp = Wasp::start(one_route(listen, Route::prefix("/"), cluster)).await;
    let client = Client::http1();
    let url = format!("http://{listen}/h");
    let b_label = b.addr.to_string();
    let healthy_gauge = |m: &wasp_e2e::Metrics| {
        m.sum(
            "wasp_upstream_endpoint_healthy",
            &[("cluster", "c"), ("endpoint", &b_label)],
        )
    };

    let counts = spread(&client, &url, 20).await;
    assert_eq!(counts.get("b"), Some(&10), "{counts:?}");
    assert!(b.health_checks() >= 1, "probes reach the endpoint");

    b.set_healthy(false);
    let started = Instant::now();
    loop {
        let dump = wasp.config_dump().await;
        if endpoint_state(&dump, &b_label)["healthy"] == false {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "b never marked unhealthy"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(healthy_gauge(&wasp.metrics().await), 0.0);
    let counts = spread(&client, &url, 20).await;
    assert_eq!(
        counts.get("a"),
        Some(&20),
        "unhealthy endpoint out of rotation: {counts:?}"
    );

    b.set_healthy(true);
    let started = Instant::now();
    loop {
        let dump = wasp.config_dump().await;
        if endpoint_state(&dump, &b_label)["healthy"] == true {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "b never healthy again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(healthy_gauge(&wasp.metrics().await), 1.0);
    let counts = spread(&client, &url, 20).await;
    assert_eq!(counts.get("b"), Some(&10), "back in rotation: {counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_threshold_uses_every_endpoint_when_too_few_are_healthy() {
    let listen = free_addr();
    let ups = [
        Upstream::start("u0").await,
        Upstream::start("u1").await,
        Upstream::start("u2").await,
        Upstream::start("u3").await,
    ];
    for up in &ups[1..] {
        up.set_healthy(false);
    }
    let eps = endpoints(&ups.iter().collect::<Vec<_>>());
    let check = HealthCheck::new("/healthz", "100ms", "500ms").unhealthy_threshold(1);
    let config = Config::new()
        .listener(
            Listener::new("main", listen)
                .route(Route::prefix("/panic").cluster("panicky"))
                .route(Route::prefix("/strict").cluster("strict")),
        )
        .cluster(
            Cluster::new("panicky")
                .endpoints(eps.clone())
                .health_check(check.clone())
                .set("panic_threshold", 50),
        )
        .cluster(
            Cluster::new("strict")
                .endpoints(eps)
                .health_check(check)
                .set("panic_threshold", 20),
        );
    let wasp = Wasp::start(&config).await;
    // Wait until both clusters see three unhealthy endpoints.
    let started = Instant::now();
    loop {
        let m = wasp.metrics().await;
        let healthy = m.sum("wasp_upstream_endpoint_healthy", &[]);
        if healthy == 2.0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "health checks did not run"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let client = Client::http1();
    // 25% healthy < 50%: panic mode, every endpoint is used.
    let counts = spread(&client, &format!("http://{listen}/panic"), 40).await;
    assert_eq!(counts.len(), 4, "panic mode spreads over all: {counts:?}");
    // 25% healthy >= 20%: only the healthy one.
    let counts = spread(&client, &format!("http://{listen}/strict"), 40).await;
    assert_eq!(counts.get("u0"), Some(&40), "{counts:?}");
}

fn ring_config(listen: SocketAddr, ups: &[&Upstream]) -> Config {
    let route = Route::prefix("/").forward("hash_policy", json!([{ "header": "x-user" }]));
    let cluster = Cluster::new("c")
        .lb_policy("ring_hash")
        .endpoints(endpoints(ups));
    one_route(listen, route, cluster)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ring_hash_keeps_keys_and_moves_few_when_an_endpoint_leaves() {
    let listen = free_addr();
    let ups = [
        Upstream::start("r0").await,
        Upstream::start("r1").await,
        Upstream::start("r2").await,
        Upstream::start("r3").await,
    ];
    let all: Vec<&Upstream> = ups.iter().collect();
    let wasp = Wasp::start(ring_config(listen, &all)).await;
    let client = Client::h2c();
    let url = format!("http://{listen}/ring");

    // One key: one endpoint for 1,000 requests.
    let mut seen = HashMap::new();
    for _ in 0..1000 {
        let resp = client.get_with(&url, &[("x-user", "alice")]).await.unwrap();
        *seen
            .entry(resp.header("x-upstream").unwrap().to_owned())
            .or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 1, "one key, one endpoint: {seen:?}");

    // Many keys: spread over the endpoints, each stable.
    let keys: Vec<String> = (0..400).map(|i| format!("user-{i}")).collect();
    let mut before = HashMap::new();
    for key in &keys {
        let resp = client.get_with(&url, &[("x-user", key)]).await.unwrap();
        before.insert(key.clone(), resp.header("x-upstream").unwrap().to_owned());
    }
    let mut per_endpoint: HashMap<&str, usize> = HashMap::new();
    for name in before.values() {
        *per_endpoint.entry(name).or_default() += 1;
    }
    assert_eq!(per_endpoint.len(), 4, "keys spread: {per_endpoint:?}");

    // Remove r3 by reload: only its keys (about 1/4) move.
    wasp.write_config(ring_config(listen, &all[..3]));
    wasp.sighup();
    wasp.wait_version(2, Duration::from_secs(10)).await;
    let mut moved = 0;
    for key in &keys {
        let resp = client.get_with(&url, &[("x-user", key)]).await.unwrap();
        let now = resp.header("x-upstream").unwrap();
        assert_ne!(now, "r3", "removed endpoint gets no traffic");
        if before[key] != now {
            moved += 1;
            assert_eq!(before[key], "r3", "{key} moved from a remaining endpoint");
        }
    }
    let share = moved as f64 / keys.len() as f64;
    eprintln!(
        "ring hash: {moved}/{} keys moved after removing 1 of 4",
        keys.len()
    );
    assert!(share <= 0.25 + 0.10, "{share:.2} of keys moved");
    assert_eq!(moved, per_endpoint["r3"], "exactly r3's keys moved");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_request_avoids_a_slow_endpoint_more_than_round_robin() {
    let listen = free_addr();
    let fast = Upstream::start("fast").await;
    let slow = Upstream::start_with("slow", Mode::Delay(Duration::from_millis(150))).await;
    let eps = endpoints(&[&fast, &slow]);
    let config = Config::new()
        .listener(
            Listener::new("main", listen)
                .route(Route::prefix("/rr").cluster("rr"))
                .route(Route::prefix("/lr").cluster("lr")),
        )
        .cluster(
            Cluster::new("rr")
                .lb_policy("round_robin")
                .endpoints(eps.clone()),
        )
        .cluster(Cluster::new("lr").lb_policy("least_request").endpoints(eps));
    let _wasp = Wasp::start(&config).await;

    let mut shares = Vec::new();
    for path in ["rr", "lr"] {
        slow.reset_counts();
        fast.reset_counts();
        let client = Client::http1();
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let client = client.clone();
            let url = format!("http://{listen}/{path}");
            tasks.push(tokio::spawn(async move {
                while Instant::now() < deadline {
                    assert_eq!(client.get(&url).await.unwrap().status, 200);
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let share = slow.hits() as f64 / (slow.hits() + fast.hits()) as f64;
        eprintln!(
            "{path}: slow {} fast {} (slow share {share:.3})",
            slow.hits(),
            fast.hits()
        );
        shares.push(share);
    }
    assert!(
        (shares[0] - 0.5).abs() < 0.05,
        "round robin alternates: {}",
        shares[0]
    );
    assert!(
        shares[1] < shares[0] / 2.0,
        "least request sends measurably fewer to the slow endpoint: {} vs {}",
        shares[1],
        shares[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_weights_are_respected() {
    let listen = free_addr();
    let light = Upstream::start("light").await;
    let heavy = Upstream::start("heavy").await;
    let weighted = |cluster: Cluster| {
        cluster
            .weighted_endpoint(light.addr, 1)
            .weighted_endpoint(heavy.addr, 3)
    };
    let config = Config::new()
        .listener(
            Listener::new("main", listen)
                .route(Route::prefix("/rr").cluster("rr"))
                .route(Route::prefix("/random").cluster("random")),
        )
        .cluster(weighted(Cluster::new("rr")))
        .cluster(weighted(Cluster::new("random").lb_policy("random")));
    let _wasp = Wasp::start(&config).await;
    let client = Client::http1();
    let counts = spread(&client, &format!("http://{listen}/rr"), 400).await;
    assert_eq!(
        counts.get("heavy"),
        Some(&300),
        "weighted round robin 3:1: {counts:?}"
    );
    let counts = spread(&client, &format!("http://{listen}/random"), 2000).await;
    let heavy_share = counts.get("heavy").copied().unwrap_or(0) as f64 / 2000.0;
    assert!(
        (heavy_share - 0.75).abs() < 0.05,
        "weighted random 3:1: {counts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ring_hash_on_cookie_and_source_ip() {
    let listen = free_addr();
    let ups = [
        Upstream::start("h0").await,
        Upstream::start("h1").await,
        Upstream::start("h2").await,
    ];
    let eps = endpoints(&ups.iter().collect::<Vec<_>>());
    let config = Config::new()
        .listener(
            Listener::new("main", listen)
                .route(
                    Route::prefix("/cookie")
                        .cluster("ring")
                        .forward("hash_policy", json!([{ "cookie": "session" }])),
                )
                .route(Route::prefix("/ip").cluster("ring").forward(
                    "hash_policy",
                    json!([{ "header": "x-missing" }, { "source_ip": true }]),
                )),
        )
        .cluster(Cluster::new("ring").lb_policy("ring_hash").endpoints(eps));
    let _wasp = Wasp::start(&config).await;
    let client = Client::http1();
    let mut by_session = HashMap::new();
    for i in 0..60 {
        let session = format!("s{}", i % 20);
        let cookie = format!("theme=dark; session={session}");
        let resp = client
            .get_with(
                &format!("http://{listen}/cookie"),
                &[("cookie", cookie.as_str())],
            )
            .await
            .unwrap();
        let name = resp.header("x-upstream").unwrap().to_owned();
        let first = by_session
            .entry(session.clone())
            .or_insert_with(|| name.clone());
        assert_eq!(*first, name, "session {session} stays on one endpoint");
    }
    let distinct: std::collections::HashSet<_> = by_session.values().collect();
    assert!(
        distinct.len() >= 2,
        "sessions spread over endpoints: {by_session:?}"
    );

    // Every request comes from 127.0.0.1: one endpoint.
    let counts = spread(&client, &format!("http://{listen}/ip"), 30).await;
    assert_eq!(counts.len(), 1, "source IP affinity: {counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ejections_respect_the_cap_count_connect_failures_and_grow() {
    let listen = free_addr();
    let bad = Upstream::start_with("bad", Mode::Status(503)).await;
    let ok1 = Upstream::start("ok1").await;
    let ok2 = Upstream::start("ok2").await;
    let closed = free_addr(); // nothing listens: connect failures
    let cluster = Cluster::new("c")
        .endpoints([closed, bad.addr, ok1.addr, ok2.addr])
        .outlier_detection(2, "1s", 25);
    let wasp = Wasp::start(one_route(listen, Route::prefix("/"), cluster)).await;
    let client = Client::http1();
    let url = format!("http://{listen}/e");
    // Two rounds of round robin: both failing endpoints fail twice, but
    // 25% of four endpoints allows one ejection at a time.
    for _ in 0..8 {
        let _ = client.get(&url).await.unwrap();
    }
    let dump = wasp.config_dump().await;
    let ejected: Vec<String> = dump["clusters"][0]["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["ejected"] == true)
        .map(|e| e["address"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        ejected,
        vec![closed.to_string()],
        "connect failures eject, one at a time"
    );
    let m = wasp.metrics().await;
    assert_eq!(
        m.sum("wasp_upstream_ejections_total", &[("cluster", "c")]),
        1.0
    );
    // `bad` is still in rotation while `closed` is out.
    let counts = spread(&client, &url, 6).await;
    assert_eq!(counts.get("bad"), Some(&2), "{counts:?}");

    // After the first ejection (1 s) `closed` comes back, fails again, and
    // is ejected for twice as long (or `bad` takes the single slot first).
    tokio::time::sleep(Duration::from_millis(1200)).await;
    for _ in 0..12 {
        let _ = client.get(&url).await.unwrap();
    }
    let dump = wasp.config_dump().await;
    let states: Vec<&serde_json::Value> = dump["clusters"][0]["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["ejected"] == true)
        .collect();
    assert_eq!(states.len(), 1, "still one at a time: {dump}");
    let state = states[0];
    if state["address"] == closed.to_string() {
        assert_eq!(state["times_ejected"], 2);
        assert!(
            state["ejected_for_ms"].as_u64().unwrap() > 1000,
            "second ejection lasts 2 × base: {state}"
        );
    } else {
        assert_eq!(state["address"], bad.addr.to_string());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ring_hash_keys_move_off_an_ejected_endpoint_and_come_back() {
    let listen = free_addr();
    let ups = [
        Upstream::start("k0").await,
        Upstream::start("k1").await,
        Upstream::start("k2").await,
    ];
    let all: Vec<&Upstream> = ups.iter().collect();
    let route = Route::prefix("/").forward("hash_policy", json!([{ "header": "x-user" }]));
    let cluster = Cluster::new("c")
        .lb_policy("ring_hash")
        .endpoints(endpoints(&all))
        .outlier_detection(1, "1s", 50);
    let config = one_route(listen, route, cluster);
    let _wasp = Wasp::start(&config).await;
    let client = Client::http1();
    let url = format!("http://{listen}/k");
    let owner = client.get_with(&url, &[("x-user", "bob")]).await.unwrap();
    let owner = owner.header("x-upstream").unwrap().to_owned();
    let up = ups.iter().find(|u| u.name() == owner).unwrap();

    // One failure ejects the owner: bob moves to one other endpoint.
    let failed = client
        .get_with(&url, &[("x-user", "bob"), ("x-test-status", "500")])
        .await
        .unwrap();
    assert_eq!(failed.header("x-upstream"), Some(owner.as_str()));
    let mut elsewhere = std::collections::HashSet::new();
    for _ in 0..20 {
        let resp = client.get_with(&url, &[("x-user", "bob")]).await.unwrap();
        elsewhere.insert(resp.header("x-upstream").unwrap().to_owned());
    }
    assert_eq!(elsewhere.len(), 1, "still one endpoint: {elsewhere:?}");
    assert!(
        !elsewhere.contains(&owner),
        "moved off the ejected endpoint"
    );

    // After the ejection, bob is back on his endpoint.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let hits = up.hits();
    for _ in 0..5 {
        let resp = client.get_with(&url, &[("x-user", "bob")]).await.unwrap();
        assert_eq!(resp.header("x-upstream"), Some(owner.as_str()));
    }
    assert_eq!(up.hits(), hits + 5);
}
