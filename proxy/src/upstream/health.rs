//! Active health checking: every `interval`, each endpoint gets `GET path`
//! on a fresh connection in the cluster's protocol (HTTP/1.1 or h2c); a 200
//! within `timeout` is a success.
//! `unhealthy_threshold` failures in a row take an endpoint out of rotation,
//! `healthy_threshold` successes bring it back. Endpoints start healthy.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};

use super::Cluster;
use super::endpoint::Endpoint;
use wasp_config::{HealthCheck, UpstreamProtocol};

/// Probes the cluster's endpoints until the cluster is dropped.
pub fn spawn(cluster: Weak<Cluster>) {
    tokio::spawn(async move {
        loop {
            let Some(current) = cluster.upgrade() else {
                return;
            };
            let Some(check) = current.config.health_check.clone() else {
                return;
            };
            let endpoints = current.endpoints();
            let name = Arc::clone(&current.name);
            let protocol = current.protocol();
            drop(current);
            let probes = endpoints.iter().map(|endpoint| async {
                let ok = probe(endpoint, &check, &name, protocol).await;
                update(endpoint, &check, ok, &name);
            });
            futures_util::future::join_all(probes).await;
            tokio::time::sleep(check.interval).await;
        }
    });
}

async fn probe(
    endpoint: &Endpoint,
    check: &HealthCheck,
    cluster: &str,
    protocol: UpstreamProtocol,
) -> bool {
    let attempt = async {
        let stream = tokio::net::TcpStream::connect(endpoint.addr).await.ok()?;
        let request = Request::get(check.path.as_str())
            .header(http::header::USER_AGENT, "wasp-health-check")
            .body(Empty::<Bytes>::new())
            .ok()?;
        // The cluster name is the host, unless it cannot be one.
        let host = match http::uri::Authority::try_from(cluster) {
            Ok(authority) => authority,
            Err(_) => http::uri::Authority::try_from(endpoint.addr.to_string()).ok()?,
        };
        let response = send(stream, request, host, protocol).await?;
        let status = response.status();
        let _ = response.into_body().collect().await;
        Some(status == StatusCode::OK)
    };
    matches!(
        tokio::time::timeout(check.timeout, attempt).await,
        Ok(Some(true))
    )
}

/// Sends one request for `host` on a new connection speaking `protocol`.
async fn send(
    stream: tokio::net::TcpStream,
    mut request: Request<Empty<Bytes>>,
    host: http::uri::Authority,
    protocol: UpstreamProtocol,
) -> Option<http::Response<Incoming>> {
    let io = TokioIo::new(stream);
    match protocol {
        UpstreamProtocol::Http1 => {
            let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.ok()?;
            tokio::spawn(conn);
            request.headers_mut().insert(
                http::header::HOST,
                http::HeaderValue::from_str(host.as_str()).ok()?,
            );
            sender.send_request(request).await.ok()
        }
        UpstreamProtocol::Http2 => {
            let (mut sender, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                    .await
                    .ok()?;
            tokio::spawn(conn);
            let uri = http::Uri::builder()
                .scheme("http")
                .authority(host)
                .path_and_query(request.uri().clone().into_parts().path_and_query?)
                .build()
                .ok()?;
            *request.uri_mut() = uri;
            sender.send_request(request).await.ok()
        }
    }
}

fn update(endpoint: &Endpoint, check: &HealthCheck, ok: bool, cluster: &str) {
    let state = &endpoint.health;
    if ok {
        state.failures.store(0, Ordering::Relaxed);
        let streak = state.successes.fetch_add(1, Ordering::Relaxed) + 1;
        if streak >= check.healthy_threshold && !state.healthy.swap(true, Ordering::Relaxed) {
            endpoint.metrics.healthy.set(1);
            tracing::info!(cluster, endpoint = %endpoint.addr, "endpoint healthy again");
        }
    } else {
        state.successes.store(0, Ordering::Relaxed);
        let streak = state.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if streak >= check.unhealthy_threshold && state.healthy.swap(false, Ordering::Relaxed) {
            endpoint.metrics.healthy.set(0);
            tracing::warn!(cluster, endpoint = %endpoint.addr, "endpoint failed health checks; out of rotation");
        }
    }
}
