//! Helpers for the native tests: a request described field by field, run
//! through the authz filter on the SDK's mock host (`Harness`), answering
//! the status the client would see (200 when the filter lets it through).

#![allow(dead_code)]

use serde_json::Value;
use wasp_authz::Authz;
use wasp_filter_sdk::testing::{Harness, HostAction};

/// A request and the connection it came on.
#[derive(Clone, Debug)]
pub struct Req {
    pub method: String,
    pub path: String,
    pub authority: String,
    pub headers: Vec<(String, String)>,
    pub source: String,
    pub destination: String,
    pub port: u64,
    pub principal: Option<String>,
    pub sni: String,
    pub auth: Vec<(&'static str, String)>,
}

/// `GET /` to `example.com` on port 8080 from 10.1.2.3, no identity.
pub fn req() -> Req {
    Req {
        method: "GET".into(),
        path: "/".into(),
        authority: "example.com".into(),
        headers: Vec::new(),
        source: "10.1.2.3:40000".into(),
        destination: "10.9.9.9:8080".into(),
        port: 8080,
        principal: None,
        sni: String::new(),
        auth: Vec::new(),
    }
}

impl Req {
    pub fn method(mut self, method: &str) -> Req {
        self.method = method.into();
        self
    }
    pub fn path(mut self, path: &str) -> Req {
        self.path = path.into();
        self
    }
    pub fn host(mut self, authority: &str) -> Req {
        self.authority = authority.into();
        self
    }
    pub fn header(mut self, name: &str, value: &str) -> Req {
        self.headers.push((name.into(), value.into()));
        self
    }
    pub fn from(mut self, source: &str) -> Req {
        self.source = source.into();
        self
    }
    pub fn to(mut self, destination: &str, port: u64) -> Req {
        self.destination = destination.into();
        self.port = port;
        self
    }
    pub fn peer(mut self, principal: &str) -> Req {
        self.principal = Some(principal.into());
        self
    }
    pub fn sni(mut self, sni: &str) -> Req {
        self.sni = sni.into();
        self
    }
    /// Sets `request.auth.<name>` as an authentication filter would.
    pub fn auth(mut self, name: &'static str, value: &str) -> Req {
        self.auth.push((name, value.into()));
        self
    }
}

/// A harness running authz with `config`; panics if it is rejected.
pub fn host(config: Value) -> Harness {
    let mut host = Harness::new(Authz::default());
    assert!(host.configure(&config.to_string()), "{:?}", host.logs());
    host
}

/// Sends `req` through the configured filter: 200 when it continues, else
/// the local reply's status.
pub fn send(host: &mut Harness, req: &Req) -> u32 {
    reply(host, req).0
}

/// Status and body of what the client gets (200 and an empty body when the
/// filter lets the request through).
pub fn reply(host: &mut Harness, req: &Req) -> (u32, String) {
    host.set_property(&["source", "address"], req.source.as_bytes());
    host.set_property(&["destination", "address"], req.destination.as_bytes());
    host.set_property(&["destination", "port"], &req.port.to_le_bytes());
    host.set_property(
        &["source", "principal"],
        req.principal.as_deref().unwrap_or("").as_bytes(),
    );
    host.set_property(&["connection", "requested_server_name"], req.sni.as_bytes());
    for name in ["principal", "audiences", "presenter", "claims"] {
        let value = req
            .auth
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str());
        // The mock host cannot forget a property; an absent one is written
        // as the empty value, which authz reads as absent too.
        host.set_property(
            &[format!("request.auth.{name}")],
            value.unwrap_or("").as_bytes(),
        );
    }
    let mut headers = vec![
        (":method", req.method.as_str()),
        (":path", req.path.as_str()),
        (":authority", req.authority.as_str()),
        (":scheme", "http"),
    ];
    headers.extend(req.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let mut stream = host.stream();
    let action = stream.request_headers(&headers, true);
    match stream.local_reply() {
        Some(reply) => (
            reply.status,
            String::from_utf8_lossy(&reply.body).into_owned(),
        ),
        None => {
            assert_eq!(action, HostAction::Continue);
            (200, String::new())
        }
    }
}

/// The status `req` gets under `config` on a fresh host.
pub fn status(config: Value, req: &Req) -> u32 {
    send(&mut host(config), req)
}

/// One ALLOW policy with one rule.
pub fn allow(rule: Value) -> Value {
    serde_json::json!({"policies": [{"name": "p", "action": "ALLOW", "rules": [rule]}]})
}

/// True when `req` is allowed by a single ALLOW policy with `rule`.
pub fn allowed(rule: Value, req: &Req) -> bool {
    match status(allow(rule), req) {
        200 => true,
        403 => false,
        other => panic!("unexpected status {other}"),
    }
}
