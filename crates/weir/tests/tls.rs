//! Downstream TLS through the whole proxy on 127.0.0.1: curl and `openssl s_client` as real
//! clients, certificates made by rcgen when the tests run (an ECDSA P-256 CA, leaf certificates
//! for `a.test` and `b.test`, and a client certificate for mTLS).

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use support::pki::{Pki, pki, tls_config};
use support::{
    Checksum, Origin, Ran, TempFile, Weir, echo_fields, generate, generated_checksum, run_program,
};

const CURL_TIMEOUT: Duration = Duration::from_secs(60);

/// curl over TLS to `name` (resolved to weir).
fn curl(weir: &Weir, pki: &Pki, name: &str, path: &str, args: &[&str]) -> Ran {
    let port = weir.addr().port();
    let resolve = format!("{name}:{port}:127.0.0.1");
    let url = format!("https://{name}:{port}{path}");
    let ca = pki.ca.path().to_str().expect("path").to_owned();
    let mut all = vec!["-sS", "--http1.1", "--cacert", &ca, "--resolve", &resolve];
    all.extend_from_slice(args);
    all.push(&url);
    run_program("curl", &all, CURL_TIMEOUT)
}

/// The admin's `/stats` as text.
fn stats(weir: &Weir) -> String {
    let url = format!("http://{}/stats", weir.admin);
    run_program("curl", &["-sS", &url], CURL_TIMEOUT).stdout
}

/// A counter's value in `/stats` text (0 when absent).
fn counter(stats: &str, name: &str) -> u64 {
    stats
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
        .map_or(0, |v| v.trim().parse().expect("a number"))
}

fn listener_stat(weir: &Weir, stat: &str) -> u64 {
    let addr = weir.addr();
    counter(
        &stats(weir),
        &format!("listener.{}_{}.{stat}", addr.ip(), addr.port()),
    )
}

#[test]
fn curl_speaks_http1_over_tls_13_and_12_and_the_origin_sees_https() {
    let pki = pki();
    let origin = Origin::standard();
    let weir = Weir::start(
        &tls_config(origin.addr, &pki, "", ""),
        &["--concurrency", "1"],
    );
    for (version, args) in [
        ("TLSv1.3", &["--tlsv1.3"][..]),
        ("TLSv1.2", &["--tlsv1.2", "--tls-max", "1.2"][..]),
    ] {
        let ran = curl(
            &weir,
            &pki,
            "a.test",
            "/hello",
            &[args, &["-i", "-w", "\nversion=%{http_version}"]].concat(),
        );
        let out = &ran.stdout;
        assert_eq!(ran.code(), Some(0), "{version}: {ran}");
        assert!(out.starts_with("HTTP/1.1 200"), "{version}: {out}");
        assert!(out.contains("x-proxied-by: weir"), "{version}: {out}");
        assert!(out.contains("target: /hello"), "{version}: {out}");
        // `h2` was configured but is not offered: curl falls back to HTTP/1.1.
        assert!(out.ends_with("version=1.1"), "{version}: {out}");
        let ran = curl(&weir, &pki, "a.test", "/proto", args);
        assert_eq!(
            ran.stdout, "https\n",
            "x-forwarded-proto and :scheme: {ran}"
        );
    }
    let s = stats(&weir);
    let prefix = format!("listener.127.0.0.1_{}.ssl.", weir.addr().port());
    assert_eq!(counter(&s, &format!("{prefix}handshake")), 4, "{s}");
    assert_eq!(counter(&s, &format!("{prefix}versions.TLSv1.3")), 2, "{s}");
    assert_eq!(counter(&s, &format!("{prefix}versions.TLSv1.2")), 2, "{s}");
    assert_eq!(counter(&s, &format!("{prefix}connection_error")), 0, "{s}");
    assert_eq!(counter(&s, &format!("{prefix}no_certificate")), 4, "{s}");
    assert!(s.contains(&format!("{prefix}ciphers.")), "{s}");
    assert!(s.contains(&format!("{prefix}curves.")), "{s}");
}

#[test]
fn the_certificate_is_chosen_by_sni_and_the_first_is_the_default() {
    let pki = pki();
    let origin = Origin::standard();
    let weir = Weir::start(
        &tls_config(origin.addr, &pki, "", ""),
        &["--concurrency", "1"],
    );
    let addr = weir.addr().to_string();
    let ca = pki.ca.path().to_str().expect("path").to_owned();
    for (sni, served) in [
        (Some("a.test"), "a.test"),
        (Some("b.test"), "b.test"),
        (Some("c.test"), "a.test"),
        (None, "a.test"),
    ] {
        let mut args = vec!["s_client", "-connect", &addr, "-CAfile", &ca];
        match sni {
            Some(name) => args.extend(["-servername", name]),
            None => args.push("-noservername"),
        }
        let ran = run_program("openssl", &args, CURL_TIMEOUT);
        let subject = ran
            .stdout
            .lines()
            .find(|l| l.starts_with("subject="))
            .unwrap_or_else(|| panic!("{sni:?}: no subject in {}", ran.stdout));
        assert!(subject.ends_with(served), "{sni:?}: {subject}");
    }
    // And curl, which checks the name, gets through to both.
    for name in ["a.test", "b.test"] {
        let ran = curl(&weir, &pki, name, "/x", &[]);
        assert_eq!(ran.code(), Some(0), "{name}: {ran}");
    }
}

/// Sends `bytes` to weir's TLS port and reads until weir closes (bounded by a timeout).
fn send_and_wait_close(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(bytes).expect("send");
    let mut got = Vec::new();
    let closed = s.read_to_end(&mut got);
    assert!(closed.is_ok(), "weir did not close: {closed:?}");
    got
}

#[test]
fn plaintext_and_garbage_on_a_tls_port_are_closed_and_counted() {
    let pki = pki();
    let origin = Origin::standard();
    let weir = Weir::start(
        &tls_config(origin.addr, &pki, "", ""),
        &["--concurrency", "1"],
    );
    let reply = send_and_wait_close(weir.addr(), b"GET / HTTP/1.1\r\nhost: a.test\r\n\r\n");
    assert!(
        !reply.starts_with(b"HTTP/"),
        "plaintext got an HTTP answer: {reply:?}"
    );
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect();
    send_and_wait_close(weir.addr(), &garbage);
    // A TLS record header followed by nonsense.
    send_and_wait_close(weir.addr(), b"\x16\x03\x01\x00\x05hello");
    assert_eq!(listener_stat(&weir, "ssl.connection_error"), 3);
    assert_eq!(listener_stat(&weir, "ssl.handshake"), 0);
    // weir still serves.
    let ran = curl(&weir, &pki, "a.test", "/after", &[]);
    assert_eq!(ran.code(), Some(0), "{ran}");
    assert_eq!(listener_stat(&weir, "ssl.handshake"), 1);
}

/// `transport_socket_connect_timeout`: a client that stops in the middle of its ClientHello is
/// closed when it runs out and counted; a connection whose handshake finished stays open past it.
#[test]
fn a_client_stalled_mid_handshake_is_closed_at_the_timeout() {
    let pki = pki();
    let origin = Origin::standard();
    let config = tls_config(origin.addr, &pki, "", "");
    let anchor = "    - transport_socket:\n";
    assert!(config.contains(anchor));
    let config = config.replacen(
        anchor,
        "    - transport_socket_connect_timeout: 0.3s\n      transport_socket:\n",
        1,
    );
    let weir = Weir::start(&config, &["--concurrency", "1"]);

    // A handshake record that promises 512 bytes and delivers 6.
    let started = std::time::Instant::now();
    send_and_wait_close(weir.addr(), b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03");
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert_eq!(
        listener_stat(&weir, "downstream_cx_transport_socket_connect_timeout"),
        1
    );

    // A whole handshake, then a pause longer than the timeout: the connection still serves.
    let cacert = pki.ca.path().to_str().expect("path").to_owned();
    let addr = weir.addr().to_string();
    let mut child = std::process::Command::new("openssl")
        .args([
            "s_client",
            "-quiet",
            "-connect",
            &addr,
            "-servername",
            "a.test",
        ])
        .args(["-CAfile", &cacert, "-verify_return_error"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("openssl");
    let mut stdin = child.stdin.take().expect("stdin");
    let request = b"GET /local HTTP/1.1\r\nhost: a.test\r\n\r\n";
    stdin.write_all(request).expect("first request");
    std::thread::sleep(Duration::from_millis(700));
    stdin
        .write_all(b"GET /local HTTP/1.1\r\nhost: a.test\r\nconnection: close\r\n\r\n")
        .expect("second request");
    let mut out = String::new();
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let _ = stdout.read_to_string(&mut out);
        out
    });
    let status = support::wait_child(&mut child, Duration::from_secs(20));
    drop(stdin);
    let _ = child.kill();
    assert!(status.is_some(), "openssl did not finish");
    let out = reader.join().expect("reader");
    assert_eq!(out.matches("HTTP/1.1 200").count(), 2, "{out}");
    assert_eq!(
        listener_stat(&weir, "downstream_cx_transport_socket_connect_timeout"),
        1
    );
}

/// One request to `addr` as `a.test` over a TLS 1.3 connection of `config` (whose session
/// cache carries tickets from one call to the next); whether the handshake resumed.
fn resumed(addr: SocketAddr, config: &std::sync::Arc<rustls::ClientConfig>) -> bool {
    let name = rustls::pki_types::ServerName::try_from("a.test").expect("name");
    let conn = rustls::ClientConnection::new(config.clone(), name).expect("client");
    let tcp = TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(b"GET /local HTTP/1.1\r\nhost: a.test\r\nconnection: close\r\n\r\n")
        .expect("request");
    let mut reply = Vec::new();
    // A FIN without close_notify is an error to rustls; the reply is whole before it.
    let _ = tls.read_to_end(&mut reply);
    assert!(reply.starts_with(b"HTTP/1.1 200"), "{reply:?}");
    tls.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed)
}

/// `session_ticket_keys`: two weirs with the same key file resume each other's sessions, one
/// with another key does not; with both kinds of resumption disabled nothing resumes.
#[test]
fn weirs_sharing_session_ticket_keys_resume_each_others_sessions() {
    let pki = pki();
    let origin = Origin::standard();
    let key = |seed: u8| {
        (0..80u8)
            .map(|b| b.wrapping_mul(31) ^ seed)
            .collect::<Vec<u8>>()
    };
    let (shared, other) = (
        TempFile::new("ticket.key", key(1)),
        TempFile::new("other-ticket.key", key(2)),
    );
    let start = |extra: String| {
        Weir::start(
            &tls_config(origin.addr, &pki, &extra, ""),
            &["--concurrency", "1"],
        )
    };
    let with_key = |f: &TempFile| {
        format!(
            "\n          session_ticket_keys: {{ keys: [ {{ filename: {} }} ] }}\n          session_timeout: 300s",
            f.path().display()
        )
    };
    let (a, b, c) = (
        start(with_key(&shared)),
        start(with_key(&shared)),
        start(with_key(&other)),
    );
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::pem::PemObject::from_pem_file(pki.ca.path()).expect("CA"))
        .expect("root");
    let client = || {
        std::sync::Arc::new(
            rustls::ClientConfig::builder_with_protocol_versions(&[&rustls::version::TLS13])
                .with_root_certificates(roots.clone())
                .with_no_client_auth(),
        )
    };
    let config = client();
    assert!(!resumed(a.addr(), &config), "a first handshake is full");
    assert!(resumed(b.addr(), &config), "b opens a's ticket");
    assert!(!resumed(c.addr(), &config), "c has another key");
    assert_eq!(listener_stat(&b, "ssl.session_reused"), 1);
    assert_eq!(listener_stat(&c, "ssl.session_reused"), 0);

    let off = start(
        "\n          disable_stateless_session_resumption: true\n          disable_stateful_session_resumption: true"
            .to_owned(),
    );
    let config = client();
    assert!(!resumed(off.addr(), &config));
    assert!(!resumed(off.addr(), &config), "nothing to resume with");
    let on = start(String::new());
    let config = client();
    assert!(!resumed(on.addr(), &config));
    assert!(resumed(on.addr(), &config), "resumption is on by default");
}

#[test]
fn a_hundred_mib_each_way_over_tls_with_bounded_memory() {
    const SIZE: u64 = 100 * 1024 * 1024;
    let pki = pki();
    let origin = Origin::standard();
    let weir = Weir::start(
        &tls_config(origin.addr, &pki, "", ""),
        &["--concurrency", "1"],
    );
    let baseline = weir.proc_status_kib("VmHWM");
    let mut body = Vec::with_capacity(SIZE as usize);
    generate(SIZE, |piece| {
        body.extend_from_slice(piece);
        Ok(())
    })
    .expect("generate");
    let upload = TempFile::new("upload.bin", &body);
    drop(body);
    let data = format!("@{}", upload.path().display());
    let ran = curl(
        &weir,
        &pki,
        "a.test",
        "/upload?pause_ms=300",
        &[
            "--data-binary",
            &data,
            "-H",
            "content-type: application/octet-stream",
        ],
    );
    assert_eq!(ran.code(), Some(0), "{ran}");
    let seen = echo_fields(ran.stdout.as_bytes());
    assert_eq!(seen["body-bytes"], SIZE.to_string(), "{ran}");
    assert_eq!(seen["body-sum"], generated_checksum(SIZE));

    let download = TempFile::unique_path("download.bin");
    let to = download.to_str().expect("path").to_owned();
    let path = format!("/download?bytes={SIZE}");
    let ran = curl(&weir, &pki, "a.test", &path, &["-o", &to]);
    assert_eq!(ran.code(), Some(0), "{ran}");
    let got = std::fs::read(&download).expect("downloaded");
    let _ = std::fs::remove_file(&download);
    assert_eq!(got.len() as u64, SIZE);
    let mut sum = Checksum::default();
    sum.update(&got);
    assert_eq!(sum.finish(), generated_checksum(SIZE), "the body changed");
    // Buffering either body would take 100 MiB; the per-connection buffers are 1 MiB.
    let grown = weir.proc_status_kib("VmHWM").saturating_sub(baseline);
    assert!(grown < 12 * 1024, "weir's peak RSS grew by {grown} KiB");
}

#[test]
fn mtls_accepts_a_client_certificate_from_the_trusted_ca_and_refuses_none() {
    let pki = pki();
    let origin = Origin::standard();
    let extra = "\n          require_client_certificate: true";
    let common = format!(
        "\n            validation_context: {{ trusted_ca: {{ filename: {} }} }}",
        pki.ca.path().display()
    );
    let config = tls_config(origin.addr, &pki, extra, &common);
    let weir = Weir::start(&config, &["--concurrency", "1"]);
    let cert = pki.client.0.path().to_str().expect("path").to_owned();
    let key = pki.client.1.path().to_str().expect("path").to_owned();
    let ran = curl(
        &weir,
        &pki,
        "a.test",
        "/m",
        &["--cert", &cert, "--key", &key],
    );
    assert_eq!(ran.code(), Some(0), "{ran}");
    assert!(ran.stdout.contains("target: /m"), "{ran}");
    let ran = curl(&weir, &pki, "a.test", "/m", &[]);
    assert_ne!(ran.code(), Some(0), "no client certificate, yet: {ran}");
    assert_eq!(listener_stat(&weir, "ssl.handshake"), 1);
    // Envoy counts a refused certificate as that, not as a connection error.
    assert_eq!(listener_stat(&weir, "ssl.fail_verify_no_cert"), 1);
    assert_eq!(listener_stat(&weir, "ssl.connection_error"), 0);
}

#[test]
fn access_logs_show_the_sni_version_and_cipher_as_envoy_names_them() {
    let pki = pki();
    let origin = Origin::standard();
    let log = TempFile::unique_path("tls-access.log");
    let anchor = "          stat_prefix: ingress\n";
    let logger = format!(
        "          access_log:\n          - name: envoy.access_loggers.file\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog\n              path: {}\n              log_format:\n                text_format_source:\n                  inline_string: \"%REQUESTED_SERVER_NAME% %DOWNSTREAM_TLS_VERSION% %DOWNSTREAM_TLS_CIPHER%\\n\"\n",
        log.display()
    );
    let config = tls_config(origin.addr, &pki, "", "");
    assert!(config.contains(anchor));
    let config = config.replace(anchor, &format!("{anchor}{logger}"));
    let weir = Weir::start(
        &config,
        &["--concurrency", "1", "--file-flush-interval-msec", "20"],
    );
    let ran = curl(&weir, &pki, "a.test", "/local", &["--tlsv1.3"]);
    assert_eq!(ran.code(), Some(0), "{ran}");
    let ran = curl(
        &weir,
        &pki,
        "b.test",
        "/local",
        &["--tlsv1.2", "--tls-max", "1.2"],
    );
    assert_eq!(ran.code(), Some(0), "{ran}");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let lines = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.lines().count() >= 2 {
            break text;
        }
        assert!(std::time::Instant::now() < deadline, "log: {text:?}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let lines: Vec<&str> = lines.lines().collect();
    assert!(
        lines[0].starts_with("a.test TLSv1.3 TLS_AES_")
            || lines[0].starts_with("a.test TLSv1.3 TLS_CHACHA20_"),
        "{lines:?}"
    );
    assert!(
        lines[1].starts_with("b.test TLSv1.2 ECDHE-ECDSA-"),
        "{lines:?}"
    );
}
