//! Timestamps as the control plane shows them: RFC 3339, UTC, milliseconds.

use std::time::SystemTime;

/// Now, in RFC 3339.
pub fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}
