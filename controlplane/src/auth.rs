//! Access: writes need `authorization: Bearer <token>` (compared in
//! constant time); reads are open from loopback and need the token from
//! anywhere else.

use std::net::SocketAddr;

use subtle::ConstantTimeEq;

/// What a request does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Reads only.
    Read,
    /// Changes state.
    Write,
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
}

/// The control plane's token.
#[derive(Clone)]
pub struct Auth {
    token: String,
}

impl Auth {
    /// Requests must present `token`.
    pub fn new(token: String) -> Self {
        Self { token }
    }

    /// Checks a request of kind `access` from `peer` carrying the
    /// `authorization` header value `header`.
    pub fn check(
        &self,
        access: Access,
        peer: Option<SocketAddr>,
        header: Option<&str>,
    ) -> Result<(), AuthError> {
        let loopback = peer.is_some_and(|p| p.ip().is_loopback());
        if access == Access::Read && loopback {
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
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        self.check(access, request.remote_addr(), header)
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
        let auth = Auth::new("s3cret".into());
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
}
