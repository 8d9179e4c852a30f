//! The chunked body decoder (crate-private in weir-http1, so reached through a message whose
//! head says `transfer-encoding: chunked`): a fixed request or response head, then the fuzz
//! bytes as the body.
//!
//! Input: `[flags, limits, n, plan[n]..., body...]`; flags bit 0: response instead of request,
//! bit 1: no EOF. Besides the shared checks, when weir accepts the body a lenient reference
//! decoder (httparse's chunk-size and field parsers) must accept the same bytes with the same
//! data: weir may be stricter than httparse, never more lenient or different.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_fuzz::{Client, Control, Ev, Server, limits, run_split_and_whole};

const REQUEST: &[u8] = b"POST /upload HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n";
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";

fuzz_target!(|data: &[u8]| {
    let mut c = Control::new(data);
    let flags = c.byte();
    let limits = limits(c.byte() & 0x80 | 0x3f);
    let n = usize::from(c.byte() % 8);
    let plan = c.bytes(n);
    let body = c.rest();
    let eof = flags & 2 == 0;
    let response = flags & 1 == 1;
    let head: &[u8] = if response { RESPONSE } else { REQUEST };
    let message = [head, body].concat();
    let (events, error, left): (Vec<Ev<()>>, _, Vec<u8>) = if response {
        let out = run_split_and_whole(|| Client::new(limits, &[]), &message, plan, eof);
        (
            out.events.into_iter().map(strip).collect(),
            out.error,
            out.left,
        )
    } else {
        let out = run_split_and_whole(|| Server::new(limits), &message, plan, eof);
        (
            out.events.into_iter().map(strip).collect(),
            out.error,
            out.left,
        )
    };
    if events.contains(&Ev::End) {
        let data = match events.get(1) {
            Some(Ev::Data(d)) => d.clone(),
            _ => Vec::new(),
        };
        let (ref_data, ref_len) = reference(body).expect("weir accepted a body httparse rejects");
        assert_eq!(ref_data, data, "weir and httparse decode different data");
        let first_end = events.iter().position(|e| *e == Ev::End);
        if first_end == Some(events.len() - 1) && error.is_none() {
            // Nothing of the next message decoded yet: it is all still in the buffer (but for
            // the empty lines a request decoder drops before a request line, RFC 9112 §2.2).
            let mut next = &body[ref_len..];
            while !response && next.starts_with(b"\r\n") {
                next = &next[2..];
            }
            assert_eq!(left, next, "weir and httparse end the body differently");
        }
    }
});

fn strip<H>(ev: Ev<H>) -> Ev<()> {
    match ev {
        Ev::Head(_) => Ev::Head(()),
        Ev::Data(d) => Ev::Data(d),
        Ev::End => Ev::End,
    }
}

/// A lenient chunked decoder: the data and the length of the chunked body at the front of `b`.
fn reference(b: &[u8]) -> Option<(Vec<u8>, usize)> {
    let mut at = 0;
    let mut data = Vec::new();
    loop {
        let httparse::Status::Complete((n, size)) = httparse::parse_chunk_size(&b[at..]).ok()?
        else {
            return None;
        };
        at += n;
        if size == 0 {
            break;
        }
        let size = usize::try_from(size).ok()?;
        data.extend_from_slice(b.get(at..at.checked_add(size)?)?);
        at += size;
        if b.get(at..at + 2)? != b"\r\n" {
            return None;
        }
        at += 2;
    }
    let mut fields = [httparse::EMPTY_HEADER; 128];
    match httparse::parse_headers(&b[at..], &mut fields).ok()? {
        httparse::Status::Complete((n, _)) => Some((data, at + n)),
        httparse::Status::Partial => None,
    }
}
