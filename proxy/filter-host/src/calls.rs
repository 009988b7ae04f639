//! Which stream callbacks the host calls for a plugin: those its module
//! exports, less those it declared it does not need
//! (`wasp_abi::HTTP_CALLBACKS_EXPORT`). The chain reads them before taking
//! a filter's VM lock, so a filter with nothing to do in a phase costs no
//! lock and no call in it.

use wasmtime::Module;

use crate::vm::Direction;

/// A set of stream callbacks of one plugin (the same for all its VMs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StreamCalls(u32);

impl StreamCalls {
    const REQUEST_HEADERS: u32 = 1;
    /// Request body or trailers.
    const REQUEST_BODY: u32 = 2;
    const RESPONSE_HEADERS: u32 = 4;
    /// Response body or trailers.
    const RESPONSE_BODY: u32 = 8;

    /// The stream callbacks `module` exports.
    pub fn exported(module: &Module) -> Self {
        let exports = |names: &[&str]| names.iter().any(|n| module.get_export(n).is_some());
        let mut bits = 0;
        for (names, bit) in [
            (&["proxy_on_request_headers"][..], Self::REQUEST_HEADERS),
            (
                &["proxy_on_request_body", "proxy_on_request_trailers"],
                Self::REQUEST_BODY,
            ),
            (&["proxy_on_response_headers"], Self::RESPONSE_HEADERS),
            (
                &["proxy_on_response_body", "proxy_on_response_trailers"],
                Self::RESPONSE_BODY,
            ),
        ] {
            if exports(names) {
                bits |= bit;
            }
        }
        Self(bits)
    }

    /// These calls less those a module's `HTTP_CALLBACK_*` declaration
    /// leaves out: body callbacks it does not ask for, header callbacks it
    /// opts out of.
    pub fn declared(self, callbacks: u32) -> Self {
        let mut bits = self.0;
        let mut drop_unless = |needed: bool, bit: u32| {
            if !needed {
                bits &= !bit;
            }
        };
        drop_unless(
            callbacks & wasp_abi::HTTP_CALLBACK_NO_REQUEST_HEADERS == 0,
            Self::REQUEST_HEADERS,
        );
        drop_unless(
            callbacks & wasp_abi::HTTP_CALLBACK_REQUEST_BODY != 0,
            Self::REQUEST_BODY,
        );
        drop_unless(
            callbacks & wasp_abi::HTTP_CALLBACK_NO_RESPONSE_HEADERS == 0,
            Self::RESPONSE_HEADERS,
        );
        drop_unless(
            callbacks & wasp_abi::HTTP_CALLBACK_RESPONSE_BODY != 0,
            Self::RESPONSE_BODY,
        );
        Self(bits)
    }

    /// The raw set (to keep in an atomic).
    pub fn bits(self) -> u32 {
        self.0
    }

    /// A set kept with [`StreamCalls::bits`].
    pub fn from_bits(bits: u32) -> Self {
        Self(bits)
    }

    /// `proxy_on_{request,response}_headers` of `dir` is called.
    pub fn headers(self, dir: Direction) -> bool {
        let bit = match dir {
            Direction::Request => Self::REQUEST_HEADERS,
            Direction::Response => Self::RESPONSE_HEADERS,
        };
        self.0 & bit != 0
    }

    /// The body or trailers callbacks of `dir` are called.
    pub fn body(self, dir: Direction) -> bool {
        let bit = match dir {
            Direction::Request => Self::REQUEST_BODY,
            Direction::Response => Self::RESPONSE_BODY,
        };
        self.0 & bit != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: StreamCalls = StreamCalls(15);

    #[test]
    fn an_old_declaration_keeps_the_header_callbacks() {
        let calls = ALL.declared(0);
        assert!(calls.headers(Direction::Request) && calls.headers(Direction::Response));
        assert!(!calls.body(Direction::Request) && !calls.body(Direction::Response));
        assert_eq!(ALL.declared(wasp_abi::HTTP_CALLBACK_ALL), ALL);
    }

    #[test]
    fn each_opt_out_drops_its_header_callback() {
        let calls =
            ALL.declared(wasp_abi::HTTP_CALLBACK_ALL | wasp_abi::HTTP_CALLBACK_NO_RESPONSE_HEADERS);
        assert!(calls.headers(Direction::Request) && !calls.headers(Direction::Response));
        assert!(calls.body(Direction::Response));
        let calls =
            ALL.declared(wasp_abi::HTTP_CALLBACK_ALL | wasp_abi::HTTP_CALLBACK_NO_REQUEST_HEADERS);
        assert!(!calls.headers(Direction::Request) && calls.headers(Direction::Response));
        assert!(calls.body(Direction::Request));
    }

    #[test]
    fn a_declaration_adds_nothing_the_module_does_not_export() {
        let none = StreamCalls(0).declared(wasp_abi::HTTP_CALLBACK_ALL);
        assert!(!none.headers(Direction::Request) && !none.body(Direction::Response));
    }
}
