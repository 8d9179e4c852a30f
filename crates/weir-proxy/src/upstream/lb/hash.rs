//! A request's hash for ring hash and Maglev, from its route's `hash_policy` (Envoy's rules):
//! each policy that finds its input gives an xxHash64; the hashes combine as
//! `rotate_left(so_far, 1) ^ next`; a `terminal` policy that gave one ends the list. A cookie
//! policy with a `ttl` whose cookie is missing makes the cookie up (a hash of the connection's
//! two addresses, so every request of the connection gets the same) and asks for it to be set
//! on the response.

use std::net::SocketAddr;
use std::time::Duration;

use weir_config::{HashKind, HashPolicy};
use weir_http1::RequestHead;
use xxhash_rust::xxh64::xxh64;

/// What hashing a request gave.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct RequestHash {
    pub(crate) hash: Option<u64>,
    /// A `set-cookie` value for the response (a cookie policy made its cookie up).
    pub(crate) set_cookie: Option<String>,
}

/// The downstream connection's addresses (the client's IP; the made-up cookie's input).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Connection {
    pub(crate) remote: SocketAddr,
    pub(crate) local: SocketAddr,
}

/// Hashes `head` by `policies`.
pub(crate) fn request_hash(
    policies: &[HashPolicy],
    head: &RequestHead,
    conn: Connection,
) -> RequestHash {
    let mut out = RequestHash::default();
    for policy in policies {
        let Some(next) = policy_hash(&policy.kind, head, conn, &mut out.set_cookie) else {
            continue;
        };
        out.hash = Some(match out.hash {
            Some(so_far) => so_far.rotate_left(1) ^ next,
            None => next,
        });
        if policy.terminal {
            break;
        }
    }
    out
}

fn policy_hash(
    kind: &HashKind,
    head: &RequestHead,
    conn: Connection,
    set_cookie: &mut Option<String>,
) -> Option<u64> {
    match kind {
        HashKind::Header { name } => {
            let mut values: Vec<&[u8]> = head.headers.get_all(name).map(|v| &v[..]).collect();
            if values.is_empty() {
                return None;
            }
            // The same hash whatever order the values came in; each value seeds the next.
            values.sort_unstable();
            Some(values.iter().fold(0, |seed, v| xxh64(v, seed)))
        }
        HashKind::Cookie { name, ttl, path } => match cookie_value(head, name) {
            Some(value) => Some(xxh64(value, 0)),
            None => {
                let ttl = (*ttl)?;
                let both = format!("{}{}", conn.remote, conn.local);
                let value = format!("{:016x}", xxh64(both.as_bytes(), 0));
                *set_cookie = Some(set_cookie_value(name, &value, path, ttl));
                Some(xxh64(value.as_bytes(), 0))
            }
        },
        HashKind::SourceIp { enabled } => {
            enabled.then(|| xxh64(conn.remote.ip().to_string().as_bytes(), 0))
        }
        HashKind::QueryParameter { name } => {
            let query = head.query()?;
            query.split(|&b| b == b'&').find_map(|pair| {
                let (key, value) = match pair.iter().position(|&b| b == b'=') {
                    Some(eq) => (&pair[..eq], &pair[eq + 1..]),
                    None => (pair, &b""[..]),
                };
                (key == name.as_bytes()).then(|| xxh64(value, 0))
            })
        }
    }
}

/// The value of cookie `name` in the request's `cookie` headers (quotes around it removed).
fn cookie_value<'h>(head: &'h RequestHead, name: &str) -> Option<&'h [u8]> {
    head.headers.get_all("cookie").find_map(|header| {
        header.split(|&b| b == b';').find_map(|pair| {
            let pair = pair.trim_ascii();
            let eq = pair.iter().position(|&b| b == b'=')?;
            if pair[..eq].trim_ascii() != name.as_bytes() {
                return None;
            }
            let value = pair[eq + 1..].trim_ascii();
            let value = value
                .strip_prefix(b"\"")
                .and_then(|v| v.strip_suffix(b"\""))
                .unwrap_or(value);
            (!value.is_empty()).then_some(value)
        })
    })
}

/// Envoy's `set-cookie` for a made-up cookie: quoted value, `Max-Age` unless 0, `Path` when
/// given, `HttpOnly`.
fn set_cookie_value(name: &str, value: &str, path: &str, ttl: Duration) -> String {
    let mut out = format!("{name}=\"{value}\"");
    if !ttl.is_zero() {
        out.push_str(&format!("; Max-Age={}", ttl.as_secs()));
    }
    if !path.is_empty() {
        out.push_str(&format!("; Path={path}"));
    }
    out.push_str("; HttpOnly");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_http1::{BytesMut, Limits, RequestDecoder, RequestEvent};

    fn head(raw: &str) -> RequestHead {
        let mut buf = BytesMut::from(raw.as_bytes());
        match RequestDecoder::new(Limits::default()).decode(&mut buf) {
            Ok(Some(RequestEvent::Head(r))) => r.head,
            other => panic!("{other:?}"),
        }
    }

    fn policy(kind: HashKind, terminal: bool) -> HashPolicy {
        HashPolicy { kind, terminal }
    }

    const CONN: Connection = Connection {
        remote: SocketAddr::new(
            std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 7)),
            5000,
        ),
        local: SocketAddr::new(
            std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1)),
            80,
        ),
    };

    #[test]
    fn a_header_hashes_its_values_in_any_order() {
        let by_user = [policy(
            HashKind::Header {
                name: "x-user".into(),
            },
            false,
        )];
        let one = head("GET / HTTP/1.1\r\nhost: a\r\nx-user: b\r\nx-user: a\r\n\r\n");
        let other = head("GET / HTTP/1.1\r\nhost: a\r\nx-user: a\r\nx-user: b\r\n\r\n");
        let hash = request_hash(&by_user, &one, CONN).hash;
        assert!(hash.is_some());
        assert_eq!(hash, request_hash(&by_user, &other, CONN).hash);
        let single = head("GET / HTTP/1.1\r\nhost: a\r\nx-user: alice\r\n\r\n");
        assert_eq!(
            request_hash(&by_user, &single, CONN).hash,
            Some(xxh64(b"alice", 0))
        );
        let none = head("GET / HTTP/1.1\r\nhost: a\r\n\r\n");
        assert_eq!(request_hash(&by_user, &none, CONN), RequestHash::default());
    }

    #[test]
    fn policies_combine_until_a_terminal_one_hashes() {
        let q = |t| policy(HashKind::QueryParameter { name: "id".into() }, t);
        let ip = policy(HashKind::SourceIp { enabled: true }, false);
        let h = head("GET /p?x=1&id=42 HTTP/1.1\r\nhost: a\r\n\r\n");
        let (id, ip_hash) = (xxh64(b"42", 0), xxh64(b"10.0.0.7", 0));
        assert_eq!(
            request_hash(&[q(false), ip.clone()], &h, CONN).hash,
            Some(id.rotate_left(1) ^ ip_hash)
        );
        assert_eq!(
            request_hash(&[q(true), ip.clone()], &h, CONN).hash,
            Some(id)
        );
        // A terminal policy that finds nothing does not stop the list.
        let no_id = head("GET /p HTTP/1.1\r\nhost: a\r\n\r\n");
        assert_eq!(
            request_hash(&[q(true), ip], &no_id, CONN).hash,
            Some(ip_hash)
        );
    }

    #[test]
    fn a_missing_cookie_with_a_ttl_is_made_up_and_set() {
        let sticky = |ttl| {
            [policy(
                HashKind::Cookie {
                    name: "s".into(),
                    ttl,
                    path: "/".into(),
                },
                false,
            )]
        };
        let with = head("GET / HTTP/1.1\r\nhost: a\r\ncookie: a=1; s=\"abc\"\r\n\r\n");
        let got = request_hash(&sticky(Some(Duration::from_secs(60))), &with, CONN);
        assert_eq!(
            got,
            RequestHash {
                hash: Some(xxh64(b"abc", 0)),
                set_cookie: None
            }
        );
        let without = head("GET / HTTP/1.1\r\nhost: a\r\n\r\n");
        assert_eq!(
            request_hash(&sticky(None), &without, CONN),
            RequestHash::default()
        );
        let made = request_hash(&sticky(Some(Duration::from_secs(60))), &without, CONN);
        let value = format!("{:016x}", xxh64(b"10.0.0.7:500010.0.0.1:80", 0));
        assert_eq!(made.hash, Some(xxh64(value.as_bytes(), 0)));
        assert_eq!(
            made.set_cookie,
            Some(format!("s=\"{value}\"; Max-Age=60; Path=/; HttpOnly"))
        );
    }
}
