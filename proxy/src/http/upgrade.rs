//! Protocol switches (`Upgrade`, e.g. WebSocket). A request may switch only
//! to a protocol its route allows ([`admit`], before the filter chain);
//! `h2c` is never proxied. The upstream's `101 Switching Protocols` is
//! accepted only for the protocol the request asked for ([`check_switch`]);
//! then bytes are copied both ways until either side closes
//! ([`spawn_tunnel`]). Everything else stays HTTP, so no bytes can pass the
//! router and the filters inside a tunnel nobody allowed.

use http::header::{HeaderName, UPGRADE};
use http::{HeaderMap, HeaderValue, Request, Version};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use super::error::ProxyError;
use super::headers;

/// `HTTP2-Settings`, sent with `Upgrade: h2c`.
static HTTP2_SETTINGS: HeaderName = HeaderName::from_static("http2-settings");

/// The protocol a request was admitted to switch to (a request extension
/// set by [`admit`]; forwarding keeps the upgrade headers only with it).
#[derive(Clone, Debug)]
pub struct Admitted(pub HeaderValue);

/// Decides a request's upgrade against the protocols its route allows
/// (lowercase): an allowed one is marked [`Admitted`]; `h2c` loses its
/// upgrade headers and goes on as plain HTTP/1.1 (as in Envoy); any other
/// is refused ([`ProxyError::UpgradeNotAllowed`], 403 as in Envoy). Only
/// HTTP/1.1 requests upgrade; other versions' `Upgrade` headers are removed
/// with the hop-by-hop headers.
pub fn admit<B>(req: &mut Request<B>, allowed: &[String]) -> Result<(), ProxyError> {
    if req.version() != Version::HTTP_11 || !headers::wants_upgrade(req.headers()) {
        return Ok(());
    }
    let protocol = requested(req.headers());
    if protocol.eq_ignore_ascii_case("h2c") {
        req.headers_mut().remove(UPGRADE);
        req.headers_mut().remove(&HTTP2_SETTINGS);
        return Ok(());
    }
    if !allowed.iter().any(|p| p.eq_ignore_ascii_case(&protocol)) {
        return Err(ProxyError::UpgradeNotAllowed { protocol });
    }
    let value = HeaderValue::from_str(&protocol).expect("taken from a header value");
    req.extensions_mut().insert(Admitted(value));
    Ok(())
}

/// The `Upgrade` header's value, every line joined (one protocol is
/// expected; a list matches no allowed protocol).
fn requested(headers: &HeaderMap) -> String {
    let values: Vec<&str> = headers
        .get_all(UPGRADE)
        .iter()
        .map(|v| v.to_str().unwrap_or("?"))
        .collect();
    values.join(", ").trim().to_owned()
}

/// Checks an upstream's `101 Switching Protocols` against what the request
/// asked for: the response must name the admitted protocol.
pub fn check_switch(asked: Option<&Admitted>, response: &HeaderMap) -> Result<(), ProxyError> {
    let got = requested(response);
    match asked {
        Some(Admitted(asked)) if asked.as_bytes().eq_ignore_ascii_case(got.as_bytes()) => Ok(()),
        asked => Err(ProxyError::UnexpectedUpgrade {
            asked: asked
                .and_then(|Admitted(p)| p.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
            got,
        }),
    }
}

/// Joins the downstream and upstream upgraded connections in a background task.
pub fn spawn_tunnel(downstream: OnUpgrade, upstream: OnUpgrade) {
    tokio::spawn(async move {
        let (downstream, upstream) = match tokio::try_join!(downstream, upstream) {
            Ok(pair) => pair,
            Err(err) => {
                tracing::debug!(error = %err, "upgrade failed");
                return;
            }
        };
        let mut downstream = TokioIo::new(downstream);
        let mut upstream = TokioIo::new(upstream);
        match tokio::io::copy_bidirectional(&mut downstream, &mut upstream).await {
            Ok((sent, received)) => tracing::debug!(sent, received, "upgraded connection closed"),
            Err(err) => tracing::debug!(error = %err, "upgraded connection closed with error"),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(version: Version, pairs: &[(&str, &str)]) -> Request<()> {
        let mut req = Request::get("/").version(version);
        for (name, value) in pairs {
            req = req.header(*name, *value);
        }
        req.body(()).unwrap()
    }

    fn websocket() -> Vec<String> {
        vec!["websocket".to_owned()]
    }

    #[test]
    fn an_allowed_protocol_is_admitted_case_insensitively() {
        let mut req = request(
            Version::HTTP_11,
            &[("connection", "Upgrade"), ("upgrade", "WebSocket")],
        );
        admit(&mut req, &websocket()).unwrap();
        assert_eq!(req.extensions().get::<Admitted>().unwrap().0, "WebSocket");
    }

    #[test]
    fn other_protocols_and_lists_are_refused() {
        for protocol in ["foo/1", "websocket, foo", "h2"] {
            let mut req = request(
                Version::HTTP_11,
                &[("connection", "upgrade"), ("upgrade", protocol)],
            );
            let err = admit(&mut req, &websocket()).unwrap_err();
            assert!(
                matches!(err, ProxyError::UpgradeNotAllowed { .. }),
                "{protocol}: {err}"
            );
        }
        let mut req = request(
            Version::HTTP_11,
            &[("connection", "upgrade"), ("upgrade", "websocket")],
        );
        assert!(
            admit(&mut req, &[]).is_err(),
            "an empty list disables upgrades"
        );
    }

    #[test]
    fn h2c_loses_its_upgrade_headers_and_is_not_admitted() {
        let mut req = request(
            Version::HTTP_11,
            &[
                ("connection", "Upgrade, HTTP2-Settings"),
                ("upgrade", "h2c"),
                ("http2-settings", "AAMAAABkAARAAAAAAAIAAAAA"),
            ],
        );
        admit(&mut req, &websocket()).unwrap();
        assert!(req.headers().get("upgrade").is_none());
        assert!(req.headers().get("http2-settings").is_none());
        assert!(req.extensions().get::<Admitted>().is_none());
    }

    #[test]
    fn only_http11_requests_with_connection_upgrade_are_upgrades() {
        let mut req = request(
            Version::HTTP_10,
            &[("connection", "upgrade"), ("upgrade", "foo")],
        );
        admit(&mut req, &websocket()).unwrap();
        let mut req = request(Version::HTTP_11, &[("upgrade", "foo")]);
        admit(&mut req, &websocket()).unwrap();
        assert!(req.extensions().get::<Admitted>().is_none());
    }

    #[test]
    fn a_switch_must_name_the_admitted_protocol() {
        let mut response = HeaderMap::new();
        response.insert(UPGRADE, HeaderValue::from_static("websocket"));
        let asked = Admitted(HeaderValue::from_static("WebSocket"));
        assert!(check_switch(Some(&asked), &response).is_ok());
        assert!(check_switch(None, &response).is_err());
        response.insert(UPGRADE, HeaderValue::from_static("h2c"));
        assert!(check_switch(Some(&asked), &response).is_err());
        assert!(check_switch(Some(&asked), &HeaderMap::new()).is_err());
    }
}
