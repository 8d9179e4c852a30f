//! A route's `hash_policy[]`: what a hashing load balancer (ring hash, Maglev) hashes.

use crate::model::{HashKind, HashPolicy};
use crate::reader::{Cx, Field, Obj};

/// Reads `hash_policy` from a route action (empty when absent).
pub(crate) fn hash_policies(cx: &mut Cx, o: &mut Obj<'_>) -> Option<Vec<HashPolicy>> {
    let mut policies = Some(Vec::new());
    for f in o.list(cx, "hash_policy") {
        match (hash_policy(cx, &f), &mut policies) {
            (Some(p), Some(all)) => all.push(p),
            _ => policies = None,
        }
    }
    policies
}

fn hash_policy(cx: &mut Cx, f: &Field<'_>) -> Option<HashPolicy> {
    let mut o = Obj::new(cx, f, &["filter_state"])?;
    let header = o.get(cx, "header");
    let cookie = o.get(cx, "cookie");
    let connection = o.get(cx, "connection_properties");
    let query = o.get(cx, "query_parameter");
    let terminal = o.flag(cx, "terminal");
    let kinds = [&header, &cookie, &connection, &query]
        .iter()
        .filter(|k| k.is_some())
        .count();
    let kind = match (header, cookie, connection, query) {
        _ if kinds > 1 => {
            cx.error(o.path(), "a hash policy has exactly one of header, cookie, connection_properties, query_parameter and filter_state");
            None
        }
        (Some(h), ..) => {
            let mut ho = Obj::new(cx, &h, &["regex_rewrite"])?;
            let name = ho.required_string(cx, "header_name");
            ho.finish(cx);
            name.map(|n| HashKind::Header {
                name: n.to_ascii_lowercase(),
            })
        }
        (_, Some(c), ..) => {
            let mut co = Obj::new(cx, &c, &["attributes"])?;
            let name = co.required_string(cx, "name");
            let ttl = match co.get(cx, "ttl") {
                Some(t) => t.duration(cx).map(Some),
                None => Some(None),
            };
            let path = co.string(cx, "path").unwrap_or_default();
            co.finish(cx);
            Some(HashKind::Cookie {
                name: name?,
                ttl: ttl?,
                path,
            })
        }
        (_, _, Some(p), _) => {
            let mut po = Obj::new(cx, &p, &[])?;
            let source_ip = po.flag(cx, "source_ip");
            po.finish(cx);
            // `source_ip: false` hashes nothing (as in Envoy, the policy then never applies).
            Some(HashKind::SourceIp {
                enabled: source_ip?,
            })
        }
        (_, _, _, Some(q)) => {
            let mut qo = Obj::new(cx, &q, &[])?;
            let name = qo.required_string(cx, "name");
            qo.finish(cx);
            name.map(|name| HashKind::QueryParameter { name })
        }
        (None, None, None, None) => {
            if f.value.get("filter_state").is_none() {
                cx.error(o.path(), "a hash policy needs one of header, cookie, connection_properties and query_parameter");
            }
            None
        }
    };
    o.finish(cx);
    Some(HashPolicy {
        kind: kind?,
        terminal: terminal?,
    })
}
