//! Parsing and validation tests: every error carries its path.

use super::*;

fn errors(yaml: &str) -> Vec<String> {
    match parse(yaml) {
        Ok(_) => Vec::new(),
        Err(err) => err.field_errors().iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn example_config_is_valid() {
    let text = include_str!("../../../examples/demo/wasp.yaml");
    let config = parse(text).unwrap();
    assert_eq!(config.listeners[0].routes.len(), 4);
}

#[test]
fn unknown_field_is_rejected_with_its_path() {
    let errs = errors(
        "listeners: [{name: a, address: '127.0.0.1:1', routes: [{match: {prefx: /}, direct_response: {status: 200}}]}]",
    );
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with("listeners[0].routes[0].match.prefx: unknown field `prefx`"),
        "{errs:?}"
    );
}

#[test]
fn every_semantic_error_is_reported_with_its_path() {
    let errs = errors(
        r#"
listeners:
  - name: a
    address: nowhere
    routes:
      - match: { prefix: api }
        route: { cluster: missing }
      - match: { regex: "(" }
        direct_response: { status: 99 }
      - match: { path: /x }
  - name: a
    address: 127.0.0.1:80
    routes: []
clusters:
  - name: c
    endpoints: ["bad host:1", "10.0.0.1:0"]
"#,
    );
    let expected = [
        "listeners[0].address: 'nowhere' is not an IP:port address",
        "listeners[0].routes[0].match.prefix: must start with '/'",
        "listeners[0].routes[0].route.cluster: unknown cluster 'missing'",
        "listeners[0].routes[1].match.regex: invalid regular expression",
        "listeners[0].routes[1].direct_response.status: must be between 100 and 599",
        "listeners[0].routes[2]: exactly one of 'route', 'direct_response', 'redirect' is required, found 0",
        "listeners[1].name: duplicate listener name 'a'",
        "clusters[0].endpoints[0]: 'bad host:1' has an invalid host name",
        "clusters[0].endpoints[1]: '10.0.0.1:0' has an invalid port",
    ];
    for want in expected {
        assert!(
            errs.iter().any(|e| e.starts_with(want)),
            "missing {want:?} in {errs:#?}"
        );
    }
    assert_eq!(errs.len(), expected.len(), "{errs:#?}");
}

#[test]
fn json_is_accepted() {
    let config = parse(
        r#"{"listeners":[{"name":"a","address":"127.0.0.1:1","routes":[{"direct_response":{"status":204}}]}]}"#,
    )
    .unwrap();
    assert_eq!(
        config.listeners[0].routes[0]
            .direct_response
            .as_ref()
            .unwrap()
            .status,
        204
    );
}

#[test]
fn durations_use_human_units() {
    let config = parse(
        "listeners: [{name: a, address: '127.0.0.1:1', routes: []}]\nclusters: [{name: c, endpoints: ['h:1'], connect_timeout: 250ms}]\nshutdown: {drain_timeout: 2s}",
    )
    .unwrap();
    assert_eq!(
        config.clusters[0].connect_timeout,
        std::time::Duration::from_millis(250)
    );
    assert_eq!(
        config.shutdown.drain_timeout,
        std::time::Duration::from_secs(2)
    );
}

#[test]
fn hash_policies_are_maps_with_one_key() {
    let route = |policy: &str| {
        format!(
            "listeners: [{{name: a, address: '127.0.0.1:1', routes: [{{route: {{cluster: c, hash_policy: {policy}}}}}]}}]\n\
             clusters: [{{name: c, lb_policy: ring_hash, endpoints: ['127.0.0.1:2']}}]"
        )
    };
    let config = parse(&route(
        "[{header: x-user}, {cookie: session}, {source_ip: true}]",
    ))
    .unwrap();
    let forward = config.listeners[0].routes[0].route.as_ref().unwrap();
    assert_eq!(
        forward.hash_policy,
        vec![
            HashPolicy::Header("x-user".into()),
            HashPolicy::Cookie("session".into()),
            HashPolicy::SourceIp(true),
        ]
    );
    let errs = errors(&route("[{header: a, cookie: b}]"));
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with("listeners[0].routes[0].route.hash_policy[0]: exactly one of"),
        "{errs:?}"
    );
    let errs = errors(&route("[{hedaer: a}]"));
    assert!(errs[0].contains("unknown field `hedaer`"), "{errs:?}");
}
