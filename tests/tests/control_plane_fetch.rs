//! A module whose fetched bytes do not match their sha256 is refused, end
//! to end: the real `wasp` subscribes to a control plane written here
//! (the `Discovery` service from the project's protos) that answers a
//! module fetch with other bytes. The proxy NACKs the version with the
//! plugin's path and the hash it got, keeps the bytes out of its cache,
//! and ACKs the next version once the right bytes come.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::Stream;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};
use wasp_controlplane_api as api;
use wasp_controlplane_api::discovery_server::{Discovery, DiscoveryServer};
use wasp_controlplane_api::subscribe_request::Kind;
use wasp_e2e::wat::header_filter;
use wasp_e2e::{Wasp, free_addr};

/// A control plane that pushes what the test sends on `updates` and
/// tells the test every message a proxy sends.
struct FakeDiscovery {
    module: Vec<u8>,
    /// Whether fetches get the right bytes.
    honest: Arc<AtomicBool>,
    updates: std::sync::Mutex<Option<mpsc::UnboundedReceiver<api::ConfigUpdate>>>,
    received: mpsc::UnboundedSender<Kind>,
}

type Updates = Pin<Box<dyn Stream<Item = Result<api::ConfigUpdate, Status>> + Send>>;

#[tonic::async_trait]
impl Discovery for FakeDiscovery {
    type SubscribeStream = Updates;

    async fn subscribe(
        &self,
        request: Request<Streaming<api::SubscribeRequest>>,
    ) -> Result<Response<Updates>, Status> {
        let mut incoming = request.into_inner();
        let received = self.received.clone();
        tokio::spawn(async move {
            while let Ok(Some(message)) = incoming.message().await {
                if let Some(kind) = message.kind {
                    let _ = received.send(kind);
                }
            }
        });
        let updates = self
            .updates
            .lock()
            .unwrap()
            .take()
            .ok_or_else(|| Status::unavailable("one subscription only"))?;
        Ok(Response::new(Box::pin(futures_util::stream::unfold(
            updates,
            |mut rx| async move { rx.recv().await.map(|u| (Ok(u), rx)) },
        ))))
    }

    async fn fetch_module(
        &self,
        request: Request<api::FetchModuleRequest>,
    ) -> Result<Response<api::ModuleBytes>, Status> {
        let mut bytes = self.module.clone();
        if !self.honest.load(Ordering::Relaxed) {
            bytes.extend_from_slice(b"\n;; tampered");
        }
        Ok(Response::new(api::ModuleBytes {
            sha256: request.into_inner().sha256,
            bytes,
            signatures: Vec::new(),
        }))
    }
}

fn document(sha256: &str, listen: std::net::SocketAddr) -> String {
    format!(
        "filter_chains: [{{name: edge, plugins: [{{name: header, module: 'sha256:{sha256}', sha256: {sha256}}}]}}]\n\
         listeners: [{{name: main, address: '{listen}', filter_chain: edge, routes: [{{direct_response: {{status: 200}}}}]}}]\n"
    )
}

/// The next NACK or ACK the proxy sends.
async fn next_answer(received: &mut mpsc::UnboundedReceiver<Kind>) -> Kind {
    loop {
        let kind = tokio::time::timeout(Duration::from_secs(30), received.recv())
            .await
            .expect("an answer within 30 s")
            .expect("the subscription is open");
        if matches!(kind, Kind::Ack(_) | Kind::Nack(_)) {
            return kind;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetched_bytes_that_do_not_match_their_sha256_are_refused() {
    let module = header_filter("fetched").into_bytes();
    let sha256 = hex::encode(Sha256::digest(&module));
    let honest = Arc::new(AtomicBool::new(false));
    let (updates, updates_rx) = mpsc::unbounded_channel();
    let (received_tx, mut received) = mpsc::unbounded_channel();
    let fake = FakeDiscovery {
        module,
        honest: Arc::clone(&honest),
        updates: std::sync::Mutex::new(Some(updates_rx)),
        received: received_tx,
    };
    let cp = free_addr();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(DiscoveryServer::new(fake))
            .serve(cp),
    );

    let (listen, admin) = (free_addr(), free_addr());
    let cache = tempfile::tempdir().unwrap();
    let proxy = Wasp::spawn_run_args(
        admin,
        &[
            "--control-plane".into(),
            format!("http://{cp}"),
            "--node-id".into(),
            "node-1".into(),
            "--cache-dir".into(),
            cache.path().display().to_string(),
            "--admin-address".into(),
            admin.to_string(),
        ],
        &[],
    );
    updates
        .send(api::ConfigUpdate {
            version: 1,
            document: document(&sha256, listen),
            ..Default::default()
        })
        .unwrap();
    let Kind::Nack(nack) = next_answer(&mut received).await else {
        panic!("version 1 is NACKed:\n{}", proxy.log())
    };
    assert_eq!(nack.version, 1);
    let error = &nack.errors[0];
    assert_eq!(error.path, "filter_chains[0].plugins[0].module", "{nack:?}");
    assert!(
        error.message.contains("received bytes have sha256"),
        "{nack:?}"
    );
    assert!(
        !cache
            .path()
            .join("modules")
            .join(format!("{sha256}.wasm"))
            .exists(),
        "tampered bytes stay out of the cache"
    );

    honest.store(true, Ordering::Relaxed);
    updates
        .send(api::ConfigUpdate {
            version: 2,
            document: document(&sha256, listen),
            ..Default::default()
        })
        .unwrap();
    let answer = next_answer(&mut received).await;
    assert!(
        matches!(answer, Kind::Ack(api::Ack { version: 2 })),
        "{answer:?}\n{}",
        proxy.log()
    );
    proxy.wait_ready().await;
}
