//! Fuzz target `config`: see `wasp_config::fuzzing::config_text`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wasp_config::fuzzing::config_text(data));
