//! The authz filter (`filters/authz`) through the real proxy: policies on
//! the loopback client's address (`ip_blocks`, `remote_ip_blocks`), on
//! headers, paths, methods and hosts, DENY precedence, dry run counted on
//! `/metrics`, the denied reply, policies on JWT-style claims published by
//! an earlier filter (`tests/filters/auth-properties`), and a configuration
//! error that names its field. Policies on source principals are tested
//! natively and, over mutual TLS between two sidecars, in `mesh_outbound.rs`.
//! The modules come from `scripts/build-filters.sh`.

use std::net::SocketAddr;
use std::time::Duration;

use http::Request;
use serde_json::{Value, json};
use wasp_e2e::client::empty;
use wasp_e2e::{
    Client, Cluster, Config, FilterChain, Listener, Plugin, Resp, Route, Upstream, Wasp,
    filter_module, free_addr,
};

/// wasp with `auth-properties` then `authz` (configured with `authz`) on
/// every route, in front of an echo upstream.
struct Proxy {
    wasp: Wasp,
    listen: SocketAddr,
    upstream: Upstream,
    client: Client,
}

fn config(listen: SocketAddr, upstream: SocketAddr, authz: &Value) -> Config {
    let chain = FilterChain::new("secured")
        .plugin(Plugin::new("auth", filter_module("auth_properties")))
        .plugin(Plugin::new("authz", filter_module("wasp_authz")).configuration(authz));
    Config::new()
        .filter_chain(chain)
        .listener(
            Listener::new("main", listen)
                .route(Route::prefix("/").filter_chain("secured").cluster("app")),
        )
        .cluster(Cluster::new("app").endpoint(upstream))
}

impl Proxy {
    async fn start(authz: Value) -> Proxy {
        let listen = free_addr();
        let upstream = Upstream::start("app").await;
        let wasp = Wasp::start(config(listen, upstream.addr, &authz)).await;
        Proxy {
            wasp,
            listen,
            upstream,
            client: Client::http1(),
        }
    }

    /// `method path` with extra headers (a `host` header sets the authority).
    async fn send(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Resp {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.listen));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.client
            .request(request.body(empty()).unwrap())
            .await
            .unwrap()
    }

    async fn status(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> u16 {
        self.send(method, path, headers).await.status
    }

    /// A counter of the filter on `/metrics`.
    async fn counter(&self, name: &str) -> f64 {
        self.wasp.metrics().await.sum(name, &[])
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_blocks_match_the_loopback_client() {
    let proxy = Proxy::start(json!({"policies": [
        {"name": "no-admin-from-loopback", "action": "DENY", "rules": [{
            "from": [{"source": {"remote_ip_blocks": ["127.0.0.1/32"]}}],
            "to": [{"operation": {"paths": ["/admin*"]}}],
        }]},
        {"name": "loopback", "action": "ALLOW", "rules": [{
            "from": [{"source": {"ip_blocks": ["127.0.0.0/8", "::1"]}}],
        }]},
    ]}))
    .await;
    assert_eq!(proxy.status("GET", "/home", &[]).await, 200);
    assert_eq!(proxy.status("GET", "/admin/users", &[]).await, 403);

    let elsewhere = Proxy::start(json!({"policies": [
        {"name": "private-net", "action": "ALLOW", "rules": [{
            "from": [{"source": {"ip_blocks": ["10.0.0.0/8"], "not_remote_ip_blocks": ["10.1.0.0/16"]}}],
        }]},
    ]}))
    .await;
    assert_eq!(elsewhere.status("GET", "/home", &[]).await, 403);
    assert_eq!(elsewhere.upstream.hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_requests_get_403_rbac_access_denied_and_never_reach_the_upstream() {
    let proxy = Proxy::start(json!({"policies": [
        {"name": "no-blocked", "action": "DENY", "rules": [{
            "when": [{"key": "request.headers[x-block]", "values": ["yes", "always*"]}],
        }]},
    ]}))
    .await;
    let denied = proxy
        .send("GET", "/", &[("x-block", "always-please")])
        .await;
    assert_eq!(denied.status, 403);
    assert_eq!(denied.text(), "RBAC: access denied");
    assert_eq!(proxy.upstream.hits(), 0);
    assert_eq!(proxy.status("GET", "/", &[("x-block", "no")]).await, 200);
    assert_eq!(proxy.status("GET", "/", &[]).await, 200);
    assert_eq!(proxy.upstream.hits(), 2);
    assert!(proxy.wasp.log().contains("by DENY policy `no-blocked`"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_methods_and_hosts_select_what_is_allowed() {
    let proxy = Proxy::start(json!({"policies": [
        {"name": "api-reads", "action": "ALLOW", "rules": [{"to": [{"operation": {
            "hosts": ["api.example", "*.api.example"],
            "methods": ["GET", "HEAD"],
            "paths": ["/v1/*", "*.json"],
            "not_paths": ["/v1/internal*"],
        }}]}]},
    ]}))
    .await;
    let host = |h: &'static str| [("host", h)];
    assert_eq!(
        proxy
            .status("GET", "/v1/items?page=2", &host("api.example"))
            .await,
        200
    );
    assert_eq!(
        proxy
            .status("HEAD", "/data/x.json", &host("EU.API.example"))
            .await,
        200
    );
    assert_eq!(
        proxy
            .status("POST", "/v1/items", &host("api.example"))
            .await,
        403
    );
    assert_eq!(
        proxy.status("GET", "/v2/items", &host("api.example")).await,
        403
    );
    assert_eq!(
        proxy.status("GET", "/v1/items", &host("www.example")).await,
        403
    );
    assert_eq!(
        proxy
            .status("GET", "/v1/internal/keys", &host("api.example"))
            .await,
        403
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_matching_deny_wins_over_allow_and_unmatched_requests_are_denied() {
    let proxy = Proxy::start(json!({"policies": [
        {"name": "allow-api", "action": "ALLOW", "rules": [{"to": [{"operation": {"paths": ["/api/*"]}}]}]},
        {"name": "deny-delete", "action": "DENY", "rules": [{"to": [{"operation": {"methods": ["DELETE"]}}]}]},
    ]}))
    .await;
    assert_eq!(proxy.status("GET", "/api/a", &[]).await, 200);
    assert_eq!(proxy.status("DELETE", "/api/a", &[]).await, 403);
    assert_eq!(proxy.status("GET", "/other", &[]).await, 403);
    assert_eq!(proxy.counter("authz_policy_allow_api_allowed").await, 1.0);
    assert_eq!(proxy.counter("authz_policy_deny_delete_denied").await, 1.0);
    assert_eq!(proxy.counter("authz_denied").await, 2.0);
    assert_eq!(proxy.counter("authz_allowed").await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_lets_requests_through_and_counts_them_on_metrics() {
    let proxy = Proxy::start(json!({"policies": [
        {"name": "future-deny", "action": "DENY", "dry_run": true, "rules": [
            {"to": [{"operation": {"paths": ["/legacy*"]}}]},
        ]},
    ]}))
    .await;
    assert_eq!(proxy.status("GET", "/legacy/report", &[]).await, 200);
    assert_eq!(proxy.status("GET", "/legacy/x", &[]).await, 200);
    assert_eq!(proxy.status("GET", "/new", &[]).await, 200);
    assert_eq!(proxy.upstream.hits(), 3);
    assert_eq!(
        proxy
            .counter("authz_policy_future_deny_dry_run_denied")
            .await,
        2.0
    );
    assert_eq!(proxy.counter("authz_dry_run_denied").await, 2.0);
    assert_eq!(proxy.counter("authz_dry_run_allowed").await, 1.0);
    assert_eq!(proxy.counter("authz_denied").await, 0.0);
    assert!(
        proxy
            .wasp
            .log()
            .contains("dry run would deny GET /legacy/report")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_on_claims_published_by_an_earlier_filter() {
    let proxy = Proxy::start(json!({"policies": [
        {"name": "admins", "action": "ALLOW", "rules": [{
            "from": [{"source": {"request_principals": ["https://issuer.example/*"]}}],
            "when": [
                {"key": "request.auth.claims[groups]", "values": ["admin"]},
                {"key": "request.auth.claims[org][tier]", "not_values": ["free"]},
                {"key": "request.auth.audiences", "values": ["wasp-api"]},
            ],
        }]},
    ]}))
    .await;
    let principal = ("x-test-auth-principal", "https://issuer.example/alice");
    let audiences = ("x-test-auth-audiences", r#"["other","wasp-api"]"#);
    let claims = |c: &'static str| ("x-test-auth-claims", c);
    let admin = claims(r#"{"groups":["dev","admin"],"org":{"tier":"gold"}}"#);
    assert_eq!(
        proxy
            .status("GET", "/", &[principal, audiences, admin])
            .await,
        200
    );
    let free = claims(r#"{"groups":["admin"],"org":{"tier":"free"}}"#);
    assert_eq!(
        proxy
            .status("GET", "/", &[principal, audiences, free])
            .await,
        403
    );
    let dev = claims(r#"{"groups":["dev"]}"#);
    assert_eq!(
        proxy.status("GET", "/", &[principal, audiences, dev]).await,
        403
    );
    let stranger = ("x-test-auth-principal", "https://other.example/alice");
    assert_eq!(
        proxy
            .status("GET", "/", &[stranger, audiences, admin])
            .await,
        403
    );
    assert_eq!(proxy.status("GET", "/", &[principal, admin]).await, 403);
    assert_eq!(proxy.status("GET", "/", &[]).await, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_cidr_keeps_wasp_from_starting_and_names_the_field() {
    let authz = json!({"policies": [{"name": "p", "rules": [
        {"from": [{"source": {"ip_blocks": ["10.0.0.0/33"]}}]},
    ]}]});
    let mut wasp = Wasp::spawn(config(free_addr(), free_addr(), &authz));
    let status = wasp
        .wait_exit(Duration::from_secs(30))
        .await
        .expect("wasp should exit on a rejected authz configuration");
    assert!(!status.success());
    let log = wasp.log();
    assert!(
        log.contains(
            r#"policies[0].rules[0].from[0].source.ip_blocks[0]: "10.0.0.0/33" is not a CIDR block"#
        ),
        "{log}"
    );
    assert!(log.contains("authz"), "{log}");
}
