//! A minimal Pingora reverse proxy for the benchmarks: every request goes to
//! one plain-HTTP upstream over pooled keep-alive connections, as the other
//! peers are configured.
//!
//! Usage: `wasp-bench-pingora LISTEN UPSTREAM [-c pingora.yaml]`, e.g.
//! `wasp-bench-pingora 127.0.0.1:10000 127.0.0.1:8081 -c conf.yaml` (the
//! YAML sets `threads: 1`).

use async_trait::async_trait;
use pingora_core::Result;
use pingora_core::server::Server;
use pingora_core::server::configuration::Opt;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_proxy::{ProxyHttp, Session};

/// The proxy: one upstream address.
struct Forward {
    upstream: String,
}

#[async_trait]
impl ProxyHttp for Forward {
    type CTX = ();

    fn new_ctx(&self) -> Self::CTX {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(
            self.upstream.as_str(),
            false,
            String::new(),
        )))
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(upstream)) = (args.next(), args.next()) else {
        eprintln!("usage: wasp-bench-pingora LISTEN UPSTREAM [-c pingora.yaml]");
        std::process::exit(2);
    };
    let conf = match (args.next().as_deref(), args.next()) {
        (Some("-c"), Some(path)) => Some(path),
        _ => None,
    };
    let opt = Opt {
        conf,
        ..Opt::default()
    };
    let mut server = Server::new(Some(opt)).expect("pingora server");
    server.bootstrap();
    let mut proxy = pingora_proxy::http_proxy_service(&server.configuration, Forward { upstream });
    proxy.add_tcp(&listen);
    server.add_service(proxy);
    server.run_forever();
}
