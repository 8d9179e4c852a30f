//! Reloads in memory, on a virtual clock: a kept connection takes a new route table at its
//! next request; a connection whose chain a reload replaced gets `connection: close` on its
//! next response while a new connection counts into the new chain's stats scope; a removed
//! listener's idle connection is closed when the drain time is over, not before.

use std::time::Duration;

use super::{Harness, answering_chain, status};

/// Listeners `names`, each answering `answer` directly, its connection manager's stat
/// prefix the listener's name with `suffix`.
fn config(names: &[&str], answer: &str, suffix: &str) -> String {
    let mut yaml = String::from("static_resources:\n  listeners:\n");
    for (i, name) in names.iter().enumerate() {
        let port = 10000 + i;
        yaml.push_str(&format!(
            "  - name: {name}\n    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}\n    filter_chains:\n{}",
            answering_chain(&format!("{name}/0"), "", &format!("{name}{suffix}"), answer)
        ));
    }
    yaml
}

const GET: &str = "GET / HTTP/1.1\r\nhost: a\r\n\r\n";

#[test]
fn a_kept_connection_takes_a_new_route_table_at_its_next_request() {
    let mut h = Harness::new(&config(&["web"], "one", ""));
    let client = h.client(0);
    client.send(GET);
    h.settle();
    assert!(client.take_text().ends_with("one"));
    let applied = h.reload(&config(&["web"], "two", ""));
    assert_eq!(applied.routes, ["web/0"]);
    client.send(GET);
    h.settle();
    let answer = client.take_text();
    assert!(answer.ends_with("two"), "{answer}");
    assert!(!answer.contains("connection: close"), "{answer}");
    assert!(!client.worker_closed());
}

#[test]
fn a_replaced_chain_closes_its_connection_after_the_next_response() {
    let mut h = Harness::new(&config(&["web"], "one", ""));
    let old = h.client(0);
    old.send(GET);
    h.settle();
    assert_eq!(status(&old.take_text()), 200);
    let applied = h.reload(&config(&["web"], "two", "_v2"));
    assert_eq!(applied.chains, ["web/0"]);
    assert!(!old.worker_finished(), "an idle connection is not cut");
    // Its next request is served on the chain it has, and closes it.
    old.send(GET);
    h.settle();
    let answer = old.take_text();
    assert!(answer.ends_with("one"), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    assert!(old.worker_finished(), "FIN after the response");
    // A new connection gets the new chain, and counts into its new stats scope.
    let new = h.client(0);
    new.send(GET);
    h.settle();
    let answer = new.take_text();
    assert!(
        answer.ends_with("two") && !answer.contains("connection: close"),
        "{answer}"
    );
    assert_eq!(h.stat("http.web_v2.downstream_rq_total"), 1);
    assert_eq!(h.stat("http.web.downstream_rq_total"), 2, "counts kept");
    assert_eq!(h.stat("http.web.downstream_cx_drain_close"), 1);
}

#[test]
fn a_removed_listeners_idle_connection_closes_when_the_drain_time_is_over() {
    let mut h = Harness::new(&config(&["web", "admin2"], "one", ""));
    let kept = h.client(0);
    let idle = h.client(1);
    idle.send(GET);
    h.settle();
    assert_eq!(status(&idle.take_text()), 200);
    let applied = h.reload(&config(&["web"], "one", ""));
    assert_eq!(applied.removed, ["admin2"]);
    // The harness's drain time is 5 s.
    h.advance(Duration::from_secs(4));
    assert!(!idle.worker_closed(), "not before the drain time");
    h.advance(Duration::from_secs(2));
    assert!(idle.worker_closed(), "closed at the drain time");
    assert!(
        !kept.worker_closed(),
        "the kept listener's connection stays"
    );
    kept.send(GET);
    h.settle();
    assert_eq!(status(&kept.take_text()), 200);
}
