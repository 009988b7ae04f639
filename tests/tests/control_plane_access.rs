//! Who may talk to the control plane, end to end through the real `wasp-cp`,
//! `waspctl` and `wasp`: a proxy's subscription needs the token even on
//! loopback (a wrong or missing one is refused, the proxy keeps trying and
//! serves nothing, and no proxy list shows it), and `wasp-cp --open-reads`
//! decides which reads need the token.

use std::net::SocketAddr;
use std::time::Duration;

use wasp_e2e::controlplane::{Node, TOKEN, within};
use wasp_e2e::{Client, Config, ControlPlane, Listener, Route, free_addr};

fn document(listen: SocketAddr) -> String {
    Config::new()
        .listener(Listener::new("main", listen).route(Route::prefix("/").direct(200, "pushed")))
        .to_string()
}

/// The node ids `waspctl -o json proxies` lists.
fn listed(cp: &ControlPlane) -> Vec<String> {
    cp.ctl(&["-o", "json", "proxies"])
        .json()
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|p| p["node_id"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_without_the_right_token_is_refused_on_loopback_and_keeps_trying() {
    let cp = ControlPlane::start().await;
    let (wrong_listen, none_listen, good_listen) = (free_addr(), free_addr(), free_addr());
    cp.apply(&document(free_addr()));
    let wrong = cp.node(
        &Node::new("wrong", "")
            .token("not-the-token")
            .listener("main", wrong_listen),
    );
    let none = cp.node(
        &Node::new("none", "")
            .token("")
            .listener("main", none_listen),
    );

    // Refused again and again: the proxy logs why and retries.
    let rejected = "wasp_cp_subscriptions_rejected_total{reason=\"unauthenticated\"}";
    within(Duration::from_secs(20), "repeated refusals", || async {
        cp.metric(rejected).await >= 4
            && wrong.log().matches("subscribe: invalid token").count() >= 2
            && none
                .log()
                .matches("subscribe: this request needs a token")
                .count()
                >= 2
    })
    .await;
    // Neither is a proxy of the control plane, nor serves anything.
    assert!(listed(&cp).is_empty(), "{:?}", listed(&cp));
    for listen in [wrong_listen, none_listen] {
        assert!(
            Client::http1()
                .get(&format!("http://{listen}/"))
                .await
                .is_err(),
            "{listen} serves"
        );
    }
    assert!(!wrong.log().contains("subscribed to the control plane"));

    // The right token on the same control plane is accepted.
    let good = cp.node(&Node::new("good", "").listener("main", good_listen));
    good.wait_ready().await;
    within(Duration::from_secs(10), "the good proxy listed", || async {
        listed(&cp) == ["good"]
    })
    .await;
    assert!(wrong.log().matches("subscribe: invalid token").count() >= 2);
    assert!(listed(&cp).iter().all(|n| n == "good"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_reads_none_needs_the_token_for_every_read_from_loopback_too() {
    let cp = ControlPlane::start_with(&["--open-reads", "none"]).await;
    for read in [&["proxies"][..], &["module", "ls"], &["get", "versions"]] {
        let out = cp.ctl_with_env(read, &[]);
        assert_eq!(out.code, Some(1), "{out:?}");
        assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
        assert!(out.stderr.contains("this request needs a token"), "{out:?}");
        let out = cp.ctl(read);
        assert_eq!(out.code, Some(0), "{out:?}");
    }
    let http = Client::http1();
    let anonymous = http.get(&cp.http_url("/proxies")).await.unwrap();
    assert_eq!(anonymous.status, 401, "{}", anonymous.text());
    let bearer = format!("Bearer {TOKEN}");
    let with_token = http
        .get_with(&cp.http_url("/proxies"), &[("authorization", &bearer)])
        .await
        .unwrap();
    assert_eq!(with_token.status, 200, "{}", with_token.text());
    assert_eq!(with_token.json(), serde_json::json!([]));
}

#[test]
fn a_bad_open_reads_value_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(wasp_e2e::controlplane::cp_binary())
        .args([
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--open-reads",
            "all",
        ])
        .env("WASP_TOKEN", TOKEN)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("'all': expected loopback, any or none"),
        "{stderr}"
    );
}
