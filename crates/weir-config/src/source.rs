//! Text to document tree: YAML through serde-saphyr, JSON through serde_json.
//!
//! Both build the same `serde_json::Value`. A key given twice in one mapping keeps its last
//! value, as Envoy does (yaml-cpp and its JSON loader both keep the last), and is reported as a
//! warning naming its path: silently picking one of two values is how a config does something
//! its author did not mean. A mapping key tagged `!ignore` is dropped with its value, as Envoy
//! drops it (Envoy configs use it to hold YAML anchors: `!ignore defs: &ep {…}`).

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use serde_saphyr::Tagged;

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

/// A document tree and the warnings found while building it.
#[derive(Debug)]
pub(crate) struct Parsed {
    /// The tree.
    pub(crate) doc: Value,
    /// One per key given more than once in a mapping, at the key's path, in document order.
    pub(crate) warnings: Vec<ConfigError>,
}

/// The YAML tag that makes Envoy drop a mapping entry.
const IGNORE_TAG: &str = "!ignore";

/// Parses `text` into a document tree.
pub(crate) fn document(text: &str, format: Format) -> Result<Parsed, ConfigError> {
    let body = text.strip_prefix('\u{feff}').unwrap_or(text);
    let node = match format {
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
    }?;
    let warnings = node
        .repeated
        .into_iter()
        .map(|path| ConfigError {
            path,
            message: "this key is given more than once in its mapping; the last value is used \
                      (as Envoy does) and the others are ignored"
                .to_owned(),
        })
        .collect();
    Ok(Parsed {
        doc: node.value,
        warnings,
    })
}

fn json(text: &str) -> Result<Node, ConfigError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed = Node::deserialize(&mut de).and_then(|node| de.end().map(|()| node));
    parsed.map_err(|e| ConfigError {
        path: String::new(),
        message: format!("invalid JSON: {e}"),
    })
}

fn yaml(text: &str) -> Result<Node, ConfigError> {
    // YAML 1.2 booleans only: `value: yes` or `exact: y` stay strings (the "Norway problem").
    // Repeated keys reach the visitor below, which keeps the last and remembers where.
    let options = serde_saphyr::options! {
        strict_booleans: true,
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::PassThrough,
    };
    serde_saphyr::from_str_with_options::<Node>(text, options).map_err(|e| ConfigError {
        path: String::new(),
        message: format!("invalid YAML: {}", e.without_snippet()),
    })
}

/// A subtree and the paths (relative to it) of the keys repeated inside it.
struct Node {
    value: Value,
    repeated: Vec<String>,
}

impl Node {
    fn leaf(value: Value) -> Self {
        Node {
            value,
            repeated: Vec::new(),
        }
    }
}

/// `head` followed by the relative path `rest` (`key` + `a.b` → `key.a.b`; `[0]` stays glued).
fn prefixed(head: &str, rest: &str) -> String {
    if rest.is_empty() {
        head.to_owned()
    } else if rest.starts_with('[') {
        format!("{head}{rest}")
    } else {
        format!("{head}.{rest}")
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML or JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(Node::leaf(Value::Bool(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::leaf(Value::Number(v.into())))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
        Ok(Node::leaf(Value::Number(v.into())))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        Number::from_f64(v)
            .map(|n| Node::leaf(Value::Number(n)))
            .ok_or_else(|| E::custom("numbers must be finite"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::leaf(Value::String(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(Node::leaf(Value::String(v)))
    }

    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::leaf(Value::Null))
    }

    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::leaf(Value::Null))
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
        Node::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        let mut repeated = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            let head = format!("[{}]", items.len());
            repeated.extend(item.repeated.iter().map(|r| prefixed(&head, r)));
            items.push(item.value);
        }
        Ok(Node {
            value: Value::Array(items),
            repeated,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Node, A::Error> {
        let mut map = Map::new();
        // Per key (in first-seen order): whether it repeats, and the repeats inside its value.
        let mut inner: Vec<(String, bool, Vec<String>)> = Vec::new();
        while let Some(Tagged(key, tag)) = access.next_key::<Tagged<String>>()? {
            let node: Node = access.next_value()?;
            if tag.as_deref() == Some(IGNORE_TAG) {
                // Read (so anchors inside still count) and dropped, as Envoy does.
                continue;
            }
            match inner.iter_mut().find(|(k, _, _)| *k == key) {
                Some(entry) => {
                    entry.1 = true;
                    entry.2 = node.repeated;
                }
                None => inner.push((key.clone(), false, node.repeated)),
            }
            map.insert(key, node.value);
        }
        let mut repeated = Vec::new();
        for (key, twice, within) in inner {
            if twice {
                repeated.push(key.clone());
            }
            repeated.extend(within.iter().map(|r| prefixed(&key, r)));
        }
        Ok(Node {
            value: Value::Object(map),
            repeated,
        })
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
        .unwrap()
        .doc;
        assert_eq!(
            v,
            serde_json::json!({"a": 1, "b": "0.25s", "c": true, "d": null, "e": "8080", "f": "yes", "g": "n"})
        );
    }

    #[test]
    fn json_and_flow_yaml() {
        let v = document("{\"a\": [1, 2]}", Format::Sniff).unwrap().doc;
        assert_eq!(v, serde_json::json!({"a": [1, 2]}));
        let v = document("{a: x}", Format::Sniff).unwrap().doc;
        assert_eq!(v, serde_json::json!({"a": "x"}));
    }

    /// The paths of the repeated keys `text` has, and its tree.
    fn repeats(text: &str, format: Format) -> (Value, Vec<String>) {
        let parsed = document(text, format).unwrap();
        let paths = parsed.warnings.into_iter().map(|w| w.path).collect();
        (parsed.doc, paths)
    }

    #[test]
    fn duplicate_keys_keep_the_last_value_and_are_named() {
        for format in [Format::Json, Format::Sniff, Format::Yaml] {
            let (doc, paths) = repeats("{\"a\": 1, \"b\": 0, \"a\": 2}", format);
            assert_eq!(doc, serde_json::json!({"a": 2, "b": 0}), "{format:?}");
            assert_eq!(paths, ["a"], "{format:?}");
        }
        let (doc, paths) = repeats(
            "x:\n  - {k: 1}\n  - {k: 2, j: 3, k: 4, k: 5}\ny: {z: {q: 1, q: 2}}\n",
            Format::Yaml,
        );
        assert_eq!(
            doc,
            serde_json::json!({"x": [{"k": 1}, {"k": 5, "j": 3}], "y": {"z": {"q": 2}}})
        );
        assert_eq!(paths, ["x[1].k", "y.z.q"]);
        // A repeat inside a value that a later key replaced is gone with it.
        let (doc, paths) = repeats("a: {b: 1, b: 2}\na: {c: 3}\n", Format::Yaml);
        assert_eq!(doc, serde_json::json!({"a": {"c": 3}}));
        assert_eq!(paths, ["a"]);
        let w = document("a: 1\na: 2\n", Format::Yaml).unwrap().warnings;
        assert!(w[0].message.contains("the last value is used"), "{w:?}");
    }

    #[test]
    fn ignore_tag_drops_the_entry_but_keeps_its_anchors() {
        let (doc, _) = repeats(
            "!ignore defs: &ep {address: 127.0.0.1}\nuse: *ep\n",
            Format::Yaml,
        );
        assert_eq!(doc, serde_json::json!({"use": {"address": "127.0.0.1"}}));
        let (doc, _) = repeats("{!ignore a: 1, b: 2}", Format::Sniff);
        assert_eq!(doc, serde_json::json!({"b": 2}));
        // Only a key's tag drops anything (Envoy reads a tagged value, or list item, as usual).
        let (doc, _) = repeats("a: !ignore 3\nb:\n  - !ignore {c: 1}\n", Format::Yaml);
        assert_eq!(doc, serde_json::json!({"a": 3, "b": [{"c": 1}]}));
        // Another tag on a key is not `!ignore`.
        let (doc, _) = repeats("!!str a: 1\n", Format::Yaml);
        assert_eq!(doc, serde_json::json!({"a": 1}));
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
