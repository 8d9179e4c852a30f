//! `access_log[]` of the HTTP connection manager: Envoy's file, stdout and stderr access loggers,
//! and their formats, compiled when the config loads.
//!
//! A format string such as `[%START_TIME%] "%REQ(:METHOD)% %REQ(:PATH)%"\n` is split once, here,
//! into [`Piece`]s: literal text and [`Operator`]s. A `json_format` dictionary becomes a tree of
//! [`JsonValue`]s whose strings are compiled the same way. The proxy renders a log line by walking
//! the pieces; it never parses a format on the request path. A format that names an operator weir
//! does not know, or that leaves a `%` unterminated, is a config error naming the field.
//!
//! The rules weir follows, Envoy's, are on [`LogFormat`].

use std::path::PathBuf;

use serde_json::Value;

use crate::listener::{Typed, open_typed_config, type_name};
use crate::reader::{Cx, Field, Obj, describe, has_any, join};
use crate::route::data_source;

mod format_string;

use format_string::compile;

/// The `@type` of Envoy's file access logger (`envoy.access_loggers.file`).
pub const FILE_ACCESS_LOG_TYPE: &str =
    "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog";
/// The `@type` of Envoy's stdout access logger (`envoy.access_loggers.stdout`).
pub const STDOUT_ACCESS_LOG_TYPE: &str =
    "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog";
/// The `@type` of Envoy's stderr access logger (`envoy.access_loggers.stderr`).
pub const STDERR_ACCESS_LOG_TYPE: &str =
    "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StderrAccessLog";

/// Envoy's default access log format, used when an access logger has no `log_format`
/// (`source/common/formatter/http_specific_formatter.cc`; current Envoy spells `REQ`/`RESP` as
/// `REQUEST_HEADER`/`RESPONSE_HEADER`, which are the same operators).
pub const ENVOY_DEFAULT_FORMAT: &str = "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" \"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\"\n";

/// One entry of the connection manager's `access_log` (`config.accesslog.v3.AccessLog`).
#[derive(Debug, Clone, PartialEq)]
pub struct AccessLog {
    /// `name`; when absent, the logger's extension name (`envoy.access_loggers.file`, …).
    pub name: String,
    /// Where lines go, from the `typed_config`'s `@type` (and `path`).
    pub sink: AccessLogSink,
    /// `log_format`, compiled; Envoy's [default format](ENVOY_DEFAULT_FORMAT) when absent.
    pub format: LogFormat,
}

/// Where an access logger writes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AccessLogSink {
    /// `FileAccessLog.path`: appended to (created if missing).
    File(PathBuf),
    /// `StdoutAccessLog`: the process's standard output.
    Stdout,
    /// `StderrAccessLog`: the process's standard error.
    Stderr,
}

/// A compiled `config.core.v3.SubstitutionFormatString`.
///
/// How a format renders (what Envoy does, and weir does the same):
/// - **Format strings** ([`LogFormat::text`]): `%%` is a literal `%`; every other `%` starts a
///   command operator, `%COMMAND(SUBCOMMAND):LENGTH%`, whose `COMMAND` is `[A-Z0-9_]+`. Nothing is
///   appended to a line: the [default format](ENVOY_DEFAULT_FORMAT) ends with its own `\n`, and a
///   user's format without one writes lines without one.
/// - **Missing values** render as `-` (or nothing, with `omit_empty_values`).
/// - **Format dictionaries** ([`LogFormat::json`]): keys are emitted sorted (Envoy sorts them
///   whatever the order in the config, so `json_format_options.sort_properties` changes nothing);
///   a value that is exactly one operator keeps its type (numbers for `RESPONSE_CODE`, `BYTES_*`,
///   `*DURATION`, ports; `null` when missing); anything else is a string. Each line ends with `\n`.
///   With `omit_empty_values`, keys whose value is missing are left out, and so are objects left
///   empty (the root object is then `{}`).
#[derive(Debug, Clone, PartialEq)]
pub struct LogFormat {
    kind: FormatKind,
    omit_empty_values: bool,
    request_headers: Vec<String>,
    response_headers: Vec<String>,
}

/// A text line or a JSON object.
#[derive(Debug, Clone, PartialEq)]
pub enum FormatKind {
    /// `text_format_source` / `text_format` (or the default format): pieces written in order.
    Text(Vec<Piece>),
    /// `json_format`: the fields of the root object, sorted by key.
    Json(Vec<JsonField>),
}

/// A piece of a compiled format string.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    /// Text copied as is (`%%` already turned into `%`).
    Literal(String),
    /// A command operator, replaced by its value.
    Operator(Operator),
}

/// One field of a `json_format` object.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonField {
    /// The key, as written.
    pub key: String,
    /// Its value.
    pub value: JsonValue,
}

/// A value in a `json_format` dictionary.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonValue {
    /// A value without command operators, already serialized as JSON: `"text"`, `2`, `true`,
    /// `null`.
    Constant(String),
    /// A string with command operators: exactly one [`Piece::Operator`] keeps the operator's type
    /// (a number, a string or `null`); anything else renders as a JSON string.
    Template(Vec<Piece>),
    /// A nested object, fields sorted by key.
    Object(Vec<JsonField>),
    /// A list.
    List(Vec<JsonValue>),
}

/// The command operators weir implements (Envoy's names, in its documentation's words).
#[derive(Debug, Clone, PartialEq)]
pub enum Operator {
    /// `%START_TIME%` / `%START_TIME(format)%`: when the request started, in UTC.
    StartTime(TimeFormat),
    /// `%REQ(X?Y):Z%` (or `%REQUEST_HEADER(…)%`): a request header.
    RequestHeader(HeaderOperator),
    /// `%RESP(X?Y):Z%` (or `%RESPONSE_HEADER(…)%`): a response header.
    ResponseHeader(HeaderOperator),
    /// `%RESPONSE_CODE%`: the status sent downstream; `0` when none was sent. A number in JSON.
    ResponseCode,
    /// `%RESPONSE_CODE_DETAILS%`: who set the status and why (`via_upstream`, …).
    ResponseCodeDetails,
    /// `%RESPONSE_FLAGS%`: Envoy's short response flags (`UF`, `UH,URX`), `-` when none.
    ResponseFlags,
    /// `%BYTES_RECEIVED%`: request body bytes. A number in JSON.
    BytesReceived,
    /// `%BYTES_SENT%`: response body bytes. A number in JSON.
    BytesSent,
    /// `%DURATION%`: milliseconds from the start to the last byte sent downstream. A number in
    /// JSON.
    Duration,
    /// `%REQUEST_DURATION%`: milliseconds from the start to the last request byte received.
    RequestDuration,
    /// `%RESPONSE_DURATION%`: milliseconds from the start to the first response byte from the
    /// upstream.
    ResponseDuration,
    /// `%UPSTREAM_HOST%`: the upstream host's address, `ip:port`.
    UpstreamHost,
    /// `%UPSTREAM_CLUSTER%`: the upstream cluster's name.
    UpstreamCluster,
    /// `%UPSTREAM_LOCAL_ADDRESS%`: the local address of the upstream connection, `ip:port`.
    UpstreamLocalAddress,
    /// `%UPSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%`.
    UpstreamLocalAddressWithoutPort,
    /// `%UPSTREAM_LOCAL_PORT%`. A number in JSON.
    UpstreamLocalPort,
    /// `%UPSTREAM_REMOTE_ADDRESS%`: the address the upstream connection is connected to.
    UpstreamRemoteAddress,
    /// `%UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%`.
    UpstreamRemoteAddressWithoutPort,
    /// `%UPSTREAM_REMOTE_PORT%`. A number in JSON.
    UpstreamRemotePort,
    /// `%DOWNSTREAM_REMOTE_ADDRESS%`: the client's address, `ip:port`.
    DownstreamRemoteAddress,
    /// `%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%`.
    DownstreamRemoteAddressWithoutPort,
    /// `%DOWNSTREAM_REMOTE_PORT%`. A number in JSON.
    DownstreamRemotePort,
    /// `%DOWNSTREAM_DIRECT_REMOTE_ADDRESS%`: the TCP peer, whatever a PROXY protocol header
    /// said.
    DownstreamDirectRemoteAddress,
    /// `%DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT%`.
    DownstreamDirectRemoteAddressWithoutPort,
    /// `%DOWNSTREAM_DIRECT_REMOTE_PORT%`.
    DownstreamDirectRemotePort,
    /// `%DOWNSTREAM_LOCAL_ADDRESS%`: the address the client connected to, `ip:port`.
    DownstreamLocalAddress,
    /// `%DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%`.
    DownstreamLocalAddressWithoutPort,
    /// `%DOWNSTREAM_LOCAL_PORT%`. A number in JSON.
    DownstreamLocalPort,
    /// `%ROUTE_NAME%`: the matched route's `name`.
    RouteName,
    /// `%WEIR_CONFIG_VERSION%` (weir's own): the config version that served the request (1
    /// at startup, one more per applied reload). A number in JSON.
    WeirConfigVersion,
    /// `%PROTOCOL%`: `HTTP/1.1`, `HTTP/1.0`.
    Protocol,
    /// `%REQUESTED_SERVER_NAME%`: the SNI of the downstream TLS connection.
    RequestedServerName,
    /// `%DOWNSTREAM_TLS_VERSION%`: `TLSv1.2` or `TLSv1.3`.
    DownstreamTlsVersion,
    /// `%DOWNSTREAM_TLS_CIPHER%`: the suite, by its OpenSSL name (`TLS_AES_128_GCM_SHA256`,
    /// `ECDHE-ECDSA-AES128-GCM-SHA256`).
    DownstreamTlsCipher,
    /// `%UPSTREAM_TRANSPORT_FAILURE_REASON%`: why the TLS session with the origin failed
    /// (`TLS_error:|<rustls' reason>:TLS_error_end`, as Envoy frames BoringSSL's); `-` when
    /// none did.
    UpstreamTransportFailureReason,
    /// `%DOWNSTREAM_PEER_…%`: what the client's certificate says (mTLS); `-` without one.
    DownstreamPeer(PeerField),
}

/// Which part of a peer certificate a `%DOWNSTREAM_PEER_…%` operator logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerField {
    /// `SUBJECT`: RFC 2253, as OpenSSL prints it (`CN=client,O=Acme`).
    Subject,
    /// `ISSUER`, likewise.
    Issuer,
    /// `URI_SAN`: the URI names, comma-separated.
    UriSan,
    /// `DNS_SAN`.
    DnsSan,
    /// `IP_SAN`.
    IpSan,
    /// `EMAIL_SAN`.
    EmailSan,
    /// `SERIAL`: lower-case hex.
    Serial,
    /// `FINGERPRINT_256`: SHA-256 of the DER, lower-case hex.
    Fingerprint256,
    /// `CERT_V_START`: `2026-12-07T10:06:01.000Z`.
    ValidFrom,
    /// `CERT_V_END`.
    ValidUntil,
}

/// The argument of `%REQ(…)%` / `%RESP(…)%`: `main?alternative` and an optional `:max_length`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderOperator {
    /// The header to log, lower-cased (`:path`, `user-agent`).
    pub name: String,
    /// The header to log when `name` is absent (`X-ENVOY-ORIGINAL-PATH?:PATH`), lower-cased.
    pub alternative: Option<String>,
    /// `:Z`: at most this many bytes of the value.
    pub max_length: Option<usize>,
}

/// How `%START_TIME%` renders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeFormat {
    /// `%START_TIME%`: `2016-04-15T20:17:00.310Z` (`%Y-%m-%dT%H:%M:%E3SZ`, UTC).
    Default,
    /// `%START_TIME(format)%`, compiled.
    Custom(Vec<TimePiece>),
}

/// A piece of a `%START_TIME(…)%` format: absl's `FormatTime` conversions (strftime's plus
/// `%E#S`, `%E*S`, `%E#f`, `%E*f`, `%Ez`) and Envoy's own `%s`, `%f`, `%[1-9]f`. Times are UTC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimePiece {
    /// Text copied as is.
    Literal(String),
    /// `%Y`: the year, `2016`.
    Year,
    /// `%y`: the year within the century, `16`.
    YearOfCentury,
    /// `%C`: the century, `20`.
    Century,
    /// `%m`: the month, `01`–`12`.
    Month,
    /// `%d`: the day of the month, `01`–`31`.
    Day,
    /// `%e`: the day of the month, space-padded, ` 1`–`31`.
    DaySpacePadded,
    /// `%H`: the hour, `00`–`23`.
    Hour,
    /// `%I`: the hour on a 12-hour clock, `01`–`12`.
    Hour12,
    /// `%M`: the minute, `00`–`59`.
    Minute,
    /// `%S`: the second, `00`–`59`.
    Second,
    /// `%E#S` (# in 0–9): seconds and # fractional digits, `00.310`.
    SecondWithFraction(u8),
    /// `%E*S`: seconds and as many fractional digits as needed (none when whole), `00.31`.
    SecondWithFullFraction,
    /// `%f` (9 digits), `%[1-9]f` (Envoy) and `%E#f` (absl): that many fractional digits,
    /// truncated, `310`.
    Fraction(u8),
    /// `%E*f`: fractional digits without trailing zeros (`0` when whole).
    FullFraction,
    /// `%s`: seconds since the Unix epoch.
    EpochSeconds,
    /// `%z`: the UTC offset, `+0000`.
    Offset,
    /// `%Ez`: the UTC offset with a colon, `+00:00`.
    OffsetWithColon,
    /// `%Z`: the zone's abbreviation, `UTC`.
    ZoneName,
    /// `%b` / `%h`: the month's abbreviated name, `Apr`.
    MonthName,
    /// `%B`: the month's full name, `April`.
    MonthFullName,
    /// `%a`: the weekday's abbreviated name, `Fri`.
    WeekdayName,
    /// `%A`: the weekday's full name, `Friday`.
    WeekdayFullName,
    /// `%u`: the weekday, Monday = `1` … Sunday = `7`.
    WeekdayFromMonday,
    /// `%w`: the weekday, Sunday = `0` … Saturday = `6`.
    WeekdayFromSunday,
    /// `%j`: the day of the year, `001`–`366`.
    DayOfYear,
    /// `%p`: `AM` or `PM`.
    AmPm,
}

impl LogFormat {
    /// Envoy's default format ([`ENVOY_DEFAULT_FORMAT`]).
    pub fn envoy_default() -> LogFormat {
        // The default format is a constant that compiles; a test proves it.
        LogFormat::text(ENVOY_DEFAULT_FORMAT, false).unwrap_or_else(|_| LogFormat {
            kind: FormatKind::Text(Vec::new()),
            omit_empty_values: false,
            request_headers: Vec::new(),
            response_headers: Vec::new(),
        })
    }

    /// Compiles a format string; the error says what is wrong with it.
    pub fn text(format: &str, omit_empty_values: bool) -> Result<LogFormat, String> {
        let pieces = compile(format)?;
        Ok(LogFormat::new(FormatKind::Text(pieces), omit_empty_values))
    }

    /// Compiles a `json_format` dictionary (a JSON object). Each error is the path of the value
    /// at fault within the dictionary (`upstream.host`, `tags[1]`; empty for the dictionary
    /// itself) and what is wrong with it.
    pub fn json(
        format: &Value,
        omit_empty_values: bool,
    ) -> Result<LogFormat, Vec<(String, String)>> {
        let mut errors = Vec::new();
        let fields = match format {
            Value::Object(map) => json_object(map, "", omit_empty_values, &mut errors),
            other => {
                errors.push((
                    String::new(),
                    format!("expected an object (a mapping), found {}", describe(other)),
                ));
                Vec::new()
            }
        };
        if errors.is_empty() {
            Ok(LogFormat::new(FormatKind::Json(fields), omit_empty_values))
        } else {
            Err(errors)
        }
    }

    fn new(kind: FormatKind, omit_empty_values: bool) -> LogFormat {
        let mut format = LogFormat {
            kind,
            omit_empty_values,
            request_headers: Vec::new(),
            response_headers: Vec::new(),
        };
        let mut request = Vec::new();
        let mut response = Vec::new();
        format.for_each_operator(&mut |op| {
            let (list, header) = match op {
                Operator::RequestHeader(h) => (&mut request, h),
                Operator::ResponseHeader(h) => (&mut response, h),
                _ => return,
            };
            for name in std::iter::once(&header.name).chain(&header.alternative) {
                // `:status` is the response code: nothing to capture.
                if name != ":status" && !list.contains(name) {
                    list.push(name.clone());
                }
            }
        });
        format.request_headers = request;
        format.response_headers = response;
        format
    }

    /// The compiled format.
    pub fn kind(&self) -> &FormatKind {
        &self.kind
    }

    /// `omit_empty_values`: missing values render as nothing (text) or are left out (JSON)
    /// instead of `-` / `null`.
    pub fn omit_empty_values(&self) -> bool {
        self.omit_empty_values
    }

    /// The request headers this format logs (lower-cased, each once, pseudo-headers such as
    /// `:path` included): the only ones the proxy needs to keep for it.
    pub fn request_headers(&self) -> impl Iterator<Item = &str> {
        self.request_headers.iter().map(String::as_str)
    }

    /// The response headers this format logs (lower-cased, each once). `:status` is left out: it
    /// is the response code.
    pub fn response_headers(&self) -> impl Iterator<Item = &str> {
        self.response_headers.iter().map(String::as_str)
    }

    /// Whether any operator satisfies `f` (e.g. "uses `%UPSTREAM_LOCAL_ADDRESS%`"), so the proxy
    /// can skip collecting what no format logs.
    pub fn uses(&self, f: impl Fn(&Operator) -> bool) -> bool {
        let mut found = false;
        self.for_each_operator(&mut |op| found |= f(op));
        found
    }

    /// Calls `f` on every operator, in order.
    pub fn for_each_operator(&self, f: &mut dyn FnMut(&Operator)) {
        fn pieces(list: &[Piece], f: &mut dyn FnMut(&Operator)) {
            for piece in list {
                if let Piece::Operator(op) = piece {
                    f(op);
                }
            }
        }
        fn value(v: &JsonValue, f: &mut dyn FnMut(&Operator)) {
            match v {
                JsonValue::Constant(_) => {}
                JsonValue::Template(list) => pieces(list, f),
                JsonValue::Object(fields) => fields.iter().for_each(|field| value(&field.value, f)),
                JsonValue::List(items) => items.iter().for_each(|item| value(item, f)),
            }
        }
        match &self.kind {
            FormatKind::Text(list) => pieces(list, f),
            FormatKind::Json(fields) => fields.iter().for_each(|field| value(&field.value, f)),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reading the config.

/// `config.accesslog.v3.AccessLog` fields weir does not support yet (besides `filter`).
const ACCESS_LOG_ENVOY: &[&str] = &[];
/// `FileAccessLog` fields weir does not support yet.
const FILE_ENVOY: &[&str] = &["udp_proxy"];
/// `DataSource` fields a format source may not use yet (`route::data_source` reports them).
const SOURCE_FIELDS: &[&str] = &[
    "inline_string",
    "inline_bytes",
    "filename",
    "environment_variable",
    "watched_directory",
];

/// `access_log[]` of a connection manager.
pub(crate) fn read_all(cx: &mut Cx, f: &Field<'_>) -> Option<Vec<AccessLog>> {
    let items = f.items(cx)?;
    let mut logs = Some(Vec::with_capacity(items.len()));
    for item in &items {
        match read(cx, item) {
            Some(log) => {
                if let Some(list) = &mut logs {
                    list.push(log);
                }
            }
            None => logs = None,
        }
    }
    logs
}

/// What an `@type` names.
#[derive(Clone, Copy)]
enum Logger {
    File,
    Stdout,
    Stderr,
}

/// One `access_log[]` entry.
fn read(cx: &mut Cx, f: &Field<'_>) -> Option<AccessLog> {
    let mut o = Obj::new(cx, f, ACCESS_LOG_ENVOY)?;
    let name = o.string(cx, "name").filter(|n| !n.is_empty());
    let filtered = o.reject(
        cx,
        "filter",
        "access log filters are not supported yet: every request is logged",
    );
    let typed_config = o.get(cx, "typed_config");
    o.finish(cx);
    let supported =
        format!("{FILE_ACCESS_LOG_TYPE}, {STDOUT_ACCESS_LOG_TYPE} or {STDERR_ACCESS_LOG_TYPE}");
    let Some(typed_config) = typed_config else {
        cx.error(
            &join(&f.path, "typed_config"),
            format!("`typed_config` is required: weir picks the access logger by its @type ({supported})"),
        );
        return None;
    };
    let Typed {
        url,
        url_path,
        message: typed_config,
    } = open_typed_config(cx, &typed_config)?;
    let logger = match type_name(&url) {
        n if n == type_name(FILE_ACCESS_LOG_TYPE) => Logger::File,
        n if n == type_name(STDOUT_ACCESS_LOG_TYPE) => Logger::Stdout,
        n if n == type_name(STDERR_ACCESS_LOG_TYPE) => Logger::Stderr,
        _ => {
            cx.error(
                &url_path,
                format!(
                    "access logger type `{url}` is not supported yet (weir supports {supported})"
                ),
            );
            return None;
        }
    };
    let (sink, format) = match logger {
        Logger::File => file_access_log(cx, &typed_config)?,
        Logger::Stdout | Logger::Stderr => {
            let mut o = Obj::new(cx, &typed_config, &[])?;
            o.get(cx, "@type");
            let format = log_format(cx, &mut o);
            o.finish(cx);
            let sink = match logger {
                Logger::Stdout => AccessLogSink::Stdout,
                _ => AccessLogSink::Stderr,
            };
            (sink, format?)
        }
    };
    if filtered {
        return None;
    }
    let name = name.unwrap_or_else(|| {
        match logger {
            Logger::File => "envoy.access_loggers.file",
            Logger::Stdout => "envoy.access_loggers.stdout",
            Logger::Stderr => "envoy.access_loggers.stderr",
        }
        .to_owned()
    });
    Some(AccessLog { name, sink, format })
}

/// `extensions.access_loggers.file.v3.FileAccessLog`.
fn file_access_log(cx: &mut Cx, f: &Field<'_>) -> Option<(AccessLogSink, LogFormat)> {
    let mut o = Obj::new(cx, f, FILE_ENVOY)?;
    o.get(cx, "@type");
    let path = o.required_string(cx, "path");
    let mut deprecated = false;
    for field in ["format", "json_format", "typed_json_format"] {
        deprecated |= o.reject(
            cx,
            field,
            &format!(
                "`{field}` is deprecated in Envoy and not supported by weir: use `log_format` \
                 (`text_format_source` or `json_format`)"
            ),
        );
    }
    let format = log_format(cx, &mut o);
    o.finish(cx);
    if deprecated {
        return None;
    }
    Some((AccessLogSink::File(PathBuf::from(path?)), format?))
}

/// The logger's `log_format`, or Envoy's default format when it is absent.
fn log_format(cx: &mut Cx, o: &mut Obj<'_>) -> Option<LogFormat> {
    match o.get(cx, "log_format") {
        Some(f) => substitution_format_string(cx, &f),
        None => Some(LogFormat::envoy_default()),
    }
}

/// `config.core.v3.SubstitutionFormatString`.
fn substitution_format_string(cx: &mut Cx, f: &Field<'_>) -> Option<LogFormat> {
    let mut o = Obj::new(cx, f, &[])?;
    let source = o.get(cx, "text_format_source");
    let text = o.get(cx, "text_format");
    let json = o.get(cx, "json_format");
    let omit_empty_values = o.bool(cx, "omit_empty_values");
    // `content_type` only matters for local replies; a log file has none.
    let content_type = o.get(cx, "content_type").map(|c| c.string(cx));
    let options_ok = match o.get(cx, "json_format_options") {
        Some(options) => json_format_options(cx, &options),
        None => true,
    };
    let formatters = o.reject(
        cx,
        "formatters",
        "formatter extensions (`formatters`) are not supported yet",
    );
    o.finish(cx);

    let given: Vec<&Field<'_>> = [&source, &text, &json].into_iter().flatten().collect();
    let mut ok = options_ok && !formatters && !matches!(content_type, Some(None));
    match given.as_slice() {
        [] => {
            cx.error(
                &f.path,
                "`log_format` needs one of `text_format_source`, `text_format` or `json_format`",
            );
            return None;
        }
        [_] => {}
        [_, more @ ..] => {
            for extra in more {
                cx.error(
                    &extra.path,
                    "only one of `text_format_source`, `text_format` and `json_format` may be set",
                );
            }
            return None;
        }
    }
    let omit_empty_values = omit_empty_values.unwrap_or(false);
    let format = if let Some(s) = &source {
        if s.value.is_object() && !has_any(s.value, SOURCE_FIELDS) {
            cx.error(
                &s.path,
                "`text_format_source` needs `inline_string` (or `inline_bytes`)",
            );
            return None;
        }
        let bytes = data_source(cx, s)?;
        let Ok(text) = String::from_utf8(bytes) else {
            cx.error(&s.path, "the format must be UTF-8 text");
            return None;
        };
        text_format(cx, &s.path, &text, omit_empty_values)
    } else if let Some(t) = &text {
        let text = t.string(cx)?;
        text_format(cx, &t.path, &text, omit_empty_values)
    } else if let Some(j) = &json {
        if !j.value.is_object() {
            cx.error(
                &j.path,
                format!(
                    "expected an object (a mapping), found {}",
                    describe(j.value)
                ),
            );
            return None;
        }
        match LogFormat::json(j.value, omit_empty_values) {
            Ok(format) => Some(format),
            Err(errors) => {
                for (key, message) in errors {
                    let path = if key.starts_with('[') {
                        format!("{}{key}", j.path)
                    } else {
                        join(&j.path, &key)
                    };
                    cx.error(&path, message);
                }
                None
            }
        }
    } else {
        None
    };
    ok &= format.is_some();
    if ok { format } else { None }
}

/// A format string, with its errors reported at `path`.
fn text_format(cx: &mut Cx, path: &str, text: &str, omit_empty_values: bool) -> Option<LogFormat> {
    match LogFormat::text(text, omit_empty_values) {
        Ok(format) => Some(format),
        Err(message) => {
            cx.error(path, message);
            None
        }
    }
}

/// `json_format_options`: `sort_properties` is accepted; Envoy sorts keys whatever its value.
fn json_format_options(cx: &mut Cx, f: &Field<'_>) -> bool {
    let Some(mut o) = Obj::new(cx, f, &[]) else {
        return false;
    };
    let sort = o.get(cx, "sort_properties").map(|s| s.bool(cx));
    o.finish(cx) && !matches!(sort, Some(None))
}

// ---------------------------------------------------------------------------------------------
// Compiling `json_format`.

/// The fields of a JSON object, sorted by key (as Envoy emits them).
fn json_object(
    map: &serde_json::Map<String, Value>,
    path: &str,
    omit_empty_values: bool,
    errors: &mut Vec<(String, String)>,
) -> Vec<JsonField> {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    let mut fields = Vec::with_capacity(keys.len());
    for key in keys {
        let value = json_value(&map[key], &join(path, key), omit_empty_values, errors);
        if let Some(value) = value {
            fields.push(JsonField {
                key: key.clone(),
                value,
            });
        }
    }
    fields
}

/// One value; `None` for a literal `null` under `omit_empty_values` (Envoy drops those).
fn json_value(
    value: &Value,
    path: &str,
    omit_empty_values: bool,
    errors: &mut Vec<(String, String)>,
) -> Option<JsonValue> {
    Some(match value {
        Value::Null if omit_empty_values => return None,
        Value::Null => JsonValue::Constant("null".to_owned()),
        Value::Bool(b) => JsonValue::Constant(b.to_string()),
        Value::Number(n) => JsonValue::Constant(json_number(n)),
        Value::String(s) => match compile(s) {
            Ok(pieces) => match pieces.as_slice() {
                [] => JsonValue::Constant("\"\"".to_owned()),
                [Piece::Literal(text)] => {
                    JsonValue::Constant(Value::from(text.as_str()).to_string())
                }
                _ => JsonValue::Template(pieces),
            },
            Err(message) => {
                errors.push((path.to_owned(), message));
                JsonValue::Constant("null".to_owned())
            }
        },
        Value::Object(map) => JsonValue::Object(json_object(map, path, omit_empty_values, errors)),
        Value::Array(items) => JsonValue::List(
            items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| {
                    json_value(item, &format!("{path}[{i}]"), omit_empty_values, errors)
                })
                .collect(),
        ),
    })
}

/// A number as Envoy prints a `google.protobuf.Value` number: a whole number without a fraction.
fn json_number(n: &serde_json::Number) -> String {
    if n.is_u64() || n.is_i64() {
        return n.to_string();
    }
    match n.as_f64() {
        // Whole and exactly representable: `2.0` prints as `2`.
        #[allow(clippy::cast_possible_truncation)]
        Some(f) if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 => (f as i64).to_string(),
        _ => n.to_string(),
    }
}

#[cfg(test)]
mod tests;
