//! Choosing a listener's filter chain for a connection from the chains' `filter_chain_match`,
//! the way Envoy's `FilterChainManagerImpl` does.
//!
//! Envoy files each chain in a tree with one level per criterion, in this order: destination
//! port, destination IP, server name, transport protocol, application protocols, direct source
//! IP, source type, source IP, source port. A chain sits under every value it lists (and under
//! "any" for a criterion it leaves open), so a tree node holds exactly the chains that list every
//! value on its path. A connection walks down taking, at each level, the most specific value that
//! matches it among the node's children, and never comes back up: if nothing deeper matches, no
//! chain does (the listener's `default_filter_chain` then takes it, or it is closed), even when
//! a less specific sibling would have matched all the way down.
//!
//! weir keeps no tree: it keeps each chain's values per level ([`Key`]s) and walks the same path
//! by narrowing the set of live chains one level at a time: the most specific key any live chain
//! has that matches the connection, then only the chains that list it. That is the same choice,
//! in a structure as small as the config (chains are few); a choice costs one small `Vec` (the
//! live chains) and a pass over their values per level.
//!
//! "Most specific" at each level, as in Envoy:
//! - ports, transport protocol: the exact value, else "any";
//! - IP ranges: the longest prefix that contains the address, else "any";
//! - server name: the exact name, else the `*.` wildcard with the longest suffix, else "any";
//! - application protocols: the first protocol the client offers that some chain lists, else
//!   "any";
//! - source type: `SAME_IP_OR_LOOPBACK` for a peer at `127.0.0.1` or `::1` (exactly: Envoy
//!   counts `127.0.0.2` as external) or at the connection's own IP, `EXTERNAL` for any other,
//!   else `ANY`.
//!
//! IPv4-mapped IPv6 addresses count as their IPv4 address, as Envoy reports them on a dual-stack
//! socket. Two chains overlap, and Envoy rejects the listener, when some connection could reach
//! both at the bottom of the tree: when at every level the values they list meet.
//!
//! Checked against Envoy 1.40 with connections between 127.0.0.x addresses (and a dual-stack
//! `::` listener): a connection to 127.0.0.1 from 127.0.0.1 under a chain for `prefix_ranges`
//! 127.0.0.1/32 and `source_prefix_ranges` 127.0.0.2/32 gets the default chain, not the
//! catch-all chain beside it, as does one under an exact `destination_port` whose source does
//! not match, and one whose SNI picks an exact `server_names` chain whose ALPN does not match;
//! `SAME_IP_OR_LOOPBACK` takes 127.0.0.1→127.0.0.1, 127.0.0.2→127.0.0.2 and ::1→::1 but not
//! 127.0.0.2→127.0.0.1; an SNI `a.b.example.com` picks `*.b.example.com` over `*.example.com`,
//! `WWW.B.example.com` picks `www.b.example.com`, and `example.com` matches neither wildcard;
//! an `h2,http/1.1` offer picks the `h2` chain and `http/1.1,h2` the `http/1.1` one; a
//! ClientHello without the TLS inspector is `raw_buffer` with no SNI; source ports match
//! exactly; on the dual-stack listener 127.0.0.2→127.0.0.1 matches IPv4 ranges. Overlaps, with
//! `envoy --mode validate`: `10.0.0.1/8` and `10.0.0.0/8`, `a.com` and `A.com`, `*.a.com` and
//! `.a.com`, `""` and no `server_names`; not an explicit `0.0.0.0/0` and no `prefix_ranges`.

use std::net::{IpAddr, SocketAddr};

use crate::model::{CidrRange, FilterChainMatch, SourceType};

/// What is known about a connection when its filter chain is chosen.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionFacts<'a> {
    /// The destination address; its IP may be unspecified when
    /// [`ChainSelector::uses_destination_ip`] is false.
    pub local: SocketAddr,
    /// The peer of the TCP connection itself.
    pub direct_peer: SocketAddr,
    /// The downstream: the same as `direct_peer` until PROXY protocol exists.
    pub peer: SocketAddr,
    /// The SNI as the client sent it (compared case-insensitively).
    pub server_name: Option<&'a str>,
    /// `tls` when the TLS inspector saw a ClientHello, else `raw_buffer` (as Envoy sets it).
    pub transport_protocol: &'a str,
    /// The ALPN protocols the client offers, in its order.
    pub application_protocols: &'a [String],
}

/// A listener's filter chains as the keys they match, ready to choose one per connection.
#[derive(Debug, Clone)]
pub struct ChainSelector {
    /// Per chain (in `filter_chains` order), per [`Level`], the keys it is filed under.
    chains: Vec<[Vec<Key>; LEVELS]>,
}

/// The number of criteria, [`Level::ALL`].
const LEVELS: usize = 9;

/// One criterion of `filter_chain_match`, in the order Envoy applies them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    DestinationPort,
    DestinationIp,
    ServerName,
    TransportProtocol,
    ApplicationProtocol,
    DirectSourceIp,
    SourceType,
    SourceIp,
    SourcePort,
}

impl Level {
    /// Every level, in matching order; a level's index is its position here.
    const ALL: [Level; LEVELS] = [
        Level::DestinationPort,
        Level::DestinationIp,
        Level::ServerName,
        Level::TransportProtocol,
        Level::ApplicationProtocol,
        Level::DirectSourceIp,
        Level::SourceType,
        Level::SourceIp,
        Level::SourcePort,
    ];

    /// How specifically `key` matches the connection at this level (higher is more specific,
    /// "any" is 0), or `None` when it does not match.
    fn rank(self, key: &Key, facts: &Facts<'_>) -> Option<u32> {
        let exact = |hit: bool| hit.then_some(1);
        match (self, key) {
            (_, Key::Any) => Some(0),
            (Level::DestinationPort, Key::Port(p)) => exact(*p == facts.local.port()),
            (Level::DestinationIp, Key::Prefix(r)) => prefix_rank(r, facts.local.ip()),
            (Level::ServerName, Key::Name(name)) => server_name_rank(name, facts.server_name),
            (Level::TransportProtocol, Key::Name(p)) => exact(p == facts.transport_protocol),
            (Level::ApplicationProtocol, Key::Name(p)) => {
                // The earlier the client offers it, the higher.
                let offered = facts.application_protocols;
                let at = offered.iter().position(|o| o == p)?;
                Some(u32::try_from(offered.len() - at).unwrap_or(u32::MAX))
            }
            (Level::DirectSourceIp, Key::Prefix(r)) => prefix_rank(r, facts.direct_peer.ip()),
            (Level::SourceType, Key::Source(t)) => exact(*t == facts.source_type),
            (Level::SourceIp, Key::Prefix(r)) => prefix_rank(r, facts.peer.ip()),
            (Level::SourcePort, Key::Port(p)) => exact(*p == facts.peer.port()),
            // Keys are built per level, so no other pairing exists.
            _ => None,
        }
    }
}

/// How specifically a range matches an address: the longer the prefix, the higher (an
/// explicit `0.0.0.0/0` above "any").
fn prefix_rank(range: &CidrRange, ip: IpAddr) -> Option<u32> {
    range
        .contains(ip)
        .then_some(1 + u32::from(range.prefix_len))
}

/// How specifically a `server_names` key matches the SNI: exact beats any wildcard, a longer
/// wildcard suffix beats a shorter one. A wildcard key is stored as its suffix (`.example.com`
/// for `*.example.com`), as Envoy files it: it matches a name that ends with it and has at least
/// one character before it.
fn server_name_rank(key: &str, sni: Option<&str>) -> Option<u32> {
    let sni = sni?.as_bytes();
    if sni.eq_ignore_ascii_case(key.as_bytes()) {
        return Some(u32::MAX);
    }
    let is_suffix = key.starts_with('.')
        && key.len() >= 2
        && sni.len() > key.len()
        && sni[sni.len() - key.len()..].eq_ignore_ascii_case(key.as_bytes());
    is_suffix.then(|| u32::try_from(key.len()).unwrap_or(u32::MAX - 1))
}

/// A value a chain is filed under at one level.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    /// The criterion is left open (an empty list, an unset field, or, as in Envoy, an empty
    /// string: Envoy files a chain with `server_names: [""]` under "any").
    Any,
    /// A destination or source port.
    Port(u16),
    /// An address range, its address masked to the prefix so equal ranges compare equal.
    Prefix(CidrRange),
    /// A server name (lower case; a wildcard as its `.suffix`), transport or application
    /// protocol.
    Name(String),
    /// `SAME_IP_OR_LOOPBACK` or `EXTERNAL`.
    Source(SourceType),
}

/// The connection's facts with addresses made canonical and the source type worked out.
struct Facts<'a> {
    local: SocketAddr,
    direct_peer: SocketAddr,
    peer: SocketAddr,
    server_name: Option<&'a str>,
    transport_protocol: &'a str,
    application_protocols: &'a [String],
    /// `SameIpOrLoopback` when the peer is `127.0.0.1` or `::1`, or has the local IP (Envoy's
    /// `isSameIpOrLoopback`), else `External`.
    source_type: SourceType,
}

impl<'a> Facts<'a> {
    fn new(f: &ConnectionFacts<'a>) -> Self {
        let canonical = |a: SocketAddr| SocketAddr::new(a.ip().to_canonical(), a.port());
        let (local, peer) = (canonical(f.local), canonical(f.peer));
        Facts {
            local,
            direct_peer: canonical(f.direct_peer),
            peer,
            server_name: f.server_name,
            transport_protocol: f.transport_protocol,
            application_protocols: f.application_protocols,
            source_type: if peer.ip() == IpAddr::from([127, 0, 0, 1])
                || peer.ip() == IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
                || peer.ip() == local.ip()
            {
                SourceType::SameIpOrLoopback
            } else {
                SourceType::External
            },
        }
    }
}

impl ChainSelector {
    /// Builds from the chains' matches (index = position in `filter_chains`). Two chains that
    /// match the same connections (at every level the values they list meet, as Envoy checks)
    /// → `Err((first_index, second_index))`; a chain that lists a value twice overlaps itself
    /// (Envoy rejects that too) → `Err((index, index))`.
    pub fn new(matches: &[&FilterChainMatch]) -> Result<ChainSelector, (usize, usize)> {
        let chains: Vec<[Vec<Key>; LEVELS]> = matches.iter().map(|m| keys(m)).collect();
        for (j, later) in chains.iter().enumerate() {
            if later.iter().any(|keys| has_repeat(keys)) {
                return Err((j, j));
            }
            if let Some(i) = chains[..j]
                .iter()
                .position(|earlier| overlap(earlier, later))
            {
                return Err((i, j));
            }
        }
        Ok(ChainSelector { chains })
    }

    /// The chain for a connection, Envoy's way; `None` → `default_filter_chain`, or close.
    pub fn select(&self, facts: &ConnectionFacts<'_>) -> Option<usize> {
        let facts = Facts::new(facts);
        let mut live: Vec<usize> = (0..self.chains.len()).collect();
        for (i, level) in Level::ALL.into_iter().enumerate() {
            let (_, best) = live
                .iter()
                .flat_map(|&c| &self.chains[c][i])
                .filter_map(|key| Some((level.rank(key, &facts)?, key)))
                .max_by_key(|(rank, _)| *rank)?;
            live.retain(|&c| self.chains[c][i].contains(best));
        }
        live.first().copied()
    }

    /// Whether the choice needs the socket's local IP, which the caller otherwise need not look
    /// up: some chain matches on `prefix_ranges`, or on a `source_type` (which compares the
    /// peer with the local IP).
    pub fn uses_destination_ip(&self) -> bool {
        self.uses(&[Level::DestinationIp, Level::SourceType])
    }

    /// Whether some chain matches on `server_names`, `transport_protocol` or
    /// `application_protocols`, which only a listener filter (the TLS inspector) learns.
    pub fn uses_tls_facts(&self) -> bool {
        self.uses(&[
            Level::ServerName,
            Level::TransportProtocol,
            Level::ApplicationProtocol,
        ])
    }

    /// Whether some chain lists a value at any of `levels`.
    fn uses(&self, levels: &[Level]) -> bool {
        self.chains.iter().any(|chain| {
            levels
                .iter()
                .any(|l| chain[*l as usize].iter().any(|k| *k != Key::Any))
        })
    }
}

/// The keys a match is filed under, per level.
fn keys(m: &FilterChainMatch) -> [Vec<Key>; LEVELS] {
    let open = |keys: Vec<Key>| {
        if keys.is_empty() {
            vec![Key::Any]
        } else {
            keys
        }
    };
    let name = |s: &str| {
        if s.is_empty() {
            Key::Any
        } else {
            Key::Name(s.to_owned())
        }
    };
    let prefixes =
        |ranges: &[CidrRange]| open(ranges.iter().map(|r| Key::Prefix(masked(*r))).collect());
    let ports = |ports: &mut dyn Iterator<Item = u16>| open(ports.map(Key::Port).collect());
    [
        ports(&mut m.destination_port.into_iter()),
        prefixes(&m.prefix_ranges),
        open(
            m.server_names
                .iter()
                .map(|s| name(&server_name_key(s)))
                .collect(),
        ),
        open(m.transport_protocol.iter().map(|p| name(p)).collect()),
        open(m.application_protocols.iter().map(|p| name(p)).collect()),
        prefixes(&m.direct_source_prefix_ranges),
        vec![match m.source_type {
            SourceType::Any => Key::Any,
            t => Key::Source(t),
        }],
        prefixes(&m.source_prefix_ranges),
        ports(&mut m.source_ports.iter().copied()),
    ]
}

/// A `server_names` entry as Envoy files it: lower case, `*.example.com` as `.example.com`.
fn server_name_key(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    match lower.strip_prefix("*.") {
        Some(suffix) => format!(".{suffix}"),
        None => lower,
    }
}

/// The range with its address cut to the prefix (`10.0.0.1/8` → `10.0.0.0/8`).
fn masked(range: CidrRange) -> CidrRange {
    let address = match range.address {
        IpAddr::V4(a) => {
            let mask = u32::MAX
                .checked_shl(32u32.saturating_sub(u32::from(range.prefix_len)))
                .unwrap_or(0);
            IpAddr::V4((u32::from(a) & mask).into())
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX
                .checked_shl(128u32.saturating_sub(u32::from(range.prefix_len)))
                .unwrap_or(0);
            IpAddr::V6((u128::from(a) & mask).into())
        }
    };
    CidrRange { address, ..range }
}

/// Whether a list of keys holds one twice.
fn has_repeat(keys: &[Key]) -> bool {
    keys.iter().enumerate().any(|(i, k)| keys[..i].contains(k))
}

/// Whether some connection could reach both chains at the bottom of the tree.
fn overlap(a: &[Vec<Key>; LEVELS], b: &[Vec<Key>; LEVELS]) -> bool {
    a.iter()
        .zip(b)
        .all(|(a, b)| a.iter().any(|k| b.contains(k)))
}

#[cfg(test)]
mod tests;
