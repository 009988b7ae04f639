//! Routing end to end: every match kind, first match wins, 404 on no match,
//! weighted splits, prefix and host rewrites, direct responses and redirects.

use wasp_e2e::{Client, Upstream, Wasp, free_addr};

fn direct(name: &str, matcher: &str) -> String {
    format!(
        "      - name: {name}\n        match: {matcher}\n        direct_response: {{ status: 200, body: \"{name}\" }}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_match_kind_selects_its_route_and_the_first_match_wins() {
    let listen = free_addr();
    let upstream = Upstream::start("up").await;
    let mut routes = String::new();
    routes += &direct("host-exact", "{ authority: [api.example.com] }");
    routes += &direct("host-suffix", "{ authority: [\"*.suffix.test\"] }");
    routes += &direct("path-exact", "{ path: /exact }");
    routes += &direct("path-regex", "{ regex: \"/items/[0-9]+\" }");
    routes += &direct("method", "{ prefix: /method, method: [POST, PUT] }");
    routes += &direct(
        "header-exact",
        "{ prefix: /hdr, headers: [{ name: x-exact, exact: \"yes\" }] }",
    );
    routes += &direct(
        "header-regex",
        "{ prefix: /hdr, headers: [{ name: x-regex, regex: \"v[0-9]+\" }] }",
    );
    routes += &direct(
        "header-present",
        "{ prefix: /hdr, headers: [{ name: x-present, present: true }] }",
    );
    routes += &direct(
        "header-absent",
        "{ prefix: /hdr, headers: [{ name: x-blocker, present: false }] }",
    );
    routes += &direct(
        "query",
        "{ prefix: /query, query: [{ name: debug, regex: \"true|1\" }] }",
    );
    routes += &direct("first", "{ prefix: /first }");
    routes += &direct("first-shadowed", "{ prefix: /first }");
    routes += "      - name: forward\n        match: { prefix: /forward }\n        route: { cluster: up }\n";
    let config = format!(
        "listeners:\n  - name: main\n    address: \"{listen}\"\n    routes:\n{routes}\
         clusters:\n  - name: up\n    endpoints: [\"{}\"]\n",
        upstream.addr
    );
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
    let config = format!(
        r#"
listeners:
  - name: main
    address: "{listen}"
    routes:
      - match: {{ prefix: / }}
        route:
          weighted_clusters:
            - {{ cluster: stable, weight: 80 }}
            - {{ cluster: canary, weight: 20 }}
clusters:
  - name: stable
    endpoints: ["{}"]
  - name: canary
    endpoints: ["{}"]
"#,
        stable.addr, canary.addr
    );
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
    let config = format!(
        r#"
listeners:
  - name: main
    address: "{listen}"
    routes:
      - match: {{ prefix: /api/ }}
        route: {{ cluster: up, prefix_rewrite: /v2/, host_rewrite: backend.internal }}
      - match: {{ prefix: /strip }}
        route: {{ cluster: up, prefix_rewrite: / }}
      - match: {{ prefix: /keep }}
        route: {{ cluster: up }}
      - match: {{ path: /teapot }}
        direct_response: {{ status: 418, body: "short and stout\n" }}
      - match: {{ path: /empty }}
        direct_response: {{ status: 204 }}
      - match: {{ prefix: /old }}
        redirect: {{ scheme: https, host: new.example.com, path: /new, status: 308 }}
      - match: {{ prefix: /moved }}
        redirect: {{ path: /elsewhere, strip_query: true }}
clusters:
  - name: up
    endpoints: ["{}"]
"#,
        upstream.addr
    );
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
