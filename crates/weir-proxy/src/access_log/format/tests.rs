//! Access log formats: parsing Envoy's command operators and rendering entries.

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
        downstream_direct_remote: "10.0.0.7:40000".parse().unwrap(),
        downstream_local: "10.0.0.1:8080".parse().unwrap(),
        route_name: None,
        config_version: 3,
        tls: None,
        transport_failure: None,
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
        ("%WEIR_CONFIG_VERSION%", "3"),
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
        ("%DOWNSTREAM_DIRECT_REMOTE_ADDRESS%", "10.0.0.7:40000"),
        (
            "%DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT%",
            "10.0.0.7",
        ),
        ("%DOWNSTREAM_DIRECT_REMOTE_PORT%", "40000"),
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
