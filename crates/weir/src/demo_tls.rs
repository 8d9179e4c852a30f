//! The demo's TLS listener: a certificate for `localhost` and 127.0.0.1 made when the demo
//! starts (rcgen), the YAML that serves it, and one request over TLS through it with rustls, so
//! the report shows what was negotiated.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

/// A self-signed certificate (its own trust anchor: `curl --cacert` takes it) and its key.
pub(crate) struct DemoCert {
    pub(crate) cert_pem: String,
    key_pem: String,
}

impl DemoCert {
    pub(crate) fn generate() -> Result<DemoCert, String> {
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let made = rcgen::generate_simple_self_signed(names).map_err(|e| e.to_string())?;
        Ok(DemoCert {
            cert_pem: made.cert.pem(),
            key_pem: made.signing_key.serialize_pem(),
        })
    }

    /// The listener's `transport_socket`, its PEM inline (JSON strings are YAML flow scalars).
    pub(crate) fn transport_socket(&self) -> String {
        let quote = |s: &str| serde_json::to_string(s).unwrap_or_default();
        format!(
            r#"{{ "name": "envoy.transport_sockets.tls", "typed_config": {{ "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext", "common_tls_context": {{ "alpn_protocols": ["http/1.1"], "tls_certificates": [{{ "certificate_chain": {{ "inline_string": {} }}, "private_key": {{ "inline_string": {} }} }}] }} }} }}"#,
            quote(&self.cert_pem),
            quote(&self.key_pem)
        )
    }

    /// Writes the certificate where `curl --cacert` can read it.
    pub(crate) fn write_ca_file(&self) -> std::io::Result<PathBuf> {
        let path = std::env::temp_dir().join(format!("weir-demo-{}.pem", std::process::id()));
        std::fs::write(&path, &self.cert_pem)?;
        Ok(path)
    }
}

/// What one request over TLS saw.
pub(crate) struct Probe {
    pub(crate) status_line: String,
    pub(crate) version: String,
    pub(crate) cipher: String,
}

/// `GET /healthz` over TLS to `proxy` as `localhost`, verifying the demo's certificate.
pub(crate) fn probe(proxy: SocketAddr, cert: &DemoCert) -> Result<Probe, String> {
    let mut roots = RootCertStore::empty();
    let der =
        CertificateDer::from_pem_slice(cert.cert_pem.as_bytes()).map_err(|e| e.to_string())?;
    roots.add(der).map_err(|e| e.to_string())?;
    let config = ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
    let conn = ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    let socket = TcpStream::connect(proxy).map_err(|e| e.to_string())?;
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let mut tls = StreamOwned::new(conn, socket);
    tls.write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut reply = Vec::new();
    // weir closes after `connection: close`; a FIN without close_notify is an error to rustls
    // that changes nothing here: the reply before it is whole.
    let _ = tls.read_to_end(&mut reply);
    let text = String::from_utf8_lossy(&reply);
    let status_line = text.lines().next().unwrap_or_default().to_owned();
    if status_line.is_empty() {
        return Err("no reply over TLS".to_owned());
    }
    let version = match tls.conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_owned(),
        Some(v) => format!("{v:?}"),
        None => "-".to_owned(),
    };
    let cipher = tls
        .conn
        .negotiated_cipher_suite()
        .map_or("-".to_owned(), |s| weir_config::cipher_stat_name(s.suite()));
    Ok(Probe {
        status_line,
        version,
        cipher,
    })
}
