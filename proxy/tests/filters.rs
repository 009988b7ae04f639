//! Wasm filters through the real `wasp` binary: a temp configuration, WAT
//! filters, a tiny upstream that echoes what it received.

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
fn wat(imports: &str, body: &str) -> String {
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

fn add_header_filter() -> String {
    header_filter("added")
}

/// Adds `x-filter: <value>` to requests and responses.
fn header_filter(value: &str) -> String {
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

fn deny_filter() -> String {
    wat(
        r#"(import "env" "proxy_send_local_response" (func $reply (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))"#,
        r#"(data (i32.const 100) "denied by filter")
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (drop (call $reply (i32.const 403) (i32.const 0) (i32.const 0) (i32.const 100) (i32.const 16) (i32.const 0) (i32.const 0) (i32.const -1)))
    i32.const 1)"#,
    )
}

fn trap_filter() -> String {
    wat(
        "",
        r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) unreachable)"#,
    )
}

fn loop_filter() -> String {
    wat(
        "",
        r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (loop (br 0)) i32.const 0)"#,
    )
}

fn unknown_import_filter() -> String {
    wat(
        r#"(import "env" "proxy_no_such_call" (func (param i32)))"#,
        "",
    )
}

/// Upper-cases the request body (buffering it whole first), proving the
/// body streams through the chain.
fn upper_body_filter() -> String {
    wat(
        r#"(import "env" "proxy_get_buffer_bytes" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_buffer_bytes" (func $set (param i32 i32 i32 i32 i32) (result i32)))"#,
        r#"(func (export "proxy_on_request_body") (param $ctx i32) (param $size i32) (param $eos i32) (result i32)
    (local $p i32) (local $i i32) (local $c i32)
    (if (i32.eqz (local.get $eos)) (then (return (i32.const 1))))
    (if (i32.eqz (local.get $size)) (then (return (i32.const 0))))
    (drop (call $get (i32.const 0) (i32.const 0) (local.get $size) (i32.const 16) (i32.const 20)))
    (local.set $p (i32.load (i32.const 16)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $size)))
        (local.set $c (i32.load8_u (i32.add (local.get $p) (local.get $i))))
        (if (i32.and (i32.ge_u (local.get $c) (i32.const 97)) (i32.le_u (local.get $c) (i32.const 122)))
          (then (i32.store8 (i32.add (local.get $p) (local.get $i)) (i32.sub (local.get $c) (i32.const 32)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (drop (call $set (i32.const 0) (i32.const 0) (local.get $size) (local.get $p) (local.get $size)))
    i32.const 0)"#,
    )
}

/// Pauses the request for an HTTP callout to cluster `up` (`GET /side`) and
/// resumes it with the callout's body as `x-filter`.
fn callout_filter() -> String {
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

fn temp_dir() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "wasp-filters-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An upstream answering `x-filter=<header>\nbody=<body>`.
async fn upstream() -> SocketAddr {
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
struct Proxy {
    child: Child,
    listen: SocketAddr,
    admin: SocketAddr,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes each `(name, wat)` module as `<name>.wat`; `chains` is the YAML of
/// `filter_chains:`; `routes` the YAML list of routes.
fn config(
    dir: &Path,
    upstream: SocketAddr,
    modules: &[(&str, String)],
    chains: &str,
    routes: &str,
) -> (PathBuf, SocketAddr, SocketAddr) {
    config_with(dir, upstream, modules, chains, routes, "")
}

/// [`config`] with `clusters` (YAML list items) added after cluster `up`.
fn config_with(
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

async fn start(path: &Path, listen: SocketAddr, admin: SocketAddr) -> Proxy {
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

async fn send(addr: SocketAddr, req: Request<Full<Bytes>>) -> Result<Response<Bytes>, String> {
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

async fn get(
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

fn route(prefix: &str, chain: &str) -> String {
    format!(
        "      - match: {{prefix: {prefix}}}\n        filter_chain: {chain}\n        route: {{cluster: up}}\n"
    )
}

fn chain(name: &str, plugin: &str, policy: &str, extra: &str) -> String {
    format!(
        "  - name: {name}\n    plugins:\n      - name: {plugin}\n        module: DIR/{plugin}.wat\n        failure_policy: {policy}\n{extra}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_modify_reply_fail_and_are_cut_off_through_the_binary() {
    let dir = temp_dir();
    let up = upstream().await;
    let modules = [
        ("adder", add_header_filter()),
        ("deny", deny_filter()),
        ("trap-closed", trap_filter()),
        ("trap-open", trap_filter()),
        ("looper", loop_filter()),
        ("upper", upper_body_filter()),
        ("callout", callout_filter()),
    ];
    let chains = [
        chain("add", "adder", "fail_closed", ""),
        chain("deny", "deny", "fail_closed", ""),
        chain("closed", "trap-closed", "fail_closed", ""),
        chain("open", "trap-open", "fail_open", ""),
        chain(
            "loop",
            "looper",
            "fail_closed",
            "        limits: {cpu_deadline: 500ms}\n",
        ),
        chain("upper", "upper", "fail_closed", ""),
        chain("callout", "callout", "fail_closed", ""),
    ]
    .concat();
    let routes = [
        route("/add", "add"),
        route("/deny", "deny"),
        route("/closed", "closed"),
        route("/open", "open"),
        route("/loop", "loop"),
        route("/upper", "upper"),
        route("/callout", "callout"),
        "      - match: {prefix: /}\n        route: {cluster: up}\n".to_owned(),
    ]
    .concat();
    let (path, listen, admin) = config(&dir, up, &modules, &chains, &routes);
    let proxy = start(&path, listen, admin).await;

    // A header added by the filter reaches the upstream, and one comes back.
    let req = Request::get("/add")
        .header("host", "t")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = send(proxy.listen, req).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(String::from_utf8_lossy(response.body()).starts_with("x-filter=added\n"));
    assert_eq!(response.headers()["x-filter"], "added");

    // A local reply never reaches the upstream.
    assert_eq!(
        get(proxy.listen, "/deny", &[]).await.unwrap(),
        (StatusCode::FORBIDDEN, "denied by filter".to_owned())
    );

    // A trapping filter: fail_closed answers 503 naming it, fail_open skips it.
    let (status, body) = get(proxy.listen, "/closed", &[]).await.unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("trap-closed"), "{body}");
    let (status, body) = get(proxy.listen, "/open", &[]).await.unwrap();
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "x-filter=\nbody=")
    );

    // A paused request resumes with what an HTTP callout to a cluster answered.
    assert_eq!(
        get(proxy.listen, "/callout", &[]).await.unwrap(),
        (StatusCode::OK, "x-filter=side-answer\nbody=".to_owned())
    );

    // The request body streams through the chain.
    let req = Request::post("/upper")
        .header("host", "t")
        .body(Full::new(Bytes::from_static(b"hello wasm")))
        .unwrap();
    let response = send(proxy.listen, req).await.unwrap();
    assert_eq!(
        String::from_utf8_lossy(response.body()),
        "x-filter=\nbody=HELLO WASM"
    );

    // An infinite loop is cut off at its deadline while other requests succeed.
    let started = Instant::now();
    let looping = tokio::spawn(async move { get(listen, "/loop", &[]).await });
    let mut ok = 0;
    while !looping.is_finished() && started.elapsed() < Duration::from_secs(5) {
        if let Ok((StatusCode::OK, _)) = get(listen, "/plain", &[]).await {
            ok += 1;
        }
    }
    let (status, body) = looping.await.unwrap().unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(get(listen, "/plain", &[]).await.unwrap().0, StatusCode::OK);
    assert!(ok > 0, "no request completed while the filter looped");

    // /filters shows the plugins with their module hash and failures.
    let (status, filters) = get(proxy.admin, "/filters", &[]).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    let filters: serde_json::Value = serde_json::from_str(&filters).unwrap();
    let plugin = |chain: &str| {
        filters["filter_chains"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == chain)
            .map(|c| c["plugins"][0].clone())
            .unwrap()
    };
    let sha = wasp_filter_host::FilterEngine::sha256(add_header_filter().as_bytes());
    assert_eq!(plugin("add")["sha256"], sha.as_str());
    assert_eq!(plugin("closed")["traps"], 1);
    assert_eq!(plugin("loop")["timeouts"], 1);
    let (_, metrics) = get(proxy.admin, "/metrics", &[]).await.unwrap();
    assert!(
        metrics.contains("wasp_filter_timeouts_total{plugin=\"looper\"} 1"),
        "{metrics}"
    );
    drop(proxy);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_module_with_an_unknown_import_is_rejected_naming_it() {
    let dir = temp_dir();
    let up: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let (path, _, _) = config(
        &dir,
        up,
        &[("bad", unknown_import_filter())],
        &chain("bad", "bad", "fail_closed", ""),
        &route("/", "bad"),
    );
    let output = Command::new(env!("CARGO_BIN_EXE_wasp"))
        .arg("validate")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("filter_chains[0].plugins[0].module"),
        "{stderr}"
    );
    assert!(stderr.contains("env.proxy_no_such_call"), "{stderr}");
    let _ = std::fs::remove_dir_all(dir);
}

async fn json(admin: SocketAddr, path: &str) -> serde_json::Value {
    let (_, body) = get(admin, path, &[]).await.unwrap();
    serde_json::from_str(&body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_swap_chains_reject_bad_modules_and_reuse_compiled_ones() {
    let dir = temp_dir();
    let up = upstream().await;
    let modules = [
        ("first", header_filter("first")),
        ("second", header_filter("second")),
        ("bad", unknown_import_filter()),
    ];
    let chains = |module: &str| {
        format!(
            "  - name: c\n    plugins:\n      - {{name: p, module: DIR/{module}.wat}}\n  - name: keep\n    plugins:\n      - {{name: k, module: DIR/first.wat}}\n"
        )
    };
    let routes = [route("/c", "c"), route("/keep", "keep")].concat();
    let (path, listen, admin) = config(&dir, up, &modules, &chains("first"), &routes);
    let proxy = start(&path, listen, admin).await;
    assert_eq!(
        get(listen, "/c", &[]).await.unwrap().1,
        "x-filter=first\nbody="
    );
    let compiled = json(admin, "/filters").await["compiled_modules"].clone();
    assert_eq!(compiled, 1, "both chains share one compiled module");

    // Requests keep succeeding while the configuration changes underneath.
    let load = tokio::spawn(async move {
        let mut failures = 0;
        for _ in 0..400 {
            match get(listen, "/keep", &[]).await {
                Ok((StatusCode::OK, body)) if body == "x-filter=first\nbody=" => {}
                _ => failures += 1,
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        failures
    });

    let rewrite = |module: &str| {
        let yaml = std::fs::read_to_string(&path).unwrap();
        let start = yaml.find("filter_chains:").unwrap();
        let chains = chains(module).replace("DIR", &dir.display().to_string());
        std::fs::write(&path, format!("{}filter_chains:\n{chains}", &yaml[..start])).unwrap();
    };
    let wait_for = |check: fn(&serde_json::Value, &str) -> bool, what: &'static str| async move {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let dump = json(admin, "/config_dump").await;
            let (_, body) = get(listen, "/c", &[]).await.unwrap();
            if check(&dump, &body) {
                return dump;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };

    // A module with an unknown import rejects the whole reload; the old chain serves.
    rewrite("bad");
    let dump = wait_for(
        |d, _| d["last_reload_error"].is_string(),
        "the reload error",
    )
    .await;
    let error = dump["last_reload_error"].as_str().unwrap();
    assert!(
        error.contains("filter_chains[0].plugins[0].module"),
        "{error}"
    );
    assert!(error.contains("env.proxy_no_such_call"), "{error}");
    assert_eq!(
        get(listen, "/c", &[]).await.unwrap().1,
        "x-filter=first\nbody="
    );

    // A changed module takes effect; the unchanged one is not recompiled.
    rewrite("second");
    wait_for(|_, body| body == "x-filter=second\nbody=", "the new module").await;
    assert_eq!(json(admin, "/filters").await["compiled_modules"], 2);

    assert_eq!(load.await.unwrap(), 0, "no request failed during reloads");
    drop(proxy);
    let _ = std::fs::remove_dir_all(dir);
}

/// An HTTP/2 gRPC upstream: answers every call with the request's message
/// prefixed by `re:`, `grpc-status: 0` in the trailers.
async fn grpc_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service = service_fn(|req: Request<Incoming>| async move {
                    let path = req.uri().path().to_owned();
                    let body = req.into_body().collect().await?.to_bytes();
                    let message = [
                        &b"re:"[..],
                        path.as_bytes(),
                        b":",
                        body.get(5..).unwrap_or_default(),
                    ]
                    .concat();
                    let mut framed = vec![0];
                    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
                    framed.extend_from_slice(&message);
                    let mut trailers = http::HeaderMap::new();
                    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
                    let body = Full::new(Bytes::from(framed))
                        .with_trailers(async move { Some(Ok(trailers)) });
                    let mut response = Response::new(body);
                    response.headers_mut().insert(
                        "content-type",
                        http::HeaderValue::from_static("application/grpc"),
                    );
                    Ok::<_, hyper::Error>(response)
                });
                let _ =
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
            });
        }
    });
    addr
}

/// Calls `pkg.Echo/Say` on cluster `grpc` with message `hello` and resumes
/// the request with the answer as `x-filter`.
fn grpc_filter() -> String {
    wat(
        r#"(import "env" "proxy_grpc_call" (func $grpc (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_buffer_bytes" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_continue_stream" (func $continue (param i32) (result i32)))"#,
        r#"(data (i32.const 100) "grpc")
  (data (i32.const 110) "pkg.Echo")
  (data (i32.const 120) "Say")
  (data (i32.const 130) "hello")
  (data (i32.const 140) "x-filter")
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (if (i32.ne (call $grpc (i32.const 100) (i32.const 4) (i32.const 110) (i32.const 8) (i32.const 120) (i32.const 3)
      (i32.const 0) (i32.const 0) (i32.const 130) (i32.const 5) (i32.const 2000) (i32.const 32)) (i32.const 0))
      (then unreachable))
    i32.const 1)
  (func (export "proxy_on_grpc_receive") (param i32 i32) (param $size i32)
    (drop (call $get (i32.const 5) (i32.const 0) (local.get $size) (i32.const 16) (i32.const 20)))
    (drop (call $add (i32.const 0) (i32.const 140) (i32.const 8) (i32.load (i32.const 16)) (i32.load (i32.const 20))))
    (drop (call $continue (i32.const 0))))
  (func (export "proxy_on_grpc_close") (param i32 i32 i32) unreachable)"#,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_callouts_reach_an_http2_cluster() {
    let dir = temp_dir();
    let up = upstream().await;
    let grpc = grpc_upstream().await;
    let (path, listen, admin) = config_with(
        &dir,
        up,
        &[("grpc", grpc_filter())],
        &chain("grpc", "grpc", "fail_closed", ""),
        &route("/", "grpc"),
        &format!("  - name: grpc\n    endpoints: ['{grpc}']\n    protocol: http2\n"),
    );
    let proxy = start(&path, listen, admin).await;
    assert_eq!(
        get(proxy.listen, "/x", &[]).await.unwrap(),
        (
            StatusCode::OK,
            "x-filter=re:/pkg.Echo/Say:hello\nbody=".to_owned()
        )
    );
    drop(proxy);
    let _ = std::fs::remove_dir_all(dir);
}

/// A response body fed from a channel, then trailers `grpc-status: 0`.
struct EchoBody {
    chunks: tokio::sync::mpsc::UnboundedReceiver<Bytes>,
    done: bool,
}

impl http_body::Body for EchoBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, hyper::Error>>> {
        if self.done {
            return std::task::Poll::Ready(None);
        }
        match self.chunks.poll_recv(cx) {
            std::task::Poll::Pending => std::task::Poll::Pending,
            std::task::Poll::Ready(Some(chunk)) => {
                std::task::Poll::Ready(Some(Ok(http_body::Frame::data(chunk))))
            }
            std::task::Poll::Ready(None) => {
                self.done = true;
                let mut trailers = http::HeaderMap::new();
                trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
                std::task::Poll::Ready(Some(Ok(http_body::Frame::trailers(trailers))))
            }
        }
    }
}

/// An HTTP/2 upstream echoing each request data frame as soon as it arrives.
async fn grpc_echo_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service = service_fn(|req: Request<Incoming>| async move {
                    let (tx, chunks) = tokio::sync::mpsc::unbounded_channel();
                    let mut body = req.into_body();
                    tokio::spawn(async move {
                        while let Some(Ok(frame)) = body.frame().await {
                            if let Ok(data) = frame.into_data() {
                                let _ = tx.send(data);
                            }
                        }
                    });
                    let mut response = Response::new(EchoBody {
                        chunks,
                        done: false,
                    });
                    response.headers_mut().insert(
                        "content-type",
                        http::HeaderValue::from_static("application/grpc"),
                    );
                    Ok::<_, hyper::Error>(response)
                });
                let _ =
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
            });
        }
    });
    addr
}

/// Opens a stream on cluster `grpc`, sends "a"; on its echo sends "b" and
/// ends; on close with status 0 resumes with `x-filter` = what it received.
fn grpc_stream_filter() -> String {
    wat(
        r#"(import "env" "proxy_grpc_stream" (func $open (param i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_grpc_send" (func $send (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_buffer_bytes" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_continue_stream" (func $continue (param i32) (result i32)))"#,
        r#"(data (i32.const 100) "grpc")
  (data (i32.const 110) "pkg.Chat")
  (data (i32.const 120) "Talk")
  (data (i32.const 130) "ab")
  (data (i32.const 140) "x-filter")
  (global $got (mut i32) (i32.const 0))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (if (i32.ne (call $open (i32.const 100) (i32.const 4) (i32.const 110) (i32.const 8) (i32.const 120) (i32.const 4)
      (i32.const 0) (i32.const 0) (i32.const 32)) (i32.const 0)) (then unreachable))
    (drop (call $send (i32.load (i32.const 32)) (i32.const 130) (i32.const 1) (i32.const 0)))
    i32.const 1)
  (func (export "proxy_on_grpc_receive") (param $ctx i32) (param $token i32) (param $size i32)
    (drop (call $get (i32.const 5) (i32.const 0) (local.get $size) (i32.const 16) (i32.const 20)))
    (i32.store8 (i32.add (i32.const 200) (global.get $got)) (i32.load8_u (i32.load (i32.const 16))))
    (global.set $got (i32.add (global.get $got) (i32.const 1)))
    (if (i32.eq (global.get $got) (i32.const 1))
      (then (drop (call $send (local.get $token) (i32.const 131) (i32.const 1) (i32.const 1))))))
  (func (export "proxy_on_grpc_close") (param $ctx i32) (param $token i32) (param $status i32)
    (if (i32.eqz (local.get $status))
      (then
        (drop (call $add (i32.const 0) (i32.const 140) (i32.const 8) (i32.const 200) (global.get $got)))
        (drop (call $continue (i32.const 0))))))"#,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_streams_are_full_duplex_through_an_http2_cluster() {
    let dir = temp_dir();
    let up = upstream().await;
    let grpc = grpc_echo_upstream().await;
    let (path, listen, admin) = config_with(
        &dir,
        up,
        &[("chat", grpc_stream_filter())],
        &chain("chat", "chat", "fail_closed", ""),
        &route("/", "chat"),
        &format!("  - name: grpc\n    endpoints: ['{grpc}']\n    protocol: http2\n"),
    );
    let proxy = start(&path, listen, admin).await;
    let answer = tokio::time::timeout(Duration::from_secs(10), get(proxy.listen, "/x", &[]))
        .await
        .expect("answered")
        .unwrap();
    assert_eq!(answer, (StatusCode::OK, "x-filter=ab\nbody=".to_owned()));
    drop(proxy);
    let _ = std::fs::remove_dir_all(dir);
}
