//! `overload_manager`: the one resource monitor weir has, Envoy's global limit on downstream
//! connections.

use crate::model::Overload;
use crate::reader::{Cx, Field, Obj, join};

/// `config.overload.v3.OverloadManager` fields weir does not support yet.
const OVERLOAD_MANAGER_ENVOY: &[&str] = &[
    "refresh_interval",
    "actions",
    "loadshed_points",
    "buffer_factory_config",
];

/// The `@type` of the downstream connections monitor's `typed_config`.
const DOWNSTREAM_CONNECTIONS_TYPE: &str = "type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig";

/// Reads `overload_manager`.
pub(crate) fn overload_manager(cx: &mut Cx, f: &Field<'_>) -> Option<Overload> {
    let mut o = Obj::new(cx, f, OVERLOAD_MANAGER_ENVOY)?;
    let mut overload = Some(Overload::default());
    for monitor in o.list(cx, "resource_monitors") {
        match (resource_monitor(cx, &monitor), &mut overload) {
            (Some(max), Some(ov)) => {
                if ov.max_active_downstream_connections.is_some() {
                    cx.error(
                        &monitor.path,
                        "the downstream connections monitor is configured twice",
                    );
                }
                ov.max_active_downstream_connections = Some(max);
            }
            _ => overload = None,
        }
    }
    o.finish(cx);
    overload
}

/// One `resource_monitors[]` entry: only `envoy.resource_monitors.global_downstream_max_connections`.
fn resource_monitor(cx: &mut Cx, f: &Field<'_>) -> Option<u64> {
    let mut o = Obj::new(cx, f, &[])?;
    let _name = o.required_string(cx, "name");
    let typed = o.required(cx, "typed_config");
    o.finish(cx);
    let typed = crate::listener::open_typed_config(cx, &typed?)?;
    let mut t = Obj::new(cx, &typed.message, &[])?;
    t.get(cx, "@type");
    let max = t.get(cx, "max_active_downstream_connections");
    t.finish(cx);
    let url = typed.url;
    if url != DOWNSTREAM_CONNECTIONS_TYPE {
        cx.error(
            &typed.url_path,
            format!("resource monitor `{url}` is not supported yet (weir supports {DOWNSTREAM_CONNECTIONS_TYPE})"),
        );
        return None;
    }
    let Some(max) = max else {
        cx.error(
            &join(&typed.message.path, "max_active_downstream_connections"),
            "`max_active_downstream_connections` is required",
        );
        return None;
    };
    match max.u64(cx)? {
        0 => {
            cx.error(
                &max.path,
                "max_active_downstream_connections must be at least 1",
            );
            None
        }
        n => Some(n),
    }
}
