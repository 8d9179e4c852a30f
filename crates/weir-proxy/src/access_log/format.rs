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
    FormatKind, HeaderOperator, JsonField, JsonValue, LogFormat, Operator, PeerField, Piece,
    TimeFormat, TimePiece,
};

use crate::network::tls::TlsInfo;

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
    /// The TCP peer (the PROXY protocol's client is `downstream_remote`).
    pub(crate) downstream_direct_remote: SocketAddr,
    /// The address the client connected to.
    pub(crate) downstream_local: SocketAddr,
    /// The matched route's name; empty renders as missing.
    pub(crate) route_name: Option<Arc<str>>,
    /// The config version that served it (its chain's, see `ChainRuntime::config_version`).
    pub(crate) config_version: u64,
    /// The downstream connection's TLS, if it is TLS.
    pub(crate) tls: Option<Arc<TlsInfo>>,
    /// Why the TLS session with the origin failed, in Envoy's frame
    /// (`TLS_error:|…:TLS_error_end`).
    pub(crate) transport_failure: Option<Box<str>>,
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
    /// Text made for this record (a certificate's names, joined).
    Owned(String),
}

/// `%START_TIME%`'s default form, for other times that render the same way.
static DEFAULT_TIME: TimeFormat = TimeFormat::Default;

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
        Operator::DownstreamDirectRemoteAddress => Value::Address(r.downstream_direct_remote),
        Operator::DownstreamDirectRemoteAddressWithoutPort => {
            Value::Ip(r.downstream_direct_remote.ip())
        }
        Operator::DownstreamDirectRemotePort => {
            Value::Number(u64::from(r.downstream_direct_remote.port()))
        }
        Operator::DownstreamLocalAddress => Value::Address(r.downstream_local),
        Operator::DownstreamLocalAddressWithoutPort => Value::Ip(r.downstream_local.ip()),
        Operator::DownstreamLocalPort => Value::Number(u64::from(r.downstream_local.port())),
        Operator::RouteName => r.route_name.as_deref().map_or(Value::Missing, text),
        Operator::WeirConfigVersion => Value::Number(r.config_version),
        Operator::Protocol => text(r.protocol),
        Operator::RequestedServerName => r
            .tls
            .as_ref()
            .and_then(|t| t.server_name.as_deref())
            .map_or(Value::Missing, text),
        Operator::DownstreamTlsVersion => {
            r.tls.as_ref().map_or(Value::Missing, |t| text(t.version))
        }
        Operator::DownstreamTlsCipher => r.tls.as_ref().map_or(Value::Missing, |t| text(&t.cipher)),
        Operator::UpstreamTransportFailureReason => {
            r.transport_failure.as_deref().map_or(Value::Missing, text)
        }
        Operator::DownstreamPeer(field) => match r.tls.as_ref().and_then(|t| t.peer.as_deref()) {
            Some(cert) => peer_field(cert, *field),
            None => Value::Missing,
        },
    }
}

/// A part of the client's certificate; an empty list of names is `-`, as in Envoy.
fn peer_field(cert: &weir_config::CertInfo, field: PeerField) -> Value<'_> {
    use weir_config::San;
    fn text(s: &str) -> Value<'_> {
        Value::Bytes(s.as_bytes())
    }
    let names = |kind: fn(&San) -> bool| match cert.sans_of(kind) {
        s if s.is_empty() => Value::Missing,
        s => Value::Owned(s),
    };
    match field {
        PeerField::Subject => text(&cert.subject),
        PeerField::Issuer => text(&cert.issuer),
        PeerField::UriSan => names(|s| matches!(s, San::Uri(_))),
        PeerField::DnsSan => names(|s| matches!(s, San::Dns(_))),
        PeerField::IpSan => names(|s| matches!(s, San::Ip(_))),
        PeerField::EmailSan => names(|s| matches!(s, San::Email(_))),
        PeerField::Serial => text(&cert.serial),
        PeerField::Fingerprint256 => text(&cert.sha256),
        PeerField::ValidFrom => Value::Time(cert.not_before, &DEFAULT_TIME),
        PeerField::ValidUntil => Value::Time(cert.not_after, &DEFAULT_TIME),
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
        Value::Owned(s) => out.extend_from_slice(s.as_bytes()),
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
mod tests;
