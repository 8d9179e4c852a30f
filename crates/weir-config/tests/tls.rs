//! `transport_socket` with a `DownstreamTlsContext`: what loads, and every error path, each
//! naming its field. Certificates are made by rcgen when the tests run.

mod support;

use support::{parse_errors, parse_ok, tls_listener as config};

/// A PEM certificate for `name` and its key.
fn leaf(name: &str) -> (String, String) {
    let c = rcgen::generate_simple_self_signed(vec![name.to_owned()]).expect("cert");
    (c.cert.pem(), c.signing_key.serialize_pem())
}

/// A DownstreamTlsContext (JSON, valid YAML flow) with `context` fields and a
/// common_tls_context holding the `a.test` certificate inline plus `common` fields.
fn tls(context: &str, common: &str) -> String {
    let (cert, key) = leaf("a.test");
    let cert = serde_json::to_string(&cert).unwrap();
    let key = serde_json::to_string(&key).unwrap();
    format!(
        r#"{{ "name": "envoy.transport_sockets.tls", "typed_config": {{ "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext", {context} "common_tls_context": {{ {common} "tls_certificates": [{{ "certificate_chain": {{ "inline_string": {cert} }}, "private_key": {{ "inline_string": {key} }} }}] }} }} }}"#
    )
}

const CHAIN: &str = "static_resources.listeners[0].filter_chains[0].transport_socket";
const CTX: &str = "static_resources.listeners[0].filter_chains[0].transport_socket.typed_config";

#[test]
fn a_tls_chain_loads_with_its_certificate() {
    let b = parse_ok(&config(&tls(
        r#""require_sni": false,"#,
        r#""alpn_protocols": ["http/1.1"], "tls_params": { "tls_minimum_protocol_version": "TLSv1_2", "tls_maximum_protocol_version": "TLSv1_3", "cipher_suites": ["[ECDHE-ECDSA-AES128-GCM-SHA256|ECDHE-ECDSA-CHACHA20-POLY1305]", "ECDHE-RSA-AES256-GCM-SHA384"], "ecdh_curves": ["X25519", "P-256"] },"#,
    )));
    let chain = &b.listeners[0].filter_chains[0];
    let context = chain.tls.as_ref().expect("a TLS chain");
    assert_eq!(
        context.server_config.alpn_protocols,
        vec![b"http/1.1".to_vec()]
    );
    assert!(!context.require_client_certificate);
}

#[test]
fn raw_buffer_is_plaintext() {
    let b = parse_ok(&config(
        r#"{ name: raw, typed_config: { "@type": type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer } }"#,
    ));
    assert!(b.listeners[0].filter_chains[0].tls.is_none());
}

#[test]
fn h2_is_left_out_of_alpn_with_a_warning_and_alone_is_an_error() {
    let b = parse_ok(&config(&tls(
        "",
        r#""alpn_protocols": ["h2", "http/1.1"],"#,
    )));
    let context = b.listeners[0].filter_chains[0].tls.as_ref().unwrap();
    assert_eq!(
        context.server_config.alpn_protocols,
        vec![b"http/1.1".to_vec()]
    );
    assert!(
        b.warnings
            .iter()
            .any(|w| w.path.ends_with("alpn_protocols[0]") && w.message.contains("HTTP/1.1 only")),
        "{:?}",
        b.warnings
    );
    let e = parse_errors(&config(&tls("", r#""alpn_protocols": ["h2"],"#)));
    assert_eq!(
        e,
        [format!(
            "{CTX}.common_tls_context: alpn_protocols lists no protocol weir speaks: add http/1.1"
        )]
    );
    let e = parse_errors(&config(&tls("", r#""alpn_protocols": ["spdy/3"],"#)));
    assert_eq!(
        e,
        [format!(
            "{CTX}.common_tls_context.alpn_protocols[0]: ALPN protocol `spdy/3` is not spoken by weir (it offers http/1.1 and http/1.0)"
        )]
    );
}

#[test]
fn every_error_names_its_field() {
    let cases: Vec<(String, String)> = vec![
        (
            tls(
                "",
                r#""tls_params": { "tls_minimum_protocol_version": "TLSv1_1" },"#,
            ),
            format!(
                "{CTX}.common_tls_context.tls_params.tls_minimum_protocol_version: TLSv1_1 is not supported: weir's TLS (rustls) speaks TLS 1.2 and 1.3 only"
            ),
        ),
        (
            tls(
                "",
                r#""tls_params": { "tls_minimum_protocol_version": "TLSv1_3", "tls_maximum_protocol_version": "TLSv1_2" },"#,
            ),
            format!(
                "{CTX}.common_tls_context.tls_params: tls_minimum_protocol_version is above tls_maximum_protocol_version"
            ),
        ),
        (
            tls("", r#""tls_params": { "cipher_suites": ["AES128-SHA"] },"#),
            format!(
                "{CTX}.common_tls_context.tls_params.cipher_suites[0]: cipher suite `AES128-SHA` is not supported by weir (rustls has no such cipher suite)"
            ),
        ),
        (
            tls("", r#""tls_params": { "ecdh_curves": ["P-224"] },"#),
            format!(
                "{CTX}.common_tls_context.tls_params.ecdh_curves[0]: curve `P-224` is not supported by weir (rustls has no such curve)"
            ),
        ),
        (
            tls(
                "",
                r#""tls_params": { "signature_algorithms": ["ecdsa_secp256r1_sha256"] },"#,
            ),
            format!(
                "{CTX}.common_tls_context.tls_params.signature_algorithms: this Envoy field is not supported by weir yet"
            ),
        ),
        (
            tls(r#""session_ticket_keys_sds_secret_config": {},"#, ""),
            format!(
                "{CTX}.session_ticket_keys_sds_secret_config: this Envoy field is not supported by weir yet"
            ),
        ),
        (
            tls(
                r#""session_ticket_keys": { "keys": [ { "inline_string": "too short" } ] },"#,
                "",
            ),
            format!(
                "{CTX}.session_ticket_keys.keys[0]: a session ticket key is 80 bytes (Envoy's format: name, HMAC secret, AES key); this one is 9"
            ),
        ),
        (
            tls("", r#""key_log": {},"#),
            format!(
                "{CTX}.common_tls_context.key_log: this Envoy field is not supported by weir yet"
            ),
        ),
        (
            tls(r#""require_client_certificate": true,"#, ""),
            format!(
                "{CTX}.require_client_certificate: needs common_tls_context.validation_context.trusted_ca: weir verifies client certificates against it"
            ),
        ),
    ];
    for (socket, want) in cases {
        assert_eq!(parse_errors(&config(&socket)), [want]);
    }
    // Everything wrong is reported in one run.
    let socket = tls(
        "",
        r#""validation_context": { "trusted_ca": { "inline_string": "not PEM" }, "crl": { "inline_string": "x" } },"#,
    );
    assert_eq!(
        parse_errors(&config(&socket)),
        [
            format!(
                "{CTX}.common_tls_context.validation_context.trusted_ca: no certificate (-----BEGIN CERTIFICATE-----) in this PEM"
            ),
            format!(
                "{CTX}.common_tls_context.validation_context.crl: no CRL (-----BEGIN X509 CRL-----) in this PEM"
            ),
        ]
    );
}

#[test]
fn unreadable_files_bad_pem_and_mismatched_keys_are_errors_naming_the_path() {
    let (cert, _) = leaf("a.test");
    let (_, other_key) = leaf("b.test");
    let source = |s: &str| serde_json::to_string(s).unwrap();
    let socket = |chain: &str, key: &str| {
        format!(
            r#"{{ "name": "tls", "typed_config": {{ "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext", "common_tls_context": {{ "tls_certificates": [{{ "certificate_chain": {chain}, "private_key": {key} }}] }} }} }}"#
        )
    };
    let cert_path = format!("{CTX}.common_tls_context.tls_certificates[0]");
    let e = parse_errors(&config(&socket(
        r#"{ "filename": "/nonexistent/weir/cert.pem" }"#,
        &format!(r#"{{ "inline_string": {} }}"#, source(&other_key)),
    )));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with(&format!(
            "{cert_path}.certificate_chain.filename: cannot read /nonexistent/weir/cert.pem"
        )),
        "{e:?}"
    );
    let e = parse_errors(&config(&socket(
        r#"{ "inline_string": "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n" }"#,
        &format!(r#"{{ "inline_string": {} }}"#, source(&other_key)),
    )));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with(&format!("{cert_path}.certificate_chain: bad PEM")),
        "{e:?}"
    );
    let e = parse_errors(&config(&socket(
        &format!(r#"{{ "inline_string": {} }}"#, source(&cert)),
        r#"{ "inline_string": "no key here" }"#,
    )));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with(&format!("{cert_path}.private_key: no private key")),
        "{e:?}"
    );
    let e = parse_errors(&config(&socket(
        &format!(r#"{{ "inline_string": {} }}"#, source(&cert)),
        &format!(r#"{{ "inline_string": {} }}"#, source(&other_key)),
    )));
    assert_eq!(
        e,
        [format!(
            "{cert_path}: the private key does not match the certificate"
        )]
    );
    let e = parse_errors(&config(&socket(
        &format!(
            r#"{{ "inline_string": {}, "filename": "/x" }}"#,
            source(&cert)
        ),
        r#"{ "environment_variable": "KEY" }"#,
    )));
    assert_eq!(
        e,
        [
            format!(
                "{cert_path}.certificate_chain: exactly one of `filename`, `inline_string` and `inline_bytes` is required"
            ),
            format!(
                "{cert_path}.private_key.environment_variable: this Envoy field is not supported by weir yet"
            ),
            format!(
                "{cert_path}.private_key: exactly one of `filename`, `inline_string` and `inline_bytes` is required"
            ),
        ]
    );
}

#[test]
fn other_transport_sockets_and_a_missing_certificate_are_errors() {
    let e = parse_errors(&config(
        r#"{ name: alts, typed_config: { "@type": type.googleapis.com/envoy.extensions.transport_sockets.alts.v3.Alts } }"#,
    ));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with(&format!(
            "{CHAIN}.typed_config.@type: transport socket type"
        )),
        "{e:?}"
    );
    let e = parse_errors(&config(
        r#"{ name: tls, typed_config: { "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext, common_tls_context: {} } }"#,
    ));
    assert_eq!(
        e,
        [format!(
            "{CTX}.common_tls_context.tls_certificates: a TLS listener needs at least one certificate in `tls_certificates` or `tls_certificate_sds_secret_configs`"
        )]
    );
}
