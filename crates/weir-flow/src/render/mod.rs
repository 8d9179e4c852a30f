//! Renderers: the same flows as the seed's sectioned text, as JSON lines, as Chrome
//! trace-event JSON for Perfetto, and the HTML timeline page that draws the JSON lines.
//!
//! Every renderer takes flows as the recorder hands them out (newest first) and never fails:
//! a flow with missing events renders what it has.

mod json;
mod perfetto;
mod text;

use crate::Flow;

/// The seed's sectioned text, for a terminal or a log.
///
/// For each flow (in the order given, newest first): a header line
/// (`======== Flow worker=0: GET /index.html -> 200 in 5430.000µs (…)`), then its
/// events in time order, grouped into runs. A run is a stretch of one phase inside one wake
/// round that does one thing (accept, read the request, route it, connect, write…); each run
/// is introduced by `#### <phase title>: <what happens in it>` and lists one line per event:
///
/// ```text
/// #### Downstream Read Request: FD=41 readable: read HTTP request GET /index.html (89 bytes)
/// ***** elapsed=250.000µs: worker=0, fd=41, conn=d1: ready events=EPOLLIN
/// ***** elapsed=251.000µs: worker=0, fd=41, conn=d1: read asked=65536 ret=89
/// ***** elapsed=252.000µs: worker=0, fd=41, conn=d1: read asked=65536 ret=EAGAIN
/// ```
///
/// Every time is in microseconds with three decimals (nanosecond precision): the header's
/// duration, `elapsed` (since the flow's first event) and the wake rounds' times. Wake rounds
/// print the seed's summary block (`******* WAKE-ROUND:END Summary *******`, then
/// `ran=…µs ready_fds=… waited=…µs round=…`). Connections are named per flow, `d1` for the
/// downstream and `u1`, `u2`… for upstreams in order of appearance; the header lists them
/// with their fds. The recorder's long ids (`stream`, `conn`) are in the JSON lines only.
pub fn text(flows: &[Flow], out: &mut String) {
    text::render(flows, out);
}

/// JSON lines, for tools and for the HTML page.
///
/// The stream is a sequence of flows; each flow is one header object with
/// `"event":"flow"` and the fields `stream`, `worker`, `downstream`, `start`, `end`, `status`,
/// `method`, `path`, `truncated`, followed by that flow's events, one object per line (the
/// serde form of [`Event`](crate::Event), its kind flattened with the tag `"event"`). A
/// reader groups events under the last header it read. Every line is a complete JSON object
/// ending in `\n`; field names are stable (the README's field reference lists them all).
pub fn json_lines(flows: &[Flow], out: &mut String) {
    json::render(flows, out);
}

/// Chrome trace-event JSON (`{"traceEvents":[…],"displayTimeUnit":"ns"}`) that Perfetto
/// (ui.perfetto.dev) and `chrome://tracing` open.
///
/// - pid = worker, named `weir worker N`; in it one track for the worker's event loop, where
///   each wake round is a complete slice (`ph:"X"`, `dur` = the time the round ran), and one
///   track per connection, named `downstream fd 41 (conn 3)` / `upstream fd 44 (conn 4)`.
/// - On a connection's track: the request as one slice (`GET /index.html -> 200`), inside it
///   one slice per run of a phase, named by the phase title, and every event as an instant
///   (`ph:"i"`, `s:"t"`) named by its event name, with all of its fields in `args`.
/// - Flow arrows (`ph:"s"` → `ph:"f"`, `bp:"e"`, `cat:"flow"`, a shared `id`): `request`
///   from the downstream's Downstream Read Request slice to the upstream's Upstream Write
///   Request slice, `response` from the upstream's Upstream Read Response slice to the
///   downstream's Downstream Write Response slice.
///
/// Timestamps are microseconds on the recorder's clock, with three decimals (nanoseconds).
pub fn perfetto(flows: &[Flow]) -> String {
    perfetto::render(flows)
}

/// The HTML timeline: a self-contained page (inline CSS and JS, no external assets) that
/// fetches [`json_lines`] and draws the recent requests as swimlanes.
///
/// Served as `…/flows/view`, it fetches `…/flows?format=json&limit=N` (its own path without
/// the trailing `/view`; elsewhere, `flows?format=json&limit=N` relative to its URL), adding
/// `&status=` and `&min_duration_ms=` when those controls are set; its own query
/// (`?limit=50&status=5xx`) presets them. Each
/// flow is a group (`data-stream`) with a lane per connection and one for the worker's wake
/// rounds (`data-lane`, `data-fd`); phase runs are bars (`class="phase <phase name>"`) and
/// events are marks (`data-event="<event name>"`) whose tooltip shows the event's fields.
///
/// Under the controls, a line says what weir records (`id="recording"`); this page says it
/// in general terms, [`view_html_noting`] with what the running recorder does.
pub fn view_html() -> &'static str {
    include_str!("view.html")
}

/// [`view_html`] with `note` (plain text, escaped here) as the line that says what is
/// recorded and how to record more.
pub fn view_html_noting(note: &str) -> String {
    const OPEN: &str = "<p id=\"recording\">";
    let page = view_html();
    let (Some(start), Some(len)) = (
        page.find(OPEN),
        page.find(OPEN).and_then(|at| page[at..].find("</p>")),
    ) else {
        return page.to_owned();
    };
    let mut escaped = String::with_capacity(note.len());
    for c in note.chars() {
        match c {
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '&' => escaped.push_str("&amp;"),
            '"' => escaped.push_str("&quot;"),
            c => escaped.push(c),
        }
    }
    format!("{}{OPEN}{escaped}{}", &page[..start], &page[start + len..])
}

/// Nanoseconds as microseconds with three decimals: `31.400`.
pub(crate) struct Micros(pub(crate) u64);

impl std::fmt::Display for Micros {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{:03}", self.0 / 1_000, self.0 % 1_000)
    }
}

/// The name of a common errno (as the seed's readers know them), or the number.
pub(crate) fn errno_name(errno: i64) -> Option<&'static str> {
    Some(match errno {
        1 => "EPERM",
        4 => "EINTR",
        9 => "EBADF",
        11 => "EAGAIN",
        12 => "ENOMEM",
        22 => "EINVAL",
        24 => "EMFILE",
        32 => "EPIPE",
        98 => "EADDRINUSE",
        99 => "EADDRNOTAVAIL",
        101 => "ENETUNREACH",
        103 => "ECONNABORTED",
        104 => "ECONNRESET",
        107 => "ENOTCONN",
        110 => "ETIMEDOUT",
        111 => "ECONNREFUSED",
        113 => "EHOSTUNREACH",
        115 => "EINPROGRESS",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::Micros;

    #[test]
    fn durations_read_well() {
        assert_eq!(Micros(1_000_031_400).to_string(), "1000031.400");
        assert_eq!(Micros(7).to_string(), "0.007");
    }
}
