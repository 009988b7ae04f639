//! `from[].source` matching: principals (with `spiffe://` as Istio adds it),
//! request principals, namespaces, IP blocks (IPv4, IPv6, the peer and the
//! forwarded client), every `not_*` form, fields ANDed, entries ORed.

mod common;

use common::{allowed, host, req, send};
use serde_json::json;

const PEER: &str = "spiffe://cluster.local/ns/shop/sa/web";

fn source(source: serde_json::Value) -> serde_json::Value {
    json!({"from": [{"source": source}]})
}

#[test]
fn principals_match_exact_prefix_suffix_and_any_on_the_spiffe_identity() {
    let peer = req().peer(PEER);
    for (pattern, expected) in [
        ("cluster.local/ns/shop/sa/web", true),
        ("cluster.local/ns/shop/sa/api", false),
        ("spiffe://cluster.local/ns/shop/sa/web", false),
        ("cluster.local/ns/shop/*", true),
        ("cluster.local/ns/other/*", false),
        ("*/sa/web", true),
        ("*/sa/api", false),
        ("*", true),
    ] {
        let rule = source(json!({"principals": [pattern]}));
        assert_eq!(allowed(rule, &peer), expected, "{pattern}");
    }
}

#[test]
fn principals_need_a_peer_identity_and_not_principals_accept_none() {
    let anonymous = req();
    assert!(!allowed(source(json!({"principals": ["*"]})), &anonymous));
    assert!(allowed(
        source(json!({"not_principals": ["*"]})),
        &anonymous
    ));
    assert!(!allowed(
        source(json!({"not_principals": ["*"]})),
        &req().peer(PEER)
    ));
    let rule = source(json!({"not_principals": ["cluster.local/ns/shop/sa/web"]}));
    assert!(!allowed(rule.clone(), &req().peer(PEER)));
    assert!(allowed(
        rule,
        &req().peer("spiffe://cluster.local/ns/shop/sa/api")
    ));
}

#[test]
fn namespaces_come_from_the_peer_identity() {
    let peer = req().peer(PEER);
    assert!(allowed(source(json!({"namespaces": ["shop"]})), &peer));
    assert!(allowed(source(json!({"namespaces": ["sh*"]})), &peer));
    assert!(allowed(source(json!({"namespaces": ["*op"]})), &peer));
    assert!(!allowed(source(json!({"namespaces": ["shopping"]})), &peer));
    assert!(!allowed(source(json!({"namespaces": ["*"]})), &req()));
    assert!(!allowed(source(json!({"not_namespaces": ["shop"]})), &peer));
    assert!(allowed(source(json!({"not_namespaces": ["shop"]})), &req()));
}

#[test]
fn request_principals_match_the_authenticated_principal() {
    let user = req().auth("principal", "https://issuer.example/alice");
    for (pattern, expected) in [
        ("https://issuer.example/alice", true),
        ("https://issuer.example/*", true),
        ("*/alice", true),
        ("*", true),
        ("https://issuer.example/bob", false),
    ] {
        let rule = source(json!({"request_principals": [pattern]}));
        assert_eq!(allowed(rule, &user), expected, "{pattern}");
    }
    assert!(!allowed(
        source(json!({"request_principals": ["*"]})),
        &req()
    ));
    assert!(allowed(
        source(json!({"not_request_principals": ["*"]})),
        &req()
    ));
    assert!(!allowed(
        source(json!({"not_request_principals": ["*/alice"]})),
        &user
    ));
}

#[test]
fn ip_blocks_match_the_peer_address_in_ipv4_and_ipv6() {
    let v4 = req().from("10.1.2.3:5000");
    assert!(allowed(source(json!({"ip_blocks": ["10.1.0.0/16"]})), &v4));
    assert!(allowed(source(json!({"ip_blocks": ["10.1.2.3"]})), &v4));
    assert!(allowed(
        source(json!({"ip_blocks": ["192.168.0.0/16", "10.0.0.0/8"]})),
        &v4
    ));
    assert!(!allowed(source(json!({"ip_blocks": ["10.2.0.0/16"]})), &v4));
    assert!(!allowed(source(json!({"ip_blocks": ["::/0"]})), &v4));
    let v6 = req().from("[2001:db8::7]:5000");
    assert!(allowed(
        source(json!({"ip_blocks": ["2001:db8::/32"]})),
        &v6
    ));
    assert!(!allowed(
        source(json!({"ip_blocks": ["2001:db9::/32"]})),
        &v6
    ));
    assert!(!allowed(source(json!({"ip_blocks": ["0.0.0.0/0"]})), &v6));
    let mapped = req().from("[::ffff:10.1.2.3]:5000");
    assert!(allowed(
        source(json!({"ip_blocks": ["10.1.0.0/16"]})),
        &mapped
    ));
    assert!(!allowed(
        source(json!({"not_ip_blocks": ["10.0.0.0/8"]})),
        &v4
    ));
    assert!(allowed(
        source(json!({"not_ip_blocks": ["10.0.0.0/8"]})),
        &v6
    ));
}

#[test]
fn remote_ip_blocks_are_the_peer_without_trusted_hops() {
    let r = req()
        .from("10.1.2.3:5000")
        .header("x-forwarded-for", "203.0.113.9");
    assert!(allowed(
        source(json!({"remote_ip_blocks": ["10.1.2.3/32"]})),
        &r
    ));
    assert!(!allowed(
        source(json!({"remote_ip_blocks": ["203.0.113.0/24"]})),
        &r
    ));
    assert!(!allowed(
        source(json!({"not_remote_ip_blocks": ["10.0.0.0/8"]})),
        &r
    ));
}

#[test]
fn remote_ip_blocks_read_x_forwarded_for_past_trusted_hops() {
    let config = |hops: u32, block: &str| {
        json!({"xff_num_trusted_hops": hops, "policies": [{"name": "p", "rules": [
            source(json!({"remote_ip_blocks": [block]}))
        ]}]})
    };
    let r = req()
        .from("10.1.2.3:5000")
        .header("x-forwarded-for", "198.51.100.1, 203.0.113.9");
    assert_eq!(send(&mut host(config(1, "203.0.113.9")), &r), 200);
    assert_eq!(send(&mut host(config(2, "198.51.100.1")), &r), 200);
    assert_eq!(send(&mut host(config(1, "198.51.100.1")), &r), 403);
    // Fewer entries than trusted hops: the peer address.
    assert_eq!(send(&mut host(config(3, "10.1.2.3")), &r), 200);
    // ip_blocks stays the peer whatever x-forwarded-for says.
    let direct = json!({"xff_num_trusted_hops": 1, "policies": [{"name": "p", "rules": [
        source(json!({"ip_blocks": ["203.0.113.9"]}))
    ]}]});
    assert_eq!(send(&mut host(direct), &r), 403);
}

#[test]
fn fields_of_a_source_must_all_match() {
    let rule = source(json!({"principals": ["*"], "ip_blocks": ["10.0.0.0/8"]}));
    assert!(allowed(rule.clone(), &req().peer(PEER)));
    assert!(!allowed(
        rule.clone(),
        &req().peer(PEER).from("192.168.1.1:1")
    ));
    assert!(!allowed(rule, &req()));
    let both = source(json!({"ip_blocks": ["10.0.0.0/8"], "not_ip_blocks": ["10.1.0.0/16"]}));
    assert!(!allowed(both.clone(), &req().from("10.1.2.3:1")));
    assert!(allowed(both, &req().from("10.2.2.3:1")));
}

#[test]
fn any_from_entry_may_match() {
    let rule = json!({"from": [
        {"source": {"principals": ["cluster.local/ns/shop/sa/web"]}},
        {"source": {"ip_blocks": ["192.168.0.0/16"]}},
    ]});
    assert!(allowed(rule.clone(), &req().peer(PEER)));
    assert!(allowed(rule.clone(), &req().from("192.168.3.4:1")));
    assert!(!allowed(rule, &req()));
}
