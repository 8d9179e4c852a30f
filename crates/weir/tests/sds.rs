//! Certificates from SDS files, rotated without a restart: a listener's certificate comes from
//! `tls_certificate_sds_secret_configs` with a `path_config_source`; rewriting the file changes
//! the certificate new handshakes get, a connection made before keeps working, and a broken
//! file keeps the last good certificate.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use support::pki::{Pki, pki, served};
use support::{Origin, TempFile, Weir, proxy_config, run_program};

const TIMEOUT: Duration = Duration::from_secs(20);

/// The SDS file's text: the secret `server` with `cert` and `key` as files.
fn sds(cert: &TempFile, key: &TempFile) -> String {
    format!(
        r#"resources:
- "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret
  name: server
  tls_certificate:
    certificate_chain: {{ filename: {} }}
    private_key: {{ filename: {} }}
"#,
        cert.path().display(),
        key.path().display()
    )
}

/// Replaces the file's content at once (a rename, as tools that rotate certificates do).
fn replace(file: &TempFile, text: &str) {
    let next = file.path().with_extension("next");
    std::fs::write(&next, text).expect("write");
    std::fs::rename(&next, file.path()).expect("rename");
}

fn config(origin: SocketAddr, sds_file: &TempFile) -> String {
    let socket = format!(
        r#"    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
            tls_certificate_sds_secret_configs:
            - name: server
              sds_config: {{ path_config_source: {{ path: {} }}, resource_api_version: V3 }}
      filters:
"#,
        sds_file.path().display()
    );
    proxy_config(origin).replacen("    - filters:\n", &socket, 1)
}

/// A keep-alive TLS connection to weir as `name` (verifying against the test CA).
fn tls_client(
    weir: &Weir,
    pki: &Pki,
    name: &str,
) -> StreamOwned<ClientConnection, std::net::TcpStream> {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(pki.ca.path()).expect("CA"))
        .expect("root");
    let config = ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let server_name = ServerName::try_from(name.to_owned()).expect("name");
    let conn = ClientConnection::new(Arc::new(config), server_name).expect("client");
    let tcp = std::net::TcpStream::connect(weir.addr()).expect("connect");
    tcp.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    StreamOwned::new(conn, tcp)
}

/// One request on a kept connection; the status line.
fn request(stream: &mut StreamOwned<ClientConnection, std::net::TcpStream>, host: &str) -> String {
    write!(stream, "GET /local HTTP/1.1\r\nhost: {host}\r\n\r\n").expect("send");
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status).expect("status");
    // `/local` answers `local\n` with a content-length: read the rest of the head and body.
    let mut line = String::new();
    let mut length = 0;
    loop {
        line.clear();
        reader.read_line(&mut line).expect("head");
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().expect("length");
        }
    }
    let mut body = vec![0u8; length];
    std::io::Read::read_exact(&mut reader, &mut body).expect("body");
    status.trim().to_owned()
}

#[test]
fn a_rewritten_sds_file_rotates_the_certificate_and_a_broken_one_is_ignored() {
    let pki = pki();
    let origin = Origin::standard();
    let sds_file = TempFile::new("sds.yaml", sds(&pki.a.0, &pki.a.1));
    let weir = Weir::start(&config(origin.addr, &sds_file), &["--concurrency", "1"]);
    assert!(served(&weir, &pki, "a.test").ends_with("a.test"));
    let mut before = tls_client(&weir, &pki, "a.test");
    assert_eq!(request(&mut before, "a.test"), "HTTP/1.1 200 OK");

    replace(&sds_file, &sds(&pki.b.0, &pki.b.1));
    let deadline = Instant::now() + TIMEOUT;
    while !served(&weir, &pki, "b.test").ends_with("b.test") {
        assert!(Instant::now() < deadline, "the certificate was not rotated");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The connection made before the rotation goes on with its own session.
    assert_eq!(request(&mut before, "a.test"), "HTTP/1.1 200 OK");

    assert!(weir.wait_for_log("secret rotated", TIMEOUT).is_some());

    // A broken file: the last good certificate stays, and the log says why.
    replace(&sds_file, "resources: [ { name: server } ]\n");
    let rejected = weir.wait_for_log("keeping the previous one", TIMEOUT);
    let rejected = rejected.expect("the broken file was not noticed");
    assert!(rejected.contains("has no `tls_certificate`"), "{rejected}");
    assert!(served(&weir, &pki, "b.test").ends_with("b.test"));
    let mut after = tls_client(&weir, &pki, "b.test");
    assert_eq!(request(&mut after, "b.test"), "HTTP/1.1 200 OK");
}

/// Rotation under load: fresh connections to `a.test` one after another while its certificate
/// is renewed through the SDS file. Every request succeeds, the connections saw the old
/// certificate and then the new one, and admin `/certs` shows the new one.
#[test]
fn a_certificate_renewed_under_load_fails_no_request() {
    let pki = pki();
    let origin = Origin::standard();
    let sds_file = TempFile::new("sds.yaml", sds(&pki.a.0, &pki.a.1));
    let weir = Weir::start(&config(origin.addr, &sds_file), &["--concurrency", "1"]);
    let der = |f: &TempFile| {
        CertificateDer::from_pem_file(f.path())
            .expect("cert")
            .to_vec()
    };
    let (old, new) = (der(&pki.a.0), der(&pki.a_renewed.0));
    let done = std::sync::atomic::AtomicBool::new(false);
    let seen = std::thread::scope(|scope| {
        let loader = scope.spawn(|| {
            let mut seen = Vec::new();
            let deadline = Instant::now() + TIMEOUT;
            // Bounded: at most 2,000 connections or TIMEOUT, whichever comes first.
            for _ in 0..2_000 {
                let mut stream = tls_client(&weir, &pki, "a.test");
                assert_eq!(request(&mut stream, "a.test"), "HTTP/1.1 200 OK");
                let peer = stream.conn.peer_certificates().expect("a certificate");
                seen.push(peer[0].to_vec());
                if done.load(std::sync::atomic::Ordering::Acquire) || Instant::now() > deadline {
                    break;
                }
            }
            seen
        });
        std::thread::sleep(Duration::from_millis(300));
        replace(&sds_file, &sds(&pki.a_renewed.0, &pki.a_renewed.1));
        assert!(weir.wait_for_log("secret rotated", TIMEOUT).is_some());
        std::thread::sleep(Duration::from_millis(300));
        done.store(true, std::sync::atomic::Ordering::Release);
        loader.join().expect("loader")
    });
    let first_new = seen
        .iter()
        .position(|c| *c == new)
        .expect("the new certificate served");
    assert!(first_new > 0 && seen[..first_new].iter().all(|c| *c == old));
    assert!(seen[first_new..].iter().all(|c| *c == new), "no going back");

    let url = format!("http://{}/certs", weir.admin);
    let certs = run_program("curl", &["-sS", &url], TIMEOUT).stdout;
    let certs: serde_json::Value = serde_json::from_str(&certs).expect("json");
    let shown = &certs["certificates"][0]["cert_chain"][0];
    let renewed = weir_config::CertInfo::parse(&new).expect("parses");
    assert_eq!(shown["serial_number"], renewed.serial.as_str(), "{certs}");
    assert_eq!(
        shown["subject_alt_names"],
        serde_json::json!([{"dns": "a.test"}])
    );
}

/// The SDS file's text: the secret `ca` with `trusted_ca` as a file.
fn sds_ca(ca: &TempFile) -> String {
    format!(
        r#"resources:
- "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret
  name: ca
  validation_context:
    trusted_ca: {{ filename: {} }}
"#,
        ca.path().display()
    )
}

/// `validation_context_sds_secret_config`: the CA that client certificates must chain to comes
/// from an SDS file; when the file names another CA, clients of the old one are refused and
/// those of the new one accepted, without a restart; `/certs` shows the new CA.
#[test]
fn a_rotated_ca_changes_which_client_certificates_are_accepted() {
    let (old, new) = (pki(), pki());
    let origin = Origin::standard();
    let sds_file = TempFile::new("sds-ca.yaml", sds_ca(&old.ca));
    let socket = format!(
        r#"    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          require_client_certificate: true
          common_tls_context:
            tls_certificates: [ {{ certificate_chain: {{ filename: {} }}, private_key: {{ filename: {} }} }} ]
            validation_context_sds_secret_config:
              name: ca
              sds_config: {{ path_config_source: {{ path: {} }} }}
      filters:
"#,
        old.a.0.path().display(),
        old.a.1.path().display(),
        sds_file.path().display()
    );
    let config = proxy_config(origin.addr).replacen("    - filters:\n", &socket, 1);
    let weir = Weir::start(&config, &["--concurrency", "1"]);
    let curl = |client: &Pki| {
        let port = weir.addr().port();
        let resolve = format!("a.test:{port}:127.0.0.1");
        let url = format!("https://a.test:{port}/local");
        let (ca, cert, key) = (
            old.ca.path().to_str().expect("path").to_owned(),
            client.client.0.path().to_str().expect("path").to_owned(),
            client.client.1.path().to_str().expect("path").to_owned(),
        );
        let args = [
            "-sS",
            "--http1.1",
            "--cacert",
            &ca,
            "--resolve",
            &resolve,
            "--cert",
            &cert,
            "--key",
            &key,
            &url,
        ];
        run_program("curl", &args, TIMEOUT).code() == Some(0)
    };
    assert!(curl(&old), "a client of the configured CA");
    assert!(!curl(&new), "a client of another CA");

    replace(&sds_file, &sds_ca(&new.ca));
    assert!(weir.wait_for_log("secret rotated", TIMEOUT).is_some());
    assert!(curl(&new), "a client of the new CA");
    assert!(!curl(&old), "a client of the old CA, after the rotation");

    let url = format!("http://{}/certs", weir.admin);
    let certs = run_program("curl", &["-sS", &url], TIMEOUT).stdout;
    let certs: serde_json::Value = serde_json::from_str(&certs).expect("json");
    let shown = &certs["certificates"][0]["ca_cert"][0]["path"];
    assert_eq!(shown, new.ca.path().to_str().expect("path"), "{certs}");
}

/// A reload that keeps the TLS chain (only a route changed) leaves its SDS secret watched:
/// rewriting the file afterwards still rotates the certificate served.
#[test]
fn a_secret_still_rotates_after_a_reload_that_kept_its_chain() {
    let pki = pki();
    let origin = Origin::standard();
    let sds_file = TempFile::new("sds.yaml", sds(&pki.a.0, &pki.a.1));
    let text = config(origin.addr, &sds_file);
    let weir = Weir::start(&text, &["--concurrency", "1"]);
    assert!(served(&weir, &pki, "a.test").ends_with("a.test"));
    let routes = text.replace("timeout: 14s", "timeout: 13s");
    assert_ne!(routes, text);
    std::fs::write(weir.config_path(), routes).expect("rewrite");
    let mut admin = support::Client::connect(weir.admin).expect("admin");
    admin
        .send(b"POST /reload HTTP/1.1\r\nhost: a\r\ncontent-length: 0\r\n\r\n")
        .expect("send");
    let reloaded = admin.read_response().expect("a response");
    assert_eq!(reloaded.status(), 200, "{}", reloaded.text());

    replace(&sds_file, &sds(&pki.b.0, &pki.b.1));
    let deadline = Instant::now() + TIMEOUT;
    while !served(&weir, &pki, "b.test").ends_with("b.test") {
        assert!(Instant::now() < deadline, "the certificate was not rotated");
        std::thread::sleep(Duration::from_millis(100));
    }
}
