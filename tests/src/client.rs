//! Clients for the tests: HTTP/1.1 and h2c (prior knowledge) through
//! hyper-util's pooled client, TLS with ALPN through rustls, and whole
//! responses collected for assertions.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http::{HeaderMap, Request, Response, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client as LegacyClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::ServerName;

/// Errors of bodies the tests build.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The request body type of every client here.
pub type Body = BoxBody<Bytes, BoxError>;

/// An empty request body.
pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// A request body with these bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A response read completely.
#[derive(Clone, Debug)]
pub struct Resp {
    /// Status code.
    pub status: u16,
    /// HTTP version of the response.
    pub version: Version,
    /// Response headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
    /// Trailers, if any were sent.
    pub trailers: Option<HeaderMap>,
}

impl Resp {
    /// Reads a response to its end.
    pub async fn read(response: Response<Incoming>) -> anyhow::Result<Resp> {
        let (parts, body) = response.into_parts();
        let collected = body.collect().await.context("reading the response body")?;
        let trailers = collected.trailers().cloned();
        Ok(Resp {
            status: parts.status.as_u16(),
            version: parts.version,
            headers: parts.headers,
            body: collected.to_bytes(),
            trailers,
        })
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics with the body when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// How long [`Client::answer`] and [`Client::get_until`] wait for one answer.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// A pooled client speaking HTTP/1.1 or h2c with prior knowledge.
#[derive(Clone)]
pub struct Client {
    inner: LegacyClient<HttpConnector, Body>,
}

impl Client {
    /// An HTTP/1.1 client with keep-alive.
    pub fn http1() -> Client {
        Self::build(false)
    }

    /// An HTTP/2 client with prior knowledge (h2c).
    pub fn h2c() -> Client {
        Self::build(true)
    }

    fn build(http2: bool) -> Client {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(10)));
        let inner = LegacyClient::builder(TokioExecutor::new())
            .http2_only(http2)
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Client { inner }
    }

    /// Sends a request and returns the streaming response.
    pub async fn send(&self, request: Request<Body>) -> anyhow::Result<Response<Incoming>> {
        self.inner
            .request(request)
            .await
            .context("sending the request")
    }

    /// Sends a request and reads the whole response.
    pub async fn request(&self, request: Request<Body>) -> anyhow::Result<Resp> {
        Resp::read(self.send(request).await?).await
    }

    /// GET `url`.
    pub async fn get(&self, url: &str) -> anyhow::Result<Resp> {
        self.request(Request::get(url).body(empty())?).await
    }

    /// GET `url` with extra headers.
    pub async fn get_with(&self, url: &str, headers: &[(&str, &str)]) -> anyhow::Result<Resp> {
        let mut request = Request::get(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.request(request.body(empty())?).await
    }

    /// Sends `request` with `headers` added and reads the whole answer;
    /// fails the test naming the request when none comes within 10 s.
    pub async fn answer(
        &self,
        mut request: http::request::Builder,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Resp {
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(full(body)).expect("request");
        let what = format!("{} {}", request.method(), request.uri());
        match tokio::time::timeout(ANSWER_TIMEOUT, self.request(request)).await {
            Ok(resp) => resp.unwrap_or_else(|e| panic!("{what}: {e:#}")),
            Err(_) => panic!("no answer to {what} within {ANSWER_TIMEOUT:?}"),
        }
    }

    /// Repeats a GET of `url` with `headers` until `done` holds of its
    /// answer, for up to 5 s (each GET waits at most 10 s); fails the test
    /// naming `what` and the last answer otherwise.
    pub async fn get_until(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        what: &str,
        done: impl Fn(&Resp) -> bool,
    ) -> Resp {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let resp = match tokio::time::timeout(ANSWER_TIMEOUT, self.get_with(url, headers)).await
            {
                Ok(resp) => resp.expect("GET"),
                Err(_) => panic!("{what}: no answer to GET {url} within {ANSWER_TIMEOUT:?}"),
            };
            if done(&resp) {
                return resp;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{what}: last answer {} {:?} {}",
                resp.status,
                resp.headers,
                resp.text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// One request on a fresh HTTP/1.1 connection to `addr`, with exactly the
/// headers given (`host` among them), read whole: what a differential test
/// sends alike to two proxies.
pub async fn one_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Resp {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("HTTP/1.1 handshake");
    tokio::spawn(connection);
    let mut request = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(body.into())).expect("request");
    let response = sender
        .send_request(request)
        .await
        .unwrap_or_else(|e| panic!("{method} {path} to {addr}: {e}"));
    Resp::read(response).await.expect("reading the response")
}

/// GET `url` on a fresh HTTP/1.1 client.
pub async fn get(url: &str) -> anyhow::Result<Resp> {
    Client::http1().get(url).await
}

/// A request over TLS to `addr` (certificate checked against `roots` for
/// `server_name`), offering `alpn`. Returns the negotiated protocol and the
/// response, which is sent as HTTP/2 when `h2` was negotiated and HTTP/1.1
/// otherwise.
pub async fn tls_request(
    addr: SocketAddr,
    server_name: &str,
    roots: rustls::RootCertStore,
    alpn: &[&[u8]],
    request: Request<Body>,
) -> anyhow::Result<(Option<Vec<u8>>, Resp)> {
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tls_request_with(config, addr, server_name, request).await
}

/// [`tls_request`] with the client's TLS settings given whole (e.g. with a
/// client certificate for mutual TLS).
pub async fn tls_request_with(
    config: rustls::ClientConfig,
    addr: SocketAddr,
    server_name: &str,
    request: Request<Body>,
) -> anyhow::Result<(Option<Vec<u8>>, Resp)> {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = ServerName::try_from(server_name.to_owned())?;
    let tls = connector
        .connect(name, tcp)
        .await
        .context("TLS handshake")?;
    let negotiated = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    let io = TokioIo::new(tls);
    let response = if negotiated.as_deref() == Some(b"h2") {
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
        tokio::spawn(conn);
        let mut request = request;
        *request.version_mut() = Version::HTTP_2;
        sender.send_request(request).await?
    } else {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
        tokio::spawn(conn);
        sender.send_request(request).await?
    };
    Ok((negotiated, Resp::read(response).await?))
}
