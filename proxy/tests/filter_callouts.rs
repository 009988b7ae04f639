//! HTTP and gRPC callouts of filters through the real `wasp` binary: unary
//! gRPC and full-duplex streams to HTTP/2 clusters.

mod support;

use support::*;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// An HTTP/2 gRPC upstream: answers every call with the request's message
/// prefixed by `re:`, `grpc-status: 0` in the trailers.
async fn grpc_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service = service_fn(|req: Request<Incoming>| async move {
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
                    let mut trailers = http::HeaderMap::new();
                    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
                    let body = Full::new(Bytes::from(framed))
                        .with_trailers(async move { Some(Ok(trailers)) });
                    let mut response = Response::new(body);
                    response.headers_mut().insert(
                        "content-type",
                        http::HeaderValue::from_static("application/grpc"),
                    );
                    Ok::<_, hyper::Error>(response)
                });
                let _ =
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
            });
        }
    });
    addr
}

/// Calls `pkg.Echo/Say` on cluster `grpc` with message `hello` and resumes
/// the request with the answer as `x-filter`.
fn grpc_filter() -> String {
    wat(
        r#"(import "env" "proxy_grpc_call" (func $grpc (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_buffer_bytes" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_continue_stream" (func $continue (param i32) (result i32)))"#,
        r#"(data (i32.const 100) "grpc")
  (data (i32.const 110) "pkg.Echo")
  (data (i32.const 120) "Say")
  (data (i32.const 130) "hello")
  (data (i32.const 140) "x-filter")
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (if (i32.ne (call $grpc (i32.const 100) (i32.const 4) (i32.const 110) (i32.const 8) (i32.const 120) (i32.const 3)
      (i32.const 0) (i32.const 0) (i32.const 130) (i32.const 5) (i32.const 2000) (i32.const 32)) (i32.const 0))
      (then unreachable))
    i32.const 1)
  (func (export "proxy_on_grpc_receive") (param i32 i32) (param $size i32)
    (drop (call $get (i32.const 5) (i32.const 0) (local.get $size) (i32.const 16) (i32.const 20)))
    (drop (call $add (i32.const 0) (i32.const 140) (i32.const 8) (i32.load (i32.const 16)) (i32.load (i32.const 20))))
    (drop (call $continue (i32.const 0))))
  (func (export "proxy_on_grpc_close") (param i32 i32 i32) unreachable)"#,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_callouts_reach_an_http2_cluster() {
    let dir = temp_dir();
    let up = upstream().await;
    let grpc = grpc_upstream().await;
    let (path, listen, admin) = config_with(
        &dir,
        up,
        &[("grpc", grpc_filter())],
        &chain("grpc", "grpc", "fail_closed", ""),
        &route("/", "grpc"),
        &format!("  - name: grpc\n    endpoints: ['{grpc}']\n    protocol: http2\n"),
    );
    let proxy = start(&path, listen, admin).await;
    assert_eq!(
        get(proxy.listen, "/x", &[]).await.unwrap(),
        (
            StatusCode::OK,
            "x-filter=re:/pkg.Echo/Say:hello\nbody=".to_owned()
        )
    );
    drop(proxy);
    let _ = std::fs::remove_dir_all(dir);
}

/// A response body fed from a channel, then trailers `grpc-status: 0`.
struct EchoBody {
    chunks: tokio::sync::mpsc::UnboundedReceiver<Bytes>,
    done: bool,
}

impl http_body::Body for EchoBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, hyper::Error>>> {
        if self.done {
            return std::task::Poll::Ready(None);
        }
        match self.chunks.poll_recv(cx) {
            std::task::Poll::Pending => std::task::Poll::Pending,
            std::task::Poll::Ready(Some(chunk)) => {
                std::task::Poll::Ready(Some(Ok(http_body::Frame::data(chunk))))
            }
            std::task::Poll::Ready(None) => {
                self.done = true;
                let mut trailers = http::HeaderMap::new();
                trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
                std::task::Poll::Ready(Some(Ok(http_body::Frame::trailers(trailers))))
            }
        }
    }
}

/// An HTTP/2 upstream echoing each request data frame as soon as it arrives.
async fn grpc_echo_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service = service_fn(|req: Request<Incoming>| async move {
                    let (tx, chunks) = tokio::sync::mpsc::unbounded_channel();
                    let mut body = req.into_body();
                    tokio::spawn(async move {
                        while let Some(Ok(frame)) = body.frame().await {
                            if let Ok(data) = frame.into_data() {
                                let _ = tx.send(data);
                            }
                        }
                    });
                    let mut response = Response::new(EchoBody {
                        chunks,
                        done: false,
                    });
                    response.headers_mut().insert(
                        "content-type",
                        http::HeaderValue::from_static("application/grpc"),
                    );
                    Ok::<_, hyper::Error>(response)
                });
                let _ =
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
            });
        }
    });
    addr
}

/// Opens a stream on cluster `grpc`, sends "a"; on its echo sends "b" and
/// ends; on close with status 0 resumes with `x-filter` = what it received.
fn grpc_stream_filter() -> String {
    wat(
        r#"(import "env" "proxy_grpc_stream" (func $open (param i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_grpc_send" (func $send (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_buffer_bytes" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_continue_stream" (func $continue (param i32) (result i32)))"#,
        r#"(data (i32.const 100) "grpc")
  (data (i32.const 110) "pkg.Chat")
  (data (i32.const 120) "Talk")
  (data (i32.const 130) "ab")
  (data (i32.const 140) "x-filter")
  (global $got (mut i32) (i32.const 0))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (if (i32.ne (call $open (i32.const 100) (i32.const 4) (i32.const 110) (i32.const 8) (i32.const 120) (i32.const 4)
      (i32.const 0) (i32.const 0) (i32.const 32)) (i32.const 0)) (then unreachable))
    (drop (call $send (i32.load (i32.const 32)) (i32.const 130) (i32.const 1) (i32.const 0)))
    i32.const 1)
  (func (export "proxy_on_grpc_receive") (param $ctx i32) (param $token i32) (param $size i32)
    (drop (call $get (i32.const 5) (i32.const 0) (local.get $size) (i32.const 16) (i32.const 20)))
    (i32.store8 (i32.add (i32.const 200) (global.get $got)) (i32.load8_u (i32.load (i32.const 16))))
    (global.set $got (i32.add (global.get $got) (i32.const 1)))
    (if (i32.eq (global.get $got) (i32.const 1))
      (then (drop (call $send (local.get $token) (i32.const 131) (i32.const 1) (i32.const 1))))))
  (func (export "proxy_on_grpc_close") (param $ctx i32) (param $token i32) (param $status i32)
    (if (i32.eqz (local.get $status))
      (then
        (drop (call $add (i32.const 0) (i32.const 140) (i32.const 8) (i32.const 200) (global.get $got)))
        (drop (call $continue (i32.const 0))))))"#,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_streams_are_full_duplex_through_an_http2_cluster() {
    let dir = temp_dir();
    let up = upstream().await;
    let grpc = grpc_echo_upstream().await;
    let (path, listen, admin) = config_with(
        &dir,
        up,
        &[("chat", grpc_stream_filter())],
        &chain("chat", "chat", "fail_closed", ""),
        &route("/", "chat"),
        &format!("  - name: grpc\n    endpoints: ['{grpc}']\n    protocol: http2\n"),
    );
    let proxy = start(&path, listen, admin).await;
    let answer = tokio::time::timeout(Duration::from_secs(10), get(proxy.listen, "/x", &[]))
        .await
        .expect("answered")
        .unwrap();
    assert_eq!(answer, (StatusCode::OK, "x-filter=ab\nbody=".to_owned()));
    drop(proxy);
    let _ = std::fs::remove_dir_all(dir);
}
