//! The typed, validated configuration the proxy runs on.
//!
//! Everything here has already been checked: addresses parse, durations are non-negative,
//! every route names a cluster that exists, regexes compile, Envoy's defaults are filled in.
//! The proxy never has to re-validate or guess a default. Names follow Envoy's v3 API.

mod dns;
mod http_filters;
mod listener_match;
mod placement;
mod routes;

use std::net::SocketAddr;
use std::time::Duration;

pub use dns::*;
pub use http_filters::*;
pub use listener_match::*;
pub use placement::*;
pub use routes::*;

/// The whole bootstrap: what `weir -c FILE` runs.
#[derive(Debug, Clone)]
pub struct Bootstrap {
    /// `node.id` / `node.cluster`, reported by `/server_info`.
    pub node: Node,
    /// `admin.address`; `None` when the config has no `admin` section.
    pub admin: Option<Admin>,
    /// `static_resources.listeners`, in config order.
    pub listeners: Vec<Listener>,
    /// `static_resources.clusters`, in config order. Routes refer to them by index.
    pub clusters: Vec<Cluster>,
    /// `overload_manager`: global limits.
    pub overload: Overload,
    /// `weir`: weir's own settings.
    pub weir: WeirSettings,
    /// `stats_sinks[]`, in config order: where the stats go at each flush.
    pub stats_sinks: Vec<StatsSink>,
    /// `stats_flush_interval` (Envoy's default 5 s): how often the sinks get the stats, and
    /// how long the `interval` column of `/stats` covers.
    pub stats_flush_interval: Duration,
    /// `layered_runtime`: the runtime's layers.
    pub runtime: crate::LayeredRuntime,
    /// The document as loaded (YAML read as JSON), for `/config_dump`.
    pub source: serde_json::Value,
    /// What is allowed but probably not meant (a key given twice in one mapping), each
    /// naming its path; `weir validate` prints them and `weir -c` logs them.
    pub warnings: Vec<crate::ConfigError>,
}

/// A `stats_sinks[]` entry weir runs: a statsd sink over UDP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsSink {
    /// Which `@type`: plain statsd or DogStatsD (tagged).
    pub kind: StatsSinkKind,
    /// `address.socket_address`: where the datagrams go.
    pub address: SocketAddr,
    /// `prefix` (Envoy's default `envoy` when absent or empty), put before every stat name.
    pub prefix: String,
    /// `max_bytes_per_datagram` (DogStatsD only): lines are packed into datagrams up to this
    /// size; `None` sends one line per datagram, as Envoy does.
    pub max_bytes_per_datagram: Option<u64>,
}

/// The statsd dialect a sink speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatsSinkKind {
    /// `envoy.config.metrics.v3.StatsdSink`: full stat names, no tags.
    Statsd,
    /// `envoy.config.metrics.v3.DogStatsdSink`: tag-extracted names with `|#key:value` tags.
    DogStatsd,
}

/// `overload_manager`, as far as weir implements it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overload {
    /// `resource_monitors[]` `envoy.resource_monitors.global_downstream_max_connections`:
    /// `max_active_downstream_connections`, over all listeners and workers. Connections past it
    /// are closed as soon as they are accepted.
    pub max_active_downstream_connections: Option<u64>,
}

/// `node`: identifies this proxy to operators (and, later, to a control plane).
#[derive(Debug, Clone, Default)]
pub struct Node {
    /// `node.id`.
    pub id: String,
    /// `node.cluster`.
    pub cluster: String,
}

/// `admin`: the admin listener.
#[derive(Debug, Clone)]
pub struct Admin {
    /// `admin.address.socket_address`.
    pub address: SocketAddr,
}

/// `static_resources.listeners[]`.
#[derive(Debug, Clone)]
pub struct Listener {
    /// `name`; Envoy's default when absent is the address, e.g. `0.0.0.0_8080`.
    pub name: String,
    /// `address.socket_address`; port 0 binds an ephemeral port.
    pub address: SocketAddr,
    /// `filter_chains[]`, in config order.
    pub filter_chains: Vec<FilterChain>,
    /// `default_filter_chain`: used when no chain in `filter_chains` matches.
    pub default_filter_chain: Option<FilterChain>,
    /// `per_connection_buffer_limit_bytes` (Envoy default 1 MiB): the high watermark of each
    /// downstream connection's buffers.
    pub per_connection_buffer_limit_bytes: u32,
    /// `listener_filters[]`, in order.
    pub listener_filters: Vec<ListenerFilter>,
    /// `listener_filters_timeout` and `continue_on_listener_filters_timeout`.
    pub listener_filters_timeout: ListenerFiltersTimeout,
    /// `traffic_direction` (default UNSPECIFIED): what admin's
    /// `/drain_listeners?inboundonly` picks out.
    pub traffic_direction: TrafficDirection,
    /// `drain_type` (default DEFAULT): MODIFY_ONLY keeps its connections out of the drain a
    /// failed health check (`/healthcheck/fail`) starts; reloads drain it all the same.
    pub drain_type: DrainType,
}

/// `drain_type` of a listener (`config.listener.v3.Listener.DrainType`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DrainType {
    /// `DEFAULT`: drained by a failed health check, `/drain_listeners?graceful` and changes.
    #[default]
    Default,
    /// `MODIFY_ONLY`: not drained by a failed health check (egress listeners, so that an
    /// ingress-led shutdown does not discourage outbound requests).
    ModifyOnly,
}

/// `traffic_direction` of a listener (`config.core.v3.TrafficDirection`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TrafficDirection {
    /// `UNSPECIFIED` (the default).
    #[default]
    Unspecified,
    /// `INBOUND`: drained by `/drain_listeners?inboundonly`.
    Inbound,
    /// `OUTBOUND`.
    Outbound,
}

/// `filter_chains[]`: how to treat a connection that matched `filter_chain_match`.
#[derive(Debug, Clone)]
pub struct FilterChain {
    /// `name`; Envoy leaves it empty when absent, weir names it `<listener>/<index>` (or
    /// `<listener>/default`) so traces can show which chain ran.
    pub name: String,
    /// `filter_chain_match` (default for `default_filter_chain`, which takes none).
    pub filter_chain_match: FilterChainMatch,
    /// The network filter: `envoy.filters.network.http_connection_manager` (the only one so
    /// far). `None` for a chain with no network filters, which Envoy accepts: its connections
    /// are closed as soon as they are accepted.
    pub http_connection_manager: Option<HttpConnectionManager>,
    /// Or the network filter `envoy.filters.network.tcp_proxy`: the bytes go to a cluster as
    /// they are.
    pub tcp_proxy: Option<TcpProxy>,
    /// `transport_socket`: TLS terminated here, or `None` for plaintext.
    pub tls: Option<DownstreamTls>,
    /// `transport_socket_connect_timeout`: a TLS handshake not done by then closes the
    /// connection (`None`: unset or 0, no limit of its own).
    pub transport_socket_connect_timeout: Option<std::time::Duration>,
}

/// `envoy.transport_sockets.tls` with a `DownstreamTlsContext`: its certificates, read and
/// checked, as a ready rustls server config.
#[derive(Debug, Clone)]
pub struct DownstreamTls {
    /// Certificates (chosen by SNI), versions, suites, curves, ALPN, client verification.
    pub server_config: std::sync::Arc<rustls::ServerConfig>,
    /// `require_client_certificate` (mTLS): a client without a valid certificate is refused.
    pub require_client_certificate: bool,
    /// What admin `/certs` shows of it.
    pub certs: TlsCerts,
    /// Its certificates that SDS files give (`tls_certificate_sds_secret_configs`), which
    /// [`crate::CertRotation::refresh`] reads again when they change.
    pub rotation: Option<std::sync::Arc<crate::CertRotation>>,
}

/// `envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager`.
#[derive(Debug, Clone)]
pub struct HttpConnectionManager {
    /// `stat_prefix` (required).
    pub stat_prefix: String,
    /// `codec_type`: AUTO and HTTP1 both mean HTTP/1.1 for now.
    pub codec_type: CodecType,
    /// `route_config` (inline).
    pub route_config: RouteConfiguration,
    /// `http_filters`, in order; the last one is always the router.
    pub http_filters: Vec<HttpFilter>,
    /// `max_request_headers_kb` (Envoy default 60) in bytes.
    pub max_request_headers_bytes: usize,
    /// `common_http_protocol_options.max_headers_count` (default 100).
    pub max_headers_count: usize,
    /// `common_http_protocol_options.idle_timeout` (default 1 h; `0s` disables): a connection
    /// with no active stream for this long is closed.
    pub idle_timeout: Option<Duration>,
    /// `stream_idle_timeout` (default 5 min; `0s` disables): a stream with no activity in
    /// either direction for this long is ended (408 if nothing was sent yet).
    pub stream_idle_timeout: Option<Duration>,
    /// `request_timeout` (default disabled): the whole request must arrive within this time.
    pub request_timeout: Option<Duration>,
    /// `use_remote_address` (default false).
    pub use_remote_address: bool,
    /// `xff_num_trusted_hops` (default 0).
    pub xff_num_trusted_hops: u32,
    /// `request_headers_timeout`: from the first byte of a request's head to its end; `None`
    /// (Envoy's default) when unset or 0. Past it: 408 and close.
    pub request_headers_timeout: Option<Duration>,
    /// `common_http_protocol_options.max_connection_duration`: after it, the connection closes
    /// once its current response is sent (at once when idle). `None` when unset or 0.
    pub max_connection_duration: Option<Duration>,
    /// `common_http_protocol_options.max_requests_per_connection`: the response to the last
    /// one closes the connection. `None` when unset or 0.
    pub max_requests_per_connection: Option<u32>,
    /// `generate_request_id` (default true).
    pub generate_request_id: bool,
    /// `access_log`: the file, stdout and stderr access loggers, in config order, each with its
    /// compiled format (Envoy's default format when `log_format` is absent). Empty: no access log.
    pub access_log: Vec<crate::AccessLog>,
    /// `upgrade_configs`: the upgrades (`websocket`, `CONNECT`, …) this connection manager
    /// allows; a route's own list overrides it type by type.
    pub upgrade_configs: Vec<UpgradeConfig>,
    /// `server_name`: the value of `server` on responses (default `weir`; Envoy's is `envoy`).
    pub server_name: String,
    /// `server_header_transformation` (default OVERWRITE).
    pub server_header_transformation: ServerHeaderTransformation,
    /// `preserve_external_request_id` (default false): an external request's `x-request-id`
    /// is kept instead of replaced (with `use_remote_address`).
    pub preserve_external_request_id: bool,
    /// `internal_address_config.cidr_ranges`: a request whose trusted client address falls
    /// in one (and whose `x-forwarded-for` then holds that one address) is internal; with
    /// none, as in Envoy 1.40, no request is.
    pub internal_addresses: Vec<CidrRange>,
    /// `always_set_request_id_in_response` (default false): the response carries the
    /// request's `x-request-id` (as it does anyway for an internal request with
    /// `x-envoy-force-trace`).
    pub always_set_request_id_in_response: bool,
    /// `http_protocol_options.accept_http_10` (default false): an HTTP/1.0 request is
    /// answered 426 Upgrade Required unless it is set.
    pub accept_http_10: bool,
    /// `http_protocol_options.default_host_for_http_10`: the Host given to an HTTP/1.0
    /// request without one (without it, such a request is answered 400).
    pub default_host_for_http_10: Option<String>,
    /// `http_protocol_options.header_key_format`: how header names are written to the client
    /// (and, for `preserve_case`, that the request's names are kept on their way upstream).
    pub header_key_format: HeaderKeyFormat,
}

/// `header_key_format` of an `Http1ProtocolOptions`: how weir writes HTTP/1 header names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HeaderKeyFormat {
    /// Unset: lower case, as Envoy's HTTP/1 codec writes them.
    #[default]
    Lower,
    /// `proper_case_words`: `Content-Type`, `X-Envoy-Foo` (a letter is upper-cased at the start
    /// and after anything but a letter or a digit).
    ProperCase,
    /// `stateful_formatter` with `preserve_case`: the messages this side *receives* keep their
    /// names' case when weir writes them on the other side; names weir adds itself go out in
    /// lower case, or in proper case with `formatter_type_on_envoy_headers: PROPER_CASE`.
    PreserveCase {
        /// `forward_reason_phrase`: a response received keeps its reason phrase.
        forward_reason_phrase: bool,
        /// `formatter_type_on_envoy_headers: PROPER_CASE`.
        proper_case_envoy_headers: bool,
    },
}

/// `server_header_transformation`: what happens to a response's `server` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerHeaderTransformation {
    /// `OVERWRITE` (default): every response carries `server: <server_name>`.
    Overwrite,
    /// `APPEND_IF_ABSENT`: `server: <server_name>` when the response has none.
    AppendIfAbsent,
    /// `PASS_THROUGH`: the response's own `server`, if any; weir adds none.
    PassThrough,
}

/// One entry of `upgrade_configs` (on the connection manager or on a route).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeConfig {
    /// `upgrade_type`, lower-cased (`websocket`, `connect`): compared with the request's
    /// `Upgrade` header (or `connect` for a CONNECT request) ignoring case.
    pub upgrade_type: String,
    /// `enabled` (default true).
    pub enabled: bool,
    /// `connect_config` is present (routes only): weir ends the CONNECT itself and tunnels the
    /// bytes to the route's cluster, instead of forwarding the CONNECT.
    pub terminate_connect: bool,
}

/// `codec_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodecType {
    /// `AUTO` (default): HTTP/1.1 until HTTP/2 lands.
    Auto,
    /// `HTTP1`.
    Http1,
}

/// `config.core.v3.CidrRange`: an address prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CidrRange {
    /// `address_prefix`.
    pub address: std::net::IpAddr,
    /// `prefix_len`: at most 32 for IPv4, 128 for IPv6.
    pub prefix_len: u8,
}

impl CidrRange {
    /// Whether `ip` is in the range. An IPv4-mapped IPv6 address counts as its IPv4 address.
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        let bits = |a: IpAddr| match a.to_canonical() {
            IpAddr::V4(v4) => (u128::from(u32::from(v4)) << 96, true),
            IpAddr::V6(v6) => (u128::from(v6), false),
        };
        let ((range, v4), (addr, addr_v4)) = (bits(self.address), bits(ip));
        if v4 != addr_v4 {
            return false;
        }
        // IPv4 sits in the top 32 bits, so one mask of the top `prefix_len` bits fits both.
        let mask = u128::MAX
            .checked_shl(128 - u32::from(self.prefix_len))
            .unwrap_or(0);
        range & mask == addr & mask
    }
}

/// `static_resources.clusters[]`.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// `name` (required, unique).
    pub name: String,
    /// `connect_timeout` (default 5 s).
    pub connect_timeout: Duration,
    /// `lb_policy` and its config.
    pub lb_policy: LbPolicy,
    /// `load_assignment.endpoints[].lb_endpoints[]`, flattened in config order (a DNS
    /// cluster's are in `discovery`, and this is empty).
    pub endpoints: Vec<Endpoint>,
    /// `type`: the endpoints as written, or names resolved at run time.
    pub discovery: Discovery,
    /// `per_connection_buffer_limit_bytes` (default 1 MiB) for upstream connections.
    pub per_connection_buffer_limit_bytes: u32,
    /// `header_key_format` of its HTTP/1 options (`typed_extension_protocol_options`'
    /// `HttpProtocolOptions.explicit_http_config.http_protocol_options`, or the deprecated
    /// `http_protocol_options`): how names are written to the origin (and, for `preserve_case`,
    /// that the response's names are kept on their way to the client).
    pub header_key_format: HeaderKeyFormat,
    /// `upstream_http_protocol_options.auto_sni` (typed or deprecated form).
    pub auto_sni: Option<AutoSni>,
    /// `transport_socket`: TLS to the origin, or `None` for plaintext.
    pub tls: Option<UpstreamTls>,
    /// `circuit_breakers`, with Envoy's defaults for what is unset.
    pub circuit_breakers: CircuitBreakers,
    /// `outlier_detection` (none when absent).
    pub outlier_detection: Option<OutlierDetection>,
    /// `common_lb_config.healthy_panic_threshold` (percent, default 50): below this share of
    /// healthy hosts the balancer picks among all of them.
    pub healthy_panic_threshold: f64,
    /// How load spreads over priorities and localities.
    pub load_spread: LoadSpread,
    /// `health_checks[]`: active health checking.
    pub health_checks: Vec<HealthCheck>,
}

/// One `health_checks[]` entry (`config.core.v3.HealthCheck`).
#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheck {
    /// A check not answered in this time failed.
    pub timeout: Duration,
    /// Between checks of a healthy host.
    pub interval: Duration,
    /// The first check waits a random time up to this.
    pub initial_jitter: Duration,
    /// Each wait gets a random extra up to this …
    pub interval_jitter: Duration,
    /// … and up to this percent of itself.
    pub interval_jitter_percent: u32,
    /// Failures in a row that make a healthy host unhealthy.
    pub unhealthy_threshold: u32,
    /// Successes in a row that make an unhealthy host healthy.
    pub healthy_threshold: u32,
    /// Check this port rather than the host's.
    pub alt_port: Option<u16>,
    /// Keep the connection between checks (default true).
    pub reuse_connection: bool,
    /// Between checks while the cluster has had no traffic (default 60 s).
    pub no_traffic_interval: Duration,
    /// The same for a healthy host, when set.
    pub no_traffic_healthy_interval: Option<Duration>,
    /// Between checks of an unhealthy host (default `interval`).
    pub unhealthy_interval: Duration,
    /// The first wait after a host turned unhealthy (default `unhealthy_interval`).
    pub unhealthy_edge_interval: Duration,
    /// The first wait after a host turned healthy (default `interval`).
    pub healthy_edge_interval: Duration,
    /// Envoy's health-check event log (JSON lines).
    pub event_log_path: Option<String>,
    /// Log every failure, not only those that change a host's health.
    pub always_log_health_check_failures: bool,
    /// Log every success.
    pub always_log_health_check_success: bool,
    /// What a check sends and expects.
    pub kind: HealthCheckKind,
}

/// The protocol of a health check.
#[derive(Debug, Clone, PartialEq)]
pub enum HealthCheckKind {
    /// `http_health_check`.
    Http(HttpHealthCheck),
    /// `tcp_health_check`.
    Tcp(TcpHealthCheck),
}

/// `http_health_check`.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpHealthCheck {
    /// `host` (default: the cluster's name).
    pub host: Option<String>,
    /// `path` (required).
    pub path: String,
    /// `method` (default GET).
    pub method: String,
    /// `request_headers_to_add`.
    pub request_headers_to_add: Vec<HeaderValueOption>,
    /// `request_headers_to_remove`, lower-cased.
    pub request_headers_to_remove: Vec<String>,
    /// `expected_statuses` as `[start, end)` (default 200 only).
    pub expected_statuses: Vec<(u16, u16)>,
    /// `retriable_statuses` as `[start, end)`: failures that count toward the threshold
    /// rather than fail the host at once.
    pub retriable_statuses: Vec<(u16, u16)>,
}

/// `tcp_health_check`.
#[derive(Debug, Clone, PartialEq)]
pub struct TcpHealthCheck {
    /// Bytes to send (none: a connect is the check).
    pub send: Vec<u8>,
    /// Blocks each found, in order, in what comes back.
    pub receive: Vec<Vec<u8>>,
}

/// `outlier_detection` (`config.cluster.v3.OutlierDetection`), Envoy's defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct OutlierDetection {
    /// Consecutive 5xx (or, unsplit, local failures) that eject a host (default 5).
    pub consecutive_5xx: u32,
    /// Consecutive 502/503/504 that eject a host (default 5).
    pub consecutive_gateway_failure: u32,
    /// Consecutive local-origin failures (connect failures, timeouts) that eject a host when
    /// `split_external_local_origin_errors` (default 5).
    pub consecutive_local_origin_failure: u32,
    /// Between two sweeps: unejections and the success-rate and failure-percentage checks
    /// (default 10 s).
    pub interval: Duration,
    /// An ejection lasts this times the host's ejection count (default 30 s) …
    pub base_ejection_time: Duration,
    /// … at most this (default 300 s).
    pub max_ejection_time: Duration,
    /// A random extra ejection time up to this (default 0).
    pub max_ejection_time_jitter: Duration,
    /// No ejection while this share of the hosts is ejected (default 10).
    pub max_ejection_percent: u32,
    /// Percent chance that a detected outlier of each kind is ejected.
    pub enforcing_consecutive_5xx: u32,
    #[allow(missing_docs)]
    pub enforcing_consecutive_gateway_failure: u32,
    #[allow(missing_docs)]
    pub enforcing_consecutive_local_origin_failure: u32,
    #[allow(missing_docs)]
    pub enforcing_success_rate: u32,
    #[allow(missing_docs)]
    pub enforcing_local_origin_success_rate: u32,
    #[allow(missing_docs)]
    pub enforcing_failure_percentage: u32,
    #[allow(missing_docs)]
    pub enforcing_failure_percentage_local_origin: u32,
    /// Hosts with enough requests needed for the success-rate check (default 5).
    pub success_rate_minimum_hosts: u32,
    /// Requests in an interval for a host to count in it (default 100).
    pub success_rate_request_volume: u32,
    /// Thousandths of a standard deviation below the mean that eject (default 1900).
    pub success_rate_stdev_factor: u32,
    /// Failure percentage that ejects (default 85).
    pub failure_percentage_threshold: u32,
    /// Hosts with enough requests needed for the failure-percentage check (default 5).
    pub failure_percentage_minimum_hosts: u32,
    /// Requests in an interval for a host to count in it (default 50).
    pub failure_percentage_request_volume: u32,
    /// Local-origin failures (connect failures, timeouts) are counted apart from the
    /// origin's 5xx.
    pub split_external_local_origin_errors: bool,
    /// One host may be ejected whatever `max_ejection_percent` says.
    pub always_eject_one_host: bool,
}

impl Default for OutlierDetection {
    fn default() -> Self {
        OutlierDetection {
            consecutive_5xx: 5,
            consecutive_gateway_failure: 5,
            consecutive_local_origin_failure: 5,
            interval: Duration::from_secs(10),
            base_ejection_time: Duration::from_secs(30),
            max_ejection_time: Duration::from_secs(300),
            max_ejection_time_jitter: Duration::ZERO,
            max_ejection_percent: 10,
            enforcing_consecutive_5xx: 100,
            enforcing_consecutive_gateway_failure: 0,
            enforcing_consecutive_local_origin_failure: 100,
            enforcing_success_rate: 100,
            enforcing_local_origin_success_rate: 100,
            enforcing_failure_percentage: 0,
            enforcing_failure_percentage_local_origin: 0,
            success_rate_minimum_hosts: 5,
            success_rate_request_volume: 100,
            success_rate_stdev_factor: 1900,
            failure_percentage_threshold: 85,
            failure_percentage_minimum_hosts: 5,
            failure_percentage_request_volume: 50,
            split_external_local_origin_errors: false,
            always_eject_one_host: false,
        }
    }
}

/// `circuit_breakers` (`config.cluster.v3.CircuitBreakers`): limits shared by every worker,
/// per routing priority (`[DEFAULT, HIGH]`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CircuitBreakers {
    /// The first `thresholds[]` entry of each priority, or Envoy's defaults.
    pub thresholds: [Thresholds; 2],
    /// The first `per_host_thresholds[]` entry's `max_connections` of each priority (each
    /// host's open connections; unlimited when unset).
    pub per_host_max_connections: [Option<u32>; 2],
}

/// One priority's limits (`CircuitBreakers.Thresholds`).
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    /// Open connections to the cluster (default 1024).
    pub max_connections: u32,
    /// Requests waiting for a connection (default 1024).
    pub max_pending_requests: u32,
    /// Requests in flight on connections (default 1024).
    pub max_requests: u32,
    /// Retries in flight (default 3), unless a `retry_budget` is set.
    pub max_retries: u32,
    /// Connection pools (one per host and worker); unlimited when unset.
    pub max_connection_pools: Option<u32>,
    /// `retry_budget`: retries in flight as a share of the requests in flight.
    pub retry_budget: Option<RetryBudget>,
    /// `track_remaining`: the `remaining_*` gauges exist.
    pub track_remaining: bool,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            max_connections: 1024,
            max_pending_requests: 1024,
            max_requests: 1024,
            max_retries: 3,
            max_connection_pools: None,
            retry_budget: None,
            track_remaining: false,
        }
    }
}

/// `retry_budget`: at most `budget_percent` % of the active and pending requests may be
/// retries, and never fewer than `min_retry_concurrency`.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryBudget {
    /// `budget_percent.value` (default 20).
    pub budget_percent: f64,
    /// `min_retry_concurrency` (default 3).
    pub min_retry_concurrency: u32,
}

/// `envoy.filters.network.tcp_proxy` (`extensions.filters.network.tcp_proxy.v3.TcpProxy`).
#[derive(Debug, Clone)]
pub struct TcpProxy {
    /// `stat_prefix` (required): the `tcp.<stat_prefix>.` stats.
    pub stat_prefix: String,
    /// `cluster` (weight 1) or `weighted_clusters.clusters[]`: cluster indices and weights.
    pub clusters: Vec<(usize, u32)>,
    /// `idle_timeout` (Envoy default 1 h; `0s` disables): no bytes either way for this long
    /// closes both connections.
    pub idle_timeout: Option<Duration>,
    /// `max_connect_attempts` (default 1): connects tried before the downstream is closed.
    pub max_connect_attempts: u32,
    /// `access_log`: one entry per connection, when it closes.
    pub access_log: Vec<crate::AccessLog>,
}

/// `envoy.transport_sockets.tls` with an `UpstreamTlsContext`, as a ready rustls client config.
#[derive(Debug, Clone)]
pub struct UpstreamTls {
    /// Versions, suites, curves, ALPN, the client certificate, and how the origin is verified.
    pub client_config: std::sync::Arc<rustls::ClientConfig>,
    /// `sni`: the name sent in the ClientHello (none when absent, as Envoy).
    pub sni: Option<String>,
    /// `auto_host_sni`: the SNI is the endpoint's `hostname` when it has one.
    pub auto_host_sni: bool,
    /// `auto_sni_san_validation`: the origin's certificate must also be valid for the SNI the
    /// connection sent, wherever it came from.
    pub auto_sni_san_validation: bool,
    /// What admin `/certs` shows of it.
    pub certs: TlsCerts,
    /// Its CA when an SDS file gives it (`validation_context_sds_secret_config`), which
    /// [`crate::CertRotation::refresh`] reads again when it changes.
    pub rotation: Option<std::sync::Arc<crate::CertRotation>>,
}

/// What admin `/certs` shows of one TLS context: its CA and its own certificates.
#[derive(Debug, Clone)]
pub struct TlsCerts {
    /// `validation_context.trusted_ca`: the file it was read from (`<inline>`) and its
    /// certificates, as they are now (an SDS rotation replaces them).
    pub ca: SharedCa,
    /// Its own certificates.
    pub own: CertSource,
}

/// A TLS context's CA as `/certs` shows it: its file and certificates.
pub type SharedCa = std::sync::Arc<
    std::sync::RwLock<Option<(String, Vec<rustls::pki_types::CertificateDer<'static>>)>>,
>;

/// A certificate a listener serves, with the file its chain came from (`<inline>`).
#[derive(Debug, Clone)]
pub struct ServedCert {
    /// What rustls serves (with its OCSP staple, when it has one).
    pub key: std::sync::Arc<rustls::sign::CertifiedKey>,
    /// Where its chain was read from, as `/certs` shows it.
    pub chain_path: String,
    /// When it has a staple: the same certificate without it, and when the staple expires
    /// (Unix seconds; `None`: never).
    pub unstapled: Option<(std::sync::Arc<rustls::sign::CertifiedKey>, Option<u64>)>,
}

/// A listener's certificates, shared by its certificate resolver and an SDS rotation that
/// may replace them.
pub type SharedCerts = std::sync::Arc<std::sync::RwLock<Vec<ServedCert>>>;

/// Where a TLS context's own certificates are now.
#[derive(Debug, Clone)]
pub enum CertSource {
    /// A listener's: what it serves now.
    Served(SharedCerts),
    /// A cluster's client certificate (mTLS), if any: its chain file and chain.
    Fixed(Option<(String, Vec<rustls::pki_types::CertificateDer<'static>>)>),
}

impl CertSource {
    /// Each certificate's chain file and end-entity certificate, as they are now.
    pub fn end_entities(&self) -> Vec<(String, rustls::pki_types::CertificateDer<'static>)> {
        match self {
            CertSource::Served(certs) => certs
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .filter_map(|c| Some((c.chain_path.clone(), c.key.cert.first()?.clone())))
                .collect(),
            CertSource::Fixed(chain) => chain
                .iter()
                .filter_map(|(path, chain)| Some((path.clone(), chain.first()?.clone())))
                .collect(),
        }
    }
}

/// `lb_policy`, with its `*_lb_config`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LbPolicy {
    /// `ROUND_ROBIN` (default), weighted by `load_balancing_weight`.
    RoundRobin,
    /// `LEAST_REQUEST`: the fewer active requests the likelier (`least_request_lb_config`).
    LeastRequest {
        /// `choice_count` (default 2): hosts drawn when all weights are equal.
        choice_count: u32,
        /// `active_request_bias.default_value` (default 1.0): with unequal weights, a host's
        /// weight is divided by `(active requests + 1) ^ bias`.
        active_request_bias: f64,
    },
    /// `RANDOM`, weighted.
    Random,
    /// `RING_HASH` (`ring_hash_lb_config`, xxHash).
    RingHash {
        /// `minimum_ring_size` (default 1024).
        minimum_ring_size: u64,
        /// `maximum_ring_size` (default 8M).
        maximum_ring_size: u64,
    },
    /// `MAGLEV` (`maglev_lb_config`).
    Maglev {
        /// `table_size` (default 65537, prime).
        table_size: u64,
    },
    /// `CLUSTER_PROVIDED`: the cluster picks (an `ORIGINAL_DST` cluster: the destination).
    ClusterProvided,
}

impl LbPolicy {
    /// It picks by the request's hash (`hash_policy`).
    pub fn hashes(&self) -> bool {
        matches!(self, LbPolicy::RingHash { .. } | LbPolicy::Maglev { .. })
    }
}

/// One `lb_endpoints[]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `endpoint.address.socket_address` (an IP literal: the cluster is STATIC).
    pub address: SocketAddr,
    /// `load_balancing_weight` (default 1, must be ≥ 1).
    pub weight: u32,
    /// `endpoint.hostname`: the SNI under `auto_host_sni`.
    pub hostname: Option<String>,
    /// Its `endpoints[]` entry's priority and locality.
    pub placement: std::sync::Arc<Placement>,
    /// `health_status`.
    pub health: EndpointHealth,
}

/// `upstream_http_protocol_options` with `auto_sni`: each request's host (or another header)
/// is the SNI of the connection it goes on; pooled connections serve only requests with the
/// same name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoSni {
    /// `override_auto_sni_header`, lower-cased; `None`: the request's `host` (without port).
    pub header: Option<String>,
    /// `auto_san_validation`: the origin's certificate must be valid for that name.
    pub san_validation: bool,
}

/// `weir`: weir's own settings, for what Envoy has no field (a top-level section Envoy's
/// bootstrap does not have; `weir validate` checks it like the rest).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WeirSettings {
    /// `weir.flow_trace`.
    pub flow_trace: FlowTrace,
}

/// `weir.flow_trace`: which requests the per-request flow recorder keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowTrace {
    /// `mode` (default OFF).
    pub mode: FlowTraceMode,
    /// `flows_kept` (default 256): completed flows each worker keeps for the admin listener.
    pub flows_kept: usize,
}

impl Default for FlowTrace {
    fn default() -> Self {
        FlowTrace {
            mode: FlowTraceMode::Off,
            flows_kept: 256,
        }
    }
}

/// `weir.flow_trace.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowTraceMode {
    /// `OFF`: nothing is recorded (one branch per event site).
    Off,
    /// `SAMPLED` with `sample_one_in: N` (default 100): one request in N.
    Sampled {
        /// N.
        one_in: u32,
    },
    /// `HEADER`: requests carrying `x-weir-trace: 1`.
    Header,
    /// `ALL`: every request.
    All,
}
