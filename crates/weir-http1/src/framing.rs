//! The header fields that decide framing and connection reuse, read once and checked strictly
//! (RFC 9112 §6 and §9.3): `Content-Length`, `Transfer-Encoding`, `Connection`, `Host`,
//! `Expect`. Shared by requests and responses.

use bytes::Bytes;

use crate::Version;
use crate::ascii::eq_ignore_case;
use crate::error::Error;
use crate::headers::{Headers, is_token, list_tokens, trim_ows};

/// What the framing-relevant fields of a head say, once checked.
#[derive(Clone, Debug, Default)]
pub(crate) struct Fields {
    /// The `Content-Length`, if any (all copies agree).
    pub(crate) content_length: Option<u64>,
    /// How many `Content-Length` values there were: list elements over all the fields.
    pub(crate) content_length_values: usize,
    /// `Transfer-Encoding: chunked` (the only transfer coding accepted).
    pub(crate) chunked: bool,
    /// `Connection` has `close`.
    pub(crate) close: bool,
    /// `Connection` has `keep-alive`.
    pub(crate) keep_alive: bool,
    /// `Connection` has `upgrade`.
    pub(crate) upgrade: bool,
    /// Number of `Host` fields.
    pub(crate) hosts: usize,
    /// The first `Host` value.
    pub(crate) host: Option<Bytes>,
    /// `Expect: 100-continue`.
    pub(crate) expect_continue: bool,
}

impl Fields {
    /// Reads and checks the framing fields of a head: `Content-Length` well-formed and
    /// consistent; `Connection` naming no framing field; `Transfer-Encoding` only on HTTP/1.1,
    /// never with `Content-Length`, and exactly `chunked`.
    pub(crate) fn read(headers: &Headers, version: Version) -> Result<Fields, Error> {
        let mut fields = Fields::default();
        let mut transfer_encoding = false;
        for h in headers {
            let name: &[u8] = &h.name;
            if eq_ignore_case(name, b"content-length") {
                let (n, values) = content_length(&h.value, fields.content_length)?;
                fields.content_length = Some(n);
                fields.content_length_values += values;
            } else if eq_ignore_case(name, b"transfer-encoding") {
                transfer_encoding = true;
            } else if eq_ignore_case(name, b"connection") {
                for token in list_tokens(&h.value) {
                    if eq_ignore_case(token, b"close") {
                        fields.close = true;
                    } else if eq_ignore_case(token, b"keep-alive") {
                        fields.keep_alive = true;
                    } else if eq_ignore_case(token, b"upgrade") {
                        fields.upgrade = true;
                    } else if eq_ignore_case(token, b"content-length")
                        || eq_ignore_case(token, b"transfer-encoding")
                        || eq_ignore_case(token, b"host")
                    {
                        return Err(Error::ConnectionNamesFramingHeader);
                    }
                }
            } else if eq_ignore_case(name, b"host") {
                fields.hosts += 1;
                if fields.host.is_none() {
                    fields.host = Some(h.value.clone());
                }
            } else if eq_ignore_case(name, b"expect") {
                fields.expect_continue |= h.value.eq_ignore_ascii_case(b"100-continue");
            }
        }
        if transfer_encoding {
            if fields.content_length.is_some() {
                return Err(Error::ContentLengthAndTransferEncoding);
            }
            if version == Version::Http10 {
                return Err(Error::TransferEncodingInHttp10);
            }
            check_transfer_encoding(headers)?;
            fields.chunked = true;
        }
        Ok(fields)
    }

    /// Whether the connection stays open after this message, by its version and `Connection`.
    pub(crate) fn keep_alive(&self, version: Version) -> bool {
        match version {
            Version::Http11 => !self.close,
            Version::Http10 => self.keep_alive && !self.close,
        }
    }
}

/// Parses one `Content-Length` field value (maybe a list of identical values) and checks it
/// against the value of earlier fields. Returns the value and how many list elements held it.
fn content_length(value: &[u8], earlier: Option<u64>) -> Result<(u64, usize), Error> {
    let mut found = earlier;
    let mut values = 0;
    for element in value.split(|&b| b == b',') {
        values += 1;
        let digits = trim_ows(element);
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return Err(Error::InvalidContentLength);
        }
        let mut n: u64 = 0;
        for &d in digits {
            n = n
                .checked_mul(10)
                .and_then(|n| n.checked_add(u64::from(d - b'0')))
                .ok_or(Error::InvalidContentLength)?;
        }
        match found {
            Some(f) if f != n => return Err(Error::DifferentContentLengths),
            _ => found = Some(n),
        }
    }
    found
        .map(|n| (n, values))
        .ok_or(Error::InvalidContentLength)
}

/// True for a field name that is not `content-length` or `transfer-encoding` but spells one of
/// them with other separators or none: `Transfer_Encoding`, `content.length`,
/// `Transfer--Encoding`, `TransferEncoding`. Letters and digits are compared ignoring case;
/// everything else in the name is skipped.
pub(crate) fn lookalike_framing_name(name: &[u8]) -> bool {
    const FRAMING: [(&[u8], &[u8]); 2] = [
        (b"contentlength", b"content-length"),
        (b"transferencoding", b"transfer-encoding"),
    ];
    // Most names are shorter; the others fail at their first letter or two.
    if name.len() < 13 {
        return false;
    }
    FRAMING.iter().any(|(letters, exact)| {
        let mut wanted = letters.iter();
        let same_letters = name
            .iter()
            .filter(|b| b.is_ascii_alphanumeric())
            .all(|b| wanted.next().is_some_and(|w| b.eq_ignore_ascii_case(w)));
        same_letters && wanted.next().is_none() && !name.eq_ignore_ascii_case(exact)
    })
}

/// Accepts exactly one coding, `chunked`, across all `Transfer-Encoding` fields.
fn check_transfer_encoding(headers: &Headers) -> Result<(), Error> {
    let mut codings = 0usize;
    let mut chunked = 0usize;
    let mut last_is_chunked = false;
    for value in headers.get_all("transfer-encoding") {
        for element in value.split(|&b| b == b',') {
            let element = trim_ows(element);
            if element.is_empty() {
                // An empty list element is allowed by the list syntax; skip it.
                continue;
            }
            // transfer-coding = token *( OWS ";" OWS transfer-parameter )
            let (name, params) = match memchr::memchr(b';', element) {
                Some(i) => (trim_ows(&element[..i]), Some(&element[i..])),
                None => (element, None),
            };
            if !is_token(name) {
                return Err(Error::InvalidTransferEncoding);
            }
            codings += 1;
            last_is_chunked = name.eq_ignore_ascii_case(b"chunked");
            if last_is_chunked {
                if params.is_some() {
                    // chunked takes no parameters.
                    return Err(Error::InvalidTransferEncoding);
                }
                chunked += 1;
            }
        }
    }
    if codings == 0 {
        Err(Error::InvalidTransferEncoding)
    } else if chunked > 1 {
        Err(Error::ChunkedAppliedTwice)
    } else if !last_is_chunked {
        Err(Error::TransferEncodingNotChunked)
    } else if codings > 1 {
        Err(Error::UnsupportedTransferCoding)
    } else {
        Ok(())
    }
}

/// Reads an HTTP-version token: `HTTP/1.0` or `HTTP/1.1`; a higher minor version of HTTP/1 is
/// read as HTTP/1.1 (RFC 9110 §2.5: "SHOULD process the message as if it were in the highest
/// minor version within that major version to which the recipient is conformant"); another
/// `HTTP/DIGIT.DIGIT` is unsupported; anything else is not a version.
pub(crate) fn version(token: &[u8]) -> Result<Version, Error> {
    match token {
        b"HTTP/1.1" => Ok(Version::Http11),
        b"HTTP/1.0" => Ok(Version::Http10),
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', minor] if minor.is_ascii_digit() => {
            Ok(Version::Http11)
        }
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            Err(Error::UnsupportedVersion)
        }
        _ => Err(Error::InvalidVersion),
    }
}

/// When the version token at `at` in `head` is `HTTP/1.2` to `HTTP/1.9` (which [`version`]
/// reads as HTTP/1.1 but httparse refuses), a copy of `head` with `HTTP/1.1` there; else
/// `None`. Rare enough for the copy not to matter.
pub(crate) fn with_version_httparse_knows(head: &Bytes, at: usize) -> Option<Bytes> {
    match head.get(at..at + 9)? {
        [
            b'H',
            b'T',
            b'T',
            b'P',
            b'/',
            b'1',
            b'.',
            b'2'..=b'9',
            b' ' | b'\r',
        ] => {
            let mut copy = head.to_vec();
            copy[at + 7] = b'1';
            Some(Bytes::from(copy))
        }
        _ => None,
    }
}

/// How many fields httparse's slots hold on the stack; a head with more gets them on the heap.
/// Most requests and responses have fewer, and a heap vector was an allocation and a free per
/// message (about 300 instructions of a proxied request's 27 000).
const STACK_FIELDS: usize = 24;

/// Runs `parse` with `fields` empty httparse slots (the scanner counted the head's fields).
pub(crate) fn with_field_slots<'h, R>(
    fields: usize,
    parse: impl FnOnce(&mut [httparse::Header<'h>]) -> R,
) -> R {
    if fields <= STACK_FIELDS {
        let mut slots = [httparse::EMPTY_HEADER; STACK_FIELDS];
        parse(&mut slots[..fields])
    } else {
        parse(&mut vec![httparse::EMPTY_HEADER; fields])
    }
}

/// Maps an httparse error in a field section to ours.
pub(crate) fn field_error(e: httparse::Error) -> Error {
    match e {
        httparse::Error::TooManyHeaders => Error::TooManyHeaders,
        httparse::Error::HeaderValue | httparse::Error::NewLine => Error::InvalidHeaderValue,
        httparse::Error::HeaderName
        | httparse::Error::Token
        | httparse::Error::Status
        | httparse::Error::Version => Error::InvalidHeaderName,
    }
}

/// Checks a `Host` value (or the authority of a target): empty, or `uri-host [ ":" port ]`
/// (RFC 9110 §7.2). A comma is a sub-delim that a reg-name may hold, but no DNS name has one and
/// a next hop that reads the field as a list would see two hosts: it is refused.
pub(crate) fn valid_host(value: &[u8]) -> bool {
    value.is_empty() || (!value.contains(&b',') && split_host_port(value).is_some())
}

/// Splits `uri-host [ ":" port ]` into host and port, where uri-host is an IP-literal in
/// brackets or a reg-name / IPv4 address (RFC 3986 §3.2.2) and port is `*DIGIT`. `None` when
/// `value` is not of that form or the host is empty.
pub(crate) fn split_host_port(value: &[u8]) -> Option<(&[u8], Option<&[u8]>)> {
    let (host, rest) = if value.first() == Some(&b'[') {
        let close = memchr::memchr(b']', value)?;
        let inner = &value[1..close];
        let valid = !inner.is_empty()
            && inner
                .iter()
                // IPv6 (with an optional percent-encoded zone id) or IPvFuture.
                .all(|&b| {
                    b.is_ascii_alphanumeric()
                        || is_unreserved_or_sub_delim(b)
                        || b == b':'
                        || b == b'%'
                });
        if !valid {
            return None;
        }
        value.split_at(close + 1)
    } else {
        let (host, rest) = value.split_at(memchr::memchr(b':', value).unwrap_or(value.len()));
        if host.is_empty() || !valid_reg_name(host) {
            return None;
        }
        (host, rest)
    };
    match rest.split_first() {
        None => Some((host, None)),
        Some((b':', port)) if port.iter().all(u8::is_ascii_digit) => Some((host, Some(port))),
        Some(_) => None,
    }
}

fn valid_reg_name(s: &[u8]) -> bool {
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        if b == b'%' {
            let hex = s.get(i + 1..i + 3);
            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                return false;
            }
            i += 3;
        } else if b.is_ascii_alphanumeric() || is_unreserved_or_sub_delim(b) {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

/// unreserved (less ALPHA / DIGIT) and sub-delims of RFC 3986.
fn is_unreserved_or_sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'-' | b'.'
            | b'_'
            | b'~'
            | b'!'
            | b'$'
            | b'&'
            | b'\''
            | b'('
            | b')'
            | b'*'
            | b'+'
            | b','
            | b';'
            | b'='
    )
}

/// True when `b` may not appear anywhere in a request-target: controls, space, `#`, non-ASCII.
pub(crate) fn is_bad_target_byte(b: u8) -> bool {
    b <= b' ' || b == b'#' || b >= 0x7F
}
