//! Free loopback ports for listeners and upstreams.

use std::net::{SocketAddr, TcpListener};

/// A loopback address with a port that was free a moment ago (bound to
/// port 0, read back, released). Each test takes its own, so tests can run
/// in parallel.
pub fn free_addr() -> SocketAddr {
    let socket = TcpListener::bind("127.0.0.1:0").expect("binding a free port");
    socket.local_addr().expect("local address")
}
