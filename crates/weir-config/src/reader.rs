//! Reading a parsed document: typed reads that record every problem with its path.
//!
//! The document is a `serde_json::Value` (YAML is parsed into the same tree). Each Envoy message is
//! read through an [`Obj`], which remembers which fields the reader asked for; [`Obj::finish`] then
//! reports every field nobody asked for, telling an Envoy field weir does not support yet apart
//! from a typo. Reads never stop at the first problem: a bad value is recorded in [`Cx`] and the
//! reader carries on with the next field, so one run reports everything it can.
//!
//! Field names are Envoy's proto field names (`stat_prefix`); proto3 JSON's lowerCamelCase
//! spelling (`statPrefix`) is accepted too, and paths show the key as written. A `null` value is
//! proto3 JSON's "not set".

use std::time::Duration;

use serde_json::{Map, Value};

use crate::ConfigError;

/// The error collector threaded through every read.
#[derive(Debug, Default)]
pub(crate) struct Cx {
    /// Problems found so far, in the order found.
    pub(crate) errors: Vec<ConfigError>,
    /// What is accepted but probably not meant (Envoy accepts it too), in the order found.
    pub(crate) warnings: Vec<ConfigError>,
}

impl Cx {
    /// Records a warning at `path`.
    pub(crate) fn warn(&mut self, path: &str, message: impl Into<String>) {
        self.warnings.push(ConfigError {
            path: path.to_owned(),
            message: message.into(),
        });
    }

    /// Records a problem at `path`.
    pub(crate) fn error(&mut self, path: &str, message: impl Into<String>) {
        self.errors.push(ConfigError {
            path: path.to_owned(),
            message: message.into(),
        });
    }
}

/// `path.key` (or `key` at the root).
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// `path[i]`.
pub(crate) fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// A value in the document and the path that names it.
#[derive(Debug, Clone)]
pub(crate) struct Field<'v> {
    /// The value. A field read through [`Obj::get`] is never `null` (proto3 JSON's "not set"
    /// reads as absent); the root and list items may be.
    pub(crate) value: &'v Value,
    /// Its path, e.g. `static_resources.listeners[0].name`.
    pub(crate) path: String,
}

impl<'v> Field<'v> {
    /// The document root.
    pub(crate) fn root(value: &'v Value) -> Self {
        Field {
            value,
            path: String::new(),
        }
    }

    /// A list's items (with their paths); `None` (and an error) when the value is not a list.
    pub(crate) fn items(&self, cx: &mut Cx) -> Option<Vec<Field<'v>>> {
        match self.value {
            Value::Array(items) => Some(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, value)| Field {
                        value,
                        path: index(&self.path, i),
                    })
                    .collect(),
            ),
            other => {
                cx.error(
                    &self.path,
                    format!("expected a list, found {}", describe(other)),
                );
                None
            }
        }
    }

    /// A map's entries (keys with their values and paths); `None` (and an error naming `what`
    /// the map goes from and to) when the value is not a map.
    pub(crate) fn entries(&self, cx: &mut Cx, what: &str) -> Option<Vec<(&'v String, Field<'v>)>> {
        let Value::Object(map) = self.value else {
            cx.error(
                &self.path,
                format!("expected a map from {what}, found {}", describe(self.value)),
            );
            return None;
        };
        Some(
            map.iter()
                .map(|(key, value)| {
                    let path = join(&self.path, key);
                    (key, Field { value, path })
                })
                .collect(),
        )
    }

    /// A string.
    pub(crate) fn string(&self, cx: &mut Cx) -> Option<String> {
        match self.value {
            Value::String(s) => Some(s.clone()),
            Value::Number(_) | Value::Bool(_) => {
                cx.error(
                    &self.path,
                    format!(
                        "expected a string, found {} (quote it in YAML)",
                        describe(self.value)
                    ),
                );
                None
            }
            other => {
                cx.error(
                    &self.path,
                    format!("expected a string, found {}", describe(other)),
                );
                None
            }
        }
    }

    /// A boolean (`true` / `false`).
    pub(crate) fn bool(&self, cx: &mut Cx) -> Option<bool> {
        match self.value {
            Value::Bool(b) => Some(*b),
            other => {
                cx.error(
                    &self.path,
                    format!("expected true or false, found {}", describe(other)),
                );
                None
            }
        }
    }

    /// A `uint32`: a JSON number or, as proto3 JSON allows, a string holding one.
    pub(crate) fn u32(&self, cx: &mut Cx) -> Option<u32> {
        let parsed = self.u64(cx)?;
        match u32::try_from(parsed) {
            Ok(v) => Some(v),
            Err(_) => {
                cx.error(
                    &self.path,
                    format!("{parsed} is too large (maximum {})", u32::MAX),
                );
                None
            }
        }
    }

    /// A non-negative whole number or a message saying what is wrong.
    fn whole_number_checked(&self) -> Result<u64, String> {
        match self.value {
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    Ok(u)
                } else if n.as_i64().is_some() {
                    Err("must not be negative".to_owned())
                } else {
                    match n.as_f64() {
                        Some(f) if f < 0.0 => Err("must not be negative".to_owned()),
                        // Beyond u64 (`1e20`, or an integer literal too long for u64): say
                        // so, showing the number as parsed (`1e+20`), rather than let the cast
                        // below saturate and the caller's range check report
                        // 18446744073709551615, a number that is not in the file.
                        #[allow(clippy::cast_precision_loss)]
                        Some(f) if f >= u64::MAX as f64 => Err(format!("{n} is too large")),
                        // Integral floats (`1e3`) are integers in proto3 JSON.
                        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                        Some(f) if f.fract() == 0.0 => Ok(f as u64),
                        _ => Err(format!("expected a whole number, found {n}")),
                    }
                }
            }
            Value::String(s) => s.trim().parse::<u64>().map_err(|_| {
                if s.trim().starts_with('-') {
                    "must not be negative".to_owned()
                } else {
                    format!("expected a whole number, found the string {s:?}")
                }
            }),
            other => Err(format!(
                "expected a whole number, found {}",
                describe(other)
            )),
        }
    }

    /// A non-negative whole number (`uint64`/`int64` fields), recording an error if it is not.
    pub(crate) fn u64(&self, cx: &mut Cx) -> Option<u64> {
        match self.whole_number_checked() {
            Ok(v) => Some(v),
            Err(message) => {
                cx.error(&self.path, message);
                None
            }
        }
    }

    /// A `google.protobuf.Duration`: the proto3 JSON string (`"1.5s"`) or `{seconds, nanos}`.
    pub(crate) fn duration(&self, cx: &mut Cx) -> Option<Duration> {
        match self.value {
            Value::String(s) => match parse_duration(s) {
                Ok(d) => Some(d),
                Err(message) => {
                    cx.error(&self.path, message);
                    None
                }
            },
            Value::Object(_) => {
                let mut o = Obj::new(cx, self, &[])?;
                let seconds = o.get(cx, "seconds");
                let nanos = o.get(cx, "nanos");
                if !o.finish(cx) {
                    return None;
                }
                let seconds = match &seconds {
                    Some(f) => whole_seconds(cx, f)?,
                    None => 0,
                };
                let nanos = match &nanos {
                    Some(f) => {
                        let n = f.u32(cx)?;
                        if n > 999_999_999 {
                            cx.error(&f.path, "nanos must be in 0..=999999999");
                            return None;
                        }
                        n
                    }
                    None => 0,
                };
                Some(Duration::new(seconds, nanos))
            }
            other => {
                cx.error(
                    &self.path,
                    format!(
                        "expected a duration such as \"5s\" or \"0.25s\", found {}",
                        describe(other)
                    ),
                );
                None
            }
        }
    }

    /// An enum weir supports in full: its name (or, as proto3 JSON allows, its number) from
    /// `values`, returning the name. `what` names the enum in the error, e.g. `append_action`.
    pub(crate) fn enumeration(
        &self,
        cx: &mut Cx,
        what: &str,
        values: &[(&'static str, u64)],
    ) -> Option<&'static str> {
        let all: Vec<&str> = values.iter().map(|(name, _)| *name).collect();
        self.enumeration_subset(cx, what, values, &all)
    }

    /// An enum of which weir supports only `supported`: Envoy's `values` are recognised (an
    /// Envoy value weir lacks is "not supported yet", not "invalid"), and an error lists only
    /// what weir supports. Names match in any case, as Envoy's JSON parser retries a name it
    /// does not know in upper case (`round_robin`, `Static`).
    pub(crate) fn enumeration_subset(
        &self,
        cx: &mut Cx,
        what: &str,
        values: &[(&'static str, u64)],
        supported: &[&str],
    ) -> Option<&'static str> {
        let found = match self.value {
            Value::String(s) => values.iter().find(|(name, _)| name == s).or_else(|| {
                let upper = s.to_ascii_uppercase();
                values.iter().find(|(name, _)| *name == upper)
            }),
            Value::Number(n) => values.iter().find(|(_, num)| n.as_u64() == Some(*num)),
            _ => None,
        };
        match found {
            Some((name, _)) if supported.contains(name) => Some(name),
            Some((name, _)) => {
                cx.error(&self.path, format!("{name} is not supported yet"));
                None
            }
            None => {
                let shown = match self.value {
                    Value::String(s) => format!("`{s}`"),
                    other => describe(other),
                };
                let expected = match supported {
                    [only] => format!("expected {only}"),
                    _ => format!("expected one of {}", supported.join(", ")),
                };
                cx.error(
                    &self.path,
                    format!("{shown} is not a valid {what}; {expected}"),
                );
                None
            }
        }
    }
}

/// `seconds` of the object form of a duration: an int64 (number or string), non-negative.
fn whole_seconds(cx: &mut Cx, f: &Field<'_>) -> Option<u64> {
    let negative = match f.value {
        Value::Number(n) => {
            n.as_i64().is_some_and(|v| v < 0) || n.as_f64().is_some_and(|v| v < 0.0)
        }
        Value::String(s) => s.trim().starts_with('-'),
        _ => false,
    };
    if negative {
        cx.error(&f.path, "durations must not be negative");
        return None;
    }
    let seconds = f.u64(cx)?;
    if seconds > MAX_DURATION_SECONDS {
        cx.error(&f.path, "duration is out of range (maximum 315576000000s)");
        return None;
    }
    Some(seconds)
}

/// The largest duration protobuf allows (10,000 years).
const MAX_DURATION_SECONDS: u64 = 315_576_000_000;

/// Parses a proto3 JSON duration: decimal seconds with up to nine fractional digits and an `s`
/// suffix (`"15s"`, `"0.25s"`, `"1.000340s"`). Negative durations are rejected.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "invalid duration {s:?}: expected seconds with an `s` suffix, such as \"5s\" or \"0.25s\""
        )
    };
    if s.starts_with('-') {
        return Err(format!(
            "invalid duration {s:?}: durations must not be negative"
        ));
    }
    let Some(number) = s.strip_suffix('s') else {
        return Err(bad());
    };
    let (whole, fraction) = match number.split_once('.') {
        Some((w, f)) => (w, f),
        None => (number, ""),
    };
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
        || (number.contains('.') && fraction.is_empty())
    {
        return Err(bad());
    }
    if fraction.len() > 9 {
        return Err(format!(
            "invalid duration {s:?}: at most nine fractional digits (nanoseconds)"
        ));
    }
    let seconds: u64 = whole.parse().map_err(|_| bad())?;
    if seconds > MAX_DURATION_SECONDS {
        return Err(format!(
            "invalid duration {s:?}: out of range (maximum 315576000000s)"
        ));
    }
    let mut nanos: u32 = 0;
    for i in 0..9 {
        let digit = fraction
            .as_bytes()
            .get(i)
            .map_or(0, |b| u32::from(b - b'0'));
        nanos = nanos * 10 + digit;
    }
    Ok(Duration::new(seconds, nanos))
}

/// Describes a value for an error message: "a string", "the number 3", "a list"…
pub(crate) fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => format!("`{b}`"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string {s:?}"),
        Value::Array(_) => "a list".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

/// One Envoy message being read: hands out its fields and, at [`Obj::finish`], reports the ones
/// nobody asked for.
#[derive(Debug)]
pub(crate) struct Obj<'v> {
    path: String,
    map: &'v Map<String, Value>,
    /// Fields weir supports here (every name passed to [`Obj::get`]), for error messages.
    supported: Vec<&'static str>,
    /// Keys (as written) already accounted for.
    used: Vec<&'v str>,
    /// Envoy's fields of this message that weir does not support yet.
    envoy_only: &'static [&'static str],
}

impl<'v> Obj<'v> {
    /// Starts reading `field` as a message; `envoy_only` lists the message's Envoy fields that weir
    /// does not support (to tell them apart from typos). `None` (and an error) if not an object.
    pub(crate) fn new(
        cx: &mut Cx,
        field: &Field<'v>,
        envoy_only: &'static [&'static str],
    ) -> Option<Self> {
        match field.value {
            Value::Object(map) => Some(Obj {
                path: field.path.clone(),
                map,
                supported: Vec::new(),
                used: Vec::new(),
                envoy_only,
            }),
            other => {
                cx.error(
                    &field.path,
                    format!("expected an object (a mapping), found {}", describe(other)),
                );
                None
            }
        }
    }

    /// This message's path.
    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    /// Finds `name` (or its lowerCamelCase spelling) and marks it used; `null` reads as absent.
    /// Both spellings at once is an error, reported at the camelCase key.
    fn lookup(&mut self, cx: &mut Cx, name: &str) -> Option<Field<'v>> {
        let camel = to_camel(name);
        let snake = self.map.get_key_value(name);
        let camel_entry = if camel == name {
            None
        } else {
            self.map.get_key_value(&camel)
        };
        let (key, value) = match (snake, camel_entry) {
            (Some(s), Some((c, _))) => {
                self.used.push(c);
                cx.error(
                    &join(&self.path, c),
                    format!("`{name}` is given twice (as `{name}` and `{c}`)"),
                );
                s
            }
            (Some(s), None) => s,
            (None, Some(c)) => c,
            (None, None) => return None,
        };
        self.used.push(key);
        if value.is_null() {
            return None;
        }
        Some(Field {
            value,
            path: join(&self.path, key),
        })
    }

    /// A field weir supports; `None` when absent (or `null`).
    pub(crate) fn get(&mut self, cx: &mut Cx, name: &'static str) -> Option<Field<'v>> {
        if !self.supported.contains(&name) {
            self.supported.push(name);
        }
        self.lookup(cx, name)
    }

    /// A field weir supports that must be present; records "`name` is required" when it is not.
    pub(crate) fn required(&mut self, cx: &mut Cx, name: &'static str) -> Option<Field<'v>> {
        let field = self.get(cx, name);
        if field.is_none() {
            cx.error(&join(&self.path, name), format!("`{name}` is required"));
        }
        field
    }

    /// A field weir knows but rejects with `message` (for instance `rds`: "not supported yet").
    /// Returns whether it was present.
    pub(crate) fn reject(&mut self, cx: &mut Cx, name: &str, message: &str) -> bool {
        match self.lookup(cx, name) {
            Some(field) => {
                cx.error(&field.path, message);
                true
            }
            None => false,
        }
    }

    /// An optional string field.
    pub(crate) fn string(&mut self, cx: &mut Cx, name: &'static str) -> Option<String> {
        self.get(cx, name)?.string(cx)
    }

    /// A required, non-empty string field.
    pub(crate) fn required_string(&mut self, cx: &mut Cx, name: &'static str) -> Option<String> {
        let field = self.required(cx, name)?;
        let s = field.string(cx)?;
        if s.is_empty() {
            cx.error(&field.path, format!("`{name}` must not be empty"));
            return None;
        }
        Some(s)
    }

    /// An optional boolean field.
    pub(crate) fn bool(&mut self, cx: &mut Cx, name: &'static str) -> Option<bool> {
        self.get(cx, name)?.bool(cx)
    }

    /// An optional boolean field that is false when absent; `None` only after an error.
    pub(crate) fn flag(&mut self, cx: &mut Cx, name: &'static str) -> Option<bool> {
        match self.get(cx, name) {
            Some(field) => field.bool(cx),
            None => Some(false),
        }
    }

    /// An optional list field's items; empty when absent (or not a list, with an error).
    pub(crate) fn list(&mut self, cx: &mut Cx, name: &'static str) -> Vec<Field<'v>> {
        match self.get(cx, name) {
            Some(field) => field.items(cx).unwrap_or_default(),
            None => Vec::new(),
        }
    }

    /// Reports every field nobody asked for; returns whether there were none.
    pub(crate) fn finish(self, cx: &mut Cx) -> bool {
        let before = cx.errors.len();
        for (key, value) in self.map {
            if self.used.contains(&key.as_str()) {
                continue;
            }
            let path = join(&self.path, key);
            let snake = to_snake(key);
            if value.is_null() && self.envoy_only.contains(&snake.as_str()) {
                // proto3 JSON's "not set": an Envoy field left unset needs no support.
                continue;
            }
            if let Some(message) = special_message(&snake) {
                cx.error(&path, message);
            } else if self.envoy_only.contains(&snake.as_str()) {
                cx.error(&path, "this Envoy field is not supported by weir yet");
            } else {
                let supported = if self.supported.is_empty() {
                    "none".to_owned()
                } else {
                    self.supported.join(", ")
                };
                let hint = match suggest(&snake, &self.supported) {
                    Some(s) => format!("; did you mean `{s}`?"),
                    None => String::new(),
                };
                cx.error(
                    &path,
                    format!("unknown field{hint} (fields weir supports here: {supported})"),
                );
            }
        }
        cx.errors.len() == before
    }
}

/// Clearer words for a few Envoy fields that users reach for often.
fn special_message(field: &str) -> Option<&'static str> {
    Some(match field {
        "transport_socket_matches" => {
            "transport_socket_matches is not supported by weir yet: give the cluster one transport_socket"
        }
        "dynamic_resources" => "xDS (dynamic_resources) is not supported by weir yet",
        "access_log" => {
            "listener-level access logs are not supported by weir yet: use the HTTP connection manager's access_log"
        }
        "typed_per_filter_config" => {
            "typed_per_filter_config is supported on routes, virtual hosts and route_config, not here yet"
        }
        "health_checks" => "active health checking is not supported by weir yet",
        _ => return None,
    })
}

/// Whether `value` is an object holding any of `names` (in either spelling), set to non-null.
pub(crate) fn has_any(value: &Value, names: &[&str]) -> bool {
    names.iter().any(|name| {
        value.get(name).is_some_and(|v| !v.is_null())
            || value.get(to_camel(name)).is_some_and(|v| !v.is_null())
    })
}

/// `stat_prefix` → `statPrefix`.
fn to_camel(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// `statPrefix` → `stat_prefix` (snake_case stays as is).
fn to_snake(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The supported field closest to a misspelt one, if it is close.
fn suggest<'a>(key: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let limit = (key.len() / 3).clamp(1, 3);
    candidates
        .iter()
        // The distance is at least the difference in length: skipping those keeps a huge unknown
        // key (megabytes, in hostile input) from costing len × len(candidate) cells per candidate.
        .filter(|c| key.len().abs_diff(c.len()) <= limit)
        .map(|c| (edit_distance(key, c), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Edit distance counting a swap of two neighbours as one edit (optimal string alignment), over
/// bytes: field names are ASCII.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for i in 0..=a.len() {
        d[i * width] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(width) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[(i - 1) * width + j] + 1)
                .min(d[i * width + j - 1] + 1)
                .min(d[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = best;
        }
    }
    d[a.len() * width + b.len()]
}

/// A `type.v3.Percent` field `f` (`{ value }`; without `value`, 0) within 0..=100; `invalid`
/// is the error for any other value.
pub(crate) fn percent_in_range(cx: &mut Cx, f: &Field<'_>, invalid: &str) -> Option<f64> {
    let mut o = Obj::new(cx, f, &[])?;
    let value = o.get(cx, "value");
    o.finish(cx);
    let Some(v) = value else {
        return Some(0.0);
    };
    match v.value.as_f64() {
        Some(n) if (0.0..=100.0).contains(&n) => Some(n),
        _ => {
            cx.error(&v.path, invalid);
            None
        }
    }
}

/// A `TypedExtensionConfig` (`name`, `typed_config`): its `typed_config` and that config's
/// `@type` (empty when it has none, for the caller to name as unsupported).
pub(crate) fn typed_extension<'v>(cx: &mut Cx, f: &Field<'v>) -> Option<(Field<'v>, String)> {
    let mut o = Obj::new(cx, f, &[])?;
    o.string(cx, "name");
    let typed = o.required(cx, "typed_config");
    o.finish(cx);
    let typed = typed?;
    let url = typed
        .value
        .get("@type")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_owned();
    Some((typed, url))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("0.25s"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.000340s"), Ok(Duration::new(1, 340_000)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(
            parse_duration("1.123456789s"),
            Ok(Duration::new(1, 123_456_789))
        );
        for bad in [
            "",
            "s",
            "5",
            "5ms",
            "1m",
            ".5s",
            "5.s",
            "1.1234567891s",
            "-1s",
            "1 s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert!(parse_duration("-1s").unwrap_err().contains("negative"));
    }

    #[test]
    fn names() {
        assert_eq!(to_camel("stat_prefix"), "statPrefix");
        assert_eq!(to_camel("name"), "name");
        assert_eq!(to_snake("statPrefix"), "stat_prefix");
        assert_eq!(to_snake("@type"), "@type");
        assert_eq!(suggest("nmae", &["name", "address"]), Some("name"));
        assert_eq!(suggest("zzzzzz", &["name", "address"]), None);
        assert_eq!(edit_distance("stat_prefx", "stat_prefix"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
