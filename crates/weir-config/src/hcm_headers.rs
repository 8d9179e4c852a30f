//! The HTTP connection manager's fields about the headers it writes itself: `server_name`,
//! `server_header_transformation` and `preserve_external_request_id`.

use crate::model::ServerHeaderTransformation;
use crate::reader::{Cx, Obj};

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
