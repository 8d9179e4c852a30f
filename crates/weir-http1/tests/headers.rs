//! The header list and list-value tokens.

use weir_http1::{Bytes, Header, Headers, list_tokens};

#[test]
fn lookups_are_case_insensitive_and_ordered() {
    let mut h = Headers::with_capacity(4);
    assert!(h.is_empty());
    h.append("Host", "a");
    h.append("X-Dup", "1");
    h.append(Bytes::from_static(b"x-dup"), Bytes::from_static(b"2"));
    h.append("Connection", "keep-alive, Upgrade");
    assert_eq!(h.len(), 4);
    assert!(!h.is_empty());
    assert_eq!(h.get("HOST").unwrap(), "a");
    assert_eq!(h.get("x-DUP").unwrap(), "1");
    assert_eq!(h.get_all("X-DUP").collect::<Vec<_>>(), ["1", "2"]);
    assert!(h.contains("connection"));
    assert!(!h.contains("content-length"));
    assert!(h.get("nope").is_none());
    assert!(h.contains_token("connection", "upgrade"));
    assert!(h.contains_token("Connection", "KEEP-ALIVE"));
    assert!(!h.contains_token("connection", "close"));
    let names: Vec<&[u8]> = h.iter().map(|f| &f.name[..]).collect();
    assert_eq!(names, [&b"Host"[..], b"X-Dup", b"x-dup", b"Connection"]);
}

#[test]
fn remove_set_retain() {
    let mut h: Headers = [("A", "1"), ("b", "2"), ("a", "3"), ("C", "4")]
        .into_iter()
        .map(|(n, v)| Header {
            name: Bytes::from_static(n.as_bytes()),
            value: Bytes::from_static(v.as_bytes()),
        })
        .collect();
    assert_eq!(h.remove("a"), 2);
    assert_eq!(h.remove("a"), 0);
    assert_eq!(h.len(), 2);
    h.set("B", "9");
    assert_eq!(h.get_all("b").collect::<Vec<_>>(), ["9"]);
    let names: Vec<&[u8]> = h.iter().map(|f| &f.name[..]).collect();
    assert_eq!(
        names,
        [&b"C"[..], b"B"],
        "set removes then appends at the end"
    );
    h.retain(|f| &f.name[..] != b"C");
    assert_eq!(h.len(), 1);
    let mut more = Headers::new();
    more.push(Header {
        name: Bytes::from_static(b"D"),
        value: Bytes::new(),
    });
    h.extend(more.iter().cloned());
    assert_eq!(h.len(), 2);
    assert_eq!(h.get("d").unwrap(), "");
}

#[test]
fn list_token_iteration() {
    let cases: &[(&str, &[&str])] = &[
        ("close", &["close"]),
        (" keep-alive , Upgrade ", &["keep-alive", "Upgrade"]),
        (",,a,\t,b ,", &["a", "b"]),
        ("", &[]),
        (" , ", &[]),
        ("a b, c", &["a b", "c"]),
    ];
    for (value, want) in cases {
        let got: Vec<&[u8]> = list_tokens(value.as_bytes()).collect();
        let want: Vec<&[u8]> = want.iter().map(|s| s.as_bytes()).collect();
        assert_eq!(got, want, "{value:?}");
    }
}
