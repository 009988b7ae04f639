//! The proxy-wasm filter: the root validates the configuration and defines
//! the metrics; each request is judged on its request headers, denied with
//! the configured local reply, and reported (logs and counters per policy
//! and decision).

use std::cell::OnceCell;
use std::rc::Rc;

use wasp_filter_sdk::prelude::*;
use wasp_filter_sdk::{HeaderList, HeaderSnapshot, PropertyPath, debug, info};

use crate::attributes::{Host, Request};
use crate::compile::compile;
use crate::config::Config;
use crate::engine::{Decision, Engine, Outcome, Verdict};
use crate::metrics::Metrics;

/// The configured plugin: policies, denied response, metrics.
pub struct Plugin {
    engine: Engine,
    denied_status: u16,
    denied_body: Vec<u8>,
    xff_num_trusted_hops: u32,
    metrics: Metrics,
}

/// Validates a configuration and builds the plugin (defining its metrics);
/// the error names the field at fault.
pub fn configure(config: serde_json::Value) -> Result<Plugin, String> {
    let config = if config.is_null() {
        serde_json::json!({})
    } else {
        config
    };
    let config: Config = serde_path_to_error::deserialize(config).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            format!("invalid authz configuration: {}", e.inner())
        } else {
            format!("invalid authz configuration: {path}: {}", e.inner())
        }
    })?;
    let policies = compile(&config).map_err(|e| format!("invalid authz configuration: {e}"))?;
    let metrics = Metrics::define(&config.stat_prefix, &policies)
        .map_err(|e| format!("invalid authz configuration: stat_prefix: {e}"))?;
    Ok(Plugin {
        engine: Engine::new(policies),
        denied_status: config.denied_status,
        denied_body: config.denied_body.into_bytes(),
        xff_num_trusted_hops: config.xff_num_trusted_hops,
        metrics,
    })
}

impl Plugin {
    /// The compiled policies.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Judges a request read from `host`, reports the verdict and returns it.
    pub fn judge<H: Host>(&self, host: &H) -> Verdict {
        let request = Request::new(host, self.xff_num_trusted_hops);
        let verdict = self.engine.evaluate(&request);
        self.report(&verdict, host);
        verdict
    }

    fn report<H: Host>(&self, verdict: &Verdict, host: &H) {
        let policies = self.engine.policies();
        let name = |i: usize| policies[i].name.as_str();
        // Read from the host only when a line is written.
        let what = || Described(host);
        self.metrics.enforced(verdict.enforced);
        match verdict.enforced {
            Decision {
                outcome: Outcome::Denied,
                policy: Some(i),
            } => {
                info!("authz: denied {} by DENY policy `{}`", what(), name(i))
            }
            Decision {
                outcome: Outcome::Denied,
                policy: None,
            } => {
                info!("authz: denied {}: no ALLOW policy matched", what())
            }
            Decision {
                outcome: Outcome::Allowed,
                policy: Some(i),
            } => {
                debug!("authz: allowed {} by ALLOW policy `{}`", what(), name(i))
            }
            Decision {
                outcome: Outcome::Allowed,
                policy: None,
            } => {
                debug!("authz: allowed {}: no policy applies", what())
            }
        }
        if let Some(dry) = verdict.dry_run {
            self.metrics.dry_run(dry);
            let by = match dry.policy {
                Some(i) => format!("dry-run {} policy `{}`", policies[i].action, name(i)),
                None => "no dry-run ALLOW policy matching".to_owned(),
            };
            match dry.outcome {
                Outcome::Denied => info!("authz: dry run would deny {} ({by})", what()),
                Outcome::Allowed => debug!("authz: dry run would allow {} ({by})", what()),
            }
        }
        for &i in &verdict.audited {
            self.metrics.audited(i);
            info!("authz: audit policy `{}` matched {}", name(i), what());
        }
    }

    /// The local reply for a denied request.
    pub fn denied(&self) -> Action {
        Action::Respond(
            self.denied_status,
            HeaderList::new(),
            self.denied_body.clone(),
        )
    }
}

/// `GET /path from 10.0.0.1:5000` for log lines, read from the host when
/// formatted (log lines below the host's level are never formatted).
struct Described<'h, H: Host>(&'h H);

impl<H: Host> std::fmt::Display for Described<'_, H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let host = self.0;
        let method = host.header(":method").unwrap_or_default();
        let path = host.header(":path").unwrap_or_default();
        let source = host
            .attribute(&["source", "address"])
            .map(|a| String::from_utf8_lossy(&a).into_owned())
            .unwrap_or_else(|| "?".to_owned());
        write!(f, "{method} {path} from {source}")
    }
}

/// The root filter: one per plugin.
#[derive(Default)]
pub struct Authz {
    plugin: Option<Rc<Plugin>>,
}

impl RootFilter for Authz {
    type Config = serde_json::Value;
    type Http = AuthzStream;

    fn on_configure(
        &mut self,
        _: &mut RootCtx<Self>,
        config: serde_json::Value,
    ) -> Result<(), String> {
        self.plugin = Some(Rc::new(configure(config)?));
        Ok(())
    }

    fn create_http_filter(&mut self, _: &mut RootCtx<Self>) -> Option<AuthzStream> {
        Some(AuthzStream {
            plugin: self.plugin.clone()?,
        })
    }
}

/// The per-request filter: judges the request on its headers.
pub struct AuthzStream {
    plugin: Rc<Plugin>,
}

impl HttpFilter for AuthzStream {
    /// Only the request headers: bodies and responses pass untouched.
    const CALLBACKS: Callbacks = Callbacks::REQUEST_HEADERS;

    fn on_request_headers(&mut self, ctx: &mut HttpCtx<Self>, _end_of_stream: bool) -> Action {
        let host = StreamHost {
            ctx,
            headers: OnceCell::new(),
        };
        match self.plugin.judge(&host).enforced.outcome {
            Outcome::Allowed => Action::Continue,
            Outcome::Denied => self.plugin.denied(),
        }
    }
}

/// The proxy behind a request, through the SDK: the request headers are
/// read in one host call when a policy first needs one, properties one by one.
struct StreamHost<'c> {
    ctx: &'c HttpCtx<AuthzStream>,
    headers: OnceCell<HeaderSnapshot>,
}

impl Host for StreamHost<'_> {
    fn header(&self, name: &str) -> Option<String> {
        let headers = self
            .headers
            .get_or_init(|| self.ctx.request_headers().snapshot());
        let mut values = headers.get_all(name);
        let first = values.next()?;
        Some(values.fold(first.to_owned(), |mut joined, v| {
            joined.push(',');
            joined.push_str(v);
            joined
        }))
    }

    fn attribute(&self, path: &[&str]) -> Option<Vec<u8>> {
        self.ctx.property(path.iter().copied())
    }

    fn filter_state(&self, name: &str) -> Option<Vec<u8>> {
        self.ctx.property_at(&PropertyPath::segment(name))
    }
}
