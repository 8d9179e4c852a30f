//! Finding the end of a block of CRLF-terminated lines (a head or a trailer section), checking
//! each line's structure as it completes, without ever rescanning.

use memchr::memchr3;

use crate::error::Error;
use crate::headers::is_ows;

/// What a block is: decides whether its first line is a start line, and which error says it
/// outgrew its limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BlockKind {
    /// Request line, header lines, empty line.
    RequestHead,
    /// Status line, header lines, empty line.
    ResponseHead,
    /// Trailer lines, empty line (the last chunk's trailer section).
    Trailers,
}

/// A complete block found at the front of the buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Block {
    /// Length of the whole block, final CRLF included.
    pub(crate) len: usize,
    /// Length of the start line without its CRLF (0 for trailers).
    pub(crate) start_line_len: usize,
    /// Number of field lines.
    pub(crate) fields: usize,
}

/// Incremental scanner for a block of lines that ends with an empty line.
///
/// Each call to [`scan`](Self::scan) looks only at bytes it has not checked yet (tokio-util's
/// `LinesCodec` keeps `next_index` the same way) and at most `limit` bytes in all. As each line
/// completes it is checked: no bare CR, bare LF or NUL anywhere; field lines do not start with
/// whitespace (obs-fold), have a colon, a non-empty name and no whitespace before the colon;
/// there are at most `max_fields` of them. What is inside names and values is checked later by
/// the field parser (httparse).
///
/// Offsets are `u32` (a block is capped well under 4 GiB): every idle client connection holds
/// a scanner, so its size counts.
#[derive(Clone, Debug)]
pub(crate) struct BlockScanner {
    kind: BlockKind,
    /// Bytes at the front of the buffer already checked.
    scanned: u32,
    /// Offset of the line being scanned.
    line_start: u32,
    /// Length of the start line, once complete.
    start_line_len: Option<u32>,
    /// Complete field lines so far.
    fields: u32,
}

impl BlockScanner {
    pub(crate) fn new(kind: BlockKind) -> Self {
        BlockScanner {
            kind,
            scanned: 0,
            line_start: 0,
            start_line_len: None,
            fields: 0,
        }
    }

    /// True once any byte of the block has been seen.
    pub(crate) fn started(&self) -> bool {
        self.scanned > 0
    }

    /// Looks for the end of the block at the front of `buf`, which holds the bytes given to the
    /// previous calls and maybe more. `Ok(None)`: the block is not complete yet and is shorter
    /// than `limit`.
    pub(crate) fn scan(
        &mut self,
        buf: &[u8],
        limit: usize,
        max_fields: usize,
    ) -> Result<Option<Block>, Error> {
        if self.scanned as usize > buf.len() {
            // The caller dropped bytes it had shown us: start over rather than trust offsets.
            *self = BlockScanner::new(self.kind);
        }
        let limit = limit.min(u32::MAX as usize);
        let window = &buf[..buf.len().min(limit)];
        while let Some(i) = memchr3(b'\r', b'\n', 0, &window[self.scanned as usize..]) {
            // Below `limit`, so within u32.
            let at = self.scanned as usize + i;
            match window[at] {
                0 => return Err(Error::NulByte),
                b'\n' => return Err(Error::BareLf),
                _ => {}
            }
            // A CR: the line ends if a LF follows.
            match window.get(at + 1) {
                None => {
                    self.scanned = at as u32;
                    return self.incomplete(window, buf.len(), limit);
                }
                Some(b'\n') => {}
                Some(_) => return Err(Error::BareCr),
            }
            let line = &window[self.line_start as usize..at];
            let next = at + 2;
            self.scanned = next as u32;
            self.line_start = next as u32;
            if self.end_of_line(line, max_fields)? {
                return Ok(Some(Block {
                    len: next,
                    start_line_len: self.start_line_len.unwrap_or(0) as usize,
                    fields: self.fields as usize,
                }));
            }
        }
        self.scanned = window.len() as u32;
        self.incomplete(window, buf.len(), limit)
    }

    /// No end found in `window`: wait for more bytes, or fail if the window is the limit. A
    /// request line over the limit is a target too long (414) unless no space has come yet:
    /// then the method alone fills the limit, and a method is not a URI (400).
    fn incomplete(
        &self,
        window: &[u8],
        buffered: usize,
        limit: usize,
    ) -> Result<Option<Block>, Error> {
        if buffered < limit || buffered == 0 {
            return Ok(None);
        }
        Err(match self.kind {
            BlockKind::RequestHead if self.start_line_len.is_none() => {
                // Leading empty lines (which a server skips) are not part of the method.
                let line = &window[self.line_start as usize..];
                if memchr::memchr(b' ', line).is_none() {
                    Error::MethodTooLong
                } else {
                    Error::UriTooLong
                }
            }
            BlockKind::RequestHead | BlockKind::ResponseHead => Error::HeadTooLarge,
            BlockKind::Trailers => Error::TrailersTooLarge,
        })
    }

    /// Checks one complete line (without its CRLF). Returns true when it ends the block.
    fn end_of_line(&mut self, line: &[u8], max_fields: usize) -> Result<bool, Error> {
        if self.start_line_len.is_none() && self.kind != BlockKind::Trailers {
            if line.is_empty() {
                return Err(match self.kind {
                    BlockKind::ResponseHead => Error::InvalidStatusLine,
                    _ => Error::InvalidRequestLine,
                });
            }
            self.start_line_len = Some(line.len() as u32);
            return Ok(false);
        }
        let Some(&first) = line.first() else {
            return Ok(true);
        };
        self.fields += 1;
        if self.fields as usize > max_fields {
            return Err(Error::TooManyHeaders);
        }
        if is_ows(first) {
            return Err(Error::ObsFold);
        }
        match memchr::memchr(b':', line) {
            None | Some(0) => Err(Error::InvalidHeaderName),
            Some(colon) if is_ows(line[colon - 1]) => Err(Error::WhitespaceBeforeColon),
            Some(_) => Ok(false),
        }
    }
}
