//! An upstream for filter tests: it echoes what it received in response
//! headers (the request body, and the `x-bench-rewrite` header) and answers
//! with a fixed body sent in three separate chunks, so that body-buffering
//! filters see more than one body callback.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use tokio::task::JoinHandle;

/// The response body, in the chunks it is sent in.
pub const CHUNKS: [&str; 3] = ["hello ", "from the ", "upstream"];

/// Response header echoing the request's `x-bench-rewrite` (`none` if absent).
pub const ECHO_HEADER: &str = "x-upstream-saw-bench-rewrite";

/// Response header echoing the request body it received.
pub const ECHO_BODY: &str = "x-upstream-saw-body";

/// Pause between the response chunks.
const CHUNK_GAP: Duration = Duration::from_millis(20);

/// A running chunked-echo upstream (HTTP/1.1); stops when dropped.
pub struct ChunkedEcho {
    /// The address it listens on.
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl ChunkedEcho {
    /// Starts the upstream on a free loopback port.
    pub async fn start() -> ChunkedEcho {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind chunked echo");
        let addr = listener.local_addr().expect("chunked echo address");
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(answer);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        ChunkedEcho { addr, task }
    }
}

impl Drop for ChunkedEcho {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(
    request: http::Request<hyper::body::Incoming>,
) -> Result<
    http::Response<StreamBody<impl futures_util::Stream<Item = Result<Frame<Bytes>, Infallible>>>>,
    hyper::Error,
> {
    let saw = request
        .headers()
        .get("x-bench-rewrite")
        .map(|v| v.to_str().unwrap_or("?").to_owned())
        .unwrap_or_else(|| "none".into());
    let body = request.into_body().collect().await?.to_bytes();
    let body = String::from_utf8_lossy(&body).into_owned();
    let chunks = futures_util::stream::unfold(0, |i| async move {
        if i >= CHUNKS.len() {
            return None;
        }
        if i > 0 {
            tokio::time::sleep(CHUNK_GAP).await;
        }
        let frame = Frame::data(Bytes::from_static(CHUNKS[i].as_bytes()));
        Some((Ok::<_, Infallible>(frame), i + 1))
    });
    let response = http::Response::builder()
        .header(ECHO_HEADER, saw)
        .header(ECHO_BODY, body)
        .body(StreamBody::new(chunks))
        .expect("response");
    Ok(response)
}
