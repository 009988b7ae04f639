//! A gRPC upstream: tonic's standard Health service (unary `Check` and
//! server-streaming `Watch`), served over h2c by hyper.

use std::net::SocketAddr;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic_health::server::HealthReporter;

/// A running gRPC Health server; stops when dropped.
pub struct GrpcHealth {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Sets what `Check` and `Watch` report per service name.
    pub reporter: HealthReporter,
    task: JoinHandle<()>,
}

impl GrpcHealth {
    /// Starts the server on a free loopback port.
    pub async fn start() -> GrpcHealth {
        let socket = TcpListener::bind("127.0.0.1:0").await.expect("bind grpc");
        let addr = socket.local_addr().expect("grpc address");
        let (reporter, service) = tonic_health::server::health_reporter();
        let service = TowerToHyperService::new(service);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = socket.accept().await else {
                    continue;
                };
                let service = service.clone();
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        GrpcHealth {
            addr,
            reporter,
            task,
        }
    }
}

impl Drop for GrpcHealth {
    fn drop(&mut self) {
        self.task.abort();
    }
}
