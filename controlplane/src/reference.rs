//! Module references in a pushed configuration: `name@tag`, `name` (for
//! `name@latest`) or `sha256:<hex>`; and the names and tags the registry
//! accepts.

use std::fmt;

use sha2::{Digest, Sha256};

/// The tag of a reference or push that names none.
pub const DEFAULT_TAG: &str = "latest";

/// A plugin's `module` as the control plane reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModuleRef {
    /// A registry entry.
    Tagged {
        /// Module name.
        name: String,
        /// Tag.
        tag: String,
    },
    /// Content by hash (lowercase hex).
    Sha256(String),
}

impl ModuleRef {
    /// Parses a reference; the error says what is wrong with it.
    pub fn parse(reference: &str) -> Result<Self, String> {
        if let Some(hex) = reference.strip_prefix("sha256:") {
            return if is_sha256_hex(hex) {
                Ok(Self::Sha256(hex.to_ascii_lowercase()))
            } else {
                Err(format!("'{reference}' is not sha256:<64 hex digits>"))
            };
        }
        let (name, tag) = reference
            .split_once('@')
            .unwrap_or((reference, DEFAULT_TAG));
        check_name("module name", name).map_err(|e| format!("'{reference}': {e}"))?;
        check_name("tag", tag).map_err(|e| format!("'{reference}': {e}"))?;
        Ok(Self::Tagged {
            name: name.to_owned(),
            tag: tag.to_owned(),
        })
    }
}

impl fmt::Display for ModuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tagged { name, tag } => write!(f, "{name}@{tag}"),
            Self::Sha256(hex) => write!(f, "sha256:{hex}"),
        }
    }
}

/// Checks a module name or tag: 1 to 128 of `A-Z a-z 0-9 - _ .`, not
/// starting with `.`.
pub fn check_name(what: &str, value: &str) -> Result<(), String> {
    let ok_chars = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if value.is_empty() || value.len() > 128 || !ok_chars || value.starts_with('.') {
        return Err(format!(
            "{what} '{value}' must be 1-128 of letters, digits, '-', '_', '.' (not starting with '.')"
        ));
    }
    Ok(())
}

/// True for 64 hex digits.
pub fn is_sha256_hex(value: &str) -> bool {
    value.len() == 64 && value.chars().all(|c| c.is_ascii_hexdigit())
}

/// The lowercase hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_name_a_tag_default_to_latest_or_pin_a_hash() {
        assert_eq!(ModuleRef::parse("auth@v2").unwrap().to_string(), "auth@v2");
        assert_eq!(ModuleRef::parse("auth").unwrap().to_string(), "auth@latest");
        let hex = "AB".repeat(32);
        assert_eq!(
            ModuleRef::parse(&format!("sha256:{hex}")).unwrap(),
            ModuleRef::Sha256(hex.to_ascii_lowercase())
        );
    }

    #[test]
    fn malformed_references_say_what_is_wrong() {
        assert_eq!(
            ModuleRef::parse("sha256:abc").unwrap_err(),
            "'sha256:abc' is not sha256:<64 hex digits>"
        );
        assert!(
            ModuleRef::parse("filters/auth.wasm")
                .unwrap_err()
                .contains("module name 'filters/auth.wasm' must be")
        );
        assert!(ModuleRef::parse("auth@").unwrap_err().contains("tag ''"));
    }
}
