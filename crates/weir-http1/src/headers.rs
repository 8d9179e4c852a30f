//! Header fields: an ordered list with case-insensitive lookups, and list-value tokens.

use bytes::Bytes;

use crate::ascii::eq_ignore_case;

/// A header field as received: the name with its original case, the value with leading and
/// trailing whitespace (OWS) trimmed. Decoded fields are slices of the received head (zero
/// copy).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Field name, as sent.
    pub name: Bytes,
    /// Field value, without surrounding whitespace.
    pub value: Bytes,
}

/// An ordered list of header fields with case-insensitive lookups by name.
///
/// Order and duplicates are kept as received; lookups compare names ASCII case-insensitively.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers {
    list: Vec<Header>,
}

impl Headers {
    /// An empty list.
    pub fn new() -> Self {
        Headers { list: Vec::new() }
    }

    /// An empty list with room for `n` fields.
    pub fn with_capacity(n: usize) -> Self {
        Headers {
            list: Vec::with_capacity(n),
        }
    }

    /// Number of fields (duplicates counted).
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// How many fields fit before the list grows.
    pub fn capacity(&self) -> usize {
        self.list.capacity()
    }

    /// True when there are no fields.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The fields in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Header> {
        self.list.iter()
    }

    /// The value of the first field named `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&Bytes> {
        self.list
            .iter()
            .find(|h| name_eq(&h.name, name))
            .map(|h| &h.value)
    }

    /// The values of every field named `name` (case-insensitive), in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Bytes> + 'a {
        self.list
            .iter()
            .filter(move |h| name_eq(&h.name, name))
            .map(|h| &h.value)
    }

    /// True when a field named `name` (case-insensitive) is present.
    pub fn contains(&self, name: &str) -> bool {
        self.list.iter().any(|h| name_eq(&h.name, name))
    }

    /// True when some field named `name` has `token` among its comma-separated elements, both
    /// compared case-insensitively (e.g. `contains_token("connection", "close")`).
    pub fn contains_token(&self, name: &str, token: &str) -> bool {
        self.get_all(name)
            .flat_map(|v| list_tokens(v))
            .any(|t| t.eq_ignore_ascii_case(token.as_bytes()))
    }

    /// Adds a field at the end.
    pub fn append(&mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) {
        self.list.push(Header {
            name: name.into(),
            value: value.into(),
        });
    }

    /// Adds a field at the end.
    pub fn push(&mut self, header: Header) {
        self.list.push(header);
    }

    /// Removes every field named `name` (case-insensitive); returns how many were removed.
    pub fn remove(&mut self, name: &str) -> usize {
        // Most calls find nothing: look before `retain`, which walks and moves every element.
        if !self.contains(name) {
            return 0;
        }
        let before = self.list.len();
        self.list.retain(|h| !name_eq(&h.name, name));
        before - self.list.len()
    }

    /// Replaces every field named like `name` (case-insensitive) with one field at the end.
    pub fn set(&mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) {
        let name = name.into();
        if self.list.iter().any(|h| eq_ignore_case(&h.name, &name)) {
            self.list.retain(|h| !eq_ignore_case(&h.name, &name));
        }
        self.list.push(Header {
            name,
            value: value.into(),
        });
    }

    /// Keeps only the fields for which `f` returns true, in order.
    pub fn retain(&mut self, f: impl FnMut(&Header) -> bool) {
        self.list.retain(f);
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = &'a Header;
    type IntoIter = std::slice::Iter<'a, Header>;

    fn into_iter(self) -> Self::IntoIter {
        self.list.iter()
    }
}

impl FromIterator<Header> for Headers {
    fn from_iter<I: IntoIterator<Item = Header>>(iter: I) -> Self {
        Headers {
            list: iter.into_iter().collect(),
        }
    }
}

impl Extend<Header> for Headers {
    fn extend<I: IntoIterator<Item = Header>>(&mut self, iter: I) {
        self.list.extend(iter);
    }
}

fn name_eq(name: &[u8], wanted: &str) -> bool {
    eq_ignore_case(name, wanted.as_bytes())
}

/// Iterates the comma-separated elements of a list-valued field (e.g. `Connection`), trimmed of
/// whitespace, skipping empty elements.
///
/// Quoted strings are not treated specially: the fields this crate reads (`Connection`,
/// `Transfer-Encoding`, `Content-Length`) hold tokens only.
pub fn list_tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|t| !t.is_empty())
}

/// `value` without leading and trailing SP / HTAB.
pub(crate) fn trim_ows(value: &[u8]) -> &[u8] {
    let start = value
        .iter()
        .position(|&b| !is_ows(b))
        .unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|&b| !is_ows(b))
        .map_or(start, |i| i + 1);
    &value[start..end]
}

/// SP or HTAB.
pub(crate) fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// A `tchar` of RFC 9110 §5.6.2: the bytes a token is made of.
pub(crate) fn is_tchar(b: u8) -> bool {
    matches!(b,
        b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9'
        | b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+'
        | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~')
}

/// True for a non-empty run of `tchar`s.
pub(crate) fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}
