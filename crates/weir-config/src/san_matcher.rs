//! `validation_context.match_typed_subject_alt_names`: which peer certificates pass, by their
//! subject alternative names, as Envoy decides it. A certificate passes when any of its names
//! matches any matcher of the same type; a DNS matcher with `exact` follows DNS wildcard rules
//! (a certificate name `*.example.com` covers `a.example.com`, not `a.b.example.com`).

use rustls::pki_types::CertificateDer;

use crate::cert_info::{CertInfo, San};
use crate::model::{StringMatchKind, StringMatcher};
use crate::reader::{Cx, Field, Obj};
use crate::route_match::string_matcher;

/// The type of name a matcher looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SanType {
    /// `DNS`.
    Dns,
    /// `EMAIL`.
    Email,
    /// `URI`.
    Uri,
    /// `IP_ADDRESS`, compared in its text form.
    IpAddress,
}

/// One `match_typed_subject_alt_names[]` entry.
#[derive(Debug, Clone)]
pub struct SanMatcher {
    /// `san_type`.
    pub san_type: SanType,
    /// `matcher`.
    pub matcher: StringMatcher,
}

impl SanMatcher {
    /// Whether `san` is of this matcher's type and matches it.
    pub fn matches(&self, san: &San) -> bool {
        match (self.san_type, san) {
            (SanType::Dns, San::Dns(name)) => match &self.matcher.kind {
                StringMatchKind::Exact(wanted) => dns_name_match(wanted, name),
                _ => self.matcher.matches(name),
            },
            (SanType::Email, San::Email(s)) | (SanType::Uri, San::Uri(s)) => {
                self.matcher.matches(s)
            }
            (SanType::IpAddress, San::Ip(ip)) => self.matcher.matches(&ip.to_string()),
            _ => false,
        }
    }
}

/// Whether a peer's end-entity certificate passes `matchers` (all pass when there are none).
pub(crate) fn certificate_passes(matchers: &[SanMatcher], end_entity: &CertificateDer<'_>) -> bool {
    if matchers.is_empty() {
        return true;
    }
    CertInfo::parse(end_entity).is_some_and(|info| {
        info.sans
            .iter()
            .any(|san| matchers.iter().any(|m| m.matches(san)))
    })
}

/// Envoy's `dnsNameMatch`: `name` equals `pattern` (ignoring case), or `pattern` is
/// `*.suffix` and `name` is one label before `.suffix`.
fn dns_name_match(name: &str, pattern: &str) -> bool {
    if name.eq_ignore_ascii_case(pattern) {
        return true;
    }
    let Some(suffix) = pattern.strip_prefix('*') else {
        return false;
    };
    if !suffix.starts_with('.') || name.len() <= suffix.len() {
        return false;
    }
    let (label, rest) = name.split_at(name.len() - suffix.len());
    rest.eq_ignore_ascii_case(suffix) && !label.contains('.')
}

/// `match_typed_subject_alt_names`.
pub(crate) fn san_matchers(cx: &mut Cx, items: &[Field<'_>]) -> Option<Vec<SanMatcher>> {
    let mut out = Vec::with_capacity(items.len());
    let mut ok = true;
    for item in items {
        match san_matcher(cx, item) {
            Some(m) => out.push(m),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn san_matcher(cx: &mut Cx, f: &Field<'_>) -> Option<SanMatcher> {
    let mut o = Obj::new(cx, f, &["oid"])?;
    let san_type = o.required(cx, "san_type").and_then(|t| {
        let name = t.string(cx)?;
        Some(match name.as_str() {
            "DNS" => SanType::Dns,
            "EMAIL" => SanType::Email,
            "URI" => SanType::Uri,
            "IP_ADDRESS" => SanType::IpAddress,
            "OTHER_NAME" => {
                cx.error(&t.path, "san_type OTHER_NAME is not supported by weir yet");
                return None;
            }
            other => {
                cx.error(
                    &t.path,
                    format!("unknown san_type `{other}` (DNS, EMAIL, URI, IP_ADDRESS)"),
                );
                return None;
            }
        })
    });
    let matcher = o
        .required(cx, "matcher")
        .and_then(|m| string_matcher(cx, &m));
    o.finish(cx);
    Some(SanMatcher {
        san_type: san_type?,
        matcher: matcher?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(s: &str) -> StringMatcher {
        StringMatcher {
            kind: StringMatchKind::Exact(s.into()),
            ignore_case: false,
        }
    }

    #[test]
    fn dns_wildcards_cover_one_label() {
        assert!(dns_name_match("a.example.com", "*.example.com"));
        assert!(dns_name_match("A.Example.com", "a.example.COM"));
        assert!(!dns_name_match("a.b.example.com", "*.example.com"));
        assert!(!dns_name_match("example.com", "*.example.com"));
        assert!(!dns_name_match(".example.com", "*.example.com"));
        assert!(!dns_name_match("a.example.com", "*example.com"));
    }

    #[test]
    fn a_matcher_looks_at_its_type_only() {
        let dns = SanMatcher {
            san_type: SanType::Dns,
            matcher: exact("api.test"),
        };
        assert!(dns.matches(&San::Dns("*.test".into())));
        assert!(!dns.matches(&San::Uri("api.test".into())));
        let ip = SanMatcher {
            san_type: SanType::IpAddress,
            matcher: exact("127.0.0.1"),
        };
        assert!(ip.matches(&San::Ip("127.0.0.1".parse().expect("ip"))));
        let uri = SanMatcher {
            san_type: SanType::Uri,
            matcher: StringMatcher {
                kind: StringMatchKind::Prefix("spiffe://cluster.local/".into()),
                ignore_case: false,
            },
        };
        assert!(uri.matches(&San::Uri("spiffe://cluster.local/ns/a".into())));
        assert!(!uri.matches(&San::Uri("spiffe://other/ns/a".into())));
    }
}
