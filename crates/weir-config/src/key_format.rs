//! `header_key_format` (`config.core.v3.Http1ProtocolOptions`): how HTTP/1 header names are
//! written, read for the connection manager and for clusters; and a cluster's HTTP/1 options
//! (`typed_extension_protocol_options` with `envoy.extensions.upstreams.http.v3.HttpProtocolOptions`,
//! or the deprecated `http_protocol_options`), of which weir reads only `header_key_format`.

use crate::listener::open_typed_config;
use crate::model::{AutoSni, HeaderKeyFormat};
use crate::reader::{Cx, Field, Obj, join};

/// The `@type` of the preserve-case formatter's config.
const PRESERVE_CASE_TYPE: &str = "type.googleapis.com/envoy.extensions.http.header_formatters.preserve_case.v3.PreserveCaseFormatterConfig";
/// The key and `@type` of a cluster's HTTP protocol options.
const HTTP_PROTOCOL_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

/// `config.core.v3.Http1ProtocolOptions` fields weir reads nowhere.
pub(crate) const HTTP1_OPTIONS_ENVOY: &[&str] = &[
    "allow_absolute_url",
    "enable_trailers",
    "allow_chunked_length",
    "override_stream_error_on_invalid_http_message",
    "send_fully_qualified_url",
    "use_balsa_parser",
    "allow_custom_methods",
    "ignore_http_11_upgrade",
];

/// The same, upstream: a cluster reads only `header_key_format`.
const CLUSTER_HTTP1_OPTIONS_ENVOY: &[&str] = &[
    "allow_absolute_url",
    "accept_http_10",
    "default_host_for_http_10",
    "enable_trailers",
    "allow_chunked_length",
    "override_stream_error_on_invalid_http_message",
    "send_fully_qualified_url",
    "use_balsa_parser",
    "allow_custom_methods",
    "ignore_http_11_upgrade",
];

/// `envoy.extensions.upstreams.http.v3.HttpProtocolOptions` fields weir does not support yet.
const UPSTREAM_OPTIONS_ENVOY: &[&str] = &[
    "common_http_protocol_options",
    "use_downstream_protocol_config",
    "auto_config",
    "http_filters",
    "header_validation_config",
    "outlier_detection",
];

/// Reads `header_key_format` from an `Http1ProtocolOptions` being read (absent: lower case).
pub(crate) fn header_key_format(cx: &mut Cx, o: &mut Obj<'_>) -> Option<HeaderKeyFormat> {
    let Some(f) = o.get(cx, "header_key_format") else {
        return Some(HeaderKeyFormat::Lower);
    };
    let mut format = Obj::new(cx, &f, &[])?;
    let proper = format.get(cx, "proper_case_words");
    let stateful = format.get(cx, "stateful_formatter");
    format.finish(cx);
    match (proper, stateful) {
        (Some(p), None) => Obj::new(cx, &p, &[])?
            .finish(cx)
            .then_some(HeaderKeyFormat::ProperCase),
        (None, Some(s)) => stateful_formatter(cx, &s),
        (Some(_), Some(s)) => {
            cx.error(
                &s.path,
                "`proper_case_words` and `stateful_formatter` are one choice: give one",
            );
            None
        }
        (None, None) => {
            cx.error(
                &f.path,
                "`header_key_format` needs `proper_case_words` or `stateful_formatter` (as in Envoy)",
            );
            None
        }
    }
}

/// `stateful_formatter`: Envoy's one stateful formatter, `preserve_case`.
fn stateful_formatter(cx: &mut Cx, f: &Field<'_>) -> Option<HeaderKeyFormat> {
    let mut o = Obj::new(cx, f, &[])?;
    let name = o.required_string(cx, "name");
    let typed = o.required(cx, "typed_config");
    o.finish(cx);
    let typed = open_typed_config(cx, &typed?)?;
    if typed.url != PRESERVE_CASE_TYPE {
        cx.error(
            &typed.url_path,
            format!(
                "header formatter `{}` is not supported (weir supports {PRESERVE_CASE_TYPE})",
                typed.url
            ),
        );
        return None;
    }
    let mut t = Obj::new(cx, &typed.message, &[])?;
    t.get(cx, "@type");
    let forward = t.bool(cx, "forward_reason_phrase");
    let others = match t.get(cx, "formatter_type_on_envoy_headers") {
        Some(e) => e.enumeration(
            cx,
            "formatter_type_on_envoy_headers",
            &[("DEFAULT", 0), ("PROPER_CASE", 1)],
        ),
        None => Some("DEFAULT"),
    };
    let ok = t.finish(cx);
    name?;
    ok.then_some(HeaderKeyFormat::PreserveCase {
        forward_reason_phrase: forward.unwrap_or(false),
        proper_case_envoy_headers: others? == "PROPER_CASE",
    })
}

/// What a cluster's HTTP protocol options say.
pub(crate) struct ClusterHttp {
    pub(crate) header_key_format: HeaderKeyFormat,
    pub(crate) auto_sni: Option<AutoSni>,
}

/// A cluster's HTTP options: from `typed_extension_protocol_options` when it has
/// `HttpProtocolOptions` (which then wins, as in Envoy), else from the deprecated
/// `http_protocol_options` and `upstream_http_protocol_options`.
pub(crate) fn cluster_http_options(cx: &mut Cx, o: &mut Obj<'_>) -> Option<ClusterHttp> {
    let deprecated = match o.get(cx, "http_protocol_options") {
        Some(f) => {
            let mut options = Obj::new(cx, &f, CLUSTER_HTTP1_OPTIONS_ENVOY)?;
            let format = header_key_format(cx, &mut options);
            options.finish(cx).then_some(format?)
        }
        None => Some(HeaderKeyFormat::Lower),
    };
    let deprecated_sni = match o.get(cx, "upstream_http_protocol_options") {
        Some(f) => upstream_http_protocol_options(cx, &f),
        None => Some(None),
    };
    let typed = match o.get(cx, "typed_extension_protocol_options") {
        Some(f) => typed_protocol_options(cx, &f),
        None => Some(None),
    };
    Some(match typed? {
        Some(typed) => typed,
        None => ClusterHttp {
            header_key_format: deprecated?,
            auto_sni: deprecated_sni?,
        },
    })
}

/// `upstream_http_protocol_options`: `auto_sni`, `auto_san_validation`,
/// `override_auto_sni_header`. `None` when `auto_sni` is off.
fn upstream_http_protocol_options(cx: &mut Cx, f: &Field<'_>) -> Option<Option<AutoSni>> {
    let mut o = Obj::new(cx, f, &[])?;
    let auto_sni = o.flag(cx, "auto_sni");
    let san_validation = o.flag(cx, "auto_san_validation");
    let header = o
        .string(cx, "override_auto_sni_header")
        .filter(|h| !h.is_empty())
        .map(|h| h.to_ascii_lowercase());
    o.finish(cx);
    let (auto_sni, san_validation) = (auto_sni?, san_validation?);
    if san_validation && !auto_sni {
        cx.error(
            &join(&f.path, "auto_san_validation"),
            "checks the certificate against the SNI auto_sni sets: set auto_sni too",
        );
        return None;
    }
    Some(auto_sni.then_some(AutoSni {
        header,
        san_validation,
    }))
}

/// `typed_extension_protocol_options`: only `envoy.extensions.upstreams.http.v3.HttpProtocolOptions`
/// with `explicit_http_config.http_protocol_options` (HTTP/1, weir's one upstream protocol).
fn typed_protocol_options(cx: &mut Cx, f: &Field<'_>) -> Option<Option<ClusterHttp>> {
    let mut found = None;
    let mut ok = true;
    for (key, value) in f.entries(cx, "extension name to protocol options")? {
        if key != HTTP_PROTOCOL_OPTIONS {
            cx.error(
                &value.path,
                format!("protocol options `{key}` are not supported by weir yet (weir reads {HTTP_PROTOCOL_OPTIONS})"),
            );
            ok = false;
            continue;
        }
        match http_protocol_options(cx, &value) {
            Some(format) => found = Some(format),
            None => ok = false,
        }
    }
    ok.then_some(found)
}

/// `HttpProtocolOptions`: `explicit_http_config.http_protocol_options.header_key_format` and
/// `upstream_http_protocol_options`.
fn http_protocol_options(cx: &mut Cx, f: &Field<'_>) -> Option<ClusterHttp> {
    let typed = open_typed_config(cx, f)?;
    let wanted = format!("type.googleapis.com/{HTTP_PROTOCOL_OPTIONS}");
    if typed.url != wanted {
        cx.error(&typed.url_path, format!("`{}` is not {wanted}", typed.url));
        return None;
    }
    let mut o = Obj::new(cx, &typed.message, UPSTREAM_OPTIONS_ENVOY)?;
    o.get(cx, "@type");
    let explicit = o.get(cx, "explicit_http_config");
    let auto_sni = match o.get(cx, "upstream_http_protocol_options") {
        Some(u) => upstream_http_protocol_options(cx, &u),
        None => Some(None),
    };
    let ok = o.finish(cx);
    let Some(explicit) = explicit else {
        // `upstream_protocol_options` is a required oneof in Envoy.
        if ok {
            cx.error(
                &join(&typed.message.path, "explicit_http_config"),
                "`explicit_http_config` is required (weir supports no other protocol selection yet)",
            );
        }
        return None;
    };
    let mut e = Obj::new(
        cx,
        &explicit,
        &["http2_protocol_options", "http3_protocol_options"],
    )?;
    let h1 = e.get(cx, "http_protocol_options");
    let ok = e.finish(cx) && ok;
    let format = match h1 {
        Some(h1) => {
            let mut options = Obj::new(cx, &h1, CLUSTER_HTTP1_OPTIONS_ENVOY)?;
            let format = header_key_format(cx, &mut options);
            options.finish(cx).then_some(format?)
        }
        None if ok => {
            cx.error(
                &explicit.path,
                "`explicit_http_config` needs `http_protocol_options` (HTTP/1)",
            );
            None
        }
        None => None,
    };
    if ok {
        Some(ClusterHttp {
            header_key_format: format?,
            auto_sni: auto_sni?,
        })
    } else {
        None
    }
}
