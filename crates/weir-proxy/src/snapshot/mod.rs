//! The configuration as the workers run it: compiled on the main thread (or by a reload),
//! shared read-only behind an `Arc`. A connection holds the filter chain it was accepted with;
//! a reload that changes its route table gives the chain a newer version, which the connection
//! takes when its next request starts (see `reload/`).

mod clusters;
mod reloaded;
mod version;

pub(crate) use clusters::{ClusterEntry, Clusters};
pub(crate) use reloaded::ListenerFrom;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use weir_config::{
    AccessLog, Bootstrap, ChainSelector, ConnectionFacts, FilterChain, HttpConnectionManager,
    HttpFilter, ListenerFilter, ListenerFiltersTimeout, TcpProxy,
};
use weir_http1::Limits;

use crate::access_log::{LogSet, LogsAdmin};
use crate::http::filter::FilterChainSpec;
use crate::router::route_table::RouteTable;
use version::Version;

/// See the module documentation.
pub(crate) struct Snapshot {
    pub(crate) bootstrap: Bootstrap,
    pub(crate) listeners: Vec<Arc<ListenerRuntime>>,
    /// Distinct HCM stat prefixes: chains sharing one share its stats, as in Envoy.
    pub(crate) http_prefixes: Vec<String>,
    /// Distinct TCP proxy stat prefixes, likewise.
    pub(crate) tcp_prefixes: Vec<String>,
    /// Per prefix: one of its HCMs has a fault filter.
    pub(crate) http_faults: Vec<bool>,
    /// Its clusters under their numbers (see `clusters.rs`).
    pub(crate) clusters: Clusters,
    /// Listener numbers handed out so far (see [`ListenerRuntime::slot`]).
    pub(crate) listener_slots: usize,
}

impl Snapshot {
    /// The TLS contexts in force: the listeners' chains' (as `all_chains` orders them), then
    /// the clusters'. What `/certs` shows and the secret watcher refreshes.
    pub(crate) fn tls_contexts(
        &self,
    ) -> (
        Vec<&weir_config::DownstreamTls>,
        Vec<&weir_config::UpstreamTls>,
    ) {
        let listeners = (self.listeners.iter())
            .flat_map(|l| l.all_chains())
            .filter_map(|c| match c {
                Chain::Http(c) => c.tls_context.as_ref(),
                Chain::Tcp(c) => c.tls_context.as_ref(),
                Chain::Empty(tls) => tls.as_deref(),
            })
            .collect();
        let clusters = self.clusters.in_force();
        (
            listeners,
            clusters.filter_map(|c| c.config.tls.as_ref()).collect(),
        )
    }
}

/// A listener's compiled filter chains.
pub(crate) struct ListenerRuntime {
    pub(crate) name: String,
    /// Its number for good: its place among each worker's listener slots and in the
    /// listener stats. A reload that adds a listener gives it the next one; a removed
    /// listener's number is not reused.
    pub(crate) slot: usize,
    pub(crate) address: SocketAddr,
    pub(crate) buffer_limit: usize,
    /// Its `traffic_direction` is INBOUND (`/drain_listeners?inboundonly` acts on it).
    pub(crate) inbound: bool,
    /// Its `drain_type`: MODIFY_ONLY keeps it out of a failed health check's drain.
    pub(crate) drain_type: weir_config::DrainType,
    /// Its `listener_filters`, in order: a connection waits for what they read before a
    /// chain is chosen.
    pub(crate) listener_filters: Vec<ListenerFilterSpec>,
    /// `listener_filters_timeout` and what happens at it.
    pub(crate) filters_timeout: ListenerFiltersTimeout,
    /// Which of `chains` a connection gets (`filter_chain_match`).
    selector: ChainSelector,
    chains: Vec<Chain>,
    default: Option<Chain>,
    /// This listener across reloads: workers move to the newest at their next accept.
    version: Version<ListenerRuntime>,
}

/// A listener filter as a listener runs it.
#[derive(Debug, Clone)]
pub(crate) enum ListenerFilterSpec {
    TlsInspector(TlsInspectorSpec),
    /// The HTTP inspector, by its `name`.
    HttpInspector(weir_flow::Name),
    ProxyProtocol(ProxyProtocolSpec),
}

impl ListenerFilterSpec {
    /// Its `name`, for the flow trace.
    pub(crate) fn name(&self) -> &weir_flow::Name {
        match self {
            ListenerFilterSpec::TlsInspector(t) => &t.name,
            ListenerFilterSpec::HttpInspector(name) => name,
            ListenerFilterSpec::ProxyProtocol(p) => &p.name,
        }
    }
}

/// `envoy.filters.listener.proxy_protocol` as a listener runs it.
#[derive(Debug, Clone)]
pub(crate) struct ProxyProtocolSpec {
    pub(crate) name: weir_flow::Name,
    /// `allow_requests_without_proxy_protocol`.
    pub(crate) allow_without: bool,
    /// `disallowed_versions` (1, 2).
    pub(crate) disallowed_versions: Vec<u8>,
}

/// `envoy.filters.listener.tls_inspector` as a listener runs it.
#[derive(Debug, Clone)]
pub(crate) struct TlsInspectorSpec {
    /// Its `name`, for the flow trace.
    pub(crate) name: weir_flow::Name,
    /// `max_client_hello_size`.
    pub(crate) max_client_hello_size: usize,
}

/// A filter chain as a connection meets it.
#[derive(Debug, Clone)]
pub(crate) enum Chain {
    /// Its network filter is the HTTP connection manager.
    Http(Arc<ChainRuntime>),
    /// Its network filter is the TCP proxy.
    Tcp(Arc<TcpChain>),
    /// No network filter (`filters: []`), which Envoy accepts: each connection is closed as
    /// soon as it is accepted (`network_extension_config_missing`). Its TLS context, if it
    /// has one, is still listed by `/certs` and rotated, as Envoy builds it all the same.
    Empty(Option<Box<weir_config::DownstreamTls>>),
}

impl ChainRuntime {
    /// Its connections' scheme: `https` when it terminates TLS.
    pub(crate) fn scheme(&self) -> &'static [u8] {
        if self.tls.is_some() {
            b"https"
        } else {
            b"http"
        }
    }
}

impl Chain {
    /// Its connection manager's runtime, if it has one.
    fn http(&self) -> Option<&Arc<ChainRuntime>> {
        match self {
            Chain::Http(c) => Some(c),
            Chain::Tcp(_) | Chain::Empty(_) => None,
        }
    }

    /// Its `transport_socket`'s TLS server config, if it terminates TLS.
    pub(crate) fn tls(&self) -> Option<&Arc<rustls::ServerConfig>> {
        match self {
            Chain::Http(c) => c.tls.as_ref(),
            Chain::Tcp(c) => c.tls.as_ref(),
            Chain::Empty(_) => None,
        }
    }
}

/// A filter chain whose network filter is the TCP proxy.
#[derive(Debug)]
pub(crate) struct TcpChain {
    pub(crate) name: weir_flow::Name,
    pub(crate) proxy: TcpProxy,
    /// Its `tcp.<stat_prefix>.` scope in the worker's stats.
    pub(crate) stats: usize,
    /// Its `transport_socket`'s TLS server config (`None`: the bytes pass as they come).
    pub(crate) tls: Option<Arc<rustls::ServerConfig>>,
    /// Its TLS context as configured: what `/certs` shows and what the secret watcher
    /// refreshes (kept with the chain across reloads: a kept chain serves these, not the
    /// reloaded config's copies).
    pub(crate) tls_context: Option<weir_config::DownstreamTls>,
    /// `transport_socket_connect_timeout`.
    pub(crate) handshake_timeout: Option<Duration>,
    /// Its TCP proxy's access loggers.
    pub(crate) logs: LogSet,
    /// The tokens of the clusters it names (`clusters.rs`).
    _tokens: Vec<Arc<()>>,
    /// The config version that made it.
    since: u64,
    /// This chain across reloads (a TCP chain has no successor: a reload keeps it or
    /// retires it, and its sessions run on until they end).
    version: Version<TcpChain>,
}

impl TcpChain {
    /// The newest config version this chain is part of (`current`: the one in force), as
    /// the access log's `%WEIR_CONFIG_VERSION%` says.
    pub(crate) fn config_version(&self, current: u64) -> u64 {
        self.version.config_version(current, self.since)
    }
}

/// A filter chain: its HTTP connection manager and compiled route table.
#[derive(Debug)]
pub(crate) struct ChainRuntime {
    pub(crate) name: weir_flow::Name,
    pub(crate) hcm: HttpConnectionManager,
    pub(crate) routes: RouteTable,
    /// Its HTTP filters before the router.
    pub(crate) filters: FilterChainSpec,
    pub(crate) limits: Limits,
    /// Its HCM's `http.<stat_prefix>.` scope in the worker's stats.
    pub(crate) stats: usize,
    /// Its HCM's access loggers.
    pub(crate) logs: LogSet,
    /// Its HCM's `server_name`, as the header value it becomes.
    pub(crate) server_name: bytes::Bytes,
    /// The tokens of the clusters its routes name (`clusters.rs`).
    _tokens: Vec<Arc<()>>,
    /// Its router's `suppress_envoy_headers`.
    pub(crate) suppress_envoy_headers: bool,
    /// Its `transport_socket`'s TLS server config (`None`: plaintext).
    pub(crate) tls: Option<Arc<rustls::ServerConfig>>,
    /// Its TLS context as configured: what `/certs` shows and what the secret watcher
    /// refreshes (kept with the chain across reloads: a kept chain serves these, not the
    /// reloaded config's copies).
    pub(crate) tls_context: Option<weir_config::DownstreamTls>,
    /// `transport_socket_connect_timeout`.
    pub(crate) handshake_timeout: Option<Duration>,
    /// The config version that made this version of it.
    since: u64,
    /// This chain across reloads: a connection on an older version moves to the newest when
    /// its next request starts.
    version: Version<ChainRuntime>,
}

impl ChainRuntime {
    /// The newest version of `chain` (`None`: it is the newest, or a reload retired it).
    pub(crate) fn newest(chain: &Arc<ChainRuntime>) -> Option<Arc<ChainRuntime>> {
        chain.version.newest()
    }

    /// A reload replaced this chain by one its connections cannot move to (its filters, TLS
    /// or connection manager changed): each closes after its current request.
    pub(crate) fn retired(&self) -> bool {
        self.version.retired()
    }

    /// The newest config version this chain is part of (`current`: the one in force): what
    /// served a request on it, as its flow and `%WEIR_CONFIG_VERSION%` say.
    pub(crate) fn config_version(&self, current: u64) -> u64 {
        self.version.config_version(current, self.since)
    }
}

impl Chain {
    /// Compiles a filter chain: its route table, filters, stats scope and access logs.
    /// Its clusters are named by the numbers `clusters` gives them.
    fn new(
        chain: &FilterChain,
        prefixes: &mut Prefixes,
        logs: &LogsAdmin,
        (since, clusters): (u64, &Clusters),
    ) -> Result<Chain, String> {
        let tls = chain.tls.as_ref().map(|t| t.server_config.clone());
        if let Some(proxy) = &chain.tcp_proxy {
            let mut proxy = proxy.clone();
            for (c, _) in &mut proxy.clusters {
                *c = clusters.number(*c);
            }
            return Ok(Chain::Tcp(Arc::new(TcpChain {
                name: chain.name.as_str().into(),
                stats: scope_of(&mut prefixes.tcp, &proxy.stat_prefix),
                logs: register(logs, &proxy.access_log)?,
                _tokens: clusters.tokens(proxy.clusters.iter().map(|(c, _)| *c)),
                proxy,
                tls,
                tls_context: chain.tls.clone(),
                handshake_timeout: chain.transport_socket_connect_timeout,
                since,
                version: Version::first(),
            })));
        }
        let Some(mut hcm) = chain.http_connection_manager.clone() else {
            return Ok(Chain::Empty(chain.tls.clone().map(Box::new)));
        };
        (hcm.route_config).renumber_clusters(|c| clusters.number(c));
        let logs = register(logs, &hcm.access_log)?;
        let stats = scope_of(&mut prefixes.http, &hcm.stat_prefix);
        let suppress_envoy_headers = hcm.http_filters.iter().any(|f| {
            matches!(
                f,
                HttpFilter::Router {
                    suppress_envoy_headers: true,
                    ..
                }
            )
        });
        Ok(Chain::Http(Arc::new(ChainRuntime {
            server_name: bytes::Bytes::from(hcm.server_name.clone()),
            suppress_envoy_headers,
            tls,
            tls_context: chain.tls.clone(),
            handshake_timeout: chain.transport_socket_connect_timeout,
            name: chain.name.as_str().into(),
            routes: RouteTable::new(hcm.route_config.clone()),
            _tokens: clusters.tokens(hcm.route_config.clusters()),
            filters: FilterChainSpec::new(&hcm.http_filters),
            limits: Limits {
                max_head_bytes: hcm.max_request_headers_bytes,
                max_headers: hcm.max_headers_count,
            },
            hcm,
            stats,
            logs,
            since,
            version: Version::first(),
        })))
    }
}

/// The stat prefixes of a config's chains, by kind (a reload adds to them, never removes).
#[derive(Default)]
struct Prefixes {
    http: Vec<String>,
    tcp: Vec<String>,
}

/// The index of `prefix` in `prefixes`, added if new (chains sharing one share its stats).
fn scope_of(prefixes: &mut Vec<String>, prefix: &str) -> usize {
    match prefixes.iter().position(|p| p == prefix) {
        Some(k) => k,
        None => {
            prefixes.push(prefix.to_owned());
            prefixes.len() - 1
        }
    }
}

/// `access_log`'s set (files it opens: an error names the file).
fn register(logs: &LogsAdmin, access_log: &[AccessLog]) -> Result<LogSet, String> {
    logs.register(access_log).map_err(|e| e.to_string())
}

impl ListenerRuntime {
    /// Compiles listener `l` around its compiled `chains` and `default`, as `version`.
    fn compile(
        l: &weir_config::Listener,
        chains: Vec<Chain>,
        default: Option<Chain>,
        (version, slot): (Version<ListenerRuntime>, usize),
    ) -> Result<ListenerRuntime, String> {
        let matches: Vec<_> = l
            .filter_chains
            .iter()
            .map(|c| &c.filter_chain_match)
            .collect();
        let selector = ChainSelector::new(&matches).map_err(|(first, second)| {
            // Validation reports overlapping chains; a config that got here has none.
            format!(
                "listener {}: filter_chains[{second}] matches the same connections as filter_chains[{first}]",
                l.name
            )
        })?;
        let listener_filters = (l.listener_filters.iter())
            .map(|f| match f {
                ListenerFilter::TlsInspector {
                    name,
                    max_client_hello_size,
                } => ListenerFilterSpec::TlsInspector(TlsInspectorSpec {
                    name: name.as_str().into(),
                    max_client_hello_size: *max_client_hello_size,
                }),
                ListenerFilter::HttpInspector { name } => {
                    ListenerFilterSpec::HttpInspector(name.as_str().into())
                }
                ListenerFilter::ProxyProtocol {
                    name,
                    allow_without,
                    disallowed_versions,
                } => ListenerFilterSpec::ProxyProtocol(ProxyProtocolSpec {
                    name: name.as_str().into(),
                    allow_without: *allow_without,
                    disallowed_versions: disallowed_versions.clone(),
                }),
            })
            .collect();
        Ok(ListenerRuntime {
            name: l.name.clone(),
            slot,
            address: l.address,
            // At least 1: the watermark checks pause at `queued >= limit` and resume only
            // after a flush, so a limit of 0 (which the config accepts) paused every
            // response for good. 1 means "pause whenever anything is queued".
            buffer_limit: (l.per_connection_buffer_limit_bytes as usize).max(1),
            inbound: l.traffic_direction == weir_config::TrafficDirection::Inbound,
            drain_type: l.drain_type,
            listener_filters,
            filters_timeout: l.listener_filters_timeout,
            selector,
            chains,
            default,
            version,
        })
    }

    /// Its chains, the default one last.
    fn all_chains(&self) -> impl Iterator<Item = &Chain> {
        self.chains.iter().chain(self.default.iter())
    }
}

impl Snapshot {
    /// Compiles the bootstrap; opens the access log files (an error names the file).
    pub(crate) fn new(bootstrap: Bootstrap, logs: &LogsAdmin) -> std::io::Result<Self> {
        let mut prefixes = Prefixes::default();
        let mut listeners = Vec::new();
        let clusters = Clusters::first(&bootstrap.clusters);
        for (slot, l) in bootstrap.listeners.iter().enumerate() {
            let mut compile = |c| Chain::new(c, &mut prefixes, logs, (1, &clusters));
            let chains = (l.filter_chains.iter())
                .map(&mut compile)
                .collect::<Result<_, _>>()
                .map_err(std::io::Error::other)?;
            let default = (l.default_filter_chain.as_ref())
                .map(compile)
                .transpose()
                .map_err(std::io::Error::other)?;
            let runtime = ListenerRuntime::compile(l, chains, default, (Version::first(), slot))
                .map_err(std::io::Error::other)?;
            listeners.push(Arc::new(runtime));
        }
        let http_faults = faults(&listeners, prefixes.http.len(), &[]);
        let listener_slots = listeners.len();
        Ok(Snapshot {
            clusters,
            bootstrap,
            listeners,
            http_prefixes: prefixes.http,
            tcp_prefixes: prefixes.tcp,
            http_faults,
            listener_slots,
        })
    }
}

/// Per HCM stat prefix (of `count`): one of its chains has a fault filter, or had one
/// (`before`: a reload keeps the fault stats it showed).
fn faults(listeners: &[Arc<ListenerRuntime>], count: usize, before: &[bool]) -> Vec<bool> {
    let mut faults = vec![false; count];
    for (f, b) in faults.iter_mut().zip(before) {
        *f = *b;
    }
    for chain in listeners
        .iter()
        .flat_map(|l| l.all_chains())
        .filter_map(Chain::http)
    {
        faults[chain.stats] |= chain.filters.has_fault();
    }
    faults
}

impl ListenerRuntime {
    /// The newest version of `listener` (`None`: it is the newest, or it was removed).
    pub(crate) fn newest(listener: &Arc<ListenerRuntime>) -> Option<Arc<ListenerRuntime>> {
        listener.version.newest()
    }

    /// What is left of a removed listener once its connections are gone: its name, number
    /// and address, no chains (so its route tables, filters and TLS contexts are freed).
    pub(crate) fn emptied(&self) -> Arc<ListenerRuntime> {
        Arc::new(ListenerRuntime {
            name: self.name.clone(),
            slot: self.slot,
            address: self.address,
            buffer_limit: self.buffer_limit,
            inbound: self.inbound,
            drain_type: self.drain_type,
            listener_filters: Vec::new(),
            filters_timeout: self.filters_timeout,
            selector: ChainSelector::new(&[]).unwrap_or_else(|_| self.selector.clone()),
            chains: Vec::new(),
            default: None,
            version: Version::first(),
        })
    }

    /// A reload removed this listener: its sockets close and its connections drain.
    pub(crate) fn retired(&self) -> bool {
        self.version.retired()
    }

    /// Its TLS inspector, if it has one.
    pub(crate) fn tls_inspector(&self) -> Option<&TlsInspectorSpec> {
        self.listener_filters.iter().find_map(|f| match f {
            ListenerFilterSpec::TlsInspector(t) => Some(t),
            ListenerFilterSpec::HttpInspector(_) | ListenerFilterSpec::ProxyProtocol(_) => None,
        })
    }

    /// It has an HTTP inspector.
    pub(crate) fn inspects_http(&self) -> bool {
        (self.listener_filters.iter()).any(|f| matches!(f, ListenerFilterSpec::HttpInspector(_)))
    }

    /// It has a PROXY protocol filter.
    pub(crate) fn reads_proxy_protocol(&self) -> bool {
        (self.listener_filters.iter()).any(|f| matches!(f, ListenerFilterSpec::ProxyProtocol(_)))
    }

    /// The most bytes its listener filters may need to decide: the largest ClientHello the
    /// TLS inspector reads, the longest request line the HTTP inspector waits for, a version
    /// 2 PROXY protocol header's longest form.
    pub(crate) fn inspect_limit(&self) -> usize {
        (self.listener_filters.iter())
            .map(|f| match f {
                ListenerFilterSpec::TlsInspector(t) => t.max_client_hello_size,
                ListenerFilterSpec::HttpInspector(_) => crate::network::http_inspector::MAX_INSPECT,
                ListenerFilterSpec::ProxyProtocol(_) => 16 + usize::from(u16::MAX),
            })
            .max()
            .unwrap_or(0)
    }

    /// One of its chains terminates TLS.
    pub(crate) fn terminates_tls(&self) -> bool {
        self.all_chains().any(|c| c.tls().is_some())
    }

    /// The chain for a connection, Envoy's way (`filter_chain_match`, most specific first);
    /// the default chain when none matches.
    pub(crate) fn select(&self, facts: &ConnectionFacts<'_>) -> Option<Chain> {
        match self.selector.select(facts) {
            Some(i) => self.chains.get(i),
            None => self.default.as_ref(),
        }
        .cloned()
    }

    /// Choosing a chain needs the connection's local address (a chain matches on
    /// `prefix_ranges`): one syscall per connection that is otherwise skipped.
    pub(crate) fn needs_local_address(&self) -> bool {
        self.selector.uses_destination_ip()
    }
}
