//! Signed modules end to end, through the real `wasp-cp`, `waspctl` and
//! `wasp`: a proxy started with `--trusted-keys` NACKs a configuration
//! whose module is unsigned or signed by another key (naming the module
//! and the reason) and keeps serving, and runs a module signed with
//! `waspctl module sign` by a trusted key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use wasp_e2e::controlplane::{Node, within};
use wasp_e2e::wat::header_filter;
use wasp_e2e::{
    Client, Cluster, Config, ControlPlane, FilterChain, Listener, Plugin, Route, Upstream,
};

/// Everything to `up` through a chain running `module`.
fn document(up: &Upstream, module: &str) -> String {
    Config::new()
        .filter_chain(FilterChain::new("edge").plugin(Plugin::new("header", module)))
        .listener(
            Listener::new("main", "127.0.0.1:18080")
                .route(Route::prefix("/").filter_chain("edge").cluster("up")),
        )
        .cluster(Cluster::new("up").endpoint(up.addr))
        .to_string()
}

/// Writes a filter adding `x-filter: value` to `dir/name.wat`.
fn module_file(dir: &Path, name: &str, value: &str) -> PathBuf {
    let path = dir.join(format!("{name}.wat"));
    std::fs::write(&path, header_filter(value)).unwrap();
    path
}

async fn x_filter(listen: SocketAddr) -> String {
    let resp = Client::http1()
        .get(&format!("http://{listen}/"))
        .await
        .expect("GET through wasp");
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.header("x-filter").unwrap_or_default().to_owned()
}

/// Waits for `node`'s answer to `version` and returns its status.
async fn answer(cp: &ControlPlane, node: &str, version: u64) -> serde_json::Value {
    within(Duration::from_secs(10), "an answer", || async {
        cp.proxy_status(node)["last_version"] == version
    })
    .await;
    cp.proxy_status(node)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_and_wrongly_signed_modules_are_nacked_and_a_signed_one_serves() {
    let up = Upstream::start("up").await;
    let cp = ControlPlane::start().await;
    let dir = cp.dir();
    let key = |name: &str| {
        let out = dir.join(name);
        cp.ctl(&["key", "generate", "--out", out.to_str().unwrap()])
            .ok();
        out
    };
    let (ops, other) = (key("ops"), key("other"));
    let trusted = dir.join("trusted-keys");
    std::fs::write(
        &trusted,
        format!(
            "# the ops team\n{}",
            std::fs::read_to_string(ops.with_extension("pub")).unwrap()
        ),
    )
    .unwrap();
    let sign = |file: &Path, key: &Path| {
        cp.ctl(&[
            "module",
            "sign",
            file.to_str().unwrap(),
            "--key",
            key.with_extension("key").to_str().unwrap(),
        ])
        .ok();
    };
    let push = |file: &Path, name: &str| {
        cp.ctl(&[
            "-o",
            "json",
            "module",
            "push",
            file.to_str().unwrap(),
            "--name",
            name,
            "--tag",
            "v1",
        ])
        .json()
    };

    let signed = module_file(dir, "signed", "signed");
    sign(&signed, &ops);
    assert_eq!(push(&signed, "signed")["signatures"], 1);
    let unsigned = module_file(dir, "unsigned", "unsigned");
    assert_eq!(push(&unsigned, "unsigned")["signatures"], 0);
    let wrong = module_file(dir, "wrong", "wrong");
    sign(&wrong, &other);
    push(&wrong, "wrong");

    let listen = wasp_e2e::free_addr();
    let node = Node::new("strict", "team=e2e")
        .listener("main", listen)
        .args(&["--trusted-keys", trusted.to_str().unwrap()]);
    let _wasp = cp.node(&node);

    // No signature: NACKed before the proxy ever serves.
    let v1 = cp.apply(&document(&up, "unsigned@v1"));
    let status = answer(&cp, "strict", v1).await;
    assert_eq!(status["last_result"], "NACK", "{status}");
    let error = status["last_error"].as_str().unwrap();
    assert!(
        error.starts_with("filter_chains[0].plugins[0].module: "),
        "{error}"
    );
    assert!(error.contains("(unsigned@v1)"), "names the module: {error}");
    assert!(error.contains("is not signed"), "{error}");

    // Signed, but by a key the proxy does not trust.
    let v2 = cp.apply(&document(&up, "wrong@v1"));
    let status = answer(&cp, "strict", v2).await;
    assert_eq!(status["last_result"], "NACK", "{status}");
    let error = status["last_error"].as_str().unwrap();
    assert!(error.contains("(wrong@v1)"), "{error}");
    assert!(
        error.contains("none verifies with a trusted key"),
        "{error}"
    );

    // Signed by the trusted key: accepted and serving.
    let v3 = cp.apply(&document(&up, "signed@v1"));
    let status = answer(&cp, "strict", v3).await;
    assert_eq!(status["last_result"], "ACK", "{status}");
    assert_eq!(x_filter(listen).await, "signed");

    // The unsigned module again: NACKed while the signed one keeps serving.
    let v4 = cp.apply(&document(&up, "unsigned@v1"));
    let status = answer(&cp, "strict", v4).await;
    assert_eq!(status["last_result"], "NACK", "{status}");
    assert_eq!(status["running_version"], v3, "{status}");
    assert_eq!(x_filter(listen).await, "signed");

    // Signing those bytes later is enough: the proxy, which cached them
    // unsigned, fetches the new signature.
    sign(&unsigned, &ops);
    assert_eq!(push(&unsigned, "unsigned")["signatures"], 1);
    let v5 = cp.apply(&document(&up, "unsigned@v1"));
    let status = answer(&cp, "strict", v5).await;
    assert_eq!(status["last_result"], "ACK", "{status}");
    assert_eq!(x_filter(listen).await, "unsigned");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_without_trusted_keys_runs_unsigned_modules() {
    let up = Upstream::start("up").await;
    let cp = ControlPlane::start().await;
    let unsigned = module_file(cp.dir(), "unsigned", "plain");
    cp.ctl(&[
        "module",
        "push",
        unsigned.to_str().unwrap(),
        "--name",
        "plain",
    ])
    .ok();
    let listen = wasp_e2e::free_addr();
    let wasp = cp.node(&Node::new("lax", "").listener("main", listen));
    cp.apply(&document(&up, "plain"));
    wasp.wait_ready().await;
    assert_eq!(x_filter(listen).await, "plain");
}

#[test]
fn a_bad_trusted_keys_file_stops_the_proxy_with_the_line_at_fault() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(&keys, "# ok\nnot-a-key\n").unwrap();
    let out = std::process::Command::new(wasp_e2e::wasp::binary())
        .args([
            "run",
            "--control-plane",
            "http://127.0.0.1:1",
            "--node-id",
            "n",
        ])
        .arg("--trusted-keys")
        .arg(&keys)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("line 2: public key must be 32 bytes as hex"),
        "{stderr}"
    );
}
