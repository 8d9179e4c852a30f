//! A checked request's way through the stream's HTTP filters to the router: its head, then
//! its body and end as they arrive. The filters themselves are sans-IO (`http::filter`); here
//! the worker hands them what they read and carries out what they decide: pass the request to
//! the router, hold it (a timer when a filter asks for one), or answer it.

use bytes::Bytes;
use weir_http1::RequestHead;

use crate::event::token::Id;
use crate::http::active_stream::Tunnel;
use crate::http::filter::{Decoded, FilterEnv, StreamFilters};
use crate::http::local_reply::LocalReply;
use crate::router::{self, forward};
use crate::worker::{TimerKey, Worker};

impl Worker {
    /// Matches the route (the filters read its per-filter config and cluster), decides an
    /// upgrade (`upgrade`: what the request asks to switch to) and runs the filters on the head.
    pub(crate) fn start_filters(
        &mut self,
        sid: Id,
        mut request: RequestHead,
        authority: Bytes,
        end_stream: bool,
        upgrade: Option<Bytes>,
    ) {
        let Some(stream) = self.streams.get_mut(sid) else {
            return;
        };
        let Some(ds) = self.downstreams.get(stream.downstream) else {
            return;
        };
        let chain = &ds.chain;
        let route = chain.routes.find(
            &authority,
            chain.scheme(),
            &request,
            &self.runtime,
            self.rng.u64(..),
        );
        let cluster = route.and_then(|r| router::pick_cluster(&chain.routes, r, &mut self.rng));
        stream.route = route;
        stream.forwarded = cluster.is_some();
        stream.cluster = cluster.unwrap_or(0);
        // An upgrade the route (or, without one, the connection manager) does not allow is
        // refused before any filter sees it, as Envoy does; a CONNECT with no route goes on to
        // the router's 404.
        if let Some(kind) = upgrade {
            match forward::upgrade_allowed(chain, route, &kind) {
                None if route.is_some() || !kind.eq_ignore_ascii_case(b"connect") => {
                    stream.forwarded = false;
                    let reply = LocalReply::new(403, Bytes::new()).because("upgrade_failed");
                    self.log_request(sid, &request);
                    return self.local_reply(sid, route, reply);
                }
                None => {}
                Some(true) => stream.tunnel = Tunnel::TerminateConnect,
                Some(false) => {
                    // Hop-by-hop headers were removed; an upgrade goes on with its own.
                    request
                        .headers
                        .set("connection", Bytes::from_static(b"upgrade"));
                    request.headers.set("upgrade", kind);
                    stream.tunnel = Tunnel::Upgrade;
                }
            }
        }
        stream.authority = authority;
        stream.retry.head = Some(request);
        if chain.filters.filters.is_empty() && chain.filters.router {
            return self.route_request(sid);
        }
        stream.filters = chain.filters.instantiate(&chain.routes, route);
        // The filters read the route's cluster by name: one a reload added or gave a
        // number again is taken first.
        if let Some(c) = cluster {
            self.cluster_in_force(c);
        }
        let decoded = self.with_filters(sid, |filters, head, env| {
            filters.decode_headers(head, end_stream, env)
        });
        self.after_filters(sid, decoded);
    }

    /// Request body bytes: to the router once the filters let the request through, else to
    /// the filter that holds it.
    pub(crate) fn request_data(&mut self, sid: Id, data: Bytes) {
        let Some(stream) = self.streams.get(sid) else {
            return;
        };
        if stream.filters.routed() {
            return self.send_upstream(sid, data);
        }
        let decoded = self.with_filters(sid, |filters, head, env| {
            filters.decode_data(data, false, head, env)
        });
        self.after_filters(sid, decoded);
    }

    /// The request's end, the same way.
    pub(crate) fn request_end(&mut self, sid: Id) {
        let Some(stream) = self.streams.get(sid) else {
            return;
        };
        if stream.filters.routed() {
            return self.router_end(sid);
        }
        let decoded = self.with_filters(sid, |filters, head, env| {
            filters.decode_data(Bytes::new(), true, head, env)
        });
        self.after_filters(sid, decoded);
    }

    /// The timer a holding filter asked for.
    pub(crate) fn on_filter_wake(&mut self, sid: Id) {
        let Some(stream) = self.streams.get_mut(sid) else {
            return;
        };
        stream.filter_timer = None;
        let decoded = self.with_filters(sid, |filters, head, env| filters.on_wake(head, env));
        self.after_filters(sid, decoded);
        // Reading stopped while the filter held the request past its limit.
        if let Some(ds) = self.streams.get(sid).map(|s| s.downstream) {
            self.deferred
                .push_back(crate::worker::Deferred::Downstream(ds));
        }
    }

    /// Runs `step` on the stream's filters with what they read about the world.
    fn with_filters(
        &mut self,
        sid: Id,
        step: impl FnOnce(&mut StreamFilters, &mut RequestHead, &mut FilterEnv<'_>) -> Decoded,
    ) -> Option<Decoded> {
        let stream = self.streams.get_mut(sid)?;
        let ds = self.downstreams.get(stream.downstream)?;
        let http = self.stats.http.get(ds.chain.stats)?;
        let head = stream.retry.head.as_mut()?;
        let route_cluster = stream
            .forwarded
            .then(|| self.clusters.get(stream.cluster))
            .flatten()
            .map(|c| &*c.name);
        let mut env = FilterEnv {
            rng: &mut self.rng,
            route_cluster,
            health_check_failed: self
                .control
                .server
                .health_check_failed
                .load(std::sync::atomic::Ordering::Relaxed),
            clusters: &self.cluster_health,
            fault_stats: &http.fault,
            authority: &stream.authority,
            scheme: ds.chain.scheme(),
            runtime: &self.runtime,
        };
        Some(step(&mut stream.filters, head, &mut env))
    }

    /// Carries out what the filters decided.
    fn after_filters(&mut self, sid: Id, decoded: Option<Decoded>) {
        match decoded {
            None | Some(Decoded::Held { wake_after: None }) => {}
            Some(Decoded::ToRouter) => {
                let ds = self.streams.get(sid).map(|s| s.downstream);
                if ds
                    .and_then(|d| self.downstreams.get(d))
                    .is_some_and(|d| d.chain.filters.router)
                {
                    self.route_request(sid);
                }
            }
            Some(Decoded::Held {
                wake_after: Some(after),
            }) => {
                let timer = self.arm(after, TimerKey::FilterWake(sid));
                if let Some(stream) = self.streams.get_mut(sid) {
                    // Only the fault filter asks for a timer: its delay.
                    stream.delay_injected = true;
                    let mut old = stream.filter_timer.replace(timer);
                    self.disarm(&mut old);
                }
            }
            Some(Decoded::Reply(reply)) => {
                let Some(stream) = self.streams.get_mut(sid) else {
                    return;
                };
                let route = stream.route;
                // Answered before the router: nothing was forwarded.
                stream.forwarded = false;
                if let Some(head) = stream.retry.head.take() {
                    self.log_request(sid, &head);
                }
                self.local_reply(sid, route, reply);
            }
        }
    }
}
