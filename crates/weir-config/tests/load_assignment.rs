//! `load_assignment` with priorities, localities and health status, its `policy`,
//! `locality_weighted_lb_config`, and `retry_priority`: what is read and what is refused.

use weir_config::{EndpointHealth, Locality, Placement};

/// A config with one cluster `c` whose `load_assignment` and other fields are `cluster` (YAML
/// lines indented for a cluster's fields), routed with `route_extra` in the route action.
fn config(cluster: &str, route_extra: &str) -> String {
    format!(
        r#"static_resources:
  listeners:
  - name: l
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: 10000 }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: http
          route_config:
            virtual_hosts:
            - name: vh
              domains: ["*"]
              routes:
              - match: {{ prefix: / }}
                route: {{ cluster: c{route_extra} }}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }}
  clusters:
  - name: c
{cluster}"#
    )
}

const ASSIGNMENT: &str = r#"    common_lb_config: { locality_weighted_lb_config: {} }
    load_assignment:
      cluster_name: c
      policy: { overprovisioning_factor: 120, weighted_priority_health: true }
      endpoints:
      - locality: { region: r, zone: z1 }
        load_balancing_weight: 3
        lb_endpoints:
        - endpoint: { address: { socket_address: { address: 10.0.0.1, port_value: 80 } } }
        - endpoint: { address: { socket_address: { address: 10.0.0.2, port_value: 80 } } }
          health_status: DRAINING
      - priority: 1
        lb_endpoints:
        - endpoint: { address: { socket_address: { address: 10.0.1.1, port_value: 80 } } }
          health_status: TIMEOUT
        - endpoint: { address: { socket_address: { address: 10.0.1.2, port_value: 80 } } }
          health_status: DEGRADED
"#;

#[test]
fn priorities_localities_health_and_policy_are_read() {
    let b = weir_config::parse(&config(ASSIGNMENT, "")).unwrap();
    let c = &b.clusters[0];
    let z1 = Placement {
        priority: 0,
        locality: Locality {
            region: "r".into(),
            zone: "z1".into(),
            sub_zone: String::new(),
        },
        locality_weight: Some(3),
    };
    let p1 = Placement {
        priority: 1,
        ..Placement::default()
    };
    let seen: Vec<(&Placement, EndpointHealth)> = c
        .endpoints
        .iter()
        .map(|e| (&*e.placement, e.health))
        .collect();
    assert_eq!(
        seen,
        [
            (&z1, EndpointHealth::Healthy),
            (&z1, EndpointHealth::Draining),
            (&p1, EndpointHealth::Unhealthy),
            (&p1, EndpointHealth::Degraded),
        ]
    );
    assert_eq!(c.load_spread.overprovisioning_factor, 120);
    assert!(c.load_spread.weighted_priority_health);
    assert!(c.load_spread.locality_weighted);
}

#[test]
fn bad_values_name_their_paths() {
    let la = "static_resources.clusters[0].load_assignment";
    for (from, to, want) in [
        (
            "overprovisioning_factor: 120",
            "overprovisioning_factor: 0",
            format!("{la}.policy.overprovisioning_factor: overprovisioning_factor must be above 0"),
        ),
        (
            "load_balancing_weight: 3",
            "load_balancing_weight: 0",
            format!(
                "{la}.endpoints[0].load_balancing_weight: load_balancing_weight must be at least 1"
            ),
        ),
        (
            "health_status: DEGRADED",
            "health_status: SICK",
            format!(
                "{la}.endpoints[1].lb_endpoints[1].health_status: `SICK` is not a valid health status"
            ),
        ),
        (
            "policy: {",
            "policy: { drop_overloads: [], ",
            format!("{la}.policy.drop_overloads"),
        ),
    ] {
        let text = config(&ASSIGNMENT.replace(from, to), "");
        let errors = weir_config::parse(&text).expect_err(to).to_string();
        assert!(errors.contains(&want), "{to}: {errors}");
    }
}

#[test]
fn retry_priority_is_previous_priorities_with_a_frequency() {
    let typed = "type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig";
    let route =
        |config: &str| format!(", retry_policy: {{ retry_on: 5xx, retry_priority: {config} }}");
    let ok = route(&format!(
        "{{ name: envoy.retry_priorities.previous_priorities, typed_config: {{ \"@type\": {typed}, update_frequency: 2 }} }}"
    ));
    let b = weir_config::parse(&config(ASSIGNMENT, &ok)).unwrap();
    let hcm = b.listeners[0].filter_chains[0]
        .http_connection_manager
        .as_ref()
        .unwrap();
    match &hcm.route_config.virtual_hosts[0].routes[0].action {
        weir_config::RouteAction::Forward(f) => {
            let policy = f.retry_policy.as_ref().unwrap();
            assert_eq!(policy.previous_priorities, Some(2));
        }
        other => panic!("{other:?}"),
    }
    let path = "route.retry_policy.retry_priority";
    for (extension, want) in [
        (
            format!("{{ typed_config: {{ \"@type\": {typed}, update_frequency: 0 }} }}"),
            "update_frequency must be above 0",
        ),
        (
            "{ name: envoy.retry_priorities.previous_priorities }".to_owned(),
            "previous_priorities needs its typed_config (update_frequency)",
        ),
        (
            "{ name: other }".to_owned(),
            "retry priority `other` is not supported yet (weir supports envoy.retry_priorities.previous_priorities)",
        ),
    ] {
        let text = config(ASSIGNMENT, &route(&extension));
        let errors = weir_config::parse(&text).expect_err(want).to_string();
        assert!(errors.contains(want) && errors.contains(path), "{errors}");
    }
}
