//! Decoding a message body once its head has said how it is delimited.

use bytes::{Buf, Bytes, BytesMut};

use crate::chunked::{find_chunk_line, parse_chunk_line};
use crate::error::Error;
use crate::scan::{BlockKind, BlockScanner};
use crate::{BodyKind, Limits};

/// What the body decoder hands back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum BodyEvent {
    /// Body bytes, never empty.
    Data(Bytes),
    /// The body is complete.
    End,
}

/// Where a body decoder is, named for what it waits for.
///
/// ```text
///  Length(n>0) ──> ExpectBytes{n} ──n bytes as Data──> ExpectEndEvent
///  Empty ─────────────────────────────────────────────> ExpectEndEvent ──End──> (done)
///
///  Chunked ──> ExpectChunkLine ──size 0──> ExpectTrailers ──empty line──End──> (done)
///                 ^      │ size n>0
///                 │      v
///                 │   ExpectChunkData{n} ──n bytes as Data──> ExpectChunkCrlf
///                 └──────────────────────── CRLF ─────────────────┘
///
///  CloseDelimited ──> ExpectClose ──Data until EOF; at EOF End──> (done)
/// ```
///
/// Each state consumes only what it needs from the buffer; a `Data` event is a zero-copy slice
/// (`split_to(n).freeze()`) of at most what the current chunk or length still owes.
#[derive(Clone, Debug)]
#[expect(
    clippy::enum_variant_names,
    reason = "states are named for what they wait for (DESIGN.md §7.2), like rustls's ExpectFinished"
)]
pub(crate) enum BodyState {
    /// A `Content-Length` body that still owes this many bytes (never 0).
    ExpectBytes { remaining: u64 },
    /// A chunk-size line; `scanned` bytes of it checked so far.
    ExpectChunkLine { scanned: usize },
    /// Chunk payload that still owes this many bytes (never 0).
    ExpectChunkData { remaining: u64 },
    /// The CRLF after a chunk's payload.
    ExpectChunkCrlf,
    /// The trailer section after the last chunk, up to its empty line.
    ExpectTrailers(BlockScanner),
    /// Body bytes until the peer closes.
    ExpectClose,
    /// Nothing more to read: `End` is the next event.
    ExpectEndEvent,
}

impl BodyState {
    pub(crate) fn new(kind: BodyKind) -> Self {
        match kind {
            BodyKind::Empty | BodyKind::Length(0) => BodyState::ExpectEndEvent,
            BodyKind::Length(n) => BodyState::ExpectBytes { remaining: n },
            BodyKind::Chunked => BodyState::ExpectChunkLine { scanned: 0 },
            BodyKind::CloseDelimited => BodyState::ExpectClose,
        }
    }

    /// Decodes the next body event from the front of `buf`. After `End` the state is spent.
    pub(crate) fn decode(
        &mut self,
        buf: &mut BytesMut,
        limits: &Limits,
    ) -> Result<Option<BodyEvent>, Error> {
        loop {
            match self {
                BodyState::ExpectBytes { remaining } => {
                    let Some(data) = take_data(buf, remaining) else {
                        return Ok(None);
                    };
                    if *remaining == 0 {
                        *self = BodyState::ExpectEndEvent;
                    }
                    return Ok(Some(BodyEvent::Data(data)));
                }
                BodyState::ExpectChunkLine { scanned } => {
                    let Some(len) = find_chunk_line(buf, scanned)? else {
                        return Ok(None);
                    };
                    let size = parse_chunk_line(&buf[..len - 2])?;
                    buf.advance(len);
                    *self = if size == 0 {
                        BodyState::ExpectTrailers(BlockScanner::new(BlockKind::Trailers))
                    } else {
                        BodyState::ExpectChunkData { remaining: size }
                    };
                }
                BodyState::ExpectChunkData { remaining } => {
                    let Some(data) = take_data(buf, remaining) else {
                        return Ok(None);
                    };
                    if *remaining == 0 {
                        *self = BodyState::ExpectChunkCrlf;
                    }
                    return Ok(Some(BodyEvent::Data(data)));
                }
                BodyState::ExpectChunkCrlf => {
                    match buf.first() {
                        None => return Ok(None),
                        Some(b'\r') => {}
                        Some(_) => return Err(Error::MissingChunkCrlf),
                    }
                    match buf.get(1) {
                        None => return Ok(None),
                        Some(b'\n') => {}
                        Some(_) => return Err(Error::MissingChunkCrlf),
                    }
                    buf.advance(2);
                    *self = BodyState::ExpectChunkLine { scanned: 0 };
                }
                BodyState::ExpectTrailers(scanner) => {
                    let Some(block) =
                        scanner.scan(buf, limits.max_head_bytes, limits.max_headers)?
                    else {
                        return Ok(None);
                    };
                    if block.fields > 0 {
                        validate_trailers(&buf[..block.len], block.fields)?;
                    }
                    buf.advance(block.len);
                    *self = BodyState::ExpectEndEvent;
                    return Ok(Some(BodyEvent::End));
                }
                BodyState::ExpectClose => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    return Ok(Some(BodyEvent::Data(buf.split().freeze())));
                }
                BodyState::ExpectEndEvent => return Ok(Some(BodyEvent::End)),
            }
        }
    }

    /// True when the body runs until the peer closes.
    pub(crate) fn is_close_delimited(&self) -> bool {
        matches!(self, BodyState::ExpectClose)
    }
}

/// Splits off up to `remaining` bytes; `None` when `buf` is empty.
fn take_data(buf: &mut BytesMut, remaining: &mut u64) -> Option<Bytes> {
    if buf.is_empty() {
        return None;
    }
    let n = usize::try_from(*remaining).map_or(buf.len(), |r| r.min(buf.len()));
    *remaining -= n as u64;
    Some(buf.split_to(n).freeze())
}

/// Checks the names and values of a trailer section (its lines were checked by the scanner).
/// The fields themselves are dropped.
fn validate_trailers(block: &[u8], fields: usize) -> Result<(), Error> {
    crate::framing::with_field_slots(fields, |slots| {
        match httparse::parse_headers(block, slots) {
            Ok(httparse::Status::Complete(_)) => Ok(()),
            Ok(httparse::Status::Partial) => Err(Error::InvalidHeaderValue),
            Err(e) => Err(crate::framing::field_error(e)),
        }
    })
}
