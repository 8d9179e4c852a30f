//! `weir validate -c FILE`: every shipped example is valid; broken configs exit 1 with one
//! error per line, each naming the path of the field at fault.

mod support;

use std::time::Duration;

use support::{Ran, TempFile, examples_dir, run_weir};

const WAIT: Duration = Duration::from_secs(15);

/// A valid config; the broken ones below are one textual edit away from it.
const BASE: &str = r#"static_resources:
  listeners:
  - name: l0
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          route_config:
            virtual_hosts:
            - name: vh
              domains: ["*"]
              routes:
              - match: { prefix: / }
                route: { cluster: origin, timeout: 5s }
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: origin
    type: STATIC
    connect_timeout: 1s
    lb_policy: ROUND_ROBIN
    load_assignment:
      cluster_name: origin
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 9 } } }
"#;

const HCM: &str = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config";

/// BASE with `from` replaced by `to` (which must occur exactly once).
fn edit(from: &str, to: &str) -> String {
    assert_eq!(
        BASE.matches(from).count(),
        1,
        "{from:?} must occur once in BASE"
    );
    BASE.replacen(from, to, 1)
}

fn validate(file: &TempFile) -> Ran {
    run_weir(&["validate", "-c", &file.path().to_string_lossy()], WAIT)
}

/// Validates `config` and asserts: exit 1, stdout empty, stderr's first line names the file, and
/// some error line starts with `path: ` and contains every one of `words`.
#[track_caller]
fn assert_invalid(config: &str, path: &str, words: &[&str]) -> Ran {
    let file = TempFile::new("broken.yaml", config);
    let ran = validate(&file);
    assert_eq!(ran.code(), Some(1), "{ran}");
    assert!(ran.stdout.trim().is_empty(), "{ran}");
    let mut lines = ran.stderr.lines();
    assert_eq!(
        lines.next(),
        Some(format!("{}: invalid", file.path().display()).as_str()),
        "{ran}"
    );
    let prefix = format!("{path}: ");
    let hit = lines.any(|l| l.starts_with(&prefix) && words.iter().all(|w| l.contains(w)));
    assert!(hit, "no error line `{prefix}…` containing {words:?}\n{ran}");
    ran
}

#[test]
fn every_example_is_valid() {
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(examples_dir()).expect("examples/") {
        let path = entry.expect("dir entry").path();
        if !path.is_file() {
            continue;
        }
        let ran = run_weir(&["validate", "-c", &path.to_string_lossy()], WAIT);
        assert_eq!(ran.code(), Some(0), "{}:\n{ran}", path.display());
        assert!(
            ran.stdout.contains(&format!("{}: valid (", path.display())),
            "{}:\n{ran}",
            path.display()
        );
        checked.push(path);
    }
    assert!(
        checked
            .iter()
            .any(|p| p.extension().is_some_and(|e| e == "yaml")),
        "no YAML example found in {}",
        examples_dir().display()
    );
    assert!(
        checked
            .iter()
            .any(|p| p.extension().is_some_and(|e| e == "json")),
        "no JSON example found"
    );
}

#[test]
fn the_base_config_is_valid() {
    let file = TempFile::new("base.yaml", BASE);
    let ran = validate(&file);
    assert_eq!(ran.code(), Some(0), "{ran}");
    assert!(
        ran.stdout.contains(&format!(
            "{}: valid (1 listener(s), 1 cluster(s))",
            file.path().display()
        )),
        "{ran}"
    );
}

#[test]
fn unknown_field() {
    assert_invalid(
        &edit(
            "    type: STATIC\n",
            "    type: STATIC\n    bogus_field: 1\n",
        ),
        "static_resources.clusters[0].bogus_field",
        &["unknown field", "connect_timeout"],
    );
}

#[test]
fn unknown_field_suggests_the_near_miss() {
    assert_invalid(
        &edit("stat_prefix: ingress", "stat_prefx: ingress"),
        &format!("{HCM}.stat_prefx"),
        &["unknown field", "did you mean `stat_prefix`?"],
    );
}

#[test]
fn cluster_provided_is_only_for_original_dst() {
    let ran = assert_invalid(
        &edit("lb_policy: ROUND_ROBIN", "lb_policy: CLUSTER_PROVIDED"),
        "static_resources.clusters[0].lb_policy",
        &["CLUSTER_PROVIDED is only for an ORIGINAL_DST cluster"],
    );
    assert!(
        ran.stderr.contains(
            "static_resources.clusters[0].lb_policy: lb_policy CLUSTER_PROVIDED is only for an ORIGINAL_DST cluster"
        ),
        "{ran}"
    );
}

#[test]
fn eds_is_not_supported() {
    assert_invalid(
        &edit("type: STATIC", "type: EDS"),
        "static_resources.clusters[0].type",
        &["EDS", "not supported"],
    );
}

#[test]
fn bad_duration() {
    assert_invalid(
        &edit("connect_timeout: 1s", "connect_timeout: 5 seconds"),
        "static_resources.clusters[0].connect_timeout",
        &["invalid duration", "\"5 seconds\""],
    );
}

#[test]
fn route_to_a_missing_cluster() {
    assert_invalid(
        &edit("cluster: origin,", "cluster: nowhere,"),
        &format!("{HCM}.route_config.virtual_hosts[0].routes[0].route.cluster"),
        &["unknown cluster", "nowhere"],
    );
}

#[test]
fn router_not_last() {
    let config = edit(
        "              \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router\n",
        "              \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router\n          - name: envoy.filters.http.lua\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua\n",
    );
    assert_invalid(
        &config,
        &format!("{HCM}.http_filters[0]"),
        &["the router must be the last HTTP filter"],
    );
}

#[test]
fn missing_stat_prefix() {
    assert_invalid(
        &edit("          stat_prefix: ingress\n", ""),
        &format!("{HCM}.stat_prefix"),
        &["`stat_prefix` is required"],
    );
}

#[test]
fn invalid_yaml_syntax() {
    // Line 10 of BASE is the stat_prefix line; the error has no field path, only a position.
    assert_eq!(
        BASE.lines().nth(9).map(str::trim),
        Some("stat_prefix: ingress")
    );
    let file = TempFile::new(
        "syntax.yaml",
        edit("stat_prefix: ingress", "stat_prefix: ingress: extra"),
    );
    let ran = validate(&file);
    assert_eq!(ran.code(), Some(1), "{ran}");
    let line = ran
        .stderr
        .lines()
        .find(|l| l.starts_with("invalid YAML: "))
        .unwrap_or_else(|| panic!("no `invalid YAML:` line\n{ran}"));
    assert!(
        line.contains("line 10,"),
        "error should point at line 10: {line}"
    );
}

#[test]
fn nonexistent_file() {
    let path = TempFile::unique_path("does-not-exist.yaml");
    let path = path.to_string_lossy();
    let ran = run_weir(&["validate", "-c", &path], WAIT);
    assert_eq!(ran.code(), Some(1), "{ran}");
    assert!(
        ran.stderr
            .contains(&format!("cannot read {path}: No such file or directory")),
        "{ran}"
    );
}

#[test]
fn every_error_is_reported_one_per_line() {
    let config = edit("lb_policy: ROUND_ROBIN", "lb_policy: FASTEST")
        .replacen("type: STATIC", "type: EDS", 1)
        .replacen("          stat_prefix: ingress\n", "", 1);
    let ran = assert_invalid(
        &config,
        "static_resources.clusters[0].lb_policy",
        &["`FASTEST` is not a valid lb_policy"],
    );
    let errors: Vec<&str> = ran.stderr.lines().skip(1).collect();
    assert_eq!(errors.len(), 3, "{ran}");
    for path in [
        "static_resources.clusters[0].lb_policy: ",
        "static_resources.clusters[0].type: ",
        &format!("{HCM}.stat_prefix: "),
    ] {
        assert!(
            errors.iter().filter(|l| l.starts_with(path)).count() == 1,
            "expected one line starting {path:?}\n{ran}"
        );
    }
}

#[test]
fn json_config_errors_name_the_path_too() {
    let file = TempFile::new(
        "broken.json",
        r#"{"static_resources": {"clusters": [{"name": "a", "lb_policy": "CLUSTER_PROVIDED"}]}}"#,
    );
    let ran = validate(&file);
    assert_eq!(ran.code(), Some(1), "{ran}");
    assert!(
        ran.stderr.contains(
            "static_resources.clusters[0].lb_policy: lb_policy CLUSTER_PROVIDED is only for an ORIGINAL_DST cluster"
        ),
        "{ran}"
    );
}

#[test]
fn a_repeated_key_is_valid_with_a_warning_naming_its_path() {
    let file = TempFile::new(
        "repeated.yaml",
        edit(
            "connect_timeout: 1s",
            "connect_timeout: 1s\n    connect_timeout: 2s",
        ),
    );
    let ran = validate(&file);
    assert_eq!(ran.code(), Some(0), "{ran}");
    assert!(ran.stdout.contains(": valid ("), "{ran}");
    assert_eq!(
        ran.stderr.trim(),
        "warning: static_resources.clusters[0].connect_timeout: this key is given more than once \
         in its mapping; the last value is used (as Envoy does) and the others are ignored",
        "{ran}"
    );
}

#[test]
fn an_unknown_log_level_is_refused_before_anything_starts() {
    let file = TempFile::new("ok.yaml", BASE);
    let path = file.path().to_string_lossy().to_string();
    let ran = run_weir(&["--log-level", "loud", "-c", &path], WAIT);
    assert_eq!(ran.code(), Some(2), "{ran}");
    assert!(
        ran.stderr
            .contains("expected one of trace, debug, info, warning, warn, error, critical, off"),
        "{ran}"
    );
}
