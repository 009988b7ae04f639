//! The [`export!`](crate::export) macro: registers a filter's root type and
//! emits the module's proxy-wasm exports, each a one-line forward into the
//! SDK's dispatcher. The exports are compiled on every target (so native
//! builds type-check them) but only exported by name on `wasm32`.

/// Registers a [`RootFilter`](crate::RootFilter) type and emits the
/// module's `proxy_abi_version_0_2_1` and `proxy_on_*` exports,
/// `wasp_http_callbacks` ([`HttpFilter::CALLBACKS`](crate::HttpFilter::CALLBACKS))
/// and `_initialize` (the module is a WASI reactor: its exports are called
/// as they are, not each wrapped in a run of its constructors).
///
/// Boolean parameters (`end_of_stream`) are taken as integers and compared
/// with zero, so any value a host passes is sound.
///
/// `export!(MyRoot)` builds the root with `Default`; `export!(MyRoot, make)`
/// uses `make: fn() -> MyRoot`. Use it once per filter crate, at the crate root.
///
/// The exports carry `#[unsafe(no_mangle)]` (on `wasm32`), the only unsafe
/// construct the macro emits; the functions themselves are safe forwards.
/// rustc does not apply `unsafe_code` to code expanded from another crate's
/// macro, so filter crates can `forbid(unsafe_code)`; the macro must not
/// `#[allow(unsafe_code)]`, which is an error under `forbid`.
#[macro_export]
macro_rules! export {
    ($root:ty) => {
        $crate::export!($root, <$root as ::core::default::Default>::default);
    };
    ($root:ty, $make:expr) => {
        #[doc(hidden)]
        #[allow(missing_docs)]
        pub mod __wasp_filter_exports {
            use super::*;
            use $crate::__private as sdk;

            fn make_root(id: u32) -> sdk::BoxedRoot {
                let make: fn() -> $root = $make;
                sdk::boxed_root::<$root>(id, make())
            }

            #[cfg_attr(target_arch = "wasm32", unsafe(no_mangle))]
            pub extern "C" fn proxy_abi_version_0_2_1() {}

            #[cfg_attr(target_arch = "wasm32", unsafe(no_mangle))]
            pub extern "C" fn _initialize() {
                sdk::initialize()
            }

            #[cfg_attr(target_arch = "wasm32", unsafe(no_mangle))]
            pub extern "C" fn wasp_http_callbacks() -> u32 {
                <<$root as $crate::RootFilter>::Http as $crate::HttpFilter>::CALLBACKS.bits()
            }

            #[cfg_attr(target_arch = "wasm32", unsafe(no_mangle))]
            pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
                sdk::allocate(size)
            }

            #[cfg_attr(target_arch = "wasm32", unsafe(no_mangle))]
            pub extern "C" fn proxy_on_context_create(id: u32, parent: u32) {
                sdk::on_context_create(id, parent, make_root)
            }

            #[cfg_attr(target_arch = "wasm32", unsafe(no_mangle))]
            pub extern "C" fn proxy_on_vm_start(id: u32, size: usize) -> bool {
                sdk::on_vm_start(id, size)
            }

            #[cfg_attr(target_arch = "wasm32", unsafe(no_mangle))]
            pub extern "C" fn proxy_on_configure(id: u32, size: usize) -> bool {
                sdk::on_configure(id, size)
            }

            #[cfg_attr(target_arch = "wasm32", unsafe(no_mangle))]
            pub extern "C" fn proxy_on_tick(id: u32) {
                sdk::on_tick(id)
            }

            #[cfg_attr(target_arch = "wasm32", unsafe(no_mangle))]
            pub extern "C" fn proxy_on_queue_ready(id: u32, queue: u32) {
                sdk::on_queue_ready(id, queue)
            }

            #[cfg_attr(target_arch = "wasm32", unsafe(no_mangle))]
            pub extern "C" fn proxy_on_request_headers(id: u32, _count: usize, eos: u32) -> u32 {
                sdk::on_headers(id, sdk::REQUEST, eos != 0)
            }

            #[cfg_attr(target_arch = "wasm32", unsafe(no_mangle))]
            pub extern "C" fn proxy_on_request_body(id: u32, size: usize, eos: u32) -> u32 {
                sdk::on_body(id, sdk::REQUEST, size, eos != 0)
            }

            #[cfg_attr(target_arch = "wasm32", unsafe(no_mangle))]
            pub extern "C" fn proxy_on_request_trailers(id: u32, _count: usize) -> u32 {
                sdk::on_trailers(id, sdk::REQUEST)
            }

            #[cfg_attr(target_arch = "wasm32", unsafe(no_mangle))]
            pub extern "C" fn proxy_on_response_headers(id: u32, _count: usize, eos: u32) -> u32 {
                sdk::on_headers(id, sdk::RESPONSE, eos != 0)
            }

            #[cfg_attr(target_arch = "wasm32", unsafe(no_mangle))]
            pub extern "C" fn proxy_on_response_body(id: u32, size: usize, eos: u32) -> u32 {
                sdk::on_body(id, sdk::RESPONSE, size, eos != 0)
            }

            #[cfg_attr(target_arch = "wasm32", unsafe(no_mangle))]
            pub extern "C" fn proxy_on_response_trailers(id: u32, _count: usize) -> u32 {
                sdk::on_trailers(id, sdk::RESPONSE)
            }

            #[cfg_attr(target_arch = "wasm32", unsafe(no_mangle))]
            pub extern "C" fn proxy_on_done(id: u32) -> bool {
                sdk::on_done(id)
            }

            #[cfg_attr(target_arch = "wasm32", unsafe(no_mangle))]
            pub extern "C" fn proxy_on_log(id: u32) {
                sdk::on_log(id)
            }

            #[cfg_attr(target_arch = "wasm32", unsafe(no_mangle))]
            pub extern "C" fn proxy_on_delete(id: u32) {
                sdk::on_delete(id)
            }

            #[cfg_attr(target_arch = "wasm32", unsafe(no_mangle))]
            pub extern "C" fn proxy_on_http_call_response(
                id: u32,
                token: u32,
                headers: usize,
                body: usize,
                trailers: usize,
            ) {
                sdk::on_http_call_response(id, token, headers, body, trailers)
            }

            #[cfg_attr(target_arch = "wasm32", unsafe(no_mangle))]
            pub extern "C" fn proxy_on_grpc_receive_initial_metadata(
                id: u32,
                token: u32,
                count: usize,
            ) {
                sdk::on_grpc_initial_metadata(id, token, count)
            }

            #[cfg_attr(target_arch = "wasm32", unsafe(no_mangle))]
            pub extern "C" fn proxy_on_grpc_receive(id: u32, token: u32, size: usize) {
                sdk::on_grpc_message(id, token, size)
            }

            #[cfg_attr(target_arch = "wasm32", unsafe(no_mangle))]
            pub extern "C" fn proxy_on_grpc_receive_trailing_metadata(
                id: u32,
                token: u32,
                count: usize,
            ) {
                sdk::on_grpc_trailing_metadata(id, token, count)
            }

            #[cfg_attr(target_arch = "wasm32", unsafe(no_mangle))]
            pub extern "C" fn proxy_on_grpc_close(id: u32, token: u32, status: u32) {
                sdk::on_grpc_close(id, token, status)
            }
        }
    };
}
