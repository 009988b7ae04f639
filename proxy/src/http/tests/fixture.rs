//! The proxy side of the handler tests: a [`Proxy`] serves one listener's
//! routes from a YAML configuration by calling the handler directly, as the
//! listener does for each request of an accepted connection.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use wasp_filter_host::FilterEngine;

use crate::body::BoxError;
use crate::conn::ConnInfo;
use crate::http::body::ProxyBody;
use crate::snapshot::Snapshot;
use crate::state::ProxyState;
use crate::telemetry::Metrics;
use crate::wasm::PluginLoader;
use crate::wasm::modules::FileModules;

/// The client every test request comes from.
pub const CLIENT: &str = "203.0.113.7:50123";

/// The Wasm engine, shared by every test: creating one reserves a pooling
/// allocator and starts a ticker thread. Its filter metrics go to a registry
/// of their own; each proxy gets fresh standard metrics.
fn engine() -> FilterEngine {
    static ENGINE: OnceLock<FilterEngine> = OnceLock::new();
    ENGINE
        .get_or_init(|| crate::server::filter_engine(&Metrics::new()).expect("wasm engine"))
        .clone()
}

/// A proxy serving the first listener of a configuration, with one client
/// connection to it.
pub struct Proxy {
    pub state: Arc<ProxyState>,
    listener: Arc<str>,
    conn: Arc<ConnInfo>,
}

impl Proxy {
    /// Builds the snapshot of `yaml` (which must be valid) and a connection
    /// from [`CLIENT`] to its first listener.
    pub async fn start(yaml: &str) -> Self {
        let config = wasp_config::parse(yaml).expect("valid test configuration");
        let name = config.listeners[0].name.clone();
        let metrics = Arc::new(Metrics::new());
        let plugins = PluginLoader {
            engine: engine(),
            modules: Arc::new(FileModules),
            node: crate::wasm::node::NodeOverrides::default(),
            clusters: Arc::default(),
        };
        let snapshot = Snapshot::build(
            config,
            1,
            None,
            &metrics,
            &plugins,
            &crate::mesh::MeshIdentity::new(),
        )
        .await
        .expect("snapshot builds");
        let address = snapshot.listeners[&name].address;
        let listener: Arc<str> = name.as_str().into();
        let state = ProxyState::new(snapshot, metrics);
        let client: SocketAddr = CLIENT.parse().unwrap();
        let conn = Arc::new(ConnInfo {
            address,
            client,
            client_ip: client.ip().to_string().into(),
            client_ip_header: HeaderValue::from_str(&client.ip().to_string()).unwrap(),
            scheme: "http",
            accepted: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_active_ms: AtomicU64::new(0),
            id: 1,
            tls: OnceLock::new(),
        });
        Self {
            state,
            listener,
            conn,
        }
    }

    /// The handler's response, its body not read yet (the request holds its
    /// cluster slots until the body is dropped).
    pub async fn respond<B>(&self, req: Request<B>) -> Response<ProxyBody>
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<BoxError>,
    {
        let handled = crate::http::handle(
            Arc::clone(&self.state),
            Arc::clone(&self.conn),
            Arc::clone(&self.listener),
            req,
        );
        match handled.await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }

    /// The handler's response, read completely.
    pub async fn send<B>(&self, req: Request<B>) -> Reply
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<BoxError>,
    {
        Reply::read(self.respond(req).await).await
    }

    /// `GET path` with `Host: app.test`, read completely.
    pub async fn get(&self, path: &str) -> Reply {
        self.send(get(path)).await
    }
}

/// `GET path` with `Host: app.test` and no body.
pub fn get(path: &str) -> Request<Empty<Bytes>> {
    Request::get(path)
        .header(http::header::HOST, "app.test")
        .body(Empty::new())
        .unwrap()
}

/// A response read completely.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    /// Reads `response`'s body to the end.
    pub async fn read(response: Response<ProxyBody>) -> Self {
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("response body").to_bytes();
        Self {
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8(body.to_vec()).expect("UTF-8 body"),
        }
    }

    /// The value of header `name`, which must be present once.
    pub fn header(&self, name: &str) -> &str {
        let mut values = self.headers.get_all(name).iter();
        let value = values
            .next()
            .unwrap_or_else(|| panic!("no `{name}` header"));
        assert!(values.next().is_none(), "`{name}` appears more than once");
        value.to_str().unwrap()
    }
}

/// A listener sending everything to cluster `app` at `endpoints`, with
/// extra flow-style YAML fields on the route (`route`, e.g. `timeout: 3s`)
/// and on the cluster (`cluster`, e.g. `circuit_breakers: {...}`).
pub fn forward_all(endpoints: &[String], route: &str, cluster: &str) -> String {
    let endpoints: Vec<String> = endpoints.iter().map(|e| format!("\"{e}\"")).collect();
    let extra = |fields: &str| {
        if fields.is_empty() {
            String::new()
        } else {
            format!(", {fields}")
        }
    };
    format!(
        r#"
listeners:
  - name: ingress
    address: 127.0.0.1:8080
    routes:
      - match: {{ prefix: / }}
        route: {{ cluster: app{} }}
clusters:
  - {{ name: app, endpoints: [{}]{} }}
"#,
        extra(route),
        endpoints.join(", "),
        extra(cluster)
    )
}
