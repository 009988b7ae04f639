//! `waspctl`: the operator's command line for the wasp control plane.
//! Every failure prints one line (`waspctl: ...`) and exits 1; an invalid
//! configuration lists every error with its path.

mod commands;
mod connect;
mod output;
mod rollouts;
mod sign;
mod tls;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Manage Wasm modules and configurations of a wasp control plane.
#[derive(Parser)]
#[command(name = "waspctl", version, about)]
pub struct Cli {
    /// The control plane's gRPC address: `http://` for its plaintext
    /// endpoint, `https://` for its TLS endpoint (with --ca-file).
    #[arg(
        long,
        global = true,
        env = "WASP_SERVER",
        default_value = "http://127.0.0.1:7070"
    )]
    server: String,
    /// The roots (PEM) that wasp-cp's TLS endpoint certificate must chain
    /// to, for an `https://` --server: the mesh trust bundle (`GET
    /// /trust-bundle` on wasp-cp's JSON port).
    #[arg(long, global = true, env = "WASP_CA_FILE", value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// A file whose first line is the bearer token [default: the WASP_TOKEN
    /// environment variable]. Writes need it; reads from loopback do not.
    #[arg(long, global = true, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Output format.
    #[arg(short, long, global = true, value_enum, default_value_t = Output::Table)]
    output: Output,
    #[command(subcommand)]
    command: Command,
}

/// Output format.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned columns.
    Table,
    /// JSON.
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Wasm modules in the registry.
    Module {
        #[command(subcommand)]
        command: ModuleCommand,
    },
    /// Validate a configuration and make it the current version.
    Apply {
        /// The configuration (YAML or JSON); plugin modules are `name@tag`,
        /// `name` (`name@latest`) or `sha256:<hex>`.
        #[arg(short, long, value_name = "FILE")]
        file: PathBuf,
        /// Validate only.
        #[arg(long)]
        dry_run: bool,
        /// Why (kept in the history).
        #[arg(short, long, default_value = "")]
        message: String,
        /// The proxies this version is for: k=v,k2=v2 (those whose labels
        /// include every pair) [default: every proxy].
        #[arg(long, value_name = "LABELS", default_value = "")]
        selector: String,
    },
    /// Ed25519 keys for signing modules.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Show stored things.
    Get {
        #[command(subcommand)]
        command: GetCommand,
    },
    /// Make an earlier configuration version current again (as a new version).
    Rollback {
        /// The version to restore [default: the one before the current one].
        version: Option<u64>,
    },
    /// The proxies subscribed to the control plane and what they run.
    Proxies,
}

#[derive(Subcommand)]
enum ModuleCommand {
    /// Upload a module (.wasm or .wat).
    Push {
        /// The module file.
        file: PathBuf,
        /// Module name.
        #[arg(long)]
        name: String,
        /// Tag.
        #[arg(long, default_value = "latest")]
        tag: String,
        /// A signature file to send with it (repeatable) [default:
        /// FILE.sig, when it exists].
        #[arg(long, value_name = "SIG")]
        signature: Vec<PathBuf>,
    },
    /// Sign a module file with an Ed25519 secret key; writes FILE.sig.
    Sign {
        /// The module file.
        file: PathBuf,
        /// The secret key file (`waspctl key generate`).
        #[arg(long, value_name = "KEY")]
        key: PathBuf,
        /// Where to write the signature [default: FILE.sig].
        #[arg(long, value_name = "SIG")]
        out: Option<PathBuf>,
    },
    /// List modules.
    Ls,
    /// Remove `NAME[@TAG]` (refused while the current configuration uses it).
    Rm {
        /// NAME or NAME@TAG (tag `latest` when omitted).
        module: String,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Make a key pair: NAME.key (secret, mode 0600) and NAME.pub (the line
    /// a proxy's --trusted-keys file lists).
    Generate {
        /// The files' path without extension.
        #[arg(long, value_name = "NAME")]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum GetCommand {
    /// A configuration version's document (the current one by default).
    Config {
        /// The version.
        #[arg(long)]
        version: Option<u64>,
    },
    /// Every configuration version.
    Versions,
    /// Canary rollouts (newest first) and where each stands.
    Rollout {
        /// Only this rollout (`<version>:<chain>/<plugin>`).
        id: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("waspctl: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(&cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("waspctl: {err}");
            ExitCode::FAILURE
        }
    }
}
