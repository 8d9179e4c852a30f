//! What picks a listener's filter chain: `listener_filters[]` (the TLS inspector),
//! `listener_filters_timeout`, and each chain's `filter_chain_match`.

use crate::hcm::disabling_duration;
use crate::hcm_headers::cidr_range;
use crate::listener::{named_typed_config, type_name};
use crate::model::{
    CidrRange, FilterChainMatch, ListenerFilter, ListenerFiltersTimeout, SourceType,
};
use crate::reader::{Cx, Field, Obj};

/// `config.listener.v3.FilterChainMatch` fields weir does not support yet.
const FILTER_CHAIN_MATCH_ENVOY: &[&str] = &["address_suffix", "suffix_len"];

/// `config.listener.v3.ListenerFilter` fields weir does not support yet.
const LISTENER_FILTER_ENVOY: &[&str] = &["config_discovery", "filter_disabled"];

/// The `@type` of the TLS inspector's `typed_config`.
pub(crate) const TLS_INSPECTOR_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector";

/// Envoy's default and largest `max_client_hello_size`.
const MAX_CLIENT_HELLO_SIZE: u32 = 16 * 1024;

/// `filter_chain_match`: every field but `address_suffix` / `suffix_len` (which Envoy does not
/// implement either). `None` once an error was reported.
pub(crate) fn filter_chain_match(cx: &mut Cx, f: &Field<'_>) -> Option<FilterChainMatch> {
    let before = cx.errors.len();
    let mut o = Obj::new(cx, f, FILTER_CHAIN_MATCH_ENVOY)?;
    let destination_port = o.get(cx, "destination_port").and_then(|p| port(cx, &p));
    let prefix_ranges = ranges(cx, &mut o, "prefix_ranges");
    let server_names = o
        .list(cx, "server_names")
        .iter()
        .filter_map(|n| server_name(cx, n))
        .collect();
    let transport_protocol = o.string(cx, "transport_protocol").filter(|p| !p.is_empty());
    if let Some(p) = &transport_protocol
        && p != "tls"
        && p != "raw_buffer"
    {
        cx.warn(
            &crate::reader::join(o.path(), "transport_protocol"),
            format!(
                "`{p}` never matches: weir sets the transport protocol to `tls` or `raw_buffer` (Envoy accepts it too)"
            ),
        );
    }
    let application_protocols = o
        .list(cx, "application_protocols")
        .iter()
        .filter_map(|p| non_empty_or_any(cx, p, "application protocol"))
        .collect();
    let direct_source_prefix_ranges = ranges(cx, &mut o, "direct_source_prefix_ranges");
    let source_type = o.get(cx, "source_type").and_then(|t| {
        t.enumeration(
            cx,
            "source_type",
            &[("ANY", 0), ("SAME_IP_OR_LOOPBACK", 1), ("EXTERNAL", 2)],
        )
    });
    let source_prefix_ranges = ranges(cx, &mut o, "source_prefix_ranges");
    let source_ports = o
        .list(cx, "source_ports")
        .iter()
        .filter_map(|p| port(cx, p))
        .collect();
    o.finish(cx);
    (cx.errors.len() == before).then_some(FilterChainMatch {
        destination_port,
        prefix_ranges,
        server_names,
        transport_protocol,
        application_protocols,
        direct_source_prefix_ranges,
        source_type: match source_type {
            Some("SAME_IP_OR_LOOPBACK") => SourceType::SameIpOrLoopback,
            Some("EXTERNAL") => SourceType::External,
            _ => SourceType::Any,
        },
        source_prefix_ranges,
        source_ports,
    })
}

/// A port: 1..=65535, as Envoy's validation requires.
fn port(cx: &mut Cx, f: &Field<'_>) -> Option<u16> {
    let port = f.u32(cx)?;
    match u16::try_from(port) {
        Ok(port) if port != 0 => Some(port),
        _ => {
            cx.error(&f.path, format!("port {port} is out of range (1..=65535)"));
            None
        }
    }
}

/// A list of `CidrRange`s.
fn ranges(cx: &mut Cx, o: &mut Obj<'_>, name: &'static str) -> Vec<CidrRange> {
    o.list(cx, name)
        .iter()
        .filter_map(|r| cidr_range(cx, r))
        .collect()
}

/// A `server_names` entry, in lower case. A wildcard is only a leading `*.`: Envoy rejects a
/// partial one (`foo*.com`, `*`), which it would never match.
fn server_name(cx: &mut Cx, f: &Field<'_>) -> Option<String> {
    let name = non_empty_or_any(cx, f, "server name")?;
    if name.contains('*') && !name.starts_with("*.") {
        cx.error(
            &f.path,
            format!(
                "`{name}`: partial wildcards are not supported in server_names (as in Envoy): a wildcard is a leading `*.`, as in `*.example.com`"
            ),
        );
        return None;
    }
    Some(name.to_ascii_lowercase())
}

/// A string entry; an empty one is kept, with a warning, as Envoy keeps it: it files the chain
/// as if the list were empty, matching any value.
fn non_empty_or_any(cx: &mut Cx, f: &Field<'_>, what: &str) -> Option<String> {
    let s = f.string(cx)?;
    if s.is_empty() {
        cx.warn(
            &f.path,
            format!(
                "an empty {what} matches any connection, as if the list were empty (as in Envoy)"
            ),
        );
    }
    Some(s)
}

/// The `@type` of the HTTP inspector's `typed_config`.
pub(crate) const HTTP_INSPECTOR_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector";

/// The `@type` of the PROXY protocol filter's `typed_config`.
pub(crate) const PROXY_PROTOCOL_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol";

/// `listener_filters[]`: the TLS inspector and the PROXY protocol filter so far.
pub(crate) fn listener_filters(cx: &mut Cx, o: &mut Obj<'_>) -> Option<Vec<ListenerFilter>> {
    let before = cx.errors.len();
    let filters: Vec<ListenerFilter> = o
        .list(cx, "listener_filters")
        .iter()
        .filter_map(|item| listener_filter(cx, item))
        .collect();
    (cx.errors.len() == before).then_some(filters)
}

/// One `listener_filters[]` entry: `name` and a `typed_config` whose @type picks the filter
/// (Envoy picks a listener filter by its type too, and requires one).
fn listener_filter(cx: &mut Cx, f: &Field<'_>) -> Option<ListenerFilter> {
    let supported = format!(
        "weir supports the TLS inspector, {TLS_INSPECTOR_TYPE}, the HTTP inspector, {HTTP_INSPECTOR_TYPE}, and the PROXY protocol filter, {PROXY_PROTOCOL_TYPE}"
    );
    let (name, typed) =
        named_typed_config(cx, f, LISTENER_FILTER_ENVOY, "listener filter", &supported)?;
    let kind = type_name(&typed.url);
    if kind == type_name(TLS_INSPECTOR_TYPE) {
        let max_client_hello_size = tls_inspector(cx, &typed.message)?;
        return Some(ListenerFilter::TlsInspector {
            name: name?,
            max_client_hello_size,
        });
    }
    if kind == type_name(HTTP_INSPECTOR_TYPE) {
        // Its message has no fields.
        let mut o = Obj::new(cx, &typed.message, &[])?;
        o.get(cx, "@type");
        o.finish(cx);
        return Some(ListenerFilter::HttpInspector { name: name? });
    }
    if kind == type_name(PROXY_PROTOCOL_TYPE) {
        let (allow_without, disallowed_versions) = proxy_protocol(cx, &typed.message)?;
        return Some(ListenerFilter::ProxyProtocol {
            name: name?,
            allow_without,
            disallowed_versions,
        });
    }
    cx.error(
        &typed.url_path,
        format!(
            "listener filter `{}` is not supported by weir yet ({supported})",
            typed.url
        ),
    );
    None
}

/// `extensions.filters.listener.proxy_protocol.v3.ProxyProtocol`: returns
/// `allow_requests_without_proxy_protocol` and `disallowed_versions`.
fn proxy_protocol(cx: &mut Cx, f: &Field<'_>) -> Option<(bool, Vec<u8>)> {
    let before = cx.errors.len();
    let mut o = Obj::new(cx, f, &[])?;
    o.get(cx, "@type");
    if let Some(v) = o.get(cx, "rules")
        && v.items(cx).is_some_and(|items| !items.is_empty())
    {
        cx.error(
            &v.path,
            "TLVs as dynamic metadata (`rules`) are not supported by weir yet",
        );
    }
    if let Some(v) = o.get(cx, "pass_through_tlvs") {
        cx.error(
            &v.path,
            "passing TLVs on (`pass_through_tlvs`) is not supported by weir yet",
        );
    }
    if let Some(prefix) = o.get(cx, "stat_prefix")
        && prefix.string(cx).is_some_and(|p| !p.is_empty())
    {
        cx.error(
            &prefix.path,
            "a stat_prefix is not supported by weir yet: its stats are proxy_proto.*",
        );
    }
    let allow_without = match o.get(cx, "allow_requests_without_proxy_protocol") {
        Some(v) => v.bool(cx)?,
        None => false,
    };
    let mut disallowed = Vec::new();
    for v in o.list(cx, "disallowed_versions") {
        match v.string(cx).as_deref() {
            Some("V1") => disallowed.push(1),
            Some("V2") => disallowed.push(2),
            Some(other) => cx.error(&v.path, format!("`{other}` is not a version (V1 or V2)")),
            None => {}
        }
    }
    o.finish(cx);
    (cx.errors.len() == before).then_some((allow_without, disallowed))
}

/// `extensions.filters.listener.tls_inspector.v3.TlsInspector`; returns
/// `max_client_hello_size`.
fn tls_inspector(cx: &mut Cx, f: &Field<'_>) -> Option<usize> {
    let before = cx.errors.len();
    let mut o = Obj::new(cx, f, &[])?;
    o.get(cx, "@type");
    for fingerprint in ["enable_ja3_fingerprinting", "enable_ja4_fingerprinting"] {
        if let Some(flag) = o.get(cx, fingerprint)
            && flag.bool(cx) == Some(true)
        {
            cx.error(
                &flag.path,
                "TLS fingerprinting is not supported by weir yet",
            );
        }
    }
    if let Some(flag) = o.get(cx, "close_connection_on_client_hello_parsing_errors")
        && flag.bool(cx) == Some(true)
    {
        cx.error(
            &flag.path,
            "closing connections on ClientHello parse errors is not supported by weir yet",
        );
    }
    // Only how much the first read asks for: it changes nothing weir or a client can see.
    if let Some(size) = o.get(cx, "initial_read_buffer_size") {
        in_range(cx, &size, 256, 65536);
    }
    let max = match o.get(cx, "max_client_hello_size") {
        Some(size) => in_range(cx, &size, 256, MAX_CLIENT_HELLO_SIZE),
        None => Some(MAX_CLIENT_HELLO_SIZE),
    };
    o.finish(cx);
    let max = usize::try_from(max?).ok()?;
    (cx.errors.len() == before).then_some(max)
}

/// A `uint32` in `min..=max` (Envoy's validation).
fn in_range(cx: &mut Cx, f: &Field<'_>, min: u32, max: u32) -> Option<u32> {
    let n = f.u32(cx)?;
    if (min..=max).contains(&n) {
        Some(n)
    } else {
        cx.error(&f.path, format!("{n} is out of range ({min}..={max})"));
        None
    }
}

/// `listener_filters_timeout` (default 15 s, `0s` for none) and
/// `continue_on_listener_filters_timeout` (default false).
pub(crate) fn listener_filters_timeout(
    cx: &mut Cx,
    o: &mut Obj<'_>,
) -> Option<ListenerFiltersTimeout> {
    let timeout = disabling_duration(
        cx,
        o,
        "listener_filters_timeout",
        ListenerFiltersTimeout::default().timeout,
    );
    let continue_on_timeout = match o.get(cx, "continue_on_listener_filters_timeout") {
        Some(c) => c.bool(cx),
        None => Some(false),
    };
    Some(ListenerFiltersTimeout {
        timeout: timeout?,
        continue_on_timeout: continue_on_timeout?,
    })
}
