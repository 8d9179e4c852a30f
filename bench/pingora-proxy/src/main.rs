//! Minimal Pingora reverse proxy, a benchmark target for bench/run.sh (see bench/targets/pingora.sh).
//!
//! Usage: weir-bench-pingora LISTEN_PORT ORIGIN_PORT [WORKDIR]
//!
//! Listens on 127.0.0.1:LISTEN_PORT (plain HTTP/1.1) and proxies every request to
//! 127.0.0.1:ORIGIN_PORT over HTTP/1.1, unchanged. One worker thread (`threads: 1`), upstream
//! connections reused through Pingora's default connection pool, no access log (the
//! `logging` hook is left empty and no logger is installed). WORKDIR (default /tmp) holds the
//! pid file and the upgrade socket Pingora's server keeps paths for.

use std::net::SocketAddr;

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;

struct Forward {
    origin: SocketAddr,
}

#[async_trait]
impl ProxyHttp for Forward {
    type CTX = ();
    fn new_ctx(&self) -> Self::CTX {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        // Plain HTTP/1.1 peer; identical peers hash to the same pool key, so idle upstream
        // connections are reused across downstream connections.
        Ok(Box::new(HttpPeer::new(self.origin, false, String::new())))
    }
}

fn usage() -> ! {
    eprintln!("usage: weir-bench-pingora LISTEN_PORT ORIGIN_PORT [WORKDIR]");
    std::process::exit(2);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 || args.len() > 3 {
        usage();
    }
    let port = |s: &str| s.parse::<u16>().unwrap_or_else(|_| usage());
    let listen_port = port(&args[0]);
    let origin_port = port(&args[1]);
    let workdir = args.get(2).map(String::as_str).unwrap_or("/tmp");

    let mut conf = ServerConf::default();
    conf.threads = 1;
    conf.pid_file = format!("{workdir}/pingora.pid");
    conf.upgrade_sock = format!("{workdir}/pingora_upgrade.sock");
    // Close idle connections on SIGTERM without the default long grace period.
    conf.grace_period_seconds = Some(0);
    conf.graceful_shutdown_timeout_seconds = Some(1);

    let mut server = Server::new_with_opt_and_conf(None::<Opt>, conf);
    server.bootstrap();

    let origin: SocketAddr = ([127, 0, 0, 1], origin_port).into();
    let mut proxy = http_proxy_service(&server.configuration, Forward { origin });
    proxy.add_tcp(&format!("127.0.0.1:{listen_port}"));
    server.add_service(proxy);
    server.run_forever();
}
