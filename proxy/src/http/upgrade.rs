//! Protocol switches (`Upgrade`, e.g. WebSocket): once both sides answered
//! `101 Switching Protocols`, bytes are copied both ways until either closes.

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

/// Joins the downstream and upstream upgraded connections in a background task.
pub fn spawn_tunnel(downstream: OnUpgrade, upstream: OnUpgrade) {
    tokio::spawn(async move {
        let (downstream, upstream) = match tokio::try_join!(downstream, upstream) {
            Ok(pair) => pair,
            Err(err) => {
                tracing::debug!(error = %err, "upgrade failed");
                return;
            }
        };
        let mut downstream = TokioIo::new(downstream);
        let mut upstream = TokioIo::new(upstream);
        match tokio::io::copy_bidirectional(&mut downstream, &mut upstream).await {
            Ok((sent, received)) => tracing::debug!(sent, received, "upgraded connection closed"),
            Err(err) => tracing::debug!(error = %err, "upgraded connection closed with error"),
        }
    });
}
