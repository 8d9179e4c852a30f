//! Drives decoders over scripted reads: whole, byte by byte, and split in two at every point.
#![allow(dead_code, unreachable_pub)] // each test binary uses a different part of this module

use std::collections::VecDeque;
use std::fmt::Debug;

use weir_http1::{
    BodyKind, BytesMut, Error, Limits, Request, RequestDecoder, RequestEvent, Response,
    ResponseDecoder, ResponseEvent, Version,
};

/// An event with consecutive `Data` merged, so scripts that split reads differently compare
/// equal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ev<H> {
    Head(H),
    Data(Vec<u8>),
    End,
}

/// What a whole script produced: the events, then the error that stopped it, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome<H> {
    pub events: Vec<Ev<H>>,
    pub error: Option<Error>,
    /// Bytes left in the buffer at the end.
    pub left: Vec<u8>,
}

pub trait Drive {
    type Head: Clone + Debug + PartialEq;
    fn decode(&mut self, buf: &mut BytesMut, eof: bool) -> Result<Option<Ev<Self::Head>>, Error>;
}

pub struct Server(pub RequestDecoder);

impl Drive for Server {
    type Head = Request;
    fn decode(&mut self, buf: &mut BytesMut, eof: bool) -> Result<Option<Ev<Request>>, Error> {
        let ev = if eof {
            self.0.decode_eof(buf)?
        } else {
            self.0.decode(buf)?
        };
        Ok(ev.map(|ev| match ev {
            RequestEvent::Head(h) => Ev::Head(*h),
            RequestEvent::Data(d) => Ev::Data(d.to_vec()),
            RequestEvent::End => Ev::End,
        }))
    }
}

/// A response decoder that is told, before each response, whether its request was HEAD.
pub struct Client {
    pub dec: ResponseDecoder,
    pub head_requests: VecDeque<bool>,
}

impl Client {
    pub fn new(limits: Limits, head_requests: &[bool]) -> Self {
        let mut c = Client {
            dec: ResponseDecoder::new(limits),
            head_requests: head_requests.iter().copied().collect(),
        };
        c.next_request();
        c
    }

    fn next_request(&mut self) {
        let head = self.head_requests.pop_front().unwrap_or(false);
        self.dec.expect(head);
    }
}

impl Drive for Client {
    type Head = Response;
    fn decode(&mut self, buf: &mut BytesMut, eof: bool) -> Result<Option<Ev<Response>>, Error> {
        let ev = if eof {
            self.dec.decode_eof(buf)?
        } else {
            self.dec.decode(buf)?
        };
        Ok(ev.map(|ev| match ev {
            ResponseEvent::Head(h) => Ev::Head(*h),
            ResponseEvent::Data(d) => Ev::Data(d.to_vec()),
            ResponseEvent::End => {
                self.next_request();
                Ev::End
            }
        }))
    }
}

/// Feeds `pieces` one after the other, decoding all it can after each, then signals EOF when
/// `eof` and decodes what is left.
pub fn run<D: Drive>(mut d: D, pieces: &[&[u8]], eof: bool) -> Outcome<D::Head> {
    let total: usize = pieces.iter().map(|p| p.len()).sum();
    let mut buf = BytesMut::new();
    let mut events: Vec<Ev<D::Head>> = Vec::new();
    let push = |events: &mut Vec<Ev<D::Head>>, ev: Ev<D::Head>| {
        if let Ev::Data(d) = &ev {
            assert!(!d.is_empty(), "empty Data event");
            if let Some(Ev::Data(last)) = events.last_mut() {
                last.extend_from_slice(d);
                return;
            }
        }
        events.push(ev);
    };
    // Every event either consumes bytes or moves the decoder on, so this bounds a correct
    // decoder with room to spare and catches one that loops.
    let mut budget = 4 * total + 64;
    let steps: Vec<(&[u8], bool)> = pieces
        .iter()
        .map(|p| (*p, false))
        .chain(eof.then_some((&b""[..], true)))
        .collect();
    for (piece, at_eof) in steps {
        buf.extend_from_slice(piece);
        loop {
            budget = budget
                .checked_sub(1)
                .expect("decoder does not make progress");
            match d.decode(&mut buf, at_eof) {
                Ok(Some(ev)) => push(&mut events, ev),
                Ok(None) => break,
                Err(e) => {
                    return Outcome {
                        events,
                        error: Some(e),
                        left: buf.to_vec(),
                    };
                }
            }
        }
    }
    Outcome {
        events,
        error: None,
        left: buf.to_vec(),
    }
}

/// Runs `input` whole, byte by byte, and split in two at every point; asserts all agree and
/// returns the outcome. (After an error, what is left in the buffer depends on how much had
/// arrived, so it is compared only for runs without error.)
pub fn run_all_splits<D: Drive>(make: impl Fn() -> D, input: &[u8], eof: bool) -> Outcome<D::Head> {
    let comparable = |mut o: Outcome<D::Head>| {
        if o.error.is_some() {
            o.left.clear();
        }
        o
    };
    let whole = comparable(run(make(), &[input], eof));
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    let bytewise = comparable(run(make(), &bytes, eof));
    assert_eq!(
        bytewise,
        whole,
        "byte by byte differs from whole for {:?}",
        input.escape_ascii().to_string()
    );
    for at in 1..input.len() {
        let (a, b) = input.split_at(at);
        let split = comparable(run(make(), &[a, b], eof));
        assert_eq!(
            split,
            whole,
            "split at {at} differs from whole for {:?}",
            input.escape_ascii().to_string()
        );
    }
    whole
}

pub fn server() -> Server {
    Server(RequestDecoder::new(Limits::default()))
}

/// What a test expects of a request head: method, target, version, body, keep-alive.
#[derive(Clone, Copy, Debug)]
pub struct Rq(
    pub &'static str,
    pub &'static str,
    pub Version,
    pub BodyKind,
    pub bool,
);

impl Rq {
    pub fn matches(&self, r: &Request) -> bool {
        &r.head.method[..] == self.0.as_bytes()
            && &r.head.target[..] == self.1.as_bytes()
            && r.head.version == self.2
            && r.body == self.3
            && r.keep_alive == self.4
    }
}

/// What a test expects of a response head: status, body, keep-alive.
#[derive(Clone, Copy, Debug)]
pub struct Rs(pub u16, pub BodyKind, pub bool);

impl Rs {
    pub fn matches(&self, r: &Response) -> bool {
        r.head.status == self.0 && r.body == self.1 && r.keep_alive == self.2
    }
}

/// An expected event, with `Data` merged.
#[derive(Clone, Debug)]
pub enum X<H> {
    H(H),
    D(&'static str),
    E,
}

pub fn assert_events<H: Debug + PartialEq, E: Debug>(
    name: &str,
    got: &[Ev<H>],
    want: &[X<E>],
    matches: impl Fn(&E, &H) -> bool,
) {
    assert_eq!(got.len(), want.len(), "{name}: got {got:#?}, want {want:?}");
    for (g, w) in got.iter().zip(want) {
        let ok = match (g, w) {
            (Ev::Head(h), X::H(e)) => matches(e, h),
            (Ev::Data(d), X::D(e)) => d == e.as_bytes(),
            (Ev::End, X::E) => true,
            _ => false,
        };
        assert!(ok, "{name}: got {g:#?}, want {w:?}");
    }
}
