//! Envoy's statsd and DogStatsD sinks, without the socket: at each flush a sink turns the
//! merged stats into statsd lines and packs them into datagrams for its caller to send.
//!
//! What goes out, as Envoy 1.40 sends it: counters written at least once, as their change
//! since the last flush (`envoy.http.ingress.downstream_rq_total:3|c`, `…:0|c` when
//! unchanged); gauges once used, as their value (`…:1|g`); histogram values as timers
//! (`…:2|ms`). DogStatsD names are tag-extracted, with the tags after the value
//! (`envoy.cluster.upstream_rq:3|c|#envoy.response_code:200,envoy.cluster_name:backend`).
//!
//! Where weir differs, because its stats differ: Envoy sends each histogram value when it is
//! recorded; weir keeps bucket counts, so it sends the interval's values at the flush, one line
//! per value, each the middle of its bucket (exact up to 100). A gauge counts as used once a
//! flush has seen it non-zero (weir does not mark gauges on write).

use std::collections::{HashMap, HashSet};
use std::fmt::Display;
use std::net::SocketAddr;

use weir_config::{StatsSink, StatsSinkKind};

use super::histogram::Snapshot;
use super::{Stat, Value};

/// One sink and what it remembers from the last flush.
#[derive(Debug)]
pub(crate) struct StatsdSink {
    config: StatsSink,
    /// Each counter's value at the last flush.
    counters: HashMap<String, u64>,
    /// Each histogram at the last flush.
    histograms: HashMap<String, Snapshot>,
    /// Gauges seen non-zero at some flush (Envoy's `used`).
    gauges: HashSet<String>,
}

impl StatsdSink {
    pub(crate) fn new(config: StatsSink) -> Self {
        StatsdSink {
            config,
            counters: HashMap::new(),
            histograms: HashMap::new(),
            gauges: HashSet::new(),
        }
    }

    /// Where the datagrams go.
    pub(crate) fn address(&self) -> SocketAddr {
        self.config.address
    }

    /// Ends a flush interval: `send` gets each datagram of what changed since the last one.
    pub(crate) fn flush(&mut self, stats: &[Stat], send: &mut dyn FnMut(&[u8])) {
        let max = self
            .config
            .max_bytes_per_datagram
            .map_or(0, |m| usize::try_from(m).unwrap_or(usize::MAX));
        let mut batch = Batch::new(max);
        let sinked = || stats.iter().filter(|s| sinked(s));
        // Envoy's order: counters, then gauges; histogram values, which Envoy sends as they
        // are recorded, come last.
        for s in sinked() {
            if let Value::Counter(v) = s.value
                && v > 0
            {
                let last = match self.counters.get_mut(&s.name) {
                    Some(last) => std::mem::replace(last, v),
                    None => {
                        self.counters.insert(s.name.clone(), v);
                        0
                    }
                };
                batch.push(&self.line(s, v.saturating_sub(last), "c"), send);
            }
        }
        for s in sinked() {
            if let Value::Gauge(v) = s.value {
                if v != 0 && !self.gauges.contains(&s.name) {
                    self.gauges.insert(s.name.clone());
                }
                if self.gauges.contains(&s.name) {
                    batch.push(&self.line(s, v, "g"), send);
                }
            }
        }
        for s in sinked() {
            if let Value::Histogram(h) = &s.value {
                let interval = match self.histograms.get_mut(&s.name) {
                    Some(last) => h.since(&std::mem::replace(last, h.clone())),
                    None => {
                        self.histograms.insert(s.name.clone(), h.clone());
                        h.clone()
                    }
                };
                for (value, n) in interval.values() {
                    let line = self.line(s, value, "ms");
                    for _ in 0..n {
                        batch.push(&line, send);
                    }
                }
            }
        }
        batch.finish(send);
    }

    /// `<prefix>.<name>:<value>|<type>`, and DogStatsD's `|#<tag>:<value>,…`.
    fn line(&self, s: &Stat, value: impl Display, kind: &str) -> String {
        let prefix = &self.config.prefix;
        match self.config.kind {
            StatsSinkKind::Statsd => format!("{prefix}.{}:{value}|{kind}", s.name),
            StatsSinkKind::DogStatsd => {
                let mut line = format!("{prefix}.{}:{value}|{kind}", s.tag_name);
                for (i, (key, tag)) in s.labels.iter().enumerate() {
                    line.push_str(if i == 0 { "|#" } else { "," });
                    // Prometheus label `envoy_cluster_name` is Envoy's tag `envoy.cluster_name`.
                    match key.strip_prefix("envoy_") {
                        Some(rest) => line.push_str(&format!("envoy.{rest}:{tag}")),
                        None => line.push_str(&format!("{key}:{tag}")),
                    }
                }
                line
            }
        }
    }
}

/// Whether a sink gets a stat: not the per-worker dispatcher stats, which Envoy has only with
/// `enable_dispatcher_stats` (weir keeps them always, for `/stats`).
fn sinked(s: &Stat) -> bool {
    !s.name.starts_with("listener_manager.worker_")
}

/// Packs lines into datagrams as Envoy's UDP statsd writer does: joined by `\n` while the
/// datagram stays within `max` bytes; a line of `max` bytes or more goes out alone, at once.
/// With `max` 0 (no `max_bytes_per_datagram`) every line is a datagram of its own.
#[derive(Debug)]
pub(crate) struct Batch {
    buf: Vec<u8>,
    max: usize,
}

impl Batch {
    pub(crate) fn new(max: usize) -> Self {
        Batch {
            buf: Vec::new(),
            max,
        }
    }

    /// Adds a line, sending what it does not fit with.
    pub(crate) fn push(&mut self, line: &str, send: &mut dyn FnMut(&[u8])) {
        if line.len() >= self.max {
            send(line.as_bytes());
            return;
        }
        if self.buf.len() + 1 + line.len() > self.max {
            self.finish(send);
        } else if !self.buf.is_empty() {
            self.buf.push(b'\n');
        }
        self.buf.extend_from_slice(line.as_bytes());
    }

    /// Sends what is held.
    pub(crate) fn finish(&mut self, send: &mut dyn FnMut(&[u8])) {
        if !self.buf.is_empty() {
            send(&self.buf);
            self.buf.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Histogram;

    fn stat(name: &str, tag_name: &str, labels: &[(&'static str, &str)], value: Value) -> Stat {
        Stat {
            name: name.into(),
            tag_name: tag_name.into(),
            prom_name: String::new(),
            labels: labels.iter().map(|(k, v)| (*k, v.to_string())).collect(),
            value,
            used: false,
        }
    }

    fn histogram(values: &[u64]) -> Value {
        let h = Histogram::default();
        for &v in values {
            h.record(v);
        }
        let mut s = Snapshot::default();
        h.merge_into(&mut s);
        Value::Histogram(s)
    }

    fn sink(kind: StatsSinkKind, max: Option<u64>) -> StatsdSink {
        StatsdSink::new(StatsSink {
            kind,
            address: "127.0.0.1:8125".parse().unwrap(),
            prefix: "envoy".into(),
            max_bytes_per_datagram: max,
        })
    }

    fn flush(sink: &mut StatsdSink, stats: &[Stat]) -> Vec<String> {
        let mut out = Vec::new();
        sink.flush(stats, &mut |d| {
            out.push(String::from_utf8(d.to_vec()).unwrap());
        });
        out
    }

    /// A counter, a gauge and a histogram of one cluster, at the given values.
    fn cluster(rq: u64, active: i64, times: &[u64]) -> Vec<Stat> {
        let tags = [("envoy_response_code", "200"), ("envoy_cluster_name", "b")];
        vec![
            stat(
                "cluster.b.upstream_rq_200",
                "cluster.upstream_rq",
                &tags,
                Value::Counter(rq),
            ),
            stat(
                "cluster.b.upstream_rq_timeout",
                "cluster.upstream_rq_timeout",
                &tags[1..],
                Value::Counter(0),
            ),
            stat(
                "cluster.b.upstream_rq_active",
                "cluster.upstream_rq_active",
                &tags[1..],
                Value::Gauge(active.into()),
            ),
            stat(
                "cluster.b.upstream_rq_time",
                "cluster.upstream_rq_time",
                &tags[1..],
                histogram(times),
            ),
            stat(
                "listener_manager.worker_0.dispatcher.loop_duration_us",
                "listener_manager.worker_dispatcher.loop_duration_us",
                &[("envoy_worker_id", "0")],
                histogram(times),
            ),
        ]
    }

    #[test]
    fn counters_are_deltas_gauges_values_histograms_timers() {
        let mut s = sink(StatsSinkKind::Statsd, None);
        // Gauge 0 not yet used, unused counter left out, every value its own datagram.
        assert_eq!(
            flush(&mut s, &cluster(3, 0, &[4, 4])),
            [
                "envoy.cluster.b.upstream_rq_200:3|c",
                "envoy.cluster.b.upstream_rq_time:4|ms",
                "envoy.cluster.b.upstream_rq_time:4|ms",
            ]
        );
        assert_eq!(
            flush(&mut s, &cluster(5, 2, &[4, 4, 250])),
            [
                "envoy.cluster.b.upstream_rq_200:2|c",
                "envoy.cluster.b.upstream_rq_active:2|g",
                "envoy.cluster.b.upstream_rq_time:245|ms",
            ]
        );
        // Nothing new: the counter's delta is 0, the used gauge is still sent.
        assert_eq!(
            flush(&mut s, &cluster(5, 0, &[4, 4, 250])),
            [
                "envoy.cluster.b.upstream_rq_200:0|c",
                "envoy.cluster.b.upstream_rq_active:0|g",
            ]
        );
    }

    #[test]
    fn dog_statsd_tags_and_packing() {
        let mut s = sink(StatsSinkKind::DogStatsd, Some(140));
        assert_eq!(
            flush(&mut s, &cluster(3, 1, &[7])),
            [
                "envoy.cluster.upstream_rq:3|c|#envoy.response_code:200,envoy.cluster_name:b\n\
                 envoy.cluster.upstream_rq_active:1|g|#envoy.cluster_name:b",
                "envoy.cluster.upstream_rq_time:7|ms|#envoy.cluster_name:b",
            ]
        );
    }

    fn batches(max: usize, lines: &[&str]) -> Vec<String> {
        let mut out = Vec::new();
        let mut send = |d: &[u8]| out.push(String::from_utf8(d.to_vec()).unwrap());
        let mut b = Batch::new(max);
        for line in lines {
            b.push(line, &mut send);
        }
        b.finish(&mut send);
        out
    }

    #[test]
    fn batching_follows_envoys_writer() {
        let lines = ["a:1|c", "bb:2|c", "c:3|c", "a_line_too_long:1|c", "d:4|g"];
        // No limit: one line each.
        assert_eq!(batches(0, &lines), lines);
        // 12 bytes: `a:1|c\nbb:2|c` is 12, then `c:3|c`; a line of 12 or more goes alone at
        // once, ahead of what is held.
        assert_eq!(
            batches(12, &lines),
            ["a:1|c\nbb:2|c", "a_line_too_long:1|c", "c:3|c\nd:4|g"]
        );
        for max in 1..30 {
            for d in batches(max, &lines) {
                assert!(d.len() <= max || !d.contains('\n'), "{max}: {d:?}");
            }
        }
    }
}
