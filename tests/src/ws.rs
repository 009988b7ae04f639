//! A WebSocket echo upstream (tokio-tungstenite): every text or binary
//! message comes back unchanged.

use std::net::SocketAddr;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

/// A running WebSocket echo server; stops accepting when dropped.
pub struct WsEcho {
    /// The address it listens on.
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl WsEcho {
    /// Starts the server on a free loopback port.
    pub async fn start() -> WsEcho {
        let socket = TcpListener::bind("127.0.0.1:0").await.expect("bind ws");
        let addr = socket.local_addr().expect("ws address");
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = socket.accept().await else {
                    continue;
                };
                tokio::spawn(async move {
                    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                        return;
                    };
                    while let Some(Ok(message)) = ws.next().await {
                        let echo = matches!(message, Message::Text(_) | Message::Binary(_));
                        if message.is_close() || (echo && ws.send(message).await.is_err()) {
                            return;
                        }
                    }
                });
            }
        });
        WsEcho { addr, task }
    }
}

impl Drop for WsEcho {
    fn drop(&mut self) {
        self.task.abort();
    }
}
