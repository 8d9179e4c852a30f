//! `envoy.filters.http.health_check`: answers a load balancer's health checks at the proxy.
//!
//! A request whose headers match the filter's `headers` is a health check. Outside
//! pass-through mode weir answers it: 200, or 503 (`LH`) when `/healthcheck/fail` is in force
//! or a cluster in `cluster_min_healthy_percentages` has too few healthy hosts. In pass-through
//! mode it goes to the origin like any request, unless the health check failed (then 503).
//! Answers to health checks name this proxy's cluster (`x-envoy-upstream-healthchecked-cluster`);
//! while the health check fails, every other response says so
//! (`x-envoy-immediate-health-check-fail: true`), so callers drain this proxy.

use bytes::Bytes;
use weir_config::HealthCheckConfig;
use weir_http1::{RequestHead, ResponseHead};

use super::{EncodeEnv, FilterEnv, Verdict};
use crate::http::local_reply::{LocalReply, ResponseFlag};
use crate::router::route_table::header_matches;

/// The health check filter on one stream.
#[derive(Debug)]
pub(crate) struct HealthCheck {
    config: HealthCheckConfig,
    /// The request is a health check.
    is_check: bool,
    /// weir answers it (and holds it until its end).
    answering: bool,
}

impl HealthCheck {
    pub(crate) fn new(config: HealthCheckConfig) -> Self {
        HealthCheck {
            config,
            is_check: false,
            answering: false,
        }
    }

    pub(crate) fn decode_headers(
        &mut self,
        head: &RequestHead,
        end_stream: bool,
        env: &mut FilterEnv<'_>,
    ) -> Verdict {
        self.is_check = self
            .config
            .headers
            .iter()
            .all(|m| header_matches(m, env.authority, env.scheme, head));
        self.answering =
            self.is_check && (!self.config.pass_through_mode || env.health_check_failed);
        match (self.answering, end_stream) {
            (false, _) => Verdict::Continue,
            (true, true) => Verdict::Reply(self.answer(env)),
            (true, false) => Verdict::Stop { wake_after: None },
        }
    }

    /// A health check with a body is answered at its end; the body is not kept.
    pub(crate) fn decode_data(&mut self, end_stream: bool, env: &mut FilterEnv<'_>) -> Verdict {
        match (self.answering, end_stream) {
            (false, _) => Verdict::Continue,
            (true, true) => Verdict::Reply(self.answer(env)),
            (true, false) => Verdict::Discard,
        }
    }

    pub(crate) fn encode_headers(&mut self, head: &mut ResponseHead, env: &EncodeEnv<'_>) {
        if self.is_check {
            head.headers.set(
                "x-envoy-upstream-healthchecked-cluster",
                Bytes::copy_from_slice(env.local_cluster.as_bytes()),
            );
        } else if env.health_check_failed {
            head.headers.set(
                "x-envoy-immediate-health-check-fail",
                Bytes::from_static(b"true"),
            );
        }
    }

    fn answer(&self, env: &FilterEnv<'_>) -> LocalReply {
        let healthy = !env.health_check_failed && self.clusters_healthy(env);
        let mut reply = LocalReply::new(if healthy { 200 } else { 503 }, Bytes::new())
            .because("health_check_filter");
        if !healthy {
            reply.flag = Some(ResponseFlag::FailedLocalHealthCheck);
        }
        reply
    }

    /// Every listed cluster has at least its share of healthy hosts (a cluster that does not
    /// exist, or has no hosts, fails unless its share is 0), as Envoy counts membership.
    fn clusters_healthy(&self, env: &FilterEnv<'_>) -> bool {
        self.config
            .cluster_min_healthy_percentages
            .iter()
            .all(
                |(name, min)| match env.clusters.iter().find(|(n, _, _)| n == name) {
                    None => false,
                    Some(&(_, 0, _)) => *min == 0.0,
                    Some(&(_, total, healthy)) => healthy as f64 >= total as f64 * min / 100.0,
                },
            )
    }
}
