//! A cluster's `health_checks[]` (`config.core.v3.HealthCheck`): HTTP and TCP checks.

use std::time::Duration;

use crate::model::{HealthCheck, HealthCheckKind, HttpHealthCheck, TcpHealthCheck};
use crate::reader::{Cx, Field, Obj, join};

/// `config.core.v3.HealthCheck` fields weir does not support yet.
const HEALTH_CHECK_ENVOY: &[&str] = &[
    "grpc_health_check",
    "custom_health_check",
    "event_logger",
    "tls_options",
    "transport_socket_match_criteria",
];

/// One `health_checks[]` entry.
pub(crate) fn read(cx: &mut Cx, f: &Field<'_>) -> Option<HealthCheck> {
    let mut o = Obj::new(cx, f, HEALTH_CHECK_ENVOY)?;
    let positive = |cx: &mut Cx, o: &mut Obj<'_>, name: &'static str| {
        let v = o.required(cx, name)?;
        match v.duration(cx)? {
            d if d.is_zero() => {
                cx.error(&v.path, format!("{name} must be greater than 0s"));
                None
            }
            d => Some(d),
        }
    };
    let timeout = positive(cx, &mut o, "timeout");
    let interval = positive(cx, &mut o, "interval");
    let optional = |cx: &mut Cx, o: &mut Obj<'_>, name: &'static str| match o.get(cx, name) {
        Some(v) => match v.duration(cx) {
            Some(d) if d.is_zero() && name.ends_with("interval") => {
                cx.error(&v.path, format!("{name} must be greater than 0s"));
                Err(())
            }
            Some(d) => Ok(Some(d)),
            None => Err(()),
        },
        None => Ok(None),
    };
    let initial_jitter = optional(cx, &mut o, "initial_jitter");
    let interval_jitter = optional(cx, &mut o, "interval_jitter");
    let interval_jitter_percent = match o.get(cx, "interval_jitter_percent") {
        Some(v) => v.u32(cx),
        None => Some(0),
    };
    let threshold =
        |cx: &mut Cx, o: &mut Obj<'_>, name: &'static str| o.required(cx, name)?.u32(cx);
    let unhealthy_threshold = threshold(cx, &mut o, "unhealthy_threshold");
    let healthy_threshold = threshold(cx, &mut o, "healthy_threshold");
    let alt_port = match o.get(cx, "alt_port") {
        Some(v) => v.u32(cx).and_then(|p| match u16::try_from(p) {
            Ok(p) => Some(Some(p)),
            Err(_) => {
                cx.error(&v.path, "alt_port must be a port (at most 65535)");
                None
            }
        }),
        None => Some(None),
    };
    let reuse_connection = o.bool(cx, "reuse_connection");
    let no_traffic_interval = optional(cx, &mut o, "no_traffic_interval");
    let no_traffic_healthy_interval = optional(cx, &mut o, "no_traffic_healthy_interval");
    let unhealthy_interval = optional(cx, &mut o, "unhealthy_interval");
    let unhealthy_edge_interval = optional(cx, &mut o, "unhealthy_edge_interval");
    let healthy_edge_interval = optional(cx, &mut o, "healthy_edge_interval");
    let event_log_path = o.string(cx, "event_log_path");
    let always_failures = o.flag(cx, "always_log_health_check_failures");
    let always_success = o.flag(cx, "always_log_health_check_success");
    let http = o.get(cx, "http_health_check").map(|h| http(cx, &h));
    let tcp = o.get(cx, "tcp_health_check").map(|t| tcp(cx, &t));
    let ok = o.finish(cx);
    let kind = match (http, tcp) {
        (Some(h), None) => h.map(HealthCheckKind::Http),
        (None, Some(t)) => t.map(HealthCheckKind::Tcp),
        (None, None) => {
            cx.error(
                &f.path,
                "a health check needs http_health_check or tcp_health_check",
            );
            None
        }
        (Some(_), Some(_)) => {
            cx.error(
                &join(&f.path, "tcp_health_check"),
                "only one of http_health_check and tcp_health_check may be set",
            );
            None
        }
    };
    let (interval, unhealthy_interval) = (interval?, unhealthy_interval.ok()?);
    let unhealthy_interval = unhealthy_interval.unwrap_or(interval);
    let check = HealthCheck {
        timeout: timeout?,
        interval,
        initial_jitter: initial_jitter.ok()?.unwrap_or(Duration::ZERO),
        interval_jitter: interval_jitter.ok()?.unwrap_or(Duration::ZERO),
        interval_jitter_percent: interval_jitter_percent?,
        unhealthy_threshold: unhealthy_threshold?,
        healthy_threshold: healthy_threshold?,
        alt_port: alt_port?,
        reuse_connection: reuse_connection.unwrap_or(true),
        no_traffic_interval: (no_traffic_interval.ok()?).unwrap_or(Duration::from_secs(60)),
        no_traffic_healthy_interval: no_traffic_healthy_interval.ok()?,
        unhealthy_interval,
        unhealthy_edge_interval: (unhealthy_edge_interval.ok()?).unwrap_or(unhealthy_interval),
        healthy_edge_interval: (healthy_edge_interval.ok()?).unwrap_or(interval),
        event_log_path,
        always_log_health_check_failures: always_failures?,
        always_log_health_check_success: always_success?,
        kind: kind?,
    };
    ok.then_some(check)
}

/// `http_health_check`.
fn http(cx: &mut Cx, f: &Field<'_>) -> Option<HttpHealthCheck> {
    let mut o = Obj::new(
        cx,
        f,
        &[
            "send",
            "receive",
            "response_buffer_size",
            "service_name_matcher",
        ],
    )?;
    let host = o.string(cx, "host");
    let path = o.required_string(cx, "path");
    let method = match o.get(cx, "method") {
        Some(m) => m
            .enumeration_subset(
                cx,
                "health check method",
                &[
                    ("METHOD_UNSPECIFIED", 0),
                    ("GET", 1),
                    ("HEAD", 2),
                    ("POST", 3),
                    ("PUT", 4),
                    ("DELETE", 5),
                    ("CONNECT", 6),
                    ("OPTIONS", 7),
                    ("TRACE", 8),
                    ("PATCH", 9),
                ],
                // Envoy refuses CONNECT too.
                &[
                    "METHOD_UNSPECIFIED",
                    "GET",
                    "HEAD",
                    "POST",
                    "PUT",
                    "DELETE",
                    "OPTIONS",
                    "TRACE",
                    "PATCH",
                ],
            )
            .map(|m| if m == "METHOD_UNSPECIFIED" { "GET" } else { m }),
        None => Some("GET"),
    };
    let items = o.list(cx, "request_headers_to_add");
    let add = crate::headers::add_list(cx, items);
    let items = o.list(cx, "request_headers_to_remove");
    let remove = crate::headers::remove_list(cx, items);
    let expected = ranges(cx, &mut o, "expected_statuses");
    let retriable = ranges(cx, &mut o, "retriable_statuses");
    if let Some(c) = o.get(cx, "codec_client_type") {
        c.enumeration_subset(
            cx,
            "codec_client_type",
            &[("HTTP1", 0), ("HTTP2", 1), ("HTTP3", 2)],
            &["HTTP1"],
        )?;
    }
    let ok = o.finish(cx);
    let expected = expected?;
    let check = HttpHealthCheck {
        host,
        path: path?,
        method: method?.to_owned(),
        request_headers_to_add: add?,
        request_headers_to_remove: remove?,
        expected_statuses: if expected.is_empty() {
            vec![(200, 201)]
        } else {
            expected
        },
        retriable_statuses: retriable?,
    };
    ok.then_some(check)
}

/// `expected_statuses` / `retriable_statuses`: `Int64Range`s `[start, end)` within 100..=600.
fn ranges(cx: &mut Cx, o: &mut Obj<'_>, name: &'static str) -> Option<Vec<(u16, u16)>> {
    let mut out = Some(Vec::new());
    for item in o.list(cx, name) {
        let range = (|| {
            let mut r = Obj::new(cx, &item, &[])?;
            let start = r.required(cx, "start").and_then(|s| s.u64(cx));
            let end = r.required(cx, "end").and_then(|e| e.u64(cx));
            r.finish(cx);
            let (start, end) = (start?, end?);
            if !(100..=600).contains(&start) || !(100..=600).contains(&end) || start >= end {
                let what = "a range [start, end) of statuses within 100..=600, start below end";
                cx.error(&item.path, format!("{name} entries must be {what}"));
                return None;
            }
            Some((start as u16, end as u16))
        })();
        match (range, &mut out) {
            (Some(r), Some(list)) => list.push(r),
            _ => out = None,
        }
    }
    out
}

/// `tcp_health_check`: `send` and `receive` payloads (`text`: hex, or `binary`: base64).
fn tcp(cx: &mut Cx, f: &Field<'_>) -> Option<TcpHealthCheck> {
    let mut o = Obj::new(cx, f, &["proxy_protocol_config"])?;
    let send = match o.get(cx, "send") {
        Some(p) => payload(cx, &p),
        None => Some(Vec::new()),
    };
    let mut receive = Some(Vec::new());
    for item in o.list(cx, "receive") {
        match (payload(cx, &item), &mut receive) {
            (Some(p), Some(list)) => list.push(p),
            _ => receive = None,
        }
    }
    let ok = o.finish(cx);
    let check = TcpHealthCheck {
        send: send?,
        receive: receive?,
    };
    ok.then_some(check)
}

/// `HealthCheck.Payload`: `text` (hex) or `binary` (base64).
fn payload(cx: &mut Cx, f: &Field<'_>) -> Option<Vec<u8>> {
    let mut o = Obj::new(cx, f, &[])?;
    let text = o.get(cx, "text");
    let binary = o.get(cx, "binary");
    o.finish(cx);
    match (text, binary) {
        (Some(t), None) => {
            let s = t.string(cx)?;
            let bytes = (s.len() % 2 == 0)
                .then(|| {
                    (0..s.len())
                        .step_by(2)
                        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
                        .collect::<Option<Vec<u8>>>()
                })
                .flatten();
            if bytes.is_none() {
                cx.error(&t.path, "text must be hex digits, two per byte");
            }
            bytes
        }
        (None, Some(b)) => {
            let s = b.string(cx)?;
            let bytes = crate::route::base64_decode(&s);
            if bytes.is_none() {
                cx.error(&b.path, "binary must be base64");
            }
            bytes
        }
        _ => {
            cx.error(&f.path, "a payload needs exactly one of text and binary");
            None
        }
    }
}
