//! Starting the real control plane: [`ControlPlane`] runs `wasp-cp` on a
//! data directory that outlives restarts, [`ControlPlane::ctl`] runs
//! `waspctl` against it, and [`ControlPlane::proxy`] (or
//! [`ControlPlane::node`] for a proxy with its own labels, addresses and
//! flags) starts a `wasp` subscribed to it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::client;
use crate::ports::free_addr;
use crate::wasp::{Wasp, cargo_build};

/// The token the harness's control planes require for writes.
pub const TOKEN: &str = "e2e-token";

/// How long a starting control plane may take to answer.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The `wasp-cp` executable, built on first use (`WASP_CP_BIN` overrides it).
pub fn cp_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| match std::env::var_os("WASP_CP_BIN") {
        Some(path) => PathBuf::from(path),
        None => cargo_build("wasp-controlplane", "wasp-cp").expect("building wasp-cp"),
    })
}

/// The `waspctl` executable, built on first use (`WASPCTL_BIN` overrides it).
pub fn ctl_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| match std::env::var_os("WASPCTL_BIN") {
        Some(path) => PathBuf::from(path),
        None => cargo_build("wasp-controlplane", "waspctl").expect("building waspctl"),
    })
}

/// What a `waspctl` run printed and how it ended.
#[derive(Debug)]
pub struct CtlOutput {
    /// Exit code (`None`: killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl CtlOutput {
    /// Standard output, after asserting the run succeeded.
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, Some(0), "waspctl failed: {self:?}");
        &self.stdout
    }

    /// Standard output parsed as JSON, after asserting success.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.ok()).expect("waspctl -o json prints JSON")
    }
}

/// Asserts a failed waspctl run: exit code 1 and one line on stderr,
/// naming `waspctl` and containing `contains`.
pub fn assert_one_line_failure(out: &CtlOutput, contains: &str) {
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    assert!(out.stderr.starts_with("waspctl: "), "{out:?}");
    assert!(
        out.stderr.contains(contains),
        "{contains:?} missing: {out:?}"
    );
}

/// A running `wasp-cp`, killed when dropped; its data directory lives as
/// long as this value, across [`restart`](Self::restart)s.
pub struct ControlPlane {
    child: Option<Child>,
    data: tempfile::TempDir,
    grpc: SocketAddr,
    http: SocketAddr,
    tls: SocketAddr,
    extra: Vec<String>,
}

impl ControlPlane {
    /// Starts `wasp-cp` on a new data directory and waits until it answers.
    pub async fn start() -> ControlPlane {
        ControlPlane::start_with(&[]).await
    }

    /// [`ControlPlane::start`] with more command-line arguments (e.g.
    /// `--cert-lifetime 4s`), kept across restarts.
    pub async fn start_with(args: &[&str]) -> ControlPlane {
        let mut cp = ControlPlane {
            child: None,
            data: tempfile::tempdir().expect("temporary directory"),
            grpc: free_addr(),
            http: free_addr(),
            tls: free_addr(),
            extra: args.iter().map(|a| (*a).to_owned()).collect(),
        };
        cp.launch().await;
        cp
    }

    async fn launch(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("log file");
        let child = Command::new(cp_binary())
            .arg("--data-dir")
            .arg(self.data.path().join("data"))
            .arg("--listen")
            .arg(self.grpc.to_string())
            .arg("--http-listen")
            .arg(self.http.to_string())
            .arg("--tls-listen")
            .arg(self.tls.to_string())
            .args(&self.extra)
            .env("WASP_TOKEN", TOKEN)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("starting wasp-cp");
        self.child = Some(child);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(resp) = client::get(&self.http_url("/modules")).await {
                // 401: up, with reads that need the token (--open-reads).
                if resp.status == 200 || resp.status == 401 {
                    return;
                }
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("wasp-cp exited with {status}:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "wasp-cp not ready:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The process id of the running `wasp-cp`.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops the process (the data stays).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops and starts again on the same data directory and addresses.
    pub async fn restart(&mut self) {
        self.stop();
        self.launch().await;
    }

    /// [`restart`](Self::restart) with these extra arguments from now on.
    pub async fn restart_with(&mut self, args: &[&str]) {
        self.extra = args.iter().map(|a| (*a).to_owned()).collect();
        self.restart().await;
    }

    fn log_path(&self) -> PathBuf {
        self.data.path().join("wasp-cp.log")
    }

    /// Everything `wasp-cp` printed.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The gRPC URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.grpc)
    }

    /// The TLS endpoint's address (`--tls-listen`).
    pub fn tls_addr(&self) -> SocketAddr {
        self.tls
    }

    /// `http://HTTP{path}` on the JSON endpoints.
    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    /// The value of the sample `name` (with its labels) on wasp-cp's
    /// `/metrics`, read with the token; 0 when absent.
    pub async fn metric(&self, name: &str) -> u64 {
        let text = client::Client::http1()
            .get_with(
                &self.http_url("/metrics"),
                &[("authorization", &format!("Bearer {TOKEN}"))],
            )
            .await
            .map(|r| r.text())
            .unwrap_or_default();
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0)
    }

    /// A scratch directory that lives as long as this control plane.
    pub fn dir(&self) -> &Path {
        self.data.path()
    }

    /// Runs `waspctl --server URL ARGS` with the token in `WASP_TOKEN`.
    pub fn ctl(&self, args: &[&str]) -> CtlOutput {
        self.ctl_with_env(args, &[("WASP_TOKEN", TOKEN)])
    }

    /// Runs `waspctl --server URL ARGS` with exactly these extra variables.
    pub fn ctl_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> CtlOutput {
        let mut command = Command::new(ctl_binary());
        command
            .arg("--server")
            .arg(self.url())
            .args(args)
            .env_remove("WASP_TOKEN")
            .env_remove("WASP_SERVER");
        for (key, value) in env {
            command.env(key, value);
        }
        let output = command.output().expect("running waspctl");
        CtlOutput {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Runs `waspctl --server URL ARGS` against any URL, with the token.
    pub fn ctl_for_url(url: &str, args: &[&str]) -> CtlOutput {
        let output = Command::new(ctl_binary())
            .arg("--server")
            .arg(url)
            .args(args)
            .env("WASP_TOKEN", TOKEN)
            .env_remove("WASP_SERVER")
            .output()
            .expect("running waspctl");
        CtlOutput {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Writes `document` to a file and applies it; returns the version.
    pub fn apply(&self, document: &str) -> u64 {
        let path = self.dir().join("apply.yaml");
        std::fs::write(&path, document).expect("writing the document");
        let out = self.ctl(&[
            "-o",
            "json",
            "apply",
            "-f",
            path.to_str().expect("UTF-8 path"),
        ]);
        out.json()["version"].as_u64().expect("a version")
    }

    /// Starts `wasp run --control-plane URL --node-id NODE` with its cache
    /// in `cache` and the token in `WASP_TOKEN`; the pushed configuration
    /// must put the admin server on `admin`. Does not wait.
    pub fn proxy(&self, node: &str, cache: &Path, admin: SocketAddr) -> Wasp {
        Wasp::spawn_run_args(
            admin,
            &[
                "--control-plane".into(),
                self.url(),
                "--node-id".into(),
                node.into(),
                "--node-labels".into(),
                "team=e2e".into(),
                "--cache-dir".into(),
                cache.display().to_string(),
            ],
            &[("WASP_TOKEN", TOKEN)],
        )
    }
}

/// A proxy to start against a control plane: node id, labels, and its own
/// admin address (`--admin-address`) and listener addresses
/// (`--listener-address`), so many can share a machine.
pub struct Node {
    id: String,
    labels: String,
    admin: SocketAddr,
    listeners: Vec<(String, SocketAddr)>,
    extra: Vec<String>,
    token: String,
}

impl Node {
    /// Node `id` with labels `k=v,...`, its admin server on a free port.
    pub fn new(id: &str, labels: &str) -> Node {
        Node {
            id: id.to_owned(),
            labels: labels.to_owned(),
            admin: free_addr(),
            listeners: Vec::new(),
            extra: Vec::new(),
            token: TOKEN.to_owned(),
        }
    }

    /// Presents `token` (`WASP_TOKEN`) instead of the harness's token.
    pub fn token(mut self, token: &str) -> Node {
        token.clone_into(&mut self.token);
        self
    }

    /// Binds the pushed configuration's listener `name` at `addr`.
    pub fn listener(mut self, name: &str, addr: SocketAddr) -> Node {
        self.listeners.push((name.to_owned(), addr));
        self
    }

    /// Adds command-line arguments.
    pub fn args(mut self, args: &[&str]) -> Node {
        self.extra.extend(args.iter().map(|a| (*a).to_owned()));
        self
    }

    /// Its admin address.
    pub fn admin(&self) -> SocketAddr {
        self.admin
    }
}

impl ControlPlane {
    /// Starts `node` subscribed to this control plane with its token, its
    /// cache in a directory of its own. Does not wait.
    pub fn node(&self, node: &Node) -> Wasp {
        let cache = self.dir().join(format!("cache-{}", node.id));
        let mut args: Vec<String> = vec![
            "--control-plane".into(),
            self.url(),
            "--node-id".into(),
            node.id.clone(),
            "--node-labels".into(),
            node.labels.clone(),
            "--cache-dir".into(),
            cache.display().to_string(),
            "--admin-address".into(),
            node.admin.to_string(),
            "--workers".into(),
            "1".into(),
        ];
        for (name, addr) in &node.listeners {
            args.push("--listener-address".into());
            args.push(format!("{name}={addr}"));
        }
        args.extend(node.extra.iter().cloned());
        Wasp::spawn_run_args(node.admin, &args, &[("WASP_TOKEN", &node.token)])
    }

    /// `waspctl -o json proxies`, the entry of `node` (null when absent).
    pub fn proxy_status(&self, node: &str) -> serde_json::Value {
        let all = self.ctl(&["-o", "json", "proxies"]).json();
        all.as_array()
            .and_then(|a| a.iter().find(|p| p["node_id"] == node).cloned())
            .unwrap_or_default()
    }

    /// Writes `document` to a file and applies it for the proxies matching
    /// `selector` (`k=v,...`); returns the version.
    pub fn apply_for(&self, document: &str, selector: &str) -> u64 {
        let path = self.dir().join("apply.yaml");
        std::fs::write(&path, document).expect("writing the document");
        let out = self.ctl(&[
            "-o",
            "json",
            "apply",
            "-f",
            path.to_str().expect("UTF-8 path"),
            "--selector",
            selector,
        ]);
        out.json()["version"].as_u64().expect("a version")
    }
}

/// Waits until `check` holds, at most `timeout`; returns how long it took.
pub async fn within<F, Fut>(timeout: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < timeout, "{what} not within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("---- wasp-cp output ----\n{}\n---- end ----", self.log());
        }
    }
}
