//! Access: writes need `authorization: Bearer <token>` (compared in
//! constant time); reads are open where [`OpenReads`] says (by default
//! from loopback) and need the token from anywhere else. A proxy's
//! subscription always needs the token, unless the proxy reached the TLS
//! endpoint with a workload certificate: it is authenticated by that
//! instead, and must claim the identity the certificate carries
//! ([`Auth::check_subscriber`]).

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use subtle::ConstantTimeEq;

/// What a request does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Reads only: open where [`OpenReads`] says.
    Read,
    /// Changes state: always needs the token.
    Write,
    /// A proxy's subscription (it receives every configuration and may be
    /// issued an identity): always needs the token when the proxy has no
    /// workload certificate.
    Subscribe,
}

/// Which reads need no token (`wasp-cp --open-reads`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OpenReads {
    /// Reads from a loopback address need no token; others do.
    #[default]
    Loopback,
    /// No read needs a token, wherever it comes from.
    Any,
    /// Every read needs the token, from loopback too.
    Closed,
}

impl OpenReads {
    /// Whether a read from `peer` needs no token.
    pub fn admits(self, peer: Option<SocketAddr>) -> bool {
        match self {
            OpenReads::Loopback => peer.is_some_and(|p| p.ip().is_loopback()),
            OpenReads::Any => true,
            OpenReads::Closed => false,
        }
    }
}

impl FromStr for OpenReads {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "loopback" => Ok(OpenReads::Loopback),
            "any" => Ok(OpenReads::Any),
            "none" => Ok(OpenReads::Closed),
            _ => Err(format!(
                "'{value}': expected loopback, any or none (which reads need no token)"
            )),
        }
    }
}

impl fmt::Display for OpenReads {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OpenReads::Loopback => "loopback",
            OpenReads::Any => "any",
            OpenReads::Closed => "none",
        })
    }
}

/// Why a request was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// No bearer token was sent.
    #[error("this request needs a token (authorization: Bearer <token>)")]
    Missing,
    /// The token is wrong.
    #[error("invalid token")]
    Invalid,
    /// The client certificate names another identity than the one the
    /// subscription claims.
    #[error(
        "client certificate identity {presented} does not match the identity {claimed} this subscription claims"
    )]
    IdentityMismatch {
        /// The SPIFFE ID of the client certificate.
        presented: String,
        /// The SPIFFE ID the subscription's labels give.
        claimed: String,
    },
}

/// Who sent a request and how: set as the connection's info by the TLS
/// endpoint; plaintext connections have only an address.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Peer {
    /// The client's address.
    pub addr: Option<SocketAddr>,
    /// Whether the connection is TLS.
    pub tls: bool,
    /// The SPIFFE ID of the verified client certificate (mutual TLS).
    pub identity: Option<String>,
}

impl Peer {
    /// The peer of a gRPC request.
    pub fn of<T>(request: &tonic::Request<T>) -> Peer {
        request.extensions().get::<Peer>().cloned().unwrap_or(Peer {
            addr: request.remote_addr(),
            tls: false,
            identity: None,
        })
    }

    /// `plaintext`, `tls` or `mtls`.
    pub fn transport(&self) -> &'static str {
        match (self.tls, &self.identity) {
            (false, _) => "plaintext",
            (true, None) => "tls",
            (true, Some(_)) => "mtls",
        }
    }
}

/// The `authorization` metadata of a gRPC request.
pub fn authorization<T>(request: &tonic::Request<T>) -> Option<&str> {
    request
        .metadata()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
}

/// The control plane's token, and which reads need none.
#[derive(Clone)]
pub struct Auth {
    token: String,
    open_reads: OpenReads,
}

impl Auth {
    /// Requests must present `token`, except reads that `open_reads` admits.
    pub fn new(token: String, open_reads: OpenReads) -> Self {
        Self { token, open_reads }
    }

    /// Checks a request of kind `access` from `peer` carrying the
    /// `authorization` header value `header`.
    pub fn check(
        &self,
        access: Access,
        peer: Option<SocketAddr>,
        header: Option<&str>,
    ) -> Result<(), AuthError> {
        if access == Access::Read && self.open_reads.admits(peer) {
            return Ok(());
        }
        let presented = header
            .and_then(|h| h.strip_prefix("Bearer "))
            .ok_or(AuthError::Missing)?;
        if bool::from(presented.as_bytes().ct_eq(self.token.as_bytes())) {
            Ok(())
        } else {
            Err(AuthError::Invalid)
        }
    }

    /// [`check`](Self::check) for a gRPC request, as a gRPC status.
    pub fn check_grpc<T>(
        &self,
        access: Access,
        request: &tonic::Request<T>,
    ) -> Result<(), tonic::Status> {
        self.check(access, Peer::of(request).addr, authorization(request))
            .map_err(|err| tonic::Status::unauthenticated(err.to_string()))
    }

    /// Checks a subscription claiming the SPIFFE ID `claimed`: a peer with
    /// a client certificate must present exactly that identity (the token
    /// is then not needed); any other peer needs the token, from loopback
    /// too.
    pub fn check_subscriber(
        &self,
        peer: &Peer,
        header: Option<&str>,
        claimed: &str,
    ) -> Result<(), AuthError> {
        match &peer.identity {
            Some(presented) if presented == claimed => Ok(()),
            Some(presented) => Err(AuthError::IdentityMismatch {
                presented: presented.clone(),
                claimed: claimed.to_owned(),
            }),
            None => self.check(Access::Subscribe, peer.addr, header),
        }
    }

    /// Checks a proxy's read (a module fetch): a verified workload
    /// certificate is enough; otherwise as any read.
    pub fn check_proxy_read<T>(&self, request: &tonic::Request<T>) -> Result<(), tonic::Status> {
        let peer = Peer::of(request);
        if peer.identity.is_some() {
            return Ok(());
        }
        self.check(Access::Read, peer.addr, authorization(request))
            .map_err(|err| tonic::Status::unauthenticated(err.to_string()))
    }
}

/// Reads a token: the first line of a file, trimmed; empty is an error.
pub fn read_token_file(path: &std::path::Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| format!("cannot read token file {}: {err}", path.display()))?;
    let token = text.lines().next().unwrap_or_default().trim().to_owned();
    if token.is_empty() {
        return Err(format!("token file {} is empty", path.display()));
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOOPBACK: &str = "127.0.0.1:5000";
    const REMOTE: &str = "10.1.2.3:5000";

    #[test]
    fn reads_are_open_on_loopback_and_writes_need_the_token() {
        let auth = Auth::new("s3cret".into(), OpenReads::default());
        let lo = Some(LOOPBACK.parse().unwrap());
        let remote = Some(REMOTE.parse().unwrap());
        assert_eq!(auth.check(Access::Read, lo, None), Ok(()));
        assert_eq!(
            auth.check(Access::Read, remote, None),
            Err(AuthError::Missing)
        );
        assert_eq!(auth.check(Access::Write, lo, None), Err(AuthError::Missing));
        assert_eq!(
            auth.check(Access::Write, lo, Some("Bearer nope")),
            Err(AuthError::Invalid)
        );
        assert_eq!(
            auth.check(Access::Write, lo, Some("s3cret")),
            Err(AuthError::Missing)
        );
        assert_eq!(
            auth.check(Access::Write, remote, Some("Bearer s3cret")),
            Ok(())
        );
    }

    #[test]
    fn a_certified_subscriber_must_claim_the_identity_of_its_certificate() {
        let auth = Auth::new("s3cret".into(), OpenReads::default());
        let mtls = Peer {
            addr: Some(REMOTE.parse().unwrap()),
            tls: true,
            identity: Some("spiffe://mesh.test/ns/shop/sa/web".into()),
        };
        assert_eq!(mtls.transport(), "mtls");
        // No token needed with a certificate.
        assert_eq!(
            auth.check_subscriber(&mtls, None, "spiffe://mesh.test/ns/shop/sa/web"),
            Ok(())
        );
        // Even the right token does not make a mismatch pass.
        assert_eq!(
            auth.check_subscriber(
                &mtls,
                Some("Bearer s3cret"),
                "spiffe://mesh.test/ns/shop/sa/db"
            ),
            Err(AuthError::IdentityMismatch {
                presented: "spiffe://mesh.test/ns/shop/sa/web".into(),
                claimed: "spiffe://mesh.test/ns/shop/sa/db".into(),
            })
        );
    }

    #[test]
    fn a_subscriber_without_a_certificate_needs_the_token_even_on_loopback() {
        let auth = Auth::new("s3cret".into(), OpenReads::default());
        let tls = Peer {
            addr: Some(REMOTE.parse().unwrap()),
            tls: true,
            identity: None,
        };
        assert_eq!(tls.transport(), "tls");
        let claimed = "spiffe://mesh.test/ns/shop/sa/web";
        assert_eq!(
            auth.check_subscriber(&tls, None, claimed),
            Err(AuthError::Missing)
        );
        assert_eq!(
            auth.check_subscriber(&tls, Some("Bearer s3cret"), claimed),
            Ok(())
        );
        let plain = Peer {
            addr: Some(LOOPBACK.parse().unwrap()),
            ..Peer::default()
        };
        assert_eq!(plain.transport(), "plaintext");
        assert_eq!(
            auth.check_subscriber(&plain, None, claimed),
            Err(AuthError::Missing)
        );
        assert_eq!(
            auth.check_subscriber(&plain, Some("Bearer wrong"), claimed),
            Err(AuthError::Invalid)
        );
        assert_eq!(
            auth.check_subscriber(&plain, Some("Bearer s3cret"), claimed),
            Ok(())
        );
    }

    #[test]
    fn open_reads_says_which_reads_need_no_token() {
        let lo = Some(LOOPBACK.parse().unwrap());
        let remote = Some(REMOTE.parse().unwrap());
        let any = Auth::new("s3cret".into(), OpenReads::Any);
        assert_eq!(any.check(Access::Read, remote, None), Ok(()));
        assert_eq!(any.check(Access::Read, None, None), Ok(()));
        assert_eq!(any.check(Access::Write, lo, None), Err(AuthError::Missing));
        assert_eq!(
            any.check(Access::Subscribe, remote, None),
            Err(AuthError::Missing)
        );
        let closed = Auth::new("s3cret".into(), OpenReads::Closed);
        assert_eq!(
            closed.check(Access::Read, lo, None),
            Err(AuthError::Missing)
        );
        assert_eq!(
            closed.check(Access::Read, lo, Some("Bearer nope")),
            Err(AuthError::Invalid)
        );
        assert_eq!(
            closed.check(Access::Read, lo, Some("Bearer s3cret")),
            Ok(())
        );
        // The default: loopback only; an unknown peer is not loopback.
        let loopback = Auth::new("s3cret".into(), OpenReads::default());
        assert_eq!(loopback.check(Access::Read, lo, None), Ok(()));
        assert_eq!(
            loopback.check(Access::Read, None, None),
            Err(AuthError::Missing)
        );
    }

    #[test]
    fn open_reads_parses_its_three_values_and_names_a_bad_one() {
        for (text, value) in [
            ("loopback", OpenReads::Loopback),
            ("any", OpenReads::Any),
            ("none", OpenReads::Closed),
        ] {
            assert_eq!(text.parse::<OpenReads>(), Ok(value));
            assert_eq!(value.to_string(), text);
        }
        assert_eq!(
            "all".parse::<OpenReads>(),
            Err("'all': expected loopback, any or none (which reads need no token)".into())
        );
    }

    #[test]
    fn a_subscription_needs_the_token_even_where_reads_are_open() {
        let lo = Some(LOOPBACK.parse().unwrap());
        for open in [OpenReads::Loopback, OpenReads::Any] {
            let auth = Auth::new("s3cret".into(), open);
            assert_eq!(
                auth.check(Access::Subscribe, lo, None),
                Err(AuthError::Missing)
            );
            assert_eq!(
                auth.check(Access::Subscribe, lo, Some("Bearer s3cret")),
                Ok(())
            );
        }
    }
}
