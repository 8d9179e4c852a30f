//! `tls_certificate_sds_secret_configs` with a file source: what loads, how a rotation reports,
//! and every error, each naming its field.

mod support;

use std::path::Path;

use support::{parse_errors, parse_ok, tls_listener};
use weir_config::Rotated;

/// A certificate for `name` and its key, written to files in `dir`.
fn leaf(dir: &Path, name: &str) -> (String, String) {
    let c = rcgen::generate_simple_self_signed(vec![name.to_owned()]).expect("cert");
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    std::fs::write(&cert, c.cert.pem()).unwrap();
    std::fs::write(&key, c.signing_key.serialize_pem()).unwrap();
    (cert.display().to_string(), key.display().to_string())
}

fn sds_text(secret: &str, (cert, key): &(String, String)) -> String {
    format!(
        "resources:\n- \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret\n  name: {secret}\n  tls_certificate:\n    certificate_chain: {{ filename: {cert} }}\n    private_key: {{ filename: {key} }}\n"
    )
}

/// A listener whose chain's certificate is the secret `name` at `sds_config`.
fn config(name: &str, sds_config: &str) -> String {
    tls_listener(&format!(
        r#"{{ name: envoy.transport_sockets.tls, typed_config: {{ "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext, common_tls_context: {{ tls_certificate_sds_secret_configs: [ {{ name: {name}, sds_config: {sds_config} }} ] }} }} }}"#
    ))
}

const SECRET: &str = "static_resources.listeners[0].filter_chains[0].transport_socket.typed_config.common_tls_context.tls_certificate_sds_secret_configs[0]";

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("weir-sds-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_file_secret_loads_and_refreshes_when_it_changes() {
    let dir = temp_dir("loads");
    let a = leaf(&dir, "a.test");
    let sds = dir.join("sds.yaml");
    std::fs::write(&sds, sds_text("server", &a)).unwrap();
    let b = parse_ok(&config(
        "server",
        &format!("{{ path_config_source: {{ path: {} }} }}", sds.display()),
    ));
    let rotation = b.listeners[0].filter_chains[0]
        .tls
        .as_ref()
        .and_then(|t| t.rotation.clone())
        .expect("a rotation");
    assert_eq!(rotation.refresh(), []);
    // A new certificate, written in place (the modification time and size change).
    let other = leaf(&dir, "other-name.test");
    std::fs::write(&sds, sds_text("server", &other)).unwrap();
    assert_eq!(
        rotation.refresh(),
        [Rotated::Updated {
            name: "server".into()
        }]
    );
    std::fs::write(&sds, "resources: []\n").unwrap();
    match &rotation.refresh()[..] {
        [Rotated::Rejected { name, why }] => {
            assert_eq!(name, "server");
            assert!(why.contains("no secret named `server`"), "{why}");
        }
        other => panic!("{other:?}"),
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn errors_name_the_secret_config() {
    let dir = temp_dir("errors");
    let a = leaf(&dir, "a.test");
    let sds = dir.join("sds.yaml");
    std::fs::write(&sds, sds_text("server", &a)).unwrap();
    let path = format!("{{ path_config_source: {{ path: {} }} }}", sds.display());
    let missing = dir.join("missing.yaml");
    let cases = [
        (
            config("nope", &path),
            format!(
                "{SECRET}: SDS file {}: : no secret named `nope` in `resources`",
                sds.display()
            ),
        ),
        (
            config("server", &format!("{{ path: {} }}", missing.display())),
            format!(
                "{SECRET}: cannot read the SDS file {}: No such file or directory (os error 2)",
                missing.display()
            ),
        ),
        (
            config("server", "{ ads: {} }"),
            format!("{SECRET}.sds_config.ads: this Envoy field is not supported by weir yet"),
        ),
    ];
    for (yaml, expected) in cases {
        assert_eq!(parse_errors(&yaml), [expected]);
    }
    let _ = std::fs::remove_dir_all(dir);
}
