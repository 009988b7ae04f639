//! Validation of the mesh security settings against a whole configuration:
//! the identity files and trust domain, listeners' `mtls`, clusters' `tls`
//! and the egress allow list, each error at its path.

use crate::error::ErrorSink;
use crate::mesh::{MtlsMode, UpstreamTlsMode, check_spiffe_id, check_trust_domain};
use crate::model::{ClusterConfig, Config, ListenerConfig};

/// Checks an egress entry: `host`, `*.domain` or either with `:port`.
fn check_egress(entry: &str) -> Result<(), String> {
    let (host, port) = match entry.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (entry, None),
    };
    if let Some(port) = port
        && port.parse::<u16>().map_or(true, |p| p == 0)
    {
        return Err(format!("'{entry}': invalid port '{port}'"));
    }
    let name = host.strip_prefix("*.").unwrap_or(host);
    if name.is_empty()
        || name.contains('*')
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_".contains(&b))
    {
        return Err(format!(
            "'{entry}': expected host[:port] or *.domain[:port]"
        ));
    }
    Ok(())
}

/// Mesh-related checks of a whole configuration.
pub(crate) fn validate_mesh(config: &Config, sink: &mut ErrorSink) {
    if let Some(mesh) = &config.mesh {
        if let Err(e) = check_trust_domain(&mesh.trust_domain) {
            sink.push("mesh.trust_domain", e);
        }
        if mesh.cert_file.is_some() != mesh.key_file.is_some() {
            sink.push(
                "mesh",
                "cert_file and key_file go together (set both or neither)",
            );
        }
        for (field, value) in [
            ("cert_file", &mesh.cert_file),
            ("key_file", &mesh.key_file),
            ("trust_bundle", &mesh.trust_bundle),
        ] {
            if value.as_deref() == Some("") {
                sink.push(format!("mesh.{field}"), "must not be empty");
            }
        }
    }
    for (i, listener) in config.listeners.iter().enumerate() {
        validate_listener(config, listener, &format!("listeners[{i}]"), sink);
    }
    for (i, cluster) in config.clusters.iter().enumerate() {
        validate_cluster(config, cluster, &format!("clusters[{i}]"), sink);
    }
    for (i, entry) in config.egress.iter().enumerate() {
        if let Err(e) = check_egress(entry) {
            sink.push(format!("egress[{i}]"), e);
        }
    }
}

fn validate_listener(config: &Config, listener: &ListenerConfig, at: &str, sink: &mut ErrorSink) {
    let Some(mtls) = &listener.mtls else { return };
    if mtls.mode == MtlsMode::Disable {
        return;
    }
    if config.mesh.is_none() {
        sink.push(
            format!("{at}.mtls"),
            "needs the 'mesh' section (the workload certificate and trust bundle)",
        );
    }
    if listener.tls.is_some() {
        sink.push(
            format!("{at}.mtls"),
            "cannot be combined with 'tls': mutual TLS serves the mesh certificate",
        );
    }
}

fn validate_cluster(config: &Config, cluster: &ClusterConfig, at: &str, sink: &mut ErrorSink) {
    let Some(tls) = &cluster.tls else { return };
    let at = format!("{at}.tls");
    for (j, id) in tls.expected_identities.iter().enumerate() {
        if let Err(e) = check_spiffe_id(id) {
            sink.push(format!("{at}.expected_identities[{j}]"), e);
        }
    }
    if let Some(sni) = &tls.sni
        && (sni.is_empty() || rustls_name_invalid(sni))
    {
        sink.push(format!("{at}.sni"), format!("'{sni}' is not a DNS name"));
    }
    match tls.mode {
        UpstreamTlsMode::IstioMutual => {
            if config.mesh.is_none() {
                sink.push(
                    format!("{at}.mode"),
                    "ISTIO_MUTUAL needs the 'mesh' section (the workload certificate and trust bundle)",
                );
            }
            if tls.ca_file.is_some() {
                sink.push(
                    format!("{at}.ca_file"),
                    "only for SIMPLE (ISTIO_MUTUAL trusts the mesh trust bundle)",
                );
            }
        }
        UpstreamTlsMode::Simple => {
            if !tls.expected_identities.is_empty() {
                sink.push(format!("{at}.expected_identities"), "only for ISTIO_MUTUAL");
            }
            if tls.ca_file.is_none()
                && config
                    .mesh
                    .as_ref()
                    .is_none_or(|m| m.trust_bundle.is_none())
            {
                sink.push(
                    format!("{at}.ca_file"),
                    "SIMPLE needs roots: set ca_file or mesh.trust_bundle",
                );
            }
        }
        UpstreamTlsMode::Disable => {}
    }
}

/// True when `name` cannot be a DNS name for SNI.
fn rustls_name_invalid(name: &str) -> bool {
    name.len() > 253
        || name.split('.').any(|label| {
            label.is_empty()
                || label.len() > 63
                || !label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn egress_entries() {
        for good in [
            "api.example.com",
            "api.example.com:443",
            "*.example.com",
            "10.0.0.1:80",
        ] {
            assert!(check_egress(good).is_ok(), "{good}");
        }
        for bad in ["", "api.example.com:0", "a*.example.com", "host:port", "*"] {
            assert!(check_egress(bad).is_err(), "{bad}");
        }
    }
}
