//! Fuzz target `h1_request`: see `wasp_proxy::fuzzing::h1_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(
    init: {
        // libFuzzer's `main` is not Rust's, which would ignore SIGPIPE: a
        // client write to a connection the proxy already closed (after a
        // 400) would kill the fuzzer instead of failing with EPIPE.
        // SAFETY: sets a signal's disposition to "ignore" before the
        // harness starts any thread; no handler code runs.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        }
    },
    |data: &[u8]| wasp_proxy::fuzzing::h1_request(data)
);
