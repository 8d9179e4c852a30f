//! `weir demo`: weir on 127.0.0.1 with a built-in config and two in-process origins behind one
//! cluster, a burst of real requests through it, and what happened to them.
//!
//! The origins and the burst client speak HTTP/1.1 through weir's own codec over plain
//! blocking sockets, one thread per connection: simple, and independent of the proxy's loop.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use clap::Args;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use weir_config::parse;
use weir_proxy::stats::Value;
use weir_proxy::{LogControl, Server};

use crate::CommonArgs;
use crate::demo_tls::{self, DemoCert};
use crate::out::{out, outln};

/// `weir demo` flags.
#[derive(Args, Debug)]
pub(crate) struct DemoArgs {
    /// Send this many requests, print the report and exit (default: 1000, then serve until
    /// Ctrl-C).
    #[arg(long)]
    requests: Option<u64>,
    /// Client connections the burst uses (keep-alive).
    #[arg(long, default_value_t = 8)]
    connections: u64,
    /// The proxy's port (0 picks a free one; 10000 falls back to a free one when taken).
    #[arg(long, default_value_t = 10000)]
    port: u16,
    #[command(flatten)]
    pub(crate) common: CommonArgs,
}

/// Every request is recorded (`--flow-trace` overrides the mode), and each worker keeps enough
/// flows for the timeline page to show the burst.
const CONFIG: &str = r#"
node: { id: weir-demo, cluster: demo }
weir:
  flow_trace: { mode: ALL, flows_kept: 1024 }
admin:
  address: { socket_address: { address: 127.0.0.1, port_value: ADMIN_PORT } }
static_resources:
  listeners:
  - name: demo
    address: { socket_address: { address: 127.0.0.1, port_value: PROXY_PORT } }
    filter_chains:
    - filters: HCM
  - name: demo-tls
    address: { socket_address: { address: 127.0.0.1, port_value: TLS_PORT } }
    filter_chains:
    - transport_socket: TLS_SOCKET
      filters: HCM
  clusters:
  - name: origins
    connect_timeout: 1s
    lb_policy: ROUND_ROBIN
    load_assignment:
      cluster_name: origins
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ORIGIN_A } } }
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ORIGIN_B } } }
"#;

/// The connection manager both listeners run (the `HCM` of [`CONFIG`]).
const HCM: &str = r#"
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: demo
          route_config:
            name: demo
            virtual_hosts:
            - name: demo
              domains: ["*"]
              routes:
              - match: { path: /healthz }
                direct_response: { status: 200, body: { inline_string: "ok\n" } }
              - match: { prefix: /old/ }
                redirect: { prefix_rewrite: /new/ }
              - match: { prefix: / }
                route: { cluster: origins, timeout: 5s }
              response_headers_to_add:
              - header: { key: x-proxied-by, value: weir }
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"#;

/// An in-process origin: answers every request with its name, counting what it sees.
struct Origin {
    name: &'static str,
    address: SocketAddr,
    accepted: Arc<AtomicU64>,
    served: Arc<AtomicU64>,
}

impl Origin {
    fn start(name: &'static str) -> std::io::Result<Origin> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let address = listener.local_addr()?;
        let accepted = Arc::new(AtomicU64::new(0));
        let served = Arc::new(AtomicU64::new(0));
        let (a, s) = (accepted.clone(), served.clone());
        std::thread::spawn(move || {
            for socket in listener.incoming().flatten() {
                a.fetch_add(1, Relaxed);
                let s = s.clone();
                std::thread::spawn(move || serve_origin(name, socket, &s));
            }
        });
        Ok(Origin {
            name,
            address,
            accepted,
            served,
        })
    }
}

fn serve_origin(name: &str, mut socket: TcpStream, served: &AtomicU64) {
    let mut decoder = weir_http1::RequestDecoder::new(weir_http1::Limits::default());
    let mut buf = weir_http1::BytesMut::new();
    let mut chunk = [0u8; 16 * 1024];
    let mut path = Vec::new();
    loop {
        match decoder.decode(&mut buf) {
            Ok(Some(weir_http1::RequestEvent::Head(req))) => path = req.head.target.to_vec(),
            Ok(Some(weir_http1::RequestEvent::Data(_))) => {}
            Ok(Some(weir_http1::RequestEvent::End)) => {
                served.fetch_add(1, Relaxed);
                let body = format!("hello from {name}: {}\n", String::from_utf8_lossy(&path));
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nx-origin: {name}\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                if socket.write_all(response.as_bytes()).is_err() {
                    return;
                }
            }
            Ok(None) => match socket.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            },
            Err(_) => return,
        }
    }
}

/// One response as the burst client saw it.
struct Seen {
    status: u16,
    origin: String,
}

/// Sends `count` GETs on one keep-alive connection, reading each response fully. With
/// `trace_first`, the first carries `x-weir-trace: 1` so the recorder keeps its flow.
fn client(proxy: SocketAddr, count: u64, trace_first: bool) -> std::io::Result<Vec<Seen>> {
    let mut socket = TcpStream::connect(proxy)?;
    socket.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut decoder = weir_http1::ResponseDecoder::new(weir_http1::Limits::default());
    let mut buf = weir_http1::BytesMut::new();
    let mut chunk = [0u8; 16 * 1024];
    let mut seen = Vec::new();
    for i in 0..count {
        let trace = if trace_first && i == 0 {
            "x-weir-trace: 1\r\n"
        } else {
            ""
        };
        let request = format!("GET /demo/{i} HTTP/1.1\r\nhost: demo.local\r\n{trace}\r\n");
        socket.write_all(request.as_bytes())?;
        decoder.expect(false);
        let mut status = 0;
        let mut origin = String::from("-");
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(weir_http1::ResponseEvent::Head(r))) => {
                    status = r.head.status;
                    if let Some(o) = r.head.headers.get("x-origin") {
                        origin = String::from_utf8_lossy(o).into_owned();
                    }
                }
                Ok(Some(weir_http1::ResponseEvent::Data(_))) => {}
                Ok(Some(weir_http1::ResponseEvent::End)) => break,
                Ok(None) => match socket.read(&mut chunk)? {
                    0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                    n => buf.extend_from_slice(&chunk[..n]),
                },
                Err(e) => return Err(std::io::Error::other(e)),
            }
        }
        seen.push(Seen { status, origin });
    }
    Ok(seen)
}

/// The ports the demo asks for: the proxy's, its TLS listener's, the admin's.
#[derive(Clone, Copy)]
struct Ports {
    proxy: u16,
    tls: u16,
    admin: u16,
}

fn start_proxy(
    args: &DemoArgs,
    log: &LogControl,
    origins: &[Origin],
    ports: Ports,
    cert: &DemoCert,
) -> Result<Server, String> {
    let yaml = CONFIG
        .replace("HCM", HCM)
        .replace("TLS_SOCKET", &cert.transport_socket())
        .replace("PROXY_PORT", &ports.proxy.to_string())
        .replace("TLS_PORT", &ports.tls.to_string())
        .replace("ADMIN_PORT", &ports.admin.to_string())
        .replace("ORIGIN_A", &origins[0].address.port().to_string())
        .replace("ORIGIN_B", &origins[1].address.port().to_string());
    let bootstrap = parse(&yaml).map_err(|e| format!("built-in config: {e}"))?;
    Server::start(bootstrap, args.common.options(Some(log.clone()))).map_err(|e| e.to_string())
}

pub(crate) fn run(args: &DemoArgs, log: LogControl) -> ExitCode {
    let origins = match (Origin::start("origin-a"), Origin::start("origin-b")) {
        (Ok(a), Ok(b)) => [a, b],
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("weir demo: cannot start origins: {e}");
            return ExitCode::FAILURE;
        }
    };
    let cert = match DemoCert::generate() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("weir demo: cannot make a certificate: {e}");
            return ExitCode::FAILURE;
        }
    };
    let ports = match args.port {
        0 => Ports {
            proxy: 0,
            tls: 0,
            admin: 0,
        },
        port => Ports {
            proxy: port,
            tls: port.saturating_add(443),
            admin: 9901,
        },
    };
    let any = Ports {
        proxy: 0,
        tls: 0,
        admin: 0,
    };
    let server = match start_proxy(args, &log, &origins, ports, &cert)
        .or_else(|_| start_proxy(args, &log, &origins, any, &cert))
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("weir demo: {e}");
            return ExitCode::FAILURE;
        }
    };
    let proxy = server.listener_addresses()[0].1;
    let tls_proxy = server.listener_addresses()[1].1;
    let workers = server.concurrency();
    // With --requests the proxy stops after the burst: no address to visit later.
    let serving = args.requests.is_none();
    outln!("weir demo: proxy on http://{proxy} ({workers} worker thread(s))");
    outln!(
        "           and on https://localhost:{} (TLS, a certificate made just now)",
        tls_proxy.port()
    );
    if let Some(admin) = server.admin_address().filter(|_| serving) {
        outln!("           admin on http://{admin} (/stats, /clusters, /flows, … see /help)");
    }
    for o in &origins {
        outln!(
            "           {} on {} (cluster \"origins\", round robin)",
            o.name,
            o.address
        );
    }

    // The TLS request goes first, so the burst is what the newest flows (the timeline page)
    // show; its line is printed after the burst's report.
    let tls_probe = demo_tls::probe(tls_proxy, &cert);
    let requests = args.requests.unwrap_or(1000);
    let connections = args.connections.clamp(1, requests.max(1));
    let before = Totals::read(&server);
    let started = Instant::now();
    let handles: Vec<_> = (0..connections)
        .map(|i| {
            let share = requests / connections + u64::from(i < requests % connections);
            std::thread::spawn(move || client(proxy, share, i == 0))
        })
        .collect();
    let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
    let mut by_origin: BTreeMap<String, u64> = BTreeMap::new();
    let mut failed = 0;
    for h in handles {
        match h.join() {
            Ok(Ok(seen)) => {
                for s in seen {
                    *statuses.entry(s.status).or_default() += 1;
                    *by_origin.entry(s.origin).or_default() += 1;
                }
            }
            _ => failed += 1,
        }
    }
    let elapsed = started.elapsed();
    let after = Totals::read(&server);
    report(&Report {
        requests,
        connections,
        elapsed,
        statuses: &statuses,
        by_origin: &by_origin,
        origins: &origins,
        delta: after.minus(&before),
        failed,
    });
    let mut ok = failed == 0 && statuses.get(&200) == Some(&requests);
    match tls_probe {
        Ok(p) => {
            outln!(
                "  over TLS: GET /healthz on https://localhost:{}: {} ({}, {})",
                tls_proxy.port(),
                p.status_line,
                p.version,
                p.cipher
            );
            ok &= p.status_line.starts_with("HTTP/1.1 200");
        }
        Err(e) => {
            outln!("  over TLS: GET /healthz failed: {e}");
            ok = false;
        }
    }

    // The oldest recorded flow that opened an upstream connection: the burst's first
    // requests did. (HEADER mode keeps only the first one, which carries x-weir-trace.)
    let mut flows = server.flows(usize::MAX);
    flows.sort_by_key(|f| f.start);
    let first = flows
        .iter()
        .find(|f| {
            f.events
                .iter()
                .any(|e| matches!(e.kind, weir_flow::EventKind::ConnectStarted { .. }))
        })
        .or(flows.first());
    if let Some(flow) = first {
        outln!(
            "\none request's flow through the seed's four events, as weir recorded it ({} events):\n",
            flow.events.len()
        );
        let mut text = String::new();
        weir_flow::render::text(std::slice::from_ref(flow), &mut text);
        out!("{text}");
    }

    if !serving {
        server.stop();
        outln!(
            "\nthe proxy has stopped (--requests); `weir demo` without it keeps serving, and lists requests to try and the address of its timeline page"
        );
        return if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    outln!("\ntry:");
    outln!("  curl -v http://{proxy}/hello            # proxied, round robin over the two origins");
    outln!("  curl -v http://{proxy}/healthz          # direct_response");
    outln!("  curl -v http://{proxy}/old/page         # redirect (301 to /new/page)");
    match cert.write_ca_file() {
        Ok(ca) => outln!(
            "  curl --cacert {} https://localhost:{}/hello   # over TLS",
            ca.display(),
            tls_proxy.port()
        ),
        Err(e) => outln!("  (cannot write the certificate for curl --cacert: {e})"),
    }
    if let Some(admin) = server.admin_address() {
        outln!("  curl http://{admin}/server_info");
        outln!("  curl 'http://{admin}/flows?limit=1'  # the newest request's flow");
        outln!("  open http://{admin}/flows/view      # the flows as a timeline");
    }
    outln!("\nserving until Ctrl-C");
    if let Ok(mut signals) = Signals::new([SIGTERM, SIGINT]) {
        signals.forever().next();
    }
    server.drain();
    server.wait();
    ExitCode::SUCCESS
}

/// Counters summed over workers.
#[derive(Default, Clone, Copy)]
struct Totals {
    rq: u64,
    cx_opened: u64,
    rq_reused: u64,
    retries: u64,
    syscalls: u64,
    epoll_wait: u64,
    read: u64,
    write: u64,
}

impl Totals {
    /// From the server's stats, by their Envoy names (and `weir.syscalls.*`).
    fn read(server: &Server) -> Totals {
        let stats = server.stats();
        let get = |name: &str| {
            stats
                .iter()
                .find(|s| s.name == name)
                .map_or(0, |s| match s.value {
                    Value::Counter(v) => v,
                    _ => 0,
                })
        };
        let syscalls = stats
            .iter()
            .filter(|s| s.name.starts_with("weir.syscalls."))
            .map(|s| match s.value {
                Value::Counter(v) => v,
                _ => 0,
            })
            .sum();
        let cx_opened = get("cluster.origins.upstream_cx_total");
        Totals {
            rq: get("http.demo.downstream_rq_total"),
            cx_opened,
            // Every request on a connection but its first went out on a reused one.
            rq_reused: get("cluster.origins.upstream_rq_total").saturating_sub(cx_opened),
            retries: get("cluster.origins.upstream_rq_retry"),
            syscalls,
            epoll_wait: get("weir.syscalls.epoll_wait"),
            read: get("weir.syscalls.read"),
            write: get("weir.syscalls.write"),
        }
    }

    fn minus(&self, o: &Totals) -> Totals {
        Totals {
            rq: self.rq - o.rq,
            cx_opened: self.cx_opened - o.cx_opened,
            rq_reused: self.rq_reused - o.rq_reused,
            retries: self.retries - o.retries,
            syscalls: self.syscalls - o.syscalls,
            epoll_wait: self.epoll_wait - o.epoll_wait,
            read: self.read - o.read,
            write: self.write - o.write,
        }
    }
}

struct Report<'a> {
    requests: u64,
    connections: u64,
    elapsed: Duration,
    statuses: &'a BTreeMap<u16, u64>,
    by_origin: &'a BTreeMap<String, u64>,
    origins: &'a [Origin],
    delta: Totals,
    failed: u64,
}

fn report(r: &Report<'_>) {
    outln!(
        "\nburst: {} requests over {} keep-alive connection(s) in {:.1} ms",
        r.requests,
        r.connections,
        r.elapsed.as_secs_f64() * 1e3
    );
    for (status, n) in r.statuses {
        outln!("  status {status}: {n}");
    }
    if r.failed > 0 {
        outln!("  client connections that failed: {}", r.failed);
    }
    for (origin, n) in r.by_origin {
        outln!("  served by {origin}: {n}");
    }
    let accepted: u64 = r.origins.iter().map(|o| o.accepted.load(Relaxed)).sum();
    let served: u64 = r.origins.iter().map(|o| o.served.load(Relaxed)).sum();
    outln!(
        "  upstream connections opened by weir: {} (the origins accepted {accepted} and served {served} requests); {} requests reused a pooled connection, {} retried",
        r.delta.cx_opened,
        r.delta.rq_reused,
        r.delta.retries
    );
    let per = |n: u64| n as f64 / r.delta.rq.max(1) as f64;
    outln!(
        "  syscalls made by weir's workers: {:.2} per request (epoll_wait {:.2}, read {:.2}, writev {:.2}, other {:.2}; counted by weir itself)",
        per(r.delta.syscalls),
        per(r.delta.epoll_wait),
        per(r.delta.read),
        per(r.delta.write),
        per(r.delta.syscalls - r.delta.epoll_wait - r.delta.read - r.delta.write),
    );
}
