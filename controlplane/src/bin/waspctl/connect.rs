//! The connection to the control plane: the gRPC channel (plain text, or
//! TLS with `--ca-file`), the token, and errors turned into one line.

use std::time::Duration;

use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use wasp_controlplane::auth::read_token_file;
use wasp_controlplane_api::MAX_MESSAGE_BYTES;
use wasp_controlplane_api::admin_client::AdminClient;

use crate::{Cli, tls};

/// An admin client that adds the token and author to every call.
pub type Client = AdminClient<InterceptedService<Channel, Metadata>>;

/// Adds `authorization` and `x-wasp-author` to each request.
#[derive(Clone)]
pub struct Metadata {
    token: Option<MetadataValue<tonic::metadata::Ascii>>,
    author: Option<MetadataValue<tonic::metadata::Ascii>>,
}

impl tonic::service::Interceptor for Metadata {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(token) = &self.token {
            request
                .metadata_mut()
                .insert("authorization", token.clone());
        }
        if let Some(author) = &self.author {
            request
                .metadata_mut()
                .insert("x-wasp-author", author.clone());
        }
        Ok(request)
    }
}

/// The token: `--token-file`, else `WASP_TOKEN`, else none.
fn token(cli: &Cli) -> Result<Option<String>, String> {
    match &cli.token_file {
        Some(path) => read_token_file(path).map(Some),
        None => Ok(std::env::var("WASP_TOKEN")
            .ok()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())),
    }
}

/// Connects to `--server`.
pub async fn connect(cli: &Cli) -> Result<Client, String> {
    let token = token(cli)?
        .map(|t| {
            format!("Bearer {t}")
                .parse()
                .map_err(|_| "the token must be printable ASCII".to_owned())
        })
        .transpose()?;
    let author = std::env::var("USER")
        .ok()
        .and_then(|user| user.parse().ok());
    let endpoint = Endpoint::from_shared(cli.server.clone())
        .map_err(|_| {
            format!(
                "--server {}: not a URL such as http://127.0.0.1:7070 or https://127.0.0.1:7072",
                cli.server
            )
        })?
        .connect_timeout(Duration::from_secs(5));
    let https = cli.server.starts_with("https://");
    let connected = match (&cli.ca_file, https) {
        (Some(ca_file), true) => {
            let connector = tls::connector(ca_file)?;
            endpoint
                .connect_with_connector(connector)
                .await
                .map_err(|err| match tls::certificate_refused(&err) {
                    Some(reason) => format!(
                        "{}: the control plane's certificate does not verify against --ca-file {}: {reason}",
                        cli.server,
                        ca_file.display()
                    ),
                    None => format!("cannot connect to {}: {}", cli.server, chain(&err)),
                })
        }
        (None, true) => {
            return Err(format!(
                "--server {}: https needs --ca-file (wasp-cp's trust bundle, e.g. from GET /trust-bundle on its JSON port)",
                cli.server
            ));
        }
        (Some(_), false) => {
            return Err(format!(
                "--ca-file needs an https:// --server (wasp-cp's TLS endpoint), not {}",
                cli.server
            ));
        }
        (None, false) => endpoint
            .connect()
            .await
            .map_err(|err| format!("cannot connect to {}: {}", cli.server, chain(&err))),
    };
    let channel = connected?;
    Ok(
        AdminClient::with_interceptor(channel, Metadata { token, author })
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES),
    )
}

/// An error and its sources on one line.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        let next = inner.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = inner.source();
    }
    text
}

/// A failed call as one line.
pub fn status(status: tonic::Status) -> String {
    let message = status.message().replace('\n', "; ");
    match status.code() {
        tonic::Code::Unavailable => format!("control plane unavailable: {message}"),
        tonic::Code::Unauthenticated => {
            format!("{message} (set WASP_TOKEN or pass --token-file)")
        }
        _ => message,
    }
}
