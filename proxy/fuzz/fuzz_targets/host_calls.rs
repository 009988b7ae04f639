//! Fuzz target `host_calls`: see `wasp_filter_host::fuzzing::host_calls`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wasp_filter_host::fuzzing::host_calls(data));
