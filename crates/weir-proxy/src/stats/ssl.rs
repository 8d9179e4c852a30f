//! `listener.<address>.ssl.*`: a TLS listener's handshake stats, with Envoy's names.
//!
//! The per-version, per-cipher and per-curve counters exist once used, as Envoy creates them;
//! their names are fixed tables (what rustls can negotiate), so counting is an index.

use super::{Counter, StatRef};
use crate::network::tls::{TlsInfo, VerifyFailure};

/// Counters every TLS listener shows, used or not (Envoy's).
const FIXED: [&str; 12] = [
    "connection_error",
    "handshake",
    "session_reused",
    "no_certificate",
    "fail_verify_no_cert",
    "fail_verify_error",
    "fail_verify_san",
    "fail_verify_cert_hash",
    "ocsp_staple_failed",
    "ocsp_staple_omitted",
    "ocsp_staple_responses",
    "ocsp_staple_requests",
];
const CONNECTION_ERROR: usize = 0;
const HANDSHAKE: usize = 1;
const SESSION_REUSED: usize = 2;
const NO_CERTIFICATE: usize = 3;
const FAIL_VERIFY_NO_CERT: usize = 4;
const FAIL_VERIFY_ERROR: usize = 5;
const FAIL_VERIFY_SAN: usize = 6;

const VERSIONS: [&str; 2] = ["TLSv1.2", "TLSv1.3"];
/// What rustls negotiates, by Envoy's names (OpenSSL's for TLS 1.2).
const CIPHERS: [&str; 9] = [
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-RSA-CHACHA20-POLY1305",
];
const CURVES: [&str; 5] = ["X25519", "P-256", "P-384", "P-521", "X25519MLKEM768"];

/// One listener's `ssl.*` on one worker.
#[derive(Debug, Default)]
pub struct SslStats {
    fixed: [Counter; FIXED.len()],
    versions: [Counter; VERSIONS.len()],
    ciphers: [Counter; CIPHERS.len()],
    curves: [Counter; CURVES.len()],
}

impl SslStats {
    /// Adds `from`'s counts to these (see `grow.rs`).
    pub(crate) fn absorb(&self, from: &SslStats) {
        use super::grow::absorb_counters;
        absorb_counters(&self.fixed, &from.fixed);
        absorb_counters(&self.versions, &from.versions);
        absorb_counters(&self.ciphers, &from.ciphers);
        absorb_counters(&self.curves, &from.curves);
    }

    /// Every count back to zero (see `grow.rs`).
    pub(crate) fn clear(&self) {
        (self.fixed.iter())
            .chain(&self.versions)
            .chain(&self.ciphers)
            .chain(&self.curves)
            .for_each(Counter::clear);
    }

    /// A completed handshake.
    pub(crate) fn handshake(&self, info: &TlsInfo) {
        self.fixed[HANDSHAKE].inc();
        if info.resumed {
            self.fixed[SESSION_REUSED].inc();
        }
        if !info.peer_certificate {
            self.fixed[NO_CERTIFICATE].inc();
        }
        count(&self.versions, &VERSIONS, info.version);
        count(&self.ciphers, &CIPHERS, &info.cipher);
        if let Some(curve) = &info.curve {
            count(&self.curves, &CURVES, curve);
        }
    }

    /// A failed handshake.
    pub(crate) fn connection_error(&self) {
        self.fixed[CONNECTION_ERROR].inc();
    }

    /// A handshake that failed on the client's certificate (not a `connection_error`, in
    /// Envoy's count).
    pub(crate) fn fail_verify(&self, why: VerifyFailure) {
        let i = match why {
            VerifyFailure::NoCertificate => FAIL_VERIFY_NO_CERT,
            VerifyFailure::Chain => FAIL_VERIFY_ERROR,
            VerifyFailure::SubjectAltName => FAIL_VERIFY_SAN,
        };
        self.fixed[i].inc();
    }

    /// The counters every TLS listener shows.
    pub(crate) fn each_fixed(&self, f: &mut dyn FnMut(&str, StatRef<'_>)) {
        for (name, c) in FIXED.iter().zip(&self.fixed) {
            f(&format!("ssl.{name}"), StatRef::Counter(c));
        }
    }

    /// The counters that exist once used.
    pub(crate) fn each_named(&self, f: &mut dyn FnMut(&str, StatRef<'_>)) {
        let groups: [(&str, &[&str], &[Counter]); 3] = [
            ("versions", &VERSIONS, &self.versions),
            ("ciphers", &CIPHERS, &self.ciphers),
            ("curves", &CURVES, &self.curves),
        ];
        for (group, names, counters) in groups {
            for (name, c) in names.iter().zip(counters) {
                f(&format!("ssl.{group}.{name}"), StatRef::Counter(c));
            }
        }
    }
}

fn count(counters: &[Counter], names: &[&str], name: &str) {
    if let Some(i) = names.iter().position(|n| *n == name) {
        counters[i].inc();
    }
}
