//! The chunked transfer coding's chunk-size line (RFC 9112 §7.1), parsed strictly.
//!
//! ```text
//! chunk-line = chunk-size [ chunk-ext ] CRLF
//! chunk-size = 1*16HEXDIG
//! chunk-ext  = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] )
//! ext-name   = token
//! ext-val    = token / quoted-string
//! ```
//!
//! `httparse::parse_chunk_size` accepts any byte in extensions (LF included), so the line is
//! found and parsed here instead. Extensions are validated, then dropped.

use memchr::memchr3;

use crate::MAX_CHUNK_LINE;
use crate::error::Error;
use crate::headers::{is_ows, is_tchar};

/// Looks for the CRLF ending the chunk line at the front of `buf`, resuming at `*scanned`.
/// Returns the line's length with its CRLF; `Ok(None)`: not complete yet.
pub(crate) fn find_chunk_line(buf: &[u8], scanned: &mut usize) -> Result<Option<usize>, Error> {
    if *scanned > buf.len() {
        *scanned = 0;
    }
    let window = &buf[..buf.len().min(MAX_CHUNK_LINE)];
    if let Some(i) = memchr3(b'\r', b'\n', 0, &window[*scanned..]) {
        let at = *scanned + i;
        match window[at] {
            0 => return Err(Error::NulByte),
            b'\n' => return Err(Error::BareLf),
            _ => {}
        }
        match window.get(at + 1) {
            Some(b'\n') => return Ok(Some(at + 2)),
            Some(_) => return Err(Error::BareCr),
            None => *scanned = at,
        }
    } else {
        *scanned = window.len();
    }
    if buf.len() >= MAX_CHUNK_LINE {
        return Err(Error::ChunkLineTooLong);
    }
    Ok(None)
}

/// Parses a chunk line without its CRLF; returns the chunk size.
pub(crate) fn parse_chunk_line(line: &[u8]) -> Result<u64, Error> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 16 {
        return Err(Error::InvalidChunkSize);
    }
    let mut size: u64 = 0;
    for &b in &line[..digits] {
        // 16 hex digits always fit in a u64.
        size = (size << 4) | u64::from(hex_value(b));
    }
    let rest = &line[digits..];
    // Right after the size only BWS ";" may follow.
    match rest.first() {
        None => return Ok(size),
        Some(&b) if is_ows(b) || b == b';' => {}
        Some(_) => return Err(Error::InvalidChunkSize),
    }
    if !valid_extensions(rest) {
        return Err(if rest.contains(&b';') {
            Error::InvalidChunkExtension
        } else {
            Error::InvalidChunkSize
        });
    }
    Ok(size)
}

fn hex_value(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => b - b'A' + 10,
    }
}

/// `*( BWS ";" BWS token [ BWS "=" BWS ( token / quoted-string ) ] )`, the whole of `s`.
fn valid_extensions(s: &[u8]) -> bool {
    let mut p = Cursor { s, at: 0 };
    while !p.done() {
        p.skip_ows();
        if !p.eat(b';') {
            return false;
        }
        p.skip_ows();
        if !p.token() {
            return false;
        }
        let after_name = p.at;
        p.skip_ows();
        if p.eat(b'=') {
            p.skip_ows();
            if !(p.token() || p.quoted_string()) {
                return false;
            }
        } else {
            // Whitespace here may only precede the next ";".
            p.at = after_name;
        }
    }
    true
}

struct Cursor<'a> {
    s: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn done(&self) -> bool {
        self.at >= self.s.len()
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn skip_ows(&mut self) {
        while self.peek().is_some_and(is_ows) {
            self.at += 1;
        }
    }

    fn token(&mut self) -> bool {
        let start = self.at;
        while self.peek().is_some_and(is_tchar) {
            self.at += 1;
        }
        self.at > start
    }

    /// `DQUOTE *( qdtext / quoted-pair ) DQUOTE`.
    fn quoted_string(&mut self) -> bool {
        if !self.eat(b'"') {
            return false;
        }
        while let Some(b) = self.peek() {
            self.at += 1;
            match b {
                b'"' => return true,
                b'\\' => match self.peek() {
                    Some(q) if q == b'\t' || q == b' ' || is_vchar_or_obs(q) => self.at += 1,
                    _ => return false,
                },
                b'\t' | b' ' | 0x21 | 0x23..=0x5B | 0x5D..=0x7E | 0x80..=0xFF => {}
                _ => return false,
            }
        }
        false
    }
}

fn is_vchar_or_obs(b: u8) -> bool {
    (0x21..=0x7E).contains(&b) || b >= 0x80
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_lines() {
        let ok: &[(&[u8], u64)] = &[
            (b"0", 0),
            (b"a", 10),
            (b"A", 10),
            (b"00ff", 255),
            (b"ffffffffffffffff", u64::MAX),
            (b"5;ext", 5),
            (b"5 ; ext", 5),
            (b"5;a=b;c=\"d \\\" e\"", 5),
            (b"5; a = b ;c", 5),
        ];
        for (line, size) in ok {
            assert_eq!(
                parse_chunk_line(line),
                Ok(*size),
                "{:?}",
                line.escape_ascii()
            );
        }
        let bad: &[(&[u8], Error)] = &[
            (b"", Error::InvalidChunkSize),
            (b"+5", Error::InvalidChunkSize),
            (b"0x5", Error::InvalidChunkSize),
            (b"5 ", Error::InvalidChunkSize),
            (b"1ffffffffffffffff", Error::InvalidChunkSize),
            (b"5;", Error::InvalidChunkExtension),
            (b"5;a ", Error::InvalidChunkExtension),
            (b"5;a=", Error::InvalidChunkExtension),
            (b"5;a=\"x", Error::InvalidChunkExtension),
            (b"5;a=b c", Error::InvalidChunkExtension),
            (b"5;=b", Error::InvalidChunkExtension),
            (b"5;a=\"\x01\"", Error::InvalidChunkExtension),
        ];
        for (line, err) in bad {
            assert_eq!(
                parse_chunk_line(line),
                Err(*err),
                "{:?}",
                line.escape_ascii()
            );
        }
    }
}
