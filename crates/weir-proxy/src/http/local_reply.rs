//! Responses weir makes itself: direct responses, redirects, and failures, with Envoy's bodies
//! and response flags so logs and dashboards read the same.

use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

/// Envoy's response flags (the letters of `%RESPONSE_FLAGS%`) for the failures weir answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFlag {
    /// NR: no route configured for the request.
    NoRouteFound,
    /// NC: the route's cluster is gone (a reload removed it while the request's chain
    /// still named it).
    NoClusterFound,
    /// UH: the cluster has no healthy upstream host.
    NoHealthyUpstream,
    /// UF: upstream connection failure (refused or timed out).
    UpstreamConnectionFailure,
    /// UC: upstream connection termination before the response.
    UpstreamConnectionTermination,
    /// UR: upstream reset (TCP RST) before the response.
    UpstreamRemoteReset,
    /// UPE: the upstream sent a malformed response.
    UpstreamProtocolError,
    /// UT: upstream request timeout (the route timeout).
    UpstreamRequestTimeout,
    /// DPE: the downstream request was malformed.
    DownstreamProtocolError,
    /// SI: stream idle timeout.
    StreamIdleTimeout,
    /// DC: the downstream connection terminated mid-stream.
    DownstreamConnectionTermination,
    /// FI: the fault filter aborted the request.
    FaultInjected,
    /// LH: the health check filter answered that this proxy is unhealthy.
    FailedLocalHealthCheck,
    /// UO: a circuit breaker of the cluster was open (connections, pending requests,
    /// requests, retries or connection pools at their limit).
    UpstreamOverflow,
}

impl ResponseFlag {
    /// The flag's letters as Envoy prints them.
    pub fn letters(self) -> &'static str {
        match self {
            ResponseFlag::NoRouteFound => "NR",
            ResponseFlag::NoClusterFound => "NC",
            ResponseFlag::NoHealthyUpstream => "UH",
            ResponseFlag::UpstreamConnectionFailure => "UF",
            ResponseFlag::UpstreamConnectionTermination => "UC",
            ResponseFlag::UpstreamRemoteReset => "UR",
            ResponseFlag::UpstreamProtocolError => "UPE",
            ResponseFlag::UpstreamRequestTimeout => "UT",
            ResponseFlag::DownstreamProtocolError => "DPE",
            ResponseFlag::StreamIdleTimeout => "SI",
            ResponseFlag::DownstreamConnectionTermination => "DC",
            ResponseFlag::FaultInjected => "FI",
            ResponseFlag::FailedLocalHealthCheck => "LH",
            ResponseFlag::UpstreamOverflow => "UO",
        }
    }

    /// The flags when the retry limit was also reached (`URX`), in Envoy's order: the order
    /// they were set in, so `URX` comes before the failure of the last attempt (checked against
    /// Envoy 1.40: `URX,UF`, `URX,UC`, `URX,UT`).
    pub(crate) fn with_retry_limit(flag: Option<ResponseFlag>) -> &'static str {
        match flag {
            None => "URX",
            Some(ResponseFlag::NoHealthyUpstream) => "UH,URX",
            Some(ResponseFlag::UpstreamRequestTimeout) => "URX,UT",
            Some(ResponseFlag::UpstreamRemoteReset) => "URX,UR",
            Some(ResponseFlag::UpstreamConnectionFailure) => "URX,UF",
            Some(ResponseFlag::UpstreamConnectionTermination) => "URX,UC",
            Some(ResponseFlag::UpstreamProtocolError) => "URX,UPE",
            Some(ResponseFlag::DownstreamConnectionTermination) => "DC,URX",
            Some(ResponseFlag::StreamIdleTimeout) => "URX,SI",
            Some(ResponseFlag::NoRouteFound) => "NR",
            Some(ResponseFlag::NoClusterFound) => "NC",
            Some(ResponseFlag::DownstreamProtocolError) => "DPE",
            // Answered before any upstream attempt: no retry was made.
            Some(ResponseFlag::FaultInjected) => "FI",
            Some(ResponseFlag::FailedLocalHealthCheck) => "LH",
            Some(ResponseFlag::UpstreamOverflow) => "URX,UO",
        }
    }

    /// The flags when a retry was refused by the retries circuit breaker (`UO`): set before
    /// the failure of the attempt that wanted it, as the retry decision comes first.
    pub(crate) fn with_retry_overflow(flag: Option<ResponseFlag>) -> &'static str {
        match flag {
            None | Some(ResponseFlag::UpstreamOverflow) => "UO",
            Some(ResponseFlag::UpstreamRequestTimeout) => "UO,UT",
            Some(ResponseFlag::UpstreamRemoteReset) => "UO,UR",
            Some(ResponseFlag::UpstreamConnectionFailure) => "UO,UF",
            Some(ResponseFlag::UpstreamConnectionTermination) => "UO,UC",
            Some(ResponseFlag::UpstreamProtocolError) => "UO,UPE",
            Some(ResponseFlag::NoHealthyUpstream) => "UH,UO",
            Some(ResponseFlag::DownstreamConnectionTermination) => "DC,UO",
            Some(ResponseFlag::StreamIdleTimeout) => "UO,SI",
            Some(flag) => flag.letters(),
        }
    }
}

/// Why an upstream attempt ended before its response, in Envoy's words (its stream reset
/// reasons), for the local reply's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResetReason {
    /// The connection could not be made (refused, unreachable).
    RemoteConnectionFailure,
    /// The connection was not made within `connect_timeout`.
    ConnectionTimeout,
    /// The origin closed the connection.
    ConnectionTermination,
    /// The origin reset the connection.
    RemoteReset,
    /// The origin's response was malformed.
    ProtocolError,
    /// A circuit breaker was open.
    Overflow,
}

/// Envoy's body for a reset reason: `…before headers. reset reason: R`, or after a retry
/// `…before headers. retried and the latest reset reason: R`.
macro_rules! reset_bodies {
    ($reason:literal) => {
        (
            concat!(
                "upstream connect error or disconnect/reset before headers. reset reason: ",
                $reason
            )
            .as_bytes(),
            concat!(
                "upstream connect error or disconnect/reset before headers. retried and the \
                 latest reset reason: ",
                $reason
            )
            .as_bytes(),
        )
    };
}

impl ResetReason {
    /// The reply's body; `retried`: the router had retried the request.
    fn body(self, retried: bool) -> &'static [u8] {
        let (first, after_retries) = match self {
            ResetReason::RemoteConnectionFailure => reset_bodies!("remote connection failure"),
            ResetReason::ConnectionTimeout => reset_bodies!("connection timeout"),
            ResetReason::ConnectionTermination => reset_bodies!("connection termination"),
            ResetReason::RemoteReset => reset_bodies!("remote reset"),
            ResetReason::ProtocolError => reset_bodies!("protocol error"),
            ResetReason::Overflow => reset_bodies!("overflow"),
        };
        if retried { after_retries } else { first }
    }
}

/// A response to send without an upstream.
#[derive(Debug, Clone)]
pub(crate) struct LocalReply {
    pub(crate) status: u16,
    pub(crate) body: Bytes,
    pub(crate) flag: Option<ResponseFlag>,
    /// `location` for redirects.
    pub(crate) location: Option<String>,
    /// Why this status, as Envoy's `%RESPONSE_CODE_DETAILS%` says it.
    pub(crate) details: &'static str,
    /// For an upstream failure before the response: the reset reason its body names.
    pub(crate) reset: Option<ResetReason>,
}

impl LocalReply {
    /// A direct response (or redirect) from the route table.
    pub(crate) fn new(status: u16, body: impl Into<Bytes>) -> Self {
        LocalReply {
            status,
            body: body.into(),
            flag: None,
            location: None,
            details: "direct_response",
            reset: None,
        }
    }

    /// The same reply with other details (a local reply that is not a route's).
    pub(crate) fn because(self, details: &'static str) -> Self {
        LocalReply { details, ..self }
    }

    /// A failure with Envoy's body for it.
    pub(crate) fn failure(flag: ResponseFlag) -> Self {
        let details = match flag {
            ResponseFlag::NoRouteFound => "route_not_found",
            ResponseFlag::NoHealthyUpstream => "no_healthy_upstream",
            ResponseFlag::NoClusterFound => "cluster_not_found",
            ResponseFlag::UpstreamConnectionFailure => {
                "upstream_reset_before_response_started{remote_connection_failure}"
            }
            ResponseFlag::UpstreamConnectionTermination => {
                "upstream_reset_before_response_started{connection_termination}"
            }
            ResponseFlag::UpstreamRemoteReset => {
                "upstream_reset_before_response_started{remote_reset}"
            }
            ResponseFlag::UpstreamProtocolError => {
                "upstream_reset_before_response_started{protocol_error}"
            }
            ResponseFlag::UpstreamRequestTimeout => "upstream_response_timeout",
            ResponseFlag::DownstreamProtocolError => "http1.codec_error",
            ResponseFlag::StreamIdleTimeout => "stream_idle_timeout",
            ResponseFlag::DownstreamConnectionTermination => "downstream_remote_disconnect",
            ResponseFlag::FaultInjected => "fault_filter_abort",
            ResponseFlag::FailedLocalHealthCheck => "health_check_filter",
            ResponseFlag::UpstreamOverflow => "upstream_reset_before_response_started{overflow}",
        };
        let reset = match flag {
            ResponseFlag::UpstreamConnectionFailure => Some(ResetReason::RemoteConnectionFailure),
            ResponseFlag::UpstreamConnectionTermination => Some(ResetReason::ConnectionTermination),
            ResponseFlag::UpstreamRemoteReset => Some(ResetReason::RemoteReset),
            ResponseFlag::UpstreamProtocolError => Some(ResetReason::ProtocolError),
            ResponseFlag::UpstreamOverflow => Some(ResetReason::Overflow),
            _ => None,
        };
        let (status, body): (u16, &'static [u8]) = match flag {
            ResponseFlag::NoRouteFound => (404, b""),
            ResponseFlag::NoHealthyUpstream => (503, b"no healthy upstream"),
            ResponseFlag::UpstreamProtocolError => (502, ResetReason::ProtocolError.body(false)),
            ResponseFlag::UpstreamConnectionFailure
            | ResponseFlag::UpstreamConnectionTermination
            | ResponseFlag::UpstreamRemoteReset
            | ResponseFlag::UpstreamOverflow => (503, reset.map_or(b"", |r| r.body(false))),
            ResponseFlag::UpstreamRequestTimeout => (504, b"upstream request timeout"),
            ResponseFlag::DownstreamProtocolError => (400, b"Bad Request"),
            ResponseFlag::StreamIdleTimeout => (408, b"stream timeout"),
            ResponseFlag::DownstreamConnectionTermination => (499, b""),
            ResponseFlag::FaultInjected => (503, b"fault filter abort"),
            ResponseFlag::FailedLocalHealthCheck | ResponseFlag::NoClusterFound => (503, b""),
        };
        LocalReply {
            flag: Some(flag),
            details,
            reset,
            ..LocalReply::new(status, Bytes::from_static(body))
        }
    }

    /// A connect timeout: UF with Envoy's "connection timeout" reason.
    pub(crate) fn connect_timeout() -> Self {
        LocalReply {
            flag: Some(ResponseFlag::UpstreamConnectionFailure),
            details: "upstream_reset_before_response_started{connection_timeout}",
            reset: Some(ResetReason::ConnectionTimeout),
            ..LocalReply::new(
                503,
                Bytes::from_static(ResetReason::ConnectionTimeout.body(false)),
            )
        }
    }

    /// A refused connect: UF, with the details Envoy gives it (the socket's error after
    /// `remote_connection_failure`).
    pub(crate) fn connect_refused() -> Self {
        LocalReply::failure(ResponseFlag::UpstreamConnectionFailure).because(
            "upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused}",
        )
    }

    /// A TLS handshake with the origin that failed: UF, with Envoy's details (BoringSSL's
    /// error text after `TLS_error` is not reproduced).
    pub(crate) fn tls_failure() -> Self {
        LocalReply::failure(ResponseFlag::UpstreamConnectionFailure)
            .because("upstream_reset_before_response_started{remote_connection_failure|TLS_error}")
    }

    /// The reply after the router retried the request: an upstream failure's body says so,
    /// as Envoy's does (`retried and the latest reset reason: …`).
    pub(crate) fn after_retries(mut self) -> Self {
        if let Some(reset) = self.reset {
            self.body = Bytes::from_static(reset.body(true));
        }
        self
    }
}

/// The `date` header value, formatted at most once per second.
pub(crate) struct DateCache {
    at: Option<Instant>,
    value: Bytes,
}

impl DateCache {
    pub(crate) fn new() -> Self {
        DateCache {
            at: None,
            value: Bytes::new(),
        }
    }

    pub(crate) fn get(&mut self, now: Instant) -> Bytes {
        let stale = self
            .at
            .is_none_or(|at| now.saturating_duration_since(at) >= Duration::from_secs(1));
        if stale {
            // The wall clock is read here only, once a second at most, for the `date` header.
            let wall = SystemTime::now();
            self.value = Bytes::from(httpdate::fmt_http_date(wall));
            self.at = Some(now);
        }
        self.value.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_failures_read_as_envoys_and_say_when_retried() {
        let refused = LocalReply::failure(ResponseFlag::UpstreamConnectionFailure);
        assert_eq!(
            refused.body,
            "upstream connect error or disconnect/reset before headers. reset reason: remote \
             connection failure"
        );
        assert_eq!(
            refused.after_retries().body,
            "upstream connect error or disconnect/reset before headers. retried and the latest \
             reset reason: remote connection failure"
        );
        let closed = LocalReply::failure(ResponseFlag::UpstreamConnectionTermination);
        assert_eq!(
            closed.after_retries().body,
            "upstream connect error or disconnect/reset before headers. retried and the latest \
             reset reason: connection termination"
        );
        assert_eq!(
            LocalReply::connect_timeout().after_retries().body,
            "upstream connect error or disconnect/reset before headers. retried and the latest \
             reset reason: connection timeout"
        );
        assert_eq!(
            LocalReply::failure(ResponseFlag::UpstreamProtocolError).status,
            502
        );
        assert_eq!(
            LocalReply::connect_refused().details,
            "upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused}"
        );
        // A failure that is not a reset keeps its body after retries.
        let timeout = LocalReply::failure(ResponseFlag::UpstreamRequestTimeout).after_retries();
        assert_eq!(timeout.body, "upstream request timeout");
    }

    /// As Envoy 1.40 logs them: the retry limit first, then the last attempt's failure.
    #[test]
    fn flags_after_the_retry_limit_in_envoys_order() {
        let with = |f| ResponseFlag::with_retry_limit(Some(f));
        assert_eq!(with(ResponseFlag::UpstreamConnectionFailure), "URX,UF");
        assert_eq!(with(ResponseFlag::UpstreamConnectionTermination), "URX,UC");
        assert_eq!(with(ResponseFlag::UpstreamRequestTimeout), "URX,UT");
        assert_eq!(ResponseFlag::with_retry_limit(None), "URX");
    }
}
