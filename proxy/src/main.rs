//! The `wasp` command line: `wasp run --config FILE`, `wasp validate FILE`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use wasp_proxy::telemetry::logging::{self, LogFormat};

/// wasp: the WebAssembly Sidecar Proxy.
#[derive(Parser)]
#[command(name = "wasp", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy with a configuration file; reloads it on change or SIGHUP.
    Run {
        /// The configuration file (YAML or JSON).
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
        /// Worker threads serving requests [default: the number of CPUs].
        #[arg(long, value_name = "N")]
        workers: Option<usize>,
        /// Log format; the level comes from RUST_LOG (default `info`).
        #[arg(long, value_enum, default_value_t = Format::Text)]
        log_format: Format,
        /// The node id filters see (`node.id`); wins over the file's `node.id`.
        #[arg(long, value_name = "ID")]
        node_id: Option<String>,
        /// The node cluster filters see (`node.cluster`); wins over the file's.
        #[arg(long, value_name = "CLUSTER")]
        node_cluster: Option<String>,
    },
    /// Check a configuration file and print every error found.
    Validate {
        /// The configuration file (YAML or JSON).
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
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
            workers,
            log_format,
            node_id,
            node_cluster,
        } => {
            logging::init(match log_format {
                Format::Text => LogFormat::Text,
                Format::Json => LogFormat::Json,
            });
            let options = wasp_proxy::RunOptions {
                config_path: config,
                workers,
                node: wasp_proxy::wasm::node::NodeOverrides {
                    id: node_id,
                    cluster: node_cluster,
                },
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
