//! A real TLS origin: nginx (OpenSSL) terminating TLS with certificates rcgen made for the test,
//! and weir speaking TLS to it from a cluster's `UpstreamTlsContext`. A trusted certificate is
//! reached with the SNI weir sends; an expired one and one from another CA are refused with
//! 503 `UF` and counted as Envoy counts them (`ssl.fail_verify_error`).
//!
//! Without nginx installed the test skips, unless `WEIR_REQUIRE_PROXIES=1` (CI's), when it
//! fails instead.

mod support;

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use support::{Client, TempFile, Weir, proxy_config, run_program};

const REQUIRE_PROXIES: &str = "WEIR_REQUIRE_PROXIES";

/// A CA and a leaf for `a.test` it signed (valid now, or expired when `expired`), as files.
struct Issued {
    ca: TempFile,
    cert: TempFile,
    key: TempFile,
}

fn issue(expired: bool) -> Issued {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "origin CA");
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA");
    let mut params = CertificateParams::new(vec!["a.test".to_owned()]).expect("params");
    if expired {
        params.not_before = rcgen::date_time_ymd(2019, 1, 1);
        params.not_after = rcgen::date_time_ymd(2020, 1, 1);
    }
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, &ca).expect("sign");
    Issued {
        ca: TempFile::new("origin-ca.crt", ca.pem()),
        cert: TempFile::new("origin.crt", cert.pem()),
        key: TempFile::new("origin.key", key.serialize_pem()),
    }
}

/// nginx with one TLS server per certificate, each on its own port; killed on drop.
struct Nginx {
    child: Child,
    ports: Vec<u16>,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a port")
        .port()
}

impl Nginx {
    fn start(certs: &[&Issued]) -> Nginx {
        let dir = TempFile::unique_path("nginx-tls");
        std::fs::create_dir_all(&dir).expect("dir");
        let d = dir.display();
        let ports: Vec<u16> = certs.iter().map(|_| free_port()).collect();
        let servers: String = certs
            .iter()
            .zip(&ports)
            .map(|(c, port)| {
                format!(
                    r#"    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {};
        ssl_certificate_key {};
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {{ return 200 "nginx over $ssl_protocol for $ssl_server_name\n"; }}
    }}
"#,
                    c.cert.path().display(),
                    c.key.path().display()
                )
            })
            .collect();
        let config = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\nerror_log {d}/error.log;\npid {d}/nginx.pid;\nevents {{ worker_connections 64; }}\nhttp {{\n    access_log off;\n    client_body_temp_path {d}/client_body;\n    proxy_temp_path {d}/proxy;\n    fastcgi_temp_path {d}/fastcgi;\n    uwsgi_temp_path {d}/uwsgi;\n    scgi_temp_path {d}/scgi;\n{servers}}}\n"
        );
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, config).expect("nginx.conf");
        let child = Command::new("nginx")
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nginx");
        let nginx = Nginx {
            child,
            ports,
            _dir: TempDir(dir.clone()),
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        for port in &nginx.ports {
            while TcpStream::connect(("127.0.0.1", *port)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "nginx did not listen: {}",
                    std::fs::read_to_string(Path::new(&dir).join("error.log")).unwrap_or_default()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        nginx
    }
}

/// weir in front of `origin` over TLS, trusting `ca`, sending SNI `a.test`.
fn front(origin: SocketAddr, ca: &TempFile) -> Weir {
    let socket = format!(
        r#"    transport_socket: {{ name: envoy.transport_sockets.tls, typed_config: {{ "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext, sni: a.test, common_tls_context: {{ validation_context: {{ trusted_ca: {{ filename: {} }} }} }} }} }}
"#,
        ca.path().display()
    );
    let anchor = "    connect_timeout: 2s\n";
    let config = proxy_config(origin).replacen(anchor, &format!("{anchor}{socket}"), 1);
    Weir::start(&config, &["--concurrency", "1"])
}

fn stat(weir: &Weir, name: &str) -> u64 {
    let url = format!("http://{}/stats", weir.admin);
    let stats = run_program("curl", &["-sS", &url], Duration::from_secs(30)).stdout;
    let name = format!("{name}: ");
    stats
        .lines()
        .find_map(|l| l.strip_prefix(&name))
        .map_or(0, |v| v.trim().parse().expect("a number"))
}

#[test]
fn nginx_is_reached_over_tls_and_its_bad_certificates_are_refused() {
    if run_program("nginx", &["-v"], Duration::from_secs(10))
        .code()
        .is_none()
    {
        if std::env::var(REQUIRE_PROXIES).is_ok_and(|v| v == "1") {
            panic!("{REQUIRE_PROXIES}=1, but nginx is not installed");
        }
        println!("skipped: nginx is not installed");
        return;
    }
    let (good, expired, other) = (issue(false), issue(true), issue(false));
    let nginx = Nginx::start(&[&good, &expired]);
    let at = |i: usize| SocketAddr::from(([127, 0, 0, 1], nginx.ports[i]));

    let weir = front(at(0), &good.ca);
    let mut client = Client::connect(weir.addr()).expect("connect");
    for _ in 0..3 {
        let response = client.get("/tls").expect("response");
        assert_eq!(response.status(), 200);
        let text = response.text();
        assert!(text.starts_with("nginx over TLSv1.3 for a.test"), "{text}");
    }
    // One handshake, then the pooled connection.
    assert_eq!(stat(&weir, "cluster.origin.ssl.handshake"), 1);

    for (origin, ca) in [(at(1), &expired.ca), (at(0), &other.ca)] {
        let weir = front(origin, ca);
        let mut client = Client::connect(weir.addr()).expect("connect");
        let response = client.get("/tls").expect("response");
        assert_eq!(response.status(), 503, "{}", response.text());
        assert_eq!(stat(&weir, "cluster.origin.ssl.fail_verify_error"), 1);
        assert_eq!(stat(&weir, "cluster.origin.ssl.handshake"), 0);
    }
}
