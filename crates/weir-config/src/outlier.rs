//! A cluster's `outlier_detection` (`config.cluster.v3.OutlierDetection`) with Envoy's
//! defaults.

use std::time::Duration;

use crate::model::OutlierDetection;
use crate::reader::{Cx, Field, Obj, join};

/// `outlier_detection`: `None` when absent (no detection, as in Envoy).
pub(crate) fn read(cx: &mut Cx, f: &Field<'_>) -> Option<OutlierDetection> {
    let mut o = Obj::new(cx, f, &["monitors"])?;
    let d = OutlierDetection::default();
    let mut ok = true;
    let mut count =
        |cx: &mut Cx, o: &mut Obj<'_>, name: &'static str, default: u32, max: u32| match o
            .get(cx, name)
        {
            Some(v) => match v.u32(cx) {
                Some(n) if n <= max => n,
                Some(_) => {
                    cx.error(&v.path, format!("{name} must be at most {max}"));
                    ok = false;
                    default
                }
                None => {
                    ok = false;
                    default
                }
            },
            None => default,
        };
    let any = u32::MAX;
    let consecutive_5xx = count(cx, &mut o, "consecutive_5xx", d.consecutive_5xx, any);
    let gateway = "consecutive_gateway_failure";
    let consecutive_gateway_failure =
        count(cx, &mut o, gateway, d.consecutive_gateway_failure, any);
    let local = "consecutive_local_origin_failure";
    let consecutive_local_origin_failure =
        count(cx, &mut o, local, d.consecutive_local_origin_failure, any);
    let max_ejection_percent = count(cx, &mut o, "max_ejection_percent", 10, 100);
    let mut enforcing = |cx: &mut Cx, o: &mut Obj<'_>, name: &'static str, default: u32| {
        count(cx, o, name, default, 100)
    };
    let enforcing_consecutive_5xx = enforcing(cx, &mut o, "enforcing_consecutive_5xx", 100);
    let enforcing_consecutive_gateway_failure =
        enforcing(cx, &mut o, "enforcing_consecutive_gateway_failure", 0);
    let enforcing_consecutive_local_origin_failure = enforcing(
        cx,
        &mut o,
        "enforcing_consecutive_local_origin_failure",
        100,
    );
    let enforcing_success_rate = enforcing(cx, &mut o, "enforcing_success_rate", 100);
    let enforcing_local_origin_success_rate =
        enforcing(cx, &mut o, "enforcing_local_origin_success_rate", 100);
    let enforcing_failure_percentage = enforcing(cx, &mut o, "enforcing_failure_percentage", 0);
    let enforcing_failure_percentage_local_origin =
        enforcing(cx, &mut o, "enforcing_failure_percentage_local_origin", 0);
    let success_rate_minimum_hosts = count(cx, &mut o, "success_rate_minimum_hosts", 5, any);
    let success_rate_request_volume = count(cx, &mut o, "success_rate_request_volume", 100, any);
    let success_rate_stdev_factor = count(cx, &mut o, "success_rate_stdev_factor", 1900, any);
    let failure_percentage_threshold = count(cx, &mut o, "failure_percentage_threshold", 85, 100);
    let failure_percentage_minimum_hosts =
        count(cx, &mut o, "failure_percentage_minimum_hosts", 5, any);
    let failure_percentage_request_volume =
        count(cx, &mut o, "failure_percentage_request_volume", 50, any);
    let duration = |cx: &mut Cx, o: &mut Obj<'_>, name: &'static str, default: Duration| match o
        .get(cx, name)
    {
        Some(v) => match v.duration(cx) {
            Some(t) if t.is_zero() && name != "max_ejection_time_jitter" => {
                cx.error(&v.path, format!("{name} must be greater than 0s"));
                None
            }
            t => t,
        },
        None => Some(default),
    };
    let interval = duration(cx, &mut o, "interval", d.interval);
    let base_ejection_time = duration(cx, &mut o, "base_ejection_time", d.base_ejection_time);
    let max_ejection_time = duration(cx, &mut o, "max_ejection_time", d.max_ejection_time);
    let max_ejection_time_jitter = duration(cx, &mut o, "max_ejection_time_jitter", Duration::ZERO);
    let split = o.flag(cx, "split_external_local_origin_errors");
    let always_eject_one_host = o.flag(cx, "always_eject_one_host");
    // Only active health checking (not yet in weir) returns a host early; accepted.
    o.flag(cx, "successful_active_health_check_uneject_host");
    ok &= o.finish(cx);
    let (base, max) = (base_ejection_time?, max_ejection_time?);
    if max < base {
        cx.error(
            &join(f.path.as_str(), "max_ejection_time"),
            "max_ejection_time cannot be smaller than base_ejection_time",
        );
        return None;
    }
    let detection = OutlierDetection {
        consecutive_5xx,
        consecutive_gateway_failure,
        consecutive_local_origin_failure,
        interval: interval?,
        base_ejection_time: base,
        max_ejection_time: max,
        max_ejection_time_jitter: max_ejection_time_jitter?,
        max_ejection_percent,
        enforcing_consecutive_5xx,
        enforcing_consecutive_gateway_failure,
        enforcing_consecutive_local_origin_failure,
        enforcing_success_rate,
        enforcing_local_origin_success_rate,
        enforcing_failure_percentage,
        enforcing_failure_percentage_local_origin,
        success_rate_minimum_hosts,
        success_rate_request_volume,
        success_rate_stdev_factor,
        failure_percentage_threshold,
        failure_percentage_minimum_hosts,
        failure_percentage_request_volume,
        split_external_local_origin_errors: split?,
        always_eject_one_host: always_eject_one_host?,
    };
    ok.then_some(detection)
}
