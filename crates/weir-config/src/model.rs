//! The typed, validated configuration the proxy runs on.
//!
//! Everything here has already been checked: addresses parse, durations are non-negative,
//! every route names a cluster that exists, regexes compile, Envoy's defaults are filled in.
//! The proxy never has to re-validate or guess a default. Names follow Envoy's v3 API.

use std::net::SocketAddr;
use std::time::Duration;

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
}

/// `filter_chains[]`: how to treat a connection that matched `filter_chain_match`.
#[derive(Debug, Clone)]
pub struct FilterChain {
    /// `name`; Envoy leaves it empty when absent, weir names it `<listener>/<index>` (or
    /// `<listener>/default`) so traces can show which chain ran.
    pub name: String,
    /// `filter_chain_match.destination_port`: matches the connection's local port.
    pub destination_port: Option<u16>,
    /// The network filter: `envoy.filters.network.http_connection_manager` (the only one so
    /// far). `None` for a chain with no network filters, which Envoy accepts: its connections
    /// are closed as soon as they are accepted.
    pub http_connection_manager: Option<HttpConnectionManager>,
    /// `transport_socket`: TLS terminated here, or `None` for plaintext.
    pub tls: Option<DownstreamTls>,
}

/// `envoy.transport_sockets.tls` with a `DownstreamTlsContext`: its certificates, read and
/// checked, as a ready rustls server config.
#[derive(Debug, Clone)]
pub struct DownstreamTls {
    /// Certificates (chosen by SNI), versions, suites, curves, ALPN, client verification.
    pub server_config: std::sync::Arc<rustls::ServerConfig>,
    /// `require_client_certificate` (mTLS): a client without a valid certificate is refused.
    pub require_client_certificate: bool,
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

/// One entry of `http_filters`.
#[derive(Debug, Clone)]
pub enum HttpFilter {
    /// `envoy.filters.http.router` (`type.googleapis.com/envoy.extensions.filters.http.router.v3.Router`).
    Router {
        /// The filter's `name` as written in the config.
        name: String,
        /// `suppress_envoy_headers` (default false): no `x-envoy-upstream-service-time`,
        /// `x-envoy-expected-rq-timeout-ms`, `x-envoy-original-path`, `x-envoy-original-host`.
        suppress_envoy_headers: bool,
    },
    /// Any filter before the router.
    Filter {
        /// The filter's `name` as written in the config: `typed_per_filter_config` keys name it.
        name: String,
        /// `disabled: true`: off unless a route's `typed_per_filter_config` enables it (with a
        /// `config.route.v3.FilterConfig` that is not `disabled`).
        disabled: bool,
        /// What it does.
        config: FilterConfig,
    },
}

/// The typed config of an HTTP filter (by its `@type`).
#[derive(Debug, Clone)]
pub enum FilterConfig {
    /// `envoy.extensions.filters.http.fault.v3.HTTPFault`.
    Fault(FaultConfig),
    /// `envoy.extensions.filters.http.buffer.v3.Buffer`.
    Buffer(BufferConfig),
    /// `envoy.extensions.filters.http.health_check.v3.HealthCheck`.
    HealthCheck(HealthCheckConfig),
}

/// `type.v3.FractionalPercent`, normalised to parts per million.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fraction {
    /// `numerator` scaled to a denominator of 1,000,000 (capped at 1,000,000).
    pub per_million: u32,
    /// `denominator` as a number: 100, 10,000 or 1,000,000 (a fault's `-percentage` request
    /// header is a numerator over it).
    pub denominator: u32,
}

/// `envoy.extensions.filters.http.fault.v3.HTTPFault`.
#[derive(Debug, Clone, Default)]
pub struct FaultConfig {
    /// `delay`.
    pub delay: Option<FaultDelay>,
    /// `abort`.
    pub abort: Option<FaultAbort>,
    /// `upstream_cluster`: faults apply only to requests routed to this cluster.
    pub upstream_cluster: Option<String>,
    /// `headers`: faults apply only to requests matching all of these.
    pub headers: Vec<HeaderMatcher>,
    /// `downstream_nodes`: faults apply only when `x-envoy-downstream-service-node` is one of
    /// these (empty: any).
    pub downstream_nodes: Vec<String>,
    /// `max_active_faults`: at most this many faulted requests at once (per worker in weir;
    /// Envoy counts them per process).
    pub max_active_faults: Option<u32>,
    /// The runtime keys that override the values above (`*_runtime`); shared, since each
    /// stream takes its own copy of the config.
    pub runtime: std::sync::Arc<FaultRuntime>,
}

/// The fault filter's runtime keys (`delay_percent_runtime`, …): each defaults to Envoy's key
/// when unset or empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultRuntime {
    /// `delay_percent_runtime`: the delay's share.
    pub delay_percent: String,
    /// `abort_percent_runtime`: the abort's share.
    pub abort_percent: String,
    /// `delay_duration_runtime`: the delay in milliseconds.
    pub delay_duration: String,
    /// `abort_http_status_runtime`: the abort's status.
    pub abort_http_status: String,
    /// `max_active_faults_runtime`: the limit on active faults.
    pub max_active_faults: String,
}

impl Default for FaultRuntime {
    fn default() -> Self {
        FaultRuntime {
            delay_percent: "fault.http.delay.fixed_delay_percent".into(),
            abort_percent: "fault.http.abort.abort_percent".into(),
            delay_duration: "fault.http.delay.fixed_duration_ms".into(),
            abort_http_status: "fault.http.abort.http_status".into(),
            max_active_faults: "fault.http.max_active_faults".into(),
        }
    }
}

/// `fault.v3.FaultDelay` (`common.fault.v3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultDelay {
    /// `fixed_delay`, or `header_delay: {}` (the delay in ms comes from the request's
    /// `x-envoy-fault-delay-request`).
    pub kind: DelayKind,
    /// `percentage`; absent, Envoy's default `FractionalPercent` is 0 %: the fault never fires.
    pub percentage: Fraction,
}

/// Where a fault delay's duration comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DelayKind {
    /// `fixed_delay`.
    Fixed(Duration),
    /// `header_delay: {}`.
    Header,
}

/// `fault.v3.FaultAbort`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultAbort {
    /// `http_status`, `grpc_status` or `header_abort: {}`.
    pub kind: AbortKind,
    /// `percentage`; absent, Envoy's default `FractionalPercent` is 0 %: the fault never fires.
    pub percentage: Fraction,
}

/// What a fault abort answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbortKind {
    /// `http_status` (200..=599).
    Http(u16),
    /// `grpc_status`: a 200 response with `grpc-status` set to it.
    Grpc(u32),
    /// `header_abort: {}`: `x-envoy-fault-abort-request` (HTTP status) or
    /// `x-envoy-fault-abort-grpc-request` (gRPC status) decides.
    Header,
}

/// `envoy.extensions.filters.http.buffer.v3.Buffer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferConfig {
    /// `max_request_bytes` (required): a larger request body is answered 413.
    pub max_request_bytes: u32,
}

/// `envoy.extensions.filters.http.health_check.v3.HealthCheck`.
#[derive(Debug, Clone)]
pub struct HealthCheckConfig {
    /// `pass_through_mode` (required).
    pub pass_through_mode: bool,
    /// `headers`: a request is a health check when all of these match (typically `:path`).
    pub headers: Vec<HeaderMatcher>,
    /// `cluster_min_healthy_percentages`: cluster name → percent (0–100) of its hosts that must
    /// be healthy for the check to pass (non-pass-through mode).
    pub cluster_min_healthy_percentages: Vec<(String, f64)>,
}

/// One `typed_per_filter_config` entry (on a route, a virtual host or the route config), keyed
/// by the filter's `name`.
#[derive(Debug, Clone)]
pub struct PerFilterConfig {
    /// The filter's `name` in `http_filters`.
    pub filter: String,
    /// What the entry says.
    pub config: PerFilter,
}

/// What a `typed_per_filter_config` entry says about its filter.
#[derive(Debug, Clone)]
pub enum PerFilter {
    /// `config.route.v3.FilterConfig` with `disabled: true`, or `BufferPerRoute` with
    /// `disabled: true`: the filter does nothing for these requests.
    Disabled,
    /// `config.route.v3.FilterConfig` with `config: {}` (an `Any` with no type) and not
    /// `disabled`: a filter disabled in `http_filters` runs here with its own config. (Envoy
    /// rejects a `FilterConfig` with neither `disabled: true` nor `config`.)
    Enabled,
    /// `HTTPFault` for the fault filter (bare, or as a `FilterConfig`'s `config`): replaces its
    /// config here, and, as in Envoy, enables it here if `http_filters` disables it.
    Fault(FaultConfig),
    /// `BufferPerRoute.buffer`: replaces the buffer filter's config here (and enables it, as
    /// `Fault` does).
    Buffer(BufferConfig),
}

/// `route_config`: virtual hosts and the header mutations that apply to all of them.
#[derive(Debug, Clone, Default)]
pub struct RouteConfiguration {
    /// `name`.
    pub name: String,
    /// `virtual_hosts[]`, in config order.
    pub virtual_hosts: Vec<VirtualHost>,
    /// `request_headers_to_add/remove`, `response_headers_to_add/remove` at this level.
    pub headers: HeaderMutations,
    /// `typed_per_filter_config`.
    pub per_filter: Vec<PerFilterConfig>,
}

/// `virtual_hosts[]`.
#[derive(Debug, Clone)]
pub struct VirtualHost {
    /// `name` (required).
    pub name: String,
    /// `domains` (required, non-empty), lower-cased.
    pub domains: Vec<DomainMatcher>,
    /// `routes[]`, first match wins.
    pub routes: Vec<Route>,
    /// Header mutations at this level.
    pub headers: HeaderMutations,
    /// `retry_policy` for routes that have none of their own.
    pub retry_policy: Option<RetryPolicy>,
    /// `typed_per_filter_config`.
    pub per_filter: Vec<PerFilterConfig>,
}

/// One entry of `domains`, classified so matching follows Envoy's precedence:
/// exact, then longest suffix wildcard, then longest prefix wildcard, then `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainMatcher {
    /// `example.com` or `example.com:8080` (lower-cased).
    Exact(String),
    /// `*.example.com` / `*-bar.example.com`: stores the part after `*` (lower-cased).
    Suffix(String),
    /// `foo.*`: stores the part before `*` (lower-cased).
    Prefix(String),
    /// `*`.
    Any,
}

/// `routes[]`.
#[derive(Debug, Clone)]
pub struct Route {
    /// `name` (optional in Envoy; empty when absent).
    pub name: String,
    /// `match`.
    pub matcher: RouteMatch,
    /// `route` / `direct_response` / `redirect` (exactly one).
    pub action: RouteAction,
    /// Header mutations at this level.
    pub headers: HeaderMutations,
    /// `typed_per_filter_config`.
    pub per_filter: Vec<PerFilterConfig>,
}

/// `match`.
#[derive(Debug, Clone)]
pub struct RouteMatch {
    /// `prefix` / `path` / `safe_regex` (exactly one).
    pub path: PathMatch,
    /// `case_sensitive` (default true); applies to `prefix` and `path`.
    pub case_sensitive: bool,
    /// `headers[]`: all must match.
    pub headers: Vec<HeaderMatcher>,
    /// `runtime_fraction`: the route also matches only this share of requests.
    pub runtime_fraction: Option<RuntimeFraction>,
}

/// `config.core.v3.RuntimeFractionalPercent`: a share read from the runtime key, or the default
/// when the key is unset (or holds neither a number nor a `FractionalPercent`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeFraction {
    /// `default_value`.
    pub default: Fraction,
    /// `runtime_key` (empty: always the default).
    pub runtime_key: String,
}

/// How the path (without the query string) is matched.
#[derive(Debug, Clone)]
pub enum PathMatch {
    /// `prefix`.
    Prefix(String),
    /// `path`: the whole path.
    Exact(String),
    /// `safe_regex.regex`: must match the whole path.
    Regex(Regex),
    /// `connect_matcher: {}`: CONNECT requests, and only they.
    Connect,
}

/// A compiled regular expression that remembers its source (for `config_dump` and errors).
/// Anchored so that it must match the whole input, as Envoy's `safe_regex` does.
#[derive(Debug, Clone)]
pub struct Regex {
    /// The expression as written.
    pub source: String,
    /// `^(?:source)$`, compiled.
    pub compiled: regex::Regex,
}

/// `headers[]` in a route match (`config.route.v3.HeaderMatcher`).
#[derive(Debug, Clone)]
pub struct HeaderMatcher {
    /// `name`, lower-cased.
    pub name: String,
    /// What the header's value must satisfy.
    pub rule: HeaderMatchRule,
    /// `invert_match`.
    pub invert_match: bool,
}

/// The value rule of a [`HeaderMatcher`].
#[derive(Debug, Clone)]
pub enum HeaderMatchRule {
    /// `present_match: true` (or no rule at all): the header exists.
    /// `present_match: false`: the header is absent.
    Present(bool),
    /// `string_match` (or the older `exact_match`/`prefix_match`/`suffix_match`/
    /// `contains_match`/`safe_regex_match`).
    String(StringMatcher),
}

/// `type.matcher.v3.StringMatcher`.
#[derive(Debug, Clone)]
pub struct StringMatcher {
    /// Which comparison.
    pub kind: StringMatchKind,
    /// `ignore_case` (not allowed with `safe_regex`).
    pub ignore_case: bool,
}

/// The comparison of a [`StringMatcher`].
#[derive(Debug, Clone)]
pub enum StringMatchKind {
    /// `exact`.
    Exact(String),
    /// `prefix`.
    Prefix(String),
    /// `suffix`.
    Suffix(String),
    /// `contains`.
    Contains(String),
    /// `safe_regex`: whole-value match.
    Regex(Regex),
}

/// What a matched route does.
#[derive(Debug, Clone)]
pub enum RouteAction {
    /// `route`: forward upstream.
    Forward(ForwardAction),
    /// `direct_response`: answer locally.
    DirectResponse {
        /// `status` (100..=599).
        status: u16,
        /// `body.inline_string` (or `body.inline_bytes`, base64-decoded); empty when absent.
        body: Vec<u8>,
    },
    /// `redirect`.
    Redirect(RedirectAction),
}

/// `route`: where and how to forward.
#[derive(Debug, Clone)]
pub struct ForwardAction {
    /// `cluster` or `weighted_clusters`.
    pub target: ClusterTarget,
    /// `timeout` (default 15 s; `0s` disables): from the end of the downstream request to the
    /// end of the upstream response.
    pub timeout: Option<Duration>,
    /// `prefix_rewrite`: replaces the matched prefix (or the whole path for `path` matches).
    pub prefix_rewrite: Option<String>,
    /// `host_rewrite_literal`: the Host header sent upstream.
    pub host_rewrite_literal: Option<String>,
    /// `retry_policy` (the virtual host's when the route has none).
    pub retry_policy: Option<RetryPolicy>,
    /// `upgrade_configs`: per upgrade type, overrides the connection manager's.
    pub upgrade_configs: Vec<UpgradeConfig>,
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

/// `retry_policy`: when and how often a failed upstream attempt is tried again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// `retry_on`: the conditions.
    pub retry_on: RetryOn,
    /// `num_retries` (default 1).
    pub num_retries: u32,
    /// `per_try_timeout`: a timeout for each attempt; `None` when unset or 0.
    pub per_try_timeout: Option<Duration>,
    /// `retriable_status_codes` (for `retriable-status-codes`).
    pub retriable_status_codes: Vec<u16>,
    /// `retry_back_off.base_interval` (default 25 ms).
    pub base_interval: Duration,
    /// `retry_back_off.max_interval` (default 10 × base).
    pub max_interval: Duration,
}

/// `retry_on` conditions, as a set: HTTP ones (also what a request's `x-envoy-retry-on` may
/// name) and gRPC ones (`x-envoy-retry-grpc-on`), which Envoy's `retry_on` takes together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetryOn(u16);

impl RetryOn {
    /// `5xx`: any 5xx response, a reset, a connect failure or a per-try timeout.
    pub const FIVE_XX: RetryOn = RetryOn(1);
    /// `gateway-error`: a 502, 503 or 504 response, a reset, a connect failure or a per-try
    /// timeout.
    pub const GATEWAY_ERROR: RetryOn = RetryOn(2);
    /// `reset`: the upstream reset or closed the connection before a response, or did not
    /// answer within the per-try timeout.
    pub const RESET: RetryOn = RetryOn(4);
    /// `connect-failure`: the connection could not be made (refused, timed out).
    pub const CONNECT_FAILURE: RetryOn = RetryOn(8);
    /// `retriable-status-codes`: a response with a status in `retriable_status_codes`.
    pub const RETRIABLE_STATUS_CODES: RetryOn = RetryOn(16);
    /// `retriable-4xx`: a 409 Conflict response.
    pub const RETRIABLE_4XX: RetryOn = RetryOn(32);
    /// gRPC `cancelled`: the response's `grpc-status` is 1.
    pub const GRPC_CANCELLED: RetryOn = RetryOn(64);
    /// gRPC `deadline-exceeded`: `grpc-status` 4.
    pub const GRPC_DEADLINE_EXCEEDED: RetryOn = RetryOn(128);
    /// gRPC `resource-exhausted`: `grpc-status` 8.
    pub const GRPC_RESOURCE_EXHAUSTED: RetryOn = RetryOn(256);
    /// gRPC `internal`: `grpc-status` 13.
    pub const GRPC_INTERNAL: RetryOn = RetryOn(512);
    /// gRPC `unavailable`: `grpc-status` 14.
    pub const GRPC_UNAVAILABLE: RetryOn = RetryOn(1024);
    /// Every gRPC condition: a response's `grpc-status` matters only with one of these.
    pub const GRPC: RetryOn = RetryOn(64 | 128 | 256 | 512 | 1024);

    /// The HTTP conditions weir implements, by Envoy's name (`retry_on`, `x-envoy-retry-on`).
    pub const HTTP_NAMES: &'static [(&'static str, RetryOn)] = &[
        ("5xx", RetryOn::FIVE_XX),
        ("gateway-error", RetryOn::GATEWAY_ERROR),
        ("reset", RetryOn::RESET),
        ("connect-failure", RetryOn::CONNECT_FAILURE),
        ("retriable-status-codes", RetryOn::RETRIABLE_STATUS_CODES),
        ("retriable-4xx", RetryOn::RETRIABLE_4XX),
    ];

    /// The gRPC conditions, by Envoy's name (`retry_on`, `x-envoy-retry-grpc-on`), with the
    /// `grpc-status` each retries.
    pub const GRPC_NAMES: &'static [(&'static str, RetryOn, u8)] = &[
        ("cancelled", RetryOn::GRPC_CANCELLED, 1),
        ("deadline-exceeded", RetryOn::GRPC_DEADLINE_EXCEEDED, 4),
        ("resource-exhausted", RetryOn::GRPC_RESOURCE_EXHAUSTED, 8),
        ("internal", RetryOn::GRPC_INTERNAL, 13),
        ("unavailable", RetryOn::GRPC_UNAVAILABLE, 14),
    ];

    /// This set and `other`.
    pub fn with(self, other: RetryOn) -> RetryOn {
        RetryOn(self.0 | other.0)
    }

    /// Whether any of `other` is in this set.
    pub fn any(self, other: RetryOn) -> bool {
        self.0 & other.0 != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether a gRPC condition in this set covers a response's `grpc-status`.
    pub fn covers_grpc_status(self, status: u8) -> bool {
        RetryOn::GRPC_NAMES
            .iter()
            .any(|&(_, bit, code)| code == status && self.any(bit))
    }

    /// The conditions a comma-separated list names out of `names`, and the names it does not
    /// know (Envoy ignores those in a request header and refuses them in a config).
    pub fn parse(list: &str, grpc: bool) -> (RetryOn, Vec<&str>) {
        let mut on = RetryOn::default();
        let mut unknown = Vec::new();
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let bit = if grpc {
                RetryOn::GRPC_NAMES
                    .iter()
                    .find(|(n, ..)| *n == name)
                    .map(|(_, bit, _)| *bit)
            } else {
                RetryOn::HTTP_NAMES
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, bit)| *bit)
            };
            match bit {
                Some(bit) => on = on.with(bit),
                None => unknown.push(name),
            }
        }
        (on, unknown)
    }
}

/// The cluster(s) a route forwards to, as indexes into [`Bootstrap::clusters`].
#[derive(Debug, Clone)]
pub enum ClusterTarget {
    /// `cluster`.
    Cluster(usize),
    /// `weighted_clusters.clusters[]`: (cluster index, weight); weights sum to > 0.
    Weighted(Vec<(usize, u32)>),
}

/// `redirect` (`config.route.v3.RedirectAction`).
#[derive(Debug, Clone, Default)]
pub struct RedirectAction {
    /// `https_redirect: true` → `Some("https")`, or `scheme_redirect`.
    pub scheme: Option<String>,
    /// `host_redirect`.
    pub host: Option<String>,
    /// `port_redirect`.
    pub port: Option<u16>,
    /// `path_redirect` or `prefix_rewrite` (mutually exclusive).
    pub path: Option<RedirectPath>,
    /// `response_code`: MOVED_PERMANENTLY (301, default), FOUND (302), SEE_OTHER (303),
    /// TEMPORARY_REDIRECT (307), PERMANENT_REDIRECT (308).
    pub status: u16,
    /// `strip_query`.
    pub strip_query: bool,
}

/// How a redirect rewrites the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedirectPath {
    /// `path_redirect`: the whole path (and query, if it has one).
    Path(String),
    /// `prefix_rewrite`: replaces the matched prefix.
    PrefixRewrite(String),
}

/// `request_headers_to_add/remove` and `response_headers_to_add/remove` at one level.
#[derive(Debug, Clone, Default)]
pub struct HeaderMutations {
    /// `request_headers_to_add[]`.
    pub request_add: Vec<HeaderValueOption>,
    /// `request_headers_to_remove[]`, lower-cased.
    pub request_remove: Vec<String>,
    /// `response_headers_to_add[]`.
    pub response_add: Vec<HeaderValueOption>,
    /// `response_headers_to_remove[]`, lower-cased.
    pub response_remove: Vec<String>,
}

/// `config.core.v3.HeaderValueOption`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderValueOption {
    /// `header.key`, lower-cased.
    pub key: String,
    /// `header.value` (a literal: command operators like `%REQ(..)%` are rejected at load).
    pub value: String,
    /// `append_action` (or the deprecated `append` bool).
    pub append_action: AppendAction,
}

/// `HeaderValueOption.HeaderAppendAction`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendAction {
    /// `APPEND_IF_EXISTS_OR_ADD` (default).
    AppendIfExistsOrAdd,
    /// `ADD_IF_ABSENT`.
    AddIfAbsent,
    /// `OVERWRITE_IF_EXISTS_OR_ADD`.
    OverwriteIfExistsOrAdd,
    /// `OVERWRITE_IF_EXISTS`.
    OverwriteIfExists,
}

/// `static_resources.clusters[]`.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// `name` (required, unique).
    pub name: String,
    /// `connect_timeout` (default 5 s).
    pub connect_timeout: Duration,
    /// `lb_policy`: ROUND_ROBIN only for now.
    pub lb_policy: LbPolicy,
    /// `load_assignment.endpoints[].lb_endpoints[]`, flattened in config order.
    pub endpoints: Vec<Endpoint>,
    /// `per_connection_buffer_limit_bytes` (default 1 MiB) for upstream connections.
    pub per_connection_buffer_limit_bytes: u32,
}

/// `lb_policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LbPolicy {
    /// `ROUND_ROBIN` (default), weighted by `load_balancing_weight`.
    RoundRobin,
}

/// One `lb_endpoints[]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `endpoint.address.socket_address` (an IP literal: the cluster is STATIC).
    pub address: SocketAddr,
    /// `load_balancing_weight` (default 1, must be ≥ 1).
    pub weight: u32,
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
