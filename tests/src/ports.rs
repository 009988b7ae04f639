//! Free loopback ports for the proxy's listeners and admin server.
//!
//! A port is picked below the kernel's ephemeral range, checked by binding
//! it, and never handed out twice in one process. Outside the ephemeral
//! range, the outgoing connections and port-0 binds of tests running in
//! parallel cannot take it in the moment between the check and wasp binding
//! it.

use std::collections::HashSet;
use std::net::{SocketAddr, TcpListener};
use std::sync::Mutex;

/// Lowest port handed out.
const FIRST_PORT: u16 = 10_000;

/// A loopback address with a free port for wasp to bind.
pub fn free_addr() -> SocketAddr {
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let ephemeral_start = ephemeral_range_start();
    if ephemeral_start > FIRST_PORT + 1000 {
        let mut given = GIVEN.lock().expect("ports lock");
        let given = given.get_or_insert_with(HashSet::new);
        for _ in 0..1000 {
            let port = fastrand::u16(FIRST_PORT..ephemeral_start);
            if given.contains(&port) {
                continue;
            }
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            if TcpListener::bind(addr).is_ok() {
                given.insert(port);
                return addr;
            }
        }
    }
    // Fall back to a port the kernel picks.
    let socket = TcpListener::bind("127.0.0.1:0").expect("binding a free port");
    socket.local_addr().expect("local address")
}

/// The first port of the kernel's ephemeral range (Linux's default when unknown).
fn ephemeral_range_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}
