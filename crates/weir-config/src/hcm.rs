//! The HTTP connection manager (`envoy.filters.network.http_connection_manager`): its fields,
//! protocol options and defaults.

use std::time::Duration;

use crate::access_log;
use crate::cluster::ClusterNames;
use crate::model::{CodecType, HttpConnectionManager, HttpFilter};
use crate::reader::{Cx, Field, Obj, join};
use crate::{http_filter, route};

/// `HttpConnectionManager` fields weir does not support yet.
const HCM_ENVOY: &[&str] = &[
    "add_user_agent",
    "tracing",
    "http1_safe_max_connection_duration",
    "http2_protocol_options",
    "http3_protocol_options",
    "scheme_header_transformation",
    "drain_timeout",
    "delayed_close_timeout",
    "access_log_flush_interval",
    "flush_access_log_on_new_request",
    "access_log_options",
    "original_ip_detection_extensions",
    "early_header_mutation_extensions",
    "skip_xff_append",
    "via",
    "forward_client_cert_details",
    "set_current_client_cert_details",
    "proxy_100_continue",
    "represent_ipv4_remote_address_as_ipv4_mapped_ipv6",
    "normalize_path",
    "merge_slashes",
    "path_with_escaped_slashes_action",
    "request_id_extension",
    "local_reply_config",
    "strip_matching_host_port",
    "strip_any_host_port",
    "stream_error_on_invalid_http_message",
    "path_normalization_options",
    "strip_trailing_host_dot",
    "proxy_status_config",
    "typed_header_validation_config",
    "append_x_forwarded_port",
    "append_local_overload",
    "add_proxy_protocol_connection_state",
    "stream_flush_timeout",
    "drain_timeout_jitter",
    "forward_client_cert_matcher",
    "forward_proto_config",
    "record_route_resolution_stats",
];

/// `config.core.v3.HttpProtocolOptions` fields weir does not support yet.
const HTTP_PROTOCOL_OPTIONS_ENVOY: &[&str] = &[
    "max_response_headers_kb",
    "max_stream_duration",
    "headers_with_underscores_action",
    "max_connection_duration_jitter",
];

/// Envoy's default `max_request_headers_kb`.
const DEFAULT_MAX_REQUEST_HEADERS_KB: u32 = 60;
/// Envoy's largest `max_request_headers_kb`.
const MAX_REQUEST_HEADERS_KB: u32 = 8192;
/// Envoy's default `common_http_protocol_options.max_headers_count`.
const DEFAULT_MAX_HEADERS_COUNT: u32 = 100;
/// Envoy's default `common_http_protocol_options.idle_timeout`.
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
/// Envoy's default `stream_idle_timeout`.
const DEFAULT_STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// Reads an optional duration where `0s` disables (→ `None`), with a default when absent.
pub(crate) fn disabling_duration(
    cx: &mut Cx,
    o: &mut Obj<'_>,
    name: &'static str,
    default: Option<Duration>,
) -> Option<Option<Duration>> {
    match o.get(cx, name) {
        Some(d) => d.duration(cx).map(|d| (!d.is_zero()).then_some(d)),
        None => Some(default),
    }
}

pub(crate) fn http_connection_manager(
    cx: &mut Cx,
    f: &Field<'_>,
    clusters: &ClusterNames,
) -> Option<HttpConnectionManager> {
    let mut o = Obj::new(cx, f, HCM_ENVOY)?;
    o.get(cx, "@type");
    let stat_prefix = o.required_string(cx, "stat_prefix");
    let codec_type = codec_type(cx, &mut o);
    let rds = o.reject(
        cx,
        "rds",
        "RDS is not supported yet: use an inline route_config",
    );
    let scoped = o.reject(
        cx,
        "scoped_routes",
        "scoped routes are not supported yet: use an inline route_config",
    );
    // The route config comes first but its typed_per_filter_config names the http_filters.
    let filter_names = http_filter::names(f.value);
    let route_config = match o.get(cx, "route_config") {
        Some(r) => route::route_configuration(cx, &r, clusters, &filter_names),
        None => {
            if !rds && !scoped {
                cx.error(&join(&f.path, "route_config"), "`route_config` is required");
            }
            None
        }
    };
    let http_filters = match o.get(cx, "http_filters") {
        Some(h) => http_filters(cx, &h, clusters),
        None => Some(Vec::new()),
    };
    if http_filters.as_ref().is_some_and(Vec::is_empty) {
        cx.warn(
            &join(&f.path, "http_filters"),
            "no HTTP filters: nothing answers a request, which waits for `stream_idle_timeout` and then gets 504 (as in Envoy); end the list with envoy.filters.http.router",
        );
    }
    let max_request_headers_kb = max_request_headers_kb(cx, &mut o);
    let protocol = match o.get(cx, "common_http_protocol_options") {
        Some(p) => common_http_protocol_options(cx, &p),
        None => Some(ProtocolOptions::default()),
    };
    let stream_idle_timeout = disabling_duration(
        cx,
        &mut o,
        "stream_idle_timeout",
        Some(DEFAULT_STREAM_IDLE_TIMEOUT),
    );
    let request_timeout = disabling_duration(cx, &mut o, "request_timeout", None);
    let request_headers_timeout = disabling_duration(cx, &mut o, "request_headers_timeout", None);
    let use_remote_address = o.get(cx, "use_remote_address").map(|u| u.bool(cx));
    let xff_num_trusted_hops = o.get(cx, "xff_num_trusted_hops").map(|x| x.u32(cx));
    let generate_request_id = o.get(cx, "generate_request_id").map(|g| g.bool(cx));
    let access_log = match o.get(cx, "access_log") {
        Some(a) => access_log::read_all(cx, &a),
        None => Some(Vec::new()),
    };
    let upgrade_configs = crate::route::upgrade_configs(cx, &mut o, false);
    let server = crate::hcm_headers::server_header(cx, &mut o);
    let http10 = crate::hcm_headers::http_protocol_options(cx, &mut o);
    let internal = crate::hcm_headers::internal_address_config(cx, &mut o);
    let request_id_in_response = o
        .get(cx, "always_set_request_id_in_response")
        .map(|a| a.bool(cx));
    o.finish(cx);

    let (protocol, server, http10) = (protocol?, server?, http10?);
    Some(HttpConnectionManager {
        stat_prefix: stat_prefix?,
        codec_type: codec_type?,
        route_config: route_config?,
        http_filters: http_filters?,
        max_request_headers_bytes: max_request_headers_kb? as usize * 1024,
        max_headers_count: protocol.max_headers_count as usize,
        idle_timeout: protocol.idle_timeout,
        max_connection_duration: protocol.max_connection_duration,
        max_requests_per_connection: protocol.max_requests_per_connection,
        request_headers_timeout: request_headers_timeout?,
        stream_idle_timeout: stream_idle_timeout?,
        request_timeout: request_timeout?,
        use_remote_address: use_remote_address.unwrap_or(Some(false))?,
        xff_num_trusted_hops: xff_num_trusted_hops.unwrap_or(Some(0))?,
        generate_request_id: generate_request_id.unwrap_or(Some(true))?,
        access_log: access_log?,
        upgrade_configs: upgrade_configs?,
        server_name: server.name,
        server_header_transformation: server.transformation,
        preserve_external_request_id: server.preserve_external_request_id,
        internal_addresses: internal?,
        always_set_request_id_in_response: request_id_in_response.unwrap_or(Some(false))?,
        accept_http_10: http10.accept,
        default_host_for_http_10: http10.default_host,
        header_key_format: http10.key_format,
    })
}

/// `codec_type`: AUTO (default) and HTTP1 are read; HTTP2 and HTTP3 are not supported yet.
fn codec_type(cx: &mut Cx, o: &mut Obj<'_>) -> Option<CodecType> {
    match o.get(cx, "codec_type") {
        Some(c) => {
            let codec = c.enumeration_subset(
                cx,
                "codec_type",
                &[("AUTO", 0), ("HTTP1", 1), ("HTTP2", 2), ("HTTP3", 3)],
                &["AUTO", "HTTP1"],
            );
            match codec {
                Some("HTTP1") => Some(CodecType::Http1),
                Some(_) => Some(CodecType::Auto),
                None => None,
            }
        }
        None => Some(CodecType::Auto),
    }
}

/// `max_request_headers_kb`: 1 to Envoy's largest, 60 by default.
fn max_request_headers_kb(cx: &mut Cx, o: &mut Obj<'_>) -> Option<u32> {
    match o.get(cx, "max_request_headers_kb") {
        Some(m) => m.u32(cx).and_then(|kb| {
            if (1..=MAX_REQUEST_HEADERS_KB).contains(&kb) {
                Some(kb)
            } else {
                cx.error(
                    &m.path,
                    format!("max_request_headers_kb must be in 1..={MAX_REQUEST_HEADERS_KB}"),
                );
                None
            }
        }),
        None => Some(DEFAULT_MAX_REQUEST_HEADERS_KB),
    }
}

/// `common_http_protocol_options` as read.
struct ProtocolOptions {
    idle_timeout: Option<Duration>,
    max_headers_count: u32,
    max_connection_duration: Option<Duration>,
    max_requests_per_connection: Option<u32>,
}

impl Default for ProtocolOptions {
    fn default() -> Self {
        ProtocolOptions {
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            max_headers_count: DEFAULT_MAX_HEADERS_COUNT,
            max_connection_duration: None,
            max_requests_per_connection: None,
        }
    }
}

/// `common_http_protocol_options`.
fn common_http_protocol_options(cx: &mut Cx, f: &Field<'_>) -> Option<ProtocolOptions> {
    let mut o = Obj::new(cx, f, HTTP_PROTOCOL_OPTIONS_ENVOY)?;
    let idle_timeout = disabling_duration(cx, &mut o, "idle_timeout", Some(DEFAULT_IDLE_TIMEOUT));
    let max_connection_duration = disabling_duration(cx, &mut o, "max_connection_duration", None);
    let max_requests_per_connection = match o.get(cx, "max_requests_per_connection") {
        Some(m) => m.u32(cx).map(|n| (n != 0).then_some(n)),
        None => Some(None),
    };
    let max_headers_count = match o.get(cx, "max_headers_count") {
        Some(m) => match m.u32(cx) {
            Some(0) => {
                cx.error(&m.path, "max_headers_count must be at least 1");
                None
            }
            n => n,
        },
        None => Some(DEFAULT_MAX_HEADERS_COUNT),
    };
    o.finish(cx);
    Some(ProtocolOptions {
        idle_timeout: idle_timeout?,
        max_headers_count: max_headers_count?,
        max_connection_duration: max_connection_duration?,
        max_requests_per_connection: max_requests_per_connection?,
    })
}

/// `http_filters[]`: supported filters (read in `http_filter`), ending with the router, which
/// appears once; or none at all, which Envoy accepts too.
fn http_filters(cx: &mut Cx, f: &Field<'_>, clusters: &ClusterNames) -> Option<Vec<HttpFilter>> {
    let items = f.items(cx)?;
    if items.is_empty() {
        return Some(Vec::new());
    }
    let mut filters = Some(Vec::with_capacity(items.len()));
    let mut routers = Vec::new();
    for (k, item) in items.iter().enumerate() {
        match http_filter::http_filter(cx, item, clusters) {
            Some(filter) => {
                if matches!(filter, HttpFilter::Router { .. }) {
                    routers.push(k);
                }
                if let Some(list) = &mut filters {
                    list.push(filter);
                }
            }
            None => filters = None,
        }
    }
    let last = items.len() - 1;
    match routers.as_slice() {
        [] if filters.is_some() => {
            cx.error(
                &f.path,
                "the last HTTP filter must be the router (envoy.filters.http.router)",
            );
            filters = None;
        }
        [] => {}
        [only] if *only != last => {
            cx.error(
                &items[*only].path,
                "the router must be the last HTTP filter",
            );
            filters = None;
        }
        [_] => {}
        [_, more @ ..] => {
            for k in more {
                cx.error(&items[*k].path, "the router may appear only once");
            }
            filters = None;
        }
    }
    filters
}
