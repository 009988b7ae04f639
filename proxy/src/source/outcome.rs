//! How a configuration update ended: accepted (and running as which
//! snapshot), or rejected with every error and its path.

use std::time::SystemTime;

use serde::Serialize;
use wasp_config::{ConfigError, FieldError};

/// The structured result of applying one update.
#[derive(Clone, Debug, Serialize)]
pub struct ReloadOutcome {
    /// The source's version of the configuration.
    pub version: String,
    /// When the update was applied or rejected (RFC 3339).
    pub at: String,
    /// What made the source yield it.
    pub trigger: &'static str,
    /// Accepted or rejected.
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// Accepted or rejected.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Outcome {
    /// Swapped in as this snapshot generation.
    Accepted {
        /// The snapshot's generation (`/config_dump` `version`).
        generation: u64,
    },
    /// Rejected; the running snapshot keeps serving.
    Rejected {
        /// Every problem, each with its path.
        errors: Vec<FieldError>,
    },
}

impl ReloadOutcome {
    /// An accepted update, now running as snapshot `generation`.
    pub fn accepted(version: String, trigger: &'static str, generation: u64) -> Self {
        Self {
            version,
            at: now(),
            trigger,
            outcome: Outcome::Accepted { generation },
        }
    }

    /// A rejected update.
    pub fn rejected(version: String, trigger: &'static str, errors: Vec<FieldError>) -> Self {
        Self {
            version,
            at: now(),
            trigger,
            outcome: Outcome::Rejected { errors },
        }
    }

    /// The errors of a rejected update as one text (empty when accepted).
    pub fn error_text(&self) -> Option<String> {
        match &self.outcome {
            Outcome::Accepted { .. } => None,
            Outcome::Rejected { errors } => Some(ConfigError::Invalid(errors.clone()).to_string()),
        }
    }
}

/// The errors of a configuration error, each with its path (a read error
/// has the file as its path).
pub fn config_errors(error: &ConfigError) -> Vec<FieldError> {
    match error {
        ConfigError::Invalid(errors) => errors.clone(),
        ConfigError::Read { path, source } => vec![FieldError {
            path: path.clone(),
            message: format!("cannot read: {source}"),
        }],
    }
}

fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rejected_outcome_serializes_every_error_with_its_path() {
        let err =
            wasp_config::parse("listeners: [{name: a, address: nope, routes: []}]").unwrap_err();
        let outcome = ReloadOutcome::rejected("v7".into(), "SIGHUP", config_errors(&err));
        let json = serde_json::to_value(&outcome).unwrap();
        assert_eq!(json["version"], "v7");
        assert_eq!(json["result"], "rejected");
        assert_eq!(json["errors"][0]["path"], "listeners[0].address");
        assert!(
            outcome
                .error_text()
                .unwrap()
                .contains("listeners[0].address")
        );
    }

    #[test]
    fn an_accepted_outcome_names_its_generation() {
        let outcome = ReloadOutcome::accepted("v8".into(), "file change", 3);
        let json = serde_json::to_value(&outcome).unwrap();
        assert_eq!(json["result"], "accepted");
        assert_eq!(json["generation"], 3);
        assert_eq!(outcome.error_text(), None);
    }
}
