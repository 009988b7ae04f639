//! The process lifecycle: hot reload (SIGHUP and file change) under steady
//! traffic, invalid configurations at start and at reload, and graceful
//! drain on SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::json;
use wasp_e2e::{
    Client, Cluster, Config, FilterChain, Listener, Plugin, Route, Upstream, Wasp, free_addr,
};

/// Listener `main` sending everything to cluster `target`; one cluster
/// per upstream, named after it.
fn to_cluster(listen: SocketAddr, target: &str, ups: &[&Upstream]) -> Config {
    let listener = Listener::new("main", listen).route(Route::prefix("/").cluster(target));
    ups.iter()
        .fold(Config::new().listener(listener), |config, up| {
            config.cluster(Cluster::new(up.name()).endpoint(up.addr))
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_reload_under_load_fails_no_request() {
    let listen = free_addr();
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let c = Upstream::start("c").await;
    let wasp = Wasp::start(to_cluster(listen, "a", &[&a])).await;
    assert_eq!(wasp.version().await, 1);

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut loops = Vec::new();
    for worker in 0..4 {
        let (stop, ok, failed) = (Arc::clone(&stop), Arc::clone(&ok), Arc::clone(&failed));
        let url = format!("http://{listen}/loop/{worker}");
        loops.push(tokio::spawn(async move {
            // A fresh client now and then: new connections during reloads too.
            let mut client = Client::http1();
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                if n % 25 == 0 {
                    client = if worker % 2 == 0 {
                        Client::http1()
                    } else {
                        Client::h2c()
                    };
                }
                match client.get(&url).await {
                    Ok(resp) if resp.status == 200 => ok.fetch_add(1, Ordering::SeqCst),
                    Ok(resp) => {
                        eprintln!(
                            "request failed during reload: {} {}",
                            resp.status,
                            resp.text()
                        );
                        failed.fetch_add(1, Ordering::SeqCst)
                    }
                    Err(err) => {
                        eprintln!("request failed during reload: {err:#}");
                        failed.fetch_add(1, Ordering::SeqCst)
                    }
                };
            }
        }));
    }
    let wait_for = |name: &'static str| {
        let url = format!("http://{listen}/probe");
        async move {
            let client = Client::http1();
            for _ in 0..200 {
                if client.get(&url).await.unwrap().header("x-upstream") == Some(name) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            panic!("traffic never moved to {name}");
        }
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    // An in-flight request keeps the snapshot it started on.
    let slow = {
        let url = format!("http://{listen}/slow");
        tokio::spawn(async move {
            Client::http1()
                .get_with(&url, &[("x-test-delay-ms", "1500")])
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;

    // SIGHUP reloads even an unchanged file.
    wasp.sighup();
    wasp.wait_version(2, Duration::from_secs(10)).await;
    // A changed file is picked up without a signal.
    wasp.write_config(to_cluster(listen, "b", &[&b]));
    wasp.wait_version(3, Duration::from_secs(10)).await;
    wait_for("b").await;
    let slow = slow.await.unwrap();
    assert_eq!(slow.status, 200);
    assert_eq!(
        slow.header("x-upstream"),
        Some("a"),
        "the in-flight request finished on its snapshot"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A change plus SIGHUP.
    wasp.write_config(to_cluster(listen, "c", &[&b, &c]));
    wasp.sighup();
    wasp.wait_version(4, Duration::from_secs(10)).await;
    wait_for("c").await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    stop.store(true, Ordering::SeqCst);
    for task in loops {
        task.await.unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::SeqCst), failed.load(Ordering::SeqCst));
    eprintln!("{ok} requests during reloads, {failed} failed");
    assert!(ok > 100, "the loop ran ({ok} requests)");
    assert_eq!(failed, 0, "no request failed across reloads");
    assert!(a.hits() > 0 && b.hits() > 0 && c.hits() > 0);
    let metrics = wasp.metrics().await;
    assert!(metrics.sum("wasp_config_reloads_total", &[("result", "ok")]) >= 3.0);
    assert_eq!(
        metrics.sum("wasp_config_reloads_total", &[("result", "failed")]),
        0.0
    );
    assert!(metrics.sum("wasp_config_version", &[]) >= 4.0);
}

const BAD_CONFIG: &str = r#"
listeners:
  - name: main
    address: "127.0.0.1:1"
    routes:
      - match: { prefix: nope }
        route: { cluster: missing }
      - match: { path: /x }
        direct_response: { status: 200 }
        redirect: { path: /y }
clusters:
  - name: up
    endpoints: ["127.0.0.1:0"]
"#;

const BAD_PATHS: &[&str] = &[
    "listeners[0].routes[0].match.prefix",
    "listeners[0].routes[0].route.cluster",
    "listeners[0].routes[1]",
    "clusters[0].endpoints[0]",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_config_at_start_exits_non_zero_listing_every_error() {
    let mut wasp = Wasp::spawn(BAD_CONFIG);
    let status = wasp
        .wait_exit(Duration::from_secs(30))
        .await
        .expect("wasp exits on an invalid configuration");
    assert!(!status.success(), "exit status {status}");
    let log = wasp.log();
    for path in BAD_PATHS {
        assert!(log.contains(path), "error for {path} missing from:\n{log}");
    }
    assert!(log.contains("missing"), "names the unknown cluster:\n{log}");

    // Unknown fields are rejected with their location.
    let mut wasp = Wasp::spawn("listeners: []\nlistenres: []\n");
    let status = wasp.wait_exit(Duration::from_secs(30)).await.unwrap();
    assert!(!status.success());
    assert!(wasp.log().contains("listenres"), "{}", wasp.log());

    // `wasp validate` reports the same errors and fails.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(&file, BAD_CONFIG).unwrap();
    let output = std::process::Command::new(wasp_e2e::wasp::binary())
        .arg("validate")
        .arg(&file)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let text = String::from_utf8_lossy(&output.stderr);
    for path in BAD_PATHS {
        assert!(text.contains(path), "validate misses {path}:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_config_at_reload_keeps_the_old_one_serving() {
    let listen = free_addr();
    let a = Upstream::start("a").await;
    let with_prefix = |prefix: &str| {
        Config::new()
            .listener(Listener::new("main", listen).route(Route::prefix(prefix).cluster("a")))
            .cluster(Cluster::new("a").endpoint(a.addr))
    };
    let good = with_prefix("/");
    let wasp = Wasp::start(&good).await;
    let client = Client::http1();
    let url = format!("http://{listen}/x");
    assert_eq!(
        client.get(&url).await.unwrap().header("x-upstream"),
        Some("a")
    );

    let bad = with_prefix("nope");
    wasp.write_config(&bad);
    wasp.sighup();
    let mut failed = 0.0;
    for _ in 0..100 {
        failed = wasp
            .metrics()
            .await
            .sum("wasp_config_reloads_total", &[("result", "failed")]);
        if failed >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(failed >= 1.0, "the failed reload is counted");
    let dump = wasp.config_dump().await;
    assert_eq!(dump["version"], 1, "still the first snapshot");
    let error = dump["last_reload_error"]
        .as_str()
        .expect("last_reload_error set");
    assert!(
        error.contains("listeners[0].routes[0].match.prefix"),
        "reload error names the path: {error}"
    );
    for _ in 0..20 {
        let resp = client.get(&url).await.unwrap();
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("x-upstream"), Some("a"));
    }
    assert!(wasp.log().contains("listeners[0].routes[0].match.prefix"));

    // Fixing the file recovers.
    wasp.write_config(with_prefix("/x"));
    wasp.sighup();
    wasp.wait_version(2, Duration::from_secs(10)).await;
    assert!(wasp.config_dump().await["last_reload_error"].is_null());
    assert_eq!(client.get(&url).await.unwrap().status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_and_exits_zero() {
    let listen = free_addr();
    let a = Upstream::start("a").await;
    let config = to_cluster(listen, "a", &[&a]).raw("shutdown:\n  drain_timeout: 20s");
    let mut wasp = Wasp::start(&config).await;
    let slow = {
        let url = format!("http://{listen}/slow");
        tokio::spawn(async move {
            Client::http1()
                .get_with(&url, &[("x-test-delay-ms", "2000")])
                .await
        })
    };
    for _ in 0..200 {
        if a.in_flight() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(a.in_flight(), 1, "the slow request reached the upstream");
    wasp.sigterm();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // New connections are refused while the slow request runs, and the
    // admin server says so.
    let refused = tokio::net::TcpStream::connect(listen).await;
    assert!(refused.is_err(), "the listener is closed while draining");
    let ready = wasp_e2e::client::get(&wasp.admin_url("/ready"))
        .await
        .unwrap();
    assert_eq!((ready.status, ready.text().as_str()), (503, "draining\n"));
    assert!(
        wasp.wait_exit(Duration::from_millis(10)).await.is_none(),
        "still draining"
    );

    let resp = slow
        .await
        .unwrap()
        .expect("the in-flight request completes");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("x-upstream"), Some("a"));
    let status = wasp
        .wait_exit(Duration::from_secs(15))
        .await
        .expect("wasp exits after draining");
    assert!(status.success(), "exit status {status}");
    assert!(wasp.log().contains("drained"), "{}", wasp.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_adds_and_removes_listeners() {
    let first = free_addr();
    let second = free_addr();
    let listener = |name: &str, addr: SocketAddr, body: &str| {
        Listener::new(name, addr).route(Route::any().direct(200, body))
    };
    let wasp = Wasp::start(Config::new().listener(listener("one", first, "one"))).await;
    let client = Client::http1();
    assert_eq!(
        client
            .get(&format!("http://{first}/"))
            .await
            .unwrap()
            .text(),
        "one"
    );
    assert!(tokio::net::TcpStream::connect(second).await.is_err());

    // Add a second listener: both serve, each with its own routes.
    wasp.write_config(
        Config::new()
            .listener(listener("one", first, "one again"))
            .listener(listener("two", second, "two")),
    );
    wasp.sighup();
    wasp.wait_version(2, Duration::from_secs(10)).await;
    assert_eq!(
        client
            .get(&format!("http://{first}/"))
            .await
            .unwrap()
            .text(),
        "one again"
    );
    assert_eq!(
        client
            .get(&format!("http://{second}/"))
            .await
            .unwrap()
            .text(),
        "two"
    );

    // Remove the first: its port closes, the second keeps serving.
    wasp.write_config(Config::new().listener(listener("two", second, "two")));
    wasp.sighup();
    wasp.wait_version(3, Duration::from_secs(10)).await;
    let mut closed = false;
    for _ in 0..50 {
        if tokio::net::TcpStream::connect(first).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(closed, "the removed listener's port is closed");
    assert_eq!(
        Client::http1()
            .get(&format!("http://{second}/"))
            .await
            .unwrap()
            .text(),
        "two"
    );

    // A listener whose port is taken fails the reload; the rest keeps serving.
    let blocker = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = blocker.local_addr().unwrap();
    wasp.write_config(
        Config::new()
            .listener(listener("two", second, "two"))
            .listener(listener("three", taken, "three")),
    );
    wasp.sighup();
    let mut error = None;
    for _ in 0..100 {
        if let Some(e) = wasp.config_dump().await["last_reload_error"].as_str() {
            error = Some(e.to_owned());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let error = error.expect("the reload failed");
    assert!(
        error.contains("three") && error.contains(&taken.to_string()),
        "{error}"
    );
    assert_eq!(wasp.version().await, 3);
    assert_eq!(
        Client::http1()
            .get(&format!("http://{second}/"))
            .await
            .unwrap()
            .text(),
        "two"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_only_idle_connections_exits_at_once() {
    let listen = free_addr();
    let a = Upstream::start("a").await;
    let config = to_cluster(listen, "a", &[&a]).raw("shutdown:\n  drain_timeout: 30s");
    let mut wasp = Wasp::start(&config).await;
    // Idle keep-alive connections, HTTP/1.1 and HTTP/2.
    let h1 = Client::http1();
    let h2 = Client::h2c();
    assert_eq!(
        h1.get(&format!("http://{listen}/")).await.unwrap().status,
        200
    );
    assert_eq!(
        h2.get(&format!("http://{listen}/")).await.unwrap().status,
        200
    );
    let started = std::time::Instant::now();
    wasp.sigterm();
    let status = wasp
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("idle connections do not hold the drain");
    assert!(status.success(), "exit status {status}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "exited after {:?}",
        started.elapsed()
    );
    drop((h1, h2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_line_help_validate_and_sigint() {
    let run = |args: &[&str]| {
        std::process::Command::new(wasp_e2e::wasp::binary())
            .args(args)
            .output()
            .unwrap()
    };
    for args in [&["--help"][..], &["run", "--help"], &["validate", "--help"]] {
        let output = run(args);
        assert!(output.status.success(), "wasp {args:?}");
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(text.contains("Usage:"), "wasp {args:?}: {text}");
    }
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yaml");
    std::fs::write(
        &good,
        "listeners:\n  - name: a\n    address: \"127.0.0.1:1\"\n    routes:\n      - direct_response: { status: 200 }\n",
    )
    .unwrap();
    let output = run(&["validate", good.to_str().unwrap()]);
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("ok"));

    // SIGINT drains like SIGTERM.
    let listen = free_addr();
    let a = Upstream::start("a").await;
    let mut wasp = Wasp::start(to_cluster(listen, "a", &[&a])).await;
    wasp.signal("INT");
    let status = wasp
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("exits on SIGINT");
    assert!(status.success(), "exit status {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unchanged_clusters_keep_their_pools_across_reloads() {
    let listen = free_addr();
    let a = Upstream::start("a").await;
    let config = to_cluster(listen, "a", &[&a]);
    let wasp = Wasp::start(&config).await;
    let client = Client::http1();
    let url = format!("http://{listen}/pool");
    for _ in 0..5 {
        assert_eq!(client.get(&url).await.unwrap().status, 200);
    }
    assert_eq!(a.connections(), 1, "one pooled upstream connection");
    for version in 2..=3 {
        wasp.sighup();
        wasp.wait_version(version, Duration::from_secs(10)).await;
        for _ in 0..5 {
            assert_eq!(client.get(&url).await.unwrap().status, 200);
        }
    }
    assert_eq!(
        a.connections(),
        1,
        "the pool survived reloads of an unchanged cluster"
    );

    // A changed cluster gets a new pool.
    let changed = Config::new()
        .listener(Listener::new("main", listen).route(Route::prefix("/").cluster("a")))
        .cluster(Cluster::new("a").connect_timeout("2s").endpoint(a.addr));
    wasp.write_config(changed);
    wasp.sighup();
    wasp.wait_version(4, Duration::from_secs(10)).await;
    for _ in 0..5 {
        assert_eq!(client.get(&url).await.unwrap().status, 200);
    }
    assert_eq!(a.connections(), 2, "a changed cluster connects anew");
}

/// `--workers 1` runs everything on one thread: slow requests still overlap,
/// a Wasm filter runs, a reload applies, and SIGTERM drains and exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_worker_serves_concurrently_reloads_and_drains() {
    let listen = free_addr();
    let a = Upstream::start("a").await;
    let module = wasp_e2e::filter_module("wasp_filter_template");
    let config = |value: &str| {
        let plugin = Plugin::new("add-header", &module)
            .configuration(json!({ "header": "x-served-by", "value": value }));
        Config::new()
            .filter_chain(FilterChain::new("edge").plugin(plugin))
            .listener(
                Listener::new("main", listen)
                    .route(Route::prefix("/").filter_chain("edge").cluster("a")),
            )
            .cluster(Cluster::new("a").endpoint(a.addr))
    };
    let mut wasp = Wasp::start_with_args(config("one"), &["--workers", "1"]).await;
    let client = Client::http1();
    let url = format!("http://{listen}/slow");

    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (client, url) = (client.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            client.get_with(&url, &[("x-test-delay-ms", "300")]).await
        }));
    }
    for task in tasks {
        let resp = task.await.unwrap().unwrap();
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("x-served-by"), Some("one"));
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "20 requests of 300 ms took {took:?}: they did not overlap"
    );

    let version = wasp.version().await;
    wasp.write_config(config("two"));
    wasp.sighup();
    wasp.wait_version(version + 1, Duration::from_secs(20))
        .await;
    let resp = client.get(&url).await.unwrap();
    assert_eq!(resp.header("x-served-by"), Some("two"));

    wasp.sigterm();
    let status = wasp
        .wait_exit(Duration::from_secs(15))
        .await
        .expect("wasp exits after SIGTERM");
    assert!(status.success(), "exit status {status}");
}
