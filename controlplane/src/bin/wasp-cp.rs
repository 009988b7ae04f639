//! `wasp-cp`: the wasp control plane server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use wasp_controlplane::auth::{OpenReads, read_token_file};
use wasp_controlplane::ca::{CaOptions, SuppliedCa};
use wasp_controlplane::server::tls::TlsOptions;
use wasp_controlplane::server::{self, ServeOptions};

/// The wasp control plane: stores Wasm modules and versioned
/// configurations and pushes them to subscribed proxies.
#[derive(Parser)]
#[command(name = "wasp-cp", version, about)]
struct Cli {
    /// Where modules and configurations are stored (created when absent).
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
    /// The plaintext gRPC address (waspctl, and proxies bootstrapping with
    /// the token).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7070")]
    listen: SocketAddr,
    /// The TLS gRPC address: the same API with a certificate from this
    /// control plane's CA; proxies holding a workload certificate reconnect
    /// here and authenticate with it. `off`: no TLS endpoint.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7072", value_parser = parse_tls_listen)]
    tls_listen: TlsListen,
    /// A DNS name or IP address of the TLS endpoint's certificate
    /// (repeat for several); the names proxies reach it by.
    #[arg(long = "tls-san", value_name = "NAME", default_values = ["localhost", "127.0.0.1"])]
    tls_sans: Vec<String>,
    /// The `host:port` proxies are told to reach the TLS endpoint at
    /// [default: the --tls-listen address; an unspecified host such as
    /// 0.0.0.0 means the host each proxy reached --listen at].
    #[arg(long, value_name = "HOST:PORT")]
    tls_advertise: Option<String>,
    /// The read-only HTTP/JSON address (/modules, /configs, /proxies,
    /// /rollouts, /metrics).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7071")]
    http_listen: SocketAddr,
    /// A file whose first line is the bearer token writes and proxies'
    /// subscriptions need [default: the WASP_TOKEN environment variable].
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Which reads (waspctl's `get`, `proxies`, `module ls`, `diff`; the
    /// JSON endpoints; module fetches) need no token: `loopback` (from a
    /// loopback address), `any` (from anywhere) or `none` (every read
    /// needs it). Writes and subscriptions always need it.
    #[arg(long, value_name = "WHERE", default_value_t = OpenReads::Loopback)]
    open_reads: OpenReads,
    /// The SPIFFE trust domain of issued identities.
    #[arg(long, value_name = "DOMAIN", default_value = "cluster.local")]
    trust_domain: String,
    /// Lifetime of issued workload certificates (proxies renew at half).
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = humantime::parse_duration)]
    cert_lifetime: std::time::Duration,
    /// Sign with this CA certificate (PEM, then its chain) instead of the
    /// root kept in the store; needs --ca-key.
    #[arg(long, value_name = "FILE", requires = "ca_key")]
    ca_cert: Option<String>,
    /// The private key of --ca-cert (PEM).
    #[arg(long, value_name = "FILE", requires = "ca_cert")]
    ca_key: Option<String>,
    /// Rotate the stored root: a new root is trusted beside the old one at
    /// once, signs after DURATION, and is the only root after twice
    /// DURATION (give at least --cert-lifetime; do not restart meanwhile).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, conflicts_with = "ca_cert")]
    rotate_root: Option<std::time::Duration>,
    /// The roots proxies trust with --ca-cert [default: the --ca-cert file].
    #[arg(long, value_name = "FILE", requires = "ca_cert")]
    ca_bundle: Option<String>,
}

/// `--tls-listen`: an address, or none.
#[derive(Clone, Copy, Debug)]
struct TlsListen(Option<SocketAddr>);

fn parse_tls_listen(value: &str) -> Result<TlsListen, String> {
    if value == "off" {
        return Ok(TlsListen(None));
    }
    value
        .parse()
        .map(|addr| TlsListen(Some(addr)))
        .map_err(|e| format!("'{value}': {e} (an address, or `off`)"))
}

fn token(cli: &Cli) -> Result<String, String> {
    match &cli.token_file {
        Some(path) => read_token_file(path),
        None => match std::env::var("WASP_TOKEN") {
            Ok(token) if !token.trim().is_empty() => Ok(token.trim().to_owned()),
            _ => Err("no token: set WASP_TOKEN or pass --token-file FILE".to_owned()),
        },
    }
}

async fn shutdown() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("shutting down");
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let token = match token(&cli) {
        Ok(token) => token,
        Err(err) => {
            eprintln!("wasp-cp: {err}");
            return ExitCode::FAILURE;
        }
    };
    let options = ServeOptions {
        data_dir: cli.data_dir,
        listen: cli.listen,
        http_listen: cli.http_listen,
        token,
        open_reads: cli.open_reads,
        ca: CaOptions {
            trust_domain: cli.trust_domain,
            lifetime: cli.cert_lifetime,
            supplied: cli
                .ca_cert
                .zip(cli.ca_key)
                .map(|(cert_file, key_file)| SuppliedCa {
                    cert_file,
                    key_file,
                    bundle_file: cli.ca_bundle,
                }),
            rotate_root: cli.rotate_root,
        },
        tls: cli.tls_listen.0.map(|listen| TlsOptions {
            listen,
            names: cli.tls_sans,
            advertise: cli.tls_advertise,
        }),
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("wasp-cp: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(server::serve(options, shutdown())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("wasp-cp: {err}");
            ExitCode::FAILURE
        }
    }
}
