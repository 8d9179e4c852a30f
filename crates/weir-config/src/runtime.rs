//! `layered_runtime`: Envoy's runtime, key → value layers where a later layer overrides an
//! earlier one. weir has static layers (values in the config) and the admin layer (values set
//! by `POST /runtime_modify`); a value reads as Envoy reads it ([`RuntimeValue`]).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::model::Fraction;
use crate::reader::{Cx, Field, Obj, describe};

/// `config.bootstrap.v3.RuntimeLayer` fields weir does not support yet.
const LAYER_ENVOY: &[&str] = &["disk_layer", "rtds_layer"];

/// `layered_runtime`. Without it Envoy 1.40 runs with no layer at all (so `/runtime_modify`
/// answers 503 "No admin layer specified"), and so does weir.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LayeredRuntime {
    /// `layers[]`, in order: a key's value is the one in the last layer that has it.
    pub layers: Vec<RuntimeLayer>,
}

/// One `layers[]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeLayer {
    /// `name`, unique among the layers (`/runtime` lists them by it).
    pub name: String,
    /// What the layer holds.
    pub kind: RuntimeLayerKind,
}

/// Where a layer's values come from.
#[derive(Debug, Clone, PartialEq)]
pub enum RuntimeLayerKind {
    /// `static_layer`: nested maps flattened to dotted keys, as Envoy does.
    Static(BTreeMap<String, RuntimeValue>),
    /// `admin_layer: {}`: empty at start, set by `POST /runtime_modify` (at most one).
    Admin,
}

/// One runtime value: its text (what `/runtime` shows) and what it reads as, parsed once when
/// the value is set, as Envoy's runtime entries are.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeValue {
    /// The value as text.
    pub raw: String,
    /// A non-negative number, floored (`"1.5"` reads as 1), as Envoy's `getInteger` reads it.
    pub integer: Option<u64>,
    /// `true`/`false` (any case) or an integer (non-zero is true), as `getBoolean` reads it.
    pub boolean: Option<bool>,
    /// A `FractionalPercent` (`{numerator, denominator}`), as `featureEnabled` reads it.
    pub fraction: Option<Fraction>,
}

impl RuntimeValue {
    /// A value given as text (a static layer's string or number, or a `/runtime_modify` value).
    pub fn from_text(text: &str) -> RuntimeValue {
        let mut value = RuntimeValue {
            raw: text.to_owned(),
            integer: None,
            boolean: None,
            fraction: None,
        };
        let trimmed = text.trim();
        if let Ok(n) = trimmed.parse::<u64>() {
            value.boolean = Some(n != 0);
        } else if trimmed.eq_ignore_ascii_case("true") || trimmed.eq_ignore_ascii_case("false") {
            value.boolean = Some(trimmed.eq_ignore_ascii_case("true"));
            return value;
        }
        let number = trimmed.strip_prefix('+').unwrap_or(trimmed);
        if !number.starts_with('-')
            && let Ok(d) = number.parse::<f64>()
        {
            if (0.0..=u64::MAX as f64).contains(&d) {
                value.integer = Some(d as u64);
            }
            return value;
        }
        // Envoy reads any other text as YAML for a `FractionalPercent`.
        if let Ok(parsed) = crate::source::document(text, crate::source::Format::Yaml) {
            value.fraction = fraction(&parsed.doc);
        }
        value
    }

    /// A static layer's map that is a `FractionalPercent` (or empty): kept whole as one value.
    fn from_struct(map: &Value) -> RuntimeValue {
        RuntimeValue {
            raw: map.to_string(),
            integer: None,
            boolean: None,
            fraction: fraction(map),
        }
    }
}

/// `type.v3.FractionalPercent` from a runtime value, `None` unless it is a valid one (strict:
/// only `numerator` and `denominator`). An empty map is 0 %, proto's default.
fn fraction(value: &Value) -> Option<Fraction> {
    let map = value.as_object()?;
    if map.keys().any(|k| k != "numerator" && k != "denominator") {
        return None;
    }
    let numerator = match map.get("numerator") {
        Some(n) => u32::try_from(n.as_u64()?).ok()?,
        None => 0,
    };
    let denominator: u32 = match map.get("denominator") {
        None => 100,
        Some(Value::String(s)) => match s.as_str() {
            "HUNDRED" => 100,
            "TEN_THOUSAND" => 10_000,
            "MILLION" => 1_000_000,
            _ => return None,
        },
        Some(n) => match n.as_u64()? {
            0 => 100,
            1 => 10_000,
            2 => 1_000_000,
            _ => return None,
        },
    };
    let per_million = (u64::from(numerator) * u64::from(1_000_000 / denominator)).min(1_000_000);
    Some(Fraction {
        per_million: per_million as u32,
        denominator,
    })
}

/// Reads `layered_runtime`.
pub(crate) fn layered_runtime(cx: &mut Cx, f: &Field<'_>) -> Option<LayeredRuntime> {
    let mut o = Obj::new(cx, f, &[])?;
    let items = o.list(cx, "layers");
    o.finish(cx);
    let mut layers = Some(Vec::new());
    let mut admin_at: Option<String> = None;
    let mut names: Vec<String> = Vec::new();
    for item in &items {
        let layer = layer(cx, item);
        // Names are compared even for a layer with errors, so a duplicate is reported too.
        if let Some(name) = item.value.get("name").and_then(Value::as_str) {
            if names.iter().any(|n| n == name) {
                cx.error(&item.path, format!("duplicate layer name `{name}`"));
            }
            names.push(name.to_owned());
        }
        if let Some(l) = &layer
            && l.kind == RuntimeLayerKind::Admin
        {
            if let Some(first) = &admin_at {
                cx.error(
                    &item.path,
                    format!("at most one admin layer may be specified (the first is {first})"),
                );
            }
            admin_at.get_or_insert_with(|| item.path.clone());
        }
        match (layer, &mut layers) {
            (Some(l), Some(list)) => list.push(l),
            _ => layers = None,
        }
    }
    Some(LayeredRuntime { layers: layers? })
}

/// One `layers[]` entry: `name` and exactly one of `static_layer` and `admin_layer`.
fn layer(cx: &mut Cx, f: &Field<'_>) -> Option<RuntimeLayer> {
    let mut o = Obj::new(cx, f, LAYER_ENVOY)?;
    let name = o.string(cx, "name").unwrap_or_default();
    let static_layer = o.get(cx, "static_layer");
    let admin_layer = o.get(cx, "admin_layer");
    let other = crate::reader::has_any(f.value, LAYER_ENVOY);
    let done = o.finish(cx);
    let kind = match (static_layer, admin_layer) {
        (Some(s), None) => {
            let mut values = BTreeMap::new();
            walk(cx, &s, None, &mut values).then_some(RuntimeLayerKind::Static(values))
        }
        // `bootstrap.v3.RuntimeLayer.AdminLayer` has no fields.
        (None, Some(a)) => Obj::new(cx, &a, &[])
            .is_some_and(|a| a.finish(cx))
            .then_some(RuntimeLayerKind::Admin),
        (Some(_), Some(a)) => {
            cx.error(
                &a.path,
                "a layer takes one of `static_layer` and `admin_layer`, not both",
            );
            None
        }
        (None, None) => {
            if !other {
                cx.error(
                    &f.path,
                    "a layer needs one of `static_layer` or `admin_layer`",
                );
            }
            None
        }
    };
    if !done {
        return None;
    }
    Some(RuntimeLayer { name, kind: kind? })
}

/// Flattens a static layer into `values`: a map's entries under `prefix.` (except a
/// `FractionalPercent`, or an empty map, which is one value), scalars as text. A list or null
/// is an error, as in Envoy. Returns whether all went well.
fn walk(
    cx: &mut Cx,
    f: &Field<'_>,
    prefix: Option<&str>,
    values: &mut BTreeMap<String, RuntimeValue>,
) -> bool {
    let key = || prefix.unwrap_or_default().to_owned();
    match f.value {
        Value::Object(map) => {
            let whole =
                map.is_empty() || map.contains_key("numerator") || map.contains_key("denominator");
            if whole && prefix.is_some() {
                values.insert(key(), RuntimeValue::from_struct(f.value));
                return true;
            }
            let Some(entries) = f.entries(cx, "runtime keys to values") else {
                return false;
            };
            let mut ok = true;
            for (name, field) in entries {
                let full = match prefix {
                    Some(p) => format!("{p}.{name}"),
                    None => name.clone(),
                };
                ok &= walk(cx, &field, Some(&full), values);
            }
            ok
        }
        Value::String(s) => {
            values.insert(key(), RuntimeValue::from_text(s));
            true
        }
        Value::Number(n) => {
            values.insert(key(), RuntimeValue::from_text(&n.to_string()));
            true
        }
        Value::Bool(b) => {
            values.insert(
                key(),
                RuntimeValue::from_text(if *b { "true" } else { "false" }),
            );
            true
        }
        other => {
            let message = match prefix {
                Some(p) => format!(
                    "invalid runtime value for `{p}`: {} (a runtime value is a string, number, bool or map)",
                    describe(other)
                ),
                None => format!("expected a map of runtime keys, found {}", describe(other)),
            };
            cx.error(&f.path, message);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_reads_as_envoy_reads_it() {
        let v = RuntimeValue::from_text("50");
        assert_eq!(
            (v.integer, v.boolean, v.fraction),
            (Some(50), Some(true), None)
        );
        let v = RuntimeValue::from_text("1.5");
        assert_eq!((v.integer, v.boolean), (Some(1), None));
        let v = RuntimeValue::from_text(" TRUE ");
        assert_eq!((v.integer, v.boolean), (None, Some(true)));
        let v = RuntimeValue::from_text("-3");
        assert_eq!((v.integer, v.boolean), (None, None));
        let v = RuntimeValue::from_text("0");
        assert_eq!((v.integer, v.boolean), (Some(0), Some(false)));
        let v = RuntimeValue::from_text("hello");
        assert_eq!((v.integer, v.boolean, v.fraction), (None, None, None));
        let v = RuntimeValue::from_text("{numerator: 5, denominator: TEN_THOUSAND}");
        let want = Fraction {
            per_million: 500,
            denominator: 10_000,
        };
        assert_eq!((v.integer, v.fraction), (None, Some(want)));
        assert_eq!(
            RuntimeValue::from_text("{numerator: 5, x: 1}").fraction,
            None
        );
    }
}
