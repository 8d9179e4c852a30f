//! The top level: `node`, `admin`, `static_resources` (`stats_sinks` are read in
//! `stats_sink.rs`); and `config.core.v3.Address`, which listeners, the admin listener,
//! endpoints and stats sinks share.

use std::net::{IpAddr, SocketAddr};

use crate::cluster;
use crate::listener;
use crate::model::{Admin, Bootstrap, Node, Overload, WeirSettings};
use crate::reader::{Cx, Field, Obj, join};

/// `config.bootstrap.v3.Bootstrap` fields weir does not support yet.
const BOOTSTRAP_ENVOY: &[&str] = &[
    "node_context_params",
    "dynamic_resources",
    "cluster_manager",
    "hds_config",
    "flags_path",
    "deferred_stat_options",
    "stats_config",
    "stats_flush_on_admin",
    "watchdog",
    "watchdogs",
    "tracing",
    "enable_dispatcher_stats",
    "header_prefix",
    "stats_server_version_override",
    "use_tcp_for_dns_lookups",
    "dns_resolution_config",
    "typed_dns_resolver_config",
    "bootstrap_extensions",
    "fatal_actions",
    "config_sources",
    "default_config_source",
    "default_socket_interface",
    "certificate_provider_instances",
    "inline_headers",
    "perf_tracing_file_path",
    "default_regex_engine",
    "xds_delegate_extension",
    "xds_config_tracker_extension",
    "listener_manager",
    "application_log_config",
    "grpc_async_client_manager_config",
    "memory_allocator_manager",
    "stats_eviction_interval",
    "enable_worker_cpu_affinity",
];

/// `config.core.v3.Node` fields weir does not support yet.
const NODE_ENVOY: &[&str] = &[
    "metadata",
    "dynamic_parameters",
    "locality",
    "user_agent_name",
    "user_agent_version",
    "user_agent_build_version",
    "extensions",
    "client_features",
    "listening_addresses",
];

/// `config.bootstrap.v3.Admin` fields weir does not support yet.
const ADMIN_ENVOY: &[&str] = &[
    "profile_path",
    "socket_options",
    "ignore_global_conn_limit",
    "allow_paths",
];

/// `config.core.v3.SocketAddress` fields weir does not support yet.
const SOCKET_ADDRESS_ENVOY: &[&str] = &[
    "named_port",
    "resolver_name",
    "ipv4_compat",
    "network_namespace_filepath",
];

/// Reads the whole bootstrap.
pub(crate) fn read(cx: &mut Cx, root: &Field<'_>) -> Option<Bootstrap> {
    if root.value.is_null() {
        cx.error("", "the config is empty");
        return None;
    }
    let mut o = Obj::new(cx, root, BOOTSTRAP_ENVOY)?;
    let node = match o.get(cx, "node") {
        Some(f) => node(cx, &f),
        None => Node::default(),
    };
    let admin_field = o.get(cx, "admin");
    let admin = admin_field.as_ref().and_then(|f| admin(cx, f));
    let (listeners, clusters) = match o.get(cx, "static_resources") {
        Some(f) => static_resources(cx, &f),
        None => (Vec::new(), Vec::new()),
    };
    let overload = match o.get(cx, "overload_manager") {
        Some(f) => crate::overload::overload_manager(cx, &f),
        None => Some(Overload::default()),
    };
    let sink_items = o.list(cx, "stats_sinks");
    let stats_sinks = crate::stats_sink::read_all(cx, &sink_items);
    let stats_flush_interval = match o.get(cx, "stats_flush_interval") {
        Some(f) => crate::stats_sink::flush_interval(cx, &f),
        None => Some(crate::stats_sink::DEFAULT_FLUSH_INTERVAL),
    };
    let weir = match o.get(cx, "weir") {
        Some(f) => crate::weir::settings(cx, &f),
        None => WeirSettings::default(),
    };
    let runtime = match o.get(cx, "layered_runtime") {
        Some(f) => crate::runtime::layered_runtime(cx, &f),
        None => Some(crate::LayeredRuntime::default()),
    };
    o.finish(cx);

    if let (Some(admin), Some(field)) = (&admin, &admin_field)
        && admin.address.port() != 0
        && let Some(listener) = listeners.iter().find(|l| l.address == admin.address)
    {
        cx.error(
            &join(&field.path, "address"),
            format!(
                "{} is also the address of listener `{}`",
                admin.address, listener.name
            ),
        );
    }

    Some(Bootstrap {
        node,
        admin,
        listeners,
        clusters,
        overload: overload?,
        weir,
        stats_sinks: stats_sinks?,
        stats_flush_interval: stats_flush_interval?,
        runtime: runtime?,
        // Filled in by the caller, which owns the document.
        source: serde_json::Value::Null,
        warnings: Vec::new(),
    })
}

fn node(cx: &mut Cx, f: &Field<'_>) -> Node {
    let Some(mut o) = Obj::new(cx, f, NODE_ENVOY) else {
        return Node::default();
    };
    let id = o.string(cx, "id").unwrap_or_default();
    let cluster = o.string(cx, "cluster").unwrap_or_default();
    o.finish(cx);
    Node { id, cluster }
}

/// `admin`: `None` when it has no address (Envoy then runs without an admin listener).
fn admin(cx: &mut Cx, f: &Field<'_>) -> Option<Admin> {
    let mut o = Obj::new(cx, f, ADMIN_ENVOY)?;
    let address = o
        .get(cx, "address")
        .and_then(|a| address(cx, &a, Role::Admin));
    if let Some(path) = o.get(cx, "access_log_path")
        && let Some(p) = path.string(cx)
        && p != "/dev/null"
    {
        cx.error(&path.path, "admin access logs are not supported yet");
    }
    if let Some(logs) = o.get(cx, "access_log")
        && logs.value.as_array().is_none_or(|l| !l.is_empty())
    {
        cx.error(&logs.path, "admin access logs are not supported yet");
    }
    o.finish(cx);
    Some(Admin { address: address? })
}

/// `static_resources`: listeners and clusters. Cluster names are collected first so routes can
/// refer to clusters defined after them; errors still come out in document order.
fn static_resources(cx: &mut Cx, f: &Field<'_>) -> (Vec<crate::Listener>, Vec<crate::Cluster>) {
    let Some(mut o) = Obj::new(cx, f, &["secrets"]) else {
        return (Vec::new(), Vec::new());
    };
    let listener_items = o.list(cx, "listeners");
    let cluster_items = o.list(cx, "clusters");
    o.finish(cx);
    let names = cluster::names(&cluster_items);
    let listeners = listener::read_all(cx, &listener_items, &names);
    let clusters = cluster::read_all(cx, &cluster_items);
    (listeners, clusters)
}

/// What an address is for: it decides the port rule and the message for hostnames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// A listener: port 0 means an ephemeral port.
    Listener,
    /// The admin listener: as a listener.
    Admin,
    /// An upstream endpoint of a STATIC cluster: needs an IP and a port.
    Endpoint,
    /// An endpoint of a DNS cluster: a name (or an IP) and a port.
    DnsEndpoint,
    /// A DNS server a cluster asks: an IP; port 0 means 53.
    Resolver,
    /// A stats sink: needs an IP; UDP or TCP (Envoy sends UDP whatever `protocol` says); port
    /// 0 is accepted, as Envoy accepts it.
    StatsSink,
    /// An endpoint of a cluster whose `type` was already rejected (a DNS type, say): a hostname
    /// is expected there, so it is not reported again.
    EndpointOfRejectedCluster,
}

/// `config.core.v3.Address` holding a `socket_address`.
pub(crate) fn address(cx: &mut Cx, f: &Field<'_>, role: Role) -> Option<SocketAddr> {
    let mut o = Obj::new(cx, f, &[])?;
    let socket = o.get(cx, "socket_address");
    let pipe = o.reject(
        cx,
        "pipe",
        "unix domain socket addresses (pipe) are not supported yet",
    );
    let internal = o.reject(
        cx,
        "envoy_internal_address",
        "internal addresses are not supported yet",
    );
    o.finish(cx);
    let Some(socket) = socket else {
        if !pipe && !internal {
            cx.error(
                &join(&f.path, "socket_address"),
                "`socket_address` is required",
            );
        }
        return None;
    };
    socket_address(cx, &socket, role)
}

fn socket_address(cx: &mut Cx, f: &Field<'_>, role: Role) -> Option<SocketAddr> {
    match socket_address_host(cx, f, role)? {
        (AddressHost::Ip(ip), port) => Some(SocketAddr::new(ip, port)),
        (AddressHost::Name(_), _) => None,
    }
}

/// What `socket_address.address` holds.
pub(crate) enum AddressHost {
    Ip(IpAddr),
    /// A name, for a DNS cluster's endpoint to resolve.
    Name(String),
}

/// A DNS cluster's `lb_endpoints[].endpoint.address`: a name (or an IP literal) and a port.
pub(crate) fn dns_address(cx: &mut Cx, f: &Field<'_>) -> Option<(String, u16)> {
    let mut o = Obj::new(cx, f, &[])?;
    let socket = o.required(cx, "socket_address");
    o.reject(
        cx,
        "pipe",
        "a DNS cluster's endpoint needs a socket_address with a name",
    );
    o.finish(cx);
    match socket_address_host(cx, &socket?, Role::DnsEndpoint)? {
        (AddressHost::Ip(ip), port) => Some((ip.to_string(), port)),
        (AddressHost::Name(name), port) => Some((name, port)),
    }
}

fn socket_address_host(cx: &mut Cx, f: &Field<'_>, role: Role) -> Option<(AddressHost, u16)> {
    let mut o = Obj::new(cx, f, SOCKET_ADDRESS_ENVOY)?;
    let ip = o.required(cx, "address").and_then(|a| {
        let s = a.string(cx)?;
        match s.parse::<IpAddr>() {
            Ok(ip) => Some(AddressHost::Ip(ip)),
            Err(_) if role == Role::DnsEndpoint && !s.is_empty() => Some(AddressHost::Name(s)),
            Err(_) if role == Role::EndpointOfRejectedCluster => None,
            Err(_) => {
                let message = match role {
                    Role::Endpoint | Role::EndpointOfRejectedCluster => format!(
                        "`{s}` is not an IP address: STATIC clusters need IP literals \
                         (a name needs `type: STRICT_DNS` or `LOGICAL_DNS`)"
                    ),
                    Role::DnsEndpoint => "a DNS cluster's endpoint needs a name".to_owned(),
                    Role::Resolver => {
                        format!("`{s}` is not an IP address: a DNS resolver needs one")
                    }
                    Role::Listener | Role::Admin => {
                        format!("`{s}` is not an IP address: weir binds IP literals only")
                    }
                    Role::StatsSink => {
                        format!("`{s}` is not an IP address: a stats sink needs an IP literal")
                    }
                };
                cx.error(&a.path, message);
                None
            }
        }
    });
    let port_field = o.get(cx, "port_value");
    let port = match &port_field {
        Some(p) => p.u32(cx).and_then(|port| match u16::try_from(port) {
            Ok(port) => Some(port),
            Err(_) => {
                cx.error(&p.path, format!("port {port} is out of range (0..=65535)"));
                None
            }
        }),
        None => Some(0),
    };
    let protocols: &[&str] = match role {
        Role::StatsSink => &["TCP", "UDP"],
        _ => &["TCP"],
    };
    let protocol = match o.get(cx, "protocol") {
        Some(p) => p
            .enumeration_subset(cx, "protocol", &[("TCP", 0), ("UDP", 1)], protocols)
            .is_some(),
        None => true,
    };
    o.finish(cx);
    let port = port?;
    if !protocol {
        return None;
    }
    if matches!(
        role,
        Role::Endpoint | Role::EndpointOfRejectedCluster | Role::DnsEndpoint
    ) && port == 0
    {
        let path = port_field.map_or_else(|| join(&f.path, "port_value"), |p| p.path);
        cx.error(
            &path,
            "an upstream endpoint needs a port_value in 1..=65535",
        );
        return None;
    }
    let port = if role == Role::Resolver && port == 0 {
        53
    } else {
        port
    };
    Some((ip?, port))
}
