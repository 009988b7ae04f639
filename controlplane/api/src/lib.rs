//! The wasp control plane's gRPC API, generated from
//! `controlplane/proto/wasp/controlplane/v1/controlplane.proto`: the
//! `Admin` service (`waspctl`) and the `Discovery` service (proxies); and
//! [`signing`], the module signatures `waspctl` makes and proxies check;
//! [`tls`], the connector of a channel to the control plane's TLS endpoint.

pub mod signing;
pub mod tls;

/// `wasp.controlplane.v1`.
#[allow(missing_docs, clippy::all)]
pub mod v1 {
    tonic::include_proto!("wasp.controlplane.v1");
}

pub use v1::*;

/// Largest message either side accepts (a module upload or download).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
