//! `stats_sinks` (Envoy's statsd and DogStatsD sinks, over UDP) and `stats_flush_interval`.

use std::time::Duration;

use crate::bootstrap::{Role, address};
use crate::listener::{Typed, open_typed_config, type_name};
use crate::model::{StatsSink, StatsSinkKind};
use crate::reader::{Cx, Field, Obj, join};

const STATSD_TYPE: &str = "type.googleapis.com/envoy.config.metrics.v3.StatsdSink";
const DOG_STATSD_TYPE: &str = "type.googleapis.com/envoy.config.metrics.v3.DogStatsdSink";

/// Envoy's `stats_flush_interval` when absent.
pub(crate) const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(5);

/// Envoy's default `prefix`.
const DEFAULT_PREFIX: &str = "envoy";

/// `stats_flush_interval`: Envoy's bounds are `[1ms, 300s)`.
pub(crate) fn flush_interval(cx: &mut Cx, f: &Field<'_>) -> Option<Duration> {
    let d = f.duration(cx)?;
    if d < Duration::from_millis(1) || d >= Duration::from_secs(300) {
        cx.error(
            &f.path,
            "stats_flush_interval must be at least 1ms and less than 300s",
        );
        return None;
    }
    Some(d)
}

/// `stats_sinks`: every entry, or `None` when any is in error.
pub(crate) fn read_all(cx: &mut Cx, items: &[Field<'_>]) -> Option<Vec<StatsSink>> {
    let sinks: Vec<Option<StatsSink>> = items.iter().map(|f| sink(cx, f)).collect();
    sinks.into_iter().collect()
}

/// One `stats_sinks[]` entry. Envoy picks the sink by the `typed_config`'s type, so `name`
/// is free.
fn sink(cx: &mut Cx, f: &Field<'_>) -> Option<StatsSink> {
    let mut o = Obj::new(cx, f, &[])?;
    let _name = o.string(cx, "name");
    let typed = o.get(cx, "typed_config");
    o.finish(cx);
    let supported = format!("{STATSD_TYPE} or {DOG_STATSD_TYPE}");
    let Some(typed) = typed else {
        cx.error(
            &join(&f.path, "typed_config"),
            format!("`typed_config` is required: weir picks the sink by its @type ({supported})"),
        );
        return None;
    };
    let Typed {
        url,
        url_path,
        message,
    } = open_typed_config(cx, &typed)?;
    let kind = match type_name(&url) {
        n if n == type_name(STATSD_TYPE) => StatsSinkKind::Statsd,
        n if n == type_name(DOG_STATSD_TYPE) => StatsSinkKind::DogStatsd,
        _ => {
            cx.error(
                &url_path,
                format!("stats sink type `{url}` is not supported yet (weir supports {supported})"),
            );
            return None;
        }
    };
    let mut t = Obj::new(cx, &message, &[])?;
    t.get(cx, "@type");
    let address_field = t.get(cx, "address");
    let tcp = match kind {
        StatsSinkKind::Statsd => t.get(cx, "tcp_cluster_name"),
        StatsSinkKind::DogStatsd => None,
    };
    let prefix = t.string(cx, "prefix");
    let max_bytes = match kind {
        StatsSinkKind::DogStatsd => t.get(cx, "max_bytes_per_datagram"),
        StatsSinkKind::Statsd => None,
    };
    t.finish(cx);
    let max_bytes_per_datagram = match max_bytes {
        Some(m) => match m.u64(cx)? {
            0 => {
                cx.error(&m.path, "max_bytes_per_datagram must be greater than 0");
                return None;
            }
            n => Some(n),
        },
        None => None,
    };
    let address = match (address_field, tcp) {
        (Some(a), None) => address(cx, &a, Role::StatsSink)?,
        (Some(_), Some(tcp)) => {
            cx.error(
                &tcp.path,
                "only one of `address` and `tcp_cluster_name` may be set",
            );
            return None;
        }
        (None, Some(tcp)) => {
            cx.error(
                &tcp.path,
                "statsd over TCP (tcp_cluster_name) is not supported yet: use `address` (UDP)",
            );
            return None;
        }
        (None, None) => {
            cx.error(&join(&message.path, "address"), "`address` is required");
            return None;
        }
    };
    Some(StatsSink {
        kind,
        address,
        prefix: prefix
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| DEFAULT_PREFIX.to_owned()),
        max_bytes_per_datagram,
    })
}
