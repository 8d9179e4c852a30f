//! The admin listener's views of the merged stats: Envoy's `/stats` text and JSON, and
//! `/stats/prometheus`.

use std::collections::HashMap;
use std::fmt::Write;

use super::histogram::{ENVOY_BOUNDS, QUANTILES, Snapshot};
use super::{Stat, Value};

/// Histograms' last completed flush interval, by stat name (Envoy's `interval` column).
pub(crate) type Intervals = HashMap<String, Snapshot>;

/// Which stats a view shows.
pub(crate) struct Select<'a> {
    /// `?filter=`: a regex searched for in the name.
    pub(crate) filter: Option<&'a regex::Regex>,
    /// `?usedonly`.
    pub(crate) used_only: bool,
}

impl Select<'_> {
    fn keeps(&self, s: &Stat) -> bool {
        (!self.used_only || s.used) && self.filter.is_none_or(|r| r.is_match(&s.name))
    }
}

/// A quantile as Envoy prints it (`nan` when there are no values).
fn quantile_text(h: Option<&Snapshot>, q: f64) -> String {
    match h.and_then(|h| h.quantile(q)) {
        Some(v) => format!("{v}"),
        None => "nan".to_string(),
    }
}

/// `/stats`: counters and gauges as `name: value` in name order, then histograms as
/// `name: P0(interval,cumulative) … P100(…)`.
pub(crate) fn text(stats: &[Stat], intervals: &Intervals, select: &Select<'_>) -> String {
    let mut out = String::new();
    for s in stats.iter().filter(|s| select.keeps(s)) {
        match &s.value {
            Value::Counter(v) => {
                let _ = writeln!(out, "{}: {v}", s.name);
            }
            Value::Gauge(v) => {
                let _ = writeln!(out, "{}: {v}", s.name);
            }
            Value::Histogram(_) => {}
        }
    }
    for s in stats.iter().filter(|s| select.keeps(s)) {
        let Value::Histogram(h) = &s.value else {
            continue;
        };
        if h.count() == 0 {
            let _ = writeln!(out, "{}: No recorded values", s.name);
            continue;
        }
        let interval = intervals.get(&s.name).filter(|i| i.count() > 0);
        let _ = write!(out, "{}:", s.name);
        for q in QUANTILES {
            let _ = write!(
                out,
                " P{q}({},{})",
                quantile_text(interval, q),
                quantile_text(Some(h), q)
            );
        }
        out.push('\n');
    }
    out
}

/// A quantile as JSON: a number, or `null` when there are no values.
fn quantile_json(h: Option<&Snapshot>, q: f64) -> serde_json::Value {
    h.and_then(|h| h.quantile(q))
        .map_or(serde_json::Value::Null, serde_json::Value::from)
}

/// `/stats?format=json`: Envoy's shape, `{"stats": [{"name", "value"}…, {"histograms": …}]}`.
pub(crate) fn json(stats: &[Stat], intervals: &Intervals, select: &Select<'_>) -> String {
    let mut list: Vec<serde_json::Value> = Vec::new();
    let mut computed = Vec::new();
    for s in stats.iter().filter(|s| select.keeps(s)) {
        match &s.value {
            Value::Counter(v) => list.push(serde_json::json!({"name": s.name, "value": v})),
            Value::Gauge(v) => list.push(serde_json::json!({"name": s.name, "value": v})),
            Value::Histogram(h) => {
                let interval = intervals.get(&s.name).filter(|i| i.count() > 0);
                let values: Vec<_> = QUANTILES
                    .iter()
                    .map(|&q| {
                        serde_json::json!({
                            "interval": quantile_json(interval, q),
                            "cumulative": quantile_json(Some(h), q),
                        })
                    })
                    .collect();
                computed.push(serde_json::json!({"name": s.name, "values": values}));
            }
        }
    }
    if !computed.is_empty() {
        list.push(serde_json::json!({
            "histograms": {
                "supported_quantiles": QUANTILES,
                "computed_quantiles": computed,
            }
        }));
    }
    format!("{}\n", serde_json::json!({ "stats": list }))
}

/// A label value in the text exposition format: `\`, `"` and newlines escaped.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `{a="x",b="y"}` with an optional extra label last (`le` of a bucket); `{}` when none, as
/// Envoy writes it.
fn labels(list: &[(&'static str, String)], extra: Option<(&str, &str)>) -> String {
    let mut parts: Vec<String> = list
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
        .collect();
    if let Some((k, v)) = extra {
        parts.push(format!("{k}=\"{v}\""));
    }
    format!("{{{}}}", parts.join(","))
}

/// `/stats/prometheus`: one family per metric name, samples labelled by Envoy's tags;
/// histograms with Envoy's default buckets, `_sum` and `_count`. Each family also gets a
/// `# HELP` line naming the Envoy stats it carries, which Envoy leaves out and `promtool`
/// asks for.
pub(crate) fn prometheus(stats: &[Stat], select: &Select<'_>) -> String {
    let mut families: Vec<(&str, Vec<&Stat>)> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for s in stats.iter().filter(|s| select.keeps(s)) {
        let k = *index.entry(&s.prom_name).or_insert_with(|| {
            families.push((&s.prom_name, Vec::new()));
            families.len() - 1
        });
        families[k].1.push(s);
    }
    // Envoy's order: counters, then gauges, then histograms; by name within each.
    let rank = |s: &Stat| match s.value {
        Value::Counter(_) => 0,
        Value::Gauge(_) => 1,
        Value::Histogram(_) => 2,
    };
    families.sort_by(|a, b| (rank(a.1[0]), a.0).cmp(&(rank(b.1[0]), b.0)));
    let mut out = String::new();
    for (name, members) in families {
        let kind = match members[0].value {
            Value::Counter(_) => "counter",
            Value::Gauge(_) => "gauge",
            Value::Histogram(_) => "histogram",
        };
        let _ = writeln!(out, "# HELP {name} Envoy stat {}", help_pattern(members[0]));
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for s in members {
            match &s.value {
                Value::Counter(v) => {
                    let _ = writeln!(out, "{name}{} {v}", labels(&s.labels, None));
                }
                Value::Gauge(v) => {
                    let _ = writeln!(out, "{name}{} {v}", labels(&s.labels, None));
                }
                Value::Histogram(h) => {
                    for (bound, n) in ENVOY_BOUNDS.iter().zip(h.cumulative()) {
                        let le = format!("{bound}");
                        let _ = writeln!(
                            out,
                            "{name}_bucket{} {n}",
                            labels(&s.labels, Some(("le", &le)))
                        );
                    }
                    let count = h.count();
                    let _ = writeln!(
                        out,
                        "{name}_bucket{} {count}",
                        labels(&s.labels, Some(("le", "+Inf")))
                    );
                    let _ = writeln!(out, "{name}_sum{} {}", labels(&s.labels, None), h.sum);
                    let _ = writeln!(out, "{name}_count{} {count}", labels(&s.labels, None));
                }
            }
        }
    }
    out
}

/// The Envoy stat name a family stands for, with its tags as placeholders
/// (`cluster.<envoy_cluster_name>.upstream_rq_<envoy_response_code>`).
fn help_pattern(s: &Stat) -> String {
    let mut name = s.name.clone();
    for (key, value) in &s.labels {
        let placeholder = format!("<{key}>");
        name = match *key {
            "envoy_response_code_class" => {
                name.replace(&format!("_{value}xx"), &format!("_{placeholder}xx"))
            }
            "envoy_response_code" => name.replace(&format!("_{value}"), &format!("_{placeholder}")),
            "envoy_worker_id" => name.replace(
                &format!("worker_{value}."),
                &format!("worker_{placeholder}."),
            ),
            _ => name.replacen(&format!(".{value}."), &format!(".{placeholder}."), 1),
        };
    }
    name
}
