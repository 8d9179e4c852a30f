//! Reloads that add, remove and change clusters, in memory on a virtual clock: an added
//! cluster takes requests at once from a kept connection; a removed one's idle upstream
//! connections close at once and its busy ones after their response; a changed one is
//! replaced under a new number while its stats go on by name; and a request that still
//! names a removed cluster (on a chain the same reload retired) is served by it until its
//! drain ends, then answered 503 `NC`.

use super::{Harness, status};

const BACKEND: &str = "127.0.0.1:9001";
const EXTRA: &str = "127.0.0.1:9003";

/// One listener (stat prefix `prefix`) whose routes are `routes` (path prefix, cluster),
/// then `/` to `backend`; the clusters are `backend` on [`BACKEND`] (with `backend_extra`,
/// fields indented 4) and, with `extra`, `extra` on [`EXTRA`].
fn config(prefix: &str, routes: &[(&str, &str)], backend_extra: &str, extra: bool) -> String {
    let routes: String = (routes.iter())
        .map(|(path, cluster)| {
            format!("              - match: {{ prefix: {path} }}\n                route: {{ cluster: {cluster} }}\n")
        })
        .collect();
    let cluster = |name: &str, address: &str, more: &str| {
        let (ip, port) = address.split_once(':').expect("host:port");
        format!(
            "  - name: {name}\n    connect_timeout: 1s\n{more}    load_assignment:\n      cluster_name: {name}\n      endpoints:\n      - lb_endpoints:\n        - endpoint: {{ address: {{ socket_address: {{ address: {ip}, port_value: {port} }} }} }}\n"
        )
    };
    let mut clusters = cluster("backend", BACKEND, backend_extra);
    if extra {
        clusters.push_str(&cluster("extra", EXTRA, ""));
    }
    format!(
        r#"static_resources:
  listeners:
  - name: web
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: 10000 }} }}
    filter_chains:
    - name: main
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: {prefix}
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
{routes}              - match: {{ prefix: / }}
                route: {{ cluster: backend }}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }}
  clusters:
{clusters}"#
    )
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nhost: a\r\n\r\n")
}

const OK: &str = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

#[test]
fn an_added_cluster_takes_requests_from_a_kept_connection_at_once() {
    let mut h = Harness::new(&config("web", &[], "", false));
    h.listen(EXTRA, Some(super::Listening::Accept));
    let client = h.client(0);
    let applied = h.reload(&config("web", &[("/x", "extra")], "", true));
    assert_eq!(applied.clusters.added, ["extra"]);
    assert_eq!(applied.routes, ["main"]);
    client.send(get("/x"));
    h.settle();
    let origin = h.accept(EXTRA);
    assert!(origin.take_text().starts_with("GET /x "));
    origin.send(OK);
    h.settle();
    assert_eq!(status(&client.take_text()), 200);
    assert_eq!(h.stat("cluster.extra.upstream_rq_total"), 1);
    assert_eq!(h.stat("cluster.extra.membership_total"), 1);
    assert_eq!(h.stat("cluster_manager.active_clusters"), 2);
}

#[test]
fn a_removed_clusters_idle_connection_closes_at_once_and_its_busy_one_after_its_response() {
    let mut h = Harness::new(&config("web", &[("/x", "extra")], "", true));
    // Two upstream connections: the first busy, the second idle once it answered.
    let (busy_client, idle_client) = (h.client(0), h.client(0));
    busy_client.send(get("/x"));
    h.settle();
    let busy = h.accept(EXTRA);
    idle_client.send(get("/x"));
    h.settle();
    let idle = h.accept(EXTRA);
    idle.send(OK);
    h.settle();
    assert_eq!(status(&idle_client.take_text()), 200);
    let applied = h.reload(&config("web", &[], "", false));
    assert_eq!(applied.clusters.removed, ["extra"]);
    assert!(idle.worker_closed(), "the idle connection closes at once");
    assert!(!busy.worker_closed(), "a request in flight finishes");
    busy.send(OK);
    h.settle();
    assert_eq!(status(&busy_client.take_text()), 200);
    assert!(busy.worker_closed(), "then its connection closes");
    assert_eq!(h.stat("cluster_manager.active_clusters"), 1);
    // The kept connection's next `/x` goes where the new routes say.
    busy_client.send(get("/x"));
    h.settle();
    let origin = h.accept(BACKEND);
    assert!(origin.take_text().starts_with("GET /x "));
}

#[test]
fn a_changed_cluster_is_replaced_and_its_counts_go_on_under_its_name() {
    let mut h = Harness::new(&config("web", &[], "", false));
    let client = h.client(0);
    client.send(get("/"));
    h.settle();
    let first = h.accept(BACKEND);
    first.send(OK);
    h.settle();
    assert_eq!(status(&client.take_text()), 200);
    let applied = h.reload(&config(
        "web",
        &[],
        "    per_connection_buffer_limit_bytes: 65536\n",
        false,
    ));
    assert_eq!(applied.clusters.changed, ["backend"]);
    assert_eq!(applied.routes, ["main"], "the chain names the new number");
    assert!(
        first.worker_closed(),
        "the old cluster's idle connection closes"
    );
    client.send(get("/"));
    h.settle();
    let second = h.accept(BACKEND);
    second.send(OK);
    h.settle();
    let answer = client.take_text();
    assert_eq!(status(&answer), 200);
    assert!(!answer.contains("connection: close"), "{answer}");
    assert_eq!(h.stat("cluster.backend.upstream_rq_total"), 2);
    assert_eq!(h.stat("cluster.backend.upstream_cx_total"), 2);
    assert_eq!(h.stat("cluster_manager.active_clusters"), 1);
}

#[test]
fn a_retired_chain_is_served_by_a_removed_cluster_until_its_drain_ends_then_503_nc() {
    let mut h = Harness::new(&config("web", &[("/x", "extra")], "", true));
    // Both connections get the chain in force when they are accepted.
    let (early, late) = (h.client(0), h.client(0));
    // A new stat prefix retires the chain; the same reload removes `extra`.
    let applied = h.reload(&config("web2", &[], "", false));
    assert_eq!(applied.chains, ["main"]);
    assert_eq!(applied.clusters.removed, ["extra"]);
    // Within the drain time the old chain's request goes where the config it has says.
    early.send(get("/x"));
    h.settle();
    let origin = h.accept(EXTRA);
    origin.send(OK);
    h.settle();
    let answer = early.take_text();
    assert_eq!(status(&answer), 200);
    assert!(answer.contains("connection: close"), "{answer}");
    assert!(origin.worker_closed(), "a retired cluster pools nothing");
    // The harness's drain time is 5 s: then the cluster's hosts are gone.
    h.advance(std::time::Duration::from_secs(6));
    late.send(get("/x"));
    h.settle();
    let answer = late.take_text();
    assert_eq!(status(&answer), 503);
    assert!(answer.contains("connection: close"), "{answer}");
    assert!(answer.ends_with("\r\n\r\n"), "no body: {answer}");
    assert!(late.worker_finished());
    assert_eq!(h.stat("http.web.no_cluster"), 1);
}

#[test]
fn endpoints_of_a_static_cluster_change_without_a_new_number() {
    let mut h = Harness::new(&config("web", &[], "", false));
    h.listen(EXTRA, Some(super::Listening::Accept));
    let moved = config("web", &[], "", false).replace("port_value: 9001", "port_value: 9003");
    let applied = h.reload(&moved);
    assert_eq!(applied.clusters.endpoints, ["backend"]);
    assert!(applied.routes.is_empty() && applied.chains.is_empty());
    let client = h.client(0);
    client.send(get("/"));
    h.settle();
    h.accept(EXTRA).send(OK);
    h.settle();
    assert_eq!(status(&client.take_text()), 200);
}

#[test]
fn a_number_nothing_reaches_is_given_again_and_counts_go_on_by_name() {
    let mut h = Harness::new(&config("web", &[], "", false));
    let client = h.client(0);
    let serve = |h: &mut Harness, path: &str, at: &str| {
        client.send(get(path));
        h.settle();
        let origin = h.accept(at);
        origin.send(OK);
        h.settle();
        assert_eq!(status(&client.take_text()), 200);
    };
    serve(&mut h, "/", BACKEND);
    // Replaced twice: the first number is released once its drain is over and the next
    // reload has run, and the third version takes it.
    let slower = config(
        "web",
        &[],
        "    per_connection_buffer_limit_bytes: 65536\n",
        false,
    );
    let first = config("web", &[], "", false);
    h.reload(&slower);
    h.advance(std::time::Duration::from_secs(6));
    serve(&mut h, "/", BACKEND);
    h.reload(&first);
    assert_eq!(
        h.worker.clusters.len(),
        2,
        "backend's first number taken again"
    );
    serve(&mut h, "/", BACKEND);
    assert_eq!(
        h.stat("cluster.backend.upstream_rq_total"),
        3,
        "counts go on"
    );
    assert_eq!(h.stat("cluster.backend.upstream_cx_total"), 3);
    // A cluster that comes and goes takes a released number too, its counts from zero.
    h.advance(std::time::Duration::from_secs(6));
    h.listen(EXTRA, Some(super::Listening::Accept));
    h.reload(&config("web", &[("/x", "extra")], "", true));
    h.advance(std::time::Duration::from_secs(6));
    serve(&mut h, "/x", EXTRA);
    assert_eq!(h.worker.clusters.len(), 2, "no number added");
    assert_eq!(h.stat("cluster.extra.upstream_rq_total"), 1);
    assert_eq!(h.stat("cluster.backend.upstream_rq_total"), 3);
}

#[test]
fn counts_go_on_through_many_replacements_and_reused_numbers() {
    let mut h = Harness::new(&config("web", &[], "", false));
    let client = h.client(0);
    let versions = [
        config(
            "web",
            &[],
            "    per_connection_buffer_limit_bytes: 65536\n",
            false,
        ),
        config("web", &[], "", false),
    ];
    let mut served = 0;
    for round in 0..40 {
        client.send(get("/"));
        h.settle();
        for origin in h.accepted(BACKEND) {
            origin.send(OK);
        }
        h.settle();
        assert_eq!(status(&client.take_text()), 200, "round {round}");
        served += 1;
        h.reload(&versions[round % 2]);
        h.advance(std::time::Duration::from_secs(if round % 3 == 0 {
            6
        } else {
            1
        }));
    }
    assert!(
        h.worker.clusters.len() <= 4,
        "{} numbers",
        h.worker.clusters.len()
    );
    assert_eq!(h.stat("cluster.backend.upstream_rq_total"), served);
}
