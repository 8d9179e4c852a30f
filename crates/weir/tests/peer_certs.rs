//! Client certificates (mTLS) checked by name and logged, and admin `/certs`, run beside
//! Envoy 1.40 with the same config and certificates: what each client gets, the access-log
//! line of the accepted one (`%DOWNSTREAM_PEER_*%`), the `ssl.*` counters and `/certs` must be
//! the same from both.

mod differential_support;
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use differential_support::{Envoy, envoy_or_skip, free_port};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
    SanType,
};
use support::{TempFile, Weir, run_program};

const CURL_TIMEOUT: Duration = Duration::from_secs(30);

/// What the peer operators print, one per field.
const LOG_FORMAT: &str = "subject=%DOWNSTREAM_PEER_SUBJECT% issuer=%DOWNSTREAM_PEER_ISSUER% uri=%DOWNSTREAM_PEER_URI_SAN% dns=%DOWNSTREAM_PEER_DNS_SAN% ip=%DOWNSTREAM_PEER_IP_SAN% email=%DOWNSTREAM_PEER_EMAIL_SAN% serial=%DOWNSTREAM_PEER_SERIAL% sha256=%DOWNSTREAM_PEER_FINGERPRINT_256% from=%DOWNSTREAM_PEER_CERT_V_START% until=%DOWNSTREAM_PEER_CERT_V_END% version=%DOWNSTREAM_TLS_VERSION%\\n";

/// A CA, the server's certificate for `a.test`, and client certificates with SPIFFE-style
/// URI names (one that the matcher accepts, one it does not).
struct Certs {
    ca: TempFile,
    server: (TempFile, TempFile),
    good: (TempFile, TempFile),
    bad: (TempFile, TempFile),
    /// Another client with a good name, and a CRL of the CA that revokes `good`.
    other: (TempFile, TempFile),
    crl: TempFile,
}

fn certs() -> Certs {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "mesh CA");
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Acme, Inc.");
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA");
    let serials = std::cell::Cell::new(0x1000u64);
    let leaf = |file: &str, cn: &str, sans: Vec<SanType>| {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.subject_alt_names = sans;
        serials.set(serials.get() + 1);
        params.serial_number = Some(rcgen::SerialNumber::from(serials.get()));
        params.distinguished_name.push(DnType::CountryName, "US");
        params.distinguished_name.push(DnType::CommonName, cn);
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &ca).expect("sign");
        (
            TempFile::new(&format!("{file}.crt"), cert.pem()),
            TempFile::new(&format!("{file}.key"), key.serialize_pem()),
        )
    };
    let uri = |u: &str| SanType::URI(u.try_into().expect("uri"));
    Certs {
        server: leaf(
            "peer-server",
            "a.test",
            vec![
                SanType::DnsName("a.test".try_into().expect("dns")),
                SanType::IpAddress("127.0.0.1".parse().expect("ip")),
            ],
        ),
        good: leaf(
            "peer-good",
            "frontend",
            vec![
                uri("spiffe://cluster.local/ns/web/sa/frontend"),
                SanType::DnsName("frontend.web.svc".try_into().expect("dns")),
                SanType::Rfc822Name("ops@a.test".try_into().expect("email")),
            ],
        ),
        bad: leaf(
            "peer-bad",
            "intruder",
            vec![uri("spiffe://elsewhere/ns/web/sa/frontend")],
        ),
        other: leaf(
            "peer-other",
            "backend",
            vec![uri("spiffe://cluster.local/ns/web/sa/backend")],
        ),
        crl: {
            // `good` was the second leaf made (serial 0x1002).
            let crl = rcgen::CertificateRevocationListParams {
                this_update: rcgen::date_time_ymd(2025, 1, 1),
                next_update: rcgen::date_time_ymd(2099, 1, 1),
                crl_number: rcgen::SerialNumber::from(1u64),
                issuing_distribution_point: None,
                revoked_certs: vec![rcgen::RevokedCertParams {
                    serial_number: rcgen::SerialNumber::from(0x1002u64),
                    revocation_time: rcgen::date_time_ymd(2025, 1, 1),
                    reason_code: None,
                    invalidity_date: None,
                }],
                key_identifier_method: rcgen::KeyIdMethod::Sha256,
            }
            .signed_by(&ca)
            .expect("CRL");
            TempFile::new("peer-ca.crl", crl.pem().expect("PEM"))
        },
        ca: TempFile::new("peer-ca.crt", ca.pem()),
    }
}

fn path(f: &TempFile) -> String {
    f.path().display().to_string()
}

/// One TLS listener on `port` requiring a client certificate from the CA with a URI name under
/// `spiffe://cluster.local/`, answering itself and logging the peer operators to `log`.
fn config(certs: &Certs, port: u16, admin: u16, log: &Path) -> String {
    config_with(certs, port, admin, log, "")
}

/// [`config`] with more `validation_context` fields.
fn config_with(certs: &Certs, port: u16, admin: u16, log: &Path, validation: &str) -> String {
    format!(
        r#"admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin} }} }}
static_resources:
  listeners:
  - name: mtls
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          require_client_certificate: true
          common_tls_context:
            tls_certificates:
            - certificate_chain: {{ filename: {server_crt} }}
              private_key: {{ filename: {server_key} }}
            validation_context:
              trusted_ca: {{ filename: {ca} }}{validation}
              match_typed_subject_alt_names:
              - san_type: URI
                matcher: {{ prefix: "spiffe://cluster.local/" }}
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: mtls
          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: {log}
              log_format: {{ text_format_source: {{ inline_string: "{LOG_FORMAT}" }} }}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{ prefix: / }}
                direct_response: {{ status: 200, body: {{ inline_string: "hello\n" }} }}
"#,
        server_crt = path(&certs.server.0),
        server_key = path(&certs.server.1),
        ca = path(&certs.ca),
        log = log.display(),
    )
}

/// curl to `a.test` on `port` with a client certificate (or none): its exit code and body.
fn curl(certs: &Certs, port: u16, client: Option<&(TempFile, TempFile)>) -> (Option<i32>, String) {
    let resolve = format!("a.test:{port}:127.0.0.1");
    let url = format!("https://a.test:{port}/");
    let ca = path(&certs.ca);
    let mut args = vec!["-sS", "--http1.1", "--cacert", &ca, "--resolve", &resolve];
    let (crt, key);
    if let Some((c, k)) = client {
        (crt, key) = (path(c), path(k));
        args.extend_from_slice(&["--cert", &crt, "--key", &key]);
    }
    args.push(&url);
    let ran = run_program("curl", &args, CURL_TIMEOUT);
    (ran.code(), ran.stdout)
}

/// The `listener.127.0.0.1_<port>.ssl.*` counters from an admin, with the port taken out
/// (Envoy's `ssl.sigalgs.*` and `ssl.certificate.*` gauges, which weir lacks, are compared
/// by name below, so they do not count).
fn ssl_counters(admin: u16, port: u16) -> Vec<String> {
    let url = format!("http://127.0.0.1:{admin}/stats");
    let stats = run_program("curl", &["-sS", &url], CURL_TIMEOUT).stdout;
    let prefix = format!("listener.127.0.0.1_{port}.ssl.");
    let mut lines: Vec<String> = stats
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter(|l| !l.starts_with("ciphers.") && !l.starts_with("curves."))
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

fn admin_json(admin: u16, path: &str) -> serde_json::Value {
    let url = format!("http://127.0.0.1:{admin}{path}");
    let body = run_program("curl", &["-sS", &url], CURL_TIMEOUT).stdout;
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

fn first_line(log: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(line) = text.lines().next() {
            return line.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "nothing logged in {}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn client_certificates_are_checked_by_name_logged_and_shown_as_envoy_does() {
    let Some(envoy_bin) = envoy_or_skip() else {
        return;
    };
    let certs = certs();
    let (envoy_port, envoy_admin) = (free_port(), free_port());
    let (weir_port, weir_admin) = (free_port(), free_port());
    let envoy_log = TempFile::unique_path("peer-envoy.log");
    let weir_log = TempFile::unique_path("peer-weir.log");
    let envoy = Envoy::start_with(
        &envoy_bin,
        "peer.yaml",
        &config(&certs, envoy_port, envoy_admin, &envoy_log),
        Some(envoy_admin),
        envoy_port,
        &["--file-flush-interval-msec", "20"],
    );
    let _weir = Weir::start(
        &config(&certs, weir_port, weir_admin, &weir_log),
        &["--concurrency", "1", "--file-flush-interval-msec", "20"],
    );
    let outcome = |port| {
        [Some(&certs.good), Some(&certs.bad), None]
            .map(|client| {
                let (code, body) = curl(&certs, port, client);
                (code == Some(0), body)
            })
            .to_vec()
    };
    let from_envoy = outcome(envoy_port);
    let from_weir = outcome(weir_port);
    assert_eq!(
        from_envoy[0],
        (true, "hello\n".to_owned()),
        "{}",
        envoy.log_text()
    );
    assert!(!from_envoy[1].0 && !from_envoy[2].0);
    assert_eq!(from_weir, from_envoy);

    let (envoy_line, weir_line) = (first_line(&envoy_log), first_line(&weir_log));
    assert!(
        envoy_line.contains("uri=spiffe://cluster.local/ns/web/sa/frontend "),
        "{envoy_line}"
    );
    assert_eq!(weir_line, envoy_line);

    let (envoy_ssl, weir_ssl) = (
        ssl_counters(envoy_admin, envoy_port),
        ssl_counters(weir_admin, weir_port),
    );
    assert!(
        envoy_ssl.contains(&"fail_verify_san: 1".to_owned()),
        "{envoy_ssl:?}"
    );
    for name in [
        "handshake",
        "connection_error",
        "no_certificate",
        "fail_verify_san",
        "fail_verify_error",
        "fail_verify_no_cert",
        "versions.TLSv1.3",
    ] {
        let pick = |lines: &[String]| {
            lines
                .iter()
                .find(|l| l.starts_with(&format!("{name}: ")))
                .cloned()
        };
        assert_eq!(pick(&weir_ssl), pick(&envoy_ssl), "ssl.{name}");
    }

    let envoy_certs = admin_json(envoy_admin, "/certs");
    let weir_certs = admin_json(weir_admin, "/certs");
    assert_eq!(
        envoy_certs["certificates"][0]["cert_chain"][0]["subject_alt_names"],
        serde_json::json!([{"dns": "a.test"}, {"ip_address": "127.0.0.1"}])
    );
    assert_eq!(weir_certs, envoy_certs);
}

/// `validation_context.crl`: a client whose certificate the CA's CRL revokes is refused, one it
/// does not is accepted, by Envoy and weir alike, and counted the same way.
#[test]
fn a_revoked_client_certificate_is_refused_as_envoy_refuses_it() {
    let Some(envoy_bin) = envoy_or_skip() else {
        return;
    };
    let certs = certs();
    let crl = format!("\n              crl: {{ filename: {} }}", path(&certs.crl));
    let (envoy_port, envoy_admin) = (free_port(), free_port());
    let (weir_port, weir_admin) = (free_port(), free_port());
    let envoy_log = TempFile::unique_path("crl-envoy.log");
    let weir_log = TempFile::unique_path("crl-weir.log");
    let _envoy = Envoy::start(
        &envoy_bin,
        "crl.yaml",
        &config_with(&certs, envoy_port, envoy_admin, &envoy_log, &crl),
        Some(envoy_admin),
        envoy_port,
    );
    let _weir = Weir::start(
        &config_with(&certs, weir_port, weir_admin, &weir_log, &crl),
        &["--concurrency", "1"],
    );
    let outcome = |port| {
        [Some(&certs.good), Some(&certs.other)]
            .map(|client| curl(&certs, port, client).0 == Some(0))
            .to_vec()
    };
    assert_eq!(outcome(envoy_port), [false, true]);
    assert_eq!(outcome(weir_port), [false, true]);
    for name in ["handshake", "fail_verify_error", "connection_error"] {
        let pick = |lines: Vec<String>| {
            lines
                .into_iter()
                .find(|l| l.starts_with(&format!("{name}: ")))
        };
        assert_eq!(
            pick(ssl_counters(weir_admin, weir_port)),
            pick(ssl_counters(envoy_admin, envoy_port)),
            "ssl.{name}"
        );
    }
}
