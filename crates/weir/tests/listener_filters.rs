//! Listener filters over real sockets, weir and Envoy 1.40 given the same config and
//! connections. `envoy.filters.listener.proxy_protocol`: version 1 and 2 headers (TCP4, TCP6, UNKNOWN, LOCAL, with
//! TLVs) name the client and destination the access log shows; a connection without a
//! header, or with a malformed one, an AF_UNIX address or a disallowed version, is reset;
//! `allow_requests_without_proxy_protocol` lets one without through; and the `proxy_proto.*`
//! counters say the same. `envoy.filters.listener.http_inspector`: HTTP/1.0, HTTP/1.1, other
//! versions and what is not HTTP pick the same chains, and `http_inspector.*` say the same.

mod differential_support;
mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use differential_support::{Envoy, envoy_or_skip, envoy_ports};
use support::{Origin, Reply, TempFile, Weir, get, proxy_config};

const REQUEST: &[u8] = b"GET /local HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n";

/// The addresses each request is logged with.
const LOG_FORMAT: &str = "%DOWNSTREAM_REMOTE_ADDRESS% %DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT% %DOWNSTREAM_LOCAL_ADDRESS%\\n";

/// [`proxy_config`] with the PROXY protocol filter (`filter`: its typed config's other
/// fields) and an access log of the addresses to `log`.
fn config(origin: SocketAddr, filter: &str, log: &Path) -> String {
    let listener_filters = format!(
        "    listener_filters:\n    - name: envoy.filters.listener.proxy_protocol\n      typed_config: {{ \"@type\": type.googleapis.com/envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol{filter} }}\n    filter_chains:\n"
    );
    let access_log = format!(
        "          access_log:\n          - name: envoy.access_loggers.file\n            typed_config: {{ \"@type\": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog, path: {}, log_format: {{ text_format: \"{LOG_FORMAT}\" }} }}\n",
        log.display()
    );
    proxy_config(origin)
        .replacen("    filter_chains:\n", &listener_filters, 1)
        .replace(
            "          stat_prefix: ingress\n",
            &format!("          stat_prefix: ingress\n{access_log}"),
        )
}

fn v2(command: u8, family: u8, body: &[u8]) -> Vec<u8> {
    let mut out = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    out.extend([command, family]);
    out.extend((body.len() as u16).to_be_bytes());
    out.extend(body);
    out
}

/// The connections each proxy is sent, by name: a header (or none) before the request.
fn cases() -> Vec<(&'static str, Vec<u8>)> {
    let mut inet = vec![203, 0, 113, 5, 198, 51, 100, 1];
    inet.extend(5555u16.to_be_bytes());
    inet.extend(80u16.to_be_bytes());
    let with_tlv = [inet.clone(), vec![0x04, 0x00, 0x04, b'a', b'b', b'c', b'd']].concat();
    let mut inet6 = vec![0u8; 36];
    inet6[0..2].copy_from_slice(&[0x20, 0x01]);
    inet6[15] = 9;
    inet6[32..34].copy_from_slice(&7000u16.to_be_bytes());
    inet6[34..36].copy_from_slice(&443u16.to_be_bytes());
    vec![
        (
            "v1 tcp4",
            b"PROXY TCP4 192.0.2.7 198.51.100.9 40001 443\r\n".to_vec(),
        ),
        (
            "v1 tcp6",
            b"PROXY TCP6 2001:db8::1 2001:db8::2 40001 443\r\n".to_vec(),
        ),
        ("v1 unknown", b"PROXY UNKNOWN\r\n".to_vec()),
        (
            "v1 short",
            b"PROXY TCP4 192.0.2.7 198.51.100.9 40001\r\n".to_vec(),
        ),
        (
            "v1 bad address",
            b"PROXY TCP4 192.0.2.700 198.51.100.9 1 2\r\n".to_vec(),
        ),
        ("v2 inet with a tlv", v2(0x21, 0x11, &with_tlv)),
        ("v2 inet6, unspecified destination", v2(0x21, 0x21, &inet6)),
        ("v2 local", v2(0x20, 0x00, &[])),
        ("v2 bad version", v2(0x31, 0x11, &inet)),
        ("v2 unix", v2(0x21, 0x31, &[0; 216])),
        ("none", Vec::new()),
    ]
}

/// What one connection got: the status of its answer, or `reset`.
fn send(port: u16, header: &[u8]) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let _ = stream.write_all(&[header, REQUEST].concat());
    let mut out = Vec::new();
    match stream.read_to_end(&mut out) {
        Ok(_) if out.len() >= 12 => String::from_utf8_lossy(&out[9..12]).into_owned(),
        Ok(_) => "closed".to_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => "reset".to_owned(),
        Err(e) => format!("error {e}"),
    }
}

/// The access log's lines once it has `n` (within five seconds), each loopback port made `*`
/// (the clients' ports and the proxies' listener ports differ).
fn log_lines(path: &Path, n: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for _ in 0..50 {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        lines = text.lines().map(str::to_owned).collect();
        if lines.len() >= n {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    lines
        .iter()
        .map(|l| {
            l.split(' ')
                .map(|w| match w.strip_prefix("127.0.0.1:") {
                    Some(_) => "127.0.0.1:*",
                    None => w,
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// The `proxy_proto.*` counters (and `downstream_cx_proxy_proto_error`) of an admin.
fn counters(admin: SocketAddr) -> Vec<String> {
    stats(admin, "proxy_proto")
}

/// An admin's stats whose names match `filter`, one `name: value` each.
fn stats(admin: SocketAddr, filter: &str) -> Vec<String> {
    let text = get(admin, &format!("/stats?filter={filter}"))
        .expect("/stats")
        .text();
    text.lines().map(str::to_owned).collect()
}

fn origin() -> Origin {
    Origin::start(|_| Ok(Reply::text(200, "origin")))
}

/// weir and Envoy with `filter`: the same answer to each case, the same access log lines and
/// the same counters; returns weir's counters.
fn compare(filter: &str) -> Option<Vec<String>> {
    let envoy_bin = envoy_or_skip()?;
    let origin = origin();
    let (weir_log, envoy_log) = (
        TempFile::unique_path("weir.log"),
        TempFile::unique_path("envoy.log"),
    );
    let weir = Weir::start(
        &config(origin.addr, filter, &weir_log),
        &["--concurrency", "1", "--file-flush-interval-msec", "50"],
    );
    let (envoy_config, port, admin) = envoy_ports(&config(origin.addr, filter, &envoy_log));
    let _envoy = Envoy::start_with(
        &envoy_bin,
        "envoy.yaml",
        &envoy_config,
        Some(admin),
        port,
        &["--file-flush-interval-msec", "50"],
    );
    let mut served = 0;
    for (name, header) in cases() {
        let (w, e) = (send(weir.addr().port(), &header), send(port, &header));
        assert_eq!(w, e, "{name}: weir said {w:?}, Envoy {e:?}");
        // Answered (200, or 400 for a header taken as a request line): logged.
        served += usize::from(w.bytes().all(|b| b.is_ascii_digit()));
    }
    let weir_lines = log_lines(&weir_log, served);
    assert_eq!(weir_lines.len(), served, "{weir_lines:?}");
    assert_eq!(weir_lines, log_lines(&envoy_log, served));
    let _ = (
        std::fs::remove_file(&weir_log),
        std::fs::remove_file(&envoy_log),
    );
    let weir_counters = counters(weir.admin);
    assert_eq!(
        weir_counters,
        counters(SocketAddr::from(([127, 0, 0, 1], admin)))
    );
    Some(weir_counters)
}

#[test]
fn weir_reads_proxy_protocol_headers_as_envoy_does() {
    let Some(counters) = compare("") else {
        return;
    };
    // A spot check that the comparison compares something.
    // v1: tcp4, tcp6, unknown found, two malformed; v2: with a TLV and LOCAL found, a bad
    // version, AF_UNIX and an unspecified destination (`::`, not unicast) malformed.
    for line in [
        "downstream_cx_proxy_proto_error: 6",
        "proxy_proto.not_found_disallowed: 1",
        "proxy_proto.versions.v1.found: 3",
        "proxy_proto.versions.v2.found: 2",
        "proxy_proto.versions.v2.error: 3",
    ] {
        assert!(
            counters.contains(&line.to_owned()),
            "{line} in {counters:?}"
        );
    }
}

#[test]
fn without_a_header_when_allowed_and_a_disallowed_version() {
    compare(", disallowed_versions: [V2]");
    compare(", allow_requests_without_proxy_protocol: true, disallowed_versions: [V1]");
}

#[test]
fn unsupported_fields_are_refused_with_their_paths() {
    let origin = origin();
    let text = config(
        origin.addr,
        ", rules: [{ tlv_type: 4, on_tlv_present: { key: k } }]",
        Path::new("/dev/null"),
    );
    let file = TempFile::new("weir.yaml", text);
    let out = std::process::Command::new(support::weir_bin())
        .args(["validate", "-c"])
        .arg(file.path())
        .output()
        .expect("weir validate");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("static_resources.listeners[0].listener_filters[0].typed_config.rules"),
        "{stderr}"
    );
}

/// Chains answering with their names: `ten` for `application_protocols: [http/1.0]`, `rest`
/// for the others; the listener runs the HTTP inspector.
fn inspector_config() -> String {
    let chain = |name: &str, matching: &str| {
        format!(
            r#"    - name: {name}
{matching}      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: {name}
          http_protocol_options: {{ accept_http_10: true }}
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{ prefix: / }}
                direct_response: {{ status: 200, body: {{ inline_string: {name} }} }}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }}
"#
        )
    };
    format!(
        r#"admin: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }} }}
static_resources:
  listeners:
  - name: inspected
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}
    listener_filters:
    - name: envoy.filters.listener.http_inspector
      typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector }}
    filter_chains:
{}{}"#,
        chain(
            "ten",
            "      filter_chain_match: { application_protocols: [http/1.0] }\n"
        ),
        chain("rest", ""),
    )
}

/// What one connection got: the status and body of its answer, or how it ended.
fn answer(port: u16, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let _ = stream.write_all(bytes);
    let mut out = Vec::new();
    match stream.read_to_end(&mut out) {
        Ok(_) if out.len() >= 12 => {
            let text = String::from_utf8_lossy(&out).into_owned();
            let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
            format!("{} {body}", &text[9..12])
        }
        Ok(_) => "closed".to_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => "reset".to_owned(),
        Err(e) => format!("error {e}"),
    }
}

#[test]
fn the_http_inspector_tells_http_versions_as_envoy_does() {
    let Some(envoy_bin) = envoy_or_skip() else {
        return;
    };
    let text = inspector_config();
    let weir = Weir::start(&text, &["--concurrency", "1"]);
    let (envoy_config, port, admin) = envoy_ports(&text);
    let _envoy = Envoy::start(&envoy_bin, "envoy.yaml", &envoy_config, Some(admin), port);
    let cases: &[&[u8]] = &[
        b"GET / HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n",
        b"GET / HTTP/1.0\r\nhost: a\r\n\r\n",
        b"POST /x?y=1 HTTP/1.0\r\nhost: a\r\ncontent-length: 0\r\n\r\n",
        b"hello there\r\n\r\n",
        b"\r\nGET / HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n",
        b"GET / FTP/1.0\r\nhost: a\r\n\r\n",
    ];
    for case in cases {
        let (w, e) = (answer(weir.addr().port(), case), answer(port, case));
        assert_eq!(
            w,
            e,
            "{:?}: weir said {w:?}, Envoy {e:?}",
            String::from_utf8_lossy(case)
        );
    }
    // The HTTP/2 preface: h2c, whatever the chain then makes of it (weir's speaks HTTP/1),
    // so only the count is compared.
    let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let envoy_admin = SocketAddr::from(([127, 0, 0, 1], admin));
    for (port, admin) in [(weir.addr().port(), weir.admin), (port, envoy_admin)] {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.write_all(preface).expect("send");
        let h2 = "http_inspector.http2_found: 1".to_owned();
        let counted = (0..50).any(|_| {
            std::thread::sleep(Duration::from_millis(50));
            stats(admin, "http_inspector").contains(&h2)
        });
        assert!(counted, "{:?}", stats(admin, "http_inspector"));
    }
    let weir_stats = stats(weir.admin, "http_inspector");
    assert_eq!(weir_stats, stats(envoy_admin, "http_inspector"));
    assert!(
        weir_stats.contains(&"http_inspector.http10_found: 2".to_owned()),
        "{weir_stats:?}"
    );
}
