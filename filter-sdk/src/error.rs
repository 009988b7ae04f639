//! The SDK's error type: a host call that failed, or host data that could not be decoded.

use wasp_abi::{MapDecodeError, Status};

/// Why an SDK operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The host answered a call with a non-`Ok` status.
    #[error("host call {call} failed with status {status:?}")]
    Host {
        /// The `proxy_*` function that failed.
        call: &'static str,
        /// The status the host returned.
        status: Status,
    },
    /// The host answered with a status code outside the ABI.
    #[error("host call {call} returned unknown status code {code}")]
    UnknownStatus {
        /// The `proxy_*` function that was called.
        call: &'static str,
        /// The raw code.
        code: u32,
    },
    /// The host returned a header map the SDK could not decode.
    #[error("host call {call} returned a malformed header map: {source}")]
    BadMap {
        /// The `proxy_*` function that was called.
        call: &'static str,
        /// What was wrong with the map.
        source: MapDecodeError,
    },
}

impl Error {
    /// The ABI status behind this error, when the host returned one.
    pub fn status(&self) -> Option<Status> {
        match self {
            Error::Host { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// True when a shared-data write lost a compare-and-swap race.
    pub fn is_cas_mismatch(&self) -> bool {
        self.status() == Some(Status::CasMismatch)
    }
}

/// The SDK's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Turns a raw status code into `Ok(())` or an [`Error`] naming the call.
pub(crate) fn check(call: &'static str, code: u32) -> Result<()> {
    match Status::try_from(code) {
        Ok(Status::Ok) => Ok(()),
        Ok(status) => Err(Error::Host { call, status }),
        Err(code) => Err(Error::UnknownStatus { call, code }),
    }
}
