//! Rendering one access log line: a [`LogRecord`] through a compiled [`LogFormat`], appended to a
//! byte buffer.
//!
//! Sans-IO and allocation-free: values are written straight into the caller's buffer (numbers
//! with `itoa`, addresses with `write!`, times from the record's `SystemTime` by hand), and JSON
//! strings are escaped in place after they are written. Envoy's rules, as the docs of
//! `weir_config::LogFormat` list them, are followed exactly: `-` (or nothing, with
//! `omit_empty_values`) for a missing value in text; typed values, `null` and sorted keys in JSON;
//! whole milliseconds, truncated, for durations; `:Z` truncates a header value to Z bytes.

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use weir_config::{
    FormatKind, HeaderOperator, JsonField, JsonValue, LogFormat, Operator, Piece, TimeFormat,
    TimePiece,
};

/// What happened to one request, as the access log sees it. The data path fills it once, when
/// the stream ends; every logger of the connection manager formats the same record.
#[derive(Debug, Clone)]
pub(crate) struct LogRecord {
    /// When the request started (its first byte arrived).
    pub(crate) start: SystemTime,
    /// Request headers as `(lower-case name, value)`, only those some format logs (see
    /// `Needs::request_headers`), pseudo-headers included: `:method`, `:path`, `:authority`
    /// (the `Host` header, for HTTP/1), `:scheme`. The first entry of a name wins.
    pub(crate) request_headers: Vec<(Bytes, Bytes)>,
    /// Response headers sent downstream, likewise. `:status` need not be there: it is
    /// `response_code`.
    pub(crate) response_headers: Vec<(Bytes, Bytes)>,
    /// `HTTP/1.1` or `HTTP/1.0`; empty renders as missing.
    pub(crate) protocol: &'static str,
    /// The status sent downstream; 0 when none was sent (Envoy logs `0`).
    pub(crate) response_code: u16,
    /// Why that status (`via_upstream`, `route_not_found`, …); empty renders as missing.
    pub(crate) response_code_details: &'static str,
    /// Envoy's short response flags, comma-separated (`UF`, `URX,UF`); empty renders as `-`.
    pub(crate) response_flags: &'static str,
    /// Request body bytes received.
    pub(crate) bytes_received: u64,
    /// Response body bytes sent.
    pub(crate) bytes_sent: u64,
    /// Start to the last byte sent downstream.
    pub(crate) duration: Option<Duration>,
    /// Start to the last request byte received.
    pub(crate) request_duration: Option<Duration>,
    /// Start to the first response byte received from the upstream.
    pub(crate) response_duration: Option<Duration>,
    /// The upstream host the request went to.
    pub(crate) upstream_host: Option<SocketAddr>,
    /// Its cluster's name.
    pub(crate) upstream_cluster: Option<Arc<str>>,
    /// The local address of the upstream connection (only needed when
    /// `Needs::upstream_local_address`).
    pub(crate) upstream_local: Option<SocketAddr>,
    /// The client's address.
    pub(crate) downstream_remote: SocketAddr,
    /// The address the client connected to.
    pub(crate) downstream_local: SocketAddr,
    /// The matched route's name; empty renders as missing.
    pub(crate) route_name: Option<Arc<str>>,
}

/// Appends the line for `record` to `out`. Text formats append exactly what the format says (the
/// default format ends with `\n`; a format without one writes none); JSON formats append one
/// object and `\n`.
pub(crate) fn format(format: &LogFormat, record: &LogRecord, out: &mut Vec<u8>) {
    let omit = format.omit_empty_values();
    match format.kind() {
        FormatKind::Text(pieces) => {
            for piece in pieces {
                match piece {
                    Piece::Literal(text) => out.extend_from_slice(text.as_bytes()),
                    Piece::Operator(op) => {
                        if !write_raw(&value(op, record), out) && !omit {
                            out.push(b'-');
                        }
                    }
                }
            }
        }
        FormatKind::Json(fields) => {
            if !json_object(fields, record, out, omit) {
                out.extend_from_slice(b"{}");
            }
            out.push(b'\n');
        }
    }
}

/// `t` as Envoy's default `%START_TIME%` renders it: `2016-04-15T20:17:00.310Z` (UTC,
/// milliseconds, truncated). Also used for timestamps in admin output.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let mut out = Vec::with_capacity(24);
    write_time(t, &TimeFormat::Default, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// An operator's value for one record.
enum Value<'a> {
    /// Not set: `-` in text, `null` in JSON.
    Missing,
    /// Text (header values may be any bytes).
    Bytes(&'a [u8]),
    /// A number (a JSON number when alone in a value).
    Number(u64),
    /// The status code as a header value (`%RESP(:STATUS)%`): a string, maybe truncated.
    Status(u16, Option<usize>),
    /// A time, rendered with its format.
    Time(SystemTime, &'a TimeFormat),
    /// `ip:port`.
    Address(SocketAddr),
    /// `ip`.
    Ip(IpAddr),
}

fn value<'a>(op: &'a Operator, r: &'a LogRecord) -> Value<'a> {
    let text = |s: &'a str| {
        if s.is_empty() {
            Value::Missing
        } else {
            Value::Bytes(s.as_bytes())
        }
    };
    let millis = |d: Option<Duration>| match d {
        Some(d) => Value::Number(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        None => Value::Missing,
    };
    let opt = |a: Option<SocketAddr>, f: fn(SocketAddr) -> Value<'a>| a.map_or(Value::Missing, f);
    match op {
        Operator::StartTime(f) => Value::Time(r.start, f),
        Operator::RequestHeader(h) => header(&r.request_headers, h),
        Operator::ResponseHeader(h) => {
            if h.name == ":status" && r.response_code != 0 {
                Value::Status(r.response_code, h.max_length)
            } else {
                header(&r.response_headers, h)
            }
        }
        Operator::ResponseCode => Value::Number(u64::from(r.response_code)),
        Operator::ResponseCodeDetails => text(r.response_code_details),
        Operator::ResponseFlags => Value::Bytes(if r.response_flags.is_empty() {
            b"-"
        } else {
            r.response_flags.as_bytes()
        }),
        Operator::BytesReceived => Value::Number(r.bytes_received),
        Operator::BytesSent => Value::Number(r.bytes_sent),
        Operator::Duration => millis(r.duration),
        Operator::RequestDuration => millis(r.request_duration),
        Operator::ResponseDuration => millis(r.response_duration),
        Operator::UpstreamHost | Operator::UpstreamRemoteAddress => {
            opt(r.upstream_host, Value::Address)
        }
        Operator::UpstreamRemoteAddressWithoutPort => opt(r.upstream_host, |a| Value::Ip(a.ip())),
        Operator::UpstreamRemotePort => {
            opt(r.upstream_host, |a| Value::Number(u64::from(a.port())))
        }
        Operator::UpstreamCluster => r.upstream_cluster.as_deref().map_or(Value::Missing, text),
        Operator::UpstreamLocalAddress => opt(r.upstream_local, Value::Address),
        Operator::UpstreamLocalAddressWithoutPort => opt(r.upstream_local, |a| Value::Ip(a.ip())),
        Operator::UpstreamLocalPort => {
            opt(r.upstream_local, |a| Value::Number(u64::from(a.port())))
        }
        Operator::DownstreamRemoteAddress => Value::Address(r.downstream_remote),
        Operator::DownstreamRemoteAddressWithoutPort => Value::Ip(r.downstream_remote.ip()),
        Operator::DownstreamRemotePort => Value::Number(u64::from(r.downstream_remote.port())),
        Operator::DownstreamLocalAddress => Value::Address(r.downstream_local),
        Operator::DownstreamLocalAddressWithoutPort => Value::Ip(r.downstream_local.ip()),
        Operator::DownstreamLocalPort => Value::Number(u64::from(r.downstream_local.port())),
        Operator::RouteName => r.route_name.as_deref().map_or(Value::Missing, text),
        Operator::Protocol => text(r.protocol),
    }
}

/// `%REQ(main?alternative):max%`: the first value of `main`, else of `alternative`, truncated.
fn header<'a>(headers: &'a [(Bytes, Bytes)], h: &HeaderOperator) -> Value<'a> {
    let find = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v.as_ref())
    };
    let found = find(&h.name).or_else(|| h.alternative.as_deref().and_then(find));
    match found {
        Some(v) => Value::Bytes(truncate(v, h.max_length)),
        None => Value::Missing,
    }
}

/// The first `max` bytes (Envoy truncates bytes, not characters).
fn truncate(v: &[u8], max: Option<usize>) -> &[u8] {
    match max {
        Some(max) if v.len() > max => &v[..max],
        _ => v,
    }
}

/// Writes a value as text; `false` (and nothing written) when it is missing.
fn write_raw(v: &Value<'_>, out: &mut Vec<u8>) -> bool {
    match v {
        Value::Missing => return false,
        Value::Bytes(b) => out.extend_from_slice(b),
        Value::Number(n) => out.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes()),
        Value::Status(code, max) => {
            let mut buf = itoa::Buffer::new();
            out.extend_from_slice(truncate(buf.format(*code).as_bytes(), *max));
        }
        Value::Time(t, f) => write_time(*t, f, out),
        // Writing to a Vec cannot fail.
        Value::Address(a) => {
            let _ = write!(out, "{a}");
        }
        Value::Ip(ip) => {
            let _ = write!(out, "{ip}");
        }
    }
    true
}

// ---------------------------------------------------------------------------------------------
// JSON.

/// An object; `false` (and nothing written) when `omit` left it without fields.
fn json_object(fields: &[JsonField], r: &LogRecord, out: &mut Vec<u8>, omit: bool) -> bool {
    let start = out.len();
    out.push(b'{');
    let mut empty = true;
    for field in fields {
        let mark = out.len();
        if !empty {
            out.push(b',');
        }
        out.push(b'"');
        let key = out.len();
        out.extend_from_slice(field.key.as_bytes());
        escape_from(out, key);
        out.extend_from_slice(b"\":");
        if json_value(&field.value, r, out, omit) {
            empty = false;
        } else {
            out.truncate(mark);
        }
    }
    if empty && omit {
        out.truncate(start);
        return false;
    }
    out.push(b'}');
    true
}

/// One value; `false` (and nothing written) when `omit` leaves it out.
fn json_value(v: &JsonValue, r: &LogRecord, out: &mut Vec<u8>, omit: bool) -> bool {
    match v {
        JsonValue::Constant(json) => out.extend_from_slice(json.as_bytes()),
        JsonValue::Template(pieces) => match pieces.as_slice() {
            // Exactly one operator: its typed value.
            [Piece::Operator(op)] => match value(op, r) {
                Value::Missing if omit => return false,
                Value::Missing => out.extend_from_slice(b"null"),
                Value::Number(n) => out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes()),
                other => json_string(&other, out),
            },
            // Anything else is a string; missing values are `-` (or nothing).
            _ => {
                out.push(b'"');
                for piece in pieces {
                    let at = out.len();
                    match piece {
                        Piece::Literal(text) => out.extend_from_slice(text.as_bytes()),
                        Piece::Operator(op) => {
                            if !write_raw(&value(op, r), out) && !omit {
                                out.push(b'-');
                            }
                        }
                    }
                    escape_from(out, at);
                }
                out.push(b'"');
            }
        },
        JsonValue::Object(fields) => return json_object(fields, r, out, omit),
        JsonValue::List(items) => {
            out.push(b'[');
            let mut empty = true;
            for item in items {
                let mark = out.len();
                if !empty {
                    out.push(b',');
                }
                if json_value(item, r, out, omit) {
                    empty = false;
                } else {
                    out.truncate(mark);
                }
            }
            out.push(b']');
        }
    }
    true
}

/// A present value as a JSON string.
fn json_string(v: &Value<'_>, out: &mut Vec<u8>) {
    out.push(b'"');
    let at = out.len();
    write_raw(v, out);
    escape_from(out, at);
    out.push(b'"');
}

/// Escapes `out[start..]` in place as Envoy's JSON sanitizer does: valid UTF-8 keeps its
/// characters and escapes `"`, `\` and control characters (`\n`, `\t`, …, `\u001f`); a value
/// that is not valid UTF-8 has every control, `"`, `\`, DEL and non-ASCII byte written as a
/// three-digit octal escape (`\303`).
fn escape_from(out: &mut Vec<u8>, start: usize) {
    let special = |b: u8| b < 0x20 || b == b'"' || b == b'\\' || b >= 0x80;
    if !out[start..].iter().any(|&b| special(b)) {
        return;
    }
    let utf8 = std::str::from_utf8(&out[start..]).is_ok();
    let width = |b: u8| -> usize {
        if utf8 {
            match b {
                b'"' | b'\\' | 0x08 | 0x0c | b'\n' | b'\r' | b'\t' => 2,
                0..0x20 => 6,
                _ => 1,
            }
        } else if special(b) || b == 0x7f {
            4
        } else {
            1
        }
    };
    let old_end = out.len();
    let new_len: usize = out[start..].iter().map(|&b| width(b)).sum();
    out.resize(start + new_len, 0);
    // Fill from the back: the write position never passes the read position.
    let mut w = out.len();
    for r in (start..old_end).rev() {
        let b = out[r];
        let n = width(b);
        w -= n;
        match n {
            1 => out[w] = b,
            2 => {
                out[w] = b'\\';
                out[w + 1] = match b {
                    0x08 => b'b',
                    0x0c => b'f',
                    b'\n' => b'n',
                    b'\r' => b'r',
                    b'\t' => b't',
                    other => other,
                };
            }
            6 => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out[w..w + 4].copy_from_slice(b"\\u00");
                out[w + 4] = HEX[usize::from(b >> 4)];
                out[w + 5] = HEX[usize::from(b & 0xf)];
            }
            _ => {
                out[w] = b'\\';
                out[w + 1] = b'0' + (b >> 6);
                out[w + 2] = b'0' + ((b >> 3) & 7);
                out[w + 3] = b'0' + (b & 7);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Time.

/// A UTC civil time, computed from the Unix time without a calendar library.
struct Civil {
    /// Seconds since the epoch (negative before 1970).
    epoch: i64,
    year: i64,
    /// 1–12.
    month: u32,
    /// 1–31.
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    nanos: u32,
    /// 0 = Sunday.
    weekday: u32,
    /// 1–366.
    day_of_year: u32,
}

impl Civil {
    fn new(t: SystemTime) -> Civil {
        let (epoch, nanos) = match t.duration_since(UNIX_EPOCH) {
            Ok(d) => (
                i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                d.subsec_nanos(),
            ),
            Err(e) => {
                let d = e.duration();
                let secs = -i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
                match d.subsec_nanos() {
                    0 => (secs, 0),
                    n => (secs - 1, 1_000_000_000 - n),
                }
            }
        };
        let days = epoch.div_euclid(86_400);
        let secs_of_day = epoch.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
        const BEFORE: [u32; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
        let day_of_year = BEFORE[month as usize - 1] + day + u32::from(leap && month > 2);
        Civil {
            epoch,
            year,
            month,
            day,
            hour: secs_of_day / 3600,
            minute: secs_of_day / 60 % 60,
            second: secs_of_day % 60,
            nanos,
            // 1970-01-01 was a Thursday.
            weekday: (days + 4).rem_euclid(7) as u32,
            day_of_year,
        }
    }
}

/// (year, month, day) of the day `days` after 1970-01-01 (Howard Hinnant's `civil_from_days`).
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097) as u64; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March = 0
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe as i64 + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

fn write_time(t: SystemTime, format: &TimeFormat, out: &mut Vec<u8>) {
    let c = Civil::new(t);
    match format {
        TimeFormat::Default => {
            // %Y-%m-%dT%H:%M:%E3SZ
            number(out, c.year);
            out.push(b'-');
            pad(out, c.month, 2);
            out.push(b'-');
            pad(out, c.day, 2);
            out.push(b'T');
            pad(out, c.hour, 2);
            out.push(b':');
            pad(out, c.minute, 2);
            out.push(b':');
            pad(out, c.second, 2);
            out.push(b'.');
            fraction(out, c.nanos, 3);
            out.push(b'Z');
        }
        TimeFormat::Custom(pieces) => {
            for piece in pieces {
                time_piece(&c, piece, out);
            }
        }
    }
}

fn time_piece(c: &Civil, piece: &TimePiece, out: &mut Vec<u8>) {
    match piece {
        TimePiece::Literal(text) => out.extend_from_slice(text.as_bytes()),
        TimePiece::Year => number(out, c.year),
        TimePiece::YearOfCentury => pad(out, c.year.rem_euclid(100) as u32, 2),
        TimePiece::Century => number_padded(out, c.year.div_euclid(100), 2),
        TimePiece::Month => pad(out, c.month, 2),
        TimePiece::Day => pad(out, c.day, 2),
        TimePiece::DaySpacePadded => {
            if c.day < 10 {
                out.push(b' ');
            }
            pad(out, c.day, 1);
        }
        TimePiece::Hour => pad(out, c.hour, 2),
        TimePiece::Hour12 => pad(
            out,
            if c.hour.is_multiple_of(12) {
                12
            } else {
                c.hour % 12
            },
            2,
        ),
        TimePiece::Minute => pad(out, c.minute, 2),
        TimePiece::Second => pad(out, c.second, 2),
        TimePiece::SecondWithFraction(digits) => {
            pad(out, c.second, 2);
            if *digits > 0 {
                out.push(b'.');
                fraction(out, c.nanos, *digits);
            }
        }
        TimePiece::SecondWithFullFraction => {
            pad(out, c.second, 2);
            if c.nanos != 0 {
                out.push(b'.');
                full_fraction(out, c.nanos);
            }
        }
        TimePiece::Fraction(digits) => fraction(out, c.nanos, *digits),
        TimePiece::FullFraction => {
            if c.nanos == 0 {
                out.push(b'0');
            } else {
                full_fraction(out, c.nanos);
            }
        }
        TimePiece::EpochSeconds => number(out, c.epoch),
        TimePiece::Offset => out.extend_from_slice(b"+0000"),
        TimePiece::OffsetWithColon => out.extend_from_slice(b"+00:00"),
        TimePiece::ZoneName => out.extend_from_slice(b"UTC"),
        TimePiece::MonthName => {
            out.extend_from_slice(&MONTHS[c.month as usize - 1].as_bytes()[..3])
        }
        TimePiece::MonthFullName => out.extend_from_slice(MONTHS[c.month as usize - 1].as_bytes()),
        TimePiece::WeekdayName => {
            out.extend_from_slice(&WEEKDAYS[c.weekday as usize].as_bytes()[..3])
        }
        TimePiece::WeekdayFullName => {
            out.extend_from_slice(WEEKDAYS[c.weekday as usize].as_bytes())
        }
        TimePiece::WeekdayFromMonday => pad(out, if c.weekday == 0 { 7 } else { c.weekday }, 1),
        TimePiece::WeekdayFromSunday => pad(out, c.weekday, 1),
        TimePiece::DayOfYear => pad(out, c.day_of_year, 3),
        TimePiece::AmPm => out.extend_from_slice(if c.hour < 12 { b"AM" } else { b"PM" }),
    }
}

fn number(out: &mut Vec<u8>, n: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn number_padded(out: &mut Vec<u8>, n: i64, width: usize) {
    if n < 0 {
        out.push(b'-');
    }
    let mut buf = itoa::Buffer::new();
    let digits = buf.format(n.unsigned_abs());
    out.extend(std::iter::repeat_n(
        b'0',
        width.saturating_sub(digits.len()),
    ));
    out.extend_from_slice(digits.as_bytes());
}

/// `n` zero-padded to `width` digits.
fn pad(out: &mut Vec<u8>, n: u32, width: usize) {
    let mut buf = itoa::Buffer::new();
    let digits = buf.format(n);
    out.extend(std::iter::repeat_n(
        b'0',
        width.saturating_sub(digits.len()),
    ));
    out.extend_from_slice(digits.as_bytes());
}

/// The first `digits` fractional digits of `nanos`, truncated.
fn fraction(out: &mut Vec<u8>, nanos: u32, digits: u8) {
    let digits = u32::from(digits.min(9));
    pad(out, nanos / 10u32.pow(9 - digits), digits as usize);
}

/// The fractional digits of `nanos` without trailing zeros (`nanos` is not zero).
fn full_fraction(out: &mut Vec<u8>, nanos: u32) {
    let mut digits = 9u8;
    let mut n = nanos;
    while n.is_multiple_of(10) && digits > 1 {
        n /= 10;
        digits -= 1;
    }
    pad(out, n, usize::from(digits));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2016-04-15T20:17:00.310Z, the time in Envoy's documentation example.
    fn docs_time() -> SystemTime {
        UNIX_EPOCH + Duration::new(1_460_751_420, 310_123_456)
    }

    fn record() -> LogRecord {
        LogRecord {
            start: docs_time(),
            request_headers: Vec::new(),
            response_headers: Vec::new(),
            protocol: "HTTP/1.1",
            response_code: 0,
            response_code_details: "",
            response_flags: "",
            bytes_received: 0,
            bytes_sent: 0,
            duration: None,
            request_duration: None,
            response_duration: None,
            upstream_host: None,
            upstream_cluster: None,
            upstream_local: None,
            downstream_remote: "10.0.0.9:51234".parse().unwrap(),
            downstream_local: "10.0.0.1:8080".parse().unwrap(),
            route_name: None,
        }
    }

    fn headers(list: &[(&'static str, &'static str)]) -> Vec<(Bytes, Bytes)> {
        list.iter()
            .map(|(n, v)| {
                (
                    Bytes::from_static(n.as_bytes()),
                    Bytes::from_static(v.as_bytes()),
                )
            })
            .collect()
    }

    fn text(format: &str, r: &LogRecord) -> String {
        text_with(format, false, r)
    }

    fn text_with(format: &str, omit: bool, r: &LogRecord) -> String {
        let f = LogFormat::text(format, omit).unwrap();
        let mut out = Vec::new();
        super::format(&f, r, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn json(format: serde_json::Value, omit: bool, r: &LogRecord) -> String {
        let f = LogFormat::json(&format, omit).unwrap();
        let mut out = Vec::new();
        super::format(&f, r, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn at(secs: i64, nanos: u32) -> SystemTime {
        if secs >= 0 {
            UNIX_EPOCH + Duration::new(secs.unsigned_abs(), nanos)
        } else {
            UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
                + Duration::from_nanos(u64::from(nanos))
        }
    }

    fn time(format: &str, t: SystemTime) -> String {
        let mut r = record();
        r.start = t;
        text(&format!("%START_TIME({format})%"), &r)
    }

    /// Envoy's documentation example of the default format, with today's UPSTREAM_HOST (`ip:port`;
    /// the `tcp://` in the docs is from Envoy versions that printed the host's URL).
    #[test]
    fn default_format_matches_envoy_docs_example() {
        let mut r = record();
        r.request_headers = headers(&[
            (":method", "POST"),
            (":path", "/api/v1/locations"),
            (":authority", "locations"),
            ("x-forwarded-for", "10.0.35.28"),
            ("user-agent", "nsq2http"),
            ("x-request-id", "cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2"),
        ]);
        r.response_headers = headers(&[("x-envoy-upstream-service-time", "100")]);
        r.protocol = "HTTP/2";
        r.response_code = 204;
        r.bytes_received = 154;
        r.bytes_sent = 0;
        r.duration = Some(Duration::from_micros(226_999));
        r.upstream_host = Some("10.0.2.1:80".parse().unwrap());
        let mut out = Vec::new();
        format(&LogFormat::envoy_default(), &r, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "[2016-04-15T20:17:00.310Z] \"POST /api/v1/locations HTTP/2\" 204 - 154 0 226 100 \
             \"10.0.35.28\" \"nsq2http\" \"cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2\" \"locations\" \
             \"10.0.2.1:80\"\n"
        );
    }

    #[test]
    fn default_format_with_nothing_set() {
        let mut out = Vec::new();
        format(&LogFormat::envoy_default(), &record(), &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "[2016-04-15T20:17:00.310Z] \"- - HTTP/1.1\" 0 - 0 0 - - \"-\" \"-\" \"-\" \"-\" \"-\"\n"
        );
    }

    #[test]
    fn every_operator_as_text() {
        let mut r = record();
        r.request_headers = headers(&[(":path", "/a"), ("x-b", "")]);
        r.response_headers = headers(&[("content-type", "text/plain")]);
        r.response_code = 503;
        r.response_code_details = "upstream_reset_before_response_started{connection_failure}";
        r.response_flags = "URX,UF";
        r.bytes_received = 12;
        r.bytes_sent = 91;
        r.duration = Some(Duration::from_millis(15));
        r.request_duration = Some(Duration::from_micros(1999));
        r.response_duration = Some(Duration::from_nanos(999_999));
        r.upstream_host = Some("[::1]:9000".parse().unwrap());
        r.upstream_cluster = Some(Arc::from("backend"));
        r.upstream_local = Some("127.0.0.1:40000".parse().unwrap());
        r.route_name = Some(Arc::from("r1"));
        let cases: &[(&str, &str)] = &[
            ("%START_TIME%", "2016-04-15T20:17:00.310Z"),
            ("%REQ(:PATH)%", "/a"),
            ("%REQUEST_HEADER(:path)%", "/a"),
            ("%REQ(X-B)%", ""),
            ("%REQ(X-NONE)%", "-"),
            ("%RESP(CONTENT-TYPE)%", "text/plain"),
            ("%RESPONSE_HEADER(Content-Type)%", "text/plain"),
            ("%RESP(:STATUS)%", "503"),
            ("%RESPONSE_CODE%", "503"),
            (
                "%RESPONSE_CODE_DETAILS%",
                "upstream_reset_before_response_started{connection_failure}",
            ),
            ("%RESPONSE_FLAGS%", "URX,UF"),
            ("%BYTES_RECEIVED%", "12"),
            ("%BYTES_SENT%", "91"),
            ("%DURATION%", "15"),
            ("%REQUEST_DURATION%", "1"),
            ("%RESPONSE_DURATION%", "0"),
            ("%UPSTREAM_HOST%", "[::1]:9000"),
            ("%UPSTREAM_REMOTE_ADDRESS%", "[::1]:9000"),
            ("%UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%", "::1"),
            ("%UPSTREAM_REMOTE_PORT%", "9000"),
            ("%UPSTREAM_CLUSTER%", "backend"),
            ("%UPSTREAM_LOCAL_ADDRESS%", "127.0.0.1:40000"),
            ("%UPSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%", "127.0.0.1"),
            ("%UPSTREAM_LOCAL_PORT%", "40000"),
            ("%DOWNSTREAM_REMOTE_ADDRESS%", "10.0.0.9:51234"),
            ("%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%", "10.0.0.9"),
            ("%DOWNSTREAM_REMOTE_PORT%", "51234"),
            ("%DOWNSTREAM_LOCAL_ADDRESS%", "10.0.0.1:8080"),
            ("%DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%", "10.0.0.1"),
            ("%DOWNSTREAM_LOCAL_PORT%", "8080"),
            ("%ROUTE_NAME%", "r1"),
            ("%PROTOCOL%", "HTTP/1.1"),
        ];
        for (format, expected) in cases {
            assert_eq!(text(format, &r), *expected, "{format}");
        }
    }

    #[test]
    fn missing_values_as_text() {
        let mut r = record();
        r.protocol = "";
        r.route_name = Some(Arc::from(""));
        let missing = [
            "%REQ(:PATH)%",
            "%RESP(:STATUS)%",
            "%RESPONSE_CODE_DETAILS%",
            "%DURATION%",
            "%REQUEST_DURATION%",
            "%RESPONSE_DURATION%",
            "%UPSTREAM_HOST%",
            "%UPSTREAM_CLUSTER%",
            "%UPSTREAM_LOCAL_ADDRESS%",
            "%UPSTREAM_LOCAL_PORT%",
            "%ROUTE_NAME%",
            "%PROTOCOL%",
        ];
        for format in missing {
            assert_eq!(text(format, &r), "-", "{format}");
            assert_eq!(text_with(format, true, &r), "", "{format}");
        }
        // Never missing: 0, and `-` for no flags even with omit_empty_values.
        assert_eq!(
            text_with("%RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_SENT%", true, &r),
            "0 - 0"
        );
        assert_eq!(text_with("[%UPSTREAM_HOST%]", true, &r), "[]");
    }

    #[test]
    fn no_newline_is_added() {
        assert_eq!(text("%PROTOCOL%", &record()), "HTTP/1.1");
        assert_eq!(text("%PROTOCOL%\n", &record()), "HTTP/1.1\n");
        assert_eq!(text("", &record()), "");
        assert_eq!(text("100%% %PROTOCOL%", &record()), "100% HTTP/1.1");
    }

    #[test]
    fn truncation_and_alternatives() {
        let mut r = record();
        r.request_headers = headers(&[
            (":path", "/rewritten"),
            ("x-envoy-original-path", "/original/path"),
            ("user-agent", "curl/8.5.0"),
            ("user-agent", "second"),
            ("x-utf8", "héllo"),
        ]);
        assert_eq!(
            text("%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%", &r),
            "/original/path"
        );
        assert_eq!(text("%REQ(X-NONE?:PATH)%", &r), "/rewritten");
        assert_eq!(text("%REQ(X-NONE?X-ALSO-NONE)%", &r), "-");
        assert_eq!(text("%REQ(X-ENVOY-ORIGINAL-PATH?:PATH):5%", &r), "/orig");
        assert_eq!(text("%REQ(X-NONE?:PATH):3%", &r), "/re");
        assert_eq!(text("%REQ(USER-AGENT):0%", &r), "");
        assert_eq!(text("%REQ(USER-AGENT):100%", &r), "curl/8.5.0");
        // The first value of a repeated header, as Envoy logs it.
        assert_eq!(text("%REQ(user-agent)%", &r), "curl/8.5.0");
        // Bytes, not characters: the cut may split a character, as in Envoy.
        let mut out = Vec::new();
        format(
            &LogFormat::text("%REQ(X-UTF8):2%", false).unwrap(),
            &r,
            &mut out,
        );
        assert_eq!(out, b"h\xc3");
        r.response_code = 200;
        assert_eq!(text("%RESP(:STATUS):1%", &r), "2");
    }

    #[test]
    fn json_typed_values() {
        let mut r = record();
        r.request_headers = headers(&[(":path", "/p"), ("user-agent", "ua")]);
        r.response_code = 200;
        r.bytes_received = 3;
        r.bytes_sent = 1_000_000;
        r.duration = Some(Duration::from_millis(7));
        r.upstream_host = Some("10.0.2.1:80".parse().unwrap());
        let f = serde_json::json!({
            "status": "%RESPONSE_CODE%",
            "received": "%BYTES_RECEIVED%",
            "sent": "%BYTES_SENT%",
            "duration": "%DURATION%",
            "request_duration": "%REQUEST_DURATION%",
            "port": "%DOWNSTREAM_REMOTE_PORT%",
            "path": "%REQ(:PATH)%",
            "missing_header": "%REQ(X-NONE)%",
            "mixed": "%RESPONSE_CODE%/%REQ(X-NONE)%",
            "duration_string": "%DURATION%.0",
            "protocol": "%PROTOCOL%",
            "flags": "%RESPONSE_FLAGS%",
            "upstream": {"host": "%UPSTREAM_HOST%", "cluster": "%UPSTREAM_CLUSTER%"},
            "start": "%START_TIME%",
            "constant": "weir",
            "number": 1.5,
            "list": ["%RESPONSE_CODE%", "%ROUTE_NAME%", false],
        });
        assert_eq!(
            json(f.clone(), false, &r),
            "{\"constant\":\"weir\",\"duration\":7,\"duration_string\":\"7.0\",\"flags\":\"-\",\
             \"list\":[200,null,false],\"missing_header\":null,\"mixed\":\"200/-\",\"number\":1.5,\
             \"path\":\"/p\",\"port\":51234,\"protocol\":\"HTTP/1.1\",\"received\":3,\
             \"request_duration\":null,\"sent\":1000000,\"start\":\"2016-04-15T20:17:00.310Z\",\
             \"status\":200,\"upstream\":{\"cluster\":null,\"host\":\"10.0.2.1:80\"}}\n"
        );
        // omit_empty_values: null keys (and objects left empty) go; lists keep their place.
        r.upstream_host = None;
        assert_eq!(
            json(f, true, &r),
            "{\"constant\":\"weir\",\"duration\":7,\"duration_string\":\"7.0\",\"flags\":\"-\",\
             \"list\":[200,false],\"mixed\":\"200/\",\"number\":1.5,\"path\":\"/p\",\"port\":51234,\
             \"protocol\":\"HTTP/1.1\",\"received\":3,\"sent\":1000000,\
             \"start\":\"2016-04-15T20:17:00.310Z\",\"status\":200}\n"
        );
        assert_eq!(
            json(
                serde_json::json!({"a": "%ROUTE_NAME%", "b": {"c": "%UPSTREAM_HOST%"}}),
                true,
                &r
            ),
            "{}\n"
        );
        assert_eq!(json(serde_json::json!({}), false, &r), "{}\n");
        assert_eq!(
            json(serde_json::json!({"a": null, "b": {}}), false, &r),
            "{\"a\":null,\"b\":{}}\n"
        );
        assert_eq!(
            json(serde_json::json!({"a": null, "b": {}, "c": []}), true, &r),
            "{\"c\":[]}\n"
        );
    }

    #[test]
    fn json_escaping() {
        let mut r = record();
        r.request_headers = vec![
            (
                Bytes::from_static(b"x-q"),
                Bytes::from_static(b"say \"hi\"\\ \t\x01\x7f \xc3\xa9"),
            ),
            (
                Bytes::from_static(b"x-bad"),
                Bytes::from_static(b"a\xff\"\n"),
            ),
        ];
        assert_eq!(
            json(
                serde_json::json!({"q": "%REQ(X-Q)%", "k\"ey": "<%REQ(X-Q)%>"}),
                false,
                &r
            ),
            "{\"k\\\"ey\":\"<say \\\"hi\\\"\\\\ \\t\\u0001\u{7f} é>\",\
             \"q\":\"say \\\"hi\\\"\\\\ \\t\\u0001\u{7f} é\"}\n"
        );
        let f = LogFormat::json(&serde_json::json!({"bad": "%REQ(X-BAD)%"}), false).unwrap();
        let mut out = Vec::new();
        format(&f, &r, &mut out);
        assert_eq!(out, b"{\"bad\":\"a\\377\\042\\012\"}\n");
    }

    #[test]
    fn start_time_formats() {
        let t = docs_time(); // 2016-04-15T20:17:00.310123456Z, a Friday
        let cases: &[(&str, &str)] = &[
            ("%Y-%m-%dT%H:%M:%E3SZ", "2016-04-15T20:17:00.310Z"),
            (
                "%Y/%m/%dT%H:%M:%S%z %s",
                "2016/04/15T20:17:00+0000 1460751420",
            ),
            ("%s.%3f", "1460751420.310"),
            ("%s.%6f", "1460751420.310123"),
            ("%s.%9f", "1460751420.310123456"),
            ("%f", "310123456"),
            ("%1f|%E2f", "3|31"),
            ("%E6S|%E9S|%E0S", "00.310123|00.310123456|00"),
            ("%E*S|%E*f", "00.310123456|310123456"),
            ("%Z %Ez", "UTC +00:00"),
            ("%a %A %b %h %B", "Fri Friday Apr Apr April"),
            ("%j %u %w %e %y %C", "106 5 5 15 16 20"),
            (
                "%I %p %T %F %D %R",
                "08 PM 20:17:00 2016-04-15 04/15/16 20:17",
            ),
            ("%c", "Fri Apr 15 20:17:00 2016"),
            ("at %%H=%H", "at %H=20"),
        ];
        for (format, expected) in cases {
            assert_eq!(time(format, t), *expected, "{format}");
        }
        assert_eq!(time("%E*S|%E*f", at(5, 0)), "05|0");
        assert_eq!(time("%E*S", at(5, 500_000_000)), "05.5");
    }

    #[test]
    fn civil_dates() {
        let cases: &[(i64, &str)] = &[
            (0, "1970-01-01T00:00:00 Thu 001"),
            // A leap day, and the last day of a leap year.
            (951_782_400, "2000-02-29T00:00:00 Tue 060"),
            (978_307_199, "2000-12-31T23:59:59 Sun 366"),
            (1_709_164_800, "2024-02-29T00:00:00 Thu 060"),
            (1_709_251_200, "2024-03-01T00:00:00 Fri 061"),
            // Before 2000, and the end of a non-leap century year.
            (946_684_799, "1999-12-31T23:59:59 Fri 365"),
            (-2_208_988_800, "1900-01-01T00:00:00 Mon 001"),
            (-1, "1969-12-31T23:59:59 Wed 365"),
            (4_107_542_400, "2100-03-01T00:00:00 Mon 060"),
        ];
        for (secs, expected) in cases {
            assert_eq!(
                time("%Y-%m-%dT%H:%M:%S %a %j", at(*secs, 0)),
                *expected,
                "{secs}"
            );
        }
        assert_eq!(time("%E3S %s", at(-1, 250_000_000)), "59.250 -1");
        assert_eq!(
            rfc3339(at(951_782_400, 999_999_999)),
            "2000-02-29T00:00:00.999Z"
        );
    }
}
