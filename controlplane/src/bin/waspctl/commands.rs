//! What each waspctl command does.

use serde_json::json;
use wasp_controlplane_api as api;

use crate::connect::{self, Client, status};
use crate::output;
use crate::sign;
use crate::{Cli, Command, GetCommand, KeyCommand, ModuleCommand, Output};
use wasp_controlplane::targeting;

type Result<T> = std::result::Result<T, String>;

/// Runs the command line's command.
pub async fn run(cli: &Cli) -> Result<()> {
    // Read local inputs before connecting, so a bad file is reported as such.
    match &cli.command {
        Command::Module {
            command:
                ModuleCommand::Push {
                    file,
                    name,
                    tag,
                    signature,
                },
        } => {
            let bytes = read(file)?;
            let signatures = sign::signatures_for(file, signature)?;
            let mut client = connect::connect(cli).await?;
            push(&mut client, cli.output, name, tag, bytes, signatures).await
        }
        Command::Module {
            command: ModuleCommand::Sign { file, key, out },
        } => sign::sign_file(file, key, out.as_deref()),
        Command::Key {
            command: KeyCommand::Generate { out },
        } => sign::generate(out),
        Command::Module {
            command: ModuleCommand::Ls,
        } => modules(&mut connect::connect(cli).await?, cli.output).await,
        Command::Module {
            command: ModuleCommand::Rm { module },
        } => {
            let (name, tag) = module.split_once('@').unwrap_or((module, ""));
            let mut client = connect::connect(cli).await?;
            let removed = client
                .remove_module(api::RemoveModuleRequest {
                    name: name.to_owned(),
                    tag: tag.to_owned(),
                })
                .await
                .map_err(status)?
                .into_inner();
            output::text(&format!(
                "removed {}@{} ({})",
                removed.name, removed.tag, removed.sha256
            ));
            Ok(())
        }
        Command::Apply {
            file,
            dry_run,
            message,
            selector,
        } => {
            let selector = targeting::parse(selector)?;
            let document = String::from_utf8(read(file)?)
                .map_err(|_| format!("{}: not UTF-8 text", file.display()))?;
            let mut client = connect::connect(cli).await?;
            let request = api::ApplyRequest {
                document,
                dry_run: *dry_run,
                message: message.clone(),
                selector: selector.into_iter().collect(),
            };
            apply(&mut client, cli.output, request).await
        }
        Command::Get {
            command: GetCommand::Config { version },
        } => {
            let mut client = connect::connect(cli).await?;
            let config = client
                .get_config(api::GetConfigRequest {
                    version: version.unwrap_or(0),
                })
                .await
                .map_err(status)?
                .into_inner();
            match cli.output {
                Output::Json => output::json(&config_json(&config)),
                Output::Table => output::text(config.document.trim_end()),
            }
            Ok(())
        }
        Command::Get {
            command: GetCommand::Versions,
        } => {
            let mut client = connect::connect(cli).await?;
            let versions = client
                .list_configs(api::ListConfigsRequest {})
                .await
                .map_err(status)?
                .into_inner()
                .versions;
            match cli.output {
                Output::Json => output::json(&versions.iter().map(config_json).collect()),
                Output::Table => output::table(
                    &["VERSION", "SELECTOR", "AUTHOR", "CREATED", "MESSAGE"],
                    &versions
                        .iter()
                        .map(|v| {
                            vec![
                                v.version.to_string(),
                                targeting::display(&v.selector.clone().into_iter().collect()),
                                v.author.clone(),
                                v.created_at.clone(),
                                v.message.clone(),
                            ]
                        })
                        .collect::<Vec<_>>(),
                ),
            }
            Ok(())
        }
        Command::Get {
            command: GetCommand::Rollout { id },
        } => {
            let mut client = connect::connect(cli).await?;
            crate::rollouts::show(&mut client, cli.output, id.as_deref()).await
        }
        Command::Diff { from, to, resolved } => {
            let mut client = connect::connect(cli).await?;
            let versions = crate::diff::Versions {
                from: *from,
                to: *to,
            };
            crate::diff::show(&mut client, cli.output, versions, *resolved).await
        }
        Command::Rollback { version } => {
            let mut client = connect::connect(cli).await?;
            let response = client
                .rollback(api::RollbackRequest {
                    version: version.unwrap_or(0),
                })
                .await
                .map_err(status)?
                .into_inner();
            applied(cli.output, response, false)
        }
        Command::Proxies => proxies(&mut connect::connect(cli).await?, cli.output).await,
    }
}

fn read(file: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(file).map_err(|err| format!("cannot read {}: {err}", file.display()))
}

async fn push(
    client: &mut Client,
    out: Output,
    name: &str,
    tag: &str,
    bytes: Vec<u8>,
    signatures: Vec<Vec<u8>>,
) -> Result<()> {
    let module = client
        .push_module(api::PushModuleRequest {
            name: name.to_owned(),
            tag: tag.to_owned(),
            bytes,
            signatures,
        })
        .await
        .map_err(status)?
        .into_inner();
    match out {
        Output::Json => output::json(&module_json(&module)),
        Output::Table => output::text(&format!(
            "pushed {}@{} sha256:{} ({} bytes, {} signature(s))",
            module.name, module.tag, module.sha256, module.size, module.signatures
        )),
    }
    Ok(())
}

async fn modules(client: &mut Client, out: Output) -> Result<()> {
    let modules = client
        .list_modules(api::ListModulesRequest {})
        .await
        .map_err(status)?
        .into_inner()
        .modules;
    match out {
        Output::Json => output::json(&modules.iter().map(module_json).collect()),
        Output::Table => output::table(
            &["NAME", "TAG", "SHA256", "SIZE", "SIGNATURES", "UPLOADED"],
            &modules
                .iter()
                .map(|m| {
                    vec![
                        m.name.clone(),
                        m.tag.clone(),
                        m.sha256[..12.min(m.sha256.len())].to_owned(),
                        m.size.to_string(),
                        m.signatures.to_string(),
                        m.uploaded_at.clone(),
                    ]
                })
                .collect::<Vec<_>>(),
        ),
    }
    Ok(())
}

async fn apply(client: &mut Client, out: Output, request: api::ApplyRequest) -> Result<()> {
    let dry_run = request.dry_run;
    let response = client.apply(request).await.map_err(status)?.into_inner();
    applied(out, response, dry_run)
}

/// Reports an apply or rollback: the version, or every error.
fn applied(out: Output, response: api::ApplyResponse, dry_run: bool) -> Result<()> {
    if out == Output::Json {
        output::json(&json!({
            "version": response.version,
            "errors": response.errors.iter().map(|e| json!({"path": e.path, "message": e.message})).collect::<Vec<_>>(),
        }));
    }
    if !response.errors.is_empty() {
        let list: Vec<String> = response
            .errors
            .iter()
            .map(|e| format!("  {}: {}", e.path, e.message))
            .collect();
        return Err(format!(
            "{} configuration error(s):\n{}",
            response.errors.len(),
            list.join("\n")
        ));
    }
    if out == Output::Table {
        if dry_run {
            output::text("valid (dry run: nothing stored)");
        } else {
            output::text(&format!("applied as version {}", response.version));
        }
    }
    Ok(())
}

async fn proxies(client: &mut Client, out: Output) -> Result<()> {
    let proxies = client
        .list_proxies(api::ListProxiesRequest {})
        .await
        .map_err(status)?
        .into_inner()
        .proxies;
    let labels = |p: &api::ProxyStatus| {
        let mut labels: Vec<String> = p.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        labels.sort();
        labels.join(",")
    };
    match out {
        Output::Json => output::json(
            &proxies
                .iter()
                .map(|p| {
                    json!({
                        "node_id": p.node_id,
                        "labels": p.labels,
                        "address": p.address,
                        "connected": p.connected,
                        "connected_since": p.connected_since,
                        "running_version": p.running_version,
                        "last_version": p.last_version,
                        "last_result": p.last_result,
                        "last_error": p.last_error,
                        "last_report_at": p.last_report_at,
                        "transport": p.transport,
                        "peer_identity": p.peer_identity,
                        "rollouts": crate::rollouts::proxy_json(p),
                    })
                })
                .collect(),
        ),
        Output::Table => output::table(
            &[
                "NODE",
                "LABELS",
                "ADDRESS",
                "CONNECTED",
                "TRANSPORT",
                "SINCE",
                "RUNNING",
                "LAST",
                "ROLLOUTS",
                "ERROR",
            ],
            &proxies
                .iter()
                .map(|p| {
                    let last = match p.last_result.as_str() {
                        "" => "-".to_owned(),
                        result => format!("{result} v{}", p.last_version),
                    };
                    vec![
                        p.node_id.clone(),
                        labels(p),
                        if p.address.is_empty() {
                            "-".to_owned()
                        } else {
                            p.address.clone()
                        },
                        if p.connected { "yes" } else { "no" }.to_owned(),
                        p.transport.clone(),
                        p.connected_since.clone(),
                        p.running_version.to_string(),
                        last,
                        crate::rollouts::proxy_cell(p),
                        p.last_error.replace('\n', "; "),
                    ]
                })
                .collect::<Vec<_>>(),
        ),
    }
    Ok(())
}

fn module_json(m: &api::ModuleInfo) -> serde_json::Value {
    json!({"name": m.name, "tag": m.tag, "sha256": m.sha256, "size": m.size, "signatures": m.signatures, "uploaded_at": m.uploaded_at})
}

fn config_json(c: &api::ConfigVersion) -> serde_json::Value {
    json!({
        "version": c.version,
        "author": c.author,
        "created_at": c.created_at,
        "message": c.message,
        "document": c.document,
        "resolved": c.resolved,
        "selector": c.selector,
    })
}
