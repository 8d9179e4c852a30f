//! `access_log` of the HTTP connection manager: every supported shape, and every error with its
//! exact path.

mod support;

use std::path::PathBuf;

use serde_json::{Value, json};
use weir_config::{
    AccessLog, AccessLogSink, ENVOY_DEFAULT_FORMAT, FormatKind, HeaderOperator, JsonField,
    JsonValue, LogFormat, Operator, Piece,
};

const HCM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const ROUTER_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";
const FILE: &str = "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog";
const STDOUT: &str =
    "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog";
const STDERR: &str =
    "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StderrAccessLog";

/// The path of the first connection manager's `access_log` in error messages.
const LOGS: &str =
    "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.access_log";

/// A valid config whose connection manager has `access_log: logs`.
fn config(logs: Value) -> Value {
    json!({
        "static_resources": {
            "listeners": [{
                "name": "l0",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": 10000}},
                "filter_chains": [{
                    "filters": [{
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": {
                            "@type": HCM_TYPE,
                            "stat_prefix": "http",
                            "access_log": logs,
                            "route_config": {
                                "virtual_hosts": [{
                                    "name": "vh",
                                    "domains": ["*"],
                                    "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "a"}}]
                                }]
                            },
                            "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER_TYPE}}]
                        }
                    }]
                }]
            }],
            "clusters": [{
                "name": "a",
                "load_assignment": {"cluster_name": "a", "endpoints": [{"lb_endpoints": [
                    {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 8081}}}}
                ]}]}
            }]
        }
    })
}

/// The access logs of a config that must load.
#[track_caller]
fn logs(logs: Value) -> Vec<AccessLog> {
    match weir_config::parse(&config(logs).to_string()) {
        Ok(b) => b.listeners[0].filter_chains[0]
            .http_connection_manager
            .as_ref()
            .unwrap()
            .access_log
            .clone(),
        Err(e) => panic!("config should parse:\n{e}"),
    }
}

/// The one access log of a config that must load.
#[track_caller]
fn one(log: Value) -> AccessLog {
    let mut all = logs(json!([log]));
    assert_eq!(all.len(), 1);
    all.remove(0)
}

/// The errors of a config that must not load, as `Display` shows them.
#[track_caller]
fn errors(logs: Value) -> Vec<String> {
    support::parse_errors(&config(logs).to_string())
}

/// Asserts that the single access log `log` gives exactly `expected`, each prefixed with
/// `access_log[0]`'s path.
#[track_caller]
fn check(log: Value, expected: &[&str]) {
    let expected: Vec<String> = expected.iter().map(|e| format!("{LOGS}[0]{e}")).collect();
    assert_eq!(errors(json!([log])), expected);
}

fn file(extra: Value) -> Value {
    let mut typed = json!({"@type": FILE, "path": "/var/log/envoy/access.log"});
    for (k, v) in extra.as_object().unwrap() {
        typed[k] = v.clone();
    }
    json!({"name": "envoy.access_loggers.file", "typed_config": typed})
}

fn text(format: &str) -> Vec<Piece> {
    match LogFormat::text(format, false).unwrap().kind() {
        FormatKind::Text(pieces) => pieces.clone(),
        FormatKind::Json(_) => unreachable!(),
    }
}

#[test]
fn no_access_log_is_empty() {
    let b = weir_config::parse(&{
        let mut doc = config(json!([]));
        doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
            .as_object_mut()
            .unwrap()
            .remove("access_log");
        doc.to_string()
    })
    .unwrap();
    assert!(
        b.listeners[0].filter_chains[0]
            .http_connection_manager
            .as_ref()
            .unwrap()
            .access_log
            .is_empty()
    );
    assert!(logs(json!([])).is_empty());
}

#[test]
fn file_logger_without_format_uses_envoy_default() {
    let log = one(file(json!({})));
    assert_eq!(log.name, "envoy.access_loggers.file");
    assert_eq!(
        log.sink,
        AccessLogSink::File(PathBuf::from("/var/log/envoy/access.log"))
    );
    assert_eq!(log.format, LogFormat::envoy_default());
    assert!(!log.format.omit_empty_values());
    assert_eq!(
        log.format,
        LogFormat::text(
            "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" \
             %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% \
             %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" \
             \"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\"\n",
            false
        )
        .unwrap()
    );
    // Current Envoy spells the default with REQUEST_HEADER / RESPONSE_HEADER: the same format.
    assert_eq!(
        LogFormat::text(
            &ENVOY_DEFAULT_FORMAT
                .replace("%REQ(", "%REQUEST_HEADER(")
                .replace("%RESP(", "%RESPONSE_HEADER("),
            false
        )
        .unwrap(),
        log.format
    );
}

#[test]
fn stdout_and_stderr_loggers() {
    let all = logs(json!([
        {"name": "out", "typed_config": {"@type": STDOUT}},
        {"typed_config": {"@type": STDERR, "log_format": {"text_format": "%PROTOCOL%\n"}}},
    ]));
    assert_eq!(all[0].name, "out");
    assert_eq!(all[0].sink, AccessLogSink::Stdout);
    assert_eq!(all[0].format, LogFormat::envoy_default());
    assert_eq!(all[1].name, "envoy.access_loggers.stderr");
    assert_eq!(all[1].sink, AccessLogSink::Stderr);
    assert_eq!(
        all[1].format.kind(),
        &FormatKind::Text(vec![
            Piece::Operator(Operator::Protocol),
            Piece::Literal("\n".to_owned())
        ])
    );
}

#[test]
fn text_format_source_inline_string_and_bytes() {
    let log = one(file(json!({"log_format": {
        "text_format_source": {"inline_string": "%REQ(USER-AGENT):8% %RESPONSE_CODE%"},
        "omit_empty_values": true,
        "content_type": "text/plain",
    }})));
    assert!(log.format.omit_empty_values());
    assert_eq!(
        log.format.kind(),
        &FormatKind::Text(vec![
            Piece::Operator(Operator::RequestHeader(HeaderOperator {
                name: "user-agent".to_owned(),
                alternative: None,
                max_length: Some(8),
            })),
            Piece::Literal(" ".to_owned()),
            Piece::Operator(Operator::ResponseCode),
        ])
    );
    assert_eq!(
        log.format.request_headers().collect::<Vec<_>>(),
        ["user-agent"]
    );
    // base64 of "%PROTOCOL%"
    let log = one(file(
        json!({"log_format": {"text_format_source": {"inline_bytes": "JVBST1RPQ09MJQ=="}}}),
    ));
    assert_eq!(
        log.format.kind(),
        &FormatKind::Text(vec![Piece::Operator(Operator::Protocol)])
    );
    // camelCase spellings, as proto3 JSON allows.
    let log = one(json!({"typedConfig": {"@type": FILE, "path": "/tmp/a.log",
        "logFormat": {"textFormatSource": {"inlineString": "%DURATION%"}, "omitEmptyValues": false}}}));
    assert_eq!(log.format.kind(), &FormatKind::Text(text("%DURATION%")));
}

#[test]
fn json_format() {
    let log = one(file(json!({"log_format": {
        "json_format": {
            "status": "%RESPONSE_CODE%",
            "authority": "%REQ(:AUTHORITY)%",
            "upstream": {"host": "%UPSTREAM_HOST%", "cluster": "%UPSTREAM_CLUSTER%"},
            "version": 1,
            "tags": ["weir", true],
            "path": "path=%REQ(:PATH)%",
        },
        "json_format_options": {"sort_properties": false},
    }})));
    let FormatKind::Json(fields) = log.format.kind() else {
        panic!("not json")
    };
    // Sorted by key, whatever sort_properties says (as current Envoy does).
    assert_eq!(
        fields.iter().map(|f| f.key.as_str()).collect::<Vec<_>>(),
        ["authority", "path", "status", "tags", "upstream", "version"]
    );
    assert_eq!(
        fields[2].value,
        JsonValue::Template(vec![Piece::Operator(Operator::ResponseCode)])
    );
    assert_eq!(
        fields[3].value,
        JsonValue::List(vec![
            JsonValue::Constant("\"weir\"".to_owned()),
            JsonValue::Constant("true".to_owned())
        ])
    );
    assert_eq!(
        fields[4].value,
        JsonValue::Object(vec![
            JsonField {
                key: "cluster".to_owned(),
                value: JsonValue::Template(vec![Piece::Operator(Operator::UpstreamCluster)]),
            },
            JsonField {
                key: "host".to_owned(),
                value: JsonValue::Template(vec![Piece::Operator(Operator::UpstreamHost)]),
            },
        ])
    );
    assert_eq!(fields[5].value, JsonValue::Constant("1".to_owned()));
    assert_eq!(
        log.format.request_headers().collect::<Vec<_>>(),
        [":authority", ":path"]
    );
    assert!(log.format.uses(|op| *op == Operator::UpstreamHost));
    assert!(!log.format.uses(|op| *op == Operator::UpstreamLocalAddress));
}

#[test]
fn response_status_pseudo_header_is_not_captured() {
    let f = LogFormat::text("%RESP(:STATUS)% %RESP(CONTENT-TYPE?X-ALT)%", false).unwrap();
    assert_eq!(
        f.response_headers().collect::<Vec<_>>(),
        ["content-type", "x-alt"]
    );
}

#[test]
fn several_loggers_in_order() {
    let all = logs(json!([file(json!({})), {"typed_config": {"@type": STDOUT}}]));
    assert_eq!(all.len(), 2);
    assert!(matches!(all[0].sink, AccessLogSink::File(_)));
    assert_eq!(all[1].sink, AccessLogSink::Stdout);
}

#[test]
fn entry_errors() {
    check(
        json!({"name": "x", "filter": {"status_code_filter": {}}, "typed_config": {"@type": STDOUT}}),
        &[".filter: access log filters are not supported yet: every request is logged"],
    );
    check(
        json!({"name": "x"}),
        &[&format!(
            ".typed_config: `typed_config` is required: weir picks the access logger by its @type ({FILE}, {STDOUT} or {STDERR})"
        )],
    );
    check(
        json!({"typed_config": {"path": "/tmp/x"}}),
        &[".typed_config.@type: `@type` is required: weir picks the filter by its type"],
    );
    check(
        json!({"typed_config": {"@type": "type.googleapis.com/envoy.extensions.access_loggers.grpc.v3.HttpGrpcAccessLogConfig"}}),
        &[&format!(
            ".typed_config.@type: access logger type `type.googleapis.com/envoy.extensions.access_loggers.grpc.v3.HttpGrpcAccessLogConfig` is not supported yet (weir supports {FILE}, {STDOUT} or {STDERR})"
        )],
    );
    check(
        json!({"nmae": "x", "typed_config": {"@type": STDOUT}}),
        &[
            ".nmae: unknown field; did you mean `name`? (fields weir supports here: name, typed_config)",
        ],
    );
    assert_eq!(
        errors(json!({"a": 1})),
        [format!("{LOGS}: expected a list, found an object")]
    );
}

#[test]
fn file_logger_errors() {
    check(
        json!({"typed_config": {"@type": FILE}}),
        &[".typed_config.path: `path` is required"],
    );
    check(
        json!({"typed_config": {"@type": FILE, "path": ""}}),
        &[".typed_config.path: `path` must not be empty"],
    );
    for field in ["format", "json_format", "typed_json_format"] {
        check(
            file(json!({field: "x"})),
            &[&format!(
                ".typed_config.{field}: `{field}` is deprecated in Envoy and not supported by weir: use `log_format` (`text_format_source` or `json_format`)"
            )],
        );
    }
    check(
        file(json!({"udp_proxy": true})),
        &[".typed_config.udp_proxy: this Envoy field is not supported by weir yet"],
    );
    check(
        file(json!({"pth": "x"})),
        &[
            ".typed_config.pth: unknown field; did you mean `path`? (fields weir supports here: @type, path, log_format)",
        ],
    );
    check(
        json!({"typed_config": {"@type": STDOUT, "path": "/x"}}),
        &[".typed_config.path: unknown field (fields weir supports here: @type, log_format)"],
    );
}

#[test]
fn log_format_errors() {
    let at = ".typed_config.log_format";
    check(
        file(json!({"log_format": {}})),
        &[&format!(
            "{at}: `log_format` needs one of `text_format_source`, `text_format` or `json_format`"
        )],
    );
    check(
        file(json!({"log_format": {"text_format": "a", "json_format": {}}})),
        &[&format!(
            "{at}.json_format: only one of `text_format_source`, `text_format` and `json_format` may be set"
        )],
    );
    check(
        file(json!({"log_format": {"text_format": "a", "formatters": []}})),
        &[&format!(
            "{at}.formatters: formatter extensions (`formatters`) are not supported yet"
        )],
    );
    check(
        file(json!({"log_format": {"text_format": "a", "json_format_options": {"sort": true}}})),
        &[&format!(
            "{at}.json_format_options.sort: unknown field (fields weir supports here: sort_properties)"
        )],
    );
    check(
        file(json!({"log_format": {"text_format": "a", "omit_empty_values": "yes"}})),
        &[&format!(
            "{at}.omit_empty_values: expected true or false, found the string \"yes\""
        )],
    );
    check(
        file(json!({"log_format": {"text_format_source": {"filename": "/etc/fmt"}}})),
        &[&format!(
            "{at}.text_format_source.filename: this Envoy field is not supported by weir yet"
        )],
    );
    check(
        file(json!({"log_format": {"text_format_source": {}}})),
        &[&format!(
            "{at}.text_format_source: `text_format_source` needs `inline_string` (or `inline_bytes`)"
        )],
    );
    check(
        file(json!({"log_format": {"json_format": "x"}})),
        &[&format!(
            "{at}.json_format: expected an object (a mapping), found the string \"x\""
        )],
    );
}

#[test]
fn format_string_errors_name_the_field_and_the_operator() {
    let at = ".typed_config.log_format";
    check(
        file(
            json!({"log_format": {"text_format_source": {"inline_string": "%START_TIME% %FOO%\n"}}}),
        ),
        &[&format!(
            "{at}.text_format_source: unknown command operator `%FOO%`"
        )],
    );
    check(
        file(json!({"log_format": {"text_format": "%DOWNSTREAM_PEER_CERT%"}})),
        &[&format!(
            "{at}.text_format: command operator `%DOWNSTREAM_PEER_CERT%` is not supported by weir yet"
        )],
    );
    check(
        file(json!({"log_format": {"text_format": "[%START_TIME]"}})),
        &[&format!(
            "{at}.text_format: unterminated command operator `%START_TIME`: expected `%` after the name"
        )],
    );
    check(
        file(json!({"log_format": {"text_format": "100%"}})),
        &[&format!(
            "{at}.text_format: `%` at byte 3 does not start a command operator (`%NAME%`); write `%%` for a literal `%`"
        )],
    );
    check(
        file(json!({"log_format": {"text_format": "%REQ(A?B?C)%"}})),
        &[&format!(
            "{at}.text_format: `%REQ(A?B?C)%`: at most one alternative header (`MAIN?ALTERNATIVE`)"
        )],
    );
    check(
        file(json!({"log_format": {"text_format": "%BYTES_SENT:4%"}})),
        &[&format!(
            "{at}.text_format: `%BYTES_SENT:4%`: `%BYTES_SENT%` takes no `:LENGTH` (only REQ and RESP do)"
        )],
    );
    check(
        file(json!({"log_format": {"text_format": "%START_TIME(%Q)%"}})),
        &[&format!(
            "{at}.text_format: `%START_TIME(%Q)%`: `%Q` is not supported in a time format (weir supports %Y %y %C %m %d %e %H %I %M %S %s %f %1f–%9f %E#S %E*S %E#f %E*f %z %Ez %Z %b %h %B %a %A %u %w %j %p %T %F %D %R %r %c %x %X %t %%)"
        )],
    );
    check(
        file(json!({"log_format": {"json_format": {
            "ok": "%PROTOCOL%",
            "up": {"host": "%UPSTREAM_HOSTS%"},
            "list": ["%RESPONSE_CODE%", "%REQ(%"],
        }}})),
        &[
            &format!(
                "{at}.json_format.list[1]: unterminated command operator `%REQ(…`: expected `)` and then `%` (or `:LENGTH%`)"
            ),
            &format!("{at}.json_format.up.host: unknown command operator `%UPSTREAM_HOSTS%`"),
        ],
    );
}

#[test]
fn errors_in_several_entries_are_all_reported() {
    let errs = errors(json!([
        {"typed_config": {"@type": FILE}},
        {"typed_config": {"@type": STDOUT}},
        {"typed_config": {"@type": STDERR, "log_format": {"text_format": "%X%"}}},
    ]));
    assert_eq!(
        errs,
        [
            format!("{LOGS}[0].typed_config.path: `path` is required"),
            format!(
                "{LOGS}[2].typed_config.log_format.text_format: unknown command operator `%X%`"
            ),
        ]
    );
}
