//! The TCP proxy (`envoy.filters.network.tcp_proxy`) on 127.0.0.1: bytes both ways with
//! half-close, TLS passthrough routed by SNI (the TLS inspector and `server_names`), connect
//! attempts, and the idle timeout.

mod differential_support;
mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use differential_support::{Envoy, envoy_or_skip, free_port};
use support::pki::{pki, tls_config};
use support::{Origin, TempFile, Weir, generate, run_program};

const TIMEOUT: Duration = Duration::from_secs(30);

/// A TCP echo server: each connection's bytes come back; its FIN is answered with a FIN once
/// all is echoed. Serves until the test ends (threads die with the process).
fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for socket in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut socket = socket;
                let _ = socket.set_read_timeout(Some(TIMEOUT));
                let mut buf = [0u8; 16384];
                loop {
                    match socket.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if socket.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
                let _ = socket.shutdown(Shutdown::Write);
            });
        }
    });
    addr
}

/// A listener (optionally with the TLS inspector) whose chains are `chains`, and the cluster
/// `target` pointing at `target_addr`.
fn config(listener_extra: &str, chains: &str, target_addr: SocketAddr) -> String {
    format!(
        r#"node: {{ id: weir-bintest, cluster: tests }}
admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}
static_resources:
  listeners:
  - name: ingress
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}{listener_extra}
    filter_chains:{chains}
  clusters:
  - name: target
    connect_timeout: 1s
    load_assignment:
      cluster_name: target
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }} }}
"#,
        port = target_addr.port()
    )
}

/// A chain with the TCP proxy to `target`: `matcher` is its filter_chain_match, `extra` more
/// TcpProxy fields (JSON).
fn tcp_chain(matcher: &str, extra: &str) -> String {
    format!(
        r#"
    - filter_chain_match: {matcher}
      filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config: {{ "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy", "stat_prefix": "pass", "cluster": "target" {extra} }}"#
    )
}

fn stat(weir: &Weir, name: &str) -> u64 {
    let url = format!("http://{}/stats", weir.admin);
    let stats = run_program("curl", &["-sS", &url], TIMEOUT).stdout;
    let name = format!("{name}: ");
    stats
        .lines()
        .find_map(|l| l.strip_prefix(&name))
        .map_or(0, |v| v.trim().parse().expect("a number"))
}

/// Waits until `name` reaches `value` (stats are merged from the workers as they run).
fn wait_stat(weir: &Weir, name: &str, value: u64) {
    let deadline = Instant::now() + TIMEOUT;
    while stat(weir, name) != value {
        assert!(Instant::now() < deadline, "{name} never reached {value}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn four_mib_both_ways_with_half_close() {
    const SIZE: usize = 4 * 1024 * 1024;
    let echo = echo_server();
    let weir = Weir::start(
        &config("", &tcp_chain("{}", ""), echo),
        &["--concurrency", "1"],
    );
    let mut body = Vec::with_capacity(SIZE);
    generate(SIZE as u64, |piece| {
        body.extend_from_slice(piece);
        Ok(())
    })
    .expect("generate");
    let mut client = TcpStream::connect(weir.addr()).expect("connect");
    client.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    let mut reader = client.try_clone().expect("clone");
    let sent = body.clone();
    let writer = std::thread::spawn(move || {
        client.write_all(&sent).expect("send");
        // Half-close: the echo server sees the FIN only after every byte.
        client.shutdown(Shutdown::Write).expect("shutdown");
    });
    let mut got = Vec::with_capacity(SIZE);
    reader.read_to_end(&mut got).expect("read until the FIN");
    writer.join().expect("writer");
    assert_eq!(got.len(), SIZE);
    assert!(got == body, "the bytes changed on the way");
    wait_stat(&weir, "tcp.pass.downstream_cx_rx_bytes_total", SIZE as u64);
    wait_stat(&weir, "tcp.pass.downstream_cx_tx_bytes_total", SIZE as u64);
    assert_eq!(stat(&weir, "tcp.pass.downstream_cx_total"), 1);
    assert_eq!(stat(&weir, "cluster.target.upstream_cx_total"), 1);
}

#[test]
fn tls_passes_through_to_the_origin_chosen_by_sni() {
    let pki = pki();
    // The TLS origin: a weir that terminates TLS with a.test's certificate (the front one has
    // no certificate at all: what the client verifies can only come from the origin).
    let origin = Origin::standard();
    let tls_origin = Weir::start(
        &tls_config(origin.addr, &pki, "", ""),
        &["--concurrency", "1"],
    );
    let inspector = r#"
    listener_filters:
    - name: envoy.filters.listener.tls_inspector
      typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector }"#;
    let front = Weir::start(
        &config(
            inspector,
            &tcp_chain("{ server_names: [a.test] }", ""),
            tls_origin.addr(),
        ),
        &["--concurrency", "1"],
    );
    let port = front.addr().port();
    let resolve = format!("a.test:{port}:127.0.0.1");
    let url = format!("https://a.test:{port}/through");
    let ca = pki.ca.path().to_str().expect("path").to_owned();
    let ran = run_program(
        "curl",
        &[
            "-sS",
            "--http1.1",
            "--cacert",
            &ca,
            "--resolve",
            &resolve,
            &url,
        ],
        TIMEOUT,
    );
    assert_eq!(ran.code(), Some(0), "{ran}");
    assert!(ran.stdout.contains("target: /through"), "{ran}");
    // Another name matches no chain: closed.
    let resolve = format!("b.test:{port}:127.0.0.1");
    let url = format!("https://b.test:{port}/");
    let ran = run_program(
        "curl",
        &["-sS", "--cacert", &ca, "--resolve", &resolve, &url],
        TIMEOUT,
    );
    assert_ne!(ran.code(), Some(0), "{ran}");
    let a = front.addr();
    assert_eq!(
        stat(
            &front,
            &format!("listener.{}_{}.no_filter_chain_match", a.ip(), a.port())
        ),
        1
    );
    assert_eq!(stat(&front, "tls_inspector.sni_found"), 2);
}

#[test]
fn a_refused_connect_is_tried_max_connect_attempts_times_then_the_client_is_closed() {
    // A port nothing listens on.
    let closed = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let weir = Weir::start(
        &config(
            "",
            &tcp_chain("{}", r#", "max_connect_attempts": 3"#),
            closed,
        ),
        &["--concurrency", "1"],
    );
    let mut client = TcpStream::connect(weir.addr()).expect("connect");
    client.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    let mut got = Vec::new();
    assert!(client.read_to_end(&mut got).is_ok(), "not closed");
    assert!(got.is_empty());
    wait_stat(&weir, "cluster.target.upstream_cx_connect_fail", 3);
}

/// The cluster's `max_connections` holds for TCP proxy sessions too: past it a new session is
/// closed at once (`upstream_cx_overflow`), as Envoy's TCP proxy closes it; a place freed by a
/// session that ended is taken by the next.
#[test]
fn past_max_connections_a_session_is_closed_at_once() {
    let echo = echo_server();
    let text = config("", &tcp_chain("{}", ""), echo).replace(
        "    connect_timeout: 1s\n",
        "    connect_timeout: 1s\n    circuit_breakers: { thresholds: [ { max_connections: 1 } ] }\n",
    );
    let weir = Weir::start(&text, &["--concurrency", "1"]);
    let echoed = |client: &mut TcpStream| {
        client.set_read_timeout(Some(TIMEOUT)).expect("timeout");
        client.write_all(b"ping").expect("send");
        let mut got = [0u8; 4];
        client.read_exact(&mut got).is_ok() && &got == b"ping"
    };
    let mut first = TcpStream::connect(weir.addr()).expect("connect");
    assert!(echoed(&mut first));
    let mut second = TcpStream::connect(weir.addr()).expect("connect");
    second.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    let mut got = Vec::new();
    let _ = second.read_to_end(&mut got);
    assert!(got.is_empty(), "closed unanswered");
    wait_stat(&weir, "cluster.target.upstream_cx_overflow", 1);
    drop(first);
    wait_stat(&weir, "cluster.target.circuit_breakers.default.cx_open", 0);
    let mut third = TcpStream::connect(weir.addr()).expect("connect");
    assert!(echoed(&mut third), "the freed place is taken");
}

#[test]
fn a_quiet_session_is_closed_at_the_idle_timeout() {
    let echo = echo_server();
    let weir = Weir::start(
        &config("", &tcp_chain("{}", r#", "idle_timeout": "0.3s""#), echo),
        &["--concurrency", "1"],
    );
    let mut client = TcpStream::connect(weir.addr()).expect("connect");
    client.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    client.write_all(b"ping").expect("send");
    let mut got = [0u8; 4];
    client.read_exact(&mut got).expect("echo");
    assert_eq!(&got, b"ping");
    let mut rest = Vec::new();
    assert!(client.read_to_end(&mut rest).is_ok(), "not closed");
    assert_eq!(stat(&weir, "tcp.pass.idle_timeout"), 1);
}

/// The TCP proxy's `access_log`, beside Envoy 1.40 with the same config: a session that echoed
/// bytes both ways and one whose connect was refused (`UF`) log the same fields from both.
#[test]
fn access_log_entries_are_envoys() {
    let Some(envoy_bin) = envoy_or_skip() else {
        return;
    };
    let echo = echo_server();
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let format = "%RESPONSE_FLAGS% %RESPONSE_CODE% %PROTOCOL% %REQ(:METHOD)% %BYTES_RECEIVED% %BYTES_SENT% %UPSTREAM_CLUSTER% %UPSTREAM_HOST% %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% %ROUTE_NAME%\\n";
    let run = |target: SocketAddr, port: u16, admin: u16, log: &std::path::Path| {
        let logger = format!(
            r#", "access_log": [ {{ "name": "envoy.access_loggers.file", "typed_config": {{ "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog", "path": "{}", "log_format": {{ "text_format_source": {{ "inline_string": "{format}" }} }} }} }} ]"#,
            log.display()
        );
        config("", &tcp_chain("{}", &logger), target)
            .replacen(
                "port_value: 0 } }\n",
                &format!("port_value: {admin} }} }}\n"),
                1,
            )
            .replacen("port_value: 0 } }", &format!("port_value: {port} }} }}"), 1)
    };
    let lines = |log: &std::path::Path, n: usize| {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            if text.lines().count() >= n {
                return text.lines().map(str::to_owned).collect::<Vec<_>>();
            }
            assert!(Instant::now() < deadline, "log: {text:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let session = |port: u16| {
        let mut c = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        c.set_read_timeout(Some(TIMEOUT)).expect("timeout");
        // When the upstream refuses, the proxy may close (even reset) before these run: their
        // errors are that outcome, and the log lines below are what the test compares.
        let _ = c.write_all(&[7u8; 1000]);
        let _ = c.shutdown(Shutdown::Write);
        let mut back = Vec::new();
        let _ = c.read_to_end(&mut back);
        back.len()
    };
    let mut got = Vec::new();
    for target in [echo, dead] {
        let (envoy_port, envoy_admin) = (free_port(), free_port());
        let (envoy_log, weir_log) = (
            TempFile::unique_path("tcp-envoy.log"),
            TempFile::unique_path("tcp-weir.log"),
        );
        let _envoy = Envoy::start_with(
            &envoy_bin,
            "tcp.yaml",
            &run(target, envoy_port, envoy_admin, &envoy_log),
            Some(envoy_admin),
            envoy_port,
            &["--file-flush-interval-msec", "20"],
        );
        let weir = Weir::start(
            &run(target, 0, 0, &weir_log),
            &["--concurrency", "1", "--file-flush-interval-msec", "20"],
        );
        assert_eq!(session(envoy_port), session(weir.addr().port()));
        let normalise = |line: &str| line.replace(&target.to_string(), "TARGET");
        // Envoy's first entry is the connection `Envoy::start` made to see it listening.
        let (from_envoy, from_weir) = (lines(&envoy_log, 2).split_off(1), lines(&weir_log, 1));
        assert_eq!(
            from_weir.iter().map(|l| normalise(l)).collect::<Vec<_>>(),
            from_envoy.iter().map(|l| normalise(l)).collect::<Vec<_>>()
        );
        got.push(from_weir[0].clone());
    }
    assert!(got[0].starts_with("- 0 - - 1000 1000 target "), "{got:?}");
    assert!(got[1].starts_with("UF,URX 0 - - 0 0 target "), "{got:?}");
}
