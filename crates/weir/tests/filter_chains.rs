//! Choosing a filter chain per connection on 127.0.0.1: the TLS inspector reads the ClientHello
//! (SNI, ALPN) without consuming it, `filter_chain_match` picks the chain, and the chain
//! terminates TLS or speaks plaintext on the same port. Real clients: curl and
//! `openssl s_client`.

mod differential_support;
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use differential_support::{Envoy, envoy_or_skip, free_port};
use support::pki::{Pki, pki, served};
use support::{TempFile, Weir, run_program};

const CURL_TIMEOUT: Duration = Duration::from_secs(60);

/// A chain whose routes answer `body` themselves.
fn chain(matcher: &str, tls: Option<&(TempFile, TempFile)>, body: &str) -> String {
    let socket = tls.map_or_else(String::new, |(c, k)| {
        format!(
            r#"
      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
            tls_certificates:
            - certificate_chain: {{ filename: {} }}
              private_key: {{ filename: {} }}"#,
            c.path().display(),
            k.path().display()
        )
    });
    format!(
        r#"
    - filter_chain_match: {matcher}{socket}
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: {body}
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{ prefix: / }}
                direct_response: {{ status: 200, body: {{ inline_string: "{body}\n" }} }}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"#
    )
}

/// One listener with a TLS inspector and these chains, on an ephemeral port.
fn config(chains: &[String], listener_extra: &str) -> String {
    config_on(0, chains, listener_extra)
}

/// [`config`] on `port`.
fn config_on(port: u16, chains: &[String], listener_extra: &str) -> String {
    format!(
        r#"node: {{ id: weir-bintest, cluster: tests }}
admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}
static_resources:
  listeners:
  - name: ingress
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}{listener_extra}
    listener_filters:
    - name: envoy.filters.listener.tls_inspector
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector
    filter_chains:{}
"#,
        chains.concat()
    )
}

/// The chains most tests use: `a.test` by SNI, any other TLS, and plaintext.
fn sni_config(pki: &Pki, listener_extra: &str) -> String {
    config(
        &[
            chain(
                "{ server_names: [a.test], transport_protocol: tls }",
                Some(&pki.a),
                "chain-a",
            ),
            chain("{ transport_protocol: tls }", Some(&pki.b), "chain-tls"),
            chain("{ transport_protocol: raw_buffer }", None, "chain-plain"),
        ],
        listener_extra,
    )
}

/// curl to `scheme://name/` with `name` resolved to weir; its body, or the failure.
fn curl(weir: &Weir, pki: &Pki, scheme: &str, name: &str) -> Result<String, String> {
    let ca = pki.ca.path().to_str().expect("path").to_owned();
    curl_to(
        weir.addr().port(),
        scheme,
        name,
        &["--http1.1", "--cacert", &ca],
    )
}

/// curl to `scheme://name/` with `name` resolved to 127.0.0.1:`port`.
fn curl_to(port: u16, scheme: &str, name: &str, args: &[&str]) -> Result<String, String> {
    let resolve = format!("{name}:{port}:127.0.0.1");
    let url = format!("{scheme}://{name}:{port}/");
    let mut all = vec!["-sS", "--resolve", &resolve];
    all.extend_from_slice(args);
    all.push(&url);
    let ran = run_program("curl", &all, CURL_TIMEOUT);
    match ran.code() {
        Some(0) => Ok(ran.stdout),
        _ => Err(format!("curl exit {:?}", ran.code())),
    }
}

/// A counter or gauge in `/stats` (0 when absent).
fn stat(weir: &Weir, name: &str) -> u64 {
    let url = format!("http://{}/stats", weir.admin);
    let stats = run_program("curl", &["-sS", &url], CURL_TIMEOUT).stdout;
    let name = format!("{name}: ");
    stats
        .lines()
        .find_map(|l| l.strip_prefix(&name))
        .map_or(0, |v| v.trim().parse().expect("a number"))
}

fn listener_stat(weir: &Weir, name: &str) -> u64 {
    let addr = weir.addr();
    stat(
        weir,
        &format!("listener.{}_{}.{name}", addr.ip(), addr.port()),
    )
}

#[test]
fn sni_picks_the_chain_and_plaintext_shares_the_port() {
    let pki = pki();
    let weir = Weir::start(&sni_config(&pki, ""), &["--concurrency", "1"]);
    assert_eq!(
        curl(&weir, &pki, "https", "a.test").as_deref(),
        Ok("chain-a\n")
    );
    assert_eq!(
        curl(&weir, &pki, "https", "b.test").as_deref(),
        Ok("chain-tls\n")
    );
    assert_eq!(
        curl(&weir, &pki, "http", "a.test").as_deref(),
        Ok("chain-plain\n")
    );
    // The certificate is the chosen chain's: `b.test`'s chain cannot prove `a.test`.
    for (sni, expected) in [("a.test", "a.test"), ("other.test", "b.test")] {
        let subject = served(&weir, &pki, sni);
        assert!(subject.ends_with(expected), "{sni}: {subject}");
    }
    assert_eq!(listener_stat(&weir, "downstream_pre_cx_active"), 0);
    assert_eq!(listener_stat(&weir, "no_filter_chain_match"), 0);
    // Four TLS clients (two curls, two s_clients), all with SNI; curl offers ALPN, s_client
    // does not; one plaintext client.
    for (name, value) in [
        ("tls_found", 4),
        ("tls_not_found", 1),
        ("sni_found", 4),
        ("sni_not_found", 0),
        ("alpn_found", 2),
        ("alpn_not_found", 2),
        ("client_hello_too_large", 0),
    ] {
        assert_eq!(
            stat(&weir, &format!("tls_inspector.{name}")),
            value,
            "{name}"
        );
    }
}

#[test]
fn a_connection_that_matches_no_chain_is_closed_and_counted() {
    let pki = pki();
    // Only `a.test` over TLS: plaintext and other names have no chain.
    let yaml = config(
        &[chain("{ server_names: [a.test] }", Some(&pki.a), "chain-a")],
        "",
    );
    let weir = Weir::start(&yaml, &["--concurrency", "1"]);
    assert_eq!(
        curl(&weir, &pki, "https", "a.test").as_deref(),
        Ok("chain-a\n")
    );
    assert!(curl(&weir, &pki, "https", "b.test").is_err());
    assert!(curl(&weir, &pki, "http", "a.test").is_err());
    assert_eq!(listener_stat(&weir, "no_filter_chain_match"), 2);
}

#[test]
fn a_client_that_sends_nothing_is_closed_at_the_listener_filters_timeout() {
    let pki = pki();
    let weir = Weir::start(
        &sni_config(&pki, "\n    listener_filters_timeout: 0.5s"),
        &["--concurrency", "1"],
    );
    let mut silent = TcpStream::connect(weir.addr()).expect("connect");
    silent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut got = Vec::new();
    assert!(silent.read_to_end(&mut got).is_ok(), "not closed");
    assert!(got.is_empty(), "{got:?}");
    assert_eq!(listener_stat(&weir, "downstream_pre_cx_timeout"), 1);
    assert_eq!(listener_stat(&weir, "downstream_pre_cx_active"), 0);
}

#[test]
fn with_continue_on_timeout_a_slow_plaintext_client_gets_the_plaintext_chain() {
    let pki = pki();
    let weir = Weir::start(
        &sni_config(
            &pki,
            "\n    listener_filters_timeout: 0.3s\n    continue_on_listener_filters_timeout: true",
        ),
        &["--concurrency", "1"],
    );
    let mut slow = TcpStream::connect(weir.addr()).expect("connect");
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    // Nothing until the timeout has passed: the chain is chosen as for a plaintext client.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while listener_stat(&weir, "downstream_pre_cx_timeout") == 0 {
        assert!(std::time::Instant::now() < deadline, "no timeout");
        std::thread::sleep(Duration::from_millis(50));
    }
    slow.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .expect("send");
    let mut got = String::new();
    slow.read_to_string(&mut got).expect("read");
    assert!(got.ends_with("chain-plain\n"), "{got}");
}

#[test]
fn a_client_hello_split_across_reads_is_inspected_whole() {
    let pki = pki();
    let weir = Weir::start(&sni_config(&pki, ""), &["--concurrency", "1"]);
    let mut roots = RootCertStore::empty();
    let ca = CertificateDer::from_pem_file(pki.ca.path()).expect("the CA");
    roots.add(ca).expect("a root");
    let config = ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("a.test").expect("a name");
    let mut tls = ClientConnection::new(Arc::new(config), name).expect("a client");
    let mut hello = Vec::new();
    while tls.wants_write() {
        tls.write_tls(&mut hello).expect("into a Vec");
    }
    let mut tcp = TcpStream::connect(weir.addr()).expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    // A record header and a little more, then (after weir has had time to read it) the rest.
    tcp.write_all(&hello[..9]).expect("send");
    std::thread::sleep(Duration::from_millis(200));
    tcp.write_all(&hello[9..]).expect("send");
    let mut stream = StreamOwned::new(tls, tcp);
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: a.test\r\nconnection: close\r\n\r\n")
        .expect("request");
    let mut got = String::new();
    // A FIN without close_notify is an error to rustls; the reply is whole before it.
    let _ = stream.read_to_string(&mut got);
    assert!(got.ends_with("chain-a\n"), "{got}");
}

/// The same chains and clients through Envoy 1.40 and weir: each client reaches the chain of
/// the same name (or none) on both. Exact and wildcard server names, ALPN, the transport
/// protocol, and the order of the criteria (a server name wins over ALPN).
#[test]
fn chains_are_chosen_as_envoy_chooses_them() {
    let Some(envoy_bin) = envoy_or_skip() else {
        return;
    };
    let pki = pki();
    let chains = [
        chain("{ server_names: [a.test] }", Some(&pki.a), "chain-a"),
        chain(
            "{ server_names: [\"*.wild.test\"] }",
            Some(&pki.b),
            "chain-wild",
        ),
        chain(
            "{ transport_protocol: tls, application_protocols: [h2] }",
            Some(&pki.b),
            "chain-h2",
        ),
        chain("{ transport_protocol: tls }", Some(&pki.b), "chain-tls"),
        chain("{ transport_protocol: raw_buffer }", None, "chain-plain"),
    ];
    let port = free_port();
    let envoy = Envoy::start(
        &envoy_bin,
        "chains.yaml",
        &config_on(port, &chains, ""),
        None,
        port,
    );
    let weir = Weir::start(&config(&chains, ""), &["--concurrency", "1"]);
    let h1 = ["-k", "--http1.1"];
    let h2 = ["-k", "--http2"];
    let cases: [(&str, &str, &[&str]); 8] = [
        ("https", "a.test", &h1),
        ("https", "a.test", &h2),
        ("https", "x.wild.test", &h1),
        ("https", "x.y.wild.test", &h1),
        ("https", "wild.test", &h1),
        ("https", "b.test", &h2),
        ("https", "b.test", &h1),
        ("http", "a.test", &h1),
    ];
    for (scheme, name, args) in cases {
        let from_envoy = curl_to(port, scheme, name, args);
        let from_weir = curl_to(weir.addr().port(), scheme, name, args);
        assert_eq!(
            from_weir,
            from_envoy,
            "{scheme}://{name} {args:?}; envoy log:\n{}",
            envoy.log_text()
        );
    }
}
