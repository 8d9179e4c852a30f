//! The rustls side of a `DownstreamTlsContext`: the crypto provider ([`crate::crypto`]), Envoy's names
//! for cipher suites and curves, the SNI certificate choice, and the server config built from
//! what [`crate::tls`] read.

use std::sync::{Arc, RwLock};

use rustls::crypto::{CryptoProvider, SupportedKxGroup};

use crate::crypto::rustls_provider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{
    CipherSuite, NamedGroup, ServerConfig, SupportedCipherSuite, SupportedProtocolVersion,
};

use rustls::time_provider::{DefaultTimeProvider, TimeProvider};

use crate::model::{ServedCert, SharedCerts};
use crate::ocsp::{self, OcspPolicy};
use crate::tickets::Resumption;

/// One `tls_certificates[]` entry, parsed.
pub(crate) struct Certificate {
    pub(crate) chain: Vec<CertificateDer<'static>>,
    pub(crate) key: PrivateKeyDer<'static>,
    /// `ocsp_staple`: a DER `OCSPResponse`, and its path in the config.
    pub(crate) ocsp: Option<(Vec<u8>, String)>,
    /// Its path in the config, for errors.
    pub(crate) path: String,
    /// The chain's file (`<inline>` when given inline), as `/certs` shows it.
    pub(crate) chain_path: String,
    /// The files its chain and key were read from (a rotation watches them).
    pub(crate) files: Vec<String>,
}

/// A certificate and key as rustls serves them; the error says what is wrong with them.
pub(crate) fn certified_key(
    c: Certificate,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, String> {
    CertifiedKey::from_der(c.chain, c.key, provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => {
            "the private key does not match the certificate".to_owned()
        }
        other => format!("unusable certificate or key: {other}"),
    })
}

/// A certificate as a listener serves it, with its OCSP staple checked against `policy`: the
/// staple must be about this certificate and not expired now; `MUST_STAPLE` needs one. The
/// error carries the config path it is about.
pub(crate) fn served_cert(
    mut c: Certificate,
    provider: &CryptoProvider,
    policy: OcspPolicy,
    now: Option<u64>,
) -> Result<ServedCert, (String, String)> {
    let (path, chain_path) = (c.path.clone(), c.chain_path.clone());
    let ocsp = c.ocsp.take();
    let leaf_serial = c
        .chain
        .first()
        .and_then(|der| crate::CertInfo::parse(der))
        .map(|info| info.serial);
    let mut key = certified_key(c, provider).map_err(|e| (path.clone(), e))?;
    let Some((der, ocsp_path)) = ocsp else {
        if policy == OcspPolicy::MustStaple {
            return Err((
                path,
                "ocsp_staple_policy MUST_STAPLE: this certificate has no ocsp_staple".to_owned(),
            ));
        }
        return Ok(ServedCert {
            key: Arc::new(key),
            chain_path,
            unstapled: None,
        });
    };
    let staple = ocsp::parse(&der).map_err(|e| (ocsp_path.clone(), e))?;
    let serial = crate::cert_info::serial_hex(&staple.serial);
    if leaf_serial.as_deref() != Some(serial.as_str()) {
        return Err((
            ocsp_path,
            "the OCSP response is not about this certificate (another serial number)".to_owned(),
        ));
    }
    if let (Some(until), Some(now)) = (staple.next_update, now)
        && until < now
    {
        return Err((ocsp_path, "the OCSP response has expired".to_owned()));
    }
    let bare = Arc::new(key.clone());
    key.ocsp = Some(der);
    Ok(ServedCert {
        key: Arc::new(key),
        chain_path,
        unstapled: Some((bare, staple.next_update)),
    })
}

/// Which TLS versions a listener speaks.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) enum Versions {
    /// TLS 1.2 and 1.3 (Envoy's default for a downstream).
    #[default]
    Both,
    Tls12,
    Tls13,
}

/// `tls_params`, mapped to rustls.
#[derive(Default)]
pub(crate) struct TlsParams {
    pub(crate) versions: Versions,
    /// TLS 1.2 suites, in preference order; empty: the provider's. TLS 1.3's are always all
    /// on, as in Envoy (BoringSSL does not configure them).
    pub(crate) cipher_suites: Vec<SupportedCipherSuite>,
    /// Key exchange groups, in preference order; empty: the provider's.
    pub(crate) kx_groups: Vec<&'static dyn SupportedKxGroup>,
}

/// The TLS 1.2 suites rustls has, by their OpenSSL names (Envoy's `cipher_suites` names).
const TLS12_SUITES: &[(&str, CipherSuite)] = &[
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "ECDHE-RSA-AES128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-RSA-AES256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-RSA-CHACHA20-POLY1305",
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
];

/// Key exchange groups by Envoy's (BoringSSL's) names.
const GROUPS: &[(&str, NamedGroup)] = &[
    ("X25519", NamedGroup::X25519),
    ("P-256", NamedGroup::secp256r1),
    ("P-384", NamedGroup::secp384r1),
    ("P-521", NamedGroup::secp521r1),
    ("X25519MLKEM768", NamedGroup::X25519MLKEM768),
];

/// The crypto provider weir's TLS uses.
pub(crate) fn provider() -> CryptoProvider {
    crate::crypto::default_provider()
}

/// The provider with `tls_params`' TLS 1.2 suites and groups, when it names any.
pub(crate) fn provider_with(params: &TlsParams) -> CryptoProvider {
    let mut provider = provider();
    if !params.cipher_suites.is_empty() {
        let mut suites: Vec<SupportedCipherSuite> = provider
            .cipher_suites
            .iter()
            .copied()
            .filter(|s| s.tls13().is_some())
            .collect();
        suites.extend(params.cipher_suites.iter().copied());
        provider.cipher_suites = suites;
    }
    if !params.kx_groups.is_empty() {
        provider.kx_groups = params.kx_groups.clone();
    }
    provider
}

/// A TLS 1.2 cipher suite by its OpenSSL name, if rustls has it.
pub(crate) fn cipher_suite(name: &str) -> Option<SupportedCipherSuite> {
    let (_, id) = TLS12_SUITES.iter().find(|(n, _)| *n == name)?;
    rustls_provider::ALL_CIPHER_SUITES
        .iter()
        .find(|s| s.suite() == *id)
        .copied()
}

/// A key exchange group by its Envoy name (`prime256v1` and `secp256r1` are P-256's other
/// names), if rustls has it.
pub(crate) fn kx_group(name: &str) -> Option<&'static dyn SupportedKxGroup> {
    let name = match name {
        "prime256v1" | "secp256r1" => "P-256",
        "secp384r1" => "P-384",
        other => other,
    };
    let (_, id) = GROUPS.iter().find(|(n, _)| *n == name)?;
    rustls_provider::ALL_KX_GROUPS
        .iter()
        .find(|g| g.name() == *id)
        .copied()
}

/// Envoy's name for a negotiated cipher suite (`ssl.ciphers.<name>`): OpenSSL's for TLS 1.2,
/// the IANA name for TLS 1.3.
pub fn cipher_stat_name(suite: CipherSuite) -> String {
    match TLS12_SUITES.iter().find(|(_, s)| *s == suite) {
        Some((name, _)) => (*name).to_owned(),
        None => format!("{suite:?}").replace("TLS13_", "TLS_"),
    }
}

/// Envoy's name for a negotiated group (`ssl.curves.<name>`).
pub fn group_stat_name(group: NamedGroup) -> String {
    match GROUPS.iter().find(|(_, g)| *g == group) {
        Some((name, _)) => (*name).to_owned(),
        None => format!("{group:?}"),
    }
}

/// A listener's server config, the keys it serves (for a rotation) and its provider.
pub(crate) struct Built {
    pub(crate) config: ServerConfig,
    pub(crate) keys: SharedCerts,
    pub(crate) provider: Arc<CryptoProvider>,
}

/// Builds a listener's server config. An error carries the config path it is about, when it
/// is about one certificate.
/// What a listener's server config is built with, besides its certificates, provider and
/// client verifier.
pub(crate) struct ServerSettings {
    pub(crate) versions: Versions,
    pub(crate) alpn: Vec<Vec<u8>>,
    pub(crate) require_sni: bool,
    pub(crate) resumption: Resumption,
    pub(crate) ocsp_policy: OcspPolicy,
}

pub(crate) fn server_config(
    certificates: Vec<Certificate>,
    provider: Arc<CryptoProvider>,
    client_verifier: Option<Arc<dyn ClientCertVerifier>>,
    settings: ServerSettings,
) -> Result<Built, (Option<String>, String)> {
    let ServerSettings {
        versions,
        alpn,
        require_sni,
        resumption,
        ocsp_policy,
    } = settings;
    let clock: Arc<dyn TimeProvider> = Arc::new(DefaultTimeProvider);
    let now = clock.current_time().map(|t| t.as_secs());
    let mut keys = Vec::with_capacity(certificates.len());
    for c in certificates {
        let served =
            served_cert(c, &provider, ocsp_policy, now).map_err(|(path, e)| (Some(path), e))?;
        keys.push(served);
    }
    let keys = Arc::new(RwLock::new(keys));
    let versions: &[&SupportedProtocolVersion] = match versions {
        Versions::Both => &[&rustls::version::TLS13, &rustls::version::TLS12],
        Versions::Tls12 => &[&rustls::version::TLS12],
        Versions::Tls13 => &[&rustls::version::TLS13],
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| (None, format!("tls_params: {e}")))?;
    let builder = match client_verifier {
        Some(verifier) => builder.with_client_cert_verifier(verifier),
        None => builder.with_no_client_auth(),
    };
    let resolver = SniResolver {
        keys: keys.clone(),
        require_sni,
        ocsp_policy,
        clock,
    };
    let mut config = builder.with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = alpn;
    // The server's preference, as Envoy's default (`prefer_client_ciphers: false`).
    config.ignore_client_order = true;
    resumption
        .apply(&mut config)
        .map_err(|e| (None, format!("session resumption: {e}")))?;
    Ok(Built {
        config,
        keys,
        provider,
    })
}

/// Picks a certificate by SNI among a listener's, as Envoy does: one whose names match the
/// requested name and whose key the client can verify, else the first; with its OCSP staple
/// while the staple is valid (past it: without, or not at all under a strict policy).
#[derive(Debug)]
struct SniResolver {
    /// A read lock per handshake, uncontended but for a rotation's rare write.
    keys: SharedCerts,
    /// `require_sni`: a ClientHello without a name gets no certificate (the handshake fails).
    require_sni: bool,
    ocsp_policy: OcspPolicy,
    /// rustls' clock, for the staples' expiry.
    clock: Arc<dyn TimeProvider>,
}

impl SniResolver {
    /// What `c` serves now: itself, itself without its expired staple, or nothing.
    fn usable(&self, c: &ServedCert) -> Option<Arc<CertifiedKey>> {
        let Some((bare, Some(until))) = &c.unstapled else {
            return Some(c.key.clone());
        };
        let now = self.clock.current_time().map(|t| t.as_secs());
        if now.is_none_or(|now| now <= *until) {
            return Some(c.key.clone());
        }
        match self.ocsp_policy {
            OcspPolicy::Lenient => Some(bare.clone()),
            OcspPolicy::Strict | OcspPolicy::MustStaple => None,
        }
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let sni = hello.server_name();
        if self.require_sni && sni.is_none() {
            return None;
        }
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        if keys.len() > 1
            && let Some(name) = sni.and_then(|s| ServerName::try_from(s).ok())
        {
            let schemes = hello.signature_schemes();
            let found = keys.iter().find_map(|c| {
                let fits = c.key.key.choose_scheme(schemes).is_some()
                    && names_match(c.key.end_entity_cert(), &name);
                fits.then(|| self.usable(c)).flatten()
            });
            if found.is_some() {
                return found;
            }
        }
        keys.iter().find_map(|c| self.usable(c))
    }
}

/// Whether a certificate's names cover `name` (wildcards included).
fn names_match(cert: Result<&CertificateDer<'_>, rustls::Error>, name: &ServerName<'_>) -> bool {
    let Ok(cert) = cert else { return false };
    webpki::EndEntityCert::try_from(cert)
        .is_ok_and(|ee| ee.verify_is_valid_for_subject_name(name).is_ok())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use rustls::pki_types::UnixTime;

    use super::*;

    /// A clock the test sets.
    #[derive(Debug)]
    struct Clock(AtomicU64);

    impl TimeProvider for Clock {
        fn current_time(&self) -> Option<UnixTime> {
            Some(UnixTime::since_unix_epoch(std::time::Duration::from_secs(
                self.0.load(Ordering::Relaxed),
            )))
        }
    }

    /// A staple valid until 1000 is sent before then; after, it is left out (lenient) or the
    /// certificate is not used (strict, must-staple).
    #[test]
    fn an_expired_staple_is_left_out_or_its_certificate_refused() {
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["a.test".to_owned()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        let der = PrivateKeyDer::try_from(key.serialize_der()).expect("key der");
        let bare = CertifiedKey::from_der(vec![cert.der().clone()], der, &provider())
            .expect("certified key");
        let mut stapled = bare.clone();
        stapled.ocsp = Some(b"staple".to_vec());
        let served = ServedCert {
            key: Arc::new(stapled),
            chain_path: "<inline>".into(),
            unstapled: Some((Arc::new(bare), Some(1000))),
        };
        let clock = Arc::new(Clock(AtomicU64::new(999)));
        let resolver = |ocsp_policy| SniResolver {
            keys: Arc::new(RwLock::new(Vec::new())),
            require_sni: false,
            ocsp_policy,
            clock: clock.clone(),
        };
        let staple = |k: Option<Arc<CertifiedKey>>| k.map(|k| k.ocsp.is_some());
        for policy in [
            OcspPolicy::Lenient,
            OcspPolicy::Strict,
            OcspPolicy::MustStaple,
        ] {
            assert_eq!(staple(resolver(policy).usable(&served)), Some(true));
        }
        clock.0.store(1001, Ordering::Relaxed);
        assert_eq!(
            staple(resolver(OcspPolicy::Lenient).usable(&served)),
            Some(false)
        );
        assert_eq!(staple(resolver(OcspPolicy::Strict).usable(&served)), None);
        assert_eq!(
            staple(resolver(OcspPolicy::MustStaple).usable(&served)),
            None
        );
    }
}
