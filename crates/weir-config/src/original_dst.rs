//! An `ORIGINAL_DST` cluster's `original_dst_lb_config` and `cleanup_interval`.

use std::time::Duration;

use crate::model::OriginalDst;
use crate::reader::{Cx, Obj};

/// Envoy's default header and cleanup interval.
const DEFAULT_HEADER: &str = "x-envoy-original-dst-host";
const DEFAULT_CLEANUP: Duration = Duration::from_secs(5);

/// Reads both fields of the cluster `o` (they are read for every cluster, and matter for
/// `ORIGINAL_DST` ones).
pub(crate) fn read(cx: &mut Cx, o: &mut Obj<'_>) -> Option<OriginalDst> {
    let cleanup_interval = match o.get(cx, "cleanup_interval") {
        Some(f) => match f.duration(cx) {
            Some(d) if d.is_zero() => {
                cx.error(&f.path, "cleanup_interval must be greater than 0s");
                None
            }
            d => d,
        },
        None => Some(DEFAULT_CLEANUP),
    };
    let mut config = OriginalDst {
        use_http_header: false,
        http_header_name: DEFAULT_HEADER.to_owned(),
        upstream_port_override: None,
        cleanup_interval: cleanup_interval?,
    };
    let Some(f) = o.get(cx, "original_dst_lb_config") else {
        return Some(config);
    };
    let mut lb = Obj::new(cx, &f, &["metadata_key"])?;
    let use_header = lb.flag(cx, "use_http_header");
    let name = match lb.get(cx, "http_header_name") {
        Some(n) => crate::headers::name(cx, &n, crate::headers::NameUse::Match),
        None => Some(DEFAULT_HEADER.to_owned()),
    };
    let port = match lb.get(cx, "upstream_port_override") {
        Some(p) => p.u32(cx).and_then(|n| match u16::try_from(n) {
            Ok(n) if n > 0 => Some(Some(n)),
            _ => {
                cx.error(&p.path, "upstream_port_override must be a port (1..=65535)");
                None
            }
        }),
        None => Some(None),
    };
    let ok = lb.finish(cx);
    config.use_http_header = use_header?;
    config.http_header_name = name?;
    config.upstream_port_override = port?;
    ok.then_some(config)
}
