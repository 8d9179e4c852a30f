//! What picks a listener's filter chain for a connection: the listener filters that learn about
//! it first, and each chain's `filter_chain_match`.

use std::time::Duration;

use super::CidrRange;

/// `listener_filters[]`: run on each accepted connection before its filter chain is chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenerFilter {
    /// `envoy.filters.listener.tls_inspector`: reads the TLS ClientHello, if the connection
    /// starts with one, for its server name (SNI) and ALPN protocols, and sets the transport
    /// protocol to `tls`. Nothing is consumed: the bytes go on to the chosen chain.
    TlsInspector {
        /// The filter's `name`, for traces.
        name: String,
        /// `max_client_hello_size` (Envoy default 16 KiB): a longer ClientHello is not TLS
        /// to this filter, and the connection is closed (as Envoy does).
        max_client_hello_size: usize,
    },
    /// `envoy.filters.listener.http_inspector`: tells HTTP/1.0, HTTP/1.1 and h2c (by its
    /// preface) from the first bytes of a plaintext connection, for chains that match on
    /// `application_protocols`. Nothing is consumed.
    HttpInspector {
        /// The filter's `name`, for traces.
        name: String,
    },
    /// `envoy.filters.listener.proxy_protocol`: reads the PROXY protocol header (v1 or v2) a
    /// load balancer in front puts first, takes the client and destination addresses it
    /// carries as the connection's, and removes it from the stream.
    ProxyProtocol {
        /// The filter's `name`, for traces.
        name: String,
        /// `allow_requests_without_proxy_protocol`: a connection without the header goes on
        /// with its own addresses (else it is reset).
        allow_without: bool,
        /// `disallowed_versions`: a header of one of these versions (1, 2) resets the
        /// connection.
        disallowed_versions: Vec<u8>,
    },
}

/// How long listener filters may wait for the bytes they need (`listener_filters_timeout`,
/// `continue_on_listener_filters_timeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerFiltersTimeout {
    /// `listener_filters_timeout` (Envoy default 15 s); `None` for `0s` (no limit).
    pub timeout: Option<Duration>,
    /// `continue_on_listener_filters_timeout` (default false): at the timeout the chain is
    /// chosen with what is known, instead of closing the connection.
    pub continue_on_timeout: bool,
}

impl Default for ListenerFiltersTimeout {
    fn default() -> Self {
        ListenerFiltersTimeout {
            timeout: Some(Duration::from_secs(15)),
            continue_on_timeout: false,
        }
    }
}

/// `filter_chain_match` (`config.listener.v3.FilterChainMatch`). An empty list or `None`
/// matches anything. A connection gets the chain whose match is most specific, criterion by
/// criterion in this order (Envoy's): destination port, destination IP, server name, transport
/// protocol, application protocols, direct source IP, source type, source IP, source port.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterChainMatch {
    /// `destination_port`.
    pub destination_port: Option<u16>,
    /// `prefix_ranges`: the connection's local (destination) address.
    pub prefix_ranges: Vec<CidrRange>,
    /// `server_names`, in lower case: exact names, or `*.` wildcards (`*.example.com` matches
    /// `www.example.com` and `a.b.example.com`, not `example.com`).
    pub server_names: Vec<String>,
    /// `transport_protocol`: `tls` (set by the TLS inspector) or `raw_buffer`.
    pub transport_protocol: Option<String>,
    /// `application_protocols` (ALPN).
    pub application_protocols: Vec<String>,
    /// `direct_source_prefix_ranges`: the peer of the TCP connection itself.
    pub direct_source_prefix_ranges: Vec<CidrRange>,
    /// `source_type`.
    pub source_type: SourceType,
    /// `source_prefix_ranges`: the downstream's address.
    pub source_prefix_ranges: Vec<CidrRange>,
    /// `source_ports`.
    pub source_ports: Vec<u16>,
}

/// `filter_chain_match.source_type`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum SourceType {
    /// `ANY` (the default).
    #[default]
    Any,
    /// `SAME_IP_OR_LOOPBACK`: the peer is a loopback address or the connection's own address.
    SameIpOrLoopback,
    /// `EXTERNAL`: any other peer.
    External,
}
