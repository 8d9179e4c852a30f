//! OCSP stapling (`tls_certificates[].ocsp_staple`, `ocsp_staple_policy`): a response made by
//! `openssl ocsp` for the test's certificate is stapled to the handshakes of clients that ask
//! (`openssl s_client -status`); a response about another certificate, and `MUST_STAPLE`
//! without a response, are config errors naming the field.

mod support;

use std::path::Path;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use support::{Origin, TempFile, Weir, proxy_config, run_program, run_weir};

const TIMEOUT: Duration = Duration::from_secs(30);

/// A CA (certificate and key) and two leaves for `a.test` it signed, as files.
struct Pki {
    ca: TempFile,
    ca_key: TempFile,
    leaves: Vec<(TempFile, TempFile, String)>,
}

fn pki() -> Pki {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "ocsp CA");
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate().expect("key");
    let ca_key_pem = ca_key.serialize_pem();
    let ca = CertifiedIssuer::self_signed(params, ca_key).expect("CA");
    let leaves = (0..2)
        .map(|_| {
            let mut params = CertificateParams::new(vec!["a.test".to_owned()]).expect("params");
            params.distinguished_name.push(DnType::CommonName, "a.test");
            let key = KeyPair::generate().expect("key");
            let cert = params.signed_by(&key, &ca).expect("sign");
            let serial = weir_config::CertInfo::parse(cert.der())
                .expect("parses")
                .serial;
            (
                TempFile::new("ocsp-leaf.crt", cert.pem()),
                TempFile::new("ocsp-leaf.key", key.serialize_pem()),
                serial,
            )
        })
        .collect();
    Pki {
        ca: TempFile::new("ocsp-ca.crt", ca.pem()),
        ca_key: TempFile::new("ocsp-ca.key", ca_key_pem),
        leaves,
    }
}

fn path(f: &TempFile) -> String {
    f.path().display().to_string()
}

/// `openssl ocsp` as a responder: a `good` response for leaf `i`, valid for a day.
fn ocsp_response(pki: &Pki, i: usize) -> TempFile {
    let (leaf, _, serial) = &pki.leaves[i];
    let index = TempFile::new(
        "ocsp-index.txt",
        format!(
            "V\t491231235959Z\t\t{}\tunknown\t/CN=a.test\n",
            serial.to_ascii_uppercase()
        ),
    );
    let request = TempFile::unique_path("ocsp-req.der");
    let response = TempFile::unique_path("ocsp-resp.der");
    let (request_s, response_s) = (
        request.display().to_string(),
        response.display().to_string(),
    );
    let ran = run_program(
        "openssl",
        &[
            "ocsp",
            "-issuer",
            &path(&pki.ca),
            "-cert",
            &path(leaf),
            "-reqout",
            &request_s,
            "-no_nonce",
        ],
        TIMEOUT,
    );
    assert_eq!(ran.code(), Some(0), "{ran}");
    let ran = run_program(
        "openssl",
        &[
            "ocsp",
            "-index",
            &path(&index),
            "-rsigner",
            &path(&pki.ca),
            "-rkey",
            &path(&pki.ca_key),
            "-CA",
            &path(&pki.ca),
            "-reqin",
            &request_s,
            "-respout",
            &response_s,
            "-ndays",
            "1",
        ],
        TIMEOUT,
    );
    assert_eq!(ran.code(), Some(0), "{ran}");
    let der = std::fs::read(&response).expect("response");
    let _ = std::fs::remove_file(&request);
    let _ = std::fs::remove_file(&response);
    TempFile::new("ocsp-resp.der", der)
}

/// A TLS listener serving leaf 0 with `staple` (if any) under `policy` (if any).
fn config(pki: &Pki, staple: Option<&Path>, policy: Option<&str>) -> String {
    let (cert, key, _) = &pki.leaves[0];
    let staple = staple
        .map(|p| format!(", ocsp_staple: {{ filename: {} }}", p.display()))
        .unwrap_or_default();
    let policy = policy
        .map(|p| format!("\n          ocsp_staple_policy: {p}"))
        .unwrap_or_default();
    let socket = format!(
        r#"    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext{policy}
          common_tls_context:
            tls_certificates: [ {{ certificate_chain: {{ filename: {} }}, private_key: {{ filename: {} }}{staple} }} ]
      filters:
"#,
        path(cert),
        path(key)
    );
    proxy_config("127.0.0.1:9".parse().expect("addr")).replacen("    - filters:\n", &socket, 1)
}

#[test]
fn a_staple_is_sent_to_clients_that_ask_and_a_wrong_one_is_refused() {
    let pki = pki();
    let good = ocsp_response(&pki, 0);
    let origin = Origin::standard();
    let served = config(&pki, Some(good.path()), Some("STRICT_STAPLING")).replace(
        "127.0.0.1, port_value: 9 }",
        &format!("127.0.0.1, port_value: {} }}", origin.addr.port()),
    );
    let weir = Weir::start(&served, &["--concurrency", "1"]);
    let addr = weir.addr().to_string();
    let ca = path(&pki.ca);
    let ran = run_program(
        "openssl",
        &[
            "s_client",
            "-connect",
            &addr,
            "-servername",
            "a.test",
            "-CAfile",
            &ca,
            "-status",
        ],
        TIMEOUT,
    );
    assert!(
        ran.stdout.contains("OCSP Response Status: successful"),
        "{ran}"
    );
    assert!(ran.stdout.contains("Cert Status: good"), "{ran}");

    // A response about the other certificate: refused when the config is read.
    let other = ocsp_response(&pki, 1);
    let file = TempFile::new("ocsp-bad.yaml", config(&pki, Some(other.path()), None));
    let ran = run_weir(&["validate", "-c", &path(&file)], TIMEOUT);
    assert_ne!(ran.code(), Some(0));
    assert!(
        ran.stderr.contains(
            "tls_certificates[0].ocsp_staple: the OCSP response is not about this certificate"
        ),
        "{ran}"
    );
    // MUST_STAPLE and no response.
    let file = TempFile::new("ocsp-must.yaml", config(&pki, None, Some("MUST_STAPLE")));
    let ran = run_weir(&["validate", "-c", &path(&file)], TIMEOUT);
    assert_ne!(ran.code(), Some(0));
    assert!(
        ran.stderr
            .contains("MUST_STAPLE: this certificate has no ocsp_staple"),
        "{ran}"
    );
}
