//! Access logs from a running `weir`: Envoy's default line byte for byte, `json_format` with
//! typed values, flags and details for failures and for clients that leave, and the
//! `filesystem.*` counters.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use support::{Client, Origin, TIMEOUT, TempFile, Weir, get, proxy_config};

/// `proxy_config` with an access logger in its connection manager (`logger` is the YAML of
/// one `access_log` entry, indented for that place).
fn config_with_log(origin: SocketAddr, logger: &str) -> String {
    let config = proxy_config(origin);
    let anchor = "          stat_prefix: ingress\n";
    assert!(config.contains(anchor));
    config.replace(anchor, &format!("{anchor}          access_log:\n{logger}"))
}

fn file_logger(path: &std::path::Path, format: &str) -> String {
    format!(
        "          - name: envoy.access_loggers.file\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog\n              path: {}\n{format}",
        path.display()
    )
}

/// Waits until the file holds `n` lines and returns them.
fn lines(path: &std::path::Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        if lines.len() >= n {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "{n} log line(s) expected, got {lines:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_default_format_is_envoys_byte_for_byte() {
    let origin = Origin::standard();
    let log = TempFile::unique_path("access.log");
    let config = config_with_log(origin.addr, &file_logger(&log, ""));
    let weir = Weir::start(&config, &["--file-flush-interval-msec", "20"]);
    let before = SystemTime::now();
    let mut client = Client::connect(weir.addr()).expect("connect");
    client
        .send(
            b"GET /hello?x=1 HTTP/1.1\r\nhost: t\r\nuser-agent: test-agent\r\nx-request-id: req-1\r\n\r\n",
        )
        .expect("send");
    let response = client.read_response().expect("response");
    assert_eq!(response.status(), 200);
    let line = &lines(&log, 1)[0];
    let _ = std::fs::remove_file(&log);

    // `[2026-11-24T19:00:00.123Z] ` then the fields.
    let (stamp, rest) = line.split_once("] ").expect("a time stamp");
    let stamp = stamp.strip_prefix('[').expect("[");
    assert_eq!(stamp.len(), 24, "{stamp}");
    assert!(
        stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T',
        "{stamp}"
    );
    let year: u64 = stamp[..4].parse().expect("year");
    let now_year = 1970
        + before
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("clock")
            .as_secs()
            / 31_556_952;
    assert!(year.abs_diff(now_year) <= 1, "{stamp}");
    // The duration and the upstream service time (`x-envoy-upstream-service-time`, no more
    // than the duration) are the only fields the test cannot know in advance.
    let duration = rest.split(' ').nth(7).expect("duration");
    let service = rest.split(' ').nth(8).expect("upstream service time");
    let (d, s): (u64, u64) = (duration.parse().expect(rest), service.parse().expect(rest));
    assert!(s <= d, "{rest}");
    let expected = format!(
        "\"GET /hello?x=1 HTTP/1.1\" 200 - 0 {} {duration} {service} \"-\" \"test-agent\" \"req-1\" \"t\" \"{}\"",
        response.body.len(),
        origin.addr
    );
    assert_eq!(rest, expected);
}

#[test]
fn json_format_has_typed_values_flags_and_details() {
    let origin = Origin::standard();
    let (_reserved, dead_addr) = support::refusing_address();
    let log = TempFile::unique_path("access.json");
    let format = "              log_format:\n                json_format:\n                  status: \"%RESPONSE_CODE%\"\n                  flags: \"%RESPONSE_FLAGS%\"\n                  details: \"%RESPONSE_CODE_DETAILS%\"\n                  cluster: \"%UPSTREAM_CLUSTER%\"\n                  upstream: \"%UPSTREAM_HOST%\"\n                  path: \"%REQ(:PATH)%\"\n                  client: \"%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%\"\n                  received: \"%BYTES_RECEIVED%\"\n                  proto: \"%PROTOCOL%\"\n                  request_ms: \"%REQUEST_DURATION%\"\n                  line: \"%REQ(:METHOD)% %RESP(X-ORIGIN)%\"\n";
    // Two clusters: the live origin at /, a dead one at /dead.
    let config = config_with_log(origin.addr, &file_logger(&log, format))
        .replace(
            "              - match: { prefix: / }\n",
            "              - match: { prefix: /dead }\n                route: { cluster: dead }\n              - match: { prefix: / }\n",
        )
        .replace(
            "  clusters:\n",
            &format!(
                "  clusters:\n  - name: dead\n    type: STATIC\n    connect_timeout: 1s\n    load_assignment:\n      cluster_name: dead\n      endpoints:\n      - lb_endpoints:\n        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {} }} }} }}\n",
                dead_addr.port()
            ),
        );
    // One worker, so the two lines come out in order.
    let weir = Weir::start(
        &config,
        &["--file-flush-interval-msec", "20", "--concurrency", "1"],
    );
    let mut client = Client::connect(weir.addr()).expect("connect");
    client
        .send(b"POST /up HTTP/1.1\r\nhost: t\r\ncontent-length: 5\r\n\r\nhello")
        .expect("send");
    assert_eq!(client.read_response().expect("response").status(), 200);
    assert_eq!(get(weir.addr(), "/dead").expect("response").status(), 503);
    let lines = lines(&log, 2);
    let _ = std::fs::remove_file(&log);
    let ok: serde_json::Value = serde_json::from_str(&lines[0]).expect("json");
    assert_eq!(ok["status"], 200);
    assert_eq!(ok["flags"], "-");
    assert_eq!(ok["details"], "via_upstream");
    assert_eq!(ok["cluster"], "origin");
    assert_eq!(ok["upstream"], origin.addr.to_string());
    assert_eq!(ok["path"], "/up");
    assert_eq!(ok["client"], "127.0.0.1");
    assert_eq!(ok["received"], 5);
    assert_eq!(ok["proto"], "HTTP/1.1");
    assert!(ok["request_ms"].is_u64(), "{ok}");
    assert_eq!(ok["line"], "POST test-origin");
    // Keys come out sorted, as Envoy writes them.
    assert!(lines[0].starts_with("{\"client\":"), "{}", lines[0]);

    let failed: serde_json::Value = serde_json::from_str(&lines[1]).expect("json");
    assert_eq!(failed["status"], 503);
    assert_eq!(failed["flags"], "UF");
    assert_eq!(
        failed["details"],
        "upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused}"
    );
    assert_eq!(failed["cluster"], "dead");
    assert_eq!(failed["upstream"], dead_addr.to_string());
    assert_eq!(failed["line"], "GET -");
}

/// `%DOWNSTREAM_REMOTE_ADDRESS%` is the trusted client address, as in Envoy: with
/// `use_remote_address: false` (the default) the last `x-forwarded-for` entry, with port 0; the
/// connection's peer when there is none.
#[test]
fn the_logged_client_is_the_trusted_forwarded_address() {
    let origin = Origin::standard();
    let log = TempFile::unique_path("access.log");
    let format = "              log_format:\n                text_format_source:\n                  inline_string: \"%DOWNSTREAM_REMOTE_ADDRESS% %DOWNSTREAM_REMOTE_PORT%\\n\"\n";
    let config = config_with_log(origin.addr, &file_logger(&log, format));
    let weir = Weir::start(
        &config,
        &["--file-flush-interval-msec", "20", "--concurrency", "1"],
    );
    let mut client = Client::connect(weir.addr()).expect("connect");
    client
        .send(b"GET / HTTP/1.1\r\nhost: t\r\nx-forwarded-for: 198.51.100.1, 203.0.113.7\r\n\r\n")
        .expect("send");
    assert_eq!(client.read_response().expect("response").status(), 200);
    client
        .send(b"GET / HTTP/1.1\r\nhost: t\r\n\r\n")
        .expect("send");
    assert_eq!(client.read_response().expect("response").status(), 200);
    let lines = lines(&log, 2);
    let _ = std::fs::remove_file(&log);
    assert_eq!(lines[0], "203.0.113.7:0 0");
    let peer = client.local_addr();
    assert_eq!(lines[1], format!("{peer} {}", peer.port()));
}

#[test]
fn a_client_that_leaves_is_logged_with_dc_and_lines_survive_shutdown() {
    let origin = Origin::standard();
    let log = TempFile::unique_path("access.log");
    let format = "              log_format:\n                text_format_source:\n                  inline_string: \"%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %REQ(:PATH)%\\n\"\n";
    let config = config_with_log(origin.addr, &file_logger(&log, format));
    // The default flush interval (10 s): lines reach the file at shutdown. One worker, so
    // the lines come out in order.
    let mut weir = Weir::start(&config, &["--concurrency", "1"]);
    // A client that leaves in the middle of its request body.
    let mut client = Client::connect(weir.addr()).expect("connect");
    client
        .send(b"POST /upload HTTP/1.1\r\nhost: t\r\ncontent-length: 10\r\n\r\nabc")
        .expect("send");
    std::thread::sleep(Duration::from_millis(300));
    drop(client);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(get(weir.addr(), "/after").expect("response").status(), 200);
    let stats = get(weir.admin, "/stats?filter=filesystem")
        .expect("stats")
        .text();
    assert!(stats.contains("filesystem.write_completed: 0"), "{stats}");
    weir.signal("TERM");
    assert!(weir.wait_exit(TIMEOUT).success());
    let text = std::fs::read_to_string(&log).expect("log written at exit");
    let _ = std::fs::remove_file(&log);
    assert_eq!(
        text,
        "0 DC downstream_remote_disconnect /upload\n200 - via_upstream /after\n"
    );
}

#[test]
fn reopen_logs_follows_a_rotated_file() {
    let origin = Origin::standard();
    let log = TempFile::unique_path("access.log");
    let rotated = log.with_extension("log.1");
    let format = "              log_format:\n                text_format_source:\n                  inline_string: \"%REQ(:PATH)%\\n\"\n";
    let config = config_with_log(origin.addr, &file_logger(&log, format));
    let weir = Weir::start(&config, &["--file-flush-interval-msec", "20"]);
    assert_eq!(get(weir.addr(), "/first").expect("response").status(), 200);
    assert_eq!(lines(&log, 1), ["/first"]);
    // logrotate moves the file, then tells weir.
    std::fs::rename(&log, &rotated).expect("rotate");
    let (status, body) = {
        let mut c = Client::connect(weir.admin).expect("admin");
        c.send(b"POST /reopen_logs HTTP/1.1\r\nhost: a\r\ncontent-length: 0\r\n\r\n")
            .expect("send");
        let r = c.read_response().expect("response");
        (r.status(), r.text())
    };
    assert_eq!((status, body.as_str()), (200, "OK\n"));
    assert_eq!(get(weir.addr(), "/second").expect("response").status(), 200);
    assert_eq!(lines(&log, 1), ["/second"]);
    assert_eq!(
        std::fs::read_to_string(&rotated).expect("rotated"),
        "/first\n"
    );
    let _ = std::fs::remove_file(&log);
    let _ = std::fs::remove_file(&rotated);
}
