//! Shared harness for weir's fuzz targets: feeding a decoder in pieces, checking the invariants
//! of the calling convention, and comparing a split run with a whole one.
//!
//! Every target starts its input with a few control bytes (read with [`Control`]) that choose
//! limits, split points and flags; the rest is the message.

use std::collections::VecDeque;
use std::fmt::Debug;

use weir_http1::{
    BodyKind, BytesMut, Error, Limits, Request, RequestDecoder, RequestEvent, Response,
    ResponseDecoder, ResponseEvent,
};

/// Reads control values from the front of the input, then hands back the rest.
pub struct Control<'a> {
    data: &'a [u8],
}

impl<'a> Control<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Control { data }
    }

    /// The next control byte (0 once the input is exhausted).
    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// `n` control bytes (fewer if the input runs out).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }

    /// What is left: the message.
    pub fn rest(self) -> &'a [u8] {
        self.data
    }
}

/// Limits chosen by one control byte: mostly the defaults, sometimes tiny ones so that the
/// limit paths (HeadTooLarge, TooManyHeaders, UriTooLong, TrailersTooLarge) are reached.
pub fn limits(b: u8) -> Limits {
    if b & 0x80 == 0 {
        Limits::default()
    } else {
        Limits {
            max_head_bytes: 8 + usize::from(b & 0x3f) * 4,
            max_headers: usize::from(b & 0x07),
        }
    }
}

/// Split plan: the sizes of the pieces the message is fed in, taken from `plan` cyclically
/// (a size byte of 0 means a piece of 1 byte; the plan empty means the whole message at once).
pub fn pieces<'m>(message: &'m [u8], plan: &[u8]) -> Vec<&'m [u8]> {
    if plan.is_empty() {
        return vec![message];
    }
    let mut out = Vec::new();
    let mut rest = message;
    let mut i = 0;
    while !rest.is_empty() {
        let size = usize::from(plan[i % plan.len()]).max(1);
        let (a, b) = rest.split_at(size.min(rest.len()));
        out.push(a);
        rest = b;
        i += 1;
    }
    out
}

/// An event with consecutive `Data` merged, so runs that split the input differently compare
/// equal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ev<H> {
    Head(H),
    Data(Vec<u8>),
    End,
}

/// What a whole run produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome<H> {
    pub events: Vec<Ev<H>>,
    /// The error that stopped the run, if any.
    pub error: Option<Error>,
    /// Bytes left in the buffer at the end (compared only for runs without error).
    pub left: Vec<u8>,
    /// `decode_eof` ended with `Ok(None)`: a clean close.
    pub clean_eof: bool,
}

/// A decoder under test, with the checks that only it knows.
pub trait Drive {
    type Head: Clone + Debug + PartialEq;
    fn decode(&mut self, buf: &mut BytesMut, eof: bool) -> Result<Option<Ev<Self::Head>>, Error>;
    fn is_idle(&self) -> bool;
    /// False for a head after which no body and no `End` come (a 1xx response).
    fn is_final(head: &Self::Head) -> bool;
    /// Called with a final head and its body when its `End` comes.
    fn check_message(&mut self, head: &Self::Head, body: &[u8]);
}

/// The request decoder, checking that what it decodes re-encodes to a request it decodes the
/// same way (what weir forwards upstream is what it understood).
pub struct Server {
    pub dec: RequestDecoder,
    /// Re-encode and re-decode each request (off for the re-decoding itself).
    pub reencode: bool,
}

impl Server {
    pub fn new(limits: Limits) -> Self {
        Server {
            dec: RequestDecoder::new(limits),
            reencode: true,
        }
    }
}

impl Drive for Server {
    type Head = Request;

    fn decode(&mut self, buf: &mut BytesMut, eof: bool) -> Result<Option<Ev<Request>>, Error> {
        let ev = if eof {
            self.dec.decode_eof(buf)?
        } else {
            self.dec.decode(buf)?
        };
        Ok(ev.map(|ev| match ev {
            RequestEvent::Head(h) => Ev::Head(*h),
            RequestEvent::Data(d) => Ev::Data(d.to_vec()),
            RequestEvent::End => Ev::End,
        }))
    }

    fn is_idle(&self) -> bool {
        self.dec.is_idle()
    }

    fn is_final(_: &Request) -> bool {
        true
    }

    fn check_message(&mut self, request: &Request, body: &[u8]) {
        assert_ne!(
            request.body,
            BodyKind::CloseDelimited,
            "a request body runs to EOF"
        );
        if let BodyKind::Length(n) = request.body {
            assert_eq!(
                body.len() as u64,
                n,
                "body length differs from Content-Length"
            );
        }
        if request.body == BodyKind::Empty {
            assert!(body.is_empty(), "Data for an empty body");
        }
        if !self.reencode {
            return;
        }
        // Re-encode the head (and the body, as the proxy would: chunked stays chunked,
        // a length stays a length) and decode it again: the same request must come out.
        let chunked = request.body == BodyKind::Chunked;
        let mut wire = Vec::new();
        let mut head = request.head.clone();
        if chunked {
            // The encoder adds the one Transfer-Encoding field itself.
            let kept: weir_http1::Headers = head
                .headers
                .iter()
                .filter(|h| !h.name.eq_ignore_ascii_case(b"transfer-encoding"))
                .cloned()
                .collect();
            head.headers = kept;
        }
        weir_http1::encode_request_head(&head, chunked, &mut wire);
        append_body(&mut wire, body, chunked);
        let mut again = Server::new(Limits {
            // The re-encoded head may be a little longer (`name: value` with one space).
            max_head_bytes: usize::MAX,
            max_headers: usize::MAX,
        });
        again.reencode = false;
        let out = run(&mut again, &[&wire], true);
        assert_eq!(
            out.error,
            None,
            "re-encoded request does not decode: {:?}",
            wire.escape_ascii().to_string()
        );
        let mut events = out.events.into_iter();
        match events.next() {
            Some(Ev::Head(h)) => {
                assert_eq!(h.head.method, request.head.method);
                assert_eq!(h.head.target, request.head.target);
                assert_eq!(h.head.version, request.head.version);
                assert_eq!(h.body, request.body);
                assert_eq!(h.keep_alive, request.keep_alive);
                assert_eq!(h.expect_continue, request.expect_continue);
                assert_eq!(
                    h.head.headers,
                    head.headers
                        .iter()
                        .cloned()
                        .chain(chunked.then(|| weir_http1::Header {
                            name: "transfer-encoding".into(),
                            value: "chunked".into(),
                        }))
                        .collect::<weir_http1::Headers>()
                );
            }
            other => panic!("re-encoded request gave {other:?}"),
        }
        let mut again_body = Vec::new();
        for ev in events {
            match ev {
                Ev::Data(d) => again_body.extend_from_slice(&d),
                Ev::End => break,
                Ev::Head(_) => panic!("re-encoded request gave a second head"),
            }
        }
        assert_eq!(again_body, body, "re-encoded body differs");
    }
}

/// The response decoder, told before each response whether its request was HEAD.
pub struct Client {
    pub dec: ResponseDecoder,
    pub head_requests: VecDeque<bool>,
    /// The last head was a 1xx other than 101: the next event must be a head.
    informational: bool,
    /// The HEAD flag the next response is decoded with.
    current_head: bool,
    /// The HEAD flag the response in progress was decoded with.
    message_head: bool,
    switched: bool,
}

impl Client {
    pub fn new(limits: Limits, head_requests: &[bool]) -> Self {
        let mut c = Client {
            dec: ResponseDecoder::new(limits),
            head_requests: head_requests.iter().copied().collect(),
            informational: false,
            current_head: false,
            message_head: false,
            switched: false,
        };
        c.next_request();
        c
    }

    fn next_request(&mut self) {
        let head = self.head_requests.pop_front().unwrap_or(false);
        self.current_head = head;
        self.dec.expect(head);
    }
}

impl Drive for Client {
    type Head = Response;

    fn decode(&mut self, buf: &mut BytesMut, eof: bool) -> Result<Option<Ev<Response>>, Error> {
        let result = if eof {
            self.dec.decode_eof(buf)
        } else {
            self.dec.decode(buf)
        };
        if self.switched {
            assert!(
                matches!(result, Err(Error::SwitchedProtocols)),
                "decoding after a 101 gave {result:?}"
            );
        }
        let ev = result?;
        if self.informational {
            assert!(
                matches!(ev, None | Some(ResponseEvent::Head(_))),
                "after a 1xx head: {ev:?}"
            );
        }
        Ok(ev.map(|ev| match ev {
            ResponseEvent::Head(h) => {
                self.informational = (100..200).contains(&h.head.status) && h.head.status != 101;
                self.switched = h.head.status == 101;
                self.message_head = self.current_head;
                if h.head.status < 200 {
                    assert_eq!(h.body, BodyKind::Empty, "a 1xx with a body");
                }
                Ev::Head(*h)
            }
            ResponseEvent::Data(d) => Ev::Data(d.to_vec()),
            ResponseEvent::End => {
                self.next_request();
                Ev::End
            }
        }))
    }

    fn is_idle(&self) -> bool {
        self.dec.is_idle()
    }

    fn is_final(head: &Response) -> bool {
        head.head.status >= 200
    }

    fn check_message(&mut self, response: &Response, body: &[u8]) {
        let status = response.head.status;
        assert!((200..=599).contains(&status));
        if status == 204 || status == 304 || self.message_head {
            assert_eq!(
                response.body,
                BodyKind::Empty,
                "status {status} with a body"
            );
        }
        if response.body == BodyKind::CloseDelimited || status == 101 {
            assert!(!response.keep_alive);
        }
        if let BodyKind::Length(n) = response.body {
            assert_eq!(
                body.len() as u64,
                n,
                "body length differs from Content-Length"
            );
        }
        if response.body == BodyKind::Empty {
            assert!(body.is_empty(), "Data for an empty body");
        }
    }
}

/// Appends `body` framed as the proxy would frame it.
fn append_body(wire: &mut Vec<u8>, body: &[u8], chunked: bool) {
    if chunked {
        if !body.is_empty() {
            wire.extend_from_slice(&weir_http1::chunk_header(body.len()));
            wire.extend_from_slice(body);
            wire.extend_from_slice(weir_http1::CRLF);
        }
        wire.extend_from_slice(weir_http1::LAST_CHUNK);
    } else {
        wire.extend_from_slice(body);
    }
}

/// Feeds `pieces` one after the other, decoding all it can after each (asserting the calling
/// convention's invariants), then, if `eof`, calls `decode_eof` until it stops.
pub fn run<D: Drive>(d: &mut D, pieces: &[&[u8]], eof: bool) -> Outcome<D::Head> {
    let total: usize = pieces.iter().map(|p| p.len()).sum();
    let mut buf = BytesMut::new();
    let mut events: Vec<Ev<D::Head>> = Vec::new();
    // The head and body of the message in progress.
    let mut current: Option<(D::Head, Vec<u8>)> = None;
    // Every event either consumes bytes or moves the decoder on (Head → End at most once per
    // message, and a message has a head of at least a few bytes), so this bounds a correct
    // decoder and catches one that loops.
    let mut budget = 4 * total + 64;
    let mut fed = 0usize;
    let mut consumed = 0usize;
    let steps = pieces
        .iter()
        .map(|p| (*p, false))
        .chain(eof.then_some((&b""[..], true)));
    let mut clean_eof = false;
    for (piece, at_eof) in steps {
        buf.extend_from_slice(piece);
        fed += piece.len();
        loop {
            budget = budget
                .checked_sub(1)
                .expect("decoder does not make progress");
            let before = buf.len();
            let result = d.decode(&mut buf, at_eof);
            assert!(buf.len() <= before, "decode grew the buffer");
            let used = before - buf.len();
            consumed += used;
            assert_eq!(consumed + buf.len(), fed, "bytes lost or invented");
            match result {
                Ok(Some(ev)) => {
                    match &ev {
                        Ev::Head(h) => {
                            assert!(current.is_none(), "a head inside a message");
                            assert!(used > 0, "a head that consumed nothing");
                            if D::is_final(h) {
                                current = Some((h.clone(), Vec::new()));
                            }
                        }
                        Ev::Data(data) => {
                            assert!(!data.is_empty(), "empty Data event");
                            assert!(data.len() <= used, "Data longer than what was consumed");
                            current
                                .as_mut()
                                .expect("Data outside a message")
                                .1
                                .extend_from_slice(data);
                        }
                        Ev::End => {
                            let (head, body) = current.take().expect("End outside a message");
                            d.check_message(&head, &body);
                            assert!(d.is_idle(), "not idle after End");
                        }
                    }
                    if let Ev::Data(data) = &ev
                        && let Some(Ev::Data(last)) = events.last_mut()
                    {
                        last.extend_from_slice(data);
                        continue;
                    }
                    events.push(ev);
                }
                Ok(None) => {
                    if at_eof {
                        assert!(buf.is_empty(), "clean close with bytes left");
                        clean_eof = true;
                    }
                    break;
                }
                Err(e) => {
                    // Poisoned: every later call returns the same error.
                    let mut again = buf.clone();
                    assert_eq!(d.decode(&mut again, false), Err(e), "not poisoned");
                    assert_eq!(d.decode(&mut again, true), Err(e), "not poisoned at EOF");
                    assert_eq!(again, buf, "a poisoned decoder consumed bytes");
                    let _ = e.status();
                    assert!(!format!("{e}").is_empty());
                    return Outcome {
                        events,
                        error: Some(e),
                        left: buf.to_vec(),
                        clean_eof: false,
                    };
                }
            }
        }
    }
    Outcome {
        events,
        error: None,
        left: buf.to_vec(),
        clean_eof,
    }
}

/// Runs `message` in the pieces `plan` chooses and whole, asserts both agree, and returns
/// the split outcome.
pub fn run_split_and_whole<D: Drive>(
    make: impl Fn() -> D,
    message: &[u8],
    plan: &[u8],
    eof: bool,
) -> Outcome<D::Head> {
    let split = run(&mut make(), &pieces(message, plan), eof);
    let whole = run(&mut make(), &[message], eof);
    let comparable = |o: &Outcome<D::Head>| {
        let mut o = o.clone();
        if o.error.is_some() {
            o.left.clear();
        }
        o
    };
    assert_eq!(
        comparable(&split),
        comparable(&whole),
        "split and whole runs differ; plan {plan:?}"
    );
    split
}
