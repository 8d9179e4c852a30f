//! Active health checking, sans IO: one host's checking state (Envoy's health check session),
//! what a check sends, how its answer is judged, and when the next check is due. The
//! `weir:health` thread ([`super::health_checker`]) does the I/O.
//!
//! ```text
//!              first success, or healthy_threshold successes in a row
//!   unhealthy ─────────────────────────────────────────────────────▶ healthy
//!   (at start) ◀───────────────────────────────────────────────────
//!              unhealthy_threshold network failures in a row, or at once: a status that
//!              is neither expected nor retriable, x-envoy-immediate-health-check-fail
//! ```

use std::time::Duration;

use bytes::Bytes;
use weir_config::{HealthCheck, HttpHealthCheck};
use weir_http1::{Headers, RequestHead, Version};

/// What one check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Healthy,
    /// `network`: no answer (connect failed, timed out, the connection broke), which counts
    /// toward `unhealthy_threshold`; otherwise the answer was bad, which fails the host at
    /// once unless `retriable`.
    Failed {
        network: bool,
        retriable: bool,
    },
}

/// No answer: the connect failed, the check timed out, or the connection broke.
pub(crate) const NO_ANSWER: Verdict = Verdict::Failed {
    network: true,
    retriable: false,
};

/// How a verdict moved the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transition {
    Unchanged,
    /// Toward a change, not there yet (a threshold not reached).
    Pending,
    /// The host's health changed.
    Changed,
}

/// One host's checking state.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// As the balancers see it; a host starts unhealthy until its first check passes.
    pub(crate) healthy: bool,
    /// No check has completed yet.
    pub(crate) first_check: bool,
    num_healthy: u32,
    num_unhealthy: u32,
}

impl Session {
    pub(crate) fn new() -> Session {
        Session {
            healthy: false,
            first_check: true,
            num_healthy: 0,
            num_unhealthy: 0,
        }
    }

    /// Applies a check's verdict.
    pub(crate) fn judge(&mut self, verdict: Verdict, c: &HealthCheck) -> Transition {
        let first = std::mem::replace(&mut self.first_check, false);
        match verdict {
            Verdict::Healthy => {
                self.num_unhealthy = 0;
                if self.healthy {
                    return Transition::Unchanged;
                }
                // The first check that passes makes a host healthy at once (Envoy's faster
                // start).
                self.num_healthy += 1;
                if first || self.num_healthy >= c.healthy_threshold {
                    self.healthy = true;
                    self.num_healthy = 0;
                    return Transition::Changed;
                }
                Transition::Pending
            }
            Verdict::Failed { network, retriable } => {
                self.num_healthy = 0;
                if !self.healthy {
                    return Transition::Unchanged;
                }
                self.num_unhealthy += 1;
                if (!network && !retriable) || self.num_unhealthy >= c.unhealthy_threshold {
                    self.healthy = false;
                    self.num_unhealthy = 0;
                    return Transition::Changed;
                }
                Transition::Pending
            }
        }
    }

    /// The host was failed from outside (an origin's `x-envoy-immediate-health-check-fail`).
    pub(crate) fn fail_passively(&mut self) {
        self.healthy = false;
        self.num_healthy = 0;
        self.num_unhealthy = 0;
    }

    /// How long until the next check after one that made `transition`; `traffic`: the
    /// cluster has carried requests. `random` gives a number below its argument.
    pub(crate) fn next_wait(
        &self,
        transition: Transition,
        c: &HealthCheck,
        traffic: bool,
        random: &mut impl FnMut(u64) -> u64,
    ) -> Duration {
        let base = match (traffic, self.healthy, transition) {
            (false, true, _) => c
                .no_traffic_healthy_interval
                .unwrap_or(c.no_traffic_interval),
            (false, false, _) => c.no_traffic_interval,
            (true, true, Transition::Changed) => c.healthy_edge_interval,
            (true, false, Transition::Changed) => c.unhealthy_edge_interval,
            (true, true, _) => c.interval,
            (true, false, _) => c.unhealthy_interval,
        };
        let ms = base.as_millis() as u64;
        let mut jitter = 0;
        let percent = u64::from(c.interval_jitter_percent) * ms / 100;
        if percent > 0 {
            jitter += random(percent);
        }
        let absolute = c.interval_jitter.as_millis() as u64;
        if absolute > 0 {
            jitter += random(absolute);
        }
        base + Duration::from_millis(jitter)
    }
}

/// The request an HTTP check sends: `method path`, `host` (or the cluster's name), Envoy's
/// `user-agent: Envoy/HC`, then the configured headers.
pub(crate) fn http_request(http: &HttpHealthCheck, cluster: &str, close: bool) -> RequestHead {
    let mut headers = Headers::with_capacity(4 + http.request_headers_to_add.len());
    let host = http.host.as_deref().unwrap_or(cluster);
    headers.append("host", Bytes::copy_from_slice(host.as_bytes()));
    headers.append("user-agent", Bytes::from_static(b"Envoy/HC"));
    if close {
        headers.append("connection", Bytes::from_static(b"close"));
    }
    for name in &http.request_headers_to_remove {
        headers.remove(name);
    }
    for add in &http.request_headers_to_add {
        let value = Bytes::copy_from_slice(add.value.as_bytes());
        let name = Bytes::copy_from_slice(add.key.as_bytes());
        match add.append_action {
            weir_config::AppendAction::AppendIfExistsOrAdd => headers.append(name, value),
            weir_config::AppendAction::AddIfAbsent if headers.contains(&add.key) => {}
            weir_config::AppendAction::OverwriteIfExists if !headers.contains(&add.key) => {}
            _ => headers.set(name, value),
        }
    }
    RequestHead {
        method: Bytes::copy_from_slice(http.method.as_bytes()),
        target: Bytes::copy_from_slice(http.path.as_bytes()),
        version: Version::Http11,
        headers,
    }
}

/// An HTTP check's answer: an expected status passes, unless the origin says to fail it at
/// once; a retriable one counts toward the threshold; anything else fails the host.
pub(crate) fn judge_http(status: u16, headers: &Headers, http: &HttpHealthCheck) -> Verdict {
    let within = |ranges: &[(u16, u16)]| ranges.iter().any(|&(a, b)| (a..b).contains(&status));
    if headers.contains("x-envoy-immediate-health-check-fail") {
        return Verdict::Failed {
            network: false,
            retriable: false,
        };
    }
    if within(&http.expected_statuses) {
        return Verdict::Healthy;
    }
    Verdict::Failed {
        network: false,
        retriable: within(&http.retriable_statuses),
    }
}

/// A TCP check's answer: every `receive` block found in `received`, in order, anywhere.
pub(crate) fn tcp_matches(received: &[u8], receive: &[Vec<u8>]) -> bool {
    let mut at = 0;
    for block in receive {
        if block.is_empty() {
            continue;
        }
        let Some(found) = received[at..]
            .windows(block.len())
            .position(|w| w == block.as_slice())
        else {
            return false;
        };
        at += found + block.len();
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_config::{HealthCheckKind, TcpHealthCheck};

    fn config(unhealthy: u32, healthy: u32) -> HealthCheck {
        HealthCheck {
            timeout: Duration::from_secs(1),
            interval: Duration::from_secs(5),
            initial_jitter: Duration::ZERO,
            interval_jitter: Duration::ZERO,
            interval_jitter_percent: 0,
            unhealthy_threshold: unhealthy,
            healthy_threshold: healthy,
            alt_port: None,
            reuse_connection: true,
            no_traffic_interval: Duration::from_secs(60),
            no_traffic_healthy_interval: None,
            unhealthy_interval: Duration::from_secs(2),
            unhealthy_edge_interval: Duration::from_secs(1),
            healthy_edge_interval: Duration::from_secs(3),
            event_log_path: None,
            always_log_health_check_failures: false,
            always_log_health_check_success: false,
            kind: HealthCheckKind::Tcp(TcpHealthCheck {
                send: Vec::new(),
                receive: Vec::new(),
            }),
        }
    }

    const NETWORK: Verdict = NO_ANSWER;
    const BAD: Verdict = Verdict::Failed {
        network: false,
        retriable: false,
    };
    const RETRIABLE: Verdict = Verdict::Failed {
        network: false,
        retriable: true,
    };

    #[test]
    fn thresholds_and_the_first_check() {
        let c = config(3, 2);
        let mut s = Session::new();
        assert!(!s.healthy, "unhealthy until checked");
        assert_eq!(
            s.judge(Verdict::Healthy, &c),
            Transition::Changed,
            "first pass"
        );
        assert_eq!(s.judge(NETWORK, &c), Transition::Pending);
        assert_eq!(s.judge(RETRIABLE, &c), Transition::Pending);
        assert_eq!(s.judge(NETWORK, &c), Transition::Changed, "third in a row");
        assert!(!s.healthy);
        assert_eq!(s.judge(Verdict::Healthy, &c), Transition::Pending);
        assert_eq!(
            s.judge(NETWORK, &c),
            Transition::Unchanged,
            "the run restarts"
        );
        assert_eq!(s.judge(Verdict::Healthy, &c), Transition::Pending);
        assert_eq!(s.judge(Verdict::Healthy, &c), Transition::Changed);
        assert_eq!(
            s.judge(BAD, &c),
            Transition::Changed,
            "a bad answer fails at once"
        );
    }

    #[test]
    fn intervals_follow_health_traffic_and_edges() {
        let c = config(1, 1);
        let mut s = Session::new();
        let mut none = |_| 0;
        let wait = |s: &Session, t, traffic, r: &mut dyn FnMut(u64) -> u64| {
            s.next_wait(t, &c, traffic, &mut |n| r(n)).as_secs()
        };
        assert_eq!(wait(&s, Transition::Unchanged, false, &mut none), 60);
        assert_eq!(wait(&s, Transition::Unchanged, true, &mut none), 2);
        s.judge(Verdict::Healthy, &c);
        assert_eq!(wait(&s, Transition::Changed, true, &mut none), 3);
        assert_eq!(wait(&s, Transition::Unchanged, true, &mut none), 5);
        s.judge(NETWORK, &c);
        assert_eq!(wait(&s, Transition::Changed, true, &mut none), 1);
        let mut c = config(1, 1);
        c.interval_jitter_percent = 10;
        c.interval_jitter = Duration::from_millis(300);
        let mut seen = Vec::new();
        let waited = s.next_wait(Transition::Unchanged, &c, true, &mut |n| {
            seen.push(n);
            n - 1
        });
        assert_eq!(seen, [200, 300], "10 % of 2 s, then the absolute jitter");
        assert_eq!(waited, Duration::from_millis(2000 + 199 + 299));
    }

    #[test]
    fn http_answers_are_judged_as_envoy_judges_them() {
        let http = HttpHealthCheck {
            host: None,
            path: "/healthz".into(),
            method: "GET".into(),
            request_headers_to_add: Vec::new(),
            request_headers_to_remove: Vec::new(),
            expected_statuses: vec![(200, 300)],
            retriable_statuses: vec![(503, 504)],
        };
        let none = Headers::with_capacity(0);
        assert_eq!(judge_http(204, &none, &http), Verdict::Healthy);
        assert_eq!(judge_http(503, &none, &http), RETRIABLE);
        assert_eq!(judge_http(500, &none, &http), BAD);
        let mut fail = Headers::with_capacity(1);
        fail.append(
            "x-envoy-immediate-health-check-fail",
            Bytes::from_static(b"true"),
        );
        assert_eq!(judge_http(200, &fail, &http), BAD);
        let head = http_request(&http, "backend", false);
        let get = |name| head.headers.get(name).map(|v| &v[..]);
        assert_eq!(get("host"), Some(&b"backend"[..]));
        assert_eq!(get("user-agent"), Some(&b"Envoy/HC"[..]));
    }

    #[test]
    fn tcp_blocks_are_found_in_order() {
        let blocks = vec![b"PO".to_vec(), b"NG".to_vec()];
        assert!(tcp_matches(b"xxPOyyNGzz", &blocks));
        assert!(!tcp_matches(b"NGPO", &blocks));
        assert!(!tcp_matches(b"PO", &blocks));
        assert!(tcp_matches(b"", &[]));
    }
}
