//! Read-only HTTP/JSON endpoints for curl: `GET /modules`, `/configs`,
//! `/configs/current`, `/proxies`, `/rollouts` and `/metrics` (Prometheus text). Reads,
//! open where `wasp-cp --open-reads` says (by default from loopback);
//! elsewhere they need the bearer token.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpListener;

use super::Shared;
use crate::CpError;
use crate::auth::Access;

fn json(status: StatusCode, value: &impl Serialize) -> Response<Full<Bytes>> {
    let mut body = serde_json::to_vec_pretty(value).expect("serializable");
    body.push(b'\n');
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("valid response")
}

fn error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    json(status, &serde_json::json!({ "error": message }))
}

fn from_cp(result: Result<impl Serialize, CpError>) -> Response<Full<Bytes>> {
    match result {
        Ok(value) => json(StatusCode::OK, &value),
        Err(err @ CpError::NotFound(_)) => error(StatusCode::NOT_FOUND, &err.to_string()),
        Err(err) => error(StatusCode::INTERNAL_SERVER_ERROR, &err.to_string()),
    }
}

/// Answers one request.
fn handle(shared: &Shared, peer: SocketAddr, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if let Err(err) = shared.auth.check(Access::Read, Some(peer), authorization) {
        return error(StatusCode::UNAUTHORIZED, &err.to_string());
    }
    if request.method() != Method::GET {
        return error(StatusCode::METHOD_NOT_ALLOWED, "only GET");
    }
    match request.uri().path() {
        "/modules" => from_cp(shared.registry.modules()),
        "/configs" => from_cp(shared.registry.configs().map(|all| {
            all.into_iter()
                .map(|c| {
                    serde_json::json!({
                        "version": c.version,
                        "author": c.author,
                        "created_at": c.created_at,
                        "message": c.message,
                    })
                })
                .collect::<Vec<_>>()
        })),
        "/configs/current" => from_cp(shared.registry.config(None)),
        "/proxies" => json(StatusCode::OK, &shared.proxies_view()),
        "/rollouts" => json(StatusCode::OK, &shared.registry.rollouts()),
        "/trust-bundle" => Response::builder()
            .header(header::CONTENT_TYPE, "application/x-pem-file")
            .body(Full::new(Bytes::from(shared.ca.bundle())))
            .expect("valid response"),
        "/metrics" => Response::builder()
            .header(header::CONTENT_TYPE, "text/plain; version=0.0.4")
            .body(Full::new(Bytes::from(shared.counters.render())))
            .expect("valid response"),
        _ => error(
            StatusCode::NOT_FOUND,
            "not found; try /modules, /configs, /configs/current, /proxies, /rollouts, /trust-bundle, /metrics",
        ),
    }
}

/// Serves HTTP/1.1 on `listener` until the process ends.
pub async fn serve(listener: TcpListener, shared: Shared) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                tracing::warn!(error = %err, "HTTP accept failed");
                continue;
            }
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let response = handle(&shared, peer, &request);
                async move { Ok::<_, Infallible>(response) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
