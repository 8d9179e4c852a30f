//! The PROXY protocol header a load balancer puts before a connection's bytes (HAProxy's
//! spec, versions 1 and 2), read sans-IO: bytes in, a verdict out. Version 1 is a text line
//! (`PROXY TCP4 192.0.2.1 198.51.100.2 40001 443\r\n`, at most 107 bytes); version 2 a
//! 16-byte binary head (a 12-byte signature, version and command, family and transport, a
//! length) and the addresses and TLVs that length covers. As Envoy's filter: `UNKNOWN` (v1)
//! and `LOCAL` (v2) keep the connection's own addresses; a datagram transport is taken like a
//! stream; an address that is not unicast, an AF_UNIX or unspecified family, a bad version or
//! command, malformed TLVs, or a malformed line is an error.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The version 2 signature.
const SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// The version 1 preamble.
const V1_PREFIX: &[u8] = b"PROXY ";
/// A version 1 line's longest form, CRLF included.
const V1_MAX: usize = 107;

/// The source and destination a header carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Addresses {
    pub(crate) source: SocketAddr,
    pub(crate) destination: SocketAddr,
}

/// A connection whose PROXY protocol header named its client: the TCP peer it really came
/// from, and the destination the header gave (its local address from then on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Proxied {
    pub(crate) direct_peer: SocketAddr,
    pub(crate) local: SocketAddr,
}

/// What the bytes so far say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Header {
    /// Too few bytes to tell.
    NeedMore,
    /// The connection does not start with a header.
    Absent,
    /// A header of `version`, `length` bytes long, with the addresses it carries (`None`:
    /// the connection's own stand).
    Found {
        version: u8,
        length: usize,
        addresses: Option<Addresses>,
    },
    /// A malformed header of `version`.
    Invalid { version: u8 },
}

/// Reads the header at the start of `input`.
pub(crate) fn read(input: &[u8]) -> Header {
    if input.starts_with(SIGNATURE) {
        return read_v2(input);
    }
    if input.starts_with(V1_PREFIX) {
        return read_v1(input);
    }
    let may_be = |prefix: &[u8]| input.len() < prefix.len() && prefix.starts_with(input);
    if may_be(SIGNATURE) || may_be(V1_PREFIX) {
        Header::NeedMore
    } else {
        Header::Absent
    }
}

fn read_v1(input: &[u8]) -> Header {
    let invalid = Header::Invalid { version: 1 };
    let window = &input[..input.len().min(V1_MAX)];
    let Some(end) = window.windows(2).position(|w| w == b"\r\n") else {
        return match input.len() >= V1_MAX {
            true => invalid,
            false => Header::NeedMore,
        };
    };
    let Ok(line) = std::str::from_utf8(&input[V1_PREFIX.len()..end]) else {
        return invalid;
    };
    let length = end + 2;
    let mut words = line.split(' ');
    let family = words.next();
    if family == Some("UNKNOWN") {
        return Header::Found {
            version: 1,
            length,
            addresses: None,
        };
    }
    let (Some(source), Some(destination), Some(source_port), Some(destination_port), None) = (
        words.next(),
        words.next(),
        words.next(),
        words.next(),
        words.next(),
    ) else {
        return invalid;
    };
    let ip = |text: &str| -> Option<IpAddr> {
        match family {
            Some("TCP4") => text.parse::<Ipv4Addr>().ok().map(IpAddr::V4),
            Some("TCP6") => text.parse::<Ipv6Addr>().ok().map(IpAddr::V6),
            _ => None,
        }
    };
    // Ports are decimal digits, nothing else.
    let port = |text: &str| -> Option<u16> {
        let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
        digits.then(|| text.parse().ok()).flatten()
    };
    match (
        ip(source),
        ip(destination),
        port(source_port),
        port(destination_port),
    ) {
        (Some(s), Some(d), Some(sp), Some(dp)) => found_unicast(
            1,
            length,
            Addresses {
                source: SocketAddr::new(s, sp),
                destination: SocketAddr::new(d, dp),
            },
        ),
        _ => invalid,
    }
}

/// A header whose addresses are both unicast (a TCP connection's must be), else invalid.
fn found_unicast(version: u8, length: usize, addresses: Addresses) -> Header {
    let unicast = |ip: IpAddr| {
        !ip.is_unspecified() && !ip.is_multicast() && ip != IpAddr::V4(Ipv4Addr::BROADCAST)
    };
    match unicast(addresses.source.ip()) && unicast(addresses.destination.ip()) {
        true => Header::Found {
            version,
            length,
            addresses: Some(addresses),
        },
        false => Header::Invalid { version },
    }
}

/// TLVs (type, 16-bit length, value) that fill `bytes` exactly.
fn tlvs_well_formed(mut bytes: &[u8]) -> bool {
    while !bytes.is_empty() {
        let Some(&[_, high, low]) = bytes.get(..3) else {
            return false;
        };
        let end = 3 + usize::from(u16::from_be_bytes([high, low]));
        let Some(rest) = bytes.get(end..) else {
            return false;
        };
        bytes = rest;
    }
    true
}

fn read_v2(input: &[u8]) -> Header {
    let invalid = Header::Invalid { version: 2 };
    let [version_command, family, high, low] = match input.get(12..16) {
        Some(&[a, b, c, d]) => [a, b, c, d],
        _ => return Header::NeedMore,
    };
    let body = usize::from(u16::from_be_bytes([high, low]));
    let length = 16 + body;
    if version_command >> 4 != 2 {
        return invalid;
    }
    let Some(body) = input.get(16..length) else {
        return Header::NeedMore;
    };
    let local = match version_command & 0x0f {
        0 => true,
        1 => false,
        _ => return invalid,
    };
    if local {
        return Header::Found {
            version: 2,
            length,
            addresses: None,
        };
    }
    // A stream or datagram transport (1, 2).
    if !matches!(family & 0x0f, 1 | 2) {
        return invalid;
    }
    let port = |b: &[u8]| u16::from_be_bytes([b[0], b[1]]);
    let (addresses, tlvs) = match family >> 4 {
        // AF_INET: 4 + 4 + 2 + 2 bytes, then TLVs.
        1 if body.len() >= 12 => {
            let ip = |b: &[u8]| IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]));
            let addresses = Addresses {
                source: SocketAddr::new(ip(&body[0..4]), port(&body[8..10])),
                destination: SocketAddr::new(ip(&body[4..8]), port(&body[10..12])),
            };
            (addresses, &body[12..])
        }
        // AF_INET6: 16 + 16 + 2 + 2 bytes.
        2 if body.len() >= 36 => {
            let ip = |b: &[u8]| {
                let octets: [u8; 16] = b.try_into().unwrap_or([0; 16]);
                IpAddr::V6(Ipv6Addr::from(octets))
            };
            let addresses = Addresses {
                source: SocketAddr::new(ip(&body[0..16]), port(&body[32..34])),
                destination: SocketAddr::new(ip(&body[16..32]), port(&body[34..36])),
            };
            (addresses, &body[36..])
        }
        // Unspecified, AF_UNIX, an unknown family, or addresses cut short.
        _ => return invalid,
    };
    match tlvs_well_formed(tlvs) {
        true => found_unicast(2, length, addresses),
        false => invalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2(version_command: u8, family: u8, body: &[u8]) -> Vec<u8> {
        let mut out = SIGNATURE.to_vec();
        out.extend([version_command, family]);
        out.extend((body.len() as u16).to_be_bytes());
        out.extend(body);
        out
    }

    fn addresses(source: &str, destination: &str) -> Option<Addresses> {
        Some(Addresses {
            source: source.parse().expect("address"),
            destination: destination.parse().expect("address"),
        })
    }

    #[test]
    fn version_1_lines() {
        let line = b"PROXY TCP4 192.0.2.7 198.51.100.9 40001 443\r\nGET /";
        assert_eq!(
            read(line),
            Header::Found {
                version: 1,
                length: line.len() - 5,
                addresses: addresses("192.0.2.7:40001", "198.51.100.9:443"),
            }
        );
        let six = b"PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n";
        assert_eq!(
            read(six),
            Header::Found {
                version: 1,
                length: six.len(),
                addresses: addresses("[2001:db8::1]:1", "[2001:db8::2]:2"),
            }
        );
        let leading_zero = b"PROXY TCP4 192.0.2.7 198.51.100.9 01 2\r\n";
        assert!(matches!(read(leading_zero), Header::Found { .. }));
        let unknown = b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n";
        assert!(matches!(
            read(unknown),
            Header::Found {
                addresses: None,
                ..
            }
        ));
        for bad in [
            &b"PROXY TCP4 192.0.2.7 198.51.100.9 40001\r\n"[..],
            b"PROXY TCP4 192.0.2.700 198.51.100.9 1 2\r\n",
            b"PROXY TCP4 2001:db8::1 198.51.100.9 1 2\r\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.9 1 65536\r\n",
            b"PROXY TCP4 0.0.0.0 198.51.100.9 1 2\r\n",
            b"PROXY TCP4 192.0.2.7 224.0.0.1 1 2\r\n",
            b"PROXY TCP5 192.0.2.7 198.51.100.9 1 2\r\n",
            b"PROXY TCP4  192.0.2.7 198.51.100.9 1 2\r\n",
        ] {
            assert_eq!(read(bad), Header::Invalid { version: 1 }, "{bad:?}");
        }
        // No CRLF within 107 bytes.
        let long = [b"PROXY TCP4 ".as_slice(), &[b'1'; 100]].concat();
        assert_eq!(read(&long), Header::Invalid { version: 1 });
        assert_eq!(read(b"PROXY TCP4 192.0.2.7"), Header::NeedMore);
    }

    #[test]
    fn version_2_heads() {
        let mut inet = vec![203, 0, 113, 5, 198, 51, 100, 1];
        inet.extend(5555u16.to_be_bytes());
        inet.extend(80u16.to_be_bytes());
        let with_tlv = [inet.clone(), vec![0x04, 0x00, 0x02, b'a', b'b']].concat();
        let head = v2(0x21, 0x11, &with_tlv);
        assert_eq!(
            read(&[head.clone(), b"GET".to_vec()].concat()),
            Header::Found {
                version: 2,
                length: head.len(),
                addresses: addresses("203.0.113.5:5555", "198.51.100.1:80"),
            }
        );
        // A datagram transport is taken as Envoy takes it.
        assert!(matches!(
            read(&v2(0x21, 0x12, &inet)),
            Header::Found {
                addresses: Some(_),
                ..
            }
        ));
        let mut inet6 = [0u8; 36].to_vec();
        inet6[15] = 1;
        inet6[31] = 2;
        inet6[32..34].copy_from_slice(&7u16.to_be_bytes());
        inet6[34..36].copy_from_slice(&8u16.to_be_bytes());
        assert_eq!(
            read(&v2(0x21, 0x21, &inet6)),
            Header::Found {
                version: 2,
                length: 52,
                addresses: addresses("[::1]:7", "[::2]:8"),
            }
        );
        assert!(matches!(
            read(&v2(0x20, 0x00, &[])),
            Header::Found {
                addresses: None,
                length: 16,
                ..
            }
        ));
        for bad in [
            v2(0x31, 0x11, &inet),
            v2(0x22, 0x11, &inet),
            v2(0x21, 0x31, &[0; 216]),
            v2(0x21, 0x11, &inet[..8]),
            v2(0x21, 0x01, &inet),
            v2(0x21, 0x10, &inet),
            v2(
                0x21,
                0x11,
                &[inet.clone(), vec![0x04, 0x00, 0x09, b'a']].concat(),
            ),
        ] {
            assert_eq!(read(&bad), Header::Invalid { version: 2 }, "{bad:?}");
        }
        assert_eq!(read(&head[..20]), Header::NeedMore);
        assert_eq!(read(&SIGNATURE[..5]), Header::NeedMore);
    }

    #[test]
    fn anything_else_has_no_header() {
        assert_eq!(read(b"GET / HTTP/1.1\r\n"), Header::Absent);
        assert_eq!(read(b"\x16\x03\x01"), Header::Absent);
        assert_eq!(read(b"PRO"), Header::NeedMore);
        assert_eq!(read(b"PROXZ"), Header::Absent);
        assert_eq!(read(b""), Header::NeedMore);
    }
}
