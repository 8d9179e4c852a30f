//! Envoy's HTTP filter chain (`http/filter_manager.cc`): the filters a connection manager runs
//! on each stream before the router, in config order on the way in (decode) and in reverse on
//! the way out (encode).
//!
//! Sans-IO: a stream's [`StreamFilters`] takes the request's head and body as they arrive and
//! `now`, and says what happens next ([`Decoded`]): the request reaches the router, a filter
//! holds it (until more body arrives, or until a timer it asked for), or a filter answers. The
//! worker carries that out; nothing here touches a socket, a clock or the worker.
//!
//! How a request moves through the chain:
//!
//! ```text
//!            decode_headers ok                         decode_headers ok
//!   head ──> filter 0 ─────────> filter 1 ─ … ─> filter n-1 ─────────> router
//!                         │ Stop (hold)
//!                         v
//!             body arrives: held, shown to the holding filter (decode_data)
//!             the filter (or its timer) continues: the head goes on to the
//!             next filters, then the held body, then the end
//! ```
//!
//! A filter that holds the request holds its body too: the stream keeps it (`held`), bounded
//! by the decode gate (the connection manager stops reading past the buffer limit, or past a
//! buffer filter's `max_request_bytes`). A filter may answer at any step; the answer then goes
//! out through the encode path of the filters that had seen the request, from that filter back
//! to the first.

pub(crate) mod buffer;
pub(crate) mod fault;
pub(crate) mod health_check;
#[cfg(test)]
mod tests;

use crate::runtime::Runtime;
use std::time::Duration;

use bytes::Bytes;
use weir_config::{FilterConfig, HttpFilter as FilterEntry, PerFilter};
use weir_http1::{RequestHead, ResponseHead};

use crate::http::local_reply::LocalReply;
use crate::router::route_table::{RouteRef, RouteTable};
use crate::stats::FaultStats;

use buffer::Buffer;
use fault::Fault;
use health_check::HealthCheck;

/// One configured filter, compiled once per filter chain and read by every stream.
#[derive(Debug)]
pub(crate) struct FilterSpec {
    /// Its `name`: `typed_per_filter_config` keys name it.
    pub(crate) name: String,
    /// `disabled: true`: runs only where a route enables it.
    pub(crate) disabled: bool,
    pub(crate) config: FilterConfig,
}

/// The filters of a connection manager, before its router.
#[derive(Debug, Default)]
pub(crate) struct FilterChainSpec {
    pub(crate) filters: Vec<FilterSpec>,
    /// The chain ends in the router. Envoy accepts a connection manager with no HTTP filters
    /// at all: nothing answers its requests, which wait for `stream_idle_timeout`.
    pub(crate) router: bool,
}

impl FilterChainSpec {
    pub(crate) fn new(entries: &[FilterEntry]) -> Self {
        let filters = entries
            .iter()
            .filter_map(|entry| match entry {
                FilterEntry::Router { .. } => None,
                FilterEntry::Filter {
                    name,
                    disabled,
                    config,
                } => Some(FilterSpec {
                    name: name.clone(),
                    disabled: *disabled,
                    config: config.clone(),
                }),
            })
            .collect();
        let router = entries
            .iter()
            .any(|entry| matches!(entry, FilterEntry::Router { .. }));
        FilterChainSpec { filters, router }
    }

    /// Whether a fault filter is among them (its stats exist only then, as in Envoy).
    pub(crate) fn has_fault(&self) -> bool {
        self.filters
            .iter()
            .any(|f| matches!(f.config, FilterConfig::Fault(_)))
    }

    /// The filters that run for a request on `route` (none matched: `None`), each with the
    /// config that applies there (a route's `typed_per_filter_config` wins over its virtual
    /// host's, which wins over the route config's, which wins over the filter's own).
    pub(crate) fn instantiate(
        &self,
        routes: &RouteTable,
        route: Option<RouteRef>,
    ) -> StreamFilters {
        let mut active = Vec::new();
        for spec in &self.filters {
            let per_route = routes.per_filter(route, &spec.name);
            let enabled = match per_route {
                Some(PerFilter::Disabled) => false,
                Some(_) => true,
                None => !spec.disabled,
            };
            if !enabled {
                continue;
            }
            let filter = match (&spec.config, per_route) {
                (FilterConfig::Fault(_), Some(PerFilter::Fault(route_config))) => {
                    ActiveFilter::Fault(Fault::new(route_config.clone()))
                }
                (FilterConfig::Fault(config), _) => ActiveFilter::Fault(Fault::new(config.clone())),
                (FilterConfig::Buffer(_), Some(PerFilter::Buffer(route_config))) => {
                    ActiveFilter::Buffer(Buffer::new(*route_config))
                }
                (FilterConfig::Buffer(config), _) => ActiveFilter::Buffer(Buffer::new(*config)),
                (FilterConfig::HealthCheck(config), _) => {
                    ActiveFilter::HealthCheck(HealthCheck::new(config.clone()))
                }
            };
            active.push(filter);
        }
        StreamFilters(Some(Box::new(Chain {
            active,
            at: 0,
            held: Vec::new(),
            held_len: 0,
            held_end: false,
        })))
    }
}

/// One filter's state on one stream.
#[derive(Debug)]
pub(crate) enum ActiveFilter {
    Fault(Fault),
    Buffer(Buffer),
    HealthCheck(HealthCheck),
}

/// What a filter says after a decode callback.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Pass the request on.
    Continue,
    /// Hold the request here (and its body, as it arrives); `wake_after`: call
    /// [`StreamFilters::on_wake`] then (a delay), or `None` to wait for more body.
    Stop { wake_after: Option<Duration> },
    /// Hold the request but not its body: what arrived so far and what comes is dropped.
    Discard,
    /// Answer the request.
    Reply(LocalReply),
}

/// What the worker must do after a decode step.
#[derive(Debug)]
pub(crate) enum Decoded {
    /// The head reached the router: route it. The held body follows ([`StreamFilters::take_held`]).
    ToRouter,
    /// The request is held by a filter; arm a timer when `wake_after` says.
    Held { wake_after: Option<Duration> },
    /// Answer (the filters that saw the request will encode the answer's head).
    Reply(LocalReply),
}

/// What filters read about the world: the stream's route, the server and the clusters.
pub(crate) struct FilterEnv<'a> {
    pub(crate) rng: &'a mut fastrand::Rng,
    /// The cluster the request is routed to, when its route forwards.
    pub(crate) route_cluster: Option<&'a str>,
    /// `/healthcheck/fail` is in force.
    pub(crate) health_check_failed: bool,
    /// Each cluster's name, host count and healthy host count.
    pub(crate) clusters: &'a [(String, usize, usize)],
    /// `http.<stat_prefix>.fault.*`.
    pub(crate) fault_stats: &'a FaultStats,
    /// The `:authority` the request is routed by (header matchers read it).
    pub(crate) authority: &'a [u8],
    /// Its connection's scheme (header matchers derive `:scheme` from it and the request).
    pub(crate) scheme: &'static [u8],
    /// The runtime snapshot in force (the fault filter's `fault.http.*` keys).
    pub(crate) runtime: &'a Runtime,
}

/// What filters read when a response head passes them.
pub(crate) struct EncodeEnv<'a> {
    /// `/healthcheck/fail` is in force.
    pub(crate) health_check_failed: bool,
    /// `node.cluster` (the health check filter names it in its answers).
    pub(crate) local_cluster: &'a str,
}

/// The filters of one stream and where its request stands among them; nothing (no
/// allocation) for a connection manager without filters, whose requests go straight to the
/// router.
#[derive(Debug)]
pub(crate) struct StreamFilters(Option<Box<Chain>>);

#[derive(Debug)]
struct Chain {
    active: Vec<ActiveFilter>,
    /// The filter that holds the request; `active.len()` once the router has it.
    at: usize,
    /// Body that arrived while a filter held the request.
    held: Vec<Bytes>,
    held_len: usize,
    /// The request's end arrived while held.
    held_end: bool,
}

impl StreamFilters {
    /// No filters: the request goes straight to the router.
    pub(crate) fn none() -> Self {
        StreamFilters(None)
    }

    /// The router has the request: body goes upstream as it comes.
    pub(crate) fn routed(&self) -> bool {
        self.0.as_ref().is_none_or(|c| c.at >= c.active.len())
    }

    /// Body bytes held by a filter (the decode gate reads it).
    pub(crate) fn held_len(&self) -> usize {
        self.0.as_ref().map_or(0, |c| c.held_len)
    }

    /// How much body may be held before reading stops: a buffer filter holding the request
    /// needs its whole `max_request_bytes`.
    pub(crate) fn hold_limit(&self, buffer_limit: usize) -> usize {
        match self.0.as_ref().and_then(|c| c.active.get(c.at)) {
            Some(ActiveFilter::Buffer(b)) => buffer_limit.max(b.max_bytes() + 1),
            _ => buffer_limit,
        }
    }

    /// The request head arrived (`end_stream`: it has no body).
    pub(crate) fn decode_headers(
        &mut self,
        head: &mut RequestHead,
        end_stream: bool,
        env: &mut FilterEnv<'_>,
    ) -> Decoded {
        match &mut self.0 {
            Some(chain) => {
                chain.held_end = end_stream;
                chain.run_headers(0, head, env)
            }
            None => Decoded::ToRouter,
        }
    }

    /// Body bytes arrived while a filter holds the request (`end_stream`: the last).
    pub(crate) fn decode_data(
        &mut self,
        data: Bytes,
        end_stream: bool,
        head: &mut RequestHead,
        env: &mut FilterEnv<'_>,
    ) -> Decoded {
        match &mut self.0 {
            Some(chain) => chain.decode_data(data, end_stream, head, env),
            None => Decoded::ToRouter,
        }
    }

    /// The timer a holding filter asked for fired.
    pub(crate) fn on_wake(&mut self, head: &mut RequestHead, env: &mut FilterEnv<'_>) -> Decoded {
        match &mut self.0 {
            Some(chain) => {
                let verdict = match chain.active.get_mut(chain.at) {
                    Some(filter) => filter.on_wake(head, env),
                    None => Verdict::Continue,
                };
                chain.after(verdict, head, env)
            }
            None => Decoded::ToRouter,
        }
    }

    /// The body held so far and whether the end came with it, for the router (once).
    pub(crate) fn take_held(&mut self) -> (Vec<Bytes>, bool) {
        match &mut self.0 {
            Some(chain) => {
                chain.held_len = 0;
                (std::mem::take(&mut chain.held), chain.held_end)
            }
            None => (Vec::new(), false),
        }
    }

    /// Runs the response head through the filters that saw the request, last to first.
    pub(crate) fn encode_headers(&mut self, head: &mut ResponseHead, env: &EncodeEnv<'_>) {
        let Some(chain) = &mut self.0 else {
            return;
        };
        let seen = chain.at.min(chain.active.len().saturating_sub(1));
        for filter in chain.active.iter_mut().take(seen + 1).rev() {
            filter.encode_headers(head, env);
        }
    }

    /// The stream ends: filters give back what they hold in shared state (active faults).
    pub(crate) fn on_destroy(&mut self, fault_stats: &FaultStats) {
        let Some(chain) = &mut self.0 else {
            return;
        };
        for filter in &mut chain.active {
            if let ActiveFilter::Fault(f) = filter {
                f.on_destroy(fault_stats);
            }
        }
    }
}

impl Chain {
    /// Body bytes arrived while a filter holds the request (`end_stream`: the last).
    fn decode_data(
        &mut self,
        data: Bytes,
        end_stream: bool,
        head: &mut RequestHead,
        env: &mut FilterEnv<'_>,
    ) -> Decoded {
        self.held_len += data.len();
        if !data.is_empty() {
            self.held.push(data);
        }
        self.held_end |= end_stream;
        let verdict = match self.active.get_mut(self.at) {
            Some(filter) => filter.decode_data(head, self.held_len, self.held_end, env),
            None => Verdict::Continue,
        };
        self.after(verdict, head, env)
    }

    fn after(
        &mut self,
        verdict: Verdict,
        head: &mut RequestHead,
        env: &mut FilterEnv<'_>,
    ) -> Decoded {
        match verdict {
            Verdict::Continue => {
                let next = self.at + 1;
                self.run_headers(next, head, env)
            }
            Verdict::Stop { wake_after } => Decoded::Held { wake_after },
            Verdict::Discard => {
                self.held.clear();
                self.held_len = 0;
                Decoded::Held { wake_after: None }
            }
            Verdict::Reply(reply) => Decoded::Reply(reply),
        }
    }

    /// Passes the head to filters `from..`. A filter that takes it after body was held sees
    /// that body (and the end, if it came) at once, whether it lets the head go on or waits
    /// for the body (as Envoy hands buffered data to a filter whose `decodeHeaders` stopped);
    /// only one that asked for a timer sees it when it wakes.
    fn run_headers(
        &mut self,
        from: usize,
        head: &mut RequestHead,
        env: &mut FilterEnv<'_>,
    ) -> Decoded {
        self.at = from;
        while let Some(filter) = self.active.get_mut(self.at) {
            let end_with_head = self.held_end && self.held_len == 0;
            let body_waiting = self.held_len > 0 || self.held_end && !end_with_head;
            let verdict = match filter.decode_headers(head, end_with_head, env) {
                Verdict::Continue | Verdict::Stop { wake_after: None } if body_waiting => {
                    filter.decode_data(head, self.held_len, self.held_end, env)
                }
                verdict => verdict,
            };
            match verdict {
                Verdict::Continue => self.at += 1,
                Verdict::Stop { wake_after } => return Decoded::Held { wake_after },
                Verdict::Discard => {
                    self.held.clear();
                    self.held_len = 0;
                    return Decoded::Held { wake_after: None };
                }
                Verdict::Reply(reply) => return Decoded::Reply(reply),
            }
        }
        Decoded::ToRouter
    }
}

impl ActiveFilter {
    fn decode_headers(
        &mut self,
        head: &mut RequestHead,
        end_stream: bool,
        env: &mut FilterEnv<'_>,
    ) -> Verdict {
        match self {
            ActiveFilter::Fault(f) => f.decode_headers(head, env),
            ActiveFilter::Buffer(b) => b.decode_headers(end_stream),
            ActiveFilter::HealthCheck(h) => h.decode_headers(head, end_stream, env),
        }
    }

    fn decode_data(
        &mut self,
        head: &mut RequestHead,
        held: usize,
        end_stream: bool,
        env: &mut FilterEnv<'_>,
    ) -> Verdict {
        match self {
            ActiveFilter::Fault(f) => f.decode_data(),
            ActiveFilter::Buffer(b) => b.decode_data(head, held, end_stream),
            ActiveFilter::HealthCheck(h) => h.decode_data(end_stream, env),
        }
    }

    fn on_wake(&mut self, head: &mut RequestHead, env: &mut FilterEnv<'_>) -> Verdict {
        match self {
            ActiveFilter::Fault(f) => f.on_wake(head, env),
            // Only the fault filter asks to be woken.
            ActiveFilter::Buffer(_) | ActiveFilter::HealthCheck(_) => Verdict::Continue,
        }
    }

    fn encode_headers(&mut self, head: &mut ResponseHead, env: &EncodeEnv<'_>) {
        match self {
            ActiveFilter::HealthCheck(h) => h.encode_headers(head, env),
            ActiveFilter::Fault(_) | ActiveFilter::Buffer(_) => {}
        }
    }
}
