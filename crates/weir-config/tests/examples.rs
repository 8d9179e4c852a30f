//! Every config in the repository's `examples/` loads.

use std::net::SocketAddr;
use std::path::PathBuf;

fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

#[test]
fn every_example_loads() {
    let mut loaded = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(examples_dir())
        .expect("examples/ exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml" | "json")
            )
        })
        .collect();
    entries.sort();
    for path in &entries {
        if let Err(errors) = weir_config::load(path) {
            panic!("{} does not load:\n{errors}", path.display());
        }
        loaded.push(path.file_name().unwrap().to_string_lossy().into_owned());
    }
    for expected in [
        "basic.yaml",
        "basic.json",
        "routing.yaml",
        "edge.yaml",
        "filters.yaml",
    ] {
        assert!(
            loaded.iter().any(|l| l == expected),
            "{expected} missing: {loaded:?}"
        );
    }
}

#[test]
fn basic_yaml_and_json_agree() {
    let yaml = weir_config::load(&examples_dir().join("basic.yaml")).unwrap();
    let json = weir_config::load(&examples_dir().join("basic.json")).unwrap();
    assert_eq!(format!("{yaml:?}"), format!("{json:?}"));

    let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
    assert_eq!(yaml.admin.unwrap().address, addr("127.0.0.1:9901"));
    assert_eq!(yaml.listeners.len(), 1);
    assert_eq!(yaml.listeners[0].address, addr("127.0.0.1:10000"));
    assert_eq!(yaml.clusters.len(), 1);
    let endpoints: Vec<_> = yaml.clusters[0]
        .endpoints
        .iter()
        .map(|e| e.address)
        .collect();
    assert_eq!(endpoints, [addr("127.0.0.1:8081"), addr("127.0.0.1:8082")]);
}

#[test]
fn edge_example_uses_a_default_chain() {
    let edge = weir_config::load(&examples_dir().join("edge.yaml")).unwrap();
    let listener = &edge.listeners[0];
    assert_eq!(
        listener.filter_chains[0]
            .filter_chain_match
            .destination_port,
        Some(10080)
    );
    let default = listener.default_filter_chain.as_ref().unwrap();
    assert_eq!(default.name, "edge/other");
    assert_eq!(
        default
            .http_connection_manager
            .as_ref()
            .unwrap()
            .stream_idle_timeout,
        None
    );
    assert_eq!(
        default
            .http_connection_manager
            .as_ref()
            .unwrap()
            .idle_timeout,
        None
    );
}

#[test]
fn filters_example_uses_all_three_filters_and_overrides() {
    use weir_config::{FilterConfig, HttpFilter, PerFilter};
    let b = weir_config::load(&examples_dir().join("filters.yaml")).unwrap();
    let hcm = &b.listeners[0].filter_chains[0]
        .http_connection_manager
        .as_ref()
        .unwrap();
    let kinds: Vec<&str> = hcm
        .http_filters
        .iter()
        .map(|f| match f {
            HttpFilter::Filter {
                config: FilterConfig::HealthCheck(_),
                ..
            } => "health_check",
            HttpFilter::Filter {
                config: FilterConfig::Buffer(_),
                ..
            } => "buffer",
            HttpFilter::Filter {
                config: FilterConfig::Fault(_),
                ..
            } => "fault",
            HttpFilter::Router { .. } => "router",
        })
        .collect();
    assert_eq!(kinds, ["health_check", "buffer", "fault", "router"]);
    let routes = &hcm.route_config.virtual_hosts[0].routes;
    let overrides: Vec<(&str, &str, &str)> = routes
        .iter()
        .flat_map(|r| {
            r.per_filter.iter().map(|p| {
                let what = match &p.config {
                    PerFilter::Disabled => "disabled",
                    PerFilter::Enabled => "enabled",
                    PerFilter::Fault(_) => "fault",
                    PerFilter::Buffer(_) => "buffer",
                };
                (r.name.as_str(), p.filter.as_str(), what)
            })
        })
        .collect();
    assert_eq!(
        overrides,
        [
            ("chaos", "envoy.filters.http.fault", "fault"),
            ("upload", "envoy.filters.http.buffer", "disabled"),
            ("upload", "envoy.filters.http.fault", "disabled"),
            ("api", "envoy.filters.http.buffer", "buffer"),
        ]
    );
}
