//! The stream's fixed attributes (a path with no part a filter chooses,
//! such as `response.code`), named once in a table keyed by their
//! serialized paths. A property read of one is found by a single match on
//! the path's bytes, with no split into segments and no UTF-8 check: the
//! common case of the ABI's most frequent hostcall. Paths with a part of
//! the filter's (`request.headers.<name>`) and filter state take the
//! segmented way.

/// A fixed stream attribute (Envoy's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Attr {
    RequestPath,
    RequestUrlPath,
    RequestHost,
    RequestScheme,
    RequestMethod,
    RequestId,
    RequestProtocol,
    RequestReferer,
    RequestUseragent,
    RequestQuery,
    RequestTime,
    RequestDuration,
    RequestSize,
    RequestTotalSize,
    ResponseCode,
    ResponseCodeDetails,
    ResponseFlags,
    ResponseGrpcStatus,
    ResponseSize,
    ResponseTotalSize,
    SourceAddress,
    SourcePort,
    SourcePrincipal,
    DestinationAddress,
    DestinationPort,
    ConnectionId,
    ConnectionMtls,
    ConnectionRequestedServerName,
    ConnectionTlsVersion,
    ConnectionUriSanPeerCertificate,
    ConnectionUriSanLocalCertificate,
    ConnectionSubjectPeerCertificate,
    ConnectionSha256PeerCertificateDigest,
    UpstreamAddress,
    UpstreamPort,
    UpstreamLocalAddress,
    UpstreamTransportFailureReason,
    UpstreamTlsVersion,
    UpstreamSubjectPeerCertificate,
    XdsClusterName,
    XdsRouteName,
}

/// Longest serialized path in the table (`connection` NUL
/// `sha256_peer_certificate_digest`).
const LONGEST: usize = 41;

impl Attr {
    /// The attribute a serialized path names: its segments joined by NUL,
    /// a trailing NUL allowed.
    pub fn of_path(path: &[u8]) -> Option<Attr> {
        use Attr::*;
        let path = path.strip_suffix(&[0]).unwrap_or(path);
        if path.len() > LONGEST {
            return None;
        }
        Some(match path {
            b"request\0path" => RequestPath,
            b"request\0url_path" => RequestUrlPath,
            b"request\0host" => RequestHost,
            b"request\0scheme" => RequestScheme,
            b"request\0method" => RequestMethod,
            b"request\0id" => RequestId,
            b"request\0protocol" => RequestProtocol,
            b"request\0referer" => RequestReferer,
            b"request\0useragent" => RequestUseragent,
            b"request\0query" => RequestQuery,
            b"request\0time" => RequestTime,
            b"request\0duration" => RequestDuration,
            b"request\0size" => RequestSize,
            b"request\0total_size" => RequestTotalSize,
            b"response\0code" => ResponseCode,
            b"response\0code_details" => ResponseCodeDetails,
            b"response\0flags" => ResponseFlags,
            b"response\0grpc_status" => ResponseGrpcStatus,
            b"response\0size" => ResponseSize,
            b"response\0total_size" => ResponseTotalSize,
            b"source\0address" => SourceAddress,
            b"source\0port" => SourcePort,
            b"source\0principal" => SourcePrincipal,
            b"destination\0address" => DestinationAddress,
            b"destination\0port" => DestinationPort,
            b"connection\0id" => ConnectionId,
            b"connection\0mtls" => ConnectionMtls,
            b"connection\0requested_server_name" => ConnectionRequestedServerName,
            b"connection\0tls_version" => ConnectionTlsVersion,
            b"connection\0uri_san_peer_certificate" => ConnectionUriSanPeerCertificate,
            b"connection\0uri_san_local_certificate" => ConnectionUriSanLocalCertificate,
            b"connection\0subject_peer_certificate" => ConnectionSubjectPeerCertificate,
            b"connection\0sha256_peer_certificate_digest" => ConnectionSha256PeerCertificateDigest,
            b"upstream\0address" => UpstreamAddress,
            b"upstream\0port" => UpstreamPort,
            b"upstream\0local_address" => UpstreamLocalAddress,
            b"upstream\0transport_failure_reason" => UpstreamTransportFailureReason,
            b"upstream\0tls_version" => UpstreamTlsVersion,
            b"upstream\0subject_peer_certificate" => UpstreamSubjectPeerCertificate,
            b"xds\0cluster_name" => XdsClusterName,
            b"xds\0route_name" => XdsRouteName,
            _ => return None,
        })
    }

    /// The attribute `segs` names (joined with NULs on the stack and
    /// looked up in the same table).
    pub fn of_segments(segs: &[&str]) -> Option<Attr> {
        let len = segs.iter().map(|s| s.len() + 1).sum::<usize>();
        if segs.len() != 2 || len > LONGEST + 1 {
            return None;
        }
        let mut buf = [0u8; LONGEST + 1];
        let mut at = 0;
        for segment in segs {
            buf[at..at + segment.len()].copy_from_slice(segment.as_bytes());
            at += segment.len() + 1;
        }
        Self::of_path(&buf[..at])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every attribute's dotted name, as Envoy documents it.
    const NAMES: &[&str] = &[
        "request.path",
        "request.url_path",
        "request.host",
        "request.scheme",
        "request.method",
        "request.id",
        "request.protocol",
        "request.referer",
        "request.useragent",
        "request.query",
        "request.time",
        "request.duration",
        "request.size",
        "request.total_size",
        "response.code",
        "response.code_details",
        "response.flags",
        "response.grpc_status",
        "response.size",
        "response.total_size",
        "source.address",
        "source.port",
        "source.principal",
        "destination.address",
        "destination.port",
        "connection.id",
        "connection.mtls",
        "connection.requested_server_name",
        "connection.tls_version",
        "connection.uri_san_peer_certificate",
        "connection.uri_san_local_certificate",
        "connection.subject_peer_certificate",
        "connection.sha256_peer_certificate_digest",
        "upstream.address",
        "upstream.port",
        "upstream.local_address",
        "upstream.transport_failure_reason",
        "upstream.tls_version",
        "upstream.subject_peer_certificate",
        "xds.cluster_name",
        "xds.route_name",
    ];

    #[test]
    fn every_attribute_is_found_by_its_path_and_its_segments_and_no_two_share_one() {
        let mut seen = Vec::new();
        for name in NAMES {
            let segs: Vec<&str> = name.split('.').collect();
            let path = segs.join("\0");
            let attr = Attr::of_path(path.as_bytes()).unwrap_or_else(|| panic!("{name}"));
            assert_eq!(Attr::of_path(format!("{path}\0").as_bytes()), Some(attr));
            assert_eq!(Attr::of_segments(&segs), Some(attr), "{name}");
            assert!(!seen.contains(&attr), "{name} names {attr:?} twice");
            seen.push(attr);
            assert!(path.len() <= LONGEST, "{name}: raise LONGEST");
        }
        assert_eq!(seen.len(), NAMES.len());
    }

    #[test]
    fn other_paths_are_not_fixed_attributes() {
        for path in [
            &b""[..],
            b"\0",
            b"request",
            b"request\0path\0more",
            b"request.path",
            b"request\0headers\0x-a",
            b"Request\0path",
            b"telemetry.trace_id",
            b"node\0id",
            b"plugin_name",
            b"connection\0sha256_peer_certificate_digest_and_more",
        ] {
            assert_eq!(
                Attr::of_path(path),
                None,
                "{:?}",
                String::from_utf8_lossy(path)
            );
        }
        assert_eq!(Attr::of_segments(&["request", "path", ""]), None);
        assert_eq!(Attr::of_segments(&["request"]), None);
        assert_eq!(Attr::of_segments(&["request\0path"]), None);
    }
}
