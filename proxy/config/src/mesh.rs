//! Mesh security settings: the workload identity (`mesh`), mutual TLS on
//! listeners (`mtls`), TLS origination to clusters (`tls`) and the egress
//! policy (`outbound_traffic_policy`, `egress`); their validation against a
//! whole configuration is in `mesh_validate`.

use serde::{Deserialize, Serialize};

/// Trust domain when `mesh.trust_domain` is not set.
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";

/// The proxy's workload identity and the roots it trusts. The certificate
/// comes from files here, or from the control plane's CA when the proxy runs
/// with `--control-plane` and names no files.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeshConfig {
    /// The SPIFFE trust domain, e.g. `cluster.local`.
    #[serde(default = "default_trust_domain")]
    pub trust_domain: String,
    /// PEM file with the workload certificate chain (leaf first); the leaf
    /// carries exactly one URI SAN, the workload's SPIFFE ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<String>,
    /// PEM file with the workload's private key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<String>,
    /// PEM file with the trusted root certificates (one or more).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_bundle: Option<String>,
}

fn default_trust_domain() -> String {
    DEFAULT_TRUST_DOMAIN.to_owned()
}

/// Mutual TLS on a listener (Istio's PeerAuthentication for its port).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerMtls {
    /// STRICT, PERMISSIVE or DISABLE.
    pub mode: MtlsMode,
}

/// How a listener treats client certificates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MtlsMode {
    /// Only TLS with a client certificate chaining to the trust bundle and
    /// carrying exactly one SPIFFE URI SAN.
    Strict,
    /// Mutual TLS as in STRICT, or plain text, on the same port (told apart
    /// by the first byte the client sends).
    Permissive,
    /// No mutual TLS: the listener's `tls` (if any) or plain text.
    Disable,
}

/// TLS origination from the proxy to a cluster's endpoints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterTls {
    /// ISTIO_MUTUAL, SIMPLE or DISABLE.
    pub mode: UpstreamTlsMode,
    /// ISTIO_MUTUAL: SPIFFE IDs the peer may present; empty: any ID of the
    /// trust domain.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expected_identities: Vec<String>,
    /// Server name sent (SNI); SIMPLE also checks the server certificate
    /// against it. Defaults to the endpoint's host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// SIMPLE: PEM file with the roots to verify the server with; the mesh
    /// trust bundle when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
}

/// How a cluster's connections are secured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UpstreamTlsMode {
    /// Mutual TLS with the proxy's workload certificate; the peer must chain
    /// to the trust bundle and present an expected SPIFFE ID.
    IstioMutual,
    /// TLS without a client certificate; the server is verified by name.
    Simple,
    /// Plain text.
    Disable,
}

/// What an outbound listener does with a request that matches no route.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OutboundTrafficPolicy {
    /// Only destinations in the registry: a cluster named like the
    /// authority's host, or an `egress` entry. Anything else: 502.
    #[default]
    RegistryOnly,
    /// Any destination: forwarded to the authority's `host:port`.
    AllowAny,
}

impl OutboundTrafficPolicy {
    /// True for the default (REGISTRY_ONLY).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// Checks a SPIFFE ID: `spiffe://<trust domain>/<path>`, with a lowercase
/// trust domain of letters, digits, `.`, `-`, `_` and a non-empty path
/// without empty, `.` or `..` segments.
pub fn check_spiffe_id(id: &str) -> Result<(), String> {
    let rest = id
        .strip_prefix("spiffe://")
        .ok_or_else(|| format!("'{id}' is not a SPIFFE ID (spiffe://<trust-domain>/<path>)"))?;
    let (domain, path) = rest
        .split_once('/')
        .ok_or_else(|| format!("'{id}' has no path after the trust domain"))?;
    check_trust_domain(domain).map_err(|e| format!("'{id}': {e}"))?;
    if path.is_empty()
        || path
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
        || !path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/.-_".contains(&b))
    {
        return Err(format!(
            "'{id}' has an invalid path (segments of letters, digits, '.', '-', '_')"
        ));
    }
    Ok(())
}

/// Checks a trust domain: lowercase letters, digits, `.`, `-`, `_`.
pub fn check_trust_domain(domain: &str) -> Result<(), String> {
    if domain.is_empty()
        || !domain
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
    {
        return Err(format!(
            "invalid trust domain '{domain}' (lowercase letters, digits, '.', '-', '_')"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spiffe_ids() {
        assert!(check_spiffe_id("spiffe://cluster.local/ns/default/sa/web").is_ok());
        for bad in [
            "https://cluster.local/ns/a",
            "spiffe://cluster.local",
            "spiffe://cluster.local/",
            "spiffe://Cluster.local/ns/a",
            "spiffe://cluster.local/ns//a",
            "spiffe://cluster.local/ns/../a",
        ] {
            assert!(check_spiffe_id(bad).is_err(), "{bad}");
        }
    }
}
