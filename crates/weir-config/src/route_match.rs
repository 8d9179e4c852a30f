//! What a route matches: `match` (path specifiers, `connect_matcher`, `case_sensitive`, header
//! matchers) and the string and regex matchers the header matchers and other filters share.

use crate::headers::{self, NameUse, check_value};
use crate::model::{
    HeaderMatchRule, HeaderMatcher, PathMatch, Regex, RouteMatch, RuntimeFraction, StringMatchKind,
    StringMatcher,
};
use crate::reader::{Cx, Field, Obj, has_any};

/// `config.route.v3.RouteMatch` fields weir does not support yet.
const ROUTE_MATCH_ENVOY: &[&str] = &[
    "path_separated_prefix",
    "path_match_policy",
    "query_parameters",
    "grpc",
    "tls_context",
    "dynamic_metadata",
    "filter_state",
    "cookies",
];

/// `config.route.v3.HeaderMatcher` fields weir does not support yet.
const HEADER_MATCHER_ENVOY: &[&str] = &["range_match", "treat_missing_header_as_empty"];

pub(crate) fn route_match(cx: &mut Cx, f: &Field<'_>) -> Option<RouteMatch> {
    let mut o = Obj::new(cx, f, ROUTE_MATCH_ENVOY)?;
    let prefix = o.get(cx, "prefix");
    let path = o.get(cx, "path");
    let regex = o.get(cx, "safe_regex");
    let connect = o.get(cx, "connect_matcher");
    let given: Vec<&Field<'_>> = [&prefix, &path, &regex, &connect]
        .into_iter()
        .flatten()
        .collect();
    let path_match = match given.as_slice() {
        [] => {
            // An unsupported specifier (path_separated_prefix…) is reported by finish().
            let other = has_any(f.value, &["path_separated_prefix", "path_match_policy"]);
            if !other {
                cx.error(
                    o.path(),
                    "a route match needs one of `prefix`, `path`, `safe_regex` or `connect_matcher`",
                );
            }
            None
        }
        [_] => {
            if let Some(p) = &prefix {
                p.string(cx)
                    .filter(|s| check_value(cx, &p.path, s))
                    .map(PathMatch::Prefix)
            } else if let Some(p) = &path {
                p.string(cx)
                    .filter(|s| check_value(cx, &p.path, s))
                    .map(PathMatch::Exact)
            } else if let Some(r) = &regex {
                regex_matcher(cx, r).map(PathMatch::Regex)
            } else if let Some(c) = &connect {
                // `RouteMatch.ConnectMatcher` has no fields.
                Obj::new(cx, c, &[])
                    .map(|o| o.finish(cx))
                    .map(|_| PathMatch::Connect)
            } else {
                None
            }
        }
        [_, second, ..] => {
            cx.error(
                &second.path,
                "only one of `prefix`, `path`, `safe_regex` and `connect_matcher` may be set",
            );
            None
        }
    };
    let case_sensitive = o.bool(cx, "case_sensitive").unwrap_or(true);
    let mut headers = Some(Vec::new());
    for h in o.list(cx, "headers") {
        match (header_matcher(cx, &h), &mut headers) {
            (Some(m), Some(list)) => list.push(m),
            _ => headers = None,
        }
    }
    let runtime_fraction = match o.get(cx, "runtime_fraction") {
        Some(r) => runtime_fraction(cx, &r).map(Some),
        None => Some(None),
    };
    o.finish(cx);
    Some(RouteMatch {
        path: path_match?,
        case_sensitive,
        headers: headers?,
        runtime_fraction: runtime_fraction?,
    })
}

/// `config.core.v3.RuntimeFractionalPercent`: `default_value` is required, as in Envoy.
fn runtime_fraction(cx: &mut Cx, f: &Field<'_>) -> Option<RuntimeFraction> {
    let mut o = Obj::new(cx, f, &[])?;
    let default = o
        .required(cx, "default_value")
        .and_then(|d| crate::http_filter::fractional_percent(cx, &d));
    let runtime_key = o.string(cx, "runtime_key").unwrap_or_default();
    o.finish(cx);
    Some(RuntimeFraction {
        default: default?,
        runtime_key,
    })
}

/// `type.matcher.v3.RegexMatcher`: `regex`, plus an empty `google_re2` (RE2 is the only engine).
pub(crate) fn regex_matcher(cx: &mut Cx, f: &Field<'_>) -> Option<Regex> {
    let mut o = Obj::new(cx, f, &[])?;
    if let Some(g) = o.get(cx, "google_re2")
        && let Some(go) = Obj::new(cx, &g, &["max_program_size"])
    {
        go.finish(cx);
    }
    let regex = o
        .required(cx, "regex")
        .and_then(|r| r.string(cx).and_then(|s| compile(cx, &r.path, &s)));
    o.finish(cx);
    regex
}

/// Compiles `source` to match whole inputs only, as Envoy's `safe_regex` does.
pub(crate) fn compile(cx: &mut Cx, path: &str, source: &str) -> Option<Regex> {
    if source.is_empty() {
        cx.error(path, "a regex must not be empty");
        return None;
    }
    // Check the expression on its own first: wrapped, `a)|(b` would parse and not be anchored.
    let compiled =
        regex::Regex::new(source).and_then(|_| regex::Regex::new(&format!("^(?:{source})$")));
    match compiled {
        Ok(compiled) => Some(Regex {
            source: source.to_owned(),
            compiled,
        }),
        Err(e) => {
            cx.error(
                path,
                format!("invalid regex `{source}`: {}", regex_message(&e)),
            );
            None
        }
    }
}

/// The regex crate's message on one line (its syntax errors draw a caret diagram).
fn regex_message(e: &regex::Error) -> String {
    let text = e.to_string();
    text.lines()
        .rev()
        .find_map(|l| l.strip_prefix("error: "))
        .map_or_else(
            || text.split_whitespace().collect::<Vec<_>>().join(" "),
            str::to_owned,
        )
}

/// `headers[]` of a route match (also the fault and health_check filters' `headers`).
pub(crate) fn header_matcher(cx: &mut Cx, f: &Field<'_>) -> Option<HeaderMatcher> {
    let mut o = Obj::new(cx, f, HEADER_MATCHER_ENVOY)?;
    let name = o
        .required(cx, "name")
        .and_then(|n| headers::name(cx, &n, NameUse::Match));
    let rules = [
        ("string_match", o.get(cx, "string_match")),
        ("exact_match", o.get(cx, "exact_match")),
        ("prefix_match", o.get(cx, "prefix_match")),
        ("suffix_match", o.get(cx, "suffix_match")),
        ("contains_match", o.get(cx, "contains_match")),
        ("safe_regex_match", o.get(cx, "safe_regex_match")),
        ("present_match", o.get(cx, "present_match")),
    ];
    let invert_match = o.bool(cx, "invert_match").unwrap_or(false);
    let given: Vec<(&str, &Field<'_>)> = rules
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (*k, v)))
        .collect();
    let rule = match given.as_slice() {
        [] => Some(HeaderMatchRule::Present(true)),
        [(kind, v)] => {
            let string = |cx: &mut Cx, kind: fn(String) -> StringMatchKind, min_one: bool| {
                let s = v.string(cx)?;
                if min_one && s.is_empty() {
                    cx.error(&v.path, "must not be empty");
                    return None;
                }
                Some(HeaderMatchRule::String(StringMatcher {
                    kind: kind(s),
                    ignore_case: false,
                }))
            };
            match *kind {
                "string_match" => string_matcher(cx, v).map(HeaderMatchRule::String),
                "exact_match" => string(cx, StringMatchKind::Exact, false),
                "prefix_match" => string(cx, StringMatchKind::Prefix, true),
                "suffix_match" => string(cx, StringMatchKind::Suffix, true),
                "contains_match" => string(cx, StringMatchKind::Contains, true),
                "safe_regex_match" => regex_matcher(cx, v).map(|r| {
                    HeaderMatchRule::String(StringMatcher {
                        kind: StringMatchKind::Regex(r),
                        ignore_case: false,
                    })
                }),
                _ => v.bool(cx).map(HeaderMatchRule::Present),
            }
        }
        [_, (_, second), ..] => {
            let names = given.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ");
            cx.error(
                &second.path,
                format!("a header matcher takes only one rule, found {names}"),
            );
            None
        }
    };
    o.finish(cx);
    Some(HeaderMatcher {
        name: name?,
        rule: rule?,
        invert_match,
    })
}

/// `type.matcher.v3.StringMatcher`.
pub(crate) fn string_matcher(cx: &mut Cx, f: &Field<'_>) -> Option<StringMatcher> {
    let mut o = Obj::new(cx, f, &["custom"])?;
    let kinds = [
        ("exact", o.get(cx, "exact")),
        ("prefix", o.get(cx, "prefix")),
        ("suffix", o.get(cx, "suffix")),
        ("contains", o.get(cx, "contains")),
        ("safe_regex", o.get(cx, "safe_regex")),
    ];
    let ignore_case = o.get(cx, "ignore_case");
    let ignore_case_value = ignore_case.as_ref().and_then(|i| i.bool(cx));
    let given: Vec<(&str, &Field<'_>)> = kinds
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (*k, v)))
        .collect();
    let kind = match given.as_slice() {
        [] => {
            if !has_any(f.value, &["custom"]) {
                cx.error(
                    o.path(),
                    "a string matcher needs one of `exact`, `prefix`, `suffix`, `contains` or `safe_regex`",
                );
            }
            None
        }
        [("safe_regex", v)] => {
            if ignore_case_value == Some(true)
                && let Some(i) = &ignore_case
            {
                cx.error(
                    &i.path,
                    "ignore_case has no effect with safe_regex; use (?i) in the regex",
                );
            }
            regex_matcher(cx, v).map(StringMatchKind::Regex)
        }
        [(kind, v)] => v.string(cx).and_then(|s| {
            if *kind != "exact" && s.is_empty() {
                cx.error(&v.path, "must not be empty");
                return None;
            }
            Some(match *kind {
                "prefix" => StringMatchKind::Prefix(s),
                "suffix" => StringMatchKind::Suffix(s),
                "contains" => StringMatchKind::Contains(s),
                _ => StringMatchKind::Exact(s),
            })
        }),
        [_, (_, second), ..] => {
            let names = given.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ");
            cx.error(
                &second.path,
                format!("a string matcher takes only one of exact, prefix, suffix, contains, safe_regex; found {names}"),
            );
            None
        }
    };
    o.finish(cx);
    Some(StringMatcher {
        kind: kind?,
        ignore_case: ignore_case_value.unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchored_regex() {
        let mut cx = Cx::default();
        let r = compile(&mut cx, "p", "/api/v[0-9]+").unwrap();
        assert!(r.compiled.is_match("/api/v12"));
        assert!(!r.compiled.is_match("/api/v12/x"));
        assert!(compile(&mut cx, "p", "a)|(b").is_none());
        assert!(cx.errors[0].message.starts_with("invalid regex `a)|(b`: "));
        assert!(!cx.errors[0].message.contains('\n'));
    }
}
