//! HTTP/1.1 behind the codec seam: [`Http1Server`] for a downstream connection, [`Http1Client`]
//! for an upstream one. Both wrap `weir-http1`'s strict decoders and own every HTTP/1 wire rule
//! the proxy applies on the way out.
//!
//! HTTP/1 carries one exchange at a time: a server answers requests in the order they came
//! (pipelined requests wait in the input buffer until the connection manager reads on), and a
//! client connection carries the next request only after the previous response ended.

use bytes::{Bytes, BytesMut};
use weir_config::HeaderKeyFormat;
use weir_http1::{
    BodyKind, CRLF, Error, LAST_CHUNK, Limits, Request, RequestDecoder, RequestEvent, RequestHead,
    ResponseDecoder, ResponseEvent, ResponseHead, Version, chunk_header, encode_request_head_as,
    encode_response_head_as,
};

use super::{Output, ReceivedNames, RequestPart, RequestStart, ResponsePart, StreamKey, name_case};

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// How a body is framed on the way out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body, or one whose `content-length` is forwarded as is.
    AsIs,
    /// Re-framed as chunks.
    Chunked,
    /// Delimited by closing the connection (HTTP/1.0 clients, which cannot read chunks).
    CloseDelimited,
    /// No framing at all: after a `101` (or a CONNECT's 2xx) the connection is a tunnel.
    Tunnel,
}

/// The request being answered on a server connection, and how its response goes out.
#[derive(Debug, Clone, Copy)]
struct Exchange {
    /// Its head was decoded and its response has not ended: no other request may start.
    active: bool,
    http10: bool,
    /// The client allows the connection to carry another request.
    keep_alive: bool,
    /// A HEAD request: its response has no body, whatever its head says.
    head: bool,
    /// The whole request has been decoded (or it has no body).
    request_ended: bool,
    /// The request asked for a tunnel (an upgrade, or CONNECT).
    tunnel: Tunnel,
    framing: Framing,
    /// This response ends the connection.
    close: bool,
}

impl Exchange {
    const NONE: Exchange = Exchange {
        active: false,
        http10: false,
        keep_alive: true,
        head: false,
        request_ended: true,
        tunnel: Tunnel::No,
        framing: Framing::AsIs,
        close: false,
    };
}

/// What a request asked of the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tunnel {
    No,
    /// `Connection: upgrade` with an `Upgrade`: a `101` opens the tunnel.
    Upgrade,
    /// CONNECT: a 2xx opens the tunnel once the proxy has one ([`Http1Server::accept_connect`]);
    /// any other answer (a local reply, even a 2xx one) is a plain response.
    Connect,
    /// CONNECT, and the proxy's tunnel for it is up.
    ConnectAccepted,
}

/// The upgrade a request asks for: CONNECT, or an HTTP/1.1 `Upgrade` named by `Connection`
/// (`h2c`, HTTP/2 over cleartext, is not an upgrade weir makes: such a request is served as a
/// plain one, its upgrade headers dropped as hop-by-hop).
fn requested_upgrade(request: &Request) -> Option<(Tunnel, Bytes)> {
    let head = &request.head;
    if head.method.as_ref() == b"CONNECT" {
        return Some((Tunnel::Connect, Bytes::from_static(b"connect")));
    }
    if !request.upgrade {
        return None;
    }
    let upgrade = head.headers.get("upgrade")?;
    if upgrade.eq_ignore_ascii_case(b"h2c") {
        return None;
    }
    Some((Tunnel::Upgrade, upgrade.clone()))
}

/// The server side of an HTTP/1.1 connection: decodes requests, encodes their responses.
///
/// Per exchange, the calls come in this order:
///
/// ```text
///   decode → Headers ─┬─ (encode_continue) ─ decode → Data* → End ─┐
///                     └────────────────────────────────────────────┴─ encode_headers
///                                                  → encode_data* → encode_end
/// ```
///
/// A response may begin before its request ends (an early answer); it then closes the
/// connection, since the rest of the request would have to be read to find the next one.
///
/// Each request is a stream, keyed by its number on the connection. One is active at a time,
/// from its head until its response ends ([`Http1Server::may_start_stream`]): that is
/// HTTP/1's pipelining rule, and the next request waits in the input buffer.
#[derive(Debug)]
pub(crate) struct Http1Server {
    decoder: RequestDecoder,
    exchange: Exchange,
    /// The key of the request decoded last (the exchange's).
    stream: StreamKey,
    /// After an upgrade's or CONNECT's head, the input is the tunnel's bytes, not requests.
    raw_input: bool,
    /// The connection manager's `header_key_format`.
    key_format: HeaderKeyFormat,
}

impl Http1Server {
    pub(crate) fn new(limits: Limits, key_format: HeaderKeyFormat) -> Self {
        Http1Server {
            decoder: RequestDecoder::new(limits),
            exchange: Exchange::NONE,
            stream: StreamKey(0),
            raw_input: false,
            key_format,
        }
    }

    /// Whether the next bytes may start a new stream: HTTP/1 carries one at a time, so only
    /// once the last response has ended.
    pub(crate) fn may_start_stream(&self) -> bool {
        !self.exchange.active
    }

    /// How many streams (requests) the connection has started: HTTP/1 keys its streams by
    /// this count (`max_requests_per_connection` reads it).
    pub(crate) fn streams_started(&self) -> u32 {
        self.stream.0
    }

    /// The current exchange, which is the only one `stream` can name on HTTP/1.
    fn current(&self, stream: StreamKey) -> &Exchange {
        debug_assert_eq!(
            stream, self.stream,
            "HTTP/1 answers its current request only"
        );
        &self.exchange
    }

    /// [`current`](Self::current), to change.
    fn exchange(&mut self, stream: StreamKey) -> &mut Exchange {
        debug_assert_eq!(
            stream, self.stream,
            "HTTP/1 answers its current request only"
        );
        &mut self.exchange
    }

    /// Decodes the next part from the front of `input` (`Ok(None)`: more bytes are needed),
    /// with the key of its stream. An error poisons the codec: answer it with
    /// [`Error::status`] and close.
    pub(crate) fn decode(
        &mut self,
        input: &mut BytesMut,
    ) -> Result<Option<(StreamKey, RequestPart)>, Error> {
        if self.raw_input {
            return Ok((!input.is_empty())
                .then(|| (self.stream, RequestPart::Data(input.split().freeze()))));
        }
        let event = self.decoder.decode(input)?;
        Ok(event.map(|e| {
            let part = self.on_event(e);
            (self.stream, part)
        }))
    }

    fn on_event(&mut self, event: RequestEvent) -> RequestPart {
        match event {
            RequestEvent::Head(request) => {
                let mut request = *request;
                let upgrade = requested_upgrade(&request);
                // A tunnel's request runs until the client closes.
                let end_stream = request.body == BodyKind::Empty && upgrade.is_none();
                self.raw_input = upgrade.is_some();
                self.stream = StreamKey(self.stream.0.wrapping_add(1));
                self.exchange = Exchange {
                    active: true,
                    http10: request.head.version == Version::Http10,
                    keep_alive: request.keep_alive,
                    head: request.head.is_head(),
                    request_ended: end_stream,
                    tunnel: upgrade.as_ref().map_or(Tunnel::No, |(t, _)| *t),
                    framing: Framing::AsIs,
                    close: false,
                };
                // The neutral head carries no version: upstream codecs write their own.
                request.head.version = Version::Http11;
                let names =
                    ReceivedNames::keep(self.key_format, &request.head.headers, &Bytes::new());
                RequestPart::Headers(RequestStart {
                    head: request.head,
                    end_stream,
                    expect_continue: request.expect_continue,
                    single_use: request.ambiguous,
                    upgrade: upgrade.map(|(_, u)| u),
                    names,
                })
            }
            RequestEvent::Data(data) => RequestPart::Data(data),
            RequestEvent::End => {
                self.exchange.request_ended = true;
                RequestPart::End
            }
        }
    }

    /// Whether the stream's request is HTTP/1.0.
    pub(crate) fn http10(&self, stream: StreamKey) -> bool {
        self.current(stream).http10
    }

    /// The stream's HTTP/1.0 request is refused (`accept_http_10` is off): its answer is an
    /// HTTP/1.1 one that closes the connection, as Envoy's 426.
    pub(crate) fn refuse_http10(&mut self, stream: StreamKey) {
        let ex = self.exchange(stream);
        ex.http10 = false;
        ex.keep_alive = false;
    }

    /// The stream's protocol, as access logs name it.
    pub(crate) fn protocol(&self, stream: StreamKey) -> &'static str {
        if self.current(stream).http10 {
            "HTTP/1.0"
        } else {
            "HTTP/1.1"
        }
    }

    /// Tells a client that sent `Expect: 100-continue` to send its body.
    pub(crate) fn encode_continue(&mut self, stream: StreamKey, out: &mut impl Output) {
        self.current(stream);
        out.queue(Bytes::from_static(CONTINUE));
    }

    /// Encodes a response head. The framing follows from the head: `end_stream` or a
    /// `content-length` keeps the body as it is; otherwise it is chunked, or close-delimited
    /// for an HTTP/1.0 client. `close` is the proxy's own reason to end the connection
    /// (draining, connection limits); the codec adds its own (the client's, an early answer, a
    /// close-delimited body) and says it in `connection`. The status line carries Envoy's
    /// reason phrase for the status (`codec::status`), unless `names` kept the origin's
    /// (`forward_reason_phrase`), and the request's version (1.0 or 1.1). Header names go out as
    /// `names` kept them, else as the connection manager's `header_key_format` says (lower
    /// case by default, as Envoy's). `head` leaves with that version and the `connection`
    /// header set, for the access log. Returns whether HTTP/1's own rules would have kept the
    /// connection (so a close is the proxy's doing); never for a tunnel.
    pub(crate) fn encode_headers(
        &mut self,
        stream: StreamKey,
        head: &mut ResponseHead,
        names: Option<&ReceivedNames>,
        end_stream: bool,
        close: bool,
        out: &mut impl Output,
    ) -> bool {
        // Envoy's codec writes its own phrase for the status, never the origin's (unless its
        // preserve_case formatter forwards it).
        head.reason = match names {
            Some(n) if !n.reason.is_empty() => n.reason.clone(),
            _ => Bytes::from_static(super::status::reason_phrase(head.status).as_bytes()),
        };
        let case = name_case(self.key_format, names);
        let ex = self.exchange(stream);
        let opens_tunnel = match ex.tunnel {
            Tunnel::No | Tunnel::Connect => false,
            Tunnel::Upgrade => head.status == 101,
            Tunnel::ConnectAccepted => (200..300).contains(&head.status),
        };
        if opens_tunnel {
            // The connection is the tunnel's now, and ends with it. The upstream's own
            // `connection: upgrade` and `upgrade` stay as they are.
            ex.framing = Framing::Tunnel;
            ex.close = true;
            head.version = Version::Http11;
            let mut encoded = Vec::new();
            encode_response_head_as(head, false, case, &mut encoded);
            out.queue(Bytes::from(encoded));
            return false;
        }
        ex.framing = if end_stream || head.headers.contains("content-length") {
            Framing::AsIs
        } else if ex.http10 {
            Framing::CloseDelimited
        } else {
            Framing::Chunked
        };
        let keeps = ex.keep_alive && ex.request_ended && ex.framing != Framing::CloseDelimited;
        ex.close = close || !keeps;
        if ex.close {
            head.headers.set("connection", Bytes::from_static(b"close"));
        } else if ex.http10 {
            // An HTTP/1.0 client keeps the connection only when told so.
            head.headers
                .set("connection", Bytes::from_static(b"keep-alive"));
        }
        // As Envoy's codec: an HTTP/1.0 request (one `accept_http_10` let in) is answered
        // in HTTP/1.0.
        head.version = if ex.http10 {
            Version::Http10
        } else {
            Version::Http11
        };
        // Empty: the encoder reserves the head's exact size, so the Bytes made of it owns the
        // allocation as is (a Vec with spare room would cost another allocation and an atomic
        // count, bytes' shared form).
        let mut encoded = Vec::new();
        encode_response_head_as(head, ex.framing == Framing::Chunked, case, &mut encoded);
        out.queue(Bytes::from(encoded));
        keeps
    }

    /// Encodes response body bytes; returns how many body bytes will reach the client (none
    /// for a HEAD request).
    pub(crate) fn encode_data(
        &mut self,
        stream: StreamKey,
        data: Bytes,
        out: &mut impl Output,
    ) -> usize {
        let ex = self.exchange(stream);
        if ex.head || data.is_empty() {
            return 0;
        }
        let len = data.len();
        if ex.framing == Framing::Chunked {
            out.queue(chunk_header(len));
            out.queue(data);
            out.queue(Bytes::from_static(CRLF));
        } else {
            out.queue(data);
        }
        len
    }

    /// The proxy's connection for the stream's CONNECT is up: its 2xx opens the tunnel.
    pub(crate) fn accept_connect(&mut self, stream: StreamKey) {
        let ex = self.exchange(stream);
        if ex.tunnel == Tunnel::Connect {
            ex.tunnel = Tunnel::ConnectAccepted;
        }
    }

    /// The stream is a tunnel now: what the client sends on it is the tunnel's bytes.
    pub(crate) fn tunnel_open(&self, stream: StreamKey) -> bool {
        self.current(stream).framing == Framing::Tunnel
    }

    /// Ends the stream's response (the last chunk, when chunked; the tunnel's FIN). The
    /// stream is over: the next request may start.
    pub(crate) fn encode_end(&mut self, stream: StreamKey, out: &mut impl Output) {
        let ex = self.exchange(stream);
        ex.active = false;
        match ex.framing {
            Framing::Chunked if !ex.head => out.queue(Bytes::from_static(LAST_CHUNK)),
            Framing::Tunnel => out.finish(),
            _ => {}
        }
    }

    /// The response encoded last ends the connection.
    pub(crate) fn closes_connection(&self) -> bool {
        self.exchange.close
    }

    /// The stream's response body ends only when the connection does: a response cut short
    /// must then be reset, not closed, or it would look complete.
    pub(crate) fn close_delimited(&self, stream: StreamKey) -> bool {
        self.current(stream).framing == Framing::CloseDelimited
    }

    /// Forgets the last exchange, for an answer to a request that never became a stream (the
    /// codec rejected it, or its head did not arrive in time): a full response, then close.
    /// Returns the key to encode that answer for.
    pub(crate) fn reset_exchange(&mut self) -> StreamKey {
        self.exchange = Exchange::NONE;
        self.raw_input = false;
        self.stream
    }
}

/// The client side of an HTTP/1.1 connection to an origin: encodes requests, decodes their
/// responses.
///
/// ```text
///   encode_headers → encode_data* → (encode_end) ··· decode → Headers → Data* → End
/// ```
///
/// The response may arrive before the request has been sent whole (an early answer); whether
/// the connection can carry another request is [`Http1Client::reusable`] once it has ended.
#[derive(Debug)]
pub(crate) struct Http1Client {
    decoder: ResponseDecoder,
    /// The request body goes out in chunks (it had no `content-length`).
    chunked: bool,
    /// The response allows the connection to carry another request.
    keep_alive: bool,
    tunnel: ClientTunnel,
    /// The cluster's `header_key_format`.
    key_format: HeaderKeyFormat,
}

/// Whether the connection is, or may become, a tunnel.
///
/// ```text
///   No                                  (plain requests and responses)
///   Requested ── 101 ──> Open           (an upgrade; any other status: a plain response)
///   Open                                (a CONNECT weir ends itself: raw bytes from the start)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientTunnel {
    No,
    Requested,
    Open,
}

impl Http1Client {
    pub(crate) fn new(key_format: HeaderKeyFormat) -> Self {
        Http1Client {
            decoder: ResponseDecoder::new(Limits::default()),
            chunked: false,
            keep_alive: false,
            tunnel: ClientTunnel::No,
            key_format,
        }
    }

    /// The connection carries raw bytes both ways from now on, with no request head (a
    /// CONNECT that weir ends itself: the origin sees only the tunnel's bytes).
    pub(crate) fn open_tunnel(&mut self) {
        self.tunnel = ClientTunnel::Open;
    }

    /// Encodes a request head (always as HTTP/1.1). Header names go out as `names` kept them
    /// (the connection manager's `preserve_case`), else as the cluster's `header_key_format`
    /// says (lower case by default, as Envoy's codec writes them). A request with a body and no
    /// `content-length` goes out chunked. `upgrade`: the head asks to switch protocols (its
    /// `Connection: upgrade` is set), and a `101` opens a tunnel.
    pub(crate) fn encode_headers(
        &mut self,
        head: &RequestHead,
        names: Option<&ReceivedNames>,
        end_stream: bool,
        upgrade: bool,
        out: &mut impl Output,
    ) {
        self.tunnel = if upgrade {
            ClientTunnel::Requested
        } else {
            ClientTunnel::No
        };
        // An upgrade's body is the tunnel's bytes, after the 101: never chunked.
        self.chunked = !end_stream && !upgrade && !head.headers.contains("content-length");
        self.keep_alive = false;
        self.decoder.expect(head.is_head());
        // Empty: the encoder reserves the head's exact size, so the Bytes made of it owns the
        // allocation as is (a Vec with spare room would cost another allocation and an atomic
        // count, bytes' shared form).
        let mut encoded = Vec::new();
        let case = name_case(self.key_format, names);
        encode_request_head_as(head, self.chunked, case, &mut encoded);
        out.queue(Bytes::from(encoded));
    }

    /// Encodes request body bytes.
    pub(crate) fn encode_data(&mut self, data: Bytes, out: &mut impl Output) {
        if data.is_empty() {
            return;
        }
        if self.chunked {
            out.queue(chunk_header(data.len()));
            out.queue(data);
            out.queue(Bytes::from_static(CRLF));
        } else {
            out.queue(data);
        }
    }

    /// Ends a request that has a body (the last chunk, when chunked; a tunnel's FIN).
    pub(crate) fn encode_end(&mut self, out: &mut impl Output) {
        if self.tunnel != ClientTunnel::No {
            out.finish();
        } else if self.chunked {
            out.queue(Bytes::from_static(LAST_CHUNK));
        }
    }

    /// Decodes the next part of the response. `100 Continue` was answered to the client by the
    /// proxy and other informational responses are dropped; a `101` is a protocol error until
    /// the request asked to upgrade.
    pub(crate) fn decode(&mut self, input: &mut BytesMut) -> Result<Option<ResponsePart>, Error> {
        if self.tunnel == ClientTunnel::Open {
            return Ok((!input.is_empty()).then(|| ResponsePart::Data(input.split().freeze())));
        }
        loop {
            match self.decoder.decode(input)? {
                None => return Ok(None),
                Some(event) => {
                    if let Some(part) = self.on_event(event)? {
                        return Ok(Some(part));
                    }
                }
            }
        }
    }

    /// Like [`decode`](Self::decode) after the origin closed: returns what is still buffered;
    /// a close-delimited body ends here, anything else was cut short ([`Error::Incomplete`]).
    pub(crate) fn decode_eof(
        &mut self,
        input: &mut BytesMut,
    ) -> Result<Option<ResponsePart>, Error> {
        if self.tunnel == ClientTunnel::Open {
            // The tunnel's end is the origin's close.
            return Ok(Some(if input.is_empty() {
                ResponsePart::End
            } else {
                ResponsePart::Data(input.split().freeze())
            }));
        }
        loop {
            match self.decoder.decode_eof(input)? {
                None => return Err(Error::Incomplete),
                Some(event) => {
                    if let Some(part) = self.on_event(event)? {
                        return Ok(Some(part));
                    }
                }
            }
        }
    }

    fn on_event(&mut self, event: ResponseEvent) -> Result<Option<ResponsePart>, Error> {
        Ok(Some(match event {
            ResponseEvent::Head(response) => match response.head.status {
                101 if self.tunnel == ClientTunnel::Requested => {
                    self.tunnel = ClientTunnel::Open;
                    ResponsePart::Headers {
                        end_stream: false,
                        names: self.keep_names(&response.head),
                        head: response.head,
                    }
                }
                101 => return Err(Error::SwitchedProtocols),
                100..=199 => return Ok(None),
                _ => {
                    let response = *response;
                    self.keep_alive = response.keep_alive;
                    ResponsePart::Headers {
                        end_stream: response.body == BodyKind::Empty,
                        names: self.keep_names(&response.head),
                        head: response.head,
                    }
                }
            },
            ResponseEvent::Data(data) => ResponsePart::Data(data),
            ResponseEvent::End => ResponsePart::End,
        }))
    }

    /// The response's names (and reason phrase), kept when the cluster's `header_key_format`
    /// is `preserve_case`.
    fn keep_names(&self, head: &ResponseHead) -> Option<ReceivedNames> {
        ReceivedNames::keep(self.key_format, &head.headers, &head.reason)
    }

    /// How many more requests the connection can take now: HTTP/1 carries one at a time, so
    /// 1 between exchanges on a connection both sides keep (and that is no tunnel), else 0.
    /// (An HTTP/2 codec reports its peer's remaining concurrent streams.)
    pub(crate) fn streams_available(&self) -> u32 {
        u32::from(self.keep_alive && self.tunnel != ClientTunnel::Open)
    }
}

#[cfg(test)]
mod tests;
