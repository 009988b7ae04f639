//! Active health checking: every `interval`, each endpoint gets `GET path`
//! on a fresh connection; a 200 within `timeout` is a success.
//! `unhealthy_threshold` failures in a row take an endpoint out of rotation,
//! `healthy_threshold` successes bring it back. Endpoints start healthy.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

use super::Cluster;
use super::endpoint::Endpoint;
use crate::config::HealthCheck;

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
            drop(current);
            let probes = endpoints.iter().map(|endpoint| async {
                let ok = probe(endpoint, &check, &name).await;
                update(endpoint, &check, ok, &name);
            });
            futures_util::future::join_all(probes).await;
            tokio::time::sleep(check.interval).await;
        }
    });
}

async fn probe(endpoint: &Endpoint, check: &HealthCheck, cluster: &str) -> bool {
    let attempt = async {
        let stream = tokio::net::TcpStream::connect(endpoint.addr).await.ok()?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .ok()?;
        tokio::spawn(conn);
        let request = Request::get(check.path.as_str())
            .header(http::header::HOST, cluster)
            .header(http::header::USER_AGENT, "wasp-health-check")
            .body(Empty::<Bytes>::new())
            .ok()?;
        let response = sender.send_request(request).await.ok()?;
        let status = response.status();
        let _ = response.into_body().collect().await;
        Some(status == StatusCode::OK)
    };
    matches!(
        tokio::time::timeout(check.timeout, attempt).await,
        Ok(Some(true))
    )
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
