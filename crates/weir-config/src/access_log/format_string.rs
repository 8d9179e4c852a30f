//! Compiling an access-log format string into [`Piece`]s, once, when the config loads:
//! Envoy's `%COMMAND(SUBCOMMAND):LENGTH%` syntax, the operators weir renders, and
//! `%START_TIME(...)%`'s strftime subset.

use super::{HeaderOperator, Operator, PeerField, Piece, TimeFormat, TimePiece};

/// Splits a format string into pieces. The error names the operator (or the position) at fault.
pub(super) fn compile(format: &str) -> Result<Vec<Piece>, String> {
    let bytes = format.as_bytes();
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let Some(next) = format[pos..].find('%').map(|i| pos + i) else {
            literal.push_str(&format[pos..]);
            break;
        };
        literal.push_str(&format[pos..next]);
        if bytes.get(next + 1) == Some(&b'%') {
            literal.push('%');
            pos = next + 2;
            continue;
        }
        let (operator, end) = command(format, next)?;
        if !literal.is_empty() {
            pieces.push(Piece::Literal(std::mem::take(&mut literal)));
        }
        pieces.push(Piece::Operator(operator));
        pos = end;
    }
    if !literal.is_empty() {
        pieces.push(Piece::Literal(literal));
    }
    Ok(pieces)
}

/// The command operator starting with the `%` at `start`: Envoy's
/// `%COMMAND(SUBCOMMAND):LENGTH%`, where `COMMAND` is `[A-Z0-9_]+`, the subcommand ends at the
/// first `)` that the rest of the syntax allows, and `LENGTH` is decimal. Returns the operator
/// and the position after its closing `%`.
fn command(format: &str, start: usize) -> Result<(Operator, usize), String> {
    let bytes = format.as_bytes();
    let name_end = start
        + 1
        + bytes[start + 1..]
            .iter()
            .take_while(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || **b == b'_')
            .count();
    let name = &format[start + 1..name_end];
    if name.is_empty() {
        return Err(format!(
            "`%` at byte {start} does not start a command operator (`%NAME%`); write `%%` for a literal `%`"
        ));
    }
    // After `)` (or the name): optional `:digits`, then `%`.
    let tail = |at: usize| -> Option<(Option<&str>, usize)> {
        let rest = &format[at..];
        if rest.starts_with('%') {
            return Some((None, at + 1));
        }
        let digits = rest.strip_prefix(':')?;
        let n = digits.bytes().take_while(u8::is_ascii_digit).count();
        if n > 0 && digits.as_bytes().get(n) == Some(&b'%') {
            Some((Some(&digits[..n]), at + 1 + n + 1))
        } else {
            None
        }
    };
    let (sub, length, end) = if bytes.get(name_end) == Some(&b'(') {
        let open = name_end + 1;
        let found = format[open..]
            .match_indices(')')
            .map(|(i, _)| open + i)
            .take_while(|close| !format[open..*close].contains('\n'))
            .find_map(|close| tail(close + 1).map(|(len, end)| (close, len, end)));
        match found {
            Some((close, length, end)) => (Some(&format[open..close]), length, end),
            None => {
                return Err(format!(
                    "unterminated command operator `%{name}(…`: expected `)` and then `%` (or `:LENGTH%`)"
                ));
            }
        }
    } else {
        match tail(name_end) {
            Some((length, end)) => (None, length, end),
            None => {
                return Err(format!(
                    "unterminated command operator `%{name}`: expected `%` after the name"
                ));
            }
        }
    };
    let shown = &format[start..end];
    let max_length = match length {
        Some(digits) => Some(
            digits
                .parse::<usize>()
                .map_err(|_| format!("`{shown}`: the length {digits} is too large"))?,
        ),
        None => None,
    };
    let operator = operator(name, sub, max_length, shown)?;
    Ok((operator, end))
}

/// Builds the operator `name` with its subcommand and length, checking which it allows.
fn operator(
    name: &str,
    sub: Option<&str>,
    max_length: Option<usize>,
    shown: &str,
) -> Result<Operator, String> {
    let header = |response: bool| -> Result<HeaderOperator, String> {
        let sub = sub
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("`{shown}` needs a header name, e.g. `%{name}(USER-AGENT)%`"))?;
        header_operator(sub, max_length, response, shown)
    };
    let no_length = || -> Result<(), String> {
        match max_length {
            Some(_) => Err(format!(
                "`{shown}`: `%{name}%` takes no `:LENGTH` (only REQ and RESP do)"
            )),
            None => Ok(()),
        }
    };
    let simple = |op: Operator| -> Result<Operator, String> {
        no_length()?;
        match sub {
            Some(_) => Err(format!("`{shown}`: `%{name}%` takes no argument")),
            None => Ok(op),
        }
    };
    match name {
        "START_TIME" => {
            no_length()?;
            match sub {
                None | Some("") => Ok(Operator::StartTime(TimeFormat::Default)),
                Some(f) => Ok(Operator::StartTime(TimeFormat::Custom(
                    time_format(f).map_err(|e| format!("`{shown}`: {e}"))?,
                ))),
            }
        }
        "REQ" | "REQUEST_HEADER" => Ok(Operator::RequestHeader(header(false)?)),
        "RESP" | "RESPONSE_HEADER" => Ok(Operator::ResponseHeader(header(true)?)),
        "RESPONSE_CODE_DETAILS" => {
            // Envoy's optional argument `ALLOW_WHITESPACES` keeps spaces that it would otherwise
            // replace with `_`; weir's details never contain spaces, so both render the same.
            no_length()?;
            match sub {
                None | Some("ALLOW_WHITESPACES") => Ok(Operator::ResponseCodeDetails),
                Some(other) => Err(format!(
                    "`{shown}`: the only argument of `%RESPONSE_CODE_DETAILS%` is ALLOW_WHITESPACES, not `{other}`"
                )),
            }
        }
        "RESPONSE_CODE" => simple(Operator::ResponseCode),
        "RESPONSE_FLAGS" => simple(Operator::ResponseFlags),
        "BYTES_RECEIVED" => simple(Operator::BytesReceived),
        "BYTES_SENT" => simple(Operator::BytesSent),
        "DURATION" => simple(Operator::Duration),
        "REQUEST_DURATION" => simple(Operator::RequestDuration),
        "RESPONSE_DURATION" => simple(Operator::ResponseDuration),
        "UPSTREAM_HOST" => simple(Operator::UpstreamHost),
        "UPSTREAM_CLUSTER" => simple(Operator::UpstreamCluster),
        "UPSTREAM_LOCAL_ADDRESS" => simple(Operator::UpstreamLocalAddress),
        "UPSTREAM_LOCAL_ADDRESS_WITHOUT_PORT" => simple(Operator::UpstreamLocalAddressWithoutPort),
        "UPSTREAM_LOCAL_PORT" => simple(Operator::UpstreamLocalPort),
        "UPSTREAM_REMOTE_ADDRESS" => simple(Operator::UpstreamRemoteAddress),
        "UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT" => {
            simple(Operator::UpstreamRemoteAddressWithoutPort)
        }
        "UPSTREAM_REMOTE_PORT" => simple(Operator::UpstreamRemotePort),
        "DOWNSTREAM_REMOTE_ADDRESS" => simple(Operator::DownstreamRemoteAddress),
        "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT" => {
            simple(Operator::DownstreamRemoteAddressWithoutPort)
        }
        "DOWNSTREAM_REMOTE_PORT" => simple(Operator::DownstreamRemotePort),
        "DOWNSTREAM_DIRECT_REMOTE_ADDRESS" => simple(Operator::DownstreamDirectRemoteAddress),
        "DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT" => {
            simple(Operator::DownstreamDirectRemoteAddressWithoutPort)
        }
        "DOWNSTREAM_DIRECT_REMOTE_PORT" => simple(Operator::DownstreamDirectRemotePort),
        "DOWNSTREAM_LOCAL_ADDRESS" => simple(Operator::DownstreamLocalAddress),
        "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT" => {
            simple(Operator::DownstreamLocalAddressWithoutPort)
        }
        "DOWNSTREAM_LOCAL_PORT" => simple(Operator::DownstreamLocalPort),
        "ROUTE_NAME" => simple(Operator::RouteName),
        "WEIR_CONFIG_VERSION" => simple(Operator::WeirConfigVersion),
        "PROTOCOL" => simple(Operator::Protocol),
        "REQUESTED_SERVER_NAME" => simple(Operator::RequestedServerName),
        "DOWNSTREAM_TLS_VERSION" => simple(Operator::DownstreamTlsVersion),
        "DOWNSTREAM_TLS_CIPHER" => simple(Operator::DownstreamTlsCipher),
        "UPSTREAM_TRANSPORT_FAILURE_REASON" => simple(Operator::UpstreamTransportFailureReason),
        "DOWNSTREAM_PEER_SUBJECT" => simple(Operator::DownstreamPeer(PeerField::Subject)),
        "DOWNSTREAM_PEER_ISSUER" => simple(Operator::DownstreamPeer(PeerField::Issuer)),
        "DOWNSTREAM_PEER_URI_SAN" => simple(Operator::DownstreamPeer(PeerField::UriSan)),
        "DOWNSTREAM_PEER_DNS_SAN" => simple(Operator::DownstreamPeer(PeerField::DnsSan)),
        "DOWNSTREAM_PEER_IP_SAN" => simple(Operator::DownstreamPeer(PeerField::IpSan)),
        "DOWNSTREAM_PEER_EMAIL_SAN" => simple(Operator::DownstreamPeer(PeerField::EmailSan)),
        "DOWNSTREAM_PEER_SERIAL" => simple(Operator::DownstreamPeer(PeerField::Serial)),
        "DOWNSTREAM_PEER_FINGERPRINT_256" => {
            simple(Operator::DownstreamPeer(PeerField::Fingerprint256))
        }
        "DOWNSTREAM_PEER_CERT_V_START" => simple(Operator::DownstreamPeer(PeerField::ValidFrom)),
        "DOWNSTREAM_PEER_CERT_V_END" => simple(Operator::DownstreamPeer(PeerField::ValidUntil)),
        other if is_envoy_operator(other) => Err(format!(
            "command operator `%{other}%` is not supported by weir yet"
        )),
        other => Err(format!("unknown command operator `%{other}%`")),
    }
}

/// Envoy command operators weir does not implement (to tell them from typos).
fn is_envoy_operator(name: &str) -> bool {
    const NAMES: &[&str] = &[
        "TRAILER",
        "RESPONSE_TRAILER",
        "LOCAL_REPLY_BODY",
        "ACCESS_LOG_TYPE",
        "GRPC_STATUS",
        "GRPC_STATUS_NUMBER",
        "STREAM_INFO_REQ",
        "REQUEST_HEADERS_BYTES",
        "RESPONSE_HEADERS_BYTES",
        "RESPONSE_TRAILERS_BYTES",
        "REQUEST_TX_DURATION",
        "RESPONSE_TX_DURATION",
        "DOWNSTREAM_HANDSHAKE_DURATION",
        "ROUNDTRIP_DURATION",
        "COMMON_DURATION",
        "BYTES_RETRANSMITTED",
        "PACKETS_RETRANSMITTED",
        "UPSTREAM_PROTOCOL",
        "CONNECTION_TERMINATION_DETAILS",
        "CUSTOM_FLAGS",
        "RESPONSE_FLAGS_LONG",
        "UPSTREAM_HOST_NAME",
        "UPSTREAM_HOST_NAME_WITHOUT_PORT",
        "UPSTREAM_CONNECTION_ID",
        "UPSTREAM_CLUSTER_RAW",
        "UPSTREAM_REQUEST_ATTEMPT_COUNT",
        "DOWNSTREAM_TRANSPORT_FAILURE_REASON",
        "DOWNSTREAM_DIRECT_LOCAL_ADDRESS",
        "DOWNSTREAM_DIRECT_LOCAL_ADDRESS_WITHOUT_PORT",
        "DOWNSTREAM_DIRECT_LOCAL_PORT",
        "CONNECTION_ID",
        "UPSTREAM_CONNECTION_POOL_READY_DURATION",
        "STREAM_ID",
        "VIRTUAL_CLUSTER_NAME",
        "HOSTNAME",
        "DYNAMIC_METADATA",
        "CLUSTER_METADATA",
        "UPSTREAM_METADATA",
        "ROUTE_METADATA",
        "FILTER_STATE",
        "UPSTREAM_FILTER_STATE",
        "START_TIME_LOCAL",
        "EMIT_TIME",
        "EMIT_TIME_LOCAL",
        "SYSTEM_TIME",
        "ENVIRONMENT",
        "TRACE_ID",
        "UNIQUE_ID",
        "PATH",
        "QUERY_PARAM",
        "REQ_WITHOUT_QUERY",
        "CEL",
        "METADATA",
    ];
    NAMES.contains(&name)
        || [
            "DOWNSTREAM_PEER_",
            "DOWNSTREAM_LOCAL_",
            "DOWNSTREAM_TLS_",
            "UPSTREAM_PEER_",
            "UPSTREAM_TLS_",
        ]
        .iter()
        .any(|prefix| name.starts_with(prefix))
}

/// The argument of `%REQ(…)%` / `%RESP(…)%`: `main` or `main?alternative`.
fn header_operator(
    sub: &str,
    max_length: Option<usize>,
    response: bool,
    shown: &str,
) -> Result<HeaderOperator, String> {
    let mut parts = sub.split('?');
    let main = parts.next().unwrap_or_default();
    let alternative = parts.next();
    if parts.next().is_some() {
        return Err(format!(
            "`{shown}`: at most one alternative header (`MAIN?ALTERNATIVE`)"
        ));
    }
    let name = header_name(main, response, shown)?;
    let alternative = match alternative {
        // `X?` has no alternative, as in Envoy.
        None | Some("") => None,
        Some(alt) => Some(header_name(alt, response, shown)?),
    };
    Ok(HeaderOperator {
        name,
        alternative,
        max_length,
    })
}

/// A header name as logged: lower-cased; a token, or a pseudo-header the proxy can supply.
fn header_name(name: &str, response: bool, shown: &str) -> Result<String, String> {
    let lower = name.to_ascii_lowercase();
    if lower.is_empty() {
        return Err(format!("`{shown}`: empty header name"));
    }
    if let Some(pseudo) = lower.strip_prefix(':') {
        let allowed: &[&str] = if response {
            &["status"]
        } else {
            &["method", "path", "authority", "scheme"]
        };
        if !allowed.contains(&pseudo) {
            let list = allowed
                .iter()
                .map(|p| format!(":{p}"))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(format!(
                "`{shown}`: pseudo-header `{name}` is not available here (only {list})"
            ));
        }
        return Ok(lower);
    }
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$&'*+-.^_`|~".contains(&b);
    if !lower.bytes().all(token) {
        return Err(format!("`{shown}`: `{name}` is not a valid header name"));
    }
    Ok(lower)
}

/// Compiles a `%START_TIME(…)%` format.
pub(super) fn time_format(format: &str) -> Result<Vec<TimePiece>, String> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            literal.push(c);
            continue;
        }
        let Some(spec) = chars.next() else {
            return Err("the time format ends with a lone `%`".to_owned());
        };
        let mut push = |piece: TimePiece, literal: &mut String| {
            if !literal.is_empty() {
                pieces.push(TimePiece::Literal(std::mem::take(literal)));
            }
            pieces.push(piece);
        };
        let piece = match spec {
            '%' => {
                literal.push('%');
                continue;
            }
            'n' => return Err("`%n` (a newline) is not allowed in a time format".to_owned()),
            't' => {
                literal.push('\t');
                continue;
            }
            'Y' => TimePiece::Year,
            'y' => TimePiece::YearOfCentury,
            'C' => TimePiece::Century,
            'm' => TimePiece::Month,
            'd' => TimePiece::Day,
            'e' => TimePiece::DaySpacePadded,
            'H' => TimePiece::Hour,
            'I' => TimePiece::Hour12,
            'M' => TimePiece::Minute,
            'S' => TimePiece::Second,
            's' => TimePiece::EpochSeconds,
            'f' => TimePiece::Fraction(9),
            'z' => TimePiece::Offset,
            'Z' => TimePiece::ZoneName,
            'b' | 'h' => TimePiece::MonthName,
            'B' => TimePiece::MonthFullName,
            'a' => TimePiece::WeekdayName,
            'A' => TimePiece::WeekdayFullName,
            'u' => TimePiece::WeekdayFromMonday,
            'w' => TimePiece::WeekdayFromSunday,
            'j' => TimePiece::DayOfYear,
            'p' => TimePiece::AmPm,
            // Shorthands, spelled out.
            'T' | 'F' | 'D' | 'R' | 'c' | 'x' | 'X' | 'r' => {
                let expansion = match spec {
                    'T' | 'X' => "%H:%M:%S",
                    'F' => "%Y-%m-%d",
                    'D' | 'x' => "%m/%d/%y",
                    'R' => "%H:%M",
                    'r' => "%I:%M:%S %p",
                    _ => "%a %b %e %H:%M:%S %Y",
                };
                let expanded = time_format(expansion)?;
                for piece in expanded {
                    match piece {
                        TimePiece::Literal(text) => literal.push_str(&text),
                        other => push(other, &mut literal),
                    }
                }
                continue;
            }
            d @ '1'..='9' => {
                if chars.next_if_eq(&'f').is_none() {
                    return Err(format!(
                        "`%{d}` must be followed by `f` (`%{d}f`: {d} fractional digits)"
                    ));
                }
                TimePiece::Fraction(d as u8 - b'0')
            }
            'E' => match chars.next() {
                Some('z') => TimePiece::OffsetWithColon,
                Some('*') => match chars.next() {
                    Some('S') => TimePiece::SecondWithFullFraction,
                    Some('f') => TimePiece::FullFraction,
                    _ => return Err("`%E*` must be followed by `S` or `f`".to_owned()),
                },
                Some(d @ '0'..='9') => match chars.next() {
                    Some('S') => TimePiece::SecondWithFraction(d as u8 - b'0'),
                    Some('f') => TimePiece::Fraction(d as u8 - b'0'),
                    _ => return Err(format!("`%E{d}` must be followed by `S` or `f`")),
                },
                Some(other) => {
                    return Err(format!("`%E{other}` is not supported in a time format"));
                }
                None => return Err("the time format ends with `%E`".to_owned()),
            },
            other => {
                return Err(format!(
                    "`%{other}` is not supported in a time format (weir supports %Y %y %C %m %d %e %H %I %M %S %s %f %1f–%9f %E#S %E*S %E#f %E*f %z %Ez %Z %b %h %B %a %A %u %w %j %p %T %F %D %R %r %c %x %X %t %%)"
                ));
            }
        };
        push(piece, &mut literal);
    }
    if !literal.is_empty() {
        pieces.push(TimePiece::Literal(literal));
    }
    Ok(pieces)
}
