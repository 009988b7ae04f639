//! `wasp-cp`: the gRPC server (the `Admin` and `Discovery` services) on the
//! plaintext bootstrap endpoint and, with the same services, on the
//! [`tls`] endpoint; and the read-only HTTP/JSON endpoints, over one
//! [`Registry`].

mod admin;
mod convert;
mod discovery;
mod http;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use wasp_controlplane_api::MAX_MESSAGE_BYTES;
use wasp_controlplane_api::admin_server::AdminServer;
use wasp_controlplane_api::discovery_server::DiscoveryServer;

use crate::CpError;
use crate::auth::{Auth, OpenReads};
use crate::ca::{Ca, CaError, CaOptions};
use crate::metrics::Counters;
use crate::proxies::Proxies;
use crate::registry::Registry;
use crate::store::RedbStore;

pub use admin::AdminService;
pub use discovery::DiscoveryService;

/// How to run the control plane.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Where the store lives.
    pub data_dir: PathBuf,
    /// The gRPC address.
    pub listen: SocketAddr,
    /// The HTTP/JSON address.
    pub http_listen: SocketAddr,
    /// The bearer token writes and subscriptions need.
    pub token: String,
    /// Which reads need no token.
    pub open_reads: OpenReads,
    /// The certificate authority.
    pub ca: CaOptions,
    /// The TLS endpoint, when served.
    pub tls: Option<tls::TlsOptions>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] CpError),
    /// An address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The CA could not start.
    #[error(transparent)]
    Ca(#[from] CaError),
    /// The gRPC server failed.
    #[error("gRPC server: {0}")]
    Grpc(#[from] tonic::transport::Error),
}

/// What the services share.
#[derive(Clone)]
pub struct Shared {
    /// Modules and configurations.
    pub registry: Arc<Registry>,
    /// Subscribed proxies.
    pub proxies: Arc<Proxies>,
    /// Access checks.
    pub auth: Auth,
    /// The certificate authority proxies' CSRs go to.
    pub ca: Arc<Ca>,
    /// Subscriptions and handshakes, counted.
    pub counters: Arc<Counters>,
    /// The TLS endpoint proxies are told about (`host:port`), if served.
    pub tls_endpoint: Option<String>,
}

impl Shared {
    /// Every proxy, with the state of each rollout it took part in.
    pub fn proxies_view(&self) -> Vec<crate::proxies::ProxyStatus> {
        let rollouts = self.registry.rollouts();
        let mut all = self.proxies.list();
        for proxy in &mut all {
            for part in &mut proxy.rollouts {
                if let Some(r) = rollouts.iter().find(|r| r.id == part.id) {
                    part.state = r.state.as_str().to_owned();
                }
            }
        }
        all
    }
}

/// Runs `job` on the registry off the async workers (the store's commits
/// wait for the disk).
pub(crate) async fn blocking<T: Send + 'static>(
    shared: &Shared,
    job: impl FnOnce(&Registry) -> Result<T, CpError> + Send + 'static,
) -> Result<T, CpError> {
    let registry = Arc::clone(&shared.registry);
    tokio::task::spawn_blocking(move || job(&registry))
        .await
        .unwrap_or_else(|err| Err(CpError::BadRequest(format!("request failed: {err}"))))
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}

/// The advertised `host:port` of the TLS endpoint bound at `bound`.
fn advertised(options: &tls::TlsOptions, bound: SocketAddr) -> String {
    options
        .advertise
        .clone()
        .unwrap_or_else(|| bound.to_string())
}

/// Both gRPC endpoints serve the same services.
fn router(shared: &Shared) -> tonic::transport::server::Router {
    tonic::transport::Server::builder()
        .add_service(
            AdminServer::new(AdminService::new(shared.clone()))
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(
            DiscoveryServer::new(DiscoveryService::new(shared.clone()))
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        )
}

/// Opens the store and serves until `shutdown` completes.
pub async fn serve(
    options: ServeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let store = Arc::new(RedbStore::open(&options.data_dir).map_err(CpError::from)?);
    let ca = Arc::new(Ca::start(store.clone(), &options.ca)?);
    let grpc = bind(options.listen).await?;
    let http = bind(options.http_listen).await?;
    let tls = match &options.tls {
        Some(tls_options) => {
            let config = tls::server_config(&ca, tls_options.names.clone())?;
            let listener = bind(tls_options.listen).await?;
            let bound = listener.local_addr().map_err(|source| ServeError::Bind {
                addr: tls_options.listen,
                source,
            })?;
            Some((listener, config, advertised(tls_options, bound), bound))
        }
        None => None,
    };
    let shared = Shared {
        ca,
        registry: Arc::new(Registry::new(store)?),
        proxies: Arc::new(Proxies::default()),
        auth: Auth::new(options.token, options.open_reads),
        counters: Arc::new(Counters::default()),
        tls_endpoint: tls.as_ref().map(|(_, _, advertised, _)| advertised.clone()),
    };
    tracing::info!(
        grpc = %options.listen,
        tls = ?tls.as_ref().map(|(_, _, advertised, bound)| format!("{bound} (advertised as {advertised})")),
        http = %options.http_listen,
        data_dir = %options.data_dir.display(),
        "wasp-cp started"
    );
    tokio::spawn(http::serve(http, shared.clone()));
    tokio::spawn(crate::rollout::run(Arc::clone(&shared.registry)));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    let until_stopped = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|s| *s).await;
    };
    let plain = router(&shared).serve_with_incoming_shutdown(
        tonic::transport::server::TcpIncoming::from(grpc),
        until_stopped(stopped.clone()),
    );
    match tls {
        Some((listener, config, _, _)) => {
            let incoming = tls::incoming(
                listener,
                config,
                shared.ca.trust_domain().to_owned(),
                Arc::clone(&shared.counters),
            );
            let secure =
                router(&shared).serve_with_incoming_shutdown(incoming, until_stopped(stopped));
            let (plain, secure) = tokio::join!(plain, secure);
            plain?;
            secure?;
        }
        None => plain.await?,
    }
    Ok(())
}
