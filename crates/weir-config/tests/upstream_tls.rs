//! A cluster's `transport_socket` with an `UpstreamTlsContext`: what loads, the warning when
//! the origin is not verified, and every error, each naming its field.

mod support;

use support::{parse_errors, parse_ok};

/// A PEM certificate for `name` and its key, as JSON strings.
fn leaf(name: &str) -> (String, String) {
    let c = rcgen::generate_simple_self_signed(vec![name.to_owned()]).expect("cert");
    (
        serde_json::to_string(&c.cert.pem()).unwrap(),
        serde_json::to_string(&c.signing_key.serialize_pem()).unwrap(),
    )
}

/// A config whose one cluster has `transport_socket: {socket}` (JSON, valid YAML flow).
fn config(socket: &str) -> String {
    format!(
        r#"static_resources:
  clusters:
  - name: origin
    connect_timeout: 1s
    transport_socket: {socket}
    load_assignment:
      cluster_name: origin
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: 8443 }} }} }}
"#
    )
}

/// An UpstreamTlsContext with `context` fields and a common_tls_context of `common` fields.
fn tls(context: &str, common: &str) -> String {
    format!(
        r#"{{ "name": "envoy.transport_sockets.tls", "typed_config": {{ "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext", {context} "common_tls_context": {{ {common} }} }} }}"#
    )
}

const CTX: &str = "static_resources.clusters[0].transport_socket.typed_config";

#[test]
fn a_verified_mtls_context_loads() {
    let (ca, _) = leaf("ca.test");
    let (cert, key) = leaf("client.test");
    let b = parse_ok(&config(&tls(
        r#""sni": "origin.test","#,
        &format!(
            r#""alpn_protocols": ["http/1.1"], "tls_params": {{ "tls_minimum_protocol_version": "TLSv1_3" }}, "validation_context": {{ "trusted_ca": {{ "inline_string": {ca} }} }}, "tls_certificates": [{{ "certificate_chain": {{ "inline_string": {cert} }}, "private_key": {{ "inline_string": {key} }} }}]"#
        ),
    )));
    let tls = b.clusters[0].tls.as_ref().expect("a TLS cluster");
    assert_eq!(tls.sni.as_deref(), Some("origin.test"));
    assert_eq!(tls.client_config.alpn_protocols, vec![b"http/1.1".to_vec()]);
    assert!(tls.client_config.client_auth_cert_resolver.has_certs());
    assert!(b.warnings.is_empty(), "{:?}", b.warnings);
}

#[test]
fn without_a_validation_context_the_origin_is_not_verified_and_weir_says_so() {
    let b = parse_ok(&config(&tls("", "")));
    let tls = b.clusters[0].tls.as_ref().expect("a TLS cluster");
    assert_eq!(tls.sni, None);
    assert!(
        b.warnings
            .iter()
            .any(|w| w.path == CTX && w.message.contains("not verified")),
        "{:?}",
        b.warnings
    );
    // A context with no common_tls_context at all is the same.
    let b = parse_ok(&config(
        r#"{ "name": "envoy.transport_sockets.tls", "typed_config": { "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext" } }"#,
    ));
    assert!(b.clusters[0].tls.is_some());
}

#[test]
fn raw_buffer_is_plaintext_and_h2_is_left_out() {
    let b = parse_ok(&config(
        r#"{ "name": "raw", "typed_config": { "@type": "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer" } }"#,
    ));
    assert!(b.clusters[0].tls.is_none());
    let b = parse_ok(&config(&tls("", r#""alpn_protocols": ["h2", "http/1.1"]"#)));
    let tls = b.clusters[0].tls.as_ref().unwrap();
    assert_eq!(tls.client_config.alpn_protocols, vec![b"http/1.1".to_vec()]);
    assert!(
        b.warnings
            .iter()
            .any(|w| w.path.ends_with("alpn_protocols[0]")),
        "{:?}",
        b.warnings
    );
}

#[test]
fn every_error_names_its_field() {
    let (cert, key) = leaf("client.test");
    let one = format!(
        r#"{{ "certificate_chain": {{ "inline_string": {cert} }}, "private_key": {{ "inline_string": {key} }} }}"#
    );
    let cases = [
        (
            tls(r#""sni": "10.0.0.1","#, ""),
            format!("{CTX}.sni: sni `10.0.0.1` is not a DNS name"),
        ),
        (
            tls(r#""allow_renegotiation": true,"#, ""),
            format!(
                "{CTX}.allow_renegotiation: renegotiation is not supported: weir's TLS (rustls) never renegotiates"
            ),
        ),
        (
            tls(r#""max_session_keys": 2,"#, ""),
            format!("{CTX}.max_session_keys: this Envoy field is not supported by weir yet"),
        ),
        (
            tls("", &format!(r#""tls_certificates": [{one}, {one}]"#)),
            format!(
                "{CTX}.common_tls_context.tls_certificates[1]: an upstream connection presents one client certificate: list at most one"
            ),
        ),
        (
            tls("", r#""alpn_protocols": ["spdy/3"]"#),
            format!(
                "{CTX}.common_tls_context.alpn_protocols[0]: ALPN protocol `spdy/3` is not spoken by weir (it offers http/1.1 and http/1.0)"
            ),
        ),
        (
            tls("", r#""validation_context": {}"#),
            format!("{CTX}.common_tls_context.validation_context.trusted_ca: `trusted_ca` (or `system_root_certs`) is required: the CAs peers' certificates must chain to"),
        ),
        (
            r#"{ "name": "x", "typed_config": { "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext" } }"#.to_owned(),
            "static_resources.clusters[0].transport_socket.typed_config.@type: transport socket type `type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext` is not supported by weir yet (a cluster takes type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext or type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer)".to_owned(),
        ),
    ];
    for (socket, expected) in cases {
        assert_eq!(parse_errors(&config(&socket)), [expected], "{socket}");
    }
}
