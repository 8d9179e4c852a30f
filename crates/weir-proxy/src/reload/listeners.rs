//! A reload's listeners, known by name (as Envoy's LDS knows them): a name the config in
//! force has is the same listener, changed or not; a new name is a listener to bind; a name
//! that is gone, a listener to remove. A listener whose address changed is removed and added
//! again (its socket cannot move).

use std::net::SocketAddr;
use std::sync::Arc;

use weir_config::Bootstrap;

use crate::network::listener::bind_workers;
use crate::snapshot::{ListenerFrom, ListenerRuntime};
use crate::worker::ListenerSlot;

/// Where each listener of the new config comes from, and the names of those removed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Plan {
    pub(crate) from: Vec<ListenerFrom>,
    pub(crate) removed: Vec<String>,
}

/// Pairs `new`'s listeners with `old`'s by name.
pub(crate) fn plan(old: &Bootstrap, new: &Bootstrap) -> Plan {
    let doc = |b: &Bootstrap, i: usize| {
        (b.source)
            .pointer(&format!("/static_resources/listeners/{i}"))
            .cloned()
    };
    let from = (new.listeners.iter().enumerate())
        .map(
            |(j, l)| match old.listeners.iter().position(|o| o.name == l.name) {
                Some(i) if old.listeners[i].address != l.address => ListenerFrom::Added,
                Some(i) if doc(old, i) == doc(new, j) => ListenerFrom::Same(i),
                Some(i) => ListenerFrom::Changed(i),
                None => ListenerFrom::Added,
            },
        )
        .collect::<Vec<_>>();
    let kept = |i: usize| {
        from.iter()
            .any(|f| matches!(f, ListenerFrom::Same(k) | ListenerFrom::Changed(k) if *k == i))
    };
    let removed = (old.listeners.iter().enumerate())
        .filter(|(i, _)| !kept(*i))
        .map(|(_, l)| l.name.clone())
        .collect();
    Plan { from, removed }
}

/// The sockets of the listeners a reload adds: per added listener, its number, its bound
/// address and one slot per worker.
pub(crate) struct Bound {
    pub(crate) listeners: Vec<(usize, SocketAddr, Vec<ListenerSlot>)>,
}

impl Bound {
    /// Binds each of `added` (listener `j` of the new config) once per worker; an error
    /// names the listener's config path, and the sockets bound so far close. `in_force`:
    /// the listeners in force, whose addresses are taken until a reload has removed them.
    pub(crate) fn bind(
        added: &[(usize, Arc<ListenerRuntime>)],
        concurrency: usize,
        in_force: &[(String, SocketAddr)],
    ) -> Result<Bound, (String, String)> {
        let mut listeners = Vec::with_capacity(added.len());
        for (j, runtime) in added {
            let path = format!("static_resources.listeners[{j}].address");
            if let Some((holder, _)) = in_force.iter().find(|(_, a)| *a == runtime.address) {
                let why = format!(
                    "listener {} on {}: listener {holder} of the config in force holds it (an address moves to another listener in a reload after the one that removes its holder)",
                    runtime.name, runtime.address
                );
                return Err((path, why));
            }
            let (address, slots) =
                bind_workers(runtime, concurrency).map_err(|e| (path, e.to_string()))?;
            listeners.push((runtime.slot, address, slots));
        }
        Ok(Bound { listeners })
    }

    /// Each added listener's number and bound address.
    pub(crate) fn addresses(&self) -> Vec<(usize, SocketAddr)> {
        (self.listeners.iter())
            .map(|(slot, address, _)| (*slot, *address))
            .collect()
    }

    /// Duplicates of the added listeners' sockets, for a weir that takes over.
    pub(crate) fn share(&self) -> std::io::Result<Vec<crate::hot_restart::Sockets>> {
        (self.listeners.iter())
            .filter_map(|(_, _, slots)| Some((&slots.first()?.runtime.name, slots)))
            .map(|(name, slots)| crate::network::listener::share(name, slots.iter()))
            .collect()
    }

    /// The slots per worker, in worker order.
    pub(crate) fn per_worker(self, workers: usize) -> Vec<Vec<ListenerSlot>> {
        let mut out: Vec<Vec<ListenerSlot>> = (0..workers).map(|_| Vec::new()).collect();
        for (_, _, slots) in self.listeners {
            for (worker, slot) in out.iter_mut().zip(slots) {
                worker.push(slot);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::{Plan, plan};
    use crate::snapshot::ListenerFrom::{Added, Changed, Same};

    fn config(listeners: &[(&str, u16, &str)]) -> weir_config::Bootstrap {
        let mut yaml = String::from("static_resources:\n  listeners:\n");
        for (name, port, prefix) in listeners {
            yaml.push_str(&format!(
                "  - name: {name}\n    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}\n    filter_chains:\n    - filters:\n      - name: envoy.filters.network.http_connection_manager\n        typed_config:\n          \"@type\": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager\n          stat_prefix: {prefix}\n          route_config: {{ virtual_hosts: [ {{ name: all, domains: [\"*\"], routes: [ {{ match: {{ prefix: / }}, direct_response: {{ status: 200 }} }} ] }} ] }}\n          http_filters: [ {{ name: envoy.filters.http.router, typed_config: {{ \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }} }} ]\n"
            ));
        }
        weir_config::parse(&yaml).expect("valid")
    }

    #[test]
    fn listeners_are_paired_by_name() {
        let old = config(&[("a", 10001, "a"), ("b", 10002, "b"), ("c", 10003, "c")]);
        let new = config(&[
            ("c", 10003, "c"),
            ("a", 10001, "a2"),
            ("d", 10004, "d"),
            ("b", 10005, "b"),
        ]);
        assert_eq!(
            plan(&old, &new),
            Plan {
                from: vec![Same(2), Changed(0), Added, Added],
                removed: vec!["b".into()],
            },
            "b moved: removed and added again"
        );
    }
}
