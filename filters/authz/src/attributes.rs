//! What policies look at, read from the host once per request and only when
//! a policy asks: request headers, the connection's addresses, port and SNI,
//! the peer identity (`source.principal`), and what an authentication
//! filter published before this one (`request.auth.principal`, `.audiences`,
//! `.presenter`, `.claims`).
//!
//! [`Host`] is the host behind a [`Request`]: the proxy through the SDK in
//! the filter, a map in tests and the cost measurement.

use std::cell::{OnceCell, RefCell};
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;

use serde_json::Value;

/// The property an authentication filter publishes `iss/sub` in.
pub const AUTH_PRINCIPAL: &str = "request.auth.principal";
/// The property with the token's audiences (a JSON list of strings, or one string).
pub const AUTH_AUDIENCES: &str = "request.auth.audiences";
/// The property with the token's authorized presenter (`azp`).
pub const AUTH_PRESENTER: &str = "request.auth.presenter";
/// The property with the token's claims as a JSON object.
pub const AUTH_CLAIMS: &str = "request.auth.claims";

/// Where a request's facts come from.
pub trait Host {
    /// A request header's values joined with `,` (as Envoy's header
    /// matchers see several values); `None` when absent.
    fn header(&self, name: &str) -> Option<String>;
    /// A proxy attribute by path, e.g. `["source", "address"]`.
    fn attribute(&self, path: &[&str]) -> Option<Vec<u8>>;
    /// A property an earlier filter set, by its dotted name as one segment
    /// (`request.auth.principal`), the form Envoy and wasp both resolve.
    fn filter_state(&self, name: &str) -> Option<Vec<u8>>;
}

/// An attribute a policy compares with its values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attribute {
    /// A request header (`request.headers[name]`), lower-case name.
    Header(String),
    /// `:authority`, lower-cased (hosts match case-insensitively).
    Host,
    /// `:method`.
    Method,
    /// `:path` without its query or fragment.
    Path,
    /// The connection's peer address (`source.ip`, `ip_blocks`).
    SourceIp,
    /// The client address (`remote.ip`, `remote_ip_blocks`): the peer, or
    /// taken from `x-forwarded-for` past trusted proxies.
    RemoteIp,
    /// The local address the request arrived on (`destination.ip`).
    DestinationIp,
    /// The local port the request arrived on (`destination.port`, `ports`).
    DestinationPort,
    /// The peer's identity (`source.principal`, `principals`).
    SourcePrincipal,
    /// The namespace in the peer's identity (`…/ns/NAME/…`).
    SourceNamespace,
    /// `request.auth.principal` (`request_principals`).
    RequestPrincipal,
    /// `request.auth.audiences`: each audience.
    Audiences,
    /// `request.auth.presenter`.
    Presenter,
    /// A claim by path (`request.auth.claims[a][b]`): the string, or each
    /// string of a list.
    Claim(Vec<String>),
    /// `connection.requested_server_name`.
    Sni,
}

/// One request's attributes, each read from the [`Host`] at most once.
pub struct Request<'h, H: Host> {
    host: &'h H,
    xff_num_trusted_hops: u32,
    headers: RefCell<Vec<(String, Option<Rc<str>>)>>,
    authority: OnceCell<Option<String>>,
    method: OnceCell<Option<String>>,
    path: OnceCell<Option<String>>,
    source_ip: OnceCell<Option<IpAddr>>,
    remote_ip: OnceCell<Option<IpAddr>>,
    destination_ip: OnceCell<Option<IpAddr>>,
    destination_port: OnceCell<Option<u16>>,
    source_principal: OnceCell<Option<String>>,
    request_principal: OnceCell<Option<String>>,
    audiences: OnceCell<Vec<String>>,
    presenter: OnceCell<Option<String>>,
    claims: OnceCell<Option<Value>>,
    sni: OnceCell<Option<String>>,
}

impl<'h, H: Host> Request<'h, H> {
    /// A request read from `host`; `xff_num_trusted_hops` as configured.
    pub fn new(host: &'h H, xff_num_trusted_hops: u32) -> Self {
        Request {
            host,
            xff_num_trusted_hops,
            headers: RefCell::default(),
            authority: OnceCell::new(),
            method: OnceCell::new(),
            path: OnceCell::new(),
            source_ip: OnceCell::new(),
            remote_ip: OnceCell::new(),
            destination_ip: OnceCell::new(),
            destination_port: OnceCell::new(),
            source_principal: OnceCell::new(),
            request_principal: OnceCell::new(),
            audiences: OnceCell::new(),
            presenter: OnceCell::new(),
            claims: OnceCell::new(),
            sni: OnceCell::new(),
        }
    }

    /// The string values of `attribute` (none, one, or each element of a
    /// list), passed to `f`. Empty strings count as absent, except for
    /// headers, where an empty value is still a present header.
    pub fn with_strings<T>(&self, attribute: &Attribute, f: impl FnOnce(&[&str]) -> T) -> T {
        match attribute {
            Attribute::Header(name) => {
                // Istio matches a header's joined values as a whole and
                // each comma-separated value on its own (RFC 9110 lists).
                let value = self.header(name);
                match value.as_deref() {
                    Some(joined) if joined.contains(',') => {
                        let mut values = vec![joined];
                        values.extend(joined.split(','));
                        f(&values)
                    }
                    single => f(single.as_slice()),
                }
            }
            Attribute::Host => f(one(self.authority.get_or_init(|| {
                self.host
                    .header(":authority")
                    .map(|h| h.to_ascii_lowercase())
            }))
            .as_slice()),
            Attribute::Method => {
                f(one(self.method.get_or_init(|| self.host.header(":method"))).as_slice())
            }
            Attribute::Path => f(one(self
                .path
                .get_or_init(|| self.host.header(":path").map(|p| url_path(&p).to_owned())))
            .as_slice()),
            Attribute::SourcePrincipal => f(one(self.source_principal()).as_slice()),
            Attribute::SourceNamespace => {
                let principal = self.source_principal().as_deref();
                f(principal.and_then(namespace_of).as_slice())
            }
            Attribute::RequestPrincipal => f(one(self
                .request_principal
                .get_or_init(|| self.filter_state_string(AUTH_PRINCIPAL)))
            .as_slice()),
            Attribute::Presenter => f(one(self
                .presenter
                .get_or_init(|| self.filter_state_string(AUTH_PRESENTER)))
            .as_slice()),
            Attribute::Audiences => {
                let audiences = self.audiences.get_or_init(|| self.read_audiences());
                f(&audiences.iter().map(String::as_str).collect::<Vec<_>>())
            }
            Attribute::Claim(path) => {
                let claims = self.claims.get_or_init(|| {
                    let bytes = self.host.filter_state(AUTH_CLAIMS)?;
                    serde_json::from_slice(&bytes).ok()
                });
                let values = claims
                    .as_ref()
                    .map(|c| claim_strings(c, path))
                    .unwrap_or_default();
                f(&values)
            }
            Attribute::Sni => f(one(self.sni.get_or_init(|| {
                self.host
                    .attribute(&["connection", "requested_server_name"])
                    .map(text)
            }))
            .as_slice()),
            Attribute::SourceIp
            | Attribute::RemoteIp
            | Attribute::DestinationIp
            | Attribute::DestinationPort => f(&[]),
        }
    }

    /// The address `attribute` names (`SourceIp`, `RemoteIp`, `DestinationIp`).
    pub fn ip(&self, attribute: &Attribute) -> Option<IpAddr> {
        match attribute {
            Attribute::SourceIp => *self
                .source_ip
                .get_or_init(|| self.address(&["source", "address"])),
            Attribute::RemoteIp => *self.remote_ip.get_or_init(|| {
                self.forwarded_client()
                    .or_else(|| self.ip(&Attribute::SourceIp))
            }),
            Attribute::DestinationIp => *self
                .destination_ip
                .get_or_init(|| self.address(&["destination", "address"])),
            _ => None,
        }
    }

    /// The local port the request arrived on.
    pub fn destination_port(&self) -> Option<u16> {
        *self.destination_port.get_or_init(|| {
            let bytes: [u8; 8] = self
                .host
                .attribute(&["destination", "port"])?
                .try_into()
                .ok()?;
            u16::try_from(u64::from_le_bytes(bytes)).ok()
        })
    }

    fn header(&self, name: &str) -> Option<Rc<str>> {
        if let Some((_, value)) = self.headers.borrow().iter().find(|(n, _)| n == name) {
            return value.clone();
        }
        let value: Option<Rc<str>> = self.host.header(name).map(Into::into);
        self.headers
            .borrow_mut()
            .push((name.to_owned(), value.clone()));
        value
    }

    fn source_principal(&self) -> &Option<String> {
        self.source_principal
            .get_or_init(|| self.host.attribute(&["source", "principal"]).map(text))
    }

    fn filter_state_string(&self, name: &str) -> Option<String> {
        self.host.filter_state(name).map(text)
    }

    fn read_audiences(&self) -> Vec<String> {
        let Some(bytes) = self.host.filter_state(AUTH_AUDIENCES) else {
            return Vec::new();
        };
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Array(items)) => items
                .into_iter()
                .filter_map(|item| match item {
                    Value::String(s) => Some(s),
                    _ => None,
                })
                .collect(),
            Ok(Value::String(s)) => vec![s],
            _ => {
                let text = String::from_utf8_lossy(&bytes).into_owned();
                if text.is_empty() {
                    Vec::new()
                } else {
                    vec![text]
                }
            }
        }
    }

    fn address(&self, path: &[&str]) -> Option<IpAddr> {
        let bytes = self.host.attribute(path)?;
        parse_address(std::str::from_utf8(&bytes).ok()?)
    }

    /// The client address `x-forwarded-for` gives past the trusted proxies:
    /// the Nth entry from the right for N trusted hops (none for N = 0).
    fn forwarded_client(&self) -> Option<IpAddr> {
        let hops = usize::try_from(self.xff_num_trusted_hops).ok()?;
        if hops == 0 {
            return None;
        }
        let header = self.header("x-forwarded-for")?;
        let entry = header.rsplit(',').nth(hops - 1)?;
        parse_address(entry.trim())
    }
}

/// `bytes` as text, invalid UTF-8 replaced (no copy when it is valid).
fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// A single value as a list: none when absent or empty.
fn one(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

/// `ip:port`, `[ip6]:port` or a bare address.
fn parse_address(text: &str) -> Option<IpAddr> {
    text.parse::<SocketAddr>()
        .map(|a| a.ip())
        .or_else(|_| text.parse::<IpAddr>())
        .ok()
        .map(|ip| ip.to_canonical())
}

/// The path without its query string or fragment.
fn url_path(path: &str) -> &str {
    let end = path.find(['?', '#']).unwrap_or(path.len());
    &path[..end]
}

/// The namespace of a SPIFFE-style identity (`…/ns/NAME/…`).
fn namespace_of(principal: &str) -> Option<&str> {
    let start = principal.find("/ns/")? + "/ns/".len();
    let rest = &principal[start..];
    let name = &rest[..rest.find('/')?];
    (!name.is_empty()).then_some(name)
}

/// The strings at `path` in `claims`: a string, or the strings of a list.
fn claim_strings<'v>(claims: &'v Value, path: &[String]) -> Vec<&'v str> {
    let mut value = claims;
    for key in path {
        match value.get(key.as_str()) {
            Some(inner) => value = inner,
            None => return Vec::new(),
        }
    }
    match value {
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn url_path_drops_query_and_fragment() {
        assert_eq!(url_path("/a/b?x=1"), "/a/b");
        assert_eq!(url_path("/a#frag"), "/a");
        assert_eq!(url_path("/a"), "/a");
    }

    #[test]
    fn namespace_comes_from_the_ns_segment() {
        assert_eq!(namespace_of("spiffe://td/ns/shop/sa/web"), Some("shop"));
        assert_eq!(namespace_of("spiffe://td/sa/web"), None);
        assert_eq!(namespace_of("spiffe://td/ns//sa"), None);
    }

    #[test]
    fn claims_resolve_nested_paths_and_lists() {
        let claims = json!({"iss": "i", "a": {"b": ["x", 1, "y"]}, "n": 3});
        let path = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(claim_strings(&claims, &path(&["iss"])), ["i"]);
        assert_eq!(claim_strings(&claims, &path(&["a", "b"])), ["x", "y"]);
        assert!(claim_strings(&claims, &path(&["n"])).is_empty());
        assert!(claim_strings(&claims, &path(&["a", "c"])).is_empty());
    }

    #[test]
    fn addresses_parse_with_or_without_port() {
        assert_eq!(
            parse_address("127.0.0.1:80"),
            Some("127.0.0.1".parse().unwrap())
        );
        assert_eq!(parse_address("[::1]:80"), Some("::1".parse().unwrap()));
        assert_eq!(parse_address("10.0.0.1"), Some("10.0.0.1".parse().unwrap()));
        assert_eq!(
            parse_address("[::ffff:10.0.0.1]:1"),
            Some("10.0.0.1".parse().unwrap())
        );
        assert_eq!(parse_address("nope"), None);
    }
}
