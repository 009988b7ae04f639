//! Retries end to end: a flaky cluster recovered by retries, the retry
//! budget and `max_retries` bounding retries, `x-wasp-attempt-count`,
//! retries moving to another endpoint, and the retry conditions.

use std::time::Duration;

use serde_json::json;
use wasp_e2e::{Client, Cluster, Config, Listener, Mode, Retry, Route, Upstream, Wasp, free_addr};

/// The addresses of `ups`.
fn endpoints<'a>(ups: &'a [&Upstream]) -> impl Iterator<Item = std::net::SocketAddr> + 'a {
    ups.iter().map(|u| u.addr)
}

/// Sends `total` GETs to `url` with `concurrency` workers; returns the responses.
async fn load(
    url: String,
    total: usize,
    concurrency: usize,
    headers: &'static [(&'static str, &'static str)],
) -> Vec<wasp_e2e::Resp> {
    let client = Client::http1();
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let (client, url) = (client.clone(), url.clone());
        let count = total / concurrency + usize::from(worker < total % concurrency);
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::with_capacity(count);
            for _ in 0..count {
                out.push(client.get_with(&url, headers).await.unwrap());
            }
            out
        }));
    }
    let mut all = Vec::with_capacity(total);
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flaky_cluster_with_three_retries_succeeds_99_percent() {
    let listen = free_addr();
    // Half the cluster answers 503: one endpoint always, one sometimes;
    // the others are healthy. Without retries about 40% of requests fail.
    let broken = Upstream::start_with("broken", Mode::Status(503)).await;
    let flaky = Upstream::start_with(
        "flaky",
        Mode::Flaky {
            probability: 0.5,
            status: 503,
        },
    )
    .await;
    let good = Upstream::start("good").await;
    let eps: Vec<_> = endpoints(&[&broken, &flaky, &good]).collect();
    let config = Config::new()
        .listener(
            Listener::new("main", listen)
                .route(
                    Route::prefix("/retry").cluster("with-retries").retry(
                        Retry::new(3)
                            .on(&["5xx"])
                            .base_interval("1ms")
                            .max_interval("5ms"),
                    ),
                )
                .route(Route::prefix("/plain").cluster("without-retries")),
        )
        .cluster(
            Cluster::new("with-retries")
                .lb_policy("random")
                .endpoints(eps.clone())
                .retry_budget(25, 4),
        )
        .cluster(
            Cluster::new("without-retries")
                .lb_policy("random")
                .endpoints(eps),
        );
    let wasp = Wasp::start(&config).await;

    let plain = load(format!("http://{listen}/plain"), 300, 4, &[]).await;
    let plain_ok = plain.iter().filter(|r| r.status == 200).count();
    assert!(
        plain_ok < 240,
        "the cluster really is flaky without retries ({plain_ok}/300 ok)"
    );

    let responses = load(format!("http://{listen}/retry"), 1000, 4, &[]).await;
    let ok = responses.iter().filter(|r| r.status == 200).count();
    let retried = responses
        .iter()
        .filter(|r| r.header("x-wasp-attempt-count") != Some("1"))
        .count();
    eprintln!("with 3 retries: {ok}/1000 ok, {retried} needed a retry; without: {plain_ok}/300");
    let failures: Vec<(u16, Option<&str>, Option<&str>)> = responses
        .iter()
        .filter(|r| r.status != 200)
        .map(|r| {
            (
                r.status,
                r.header("x-wasp-attempt-count"),
                r.header("x-upstream"),
            )
        })
        .collect();
    assert!(
        ok >= 990,
        "only {ok}/1000 succeeded with retries; failures: {failures:?}"
    );
    assert!(retried > 200, "retries happened ({retried})");
    for resp in &responses {
        let attempts: u32 = resp
            .header("x-wasp-attempt-count")
            .expect("attempt count on every response")
            .parse()
            .unwrap();
        assert!((1..=4).contains(&attempts));
    }
    let m = wasp.metrics().await;
    let retries = m.sum(
        "wasp_upstream_rq_retry_total",
        &[("cluster", "with-retries")],
    );
    let attempts_sum: f64 = responses
        .iter()
        .map(|r| {
            r.header("x-wasp-attempt-count")
                .unwrap()
                .parse::<f64>()
                .unwrap()
                - 1.0
        })
        .sum();
    assert_eq!(
        retries, attempts_sum,
        "retry counter matches the attempts seen"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_budget_and_max_retries_bound_retries() {
    let listen = free_addr();
    let down = Upstream::start_with("down", Mode::Status(503)).await;
    let retry = || Retry::new(3).base_interval("1ms");
    let config = Config::new()
        .listener(
            Listener::new("main", listen)
                .route(Route::prefix("/budget").cluster("budgeted").retry(retry()))
                .route(Route::prefix("/capped").cluster("capped").retry(retry())),
        )
        .cluster(
            Cluster::new("budgeted")
                .endpoint(down.addr)
                .retry_budget(20, 2),
        )
        .cluster(
            Cluster::new("capped")
                .endpoint(down.addr)
                .circuit_breakers(json!({ "max_retries": 2 })),
        );
    let wasp = Wasp::start(&config).await;
    // 40 concurrent requests to an upstream that answers 503 after 300 ms:
    // unbounded, each would be retried 3 times (120 retries).
    const DELAY: &[(&str, &str)] = &[("x-test-delay-ms", "300")];
    for (path, cluster) in [("budget", "budgeted"), ("capped", "capped")] {
        let responses = load(format!("http://{listen}/{path}"), 40, 40, DELAY).await;
        assert!(responses.iter().all(|r| r.status == 503));
        let m = wasp.metrics().await;
        let retries = m.sum("wasp_upstream_rq_retry_total", &[("cluster", cluster)]);
        let denied = m.sum(
            "wasp_upstream_rq_overflow_total",
            &[("cluster", cluster), ("breaker", "max_retries")],
        );
        let once = responses
            .iter()
            .filter(|r| r.header("x-wasp-attempt-count") == Some("1"))
            .count();
        eprintln!("{cluster}: {retries} retries, {denied} denied, {once} requests never retried");
        assert!(
            retries < 60.0,
            "{cluster}: retries bounded ({retries} of 120)"
        );
        assert!(
            retries >= 2.0,
            "{cluster}: some retries allowed ({retries})"
        );
        assert!(
            denied >= 10.0,
            "{cluster}: denied retries counted ({denied})"
        );
        assert!(
            once >= 10,
            "{cluster}: requests answered without retry ({once})"
        );
    }
    let hits = down.hits();
    assert!(hits < 80 + 120, "upstream spared ({hits} attempts)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempt_count_header_and_retries_go_to_another_endpoint() {
    let listen = free_addr();
    let bad = Upstream::start_with("bad", Mode::Status(503)).await;
    let good = Upstream::start("good").await;
    let config = Config::new()
        .listener(
            Listener::new("main", listen)
                .route(
                    Route::prefix("/two")
                        .cluster("pair")
                        .retry(Retry::new(1).base_interval("1ms")),
                )
                .route(
                    Route::prefix("/one")
                        .cluster("single")
                        .retry(Retry::new(2).base_interval("1ms")),
                )
                .route(Route::prefix("/none").cluster("pair")),
        )
        .cluster(
            Cluster::new("pair")
                .lb_policy("random")
                .endpoints(endpoints(&[&bad, &good])),
        )
        .cluster(Cluster::new("single").endpoint(bad.addr));
    let _wasp = Wasp::start(&config).await;
    let client = Client::http1();

    // Random choice would send half the retries back to `bad`; excluding
    // the endpoint already tried makes every request succeed.
    let mut second_attempts = 0;
    for _ in 0..200 {
        let resp = client.get(&format!("http://{listen}/two")).await.unwrap();
        assert_eq!(resp.status, 200, "retried on the other endpoint");
        assert_eq!(resp.header("x-upstream"), Some("good"));
        let attempts = resp.header("x-wasp-attempt-count").unwrap();
        // The upstream sees the attempt number too.
        assert_eq!(resp.json()["headers"]["x-wasp-attempt-count"], attempts);
        if attempts == "2" {
            second_attempts += 1;
        } else {
            assert_eq!(attempts, "1");
        }
    }
    assert_eq!(
        bad.hits(),
        second_attempts,
        "each retry followed one failure on bad"
    );
    assert!(
        second_attempts > 50,
        "random picked bad first often ({second_attempts})"
    );

    // One endpoint: retries go back to it; the last answer is returned.
    bad.reset_counts();
    let resp = client.get(&format!("http://{listen}/one")).await.unwrap();
    assert_eq!(resp.status, 503);
    assert_eq!(resp.header("x-wasp-attempt-count"), Some("3"));
    assert_eq!(bad.hits(), 3);

    // No retry policy: no header, no retry.
    bad.reset_counts();
    let mut failures = 0;
    for _ in 0..40 {
        let resp = client.get(&format!("http://{listen}/none")).await.unwrap();
        assert!(resp.header("x-wasp-attempt-count").is_none());
        failures += usize::from(resp.status == 503);
    }
    assert_eq!(bad.hits(), failures as u64);
    assert!(failures > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_conditions_follow_retry_on() {
    let listen = free_addr();
    let target = Upstream::start("target").await;
    let resetter = Upstream::start_with("resetter", Mode::Reset).await;
    let closed = wasp_e2e::free_addr(); // nothing listens here
    let retry = |on: &[&str]| Retry::new(1).on(on).base_interval("1ms");
    let config = Config::new()
        .listener(
            Listener::new("main", listen)
                .route(
                    Route::prefix("/gateway")
                        .cluster("target")
                        .retry(retry(&["gateway-error"])),
                )
                .route(Route::prefix("/codes").cluster("target").retry(
                    retry(&["retriable-status-codes", "retriable-4xx"]).status_codes(&[418]),
                ))
                .route(
                    Route::prefix("/connect")
                        .cluster("dead-first")
                        .retry(retry(&["connect-failure"])),
                )
                .route(
                    Route::prefix("/reset")
                        .cluster("reset-first")
                        .retry(retry(&["reset"])),
                )
                .route(
                    Route::prefix("/noreset")
                        .cluster("reset-only")
                        .retry(retry(&["connect-failure"])),
                ),
        )
        .cluster(Cluster::new("target").endpoint(target.addr))
        .cluster(
            Cluster::new("dead-first")
                .endpoints([closed, target.addr])
                .connect_timeout("1s"),
        )
        .cluster(Cluster::new("reset-first").endpoints([resetter.addr, target.addr]))
        .cluster(Cluster::new("reset-only").endpoint(resetter.addr));
    let _wasp = Wasp::start(&config).await;
    let client = Client::http1();
    let attempts = |resp: &wasp_e2e::Resp| resp.header("x-wasp-attempt-count").unwrap().to_owned();
    let get = |path: &str, status: &str| {
        let client = client.clone();
        let url = format!("http://{listen}{path}");
        let status = status.to_owned();
        async move {
            client
                .get_with(&url, &[("x-test-status", status.as_str())])
                .await
                .unwrap()
        }
    };

    // gateway-error: 502/503/504 yes, 500 no
    let resp = get("/gateway", "502").await;
    assert_eq!((resp.status, attempts(&resp).as_str()), (502, "2"));
    let resp = get("/gateway", "500").await;
    assert_eq!((resp.status, attempts(&resp).as_str()), (500, "1"));
    // retriable-status-codes and retriable-4xx
    let resp = get("/codes", "418").await;
    assert_eq!((resp.status, attempts(&resp).as_str()), (418, "2"));
    let resp = get("/codes", "409").await;
    assert_eq!((resp.status, attempts(&resp).as_str()), (409, "2"));
    let resp = get("/codes", "503").await;
    assert_eq!((resp.status, attempts(&resp).as_str()), (503, "1"));
    // connect-failure: the dead endpoint is skipped on retry
    for _ in 0..4 {
        let resp = client
            .get(&format!("http://{listen}/connect"))
            .await
            .unwrap();
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(resp.header("x-upstream"), Some("target"));
    }
    // reset: a connection closed before the response is retried elsewhere
    for _ in 0..4 {
        let resp = client.get(&format!("http://{listen}/reset")).await.unwrap();
        assert_eq!(resp.status, 200, "{}", resp.text());
    }
    assert!(resetter.hits() >= 1);
    // ... but only when `reset` is asked for
    let resp = client
        .get(&format!("http://{listen}/noreset"))
        .await
        .unwrap();
    assert_eq!(resp.status, 503);
    assert_eq!(attempts(&resp), "1");
    tokio::time::sleep(Duration::from_millis(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_up_to_the_buffer_limit_are_replayed() {
    use http::Request;
    let listen = free_addr();
    let bad = Upstream::start_with("bad", Mode::Status(503)).await;
    let good = Upstream::start("good").await;
    let config = Config::new()
        .listener(
            Listener::new("main", listen).route(
                Route::prefix("/")
                    .cluster("pair")
                    .retry(Retry::new(1).base_interval("1ms").buffer_limit(1024)),
            ),
        )
        .cluster(Cluster::new("pair").endpoints(endpoints(&[&bad, &good])));
    let _wasp = Wasp::start(&config).await;
    let client = Client::http1();
    let post = |size: usize| {
        Request::post(format!("http://{listen}/upload"))
            .header("content-length", size.to_string())
            .body(wasp_e2e::client::full(vec![b'b'; size]))
            .unwrap()
    };
    // Round robin alternates; over four requests two start on `bad`.
    let mut replayed = 0;
    for _ in 0..4 {
        let resp = client.request(post(1000)).await.unwrap();
        assert_eq!(resp.status, 200, "small bodies are retried");
        assert_eq!(resp.json()["body_len"], 1000, "the whole body was replayed");
        replayed += usize::from(resp.header("x-wasp-attempt-count") == Some("2"));
    }
    assert!(replayed >= 1);
    // Bodies over the limit stream through and cannot be replayed.
    let mut not_retried = 0;
    for _ in 0..4 {
        let resp = client.request(post(4096)).await.unwrap();
        if resp.status == 503 {
            assert_eq!(resp.header("x-wasp-attempt-count"), Some("1"));
            not_retried += 1;
        } else {
            assert_eq!(resp.json()["body_len"], 4096);
        }
    }
    assert!(not_retried >= 1, "large bodies are not retried");
    assert_eq!(
        bad.body_bytes(),
        1000 * replayed as u64 + 4096 * not_retried as u64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_upstream_resets_and_per_try_timeouts_are_retried_on_one_connection() {
    let listen = free_addr();
    let resetter = Upstream::start_with("resetter", Mode::Reset).await;
    let hung = Upstream::start_with("hung", Mode::Hang).await;
    let good = Upstream::start("good").await;
    let retry = Retry::new(1).on(&["reset"]).base_interval("1ms");
    let config = Config::new()
        .listener(
            Listener::new("main", listen)
                .route(
                    Route::prefix("/reset")
                        .cluster("reset-first")
                        .retry(retry.clone()),
                )
                .route(
                    Route::prefix("/slow")
                        .cluster("hung-first")
                        .retry(retry.per_try_timeout("200ms")),
                ),
        )
        .cluster(
            Cluster::new("reset-first")
                .http2()
                .endpoints([resetter.addr, good.addr]),
        )
        .cluster(
            Cluster::new("hung-first")
                .http2()
                .endpoints([hung.addr, good.addr]),
        );
    let _wasp = Wasp::start(&config).await;
    let client = Client::http1();
    for path in ["reset", "slow"] {
        for _ in 0..6 {
            let resp = client
                .get(&format!("http://{listen}/{path}"))
                .await
                .unwrap();
            assert_eq!(resp.status, 200, "{path}: {}", resp.text());
            assert_eq!(resp.header("x-upstream"), Some("good"));
        }
    }
    assert!(resetter.hits() >= 3 && hung.hits() >= 3);
    // Abandoned HTTP/2 streams are cancelled; their connection stays.
    for _ in 0..100 {
        if hung.in_flight() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(hung.in_flight(), 0, "timed-out streams cancelled");
    assert_eq!(
        hung.connections(),
        1,
        "one multiplexed connection survived the timeouts"
    );
}
