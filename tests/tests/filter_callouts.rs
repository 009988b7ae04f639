//! gRPC callouts of WAT filters through the real `wasp` binary: a unary
//! call and a full-duplex stream to HTTP/2 clusters.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use wasp_e2e::wat::{upstream_saw, wat};
use wasp_e2e::{
    Client, Cluster, Config, FilterChain, GrpcEcho, Listener, Plugin, Route, Upstream, Wasp,
    WatDir, free_addr,
};

/// Calls `pkg.Echo/Say` on cluster `grpc` with message `hello` and resumes
/// the request with the answer as `x-filter`.
fn grpc_filter() -> String {
    wat(
        r#"(import "env" "proxy_grpc_call" (func $grpc (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_buffer_bytes" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_continue_stream" (func $continue (param i32) (result i32)))
  (import "env" "proxy_set_effective_context" (func $effective (param i32) (result i32)))"#,
        r#"(data (i32.const 100) "grpc")
  (data (i32.const 110) "pkg.Echo")
  (data (i32.const 120) "Say")
  (data (i32.const 130) "hello")
  (data (i32.const 140) "x-filter")
  (func (export "proxy_on_request_headers") (param $ctx i32) (param i32 i32) (result i32)
    (i32.store (i32.const 48) (local.get $ctx))
    (if (i32.ne (call $grpc (i32.const 100) (i32.const 4) (i32.const 110) (i32.const 8) (i32.const 120) (i32.const 3)
      (i32.const 0) (i32.const 0) (i32.const 130) (i32.const 5) (i32.const 2000) (i32.const 32)) (i32.const 0))
      (then unreachable))
    i32.const 1)
  (func (export "proxy_on_grpc_receive") (param i32 i32) (param $size i32)
    ;; delivered to the root context: switch to the stream that made the call
    (drop (call $effective (i32.load (i32.const 48))))
    (drop (call $get (i32.const 5) (i32.const 0) (local.get $size) (i32.const 16) (i32.const 20)))
    (drop (call $add (i32.const 0) (i32.const 140) (i32.const 8) (i32.load (i32.const 16)) (i32.load (i32.const 20))))
    (drop (call $continue (i32.const 0))))
  (func (export "proxy_on_grpc_close") (param i32 i32 i32) unreachable)"#,
    )
}

/// Opens a stream on cluster `grpc`, sends "a"; on its echo sends "b" and
/// ends; on close with status 0 resumes with `x-filter` = what it received.
fn grpc_stream_filter() -> String {
    wat(
        r#"(import "env" "proxy_grpc_stream" (func $open (param i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_grpc_send" (func $send (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_buffer_bytes" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_continue_stream" (func $continue (param i32) (result i32)))
  (import "env" "proxy_set_effective_context" (func $effective (param i32) (result i32)))"#,
        r#"(data (i32.const 100) "grpc")
  (data (i32.const 110) "pkg.Chat")
  (data (i32.const 120) "Talk")
  (data (i32.const 130) "ab")
  (data (i32.const 140) "x-filter")
  (global $got (mut i32) (i32.const 0))
  (func (export "proxy_on_request_headers") (param $ctx i32) (param i32 i32) (result i32)
    (i32.store (i32.const 48) (local.get $ctx))
    (if (i32.ne (call $open (i32.const 100) (i32.const 4) (i32.const 110) (i32.const 8) (i32.const 120) (i32.const 4)
      (i32.const 0) (i32.const 0) (i32.const 32)) (i32.const 0)) (then unreachable))
    (drop (call $send (i32.load (i32.const 32)) (i32.const 130) (i32.const 1) (i32.const 0)))
    i32.const 1)
  (func (export "proxy_on_grpc_receive") (param $ctx i32) (param $token i32) (param $size i32)
    ;; delivered to the root context: switch to the stream that made the call
    (drop (call $effective (i32.load (i32.const 48))))
    (drop (call $get (i32.const 5) (i32.const 0) (local.get $size) (i32.const 16) (i32.const 20)))
    (i32.store8 (i32.add (i32.const 200) (global.get $got)) (i32.load8_u (i32.load (i32.const 16))))
    (global.set $got (i32.add (global.get $got) (i32.const 1)))
    (if (i32.eq (global.get $got) (i32.const 1))
      (then (drop (call $send (local.get $token) (i32.const 131) (i32.const 1) (i32.const 1))))))
  (func (export "proxy_on_grpc_close") (param $ctx i32) (param $token i32) (param $status i32)
    (drop (call $effective (i32.load (i32.const 48))))
    (if (i32.eqz (local.get $status))
      (then
        (drop (call $add (i32.const 0) (i32.const 140) (i32.const 8) (i32.const 200) (global.get $got)))
        (drop (call $continue (i32.const 0))))))"#,
    )
}

/// wasp running `filter` on `listen` for every route to cluster `up`,
/// with the HTTP/2 cluster `grpc` it calls.
fn config(listen: SocketAddr, filter: &Path, up: &Upstream, grpc: &GrpcEcho) -> Config {
    Config::new()
        .filter_chain(FilterChain::new("chain").plugin(Plugin::new("filter", filter)))
        .listener(
            Listener::new("main", listen)
                .route(Route::prefix("/").filter_chain("chain").cluster("up")),
        )
        .cluster(Cluster::new("up").endpoint(up.addr))
        .cluster(Cluster::new("grpc").endpoint(grpc.addr).http2())
}

/// GET `/x` on `listen`: the status and what the upstream saw.
async fn get_x(listen: SocketAddr) -> (u16, String) {
    let resp = tokio::time::timeout(
        Duration::from_secs(10),
        Client::http1().get(&format!("http://{listen}/x")),
    )
    .await
    .expect("answered")
    .unwrap();
    (resp.status, upstream_saw(&resp))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_callouts_reach_an_http2_cluster() {
    let (listen, modules) = (free_addr(), WatDir::new());
    let up = Upstream::start("up").await;
    let grpc = GrpcEcho::unary().await;
    let filter = modules.write("grpc", &grpc_filter());
    let _wasp = Wasp::start(config(listen, &filter, &up, &grpc)).await;
    assert_eq!(
        get_x(listen).await,
        (200, "x-filter=re:/pkg.Echo/Say:hello\nbody=".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_streams_are_full_duplex_through_an_http2_cluster() {
    let (listen, modules) = (free_addr(), WatDir::new());
    let up = Upstream::start("up").await;
    let grpc = GrpcEcho::duplex().await;
    let filter = modules.write("chat", &grpc_stream_filter());
    let _wasp = Wasp::start(config(listen, &filter, &up, &grpc)).await;
    assert_eq!(get_x(listen).await, (200, "x-filter=ab\nbody=".to_owned()));
}
