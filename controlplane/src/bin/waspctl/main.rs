//! `waspctl`: the operator's command line for the wasp control plane.
//! Every failure, a bad command line included, prints one line
//! (`waspctl: ...`) and exits 1; an invalid configuration lists every
//! error with its path.

mod commands;
mod connect;
mod diff;
mod output;
mod rollouts;
mod sign;
mod tls;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{Parser, Subcommand, ValueEnum};

/// Manage Wasm modules and configurations of a wasp control plane.
#[derive(Parser)]
#[command(name = "waspctl", bin_name = "waspctl", version, about)]
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
    /// environment variable]. Writes need it; reads from loopback do not
    /// unless wasp-cp runs with `--open-reads none`.
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
    /// A unified diff of two configuration versions' documents.
    Diff {
        /// The older version [default: the one before the current one, or
        /// with one version given, that one].
        from: Option<u64>,
        /// The newer version [default: the current one].
        to: Option<u64>,
        /// Compare the documents sent to proxies (every module pinned to
        /// `sha256:<hex>`) instead of the documents as applied.
        #[arg(long)]
        resolved: bool,
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

/// A command-line error as one line: clap's message without its usage
/// and hints, its detail lines joined to the first.
fn one_line(err: &clap::Error) -> String {
    let rendered = err.render().to_string();
    if err.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        // clap renders the whole help; name the command and point at it.
        let command: Vec<&str> = rendered
            .lines()
            .find_map(|l| l.strip_prefix("Usage: "))
            .unwrap_or("waspctl")
            .split_whitespace()
            .take_while(|w| !w.starts_with(['[', '<']))
            .collect();
        return format!(
            "'{}' requires a subcommand but one was not provided (see --help)",
            command.join(" ")
        );
    }
    rendered
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty())
        .map(|l| l.strip_prefix("error: ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err)
            if matches!(
                err.kind(),
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
            ) =>
        {
            let _ = err.print();
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            eprintln!("waspctl: {}", one_line(&err));
            return ExitCode::FAILURE;
        }
    };
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

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(args: &[&str]) -> String {
        let argv = std::iter::once("waspctl").chain(args.iter().copied());
        match Cli::try_parse_from(argv) {
            Ok(_) => panic!("{args:?} parsed"),
            Err(err) => one_line(&err),
        }
    }

    #[test]
    fn a_bad_command_line_is_one_line_without_usage() {
        for (args, expected) in [
            (
                &["apply"][..],
                "the following required arguments were not provided: --file <FILE>",
            ),
            (
                &["-o", "xml", "proxies"],
                "invalid value 'xml' for '--output <OUTPUT>' [possible values: table, json]",
            ),
            (
                &["rollback", "abc"],
                "invalid value 'abc' for '[VERSION]': invalid digit found in string",
            ),
            (
                &["module"],
                "'waspctl module' requires a subcommand but one was not provided (see --help)",
            ),
            (
                &[],
                "'waspctl' requires a subcommand but one was not provided (see --help)",
            ),
        ] {
            assert_eq!(error_of(args), expected, "{args:?}");
        }
    }
}
