//! Checks a request must pass before it is routed, with the answer a
//! careful proxy (Envoy, nginx) gives when it fails: a header block over the
//! listener's limits (431, the same for HTTP/1.1 and HTTP/2), an HTTP/1.1
//! request without `Host`, with two, or with one that is no RFC 3986
//! authority (400), and a transfer coding other than `chunked` (501).

use http::header::{HOST, TRANSFER_ENCODING};
use http::uri::Authority;
use http::{Request, Version};

use super::error::{Malformed, ProxyError};

pub use crate::limits::HeaderLimits;

/// Checks the request head; the error is the request's answer.
pub fn check<B>(req: &Request<B>, limits: &HeaderLimits) -> Result<(), ProxyError> {
    let headers = req.headers();
    // The authority is one field, whether `:authority` or `Host`.
    let count = headers.len() - usize::from(headers.contains_key(HOST))
        + usize::from(req.uri().authority().is_some() || headers.contains_key(HOST));
    if count > limits.max_count {
        return Err(ProxyError::TooManyHeaders {
            count,
            limit: limits.max_count,
        });
    }
    // The authority counts once, whether it came as `:authority` (HTTP/2)
    // or `Host` (HTTP/1.1), so both protocols measure a request alike.
    let uri = req.uri();
    let authority = uri
        .authority()
        .map(|a| a.as_str().len())
        .or_else(|| headers.get(HOST).map(|h| h.len()))
        .unwrap_or(0);
    let target = uri.path_and_query().map_or(0, |p| p.as_str().len());
    let size = headers.iter().filter(|(name, _)| *name != HOST).fold(
        req.method().as_str().len() + target + authority,
        |sum, (name, value)| sum + name.as_str().len() + value.len(),
    );
    if size > limits.max_bytes {
        return Err(ProxyError::HeadersTooLarge {
            size,
            limit: limits.max_bytes,
        });
    }
    check_host(req)?;
    // HTTP/2 has no transfer codings (h2 refuses the header itself).
    for value in headers.get_all(TRANSFER_ENCODING) {
        let value = value.to_str().unwrap_or("?");
        if let Some(coding) = value
            .split(',')
            .map(str::trim)
            .find(|coding| !coding.eq_ignore_ascii_case("chunked"))
        {
            return Err(ProxyError::UnsupportedTransferCoding(coding.to_owned()));
        }
    }
    Ok(())
}

/// `Host`: required on HTTP/1.1, at most one, and an RFC 3986 authority
/// (`host[:port]`, the host a reg-name, IPv4 address or IP literal) without
/// user info.
fn check_host<B>(req: &Request<B>) -> Result<(), ProxyError> {
    let mut hosts = req.headers().get_all(HOST).iter();
    let host = match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => return Err(ProxyError::BadRequest(Malformed::MultipleHosts)),
        (Some(host), None) => host,
        // HTTP/2 names its authority in `:authority`; HTTP/1.0 may omit it.
        (None, _) if req.version() == Version::HTTP_11 => {
            return Err(ProxyError::BadRequest(Malformed::MissingHost));
        }
        (None, _) => return Ok(()),
    };
    // An empty Host is what RFC 9112 §3.2 asks for a target without authority.
    if host.is_empty() {
        return Ok(());
    }
    let valid = Authority::try_from(host.as_bytes()).is_ok_and(|authority| {
        let port = &authority.as_str()[authority.host().len()..];
        !authority.as_str().contains('@')
            && (port.is_empty() || port == ":" || authority.port_u16().is_some())
    });
    if valid {
        Ok(())
    } else {
        Err(ProxyError::BadRequest(Malformed::InvalidHost(
            String::from_utf8_lossy(host.as_bytes()).into_owned(),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(version: Version, headers: &[(&str, &str)]) -> Request<()> {
        let mut builder = Request::builder().uri("/path").version(version);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap()
    }

    fn limits() -> HeaderLimits {
        HeaderLimits::new(60, 100)
    }

    #[test]
    fn host_is_required_once_and_well_formed_on_http11() {
        let ok = request(Version::HTTP_11, &[("host", "a.test:8080")]);
        assert!(check(&ok, &limits()).is_ok());
        for host in ["[::1]:80", "10.0.0.1", "a-b.c_d~e", ""] {
            assert!(
                check(&request(Version::HTTP_11, &[("host", host)]), &limits()).is_ok(),
                "{host}"
            );
        }
        let missing = check(&request(Version::HTTP_11, &[]), &limits());
        assert!(matches!(
            missing,
            Err(ProxyError::BadRequest(Malformed::MissingHost))
        ));
        assert!(check(&request(Version::HTTP_10, &[]), &limits()).is_ok());
        let two = request(Version::HTTP_11, &[("host", "a.test"), ("host", "b.test")]);
        assert!(matches!(
            check(&two, &limits()),
            Err(ProxyError::BadRequest(Malformed::MultipleHosts))
        ));
        for host in ["a b/c?d@e", "user@a.test", "a/b", "a.test:80x", "a?b"] {
            assert!(
                matches!(
                    check(&request(Version::HTTP_11, &[("host", host)]), &limits()),
                    Err(ProxyError::BadRequest(Malformed::InvalidHost(_)))
                ),
                "{host}"
            );
        }
    }

    #[test]
    fn header_blocks_over_the_limits_are_refused() {
        let value = "v".repeat(1000);
        let big: Vec<(&str, &str)> = vec![("host", "a.test"), ("x-big", &value)];
        let tight = HeaderLimits {
            max_bytes: 1000,
            max_count: 100,
        };
        assert!(matches!(
            check(&request(Version::HTTP_11, &big), &tight),
            Err(ProxyError::HeadersTooLarge { .. })
        ));
        assert!(check(&request(Version::HTTP_11, &big), &limits()).is_ok());
        let names: Vec<String> = (0..5).map(|i| format!("x-{i}")).collect();
        let mut many: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "1")).collect();
        many.push(("host", "a.test"));
        let few = HeaderLimits {
            max_bytes: 61440,
            max_count: 5,
        };
        assert!(matches!(
            check(&request(Version::HTTP_11, &many), &few),
            Err(ProxyError::TooManyHeaders { count: 6, limit: 5 })
        ));
    }

    #[test]
    fn only_chunked_transfer_coding_is_accepted() {
        let chunked = request(
            Version::HTTP_11,
            &[("host", "a"), ("transfer-encoding", "chunked")],
        );
        assert!(check(&chunked, &limits()).is_ok());
        let gzip = request(
            Version::HTTP_11,
            &[("host", "a"), ("transfer-encoding", "gzip, chunked")],
        );
        assert!(matches!(
            check(&gzip, &limits()),
            Err(ProxyError::UnsupportedTransferCoding(coding)) if coding == "gzip"
        ));
    }
}
