//! The `wasp` command line: `wasp run --config FILE`, `wasp run
//! --control-plane URL --node-id ID`, `wasp validate FILE`.

mod allocator;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use wasp_proxy::source::ControlPlaneOptions;
use wasp_proxy::source::controlplane::{AddressOverrides, signatures};
use wasp_proxy::telemetry::logging::{self, LogFormat};

/// wasp: the WebAssembly Sidecar Proxy.
#[derive(Parser)]
#[command(name = "wasp", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start; the size of `Run` does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the proxy with a configuration file (reloaded on change or
    /// SIGHUP) or with configurations pushed by a control plane.
    Run {
        /// The configuration file (YAML or JSON).
        #[arg(
            short,
            long,
            value_name = "FILE",
            required_unless_present = "control_plane"
        )]
        config: Option<PathBuf>,
        /// Subscribe to this control plane (`wasp-cp`) instead of reading a
        /// file, e.g. http://127.0.0.1:7070; the token its subscription
        /// needs comes from WASP_TOKEN.
        #[arg(
            long,
            value_name = "URL",
            conflicts_with = "config",
            requires = "node_id"
        )]
        control_plane: Option<String>,
        /// This proxy's node id: the id the control plane lists it under and
        /// the `node.id` filters see (wins over the file's `node.id`).
        #[arg(long, value_name = "ID")]
        node_id: Option<String>,
        /// This proxy's labels for the control plane: k=v,k2=v2.
        #[arg(long, value_name = "LABELS", value_parser = parse_labels, default_value = "")]
        node_labels: Labels,
        /// Where modules and the last good configuration from the control
        /// plane are kept, so a restart works while it is away.
        #[arg(long, value_name = "DIR", default_value = "wasp-cache")]
        cache_dir: PathBuf,
        /// Worker threads serving requests [default: the number of CPUs].
        #[arg(long, value_name = "N")]
        workers: Option<usize>,
        /// Log format; the level comes from RUST_LOG (default `info`).
        #[arg(long, value_enum, default_value_t = Format::Text)]
        log_format: Format,
        /// The node cluster filters see (`node.cluster`); wins over the file's.
        #[arg(long, value_name = "CLUSTER")]
        node_cluster: Option<String>,
        /// Require every module from the control plane to be signed by one
        /// of these Ed25519 public keys (one hex key per line, `#` comments);
        /// other modules are refused with a NACK.
        #[arg(long, value_name = "FILE", requires = "control_plane")]
        trusted_keys: Option<PathBuf>,
        /// Serve the admin endpoints here whatever the pushed configuration
        /// says (proxies sharing a machine).
        #[arg(long, value_name = "ADDR", requires = "control_plane")]
        admin_address: Option<String>,
        /// Bind listener NAME of pushed configurations here instead
        /// (repeatable), e.g. `main=127.0.0.1:18080`.
        #[arg(long, value_name = "NAME=ADDR", value_parser = parse_listener_address, requires = "control_plane")]
        listener_address: Vec<(String, String)>,
        /// Most bytes of compiled filter modules kept cached (modules in use
        /// are kept regardless; unused ones are dropped after a reload).
        #[arg(long, value_name = "BYTES", default_value_t = wasp_config::defaults::MODULE_CACHE_BYTES)]
        module_cache_bytes: u64,
        /// Keep compiled filter modules in this directory, so that a restart
        /// loads them instead of compiling [default: CACHE_DIR/compiled
        /// with --control-plane, none otherwise].
        #[arg(long, value_name = "DIR")]
        compiled_cache_dir: Option<PathBuf>,
        /// Most series one labeled family of filter metrics may hold
        /// (`family{k="v"}` names); further series are refused and counted
        /// in `wasp_filter_metric_series_dropped_total{family}`.
        #[arg(long, value_name = "N", default_value_t = wasp_filter_host::DEFAULT_MAX_SERIES_PER_FAMILY)]
        metric_series_per_family: usize,
        /// How often to report canary counts to the control plane (while a
        /// configuration with canaries runs), e.g. `1s`, `500ms`.
        #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_report_interval, requires = "control_plane")]
        report_interval: std::time::Duration,
        /// The control plane's TLS endpoint (`https://HOST:PORT`), used with
        /// mutual TLS once this proxy holds a workload certificate
        /// [default: the endpoint the control plane names].
        #[arg(long, value_name = "URL", requires = "control_plane")]
        control_plane_tls_url: Option<String>,
    },
    /// Check a configuration file and print every error found.
    Validate {
        /// The configuration file (YAML or JSON).
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

/// `--report-interval`: a duration of at least 10 ms.
fn parse_report_interval(text: &str) -> Result<std::time::Duration, String> {
    let interval = humantime::parse_duration(text).map_err(|err| format!("'{text}': {err}"))?;
    if interval < std::time::Duration::from_millis(10) {
        return Err(format!("'{text}' is shorter than 10ms"));
    }
    Ok(interval)
}

/// `--node-labels`.
#[derive(Clone, Debug, Default)]
struct Labels(BTreeMap<String, String>);

fn parse_labels(text: &str) -> Result<Labels, String> {
    let mut labels = BTreeMap::new();
    for pair in text.split(',').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some((key, value)) if !key.is_empty() => {
                labels.insert(key.to_owned(), value.to_owned());
            }
            _ => return Err(format!("'{pair}' is not key=value")),
        }
    }
    Ok(Labels(labels))
}

fn parse_listener_address(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, addr)) if !name.is_empty() && !addr.is_empty() => {
            Ok((name.to_owned(), addr.to_owned()))
        }
        _ => Err(format!("'{text}' is not NAME=ADDR")),
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            config,
            control_plane,
            node_id,
            node_labels,
            cache_dir,
            workers,
            log_format,
            node_cluster,
            trusted_keys,
            admin_address,
            listener_address,
            module_cache_bytes,
            compiled_cache_dir,
            metric_series_per_family,
            report_interval,
            control_plane_tls_url,
        } => {
            allocator::limit_arenas(workers.unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
            }));
            logging::init(match log_format {
                Format::Text => LogFormat::Text,
                Format::Json => LogFormat::Json,
            });
            let trusted_keys = match trusted_keys.as_deref().map(signatures::load_trusted_keys) {
                Some(Err(err)) => {
                    eprintln!("wasp: --trusted-keys: {err}");
                    return ExitCode::FAILURE;
                }
                Some(Ok(keys)) => Some(keys),
                None => None,
            };
            let compiled_cache_dir = compiled_cache_dir
                .or_else(|| control_plane.is_some().then(|| cache_dir.join("compiled")));
            let control_plane = control_plane.map(|url| ControlPlaneOptions {
                url,
                tls_url: control_plane_tls_url,
                node_id: node_id.clone().unwrap_or_default(),
                labels: node_labels.0,
                cache_dir,
                token: std::env::var("WASP_TOKEN").ok().filter(|t| !t.is_empty()),
                trusted_keys,
                overrides: AddressOverrides {
                    admin: admin_address,
                    listeners: listener_address.into_iter().collect(),
                },
                mesh: wasp_proxy::mesh::MeshIdentity::new(),
                report_interval,
            });
            let options = wasp_proxy::RunOptions {
                config_path: config.unwrap_or_default(),
                control_plane,
                workers,
                node: wasp_proxy::wasm::node::NodeOverrides {
                    id: node_id,
                    cluster: node_cluster,
                },
                module_cache_bytes,
                compiled_cache_dir,
                metric_series_per_family,
                release_memory: Some(allocator::release_free_memory),
                release_compiler_code: Some(allocator::page_out_code),
            };
            match wasp_proxy::run(options) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("wasp: {err:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Validate { file } => match wasp_proxy::server::validate_file(&file) {
            Ok(summary) => {
                eprintln!("{}: ok ({summary})", file.display());
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("{}: {err:#}", file.display());
                ExitCode::FAILURE
            }
        },
    }
}
