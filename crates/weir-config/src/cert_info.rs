//! What a certificate says, in Envoy's words: its subject and issuer as OpenSSL prints them
//! (RFC 2253), serial, names, validity and fingerprint. Admin `/certs`, the peer-certificate
//! access-log operators and `match_typed_subject_alt_names` read certificates through this.

use std::fmt::Write;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use x509_parser::prelude::{FromDer, GeneralName, X509Certificate, X509Name};

use crate::crypto::lib;

/// One subject alternative name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum San {
    /// `dNSName`.
    Dns(String),
    /// `uniformResourceIdentifier` (SPIFFE ids are these).
    Uri(String),
    /// `rfc822Name`.
    Email(String),
    /// `iPAddress`.
    Ip(IpAddr),
}

impl San {
    /// The name as text (an address in its usual form).
    pub fn text(&self) -> String {
        match self {
            San::Dns(s) | San::Uri(s) | San::Email(s) => s.clone(),
            San::Ip(ip) => ip.to_string(),
        }
    }
}

/// A parsed certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// `CN=a.test,O=Acme\, Inc.,C=US`: RFC 2253, most specific first, as Envoy logs it.
    pub subject: String,
    /// The issuer, in the same form.
    pub issuer: String,
    /// Lower-case hex, without leading zero bytes (OpenSSL's `BN_bn2hex`).
    pub serial: String,
    /// In the order the certificate lists them.
    pub sans: Vec<San>,
    /// Valid from.
    pub not_before: SystemTime,
    /// Valid until.
    pub not_after: SystemTime,
    /// SHA-256 of the DER, lower-case hex.
    pub sha256: String,
}

impl CertInfo {
    /// Parses a DER certificate; `None` when it is not one.
    pub fn parse(der: &[u8]) -> Option<CertInfo> {
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        let serial = serial_hex(cert.raw_serial());
        let sans = match cert.subject_alternative_name() {
            Ok(Some(ext)) => ext.value.general_names.iter().filter_map(san).collect(),
            _ => Vec::new(),
        };
        let validity = cert.validity();
        Some(CertInfo {
            subject: rfc2253(cert.subject()),
            issuer: rfc2253(cert.issuer()),
            serial,
            sans,
            not_before: time(validity.not_before.timestamp()),
            not_after: time(validity.not_after.timestamp()),
            sha256: hex(lib::digest::digest(&lib::digest::SHA256, der).as_ref()),
        })
    }

    /// The names of one kind, joined by commas (how Envoy logs `%DOWNSTREAM_PEER_URI_SAN%`).
    pub fn sans_of(&self, kind: fn(&San) -> bool) -> String {
        let names: Vec<String> = self
            .sans
            .iter()
            .filter(|s| kind(s))
            .map(San::text)
            .collect();
        names.join(",")
    }
}

fn san(name: &GeneralName<'_>) -> Option<San> {
    Some(match name {
        GeneralName::DNSName(s) => San::Dns((*s).to_owned()),
        GeneralName::URI(s) => San::Uri((*s).to_owned()),
        GeneralName::RFC822Name(s) => San::Email((*s).to_owned()),
        GeneralName::IPAddress(b) => San::Ip(match b.len() {
            4 => IpAddr::from(<[u8; 4]>::try_from(*b).ok()?),
            16 => IpAddr::from(<[u8; 16]>::try_from(*b).ok()?),
            _ => return None,
        }),
        _ => return None,
    })
}

fn time(unix: i64) -> SystemTime {
    match u64::try_from(unix) {
        Ok(secs) => UNIX_EPOCH + Duration::from_secs(secs),
        Err(_) => UNIX_EPOCH - Duration::from_secs(unix.unsigned_abs()),
    }
}

/// A serial number (big-endian bytes) as OpenSSL's `BN_bn2hex` prints it, lower-cased: no
/// leading zero bytes, `0` for zero. `/certs`, the access log and OCSP staples compare it so.
pub(crate) fn serial_hex(serial: &[u8]) -> String {
    let significant = serial.iter().position(|&b| b != 0).unwrap_or(serial.len());
    match hex(&serial[significant..]) {
        s if s.is_empty() => "0".to_owned(),
        s => s,
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Attribute short names as OpenSSL prints them.
const SHORT_NAMES: &[(&str, &str)] = &[
    ("2.5.4.3", "CN"),
    ("2.5.4.4", "SN"),
    ("2.5.4.5", "serialNumber"),
    ("2.5.4.6", "C"),
    ("2.5.4.7", "L"),
    ("2.5.4.8", "ST"),
    ("2.5.4.9", "street"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("2.5.4.12", "title"),
    ("2.5.4.42", "GN"),
    ("0.9.2342.19200300.100.1.1", "UID"),
    ("0.9.2342.19200300.100.1.25", "DC"),
    ("1.2.840.113549.1.9.1", "emailAddress"),
];

/// A name as OpenSSL's `X509_NAME_print_ex(…, XN_FLAG_RFC2253)` prints it: the last RDN
/// first, RDNs joined by `,`, values of a multi-valued RDN by `+`, RFC 2253's specials and
/// non-ASCII bytes escaped.
fn rfc2253(name: &X509Name<'_>) -> String {
    let mut out = String::new();
    let rdns: Vec<_> = name.iter_rdn().collect();
    for (i, rdn) in rdns.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, atv) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            let oid = atv.attr_type().to_id_string();
            match SHORT_NAMES.iter().find(|(id, _)| *id == oid) {
                Some((_, short)) => out.push_str(short),
                None => out.push_str(&oid),
            }
            out.push('=');
            match atv.as_str() {
                Ok(value) => escape(value, &mut out),
                Err(_) => {
                    out.push('#');
                    out.push_str(&hex(atv.attr_value().data));
                }
            }
        }
    }
    out
}

fn escape(value: &str, out: &mut String) {
    let last = value.len().saturating_sub(1);
    for (i, &b) in value.as_bytes().iter().enumerate() {
        match b {
            b',' | b'+' | b'"' | b'\\' | b'<' | b'>' | b';' => {
                out.push('\\');
                out.push(char::from(b));
            }
            b'#' if i == 0 => out.push_str("\\#"),
            b' ' if i == 0 || i == last => out.push_str("\\ "),
            0x20..0x7f => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\{b:02X}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_envoy_shows() {
        let mut params = rcgen::CertificateParams::new(vec!["a.test".into(), "*.b.test".into()])
            .expect("params");
        params
            .subject_alt_names
            .push(rcgen::SanType::URI("spiffe://x/y".try_into().expect("uri")));
        params
            .subject_alt_names
            .push(rcgen::SanType::IpAddress("127.0.0.1".parse().expect("ip")));
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CountryName, "US");
        dn.push(rcgen::DnType::OrganizationName, "Acme, Inc.");
        dn.push(rcgen::DnType::CommonName, "a.test");
        params.distinguished_name = dn;
        params.serial_number = Some(vec![0x00, 0x05, 0x41, 0xfb].into());
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("cert");
        let info = CertInfo::parse(cert.der()).expect("parses");
        assert_eq!(info.subject, r"CN=a.test,O=Acme\, Inc.,C=US");
        assert_eq!(info.issuer, info.subject);
        assert_eq!(info.serial, "0541fb");
        assert_eq!(info.sha256.len(), 64);
        assert_eq!(
            info.sans,
            vec![
                San::Dns("a.test".into()),
                San::Dns("*.b.test".into()),
                San::Uri("spiffe://x/y".into()),
                San::Ip("127.0.0.1".parse().expect("ip")),
            ]
        );
        assert_eq!(
            info.sans_of(|s| matches!(s, San::Dns(_))),
            "a.test,*.b.test"
        );
        assert!(info.not_before < info.not_after);
        assert!(CertInfo::parse(b"not a certificate").is_none());
    }

    #[test]
    fn escapes_as_rfc_2253() {
        let mut out = String::new();
        escape("#a b;c ", &mut out);
        assert_eq!(out, r"\#a b\;c\ ");
        let mut out = String::new();
        escape("é", &mut out);
        assert_eq!(out, r"\C3\A9");
    }
}
