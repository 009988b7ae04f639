//! Fuzzing of the host's ABI boundary: a live VM runs a program taken from
//! the fuzz input that calls host functions with arbitrary pointers, lengths
//! and values, through every callback of a request.
//!
//! The module ([`module_wat`]) is generated from [`IMPORTS`], the signature
//! of every host function of the `env` and `wasi_snapshot_preview1` modules.
//! Its program is the plugin configuration: `proxy_on_configure` copies it
//! into linear memory and every callback then interprets it from where the
//! previous one stopped, until the byte `0xff` or the end:
//!
//! - one byte selects a host function (modulo the number of them);
//! - each argument is one byte: `0x00..0x80` is that small value (buffer
//!   and map types, lengths, pointers into the first 128 bytes, which hold
//!   header names and a serialized map; a callout's headers are at 8192), `0x80..0xc0` a scratch pointer
//!   (1024 + 64·k), `0xc0..0xff` a pointer just below the end of memory, and
//!   `0xff` takes the next four bytes as a little-endian `u32`.
//!
//! Compiled only for tests and `cfg(fuzzing)` builds (`proxy/fuzz`), so the
//! seed corpus is replayed by `cargo test` on stable.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use crate::{
    CalloutError, CalloutFuture, CalloutRequest, CalloutResponse, Callouts, EngineOptions,
    FilterChain, FilterEngine, PluginSpec, StreamInfo,
};

/// `(module, name, params, returns a value)`: params as `i` (i32) and `I` (i64).
pub const IMPORTS: &[(&str, &str, &str, bool)] = &[
    ("env", "proxy_log", "iii", true),
    ("env", "proxy_get_log_level", "i", true),
    ("env", "proxy_get_current_time_nanoseconds", "i", true),
    ("env", "proxy_set_tick_period_milliseconds", "i", true),
    ("env", "proxy_get_configuration", "ii", true),
    ("env", "proxy_get_property", "iiii", true),
    ("env", "proxy_set_property", "iiii", true),
    ("env", "proxy_get_shared_data", "iiiii", true),
    ("env", "proxy_set_shared_data", "iiiii", true),
    ("env", "proxy_register_shared_queue", "iii", true),
    ("env", "proxy_resolve_shared_queue", "iiiii", true),
    ("env", "proxy_enqueue_shared_queue", "iii", true),
    ("env", "proxy_dequeue_shared_queue", "iii", true),
    ("env", "proxy_define_metric", "iiii", true),
    ("env", "proxy_increment_metric", "iI", true),
    ("env", "proxy_record_metric", "iI", true),
    ("env", "proxy_get_metric", "ii", true),
    ("env", "proxy_get_status", "iii", true),
    ("env", "proxy_call_foreign_function", "iiiiii", true),
    ("env", "proxy_get_header_map_pairs", "iii", true),
    ("env", "proxy_set_header_map_pairs", "iii", true),
    ("env", "proxy_get_header_map_value", "iiiii", true),
    ("env", "proxy_add_header_map_value", "iiiii", true),
    ("env", "proxy_replace_header_map_value", "iiiii", true),
    ("env", "proxy_remove_header_map_value", "iii", true),
    ("env", "proxy_get_header_map_size", "ii", true),
    ("env", "proxy_get_buffer_bytes", "iiiii", true),
    ("env", "proxy_get_buffer_status", "iii", true),
    ("env", "proxy_set_buffer_bytes", "iiiii", true),
    ("env", "proxy_send_local_response", "iiiiiiii", true),
    ("env", "proxy_continue_stream", "i", true),
    ("env", "proxy_close_stream", "i", true),
    ("env", "proxy_continue_request", "", true),
    ("env", "proxy_continue_response", "", true),
    ("env", "proxy_clear_route_cache", "", true),
    ("env", "proxy_set_effective_context", "i", true),
    ("env", "proxy_done", "", true),
    ("env", "proxy_http_call", "iiiiiiiiii", true),
    ("env", "proxy_grpc_call", "iiiiiiiiiiii", true),
    ("env", "proxy_grpc_stream", "iiiiiiiii", true),
    ("env", "proxy_grpc_send", "iiii", true),
    ("env", "proxy_grpc_close", "i", true),
    ("env", "proxy_grpc_cancel", "i", true),
    ("env", "emscripten_notify_memory_growth", "i", false),
    ("env", "pthread_equal", "ii", true),
    ("wasi_snapshot_preview1", "fd_write", "iiii", true),
    ("wasi_snapshot_preview1", "fd_read", "iiii", true),
    ("wasi_snapshot_preview1", "fd_close", "i", true),
    ("wasi_snapshot_preview1", "fd_seek", "iIii", true),
    ("wasi_snapshot_preview1", "fd_fdstat_get", "ii", true),
    ("wasi_snapshot_preview1", "fd_fdstat_set_flags", "ii", true),
    ("wasi_snapshot_preview1", "fd_prestat_get", "ii", true),
    ("wasi_snapshot_preview1", "fd_prestat_dir_name", "iii", true),
    ("wasi_snapshot_preview1", "fd_filestat_get", "ii", true),
    ("wasi_snapshot_preview1", "fd_readdir", "iiiIi", true),
    ("wasi_snapshot_preview1", "path_open", "iiiiiIIii", true),
    ("wasi_snapshot_preview1", "path_filestat_get", "iiiii", true),
    ("wasi_snapshot_preview1", "environ_sizes_get", "ii", true),
    ("wasi_snapshot_preview1", "environ_get", "ii", true),
    ("wasi_snapshot_preview1", "args_sizes_get", "ii", true),
    ("wasi_snapshot_preview1", "args_get", "ii", true),
    ("wasi_snapshot_preview1", "clock_time_get", "iIi", true),
    ("wasi_snapshot_preview1", "clock_res_get", "ii", true),
    ("wasi_snapshot_preview1", "random_get", "ii", true),
    ("wasi_snapshot_preview1", "sched_yield", "", true),
    ("wasi_snapshot_preview1", "poll_oneoff", "iiii", true),
    ("wasi_snapshot_preview1", "proc_exit", "i", false),
];

/// Callbacks of the module that run the next part of the program:
/// `(name, params, result)`.
const CALLBACKS: &[(&str, usize, bool)] = &[
    ("proxy_on_vm_start", 2, true),
    ("proxy_on_context_create", 2, false),
    ("proxy_on_request_headers", 3, true),
    ("proxy_on_request_body", 3, true),
    ("proxy_on_request_trailers", 2, true),
    ("proxy_on_response_headers", 3, true),
    ("proxy_on_response_body", 3, true),
    ("proxy_on_response_trailers", 2, true),
    ("proxy_on_log", 1, false),
    ("proxy_on_done", 1, true),
    ("proxy_on_delete", 1, false),
    ("proxy_on_tick", 1, false),
    ("proxy_on_queue_ready", 2, false),
    ("proxy_on_http_call_response", 5, false),
    ("proxy_on_grpc_receive_initial_metadata", 3, false),
    ("proxy_on_grpc_receive", 3, false),
    ("proxy_on_grpc_receive_trailing_metadata", 3, false),
    ("proxy_on_grpc_close", 3, false),
];

/// The fuzzing module, as WAT text.
pub fn module_wat() -> String {
    let mut wat = String::from("(module\n");
    for (i, (module, name, params, result)) in IMPORTS.iter().enumerate() {
        let params: Vec<&str> = params
            .chars()
            .map(|c| if c == 'I' { "i64" } else { "i32" })
            .collect();
        let result = if *result { " (result i32)" } else { "" };
        wat.push_str(&format!(
            "  (import \"{module}\" \"{name}\" (func $f{i} (param {}){result}))\n",
            params.join(" ")
        ));
    }
    wat.push_str(
        r#"  (memory (export "memory") 4)
  (global $heap (mut i32) (i32.const 65536))
  (global $pc (mut i32) (i32.const 0))
  (global $end (mut i32) (i32.const 0))
  ;; Header names and a serialized map {x-a: 1} for pointers below 128.
  (data (i32.const 32) "x-a\00:path\00content-type\00up\00grpc\00")
  (data (i32.const 64) "\01\00\00\00\03\00\00\00\01\00\00\00x-a\001\00")
  ;; Callout headers at 8192: {:method: GET, :path: /, :authority: up}.
  (data (i32.const 8192) "\03\00\00\00\07\00\00\00\03\00\00\00\05\00\00\00\01\00\00\00\0a\00\00\00\02\00\00\00:method\00GET\00:path\00/\00:authority\00up\00")
  (func (export "proxy_on_memory_allocate") (param $size i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $size)))
    (local.get $p))
  (func (export "proxy_abi_version_0_2_1"))
  (func $arg (result i32)
    (local $b i32)
    (if (i32.ge_u (global.get $pc) (global.get $end)) (then (return (i32.const 0))))
    (local.set $b (i32.load8_u (global.get $pc)))
    (global.set $pc (i32.add (global.get $pc) (i32.const 1)))
    (if (i32.lt_u (local.get $b) (i32.const 0x80)) (then (return (local.get $b))))
    (if (i32.lt_u (local.get $b) (i32.const 0xc0))
      (then (return (i32.add (i32.const 1024)
        (i32.shl (i32.sub (local.get $b) (i32.const 0x80)) (i32.const 6))))))
    (if (i32.lt_u (local.get $b) (i32.const 0xff))
      (then (return (i32.sub (i32.const 262144) (i32.sub (local.get $b) (i32.const 0xbf))))))
    (if (i32.gt_u (i32.add (global.get $pc) (i32.const 4)) (global.get $end))
      (then (global.set $pc (global.get $end)) (return (i32.const -1))))
    (local.set $b (i32.load (global.get $pc)))
    (global.set $pc (i32.add (global.get $pc) (i32.const 4)))
    (local.get $b))
  (type $op (func))
"#,
    );
    for (i, (_, _, params, result)) in IMPORTS.iter().enumerate() {
        let args: String = params
            .chars()
            .map(|c| {
                if c == 'I' {
                    " (i64.extend_i32_u (call $arg))"
                } else {
                    " (call $arg)"
                }
            })
            .collect();
        let call = format!("(call $f{i}{args})");
        let body = if *result {
            format!("(drop {call})")
        } else {
            call
        };
        wat.push_str(&format!("  (func $w{i} (type $op) {body})\n"));
    }
    let names: Vec<String> = (0..IMPORTS.len()).map(|i| format!("$w{i}")).collect();
    wat.push_str(&format!(
        "  (table {n} funcref)\n  (elem (i32.const 0) {})\n",
        names.join(" "),
        n = IMPORTS.len()
    ));
    wat.push_str(&format!(
        r#"  (func $run
    (local $op i32)
    (loop $next
      (if (i32.ge_u (global.get $pc) (global.get $end)) (then (return)))
      (local.set $op (i32.load8_u (global.get $pc)))
      (global.set $pc (i32.add (global.get $pc) (i32.const 1)))
      (if (i32.eq (local.get $op) (i32.const 0xff)) (then (return)))
      (call_indirect (type $op) (i32.rem_u (local.get $op) (i32.const {n})))
      (br $next)))
  (func (export "proxy_on_configure") (param i32) (param $size i32) (result i32)
    (if (i32.eqz (call $f{get_buffer} (i32.const 7) (i32.const 0) (local.get $size) (i32.const 16) (i32.const 20)))
      (then
        (global.set $pc (i32.load (i32.const 16)))
        (global.set $end (i32.add (global.get $pc) (i32.load (i32.const 20))))))
    (call $run)
    (i32.const 1))
"#,
        n = IMPORTS.len(),
        get_buffer = IMPORTS
            .iter()
            .position(|(_, name, _, _)| *name == "proxy_get_buffer_bytes")
            .expect("listed"),
    ));
    for (name, params, result) in CALLBACKS {
        let params = vec!["i32"; *params].join(" ");
        let (result, value) = if *result {
            // proxy_on_vm_start and proxy_on_done answer true, the rest Continue.
            let value = matches!(*name, "proxy_on_vm_start" | "proxy_on_done");
            (
                " (result i32)",
                if value {
                    " (i32.const 1)"
                } else {
                    " (i32.const 0)"
                },
            )
        } else {
            ("", "")
        };
        wat.push_str(&format!(
            "  (func (export \"{name}\") (param {params}){result} (call $run){value})\n"
        ));
    }
    wat.push(')');
    wat
}

/// Callouts answered at once: cluster `up` with HTTP `200 pong`, `grpc`
/// with one gRPC message; the rest are unknown.
struct Answers;

impl Callouts for Answers {
    fn has_cluster(&self, cluster: &str) -> bool {
        matches!(cluster, "up" | "grpc")
    }

    fn call(&self, request: CalloutRequest) -> CalloutFuture {
        Box::pin(async move {
            match request.cluster.as_str() {
                "up" => Ok(CalloutResponse {
                    headers: vec![(":status".into(), b"200".to_vec())],
                    body: Bytes::from_static(b"pong"),
                    trailers: Vec::new(),
                }),
                "grpc" => Ok(CalloutResponse {
                    headers: vec![(":status".into(), b"200".to_vec())],
                    body: Bytes::from_static(b"\0\0\0\0\x02hi"),
                    trailers: vec![("grpc-status".into(), b"0".to_vec())],
                }),
                other => Err(CalloutError::UnknownCluster(other.to_owned())),
            }
        })
    }
}

fn engine() -> &'static FilterEngine {
    static ENGINE: OnceLock<FilterEngine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let engine = FilterEngine::new(EngineOptions {
            max_instances: 32,
            max_memory_bytes: 1 << 20,
            ..EngineOptions::default()
        })
        .expect("engine");
        engine.set_callouts(Arc::new(Answers));
        engine
    })
}

fn module() -> &'static Bytes {
    static MODULE: OnceLock<Bytes> = OnceLock::new();
    MODULE.get_or_init(|| Bytes::from(module_wat()))
}

/// Runs `program` (see the module docs) through one plugin load and one
/// request: headers, two body chunks and trailers each way, the callouts'
/// answers, then the stream's end. Panics only on a host bug.
pub fn host_calls(program: &[u8]) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let spec = PluginSpec {
            name: "fuzz".into(),
            vm_id: "fuzz".into(),
            wasm: module().clone(),
            configuration: Bytes::copy_from_slice(program),
            environment: vec![("A".into(), "1".into())],
            ..PluginSpec::default()
        };
        let Ok(plugin) = engine().load(spec) else {
            return;
        };
        let chain = FilterChain::new("fuzz", vec![plugin]);
        let stream = chain.start(StreamInfo::default());
        let request = vec![
            (":method".into(), b"POST".to_vec()),
            (":path".into(), b"/a?b=1".to_vec()),
            (":authority".into(), b"example".to_vec()),
            ("x-a".into(), b"1".to_vec()),
        ];
        let response = vec![(":status".into(), b"200".to_vec())];
        let steps = async {
            stream.request_headers(request, false).await?;
            stream
                .request_body(Bytes::from_static(b"hello"), false)
                .await?;
            stream
                .request_body(Bytes::from_static(b"world"), false)
                .await?;
            stream
                .request_trailers(vec![("t".into(), b"1".to_vec())])
                .await?;
            tokio::task::yield_now().await;
            stream.response_headers(response, false).await?;
            stream
                .response_body(Bytes::from_static(b"body"), false)
                .await?;
            stream.response_trailers(Vec::new()).await?;
            Ok::<_, crate::LocalReply>(())
        };
        // A filter may pause a phase and never resume it: bounded wait.
        let _ = tokio::time::timeout(std::time::Duration::from_millis(200), steps).await;
        for _ in 0..4 {
            tokio::task::yield_now().await;
        }
        drop(stream);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::HostImports;

    #[test]
    fn the_table_names_every_host_function() {
        let engine = wasmtime::Engine::default();
        let imports = HostImports::new(&engine).expect("imports");
        for (module, name) in &imports.names {
            if module == "wasi_unstable" {
                continue;
            }
            assert!(
                IMPORTS.iter().any(|(m, n, _, _)| m == module && n == name),
                "{module}.{name} is missing from fuzzing::IMPORTS"
            );
        }
    }

    /// Replays the seed corpus of the `host_calls` fuzz target (`proxy/fuzz`).
    #[test]
    fn the_host_calls_corpus_replays() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/host_calls");
        let mut count = 0;
        for entry in std::fs::read_dir(&dir).expect("corpus") {
            let data = std::fs::read(entry.expect("entry").path()).expect("file");
            host_calls(&data);
            count += 1;
        }
        assert!(count > 0, "{} is empty", dir.display());
    }

    #[test]
    fn the_module_loads_and_runs_a_program() {
        // proxy_log(2, 32, 3) then proxy_add_header_map_value(0, 32, 3, 64, 4).
        host_calls(&[0, 2, 32, 3, 0xff, 22, 0, 32, 3, 64, 4]);
        let spec = PluginSpec {
            name: "fuzz-check".into(),
            wasm: module().clone(),
            ..PluginSpec::default()
        };
        engine().load(spec).expect("the fuzzing module loads");
        // The program runs: proc_exit(3) in proxy_on_configure fails the load.
        let exit = IMPORTS
            .iter()
            .position(|i| i.1 == "proc_exit")
            .expect("listed");
        let spec = PluginSpec {
            name: "fuzz-exit".into(),
            wasm: module().clone(),
            configuration: Bytes::from(vec![exit as u8, 3]),
            ..PluginSpec::default()
        };
        assert!(engine().load(spec).is_err(), "proc_exit did not run");
    }
}
