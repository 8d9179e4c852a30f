//! How peers' certificates are verified: a listener's clients (mTLS) and a cluster's origins,
//! as Envoy verifies them (see [`crate::tls_upstream`] for the origin's rules), with
//! `match_typed_subject_alt_names`; and verifiers whose CA an SDS file can replace while they
//! serve (new handshakes use the new CA).

use std::sync::{Arc, RwLock};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme,
};

use crate::san_matcher::{SanMatcher, certificate_passes};
use crate::tls::Validation;

fn roots(validation: &Validation) -> Result<Arc<RootCertStore>, String> {
    let mut roots = RootCertStore::empty();
    for ca in &validation.trusted_ca {
        roots
            .add(ca.clone())
            .map_err(|e| format!("trusted_ca: bad CA certificate: {e}"))?;
    }
    Ok(Arc::new(roots))
}

/// A listener's client verifier: the chain to `trusted_ca` (a certificate `required`, or only
/// checked when offered), then the names.
pub(crate) fn client_verifier(
    validation: Validation,
    required: bool,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, String> {
    let mut verifier =
        WebPkiClientVerifier::builder_with_provider(roots(&validation)?, provider.clone())
            .with_crls(validation.crls.iter().cloned());
    if validation.crl_leaf_only {
        verifier = verifier.only_check_end_entity_revocation();
    }
    let verifier = if required {
        verifier
    } else {
        verifier.allow_unauthenticated()
    };
    let verifier = verifier
        .build()
        .map_err(|e| format!("validation_context: {e}"))?;
    Ok(if validation.sans.is_empty() {
        verifier
    } else {
        Arc::new(SanCheckedClient {
            inner: verifier,
            sans: validation.sans,
        })
    })
}

/// A cluster's origin verifier: none without a `validation_context` (Envoy's default), else
/// the chain, then the names (`check_names`: the SNI too).
pub(crate) fn server_verifier(
    validation: Option<Validation>,
    check_names: bool,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ServerCertVerifier>, String> {
    Ok(match validation {
        Some(validation) => {
            let mut inner =
                WebPkiServerVerifier::builder_with_provider(roots(&validation)?, provider.clone())
                    .with_crls(validation.crls.iter().cloned());
            if validation.crl_leaf_only {
                inner = inner.only_check_end_entity_revocation();
            }
            let inner = inner
                .build()
                .map_err(|e| format!("validation_context: {e}"))?;
            Arc::new(ChainOnly {
                inner,
                sans: validation.sans,
                check_names,
            })
        }
        None => Arc::new(Unverified {
            provider: provider.clone(),
        }),
    })
}

/// A client verifier whose CA an SDS file gives: [`SwapClient::replace`] puts a new one in
/// for the handshakes that follow. It sends no CA names in its certificate request (the names
/// would have to outlive a swap): clients offer whichever certificate they have.
#[derive(Debug)]
pub(crate) struct SwapClient {
    current: RwLock<Arc<dyn ClientCertVerifier>>,
    mandatory: bool,
}

impl SwapClient {
    pub(crate) fn new(first: Arc<dyn ClientCertVerifier>) -> SwapClient {
        let mandatory = first.client_auth_mandatory();
        SwapClient {
            current: RwLock::new(first),
            mandatory,
        }
    }

    pub(crate) fn replace(&self, next: Arc<dyn ClientCertVerifier>) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = next;
    }

    fn now(&self) -> Arc<dyn ClientCertVerifier> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl ClientCertVerifier for SwapClient {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.now()
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.now().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.now().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.now().supported_verify_schemes()
    }
}

/// An origin verifier whose CA an SDS file gives, replaced the same way.
#[derive(Debug)]
pub(crate) struct SwapServer {
    current: RwLock<Arc<dyn ServerCertVerifier>>,
}

impl SwapServer {
    pub(crate) fn new(first: Arc<dyn ServerCertVerifier>) -> SwapServer {
        SwapServer {
            current: RwLock::new(first),
        }
    }

    pub(crate) fn replace(&self, next: Arc<dyn ServerCertVerifier>) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = next;
    }

    fn now(&self) -> Arc<dyn ServerCertVerifier> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl ServerCertVerifier for SwapServer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.now()
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.now().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.now().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.now().supported_verify_schemes()
    }
}

/// A client verifier that, once the chain is good, also requires one of the certificate's
/// names to pass `match_typed_subject_alt_names`. A failure is `NotValidForName`, which the
/// listener counts as `ssl.fail_verify_san`.
#[derive(Debug)]
struct SanCheckedClient {
    inner: Arc<dyn ClientCertVerifier>,
    sans: Vec<SanMatcher>,
}

impl ClientCertVerifier for SanCheckedClient {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        if certificate_passes(&self.sans, end_entity) {
            Ok(verified)
        } else {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Verifies the chain against `trusted_ca`, and the names only against
/// `match_typed_subject_alt_names` (see the module documentation).
#[derive(Debug)]
struct ChainOnly {
    inner: Arc<WebPkiServerVerifier>,
    sans: Vec<SanMatcher>,
    /// `auto_sni_san_validation` (or the cluster's `auto_san_validation`): the certificate must
    /// be valid for the SNI the connection sent, too.
    check_names: bool,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // webpki checks the chain first and the name last: a name error means the chain held.
        match self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Ok(_) => {}
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_names => {}
            Err(other) => return Err(other),
        }
        if certificate_passes(&self.sans, end_entity) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Accepts any certificate (no `validation_context`, as Envoy), while still checking that the
/// origin holds its key.
#[derive(Debug)]
struct Unverified {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
