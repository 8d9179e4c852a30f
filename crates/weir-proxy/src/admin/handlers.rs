//! The admin endpoints, in Envoy's formats.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::flows::{flows, recording_note};
use super::{AdminInfo, Kept, Reply};
use crate::server::{Exit, ListenerScope};
use crate::stats::render::{self, Select};
use crate::stats::{HostStats, StatRef, Value};
use crate::upstream::host_set::{HEALTH_ACTIVE_HC, HEALTH_DEGRADED_HC, HEALTH_OUTLIER, Host};
use weir_config::EndpointHealth;

/// One admin endpoint.
pub(crate) struct Endpoint {
    pub(crate) path: &'static str,
    /// Changes state: POST only (405 otherwise), as Envoy requires.
    pub(crate) post: bool,
    pub(crate) help: &'static str,
}

/// Every endpoint, in the order `/` and `/help` list them.
pub(crate) const ENDPOINTS: &[Endpoint] = &[
    get("/", "this page (HTML)"),
    get("/help", "the endpoints, as text"),
    get(
        "/ready",
        "LIVE (200) when serving; DRAINING (503) while draining or health-check failed",
    ),
    get(
        "/server_info",
        "version, state, uptime, node, command line (JSON)",
    ),
    get(
        "/stats",
        "all stats: ?format=json|prometheus ?filter=REGEX ?usedonly ?type=Counters|Gauges|Histograms",
    ),
    get(
        "/stats/prometheus",
        "all stats in Prometheus text format: ?filter=REGEX ?usedonly",
    ),
    get(
        "/clusters",
        "clusters, their hosts and per-host stats: ?format=json",
    ),
    get(
        "/route",
        "how a request would route, and the live hosts it could go to: ?host=H ?path=/p ?method=GET ?header=name:value (repeats) ?scheme=http|https ?listener=NAME ?format=json",
    ),
    get(
        "/explain",
        "why requests failed: the latest, one line each (?status=5xx|503 ?limit=N), or one in full: ?stream=ID or ?request_id=ID; ?format=json",
    ),
    get(
        "/listeners",
        "listeners and their bound addresses: ?format=json",
    ),
    get(
        "/certs",
        "the TLS certificates of listeners and clusters, with names and expiry (JSON)",
    ),
    get(
        "/config_dump",
        "the loaded configuration in Envoy's config dump shape (JSON): ?resource=NAME",
    ),
    get(
        "/flows",
        "recent request flows: ?format=text|json|perfetto ?limit=N ?status=2xx|404 ?min_duration_ms=N ?since=NS ?until=NS",
    ),
    get(
        "/flows/view",
        "the flows as a timeline (HTML, works offline)",
    ),
    post(
        "/logging",
        "show the log level, or set it with ?level=trace|debug|info|warning|error|critical|off",
    ),
    post(
        "/healthcheck/fail",
        "fail health checks: /ready says DRAINING and every response closes its connection",
    ),
    post("/healthcheck/ok", "undo /healthcheck/fail"),
    post(
        "/drain_listeners",
        "stop accepting: ?graceful first closes connections after their responses for the drain time; ?inboundonly drains inbound listeners only",
    ),
    post("/quitquitquit", "exit now"),
    post(
        "/reload",
        "read the config file again and apply what changed (route configs, static endpoints), or nothing: 200 with what was applied, 400 with each error and its config path",
    ),
    post(
        "/reset_counters",
        "reset every counter to zero (gauges and histograms are kept)",
    ),
    get(
        "/runtime",
        "the runtime's layers and each key's value in them (JSON)",
    ),
    post(
        "/runtime_modify",
        "set runtime values in the admin layer: ?key1=value1&key2=value2 (or a form body); an empty value removes one",
    ),
    post(
        "/reopen_logs",
        "reopen the access log files (after logrotate moved them)",
    ),
];

const fn get(path: &'static str, help: &'static str) -> Endpoint {
    Endpoint {
        path,
        post: false,
        help,
    }
}

const fn post(path: &'static str, help: &'static str) -> Endpoint {
    Endpoint {
        path,
        post: true,
        help,
    }
}

pub(super) fn text(status: u16, body: impl Into<String>) -> Reply {
    (
        status,
        "text/plain; charset=UTF-8",
        Bytes::from(body.into()),
    )
}

pub(super) fn json(value: &serde_json::Value) -> Reply {
    (200, "application/json", Bytes::from(format!("{value:#}\n")))
}

/// The query's parameters, percent-decoded; any name outside `allowed` is a 400 naming it.
pub(super) fn params(query: &str, allowed: &[&str]) -> Result<Vec<(String, String)>, Reply> {
    let mut out = Vec::new();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        if !allowed.contains(&key.as_ref()) {
            let list = if allowed.is_empty() {
                "none".to_string()
            } else {
                allowed.join(", ")
            };
            return Err(text(
                400,
                format!("unknown parameter `{key}` (this endpoint takes: {list})\n"),
            ));
        }
        out.push((key.into_owned(), value.into_owned()));
    }
    Ok(out)
}

pub(super) fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The answer to a form body past `max` bytes.
pub(crate) fn form_too_long(max: usize) -> Reply {
    text(413, format!("the form body is longer than {max} bytes\n"))
}

/// Routes one request. `form` is its `application/x-www-form-urlencoded` body (or empty).
pub(crate) fn respond(
    method: &[u8],
    path: &[u8],
    query: &str,
    form: &str,
    info: &AdminInfo,
    kept: &mut Kept,
) -> Reply {
    let Some(endpoint) = ENDPOINTS.iter().find(|e| e.path.as_bytes() == path) else {
        return text(404, "not found: see / or /help for the endpoints\n");
    };
    let allowed = if endpoint.post {
        method == b"POST"
    } else {
        method == b"GET" || method == b"HEAD"
    };
    if !allowed {
        let method = String::from_utf8_lossy(method);
        let want = if endpoint.post { "POST" } else { "GET" };
        // Envoy's words for the mutating endpoints (no newline, as Envoy sends it).
        return text(
            405,
            format!("Method {method} not allowed, {want} required."),
        );
    }
    let result = match endpoint.path {
        "/" => Ok(index()),
        "/help" => Ok(text(200, help())),
        "/ready" => Ok(ready(info)),
        "/server_info" => params(query, &[]).map(|_| server_info(info)),
        "/stats" => stats(query, info, kept),
        "/stats/prometheus" => prometheus(query, info, kept),
        "/clusters" => clusters(query, info, kept),
        "/listeners" => listeners(query, info),
        "/route" => super::route_query::route(query, info),
        "/explain" => super::explain::explain(query, info),
        "/certs" => params(query, &[]).map(|_| {
            json(&super::certs::certs(
                &info.snapshot(),
                std::time::SystemTime::now(),
            ))
        }),
        "/config_dump" => config_dump(query, info),
        "/flows" => Ok(flows(query, info)),
        "/flows/view" => Ok((
            200,
            "text/html; charset=utf-8",
            Bytes::from(weir_flow::render::view_html_noting(&recording_note(
                info.flow_trace,
            ))),
        )),
        "/logging" => logging(query, info),
        "/healthcheck/fail" | "/healthcheck/ok" => params(query, &[]).map(|_| {
            let fail = endpoint.path == "/healthcheck/fail";
            info.state
                .health_check_failed
                .store(fail, Ordering::Release);
            text(200, "OK\n")
        }),
        "/drain_listeners" => drain_listeners(query, info),
        "/reload" => {
            params(query, &[]).map(|_| match crate::reload::run(&info.state, &info.workers) {
                Ok(applied) => text(200, applied.text()),
                Err(refused) => text(400, refused.text()),
            })
        }
        "/quitquitquit" => params(query, &[]).map(|_| {
            let _ = info.exit.send(Exit::Quit);
            text(200, "OK\n")
        }),
        "/runtime" => params(query, &[]).map(|_| runtime(info)),
        "/runtime_modify" => Ok(runtime_modify(query, form, info)),
        "/reopen_logs" => params(query, &[]).map(|_| {
            info.state.access_logs.reopen();
            text(200, "OK\n")
        }),
        "/reset_counters" => params(query, &[]).map(|_| {
            kept.baseline.clear();
            for s in info.stats(kept) {
                if let Value::Counter(v) = s.value {
                    kept.baseline.insert(s.name, v);
                }
            }
            text(200, "OK\n")
        }),
        _ => Ok(text(404, "not found\n")),
    };
    result.unwrap_or_else(|bad| bad)
}

fn help() -> String {
    let mut out = String::from("admin commands are:\n");
    for e in ENDPOINTS {
        let method = if e.post { "POST" } else { "GET " };
        let _ = writeln!(out, "  {method} {}: {}", e.path, e.help);
    }
    out
}

/// `GET /`: the endpoints as an HTML page; POST ones as buttons.
fn index() -> Reply {
    let mut rows = String::new();
    for e in ENDPOINTS {
        let help = e.help.replace('&', "&amp;").replace('<', "&lt;");
        let cell = if e.post {
            format!(
                "<form action=\"{0}\" method=\"post\"><button>{0}</button></form>",
                e.path
            )
        } else {
            format!("<a href=\"{0}\">{0}</a>", e.path)
        };
        let _ = writeln!(rows, "<tr><td>{cell}</td><td>{help}</td></tr>");
    }
    let page = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>weir admin</title></head>\
         <body><h1>weir admin</h1><table>\n{rows}</table></body></html>\n"
    );
    (200, "text/html; charset=UTF-8", Bytes::from(page))
}

fn state_name(info: &AdminInfo) -> &'static str {
    if info.state.live() {
        "LIVE"
    } else {
        "DRAINING"
    }
}

fn ready(info: &AdminInfo) -> Reply {
    let status = if info.state.live() { 200 } else { 503 };
    text(status, format!("{}\n", state_name(info)))
}

fn server_info(info: &AdminInfo) -> Reply {
    let uptime = crate::worker::clock()
        .saturating_duration_since(info.state.started)
        .as_secs();
    let snapshot = info.snapshot();
    let node = &snapshot.bootstrap.node;
    json(&serde_json::json!({
        "version": concat!("weir/", env!("CARGO_PKG_VERSION")),
        "state": state_name(info),
        "hot_restart_version": "disabled",
        "command_line_options": {
            "concurrency": info.state.concurrency,
            "argv": info.command_line,
        },
        "node": { "id": node.id, "cluster": node.cluster },
        "uptime_current_epoch": format!("{uptime}s"),
        "uptime_all_epochs": format!("{uptime}s"),
    }))
}

/// `?filter=` and `?usedonly`, shared by the stats views.
fn selection(params: &[(String, String)]) -> Result<(Option<regex::Regex>, bool), Reply> {
    let filter = match param(params, "filter") {
        Some(f) if !f.is_empty() => match regex::Regex::new(f) {
            Ok(r) => Some(r),
            Err(e) => return Err(text(400, format!("invalid regex in filter: {e}\n"))),
        },
        _ => None,
    };
    Ok((filter, param(params, "usedonly").is_some()))
}

fn stats(query: &str, info: &AdminInfo, kept: &Kept) -> Result<Reply, Reply> {
    let params = params(query, &["format", "filter", "usedonly", "type"])?;
    let (filter, used_only) = selection(&params)?;
    let select = Select {
        filter: filter.as_ref(),
        used_only,
    };
    let mut all = info.stats(kept);
    match param(&params, "type") {
        None | Some("All") => {}
        Some(kind @ ("Counters" | "Gauges" | "Histograms")) => all.retain(|s| {
            matches!(
                (kind, &s.value),
                ("Counters", Value::Counter(_))
                    | ("Gauges", Value::Gauge(_))
                    | ("Histograms", Value::Histogram(_))
            )
        }),
        Some(other) => {
            return Err(text(
                400,
                format!("invalid type `{other}` (All, Counters, Gauges or Histograms)\n"),
            ));
        }
    }
    Ok(match param(&params, "format") {
        None | Some("text") => text(200, render::text(&all, &kept.intervals, &select)),
        Some("json") => (
            200,
            "application/json",
            Bytes::from(render::json(&all, &kept.intervals, &select)),
        ),
        Some("prometheus") => prometheus_reply(render::prometheus(&all, &select)),
        Some(other) => {
            return Err(text(
                400,
                format!("invalid format `{other}` (text, json or prometheus)\n"),
            ));
        }
    })
}

fn prometheus_reply(body: String) -> Reply {
    (200, "text/plain; version=0.0.4", Bytes::from(body))
}

fn prometheus(query: &str, info: &AdminInfo, kept: &Kept) -> Result<Reply, Reply> {
    let params = params(query, &["filter", "usedonly"])?;
    let (filter, used_only) = selection(&params)?;
    let select = Select {
        filter: filter.as_ref(),
        used_only,
    };
    Ok(prometheus_reply(render::prometheus(
        &info.stats(kept),
        &select,
    )))
}

/// Per host: each stat's merged value over the workers, in name order (as Envoy lists them).
fn host_stats(host: &Host) -> Vec<(String, bool, i64)> {
    let mut out: Vec<(String, bool, i64)> = Vec::new();
    for (w, h) in host.stats.iter().enumerate() {
        let mut k = 0;
        HostStats::each_field(h, &mut |name, stat| {
            let (gauge, v) = match stat {
                StatRef::Counter(c) => (false, c.get() as i64),
                StatRef::Gauge(g) => (true, g.get()),
                StatRef::Histogram(_) => return,
            };
            if w == 0 {
                out.push((name.to_string(), gauge, v));
            } else if let Some(entry) = out.get_mut(k) {
                entry.2 += v;
            }
            k += 1;
        });
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// `/clusters`: every cluster with its current hosts (as they are now, DNS answers included).
fn clusters(query: &str, info: &AdminInfo, _kept: &Kept) -> Result<Reply, Reply> {
    let params = params(query, &["format"])?;
    let snapshot = info.snapshot();
    let config = &snapshot.bootstrap.clusters;
    let entries: Vec<_> = snapshot.clusters.in_force().collect();
    let sets: Vec<_> = (entries.iter())
        .map(|c| info.state.hosts.current(c.number))
        .collect();
    match param(&params, "format") {
        None | Some("text") => {
            let mut out = String::new();
            for (c, (cluster, set)) in config.iter().zip(&sets).enumerate() {
                let name = &cluster.name;
                let detector = entries[c].detector.as_ref();
                let rate = |h: &Host, local| detector.map_or(-1.0, |d| d.success_rate(h.id, local));
                let _ = writeln!(out, "{name}::observability_name::{name}");
                let priorities = ["default_priority", "high_priority"];
                for (priority, t) in priorities.iter().zip(&cluster.circuit_breakers.thresholds) {
                    for (limit, v) in thresholds(t) {
                        let _ = writeln!(out, "{name}::{priority}::{limit}::{v}");
                    }
                }
                let _ = writeln!(out, "{name}::added_via_api::false");
                for h in &set.hosts {
                    let host = format!("{name}::{}", h.spec.address);
                    for (stat, _, v) in host_stats(h) {
                        let _ = writeln!(out, "{host}::{stat}::{v}");
                    }
                    let hostname = h.spec.hostname.as_deref().unwrap_or("");
                    let _ = writeln!(out, "{host}::hostname::{hostname}");
                    let _ = writeln!(out, "{host}::health_flags::{}", health_flags(h));
                    let _ = writeln!(out, "{host}::weight::{}", h.spec.weight);
                    let placement = &h.spec.placement;
                    let locality = &placement.locality;
                    let _ = writeln!(out, "{host}::region::{}", locality.region);
                    let _ = writeln!(out, "{host}::zone::{}", locality.zone);
                    let _ = writeln!(out, "{host}::sub_zone::{}", locality.sub_zone);
                    let _ = writeln!(out, "{host}::canary::false");
                    let _ = writeln!(out, "{host}::priority::{}", placement.priority);
                    let _ = writeln!(out, "{host}::success_rate::{}", rate(h, false));
                    let local = rate(h, true);
                    let _ = writeln!(out, "{host}::local_origin_success_rate::{local}");
                }
            }
            Ok(text(200, out))
        }
        Some("json") => {
            let statuses: Vec<_> = config
                .iter()
                .zip(&sets)
                .map(|(cluster, set)| {
                    let hosts: Vec<_> = set.hosts.iter().map(|h| host_json(h)).collect();
                    serde_json::json!({
                        "name": cluster.name,
                        "circuit_breakers": breakers_json(&cluster.circuit_breakers),
                        "observability_name": cluster.name,
                        "added_via_api": false,
                        "host_statuses": hosts,
                    })
                })
                .collect();
            Ok(json(&serde_json::json!({ "cluster_statuses": statuses })))
        }
        Some(other) => Err(text(
            400,
            format!("invalid format `{other}` (text or json)\n"),
        )),
    }
}

/// A priority's limits as `/clusters` lists them.
fn thresholds(t: &weir_config::Thresholds) -> [(&'static str, u32); 4] {
    [
        ("max_connections", t.max_connections),
        ("max_pending_requests", t.max_pending_requests),
        ("max_requests", t.max_requests),
        ("max_retries", t.max_retries),
    ]
}

/// `circuit_breakers` of `/clusters?format=json`: both priorities, `HIGH` named.
fn breakers_json(cb: &weir_config::CircuitBreakers) -> serde_json::Value {
    let thresholds: Vec<_> = cb
        .thresholds
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let mut entry = serde_json::Map::new();
            if i == 1 {
                entry.insert("priority".into(), "HIGH".into());
            }
            for (limit, v) in thresholds(t) {
                entry.insert(limit.into(), v.into());
            }
            serde_json::Value::Object(entry)
        })
        .collect();
    serde_json::json!({ "thresholds": thresholds })
}

/// One host of `/clusters?format=json`.
fn host_json(host: &Host) -> serde_json::Value {
    let stats: Vec<_> = host_stats(host)
        .into_iter()
        .map(|(name, gauge, v)| {
            if gauge {
                serde_json::json!({"type": "GAUGE", "name": name, "value": v.to_string()})
            } else {
                serde_json::json!({"name": name, "value": v.to_string()})
            }
        })
        .collect();
    let eds = match host.spec.eds_health {
        EndpointHealth::Healthy => "HEALTHY",
        EndpointHealth::Unhealthy => "UNHEALTHY",
        EndpointHealth::Draining => "DRAINING",
        EndpointHealth::Degraded => "DEGRADED",
    };
    // Proto3 JSON leaves out empty strings and a zero priority.
    let placement = &host.spec.placement;
    let mut locality = serde_json::Map::new();
    for (name, value) in [
        ("region", &placement.locality.region),
        ("zone", &placement.locality.zone),
        ("sub_zone", &placement.locality.sub_zone),
    ] {
        if !value.is_empty() {
            locality.insert(name.into(), value.as_str().into());
        }
    }
    let mut status = serde_json::json!({
        "address": socket_address(&host.spec.address),
        "stats": stats,
        "health_status": {"eds_health_status": eds},
        "weight": host.spec.weight,
    });
    if placement.priority != 0 {
        status["priority"] = placement.priority.into();
    }
    status["locality"] = locality.into();
    if let Some(name) = &host.spec.hostname {
        status["hostname"] = serde_json::json!(name);
    }
    if host.health & HEALTH_ACTIVE_HC != 0 {
        status["health_status"]["failed_active_health_check"] = true.into();
    }
    if host.health & HEALTH_OUTLIER != 0 {
        status["health_status"]["failed_outlier_check"] = true.into();
    }
    if host.health & HEALTH_DEGRADED_HC != 0 {
        status["health_status"]["failed_active_degraded_check"] = true.into();
    }
    status
}

/// A host's `health_flags` as Envoy lists them (`healthy` when none is set).
fn health_flags(h: &Host) -> String {
    let mut flags = String::new();
    if h.health & HEALTH_ACTIVE_HC != 0 {
        flags.push_str("/failed_active_hc");
    }
    if h.health & HEALTH_OUTLIER != 0 {
        flags.push_str("/failed_outlier_check");
    }
    if h.spec.eds_health == EndpointHealth::Unhealthy {
        flags.push_str("/failed_eds_health");
    }
    if h.health & HEALTH_DEGRADED_HC != 0 {
        flags.push_str("/degraded_active_hc");
    }
    if h.spec.eds_health == EndpointHealth::Degraded {
        flags.push_str("/degraded_eds_health");
    }
    if h.spec.eds_health == EndpointHealth::Draining {
        flags.push_str("/eds_status_draining");
    }
    if flags.is_empty() {
        flags.push_str("healthy");
    }
    flags
}

/// `{"socket_address": {"address", "port_value"}}`, Envoy's `core.v3.Address` in JSON.
fn socket_address(address: &std::net::SocketAddr) -> serde_json::Value {
    serde_json::json!({
        "socket_address": {"address": address.ip().to_string(), "port_value": address.port()}
    })
}

fn listeners(query: &str, info: &AdminInfo) -> Result<Reply, Reply> {
    let params = params(query, &["format"])?;
    let listeners = (info.state.listeners.lock())
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    match param(&params, "format") {
        None | Some("text") => {
            let mut out = String::new();
            for (name, address) in &listeners {
                let _ = writeln!(out, "{name}::{address}");
            }
            Ok(text(200, out))
        }
        Some("json") => {
            let list: Vec<_> = (listeners.iter())
                .map(|(name, address)| {
                    serde_json::json!({"name": name, "local_address": socket_address(address)})
                })
                .collect();
            Ok(json(&serde_json::json!({ "listener_statuses": list })))
        }
        Some(other) => Err(text(
            400,
            format!("invalid format `{other}` (text or json)\n"),
        )),
    }
}

fn config_dump(query: &str, info: &AdminInfo) -> Result<Reply, Reply> {
    let params = params(query, &["resource"])?;
    let current = info.state.config.current();
    let dump = super::config_dump::dump(
        &current.snapshot.bootstrap,
        &current.applied_at,
        current.version,
    );
    match param(&params, "resource") {
        None => Ok(json(&dump)),
        Some(resource) => {
            let found: Vec<serde_json::Value> = dump["configs"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c.get(resource))
                .flat_map(|r| r.as_array().cloned().unwrap_or_else(|| vec![r.clone()]))
                .collect();
            if found.is_empty() {
                return Err(text(
                    404,
                    format!(
                        "no config has a `{resource}` field (try static_clusters, static_listeners)\n"
                    ),
                ));
            }
            Ok(json(&serde_json::json!({ "configs": found })))
        }
    }
}

fn logging(query: &str, info: &AdminInfo) -> Result<Reply, Reply> {
    let params = params(query, &["level"])?;
    let Some(control) = &info.log_control else {
        return Err(text(501, "this process has no log control\n"));
    };
    let level = param(&params, "level");
    if let Some(l) = level
        && !matches!(
            l,
            "trace" | "debug" | "info" | "warning" | "warn" | "error" | "critical" | "off"
        )
    {
        return Err(text(
            400,
            format!("invalid level `{l}` (trace, debug, info, warning, error, critical or off)\n"),
        ));
    }
    match (control.0)(level) {
        Ok(now) => Ok(text(200, format!("active loggers:\n  weir: {now}\n\n"))),
        Err(e) => Err(text(400, format!("{e}\n"))),
    }
}

fn drain_listeners(query: &str, info: &AdminInfo) -> Result<Reply, Reply> {
    let params = params(query, &["graceful", "inboundonly"])?;
    // As Envoy: `inboundonly` acts on the listeners whose `traffic_direction` is INBOUND only.
    let scope = if param(&params, "inboundonly").is_some() {
        ListenerScope::Inbound
    } else {
        ListenerScope::All
    };
    let graceful = param(&params, "graceful").is_some();
    info.workers.tell(|c| {
        let cell = if graceful {
            &c.drain_listeners
        } else {
            &c.stop_listeners
        };
        cell.fetch_max(scope as u8, Ordering::AcqRel);
    });
    Ok(text(200, "OK\n"))
}

/// `GET /runtime`, in Envoy's shape and with its one-space indent: serde_json indents by two,
/// and since a JSON string never holds a raw newline, every line's indent can be halved.
fn runtime(info: &AdminInfo) -> Reply {
    let (_, runtime) = info.state.runtime.snapshot();
    let mut out = String::new();
    for line in format!("{:#}", runtime.to_json()).lines() {
        let body = line.trim_start_matches(' ');
        let indent = (line.len() - body.len()) / 2;
        let _ = writeln!(out, "{:indent$}{body}", "");
    }
    (200, "application/json", Bytes::from(out))
}

/// `POST /runtime_modify`: the parameters come from the query, or else from a form body, as
/// in Envoy; with neither, Envoy's usage text (400). A key given twice keeps its first value.
fn runtime_modify(query: &str, form: &str, info: &AdminInfo) -> Reply {
    let source = if query.is_empty() { form } else { query };
    let mut changes: Vec<(String, String)> = Vec::new();
    for (key, value) in form_urlencoded::parse(source.as_bytes()) {
        if !changes.iter().any(|(k, _)| *k == key) {
            changes.push((key.into_owned(), value.into_owned()));
        }
    }
    if changes.is_empty() {
        return text(
            400,
            "usage: /runtime_modify?key1=value1&key2=value2&keyN=valueN\n       \
             or send the parameters as form values\n\
             use an empty value to remove a previously added override",
        );
    }
    match info.state.runtime.modify(&changes) {
        Ok(()) => text(200, "OK\n"),
        Err(why) => text(503, why),
    }
}
