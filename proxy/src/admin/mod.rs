//! The admin server, on its own port: `/ready`, `/metrics`, `/config_dump`,
//! `/filters`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::state::Control;

/// Binds the admin address and serves it in the background.
pub async fn start(address: SocketAddr, state: Arc<Control>) -> std::io::Result<()> {
    let socket = TcpListener::bind(address).await?;
    tracing::info!(%address, "admin listening");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = socket.accept().await else {
                continue;
            };
            let state = Arc::clone(&state);
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let state = Arc::clone(&state);
                    async move { Ok::<_, std::convert::Infallible>(route(&state, &req)) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(())
}

fn route(state: &Control, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "only GET is supported\n".into(),
        );
    }
    match req.uri().path() {
        "/ready" => {
            if state.draining.load(Ordering::SeqCst) {
                reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    "draining\n".into(),
                )
            } else {
                reply(StatusCode::OK, "text/plain", "ready\n".into())
            }
        }
        "/metrics" => reply(
            StatusCode::OK,
            "text/plain; version=0.0.4",
            state.proxy.metrics.render().into(),
        ),
        "/config_dump" => {
            let (snapshot, last) = state.running();
            let mut dump = snapshot.dump();
            dump["last_reload_error"] = last
                .as_ref()
                .and_then(|outcome| outcome.error_text())
                .map_or(serde_json::Value::Null, serde_json::Value::String);
            dump["last_reload"] = serde_json::to_value(&last).expect("JSON encoding never fails");
            let body = serde_json::to_vec_pretty(&dump).expect("JSON encoding never fails");
            reply(StatusCode::OK, "application/json", body.into())
        }
        "/filters" => {
            let snapshot = state.proxy.snapshot.load();
            let dump = crate::wasm::dump(
                &snapshot.filter_chains,
                &snapshot.canaries,
                &state.plugins.engine,
            );
            let body = serde_json::to_vec_pretty(&dump).expect("JSON encoding never fails");
            reply(StatusCode::OK, "application/json", body.into())
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "admin endpoints: /ready /metrics /config_dump /filters\n".into(),
        ),
    }
}

fn reply(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}
