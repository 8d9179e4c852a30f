//! Which HTTP a plaintext connection speaks, from its first bytes (Envoy's HTTP inspector),
//! sans-IO: the HTTP/2 connection preface is `h2c`; a request line ending in `HTTP/1.1` is
//! `http/1.1`, one with another `HTTP/x.y` version `http/1.0`; anything else is not HTTP.

/// The HTTP/2 connection preface (RFC 9113 §3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The most bytes looked at before giving up (Envoy's `MAX_INSPECT_SIZE`).
pub(crate) const MAX_INSPECT: usize = 64 * 1024;

/// What the bytes so far say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Detection {
    NeedMore,
    /// Not HTTP (or not a request line this inspector recognizes).
    NotHttp,
    /// The application protocol, as ALPN names it.
    Found(&'static str),
    /// `MAX_INSPECT` bytes and no end of the request line.
    TooLong,
}

/// Looks at the start of `input`.
pub(crate) fn detect(input: &[u8]) -> Detection {
    let n = input.len().min(PREFACE.len());
    if input[..n] == PREFACE[..n] {
        return match input.len() >= PREFACE.len() {
            true => Detection::Found("h2c"),
            false => Detection::NeedMore,
        };
    }
    if matches!(input.first(), Some(b'\r' | b'\n')) {
        return Detection::NotHttp;
    }
    let Some(end) = input.iter().position(|&b| b == b'\n') else {
        // A request line grows until its end; a byte no request line has ends it now.
        // (A CR at the very end may be followed by its LF in the next read.)
        let body = input.strip_suffix(b"\r").unwrap_or(input);
        return match input.len() {
            n if n >= MAX_INSPECT => Detection::TooLong,
            _ if body.iter().any(|&b| b.is_ascii_control() && b != b'\t') => Detection::NotHttp,
            _ => Detection::NeedMore,
        };
    };
    let line = input[..end].strip_suffix(b"\r").unwrap_or(&input[..end]);
    request_line_version(line).map_or(Detection::NotHttp, Detection::Found)
}

/// `METHOD SP TARGET SP HTTP/x.y`: the protocol its version names.
fn request_line_version(line: &[u8]) -> Option<&'static str> {
    let mut parts = line.split(|&b| b == b' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || target.is_empty() {
        return None;
    }
    let token = |b: &u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b);
    if method.is_empty() || !method.iter().all(token) {
        return None;
    }
    if target.iter().any(|b| b.is_ascii_control()) {
        return None;
    }
    match version {
        b"HTTP/1.1" => Some("http/1.1"),
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            Some("http/1.0")
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_versions_and_the_h2_preface() {
        assert_eq!(
            detect(b"GET / HTTP/1.1\r\nhost: a"),
            Detection::Found("http/1.1")
        );
        assert_eq!(
            detect(b"POST /x?y HTTP/1.0\r\n"),
            Detection::Found("http/1.0")
        );
        assert_eq!(detect(b"GET / HTTP/1.1\n"), Detection::Found("http/1.1"));
        assert_eq!(detect(PREFACE), Detection::Found("h2c"));
        assert_eq!(detect(&PREFACE[..10]), Detection::NeedMore);
        assert_eq!(detect(b"GET / HTTP/1."), Detection::NeedMore);
        assert_eq!(detect(b"GET / HTTP/1.1\r"), Detection::NeedMore);
        assert_eq!(detect(b"GET /\r HTTP/1.1"), Detection::NotHttp);
        assert_eq!(detect(b"\x16\x03\x01\x02\x00\x01"), Detection::NotHttp);
        assert_eq!(detect(b"\r\nGET / HTTP/1.1\r\n"), Detection::NotHttp);
        assert_eq!(detect(b"hello\r\n"), Detection::NotHttp);
        assert_eq!(detect(b"GET / FTP/1.1\r\n"), Detection::NotHttp);
        assert_eq!(detect(b"G(T / HTTP/1.1\r\n"), Detection::NotHttp);
        assert_eq!(detect(&[b'a'; MAX_INSPECT]), Detection::TooLong);
    }
}
