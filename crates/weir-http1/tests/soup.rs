//! No panic, no stall, on any input: random bytes, random HTTP-ish fragments and mutated valid
//! messages, fed in random pieces to both decoders with random small limits. Bounded and
//! seeded, so it is quick and repeatable. (`common::run` asserts that `Data` is never empty and
//! that every call makes progress.)

mod common;

use common::{Client, Ev, Server, run};
use weir_http1::{CRLF, LAST_CHUNK, Limits, RequestDecoder, chunk_header};

/// xorshift64*: small, deterministic, good enough to shake a parser.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const FRAGMENTS: &[&[u8]] = &[
    b"GET ",
    b"POST ",
    b"HEAD ",
    b"CONNECT ",
    b"OPTIONS ",
    b"/",
    b"*",
    b"http://h/",
    b"h:1",
    b" ",
    b"\t",
    b"HTTP/1.1",
    b"HTTP/1.0",
    b"HTTP/2.0",
    b"\r\n",
    b"\r\n\r\n",
    b"\n",
    b"\r",
    b"\0",
    b":",
    b";",
    b"=",
    b"\"",
    b"\\",
    b",",
    b"Host: a\r\n",
    b"Content-Length: ",
    b"Transfer-Encoding: ",
    b"chunked",
    b"gzip",
    b"Connection: ",
    b"close",
    b"keep-alive",
    b"Expect: 100-continue\r\n",
    b"0",
    b"1",
    b"5",
    b"a",
    b"ff",
    b"ffffffffffffffff",
    b"18446744073709551616",
    b"hello",
    b"HTTP/1.1 200 OK\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\n",
    b"HTTP/1.1 101 Switching\r\n",
    b"HTTP/1.1 204 No Content\r\n",
    b"HTTP/1.1 304 NM\r\n",
    b"\x80",
    b"\xff",
    b"\x7f",
];

const VALID: &[&[u8]] = &[
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST /p?q HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;x=\"y\"\r\nhello\r\n0\r\nT: 1\r\n\r\n",
    b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n\r\nclose-delimited",
];

fn soup(rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    match rng.below(3) {
        0 => {
            for _ in 0..rng.below(200) {
                out.push(rng.next() as u8);
            }
        }
        1 => {
            for _ in 0..rng.below(40) {
                if rng.below(8) == 0 {
                    out.push(rng.next() as u8);
                } else {
                    out.extend_from_slice(FRAGMENTS[rng.below(FRAGMENTS.len())]);
                }
            }
        }
        _ => {
            out.extend_from_slice(VALID[rng.below(VALID.len())]);
            for _ in 0..=rng.below(3) {
                let at = rng.below(out.len() + 1);
                match rng.below(3) {
                    0 if at < out.len() => out[at] = rng.next() as u8,
                    1 if at < out.len() => {
                        out.remove(at);
                    }
                    _ => out.insert(at, FRAGMENTS[rng.below(FRAGMENTS.len())][0]),
                }
            }
        }
    }
    out
}

fn pieces<'a>(rng: &mut Rng, input: &'a [u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        let n = 1 + rng.below(rest.len().min(40));
        let (a, b) = rest.split_at(n);
        out.push(a);
        rest = b;
    }
    out
}

#[test]
fn byte_soup_never_panics() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for _ in 0..3000 {
        let input = soup(&mut rng);
        let limits = Limits {
            max_head_bytes: 16 + rng.below(300),
            max_headers: rng.below(8),
        };
        let parts = pieces(&mut rng, &input);
        let eof = rng.below(2) == 0;
        run(Server(RequestDecoder::new(limits)), &parts, eof);
        let heads = [rng.below(2) == 0, rng.below(2) == 0];
        run(Client::new(limits, &heads), &parts, eof);
    }
}

#[test]
fn random_chunked_bodies_decode_to_their_data() {
    let mut rng = Rng(0xc0ff_ee00_1234_5678);
    for _ in 0..200 {
        let data: Vec<u8> = (0..rng.below(2000)).map(|_| rng.next() as u8).collect();
        let mut wire = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        let mut rest = &data[..];
        while !rest.is_empty() {
            let n = 1 + rng.below(rest.len().min(500));
            let (chunk, after) = rest.split_at(n);
            wire.extend_from_slice(&chunk_header(n));
            wire.extend_from_slice(chunk);
            wire.extend_from_slice(CRLF);
            rest = after;
        }
        wire.extend_from_slice(LAST_CHUNK);
        let parts = pieces(&mut rng, &wire);
        let out = run(Server(RequestDecoder::new(Limits::default())), &parts, true);
        assert_eq!(out.error, None);
        let body: Vec<u8> = out
            .events
            .iter()
            .filter_map(|e| match e {
                Ev::Data(d) => Some(d.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(body, data);
        assert!(matches!(out.events.last(), Some(Ev::End)));
    }
}
