//! Entry points for the fuzz targets in `fuzz/`, compiled only with the `fuzzing` feature.
//! Not an API: it exists so the crate-private router can be fuzzed without making it public.

#![cfg(feature = "fuzzing")]
#![doc(hidden)]

use weir_config::Bootstrap;
use weir_http1::RequestHead;

use crate::router::route_table::RouteTable;
use crate::router::{self, Decision};
use crate::runtime::Runtime;

/// The route tables of a bootstrap's HTTP connection managers, compiled as the proxy compiles
/// them, one per filter chain (listeners and chains in config order, default chains last).
pub struct Router {
    tables: Vec<RouteTable>,
    rng: fastrand::Rng,
}

/// What the router decided, in public terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Forward upstream; the head was rewritten for the upstream.
    Forward {
        /// The matched virtual host's index in `route_config.virtual_hosts`.
        vhost: usize,
        /// The matched route's index in that virtual host's `routes`.
        route: usize,
        /// The picked cluster's index in the bootstrap's clusters.
        cluster: usize,
    },
    /// Answer locally (direct response, redirect, or no route).
    Respond {
        /// `(vhost, route)` when a route matched.
        route: Option<(usize, usize)>,
        /// The status sent.
        status: u16,
        /// The `location` of a redirect.
        location: Option<String>,
    },
}

impl Router {
    /// Compiles every route table of `bootstrap`; `seed` seeds the weighted-cluster picks.
    pub fn new(bootstrap: &Bootstrap, seed: u64) -> Self {
        let tables = bootstrap
            .listeners
            .iter()
            .flat_map(|l| l.filter_chains.iter().chain(&l.default_filter_chain))
            .filter_map(|chain| chain.http_connection_manager.as_ref())
            .map(|hcm| RouteTable::new(hcm.route_config.clone()))
            .collect();
        Router {
            tables,
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    /// How many route tables there are.
    pub fn tables(&self) -> usize {
        self.tables.len()
    }

    /// Routes a request with route table `table` (panics if out of range), exactly as the
    /// connection manager does: `authority` is the request's host, and on `Forward` the head
    /// is rewritten in place.
    pub fn route(&mut self, table: usize, authority: &[u8], head: &mut RequestHead) -> Outcome {
        let table = &self.tables[table];
        let random = self.rng.u64(..);
        let route = table.find(authority, b"http", head, &Runtime::default(), random);
        let cluster = route.and_then(|r| router::pick_cluster(table, r, &mut self.rng));
        match router::decide(table, route, cluster, authority, head, true) {
            Decision::Forward { route, cluster, .. } => Outcome::Forward {
                vhost: route.vhost,
                route: route.route,
                cluster,
            },
            Decision::Respond { route, reply } => Outcome::Respond {
                route: route.map(|r| (r.vhost, r.route)),
                status: reply.status,
                location: reply.location,
            },
        }
    }
}

/// The connection manager's split of an absolute-form target (`http://authority/path?q` →
/// authority, `/path?q`), as the router's caller uses it.
pub fn absolute_form_split(target: &bytes::Bytes) -> Option<(bytes::Bytes, bytes::Bytes)> {
    crate::http::stream::absolute_form_split(target)
}
