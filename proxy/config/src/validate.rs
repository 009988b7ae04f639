//! Semantic validation of a parsed configuration: names, references,
//! formats and exclusive choices. Every problem is reported with its path.

use std::collections::HashSet;
use std::net::SocketAddr;

use crate::defaults;
use crate::defaults::MAX_PLUGIN_CPU_DEADLINE;
use crate::error::{ConfigError, ErrorSink};
use crate::filters::{MAX_PLUGIN_MEMORY_BYTES, PluginConfig, PluginValidator};
use crate::model::*;
use crate::resilience_validate::validate_resilience;
use crate::route_validate::validate_route;

/// Checks a configuration, returning every problem found.
pub fn validate(config: &Config) -> Result<(), ConfigError> {
    let mut sink = ErrorSink::default();
    check(config, &mut sink);
    sink.finish()
}

/// Checks a configuration and then every plugin with `plugins` (whether its
/// module exists and loads), returning every problem found. Plugins are
/// checked only when the document itself is valid.
pub fn validate_with(config: &Config, plugins: &dyn PluginValidator) -> Result<(), ConfigError> {
    validate(config)?;
    let mut sink = ErrorSink::default();
    for (i, chain) in config.filter_chains.iter().enumerate() {
        for (j, plugin) in chain.plugins.iter().enumerate() {
            plugins.validate_plugin(
                plugin,
                &format!("filter_chains[{i}].plugins[{j}]"),
                &mut sink,
            );
        }
    }
    sink.finish()
}

fn check(config: &Config, sink: &mut ErrorSink) {
    let cluster_names = validate_clusters(&config.clusters, sink);

    if let Some(admin) = &config.admin {
        check_socket_addr(&admin.address, "admin.address", sink);
    }
    if config.listeners.is_empty() {
        sink.push("listeners", "at least one listener is required");
    }
    let mut names = HashSet::new();
    let mut addresses = HashSet::new();
    for (i, listener) in config.listeners.iter().enumerate() {
        let at = format!("listeners[{i}]");
        if listener.name.is_empty() {
            sink.push(format!("{at}.name"), "must not be empty");
        } else if !names.insert(listener.name.as_str()) {
            sink.push(
                format!("{at}.name"),
                format!("duplicate listener name '{}'", listener.name),
            );
        }
        if let Some(addr) = check_socket_addr(&listener.address, &format!("{at}.address"), sink) {
            if !addresses.insert(addr) {
                sink.push(
                    format!("{at}.address"),
                    format!("address {addr} is used by another listener"),
                );
            }
            if config
                .admin
                .as_ref()
                .and_then(|a| a.address.parse::<SocketAddr>().ok())
                == Some(addr)
            {
                sink.push(
                    format!("{at}.address"),
                    format!("address {addr} is the admin address"),
                );
            }
        }
        validate_listener_limits(listener, &at, sink);
        if let Some(tls) = &listener.tls {
            if tls.cert_file.is_empty() {
                sink.push(format!("{at}.tls.cert_file"), "must not be empty");
            }
            if tls.key_file.is_empty() {
                sink.push(format!("{at}.tls.key_file"), "must not be empty");
            }
        }
        let mut route_names = HashSet::new();
        for (j, route) in listener.routes.iter().enumerate() {
            let at = format!("{at}.routes[{j}]");
            if let Some(name) = &route.name
                && !route_names.insert(name.as_str())
            {
                sink.push(
                    format!("{at}.name"),
                    format!("duplicate route name '{name}'"),
                );
            }
            validate_route(route, &at, &cluster_names, sink);
        }
    }
    validate_filter_chains(config, sink);
    validate_node(&config.node, sink);
    crate::mesh_validate::validate_mesh(config, sink);
}

/// A listener's request limits: header limits within Envoy's bounds.
fn validate_listener_limits(listener: &ListenerConfig, at: &str, sink: &mut ErrorSink) {
    let kb = listener.max_request_headers_kb;
    if !(1..=defaults::MAX_REQUEST_HEADERS_KB_LIMIT).contains(&kb) {
        sink.push(
            format!("{at}.max_request_headers_kb"),
            format!(
                "must be between 1 and {} (got {kb})",
                defaults::MAX_REQUEST_HEADERS_KB_LIMIT
            ),
        );
    }
    if listener.max_request_headers_count == 0 {
        sink.push(
            format!("{at}.max_request_headers_count"),
            "must be greater than zero",
        );
    }
}

/// Node facts reach filters as property values: no control characters, and
/// metadata keys that a property path can name.
fn validate_node(node: &NodeConfig, sink: &mut ErrorSink) {
    let control = |s: &str| s.chars().any(char::is_control);
    if control(&node.id) {
        sink.push("node.id", "must not contain control characters");
    }
    if control(&node.cluster) {
        sink.push("node.cluster", "must not contain control characters");
    }
    for (key, value) in &node.metadata {
        if key.is_empty() || key.contains('.') || control(key) {
            sink.push(
                format!("node.metadata.{key}"),
                "keys must be non-empty, without '.' or control characters",
            );
        }
        if control(value) {
            sink.push(
                format!("node.metadata.{key}"),
                "must not contain control characters",
            );
        }
    }
    if !node.labels.is_empty() && node.metadata.contains_key("LABELS") {
        sink.push(
            "node.metadata.LABELS",
            "set the labels in node.labels, not as a metadata string",
        );
    }
    for (key, value) in &node.labels {
        if key.is_empty() || control(key) {
            sink.push(
                format!("node.labels.{key}"),
                "keys must be non-empty, without control characters",
            );
        }
        if control(value) {
            sink.push(
                format!("node.labels.{key}"),
                "must not contain control characters",
            );
        }
    }
}

fn validate_clusters<'a>(clusters: &'a [ClusterConfig], sink: &mut ErrorSink) -> HashSet<&'a str> {
    let mut names = HashSet::new();
    for (i, cluster) in clusters.iter().enumerate() {
        let at = format!("clusters[{i}]");
        if cluster.name.is_empty() {
            sink.push(format!("{at}.name"), "must not be empty");
        } else if !names.insert(cluster.name.as_str()) {
            sink.push(
                format!("{at}.name"),
                format!("duplicate cluster name '{}'", cluster.name),
            );
        }
        if cluster.endpoints.is_empty() {
            sink.push(
                format!("{at}.endpoints"),
                "at least one endpoint is required",
            );
        }
        for (j, endpoint) in cluster.endpoints.iter().enumerate() {
            if let Err(message) = check_host_port(&endpoint.address) {
                sink.push(format!("{at}.endpoints[{j}]"), message);
            }
            if endpoint.weight == 0 {
                sink.push(
                    format!("{at}.endpoints[{j}].weight"),
                    "must be greater than zero",
                );
            }
        }
        validate_resilience(cluster, &at, sink);
        if cluster.connect_timeout.is_zero() {
            sink.push(format!("{at}.connect_timeout"), "must be greater than zero");
        }
        if cluster.idle_timeout.is_zero() {
            sink.push(
                format!("{at}.idle_timeout"),
                "must be greater than zero (a pooled connection needs a limit)",
            );
        }
        if cluster.dns_refresh_rate.is_zero() {
            sink.push(
                format!("{at}.dns_refresh_rate"),
                "must be greater than zero",
            );
        }
    }
    names
}

fn check_socket_addr(value: &str, at: &str, sink: &mut ErrorSink) -> Option<SocketAddr> {
    match value.parse::<SocketAddr>() {
        Ok(addr) => Some(addr),
        Err(_) => {
            sink.push(
                at.to_owned(),
                format!("'{value}' is not an IP:port address"),
            );
            None
        }
    }
}

/// Checks a `host:port` endpoint; the host may be an IP address or a DNS name.
pub(crate) fn check_host_port(endpoint: &str) -> Result<(), String> {
    if let Ok(addr) = endpoint.parse::<SocketAddr>() {
        return if addr.port() == 0 {
            Err(format!("'{endpoint}' has an invalid port"))
        } else {
            Ok(())
        };
    }
    let Some((host, port)) = endpoint.rsplit_once(':') else {
        return Err(format!("'{endpoint}' must be host:port"));
    };
    if port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(format!("'{endpoint}' has an invalid port"));
    }
    let valid_host = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if valid_host {
        Ok(())
    } else {
        Err(format!("'{endpoint}' has an invalid host name"))
    }
}

/// Checks chains, plugins and every `filter_chain` reference.
fn validate_filter_chains(config: &Config, sink: &mut ErrorSink) {
    let mut names = HashSet::new();
    for (i, chain) in config.filter_chains.iter().enumerate() {
        let at = format!("filter_chains[{i}]");
        if chain.name.is_empty() {
            sink.push(format!("{at}.name"), "must not be empty");
        } else if !names.insert(chain.name.as_str()) {
            sink.push(
                format!("{at}.name"),
                format!("duplicate filter chain name '{}'", chain.name),
            );
        }
        if chain.plugins.is_empty() {
            sink.push(format!("{at}.plugins"), "at least one plugin is required");
        }
        let mut plugin_names = HashSet::new();
        for (j, plugin) in chain.plugins.iter().enumerate() {
            validate_plugin(
                plugin,
                &format!("{at}.plugins[{j}]"),
                &mut plugin_names,
                sink,
            );
        }
        crate::canary::validate_chain(chain, &at, sink);
    }
    let mut check_ref = |name: &Option<String>, at: String| {
        if let Some(name) = name
            && !names.contains(name.as_str())
        {
            sink.push(at, format!("unknown filter chain '{name}'"));
        }
    };
    for (i, listener) in config.listeners.iter().enumerate() {
        check_ref(
            &listener.filter_chain,
            format!("listeners[{i}].filter_chain"),
        );
        for (j, route) in listener.routes.iter().enumerate() {
            check_ref(
                &route.filter_chain,
                format!("listeners[{i}].routes[{j}].filter_chain"),
            );
        }
    }
}

fn validate_plugin<'a>(
    plugin: &'a PluginConfig,
    at: &str,
    names: &mut HashSet<&'a str>,
    sink: &mut ErrorSink,
) {
    if plugin.name.is_empty() {
        sink.push(format!("{at}.name"), "must not be empty");
    } else if !names.insert(plugin.name.as_str()) {
        sink.push(
            format!("{at}.name"),
            format!("duplicate plugin name '{}' in this chain", plugin.name),
        );
    }
    if plugin.module.is_empty() {
        sink.push(format!("{at}.module"), "must not be empty");
    }
    if let Some(sha) = &plugin.sha256
        && (sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        sink.push(format!("{at}.sha256"), "must be 64 hexadecimal digits");
    }
    let limits = &plugin.limits;
    if limits.memory_bytes < 65536 || limits.memory_bytes > MAX_PLUGIN_MEMORY_BYTES {
        sink.push(
            format!("{at}.limits.memory_bytes"),
            format!("must be between 65536 (one Wasm page) and {MAX_PLUGIN_MEMORY_BYTES}"),
        );
    }
    if limits.cpu_deadline.is_zero() || limits.cpu_deadline > MAX_PLUGIN_CPU_DEADLINE {
        sink.push(
            format!("{at}.limits.cpu_deadline"),
            format!(
                "must be greater than zero and at most {MAX_PLUGIN_CPU_DEADLINE:?} \
                 (a looping filter stalls its worker thread this long)"
            ),
        );
    }
    if limits.max_vms == 0 {
        sink.push(format!("{at}.limits.max_vms"), "must be at least 1");
    }
    let at_least_one = [
        ("max_header_bytes", limits.max_header_bytes),
        ("max_header_count", limits.max_header_count),
        ("max_buffered_body_bytes", limits.max_buffered_body_bytes),
        ("max_property_bytes", limits.max_property_bytes),
        ("max_shared_data_bytes", limits.max_shared_data_bytes),
        ("max_shared_data_keys", limits.max_shared_data_keys),
        ("max_queue_depth", limits.max_queue_depth),
        ("max_queue_bytes", limits.max_queue_bytes),
        (
            "max_callout_request_bytes",
            limits.max_callout_request_bytes,
        ),
        (
            "max_callout_response_bytes",
            limits.max_callout_response_bytes,
        ),
        ("max_callouts_in_flight", limits.max_callouts_in_flight),
    ];
    for (field, value) in at_least_one {
        if value == 0 {
            sink.push(format!("{at}.limits.{field}"), "must be at least 1");
        }
    }
}
