//! A filter chain's `transport_socket`: `envoy.transport_sockets.tls` with a
//! `DownstreamTlsContext` (TLS terminated by weir, with rustls), or `raw_buffer` (plaintext).
//!
//! Certificates and keys are read and checked here, when the config is read, so that an
//! unreadable file, bad PEM or a key that does not match its certificate is an error naming
//! its path before anything listens. What this module makes is a ready rustls server config
//! ([`crate::model::DownstreamTls`]); [`crate::tls_build`] holds the rustls side.

use std::sync::{Arc, RwLock};

use rustls::server::danger::ClientCertVerifier;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

use crate::listener::{named_typed_config, type_name};
use crate::model::{CertSource, DownstreamTls, SharedCa, TlsCerts};
use crate::ocsp::OcspPolicy;
use crate::reader::{Cx, Field, Obj, join};
use crate::route::base64_decode;
use crate::san_matcher::{SanMatcher, san_matchers};
use crate::sds::{
    CertRotation, Reverify, SdsSource, Secret, Wanted, named_files, sds_secret_config,
};
use crate::tickets::{self, Resumption};
use crate::tls_build::{self, Certificate, ServerSettings, TlsParams, Versions};
use crate::verify::{SwapClient, client_verifier};

/// The `@type` of a downstream TLS transport socket.
pub(crate) const DOWNSTREAM_TLS_TYPE: &str =
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext";
/// The `@type` of the plaintext transport socket (what a chain without one uses).
pub(crate) const RAW_BUFFER_TYPE: &str =
    "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer";

/// `DownstreamTlsContext` fields weir does not support yet.
const DOWNSTREAM_TLS_ENVOY: &[&str] = &[
    "session_ticket_keys_sds_secret_config",
    "full_scan_certs_on_sni_mismatch",
    "prefer_client_ciphers",
];

/// `CommonTlsContext` fields weir does not support yet.
pub(crate) const COMMON_TLS_ENVOY: &[&str] = &[
    "tls_certificate_provider_instance",
    "custom_tls_certificate_selector",
    "tls_certificate_certificate_provider",
    "tls_certificate_certificate_provider_instance",
    "combined_validation_context",
    "validation_context_certificate_provider",
    "validation_context_certificate_provider_instance",
    "custom_handshaker",
    "key_log",
];

/// `TlsCertificate` fields weir does not support yet.
const TLS_CERTIFICATE_ENVOY: &[&str] = &[
    "pkcs12",
    "watched_directory",
    "private_key_provider",
    "password",
    "signed_certificate_timestamp",
    "tls_params",
];

/// `TlsParameters` fields weir does not support yet.
const TLS_PARAMS_ENVOY: &[&str] = &["signature_algorithms", "compliance_policies"];

/// `CertificateValidationContext` fields weir does not support yet.
const VALIDATION_ENVOY: &[&str] = &[
    "ca_certificate_provider_instance",
    "watched_directory",
    "verify_certificate_spki",
    "verify_certificate_hash",
    "match_subject_alt_names",
    "require_signed_certificate_timestamp",
    "allow_expired_certificate",
    "trust_chain_verification",
    "custom_validator_config",
    "max_verify_depth",
    "suppress_client_ca_list",
];

/// `DataSource` fields a certificate or key may not use yet.
const PEM_SOURCE_ENVOY: &[&str] = &["environment_variable", "watched_directory"];

/// `TlsParameters.TlsProtocol`, by name and number.
const TLS_PROTOCOLS: &[(&str, u64)] = &[
    ("TLS_AUTO", 0),
    ("TLSv1_0", 1),
    ("TLSv1_1", 2),
    ("TLSv1_2", 3),
    ("TLSv1_3", 4),
];

/// A filter chain's `transport_socket`: `Some(None)` for plaintext (`raw_buffer`),
/// `Some(Some(tls))` for TLS, `None` after an error.
pub(crate) fn transport_socket(cx: &mut Cx, f: &Field<'_>) -> Option<Option<DownstreamTls>> {
    let (name, typed) = named_typed_config(cx, f, &[], "transport socket", DOWNSTREAM_TLS_TYPE)?;
    let read = match type_name(&typed.url) {
        t if t == type_name(DOWNSTREAM_TLS_TYPE) => {
            downstream_tls_context(cx, &typed.message).map(Some)
        }
        t if t == type_name(RAW_BUFFER_TYPE) => Obj::new(cx, &typed.message, &[]).map(|mut o| {
            o.get(cx, "@type");
            o.finish(cx);
            None
        }),
        _ => {
            cx.error(
                &typed.url_path,
                format!(
                    "transport socket type `{}` is not supported by weir yet (weir supports {DOWNSTREAM_TLS_TYPE} and {RAW_BUFFER_TYPE})",
                    typed.url
                ),
            );
            None
        }
    };
    name?;
    read
}

/// `DownstreamTlsContext`.
fn downstream_tls_context(cx: &mut Cx, f: &Field<'_>) -> Option<DownstreamTls> {
    let mut o = Obj::new(cx, f, DOWNSTREAM_TLS_ENVOY)?;
    o.get(cx, "@type");
    let require_client_certificate = o.flag(cx, "require_client_certificate");
    let require_sni = o.flag(cx, "require_sni");
    let resumption = resumption(cx, &mut o);
    let ocsp_policy = match o.get(cx, "ocsp_staple_policy") {
        Some(p) => p.string(cx).and_then(|name| match name.as_str() {
            "LENIENT_STAPLING" => Some(OcspPolicy::Lenient),
            "STRICT_STAPLING" => Some(OcspPolicy::Strict),
            "MUST_STAPLE" => Some(OcspPolicy::MustStaple),
            other => {
                cx.error(
                    &p.path,
                    format!("unknown ocsp_staple_policy `{other}` (LENIENT_STAPLING, STRICT_STAPLING, MUST_STAPLE)"),
                );
                None
            }
        }),
        None => Some(OcspPolicy::default()),
    };
    let common_field = o.get(cx, "common_tls_context");
    let common = match &common_field {
        Some(c) => common_tls_context(cx, c),
        None => {
            cx.error(
                &join(&f.path, "common_tls_context"),
                "`common_tls_context` with at least one of `tls_certificates` is required",
            );
            None
        }
    };
    o.finish(cx);
    let (common, require_client_certificate, require_sni, resumption, ocsp_policy) = (
        common?,
        require_client_certificate?,
        require_sni?,
        resumption?,
        ocsp_policy?,
    );
    let shown_ca: SharedCa = Arc::new(RwLock::new(
        common.validation.as_ref().map(Validation::shown),
    ));
    if common.validation.is_none() && require_client_certificate {
        cx.error(
            &join(&f.path, "require_client_certificate"),
            "needs common_tls_context.validation_context.trusted_ca: weir verifies client certificates against it",
        );
        return None;
    }
    let provider = Arc::new(tls_build::provider_with(&common.params));
    let required = require_client_certificate;
    let (verifier, reverify) = match common.validation {
        None => (None, None),
        Some(validation) => {
            let first = match client_verifier(validation, required, &provider) {
                Ok(v) => v,
                Err(e) => {
                    cx.error(&f.path, e);
                    return None;
                }
            };
            match common.validation_sds {
                None => (Some(first), None),
                Some(source) => {
                    let swap = Arc::new(SwapClient::new(first));
                    let verifier: Arc<dyn ClientCertVerifier> = swap.clone();
                    let (provider, shown) = (provider.clone(), shown_ca.clone());
                    let reverify: Reverify = Box::new(move |v: Validation| {
                        let shows = v.shown();
                        swap.replace(client_verifier(v, required, &provider)?);
                        *shown.write().unwrap_or_else(|e| e.into_inner()) = Some(shows);
                        Ok(())
                    });
                    (Some(verifier), Some((source, reverify)))
                }
            }
        }
    };
    let certificate_sds = common.sds;
    let built = tls_build::server_config(
        common.certificates,
        provider,
        verifier,
        ServerSettings {
            versions: common.params.versions,
            alpn: common.alpn,
            require_sni,
            resumption,
            ocsp_policy,
        },
    );
    match built {
        Ok(built) => {
            let ca_files = shown_ca
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
                .map(|(path, _)| path.clone());
            let validation = reverify.map(|(source, reverify)| {
                let files = ca_files
                    .filter(|p| p != "<inline>")
                    .map(std::path::PathBuf::from)
                    .into_iter()
                    .collect();
                (source, files, reverify)
            });
            let rotation = (!certificate_sds.is_empty() || validation.is_some()).then(|| {
                Arc::new(CertRotation::new(
                    Some((built.keys.clone(), ocsp_policy)),
                    built.provider,
                    certificate_sds,
                    validation,
                ))
            });
            Some(DownstreamTls {
                server_config: Arc::new(built.config),
                require_client_certificate,
                certs: TlsCerts {
                    ca: shown_ca,
                    own: CertSource::Served(built.keys),
                },
                rotation,
            })
        }
        Err((path, e)) => {
            cx.error(path.as_deref().unwrap_or(&f.path), e);
            None
        }
    }
}

/// `session_ticket_keys`, `session_timeout` and the two `disable_*_session_resumption`.
fn resumption(cx: &mut Cx, o: &mut Obj<'_>) -> Option<Resumption> {
    let disable_stateless = o.flag(cx, "disable_stateless_session_resumption");
    let disable_stateful = o.flag(cx, "disable_stateful_session_resumption");
    let timeout = match o.get(cx, "session_timeout") {
        Some(t) => t.duration(cx).map(Some),
        None => Some(None),
    };
    let mut ticket_keys = Some(Vec::new());
    if let Some(keys) = o.get(cx, "session_ticket_keys") {
        let mut ko = Obj::new(cx, &keys, &[])?;
        let items = ko.list(cx, "keys");
        ko.finish(cx);
        if items.is_empty() {
            cx.error(&keys.path, "`keys` needs at least one key");
            ticket_keys = None;
        }
        for item in &items {
            match pem_source(cx, item) {
                Some(key) if key.len() == tickets::KEY_LEN => {
                    if let Some(k) = ticket_keys.as_mut() {
                        k.push(key);
                    }
                }
                Some(key) => {
                    cx.error(
                        &item.path,
                        format!(
                            "a session ticket key is {} bytes (Envoy's format: name, HMAC secret, AES key); this one is {}",
                            tickets::KEY_LEN,
                            key.len()
                        ),
                    );
                    ticket_keys = None;
                }
                None => ticket_keys = None,
            }
        }
    }
    Some(Resumption {
        ticket_keys: ticket_keys?,
        timeout: timeout?,
        disable_stateless: disable_stateless?,
        disable_stateful: disable_stateful?,
    })
}

/// What `common_tls_context` holds, read.
struct Common {
    certificates: Vec<Certificate>,
    /// The certificates among `certificates` (by index) that SDS files give.
    sds: Vec<(usize, SdsSource, Vec<std::path::PathBuf>)>,
    params: TlsParams,
    alpn: Vec<Vec<u8>>,
    /// `validation_context` (or the one its SDS secret gives), read.
    validation: Option<Validation>,
    /// Where `validation_context_sds_secret_config` reads it from.
    validation_sds: Option<SdsSource>,
}

/// `common_tls_context`.
fn common_tls_context(cx: &mut Cx, f: &Field<'_>) -> Option<Common> {
    let mut o = Obj::new(cx, f, COMMON_TLS_ENVOY)?;
    let mut ok = true;
    let cert_items = o.list(cx, "tls_certificates");
    let mut certificates = Vec::with_capacity(cert_items.len());
    for item in &cert_items {
        match tls_certificate(cx, item) {
            Some(c) => certificates.push(c),
            None => ok = false,
        }
    }
    let mut sds = Vec::new();
    for item in o.list(cx, "tls_certificate_sds_secret_configs") {
        match sds_secret_config(cx, &item, Wanted::Certificate) {
            Some((source, Secret::Certificate(c))) => {
                sds.push((certificates.len(), source, named_files(&c)));
                certificates.push(c);
            }
            _ => ok = false,
        }
    }
    if certificates.is_empty() && ok {
        cx.error(
            &join(&f.path, "tls_certificates"),
            "a TLS listener needs at least one certificate in `tls_certificates` or `tls_certificate_sds_secret_configs`",
        );
        ok = false;
    }
    let params = match o.get(cx, "tls_params") {
        Some(p) => tls_params(cx, &p),
        None => Some(TlsParams::default()),
    };
    let alpn = alpn_protocols(cx, &mut o);
    let validation = validation_of(cx, &mut o);
    o.finish(cx);
    let (validation, validation_sds) = validation?;
    let common = Common {
        certificates,
        sds,
        params: params?,
        alpn: alpn?,
        validation,
        validation_sds,
    };
    ok.then_some(common)
}

/// A `common_tls_context`'s CA: `validation_context`, or `validation_context_sds_secret_config`
/// (with its source, for a rotation), not both.
pub(crate) fn validation_of(
    cx: &mut Cx,
    o: &mut Obj<'_>,
) -> Option<(Option<Validation>, Option<SdsSource>)> {
    let inline = o.get(cx, "validation_context");
    let sds = o.get(cx, "validation_context_sds_secret_config");
    match (inline, sds) {
        (Some(v), None) => validation_context(cx, &v).map(|v| (Some(v), None)),
        (None, Some(s)) => match sds_secret_config(cx, &s, Wanted::Validation)? {
            (source, Secret::Validation(v)) => Some((Some(v), Some(source))),
            _ => None,
        },
        (None, None) => Some((None, None)),
        (Some(_), Some(s)) => {
            cx.error(
                &s.path,
                "give `validation_context` or `validation_context_sds_secret_config`, not both",
            );
            None
        }
    }
}

/// `alpn_protocols`. weir speaks HTTP/1.1 only: Envoy advertises whatever is listed, so with
/// `h2` listed and an HTTP/1 codec its clients pick HTTP/2 and every request fails. weir
/// leaves `h2` out of what it offers (clients then speak HTTP/1.1) and warns; a protocol weir
/// does not speak at all is an error.
fn alpn_protocols(cx: &mut Cx, o: &mut Obj<'_>) -> Option<Vec<Vec<u8>>> {
    let items = o.list(cx, "alpn_protocols");
    let mut alpn = Vec::with_capacity(items.len());
    let mut ok = true;
    for item in &items {
        let Some(name) = item.string(cx) else {
            ok = false;
            continue;
        };
        match name.as_str() {
            "http/1.1" | "http/1.0" => alpn.push(name.into_bytes()),
            "h2" => cx.warn(
                &item.path,
                "weir speaks HTTP/1.1 only (HTTP/2 is not supported yet): `h2` is not offered, so clients fall back to http/1.1",
            ),
            other => {
                cx.error(
                    &item.path,
                    format!("ALPN protocol `{other}` is not spoken by weir (it offers http/1.1 and http/1.0)"),
                );
                ok = false;
            }
        }
    }
    if ok && !items.is_empty() && alpn.is_empty() {
        cx.error(
            o.path(),
            "alpn_protocols lists no protocol weir speaks: add http/1.1",
        );
        ok = false;
    }
    ok.then_some(alpn)
}

/// One `tls_certificates[]` entry: its chain and key, parsed (their match is checked when the
/// config is built).
pub(crate) fn tls_certificate(cx: &mut Cx, f: &Field<'_>) -> Option<Certificate> {
    let mut o = Obj::new(cx, f, TLS_CERTIFICATE_ENVOY)?;
    let chain = o
        .required(cx, "certificate_chain")
        .and_then(|c| pem_source(cx, &c).map(|pem| (pem, c.path)));
    let key = o
        .required(cx, "private_key")
        .and_then(|k| pem_source(cx, &k).map(|pem| (pem, k.path)));
    let shown_chain = f
        .value
        .get("certificate_chain")
        .and_then(|c| c.get("filename"))
        .and_then(|v| v.as_str())
        .unwrap_or("<inline>")
        .to_owned();
    let files = ["certificate_chain", "private_key", "ocsp_staple"]
        .iter()
        .filter_map(|k| f.value.get(k)?.get("filename")?.as_str().map(str::to_owned))
        .collect();
    let ocsp = match o.get(cx, "ocsp_staple") {
        Some(s) => pem_source(cx, &s).map(|der| Some((der, s.path))),
        None => Some(None),
    };
    o.finish(cx);
    let ((chain_pem, chain_path), (key_pem, key_path)) = (chain?, key?);
    let chain = certificates(cx, &chain_pem, &chain_path);
    let key = match PrivateKeyDer::from_pem_slice(&key_pem) {
        Ok(key) => Some(key),
        Err(e) => {
            cx.error(
                &key_path,
                format!("no private key in PEM (PKCS#8, PKCS#1 or SEC1) here: {e}"),
            );
            None
        }
    };
    Some(Certificate {
        chain: chain?,
        key: key?,
        path: f.path.clone(),
        chain_path: shown_chain,
        files,
        ocsp: ocsp?,
    })
}

/// The certificates in a PEM text; an error naming `path` when there are none or one is bad.
fn certificates(cx: &mut Cx, pem: &[u8], path: &str) -> Option<Vec<CertificateDer<'static>>> {
    match CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>() {
        Ok(certs) if !certs.is_empty() => Some(certs),
        Ok(_) => {
            cx.error(
                path,
                "no certificate (-----BEGIN CERTIFICATE-----) in this PEM",
            );
            None
        }
        Err(e) => {
            cx.error(path, format!("bad PEM: {e}"));
            None
        }
    }
}

/// A `DataSource` holding PEM: `filename` (read now), `inline_string` or `inline_bytes`.
fn pem_source(cx: &mut Cx, f: &Field<'_>) -> Option<Vec<u8>> {
    let mut o = Obj::new(cx, f, PEM_SOURCE_ENVOY)?;
    let sources = [
        o.get(cx, "filename"),
        o.get(cx, "inline_string"),
        o.get(cx, "inline_bytes"),
    ];
    o.finish(cx);
    let given: Vec<_> = sources.iter().flatten().collect();
    if given.len() != 1 {
        cx.error(
            &f.path,
            "exactly one of `filename`, `inline_string` and `inline_bytes` is required",
        );
        return None;
    }
    let [filename, inline_string, _] = &sources;
    let field = given[0];
    let text = field.string(cx)?;
    if filename.is_some() {
        match std::fs::read(&text) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                cx.error(&field.path, format!("cannot read {text}: {e}"));
                None
            }
        }
    } else if inline_string.is_some() {
        Some(text.into_bytes())
    } else {
        let decoded = base64_decode(&text);
        if decoded.is_none() {
            cx.error(&field.path, "inline_bytes must be base64");
        }
        decoded
    }
}

/// `tls_params`.
pub(crate) fn tls_params(cx: &mut Cx, f: &Field<'_>) -> Option<TlsParams> {
    let mut o = Obj::new(cx, f, TLS_PARAMS_ENVOY)?;
    let min = protocol(cx, &mut o, "tls_minimum_protocol_version");
    let max = protocol(cx, &mut o, "tls_maximum_protocol_version");
    let suites = named_list(
        cx,
        &mut o,
        "cipher_suites",
        tls_build::cipher_suite,
        "cipher suite",
    );
    let curves = named_list(cx, &mut o, "ecdh_curves", tls_build::kx_group, "curve");
    o.finish(cx);
    let (min, max) = (min?, max?);
    let versions = match (min.unwrap_or(3), max.unwrap_or(4)) {
        (3, 4) => Versions::Both,
        (3, 3) => Versions::Tls12,
        (4, 4) => Versions::Tls13,
        _ => {
            cx.error(
                &f.path,
                "tls_minimum_protocol_version is above tls_maximum_protocol_version",
            );
            return None;
        }
    };
    Some(TlsParams {
        versions,
        cipher_suites: suites?,
        kx_groups: curves?,
    })
}

/// A version field: `None` after an error, `Some(None)` for TLS_AUTO or absent, else 3 (1.2)
/// or 4 (1.3). rustls has neither TLS 1.0 nor 1.1.
fn protocol(cx: &mut Cx, o: &mut Obj<'_>, name: &'static str) -> Option<Option<u64>> {
    let Some(field) = o.get(cx, name) else {
        return Some(None);
    };
    match field.enumeration(cx, name, TLS_PROTOCOLS)? {
        "TLS_AUTO" => Some(None),
        "TLSv1_2" => Some(Some(3)),
        "TLSv1_3" => Some(Some(4)),
        old => {
            cx.error(
                &field.path,
                format!("{old} is not supported: weir's TLS (rustls) speaks TLS 1.2 and 1.3 only"),
            );
            None
        }
    }
}

/// A list of names each mapped by `find` (`None`: rustls lacks it, an error naming it). An
/// OpenSSL equal-preference group `[A|B]` counts as its members in order.
fn named_list<T>(
    cx: &mut Cx,
    o: &mut Obj<'_>,
    name: &'static str,
    find: fn(&str) -> Option<T>,
    what: &str,
) -> Option<Vec<T>> {
    let mut found = Vec::new();
    let mut ok = true;
    for item in o.list(cx, name) {
        let Some(text) = item.string(cx) else {
            ok = false;
            continue;
        };
        let inner = text
            .strip_prefix('[')
            .and_then(|t| t.strip_suffix(']'))
            .unwrap_or(&text);
        for member in inner.split('|') {
            match find(member) {
                Some(t) => found.push(t),
                None => {
                    cx.error(
                        &item.path,
                        format!(
                            "{what} `{member}` is not supported by weir (rustls has no such {what})"
                        ),
                    );
                    ok = false;
                }
            }
        }
    }
    ok.then_some(found)
}

/// `validation_context`: `trusted_ca`, the CAs the peer's certificate must chain to, and
/// `match_typed_subject_alt_names`, the names it must carry.
pub(crate) fn validation_context(cx: &mut Cx, f: &Field<'_>) -> Option<Validation> {
    let mut o = Obj::new(cx, f, VALIDATION_ENVOY)?;
    let ca = o.get(cx, "trusted_ca");
    let system = o.get(cx, "system_root_certs");
    let san_items = o.list(cx, "match_typed_subject_alt_names");
    let sans = san_matchers(cx, &san_items);
    let crl = o.get(cx, "crl");
    let leaf_only = o.flag(cx, "only_verify_leaf_cert_crl");
    o.finish(cx);
    let mut trusted_ca = Vec::new();
    let mut shown = Vec::new();
    let mut ok = true;
    if let Some(ca) = &ca {
        match pem_source(cx, ca).and_then(|pem| certificates(cx, &pem, &ca.path)) {
            Some(certs) => trusted_ca.extend(certs),
            None => ok = false,
        }
        shown.push(shown_path(ca));
    }
    if let Some(system) = &system {
        Obj::new(cx, system, &[])?.finish(cx);
        match system_roots() {
            Ok((bundle, certs)) => {
                trusted_ca.extend(certs);
                shown.push(bundle);
            }
            Err(e) => {
                cx.error(&system.path, e);
                return None;
            }
        }
    }
    if ca.is_none() && system.is_none() {
        cx.error(
            &join(&f.path, "trusted_ca"),
            "`trusted_ca` (or `system_root_certs`) is required: the CAs peers' certificates must chain to",
        );
        return None;
    }
    let crls = match &crl {
        Some(c) => {
            let pem = pem_source(cx, c)?;
            match CertificateRevocationListDer::pem_slice_iter(&pem).collect::<Result<Vec<_>, _>>()
            {
                Ok(crls) if !crls.is_empty() => crls,
                Ok(_) => {
                    cx.error(&c.path, "no CRL (-----BEGIN X509 CRL-----) in this PEM");
                    return None;
                }
                Err(e) => {
                    cx.error(&c.path, format!("bad PEM: {e}"));
                    return None;
                }
            }
        }
        None => Vec::new(),
    };
    if !ok {
        return None;
    }
    Some(Validation {
        trusted_ca,
        ca_path: shown.join(", "),
        sans: sans?,
        crls,
        crl_leaf_only: leaf_only?,
    })
}

/// The system's trusted roots, from the bundle OpenSSL would read: `SSL_CERT_FILE`, else the
/// first of the usual places that exists. The bundle's path and its certificates.
fn system_roots() -> Result<(String, Vec<CertificateDer<'static>>), String> {
    const BUNDLES: &[&str] = &[
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/ssl/ca-bundle.pem",
        "/etc/ssl/cert.pem",
    ];
    let from_env = std::env::var("SSL_CERT_FILE")
        .ok()
        .filter(|p| !p.is_empty());
    let path = from_env
        .or_else(|| {
            BUNDLES
                .iter()
                .find(|p| std::path::Path::new(p).exists())
                .map(|p| (*p).to_owned())
        })
        .ok_or_else(|| {
            format!(
                "no system CA bundle found (set SSL_CERT_FILE, or install one at {})",
                BUNDLES.join(", ")
            )
        })?;
    let pem = std::fs::read(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(format!("no certificate in the system CA bundle {path}"));
    }
    Ok((path, certs))
}

/// `validation_context`, read.
pub(crate) struct Validation {
    /// `trusted_ca`, parsed.
    pub(crate) trusted_ca: Vec<CertificateDer<'static>>,
    /// Where `trusted_ca` came from, as `/certs` shows it.
    pub(crate) ca_path: String,
    /// `match_typed_subject_alt_names`.
    pub(crate) sans: Vec<SanMatcher>,
    /// `crl`: a certificate they revoke is refused (and, as in Envoy, one whose issuer has no
    /// CRL among them too).
    pub(crate) crls: Vec<CertificateRevocationListDer<'static>>,
    /// `only_verify_leaf_cert_crl`: only the peer's own certificate is checked against them.
    pub(crate) crl_leaf_only: bool,
}

impl Validation {
    /// What `/certs` shows of it.
    pub(crate) fn shown(&self) -> (String, Vec<CertificateDer<'static>>) {
        (self.ca_path.clone(), self.trusted_ca.clone())
    }
}

/// A `DataSource`'s file name, or `<inline>`, as Envoy's `/certs` shows it.
pub(crate) fn shown_path(f: &Field<'_>) -> String {
    f.value
        .get("filename")
        .and_then(|v| v.as_str())
        .unwrap_or("<inline>")
        .to_owned()
}
