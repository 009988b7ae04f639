//! Fuzz target `h1_request`: see `wasp_proxy::fuzzing::h1_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wasp_proxy::fuzzing::h1_request(data));
