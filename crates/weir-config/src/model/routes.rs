//! The route configuration (`route_config`): virtual hosts, routes, their matches and actions,
//! retry policies and header mutations, as validated.

use std::time::Duration;

use super::{Fraction, PerFilterConfig, UpgradeConfig};

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

impl StringMatcher {
    /// Whether `value` matches (`safe_regex` must match all of it).
    pub fn matches(&self, value: &str) -> bool {
        let fold = |s: &str| {
            if self.ignore_case {
                s.to_ascii_lowercase()
            } else {
                s.to_owned()
            }
        };
        match &self.kind {
            StringMatchKind::Exact(s) => fold(value) == fold(s),
            StringMatchKind::Prefix(s) => fold(value).starts_with(&fold(s)),
            StringMatchKind::Suffix(s) => fold(value).ends_with(&fold(s)),
            StringMatchKind::Contains(s) => fold(value).contains(&fold(s)),
            StringMatchKind::Regex(re) => re.compiled.is_match(value),
        }
    }
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
    /// `hash_policy`: what a hashing load balancer hashes, in order.
    pub hash_policy: Vec<HashPolicy>,
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
    /// `retry_host_predicate` holds `envoy.retry_host_predicates.previous_hosts`: a retry
    /// avoids the hosts tried before.
    pub avoid_previous_hosts: bool,
    /// `host_selection_retry_max_attempts` (default 1): how many more picks a retry may make
    /// to find a host the predicate allows.
    pub host_selection_max_attempts: u32,
    /// `retry_priority` `envoy.retry_priorities.previous_priorities`: its `update_frequency`
    /// (a retry leaves out the priorities of the attempts before it, recounted every this
    /// many attempts).
    pub previous_priorities: Option<u32>,
}

impl RetryPolicy {
    /// Envoy's policy when nothing is configured: one retry, a 25 ms base back-off (250 ms at
    /// most), no condition, no per-try timeout. A config's `retry_policy` starts from it, and so
    /// does the one an internal request's headers give a route without.
    pub fn envoy_default() -> RetryPolicy {
        const BASE_INTERVAL: Duration = Duration::from_millis(25);
        RetryPolicy {
            retry_on: RetryOn::default(),
            num_retries: 1,
            per_try_timeout: None,
            retriable_status_codes: Vec::new(),
            base_interval: BASE_INTERVAL,
            max_interval: BASE_INTERVAL * 10,
            avoid_previous_hosts: false,
            host_selection_max_attempts: 1,
            previous_priorities: None,
        }
    }
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

impl ClusterTarget {
    /// The clusters it names, each as many times as it is listed.
    pub fn clusters(&self) -> impl Iterator<Item = usize> + '_ {
        let (one, many) = match self {
            ClusterTarget::Cluster(c) => (Some(*c), &[][..]),
            ClusterTarget::Weighted(w) => (None, &w[..]),
        };
        one.into_iter().chain(many.iter().map(|(c, _)| *c))
    }

    fn renumber(&mut self, number: &impl Fn(usize) -> usize) {
        match self {
            ClusterTarget::Cluster(c) => *c = number(*c),
            ClusterTarget::Weighted(w) => w.iter_mut().for_each(|(c, _)| *c = number(*c)),
        }
    }
}

impl RouteConfiguration {
    /// The clusters its routes forward to.
    pub fn clusters(&self) -> impl Iterator<Item = usize> + '_ {
        (self.virtual_hosts.iter())
            .flat_map(|v| &v.routes)
            .filter_map(|r| match &r.action {
                RouteAction::Forward(f) => Some(f.target.clusters()),
                RouteAction::DirectResponse { .. } | RouteAction::Redirect(_) => None,
            })
            .flatten()
    }

    /// Its routes' clusters as `number` maps them: a running proxy numbers clusters for
    /// good, where the config numbers them by their place in [`Bootstrap::clusters`].
    pub fn renumber_clusters(&mut self, number: impl Fn(usize) -> usize) {
        for route in self.virtual_hosts.iter_mut().flat_map(|v| &mut v.routes) {
            if let RouteAction::Forward(f) = &mut route.action {
                f.target.renumber(&number);
            }
        }
    }
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

/// One `hash_policy[]` entry of a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashPolicy {
    /// What it hashes.
    pub kind: HashKind,
    /// `terminal`: when it gives a hash, the policies after it are not looked at.
    pub terminal: bool,
}

/// What a hash policy hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKind {
    /// `header.header_name` (lower-cased): its values, sorted, when present.
    Header {
        /// The header's name.
        name: String,
    },
    /// `cookie`: the cookie's value; with `ttl`, a missing cookie is made up and set on the
    /// response (`path` its `Path`).
    Cookie {
        /// `name`.
        name: String,
        /// `ttl`: generate the cookie when absent, with this `Max-Age` (0: a session cookie).
        ttl: Option<Duration>,
        /// `path`.
        path: String,
    },
    /// `connection_properties.source_ip`: the client's IP (nothing when `enabled` is false).
    SourceIp {
        /// `source_ip`.
        enabled: bool,
    },
    /// `query_parameter.name`: the first value of that query parameter.
    QueryParameter {
        /// The parameter's name.
        name: String,
    },
}
