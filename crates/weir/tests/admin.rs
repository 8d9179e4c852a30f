//! The admin API against a running `weir`: every endpoint, Envoy's stat names and formats, the
//! Prometheus scrape checked by `promtool`, and the state changes (health check, listener
//! drain, log level, counter reset, quit), which only POST may make.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use support::{Client, Origin, TIMEOUT, TempFile, Weir, get, proxy_config, run_program};

/// One admin request on a fresh connection: (status, body).
fn admin(addr: SocketAddr, method: &str, target: &str) -> (u16, String) {
    let mut socket = TcpStream::connect(addr).expect("connect to admin");
    socket.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    let request = format!(
        "{method} {target} HTTP/1.1\r\nhost: admin\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    );
    socket.write_all(request.as_bytes()).expect("send");
    let mut raw = Vec::new();
    socket.read_to_end(&mut raw).expect("read");
    let raw = String::from_utf8(raw).expect("utf-8");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a head");
    let status = head[9..12].parse().expect("status");
    (status, body.to_string())
}

fn admin_get(weir: &Weir, target: &str) -> String {
    let (status, body) = admin(weir.admin, "GET", target);
    assert_eq!(status, 200, "GET {target}: {body}");
    body
}

fn admin_post(weir: &Weir, target: &str) -> String {
    let (status, body) = admin(weir.admin, "POST", target);
    assert_eq!(status, 200, "POST {target}: {body}");
    body
}

/// A `name: value` line of `/stats`.
fn stat(weir: &Weir, name: &str) -> i64 {
    // `^name$` with the dots escaped, percent-encoded for the request line.
    let regex = name.replace('.', "%5C.");
    let body = admin_get(weir, &format!("/stats?filter=%5E{regex}%24"));
    let line = body
        .lines()
        .find(|l| l.starts_with(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no stat {name} in:\n{body}"));
    line[name.len() + 2..]
        .parse()
        .unwrap_or_else(|_| panic!("not a number: {line}"))
}

fn wait_until(mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + TIMEOUT;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// weir in front of the standard origin, after 3 proxied requests on one connection (still
/// open) and one direct response.
fn weir_with_traffic(args: &[&str]) -> (Weir, Origin, Client) {
    let origin = Origin::standard();
    let weir = Weir::start(&proxy_config(origin.addr), args);
    let mut client = Client::connect(weir.addr()).expect("connect");
    for _ in 0..3 {
        assert_eq!(client.get("/hello").expect("proxied").status(), 200);
    }
    assert_eq!(client.get("/local").expect("direct").status(), 200);
    (weir, origin, client)
}

#[test]
fn stats_count_requests_under_envoy_names() {
    let (weir, _origin, _client) = weir_with_traffic(&["--concurrency", "1"]);
    let port = weir.addr().port();
    for (name, want) in [
        ("http.ingress.downstream_rq_total", 4),
        ("http.ingress.downstream_rq_2xx", 4),
        ("http.ingress.downstream_rq_completed", 4),
        ("http.ingress.downstream_rq_active", 0),
        ("http.ingress.downstream_cx_total", 1),
        ("http.ingress.downstream_cx_active", 1),
        ("http.ingress.rq_direct_response", 1),
        ("http.ingress.rq_total", 3),
        ("cluster.origin.upstream_rq_total", 3),
        ("cluster.origin.upstream_rq_200", 3),
        ("cluster.origin.upstream_rq_2xx", 3),
        ("cluster.origin.upstream_rq_completed", 3),
        ("cluster.origin.upstream_rq_active", 0),
        ("cluster.origin.upstream_cx_total", 1),
        ("cluster.origin.upstream_cx_active", 1),
        ("cluster.origin.membership_total", 1),
        ("cluster.origin.membership_healthy", 1),
        (&format!("listener.127.0.0.1_{port}.downstream_cx_total"), 1),
        (
            &format!("listener.127.0.0.1_{port}.downstream_cx_active"),
            1,
        ),
        ("server.live", 1),
        ("server.state", 0),
        ("server.concurrency", 1),
        ("server.total_connections", 1),
    ] {
        assert_eq!(stat(&weir, name), want, "{name}");
    }
    assert!(stat(&weir, "server.memory_allocated") > 0);
    assert!(stat(&weir, "http.ingress.downstream_cx_rx_bytes_total") > 0);
    assert!(stat(&weir, "cluster.origin.upstream_cx_tx_bytes_total") > 0);

    let all = admin_get(&weir, "/stats");
    // Counters and gauges in name order, then histograms.
    let names: Vec<&str> = all.lines().filter_map(|l| l.split(": ").next()).collect();
    let first_histogram = all
        .lines()
        .position(|l| l.contains(": P0(") || l.ends_with(": No recorded values"))
        .expect("histograms");
    let scalars = &names[..first_histogram];
    assert!(scalars.windows(2).all(|w| w[0] < w[1]), "sorted by name");
    let rq_time = all
        .lines()
        .find(|l| l.starts_with("http.ingress.downstream_rq_time: "))
        .expect("downstream_rq_time");
    assert!(
        rq_time.contains(" P50(") && rq_time.contains(" P99.9("),
        "{rq_time}"
    );
    assert!(
        all.lines()
            .any(|l| l.starts_with("listener_manager.worker_0.dispatcher.loop_duration_us: P0(")),
        "the worker's dispatcher stats"
    );
    // A status not seen has no counter yet (Envoy creates them on first use).
    assert!(!all.contains("cluster.origin.upstream_rq_404"));

    let used = admin_get(&weir, "/stats?usedonly");
    assert!(used.contains("cluster.origin.upstream_rq_total: 3"));
    assert!(!used.contains("cluster.origin.upstream_cx_connect_fail"));
    assert!(all.contains("cluster.origin.upstream_cx_connect_fail: 0"));

    let counters = admin_get(&weir, "/stats?type=Counters&filter=cluster.origin");
    assert!(counters.contains("upstream_rq_total: 3"));
    assert!(!counters.contains("upstream_cx_active:") && !counters.contains("upstream_rq_time:"));

    let json: serde_json::Value =
        serde_json::from_str(&admin_get(&weir, "/stats?format=json")).expect("json");
    let list = json["stats"].as_array().expect("stats list");
    assert!(
        list.iter()
            .any(|s| s["name"] == "cluster.origin.upstream_rq_200" && s["value"] == 3)
    );
    let histograms = &list.last().expect("entries")["histograms"];
    assert_eq!(
        histograms["supported_quantiles"].as_array().map(Vec::len),
        Some(10)
    );
    let rq_time = histograms["computed_quantiles"]
        .as_array()
        .expect("computed")
        .iter()
        .find(|h| h["name"] == "http.ingress.downstream_rq_time")
        .expect("downstream_rq_time");
    assert!(rq_time["values"][2]["cumulative"].is_number(), "{rq_time}");

    for bad in [
        "/stats?filter=(",
        "/stats?format=xml",
        "/stats?type=Nope",
        "/stats?bogus=1",
    ] {
        assert_eq!(admin(weir.admin, "GET", bad).0, 400, "{bad}");
    }
}

#[test]
fn failures_are_charged_to_the_cluster_and_host() {
    // An origin that is not listening: every request is a connect failure (503 UF).
    let (_reserved, dead_addr) = support::refusing_address();
    let weir = Weir::start(&proxy_config(dead_addr), &["--concurrency", "1"]);
    for _ in 0..2 {
        assert_eq!(get(weir.addr(), "/x").expect("reply").status(), 503);
    }
    assert_eq!(stat(&weir, "cluster.origin.upstream_cx_connect_fail"), 2);
    assert_eq!(stat(&weir, "cluster.origin.upstream_rq_503"), 2);
    assert_eq!(stat(&weir, "cluster.origin.upstream_rq_5xx"), 2);
    assert_eq!(stat(&weir, "http.ingress.downstream_rq_5xx"), 2);
    assert_eq!(stat(&weir, "cluster.origin.upstream_cx_active"), 0);
    let clusters = admin_get(&weir, "/clusters");
    assert!(
        clusters.contains(&format!("origin::{dead_addr}::cx_connect_fail::2")),
        "{clusters}"
    );
    assert!(
        clusters.contains(&format!("origin::{dead_addr}::rq_error::2")),
        "{clusters}"
    );
}

#[test]
fn prometheus_scrape_has_envoy_tags_and_passes_promtool() {
    let (weir, _origin, _client) = weir_with_traffic(&["--concurrency", "2"]);
    let body = admin_get(&weir, "/stats/prometheus");
    for line in [
        "# TYPE envoy_cluster_upstream_rq counter",
        "envoy_cluster_upstream_rq{envoy_response_code=\"200\",envoy_cluster_name=\"origin\"} 3",
        "envoy_http_downstream_rq_xx{envoy_response_code_class=\"2\",envoy_http_conn_manager_prefix=\"ingress\"} 4",
        "envoy_cluster_upstream_rq_total{envoy_cluster_name=\"origin\"} 3",
        "envoy_server_live{} 1",
        "# TYPE envoy_cluster_upstream_rq_time histogram",
        "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"origin\",le=\"+Inf\"} 3",
        "envoy_cluster_upstream_rq_time_count{envoy_cluster_name=\"origin\"} 3",
        "# TYPE envoy_listener_manager_worker_dispatcher_loop_duration_us histogram",
    ] {
        assert!(
            body.lines().any(|l| l == line),
            "missing `{line}` in:\n{body}"
        );
    }
    assert!(body.contains("envoy_http_downstream_rq_time_bucket{envoy_http_conn_manager_prefix=\"ingress\",le=\"0.5\"}"));
    assert!(
        body.contains("le=\"3600000\""),
        "bounds print as integers, not 3.6e+06"
    );
    // The same scrape through /stats?format=prometheus, and filtered.
    assert_eq!(
        admin_get(&weir, "/stats?format=prometheus").lines().count(),
        body.lines().count()
    );
    let filtered = admin_get(&weir, "/stats/prometheus?filter=upstream_rq_total");
    assert!(
        filtered.contains("envoy_cluster_upstream_rq_total{")
            && !filtered.contains("envoy_server_live")
    );

    // promtool parses it and lints it. Envoy's own names break three of its naming conventions
    // (counters without `_total`, gauges with it, units such as `_ms` in names); weir keeps
    // Envoy's names so existing dashboards work, and any other finding fails the test.
    let scrape = TempFile::new("scrape.prom", &body);
    let check = run_program(
        "/bin/sh",
        &[
            "-c",
            &format!("promtool check metrics < {}", scrape.path().display()),
        ],
        TIMEOUT,
    );
    let findings = check.stderr.clone();
    assert!(
        !findings.contains("not found"),
        "promtool is missing: the Prometheus scrape test needs it (`apt-get install -y prometheus`; scripts/test.sh installs it)"
    );
    let unexpected: Vec<&str> = findings
        .lines()
        .filter(|l| {
            !l.ends_with(" counter metrics should have \"_total\" suffix")
                && !l.ends_with(" non-counter metrics should not have \"_total\" suffix")
                && !l.ends_with(" metric names should not contain abbreviated units")
        })
        .collect();
    assert!(
        matches!(check.code(), Some(0 | 3)) && unexpected.is_empty(),
        "promtool check metrics: {check}\nunexpected findings: {unexpected:#?}"
    );
}

#[test]
fn clusters_listeners_server_info_and_ready() {
    let (weir, origin, _client) = weir_with_traffic(&["--concurrency", "2"]);
    let clusters = admin_get(&weir, "/clusters");
    let host = format!("origin::{}", origin.addr);
    for line in [
        "origin::observability_name::origin".to_string(),
        // Envoy's default circuit breakers, listed as Envoy lists them.
        "origin::default_priority::max_connections::1024".to_string(),
        "origin::default_priority::max_retries::3".to_string(),
        "origin::high_priority::max_pending_requests::1024".to_string(),
        "origin::added_via_api::false".to_string(),
        format!("{host}::cx_total::1"),
        format!("{host}::rq_total::3"),
        format!("{host}::rq_success::3"),
        format!("{host}::rq_active::0"),
        format!("{host}::health_flags::healthy"),
        format!("{host}::weight::1"),
    ] {
        assert!(
            clusters.lines().any(|l| l == line),
            "missing `{line}` in:\n{clusters}"
        );
    }
    let json: serde_json::Value =
        serde_json::from_str(&admin_get(&weir, "/clusters?format=json")).expect("json");
    let status = &json["cluster_statuses"][0];
    assert_eq!(status["name"], "origin");
    let high = &status["circuit_breakers"]["thresholds"][1];
    assert_eq!(
        (&high["priority"], &high["max_requests"]),
        (&"HIGH".into(), &1024.into())
    );
    let h = &status["host_statuses"][0];
    assert_eq!(
        h["address"]["socket_address"]["port_value"],
        origin.addr.port()
    );
    let rq_total = h["stats"]
        .as_array()
        .expect("stats")
        .iter()
        .find(|s| s["name"] == "rq_total");
    assert_eq!(rq_total.expect("rq_total")["value"], "3");

    let listeners = admin_get(&weir, "/listeners");
    assert_eq!(listeners, format!("ingress::{}\n", weir.addr()));
    let json: serde_json::Value =
        serde_json::from_str(&admin_get(&weir, "/listeners?format=json")).expect("json");
    assert_eq!(
        json["listener_statuses"][0]["local_address"]["socket_address"]["port_value"],
        weir.addr().port()
    );

    let info: serde_json::Value =
        serde_json::from_str(&admin_get(&weir, "/server_info")).expect("json");
    assert_eq!(info["state"], "LIVE");
    assert_eq!(info["node"]["id"], "weir-bintest");
    assert_eq!(info["command_line_options"]["concurrency"], 2);
    assert_eq!(
        admin(weir.admin, "GET", "/ready"),
        (200, "LIVE\n".to_string())
    );

    let dump: serde_json::Value =
        serde_json::from_str(&admin_get(&weir, "/config_dump")).expect("json");
    let configs = dump["configs"].as_array().expect("configs");
    assert_eq!(
        configs[0]["@type"],
        "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump"
    );
    assert_eq!(configs[0]["bootstrap"]["node"]["id"], "weir-bintest");
    let cluster = &configs[1]["static_clusters"][0];
    assert_eq!(cluster["cluster"]["name"], "origin");
    assert_eq!(
        cluster["cluster"]["@type"],
        "type.googleapis.com/envoy.config.cluster.v3.Cluster"
    );
    assert!(
        cluster["last_updated"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    assert_eq!(
        configs[2]["static_listeners"][0]["listener"]["name"],
        "ingress"
    );
    let only: serde_json::Value =
        serde_json::from_str(&admin_get(&weir, "/config_dump?resource=static_clusters"))
            .expect("json");
    assert_eq!(only["configs"][0]["cluster"]["name"], "origin");

    let index = admin_get(&weir, "/");
    let help = admin_get(&weir, "/help");
    for path in [
        "/stats/prometheus",
        "/clusters",
        "/config_dump",
        "/quitquitquit",
        "/drain_listeners",
    ] {
        assert!(
            index.contains(&format!("\"{path}\"")),
            "{path} on the index page"
        );
        assert!(help.contains(path), "{path} in /help");
    }
    assert_eq!(admin(weir.admin, "GET", "/nope").0, 404);
}

#[test]
fn state_changes_need_post() {
    let (weir, _origin, _client) = weir_with_traffic(&[]);
    for path in [
        "/quitquitquit",
        "/healthcheck/fail",
        "/healthcheck/ok",
        "/reset_counters",
        "/drain_listeners",
        "/logging?level=debug",
    ] {
        assert_eq!(
            admin(weir.admin, "GET", path),
            (405, "Method GET not allowed, POST required.".to_string()),
            "{path}"
        );
    }
    assert_eq!(admin(weir.admin, "POST", "/stats").0, 405);
    // Nothing changed: still live, still serving.
    assert_eq!(admin(weir.admin, "GET", "/ready").0, 200);
    assert_eq!(get(weir.addr(), "/hello").expect("proxied").status(), 200);
}

#[test]
fn healthcheck_fail_reports_draining_and_closes_connections() {
    let (weir, _origin, _client) = weir_with_traffic(&[]);
    assert_eq!(admin_post(&weir, "/healthcheck/fail"), "OK\n");
    assert_eq!(
        admin(weir.admin, "GET", "/ready"),
        (503, "DRAINING\n".to_string())
    );
    assert_eq!(stat(&weir, "server.live"), 0);
    assert_eq!(stat(&weir, "server.state"), 1);
    let mut client = Client::connect(weir.addr()).expect("connect");
    let reply = client.get("/hello").expect("still served");
    assert_eq!(reply.status(), 200);
    assert!(reply.head.connection_has("close"), "drain close");
    assert!(client.closed_by_peer());
    assert_eq!(stat(&weir, "http.ingress.downstream_cx_drain_close"), 1);

    assert_eq!(admin_post(&weir, "/healthcheck/ok"), "OK\n");
    assert_eq!(
        admin(weir.admin, "GET", "/ready"),
        (200, "LIVE\n".to_string())
    );
    let reply = get(weir.addr(), "/hello").expect("served");
    assert!(!reply.head.connection_has("close"));
}

#[test]
fn reset_counters_zeroes_counters_but_not_gauges() {
    let (weir, _origin, _client) = weir_with_traffic(&["--concurrency", "1"]);
    assert_eq!(stat(&weir, "cluster.origin.upstream_rq_total"), 3);
    assert_eq!(admin_post(&weir, "/reset_counters"), "OK\n");
    assert_eq!(stat(&weir, "cluster.origin.upstream_rq_total"), 0);
    assert_eq!(
        stat(&weir, "cluster.origin.upstream_cx_active"),
        1,
        "gauges stay"
    );
    assert_eq!(get(weir.addr(), "/hello").expect("proxied").status(), 200);
    assert_eq!(stat(&weir, "cluster.origin.upstream_rq_total"), 1);
}

#[test]
fn logging_changes_the_level_at_run_time() {
    let (weir, _origin, _client) = weir_with_traffic(&["--log-level", "info"]);
    assert_eq!(
        admin_post(&weir, "/logging"),
        "active loggers:\n  weir: info\n\n"
    );
    let (status, body) = admin(weir.admin, "POST", "/logging?level=loud");
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        admin_post(&weir, "/logging?level=debug"),
        "active loggers:\n  weir: debug\n\n"
    );
    // A malformed request is logged at debug level only.
    let mut client = Client::connect(weir.addr()).expect("connect");
    client.send(b"GET / HTTP/9.9\r\n\r\n").expect("send");
    assert!(weir.wait_for_log("malformed request", TIMEOUT).is_some());
}

#[test]
fn drain_listeners_stops_accepting_and_keeps_connections() {
    let (weir, _origin, _client) = weir_with_traffic(&["--concurrency", "2"]);
    let mut kept = Client::connect(weir.addr()).expect("connect");
    assert_eq!(kept.get("/hello").expect("before").status(), 200);
    assert_eq!(admin_post(&weir, "/drain_listeners"), "OK\n");
    assert!(
        wait_until(|| TcpStream::connect_timeout(&weir.addr(), Duration::from_secs(1)).is_err()),
        "new connections are refused once the listeners are closed"
    );
    let reply = kept
        .get("/hello")
        .expect("the established connection still works");
    assert_eq!(reply.status(), 200);
    assert!(!reply.head.connection_has("close"));
    assert_eq!(admin(weir.admin, "GET", "/ready").0, 200, "still live");
}

#[test]
fn graceful_drain_listeners_closes_connections_then_stops_accepting() {
    let (weir, _origin, _client) = weir_with_traffic(&["--drain-time-s", "1"]);
    assert_eq!(admin_post(&weir, "/drain_listeners?graceful"), "OK\n");
    // During the drain time listeners still accept, and responses close their connections.
    let reply = get(weir.addr(), "/hello").expect("served while draining");
    assert!(reply.head.connection_has("close"));
    assert!(
        wait_until(|| TcpStream::connect_timeout(&weir.addr(), Duration::from_secs(1)).is_err()),
        "listeners close after the drain time"
    );
}

#[test]
fn quitquitquit_exits_cleanly() {
    let (mut weir, _origin, _client) = weir_with_traffic(&[]);
    assert_eq!(admin_post(&weir, "/quitquitquit"), "OK\n");
    let status = weir.wait_exit(TIMEOUT);
    assert!(status.success(), "{status:?}");
}

/// weir with two listeners in front of the standard origin: `ingress` (INBOUND) and `egress`
/// (no `traffic_direction`); their addresses in that order.
fn weir_inbound_and_other(args: &[&str]) -> (Weir, Origin, SocketAddr, SocketAddr) {
    let origin = Origin::standard();
    let config = proxy_config(origin.addr);
    let start = config.find("  - name: ingress").expect("the listener");
    let end = config.find("  clusters:").expect("the clusters");
    let egress = config[start..end].replace("name: ingress", "name: egress");
    let ingress = config[start..end].replace(
        "  - name: ingress\n",
        "  - name: ingress\n    traffic_direction: INBOUND\n",
    );
    let config = format!("{}{ingress}{egress}{}", &config[..start], &config[end..]);
    let weir = Weir::start(&config, args);
    let address = |name: &str| {
        weir.listeners
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("listener {name}"))
            .1
    };
    let (inbound, other) = (address("ingress"), address("egress"));
    (weir, origin, inbound, other)
}

#[test]
fn drain_listeners_inboundonly_stops_only_inbound_listeners() {
    let (weir, _origin, inbound, other) = weir_inbound_and_other(&["--concurrency", "2"]);
    assert_eq!(admin_post(&weir, "/drain_listeners?inboundonly"), "OK\n");
    assert!(
        wait_until(|| TcpStream::connect_timeout(&inbound, Duration::from_secs(1)).is_err()),
        "the INBOUND listener refuses new connections"
    );
    let reply = get(other, "/hello").expect("the other listener still accepts");
    assert_eq!(reply.status(), 200);
    assert!(!reply.head.connection_has("close"));
    // Then all of them.
    assert_eq!(admin_post(&weir, "/drain_listeners"), "OK\n");
    assert!(
        wait_until(|| TcpStream::connect_timeout(&other, Duration::from_secs(1)).is_err()),
        "every listener refuses new connections"
    );
}

#[test]
fn graceful_drain_listeners_inboundonly_closes_only_inbound_connections() {
    let (weir, _origin, inbound, other) = weir_inbound_and_other(&["--drain-time-s", "1"]);
    assert_eq!(
        admin_post(&weir, "/drain_listeners?graceful&inboundonly"),
        "OK\n"
    );
    let reply = get(inbound, "/hello").expect("served while draining");
    assert!(reply.head.connection_has("close"));
    let reply = get(other, "/hello").expect("served");
    assert!(!reply.head.connection_has("close"));
    assert!(
        wait_until(|| TcpStream::connect_timeout(&inbound, Duration::from_secs(1)).is_err()),
        "the INBOUND listener closes after the drain time"
    );
    assert_eq!(get(other, "/hello").expect("still accepting").status(), 200);
}
