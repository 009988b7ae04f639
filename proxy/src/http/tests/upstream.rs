//! The upstream side of the handler tests: HTTP/1.1 servers on loopback,
//! running on the test's runtime, that record every request they receive.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A request as an upstream received it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Seen {
    /// The value of header `name`, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

/// How an upstream answers the `n`-th request (from 0) it received.
type Answer = dyn Fn(usize, &Seen) -> Option<Response<Full<Bytes>>> + Send + Sync;

/// A running upstream; stops accepting when dropped.
pub struct Upstream {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    accept: JoinHandle<()>,
}

impl Upstream {
    /// An upstream answering with `answer`; `None` never answers (the
    /// request is read, the connection stays open).
    pub async fn start(
        answer: impl Fn(usize, &Seen) -> Option<Response<Full<Bytes>>> + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let answer: Arc<Answer> = Arc::new(answer);
        let accept = tokio::spawn({
            let seen = Arc::clone(&seen);
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let (seen, answer) = (Arc::clone(&seen), Arc::clone(&answer));
                    let service =
                        service_fn(move |req| serve(req, Arc::clone(&seen), Arc::clone(&answer)));
                    tokio::spawn(
                        http1::Builder::new().serve_connection(TokioIo::new(stream), service),
                    );
                }
            }
        });
        Self { addr, seen, accept }
    }

    /// An upstream answering every request `200` with `body`.
    pub async fn ok(body: &'static str) -> Self {
        Self::start(move |_, _| {
            Some(Response::new(Full::new(Bytes::from_static(
                body.as_bytes(),
            ))))
        })
        .await
    }

    /// An upstream answering the `n`-th request with `statuses[n]` (the last
    /// status repeats), the attempt count it received as the body.
    pub async fn statuses(statuses: &'static [u16]) -> Self {
        Self::start(move |n, seen| {
            let status = statuses[n.min(statuses.len() - 1)];
            let attempt = seen.header("x-wasp-attempt-count").unwrap_or("-");
            let mut response = Response::new(Full::new(Bytes::from(attempt.to_owned())));
            *response.status_mut() = StatusCode::from_u16(status).unwrap();
            Some(response)
        })
        .await
    }

    /// An upstream that reads requests and never answers them.
    pub async fn silent() -> Self {
        Self::start(|_, _| None).await
    }

    /// The address as a configuration endpoint.
    pub fn endpoint(&self) -> String {
        self.addr.to_string()
    }

    /// The requests received so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn serve(
    req: Request<Incoming>,
    seen: Arc<Mutex<Vec<Seen>>>,
    answer: Arc<Answer>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let request = Seen {
        method: parts.method,
        uri: parts.uri,
        headers: parts.headers,
        body,
    };
    let n = {
        let mut seen = seen.lock().unwrap();
        seen.push(request.clone());
        seen.len() - 1
    };
    match answer(n, &request) {
        Some(response) => Ok(response),
        None => std::future::pending().await,
    }
}

/// A loopback port where nothing listens, so connecting is refused. The
/// port stays bound (without listening) while this lives, so no other test
/// can take it meanwhile.
pub struct Refusing {
    socket: socket2::Socket,
}

impl Refusing {
    pub fn new() -> Self {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
        socket.bind(&any_port.into()).expect("bind");
        Self { socket }
    }

    /// The address as a configuration endpoint.
    pub fn endpoint(&self) -> String {
        let addr = self.socket.local_addr().expect("bound address");
        addr.as_socket().expect("an IP address").to_string()
    }
}
