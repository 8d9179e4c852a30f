//! A cluster's `transport_socket`: `envoy.transport_sockets.tls` with an `UpstreamTlsContext`
//! (weir speaks TLS to the origin, with rustls), or `raw_buffer`.
//!
//! What the origin's certificate must satisfy is Envoy's, not a browser's:
//! - without `validation_context`, nothing is checked (Envoy's default: the connection is
//!   encrypted but the origin is not authenticated). weir warns at config time;
//! - with `validation_context.trusted_ca`, the chain must lead to one of those CAs, and the
//!   names are not compared with `sni` (Envoy compares them only when told to);
//! - with `match_typed_subject_alt_names` too, one of the certificate's names must pass them;
//! - with `auto_sni_san_validation` (or the cluster's `auto_san_validation`), it must also be
//!   valid for the SNI the connection sent (`sni`, the endpoint's `hostname` under
//!   `auto_host_sni`, or the request's host under the cluster's `auto_sni`).
//!
//! The handshake's own signatures are always verified, so a connection is bound to the
//! certificate the origin presented.

use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, SupportedProtocolVersion};

use crate::listener::{named_typed_config, type_name};
use crate::model::{CertSource, SharedCa, TlsCerts, UpstreamTls};
use crate::reader::{Cx, Field, Obj, join};
use crate::sds::{CertRotation, Reverify};
use crate::tls::{self, RAW_BUFFER_TYPE, Validation};
use crate::tls_build::{self, Certificate, TlsParams, Versions};
use crate::verify::{SwapServer, server_verifier};

/// The `@type` of an upstream TLS transport socket.
const UPSTREAM_TLS_TYPE: &str =
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext";

/// `UpstreamTlsContext` fields weir does not support yet.
const UPSTREAM_TLS_ENVOY: &[&str] = &[
    "max_session_keys",
    "enforce_rsa_key_usage",
    "max_early_data",
];

/// A cluster's `transport_socket`: `Some(None)` for plaintext, `Some(Some(tls))` for TLS,
/// `None` after an error. `auto_san` is the cluster's `auto_san_validation`.
pub(crate) fn transport_socket(
    cx: &mut Cx,
    f: &Field<'_>,
    auto_san: bool,
) -> Option<Option<UpstreamTls>> {
    let (name, typed) = named_typed_config(cx, f, &[], "transport socket", UPSTREAM_TLS_TYPE)?;
    let read = match type_name(&typed.url) {
        t if t == type_name(UPSTREAM_TLS_TYPE) => {
            upstream_tls_context(cx, &typed.message, auto_san).map(Some)
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
                    "transport socket type `{}` is not supported by weir yet (a cluster takes {UPSTREAM_TLS_TYPE} or {RAW_BUFFER_TYPE})",
                    typed.url
                ),
            );
            None
        }
    };
    name?;
    read
}

/// `UpstreamTlsContext`.
fn upstream_tls_context(cx: &mut Cx, f: &Field<'_>, auto_san: bool) -> Option<UpstreamTls> {
    let mut o = Obj::new(cx, f, UPSTREAM_TLS_ENVOY)?;
    o.get(cx, "@type");
    let sni = match o.get(cx, "sni") {
        Some(s) => s
            .string(cx)
            .and_then(|name| match ServerName::try_from(name.clone()) {
                Ok(ServerName::DnsName(_)) => Some(Some(name)),
                _ => {
                    cx.error(&s.path, format!("sni `{name}` is not a DNS name"));
                    None
                }
            }),
        None => Some(None),
    };
    if let Some(r) = o.get(cx, "allow_renegotiation")
        && r.bool(cx) == Some(true)
    {
        cx.error(
            &r.path,
            "renegotiation is not supported: weir's TLS (rustls) never renegotiates",
        );
    }
    let auto_host_sni = o.flag(cx, "auto_host_sni");
    let auto_sni_san_validation = o.flag(cx, "auto_sni_san_validation");
    let common = match o.get(cx, "common_tls_context") {
        Some(c) => common(cx, &c),
        None => Some(Common::default()),
    };
    o.finish(cx);
    let (sni, common) = (sni?, common?);
    let (auto_host_sni, auto_sni_san_validation) = (auto_host_sni?, auto_sni_san_validation?);
    let check_names = auto_sni_san_validation || auto_san;
    if check_names && common.validation.is_none() {
        let path = if auto_sni_san_validation {
            join(&f.path, "auto_sni_san_validation")
        } else {
            f.path.clone()
        };
        cx.error(
            &path,
            "checking the certificate against the SNI needs common_tls_context.validation_context.trusted_ca",
        );
        return None;
    }
    if common.validation.is_none() {
        cx.warn(
            &f.path,
            "no validation_context: the origin's certificate is not verified (Envoy's default); add validation_context.trusted_ca to verify it",
        );
    }
    let mut common = common;
    let shown_ca: SharedCa = Arc::new(RwLock::new(
        common.validation.as_ref().map(Validation::shown),
    ));
    let certs = TlsCerts {
        ca: shown_ca.clone(),
        own: CertSource::Fixed(
            common
                .certificate
                .as_ref()
                .map(|c| (c.chain_path.clone(), c.chain.clone())),
        ),
    };
    let provider = Arc::new(tls_build::provider_with(&common.params));
    let ca_files: Vec<std::path::PathBuf> = common
        .validation
        .as_ref()
        .map(crate::sds::validation_files)
        .unwrap_or_default();
    let built = server_verifier(common.validation.take(), check_names, &provider).map(|first| {
        let Some(source) = common.validation_sds.take() else {
            return (first, None);
        };
        // The CA comes from an SDS file: a rotation puts a new verifier in.
        let swap = Arc::new(SwapServer::new(first));
        let verifier: Arc<dyn ServerCertVerifier> = swap.clone();
        let (p, shown) = (provider.clone(), shown_ca.clone());
        let reverify: Reverify = Box::new(move |v: Validation| {
            let shows = v.shown();
            swap.replace(server_verifier(Some(v), check_names, &p)?);
            *shown.write().unwrap_or_else(|e| e.into_inner()) = Some(shows);
            Ok(())
        });
        let rotation = CertRotation::new(
            None,
            provider.clone(),
            Vec::new(),
            Some((source, ca_files, reverify)),
        );
        (verifier, Some(Arc::new(rotation)))
    });
    let config = built.and_then(|(verifier, rotation)| {
        client_config(common, provider, verifier).map(|config| (config, rotation))
    });
    match config {
        Ok((config, rotation)) => Some(UpstreamTls {
            client_config: Arc::new(config),
            sni,
            auto_host_sni,
            auto_sni_san_validation,
            certs,
            rotation,
        }),
        Err(e) => {
            cx.error(&f.path, e);
            None
        }
    }
}

/// What an upstream `common_tls_context` holds, read.
#[derive(Default)]
struct Common {
    /// A client certificate (mTLS): at most one.
    certificate: Option<Certificate>,
    params: TlsParams,
    alpn: Vec<Vec<u8>>,
    validation: Option<Validation>,
    /// Where `validation_context_sds_secret_config` reads the CA from.
    validation_sds: Option<crate::sds::SdsSource>,
}

/// An upstream `common_tls_context`.
fn common(cx: &mut Cx, f: &Field<'_>) -> Option<Common> {
    let mut o = Obj::new(cx, f, tls::COMMON_TLS_ENVOY)?;
    let mut ok = !o.reject(
        cx,
        "tls_certificate_sds_secret_configs",
        "a client certificate from SDS is not supported by weir yet: give it in tls_certificates",
    );
    let items = o.list(cx, "tls_certificates");
    let mut certificate = None;
    for (i, item) in items.iter().enumerate() {
        match tls::tls_certificate(cx, item) {
            Some(_) if i > 0 => {
                cx.error(
                    &item.path,
                    "an upstream connection presents one client certificate: list at most one",
                );
                ok = false;
            }
            Some(c) if c.ocsp.is_some() => {
                cx.error(
                    &item.path,
                    "ocsp_staple is stapled by a listener to its certificate; a client certificate takes none",
                );
                ok = false;
            }
            Some(c) => certificate = Some(c),
            None => ok = false,
        }
    }
    let params = match o.get(cx, "tls_params") {
        Some(p) => tls::tls_params(cx, &p),
        None => Some(TlsParams::default()),
    };
    let alpn = alpn(cx, &mut o);
    let validation = tls::validation_of(cx, &mut o);
    o.finish(cx);
    let (validation, validation_sds) = validation?;
    let common = Common {
        certificate,
        params: params?,
        alpn: alpn?,
        validation,
        validation_sds,
    };
    ok.then_some(common)
}

/// `alpn_protocols` toward the origin: weir's client speaks HTTP/1.1, so `h2` is left out
/// (with a warning) and anything else it does not speak is an error.
fn alpn(cx: &mut Cx, o: &mut Obj<'_>) -> Option<Vec<Vec<u8>>> {
    let mut alpn = Vec::new();
    let mut ok = true;
    for item in o.list(cx, "alpn_protocols") {
        match item.string(cx).as_deref() {
            Some(p @ ("http/1.1" | "http/1.0")) => alpn.push(p.as_bytes().to_vec()),
            Some("h2") => cx.warn(
                &item.path,
                "weir speaks HTTP/1.1 to origins (HTTP/2 is not supported yet): `h2` is not offered",
            ),
            Some(other) => {
                cx.error(
                    &item.path,
                    format!("ALPN protocol `{other}` is not spoken by weir (it offers http/1.1 and http/1.0)"),
                );
                ok = false;
            }
            None => ok = false,
        }
    }
    ok.then_some(alpn)
}

/// The rustls client config: versions, suites and curves as `tls_params` says, the client
/// certificate, and the verifier the module documentation describes.
fn client_config(
    common: Common,
    provider: Arc<CryptoProvider>,
    verifier: Arc<dyn ServerCertVerifier>,
) -> Result<ClientConfig, String> {
    let versions: &[&SupportedProtocolVersion] = match common.params.versions {
        Versions::Both => &[&rustls::version::TLS13, &rustls::version::TLS12],
        Versions::Tls12 => &[&rustls::version::TLS12],
        Versions::Tls13 => &[&rustls::version::TLS13],
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| format!("tls_params: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match common.certificate {
        Some(c) => builder
            .with_client_auth_cert(c.chain, c.key)
            .map_err(|e| format!("tls_certificates: unusable certificate or key: {e}"))?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = common.alpn;
    Ok(config)
}

/// The name a connection presents and verifies with: `sni` when given (sent as SNI), else
/// the origin's address (no SNI is sent for an address).
pub fn server_name(sni: Option<&str>, origin: IpAddr) -> ServerName<'static> {
    sni.and_then(|s| ServerName::try_from(s.to_owned()).ok())
        .unwrap_or_else(|| ServerName::IpAddress(origin.into()))
}
