//! DNS clusters' hosts: every name of every `STRICT_DNS` and `LOGICAL_DNS` cluster is looked
//! up on a thread of its own (never on a worker), each on its own schedule, and a changed
//! answer becomes the cluster's next host set ([`ClusterHosts::replace`]), which the workers
//! pick up at their next wake round (the thread wakes them).
//!
//! Envoy's rules: the first lookups finish before the workers start (Envoy warms its clusters
//! before its listeners); a name is looked up again after `dns_refresh_rate`, or its answer's
//! TTL with `respect_dns_ttl`, plus up to `dns_jitter`; a failed lookup keeps the name's last
//! good addresses and is retried after `dns_failure_refresh_rate`, doubling up to its
//! `max_interval`. `STRICT_DNS`: every address of every name is a host. `LOGICAL_DNS`: one
//! host, the first address; when it changes, new connections go to the new address and the
//! host (its pool, its stats) stays.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use weir_config::{
    Cluster, Discovery, DnsDiscovery, DnsLookupFamily, DnsResolverConfig, EndpointHealth, Placement,
};

use super::host_set::{ClusterHosts, HostSpec, Identity};
use crate::network::resolver::{LookupFamily, ResolveError, Resolver, ResolverOptions};

/// One name of one DNS cluster, with its last good answer and when to ask again.
struct Target {
    cluster: usize,
    name: String,
    port: u16,
    weight: u32,
    hostname: Box<str>,
    placement: Arc<Placement>,
    eds_health: EndpointHealth,
    /// Its addresses as last resolved (`None` before the first success).
    addresses: Option<Vec<SocketAddr>>,
    next: Instant,
    /// Lookups failed in a row (the back-off's exponent).
    failures: u32,
}

/// The DNS clusters, their names and their resolvers: what the thread owns.
pub(crate) struct DnsClusters {
    targets: Vec<Target>,
    /// Per DNS cluster: its settings, by cluster index.
    clusters: HashMap<usize, DnsDiscovery>,
    /// One resolver per distinct configuration.
    resolvers: Vec<(DnsResolverConfig, Resolver)>,
    rng: fastrand::Rng,
}

impl DnsClusters {
    /// The DNS clusters of `clusters` (each with its number; `None` when none is).
    pub(crate) fn of<'a>(
        clusters: impl IntoIterator<Item = (usize, &'a Cluster)>,
    ) -> io::Result<Option<DnsClusters>> {
        let mut dns = DnsClusters {
            targets: Vec::new(),
            clusters: HashMap::new(),
            resolvers: Vec::new(),
            rng: fastrand::Rng::new(),
        };
        let now = Instant::now();
        for (i, cluster) in clusters {
            let Discovery::Dns(d) = &cluster.discovery else {
                continue;
            };
            if !dns.resolvers.iter().any(|(c, _)| *c == d.resolver) {
                let resolver = Resolver::new(&options(&d.resolver))?;
                dns.resolvers.push((d.resolver.clone(), resolver));
            }
            for t in &d.targets {
                dns.targets.push(Target {
                    cluster: i,
                    name: t.name.clone(),
                    port: t.port,
                    weight: t.weight,
                    hostname: t.hostname.as_deref().unwrap_or(&t.name).into(),
                    placement: t.placement.clone(),
                    eds_health: t.health,
                    addresses: None,
                    next: now,
                    failures: 0,
                });
            }
            dns.clusters.insert(i, d.clone());
        }
        Ok((!dns.clusters.is_empty()).then_some(dns))
    }

    /// Looks up every name that is due, and publishes the clusters whose hosts changed;
    /// returns whether any did.
    pub(crate) fn refresh_due(&mut self, hosts: &ClusterHosts) -> bool {
        // A cluster a reload removed is asked about no more.
        self.targets.retain(|t| !hosts.removed(t.cluster));
        let mut touched = Vec::new();
        for t in 0..self.targets.len() {
            if self.targets[t].next > Instant::now() {
                continue;
            }
            let cluster = self.targets[t].cluster;
            if self.resolve(t) && !touched.contains(&cluster) {
                touched.push(cluster);
            }
        }
        let mut changed = false;
        for cluster in touched {
            changed |= self.publish(cluster, hosts);
        }
        changed
    }

    /// Looks target `t` up and schedules its next lookup; returns whether its addresses
    /// changed.
    fn resolve(&mut self, t: usize) -> bool {
        let target = &self.targets[t];
        let Some(d) = self.clusters.get(&target.cluster) else {
            return false;
        };
        let Some((_, resolver)) = self.resolvers.iter_mut().find(|(c, _)| *c == d.resolver) else {
            return false;
        };
        let outcome = resolver.resolve(&target.name, family(d.lookup_family));
        let jitter = jitter(&mut self.rng, d.jitter);
        let (refresh, respect_ttl, failure) = (d.refresh_rate, d.respect_ttl, d.failure_refresh);
        let target = &mut self.targets[t];
        let now = Instant::now();
        match outcome {
            Ok(resolved) => {
                target.failures = 0;
                let wait = if respect_ttl && !resolved.ttl.is_zero() {
                    resolved.ttl
                } else {
                    refresh
                };
                target.next = now + wait + jitter;
                let addresses: Vec<SocketAddr> = resolved
                    .addresses
                    .into_iter()
                    .map(|ip| SocketAddr::new(ip, target.port))
                    .collect();
                if target.addresses.as_ref() == Some(&addresses) {
                    return false;
                }
                tracing::info!(name = %target.name, ?addresses, "DNS: new addresses");
                target.addresses = Some(addresses);
                true
            }
            Err(e) => {
                target.failures = target.failures.saturating_add(1);
                let (base, max) = failure.unwrap_or((refresh, refresh));
                let backoff = base
                    .saturating_mul(1 << (target.failures - 1).min(16))
                    .min(max);
                target.next = now + backoff + jitter;
                let why = match e {
                    ResolveError::NotFound => "no such name or no address".to_owned(),
                    ResolveError::Failed(why) => why,
                };
                tracing::warn!(name = %target.name, %why, retry_in = ?backoff, "DNS lookup failed; keeping the last addresses");
                false
            }
        }
    }

    /// Makes cluster `cluster`'s hosts what its names resolve to now.
    fn publish(&self, cluster: usize, hosts: &ClusterHosts) -> bool {
        let Some(d) = self.clusters.get(&cluster) else {
            return false;
        };
        let targets = self.targets.iter().filter(|t| t.cluster == cluster);
        let spec = |t: &Target, address: SocketAddr| HostSpec {
            address,
            weight: t.weight,
            hostname: Some(t.hostname.clone()),
            placement: t.placement.clone(),
            eds_health: t.eds_health,
        };
        let (specs, identity): (Vec<HostSpec>, _) = if d.logical {
            let first = targets
                .filter_map(|t| Some((t, *t.addresses.as_ref()?.first()?)))
                .map(|(t, a)| spec(t, a))
                .take(1)
                .collect();
            (first, Identity::Logical)
        } else {
            let all = targets
                .flat_map(|t| t.addresses.iter().flatten().map(move |&a| spec(t, a)))
                .collect();
            (all, Identity::ByAddress)
        };
        hosts.replace(cluster, specs, identity)
    }

    /// When the next lookup is due.
    fn next_due(&self) -> Option<Instant> {
        self.targets.iter().map(|t| t.next).min()
    }
}

fn options(config: &DnsResolverConfig) -> ResolverOptions {
    ResolverOptions {
        servers: config.servers.clone(),
        use_tcp: config.use_tcp,
        no_default_search_domain: config.no_default_search_domain,
        query_timeout: config.query_timeout,
        query_tries: config.query_tries,
    }
}

fn family(f: DnsLookupFamily) -> LookupFamily {
    match f {
        DnsLookupFamily::Auto => LookupFamily::Auto,
        DnsLookupFamily::V4Only => LookupFamily::V4Only,
        DnsLookupFamily::V6Only => LookupFamily::V6Only,
        DnsLookupFamily::V4Preferred => LookupFamily::V4Preferred,
        DnsLookupFamily::All => LookupFamily::All,
    }
}

fn jitter(rng: &mut fastrand::Rng, up_to: Duration) -> Duration {
    if up_to.is_zero() {
        return Duration::ZERO;
    }
    Duration::from_nanos(rng.u64(0..up_to.as_nanos().min(u128::from(u64::MAX)) as u64))
}

/// The DNS thread. See the module documentation.
pub(crate) struct DnsRefresher {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl DnsRefresher {
    /// Keeps `dns` up to date on a thread of its own; `wake` tells the workers a host set
    /// changed.
    pub(crate) fn start(
        mut dns: DnsClusters,
        hosts: Arc<ClusterHosts>,
        wake: impl Fn() + Send + 'static,
    ) -> io::Result<DnsRefresher> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("weir:dns".into())
            .spawn(move || {
                loop {
                    let wait = dns.next_due().map_or(Duration::from_secs(3600), |t| {
                        t.saturating_duration_since(Instant::now())
                    });
                    match stopped.recv_timeout(wait) {
                        Err(RecvTimeoutError::Timeout) => {}
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                    }
                    if dns.refresh_due(&hosts) {
                        wake();
                    }
                }
            })?;
        Ok(DnsRefresher { stop, thread })
    }

    pub(crate) fn stop(self) {
        drop(self.stop);
        let _ = self.thread.join();
    }
}
