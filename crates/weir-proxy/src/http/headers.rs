//! Header rewriting at the proxy boundary: hop-by-hop removal, forwarding headers, request ids.

use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use weir_http1::{Headers, list_tokens};

/// Hop-by-hop headers (RFC 9110 §7.6.1, plus the de-facto `keep-alive` and `proxy-connection`).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authenticate",
];

/// Removes hop-by-hop headers and every header the `Connection` header names.
pub(crate) fn strip_hop_by_hop(headers: &mut Headers) {
    let named: Vec<Vec<u8>> = headers
        .get_all("connection")
        .flat_map(|v| list_tokens(v).map(|t| t.to_ascii_lowercase()))
        .collect();
    headers.retain(|h| {
        let name = &h.name[..];
        !HOP_BY_HOP
            .iter()
            .any(|hop| name.eq_ignore_ascii_case(hop.as_bytes()))
            && !named.iter().any(|n| name.eq_ignore_ascii_case(n))
    });
}

/// What the connection manager knows about the downstream connection when forwarding.
pub(crate) struct ForwardContext {
    /// The peer address of the downstream connection.
    pub(crate) remote: SocketAddr,
    /// `use_remote_address`.
    pub(crate) use_remote_address: bool,
    /// `xff_num_trusted_hops`.
    pub(crate) xff_num_trusted_hops: u32,
    /// `generate_request_id`.
    pub(crate) generate_request_id: bool,
}

/// Sets `x-forwarded-for`, `x-forwarded-proto` and `x-request-id` as Envoy's connection manager
/// does, and returns the trusted client address.
///
/// - `use_remote_address: true`: the connection's peer is appended to `x-forwarded-for`;
///   `x-forwarded-proto` is set to the downstream scheme unless `xff_num_trusted_hops > 0`
///   (then the downstream's value is trusted and kept when present). The client address is the
///   peer, or with N trusted hops the Nth address from the right of the original header.
/// - `use_remote_address: false`: `x-forwarded-for` is passed through untouched and the client
///   address is taken from it (N trusted hops → the (N+1)th from the right); `x-forwarded-proto`
///   is set only when absent.
///
/// An address taken from `x-forwarded-for` has port 0 (Envoy's `%DOWNSTREAM_REMOTE_ADDRESS%`
/// shows it so). Entries count by position: when the chosen one is not an IP address, or there
/// are too few, the client is the peer, so a client cannot shift the choice with junk entries.
pub(crate) fn set_forwarding_headers(
    headers: &mut Headers,
    ctx: &ForwardContext,
    rng: &mut fastrand::Rng,
) -> SocketAddr {
    let hops = ctx.xff_num_trusted_hops as usize;
    let from_xff = if ctx.use_remote_address {
        hops.checked_sub(1)
            .and_then(|skip| xff_from_right(headers, skip))
    } else {
        xff_from_right(headers, hops)
    };
    let client = from_xff.map_or(ctx.remote, |ip| SocketAddr::new(ip, 0));
    if ctx.use_remote_address {
        let mut value = headers
            .get_all("x-forwarded-for")
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect::<Vec<_>>()
            .join(",");
        if !value.is_empty() {
            value.push(',');
        }
        value.push_str(&ctx.remote.ip().to_string());
        headers.set("x-forwarded-for", value);
        if hops == 0 || !headers.contains("x-forwarded-proto") {
            headers.set("x-forwarded-proto", Bytes::from_static(b"http"));
        }
    } else if !headers.contains("x-forwarded-proto") {
        headers.append("x-forwarded-proto", Bytes::from_static(b"http"));
    }
    if ctx.generate_request_id && !headers.contains("x-request-id") {
        let id = uuid::Builder::from_random_bytes(rng.u128(..).to_le_bytes()).into_uuid();
        headers.append("x-request-id", id.hyphenated().to_string());
    }
    client
}

/// The address `skip` entries from the right end of `x-forwarded-for` (all its fields read as
/// one list), if there is such an entry and it is an IP address.
fn xff_from_right(headers: &Headers, skip: usize) -> Option<IpAddr> {
    let entries: Vec<&[u8]> = headers
        .get_all("x-forwarded-for")
        .flat_map(|v| v.split(|&b| b == b','))
        .collect();
    let entry = entries.len().checked_sub(skip + 1).map(|i| entries[i])?;
    std::str::from_utf8(entry).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Headers {
        let mut h = Headers::new();
        for (n, v) in pairs {
            h.append(n.to_string(), v.to_string());
        }
        h
    }

    fn get(h: &Headers, name: &str) -> Option<String> {
        h.get(name).map(|v| String::from_utf8_lossy(v).into_owned())
    }

    #[test]
    fn removes_hop_by_hop_and_connection_named() {
        let mut h = headers(&[
            ("Connection", "keep-alive, X-Secret"),
            ("Keep-Alive", "timeout=5"),
            ("x-secret", "1"),
            ("Upgrade", "websocket"),
            ("TE", "trailers"),
            ("Accept", "*/*"),
        ]);
        strip_hop_by_hop(&mut h);
        let names: Vec<_> = h.iter().map(|x| x.name.clone()).collect();
        assert_eq!(names, vec![Bytes::from_static(b"Accept")]);
    }

    fn ctx(use_remote: bool, hops: u32) -> ForwardContext {
        ForwardContext {
            remote: "10.0.0.9:4242".parse().unwrap(),
            use_remote_address: use_remote,
            xff_num_trusted_hops: hops,
            generate_request_id: true,
        }
    }

    #[test]
    fn use_remote_address_appends_peer() {
        let mut rng = fastrand::Rng::with_seed(1);
        let mut h = headers(&[
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-proto", "https"),
        ]);
        let client = set_forwarding_headers(&mut h, &ctx(true, 0), &mut rng);
        assert_eq!(get(&h, "x-forwarded-for").unwrap(), "1.1.1.1,10.0.0.9");
        assert_eq!(get(&h, "x-forwarded-proto").unwrap(), "http");
        assert_eq!(client.to_string(), "10.0.0.9:4242");
        assert_eq!(get(&h, "x-request-id").unwrap().len(), 36);
    }

    #[test]
    fn trusted_hops_pick_client_and_keep_proto() {
        let mut rng = fastrand::Rng::with_seed(1);
        let mut h = headers(&[
            ("x-forwarded-for", "2.2.2.2, 3.3.3.3"),
            ("x-forwarded-proto", "https"),
            ("x-request-id", "abc"),
        ]);
        let client = set_forwarding_headers(&mut h, &ctx(true, 1), &mut rng);
        assert_eq!(client.to_string(), "3.3.3.3:0");
        assert_eq!(get(&h, "x-forwarded-proto").unwrap(), "https");
        assert_eq!(get(&h, "x-request-id").unwrap(), "abc");

        let mut h = headers(&[("x-forwarded-for", "2.2.2.2, 3.3.3.3")]);
        let client = set_forwarding_headers(&mut h, &ctx(false, 1), &mut rng);
        assert_eq!(client.to_string(), "2.2.2.2:0");
        assert_eq!(get(&h, "x-forwarded-for").unwrap(), "2.2.2.2, 3.3.3.3");
        assert_eq!(get(&h, "x-forwarded-proto").unwrap(), "http");
    }

    /// Entries count by position, junk included: a client cannot push a forged address into
    /// the trusted slot by adding an entry that is not an address.
    #[test]
    fn an_entry_that_is_not_an_address_falls_back_to_the_peer() {
        let mut rng = fastrand::Rng::with_seed(1);
        let mut h = headers(&[
            ("x-forwarded-for", "6.6.6.6, junk"),
            ("x-forwarded-for", "3.3.3.3"),
        ]);
        assert_eq!(
            set_forwarding_headers(&mut h, &ctx(false, 1), &mut rng).to_string(),
            "10.0.0.9:4242"
        );
        let mut h = headers(&[("x-forwarded-for", "6.6.6.6, junk, 3.3.3.3")]);
        assert_eq!(
            set_forwarding_headers(&mut h, &ctx(false, 0), &mut rng).to_string(),
            "3.3.3.3:0"
        );
        // An address with a port is not an address (as in Envoy), nor is an empty entry.
        let mut h = headers(&[("x-forwarded-for", "3.3.3.3:80")]);
        assert_eq!(
            set_forwarding_headers(&mut h, &ctx(false, 0), &mut rng).to_string(),
            "10.0.0.9:4242"
        );
        // Too few entries for the trusted hops.
        let mut h = headers(&[("x-forwarded-for", "3.3.3.3")]);
        assert_eq!(
            set_forwarding_headers(&mut h, &ctx(true, 2), &mut rng).to_string(),
            "10.0.0.9:4242"
        );
    }
}
