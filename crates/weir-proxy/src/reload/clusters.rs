//! A reload's clusters, known by name (as Envoy's CDS knows them): a name the config in force
//! has keeps its number when its document is the same, or when only the endpoints of a
//! `STATIC` cluster changed (they go through the host-set update path, as DNS answers do);
//! any other change replaces it (another number; the old one is retired, as a removed
//! cluster's is); a new name gets a number: one that nothing reaches any more, or the next
//! (see `snapshot/clusters.rs`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use weir_config::{Bootstrap, Discovery};

use super::diff::only_endpoints;
use crate::snapshot::{ClusterEntry, Clusters, Snapshot};
use crate::upstream::host_set::HostSpec;

/// What a reload does with clusters.
#[derive(Debug)]
pub(crate) struct Plan {
    /// The new config's clusters under their numbers.
    pub(crate) clusters: Clusters,
    /// The clusters new to it (added, or replacing a changed one), in number order.
    pub(crate) added: Vec<Arc<ClusterEntry>>,
    /// The numbers it retires (removed or replaced clusters).
    pub(crate) retired: Vec<usize>,
    /// Static clusters that keep their numbers with new endpoints.
    pub(crate) endpoints: Vec<(usize, Vec<HostSpec>)>,
    /// By name, for what the reload says it applied.
    pub(crate) names: Names,
}

/// Cluster names by what became of them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Names {
    pub(crate) added: Vec<String>,
    pub(crate) removed: Vec<String>,
    /// Replaced under a new number.
    pub(crate) changed: Vec<String>,
    /// Their endpoints changed.
    pub(crate) endpoints: Vec<String>,
}

impl Names {
    pub(crate) fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
            && self.endpoints.is_empty()
    }
}

/// Cluster `i`'s document in `b`.
fn doc(b: &Bootstrap, i: usize) -> Option<&serde_json::Value> {
    (b.source).pointer(&format!("/static_resources/clusters/{i}"))
}

/// Pairs `new`'s clusters with those of `old` (the snapshot in force) by name; a cluster
/// new to it takes a retired number that `reusable` allows, or the next.
pub(crate) fn plan(
    old: &Snapshot,
    new: &Bootstrap,
    reusable: impl Fn(&ClusterEntry) -> bool,
) -> Plan {
    let is_static = |c: &weir_config::Cluster| matches!(c.discovery, Discovery::Static);
    let now = Instant::now();
    let mut all = old.clusters.all.clone();
    let mut in_force = vec![false; all.len()];
    for &n in &old.clusters.ids {
        in_force[n] = true;
    }
    let mut free = (all.iter())
        .filter(|c| !in_force[c.number] && reusable(c))
        .map(|c| c.number)
        .collect::<Vec<_>>()
        .into_iter();
    let by_name: HashMap<&str, usize> = (old.bootstrap.clusters.iter().enumerate())
        .map(|(i, c)| (c.name.as_str(), i))
        .collect();
    let (mut ids, mut added, mut endpoints) = (Vec::new(), Vec::new(), Vec::new());
    let mut names = Names::default();
    for (j, cluster) in new.clusters.iter().enumerate() {
        let kept = match by_name.get(cluster.name.as_str()) {
            Some(&i) => {
                let (was, is) = (doc(&old.bootstrap, i), doc(new, j));
                let endpoints_only = is_static(&old.bootstrap.clusters[i])
                    && is_static(cluster)
                    && was.zip(is).is_some_and(|(o, n)| only_endpoints(o, n));
                if was == is {
                    Some(i)
                } else if endpoints_only {
                    let specs = cluster.endpoints.iter().map(HostSpec::of).collect();
                    endpoints.push((old.clusters.number(i), specs));
                    names.endpoints.push(cluster.name.clone());
                    Some(i)
                } else {
                    names.changed.push(cluster.name.clone());
                    None
                }
            }
            None => {
                names.added.push(cluster.name.clone());
                None
            }
        };
        match kept {
            Some(i) => ids.push(old.clusters.number(i)),
            None => {
                let number = free.next().unwrap_or(all.len());
                let entry = ClusterEntry::new(cluster.clone(), number, now);
                ids.push(number);
                added.push(entry.clone());
                match all.get_mut(number) {
                    Some(slot) => *slot = entry,
                    None => all.push(entry),
                }
            }
        }
    }
    let new_names: HashSet<&str> = new.clusters.iter().map(|c| c.name.as_str()).collect();
    names.removed = (old.bootstrap.clusters.iter())
        .filter(|o| !new_names.contains(o.name.as_str()))
        .map(|o| o.name.clone())
        .collect();
    let clusters = Clusters { all, ids };
    Plan {
        retired: old.retired_by(&clusters),
        clusters,
        added,
        endpoints,
        names,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::plan;
    use crate::access_log::AccessLogs;
    use crate::snapshot::Snapshot;

    fn snapshot(clusters: &[(&str, &str)]) -> Snapshot {
        let mut yaml = String::from("static_resources:\n  clusters:\n");
        for (name, timeout) in clusters {
            yaml.push_str(&format!(
                "  - name: {name}\n    connect_timeout: {timeout}\n"
            ));
        }
        let logs = AccessLogs::new(1, Duration::from_secs(1));
        Snapshot::new(weir_config::parse(&yaml).expect("valid"), &logs.admin()).expect("snapshot")
    }

    #[test]
    fn clusters_are_paired_by_name_whatever_their_order() {
        let old = snapshot(&[("a", "1s"), ("b", "1s"), ("c", "1s")]);
        let new = snapshot(&[("c", "1s"), ("d", "1s"), ("a", "2s")]);
        let plan = plan(&old, &new.bootstrap, |_| false);
        // c keeps 2; d is new (3); a changed: a new number (4) and its old one retires.
        assert_eq!(plan.clusters.ids, [2, 3, 4]);
        assert_eq!(plan.retired, [0, 1]);
        let added: Vec<_> = plan.added.iter().map(|c| c.number).collect();
        assert_eq!(added, [3, 4]);
        assert_eq!(plan.names.added, ["d"]);
        assert_eq!(plan.names.removed, ["b"]);
        assert_eq!(plan.names.changed, ["a"]);
        assert!(plan.names.endpoints.is_empty());
        assert_eq!(plan.clusters.all.len(), 5, "every number stays");
    }
}
