//! The router filter's part on the worker: the request the filters passed on is answered
//! (direct response, redirect, no route) or forwarded to the chosen cluster (the upstream side
//! takes it from there: `upstream::codec_client`), and its body and end follow it upstream.

use crate::upstream::lb::hash;
use std::time::Duration;

use bytes::Bytes;

use crate::event::token::Id;
use crate::http::active_stream::Tunnel;
use crate::http::headers::number_value;
use crate::http::local_reply::{LocalReply, ResponseFlag};
use crate::router::route_table::RouteRef;
use crate::router::{self, Decision, internal_headers};
use crate::snapshot::ChainRuntime;
use crate::worker::{TimerKey, Worker, listener_buffer_limit};
use weir_flow::EventKind;
use weir_http1::RequestHead;

/// What the router's decision to forward carries to the stream.
struct Forwarding {
    /// A retry policy applies (the route's, or an internal request's headers').
    retry_policy: bool,
    timeout: Option<Duration>,
    /// The request's hash, for ring hash and Maglev clusters.
    hashed: Option<hash::RequestHash>,
    overrides: Option<internal_headers::Overrides>,
}

impl Worker {
    /// The request reached the router: answer it or forward it, then send the body the
    /// filters held.
    pub(crate) fn route_request(&mut self, sid: Id) {
        let wanted = (self.streams.get(sid)).and_then(|s| s.forwarded.then_some(s.cluster));
        if let Some(c) = wanted
            && !self.cluster_in_force(c)
        {
            return self.no_cluster(sid);
        }
        let Some(stream) = self.streams.get_mut(sid) else {
            return;
        };
        let Some(mut head) = stream.retry.head.take() else {
            return;
        };
        let (route, cluster) = (stream.route, stream.forwarded.then_some(stream.cluster));
        let ds_id = stream.downstream;
        // What the router needs of the connection's config, read in one borrow (no `Arc`
        // clone per request).
        let Some(ds) = self.downstreams.get(ds_id) else {
            return;
        };
        let routes = &ds.chain.routes;
        let envoy_headers = !ds.chain.suppress_envoy_headers;
        let decision = router::decide(
            routes,
            route,
            cluster,
            &stream.authority,
            &mut head,
            envoy_headers,
        );
        // A hashing balancer's input (computed only for ring hash and Maglev clusters).
        let hashed = match &decision {
            Decision::Forward { route, cluster, .. }
                if self.clusters.get(*cluster).is_some_and(|c| c.hashes) =>
            {
                let policies = match &routes.route(*route).action {
                    weir_config::RouteAction::Forward(f) => &f.hash_policy[..],
                    _ => &[],
                };
                let conn = hash::Connection {
                    remote: ds.peer,
                    local: (ds.proxied.as_ref().map(|p| p.local))
                        .or_else(|| ds.conn.local_addr())
                        .unwrap_or(ds.peer),
                };
                Some(hash::request_hash(policies, &head, conn))
            }
            _ => None,
        };
        let (retry_policy, names, redirect) = match &decision {
            Decision::Forward { route, .. } => (
                routes.retry_policy(*route).is_some(),
                self.recorder.enabled().then(|| routes.names(*route)),
                false,
            ),
            // A 201 or 3xx direct response carries `location` too: the route's action tells
            // a redirect.
            Decision::Respond { route, .. } => (
                false,
                None,
                matches!(
                    route.map(|r| &routes.route(r).action),
                    Some(weir_config::RouteAction::Redirect(_))
                ),
            ),
        };
        let scope = ds.chain.stats;
        self.log_request(sid, &head);
        let http = self.stats.http.get(scope).map(|h| &h.stats);
        let (cluster, timeout) = match decision {
            Decision::Respond { route, reply } => {
                if let Some(http) = http {
                    let counter = match (&reply.flag, redirect) {
                        (Some(ResponseFlag::NoRouteFound), _) => &http.no_route,
                        (_, true) => &http.rq_redirect,
                        _ => &http.rq_direct_response,
                    };
                    counter.inc();
                }
                if let Some(stream) = self.streams.get_mut(sid) {
                    stream.forwarded = false;
                    // Kept for the failure's account, should the answer be one.
                    stream.retry.head = Some(head);
                }
                return self.local_reply(sid, route, reply);
            }
            Decision::Forward {
                cluster, timeout, ..
            } => (cluster, timeout),
        };
        let overrides = self.internal_overrides(sid, ds_id, route, &mut head);
        let retry_policy = retry_policy || overrides.as_ref().is_some_and(|o| o.policy.is_some());
        let timeout = match &overrides {
            Some(internal_headers::Overrides {
                timeout: Some(t), ..
            }) => *t,
            _ => timeout,
        };
        if let Some(http) = http {
            http.rq_total.inc();
        }
        if let Some((vhost, name)) = names {
            let cluster = self.clusters[cluster].name.clone();
            self.trace_down(ds_id, || EventKind::RouteMatched {
                vhost,
                route: name,
                cluster,
            });
        }
        let forwarding = Forwarding {
            retry_policy,
            timeout,
            hashed,
            overrides,
        };
        self.start_forward(sid, head, forwarding);
    }

    /// The stream's route names a cluster a reload removed (its chain was retired by the
    /// same reload, and closes after this response): 503 `NC`, as Envoy answers a route
    /// whose cluster is not found.
    fn no_cluster(&mut self, sid: Id) {
        let Some(stream) = self.streams.get_mut(sid) else {
            return;
        };
        stream.forwarded = false;
        let (route, ds_id) = (stream.route, stream.downstream);
        let Some(head) = stream.retry.head.clone() else {
            return;
        };
        self.log_request(sid, &head);
        let scope = self.downstreams.get(ds_id).map(|d| d.chain.stats);
        if let Some(http) = scope.and_then(|s| self.stats.http.get(s)) {
            http.stats.no_cluster.inc();
        }
        self.local_reply(
            sid,
            route,
            LocalReply::failure(ResponseFlag::NoClusterFound),
        );
    }

    /// The router decided to forward: the stream keeps what a retry needs, connects, and
    /// sends the body the filters held.
    fn start_forward(&mut self, sid: Id, head: RequestHead, forwarding: Forwarding) {
        let idempotent = matches!(
            head.method.as_ref(),
            b"GET" | b"HEAD" | b"OPTIONS" | b"TRACE" | b"PUT" | b"DELETE"
        );
        let Some(stream) = self.streams.get_mut(sid) else {
            return;
        };
        let Forwarding {
            retry_policy,
            timeout,
            hashed,
            overrides,
        } = forwarding;
        let tunnel = stream.tunnel;
        // Keep the request for a retry: under a retry policy, or, for the keep-alive race of
        // a pooled connection, when it is idempotent (RFC 9110 §9.2.2). A tunnel's bytes are
        // never replayed, nor its connection pooled.
        stream.retry.possible = (retry_policy || idempotent) && tunnel == Tunnel::No;
        stream.upstream_single_use |= tunnel != Tunnel::No;
        stream.route_timeout = timeout;
        if let Some(hashed) = hashed {
            stream.lb_hash = hashed.hash;
            stream.set_cookie = hashed.set_cookie.map(String::into_boxed_str);
        }
        if let Some(o) = overrides {
            stream.retry.policy = o.policy.map(Box::new);
            stream.retry.timeout_alt_response = o.timeout_alt_response;
        }
        stream.retry.head = Some(head);
        let (held, ended) = stream.filters.take_held();
        // A terminated CONNECT's tunnel is a connection of its own.
        self.connect_stream(sid, tunnel == Tunnel::TerminateConnect);
        for piece in held {
            self.send_upstream(sid, piece);
        }
        if ended {
            self.router_end(sid);
        }
    }

    /// An internal request may steer retries and timeouts with its `x-envoy-*` headers: they
    /// are taken out of `head` and read against the route's retry policy.
    fn internal_overrides(
        &self,
        sid: Id,
        ds_id: Id,
        route: Option<RouteRef>,
        head: &mut RequestHead,
    ) -> Option<internal_headers::Overrides> {
        let stream = self.streams.get(sid)?;
        if !stream.internal || !internal_headers::any(&head.headers) {
            return None;
        }
        let route_policy = route.and_then(|r| {
            let ds = self.downstreams.get(ds_id)?;
            ds.chain.routes.retry_policy(r).cloned()
        });
        Some(internal_headers::take(
            &mut head.headers,
            route_policy.as_ref(),
        ))
    }

    /// Queues request body bytes on the stream's upstream, keeping them for a retry while
    /// they fit the retry buffer: the listener's `per_connection_buffer_limit_bytes`, as in
    /// Envoy.
    pub(crate) fn send_upstream(&mut self, sid: Id, data: Bytes) {
        let Some(stream) = self.streams.get_mut(sid) else {
            return;
        };
        let retry_buffer = match self.downstreams.get(stream.downstream) {
            Some(ds) if stream.retry.possible => listener_buffer_limit(&self.listeners, ds),
            _ => 0,
        };
        if stream.queued {
            // Waiting for a connection, the body has nowhere else to be: all of it is kept
            // (reading stops at the limit), though past the retry buffer it is not replayed.
            stream.retry.body_bytes += data.len();
            stream.retry.possible &= stream.retry.body_bytes <= retry_buffer;
            stream.retry.body.push(data.clone());
        } else if stream.retry.possible {
            stream.retry.body_bytes += data.len();
            if stream.retry.body_bytes > retry_buffer {
                stream.retry.possible = false;
                stream.retry.body.clear();
            } else {
                stream.retry.body.push(data.clone());
            }
        }
        // With no upstream (answered locally), the body is read and dropped.
        if let Some(up) = stream.upstream().and_then(|u| self.upstreams.get_mut(u)) {
            up.codec.encode_data(data, &mut up.conn);
        }
    }

    /// The request's end reached the router: it ends upstream, and the route timeout and the
    /// attempt's `per_try_timeout` run from here, as Envoy's router starts them.
    pub(crate) fn router_end(&mut self, sid: Id) {
        let Some(stream) = self.streams.get_mut(sid) else {
            return;
        };
        // Once: a filter may have handed the router a bodiless request's end already.
        if std::mem::replace(&mut stream.retry.ended, true) {
            return;
        }
        stream.retry.ended_at = Some(self.now);
        if let Some(up) = stream.upstream().and_then(|u| self.upstreams.get_mut(u))
            && !stream.request_bodiless
        {
            up.codec.encode_end(&mut up.conn);
        }
        let attempt = stream.attempt.is_some() && !stream.response_started();
        if let (Some(after), false) = (stream.route_timeout, stream.response_complete()) {
            let timer = self.arm(after, TimerKey::Route(sid));
            if let Some(stream) = self.streams.get_mut(sid) {
                stream.route_timer = Some(timer);
            }
        }
        if attempt {
            self.arm_per_try_timer(sid);
        }
    }
}

impl Worker {
    /// `x-envoy-expected-rq-timeout-ms` for the stream's next attempt (see
    /// [`expected_timeout_ms`]); `None` under `suppress_envoy_headers` or without a timeout.
    pub(crate) fn expected_timeout_value(&mut self, sid: Id) -> Option<Bytes> {
        let per_try = self.retry_policy_of(sid).and_then(|p| p.per_try_timeout);
        let stream = self.streams.get(sid)?;
        let ds = self.downstreams.get(stream.downstream)?;
        if ds.chain.suppress_envoy_headers {
            return None;
        }
        let elapsed = stream
            .retry
            .ended_at
            .map_or(Duration::ZERO, |at| self.now.saturating_duration_since(at));
        let ms = expected_timeout_ms(stream.route_timeout, per_try, elapsed)?;
        Some(self.timeout_text.get(ms))
    }

    /// `x-envoy-upstream-service-time` for a response head: the milliseconds since the
    /// request's end reached the router (retries included), as Envoy's router counts them;
    /// `None` when the request had not ended (nor for a tunnel), or under
    /// `suppress_envoy_headers`.
    pub(crate) fn upstream_service_time(&self, sid: Id) -> Option<Bytes> {
        let stream = self.streams.get(sid)?;
        let ended_at = stream.retry.ended_at?;
        let ds = self.downstreams.get(stream.downstream)?;
        if ds.chain.suppress_envoy_headers || stream.tunnel != Tunnel::No {
            return None;
        }
        let ms = self.now.saturating_duration_since(ended_at).as_millis();
        Some(number_value(u64::try_from(ms).unwrap_or(u64::MAX)))
    }
}

/// The timeout an attempt is told it has (`x-envoy-expected-rq-timeout-ms`), as Envoy's
/// router computes it (`FilterUtility::setTimeoutHeaders`): the per-try timeout when there is
/// one shorter than the route timeout, else the route timeout; never more than the route
/// timeout leaves after `elapsed` (the time since the request ended: retries), and at least 1.
/// `None` when neither bounds the attempt.
pub(crate) fn expected_timeout_ms(
    route_timeout: Option<Duration>,
    per_try_timeout: Option<Duration>,
    elapsed: Duration,
) -> Option<u64> {
    let ms =
        |d: Option<Duration>| d.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let (global, mut per_try) = (ms(route_timeout), ms(per_try_timeout));
    if per_try >= global && global != 0 {
        per_try = 0;
    }
    let expected = if per_try == 0 { global } else { per_try };
    if expected == 0 {
        return None;
    }
    if global == 0 {
        return Some(expected);
    }
    let elapsed = ms(Some(elapsed));
    Some(if elapsed >= global {
        1
    } else {
        expected.min(global - elapsed)
    })
}

/// Whether an upgrade of `kind` (`websocket`, `connect`…) may go through `route`, as Envoy
/// decides it before any filter runs: the route's own `upgrade_configs` entry for the kind
/// wins (disabled: no); otherwise the connection manager's. `Some(true)`: a CONNECT weir ends
/// itself.
pub(crate) fn upgrade_allowed(
    chain: &ChainRuntime,
    route: Option<RouteRef>,
    kind: &[u8],
) -> Option<bool> {
    let find = |list: &'_ [weir_config::UpgradeConfig]| {
        list.iter()
            .find(|u| u.upgrade_type.as_bytes().eq_ignore_ascii_case(kind))
            .map(|u| (u.enabled, u.terminate_connect))
    };
    let on_route = route.and_then(|r| match &chain.routes.route(r).action {
        weir_config::RouteAction::Forward(f) => find(&f.upgrade_configs),
        _ => None,
    });
    match (on_route, find(&chain.hcm.upgrade_configs)) {
        (Some((enabled, terminate)), _) => enabled.then_some(terminate),
        (None, Some((enabled, _))) => enabled.then_some(false),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::expected_timeout_ms;
    use std::time::Duration;

    fn ms(n: u64) -> Option<Duration> {
        Some(Duration::from_millis(n))
    }

    #[test]
    fn the_expected_timeout_as_envoys_router_computes_it() {
        let zero = Duration::ZERO;
        // The route timeout alone.
        assert_eq!(expected_timeout_ms(ms(15000), None, zero), Some(15000));
        // A shorter per-try timeout wins; one not shorter than the route's is ignored.
        assert_eq!(expected_timeout_ms(ms(15000), ms(250), zero), Some(250));
        assert_eq!(expected_timeout_ms(ms(200), ms(250), zero), Some(200));
        // No route timeout: the per-try one, or nothing.
        assert_eq!(expected_timeout_ms(None, ms(250), zero), Some(250));
        assert_eq!(expected_timeout_ms(None, None, zero), None);
        // A retry gets what the route timeout leaves, at least 1 ms.
        let later = Duration::from_millis(900);
        assert_eq!(expected_timeout_ms(ms(1000), ms(250), later), Some(100));
        assert_eq!(expected_timeout_ms(ms(1000), None, later), Some(100));
        assert_eq!(
            expected_timeout_ms(ms(1000), None, Duration::from_secs(2)),
            Some(1)
        );
    }
}
