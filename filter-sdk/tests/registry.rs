//! The context registry on the mock host: a host that calls into a context
//! while that context's callback runs is refused, and the context (and the
//! others) keep working.

use wasp_filter_sdk::__private as sdk;
use wasp_filter_sdk::LogLevel;
use wasp_filter_sdk::prelude::*;
use wasp_filter_sdk::testing::{Harness, HostAction};

#[derive(Default)]
struct Root;

/// Calls its own request headers callback again from inside it, as a
/// misbehaving host would, and records what that call answered.
#[derive(Default)]
struct Reenter {
    nested: Option<u32>,
}

impl RootFilter for Root {
    type Config = ();
    type Http = Reenter;
    fn create_http_filter(&mut self, _: &mut RootCtx<Self>) -> Option<Reenter> {
        Some(Reenter::default())
    }
}

impl HttpFilter for Reenter {
    fn on_request_headers(&mut self, ctx: &mut HttpCtx<Self>, _: bool) -> Action {
        if self.nested.is_none() {
            self.nested = Some(sdk::on_headers(ctx.id(), sdk::REQUEST, false));
        }
        ctx.request_headers()
            .set("x-nested", &format!("{:?}", self.nested));
        Action::Continue
    }
}

#[test]
fn a_context_reentered_by_the_host_is_refused_and_keeps_working() {
    let mut host = Harness::new(Root);
    assert!(host.configure(""));
    let mut stream = host.stream();
    assert_eq!(
        stream.request_headers(&[(":path", "/")], true),
        HostAction::Continue
    );
    // The nested call was refused (answered Continue, 0) and logged.
    assert_eq!(
        stream.request_header("x-nested").as_deref(),
        Some("Some(0)")
    );
    assert!(host.logged(LogLevel::Error, "re-entered while its callback ran"));
    // The context was not lost: a second stream and this one still run.
    let mut other = host.stream();
    assert_eq!(
        other.request_headers(&[(":path", "/b")], true),
        HostAction::Continue
    );
    assert_eq!(
        stream.response_headers(&[(":status", "200")], true),
        HostAction::Continue
    );
    stream.finish();
    other.finish();
}
