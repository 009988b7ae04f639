//! Fuzz target `route_match`: see `wasp_proxy::fuzzing::route_match`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wasp_proxy::fuzzing::route_match(data));
