//! A test filter standing in for an authentication filter: it publishes the
//! `request.auth.*` properties jwt-authn sets from a verified token, taken
//! here from request headers, so later filters (authz) can be tested on
//! them in wasp and in Envoy alike:
//!
//! | request header | property |
//! | --- | --- |
//! | `x-test-auth-principal` | `request.auth.principal` (`iss/sub`) |
//! | `x-test-auth-audiences` | `request.auth.audiences` (JSON list of strings) |
//! | `x-test-auth-presenter` | `request.auth.presenter` |
//! | `x-test-auth-claims` | `request.auth.claims` (JSON object) |
//!
//! Each property is set under its dotted name as one path segment, the form
//! both Envoy and wasp hand back to a later filter asking for that name.
//! Build: `scripts/build-filters.sh` (`target/filters/auth_properties.wasm`).

use wasp_filter_sdk::prelude::*;

/// The request headers this filter reads, and the properties it sets.
pub const MAPPING: [(&str, &str); 4] = [
    ("x-test-auth-principal", "request.auth.principal"),
    ("x-test-auth-audiences", "request.auth.audiences"),
    ("x-test-auth-presenter", "request.auth.presenter"),
    ("x-test-auth-claims", "request.auth.claims"),
];

/// The root filter (no configuration).
#[derive(Default)]
pub struct Root;

impl RootFilter for Root {
    type Config = ();
    type Http = Publish;

    fn create_http_filter(&mut self, _: &mut RootCtx<Self>) -> Option<Publish> {
        Some(Publish)
    }
}

/// Publishes the properties on the request headers.
pub struct Publish;

impl HttpFilter for Publish {
    fn on_request_headers(&mut self, ctx: &mut HttpCtx<Self>, _: bool) -> Action {
        for (header, property) in MAPPING {
            if let Some(value) = ctx.request_headers().get(header) {
                if let Err(e) = ctx.set_property([property], value.as_bytes()) {
                    wasp_filter_sdk::warn!("auth-properties: cannot set {property}: {e}");
                }
            }
        }
        Action::Continue
    }
}

wasp_filter_sdk::export!(Root);

#[cfg(test)]
mod tests {
    use super::*;
    use wasp_filter_sdk::testing::Harness;

    #[test]
    fn publishes_each_header_as_its_property() {
        let mut host = Harness::new(Root);
        assert!(host.configure(""));
        let mut stream = host.stream();
        stream.request_headers(
            &[
                (":path", "/"),
                ("x-test-auth-principal", "iss/sub"),
                ("x-test-auth-claims", r#"{"a":1}"#),
            ],
            true,
        );
        assert_eq!(
            host.property(&["request.auth.principal"]).as_deref(),
            Some(&b"iss/sub"[..])
        );
        assert_eq!(
            host.property(&["request.auth.claims"]).as_deref(),
            Some(&br#"{"a":1}"#[..])
        );
        assert_eq!(host.property(&["request.auth.presenter"]), None);
    }
}
