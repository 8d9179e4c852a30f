//! What changed between two config documents, path by path: whether a filter chain changed
//! only its routes (its connections can follow) and a cluster only its endpoints (it keeps
//! its number); what changed beside listeners and clusters is refused by its path, so the
//! refusal can say what to undo.

use serde_json::Value;

/// Every path where `old` and `new` differ: objects are compared key by key, arrays item by
/// item when their lengths agree; anything else that differs is one path.
pub(crate) fn differences(old: &Value, new: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk(old, new, &mut String::new(), &mut out);
    out
}

fn walk(old: &Value, new: &Value, path: &mut String, out: &mut Vec<String>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let keys = a.keys().chain(b.keys().filter(|k| !a.contains_key(*k)));
            for key in keys {
                let (x, y) = (a.get(key), b.get(key));
                if x == y {
                    continue;
                }
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                match (x, y) {
                    (Some(x), Some(y)) => walk(x, y, path, out),
                    _ => out.push(path.clone()),
                }
                path.truncate(len);
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                if x != y {
                    let len = path.len();
                    path.push_str(&format!("[{i}]"));
                    walk(x, y, path, out);
                    path.truncate(len);
                }
            }
        }
        _ if old != new => out.push(path.clone()),
        _ => {}
    }
}

/// One step of a path: a key, or an index.
#[derive(Debug, PartialEq, Eq)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// A path's steps (`a.b[2].c` is `a`, `b`, 2, `c`).
fn steps(path: &str) -> Vec<Step<'_>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (key, mut rest) = part.split_once('[').map_or((part, ""), |(k, r)| (k, r));
        if !key.is_empty() {
            out.push(Step::Key(key));
        }
        while let Some((index, after)) = rest.split_once(']') {
            out.push(index.parse().map_or(Step::Key(index), Step::Index));
            rest = after.strip_prefix('[').unwrap_or(after);
        }
    }
    out
}

/// Two cluster documents differ in their `load_assignment.endpoints` only.
pub(crate) fn only_endpoints(old: &Value, new: &Value) -> bool {
    use Step::Key;
    differences(old, new).iter().all(|path| {
        matches!(
            steps(path).as_slice(),
            [Key("load_assignment"), Key("endpoints"), ..]
        )
    })
}

/// Two filter chain documents differ in their connection managers' route tables only.
pub(crate) fn only_routes(old: &Value, new: &Value) -> bool {
    use Step::{Index, Key};
    differences(old, new).iter().all(|path| {
        matches!(
            steps(path).as_slice(),
            [
                Key("filters"),
                Index(_),
                Key("typed_config"),
                Key("route_config"),
                ..
            ]
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn differences_name_each_changed_path() {
        let old = json!({"a": {"b": 1, "c": [1, 2, 3], "d": "x"}, "e": [1]});
        let new = json!({"a": {"b": 2, "c": [1, 5, 3], "f": true}, "e": [1, 2]});
        assert_eq!(
            differences(&old, &new),
            ["a.b", "a.c[1]", "a.d", "a.f", "e"]
        );
        assert!(differences(&old, &old).is_empty());
    }

    #[test]
    fn only_endpoints_is_what_a_cluster_keeps_its_number_through() {
        let cluster = |timeout: &str, port: u16| {
            json!({"name": "c", "connect_timeout": timeout, "load_assignment": {"cluster_name": "c",
                "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"port_value": port}}}}]}]}})
        };
        assert!(only_endpoints(&cluster("1s", 1), &cluster("1s", 2)));
        assert!(only_endpoints(&cluster("1s", 1), &cluster("1s", 1)));
        assert!(!only_endpoints(&cluster("1s", 1), &cluster("2s", 1)));
        let mut policy = cluster("1s", 1);
        policy["load_assignment"]["policy"] = json!({"overprovisioning_factor": 100});
        assert!(!only_endpoints(&cluster("1s", 1), &policy));
    }

    #[test]
    fn only_a_route_table_change_lets_connections_follow() {
        let chain = |prefix: &str, cluster: &str| {
            json!({"filters": [{"typed_config": {"stat_prefix": prefix,
                "route_config": {"virtual_hosts": [{"routes": [{"route": {"cluster": cluster}}]}]}}}]})
        };
        assert!(only_routes(&chain("a", "x"), &chain("a", "y")));
        assert!(only_routes(&chain("a", "x"), &chain("a", "x")));
        assert!(!only_routes(&chain("a", "x"), &chain("b", "y")));
        let mut tls = chain("a", "x");
        tls["transport_socket"] = json!({"name": "tls"});
        assert!(!only_routes(&chain("a", "x"), &tls));
    }
}
