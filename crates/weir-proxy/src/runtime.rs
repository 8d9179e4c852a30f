//! Envoy's layered runtime: the values `layered_runtime` configures and `POST /runtime_modify`
//! sets, merged into an immutable [`Runtime`] snapshot that workers read without a lock.
//!
//! The admin thread builds a new snapshot on every change and bumps a generation number; each
//! worker compares that number once per wake round (one atomic load) and takes the new
//! snapshot only when it moved, so a request never waits on the admin thread.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use weir_config::{Fraction, LayeredRuntime, RuntimeLayerKind, RuntimeValue};

/// One layer's values.
type Values = BTreeMap<String, RuntimeValue>;

/// The runtime at one moment: each layer's values, and their merge.
#[derive(Debug, Default)]
pub(crate) struct Runtime {
    /// Layer names and values, in order (the admin layer as last modified).
    layers: Vec<(String, Arc<Values>)>,
    /// Each key's value in the last layer that has it.
    merged: HashMap<String, RuntimeValue>,
}

impl Runtime {
    fn new(layers: Vec<(String, Arc<Values>)>) -> Runtime {
        let mut merged = HashMap::new();
        for (_, values) in &layers {
            for (key, value) in values.iter() {
                merged.insert(key.clone(), value.clone());
            }
        }
        Runtime { layers, merged }
    }

    /// A runtime of one static layer, for tests.
    #[cfg(test)]
    pub(crate) fn of(values: &[(&str, &str)]) -> Runtime {
        let values = values
            .iter()
            .map(|(k, v)| (k.to_string(), RuntimeValue::from_text(v)))
            .collect();
        Runtime::new(vec![("static".into(), Arc::new(values))])
    }

    /// Envoy's `getInteger`: the key's value when it is a non-negative number, else `default`.
    pub(crate) fn integer(&self, key: &str, default: u64) -> u64 {
        self.merged
            .get(key)
            .and_then(|v| v.integer)
            .unwrap_or(default)
    }

    /// The share Envoy's `featureEnabled(key, default)` draws against: the key's
    /// `FractionalPercent`, else its number as a percentage (over 100 is all), else `default`.
    pub(crate) fn share(&self, key: &str, default: Fraction) -> Fraction {
        let Some(value) = self.merged.get(key) else {
            return default;
        };
        if let Some(fraction) = value.fraction {
            return fraction;
        }
        match value.integer {
            Some(percent) => Fraction {
                per_million: percent.min(100) as u32 * 10_000,
                denominator: 100,
            },
            None => default,
        }
    }

    /// `GET /runtime`: Envoy's JSON, each key's value in every layer (`""` where a layer lacks
    /// it) and the value in force.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        let mut entries = serde_json::Map::new();
        let mut keys: Vec<&String> = self.merged.keys().collect();
        keys.sort();
        for key in keys {
            let layer_values: Vec<&str> = self
                .layers
                .iter()
                .map(|(_, values)| values.get(key).map_or("", |v| v.raw.as_str()))
                .collect();
            entries.insert(
                key.clone(),
                serde_json::json!({
                    "final_value": self.merged[key].raw,
                    "layer_values": layer_values,
                }),
            );
        }
        let layers: Vec<&str> = self.layers.iter().map(|(name, _)| name.as_str()).collect();
        serde_json::json!({ "entries": entries, "layers": layers })
    }
}

/// Why `/runtime_modify` could not apply.
pub(crate) const NO_ADMIN_LAYER: &str = "No admin layer specified";

/// The runtime as the server keeps it: the layers, the admin layer's values, and the snapshot
/// workers read.
#[derive(Debug)]
pub(crate) struct RuntimeLoader {
    /// Layer names, and the static layers' values (`None` for the admin layer).
    layers: Vec<(String, Option<Arc<Values>>)>,
    /// The admin layer's values (changed only by the admin thread).
    admin: Mutex<Arc<Values>>,
    /// The snapshot in force, and its generation.
    current: Mutex<(u64, Arc<Runtime>)>,
    /// The generation of `current`, read by workers without the lock.
    generation: AtomicU64,
}

impl RuntimeLoader {
    pub(crate) fn new(config: &LayeredRuntime) -> RuntimeLoader {
        let layers: Vec<(String, Option<Arc<Values>>)> = config
            .layers
            .iter()
            .map(|l| {
                let values = match &l.kind {
                    RuntimeLayerKind::Static(values) => Some(Arc::new(values.clone())),
                    RuntimeLayerKind::Admin => None,
                };
                (l.name.clone(), values)
            })
            .collect();
        let admin = Arc::new(Values::new());
        let runtime = Arc::new(Runtime::new(merge(&layers, &admin)));
        RuntimeLoader {
            layers,
            admin: Mutex::new(admin),
            current: Mutex::new((0, runtime)),
            generation: AtomicU64::new(0),
        }
    }

    /// The generation of the snapshot in force (a worker compares it once per wake round).
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The snapshot in force and its generation.
    pub(crate) fn snapshot(&self) -> (u64, Arc<Runtime>) {
        let current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        (current.0, current.1.clone())
    }

    /// `POST /runtime_modify`: sets each key in the admin layer (an empty value removes it) and
    /// publishes the new snapshot. Without an admin layer, nothing changes.
    pub(crate) fn modify(&self, changes: &[(String, String)]) -> Result<(), &'static str> {
        if self.layers.iter().all(|(_, values)| values.is_some()) {
            return Err(NO_ADMIN_LAYER);
        }
        let mut admin = self.admin.lock().unwrap_or_else(|e| e.into_inner());
        let mut values = Values::clone(&admin);
        for (key, value) in changes {
            if value.is_empty() {
                values.remove(key);
            } else {
                values.insert(key.clone(), RuntimeValue::from_text(value));
            }
        }
        *admin = Arc::new(values);
        let runtime = Arc::new(Runtime::new(merge(&self.layers, &admin)));
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        *current = (current.0 + 1, runtime);
        self.generation.store(current.0, Ordering::Release);
        Ok(())
    }
}

/// The layers in order, the admin layer's values in its place.
fn merge(
    layers: &[(String, Option<Arc<Values>>)],
    admin: &Arc<Values>,
) -> Vec<(String, Arc<Values>)> {
    layers
        .iter()
        .map(|(name, values)| {
            (
                name.clone(),
                values.clone().unwrap_or_else(|| admin.clone()),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_config::RuntimeLayer;

    fn loader(static_values: &[(&str, &str)], admin: bool) -> RuntimeLoader {
        let values = static_values
            .iter()
            .map(|(k, v)| (k.to_string(), RuntimeValue::from_text(v)))
            .collect();
        let mut layers = vec![RuntimeLayer {
            name: "base".into(),
            kind: RuntimeLayerKind::Static(values),
        }];
        if admin {
            layers.push(RuntimeLayer {
                name: "admin".into(),
                kind: RuntimeLayerKind::Admin,
            });
        }
        RuntimeLoader::new(&LayeredRuntime { layers })
    }

    const HALF: Fraction = Fraction {
        per_million: 500_000,
        denominator: 100,
    };

    #[test]
    fn a_later_layer_overrides_and_an_empty_value_removes_the_override() {
        let l = loader(&[("a", "10"), ("b", "x")], true);
        assert_eq!(l.snapshot().1.integer("a", 7), 10);
        assert_eq!(l.generation(), 0);
        l.modify(&[("a".into(), "20".into())]).unwrap();
        let (generation, runtime) = l.snapshot();
        assert_eq!((generation, l.generation()), (1, 1));
        assert_eq!(runtime.integer("a", 7), 20);
        assert_eq!(runtime.integer("b", 7), 7, "not a number: the default");
        l.modify(&[("a".into(), String::new())]).unwrap();
        assert_eq!(l.snapshot().1.integer("a", 7), 10);
        assert_eq!(runtime.integer("a", 7), 20, "a snapshot never changes");
    }

    #[test]
    fn without_an_admin_layer_nothing_can_be_modified() {
        let l = loader(&[("a", "10")], false);
        assert_eq!(l.modify(&[("a".into(), "1".into())]), Err(NO_ADMIN_LAYER));
        assert_eq!(l.generation(), 0);
        let empty = RuntimeLoader::new(&LayeredRuntime::default());
        assert_eq!(
            empty.modify(&[("a".into(), "1".into())]),
            Err(NO_ADMIN_LAYER)
        );
    }

    #[test]
    fn a_share_is_a_fraction_or_a_percentage_or_the_default() {
        let l = loader(
            &[
                ("pct", "25"),
                ("over", "250"),
                ("frac", "{numerator: 5, denominator: TEN_THOUSAND}"),
                ("word", "many"),
            ],
            false,
        );
        let r = l.snapshot().1;
        assert_eq!(r.share("pct", HALF).per_million, 250_000);
        assert_eq!(r.share("over", HALF).per_million, 1_000_000);
        assert_eq!(r.share("frac", HALF).per_million, 500);
        assert_eq!(r.share("word", HALF), HALF);
        assert_eq!(r.share("absent", HALF), HALF);
    }

    #[test]
    fn json_lists_every_layer_value() {
        let l = loader(&[("a", "10"), ("b", "x")], true);
        l.modify(&[("a".into(), "20".into()), ("c".into(), "y".into())])
            .unwrap();
        let json = l.snapshot().1.to_json();
        assert_eq!(
            json,
            serde_json::json!({
                "layers": ["base", "admin"],
                "entries": {
                    "a": {"layer_values": ["10", "20"], "final_value": "20"},
                    "b": {"layer_values": ["x", ""], "final_value": "x"},
                    "c": {"layer_values": ["", "y"], "final_value": "y"},
                }
            })
        );
    }
}
