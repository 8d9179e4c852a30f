//! A failed request in words: one line of why (for the flow trace and lists), the full
//! account (`GET /explain?stream=ID`), and JSON.

use std::fmt::Write;
use std::time::Duration;

use serde_json::{Value, json};

use super::{
    AttemptNote, Breakers, ConnectionUse, FailureRecord, HostCounts, Outcome, Use, Verdict,
};
use crate::access_log::format::rfc3339;
use crate::upstream::circuit_breaker::Resource;

/// A breaker's config field.
fn breaker_field(r: Resource) -> &'static str {
    match r {
        Resource::Connections => "max_connections",
        Resource::Pending => "max_pending_requests",
        Resource::Requests => "max_requests",
        Resource::Retries => "max_retries",
        Resource::Pools => "max_connection_pools",
    }
}

fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

impl Outcome {
    /// What happened, in a few words.
    fn words(self) -> String {
        match self {
            Outcome::ConnectRefused => "connection refused".into(),
            Outcome::ConnectFailed => "connect failed".into(),
            Outcome::ConnectTimeout => "no connection within connect_timeout".into(),
            Outcome::Tls => "TLS handshake with the origin failed".into(),
            Outcome::Closed => "the origin closed the connection".into(),
            Outcome::Reset => "the origin reset the connection".into(),
            Outcome::ProtocolError => "the origin's response was malformed".into(),
            Outcome::PerTryTimeout => "no response within per_try_timeout".into(),
            Outcome::RouteTimeout => "no response within the route's timeout".into(),
            Outcome::Status(s) => format!("the origin answered {s}"),
            Outcome::Overflow(r) => {
                format!("refused by the circuit breaker {}", breaker_field(r))
            }
        }
    }

    fn name(self) -> &'static str {
        match self {
            Outcome::ConnectRefused => "connect_refused",
            Outcome::ConnectFailed => "connect_failed",
            Outcome::ConnectTimeout => "connect_timeout",
            Outcome::Tls => "tls_failed",
            Outcome::Closed => "connection_termination",
            Outcome::Reset => "remote_reset",
            Outcome::ProtocolError => "protocol_error",
            Outcome::PerTryTimeout => "per_try_timeout",
            Outcome::RouteTimeout => "route_timeout",
            Outcome::Status(_) => "status",
            Outcome::Overflow(_) => "overflow",
        }
    }
}

impl Verdict {
    fn words(self) -> String {
        match self {
            Verdict::Retry { retry, of } => format!("retried (retry {retry} of {of})"),
            Verdict::FreshConnection => {
                "sent again on a fresh connection (a pooled connection the origin had closed)"
                    .into()
            }
            Verdict::NoPolicy => "not retried: the route has no retry policy".into(),
            Verdict::NotCovered => "not retried: the retry policy's retry_on does not cover it".into(),
            Verdict::ResponseStarted => {
                "not retried: the response had started, so it was cut short".into()
            }
            Verdict::NotReplayable => {
                "not retried: the request could not be sent again (its body outgrew the retry buffer)"
                    .into()
            }
            Verdict::LimitReached { num_retries } => {
                format!("not retried: retries exhausted (num_retries {num_retries})")
            }
            Verdict::RetryBreakerOpen { in_use, max } => format!(
                "not retried: the retry circuit breaker was open ({in_use} of {max} retries under way)"
            ),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Verdict::Retry { .. } => "retry",
            Verdict::FreshConnection => "fresh_connection",
            Verdict::NoPolicy => "no_retry_policy",
            Verdict::NotCovered => "retry_on_does_not_cover",
            Verdict::ResponseStarted => "response_started",
            Verdict::NotReplayable => "not_replayable",
            Verdict::LimitReached { .. } => "retries_exhausted",
            Verdict::RetryBreakerOpen { .. } => "retry_breaker_open",
        }
    }
}

impl HostCounts {
    fn words(&self) -> String {
        if self.pools_full {
            return "a new connection pool was refused by the circuit breaker max_connection_pools"
                .into();
        }
        if self.total == 0 {
            return "the cluster has no hosts".into();
        }
        let mut parts = Vec::new();
        let mut add = |n: u32, what: &str| {
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        };
        add(self.failed_health_check, "failing active health checks");
        add(self.ejected, "ejected by outlier detection");
        add(self.unhealthy_status, "marked unhealthy by health_status");
        add(self.excluded, "draining");
        add(self.degraded, "degraded");
        format!(
            "{} hosts, {} healthy ({})",
            self.total,
            self.healthy,
            parts.join(", ")
        )
    }

    fn json(&self) -> Value {
        json!({
            "total": self.total,
            "healthy": self.healthy,
            "degraded": self.degraded,
            "failed_active_health_check": self.failed_health_check,
            "ejected": self.ejected,
            "unhealthy_health_status": self.unhealthy_status,
            "draining": self.excluded,
            "pools_full": self.pools_full,
        })
    }
}

impl Breakers {
    fn words(&self) -> String {
        let u = |u: Use| format!("{}/{}", u.in_use, u.max);
        format!(
            "connections {}, pending {}, requests {}, retries {}",
            u(self.connections),
            u(self.pending),
            u(self.requests),
            u(self.retries)
        )
    }

    fn json(&self) -> Value {
        let u = |u: Use| json!({"in_use": u.in_use, "max": u.max});
        json!({
            "max_connections": u(self.connections),
            "max_pending_requests": u(self.pending),
            "max_requests": u(self.requests),
            "max_retries": u(self.retries),
        })
    }
}

impl AttemptNote {
    /// What the attempt met, with how far its response had come.
    fn met(&self) -> String {
        let mut out = self.outcome.words();
        let cut = matches!(
            self.outcome,
            Outcome::Closed | Outcome::Reset | Outcome::ProtocolError | Outcome::RouteTimeout
        );
        if cut {
            match self.response_status {
                Some(status) => {
                    let _ = write!(
                        out,
                        " after the response head ({status}) and {} body bytes",
                        self.response_bytes
                    );
                }
                None => out.push_str(" before the response"),
            }
        }
        out
    }

    fn connection_words(&self) -> &'static str {
        match self.connection {
            ConnectionUse::New => "new connection",
            ConnectionUse::Reused => "pooled connection",
            ConnectionUse::None => "no connection",
        }
    }

    fn json(&self) -> Value {
        let mut v = json!({
            "host": self.host.map(|h| h.to_string()),
            "connection": match self.connection {
                ConnectionUse::New => "new",
                ConnectionUse::Reused => "reused",
                ConnectionUse::None => "none",
            },
            "outcome": self.outcome.name(),
            "what": self.met(),
            "took_ms": self.took.as_secs_f64() * 1000.0,
            "response_status": self.response_status,
            "response_bytes": self.response_bytes,
            "breakers": self.breakers.json(),
        });
        if let Outcome::Status(s) = self.outcome {
            v["status"] = s.into();
        }
        if let Outcome::Overflow(r) = self.outcome {
            v["breaker"] = breaker_field(r).into();
        }
        if let Some(p) = self.pool {
            v["pool"] = json!({"connections": p.connections, "waiting": p.waiting});
        }
        if let Some(verdict) = self.verdict {
            v["retry"] = json!({"decision": verdict.name(), "why": verdict.words()});
            if let Some(b) = self.backoff {
                v["retry"]["backoff_ms"] = (b.as_secs_f64() * 1000.0).into();
            }
        }
        v
    }
}

impl FailureRecord {
    /// Why, in one line: what the last attempt met and why it was the last, no healthy host,
    /// or what weir answered and why.
    pub(crate) fn summary(&self) -> String {
        match self.status {
            0 => format!("the client went away; before that: {}", self.cause()),
            _ => self.cause(),
        }
    }

    fn cause(&self) -> String {
        let cluster = self.cluster.as_deref().unwrap_or("-");
        if let Some(hosts) = &self.notes.hosts {
            return format!("no healthy host in cluster {cluster}: {}", hosts.words());
        }
        if let Some(last) = self.notes.attempts.last() {
            let tries = self.notes.attempts.len();
            let mut out = last.met();
            if let Some(host) = last.host {
                let _ = write!(out, " ({host}");
                if tries > 1 {
                    let _ = write!(out, ", attempt {tries}");
                }
                out.push(')');
            }
            if let Some(verdict) = last.verdict {
                let _ = write!(out, "; {}", verdict.words());
            }
            return out;
        }
        match self.details {
            "route_not_found" => "no route matched the request".into(),
            "via_upstream" => format!("the origin answered {}", self.status),
            details => match self.notes.local_details {
                Some(_) => format!("weir answered {} ({details})", self.status),
                None => format!("{} ({details})", self.status),
            },
        }
    }

    /// The full account, as `GET /explain?stream=ID` prints it.
    pub(crate) fn text(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "stream {} (worker {}) ended {} after {}",
            self.stream,
            self.worker,
            rfc3339(self.at),
            ms(self.duration)
        );
        let row = |out: &mut String, name: &str, value: &str| {
            let _ = writeln!(out, "  {name:<11}{value}");
        };
        let mut request = format!("{} {} {}", self.method, self.authority, self.path);
        if let Some(id) = &self.request_id {
            let _ = write!(request, " (x-request-id {id})");
        }
        row(out, "request", &request);
        row(out, "from", &self.downstream.to_string());
        if let Some((vhost, route)) = &self.route {
            let route = match route.is_empty() {
                true => "(unnamed route)".to_owned(),
                false => format!("route {route}"),
            };
            let cluster = self
                .cluster
                .as_deref()
                .map_or(String::new(), |c| format!(" -> cluster {c}"));
            row(
                out,
                "route",
                &format!("virtual host {vhost}, {route}{cluster}"),
            );
        }
        let status = match self.status {
            0 => "no response (the connection closed)".to_owned(),
            s if self.cut => format!("{s}, cut short"),
            s => s.to_string(),
        };
        let by = match self.notes.local_details {
            Some(_) => ", answered by weir",
            None => "",
        };
        row(out, "response", &format!("{status}{by}"));
        let flags = if self.flags.is_empty() {
            "-"
        } else {
            self.flags
        };
        row(out, "flags", flags);
        row(out, "details", self.details);
        row(out, "why", &self.summary());
        if let Some(hosts) = &self.notes.hosts {
            row(out, "hosts", &hosts.words());
        }
        for (i, a) in self.notes.attempts.iter().enumerate() {
            let host = a.host.map_or("-".to_owned(), |h| h.to_string());
            let head = format!(
                "{host}, {}: {} after {}",
                a.connection_words(),
                a.met(),
                ms(a.took)
            );
            row(out, &format!("attempt {}", i + 1), &head);
            if let Some(v) = a.verdict {
                let backoff = a
                    .backoff
                    .map_or(String::new(), |b| format!(" after a {} back-off", ms(b)));
                row(out, "", &format!("{}{backoff}", v.words()));
            }
            row(out, "", &format!("breakers: {}", a.breakers.words()));
            if let Some(p) = a.pool {
                row(
                    out,
                    "",
                    &format!(
                        "the host's pool on this worker: connections {}, requests waiting {}",
                        p.connections, p.waiting
                    ),
                );
            }
        }
    }

    pub(crate) fn json(&self) -> Value {
        json!({
            "stream": self.stream,
            "worker": self.worker,
            "ended": rfc3339(self.at),
            "duration_ms": self.duration.as_secs_f64() * 1000.0,
            "method": &*self.method,
            "authority": &*self.authority,
            "path": &*self.path,
            "request_id": self.request_id.as_deref(),
            "downstream": self.downstream.to_string(),
            "virtual_host": self.route.as_ref().map(|r| &*r.0),
            "route": self.route.as_ref().map(|r| &*r.1),
            "cluster": self.cluster.as_deref(),
            "status": self.status,
            "cut": self.cut,
            "local_reply": self.notes.local_details.is_some(),
            "response_flags": self.flags,
            "response_code_details": self.details,
            "why": self.summary(),
            "hosts": self.notes.hosts.as_ref().map(HostCounts::json),
            "attempts": self.notes.attempts.iter().map(AttemptNote::json).collect::<Vec<_>>(),
        })
    }
}
