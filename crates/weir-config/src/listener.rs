//! `static_resources.listeners[]`: listeners, filter chains, and the one network filter weir has,
//! the HTTP connection manager, with its HTTP filters.

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::bootstrap::{Role, address};
use crate::chain_select::ChainSelector;
use crate::cluster::{ClusterNames, DEFAULT_BUFFER_LIMIT};
use crate::hcm::http_connection_manager;
use crate::listener_match::{filter_chain_match, listener_filters, listener_filters_timeout};
use crate::model::{
    DrainType, FilterChain, FilterChainMatch, HttpConnectionManager, Listener, ListenerFilter,
    TcpProxy, TrafficDirection,
};
use crate::reader::{Cx, Field, Obj, join};
use crate::tcp_proxy::{TCP_PROXY_TYPE, tcp_proxy};

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
    "transparent",
    "freebind",
    "socket_options",
    "tcp_fast_open_queue_length",
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
const FILTER_CHAIN_ENVOY: &[&str] = &["use_proxy_proto", "metadata", "on_demand_configuration"];

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
            filter_chain_match: read.filter_chain_match,
            match_path: read.match_path,
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
    let filters = listener_filters(cx, &mut o);
    let filters_timeout = listener_filters_timeout(cx, &mut o);
    let traffic_direction = match o.get(cx, "traffic_direction") {
        Some(d) => d
            .enumeration(
                cx,
                "traffic_direction",
                &[("UNSPECIFIED", 0), ("INBOUND", 1), ("OUTBOUND", 2)],
            )
            .map(|d| match d {
                "INBOUND" => TrafficDirection::Inbound,
                "OUTBOUND" => TrafficDirection::Outbound,
                _ => TrafficDirection::Unspecified,
            }),
        None => Some(TrafficDirection::Unspecified),
    };
    let drain_type = match o.get(cx, "drain_type") {
        Some(d) => d
            .enumeration(cx, "drain_type", &[("DEFAULT", 0), ("MODIFY_ONLY", 1)])
            .map(|d| match d {
                "MODIFY_ONLY" => DrainType::ModifyOnly,
                _ => DrainType::Default,
            }),
        None => Some(DrainType::Default),
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
    if let Some(filters) = &filters {
        check_tls_inspector(cx, filters, &read_chains);
    }

    let listener = (|| {
        Some(Listener {
            name: name.clone(),
            address: address?,
            filter_chains: chains?,
            default_filter_chain: default_filter_chain?,
            per_connection_buffer_limit_bytes: per_connection_buffer_limit_bytes?,
            listener_filters: filters?,
            listener_filters_timeout: filters_timeout?,
            traffic_direction: traffic_direction?,
            drain_type: drain_type?,
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
    /// `filter_chain_match` (the default for none); `None` when it could not be read (an
    /// unsupported or invalid field), so nothing can be said about what it matches.
    filter_chain_match: Option<FilterChainMatch>,
    /// The path of `filter_chain_match`, if given.
    match_path: Option<String>,
    /// The chain's name, if given (default names are unique by construction).
    name: Option<String>,
}

/// A filter chain as read: the chain if it is valid, and what [`check_chains`] compares
/// whether it is valid or not.
struct ChainRead {
    chain: Option<FilterChain>,
    /// As [`ChainKey::filter_chain_match`].
    filter_chain_match: Option<FilterChainMatch>,
    /// As [`ChainKey::match_path`].
    match_path: Option<String>,
    /// The name, if given.
    name: Option<String>,
}

/// Two chains that match the same connections would make the choice ambiguous (Envoy rejects
/// them too: [`ChainSelector::new`] finds them), and two chains with the same name would make
/// traces ambiguous.
fn check_chains(cx: &mut Cx, items: &[Field<'_>], chains: &[ChainKey]) {
    // A match that could not be read was reported already; comparing it would claim an
    // overlap nobody knows of.
    let mut readable: Vec<&ChainKey> = chains
        .iter()
        .filter(|c| c.filter_chain_match.is_some())
        .collect();
    // Each round drops the later chain of the overlap found, so every overlapping chain is
    // reported once and the loop ends.
    while let Err((first, second)) = ChainSelector::new(
        &readable
            .iter()
            .filter_map(|c| c.filter_chain_match.as_ref())
            .collect::<Vec<_>>(),
    ) {
        let chain = readable[second];
        report_overlap(
            cx,
            &items[chain.index],
            chain,
            readable[first].index,
            first == second,
        );
        readable.remove(second);
    }
    let mut by_name: HashMap<&str, usize> = HashMap::new();
    for chain in chains {
        check_name(cx, &items[chain.index], chain, &mut by_name);
    }
}

/// Reports that the chain at `item` matches the same connections as `filter_chains[first]`
/// (itself, when `repeats`: it lists a value twice, which Envoy rejects as an overlap too).
fn report_overlap(cx: &mut Cx, item: &Field<'_>, chain: &ChainKey, first: usize, repeats: bool) {
    let (path, what) = match &chain.match_path {
        Some(path) => (path.clone(), ""),
        None => (item.path.clone(), " (no filter_chain_match)"),
    };
    let message = if repeats {
        "lists a value twice (names compare in any case, ranges by their prefix): Envoy rejects this as an overlap too".to_owned()
    } else {
        format!(
            "matches the same connections as filter_chains[{first}]{what}; use default_filter_chain for a fallback"
        )
    };
    cx.error(&path, message);
}

/// Warns of chains that match on what only the TLS inspector learns when the listener has none:
/// their connections are all `raw_buffer` with no server name or ALPN. Envoy accepts this
/// without a word (it no longer adds the inspector itself). The HTTP inspector learns
/// `application_protocols` of plaintext connections too.
fn check_tls_inspector(cx: &mut Cx, filters: &[ListenerFilter], chains: &[ChainKey]) {
    if filters
        .iter()
        .any(|f| matches!(f, ListenerFilter::TlsInspector { .. }))
    {
        return;
    }
    let http_inspector = filters
        .iter()
        .any(|f| matches!(f, ListenerFilter::HttpInspector { .. }));
    for chain in chains {
        let Some(m) = &chain.filter_chain_match else {
            continue;
        };
        let mut what = Vec::new();
        if m.server_names.iter().any(|n| !n.is_empty()) {
            what.push("server_names");
        }
        if m.transport_protocol.as_deref() == Some("tls") {
            what.push("transport_protocol tls");
        }
        if !http_inspector && m.application_protocols.iter().any(|p| !p.is_empty()) {
            what.push("application_protocols");
        }
        if !what.is_empty() {
            cx.warn(
                chain.match_path.as_deref().unwrap_or_default(),
                format!(
                    "matches on {}, which only the TLS inspector learns, but the listener has no envoy.filters.listener.tls_inspector in listener_filters: its connections are all raw_buffer with no server name or ALPN (Envoy accepts this too)",
                    what.join(", ")
                ),
            );
        }
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
    let mut match_path = None;
    let filter_chain_match = if is_default {
        o.reject(
            cx,
            "filter_chain_match",
            "default_filter_chain takes no filter_chain_match: it is used when no other chain matches",
        );
        Some(FilterChainMatch::default())
    } else {
        match o.get(cx, "filter_chain_match") {
            Some(m) => {
                match_path = Some(m.path.clone());
                filter_chain_match(cx, &m)
            }
            None => Some(FilterChainMatch::default()),
        }
    };
    let hcm = network_filters(cx, &mut o, &f.path, clusters);
    let tls = match o.get(cx, "transport_socket") {
        Some(t) => crate::tls::transport_socket(cx, &t),
        None => Some(None),
    };
    let handshake_timeout = match o.get(cx, "transport_socket_connect_timeout") {
        Some(t) => t.duration(cx).map(|d| (!d.is_zero()).then_some(d)),
        None => Some(None),
    };
    o.finish(cx);
    let chain = match (&filter_chain_match, hcm, tls, handshake_timeout) {
        (Some(filter_chain_match), Some(network), Some(tls), Some(handshake_timeout)) => {
            Some(FilterChain {
                name: given_name.clone().unwrap_or(default_name),
                filter_chain_match: filter_chain_match.clone(),
                http_connection_manager: match &network {
                    Some(NetworkFilter::Http(hcm)) => Some(hcm.as_ref().clone()),
                    _ => None,
                },
                tcp_proxy: match network {
                    Some(NetworkFilter::Tcp(proxy)) => Some(proxy),
                    _ => None,
                },
                tls,
                transport_socket_connect_timeout: handshake_timeout,
            })
        }
        _ => None,
    };
    Some(ChainRead {
        chain,
        filter_chain_match,
        match_path,
        name: given_name,
    })
}

/// A chain's one network filter.
enum NetworkFilter {
    Http(Box<HttpConnectionManager>),
    Tcp(TcpProxy),
}

/// `filters[]`: the HTTP connection manager or the TCP proxy, or nothing (Envoy accepts a chain
/// without network filters and closes its connections at once; weir does the same, and warns).
fn network_filters(
    cx: &mut Cx,
    o: &mut Obj<'_>,
    chain: &str,
    clusters: &ClusterNames,
) -> Option<Option<NetworkFilter>> {
    let items = match o.get(cx, "filters") {
        Some(f) => f.items(cx)?,
        None => Vec::new(),
    };
    if items.is_empty() {
        cx.warn(
            &join(chain, "filters"),
            "this filter chain has no network filter: its connections are closed as soon as they are accepted (as Envoy does)",
        );
        return Some(None);
    }
    let mut filter = None;
    let mut ok = true;
    for (k, item) in items.iter().enumerate() {
        match network_filter(cx, item, clusters) {
            Some(f) if k == 0 => filter = Some(f),
            Some(_) => {
                cx.error(
                    &item.path,
                    "weir supports one network filter per chain: the http_connection_manager or the tcp_proxy",
                );
                ok = false;
            }
            None => ok = false,
        }
    }
    if ok { filter.map(Some) } else { None }
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

/// A `{name, typed_config}` entry (a filter, a transport socket): its `name` (`None` when
/// missing, which is reported, so the caller can still check the typed config) and its opened
/// `typed_config`, which weir requires to pick the entry by its @type (as Envoy does): `what`
/// the entry is and the types it may be word the error. `None` once an error was reported.
pub(crate) fn named_typed_config<'v>(
    cx: &mut Cx,
    f: &Field<'v>,
    envoy_fields: &'static [&'static str],
    what: &str,
    types: &str,
) -> Option<(Option<String>, Typed<'v>)> {
    let mut o = Obj::new(cx, f, envoy_fields)?;
    let name = o.required_string(cx, "name");
    let typed_config = o.get(cx, "typed_config");
    o.finish(cx);
    let Some(typed_config) = typed_config else {
        cx.error(
            &join(&f.path, "typed_config"),
            format!("`typed_config` is required: weir picks the {what} by its @type ({types})"),
        );
        return None;
    };
    Some((name, open_typed_config(cx, &typed_config)?))
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
fn network_filter(cx: &mut Cx, f: &Field<'_>, clusters: &ClusterNames) -> Option<NetworkFilter> {
    let types = format!("{HCM_TYPE} or {TCP_PROXY_TYPE}");
    let (name, typed) = named_typed_config(cx, f, &["config_discovery"], "filter", &types)?;
    let filter = match type_name(&typed.url) {
        t if t == type_name(HCM_TYPE) => http_connection_manager(cx, &typed.message, clusters)
            .map(|h| NetworkFilter::Http(Box::new(h))),
        t if t == type_name(TCP_PROXY_TYPE) => {
            tcp_proxy(cx, &typed.message, clusters).map(NetworkFilter::Tcp)
        }
        _ => {
            cx.error(
                &typed.url_path,
                format!(
                    "network filter type `{}` is not supported yet (weir supports {HCM_TYPE} and {TCP_PROXY_TYPE})",
                    typed.url
                ),
            );
            None
        }
    };
    name?;
    filter
}
