//! Text to document tree: YAML through serde-saphyr, JSON through serde_json.
//!
//! Both build the same `serde_json::Value`, and both reject a key given twice in one mapping
//! (serde_json alone would silently keep the last one).

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::ConfigError;

/// How to read the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// JSON only.
    Json,
    /// YAML (which includes JSON, with YAML's error messages).
    Yaml,
    /// JSON if the text starts with `{"` (or `{}`), YAML otherwise.
    Sniff,
}

/// Parses `text` into a document tree.
pub(crate) fn document(text: &str, format: Format) -> Result<Value, ConfigError> {
    let body = text.strip_prefix('\u{feff}').unwrap_or(text);
    match format {
        Format::Json => json(body),
        Format::Yaml => yaml(body),
        Format::Sniff => {
            // `{"` (or `{}`) is JSON; a flow-style YAML mapping such as `{a: 1}` is not.
            let rest = body.trim_start().strip_prefix('{').map(str::trim_start);
            match rest {
                Some(rest) if rest.starts_with('"') || rest.starts_with('}') => json(body),
                _ => yaml(body),
            }
        }
    }
}

fn json(text: &str) -> Result<Value, ConfigError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed = Doc::deserialize(&mut de).and_then(|doc| de.end().map(|()| doc));
    parsed.map(|doc| doc.0).map_err(|e| ConfigError {
        path: String::new(),
        message: format!("invalid JSON: {e}"),
    })
}

fn yaml(text: &str) -> Result<Value, ConfigError> {
    // YAML 1.2 booleans only: `value: yes` or `exact: y` stay strings (the "Norway problem").
    let options = serde_saphyr::options! { strict_booleans: true };
    serde_saphyr::from_str_with_options::<Doc>(text, options)
        .map(|doc| doc.0)
        .map_err(|e| ConfigError {
            path: String::new(),
            message: format!("invalid YAML: {}", e.without_snippet()),
        })
}

/// A document tree built without losing repeated keys silently.
struct Doc(Value);

impl<'de> Deserialize<'de> for Doc {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(DocVisitor).map(Doc)
    }
}

struct DocVisitor;

impl<'de> Visitor<'de> for DocVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML or JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("numbers must be finite"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        Doc::deserialize(deserializer).map(|doc| doc.0)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Doc(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            if map.contains_key(&key) {
                return Err(de::Error::custom(format!("duplicate key `{key}`")));
            }
            let Doc(value) = access.next_value()?;
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_scalars() {
        let v = document(
            "a: 1\nb: 0.25s\nc: true\nd: ~\ne: \"8080\"\nf: yes\ng: n\n",
            Format::Sniff,
        )
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"a": 1, "b": "0.25s", "c": true, "d": null, "e": "8080", "f": "yes", "g": "n"})
        );
    }

    #[test]
    fn json_and_flow_yaml() {
        let v = document("{\"a\": [1, 2]}", Format::Sniff).unwrap();
        assert_eq!(v, serde_json::json!({"a": [1, 2]}));
        let v = document("{a: x}", Format::Sniff).unwrap();
        assert_eq!(v, serde_json::json!({"a": "x"}));
    }

    #[test]
    fn duplicate_keys() {
        let e = document("{\"a\": 1, \"a\": 2}", Format::Json).unwrap_err();
        assert!(e.message.contains("duplicate key `a`"), "{e}");
        let e = document("{\"a\": 1, \"a\": 2}", Format::Sniff).unwrap_err();
        assert!(e.message.contains("duplicate key `a`"), "{e}");
        let e = document("a: 1\na: 2\n", Format::Yaml).unwrap_err();
        assert!(e.message.contains("duplicate"), "{e}");
    }

    #[test]
    fn syntax_errors() {
        let e = document("{\"a\": }", Format::Json).unwrap_err();
        assert!(e.message.starts_with("invalid JSON: "), "{e}");
        assert!(e.message.contains("line 1"), "{e}");
        let e = document("a: [1\nb: 2\n", Format::Yaml).unwrap_err();
        assert!(e.message.starts_with("invalid YAML: "), "{e}");
        assert!(e.message.contains("line 2"), "{e}");
        assert!(!e.message.contains('\n'), "{e}");
    }
}
