//! A minimal wasp filter: adds one response header whose name and value come
//! from the plugin configuration, e.g. `{"header": "x-served-by", "value": "wasp"}`.
//!
//! Test natively: `cargo test -p wasp-filter-template`.
//! Build the module: `scripts/build-filters.sh` (writes `target/filters/wasp_filter_template.wasm`).

use serde::Deserialize;
use wasp_filter_sdk::prelude::*;

/// The plugin configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The response header to add.
    pub header: String,
    /// Its value.
    pub value: String,
}

/// Per-plugin state: the validated configuration.
#[derive(Default)]
pub struct Template {
    config: Option<Config>,
}

impl RootFilter for Template {
    type Config = Config;
    type Http = AddHeader;

    fn on_configure(&mut self, _: &mut RootCtx<Self>, config: Config) -> Result<(), String> {
        if config.header.is_empty()
            || !config
                .header
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b':')
        {
            return Err(format!(
                "`header` is not a valid header name: {:?}",
                config.header
            ));
        }
        self.config = Some(config);
        Ok(())
    }

    fn create_http_filter(&mut self, _: &mut RootCtx<Self>) -> Option<AddHeader> {
        let config = self.config.clone()?;
        Some(AddHeader { config })
    }
}

/// Per-request filter: sets the configured header on the response.
pub struct AddHeader {
    config: Config,
}

impl HttpFilter for AddHeader {
    fn on_response_headers(&mut self, ctx: &mut HttpCtx<Self>, _end_of_stream: bool) -> Action {
        ctx.response_headers()
            .set(&self.config.header, &self.config.value);
        Action::Continue
    }
}

wasp_filter_sdk::export!(Template);

#[cfg(test)]
mod tests {
    use super::*;
    use wasp_filter_sdk::testing::{Harness, HostAction, LogLevel};

    #[test]
    fn adds_the_configured_response_header() {
        let mut host = Harness::new(Template::default());
        assert!(host.configure(r#"{"header": "X-Served-By", "value": "wasp"}"#));
        let mut stream = host.stream();
        assert_eq!(
            stream.request_headers(&[(":path", "/")], true),
            HostAction::Continue
        );
        assert_eq!(
            stream.response_headers(&[(":status", "200"), ("x-served-by", "upstream")], true),
            HostAction::Continue
        );
        assert_eq!(
            stream.response_header("x-served-by").as_deref(),
            Some("wasp")
        );
        assert_eq!(stream.response_header_list().len(), 2);
    }

    #[test]
    fn rejects_a_configuration_without_a_valid_header() {
        let mut host = Harness::new(Template::default());
        assert!(!host.configure(r#"{"value": "wasp"}"#));
        assert!(host.logged(LogLevel::Error, "missing field `header`"));
        assert!(!host.configure(r#"{"header": "bad name", "value": "x"}"#));
        assert!(host.logged(LogLevel::Error, "not a valid header name"));
    }
}
