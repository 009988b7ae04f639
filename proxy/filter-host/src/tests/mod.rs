//! Behaviour tests of the host, each with small WAT modules.

mod callbacks;
mod callout_limits;
mod compat;
mod limits;
mod memory;
mod overhead;
mod services;
mod stream;

use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;

use crate::{
    CalloutError, CalloutFuture, CalloutRequest, CalloutResponse, Callouts, EngineOptions,
    FilterChain, FilterEngine, Plugin, PluginSpec, StreamEvent,
};

/// Callouts answered in memory: cluster `up` answers HTTP `pong`, cluster
/// `grpc` answers one gRPC message `hi`; every request is recorded.
pub(crate) struct MockCallouts {
    pub requests: Mutex<Vec<CalloutRequest>>,
}

impl Callouts for MockCallouts {
    fn has_cluster(&self, cluster: &str) -> bool {
        matches!(cluster, "up" | "grpc" | "chat")
    }

    fn call(&self, request: CalloutRequest) -> CalloutFuture {
        let cluster = request.cluster.clone();
        self.requests.lock().unwrap().push(request);
        Box::pin(async move {
            match cluster.as_str() {
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

    /// Cluster `chat` echoes every request message at once (full duplex);
    /// others answer as [`Callouts::call`] does.
    fn stream(
        self: Arc<Self>,
        request: CalloutRequest,
        mut outgoing: tokio::sync::mpsc::UnboundedReceiver<Bytes>,
    ) -> tokio::sync::mpsc::UnboundedReceiver<StreamEvent> {
        let (events, receiver) = tokio::sync::mpsc::unbounded_channel();
        self.requests.lock().unwrap().push(request);
        tokio::spawn(async move {
            let _ = events.send(StreamEvent::Headers(vec![(
                ":status".into(),
                b"200".to_vec(),
            )]));
            while let Some(chunk) = outgoing.recv().await {
                let _ = events.send(StreamEvent::Data(chunk));
            }
            let _ = events.send(StreamEvent::Trailers(vec![(
                "grpc-status".into(),
                b"0".to_vec(),
            )]));
        });
        receiver
    }
}

pub(crate) fn callouts() -> &'static Arc<MockCallouts> {
    static CALLOUTS: OnceLock<Arc<MockCallouts>> = OnceLock::new();
    CALLOUTS.get_or_init(|| {
        Arc::new(MockCallouts {
            requests: Mutex::new(Vec::new()),
        })
    })
}

pub(crate) fn engine() -> &'static FilterEngine {
    static ENGINE: OnceLock<FilterEngine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        FilterEngine::new(EngineOptions {
            max_instances: 64,
            max_memory_bytes: 16 << 20,
            ..EngineOptions::default()
        })
        .inspect(|engine| engine.set_callouts(Arc::clone(callouts()) as Arc<dyn Callouts>))
        .expect("engine")
    })
}

/// A proxy-wasm module: `imports`, then memory, a bump allocator, the ABI
/// marker, context creation, then `body`.
pub(crate) fn wat(imports: &str, body: &str) -> String {
    format!(
        r#"(module
  {imports}
  (memory (export "memory") 4)
  (global $heap (mut i32) (i32.const 65536))
  (func (export "proxy_on_memory_allocate") (param $size i32) (result i32)
    (local $p i32)
    global.get $heap
    local.set $p
    global.get $heap
    local.get $size
    i32.add
    global.set $heap
    local.get $p)
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_context_create") (param i32 i32))
  {body}
)"#
    )
}

pub(crate) fn spec(name: &str, module: String) -> PluginSpec {
    PluginSpec {
        name: name.into(),
        wasm: Bytes::from(module),
        ..PluginSpec::default()
    }
}

pub(crate) fn load(spec: PluginSpec) -> Arc<Plugin> {
    engine().load(spec).expect("plugin loads")
}

pub(crate) fn chain(plugins: Vec<Arc<Plugin>>) -> FilterChain {
    FilterChain::new("test", plugins)
}

pub(crate) fn request() -> Vec<(String, Vec<u8>)> {
    vec![
        (":method".into(), b"GET".to_vec()),
        (":path".into(), b"/a?b=1".to_vec()),
        (":authority".into(), b"example".to_vec()),
    ]
}

/// `bytes` as a WAT string literal body.
pub(crate) fn wat_bytes(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\{b:02x}")).collect()
}
