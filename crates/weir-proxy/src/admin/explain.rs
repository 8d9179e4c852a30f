//! `GET /explain`: why requests failed ([`crate::why`]), from every worker's last failed
//! requests: one by its stream id or `x-request-id` in full, or the latest ones, one line
//! each, filtered by status.

use std::fmt::Write;

use super::handlers::{json, param, params, text};
use super::{AdminInfo, Reply};
use crate::why::FailureRecord;

/// Which failures a `status` parameter asks for: `5xx` is a class, `503` a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StatusFilter {
    Class(u16),
    Exact(u16),
}

impl StatusFilter {
    fn parse(value: &str) -> Option<StatusFilter> {
        match value.strip_suffix("xx") {
            Some(class) if class.len() == 1 => class.parse().ok().map(StatusFilter::Class),
            Some(_) => None,
            None if value.len() == 3 => value.parse().ok().map(StatusFilter::Exact),
            None => None,
        }
    }

    fn admits(self, status: u16) -> bool {
        match self {
            StatusFilter::Class(c) => status / 100 == c,
            StatusFilter::Exact(s) => status == s,
        }
    }
}

/// `?stream=ID`, `?request_id=ID`, or `?status=5xx&limit=N`; `format=json` for JSON.
pub(super) fn explain(query: &str, info: &AdminInfo) -> Result<Reply, Reply> {
    let params = params(
        query,
        &["stream", "request_id", "status", "limit", "format"],
    )?;
    let as_json = match param(&params, "format") {
        None | Some("text") => false,
        Some("json") => true,
        Some(other) => {
            return Err(text(
                400,
                format!("unknown format `{other}` (text or json)\n"),
            ));
        }
    };
    let stream = match param(&params, "stream") {
        Some(v) => Some(
            v.parse::<u64>()
                .map_err(|_| text(400, format!("bad stream id `{v}`\n")))?,
        ),
        None => None,
    };
    let status = match param(&params, "status") {
        Some(v) => Some(
            StatusFilter::parse(v)
                .ok_or_else(|| text(400, format!("bad status `{v}` (e.g. 5xx or 503)\n")))?,
        ),
        None => None,
    };
    let limit = match param(&params, "limit") {
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n >= 1 => n,
            _ => return Err(text(400, format!("bad limit `{v}`\n"))),
        },
        None => 20,
    };
    let request_id = param(&params, "request_id");
    let failures = info.workers.failures();
    if stream.is_some() || request_id.is_some() {
        let found = failures.iter().find(|f| {
            stream.is_none_or(|s| f.stream == s)
                && request_id.is_none_or(|id| f.request_id.as_deref() == Some(id))
        });
        let Some(record) = found else {
            let what = match stream {
                Some(s) => format!("stream {s}"),
                None => format!("x-request-id {}", request_id.unwrap_or_default()),
            };
            return Err(text(
                404,
                format!(
                    "no failed request with {what}: each worker keeps its last {} failed requests (GET /explain lists them)\n",
                    crate::why::KEPT
                ),
            ));
        };
        return Ok(match as_json {
            true => json(&record.json()),
            false => {
                let mut out = String::new();
                record.text(&mut out);
                text(200, out)
            }
        });
    }
    let listed: Vec<&FailureRecord> = failures
        .iter()
        .filter(|f| status.is_none_or(|s| s.admits(f.status)))
        .take(limit)
        .collect();
    if as_json {
        let all: Vec<_> = listed.iter().map(|f| f.json()).collect();
        return Ok(json(&serde_json::Value::Array(all)));
    }
    let mut out = String::new();
    for f in &listed {
        let flags = if f.flags.is_empty() { "-" } else { f.flags };
        let _ = writeln!(
            out,
            "{} stream={} {} {} {}{} {flags}: {}",
            crate::access_log::format::rfc3339(f.at),
            f.stream,
            f.status,
            f.method,
            f.authority,
            f.path,
            f.summary()
        );
    }
    if listed.is_empty() {
        out.push_str("no failed requests kept\n");
    } else {
        out.push_str("GET /explain?stream=ID tells one in full\n");
    }
    Ok(text(200, out))
}

#[cfg(test)]
mod tests {
    use super::StatusFilter;

    #[test]
    fn status_filters_take_a_class_or_a_status() {
        let class = StatusFilter::parse("5xx").expect("a class");
        assert!(class.admits(503) && class.admits(500) && !class.admits(404));
        let exact = StatusFilter::parse("503").expect("a status");
        assert!(exact.admits(503) && !exact.admits(502));
        for bad in ["5x", "50", "xx", "abc", "5000", "55xx"] {
            assert_eq!(StatusFilter::parse(bad), None, "{bad}");
        }
    }
}
