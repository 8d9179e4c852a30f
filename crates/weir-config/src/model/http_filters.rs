//! The HTTP filters' configs (`http_filters[]` and `typed_per_filter_config`), as validated.

use std::time::Duration;

use super::HeaderMatcher;

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
