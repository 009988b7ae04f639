//! The proxies that subscribed: node id, labels, address, connection, and their last
//! ACK or NACK. Kept in memory; a proxy reports itself again when it
//! reconnects.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use serde::Serialize;

use crate::auth::Peer;
use crate::rollout::Counts;
use crate::time;

/// What the control plane knows about one proxy.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ProxyStatus {
    /// Its node id.
    pub node_id: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Whether its subscription is open.
    pub connected: bool,
    /// When it connected (or disconnected, when not connected).
    pub connected_since: String,
    /// The configuration version it last acknowledged (0: none).
    pub running_version: u64,
    /// The version it answered last.
    pub last_version: u64,
    /// `ACK`, `NACK` or empty.
    pub last_result: String,
    /// The NACK's errors, one per line.
    pub last_error: String,
    /// When it answered last.
    pub last_report_at: String,
    /// Its counts for each rollout it took part in, oldest first.
    pub rollouts: Vec<ProxyRollout>,
    /// How its last subscription reached the control plane: `plaintext`,
    /// `tls` or `mtls` (see [`Peer::transport`]).
    pub transport: String,
    /// With `mtls`, the SPIFFE ID of the certificate it presented.
    pub peer_identity: String,
    /// The address (`ip:port`) its last subscription came from; empty when
    /// unknown.
    pub address: String,
}

/// A proxy's part in one rollout.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ProxyRollout {
    /// The rollout's id.
    pub id: String,
    /// The rollout's state (filled in from the registry when listed).
    pub state: String,
    /// What the stable version served on this proxy.
    pub stable: Counts,
    /// What the canary version served on this proxy.
    pub canary: Counts,
}

/// Every proxy seen since start, by node id.
#[derive(Default)]
pub struct Proxies {
    proxies: Mutex<HashMap<String, ProxyStatus>>,
    /// Counts connections so a stale stream's end does not mark a newer
    /// connection of the same node as gone.
    connections: Mutex<HashMap<String, u64>>,
}

impl Proxies {
    /// A proxy opened its subscription from `peer`; returns the
    /// connection's number.
    pub fn connected(
        &self,
        node_id: &str,
        labels: BTreeMap<String, String>,
        running_version: u64,
        peer: &Peer,
    ) -> u64 {
        let mut connections = self.connections.lock().expect("lock");
        let n = connections.entry(node_id.to_owned()).or_default();
        *n += 1;
        let mut proxies = self.proxies.lock().expect("lock");
        let entry = proxies.entry(node_id.to_owned()).or_default();
        entry.node_id = node_id.to_owned();
        entry.labels = labels;
        entry.connected = true;
        entry.connected_since = time::now();
        entry.transport = peer.transport().to_owned();
        entry.peer_identity = peer.identity.clone().unwrap_or_default();
        entry.address = peer.addr.map(|a| a.to_string()).unwrap_or_default();
        if entry.running_version == 0 {
            entry.running_version = running_version;
        }
        *n
    }

    /// Connection `connection` of the proxy closed.
    pub fn disconnected(&self, node_id: &str, connection: u64) {
        let connections = self.connections.lock().expect("lock");
        if connections.get(node_id) != Some(&connection) {
            return;
        }
        if let Some(entry) = self.proxies.lock().expect("lock").get_mut(node_id) {
            entry.connected = false;
            entry.connected_since = time::now();
        }
    }

    /// The proxy runs `version`.
    pub fn ack(&self, node_id: &str, version: u64) {
        self.report(node_id, version, "ACK", String::new());
    }

    /// The proxy rejected `version` with `error`.
    pub fn nack(&self, node_id: &str, version: u64, error: String) {
        self.report(node_id, version, "NACK", error);
    }

    fn report(&self, node_id: &str, version: u64, result: &str, error: String) {
        let mut proxies = self.proxies.lock().expect("lock");
        let entry = proxies.entry(node_id.to_owned()).or_default();
        if result == "ACK" {
            entry.running_version = version;
        }
        entry.last_version = version;
        entry.last_result = result.to_owned();
        entry.last_error = error;
        entry.last_report_at = time::now();
    }

    /// Adds a report's counts (see
    /// [`Registry::record_report`](crate::Registry::record_report)).
    pub fn add_rollout_counts(&self, node_id: &str, matched: &[crate::rollout::Matched]) {
        let mut proxies = self.proxies.lock().expect("lock");
        let entry = proxies.entry(node_id.to_owned()).or_default();
        for (id, stable, canary) in matched {
            let position = entry.rollouts.iter().position(|r| r.id == *id);
            let slot = match position {
                Some(i) => &mut entry.rollouts[i],
                None => {
                    entry.rollouts.push(ProxyRollout {
                        id: id.clone(),
                        ..ProxyRollout::default()
                    });
                    entry.rollouts.last_mut().expect("pushed")
                }
            };
            slot.stable.add(*stable);
            slot.canary.add(*canary);
        }
    }

    /// Every proxy, sorted by node id.
    pub fn list(&self) -> Vec<ProxyStatus> {
        let mut all: Vec<_> = self
            .proxies
            .lock()
            .expect("lock")
            .values()
            .cloned()
            .collect();
        all.sort_by(|a, b| a.node_id.cmp(&b.node_id));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nack_keeps_the_running_version_and_records_the_error() {
        let proxies = Proxies::default();
        let c = proxies.connected("n1", BTreeMap::new(), 0, &Peer::default());
        proxies.ack("n1", 3);
        proxies.nack("n1", 4, "filter_chains[0].plugins[0].module: bad".into());
        let p = &proxies.list()[0];
        assert_eq!(p.transport, "plaintext");
        assert_eq!((p.running_version, p.last_version), (3, 4));
        assert_eq!(p.last_result, "NACK");
        proxies.disconnected("n1", c);
        assert!(!proxies.list()[0].connected);
    }

    #[test]
    fn a_subscription_over_mtls_records_the_transport_and_the_peer_identity() {
        let proxies = Proxies::default();
        let peer = Peer {
            addr: Some("10.1.2.3:41000".parse().unwrap()),
            tls: true,
            identity: Some("spiffe://mesh.test/ns/shop/sa/web".into()),
        };
        proxies.connected("n1", BTreeMap::new(), 0, &peer);
        let p = &proxies.list()[0];
        assert_eq!(p.transport, "mtls");
        assert_eq!(p.peer_identity, "spiffe://mesh.test/ns/shop/sa/web");
        assert_eq!(p.address, "10.1.2.3:41000");
        // Back on the bootstrap endpoint: no identity left behind.
        proxies.connected("n1", BTreeMap::new(), 0, &Peer::default());
        let p = &proxies.list()[0];
        assert_eq!(
            (
                p.transport.as_str(),
                p.peer_identity.as_str(),
                p.address.as_str()
            ),
            ("plaintext", "", "")
        );
    }

    #[test]
    fn the_end_of_a_stale_connection_leaves_the_new_one_connected() {
        let proxies = Proxies::default();
        let old = proxies.connected("n1", BTreeMap::new(), 0, &Peer::default());
        let _new = proxies.connected("n1", BTreeMap::new(), 0, &Peer::default());
        proxies.disconnected("n1", old);
        assert!(proxies.list()[0].connected);
    }
}
