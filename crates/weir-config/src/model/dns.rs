//! DNS clusters (`STRICT_DNS`, `LOGICAL_DNS`): the names to resolve and how.

use std::net::SocketAddr;
use std::time::Duration;

/// How a cluster finds its hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Discovery {
    /// `STATIC`: the endpoints as written.
    Static,
    /// `STRICT_DNS` or `LOGICAL_DNS`: names resolved at run time, off the workers.
    Dns(DnsDiscovery),
    /// `ORIGINAL_DST`: a host per destination the requests are addressed to, made on first
    /// use and forgotten when unused.
    OriginalDst(OriginalDst),
}

/// An `ORIGINAL_DST` cluster's `original_dst_lb_config` and `cleanup_interval`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginalDst {
    /// `use_http_header`: the destination is the request's `http_header_name` header (an
    /// `IP:port`), when it has one; otherwise the downstream connection's.
    pub use_http_header: bool,
    /// `http_header_name`, lower-cased (default `x-envoy-original-dst-host`).
    pub http_header_name: String,
    /// `upstream_port_override`: this port rather than the destination's.
    pub upstream_port_override: Option<u16>,
    /// `cleanup_interval` (default 5 s): hosts unused for this long are removed.
    pub cleanup_interval: Duration,
}

/// A DNS cluster's names and its resolution settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsDiscovery {
    /// `LOGICAL_DNS`: one host, the first address of its one name; a new address changes the
    /// host's address for new connections and keeps its pool (as Envoy's logical host).
    /// Otherwise (`STRICT_DNS`) every address of every name is a host.
    pub logical: bool,
    /// The `lb_endpoints` with their names.
    pub targets: Vec<DnsTarget>,
    /// `dns_lookup_family` (default `AUTO`).
    pub lookup_family: DnsLookupFamily,
    /// `dns_refresh_rate` (default 5 s).
    pub refresh_rate: Duration,
    /// `dns_failure_refresh_rate`: `base_interval` and `max_interval` of the back-off after a
    /// failed lookup (default: the refresh rate).
    pub failure_refresh: Option<(Duration, Duration)>,
    /// `respect_dns_ttl`: refresh at the answer's TTL instead of the refresh rate.
    pub respect_ttl: bool,
    /// `dns_jitter`: up to this much is added to each refresh at random.
    pub jitter: Duration,
    /// Where and how to ask.
    pub resolver: DnsResolverConfig,
}

/// One `lb_endpoints[]` entry of a DNS cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsTarget {
    /// `socket_address.address`: a name (or an IP literal, which resolves to itself).
    pub name: String,
    /// `socket_address.port_value`.
    pub port: u16,
    /// `load_balancing_weight` of each of its hosts.
    pub weight: u32,
    /// `endpoint.hostname` (default: the name): its hosts' hostname, the SNI under
    /// `auto_host_sni`.
    pub hostname: Option<String>,
    /// Its `endpoints[]` entry's priority and locality.
    pub placement: std::sync::Arc<super::Placement>,
    /// `health_status` of each of its hosts.
    pub health: super::EndpointHealth,
}

/// `dns_lookup_family`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsLookupFamily {
    /// IPv6 first, IPv4 when there is no IPv6 answer.
    Auto,
    /// IPv4 only.
    V4Only,
    /// IPv6 only.
    V6Only,
    /// IPv4 first, IPv6 when there is no IPv4 answer.
    V4Preferred,
    /// Both.
    All,
}

/// The resolver: `dns_resolvers`, `dns_resolution_config` or `typed_dns_resolver_config`
/// (c-ares' or getaddrinfo's); empty `servers` means the system's (`/etc/resolv.conf`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsResolverConfig {
    /// The servers to ask (`resolvers`).
    pub servers: Vec<SocketAddr>,
    /// `use_tcp_for_dns_lookups`.
    pub use_tcp: bool,
    /// `no_default_search_domain`.
    pub no_default_search_domain: bool,
    /// c-ares' `query_timeout_seconds`.
    pub query_timeout: Option<Duration>,
    /// c-ares' `query_tries`.
    pub query_tries: Option<u32>,
}
