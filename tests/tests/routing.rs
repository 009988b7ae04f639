//! Routing end to end: every match kind, first match wins, 404 on no match,
//! weighted splits, prefix and host rewrites, direct responses and redirects.

use serde_json::json;
use wasp_e2e::{Client, Cluster, Config, Listener, Route, Upstream, Wasp, free_addr};

/// A route `name` answering its own name.
fn direct(name: &str, route: Route) -> Route {
    route.name(name).direct(200, name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_match_kind_selects_its_route_and_the_first_match_wins() {
    let listen = free_addr();
    let upstream = Upstream::start("up").await;
    let header = |name: &str, condition: &str, value: serde_json::Value| {
        Route::prefix("/hdr").matching("headers", json!([{ "name": name, condition: value }]))
    };
    let config = Config::new()
        .listener(
            Listener::new("main", listen)
                .route(direct(
                    "host-exact",
                    Route::any().matching("authority", ["api.example.com"]),
                ))
                .route(direct(
                    "host-suffix",
                    Route::any().matching("authority", ["*.suffix.test"]),
                ))
                .route(direct("path-exact", Route::path("/exact")))
                .route(direct("path-regex", Route::regex("/items/[0-9]+")))
                .route(direct(
                    "method",
                    Route::prefix("/method").matching("method", ["POST", "PUT"]),
                ))
                .route(direct(
                    "header-exact",
                    header("x-exact", "exact", json!("yes")),
                ))
                .route(direct(
                    "header-regex",
                    header("x-regex", "regex", json!("v[0-9]+")),
                ))
                .route(direct(
                    "header-present",
                    header("x-present", "present", json!(true)),
                ))
                .route(direct(
                    "header-absent",
                    header("x-blocker", "present", json!(false)),
                ))
                .route(direct(
                    "query",
                    Route::prefix("/query")
                        .matching("query", json!([{ "name": "debug", "regex": "true|1" }])),
                ))
                .route(direct("first", Route::prefix("/first")))
                .route(direct("first-shadowed", Route::prefix("/first")))
                .route(Route::prefix("/forward").name("forward").cluster("up")),
        )
        .cluster(Cluster::new("up").endpoint(upstream.addr));
    let wasp = Wasp::start(&config).await;
    let client = Client::http1();
    let url = |path: &str| format!("http://{listen}{path}");

    let route_of = |resp: wasp_e2e::Resp| {
        if resp.status == 404 {
            "404".to_owned()
        } else {
            assert_eq!(resp.status, 200, "{}", resp.text());
            resp.text()
        }
    };
    let get = |path: &'static str, headers: Vec<(&'static str, &'static str)>| {
        let client = client.clone();
        let url = url(path);
        async move { route_of(client.get_with(&url, &headers).await.unwrap()) }
    };

    // authority: exact (port ignored) and *.suffix (subdomains only)
    assert_eq!(
        get("/x", vec![("host", "api.example.com")]).await,
        "host-exact"
    );
    assert_eq!(
        get("/x", vec![("host", "api.example.com:8080")]).await,
        "host-exact"
    );
    assert_eq!(
        get("/x", vec![("host", "a.suffix.test")]).await,
        "host-suffix"
    );
    assert_eq!(
        get("/x", vec![("host", "a.b.suffix.test")]).await,
        "host-suffix"
    );
    assert_eq!(get("/x", vec![("host", "suffix.test")]).await, "404");
    assert_eq!(get("/x", vec![("host", "other.example.com")]).await, "404");
    // path: exact and regex (whole path)
    assert_eq!(get("/exact", vec![]).await, "path-exact");
    assert_eq!(get("/exact?q=1", vec![]).await, "path-exact");
    assert_eq!(get("/exact/more", vec![]).await, "404");
    assert_eq!(get("/items/42", vec![]).await, "path-regex");
    assert_eq!(get("/items/42x", vec![]).await, "404");
    assert_eq!(get("/items/abc", vec![]).await, "404");
    // method
    let post = client
        .request(
            http::Request::post(url("/method"))
                .body(wasp_e2e::client::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(route_of(post), "method");
    assert_eq!(get("/method", vec![]).await, "404");
    // headers: exact, regex, present, absent (in route order)
    assert_eq!(
        get("/hdr", vec![("x-exact", "yes"), ("x-blocker", "1")]).await,
        "header-exact"
    );
    assert_eq!(
        get(
            "/hdr",
            vec![("x-exact", "no"), ("x-regex", "v12"), ("x-blocker", "1")]
        )
        .await,
        "header-regex"
    );
    assert_eq!(
        get(
            "/hdr",
            vec![("x-regex", "v12x"), ("x-present", ""), ("x-blocker", "1")]
        )
        .await,
        "header-present"
    );
    assert_eq!(get("/hdr", vec![]).await, "header-absent");
    assert_eq!(get("/hdr", vec![("x-blocker", "1")]).await, "404");
    // query parameters
    assert_eq!(get("/query?a=b&debug=1", vec![]).await, "query");
    assert_eq!(get("/query?debug=true", vec![]).await, "query");
    assert_eq!(get("/query?debug=yes", vec![]).await, "404");
    assert_eq!(get("/query", vec![]).await, "404");
    // first match wins
    assert_eq!(get("/first/x", vec![]).await, "first");
    // forwarding to a cluster
    let resp = client.get(&url("/forward/a?b=c")).await.unwrap();
    assert_eq!(resp.status, 200);
    let echo = resp.json();
    assert_eq!(echo["name"], "up");
    assert_eq!(echo["path"], "/forward/a");
    assert_eq!(echo["query"], "b=c");

    // no match: 404 with a body naming what did not match
    let resp = client.get(&url("/nowhere")).await.unwrap();
    assert_eq!(resp.status, 404);
    assert!(
        resp.text().contains("no route matched") && resp.text().contains("/nowhere"),
        "404 body: {}",
        resp.text()
    );
    let metrics = wasp.metrics().await;
    assert!(
        metrics.sum(
            "wasp_requests_total",
            &[("listener", "main"), ("code", "404")]
        ) >= 10.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_clusters_split_within_five_percent() {
    let listen = free_addr();
    let stable = Upstream::start("stable").await;
    let canary = Upstream::start("canary").await;
    let config = Config::new()
        .listener(
            Listener::new("main", listen)
                .route(Route::prefix("/").weighted(&[("stable", 80), ("canary", 20)])),
        )
        .cluster(Cluster::new("stable").endpoint(stable.addr))
        .cluster(Cluster::new("canary").endpoint(canary.addr));
    let _wasp = Wasp::start(&config).await;
    let client = Client::http1();
    let total = 2000;
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let client = client.clone();
        let url = format!("http://{listen}/split/{worker}");
        tasks.push(tokio::spawn(async move {
            let mut canary = 0;
            for _ in 0..total / 8 {
                let resp = client.get(&url).await.unwrap();
                assert_eq!(resp.status, 200);
                if resp.header("x-upstream") == Some("canary") {
                    canary += 1;
                }
            }
            canary
        }));
    }
    let mut canary_count = 0;
    for task in tasks {
        canary_count += task.await.unwrap();
    }
    let share = canary_count as f64 / total as f64;
    assert!(
        (share - 0.20).abs() <= 0.05,
        "canary share {share:.3} is not 20% ± 5%"
    );
    assert_eq!(stable.hits() + canary.hits(), total as u64);
    assert_eq!(canary.hits(), canary_count as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefix_and_host_rewrite_direct_response_and_redirect() {
    let listen = free_addr();
    let upstream = Upstream::start("up").await;
    let config = Config::new()
        .listener(
            Listener::new("main", listen)
                .route(
                    Route::prefix("/api/")
                        .cluster("up")
                        .forward("prefix_rewrite", "/v2/")
                        .forward("host_rewrite", "backend.internal"),
                )
                .route(Route::prefix("/strip").cluster("up").forward("prefix_rewrite", "/"))
                .route(Route::prefix("/keep").cluster("up"))
                .route(Route::path("/teapot").direct(418, "short and stout\n"))
                .route(Route::path("/empty").set("direct_response", json!({ "status": 204 })))
                .route(Route::prefix("/old").set(
                    "redirect",
                    json!({ "scheme": "https", "host": "new.example.com", "path": "/new", "status": 308 }),
                ))
                .route(
                    Route::prefix("/moved")
                        .set("redirect", json!({ "path": "/elsewhere", "strip_query": true })),
                ),
        )
        .cluster(Cluster::new("up").endpoint(upstream.addr));
    let _wasp = Wasp::start(&config).await;
    let client = Client::http1();
    let url = |path: &str| format!("http://{listen}{path}");

    let echo = client
        .get_with(&url("/api/users/7?x=1"), &[("host", "public.example.com")])
        .await
        .unwrap()
        .json();
    assert_eq!(echo["path"], "/v2/users/7");
    assert_eq!(echo["query"], "x=1");
    assert_eq!(echo["host"], "backend.internal");

    let echo = client.get(&url("/strip/a/b")).await.unwrap().json();
    assert_eq!(echo["path"], "/a/b");
    let echo = client.get(&url("/strip")).await.unwrap().json();
    assert_eq!(echo["path"], "/");
    let echo = client
        .get_with(&url("/keep/me"), &[("host", "keep.example.com")])
        .await
        .unwrap()
        .json();
    assert_eq!(echo["path"], "/keep/me");
    assert_eq!(
        echo["host"], "keep.example.com",
        "host kept without a rewrite"
    );

    let resp = client.get(&url("/teapot")).await.unwrap();
    assert_eq!(resp.status, 418);
    assert_eq!(resp.text(), "short and stout\n");
    let resp = client.get(&url("/empty")).await.unwrap();
    assert_eq!(resp.status, 204);
    assert!(resp.body.is_empty());

    let resp = client
        .get_with(&url("/old/page?a=1"), &[("host", "site.test")])
        .await
        .unwrap();
    assert_eq!(resp.status, 308);
    assert_eq!(
        resp.header("location"),
        Some("https://new.example.com/new?a=1")
    );
    let resp = client
        .get_with(&url("/moved?a=1"), &[("host", "site.test:81")])
        .await
        .unwrap();
    assert_eq!(resp.status, 301);
    assert_eq!(
        resp.header("location"),
        Some("http://site.test:81/elsewhere")
    );
    assert_eq!(
        upstream.hits(),
        4,
        "only forwarded requests reach the upstream"
    );
}
