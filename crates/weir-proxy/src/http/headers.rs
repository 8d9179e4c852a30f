//! Header rewriting at the proxy boundary: hop-by-hop removal, forwarding headers, request ids.

use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use weir_config::{CidrRange, ServerHeaderTransformation};
use weir_http1::{Headers, eq_ignore_case, list_tokens};

/// Removes hop-by-hop headers and every header the `Connection` header names.
pub(crate) fn strip_hop_by_hop(headers: &mut Headers) {
    // One look at every field: is any hop-by-hop, and does a `Connection` value name a field
    // beyond the hop-by-hop ones (`keep-alive`, `close`: the usual case, which then costs no
    // allocation)? Most messages carry none, and then nothing moves.
    let mut any = false;
    let mut named: Vec<Bytes> = Vec::new();
    for h in headers.iter() {
        if !is_hop_by_hop(&h.name) {
            continue;
        }
        any = true;
        if eq_ignore_case(&h.name, b"connection")
            && list_tokens(&h.value).any(|t| !is_hop_by_hop(t) && !eq_ignore_case(t, b"close"))
        {
            named.push(h.value.clone());
        }
    }
    if !any {
        return;
    }
    headers.retain(|h| {
        let name = &h.name[..];
        !is_hop_by_hop(name)
            && !named
                .iter()
                .any(|v| list_tokens(v).any(|t| eq_ignore_case(name, t)))
    });
}

/// Whether `name` is a hop-by-hop header (RFC 9110 §7.6.1, plus the de-facto `keep-alive` and
/// `proxy-connection`). Every field of every message asks, and most are not: the length picks
/// the one or two names to compare.
#[inline]
fn is_hop_by_hop(name: &[u8]) -> bool {
    let is = |hop: &str| eq_ignore_case(name, hop.as_bytes());
    match name.len() {
        2 => is("te"),
        7 => is("trailer") || is("upgrade"),
        10 => is("connection") || is("keep-alive"),
        16 => is("proxy-connection"),
        17 => is("transfer-encoding"),
        18 => is("proxy-authenticate"),
        _ => false,
    }
}

/// What the connection manager knows about the downstream connection when forwarding.
pub(crate) struct ForwardContext<'a> {
    /// The peer address of the downstream connection.
    pub(crate) remote: SocketAddr,
    /// `use_remote_address`.
    pub(crate) use_remote_address: bool,
    /// `xff_num_trusted_hops`.
    pub(crate) xff_num_trusted_hops: u32,
    /// `generate_request_id`.
    pub(crate) generate_request_id: bool,
    /// `preserve_external_request_id`.
    pub(crate) preserve_external_request_id: bool,
    /// `internal_address_config.cidr_ranges`.
    pub(crate) internal_addresses: &'a [CidrRange],
    /// The downstream connection's scheme, `http` or `https` (TLS), for `x-forwarded-proto`.
    pub(crate) scheme: &'static [u8],
}

/// Who the connection manager found the request to come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Origin {
    /// The trusted client address (port 0 when it came from `x-forwarded-for`).
    pub(crate) client: SocketAddr,
    /// The request is internal: it may steer the router with `x-envoy-*` headers.
    pub(crate) internal: bool,
}

/// The `x-envoy-*` request headers Envoy's connection manager removes from every request it
/// does not call internal (`cleanInternalHeaders`), so a client cannot steer the router's
/// retries and timeouts or inject tracing and tags; and `x-envoy-internal`, which only the
/// proxy sets.
const CLIENT_ENVOY_HEADERS: [&str; 15] = [
    "x-envoy-internal",
    "x-envoy-retriable-status-codes",
    "x-envoy-retriable-header-names",
    "x-envoy-retry-on",
    "x-envoy-retry-grpc-on",
    "x-envoy-max-retries",
    "x-envoy-upstream-alt-stat-name",
    "x-envoy-upstream-rq-timeout-ms",
    "x-envoy-upstream-rq-per-try-timeout-ms",
    "x-envoy-upstream-rq-timeout-alt-response",
    "x-envoy-expected-rq-timeout-ms",
    "x-envoy-force-trace",
    "x-envoy-ip-tags",
    "x-envoy-original-url",
    "x-envoy-hedge-on-per-try-timeout",
];

/// Removed too from an edge request (`use_remote_address`, external): what only this proxy
/// may say about where a request came from and how it was routed.
const EDGE_ENVOY_HEADERS: [&str; 4] = [
    "x-envoy-decorator-operation",
    "x-envoy-downstream-service-cluster",
    "x-envoy-downstream-service-node",
    "x-envoy-original-path",
];

/// Whether `name` is an `x-envoy-*` header: a cheap first test before the lists are compared.
pub(crate) fn is_envoy_header(name: &[u8]) -> bool {
    const PREFIX: &[u8] = b"x-envoy-";
    name.len() > PREFIX.len() && name[..PREFIX.len()].eq_ignore_ascii_case(PREFIX)
}

/// Removes the `x-envoy-*` headers a client may not send: with `internal`, only
/// `x-envoy-internal` (the proxy sets it); otherwise [`CLIENT_ENVOY_HEADERS`], and with `edge`
/// [`EDGE_ENVOY_HEADERS`] too. One pass; a header that does not start with `x-envoy-` costs
/// one comparison.
fn strip_client_envoy_headers(headers: &mut Headers, internal: bool, edge: bool) {
    if !headers.iter().any(|h| is_envoy_header(&h.name)) {
        return;
    }
    if internal {
        headers.remove("x-envoy-internal");
        return;
    }
    headers.retain(|h| {
        let name = &h.name[..];
        let named = |list: &[&str]| list.iter().any(|n| name.eq_ignore_ascii_case(n.as_bytes()));
        !(named(&CLIENT_ENVOY_HEADERS) || edge && named(&EDGE_ENVOY_HEADERS))
    });
}

/// Sets `x-forwarded-for`, `x-forwarded-proto` and `x-request-id` as Envoy's connection manager
/// does, and says who the request came from and whether it is internal.
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
///
/// A request is internal when, as Envoy decides it, `x-forwarded-for` ends up holding one
/// address (with `use_remote_address`: the client sent none) and the trusted client address is
/// in `internal_address_config` (without `use_remote_address`, one taken from the header). An
/// internal request gets `x-envoy-internal: true` and keeps its other `x-envoy-*` headers;
/// from any other, those a client may not send are removed. Without `internal_address_config`
/// no request is internal (Envoy 1.40's default). With `use_remote_address`, a request that is
/// not internal is an edge request: `x-envoy-external-address` is the client address, and
/// `x-request-id` is replaced unless `preserve_external_request_id`.
pub(crate) fn set_forwarding_headers(
    headers: &mut Headers,
    ctx: &ForwardContext<'_>,
    rng: &mut fastrand::Rng,
) -> Origin {
    let hops = ctx.xff_num_trusted_hops as usize;
    let from_xff = if ctx.use_remote_address {
        hops.checked_sub(1)
            .and_then(|skip| xff_from_right(headers, skip))
    } else {
        xff_from_right(headers, hops)
    };
    let client = from_xff.map_or(ctx.remote, |ip| SocketAddr::new(ip, 0));
    // Without `internal_address_config` (the common case) nothing more is read.
    let internal = !ctx.internal_addresses.is_empty()
        && (from_xff.is_some() || ctx.use_remote_address)
        && ctx
            .internal_addresses
            .iter()
            .any(|range| range.contains(client.ip()))
        && if ctx.use_remote_address {
            !headers.contains("x-forwarded-for")
        } else {
            xff_entries(headers) == 1
        };
    let edge = ctx.use_remote_address && !internal;
    strip_client_envoy_headers(headers, internal, edge);
    if internal {
        headers.set("x-envoy-internal", Bytes::from_static(b"true"));
    }
    if edge {
        headers.set("x-envoy-external-address", client.ip().to_string());
    }
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
            headers.set("x-forwarded-proto", Bytes::from_static(ctx.scheme));
        }
    } else if !headers.contains("x-forwarded-proto") {
        headers.append("x-forwarded-proto", Bytes::from_static(ctx.scheme));
    }
    let replace_id = edge && !ctx.preserve_external_request_id;
    if ctx.generate_request_id && (replace_id || !headers.contains("x-request-id")) {
        let id = uuid::Builder::from_random_bytes(rng.u128(..).to_le_bytes()).into_uuid();
        headers.set("x-request-id", id.hyphenated().to_string());
    }
    Origin { client, internal }
}

/// How many entries `x-forwarded-for` holds (all its fields read as one list).
fn xff_entries(headers: &Headers) -> usize {
    headers
        .get_all("x-forwarded-for")
        .map(|v| v.split(|&b| b == b',').count())
        .sum()
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

/// What the connection manager writes on every response it sends, as Envoy's does after the
/// filters: `date` when the response has none (RFC 9110 §6.6.1), and `server` as
/// `server_header_transformation` says (OVERWRITE: always `name`; APPEND_IF_ABSENT: `name`
/// when the response has none; PASS_THROUGH: the response's own, or none). `date` is called
/// only when it is needed.
pub(crate) fn set_response_headers(
    headers: &mut Headers,
    date: impl FnOnce() -> Bytes,
    server: (ServerHeaderTransformation, &Bytes),
) {
    if !headers.contains("date") {
        headers.append("date", date());
    }
    match server.0 {
        ServerHeaderTransformation::Overwrite => headers.set("server", server.1.clone()),
        ServerHeaderTransformation::AppendIfAbsent if !headers.contains("server") => {
            headers.append("server", server.1.clone());
        }
        ServerHeaderTransformation::AppendIfAbsent | ServerHeaderTransformation::PassThrough => {}
    }
}

/// The decimal digits of 0 to 999, back to back: a number below 1000 becomes a header value
/// without an allocation.
static SMALL_NUMBERS: [u8; 2890] = small_numbers();

const fn small_numbers() -> [u8; 2890] {
    let mut out = [0u8; 2890];
    let (mut n, mut at) = (0usize, 0usize);
    while n < 1000 {
        if n >= 100 {
            out[at] = b'0' + (n / 100) as u8;
            at += 1;
        }
        if n >= 10 {
            out[at] = b'0' + (n / 10 % 10) as u8;
            at += 1;
        }
        out[at] = b'0' + (n % 10) as u8;
        at += 1;
        n += 1;
    }
    out
}

/// `n` in decimal as a header value (milliseconds, mostly): from a static table below 1000,
/// else formatted.
pub(crate) fn number_value(n: u64) -> Bytes {
    let (start, len) = match n {
        0..=9 => (n as usize, 1),
        10..=99 => (10 + (n as usize - 10) * 2, 2),
        100..=999 => (190 + (n as usize - 100) * 3, 3),
        _ => return Bytes::copy_from_slice(itoa::Buffer::new().format(n).as_bytes()),
    };
    Bytes::from_static(&SMALL_NUMBERS[start..start + len])
}

/// The last number of 1000 or more made a header value, kept: a route's timeout is the same
/// for most requests, so its text is formatted once, not per request.
#[derive(Debug, Default)]
pub(crate) struct NumberCache {
    last: Option<(u64, Bytes)>,
}

impl NumberCache {
    /// `n` in decimal as a header value.
    pub(crate) fn get(&mut self, n: u64) -> Bytes {
        if n < 1000 {
            return number_value(n);
        }
        match &self.last {
            Some((m, text)) if *m == n => text.clone(),
            _ => {
                let text = number_value(n);
                self.last = Some((n, text.clone()));
                text
            }
        }
    }
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

    #[test]
    fn hop_by_hop_names_are_exactly_the_eight() {
        let hops = [
            "connection",
            "Keep-Alive",
            "PROXY-CONNECTION",
            "te",
            "Trailer",
            "transfer-encoding",
            "upgrade",
            "proxy-authenticate",
        ];
        for name in hops {
            assert!(is_hop_by_hop(name.as_bytes()), "{name}");
        }
        for name in [
            "t",
            "tf",
            "trailers",
            "upgrades",
            "connectio",
            "keep_alive",
            "host",
            "",
        ] {
            assert!(!is_hop_by_hop(name.as_bytes()), "{name}");
        }
    }

    fn ctx(use_remote: bool, hops: u32) -> ForwardContext<'static> {
        ForwardContext {
            remote: "10.0.0.9:4242".parse().unwrap(),
            use_remote_address: use_remote,
            xff_num_trusted_hops: hops,
            generate_request_id: true,
            preserve_external_request_id: false,
            internal_addresses: &[],
            scheme: b"http",
        }
    }

    #[test]
    fn use_remote_address_appends_peer() {
        let mut rng = fastrand::Rng::with_seed(1);
        let mut h = headers(&[
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-proto", "https"),
        ]);
        let client = set_forwarding_headers(&mut h, &ctx(true, 0), &mut rng).client;
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
        let client = set_forwarding_headers(&mut h, &ctx(true, 1), &mut rng).client;
        assert_eq!(client.to_string(), "3.3.3.3:0");
        assert_eq!(get(&h, "x-forwarded-proto").unwrap(), "https");
        // An edge request's id is the proxy's own, as Envoy makes it.
        assert_ne!(get(&h, "x-request-id").unwrap(), "abc");

        let mut h = headers(&[("x-forwarded-for", "2.2.2.2, 3.3.3.3")]);
        let client = set_forwarding_headers(&mut h, &ctx(false, 1), &mut rng).client;
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
            set_forwarding_headers(&mut h, &ctx(false, 1), &mut rng)
                .client
                .to_string(),
            "10.0.0.9:4242"
        );
        let mut h = headers(&[("x-forwarded-for", "6.6.6.6, junk, 3.3.3.3")]);
        assert_eq!(
            set_forwarding_headers(&mut h, &ctx(false, 0), &mut rng)
                .client
                .to_string(),
            "3.3.3.3:0"
        );
        // An address with a port is not an address (as in Envoy), nor is an empty entry.
        let mut h = headers(&[("x-forwarded-for", "3.3.3.3:80")]);
        assert_eq!(
            set_forwarding_headers(&mut h, &ctx(false, 0), &mut rng)
                .client
                .to_string(),
            "10.0.0.9:4242"
        );
        // Too few entries for the trusted hops.
        let mut h = headers(&[("x-forwarded-for", "3.3.3.3")]);
        assert_eq!(
            set_forwarding_headers(&mut h, &ctx(true, 2), &mut rng)
                .client
                .to_string(),
            "10.0.0.9:4242"
        );
    }

    #[test]
    fn numbers_from_the_table_and_beyond() {
        for n in [0, 7, 9, 10, 42, 99, 100, 505, 999, 1000, 15000, u64::MAX] {
            assert_eq!(number_value(n), n.to_string().as_bytes(), "{n}");
        }
    }

    #[test]
    fn the_number_cache_gives_the_same_text() {
        let mut cache = NumberCache::default();
        assert_eq!(cache.get(15000), "15000");
        assert_eq!(cache.get(15000), "15000");
        assert_eq!(cache.get(250), "250");
        assert_eq!(cache.get(2500), "2500");
    }

    #[test]
    fn date_when_absent_and_server_by_transformation() {
        use ServerHeaderTransformation::*;
        let name = Bytes::from_static(b"weir");
        let date = || Bytes::from_static(b"Mon, 07 Dec 2026 01:00:00 GMT");
        let cases = [
            (Overwrite, None, Some("weir")),
            (Overwrite, Some("origin"), Some("weir")),
            (AppendIfAbsent, None, Some("weir")),
            (AppendIfAbsent, Some("origin"), Some("origin")),
            (PassThrough, None, None),
            (PassThrough, Some("origin"), Some("origin")),
        ];
        for (mode, origin, want) in cases {
            let mut h = headers(&[("Date", "Sun, 06 Dec 2026 00:00:00 GMT")]);
            if let Some(origin) = origin {
                h.append("Server", origin.to_string());
            }
            set_response_headers(&mut h, date, (mode, &name));
            assert_eq!(get(&h, "server").as_deref(), want, "{mode:?} {origin:?}");
            assert_eq!(h.get_all("server").count(), usize::from(want.is_some()));
            // The origin's own date is kept.
            assert_eq!(get(&h, "date").unwrap(), "Sun, 06 Dec 2026 00:00:00 GMT");
        }
        let mut h = Headers::new();
        set_response_headers(&mut h, date, (PassThrough, &name));
        assert_eq!(get(&h, "date").unwrap(), "Mon, 07 Dec 2026 01:00:00 GMT");
    }

    fn client_envoy_headers() -> Headers {
        headers(&[
            ("X-Envoy-Max-Retries", "3"),
            ("x-envoy-retry-on", "5xx"),
            ("x-envoy-upstream-rq-timeout-ms", "500"),
            ("x-envoy-expected-rq-timeout-ms", "77"),
            ("x-envoy-internal", "true"),
            ("x-envoy-original-path", "/orig"),
            ("x-envoy-decorator-operation", "op"),
            ("x-envoy-external-address", "6.6.6.6"),
            ("x-envoy-foo", "bar"),
            ("x-envoy-attempt-count", "9"),
            ("x-request-id", "client-chosen"),
        ])
    }

    fn names(h: &Headers) -> Vec<String> {
        h.iter()
            .map(|x| String::from_utf8_lossy(&x.name).to_ascii_lowercase())
            .collect()
    }

    /// As Envoy 1.40 does (checked with the same headers): without `use_remote_address` the
    /// router's and the proxy's own headers go, the rest stays.
    #[test]
    fn a_request_loses_the_envoy_headers_a_client_may_not_send() {
        let mut rng = fastrand::Rng::with_seed(1);
        let mut h = client_envoy_headers();
        set_forwarding_headers(&mut h, &ctx(false, 0), &mut rng);
        assert_eq!(
            names(&h),
            [
                "x-envoy-original-path",
                "x-envoy-decorator-operation",
                "x-envoy-external-address",
                "x-envoy-foo",
                "x-envoy-attempt-count",
                "x-request-id",
                "x-forwarded-proto"
            ]
        );
        assert_eq!(get(&h, "x-envoy-external-address").unwrap(), "6.6.6.6");
        assert_eq!(get(&h, "x-request-id").unwrap(), "client-chosen");
    }

    #[test]
    fn an_edge_request_gets_its_external_address_and_a_new_request_id() {
        let mut rng = fastrand::Rng::with_seed(1);
        let mut h = client_envoy_headers();
        set_forwarding_headers(&mut h, &ctx(true, 0), &mut rng);
        let mut found = names(&h);
        found.sort();
        assert_eq!(
            found,
            [
                "x-envoy-attempt-count",
                "x-envoy-external-address",
                "x-envoy-foo",
                "x-forwarded-for",
                "x-forwarded-proto",
                "x-request-id"
            ]
        );
        assert_eq!(get(&h, "x-envoy-external-address").unwrap(), "10.0.0.9");
        let id = get(&h, "x-request-id").unwrap();
        assert!(id != "client-chosen" && id.len() == 36, "{id}");
        // With a trusted hop, the external address is the client's from x-forwarded-for.
        let mut h = headers(&[("x-forwarded-for", "192.0.2.1, 198.51.100.2")]);
        set_forwarding_headers(&mut h, &ctx(true, 1), &mut rng);
        assert_eq!(get(&h, "x-envoy-external-address").unwrap(), "198.51.100.2");
        // preserve_external_request_id keeps the client's.
        let mut h = client_envoy_headers();
        let keep = ForwardContext {
            preserve_external_request_id: true,
            ..ctx(true, 0)
        };
        set_forwarding_headers(&mut h, &keep, &mut rng);
        assert_eq!(get(&h, "x-request-id").unwrap(), "client-chosen");
    }

    /// As Envoy 1.40 does (checked with `internal_address_config` on the same requests).
    #[test]
    fn an_internal_request_keeps_its_envoy_headers_and_is_marked() {
        let ranges = [
            CidrRange {
                address: "10.0.0.0".parse().unwrap(),
                prefix_len: 8,
            },
            CidrRange {
                address: "192.168.0.0".parse().unwrap(),
                prefix_len: 16,
            },
        ];
        let internal = |use_remote: bool| ForwardContext {
            internal_addresses: &ranges,
            ..ctx(use_remote, 0)
        };
        let mut rng = fastrand::Rng::with_seed(1);
        // The peer (10.0.0.9) is internal, and no x-forwarded-for came with the request.
        let mut h = client_envoy_headers();
        let origin = set_forwarding_headers(&mut h, &internal(true), &mut rng);
        assert!(origin.internal);
        assert_eq!(get(&h, "x-envoy-internal").unwrap(), "true");
        assert_eq!(h.get_all("x-envoy-internal").count(), 1);
        for kept in [
            "x-envoy-max-retries",
            "x-envoy-retry-on",
            "x-envoy-original-path",
        ] {
            assert!(h.contains(kept), "{kept}");
        }
        // Not an edge request: the client's id stays; the external address is the client's own
        // header, not set by the proxy.
        assert_eq!(get(&h, "x-request-id").unwrap(), "client-chosen");
        assert_eq!(get(&h, "x-envoy-external-address").unwrap(), "6.6.6.6");
        // With an x-forwarded-for already there, it holds two addresses: external.
        let mut h = headers(&[
            ("x-forwarded-for", "10.1.1.1"),
            ("x-envoy-internal", "true"),
        ]);
        let origin = set_forwarding_headers(&mut h, &internal(true), &mut rng);
        assert!(!origin.internal);
        assert!(!h.contains("x-envoy-internal"));
        assert_eq!(get(&h, "x-envoy-external-address").unwrap(), "10.0.0.9");
        // Without use_remote_address: the one address in x-forwarded-for decides.
        let mut h = headers(&[
            ("x-forwarded-for", "192.168.3.4"),
            ("x-envoy-max-retries", "2"),
        ]);
        let origin = set_forwarding_headers(&mut h, &internal(false), &mut rng);
        assert_eq!(origin.client.to_string(), "192.168.3.4:0");
        assert!(origin.internal && h.contains("x-envoy-max-retries"));
        for xff in ["1.2.3.4, 192.168.3.4", "1.2.3.4"] {
            let mut h = headers(&[("x-forwarded-for", xff), ("x-envoy-max-retries", "2")]);
            let origin = set_forwarding_headers(&mut h, &internal(false), &mut rng);
            assert!(!origin.internal, "{xff}");
            assert!(!h.contains("x-envoy-max-retries"));
        }
        // No x-forwarded-for without use_remote_address: external, whatever the peer.
        let mut h = headers(&[("x-envoy-max-retries", "2")]);
        assert!(!set_forwarding_headers(&mut h, &internal(false), &mut rng).internal);
    }
}
