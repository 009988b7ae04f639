//! Shared pieces of the filter tests: WAT filters, a temp configuration, the
//! `wasp` binary under test, a tiny upstream and an HTTP client.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

/// A proxy-wasm module: `imports`, then memory, a bump allocator, the ABI
/// marker, context creation, then `body`.
pub fn wat(imports: &str, body: &str) -> String {
    format!(
        r#"(module
  {imports}
  (memory (export "memory") 4)
  (global $heap (mut i32) (i32.const 65536))
  (func (export "proxy_on_memory_allocate") (param $size i32) (result i32)
    (local $p i32)
    global.get $heap
    local.set $p
    (global.set $heap (i32.add (global.get $heap) (local.get $size)))
    local.get $p)
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_context_create") (param i32 i32))
  {body}
)"#
    )
}

pub fn add_header_filter() -> String {
    header_filter("added")
}

/// Adds `x-filter: <value>` to requests and responses.
pub fn header_filter(value: &str) -> String {
    wat(
        r#"(import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))"#,
        &format!(
            r#"(data (i32.const 100) "x-filter")
  (data (i32.const 120) "{value}")
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (drop (call $add (i32.const 0) (i32.const 100) (i32.const 8) (i32.const 120) (i32.const {len})))
    i32.const 0)
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32)
    (drop (call $add (i32.const 2) (i32.const 100) (i32.const 8) (i32.const 120) (i32.const {len})))
    i32.const 0)"#,
            len = value.len()
        ),
    )
}

pub fn unknown_import_filter() -> String {
    wat(
        r#"(import "env" "proxy_no_such_call" (func (param i32)))"#,
        "",
    )
}

/// Pauses the request for an HTTP callout to cluster `up` (`GET /side`) and
/// resumes it with the callout's body as `x-filter`.
pub fn callout_filter() -> String {
    let map: &[(&str, &str)] = &[(":method", "GET"), (":path", "/side"), (":authority", "up")];
    let map = wasp_abi::encode_map(map);
    let escaped: String = map.iter().map(|b| format!("\\{b:02x}")).collect();
    wat(
        r#"(import "env" "proxy_http_call" (func $call (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_buffer_bytes" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_continue_stream" (func $continue (param i32) (result i32)))"#,
        &format!(
            r#"(data (i32.const 100) "up")
  (data (i32.const 120) "x-filter")
  (data (i32.const 200) "{escaped}")
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (if (i32.ne (call $call (i32.const 100) (i32.const 2) (i32.const 200) (i32.const {len})
      (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 2000) (i32.const 32)) (i32.const 0))
      (then unreachable))
    i32.const 1)
  (func (export "proxy_on_http_call_response") (param i32 i32 i32) (param $size i32) (param i32)
    (drop (call $get (i32.const 4) (i32.const 0) (local.get $size) (i32.const 16) (i32.const 20)))
    (drop (call $add (i32.const 0) (i32.const 120) (i32.const 8) (i32.load (i32.const 16)) (i32.load (i32.const 20))))
    (drop (call $continue (i32.const 0))))"#,
            len = map.len()
        ),
    )
}

pub fn temp_dir() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "wasp-filters-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An upstream answering `x-filter=<header>\nbody=<body>`.
pub async fn upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service = service_fn(|req: Request<Incoming>| async move {
                    if req.uri().path() == "/side" {
                        return Ok(Response::new(Full::new(Bytes::from_static(b"side-answer"))));
                    }
                    let header = req
                        .headers()
                        .get("x-filter")
                        .map(|v| v.to_str().unwrap_or("?").to_owned())
                        .unwrap_or_default();
                    let body = req.into_body().collect().await?.to_bytes();
                    let text =
                        format!("x-filter={header}\nbody={}", String::from_utf8_lossy(&body));
                    Ok::<_, hyper::Error>(Response::new(Full::new(Bytes::from(text))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// A running `wasp`, killed on drop.
pub struct Proxy {
    child: Child,
    /// The proxy listener.
    pub listen: SocketAddr,
    /// The admin server.
    pub admin: SocketAddr,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes each `(name, wat)` module as `<name>.wat`; `chains` is the YAML of
/// `filter_chains:`; `routes` the YAML list of routes.
pub fn config(
    dir: &Path,
    upstream: SocketAddr,
    modules: &[(&str, String)],
    chains: &str,
    routes: &str,
) -> (PathBuf, SocketAddr, SocketAddr) {
    config_with(dir, upstream, modules, chains, routes, "")
}

/// [`config`] with `clusters` (YAML list items) added after cluster `up`.
pub fn config_with(
    dir: &Path,
    upstream: SocketAddr,
    modules: &[(&str, String)],
    chains: &str,
    routes: &str,
    clusters: &str,
) -> (PathBuf, SocketAddr, SocketAddr) {
    for (name, text) in modules {
        std::fs::write(dir.join(format!("{name}.wat")), text).unwrap();
    }
    let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let yaml = format!(
        "admin: {{address: '{admin}'}}\nlisteners:\n  - name: main\n    address: '{listen}'\n    routes:\n{routes}\nclusters:\n  - name: up\n    endpoints: ['{upstream}']\n{clusters}filter_chains:\n{chains}\n",
        chains = chains.replace("DIR", &dir.display().to_string()),
    );
    let path = dir.join("wasp.yaml");
    std::fs::write(&path, yaml).unwrap();
    (path, listen, admin)
}

pub async fn start(path: &Path, listen: SocketAddr, admin: SocketAddr) -> Proxy {
    let child = Command::new(env!("CARGO_BIN_EXE_wasp"))
        .args(["run", "--config"])
        .arg(path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let proxy = Proxy {
        child,
        listen,
        admin,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok((StatusCode::OK, _)) = get(admin, "/ready", &[]).await {
            return proxy;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("wasp did not become ready");
}

pub async fn send(addr: SocketAddr, req: Request<Full<Bytes>>) -> Result<Response<Bytes>, String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let response = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok(Response::from_parts(parts, body))
}

pub async fn get(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<(StatusCode, String), String> {
    let mut req = Request::get(path).header("host", "test");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let response = send(addr, req.body(Full::new(Bytes::new())).unwrap()).await?;
    Ok((
        response.status(),
        String::from_utf8_lossy(response.body()).into_owned(),
    ))
}

pub fn route(prefix: &str, chain: &str) -> String {
    format!(
        "      - match: {{prefix: {prefix}}}\n        filter_chain: {chain}\n        route: {{cluster: up}}\n"
    )
}

pub fn chain(name: &str, plugin: &str, policy: &str, extra: &str) -> String {
    format!(
        "  - name: {name}\n    plugins:\n      - name: {plugin}\n        module: DIR/{plugin}.wat\n        failure_policy: {policy}\n{extra}"
    )
}

pub async fn json(admin: SocketAddr, path: &str) -> serde_json::Value {
    let (_, body) = get(admin, path, &[]).await.unwrap();
    serde_json::from_str(&body).unwrap()
}
