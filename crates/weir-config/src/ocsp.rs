//! OCSP responses stapled to a listener's certificates (`tls_certificates[].ocsp_staple`), and
//! `ocsp_staple_policy`, as Envoy reads them: a response must be `successful`, a basic
//! response, and about the certificate it is stapled to (the same serial); one that has expired
//! is refused when the config is read. At handshake time an expired response is left out
//! (`LENIENT_STAPLING`) or its certificate is not used (`STRICT_STAPLING`, `MUST_STAPLE`).
//!
//! Only the fields those checks need are read: the DER is walked by hand with `der-parser`
//! (already in the tree through x509-parser), not interpreted beyond that. The response's
//! signature is the client's to check, as with BoringSSL.

use x509_parser::der_parser::ber::{BerObject, BerObjectContent};
use x509_parser::der_parser::der::parse_der;

/// `ocsp_staple_policy`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum OcspPolicy {
    /// `LENIENT_STAPLING` (Envoy's default): staple a valid response, else none.
    #[default]
    Lenient,
    /// `STRICT_STAPLING`: a certificate whose response expired is not used.
    Strict,
    /// `MUST_STAPLE`: every certificate needs a response, and one whose response expired is
    /// not used.
    MustStaple,
}

/// What a stapled response says, as far as the policy needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Staple {
    /// The serial of the certificate it is about (big-endian).
    pub(crate) serial: Vec<u8>,
    /// `nextUpdate`, Unix seconds; `None`: the responder gave none (it never expires).
    pub(crate) next_update: Option<u64>,
}

/// id-pkix-ocsp-basic.
const BASIC: &str = "1.3.6.1.5.5.7.48.1.1";

/// Reads an `OCSPResponse`; the error says what is wrong with it.
pub(crate) fn parse(der: &[u8]) -> Result<Staple, String> {
    let bad = |what: &str| format!("not an OCSP response: {what}");
    let (_, response) = parse_der(der).map_err(|_| bad("bad DER"))?;
    let fields = seq(&response).ok_or_else(|| bad("not a SEQUENCE"))?;
    let status = fields.first().ok_or_else(|| bad("no responseStatus"))?;
    match status.content {
        BerObjectContent::Enum(0) => {}
        BerObjectContent::Enum(n) => {
            return Err(format!(
                "the OCSP response's status is {n}, not successful (0)"
            ));
        }
        _ => return Err(bad("no responseStatus")),
    }
    let bytes = explicit(fields.get(1).ok_or_else(|| bad("no responseBytes"))?)
        .ok_or_else(|| bad("bad responseBytes"))?;
    let bytes = seq(&bytes).ok_or_else(|| bad("bad responseBytes"))?;
    let kind = bytes
        .first()
        .and_then(|o| o.as_oid().ok())
        .map(|o| o.to_id_string());
    if kind.as_deref() != Some(BASIC) {
        return Err(bad("not a basic OCSP response"));
    }
    let basic = bytes
        .get(1)
        .and_then(|o| o.as_slice().ok())
        .ok_or_else(|| bad("no response"))?;
    let (_, basic) = parse_der(basic).map_err(|_| bad("bad BasicOCSPResponse"))?;
    let tbs = seq(&basic)
        .and_then(|s| s.first().cloned())
        .ok_or_else(|| bad("no tbsResponseData"))?;
    let tbs = seq(&tbs).ok_or_else(|| bad("bad tbsResponseData"))?;
    // [0] version, responderID ([1] or [2]), producedAt, responses: the first SEQUENCE of
    // SEQUENCEs after the optional version.
    let responses = tbs
        .iter()
        .find(|o| {
            seq(o).is_some_and(|items| items.first().is_some_and(|first| seq(first).is_some()))
        })
        .and_then(seq)
        .ok_or_else(|| bad("no responses"))?;
    let single = responses.first().ok_or_else(|| bad("no SingleResponse"))?;
    let single = seq(single).ok_or_else(|| bad("bad SingleResponse"))?;
    let cert_id = single
        .first()
        .and_then(seq)
        .ok_or_else(|| bad("no CertID"))?;
    let serial = cert_id
        .get(3)
        .and_then(|o| o.as_bigint().ok())
        .map(|n| n.to_bytes_be().1)
        .ok_or_else(|| bad("no serial number"))?;
    // certID, certStatus, thisUpdate, then nextUpdate as [0] EXPLICIT when present.
    let next_update = match single.get(3) {
        Some(o) if o.header.tag().0 == 0 && !o.header.is_universal() => {
            let time = explicit(o).ok_or_else(|| bad("bad nextUpdate"))?;
            Some(generalized_time(&time).ok_or_else(|| bad("bad nextUpdate"))?)
        }
        _ => None,
    };
    Ok(Staple {
        serial,
        next_update,
    })
}

fn seq<'a>(o: &BerObject<'a>) -> Option<Vec<BerObject<'a>>> {
    o.as_sequence().ok().cloned()
}

/// The object inside an `[n] EXPLICIT` tag.
fn explicit<'a>(o: &BerObject<'a>) -> Option<BerObject<'a>> {
    match &o.content {
        BerObjectContent::Tagged(_, _, inner) => Some((**inner).clone()),
        BerObjectContent::Unknown(any) => parse_der(any.data).ok().map(|(_, inner)| inner),
        _ => None,
    }
}

/// A `GeneralizedTime` (`YYYYMMDDHHMMSS[.f]Z`) as Unix seconds.
fn generalized_time(o: &BerObject<'_>) -> Option<u64> {
    let BerObjectContent::GeneralizedTime(t) = &o.content else {
        return None;
    };
    let days = days_from_civil(i64::from(t.year), u32::from(t.month), u32::from(t.day));
    let secs =
        days * 86_400 + i64::from(t.hour) * 3600 + i64::from(t.minute) * 60 + i64::from(t.second);
    u64::try_from(secs).ok()
}

/// Days from 1970-01-01 to a date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(month) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2026, 12, 7), 20_794);
    }

    #[test]
    fn garbage_is_not_a_response() {
        assert!(parse(b"nonsense").is_err());
        // SEQUENCE { ENUMERATED 6 (unauthorized) }
        let unauthorized = [0x30, 0x03, 0x0a, 0x01, 0x06];
        assert_eq!(
            parse(&unauthorized),
            Err("the OCSP response's status is 6, not successful (0)".to_owned())
        );
    }
}
