//! The mirrored copy of a request: its method, path and end-to-end headers,
//! the authority suffixed `-shadow` (before the port, as Envoy does), and
//! the body when it fit.

use wasp_filter_sdk::{HeaderList, HttpRequest};

/// Headers that describe one connection or the original framing; the
/// host frames the copy itself.
const NOT_COPIED: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "te",
    "content-length",
];

/// `host-shadow` for `host`, `host-shadow:port` for `host:port`
/// (`[::1]-shadow:80` for a bracketed IPv6 address).
pub fn shadow_authority(authority: &str) -> String {
    let port_start = match authority.rfind(':') {
        Some(colon) if !authority[colon..].contains(']') => Some(colon),
        _ => None,
    };
    match port_start {
        Some(colon) => format!("{}-shadow{}", &authority[..colon], &authority[colon..]),
        None => format!("{authority}-shadow"),
    }
}

/// The callout that mirrors a request with `headers` (as the filter saw
/// them) and `body` to `cluster`.
pub(crate) fn request(
    cluster: &str,
    headers: &HeaderList,
    body: Vec<u8>,
    timeout: std::time::Duration,
) -> HttpRequest {
    let pseudo = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let method = pseudo(":method").unwrap_or("GET");
    let path = pseudo(":path").unwrap_or("/");
    let authority = shadow_authority(pseudo(":authority").unwrap_or(cluster));
    let mut copy = HttpRequest::new(cluster, method, path).timeout(timeout);
    for (name, value) in copy.headers.iter_mut() {
        if name == ":authority" {
            *value = authority.clone();
        }
    }
    copy.headers.extend(
        headers
            .iter()
            .filter(|(k, _)| {
                !k.starts_with(':') && !NOT_COPIED.iter().any(|n| k.eq_ignore_ascii_case(n))
            })
            .cloned(),
    );
    copy.body(body)
}
