//! Header names, values and mutations (`request_headers_to_add` and friends), shared by the route
//! configuration, virtual hosts and routes.

use crate::model::{AppendAction, HeaderMutations, HeaderValueOption};
use crate::reader::{Cx, Field, Obj};

/// Envoy's limit on a header key or value in config (`max_bytes: 16384`).
const MAX_HEADER_BYTES: usize = 16384;

/// Headers that describe the connection or the message framing. The proxy owns them, so config may
/// not add them (Envoy would let it, and then fight its own codec).
const HOP_BY_HOP_OR_FRAMING: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "te",
    "trailer",
    "content-length",
];

/// Headers whose removal would break message framing.
const FRAMING: &[&str] = &["content-length", "transfer-encoding"];

/// Pseudo-headers a route's header matcher may name (as Envoy's HTTP/1 codec exposes them).
const MATCHABLE_PSEUDO_HEADERS: &[&str] = &[":authority", ":method", ":path", ":scheme"];

/// What a header name is used for: decides which names are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NameUse {
    /// `*_headers_to_add[].header.key`.
    Add,
    /// `*_headers_to_remove[]`.
    Remove,
    /// A route match's `headers[].name`.
    Match,
}

/// A header name: a valid token, lower-cased, allowed for `usage`.
pub(crate) fn name(cx: &mut Cx, f: &Field<'_>, usage: NameUse) -> Option<String> {
    let raw = f.string(cx)?;
    if raw.is_empty() {
        cx.error(&f.path, "a header name must not be empty");
        return None;
    }
    if raw.len() > MAX_HEADER_BYTES {
        cx.error(&f.path, "a header name must be at most 16384 bytes");
        return None;
    }
    let lower = raw.to_ascii_lowercase();
    if let Some(rest) = lower.strip_prefix(':') {
        let ok = usage == NameUse::Match && MATCHABLE_PSEUDO_HEADERS.contains(&lower.as_str());
        if !ok {
            let message = match usage {
                NameUse::Add => ":-prefixed headers may not be modified".to_owned(),
                NameUse::Remove => ":-prefixed headers may not be removed".to_owned(),
                NameUse::Match => format!(
                    "`{raw}` is not a pseudo-header weir can match (use one of {})",
                    MATCHABLE_PSEUDO_HEADERS.join(", ")
                ),
            };
            cx.error(&f.path, message);
            return None;
        }
        if !rest.bytes().all(is_token_byte) {
            cx.error(&f.path, format!("`{raw}` is not a valid header name"));
            return None;
        }
        return Some(lower);
    }
    if !lower.bytes().all(is_token_byte) {
        cx.error(
            &f.path,
            format!(
                "`{raw}` is not a valid header name (letters, digits and !#$%&'*+-.^_`|~ only)"
            ),
        );
        return None;
    }
    match usage {
        NameUse::Add if lower == "host" => {
            cx.error(
                &f.path,
                "`host` may not be modified (use the route's host_rewrite_literal)",
            );
            return None;
        }
        NameUse::Remove if lower == "host" => {
            cx.error(&f.path, "`host` may not be removed");
            return None;
        }
        NameUse::Add if HOP_BY_HOP_OR_FRAMING.contains(&lower.as_str()) => {
            cx.error(
                &f.path,
                format!("`{lower}` is a hop-by-hop or framing header: weir manages it and config may not add it"),
            );
            return None;
        }
        NameUse::Remove if FRAMING.contains(&lower.as_str()) => {
            cx.error(
                &f.path,
                format!(
                    "`{lower}` frames the message: weir manages it and config may not remove it"
                ),
            );
            return None;
        }
        _ => {}
    }
    Some(lower)
}

/// RFC 9110 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Whether `s` may appear in a header value (or anything sent as one: hosts, paths): no control
/// characters except tab, at most 16384 bytes. Records an error at `path` if not.
pub(crate) fn check_value(cx: &mut Cx, path: &str, s: &str) -> bool {
    if s.len() > MAX_HEADER_BYTES {
        cx.error(path, "must be at most 16384 bytes");
        return false;
    }
    if s.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        cx.error(
            path,
            "must not contain control characters (such as CR, LF or NUL)",
        );
        return false;
    }
    true
}

/// A header value as Envoy's formatter would read it: `%%` is a literal `%`; anything else
/// starting with `%` is a command operator (`%REQ(x)%`, `%DOWNSTREAM_REMOTE_ADDRESS%`…), which
/// weir does not support yet.
fn literal_value(cx: &mut Cx, path: &str, s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        if chars.next() == Some('%') {
            out.push('%');
            continue;
        }
        cx.error(
            path,
            "command operators in header values are not supported yet (write `%%` for a literal `%`)",
        );
        return None;
    }
    Some(out)
}

/// Reads `request_headers_to_add/remove` and `response_headers_to_add/remove` from `o`.
pub(crate) fn mutations(cx: &mut Cx, o: &mut Obj<'_>) -> Option<HeaderMutations> {
    let items = o.list(cx, "request_headers_to_add");
    let request_add = add_list(cx, items);
    let items = o.list(cx, "request_headers_to_remove");
    let request_remove = remove_list(cx, items);
    let items = o.list(cx, "response_headers_to_add");
    let response_add = add_list(cx, items);
    let items = o.list(cx, "response_headers_to_remove");
    let response_remove = remove_list(cx, items);
    Some(HeaderMutations {
        request_add: request_add?,
        request_remove: request_remove?,
        response_add: response_add?,
        response_remove: response_remove?,
    })
}

pub(crate) fn add_list(cx: &mut Cx, items: Vec<Field<'_>>) -> Option<Vec<HeaderValueOption>> {
    let mut out = Some(Vec::with_capacity(items.len()));
    for item in &items {
        match (value_option(cx, item), &mut out) {
            (Some(Some(option)), Some(list)) => list.push(option),
            (Some(None), _) => {}
            _ => out = None,
        }
    }
    out
}

pub(crate) fn remove_list(cx: &mut Cx, items: Vec<Field<'_>>) -> Option<Vec<String>> {
    let mut out = Some(Vec::with_capacity(items.len()));
    for item in &items {
        match (name(cx, item, NameUse::Remove), &mut out) {
            (Some(n), Some(list)) => list.push(n),
            _ => out = None,
        }
    }
    out
}

/// One `HeaderValueOption`. `Some(None)` for an entry Envoy would skip: an empty value without
/// `keep_empty_value: true`.
fn value_option(cx: &mut Cx, f: &Field<'_>) -> Option<Option<HeaderValueOption>> {
    let mut o = Obj::new(cx, f, &[])?;
    let header = o.required(cx, "header").and_then(|h| {
        let mut ho = Obj::new(cx, &h, &["raw_value"])?;
        let key = ho
            .required(cx, "key")
            .and_then(|k| name(cx, &k, NameUse::Add));
        let value = match ho.get(cx, "value") {
            Some(v) => v.string(cx).and_then(|s| {
                if check_value(cx, &v.path, &s) {
                    literal_value(cx, &v.path, &s)
                } else {
                    None
                }
            }),
            None => Some(String::new()),
        };
        ho.finish(cx);
        Some((key?, value?))
    });
    let append = o.get(cx, "append");
    let append_bool = append.as_ref().and_then(|a| a.bool(cx));
    let action = o.get(cx, "append_action");
    let action_value = action.as_ref().and_then(|a| {
        a.enumeration(
            cx,
            "append_action",
            &[
                ("APPEND_IF_EXISTS_OR_ADD", 0),
                ("ADD_IF_ABSENT", 1),
                ("OVERWRITE_IF_EXISTS_OR_ADD", 2),
                ("OVERWRITE_IF_EXISTS", 3),
            ],
        )
    });
    let keep_empty_value = o.bool(cx, "keep_empty_value").unwrap_or(false);
    o.finish(cx);

    let append_action = match (&append, &action) {
        (Some(_), Some(a)) => {
            cx.error(
                &a.path,
                "`append` and `append_action` cannot both be set (`append` is deprecated)",
            );
            None
        }
        (Some(_), None) => append_bool.map(|b| {
            if b {
                AppendAction::AppendIfExistsOrAdd
            } else {
                AppendAction::OverwriteIfExistsOrAdd
            }
        }),
        (None, Some(_)) => action_value.map(|name| match name {
            "ADD_IF_ABSENT" => AppendAction::AddIfAbsent,
            "OVERWRITE_IF_EXISTS_OR_ADD" => AppendAction::OverwriteIfExistsOrAdd,
            "OVERWRITE_IF_EXISTS" => AppendAction::OverwriteIfExists,
            _ => AppendAction::AppendIfExistsOrAdd,
        }),
        (None, None) => Some(AppendAction::AppendIfExistsOrAdd),
    };
    let (key, value) = header?;
    let append_action = append_action?;
    if value.is_empty() && !keep_empty_value {
        return Some(None);
    }
    Some(Some(HeaderValueOption {
        key,
        value,
        append_action,
    }))
}
