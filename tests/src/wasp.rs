//! Starting the real `wasp` binary: build it once, run it on a temporary
//! configuration file with its output captured, wait until it is ready, send
//! it signals, read its admin endpoints, and kill it when the test ends.

use std::fmt::Display;
use std::io::{Read, Seek, SeekFrom};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::client;
use crate::metrics::Metrics;
use crate::ports::free_addr;

/// How long a starting proxy may take to answer `/ready`.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The path of the `wasp` executable, built on first use with the same
/// target directory as the running tests (`WASP_BIN` overrides it).
pub fn binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        if let Some(path) = std::env::var_os("WASP_BIN") {
            return PathBuf::from(path);
        }
        cargo_build("wasp-proxy", "wasp").expect("building the wasp binary")
    })
}

/// This crate's directory in the workspace the tests run from: cargo's
/// `CARGO_MANIFEST_DIR` of the running test, else (outside cargo) the one
/// this library was compiled in. Worktrees sharing a target directory share
/// this library's build, so the compiled-in path may be another worktree's.
pub fn tests_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// Builds binary `bin` of `package` with the same target directory as the
/// running tests and returns its path.
pub fn cargo_build(package: &str, bin: &str) -> anyhow::Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let tests = tests_dir();
    let workspace = tests
        .parent()
        .context("the tests crate lives in the workspace")?;
    let mut command = Command::new(cargo);
    // The test process carries the variables cargo sets for a running test
    // (package name, manifest dir...). Build scripts that watch them would
    // rebuild on every alternation with a plain `cargo build`; drop them.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_CFG_")
            || key.starts_with("CARGO_MANIFEST_")
            || matches!(
                &*key,
                "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_TARGET_TMPDIR"
                    | "OUT_DIR"
            )
        {
            command.env_remove(&*key);
        }
    }
    let output = command
        .current_dir(workspace)
        .args([
            "build",
            "-p",
            package,
            "--bin",
            bin,
            "--message-format=json",
        ])
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo build")?;
    if !output.status.success() {
        bail!("cargo build of {bin} failed: {}", output.status);
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    for line in stdout.lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if message["reason"] == "compiler-artifact" && message["target"]["name"] == bin {
            if let Some(path) = message["executable"].as_str() {
                return Ok(private_copy(Path::new(path)));
            }
        }
    }
    bail!("cargo build did not report the {bin} executable")
}

/// The file under `deps/` that `executable` (cargo's uplifted copy, shared
/// by every worktree building into the same target directory) is a hard
/// link of: it carries this worktree's build hash in its name, so another
/// worktree's build cannot replace it while the tests run.
fn private_copy(executable: &Path) -> PathBuf {
    use std::os::unix::fs::MetadataExt;
    let (Ok(meta), Some(dir), Some(name)) = (
        std::fs::metadata(executable),
        executable.parent(),
        executable.file_name().and_then(|n| n.to_str()),
    ) else {
        return executable.to_owned();
    };
    let prefix = format!("{name}-");
    std::fs::read_dir(dir.join("deps"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .find(|path| {
            let file = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            file.starts_with(&prefix)
                && !file.contains('.')
                && std::fs::metadata(path)
                    .is_ok_and(|m| m.ino() == meta.ino() && m.dev() == meta.dev())
        })
        .unwrap_or_else(|| executable.to_owned())
}

/// A running `wasp run --config FILE` process with an admin server.
///
/// The configuration given to [`Wasp::start`] must not contain an `admin`
/// section: the harness appends one on a free port. The process is killed
/// when this value is dropped; if the test is panicking, the tail of its
/// output is printed first.
pub struct Wasp {
    child: Mutex<Option<Child>>,
    pid: u32,
    dir: tempfile::TempDir,
    config_path: PathBuf,
    log_path: PathBuf,
    admin: SocketAddr,
    exited: Option<ExitStatus>,
}

impl Wasp {
    /// Starts wasp on `config` (YAML text or a [`crate::config::Config`],
    /// without `admin`) and waits for `/ready`.
    pub async fn start(config: impl Display) -> Wasp {
        let wasp = Self::spawn(config);
        wasp.wait_ready().await;
        wasp
    }

    /// Starts wasp on `config` without waiting (for configurations expected to fail).
    pub fn spawn(config: impl Display) -> Wasp {
        Self::spawn_with_env(config, &[])
    }

    /// Starts wasp with extra `wasp run` arguments (e.g. `--workers 1`) and
    /// waits for `/ready`.
    pub async fn start_with_args(config: impl Display, args: &[&str]) -> Wasp {
        let wasp = Self::spawn_with(config, args, &[]);
        wasp.wait_ready().await;
        wasp
    }

    /// Starts wasp with extra environment variables, without waiting.
    pub fn spawn_with_env(config: impl Display, env: &[(&str, &str)]) -> Wasp {
        Self::spawn_with(config, &[], env)
    }

    /// Starts wasp with extra `wasp run` arguments and environment
    /// variables, without waiting.
    pub fn spawn_with(config: impl Display, args: &[&str], env: &[(&str, &str)]) -> Wasp {
        let dir = tempfile::tempdir().expect("temporary directory");
        let admin = free_addr();
        let config_path = dir.path().join("wasp.yaml");
        std::fs::write(&config_path, with_admin(config, admin)).expect("writing the config");
        let mut run_args = vec!["--config".to_owned(), config_path.display().to_string()];
        run_args.extend(args.iter().map(|a| a.to_string()));
        Self::spawn_run(dir, admin, &run_args, env)
    }

    /// Starts `wasp run ARGS` without a configuration file (e.g. with
    /// `--control-plane`), whose configuration has its admin server on
    /// `admin`, without waiting.
    pub fn spawn_run_args(admin: SocketAddr, args: &[String], env: &[(&str, &str)]) -> Wasp {
        let dir = tempfile::tempdir().expect("temporary directory");
        Self::spawn_run(dir, admin, args, env)
    }

    fn spawn_run(
        dir: tempfile::TempDir,
        admin: SocketAddr,
        args: &[String],
        env: &[(&str, &str)],
    ) -> Wasp {
        let config_path = dir.path().join("wasp.yaml");
        let log_path = dir.path().join("wasp.log");
        let log = std::fs::File::create(&log_path).expect("creating the log file");
        let mut command = Command::new(binary());
        command
            .arg("run")
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file handle"))
            .stderr(log);
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.spawn().expect("starting wasp");
        Wasp {
            pid: child.id(),
            child: Mutex::new(Some(child)),
            dir,
            config_path,
            log_path,
            admin,
            exited: None,
        }
    }

    /// Waits until the admin server answers `/ready` with 200; panics (with
    /// the log) if the process exits or takes too long.
    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(resp) = client::get(&self.admin_url("/ready")).await {
                if resp.status == 200 {
                    return;
                }
            }
            if let Some(status) = self.try_status() {
                panic!(
                    "wasp exited with {status} before it was ready:\n{}",
                    self.log()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "wasp was not ready after {READY_TIMEOUT:?}:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn try_status(&self) -> Option<ExitStatus> {
        let mut child = self.child.lock().expect("child lock");
        child.as_mut()?.try_wait().ok().flatten()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// `http://ADMIN{path}`.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    /// The admin server's address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    /// The configuration file wasp runs on.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// A directory that lives as long as this process handle.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Rewrites the configuration file (the admin section is kept).
    pub fn write_config(&self, config: impl Display) {
        let tmp = self.dir.path().join("wasp.yaml.new");
        std::fs::write(&tmp, with_admin(config, self.admin)).expect("writing the config");
        std::fs::rename(&tmp, &self.config_path).expect("replacing the config");
    }

    /// Sends a signal to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid.to_string())
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -{signal} {} failed", self.pid);
    }

    /// Sends SIGHUP (reload).
    pub fn sighup(&self) {
        self.signal("HUP");
    }

    /// Sends SIGTERM (graceful shutdown).
    pub fn sigterm(&self) {
        self.signal("TERM");
    }

    /// Waits for the process to exit, at most `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if let Some(status) = self.exited {
            return Some(status);
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_status() {
                self.exited = Some(status);
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Everything the process wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The last `bytes` bytes of the output.
    pub fn log_tail(&self, bytes: u64) -> String {
        let Ok(mut file) = std::fs::File::open(&self.log_path) else {
            return String::new();
        };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = file.seek(SeekFrom::Start(len.saturating_sub(bytes)));
        let mut tail = String::new();
        let _ = file.read_to_string(&mut tail);
        tail
    }

    /// The parsed `/metrics`.
    pub async fn metrics(&self) -> Metrics {
        let resp = client::get(&self.admin_url("/metrics"))
            .await
            .expect("GET /metrics");
        assert_eq!(resp.status, 200, "/metrics status");
        Metrics::parse(&resp.text())
    }

    /// The sum of the `/metrics` series `name` with `labels`, once it
    /// reaches `expected` or when `timeout` has passed, whichever is first.
    /// For counters the proxy moves just after a client has its answer (a
    /// refused handshake counted once the alert is written, a request
    /// counted in `on_log`).
    pub async fn metric_reaching(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        expected: f64,
        timeout: Duration,
    ) -> f64 {
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.metrics().await.sum(name, labels);
            if value >= expected || Instant::now() > deadline {
                return value;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The parsed `/config_dump`.
    pub async fn config_dump(&self) -> serde_json::Value {
        let resp = client::get(&self.admin_url("/config_dump"))
            .await
            .expect("GET /config_dump");
        assert_eq!(resp.status, 200, "/config_dump status");
        serde_json::from_slice(&resp.body).expect("/config_dump is JSON")
    }

    /// The running configuration version from `/config_dump`.
    pub async fn version(&self) -> u64 {
        self.config_dump().await["version"]
            .as_u64()
            .expect("version is a number")
    }

    /// Waits until the running version reaches `version`.
    pub async fn wait_version(&self, version: u64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.version().await < version {
            assert!(
                Instant::now() < deadline,
                "configuration version {version} not reached:\n{}",
                self.log_tail(4000)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The process's peak resident set size (`VmHWM`) in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        proc_status_kib(self.pid(), "VmHWM:")
    }

    /// The process's current resident set size (`VmRSS`) in KiB.
    pub fn rss_kib(&self) -> u64 {
        proc_status_kib(self.pid(), "VmRSS:")
    }
}

impl Drop for Wasp {
    fn drop(&mut self) {
        let child = self.child.get_mut().map(Option::take);
        if let Ok(Some(mut child)) = child {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "---- wasp output (tail) ----\n{}\n---- end of wasp output ----",
                self.log_tail(8000)
            );
        }
    }
}

/// Appends an admin section on `admin` to a configuration.
fn with_admin(config: impl Display, admin: SocketAddr) -> String {
    let config = config.to_string();
    format!("{}\nadmin:\n  address: \"{admin}\"\n", config.trim_end())
}

fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0)
}
