//! Detached HTTP callouts: calls a stream sends without tying them to its
//! life. Their callback gets only the response and runs when it arrives, even
//! after the stream that sent the call has ended (hosts deliver every callout
//! to the root context, and the call outlives the stream in Envoy and wasp).
//! Fire-and-forget work such as mirroring a request uses them.

use crate::callout::HttpResponse;
use std::cell::RefCell;
use std::collections::HashMap;

/// What runs when a detached callout's response (or failure) arrives.
pub(crate) type DetachedCallback = Box<dyn FnOnce(HttpResponse)>;

thread_local! {
    static DETACHED: RefCell<HashMap<u32, DetachedCallback>> = RefCell::new(HashMap::new());
}

#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn reset() {
    DETACHED.with(|d| d.borrow_mut().clear());
}

/// Remembers the callback of detached callout `token`.
pub(crate) fn add(token: u32, callback: DetachedCallback) {
    DETACHED.with(|d| d.borrow_mut().insert(token, callback));
}

/// Takes the callback of `token` if it is a detached callout.
pub(crate) fn take(token: u32) -> Option<DetachedCallback> {
    DETACHED.with(|d| d.borrow_mut().remove(&token))
}
