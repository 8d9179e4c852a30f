//! The HTTP connection manager's fields about the headers it writes itself (`server_name`,
//! `server_header_transformation`, `preserve_external_request_id`, `internal_address_config`)
//! and about HTTP/1 (`http_protocol_options.{accept_http_10,default_host_for_http_10,
//! header_key_format}`).

use std::net::IpAddr;

use crate::key_format::{HTTP1_OPTIONS_ENVOY, header_key_format};
use crate::model::{CidrRange, HeaderKeyFormat, ServerHeaderTransformation};
use crate::reader::{Cx, Field, Obj};

/// `http_protocol_options` as read.
#[derive(Default)]
pub(crate) struct Http10 {
    /// `accept_http_10` (default false: an HTTP/1.0 request is answered 426).
    pub(crate) accept: bool,
    /// `default_host_for_http_10`: the Host of an HTTP/1.0 request that has none.
    pub(crate) default_host: Option<String>,
    /// `header_key_format`: how names are written to the client.
    pub(crate) key_format: HeaderKeyFormat,
}

/// Reads `http_protocol_options` (`accept_http_10`, `default_host_for_http_10`,
/// `header_key_format`).
pub(crate) fn http_protocol_options(cx: &mut Cx, o: &mut Obj<'_>) -> Option<Http10> {
    let Some(f) = o.get(cx, "http_protocol_options") else {
        return Some(Http10::default());
    };
    let mut options = Obj::new(cx, &f, HTTP1_OPTIONS_ENVOY)?;
    let accept = options.bool(cx, "accept_http_10");
    let default_host = options
        .get(cx, "default_host_for_http_10")
        .map(|h| h.string(cx));
    let key_format = header_key_format(cx, &mut options);
    let ok = options.finish(cx);
    let default_host = match default_host {
        Some(host) => Some(host?).filter(|h| !h.is_empty()),
        None => None,
    };
    ok.then_some(Http10 {
        accept: accept.unwrap_or(false),
        default_host,
        key_format: key_format?,
    })
}

/// weir's own name in `server` when `server_name` is not given. Envoy's default is `envoy`;
/// weir names itself (a deliberate difference, listed in README).
pub const DEFAULT_SERVER_NAME: &str = "weir";

/// `server_name` and `server_header_transformation` as read.
pub(crate) struct ServerHeader {
    pub(crate) name: String,
    pub(crate) transformation: ServerHeaderTransformation,
    /// `preserve_external_request_id` (default false).
    pub(crate) preserve_external_request_id: bool,
}

/// Reads `server_name` (empty or absent: the default), `server_header_transformation`
/// (OVERWRITE, APPEND_IF_ABSENT or PASS_THROUGH; default OVERWRITE, as in Envoy) and
/// `preserve_external_request_id`.
pub(crate) fn server_header(cx: &mut Cx, o: &mut Obj<'_>) -> Option<ServerHeader> {
    let name = match o.get(cx, "server_name") {
        Some(f) => f.string(cx).and_then(|s| {
            if s.is_empty() {
                // As in Envoy: an empty name is the default one.
                return Some(DEFAULT_SERVER_NAME.to_string());
            }
            if s.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                cx.error(
                    &f.path,
                    "`server_name` must be a valid header value (no CR, LF or NUL)",
                );
                return None;
            }
            Some(s)
        }),
        None => Some(DEFAULT_SERVER_NAME.to_string()),
    };
    let transformation = match o.get(cx, "server_header_transformation") {
        Some(f) => f
            .enumeration(
                cx,
                "server_header_transformation",
                &[
                    ("OVERWRITE", 0),
                    ("APPEND_IF_ABSENT", 1),
                    ("PASS_THROUGH", 2),
                ],
            )
            .map(|t| match t {
                "APPEND_IF_ABSENT" => ServerHeaderTransformation::AppendIfAbsent,
                "PASS_THROUGH" => ServerHeaderTransformation::PassThrough,
                _ => ServerHeaderTransformation::Overwrite,
            }),
        None => Some(ServerHeaderTransformation::Overwrite),
    };
    let preserve = o
        .get(cx, "preserve_external_request_id")
        .map(|p| p.bool(cx));
    Some(ServerHeader {
        name: name?,
        transformation: transformation?,
        preserve_external_request_id: preserve.unwrap_or(Some(false))?,
    })
}

/// Reads `internal_address_config`: `cidr_ranges`, and `unix_sockets` (accepted; weir listens
/// on TCP only, so no connection comes over a Unix socket).
pub(crate) fn internal_address_config(cx: &mut Cx, o: &mut Obj<'_>) -> Option<Vec<CidrRange>> {
    let Some(f) = o.get(cx, "internal_address_config") else {
        return Some(Vec::new());
    };
    let before = cx.errors.len();
    let mut config = Obj::new(cx, &f, &[])?;
    config.bool(cx, "unix_sockets");
    let ranges: Vec<CidrRange> = config
        .list(cx, "cidr_ranges")
        .iter()
        .filter_map(|item| cidr_range(cx, item))
        .collect();
    config.finish(cx);
    (cx.errors.len() == before).then_some(ranges)
}

/// `config.core.v3.CidrRange`: `address_prefix` (an IP address) and `prefix_len` (default 0).
pub(crate) fn cidr_range(cx: &mut Cx, f: &Field<'_>) -> Option<CidrRange> {
    let before = cx.errors.len();
    let mut o = Obj::new(cx, f, &[])?;
    let address = o.required(cx, "address_prefix").and_then(|a| {
        let text = a.string(cx)?;
        let ip = text.parse::<IpAddr>().ok();
        if ip.is_none() {
            cx.error(&a.path, format!("`{text}` is not an IP address"));
        }
        ip
    });
    let len = o.get(cx, "prefix_len").map(|l| (l.u32(cx), l.path.clone()));
    o.finish(cx);
    let (address, (len, path)) = (address?, len.unwrap_or((Some(0), String::new())));
    let max = if address.is_ipv4() { 32 } else { 128 };
    match len? {
        len if len > max => {
            cx.error(
                &path,
                format!("prefix_len {len} is longer than the address ({max} bits)"),
            );
            None
        }
        len => (cx.errors.len() == before).then_some(CidrRange {
            address,
            prefix_len: len as u8,
        }),
    }
}
