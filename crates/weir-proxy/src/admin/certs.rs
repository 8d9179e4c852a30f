//! `GET /certs`: every TLS context's certificates with their names and expiry, in Envoy's
//! shape: the listeners' filter chains first (a rotated certificate shows as it is now), then
//! the clusters'.

use std::time::SystemTime;

use serde_json::{Value, json};
use weir_config::{CertInfo, San, TlsCerts};

use crate::access_log::format::rfc3339;
use crate::snapshot::Snapshot;

/// `{"certificates": [{"ca_cert": [...], "cert_chain": [...]}, ...]}`.
pub(crate) fn certs(snapshot: &Snapshot, now: SystemTime) -> Value {
    let (listeners, clusters) = snapshot.tls_contexts();
    let listeners = listeners.into_iter().map(|t| &t.certs);
    let clusters = clusters.into_iter().map(|t| &t.certs);
    let contexts: Vec<Value> = listeners.chain(clusters).map(|c| context(c, now)).collect();
    json!({ "certificates": contexts })
}

fn context(certs: &TlsCerts, now: SystemTime) -> Value {
    // Envoy shows the first certificate of `trusted_ca`.
    let ca = certs.ca.read().unwrap_or_else(|e| e.into_inner());
    let ca: Vec<Value> = ca
        .iter()
        .filter_map(|(path, cas)| Some(detail(path, cas.first()?, now)))
        .collect();
    let chain: Vec<Value> = certs
        .own
        .end_entities()
        .iter()
        .map(|(path, der)| detail(path, der, now))
        .collect();
    json!({ "ca_cert": ca, "cert_chain": chain })
}

fn detail(path: &str, der: &[u8], now: SystemTime) -> Value {
    let Some(info) = CertInfo::parse(der) else {
        return json!({ "path": path });
    };
    // Envoy lists DNS, URI and IP names (not e-mail ones).
    let names: Vec<Value> = info
        .sans
        .iter()
        .filter_map(|san| match san {
            San::Dns(s) => Some(json!({ "dns": s })),
            San::Uri(s) => Some(json!({ "uri": s })),
            San::Ip(ip) => Some(json!({ "ip_address": ip.to_string() })),
            San::Email(_) => None,
        })
        .collect();
    let days = info
        .not_after
        .duration_since(now)
        .map_or(0, |left| left.as_secs() / 86_400);
    json!({
        "path": path,
        "serial_number": info.serial,
        "subject_alt_names": names,
        "days_until_expiration": days.to_string(),
        "valid_from": seconds(info.not_before),
        "expiration_time": seconds(info.not_after),
    })
}

/// `2026-12-07T10:06:01Z`: certificate times are whole seconds.
fn seconds(t: SystemTime) -> String {
    rfc3339(t).replace(".000Z", "Z")
}
