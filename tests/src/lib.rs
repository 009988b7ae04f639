//! Harness for wasp's end-to-end tests: start the real binary and real upstreams on loopback.
//!
//! [`Wasp`] builds and runs the `wasp` executable on a temporary configuration
//! with an admin server; [`Upstream`] is a controllable HTTP/1.1 + h2c server,
//! [`GrpcHealth`] a tonic gRPC server, [`WsEcho`] a WebSocket echo server and
//! [`ChunkedEcho`] an upstream for filter tests, [`ControlPlane`] runs
//! `wasp-cp` and `waspctl` ([`discovery`] drives its proxy API by hand), [`GrpcEcho`] raw gRPC upstreams for filter
//! callouts, [`RawUpstream`] and [`RawConn`] HTTP/1.1 on raw sockets;
//! [`client`] has HTTP/1.1, h2c and TLS
//! clients; [`Config`] builds the configuration a test runs on;
//! [`jwt`] signs test tokens and serves a JWKS;
//! [`filter_module`] finds the built `.wasm` filters, [`wat`] holds
//! filters written as WAT and [`emscripten`] builds filters written in C.

pub mod chunked;
pub mod client;
pub mod config;
pub mod controlplane;
pub mod discovery;
pub mod emscripten;
pub mod envoy;
pub mod grpc;
pub mod grpc_echo;
pub mod jwt;
pub mod mesh;
pub mod metrics;
pub mod modules;
pub mod ports;
pub mod raw;
pub mod tls;
pub mod upstream;
pub mod wasp;
pub mod wat;
pub mod ws;

pub use chunked::ChunkedEcho;
pub use client::{Client, Resp};
pub use config::{Cluster, Config, FilterChain, HealthCheck, Listener, Plugin, Retry, Route};
pub use controlplane::ControlPlane;
pub use grpc::GrpcHealth;
pub use grpc_echo::GrpcEcho;
pub use metrics::Metrics;
pub use modules::filter_module;
pub use ports::free_addr;
pub use raw::{RawConn, RawResponse, RawUpstream};
pub use tls::TestCert;
pub use upstream::{Mode, Options, Upstream};
pub use wasp::Wasp;
pub use wat::WatDir;
pub use ws::WsEcho;
