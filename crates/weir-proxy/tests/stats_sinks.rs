//! `stats_sinks`: a whole proxy flushing to a statsd and a DogStatsD sink on loopback UDP
//! sockets every 100 ms; the counters' deltas and the histogram values add up to the requests
//! sent.

mod support;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use support::{Config, Origin, Proxy};

const REQUESTS: u64 = 5;

/// Datagrams received on `socket` until `done` says the lines so far suffice, for at most
/// 10 s; the lines, in order.
fn receive_until(socket: &UdpSocket, mut done: impl FnMut(&[String]) -> bool) -> Vec<String> {
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut lines = Vec::new();
    let mut buf = [0u8; 65536];
    while !done(&lines) && Instant::now() < deadline {
        if let Ok(n) = socket.recv(&mut buf) {
            let datagram = std::str::from_utf8(&buf[..n]).expect("statsd lines are UTF-8");
            assert!(n <= 512 || !datagram.contains('\n'), "{datagram:?}");
            lines.extend(datagram.split('\n').map(str::to_owned));
        }
    }
    lines
}

/// The sum of the values of the lines `<name>:<value>|<rest>`.
fn sum(lines: &[String], name: &str, rest: &str) -> u64 {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .filter_map(|l| {
            let (value, r) = l.split_once('|')?;
            (r == rest).then(|| value.parse::<u64>().ok())?
        })
        .sum()
}

/// How many lines are `<name>:<value>|<rest>`.
fn count(lines: &[String], name: &str, rest: &str) -> usize {
    lines
        .iter()
        .filter(|l| {
            l.strip_prefix(name)
                .and_then(|l| l.strip_prefix(':'))
                .and_then(|l| l.split_once('|'))
                .is_some_and(|(_, r)| r == rest)
        })
        .count()
}

#[test]
fn statsd_and_dog_statsd_sinks_get_deltas_that_add_up_to_the_requests() {
    let origin = Origin::ok("hi");
    let plain = UdpSocket::bind("127.0.0.1:0").unwrap();
    let dog = UdpSocket::bind("127.0.0.1:0").unwrap();
    let yaml = format!(
        "{}stats_flush_interval: 0.1s\n\
         stats_sinks:\n\
         - name: envoy.stat_sinks.statsd\n  \
           typed_config:\n    \
             \"@type\": type.googleapis.com/envoy.config.metrics.v3.StatsdSink\n    \
             address: {{ socket_address: {{ address: 127.0.0.1, port_value: {} }} }}\n\
         - name: envoy.stat_sinks.dog_statsd\n  \
           typed_config:\n    \
             \"@type\": type.googleapis.com/envoy.config.metrics.v3.DogStatsdSink\n    \
             address: {{ socket_address: {{ address: 127.0.0.1, port_value: {}, protocol: UDP }} }}\n    \
             prefix: dd\n    \
             max_bytes_per_datagram: 512\n",
        Config::forward_all(&[origin.addr()]).yaml(),
        plain.local_addr().unwrap().port(),
        dog.local_addr().unwrap().port(),
    );
    let proxy = Proxy::start(&yaml, 2, Duration::from_secs(5));
    for _ in 0..REQUESTS {
        assert_eq!(proxy.client().get("/").status, 200);
    }

    let rq_total = "envoy.http.test.downstream_rq_total";
    let rq_time = "envoy.http.test.downstream_rq_time";
    let lines = receive_until(&plain, |l| {
        sum(l, rq_total, "c") >= REQUESTS && count(l, rq_time, "ms") >= REQUESTS as usize
    });
    assert_eq!(sum(&lines, rq_total, "c"), REQUESTS, "{lines:#?}");
    assert_eq!(
        sum(&lines, "envoy.cluster.backend.upstream_rq_200", "c"),
        REQUESTS
    );
    assert_eq!(count(&lines, rq_time, "ms"), REQUESTS as usize);
    assert!(
        lines
            .iter()
            .any(|l| l == "envoy.cluster.backend.membership_total:1|g"),
        "{lines:#?}"
    );
    // Per-worker dispatcher stats are Envoy's opt-in ones: not sent.
    assert!(
        !lines.iter().any(|l| l.contains("dispatcher")),
        "{lines:#?}"
    );
    // Later flushes send the used counter with no change.
    let more = receive_until(&plain, |l| count(l, rq_total, "c") >= 2);
    assert_eq!(sum(&more, rq_total, "c"), 0, "{more:#?}");

    let tags = "c|#envoy.http_conn_manager_prefix:test";
    let lines = receive_until(&dog, |l| {
        sum(l, "dd.http.downstream_rq_total", tags) >= REQUESTS
    });
    assert_eq!(sum(&lines, "dd.http.downstream_rq_total", tags), REQUESTS);
    assert_eq!(
        sum(
            &lines,
            "dd.cluster.upstream_rq",
            "c|#envoy.response_code:200,envoy.cluster_name:backend"
        ),
        REQUESTS,
        "{lines:#?}"
    );
}
