//! The egress policy of outbound listeners through the real binary: a
//! request that matches no route goes to the cluster named like its host,
//! or to its original destination when the `egress` list or ALLOW_ANY lets
//! it out; under REGISTRY_ONLY (the default) anything else gets 502
//! `egress to HOST is not allowed`, counted per host and logged once per
//! host per minute. Listeners not marked `outbound` keep answering 404.

use serde_json::json;
use wasp_e2e::{Client, Cluster, Config, Listener, Resp, Route, Upstream, Wasp, free_addr};

async fn get(listen: std::net::SocketAddr, host: &str) -> Resp {
    Client::http1()
        .get_with(&format!("http://{listen}/path"), &[("host", host)])
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_only_lets_out_registry_and_allow_list_destinations_and_denies_the_rest() {
    let routed = Upstream::start("routed").await;
    let service = Upstream::start("service").await;
    let external = Upstream::start("external").await;
    let listen = free_addr();
    let edge = free_addr();
    let external_port = external.addr.port();
    let config = Config::new()
        .listener(
            Listener::new("outbound", listen)
                .set("outbound", true)
                .route(
                    Route::prefix("/")
                        .matching("authority", "routed.example")
                        .cluster("routed"),
                ),
        )
        .listener(
            Listener::new("edge", edge).route(
                Route::prefix("/")
                    .matching("authority", "routed.example")
                    .cluster("routed"),
            ),
        )
        .cluster(Cluster::new("routed").endpoint(routed.addr))
        .cluster(Cluster::new("reviews").endpoint(service.addr))
        .raw(&format!(
            "egress: {}\n",
            json!([format!("localhost:{external_port}"), "*.allowed.example"])
        ));
    let wasp = Wasp::start(config).await;

    // A route still wins.
    assert_eq!(get(listen, "routed.example").await.status, 200);
    assert_eq!(routed.hits(), 1);
    // A cluster of the registry, by the authority's host (any port).
    assert_eq!(get(listen, "reviews:9080").await.status, 200);
    assert_eq!(get(listen, "reviews").await.status, 200);
    assert_eq!(service.hits(), 2);
    // An allowed destination, forwarded to the authority's host:port.
    let allowed = get(listen, &format!("localhost:{external_port}")).await;
    assert_eq!(allowed.status, 200, "{}", allowed.text());
    assert_eq!(external.hits(), 1);

    // Outside the registry: 502, counted per host, logged once.
    for _ in 0..3 {
        let denied = get(listen, "evil.example:443").await;
        assert_eq!(denied.status, 502);
        assert_eq!(denied.text(), "egress to evil.example:443 is not allowed\n");
    }
    // The same address under a name the list does not allow is denied too.
    let by_ip = get(listen, &format!("127.0.0.1:{external_port}")).await;
    assert_eq!(by_ip.status, 502);
    assert_eq!(external.hits(), 1);
    let metrics = wasp.metrics().await;
    assert_eq!(
        metrics.sum("wasp_egress_denied_total", &[("host", "evil.example:443")]),
        3.0
    );
    assert_eq!(metrics.sum("wasp_egress_denied_total", &[]), 4.0);
    let log = wasp.log();
    assert_eq!(
        log.matches("egress denied").count(),
        2,
        "one line per host: {log}"
    );

    // A listener that is not outbound keeps its 404 for unmatched requests.
    let edge_resp = get(edge, "evil.example").await;
    assert_eq!(edge_resp.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_any_forwards_to_the_original_destination() {
    let external = Upstream::start("external").await;
    let listen = free_addr();
    let config = Config::new()
        .listener(Listener::new("outbound", listen).set("outbound", true))
        .raw("outbound_traffic_policy: ALLOW_ANY\n");
    let wasp = Wasp::start(config).await;
    let resp = get(listen, &external.addr.to_string()).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(external.hits(), 1);
    // A destination nobody listens on: the passthrough cluster's 503.
    let closed = free_addr();
    assert_eq!(get(listen, &closed.to_string()).await.status, 503);
    let metrics = wasp.metrics().await;
    assert_eq!(metrics.sum("wasp_egress_denied_total", &[]), 0.0);
}
