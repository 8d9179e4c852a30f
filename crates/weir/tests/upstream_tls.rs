//! TLS to the origin (a cluster's `UpstreamTlsContext`) on 127.0.0.1: weir in front of another
//! weir that terminates TLS (the origin behind it is plaintext). The origin's certificate
//! verified against `trusted_ca` or, as Envoy does without a `validation_context`, not at all;
//! an untrusted one refused with 503 `UF`; SNI sent; pooled TLS connections reused and new ones
//! resuming the session; a large body both ways.

mod support;

use std::net::SocketAddr;

use support::pki::{Pki, pki, tls_config};
use support::{
    Client, Origin, TempFile, Weir, echo_fields, generate, generated_checksum, proxy_config,
    run_program,
};

/// `proxy_config` toward `tls_origin` with its cluster speaking TLS: `context` fields of the
/// UpstreamTlsContext and `common` fields of its common_tls_context (JSON).
fn front_config(tls_origin: SocketAddr, context: &str, common: &str) -> String {
    let socket = format!(
        r#"    transport_socket: {{ "name": "envoy.transport_sockets.tls", "typed_config": {{ "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext", {context} "common_tls_context": {{ {common} }} }} }}
"#
    );
    let config = proxy_config(tls_origin);
    let anchor = "    connect_timeout: 2s\n";
    assert!(config.contains(anchor));
    config.replacen(anchor, &format!("{anchor}{socket}"), 1)
}

fn trusted(pki: &Pki) -> String {
    format!(
        r#""validation_context": {{ "trusted_ca": {{ "filename": "{}" }} }}"#,
        pki.ca.path().display()
    )
}

fn stat(weir: &Weir, name: &str) -> u64 {
    let url = format!("http://{}/stats", weir.admin);
    let stats = run_program("curl", &["-sS", &url], std::time::Duration::from_secs(30)).stdout;
    let name = format!("{name}: ");
    stats
        .lines()
        .find_map(|l| l.strip_prefix(&name))
        .map_or(0, |v| v.trim().parse().expect("a number"))
}

/// The TLS-terminating weir in the middle, its origin, and its listener's stat prefix.
struct Middle {
    _origin: Origin,
    weir: Weir,
}

impl Middle {
    fn start(pki: &Pki) -> Middle {
        Middle::logging(pki, None)
    }

    /// With an access log of each request's `%REQUESTED_SERVER_NAME%` at `log`.
    fn logging(pki: &Pki, log: Option<&std::path::Path>) -> Middle {
        let origin = Origin::standard();
        let mut config = tls_config(origin.addr, pki, "", "");
        if let Some(log) = log {
            let anchor = "          stat_prefix: ingress\n";
            let logger = format!(
                "          access_log:\n          - name: envoy.access_loggers.file\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog\n              path: {}\n              log_format:\n                text_format_source:\n                  inline_string: \"%REQUESTED_SERVER_NAME%\\n\"\n",
                log.display()
            );
            config = config.replace(anchor, &format!("{anchor}{logger}"));
        }
        let weir = Weir::start(
            &config,
            &["--concurrency", "1", "--file-flush-interval-msec", "20"],
        );
        Middle {
            _origin: origin,
            weir,
        }
    }

    fn listener_stat(&self, name: &str) -> u64 {
        let a = self.weir.addr();
        stat(
            &self.weir,
            &format!("listener.{}_{}.{name}", a.ip(), a.port()),
        )
    }
}

#[test]
fn a_trusted_origin_is_reached_over_tls_with_sni_and_its_connection_is_reused() {
    let pki = pki();
    let log = TempFile::unique_path("middle.log");
    let middle = Middle::logging(&pki, Some(&log));
    let front = Weir::start(
        &front_config(middle.weir.addr(), r#""sni": "b.test","#, &trusted(&pki)),
        &["--concurrency", "1"],
    );
    let mut client = Client::connect(front.addr()).expect("connect");
    for i in 0..5 {
        let response = client.get("/through").expect("response");
        assert_eq!(response.status(), 200, "request {i}");
        assert!(response.text().contains("target: /through"), "request {i}");
    }
    // One handshake for the five (the pooled connection was reused), with the name sent.
    assert_eq!(middle.listener_stat("ssl.handshake"), 1);
    assert_eq!(stat(&front, "cluster.origin.upstream_cx_total"), 1);
    // The cluster's own handshake stats, as Envoy names them.
    assert_eq!(stat(&front, "cluster.origin.ssl.handshake"), 1);
    assert_eq!(stat(&front, "cluster.origin.ssl.versions.TLSv1.3"), 1);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.lines().count() >= 5 {
            assert!(text.lines().all(|l| l == "b.test"), "{text:?}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "log: {text:?}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn an_untrusted_origin_is_refused_with_503_uf() {
    let pki = pki();
    let other = pki_other();
    let middle = Middle::start(&pki);
    let log = TempFile::unique_path("front-failure.log");
    let anchor = "          stat_prefix: ingress\n";
    let logger = format!(
        "          access_log:\n          - name: envoy.access_loggers.file\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog\n              path: {}\n              log_format:\n                text_format_source:\n                  inline_string: \"%RESPONSE_FLAGS% %UPSTREAM_TRANSPORT_FAILURE_REASON%\\n\"\n",
        log.display()
    );
    let config = front_config(middle.weir.addr(), r#""sni": "a.test","#, &trusted(&other));
    assert!(config.contains(anchor));
    let front = Weir::start(
        &config.replacen(anchor, &format!("{anchor}{logger}"), 1),
        &["--concurrency", "1", "--file-flush-interval-msec", "20"],
    );
    let mut client = Client::connect(front.addr()).expect("connect");
    let response = client.get("/through").expect("response");
    assert_eq!(response.status(), 503);
    // Why, in Envoy's frame (rustls' words where Envoy has BoringSSL's).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let line = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(line) = text.lines().next() {
            break line.to_owned();
        }
        assert!(std::time::Instant::now() < deadline, "nothing logged");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(
        line.starts_with("UF TLS_error:|invalid_peer_certificate:_")
            && line.ends_with(":TLS_error_end"),
        "{line}"
    );
    assert!(
        response
            .text()
            .starts_with("upstream connect error or disconnect/reset before headers"),
        "{}",
        response.text()
    );
    let failed = stat(&front, "cluster.origin.upstream_cx_connect_fail");
    assert!(failed >= 1);
    // Envoy counts an untrusted certificate as this alone (checked on Envoy 1.40).
    assert_eq!(stat(&front, "cluster.origin.ssl.fail_verify_error"), failed);
    assert_eq!(stat(&front, "cluster.origin.ssl.connection_error"), 0);
    assert_eq!(middle.listener_stat("ssl.handshake"), 0);
}

/// With `match_typed_subject_alt_names`, the origin's certificate must carry a matching name
/// besides chaining to the CA: `a.test` passes (also by a suffix), `b.test` is refused with
/// 503 `UF` as an untrusted certificate is.
#[test]
fn the_origin_certificate_names_are_checked_when_matchers_are_given() {
    let pki = pki();
    let middle = Middle::start(&pki);
    let with_matcher = |matcher: &str| {
        format!(
            r#""validation_context": {{ "trusted_ca": {{ "filename": "{}" }}, "match_typed_subject_alt_names": [{{ "san_type": "DNS", "matcher": {matcher} }}] }}"#,
            pki.ca.path().display()
        )
    };
    for (matcher, status) in [
        (r#"{ "exact": "a.test" }"#, 200),
        (r#"{ "suffix": ".test" }"#, 200),
        (r#"{ "exact": "b.test" }"#, 503),
    ] {
        let front = Weir::start(
            &front_config(
                middle.weir.addr(),
                r#""sni": "a.test","#,
                &with_matcher(matcher),
            ),
            &["--concurrency", "1"],
        );
        let mut client = Client::connect(front.addr()).expect("connect");
        let response = client.get("/through").expect("response");
        assert_eq!(response.status(), status, "{matcher}: {}", response.text());
        let refused = stat(&front, "cluster.origin.ssl.fail_verify_san");
        assert_eq!(refused > 0, status == 503, "{matcher}");
    }
    assert_eq!(middle.listener_stat("ssl.handshake"), 2);
}

/// The cluster's `upstream_http_protocol_options` with `auto_sni` and `auto_san_validation`:
/// each request's host is the SNI (the middle sees it and picks its certificate by it), the
/// certificate must be valid for it (`c.test`, for which the middle has none, is refused with
/// 503), and a pooled connection serves only requests for the host it was opened for.
#[test]
fn auto_sni_follows_each_requests_host_and_is_verified() {
    let pki = pki();
    let log = TempFile::unique_path("middle-auto.log");
    let middle = Middle::logging(&pki, Some(&log));
    let options = r#"    typed_extension_protocol_options: { envoy.extensions.upstreams.http.v3.HttpProtocolOptions: { "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions, explicit_http_config: { http_protocol_options: {} }, upstream_http_protocol_options: { auto_sni: true, auto_san_validation: true } } }
"#;
    let config = front_config(middle.weir.addr(), "", &trusted(&pki));
    let anchor = "    connect_timeout: 2s\n";
    let config = config.replacen(anchor, &format!("{anchor}{options}"), 1);
    let front = Weir::start(&config, &["--concurrency", "1"]);
    let mut client = Client::connect(front.addr()).expect("connect");
    let mut get = |host: &str| {
        let head = format!("GET /through HTTP/1.1\r\nhost: {host}\r\n\r\n");
        client.send(head.as_bytes()).expect("send");
        client.read_response().expect("response").status()
    };
    assert_eq!(get("a.test"), 200);
    assert_eq!(get("b.test:8443"), 200);
    assert_eq!(get("a.test"), 200);
    assert_eq!(get("c.test"), 503);
    // One connection per name (the second `a.test` request reused the first's), and the
    // refused one.
    assert_eq!(stat(&front, "cluster.origin.upstream_cx_total"), 3);
    // A certificate not valid for the name is a SAN failure, as Envoy names it.
    assert_eq!(stat(&front, "cluster.origin.ssl.fail_verify_san"), 1);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.lines().count() >= 3 {
            assert_eq!(
                text.lines().collect::<Vec<_>>(),
                ["a.test", "b.test", "a.test"]
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "log: {text:?}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// `auto_host_sni`: the endpoint's `hostname` is the SNI; with `auto_sni_san_validation` the
/// certificate must be valid for it (a hostname the middle has no certificate for is refused).
#[test]
fn auto_host_sni_sends_the_endpoint_hostname_and_verifies_it() {
    let pki = pki();
    let log = TempFile::unique_path("middle-host.log");
    let middle = Middle::logging(&pki, Some(&log));
    let context = r#""auto_host_sni": true, "auto_sni_san_validation": true,"#;
    let front_to = |hostname: &str| {
        let config = front_config(middle.weir.addr(), context, &trusted(&pki));
        let anchor = "        - endpoint: { address:";
        assert!(config.contains(anchor));
        let config = config.replacen(
            anchor,
            &format!("        - endpoint: {{ hostname: {hostname}, address:"),
            1,
        );
        Weir::start(&config, &["--concurrency", "1"])
    };
    let front = front_to("b.test");
    let mut client = Client::connect(front.addr()).expect("connect");
    assert_eq!(client.get("/through").expect("response").status(), 200);
    let refused = front_to("c.test");
    let mut client = Client::connect(refused.addr()).expect("connect");
    assert_eq!(client.get("/through").expect("response").status(), 503);
    assert_eq!(stat(&refused, "cluster.origin.ssl.fail_verify_san"), 1);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if !text.is_empty() {
            assert_eq!(text.lines().collect::<Vec<_>>(), ["b.test"]);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "log: {text:?}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Another CA, which signed nothing the middle presents.
fn pki_other() -> Pki {
    pki()
}

#[test]
fn without_a_validation_context_any_certificate_is_accepted_as_envoy_does() {
    let pki = pki();
    let middle = Middle::start(&pki);
    let front = Weir::start(
        &front_config(middle.weir.addr(), "", ""),
        &["--concurrency", "1"],
    );
    let mut client = Client::connect(front.addr()).expect("connect");
    let response = client.get("/through").expect("response");
    assert_eq!(response.status(), 200);
    assert!(response.text().contains("target: /through"));
    assert_eq!(middle.listener_stat("ssl.handshake"), 1);
}

#[test]
fn eight_mib_each_way_through_upstream_tls() {
    const SIZE: u64 = 8 * 1024 * 1024;
    let pki = pki();
    let middle = Middle::start(&pki);
    let front = Weir::start(
        &front_config(middle.weir.addr(), r#""sni": "a.test","#, &trusted(&pki)),
        &["--concurrency", "1"],
    );
    let mut body = Vec::with_capacity(SIZE as usize);
    generate(SIZE, |piece| {
        body.extend_from_slice(piece);
        Ok(())
    })
    .expect("generate");
    let upload = TempFile::new("upload.bin", &body);
    drop(body);
    let url = format!("http://{}/upload", front.addr());
    let data = format!("@{}", upload.path().display());
    let timeout = std::time::Duration::from_secs(60);
    let ran = run_program("curl", &["-sS", "--data-binary", &data, &url], timeout);
    assert_eq!(ran.code(), Some(0), "{ran}");
    let seen = echo_fields(ran.stdout.as_bytes());
    assert_eq!(seen["body-bytes"], SIZE.to_string());
    assert_eq!(seen["body-sum"], generated_checksum(SIZE));
    let download = TempFile::unique_path("download.bin");
    let to = download.to_str().expect("path").to_owned();
    let url = format!("http://{}/bytes?bytes={SIZE}", front.addr());
    let ran = run_program("curl", &["-sS", "-o", &to, &url], timeout);
    assert_eq!(ran.code(), Some(0), "{ran}");
    let got = std::fs::read(&download).expect("downloaded");
    assert_eq!(got.len() as u64, SIZE);
    let mut sum = support::Checksum::default();
    sum.update(&got);
    assert_eq!(sum.finish(), generated_checksum(SIZE));
}

#[test]
fn a_second_connection_to_the_origin_resumes_the_tls_session() {
    let pki = pki();
    let middle = Middle::start(&pki);
    let front = Weir::start(
        &front_config(middle.weir.addr(), r#""sni": "a.test","#, &trusted(&pki)),
        &["--concurrency", "1"],
    );
    // The first request holds its upstream connection (the origin answers after 500 ms), so
    // the second needs a connection of its own, made once the first handshake is done.
    let slow_addr = front.addr();
    let slow = std::thread::spawn(move || {
        let mut client = Client::connect(slow_addr).expect("connect");
        client
            .get("/through?delay_ms=500")
            .expect("response")
            .status()
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while middle.listener_stat("ssl.handshake") < 1 {
        assert!(std::time::Instant::now() < deadline, "no first handshake");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let mut client = Client::connect(front.addr()).expect("connect");
    assert_eq!(client.get("/through").expect("response").status(), 200);
    assert_eq!(slow.join().expect("slow client"), 200);
    assert_eq!(middle.listener_stat("ssl.handshake"), 2);
    assert_eq!(middle.listener_stat("ssl.session_reused"), 1);
    assert_eq!(stat(&front, "cluster.origin.ssl.handshake"), 2);
    assert_eq!(stat(&front, "cluster.origin.ssl.session_reused"), 1);
}

#[test]
fn the_flow_trace_shows_both_handshakes() {
    let pki = pki();
    let origin = Origin::standard();
    let middle = Weir::start(
        &tls_config(origin.addr, &pki, "", ""),
        &["--concurrency", "1", "--flow-trace", "all"],
    );
    let front = Weir::start(
        &front_config(middle.addr(), r#""sni": "a.test","#, &trusted(&pki)),
        &["--concurrency", "1", "--flow-trace", "all"],
    );
    let mut client = Client::connect(front.addr()).expect("connect");
    assert_eq!(client.get("/through").expect("response").status(), 200);
    let flows = |weir: &Weir| {
        let url = format!("http://{}/flows?format=json&limit=10", weir.admin);
        run_program("curl", &["-sS", &url], std::time::Duration::from_secs(30)).stdout
    };
    // The front spoke TLS to the middle: its upstream lane has the handshake, with the SNI
    // it sent; the middle terminated it: its downstream lane has it, with the SNI it got.
    let front_flows = flows(&front);
    assert!(
        front_flows
            .lines()
            .any(|l| l.contains(r#""event":"tls_handshake""#)
                && l.contains(r#""lane":"upstream""#)
                && l.contains(r#""server_name":"a.test""#)),
        "{front_flows}"
    );
    let middle_flows = flows(&middle);
    assert!(
        middle_flows
            .lines()
            .any(|l| l.contains(r#""event":"tls_handshake""#)
                && l.contains(r#""lane":"downstream""#)
                && l.contains(r#""server_name":"a.test""#)
                && l.contains(r#""version":"TLSv1.3""#)),
        "{middle_flows}"
    );
    // Beside the reads and writes of plaintext, the TLS records that carried it: both ways on
    // each side of the TLS hop, and as many bytes leave the front as reach the middle.
    let records = |flows: &str, lane: &str, direction: &str| -> u64 {
        flows
            .lines()
            .filter(|l| {
                l.contains(r#""event":"tls_records""#)
                    && l.contains(&format!(r#""lane":"{lane}""#))
                    && l.contains(&format!(r#""direction":"{direction}""#))
            })
            .map(|l| {
                let at = l.find(r#""bytes":"#).expect("bytes") + 8;
                let digits: String = l[at..].chars().take_while(char::is_ascii_digit).collect();
                digits.parse::<u64>().expect("a number")
            })
            .sum()
    };
    let (front_out, front_in) = (
        records(&front_flows, "upstream", "out"),
        records(&front_flows, "upstream", "in"),
    );
    let (middle_in, middle_out) = (
        records(&middle_flows, "downstream", "in"),
        records(&middle_flows, "downstream", "out"),
    );
    assert!(front_out > 0 && front_in > 0, "{front_flows}");
    assert_eq!(
        (front_out, front_in),
        (middle_in, middle_out),
        "{middle_flows}"
    );
}

/// A cluster's CA from an SDS file (`validation_context_sds_secret_config`): an origin the CA
/// did not sign is refused; once the file names the origin's CA, new connections verify.
#[test]
fn the_origin_ca_rotates_from_an_sds_file() {
    let pki = pki();
    let other = pki_other();
    let middle = Middle::start(&pki);
    let secret = |ca: &Pki| {
        format!(
            "resources:\n- \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret\n  name: origin-ca\n  validation_context: {{ trusted_ca: {{ filename: {} }} }}\n",
            ca.ca.path().display()
        )
    };
    let sds_file = TempFile::new("origin-ca.yaml", secret(&other));
    let common = format!(
        r#""validation_context_sds_secret_config": {{ "name": "origin-ca", "sds_config": {{ "path_config_source": {{ "path": "{}" }} }} }}"#,
        sds_file.path().display()
    );
    let front = Weir::start(
        &front_config(middle.weir.addr(), r#""sni": "a.test","#, &common),
        &["--concurrency", "1"],
    );
    let get = || {
        let mut client = Client::connect(front.addr()).expect("connect");
        client.get("/through").expect("response").status()
    };
    assert_eq!(get(), 503);
    let next = sds_file.path().with_extension("next");
    std::fs::write(&next, secret(&pki)).expect("write");
    std::fs::rename(&next, sds_file.path()).expect("rename");
    assert!(
        front
            .wait_for_log("secret rotated", std::time::Duration::from_secs(20))
            .is_some()
    );
    assert_eq!(get(), 200);
}

/// `validation_context.system_root_certs`: the origin is verified against the system's CA
/// bundle (here `SSL_CERT_FILE`, as OpenSSL reads it): trusted when the bundle holds its CA,
/// refused when it does not.
#[test]
fn system_root_certs_verify_the_origin_with_the_system_bundle() {
    let pki = pki();
    let other = pki_other();
    let middle = Middle::start(&pki);
    let common = r#""validation_context": { "system_root_certs": {} }"#;
    let config = front_config(middle.weir.addr(), r#""sni": "a.test","#, common);
    for (bundle, status) in [(&pki.ca, 200), (&other.ca, 503)] {
        let env = format!("SSL_CERT_FILE={}", bundle.path().display());
        let front = Weir::start_under(&["env", &env], &config, &["--concurrency", "1"]);
        let mut client = Client::connect(front.addr()).expect("connect");
        assert_eq!(client.get("/through").expect("response").status(), status);
    }
}
