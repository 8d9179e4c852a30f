//! A minimal HTTP/1.1 GET client for weir's admin listener, on weir's own codec.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use weir_http1::{BytesMut, Limits, ResponseDecoder, ResponseEvent};

/// GETs `path` from `admin` (`host:port`); returns the status and body.
pub(crate) fn get(admin: &str, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
    let mut socket = TcpStream::connect(admin)?;
    socket.set_read_timeout(Some(Duration::from_secs(10)))?;
    let request = format!("GET {path} HTTP/1.1\r\nhost: {admin}\r\nconnection: close\r\n\r\n");
    socket.write_all(request.as_bytes())?;
    let mut decoder = ResponseDecoder::new(Limits::default());
    decoder.expect(false);
    let mut buf = BytesMut::new();
    let mut chunk = [0u8; 16 * 1024];
    let mut status = 0;
    let mut body = Vec::new();
    loop {
        let event = match decoder.decode(&mut buf) {
            Ok(Some(event)) => event,
            Ok(None) => match socket.read(&mut chunk)? {
                0 => match decoder.decode_eof(&mut buf) {
                    Ok(Some(event)) => event,
                    Ok(None) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                    Err(e) => return Err(std::io::Error::other(e)),
                },
                n => {
                    buf.extend_from_slice(&chunk[..n]);
                    continue;
                }
            },
            Err(e) => return Err(std::io::Error::other(e)),
        };
        match event {
            ResponseEvent::Head(r) => status = r.head.status,
            ResponseEvent::Data(d) => body.extend_from_slice(&d),
            ResponseEvent::End => return Ok((status, body)),
        }
    }
}
