//! Envoy as the reference proxy: start Envoy with a generated configuration
//! (one listener, one route to a cluster, an ordered chain of proxy-wasm
//! plugins), wait until it serves, capture its logs, and kill it on drop.
//! Differential tests run the same filter module in Envoy and in wasp and
//! compare what a client observes.
//!
//! ```no_run
//! # async fn demo(upstream: std::net::SocketAddr) -> anyhow::Result<()> {
//! use wasp_e2e::envoy::{Envoy, EnvoyConfig, WasmPlugin};
//! let config = EnvoyConfig::new(upstream)
//!     .plugin(WasmPlugin::new("add-header", "target/filters/wasp_filter_template.wasm",
//!         r#"{"header": "x-served-by", "value": "envoy"}"#));
//! let envoy = Envoy::start(&config).await?;
//! let url = envoy.url("/");
//! # Ok(()) }
//! ```

mod as_wasp;
mod config;
mod install;

pub use config::{EnvoyConfig, Node, Runtime, VmConfig, WasmPlugin};
pub use install::binary;

use std::io::{Read, Seek, SeekFrom};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

/// How long Envoy may take to load its modules and serve.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How much of the log a failure message or a panicking test shows.
const LOG_TAIL_BYTES: u64 = 4096;

/// A running Envoy, killed when dropped (its log tail is printed first if
/// the test is panicking).
pub struct Envoy {
    child: Child,
    _dir: tempfile::TempDir,
    config_path: PathBuf,
    log_path: PathBuf,
    listener: SocketAddr,
    admin: SocketAddr,
}

impl Envoy {
    /// Starts Envoy on `config` and waits until its listener serves. Fails
    /// (with the tail of Envoy's log) if Envoy exits or is not ready within a
    /// minute, e.g. because it rejects a module.
    pub async fn start(config: &EnvoyConfig) -> anyhow::Result<Envoy> {
        let binary = binary()?;
        for plugin in &config.plugins {
            if !plugin.module.is_file() {
                bail!(
                    "plugin {}: module {} does not exist (build it with scripts/build-filters.sh)",
                    plugin.name,
                    plugin.module.display()
                );
            }
        }
        let dir = tempfile::tempdir().context("creating a temporary directory")?;
        let config_path = dir.path().join("envoy.json");
        let log_path = dir.path().join("envoy.log");
        let admin_path = dir.path().join("admin-address");
        let bootstrap = serde_json::to_vec_pretty(&config.bootstrap(0, 0))?;
        std::fs::write(&config_path, bootstrap).context("writing the Envoy configuration")?;
        let log = std::fs::File::create(&log_path).context("creating the Envoy log")?;
        let child = Command::new(&binary)
            .arg("-c")
            .arg(&config_path)
            .args(["--concurrency", &config.concurrency.to_string()])
            .args(["-l", &config.log_level])
            .arg("--disable-hot-restart")
            .arg("--admin-address-path")
            .arg(&admin_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut envoy = Envoy {
            child,
            _dir: dir,
            config_path,
            log_path,
            listener: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = envoy.child.try_wait()? {
                bail!(
                    "Envoy exited ({status}) while starting:\n{}",
                    envoy.log_tail()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "Envoy was not ready within {READY_TIMEOUT:?}:\n{}",
                    envoy.log_tail()
                );
            }
            if envoy.admin.port() == 0 {
                if let Ok(text) = std::fs::read_to_string(&admin_path) {
                    if let Ok(addr) = text.trim().parse() {
                        envoy.admin = addr;
                    }
                }
            }
            if envoy.admin.port() != 0 {
                if let Ok((200, _)) = envoy.admin_get("/ready").await {
                    if let Some(addr) = envoy.listener_address().await? {
                        envoy.listener = addr;
                        return Ok(envoy);
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The listener's address.
    pub fn addr(&self) -> SocketAddr {
        self.listener
    }

    /// `http://ADDR/path` on the listener.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.listener, path)
    }

    /// The admin server's address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The path of the generated configuration.
    pub fn config_path(&self) -> &std::path::Path {
        &self.config_path
    }

    /// Everything Envoy logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// GETs an admin path; returns the status and body.
    pub async fn admin_get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        let (status, body) = get(self.admin, path).await?;
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    /// The bound address of the `ingress` listener, once Envoy reports it.
    async fn listener_address(&self) -> anyhow::Result<Option<SocketAddr>> {
        let (status, body) = self.admin_get("/listeners?format=json").await?;
        if status != 200 {
            return Ok(None);
        }
        let listeners: serde_json::Value =
            serde_json::from_str(&body).context("parsing Envoy's /listeners")?;
        let socket = &listeners["listener_statuses"][0]["local_address"]["socket_address"];
        let (Some(ip), Some(port)) = (socket["address"].as_str(), socket["port_value"].as_u64())
        else {
            return Ok(None);
        };
        if port == 0 {
            return Ok(None);
        }
        Ok(Some(SocketAddr::new(ip.parse()?, u16::try_from(port)?)))
    }

    fn log_tail(&self) -> String {
        let Ok(mut file) = std::fs::File::open(&self.log_path) else {
            return String::new();
        };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = file.seek(SeekFrom::Start(len.saturating_sub(LOG_TAIL_BYTES)));
        let mut tail = Vec::new();
        let _ = file.read_to_end(&mut tail);
        String::from_utf8_lossy(&tail).into_owned()
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- Envoy log (tail) ---\n{}", self.log_tail());
        }
    }
}

/// A plain HTTP/1.1 GET on a fresh connection: status and body.
async fn get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, Bytes)> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let request = http::Request::get(path)
        .header(http::header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}
