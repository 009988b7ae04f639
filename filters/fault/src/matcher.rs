//! `match`: which requests may get faults, by their headers (every
//! condition must hold), as Envoy's fault filter `headers`.

use serde::Deserialize;

/// Conditions on the request.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Match {
    /// Header conditions; all must hold.
    #[serde(default)]
    pub headers: Vec<HeaderMatch>,
}

/// One header condition: exactly one of `exact`, `prefix`, `present`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderMatch {
    /// The header name (case-insensitive).
    pub name: String,
    /// The whole value equals this.
    #[serde(default)]
    pub exact: Option<String>,
    /// The value starts with this.
    #[serde(default)]
    pub prefix: Option<String>,
    /// The header is present (`true`) or absent (`false`).
    #[serde(default)]
    pub present: Option<bool>,
}

impl Match {
    /// Checks that each condition names a header and says one thing.
    pub(crate) fn validate(&self) -> Result<(), String> {
        for (i, header) in self.headers.iter().enumerate() {
            let path = format!("match.headers[{i}]");
            if header.name.is_empty() {
                return Err(format!("{path}.name: is empty"));
            }
            let set = [
                header.exact.is_some(),
                header.prefix.is_some(),
                header.present.is_some(),
            ];
            if set.iter().filter(|s| **s).count() != 1 {
                return Err(format!(
                    "{path}: set exactly one of exact, prefix and present"
                ));
            }
        }
        Ok(())
    }

    /// True when every condition holds; `header` reads a request header.
    pub fn matches(&self, header: impl Fn(&str) -> Option<String>) -> bool {
        self.headers.iter().all(|condition| {
            let value = header(&condition.name);
            match (&condition.exact, &condition.prefix, condition.present) {
                (Some(exact), _, _) => value.as_deref() == Some(exact.as_str()),
                (_, Some(prefix), _) => value.is_some_and(|v| v.starts_with(prefix.as_str())),
                (_, _, Some(present)) => value.is_some() == present,
                _ => true,
            }
        })
    }
}
