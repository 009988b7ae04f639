//! Harness for wasp's end-to-end tests: start the real binary and real upstreams on loopback.

pub mod envoy;
