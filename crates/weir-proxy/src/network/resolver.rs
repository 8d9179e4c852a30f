//! Name resolution for DNS clusters (Envoy's `STRICT_DNS` and `LOGICAL_DNS`).
//!
//! Resolving blocks, so no worker ever does it: the resolver thread owns a [`Resolver`] and calls
//! [`Resolver::resolve`]. hickory-resolver speaks DNS, driven by a current-thread tokio runtime
//! that the `Resolver` owns and the calling thread blocks on. hickory's response cache is off
//! (size 0): every resolve asks a name server, so a changed address or TTL is seen at once.
//! How the address families combine follows Envoy's c-ares resolver (see [`LookupFamily`]).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::{MAX_TTL, TokioResolver, system_conf};
use tokio::runtime::Runtime;

/// c-ares's defaults, which Envoy keeps when `query_timeout_seconds` / `query_tries` are unset.
const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_QUERY_TRIES: u32 = 4;

/// Envoy's `dns_lookup_family`. As in Envoy's c-ares resolver, a family "gives no address"
/// when its lookup fails as well as when it finds no record, and a resolution with no address
/// fails if any of its lookups failed (it is `NotFound` only when every lookup found nothing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LookupFamily {
    /// AAAA; A only if AAAA gave no address (Envoy's default: a V6_PREFERRED in all but name).
    Auto,
    /// A only.
    V4Only,
    /// AAAA only.
    V6Only,
    /// A; AAAA only if A gave no address.
    V4Preferred,
    /// A and AAAA, asked at once; the addresses of either that answered, IPv4 first. Envoy lists
    /// them as its two lookups complete (the A one is sent first); a fixed order keeps a host
    /// set from reordering on timing alone.
    All,
}

/// Where and how to ask (Envoy's `dns_resolution_config` / c-ares `typed_dns_resolver_config`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ResolverOptions {
    /// Name servers to ask; empty: the system's (/etc/resolv.conf). Either way /etc/hosts is
    /// read first (once, at [`Resolver::new`]) and /etc/resolv.conf's search list and `ndots`
    /// apply, as with c-ares.
    pub(crate) servers: Vec<SocketAddr>,
    /// `use_tcp_for_dns_lookups`.
    pub(crate) use_tcp: bool,
    /// `no_default_search_domain`.
    pub(crate) no_default_search_domain: bool,
    /// `query_timeout_seconds` (None: 5 s as c-ares), `query_tries` (None: 4 as c-ares; 0 is
    /// taken as 1). A try asks one server and waits at most the timeout.
    pub(crate) query_timeout: Option<Duration>,
    pub(crate) query_tries: Option<u32>,
}

/// A name's addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Resolved {
    /// In answer order (with `All`, IPv4 then IPv6).
    pub(crate) addresses: Vec<IpAddr>,
    /// The smallest TTL among the records used (hickory caps TTLs at one day). Addresses that
    /// are not from DNS (IP literals, /etc/hosts, `localhost`) cannot change while the
    /// `Resolver` lives, so they carry that cap: one day.
    pub(crate) ttl: Duration,
}

/// Why a name has no address.
#[derive(Debug)]
pub(crate) enum ResolveError {
    /// NXDOMAIN, or no record of the family.
    NotFound,
    /// SERVFAIL, timeout, refused, I/O: a readable reason per failed lookup.
    Failed(String),
}

/// A blocking DNS resolver; called only from the resolver thread.
pub(crate) struct Resolver {
    /// Declared before the runtime, so it (and its tasks) drop while the runtime still exists.
    resolver: TokioResolver,
    runtime: Runtime,
}

impl Resolver {
    /// Reads /etc/resolv.conf and /etc/hosts; sends nothing yet. Fails when no `servers` are
    /// given and /etc/resolv.conf names none.
    pub(crate) fn new(options: &ResolverOptions) -> io::Result<Resolver> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        let (config, opts) = configure(options)?;
        let resolver = {
            // hickory spawns its connections' tasks onto the runtime it is built in.
            let _runtime = runtime.enter();
            TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
                .with_options(opts)
                .build()
                .map_err(io::Error::other)?
        };
        Ok(Resolver { resolver, runtime })
    }

    /// Blocking; called only from the resolver thread. An IP literal resolves to itself when
    /// `family` admits it (no DNS asked), else `NotFound`.
    pub(crate) fn resolve(
        &mut self,
        name: &str,
        family: LookupFamily,
    ) -> Result<Resolved, ResolveError> {
        if let Ok(address) = name.parse::<IpAddr>() {
            return literal(address, family);
        }
        let answers = match family {
            LookupFamily::V4Only => vec![self.ask(name, RecordType::A)],
            LookupFamily::V6Only => vec![self.ask(name, RecordType::AAAA)],
            LookupFamily::Auto => self.preferring(name, RecordType::AAAA, RecordType::A),
            LookupFamily::V4Preferred => self.preferring(name, RecordType::A, RecordType::AAAA),
            LookupFamily::All => {
                let (v4, v6) = self.runtime.block_on(async {
                    tokio::join!(
                        lookup(&self.resolver, name, RecordType::A),
                        lookup(&self.resolver, name, RecordType::AAAA)
                    )
                });
                vec![v4, v6]
            }
        };
        combine(answers)
    }

    fn ask(&self, name: &str, record_type: RecordType) -> Answer {
        self.runtime
            .block_on(lookup(&self.resolver, name, record_type))
    }

    /// `first`, then `second` only if `first` gave no address.
    fn preferring(&self, name: &str, first: RecordType, second: RecordType) -> Vec<Answer> {
        let first = self.ask(name, first);
        if let Answer::Addresses(_) = first {
            return vec![first];
        }
        vec![first, self.ask(name, second)]
    }
}

/// hickory's configuration from Envoy's options.
fn configure(options: &ResolverOptions) -> io::Result<(ResolverConfig, ResolverOpts)> {
    // Like c-ares, take the search list and ndots from resolv.conf even when the servers are
    // given; then a missing or server-less resolv.conf only costs the search list.
    let (system, system_opts) = match system_conf::read_system_conf() {
        Ok(system) => system,
        Err(e) if options.servers.is_empty() => {
            return Err(io::Error::other(format!(
                "no DNS servers configured and none read from /etc/resolv.conf: {e}"
            )));
        }
        Err(_) => (
            ResolverConfig::from_parts(None, Vec::new(), Vec::new()),
            ResolverOpts::default(),
        ),
    };
    let (domain, search, system_servers) = system.into_parts();
    let servers = if options.servers.is_empty() {
        system_servers
            .iter()
            .map(|server| {
                let port = server.connections.first().map_or(53, |c| c.port);
                name_server(SocketAddr::new(server.ip, port), options.use_tcp)
            })
            .collect()
    } else {
        options
            .servers
            .iter()
            .map(|&address| name_server(address, options.use_tcp))
            .collect()
    };
    let config = if options.no_default_search_domain {
        ResolverConfig::from_parts(None, Vec::new(), servers)
    } else {
        ResolverConfig::from_parts(domain, search, servers)
    };

    let mut opts = ResolverOpts::default();
    opts.ndots = system_opts.ndots;
    opts.timeout = options.query_timeout.unwrap_or(DEFAULT_QUERY_TIMEOUT);
    // hickory counts retries after the first try.
    opts.attempts = (options.query_tries.unwrap_or(DEFAULT_QUERY_TRIES).max(1) - 1) as usize;
    opts.cache_size = 0;
    opts.use_hosts_file = ResolveHosts::Always;
    // One server per try, as c-ares (hickory would ask two at once).
    opts.num_concurrent_reqs = 1;
    Ok((config, opts))
}

/// UDP (TCP when an answer is truncated), or TCP only.
fn name_server(address: SocketAddr, use_tcp: bool) -> NameServerConfig {
    let mut server = if use_tcp {
        NameServerConfig::tcp(address.ip())
    } else {
        NameServerConfig::udp_and_tcp(address.ip())
    };
    for connection in &mut server.connections {
        connection.port = address.port();
    }
    server
}

/// What one lookup (one record type) gave.
enum Answer {
    Addresses(Resolved),
    NoRecords,
    Failed(String),
}

async fn lookup(resolver: &TokioResolver, name: &str, record_type: RecordType) -> Answer {
    let lookup = match resolver.lookup(name, record_type).await {
        Ok(lookup) => lookup,
        Err(NetError::Dns(DnsError::NoRecordsFound(_))) => return Answer::NoRecords,
        Err(e) => return Answer::Failed(format!("{record_type} {name}: {e}")),
    };
    let mut addresses = Vec::new();
    let mut ttl = MAX_TTL;
    // CNAMEs are in the answer too; hickory has already lowered each address's TTL to its chain's.
    for record in lookup.answers() {
        let address = match (&record.data, record_type) {
            (RData::A(a), RecordType::A) => IpAddr::V4(a.0),
            (RData::AAAA(aaaa), RecordType::AAAA) => IpAddr::V6(aaaa.0),
            _ => continue,
        };
        addresses.push(address);
        ttl = ttl.min(record.ttl);
    }
    if addresses.is_empty() {
        return Answer::NoRecords;
    }
    Answer::Addresses(Resolved {
        addresses,
        ttl: Duration::from_secs(u64::from(ttl)),
    })
}

/// The addresses of every lookup that gave some; with none, `Failed` if a lookup failed.
fn combine(answers: Vec<Answer>) -> Result<Resolved, ResolveError> {
    let mut resolved: Option<Resolved> = None;
    let mut failures = Vec::new();
    for answer in answers {
        match (answer, &mut resolved) {
            (Answer::Addresses(more), Some(resolved)) => {
                resolved.addresses.extend(more.addresses);
                resolved.ttl = resolved.ttl.min(more.ttl);
            }
            (Answer::Addresses(first), None) => resolved = Some(first),
            (Answer::NoRecords, _) => {}
            (Answer::Failed(reason), _) => failures.push(reason),
        }
    }
    match resolved {
        Some(resolved) => Ok(resolved),
        None if failures.is_empty() => Err(ResolveError::NotFound),
        None => Err(ResolveError::Failed(failures.join("; "))),
    }
}

fn literal(address: IpAddr, family: LookupFamily) -> Result<Resolved, ResolveError> {
    let admitted = match family {
        LookupFamily::V4Only => address.is_ipv4(),
        LookupFamily::V6Only => address.is_ipv6(),
        LookupFamily::Auto | LookupFamily::V4Preferred | LookupFamily::All => true,
    };
    if !admitted {
        return Err(ResolveError::NotFound);
    }
    Ok(Resolved {
        addresses: vec![address],
        ttl: Duration::from_secs(u64::from(MAX_TTL)),
    })
}

#[cfg(test)]
#[path = "../../../weir/tests/support/dns.rs"]
mod dns_server;

#[cfg(test)]
mod tests;
