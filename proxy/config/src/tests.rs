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
    assert_eq!(config.listeners[0].routes.len(), 7);
    assert_eq!(config.filter_chains.len(), 4);
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

#[test]
fn filter_chains_parse_with_defaults_and_configuration_bytes() {
    let config = parse(
        "listeners: [{name: a, address: '127.0.0.1:1', filter_chain: edge, routes: [{filter_chain: edge, direct_response: {status: 200}}]}]
filter_chains:
  - name: edge
    plugins:
      - {name: p1, module: a.wasm, configuration: {k: [1, 2]}, vm_config: {vm_id: v, environment: {A: '1'}, configuration: raw}}
      - {name: p2, module: b.wasm, configuration: text, failure_policy: fail_open, limits: {cpu_deadline: 20ms}}",
    )
    .unwrap();
    let chain = &config.filter_chains[0];
    assert_eq!(chain.plugins.len(), 2);
    let (p1, p2) = (&chain.plugins[0], &chain.plugins[1]);
    assert_eq!(
        configuration_bytes(p1.configuration.as_ref()),
        br#"{"k":[1,2]}"#
    );
    assert_eq!(
        configuration_bytes(p1.vm_config.configuration.as_ref()),
        b"raw"
    );
    assert_eq!(configuration_bytes(p2.configuration.as_ref()), b"text");
    assert_eq!(p1.failure_policy, FailurePolicy::FailClosed);
    assert_eq!(p2.failure_policy, FailurePolicy::FailOpen);
    assert_eq!(p2.limits.cpu_deadline, std::time::Duration::from_millis(20));
    assert_eq!(p1.limits, PluginLimitsConfig::default());
}

#[test]
fn filter_chain_errors_name_their_paths() {
    let errs = errors(
        "listeners: [{name: a, address: '127.0.0.1:1', filter_chain: nope, routes: [{filter_chain: gone, direct_response: {status: 200}}]}]
filter_chains:
  - {name: c, plugins: [{name: p, module: ''}, {name: p, module: m.wasm, sha256: xyz, limits: {memory_bytes: 10, cpu_deadline: 0s, max_vms: 0}}]}
  - {name: c, plugins: []}",
    );
    for expected in [
        "filter_chains[0].plugins[0].module: must not be empty",
        "filter_chains[0].plugins[1].name: duplicate plugin name 'p' in this chain",
        "filter_chains[0].plugins[1].sha256: must be 64 hexadecimal digits",
        "filter_chains[0].plugins[1].limits.memory_bytes: must be between",
        "filter_chains[0].plugins[1].limits.cpu_deadline: must be greater than zero",
        "filter_chains[0].plugins[1].limits.max_vms: must be at least 1",
        "filter_chains[1].name: duplicate filter chain name 'c'",
        "filter_chains[1].plugins: at least one plugin is required",
        "listeners[0].filter_chain: unknown filter chain 'nope'",
        "listeners[0].routes[0].filter_chain: unknown filter chain 'gone'",
    ] {
        assert!(
            errs.iter().any(|e| e.starts_with(expected)),
            "missing {expected:?} in {errs:?}"
        );
    }
    assert_eq!(errs.len(), 10, "{errs:?}");
}

#[test]
fn plugin_cpu_deadline_is_capped_at_one_second_and_host_limits_must_be_positive() {
    let errs = errors(
        "listeners: [{name: a, address: '127.0.0.1:1', routes: [{direct_response: {status: 200}}]}]
filter_chains:
  - {name: c, plugins: [{name: p, module: m.wasm, limits: {cpu_deadline: 1h, max_header_bytes: 0, max_shared_data_keys: 0, max_queue_depth: 0}}]}",
    );
    for expected in [
        "filter_chains[0].plugins[0].limits.cpu_deadline: must be greater than zero and at most 1s",
        "filter_chains[0].plugins[0].limits.max_header_bytes: must be at least 1",
        "filter_chains[0].plugins[0].limits.max_shared_data_keys: must be at least 1",
        "filter_chains[0].plugins[0].limits.max_queue_depth: must be at least 1",
    ] {
        assert!(
            errs.iter().any(|e| e.starts_with(expected)),
            "missing {expected:?} in {errs:?}"
        );
    }
    assert_eq!(errs.len(), 4, "{errs:?}");
    let ok = parse(
        "listeners: [{name: a, address: '127.0.0.1:1', routes: [{direct_response: {status: 200}}]}]
filter_chains:
  - {name: c, plugins: [{name: p, module: m.wasm, limits: {cpu_deadline: 1s, max_header_count: 5}}]}",
    )
    .unwrap();
    let limits = &ok.filter_chains[0].plugins[0].limits;
    assert_eq!(limits.max_header_count, 5);
    assert_eq!(
        limits.max_header_bytes,
        crate::defaults::PLUGIN_MAX_HEADER_BYTES
    );
}

/// A plugin check that rejects modules whose path contains "missing".
struct RejectMissing;

impl PluginValidator for RejectMissing {
    fn validate_plugin(&self, plugin: &PluginConfig, at: &str, sink: &mut ErrorSink) {
        if plugin.module.contains("missing") {
            sink.push(
                format!("{at}.module"),
                format!("no module {}", plugin.module),
            );
        }
    }
}

#[test]
fn plugin_validator_errors_carry_the_plugin_path() {
    let yaml = "
listeners: [{name: a, address: '127.0.0.1:1', routes: [{direct_response: {status: 200}}]}]
filter_chains:
  - name: edge
    plugins:
      - {name: ok, module: here.wasm}
      - {name: gone, module: missing.wasm}
";
    let config = parse(yaml).unwrap();
    let err = validate_with(&config, &RejectMissing).unwrap_err();
    let errs: Vec<String> = err.field_errors().iter().map(|e| e.to_string()).collect();
    assert_eq!(
        errs,
        ["filter_chains[0].plugins[1].module: no module missing.wasm"]
    );
}

#[test]
fn plugin_validator_is_not_asked_about_an_invalid_document() {
    let yaml = "
listeners: []
filter_chains: [{name: edge, plugins: [{name: gone, module: missing.wasm}]}]
";
    let config: Config = serde_yaml_ng::from_str(yaml).unwrap();
    let err = validate_with(&config, &RejectMissing).unwrap_err();
    let errs: Vec<String> = err.field_errors().iter().map(|e| e.to_string()).collect();
    assert_eq!(errs, ["listeners: at least one listener is required"]);
}

#[test]
fn node_identity_is_parsed_with_its_metadata() {
    let config = parse(
        "node: {id: sidecar-1, cluster: web, metadata: {ns: prod, app: shop}}\nlisteners: [{name: a, address: '127.0.0.1:1', routes: []}]",
    )
    .unwrap();
    assert_eq!(config.node.id, "sidecar-1");
    assert_eq!(config.node.cluster, "web");
    assert_eq!(config.node.metadata["ns"], "prod");
    assert_eq!(config.node.metadata.len(), 2);
    let absent = parse("listeners: [{name: a, address: '127.0.0.1:1', routes: []}]").unwrap();
    assert!(absent.node.is_empty());
}

#[test]
fn node_errors_are_reported_with_their_paths() {
    let errs = errors(
        "node: {id: \"a\\nb\", metadata: {\"x.y\": v}}\nlisteners: [{name: a, address: '127.0.0.1:1', routes: []}]",
    );
    assert_eq!(
        errs,
        [
            "node.id: must not contain control characters",
            "node.metadata.x.y: keys must be non-empty, without '.' or control characters",
        ],
        "{errs:?}"
    );
    let errs = errors(
        "node: {metadata: {LABELS: x}, labels: {\"service.istio.io/canonical-name\": ok, \"\": v}}\nlisteners: [{name: a, address: '127.0.0.1:1', routes: []}]",
    );
    assert_eq!(
        errs,
        [
            "node.metadata.LABELS: set the labels in node.labels, not as a metadata string",
            "node.labels.: keys must be non-empty, without control characters",
        ],
        "{errs:?}"
    );
    let errs = errors("node: {idd: x}\nlisteners: [{name: a, address: '127.0.0.1:1', routes: []}]");
    assert!(errs[0].starts_with("node.idd: unknown field"), "{errs:?}");
}

#[test]
fn route_upgrades_default_to_websocket_and_never_allow_h2c() {
    let forward = |yaml: &str| {
        let config = parse(&format!(
            "listeners: [{{name: a, address: '127.0.0.1:1', routes: [{{route: {{cluster: c{yaml}}}}}]}}]\nclusters: [{{name: c, endpoints: ['127.0.0.1:2']}}]"
        ))
        .unwrap();
        config.listeners[0].routes[0].route.clone().unwrap()
    };
    assert_eq!(forward("").upgrade, ["websocket"]);
    assert!(forward(", upgrade: []").upgrade.is_empty());
    assert_eq!(forward(", upgrade: [websocket, foo/1]").upgrade.len(), 2);
    let errs = errors(
        "listeners: [{name: a, address: '127.0.0.1:1', routes: [{route: {cluster: c, upgrade: [H2C, '']}}]}]\nclusters: [{name: c, endpoints: ['127.0.0.1:2']}]",
    );
    assert_eq!(
        errs,
        [
            "listeners[0].routes[0].route.upgrade[0]: h2c upgrades are never proxied",
            "listeners[0].routes[0].route.upgrade[1]: '' is not a valid protocol name",
        ]
    );
}

#[test]
fn listener_limits_default_as_envoy_and_zero_durations_mean_none() {
    let config = parse(
        "listeners: [{name: a, address: '127.0.0.1:1', idle_timeout: 0s, routes: [{direct_response: {status: 200}}]}]",
    )
    .unwrap();
    let listener = &config.listeners[0];
    assert_eq!(listener.max_request_headers_kb, 60);
    assert_eq!(listener.max_request_headers_count, 100);
    assert!(listener.request_timeout.is_zero(), "off by default");
    assert_eq!(
        listener.stream_idle_timeout,
        std::time::Duration::from_secs(300)
    );
    assert!(
        listener.idle_timeout.is_zero(),
        "0s is accepted: no idle timeout"
    );
    assert_eq!(listener.trusted_hops, 0);
}

#[test]
fn listener_limit_and_cluster_idle_errors_name_their_paths() {
    let errs = errors(
        r#"
listeners:
  - name: a
    address: 127.0.0.1:1
    max_request_headers_kb: 0
    max_request_headers_count: 0
    routes: [{route: {cluster: c}}]
  - name: b
    address: 127.0.0.1:2
    max_request_headers_kb: 8193
    routes: [{route: {cluster: c}}]
clusters:
  - {name: c, endpoints: ["127.0.0.1:3"], idle_timeout: 0s}
"#,
    );
    assert_eq!(
        errs,
        vec![
            "clusters[0].idle_timeout: must be greater than zero (a pooled connection needs a limit)",
            "listeners[0].max_request_headers_kb: must be between 1 and 8192 (got 0)",
            "listeners[0].max_request_headers_count: must be greater than zero",
            "listeners[1].max_request_headers_kb: must be between 1 and 8192 (got 8193)",
        ]
    );
}

#[test]
fn a_canary_is_parsed_with_its_policy_defaults_and_runs_its_own_module() {
    let config = parse(
        "filter_chains: [{name: c, plugins: [{name: p, module: a.wasm, configuration: {k: 1}, \
         canary: {module: b.wasm, percent: 12.5}}]}]\n\
         listeners: [{name: l, address: '127.0.0.1:1', filter_chain: c, routes: [{direct_response: {status: 200}}]}]",
    )
    .unwrap();
    let plugin = &config.filter_chains[0].plugins[0];
    let canary = plugin.canary.as_ref().unwrap();
    assert_eq!(canary.percent, 12.5);
    assert_eq!(canary.rollout, crate::RolloutPolicy::default());
    let version = plugin.canary_version().unwrap();
    assert_eq!(version.module, "b.wasm");
    assert_eq!(version.configuration, plugin.configuration, "inherited");
    assert!(version.canary.is_none());
    assert_eq!(crate::chain_canary(&config.filter_chains[0]).unwrap().0, 0);
}

#[test]
fn bad_canaries_are_refused_at_their_paths() {
    let errs = errors(
        r#"
filter_chains:
  - name: c
    plugins:
      - name: p
        module: a.wasm
        canary: {module: "", sha256: nothex, percent: 100, rollout: {healthy_period: 0s, max_error_percent: -1, min_requests: 0}}
      - name: q
        module: b.wasm
        canary: {module: c.wasm, percent: 0}
listeners: [{name: l, address: '127.0.0.1:1', filter_chain: c, routes: [{direct_response: {status: 200}}]}]
"#,
    );
    assert_eq!(
        errs,
        vec![
            "filter_chains[0].plugins[0].canary.module: must not be empty",
            "filter_chains[0].plugins[0].canary.sha256: must be 64 hexadecimal digits",
            "filter_chains[0].plugins[0].canary.percent: must be greater than 0 and less than 100, not 100",
            "filter_chains[0].plugins[0].canary.rollout.healthy_period: must be greater than zero",
            "filter_chains[0].plugins[0].canary.rollout.max_error_percent: must be at least 0 and less than 100, not -1",
            "filter_chains[0].plugins[0].canary.rollout.min_requests: must be at least 1",
            "filter_chains[0].plugins[1].canary: chain 'c' already has a canary (plugins[0]); one per chain",
            "filter_chains[0].plugins[1].canary.percent: must be greater than 0 and less than 100, not 0",
        ]
    );
    let unknown = errors(
        "filter_chains: [{name: c, plugins: [{name: p, module: a, canary: {module: b, percent: 5, weight: 3}}]}]\nlisteners: []",
    );
    assert_eq!(unknown.len(), 1);
    assert!(
        unknown[0].starts_with("filter_chains[0].plugins[0].canary.weight: unknown field `weight`"),
        "{unknown:?}"
    );
}
