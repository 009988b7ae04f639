//! Raw gRPC upstreams for filter callouts (HTTP/2 only, no protobuf): a
//! unary one answering `re:<path>:<message>`, and a full-duplex one sending
//! each request data frame back as soon as it arrives.

use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body::Frame;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// A running gRPC echo upstream; stops when dropped.
pub struct GrpcEcho {
    /// The address it listens on.
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl GrpcEcho {
    /// Answers every call with one message, `re:` + the request path + `:`
    /// + the request's first message, then `grpc-status: 0`.
    pub async fn unary() -> GrpcEcho {
        Self::serve(false).await
    }

    /// Sends every request data frame back as it arrives (gRPC framing
    /// included), then `grpc-status: 0` when the request ends.
    pub async fn duplex() -> GrpcEcho {
        Self::serve(true).await
    }

    async fn serve(duplex: bool) -> GrpcEcho {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind grpc echo");
        let addr = listener.local_addr().expect("grpc echo address");
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| async move {
                        let body = if duplex {
                            echo_frames(req)
                        } else {
                            echo_prefixed(req).await?
                        };
                        let mut response = Response::new(body);
                        response
                            .headers_mut()
                            .insert("content-type", HeaderValue::from_static("application/grpc"));
                        Ok::<_, hyper::Error>(response)
                    });
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        GrpcEcho { addr, task }
    }
}

impl Drop for GrpcEcho {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `grpc-status: 0`.
fn ok_trailers() -> HeaderMap {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    trailers
}

/// The unary answer: one framed message `re:<path>:<first message>`.
async fn echo_prefixed(req: Request<Incoming>) -> Result<EchoBody, hyper::Error> {
    let path = req.uri().path().to_owned();
    let body = req.into_body().collect().await?.to_bytes();
    let message = [
        &b"re:"[..],
        path.as_bytes(),
        b":",
        body.get(5..).unwrap_or_default(),
    ]
    .concat();
    let mut framed = vec![0];
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(&message);
    let (tx, chunks) = mpsc::unbounded_channel();
    let _ = tx.send(Bytes::from(framed));
    Ok(EchoBody {
        chunks,
        done: false,
    })
}

/// The duplex answer: the request's data frames, forwarded as they come.
fn echo_frames(req: Request<Incoming>) -> EchoBody {
    let (tx, chunks) = mpsc::unbounded_channel();
    let mut body = req.into_body();
    tokio::spawn(async move {
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(data) = frame.into_data() {
                let _ = tx.send(data);
            }
        }
    });
    EchoBody {
        chunks,
        done: false,
    }
}

/// A response body fed from a channel, then trailers `grpc-status: 0`.
struct EchoBody {
    chunks: mpsc::UnboundedReceiver<Bytes>,
    done: bool,
}

impl http_body::Body for EchoBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        if self.done {
            return Poll::Ready(None);
        }
        match self.chunks.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(chunk)) => Poll::Ready(Some(Ok(Frame::data(chunk)))),
            Poll::Ready(None) => {
                self.done = true;
                Poll::Ready(Some(Ok(Frame::trailers(ok_trailers()))))
            }
        }
    }
}
