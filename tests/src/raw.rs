//! HTTP/1.1 over raw sockets, for tests whose point is the bytes on the
//! wire: [`RawConn`] is a client connection that writes exactly what a test
//! gives it and parses responses itself (keeping `content-length`,
//! `transfer-encoding` and whether a body was complete); [`RawUpstream`] is
//! an upstream that answers every request head with scripted bytes and
//! records everything it received.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// How long a read waits before a test fails.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// One response as it came off the wire.
#[derive(Debug)]
pub struct RawResponse {
    /// The status code.
    pub status: u16,
    /// Headers in order, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body (chunked framing decoded).
    pub body: Vec<u8>,
    /// Whether the body ended as its framing says (all of
    /// `content-length`, or the last chunk); false when the connection
    /// closed first.
    pub complete: bool,
}

impl RawResponse {
    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A client connection speaking HTTP/1.1 byte by byte.
pub struct RawConn {
    stream: TcpStream,
    buffered: Vec<u8>,
}

impl RawConn {
    /// Connects to `addr`.
    pub async fn connect(addr: SocketAddr) -> RawConn {
        let stream = TcpStream::connect(addr).await.expect("connect");
        RawConn {
            stream,
            buffered: Vec::new(),
        }
    }

    /// Writes `bytes` as they are.
    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// Writes `GET path` with `Host: host` and no body.
    pub async fn get(&mut self, path: &str, host: &str) {
        self.send(format!("GET {path} HTTP/1.1\r\nhost: {host}\r\n\r\n").as_bytes())
            .await;
    }

    /// Reads more bytes; false at the end of the stream.
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 8192];
        let read = tokio::time::timeout(READ_TIMEOUT, self.stream.read(&mut chunk))
            .await
            .expect("read timed out");
        match read {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buffered.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// Takes one line (without CRLF); `None` when the stream ended first.
    async fn line(&mut self) -> Option<String> {
        loop {
            if let Some(at) = self.buffered.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buffered[..at]).into_owned();
                self.buffered.drain(..at + 2);
                return Some(line);
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    /// Takes `n` bytes, or fewer when the stream ends first.
    async fn take(&mut self, n: usize) -> Vec<u8> {
        while self.buffered.len() < n && self.fill().await {}
        let n = n.min(self.buffered.len());
        self.buffered.drain(..n).collect()
    }

    /// Reads one response; `None` when the connection closed before a
    /// status line. A `101` has no body.
    pub async fn response(&mut self) -> Option<RawResponse> {
        let status_line = self.line().await?;
        let status = status_line.split(' ').nth(1)?.parse().ok()?;
        let mut headers = Vec::new();
        loop {
            let line = self.line().await?;
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':')?;
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
        let mut response = RawResponse {
            status,
            headers,
            body: Vec::new(),
            complete: true,
        };
        let chunked = response
            .header("transfer-encoding")
            .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
        if status == 101 || status == 204 || status == 304 {
        } else if chunked {
            response.complete = self.chunks(&mut response.body).await;
        } else if let Some(length) = response.header("content-length") {
            let length: usize = length.parse().expect("numeric content-length");
            response.body = self.take(length).await;
            response.complete = response.body.len() == length;
        } else {
            while self.fill().await {}
            response.body = std::mem::take(&mut self.buffered);
        }
        Some(response)
    }

    /// Decodes a chunked body into `body`; true when the last chunk came.
    async fn chunks(&mut self, body: &mut Vec<u8>) -> bool {
        loop {
            let Some(size_line) = self.line().await else {
                return false;
            };
            let size = size_line.split(';').next().unwrap_or_default().trim();
            let Ok(size) = usize::from_str_radix(size, 16) else {
                return false;
            };
            if size == 0 {
                // Trailers, then the empty line.
                loop {
                    match self.line().await {
                        Some(line) if line.is_empty() => return true,
                        Some(_) => {}
                        None => return false,
                    }
                }
            }
            let data = self.take(size).await;
            let got = data.len();
            body.extend_from_slice(&data);
            if got < size || self.take(2).await.len() < 2 {
                return false;
            }
        }
    }

    /// True when the proxy closed the connection (nothing more to read).
    pub async fn closed(&mut self) -> bool {
        self.buffered.is_empty() && !self.fill().await
    }
}

/// Answers a request head (the bytes up to and including the empty line)
/// with the bytes to write back.
pub type Script = Arc<dyn Fn(&str) -> Vec<u8> + Send + Sync>;

/// An upstream on raw sockets: every request head gets what its [`Script`]
/// returns; everything received is recorded. Stops when dropped.
pub struct RawUpstream {
    /// The address it listens on.
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<u8>>>,
    heads: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl RawUpstream {
    /// Starts an upstream answering with `script`, keeping connections open.
    pub async fn start(script: impl Fn(&str) -> Vec<u8> + Send + Sync + 'static) -> RawUpstream {
        Self::spawn(Arc::new(script), false).await
    }

    /// Starts an upstream answering with `script`, then closing the
    /// connection (a body shorter than its framing says arrives truncated).
    pub async fn start_closing(
        script: impl Fn(&str) -> Vec<u8> + Send + Sync + 'static,
    ) -> RawUpstream {
        Self::spawn(Arc::new(script), true).await
    }

    async fn spawn(script: Script, close: bool) -> RawUpstream {
        let socket = TcpListener::bind("127.0.0.1:0").await.expect("bind raw");
        let addr = socket.local_addr().expect("raw address");
        let received = Arc::new(Mutex::new(Vec::new()));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let task = {
            let (received, heads) = (Arc::clone(&received), Arc::clone(&heads));
            tokio::spawn(async move {
                while let Ok((stream, _)) = socket.accept().await {
                    tokio::spawn(serve(
                        stream,
                        Arc::clone(&script),
                        Arc::clone(&received),
                        Arc::clone(&heads),
                        close,
                    ));
                }
            })
        };
        RawUpstream {
            addr,
            received,
            heads,
            task,
        }
    }

    /// Every byte received, on every connection, in arrival order.
    pub fn received(&self) -> String {
        String::from_utf8_lossy(&self.received.lock().unwrap()).into_owned()
    }

    /// The request heads answered so far.
    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

impl Drop for RawUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Answers each request head on `stream` until the peer closes (or after the
/// first answer when `close`); bytes after a head that are not another head
/// are recorded only.
async fn serve(
    mut stream: TcpStream,
    script: Script,
    received: Arc<Mutex<Vec<u8>>>,
    heads: Arc<Mutex<Vec<String>>>,
    close: bool,
) {
    let mut pending = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        received.lock().unwrap().extend_from_slice(&chunk[..n]);
        pending.extend_from_slice(&chunk[..n]);
        while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&pending[..end + 4]).into_owned();
            pending.drain(..end + 4);
            heads.lock().unwrap().push(head.clone());
            let answer = script(&head);
            if stream.write_all(&answer).await.is_err() || close {
                return;
            }
        }
    }
}
