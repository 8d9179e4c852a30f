//! TLS on both sides: a rustls session (a server's toward clients, a client's toward origins)
//! driven from the edge-triggered loop.
//!
//! [`TlsSession`] is weir's own face of a rustls `Connection` (so a rustls API change stays in
//! this file). Reading drains the socket into the session only when the session has
//! no plaintext left, so at most one record's worth waits in rustls and the socket's edge is
//! never lost: a read returns `WouldBlock` only once the session is empty *and* the socket
//! said so. Handshake bytes, alerts and `close_notify` leave through `write_tls` (vectored)
//! as soon as they are made; what the socket does not take waits in the session, which
//! [`TlsSession::wants_write`] reports so the connection keeps flushing it.

use std::io::{self, IoSlice, Read, Write};
use std::sync::Arc;

use mio::net::TcpStream;
use rustls::pki_types::ServerName;
use rustls::{
    ClientConfig, ClientConnection, Connection, HandshakeKind, ProtocolVersion, ServerConfig,
    ServerConnection,
};

/// Encrypted output the session holds before it takes no more plaintext: the back-pressure
/// point of a TLS connection (the codec's queue stays the connection's).
const SEND_BUFFER_LIMIT: usize = 64 * 1024;
/// Socket reads one `read` may do without finding plaintext (handshake and other records):
/// past it the peer is sending records that carry nothing, and the connection is closed.
const MAX_EMPTY_READS: usize = 256;

/// What a handshake settled, for stats.
#[derive(Debug, Clone)]
pub(crate) struct TlsInfo {
    /// `TLSv1.2` or `TLSv1.3`, as Envoy names them.
    pub(crate) version: &'static str,
    /// Envoy's name for the suite (`TLS_AES_128_GCM_SHA256`, `ECDHE-ECDSA-AES128-GCM-SHA256`).
    pub(crate) cipher: String,
    /// Envoy's name for the key exchange group (`X25519`, `P-256`).
    pub(crate) curve: Option<String>,
    /// The SNI: the one the client asked for (a server session), the one sent (a client's).
    pub(crate) server_name: Option<String>,
    /// The ALPN protocol agreed, if any.
    pub(crate) alpn: Option<String>,
    /// A resumed session.
    pub(crate) resumed: bool,
    /// The peer presented a certificate.
    pub(crate) peer_certificate: bool,
    /// What a client's certificate says (for the `%DOWNSTREAM_PEER_*%` operators): read once
    /// per mTLS handshake, none otherwise.
    pub(crate) peer: Option<Box<weir_config::CertInfo>>,
}

impl TlsInfo {
    /// The flow trace's record of it.
    pub(crate) fn event(&self) -> weir_flow::EventKind {
        weir_flow::EventKind::TlsHandshake {
            version: self.version.into(),
            cipher: self.cipher.as_str().into(),
            server_name: self.server_name.as_deref().map(Into::into),
            alpn: self.alpn.as_deref().map(Into::into),
            resumed: self.resumed,
        }
    }
}

/// What happened to the handshake since last asked.
#[derive(Debug)]
pub(crate) enum TlsProgress {
    /// It completed.
    Done(Box<TlsInfo>),
    /// It failed (bad ClientHello, plaintext, a refused client certificate, …); why, when it
    /// was the peer's certificate.
    Failed(Option<VerifyFailure>),
}

/// Why a peer's certificate was refused (`ssl.fail_verify_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VerifyFailure {
    /// A certificate was required and none came.
    NoCertificate,
    /// Its chain does not lead to `trusted_ca`, or it is expired, revoked, malformed, ….
    Chain,
    /// None of its names passed `match_typed_subject_alt_names`.
    SubjectAltName,
}

impl VerifyFailure {
    /// The verification failure a handshake error is, if it is one.
    fn of(e: &rustls::Error) -> Option<VerifyFailure> {
        match e {
            rustls::Error::NoCertificatesPresented => Some(VerifyFailure::NoCertificate),
            rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            ) => Some(VerifyFailure::SubjectAltName),
            rustls::Error::InvalidCertificate(_) => Some(VerifyFailure::Chain),
            _ => None,
        }
    }
}

/// See the module documentation.
pub(crate) struct TlsSession {
    conn: Connection,
    /// A client session's SNI (what it sent), for its [`TlsInfo`].
    sni: Option<String>,
    /// The handshake's end was seen (and reported once through `progress`).
    handshake_done: bool,
    progress: Option<TlsProgress>,
    /// Encrypted bytes read from and written to the socket, since the flow trace last asked.
    wire: Wire,
}

/// Encrypted bytes each way, not yet reported.
#[derive(Debug, Default)]
struct Wire {
    read: u64,
    written: u64,
}

impl TlsSession {
    /// A session whose first bytes from the client are `prefix` (what a TLS inspector read;
    /// usually empty). A prefix that is not a valid start of TLS is an error.
    pub(crate) fn server(config: Arc<ServerConfig>, mut prefix: &[u8]) -> io::Result<Self> {
        let mut conn = Connection::Server(ServerConnection::new(config).map_err(io::Error::other)?);
        conn.set_buffer_limit(Some(SEND_BUFFER_LIMIT));
        // Each pass takes bytes (or fails), so the loop ends.
        while !prefix.is_empty() {
            if conn.read_tls(&mut prefix)? == 0 {
                break;
            }
            conn.process_new_packets().map_err(io::Error::other)?;
        }
        Ok(TlsSession {
            conn,
            sni: None,
            handshake_done: false,
            progress: None,
            wire: Wire::default(),
        })
    }

    /// A client session toward an origin, presenting `name` (sent as SNI when it is a DNS
    /// name). Its ClientHello waits in the session until the connect completes and the
    /// connection flushes; plaintext written before the handshake ends waits too.
    pub(crate) fn client(config: Arc<ClientConfig>, name: ServerName<'static>) -> io::Result<Self> {
        let sni = match &name {
            ServerName::DnsName(d) => Some(d.as_ref().to_owned()),
            _ => None,
        };
        let mut conn =
            Connection::Client(ClientConnection::new(config, name).map_err(io::Error::other)?);
        conn.set_buffer_limit(Some(SEND_BUFFER_LIMIT));
        Ok(TlsSession {
            conn,
            sni,
            handshake_done: false,
            progress: None,
            wire: Wire::default(),
        })
    }

    /// Reads plaintext into `buf`: what the session holds, else what the socket brings.
    /// `Ok(0)` is the end (close_notify, or the peer's FIN).
    pub(crate) fn read(&mut self, socket: &mut TcpStream, buf: &mut [u8]) -> io::Result<usize> {
        for _ in 0..MAX_EMPTY_READS {
            match self.conn.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // A FIN without close_notify: an end all the same (HTTP framing says whether
                // the message was whole).
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            match self.conn.read_tls(socket) {
                Ok(0) => return Ok(0),
                Ok(n) => {
                    self.wire.read += n as u64;
                    self.process(socket)?;
                }
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::other("TLS records without data"))
    }

    /// Decrypts what was read; sends what the session has to say (handshake, alert).
    fn process(&mut self, socket: &mut TcpStream) -> io::Result<()> {
        if let Err(e) = self.conn.process_new_packets() {
            if !self.handshake_done {
                self.progress = Some(TlsProgress::Failed(VerifyFailure::of(&e)));
            }
            // The alert rustls queued, if the socket takes it.
            let _ = self.flush(socket);
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
        if !self.handshake_done && !self.conn.is_handshaking() {
            self.handshake_done = true;
            self.progress = Some(TlsProgress::Done(Box::new(self.settled())));
        }
        match self.flush(socket) {
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => Err(e),
            _ => Ok(()),
        }
    }

    /// What the completed handshake agreed.
    fn settled(&self) -> TlsInfo {
        let version = match self.conn.protocol_version() {
            Some(ProtocolVersion::TLSv1_2) => "TLSv1.2",
            _ => "TLSv1.3",
        };
        TlsInfo {
            version,
            cipher: self
                .conn
                .negotiated_cipher_suite()
                .map(|s| weir_config::cipher_stat_name(s.suite()))
                .unwrap_or_default(),
            curve: self
                .conn
                .negotiated_key_exchange_group()
                .map(|g| weir_config::group_stat_name(g.name())),
            server_name: match &self.conn {
                Connection::Server(c) => c.server_name().map(str::to_owned),
                Connection::Client(_) => self.sni.clone(),
            },
            alpn: self
                .conn
                .alpn_protocol()
                .map(|p| String::from_utf8_lossy(p).into_owned()),
            resumed: self.conn.handshake_kind() == Some(HandshakeKind::Resumed),
            peer_certificate: self.conn.peer_certificates().is_some(),
            peer: match &self.conn {
                Connection::Server(c) => c
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .and_then(|der| weir_config::CertInfo::parse(der))
                    .map(Box::new),
                Connection::Client(_) => None,
            },
        }
    }

    /// Encrypts as much of `bufs` as the session takes and writes it out. Takes less than
    /// offered only when the socket is full (then the next writable edge goes on).
    pub(crate) fn write_vectored(
        &mut self,
        socket: &mut TcpStream,
        bufs: &[IoSlice<'_>],
    ) -> io::Result<usize> {
        let offered: usize = bufs.iter().map(|b| b.len()).sum();
        let mut taken = 0;
        // Each round either takes plaintext or meets a full socket: bounded by the offer.
        while taken < offered {
            if !self.flush(socket)? {
                break;
            }
            let n = write_from(&mut self.conn, bufs, taken)?;
            if n == 0 {
                break;
            }
            taken += n;
        }
        match self.flush(socket) {
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => return Err(e),
            _ => {}
        }
        if taken == 0 && offered > 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(taken)
    }

    /// Writes the session's pending output; `Ok(true)` when none is left, `Ok(false)` when the
    /// socket is full.
    pub(crate) fn flush(&mut self, socket: &mut TcpStream) -> io::Result<bool> {
        // Each `write_tls` sends at least one byte or stops the loop.
        while self.conn.wants_write() {
            match self.conn.write_tls(socket) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.wire.written += n as u64,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Encrypted bytes wait for the socket.
    pub(crate) fn wants_write(&self) -> bool {
        self.conn.wants_write()
    }

    /// Queues `close_notify` (once).
    pub(crate) fn close_notify(&mut self) {
        self.conn.send_close_notify();
    }

    /// Encrypted bytes read (`In`) or written (`Out`) since the last call for that way.
    pub(crate) fn take_wire(&mut self, direction: weir_flow::Direction) -> u64 {
        match direction {
            weir_flow::Direction::In => std::mem::take(&mut self.wire.read),
            weir_flow::Direction::Out => std::mem::take(&mut self.wire.written),
        }
    }

    /// The handshake has not finished.
    pub(crate) fn handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// What happened to the handshake since last asked.
    pub(crate) fn take_progress(&mut self) -> Option<TlsProgress> {
        self.progress.take()
    }
}

/// Hands the session the bytes of `bufs` from `skip` on; how many it took.
fn write_from(conn: &mut Connection, bufs: &[IoSlice<'_>], skip: usize) -> io::Result<usize> {
    let mut rest = skip;
    let mut slices = Vec::with_capacity(bufs.len());
    for b in bufs {
        if rest >= b.len() {
            rest -= b.len();
            continue;
        }
        slices.push(IoSlice::new(&b[rest..]));
        rest = 0;
    }
    conn.writer().write_vectored(&slices)
}
