//! `GET /config_dump`: the loaded configuration in Envoy's `admin.v3.ConfigDump` shape.
//!
//! weir's configuration is the static bootstrap, so the dump is that document (as loaded,
//! YAML turned JSON) split the way Envoy splits it: the whole bootstrap, then the static
//! clusters and listeners each with its `@type` and `last_updated`. Inline route
//! configurations stay inside their listeners, as in Envoy (`RoutesConfigDump` lists RDS
//! ones, and weir has none). The listener and cluster dumps carry `version_info`, the config
//! version in force (1 at startup, one more per applied reload), where Envoy puts the
//! version of the last LDS and CDS update it applied.

use serde_json::{Value, json};

const ADMIN: &str = "type.googleapis.com/envoy.admin.v3.";

/// The dump, as `{"configs": [...]}`.
pub(crate) fn dump(bootstrap: &weir_config::Bootstrap, loaded: &str, version: u64) -> Value {
    let source = &bootstrap.source;
    let resources = &source["static_resources"];
    let with_type = |item: &Value, kind: &str| {
        let mut item = item.clone();
        if let Some(object) = item.as_object_mut() {
            object.insert(
                "@type".to_string(),
                Value::from(format!("type.googleapis.com/envoy.config.{kind}")),
            );
        }
        item
    };
    let list = |key: &str| -> Vec<Value> { resources[key].as_array().cloned().unwrap_or_default() };
    let clusters: Vec<Value> = list("clusters")
        .iter()
        .map(|c| json!({"cluster": with_type(c, "cluster.v3.Cluster"), "last_updated": loaded}))
        .collect();
    let listeners: Vec<Value> = list("listeners")
        .iter()
        .map(|l| json!({"listener": with_type(l, "listener.v3.Listener"), "last_updated": loaded}))
        .collect();
    json!({
        "configs": [
            {
                "@type": format!("{ADMIN}BootstrapConfigDump"),
                "bootstrap": source,
                "last_updated": loaded,
            },
            {
                "@type": format!("{ADMIN}ClustersConfigDump"),
                "version_info": version.to_string(),
                "static_clusters": clusters,
            },
            {
                "@type": format!("{ADMIN}ListenersConfigDump"),
                "version_info": version.to_string(),
                "static_listeners": listeners,
            },
            { "@type": format!("{ADMIN}RoutesConfigDump") },
        ]
    })
}
