//! Writing heads and chunk framing. The caller owns which headers are present (it removes
//! hop-by-hop ones itself); the encoders write what they are given, with header names verbatim
//! or in the [`NameCase`] asked for (the `_as` variants).

use bytes::Bytes;

use crate::ascii::{eq_ignore_case, write_lower};
use crate::headers::Headers;
use crate::request::RequestHead;
use crate::response::ResponseHead;

/// The line ending, also what follows each chunk's data.
pub const CRLF: &[u8] = b"\r\n";

/// The last chunk and an empty trailer section: the end of a chunked body.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

const TRANSFER_ENCODING: &[u8] = b"transfer-encoding";
const CHUNKED: &[u8] = b": chunked\r\n";

/// How an encoder writes header names (Envoy's `header_key_format`). None allocates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameCase<'a> {
    /// As given.
    AsGiven,
    /// In lower case (as Envoy's HTTP/1 codec writes them by default).
    Lower,
    /// In proper case, as Envoy's `proper_case_words`: in lower case, except a letter at the
    /// start or after anything but a letter or a digit (`x-envoy-foo` → `X-Envoy-Foo`,
    /// `x_1ab` → `X_1ab`).
    Proper,
    /// As Envoy's `preserve_case`: each name as the first of `received` (the names of the
    /// message as it arrived) equal to it ignoring case; any other in lower case, or in proper
    /// case when `proper_others`.
    Preserved {
        /// The received names, in order.
        received: &'a [Bytes],
        /// Names not received go out in proper case (else in lower case).
        proper_others: bool,
    },
}

/// Writes a request head: `method SP target SP version CRLF`, then each header as
/// `name: value CRLF`, then `transfer-encoding: chunked CRLF` if `chunked`, then `CRLF`.
pub fn encode_request_head(head: &RequestHead, chunked: bool, dst: &mut Vec<u8>) {
    encode_request_head_as(head, chunked, NameCase::AsGiven, dst);
}

/// [`encode_request_head`] with header names (`transfer-encoding` too) written as `case` says.
pub fn encode_request_head_as(
    head: &RequestHead,
    chunked: bool,
    case: NameCase<'_>,
    dst: &mut Vec<u8>,
) {
    dst.reserve(head.method.len() + head.target.len() + 12 + fields_len(&head.headers, chunked));
    dst.extend_from_slice(&head.method);
    dst.push(b' ');
    dst.extend_from_slice(&head.target);
    dst.push(b' ');
    dst.extend_from_slice(head.version.as_str().as_bytes());
    dst.extend_from_slice(CRLF);
    encode_fields(&head.headers, chunked, case, dst);
}

/// Writes a response head: `version SP status SP reason CRLF` (the canonical
/// [`reason_phrase`] when `head.reason` is empty), then each header as `name: value CRLF`,
/// then `transfer-encoding: chunked CRLF` if `chunked`, then `CRLF`.
pub fn encode_response_head(head: &ResponseHead, chunked: bool, dst: &mut Vec<u8>) {
    encode_response_head_as(head, chunked, NameCase::AsGiven, dst);
}

/// [`encode_response_head`] with header names (`transfer-encoding` too) written as `case` says.
pub fn encode_response_head_as(
    head: &ResponseHead,
    chunked: bool,
    case: NameCase<'_>,
    dst: &mut Vec<u8>,
) {
    let reason: &[u8] = if head.reason.is_empty() {
        reason_phrase(head.status).as_bytes()
    } else {
        &head.reason
    };
    let mut status = itoa::Buffer::new();
    let status = status.format(head.status);
    dst.reserve(status.len() + reason.len() + 12 + fields_len(&head.headers, chunked));
    dst.extend_from_slice(head.version.as_str().as_bytes());
    dst.push(b' ');
    dst.extend_from_slice(status.as_bytes());
    dst.push(b' ');
    dst.extend_from_slice(reason);
    dst.extend_from_slice(CRLF);
    encode_fields(&head.headers, chunked, case, dst);
}

fn fields_len(headers: &Headers, chunked: bool) -> usize {
    let fields: usize = headers
        .iter()
        .map(|h| h.name.len() + h.value.len() + 4)
        .sum();
    let chunked = if chunked {
        TRANSFER_ENCODING.len() + CHUNKED.len()
    } else {
        0
    };
    fields + chunked + 2
}

fn encode_fields(headers: &Headers, chunked: bool, case: NameCase<'_>, dst: &mut Vec<u8>) {
    for h in headers {
        encode_name(&h.name, case, dst);
        dst.extend_from_slice(b": ");
        dst.extend_from_slice(&h.value);
        dst.extend_from_slice(CRLF);
    }
    if chunked {
        encode_name(TRANSFER_ENCODING, case, dst);
        dst.extend_from_slice(CHUNKED);
    }
    dst.extend_from_slice(CRLF);
}

fn encode_name(name: &[u8], case: NameCase<'_>, dst: &mut Vec<u8>) {
    match case {
        NameCase::AsGiven => dst.extend_from_slice(name),
        NameCase::Lower => write_lower(name, dst),
        NameCase::Proper => proper(name, dst),
        NameCase::Preserved {
            received,
            proper_others,
        } => match received.iter().find(|r| eq_ignore_case(r, name)) {
            Some(r) => dst.extend_from_slice(r),
            None if proper_others => proper(name, dst),
            None => write_lower(name, dst),
        },
    }
}

fn proper(name: &[u8], dst: &mut Vec<u8>) {
    let mut word_start = true;
    dst.extend(name.iter().map(|&b| {
        let out = if word_start {
            b.to_ascii_uppercase()
        } else {
            b.to_ascii_lowercase()
        };
        word_start = !b.is_ascii_alphanumeric();
        out
    }));
}

/// The line before a chunk of `len` bytes: `len` in lowercase hex, then CRLF. After the data the
/// caller sends [`CRLF`]; after the last chunk, [`LAST_CHUNK`]. A `len` of 0 would end the
/// body: send [`LAST_CHUNK`] instead.
pub fn chunk_header(len: usize) -> Bytes {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 2 * std::mem::size_of::<usize>() + 2];
    let mut digits = 0;
    let mut n = len;
    loop {
        digits += 1;
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    let mut n = len;
    for i in (0..digits).rev() {
        out[i] = HEX[n & 0xF];
        n >>= 4;
    }
    out[digits] = b'\r';
    out[digits + 1] = b'\n';
    Bytes::copy_from_slice(&out[..digits + 2])
}

/// The canonical reason phrase for a status code (RFC 9110 §15 and the IANA registry), or
/// `""` for an unregistered code.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        102 => "Processing",
        103 => "Early Hints",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        207 => "Multi-Status",
        208 => "Already Reported",
        226 => "IM Used",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        305 => "Use Proxy",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        423 => "Locked",
        424 => "Failed Dependency",
        425 => "Too Early",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Unavailable For Legal Reasons",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        506 => "Variant Also Negotiates",
        507 => "Insufficient Storage",
        508 => "Loop Detected",
        510 => "Not Extended",
        511 => "Network Authentication Required",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: Headers) -> RequestHead {
        RequestHead {
            method: Bytes::from_static(b"GET"),
            target: Bytes::from_static(b"/A"),
            version: crate::Version::Http11,
            headers,
        }
    }

    #[test]
    fn lowercase_heads_write_names_in_lower_case_and_values_as_given() {
        let mut headers = Headers::new();
        headers.append("Host", "Example.COM");
        headers.append("x-already", "Mixed");
        let request = request(headers.clone());
        let mut out = Vec::new();
        encode_request_head_as(&request, true, NameCase::Lower, &mut out);
        assert_eq!(
            out,
            b"GET /A HTTP/1.1\r\nhost: Example.COM\r\nx-already: Mixed\r\ntransfer-encoding: chunked\r\n\r\n"
        );
        let mut out = Vec::new();
        encode_request_head(&request, false, &mut out);
        assert!(out.starts_with(b"GET /A HTTP/1.1\r\nHost: Example.COM\r\n"));
        let response = ResponseHead {
            version: crate::Version::Http11,
            status: 200,
            reason: Bytes::new(),
            headers,
        };
        let mut out = Vec::new();
        encode_response_head_as(&response, false, NameCase::Lower, &mut out);
        assert_eq!(
            out,
            b"HTTP/1.1 200 OK\r\nhost: Example.COM\r\nx-already: Mixed\r\n\r\n"
        );
    }

    #[test]
    fn heads_reserve_exactly_what_they_write() {
        let mut headers = Headers::new();
        headers.append("Host", "example.com");
        headers.append("X-Long-Header-Name", "value with spaces");
        let request = request(headers.clone());
        let response = ResponseHead {
            version: crate::Version::Http11,
            status: 404,
            reason: Bytes::new(),
            headers,
        };
        for case in [NameCase::AsGiven, NameCase::Lower, NameCase::Proper] {
            for chunked in [false, true] {
                let mut out = Vec::new();
                encode_request_head_as(&request, chunked, case, &mut out);
                assert_eq!(out.len(), out.capacity(), "{case:?} {chunked}");
                let mut out = Vec::new();
                encode_response_head_as(&response, chunked, case, &mut out);
                assert_eq!(out.len(), out.capacity(), "{case:?} {chunked}");
            }
        }
    }

    #[test]
    fn proper_case_upper_cases_each_letter_that_starts_a_word() {
        let mut headers = Headers::new();
        for name in [
            "content-type",
            "X-ENVOY-foo",
            "x_weird.NAME",
            "x-1abc",
            "a--b",
            "9z",
        ] {
            headers.append(name, "v");
        }
        let mut out = Vec::new();
        encode_request_head_as(&request(headers), true, NameCase::Proper, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET /A HTTP/1.1\r\nContent-Type: v\r\nX-Envoy-Foo: v\r\nX_Weird.Name: v\r\n\
             X-1abc: v\r\nA--B: v\r\n9z: v\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
    }

    #[test]
    fn preserved_names_take_the_first_received_spelling_and_others_a_default() {
        let received = [
            Bytes::from_static(b"X-Dup"),
            Bytes::from_static(b"x-DUP"),
            Bytes::from_static(b"Transfer-Encoding"),
            Bytes::from_static(b"lower-one"),
        ];
        let mut headers = Headers::new();
        for name in ["x-DUP", "X-Dup", "lower-one", "x-request-id"] {
            headers.append(name, "v");
        }
        let request = request(headers);
        let mut out = Vec::new();
        let case = NameCase::Preserved {
            received: &received,
            proper_others: false,
        };
        encode_request_head_as(&request, true, case, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET /A HTTP/1.1\r\nX-Dup: v\r\nX-Dup: v\r\nlower-one: v\r\nx-request-id: v\r\n\
             Transfer-Encoding: chunked\r\n\r\n"
        );
        let mut out = Vec::new();
        let case = NameCase::Preserved {
            received: &received[..2],
            proper_others: true,
        };
        encode_request_head_as(&request, true, case, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET /A HTTP/1.1\r\nX-Dup: v\r\nX-Dup: v\r\nLower-One: v\r\nX-Request-Id: v\r\n\
             Transfer-Encoding: chunked\r\n\r\n"
        );
    }

    #[test]
    fn chunk_headers() {
        assert_eq!(&chunk_header(0)[..], b"0\r\n");
        assert_eq!(&chunk_header(1)[..], b"1\r\n");
        assert_eq!(&chunk_header(15)[..], b"f\r\n");
        assert_eq!(&chunk_header(16)[..], b"10\r\n");
        assert_eq!(&chunk_header(0xabc)[..], b"abc\r\n");
        assert_eq!(
            &chunk_header(usize::MAX)[..],
            format!("{:x}\r\n", usize::MAX).as_bytes()
        );
    }
}
