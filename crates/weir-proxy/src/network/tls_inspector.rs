//! `envoy.filters.listener.tls_inspector`: what the first bytes of a connection say before its
//! filter chain is chosen — TLS or not, and for TLS the server name (SNI) and the ALPN
//! protocols of the ClientHello. Sans-IO: it looks at the bytes read so far and never consumes
//! them; they go on to the chosen chain (a TLS session, or the HTTP codec), so the same
//! connection can be terminated, passed through or served in plaintext.
//!
//! The ClientHello is parsed by rustls (`Acceptor`, made for choosing a configuration by SNI),
//! not by hand. A ClientHello rarely spans two reads; when it does, the bytes so far are parsed
//! again from the start, which costs less than keeping a parser's state per connection.

use rustls::server::Acceptor;

/// The TLS record type of a handshake message: the first byte of every ClientHello.
const HANDSHAKE_RECORD: u8 = 0x16;

/// What the bytes read so far say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Inspection {
    /// Not enough yet to tell.
    NeedMore,
    /// Not a TLS ClientHello: the transport protocol stays `raw_buffer`.
    NotTls,
    /// A ClientHello.
    Tls(ClientHello),
    /// Still undecided after `max_client_hello_size` bytes: Envoy closes such a connection.
    TooLarge,
}

/// What the chain selector needs from a ClientHello.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ClientHello {
    /// The SNI, in lower case.
    pub(crate) server_name: Option<String>,
    /// The ALPN protocols offered, in the client's order (those that are UTF-8).
    pub(crate) alpn: Vec<String>,
}

/// Inspects the first bytes of a connection (all of them read so far).
pub(crate) fn inspect(bytes: &[u8], max_client_hello_size: usize) -> Inspection {
    match bytes.first() {
        None => return Inspection::NeedMore,
        Some(&b) if b != HANDSHAKE_RECORD => return Inspection::NotTls,
        Some(_) => {}
    }
    let mut acceptor = Acceptor::default();
    let mut rest = bytes;
    // `read_tls` takes what fits its buffer at a time; the loop ends when all is taken, the
    // ClientHello is whole, or the bytes are not TLS. Each pass consumes bytes, so it is
    // bounded by `bytes.len()`.
    while !rest.is_empty() {
        match acceptor.read_tls(&mut rest) {
            Ok(0) => break,
            Ok(_) => {}
            // rustls' buffer is full: more than any ClientHello weir accepts, or not TLS.
            Err(_) if bytes.len() >= max_client_hello_size => return Inspection::TooLarge,
            Err(_) => return Inspection::NotTls,
        }
        match acceptor.accept() {
            Ok(Some(accepted)) => {
                let hello = accepted.client_hello();
                return Inspection::Tls(ClientHello {
                    server_name: hello.server_name().map(str::to_ascii_lowercase),
                    alpn: hello
                        .alpn()
                        .into_iter()
                        .flatten()
                        .filter_map(|p| std::str::from_utf8(p).ok())
                        .map(str::to_owned)
                        .collect(),
                });
            }
            Ok(None) => {}
            Err(_) => return Inspection::NotTls,
        }
    }
    if bytes.len() >= max_client_hello_size {
        Inspection::TooLarge
    } else {
        Inspection::NeedMore
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::pki_types::ServerName;
    use rustls::{ClientConfig, ClientConnection, RootCertStore};

    use super::*;

    /// The first flight of a real rustls client.
    fn client_hello(sni: &str, alpn: &[&str]) -> Vec<u8> {
        let mut config = ClientConfig::builder()
            .with_root_certificates(RootCertStore::empty())
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        let name = ServerName::try_from(sni.to_owned()).expect("a DNS name");
        let mut conn = ClientConnection::new(Arc::new(config), name).expect("a client");
        let mut out = Vec::new();
        while conn.wants_write() {
            conn.write_tls(&mut out).expect("into a Vec");
        }
        out
    }

    #[test]
    fn a_client_hello_gives_its_sni_in_lower_case_and_its_alpn_in_order() {
        let bytes = client_hello("API.Example.com", &["h2", "http/1.1"]);
        assert_eq!(
            inspect(&bytes, 16384),
            Inspection::Tls(ClientHello {
                server_name: Some("api.example.com".into()),
                alpn: vec!["h2".into(), "http/1.1".into()],
            })
        );
    }

    #[test]
    fn every_prefix_of_a_client_hello_needs_more() {
        let bytes = client_hello("example.com", &[]);
        for end in 0..bytes.len() {
            assert_eq!(inspect(&bytes[..end], 16384), Inspection::NeedMore, "{end}");
        }
        assert!(matches!(inspect(&bytes, 16384), Inspection::Tls(_)));
    }

    #[test]
    fn plaintext_and_garbage_are_not_tls() {
        assert_eq!(inspect(b"G", 16384), Inspection::NotTls);
        assert_eq!(inspect(b"GET / HTTP/1.1\r\n", 16384), Inspection::NotTls);
        // A handshake record whose message is not a ClientHello.
        assert_eq!(
            inspect(&[0x16, 3, 1, 0, 4, 2, 0, 0, 0], 16384),
            Inspection::NotTls
        );
    }

    #[test]
    fn an_unfinished_hello_past_the_limit_is_too_large() {
        let bytes = client_hello("example.com", &[]);
        let cut = &bytes[..bytes.len() - 1];
        assert_eq!(inspect(cut, cut.len()), Inspection::TooLarge);
        assert_eq!(inspect(cut, cut.len() + 1), Inspection::NeedMore);
    }
}
