//! Certificates made by rcgen when the tests run: an ECDSA P-256 CA, leaf certificates for
//! `a.test` and `b.test`, and a client certificate for mTLS.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

use std::net::SocketAddr;

use super::{TempFile, Weir, proxy_config, run_program};

/// A CA and what it signed, as PEM files.
pub(crate) struct Pki {
    pub(crate) ca: TempFile,
    /// (certificate, key) for `a.test`, `b.test`, and a client.
    pub(crate) a: (TempFile, TempFile),
    pub(crate) b: (TempFile, TempFile),
    pub(crate) client: (TempFile, TempFile),
    /// Another certificate and key for `a.test` (a renewal, for rotation tests).
    pub(crate) a_renewed: (TempFile, TempFile),
}

pub(crate) fn pki() -> Pki {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "weir test CA");
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA");
    let leaf = |name: &str| {
        let mut params = CertificateParams::new(vec![name.to_owned()]).expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &ca).expect("sign");
        (
            TempFile::new(&format!("{name}.crt"), cert.pem()),
            TempFile::new(&format!("{name}.key"), key.serialize_pem()),
        )
    };
    Pki {
        a: leaf("a.test"),
        b: leaf("b.test"),
        client: leaf("client.test"),
        a_renewed: leaf("a.test"),
        ca: TempFile::new("ca.crt", ca.pem()),
    }
}

/// `proxy_config` with its listener terminating TLS with `a.test` (first, the default) and
/// `b.test`, `extra` added to the DownstreamTlsContext and `common` to its
/// common_tls_context; and a route that answers `/proto` itself when the request's
/// `x-forwarded-proto` and `:scheme` are `https`.
pub(crate) fn tls_config(origin: SocketAddr, pki: &Pki, extra: &str, common: &str) -> String {
    let cert = |(c, k): &(TempFile, TempFile)| {
        format!(
            "\n            - certificate_chain: {{ filename: {} }}\n              private_key: {{ filename: {} }}",
            c.path().display(),
            k.path().display()
        )
    };
    let socket = format!(
        r#"    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext{extra}
          common_tls_context:{common}
            alpn_protocols: [h2, http/1.1]
            tls_certificates:{}{}
      filters:
"#,
        cert(&pki.a),
        cert(&pki.b)
    );
    let route = "              - match: { path: /local }";
    let proto = "              - match: { path: /proto, headers: [{ name: x-forwarded-proto, string_match: { exact: https } }, { name: \":scheme\", string_match: { exact: https } }] }\n                direct_response: { status: 200, body: { inline_string: \"https\\n\" } }\n";
    let config = proxy_config(origin);
    assert!(config.contains("    - filters:\n") && config.contains(route));
    config
        .replacen("    - filters:\n", &socket, 1)
        .replacen(route, &format!("{proto}{route}"), 1)
}

/// The subject of the certificate weir serves for SNI `name`.
pub(crate) fn served(weir: &Weir, pki: &Pki, name: &str) -> String {
    let addr = weir.addr().to_string();
    let ca = pki.ca.path().to_str().expect("path").to_owned();
    let args = [
        "s_client",
        "-connect",
        &addr,
        "-CAfile",
        &ca,
        "-servername",
        name,
    ];
    let ran = run_program("openssl", &args, std::time::Duration::from_secs(20));
    ran.stdout
        .lines()
        .find(|l| l.starts_with("subject="))
        .unwrap_or_else(|| panic!("no subject: {ran}"))
        .to_owned()
}
