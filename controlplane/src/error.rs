//! What can go wrong in a control-plane operation, mapped to gRPC statuses
//! in one place ([`CpError::status`]).

use wasp_config::FieldError;

use crate::store::StoreError;

/// Why an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CpError {
    /// The request is malformed (bad name, empty module...).
    #[error("{0}")]
    BadRequest(String),
    /// The configuration is invalid: every problem with its path.
    #[error("{} configuration error(s)", .0.len())]
    Invalid(Vec<FieldError>),
    /// What was asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Refused because of the current state (a module still referenced).
    #[error("{0}")]
    Conflict(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CpError {
    /// The gRPC status for this error.
    pub fn status(&self) -> tonic::Status {
        match self {
            Self::BadRequest(_) | Self::Invalid(_) => {
                tonic::Status::invalid_argument(self.to_string())
            }
            Self::NotFound(_) => tonic::Status::not_found(self.to_string()),
            Self::Conflict(_) => tonic::Status::failed_precondition(self.to_string()),
            Self::Store(_) => tonic::Status::internal(self.to_string()),
        }
    }
}

impl From<CpError> for tonic::Status {
    fn from(err: CpError) -> Self {
        err.status()
    }
}
