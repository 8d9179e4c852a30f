//! `static_resources.listeners[]`: listeners, filter chains, and the one network filter weir has,
//! the HTTP connection manager, with its HTTP filters.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::access_log;
use crate::bootstrap::{Role, address};
use crate::cluster::{ClusterNames, DEFAULT_BUFFER_LIMIT};
use crate::model::{CodecType, FilterChain, HttpConnectionManager, HttpFilter, Listener};
use crate::reader::{Cx, Field, Obj, join};
use crate::{http_filter, route};

/// The `@type` of the HTTP connection manager's `typed_config`.
pub(crate) const HCM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
/// The `@type` of the router's `typed_config`.
pub(crate) const ROUTER_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";

/// `config.listener.v3.Listener` fields weir does not support yet.
const LISTENER_ENVOY: &[&str] = &[
    "additional_addresses",
    "stat_prefix",
    "filter_chain_matcher",
    "use_original_dst",
    "metadata",
    "deprecated_v1",
    "drain_type",
    "listener_filters",
    "listener_filters_timeout",
    "continue_on_listener_filters_timeout",
    "transparent",
    "freebind",
    "socket_options",
    "tcp_fast_open_queue_length",
    "traffic_direction",
    "udp_listener_config",
    "api_listener",
    "connection_balance_config",
    "reuse_port",
    "enable_reuse_port",
    "access_log",
    "tcp_backlog_size",
    "max_connections_to_accept_per_socket_event",
    "bind_to_port",
    "internal_listener",
    "enable_mptcp",
    "ignore_global_conn_limit",
    "bypass_overload_manager",
    "fcds_config",
    "per_connection_buffer_high_watermark_timeout",
    "stats_matcher",
    "tcp_keepalive",
];

/// `config.listener.v3.FilterChain` fields weir does not support yet.
const FILTER_CHAIN_ENVOY: &[&str] = &[
    "use_proxy_proto",
    "metadata",
    "transport_socket",
    "transport_socket_connect_timeout",
    "on_demand_configuration",
];

/// `config.listener.v3.FilterChainMatch` fields weir does not support yet.
const FILTER_CHAIN_MATCH_ENVOY: &[&str] = &[
    "prefix_ranges",
    "address_suffix",
    "suffix_len",
    "direct_source_prefix_ranges",
    "source_type",
    "source_prefix_ranges",
    "source_ports",
    "server_names",
    "transport_protocol",
    "application_protocols",
];

/// `HttpConnectionManager` fields weir does not support yet.
const HCM_ENVOY: &[&str] = &[
    "add_user_agent",
    "tracing",
    "http1_safe_max_connection_duration",
    "http2_protocol_options",
    "http3_protocol_options",
    "scheme_header_transformation",
    "drain_timeout",
    "delayed_close_timeout",
    "access_log_flush_interval",
    "flush_access_log_on_new_request",
    "access_log_options",
    "original_ip_detection_extensions",
    "early_header_mutation_extensions",
    "internal_address_config",
    "skip_xff_append",
    "via",
    "always_set_request_id_in_response",
    "forward_client_cert_details",
    "set_current_client_cert_details",
    "proxy_100_continue",
    "represent_ipv4_remote_address_as_ipv4_mapped_ipv6",
    "normalize_path",
    "merge_slashes",
    "path_with_escaped_slashes_action",
    "request_id_extension",
    "local_reply_config",
    "strip_matching_host_port",
    "strip_any_host_port",
    "stream_error_on_invalid_http_message",
    "path_normalization_options",
    "strip_trailing_host_dot",
    "proxy_status_config",
    "typed_header_validation_config",
    "append_x_forwarded_port",
    "append_local_overload",
    "add_proxy_protocol_connection_state",
    "stream_flush_timeout",
    "drain_timeout_jitter",
    "forward_client_cert_matcher",
    "forward_proto_config",
    "record_route_resolution_stats",
];

/// `config.core.v3.HttpProtocolOptions` fields weir does not support yet.
const HTTP_PROTOCOL_OPTIONS_ENVOY: &[&str] = &[
    "max_response_headers_kb",
    "max_stream_duration",
    "headers_with_underscores_action",
    "max_connection_duration_jitter",
];

/// `extensions.filters.http.router.v3.Router` fields weir does not support yet.
pub(crate) const ROUTER_ENVOY: &[&str] = &[
    "dynamic_stats",
    "start_child_span",
    "upstream_log",
    "upstream_log_options",
    "strict_check_headers",
    "respect_expected_rq_timeout",
    "suppress_grpc_request_failure_code_stats",
    "upstream_http_filters",
    "reject_connect_request_early_data",
];

/// Envoy's default `max_request_headers_kb`.
const DEFAULT_MAX_REQUEST_HEADERS_KB: u32 = 60;
/// Envoy's largest `max_request_headers_kb`.
const MAX_REQUEST_HEADERS_KB: u32 = 8192;
/// Envoy's default `common_http_protocol_options.max_headers_count`.
const DEFAULT_MAX_HEADERS_COUNT: u32 = 100;
/// Envoy's default `common_http_protocol_options.idle_timeout`.
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
/// Envoy's default `stream_idle_timeout`.
const DEFAULT_STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// Reads every listener; checks names and addresses are unique.
pub(crate) fn read_all(cx: &mut Cx, items: &[Field<'_>], clusters: &ClusterNames) -> Vec<Listener> {
    let mut listeners = Vec::with_capacity(items.len());
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut addresses: HashMap<SocketAddr, usize> = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        // Names and addresses are checked even for a listener with errors of its own, so that
        // one run reports everything.
        let Some(Read {
            listener,
            name,
            named,
            address,
        }) = read(cx, item, i, clusters)
        else {
            continue;
        };
        if let Some(first) = names.get(&name) {
            if named {
                cx.error(
                    &join(&item.path, "name"),
                    format!(
                        "duplicate listener name `{name}` (also the name of listeners[{first}])"
                    ),
                );
            } else {
                cx.error(
                    &item.path,
                    format!(
                        "this listener's default name `{name}` is already the name of listeners[{first}]; give it a `name`"
                    ),
                );
            }
        } else {
            names.insert(name, i);
        }
        if let Some(address) = address
            && address.port() != 0
        {
            if let Some(first) = addresses.get(&address) {
                cx.error(
                    &join(&item.path, "address"),
                    format!("{address} is also the address of listeners[{first}]"),
                );
            } else {
                addresses.insert(address, i);
            }
        }
        listeners.extend(listener);
    }
    listeners
}

/// A listener as read: the listener if it is valid, and what [`read_all`] compares across
/// listeners whether it is valid or not.
struct Read {
    listener: Option<Listener>,
    name: String,
    /// Whether the name was given (rather than defaulted).
    named: bool,
    address: Option<SocketAddr>,
}

/// One listener; `None` (with an error) only when it is not an object.
fn read(cx: &mut Cx, f: &Field<'_>, i: usize, clusters: &ClusterNames) -> Option<Read> {
    let mut o = Obj::new(cx, f, LISTENER_ENVOY)?;
    let given_name = o.string(cx, "name").filter(|n| !n.is_empty());
    let address = o
        .required(cx, "address")
        .and_then(|a| address(cx, &a, Role::Listener));
    let named = given_name.is_some();
    let name = given_name.unwrap_or_else(|| match address {
        Some(a) => format!("{}_{}", a.ip(), a.port()),
        None => format!("listeners[{i}]"),
    });

    let chain_field = o.get(cx, "filter_chains");
    let chain_items = chain_field
        .as_ref()
        .and_then(|c| c.items(cx))
        .unwrap_or_default();
    let mut chains = Some(Vec::with_capacity(chain_items.len()));
    let mut read_chains = Vec::new();
    for (j, item) in chain_items.iter().enumerate() {
        let Some(read) = filter_chain(cx, item, format!("{name}/{j}"), clusters, false) else {
            chains = None;
            continue;
        };
        read_chains.push(ChainKey {
            index: j,
            destination_port: read.destination_port,
            name: read.name,
        });
        match (read.chain, &mut chains) {
            (Some(chain), Some(list)) => list.push(chain),
            _ => chains = None,
        }
    }
    let default_field = o.get(cx, "default_filter_chain");
    let default_filter_chain = match &default_field {
        Some(d) => filter_chain(cx, d, format!("{name}/default"), clusters, true)
            .and_then(|read| read.chain)
            .map(Some),
        None => Some(None),
    };
    let per_connection_buffer_limit_bytes = match o.get(cx, "per_connection_buffer_limit_bytes") {
        Some(b) => b.u32(cx),
        None => Some(DEFAULT_BUFFER_LIMIT),
    };
    o.finish(cx);

    if chain_items.is_empty() && default_field.is_none() {
        let path = chain_field.map_or_else(|| join(&f.path, "filter_chains"), |c| c.path);
        cx.error(
            &path,
            "a listener needs at least one filter chain in `filter_chains` or a `default_filter_chain`",
        );
        chains = None;
    }
    check_chains(cx, &chain_items, &read_chains);

    let listener = (|| {
        Some(Listener {
            name: name.clone(),
            address: address?,
            filter_chains: chains?,
            default_filter_chain: default_filter_chain?,
            per_connection_buffer_limit_bytes: per_connection_buffer_limit_bytes?,
        })
    })();
    Some(Read {
        listener,
        name,
        named,
        address,
    })
}

/// What [`check_chains`] compares between a listener's filter chains.
struct ChainKey {
    /// Position in `filter_chains`.
    index: usize,
    /// `filter_chain_match.destination_port`; `None` when the match could not be read (an
    /// unsupported or invalid field), so nothing can be said about what it matches.
    destination_port: Option<Option<u16>>,
    /// The chain's name, if given (default names are unique by construction).
    name: Option<String>,
}

/// A filter chain as read: the chain if it is valid, and what [`check_chains`] compares
/// whether it is valid or not.
struct ChainRead {
    chain: Option<FilterChain>,
    /// As [`ChainKey::destination_port`].
    destination_port: Option<Option<u16>>,
    /// The name, if given.
    name: Option<String>,
}

/// Two chains with the same match would make the choice ambiguous (Envoy rejects them too), and
/// two chains with the same name would make traces ambiguous.
fn check_chains(cx: &mut Cx, items: &[Field<'_>], chains: &[ChainKey]) {
    let mut by_port: HashMap<Option<u16>, usize> = HashMap::new();
    let mut by_name: HashMap<&str, usize> = HashMap::new();
    for chain in chains {
        let item = &items[chain.index];
        // A match that could not be read was reported already; comparing it would claim an
        // overlap nobody knows of.
        let Some(destination_port) = chain.destination_port else {
            check_name(cx, item, chain, &mut by_name);
            continue;
        };
        match by_port.get(&destination_port) {
            Some(first) => {
                let (path, what) = match destination_port {
                    Some(port) => (
                        join(&item.path, "filter_chain_match"),
                        format!("destination_port {port}"),
                    ),
                    None => (item.path.clone(), "no filter_chain_match".to_owned()),
                };
                cx.error(
                    &path,
                    format!(
                        "matches the same connections as filter_chains[{first}] ({what}); \
                         use default_filter_chain for a fallback"
                    ),
                );
            }
            None => {
                by_port.insert(destination_port, chain.index);
            }
        }
        check_name(cx, item, chain, &mut by_name);
    }
}

/// Reports a chain whose given name an earlier chain has.
fn check_name<'c>(
    cx: &mut Cx,
    item: &Field<'_>,
    chain: &'c ChainKey,
    by_name: &mut HashMap<&'c str, usize>,
) {
    if let Some(name) = &chain.name {
        match by_name.get(name.as_str()) {
            Some(first) => cx.error(
                &join(&item.path, "name"),
                format!(
                    "duplicate filter chain name `{name}` (also the name of filter_chains[{first}])"
                ),
            ),
            None => {
                by_name.insert(name, chain.index);
            }
        }
    }
}

/// One filter chain (or the default one); `None` (with an error) only when it is not an object.
fn filter_chain(
    cx: &mut Cx,
    f: &Field<'_>,
    default_name: String,
    clusters: &ClusterNames,
    is_default: bool,
) -> Option<ChainRead> {
    let mut o = Obj::new(cx, f, FILTER_CHAIN_ENVOY)?;
    let given_name = o.string(cx, "name").filter(|n| !n.is_empty());
    let destination_port = if is_default {
        o.reject(
            cx,
            "filter_chain_match",
            "default_filter_chain takes no filter_chain_match: it is used when no other chain matches",
        );
        Some(None)
    } else {
        match o.get(cx, "filter_chain_match") {
            Some(m) => filter_chain_match(cx, &m),
            None => Some(None),
        }
    };
    let hcm = match o.get(cx, "filters") {
        Some(filters) => network_filters(cx, &filters, clusters),
        None => {
            cx.error(
                &join(&f.path, "filters"),
                "`filters` is required: weir needs the envoy.filters.network.http_connection_manager filter",
            );
            None
        }
    };
    o.finish(cx);
    let chain = match (destination_port, hcm) {
        (Some(destination_port), Some(hcm)) => Some(FilterChain {
            name: given_name.clone().unwrap_or(default_name),
            destination_port,
            http_connection_manager: hcm,
        }),
        _ => None,
    };
    Some(ChainRead {
        chain,
        destination_port,
        name: given_name,
    })
}

/// `filter_chain_match`: only `destination_port` so far.
fn filter_chain_match(cx: &mut Cx, f: &Field<'_>) -> Option<Option<u16>> {
    let mut o = Obj::new(cx, f, FILTER_CHAIN_MATCH_ENVOY)?;
    let port = match o.get(cx, "destination_port") {
        Some(p) => p.u32(cx).and_then(|port| match u16::try_from(port) {
            Ok(port) if port != 0 => Some(Some(port)),
            _ => {
                cx.error(
                    &p.path,
                    format!("destination_port {port} is out of range (1..=65535)"),
                );
                None
            }
        }),
        None => Some(None),
    };
    // With a field weir lacks (reported), the match is not just its destination port.
    let complete = o.finish(cx);
    port.filter(|_| complete)
}

/// `filters[]`: exactly one, the HTTP connection manager.
fn network_filters(
    cx: &mut Cx,
    f: &Field<'_>,
    clusters: &ClusterNames,
) -> Option<HttpConnectionManager> {
    let items = f.items(cx)?;
    if items.is_empty() {
        cx.error(
            &f.path,
            "a filter chain needs the envoy.filters.network.http_connection_manager filter",
        );
        return None;
    }
    let mut hcm = None;
    let mut ok = true;
    for (k, item) in items.iter().enumerate() {
        match network_filter(cx, item, clusters) {
            Some(h) if k == 0 => hcm = Some(h),
            Some(_) => {
                cx.error(
                    &item.path,
                    "weir supports one network filter per chain: the http_connection_manager",
                );
                ok = false;
            }
            None => ok = false,
        }
    }
    if ok { hcm } else { None }
}

/// The type name of an `Any`: what follows the last `/` of its `@type`.
pub(crate) fn type_name(url: &str) -> &str {
    url.rsplit_once('/').map_or(url, |(_, name)| name)
}

/// Reads `typed_config.@type`; records an error if it is missing or not a string.
pub(crate) fn type_url(cx: &mut Cx, typed_config: &Field<'_>) -> Option<String> {
    match typed_config.value.get("@type") {
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(_) => {
            cx.error(
                &join(&typed_config.path, "@type"),
                "`@type` must be a type URL string",
            );
            None
        }
        None if typed_config.value.is_object() => {
            cx.error(
                &join(&typed_config.path, "@type"),
                "`@type` is required: weir picks the filter by its type",
            );
            None
        }
        None => {
            // Not an object: let the reader say so.
            Obj::new(cx, typed_config, &[]);
            None
        }
    }
}

/// The type names of Envoy's `TypedStruct`, which carries a typed config as a plain struct.
const TYPED_STRUCT_NAMES: [&str; 2] = ["udpa.type.v1.TypedStruct", "xds.type.v3.TypedStruct"];

/// An empty message: the `value` of a `TypedStruct` that has none.
static EMPTY_MESSAGE: std::sync::LazyLock<serde_json::Value> =
    std::sync::LazyLock::new(|| serde_json::Value::Object(serde_json::Map::new()));

/// A `typed_config` opened: its type and the message to read as that type.
pub(crate) struct Typed<'v> {
    /// The type URL (`type.googleapis.com/envoy…`).
    pub(crate) url: String,
    /// Where the type URL is written, for errors about it (`….@type`, or `….type_url`).
    pub(crate) url_path: String,
    /// The message: the `typed_config` itself (whose `@type` its reader marks used), or a
    /// `TypedStruct`'s `value`.
    pub(crate) message: Field<'v>,
}

/// Opens a `typed_config`. A `TypedStruct` (`udpa.type.v1.TypedStruct` or
/// `xds.type.v3.TypedStruct`: `type_url` and a `value` struct) is read as the type it names,
/// as Envoy reads it; its `value` may be absent (an empty message) and holds no `@type`.
pub(crate) fn open_typed_config<'v>(cx: &mut Cx, f: &Field<'v>) -> Option<Typed<'v>> {
    let url = type_url(cx, f)?;
    if !TYPED_STRUCT_NAMES.contains(&type_name(&url)) {
        return Some(Typed {
            url,
            url_path: join(&f.path, "@type"),
            message: f.clone(),
        });
    }
    let mut o = Obj::new(cx, f, &[])?;
    o.get(cx, "@type");
    let inner = o.required_string(cx, "type_url");
    let value = o.get(cx, "value");
    o.finish(cx);
    let message = match value {
        Some(v) if !v.value.is_object() => {
            // Let the reader say what it found.
            Obj::new(cx, &v, &[]);
            return None;
        }
        Some(v) => {
            if let Some(key) = ["@type", "@Type"]
                .iter()
                .find(|k| v.value.get(**k).is_some())
            {
                cx.error(
                    &join(&v.path, key),
                    "a TypedStruct's `value` takes no `@type`: `type_url` names its type",
                );
                return None;
            }
            v
        }
        None => Field {
            value: &EMPTY_MESSAGE,
            path: join(&f.path, "value"),
        },
    };
    Some(Typed {
        url: inner?,
        url_path: join(&f.path, "type_url"),
        message,
    })
}

/// One `filters[]` entry: `name` and a `typed_config` that must be the HTTP connection manager.
fn network_filter(
    cx: &mut Cx,
    f: &Field<'_>,
    clusters: &ClusterNames,
) -> Option<HttpConnectionManager> {
    let (name, typed_config) = typed_filter(
        cx,
        f,
        &["config_discovery"],
        HCM_TYPE,
        &format!("`typed_config` is required: weir picks the filter by its @type ({HCM_TYPE})"),
        &|url| {
            format!("network filter type `{url}` is not supported yet (weir supports {HCM_TYPE})")
        },
    )?;
    let hcm = http_connection_manager(cx, &typed_config, clusters);
    name?;
    hcm
}

/// Reads an optional duration where `0s` disables (→ `None`), with a default when absent.
fn disabling_duration(
    cx: &mut Cx,
    o: &mut Obj<'_>,
    name: &'static str,
    default: Option<Duration>,
) -> Option<Option<Duration>> {
    match o.get(cx, name) {
        Some(d) => d.duration(cx).map(|d| (!d.is_zero()).then_some(d)),
        None => Some(default),
    }
}

fn http_connection_manager(
    cx: &mut Cx,
    f: &Field<'_>,
    clusters: &ClusterNames,
) -> Option<HttpConnectionManager> {
    let mut o = Obj::new(cx, f, HCM_ENVOY)?;
    o.get(cx, "@type");
    let stat_prefix = o.required_string(cx, "stat_prefix");
    let codec_type = codec_type(cx, &mut o);
    let rds = o.reject(
        cx,
        "rds",
        "RDS is not supported yet: use an inline route_config",
    );
    let scoped = o.reject(
        cx,
        "scoped_routes",
        "scoped routes are not supported yet: use an inline route_config",
    );
    // The route config comes first but its typed_per_filter_config names the http_filters.
    let filter_names = http_filter::names(f.value);
    let route_config = match o.get(cx, "route_config") {
        Some(r) => route::route_configuration(cx, &r, clusters, &filter_names),
        None => {
            if !rds && !scoped {
                cx.error(&join(&f.path, "route_config"), "`route_config` is required");
            }
            None
        }
    };
    let http_filters = match o.get(cx, "http_filters") {
        Some(h) => http_filters(cx, &h, clusters),
        None => {
            cx.error(
                &join(&f.path, "http_filters"),
                "`http_filters` is required: it must end with the router (envoy.filters.http.router)",
            );
            None
        }
    };
    let max_request_headers_kb = max_request_headers_kb(cx, &mut o);
    let protocol = match o.get(cx, "common_http_protocol_options") {
        Some(p) => common_http_protocol_options(cx, &p),
        None => Some(ProtocolOptions::default()),
    };
    let stream_idle_timeout = disabling_duration(
        cx,
        &mut o,
        "stream_idle_timeout",
        Some(DEFAULT_STREAM_IDLE_TIMEOUT),
    );
    let request_timeout = disabling_duration(cx, &mut o, "request_timeout", None);
    let request_headers_timeout = disabling_duration(cx, &mut o, "request_headers_timeout", None);
    let use_remote_address = o.get(cx, "use_remote_address").map(|u| u.bool(cx));
    let xff_num_trusted_hops = o.get(cx, "xff_num_trusted_hops").map(|x| x.u32(cx));
    let generate_request_id = o.get(cx, "generate_request_id").map(|g| g.bool(cx));
    let access_log = match o.get(cx, "access_log") {
        Some(a) => access_log::read_all(cx, &a),
        None => Some(Vec::new()),
    };
    let upgrade_configs = crate::route::upgrade_configs(cx, &mut o, false);
    let server = crate::hcm_headers::server_header(cx, &mut o);
    let http10 = crate::hcm_headers::http_protocol_options(cx, &mut o);
    o.finish(cx);

    let (protocol, server, http10) = (protocol?, server?, http10?);
    Some(HttpConnectionManager {
        stat_prefix: stat_prefix?,
        codec_type: codec_type?,
        route_config: route_config?,
        http_filters: http_filters?,
        max_request_headers_bytes: max_request_headers_kb? as usize * 1024,
        max_headers_count: protocol.max_headers_count as usize,
        idle_timeout: protocol.idle_timeout,
        max_connection_duration: protocol.max_connection_duration,
        max_requests_per_connection: protocol.max_requests_per_connection,
        request_headers_timeout: request_headers_timeout?,
        stream_idle_timeout: stream_idle_timeout?,
        request_timeout: request_timeout?,
        use_remote_address: use_remote_address.unwrap_or(Some(false))?,
        xff_num_trusted_hops: xff_num_trusted_hops.unwrap_or(Some(0))?,
        generate_request_id: generate_request_id.unwrap_or(Some(true))?,
        access_log: access_log?,
        upgrade_configs: upgrade_configs?,
        server_name: server.name,
        server_header_transformation: server.transformation,
        preserve_external_request_id: server.preserve_external_request_id,
        accept_http_10: http10.accept,
        default_host_for_http_10: http10.default_host,
    })
}

/// `codec_type`: AUTO (default) and HTTP1 are read; HTTP2 and HTTP3 are not supported yet.
fn codec_type(cx: &mut Cx, o: &mut Obj<'_>) -> Option<CodecType> {
    match o.get(cx, "codec_type") {
        Some(c) => {
            let codec = c.enumeration_subset(
                cx,
                "codec_type",
                &[("AUTO", 0), ("HTTP1", 1), ("HTTP2", 2), ("HTTP3", 3)],
                &["AUTO", "HTTP1"],
            );
            match codec {
                Some("HTTP1") => Some(CodecType::Http1),
                Some(_) => Some(CodecType::Auto),
                None => None,
            }
        }
        None => Some(CodecType::Auto),
    }
}

/// `max_request_headers_kb`: 1 to Envoy's largest, 60 by default.
fn max_request_headers_kb(cx: &mut Cx, o: &mut Obj<'_>) -> Option<u32> {
    match o.get(cx, "max_request_headers_kb") {
        Some(m) => m.u32(cx).and_then(|kb| {
            if (1..=MAX_REQUEST_HEADERS_KB).contains(&kb) {
                Some(kb)
            } else {
                cx.error(
                    &m.path,
                    format!("max_request_headers_kb must be in 1..={MAX_REQUEST_HEADERS_KB}"),
                );
                None
            }
        }),
        None => Some(DEFAULT_MAX_REQUEST_HEADERS_KB),
    }
}

/// `common_http_protocol_options` as read.
struct ProtocolOptions {
    idle_timeout: Option<Duration>,
    max_headers_count: u32,
    max_connection_duration: Option<Duration>,
    max_requests_per_connection: Option<u32>,
}

impl Default for ProtocolOptions {
    fn default() -> Self {
        ProtocolOptions {
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            max_headers_count: DEFAULT_MAX_HEADERS_COUNT,
            max_connection_duration: None,
            max_requests_per_connection: None,
        }
    }
}

/// `common_http_protocol_options`.
fn common_http_protocol_options(cx: &mut Cx, f: &Field<'_>) -> Option<ProtocolOptions> {
    let mut o = Obj::new(cx, f, HTTP_PROTOCOL_OPTIONS_ENVOY)?;
    let idle_timeout = disabling_duration(cx, &mut o, "idle_timeout", Some(DEFAULT_IDLE_TIMEOUT));
    let max_connection_duration = disabling_duration(cx, &mut o, "max_connection_duration", None);
    let max_requests_per_connection = match o.get(cx, "max_requests_per_connection") {
        Some(m) => m.u32(cx).map(|n| (n != 0).then_some(n)),
        None => Some(None),
    };
    let max_headers_count = match o.get(cx, "max_headers_count") {
        Some(m) => match m.u32(cx) {
            Some(0) => {
                cx.error(&m.path, "max_headers_count must be at least 1");
                None
            }
            n => n,
        },
        None => Some(DEFAULT_MAX_HEADERS_COUNT),
    };
    o.finish(cx);
    Some(ProtocolOptions {
        idle_timeout: idle_timeout?,
        max_headers_count: max_headers_count?,
        max_connection_duration: max_connection_duration?,
        max_requests_per_connection: max_requests_per_connection?,
    })
}

/// `http_filters[]`: supported filters (read in `http_filter`), ending with the router, which
/// appears once.
fn http_filters(cx: &mut Cx, f: &Field<'_>, clusters: &ClusterNames) -> Option<Vec<HttpFilter>> {
    let items = f.items(cx)?;
    if items.is_empty() {
        cx.error(
            &f.path,
            "`http_filters` must end with the router (envoy.filters.http.router)",
        );
        return None;
    }
    let mut filters = Some(Vec::with_capacity(items.len()));
    let mut routers = Vec::new();
    for (k, item) in items.iter().enumerate() {
        match http_filter::http_filter(cx, item, clusters) {
            Some(filter) => {
                if matches!(filter, HttpFilter::Router { .. }) {
                    routers.push(k);
                }
                if let Some(list) = &mut filters {
                    list.push(filter);
                }
            }
            None => filters = None,
        }
    }
    let last = items.len() - 1;
    match routers.as_slice() {
        [] if filters.is_some() => {
            cx.error(
                &f.path,
                "the last HTTP filter must be the router (envoy.filters.http.router)",
            );
            filters = None;
        }
        [] => {}
        [only] if *only != last => {
            cx.error(
                &items[*only].path,
                "the router must be the last HTTP filter",
            );
            filters = None;
        }
        [_] => {}
        [_, more @ ..] => {
            for k in more {
                cx.error(&items[*k].path, "the router may appear only once");
            }
            filters = None;
        }
    }
    filters
}

/// A filter entry's `name` and its `typed_config`, which must be of type `want` (filters are
/// picked by their @type, as Envoy does). `None` once an error was reported; the name is
/// `None` when missing (reported too) so the caller can still check the typed config.
fn typed_filter<'v>(
    cx: &mut Cx,
    f: &Field<'v>,
    envoy_fields: &'static [&'static str],
    want: &str,
    missing: &str,
    unsupported: &dyn Fn(&str) -> String,
) -> Option<(Option<String>, Field<'v>)> {
    let mut o = Obj::new(cx, f, envoy_fields)?;
    let name = o.required_string(cx, "name");
    let typed_config = o.get(cx, "typed_config");
    o.finish(cx);
    let Some(typed_config) = typed_config else {
        cx.error(&join(&f.path, "typed_config"), missing);
        return None;
    };
    let typed = open_typed_config(cx, &typed_config)?;
    if type_name(&typed.url) != type_name(want) {
        cx.error(&typed.url_path, unsupported(&typed.url));
        return None;
    }
    Some((name, typed.message))
}
