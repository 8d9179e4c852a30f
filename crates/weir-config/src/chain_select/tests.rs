use std::net::{IpAddr, SocketAddr};

use super::*;

fn range(s: &str) -> CidrRange {
    let (address, len) = s.split_once('/').unwrap();
    CidrRange {
        address: address.parse().unwrap(),
        prefix_len: len.parse().unwrap(),
    }
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// A connection from 10.0.0.9:5555 to 10.1.2.3:443, plain, no SNI, no ALPN.
struct Conn {
    local: SocketAddr,
    direct_peer: SocketAddr,
    peer: SocketAddr,
    sni: Option<&'static str>,
    transport: &'static str,
    alpn: Vec<String>,
}

impl Conn {
    fn new() -> Conn {
        Conn {
            local: "10.1.2.3:443".parse().unwrap(),
            direct_peer: "10.0.0.9:5555".parse().unwrap(),
            peer: "10.0.0.9:5555".parse().unwrap(),
            sni: None,
            transport: "raw_buffer",
            alpn: Vec::new(),
        }
    }

    fn from(mut self, peer: &str) -> Conn {
        self.peer = peer.parse().unwrap();
        self.direct_peer = self.peer;
        self
    }

    fn to(mut self, local: &str) -> Conn {
        self.local = local.parse().unwrap();
        self
    }

    fn tls(mut self, sni: Option<&'static str>, alpn: &[&str]) -> Conn {
        self.sni = sni;
        self.transport = "tls";
        self.alpn = names(alpn);
        self
    }

    fn facts(&self) -> ConnectionFacts<'_> {
        ConnectionFacts {
            local: self.local,
            direct_peer: self.direct_peer,
            peer: self.peer,
            server_name: self.sni,
            transport_protocol: self.transport,
            application_protocols: &self.alpn,
        }
    }
}

fn selector(matches: &[FilterChainMatch]) -> ChainSelector {
    let refs: Vec<&FilterChainMatch> = matches.iter().collect();
    ChainSelector::new(&refs).unwrap()
}

fn select(matches: &[FilterChainMatch], conn: &Conn) -> Option<usize> {
    selector(matches).select(&conn.facts())
}

fn any() -> FilterChainMatch {
    FilterChainMatch::default()
}

fn port(p: u16) -> FilterChainMatch {
    FilterChainMatch {
        destination_port: Some(p),
        ..any()
    }
}

fn dest(ranges: &[&str]) -> FilterChainMatch {
    FilterChainMatch {
        prefix_ranges: ranges.iter().map(|r| range(r)).collect(),
        ..any()
    }
}

fn sni(list: &[&str]) -> FilterChainMatch {
    FilterChainMatch {
        server_names: names(list),
        ..any()
    }
}

fn alpn(list: &[&str]) -> FilterChainMatch {
    FilterChainMatch {
        application_protocols: names(list),
        ..any()
    }
}

fn source_type(t: SourceType) -> FilterChainMatch {
    FilterChainMatch {
        source_type: t,
        ..any()
    }
}

fn source(ranges: &[&str]) -> FilterChainMatch {
    FilterChainMatch {
        source_prefix_ranges: ranges.iter().map(|r| range(r)).collect(),
        ..any()
    }
}

#[test]
fn a_lone_catch_all_takes_everything() {
    assert_eq!(select(&[any()], &Conn::new()), Some(0));
    assert_eq!(select(&[], &Conn::new()), None);
}

#[test]
fn destination_port_exact_beats_any_and_a_miss_is_any() {
    let chains = [any(), port(443), port(80)];
    assert_eq!(select(&chains, &Conn::new()), Some(1));
    assert_eq!(select(&chains, &Conn::new().to("10.1.2.3:80")), Some(2));
    assert_eq!(select(&chains, &Conn::new().to("10.1.2.3:8080")), Some(0));
    assert_eq!(select(&[port(80)], &Conn::new()), None);
}

#[test]
fn destination_ip_takes_the_longest_prefix() {
    let chains = [dest(&["10.0.0.0/8"]), dest(&["10.1.0.0/16"]), any()];
    assert_eq!(select(&chains, &Conn::new()), Some(1));
    assert_eq!(select(&chains, &Conn::new().to("10.9.0.1:443")), Some(0));
    assert_eq!(select(&chains, &Conn::new().to("192.0.2.1:443")), Some(2));
    assert_eq!(
        select(&chains, &Conn::new().to("[2001:db8::1]:443")),
        Some(2)
    );
}

#[test]
fn an_explicit_everything_range_beats_any_and_does_not_overlap_it() {
    let chains = [any(), dest(&["0.0.0.0/0"])];
    assert_eq!(select(&chains, &Conn::new()), Some(1));
    assert_eq!(
        select(&chains, &Conn::new().to("[2001:db8::1]:443")),
        Some(0)
    );
}

#[test]
fn ipv4_mapped_addresses_match_ipv4_ranges() {
    let chains = [dest(&["10.1.0.0/16"]), source(&["10.0.0.0/24"])];
    let mapped = Conn::new()
        .to("[::ffff:10.1.2.3]:443")
        .from("[::ffff:10.0.0.9]:5555");
    assert_eq!(select(&chains, &mapped), Some(0));
    let mapped = Conn::new()
        .to("[::ffff:192.0.2.1]:443")
        .from("[::ffff:10.0.0.9]:5555");
    assert_eq!(select(&chains, &mapped), Some(1));
    // A mapped loopback peer is loopback.
    let chains = [source_type(SourceType::SameIpOrLoopback)];
    let conn = Conn::new().from("[::ffff:127.0.0.1]:5555");
    assert_eq!(select(&chains, &conn), Some(0));
}

#[test]
fn server_name_exact_then_longest_wildcard_then_any() {
    let chains = [
        sni(&["*.example.com"]),
        sni(&["*.b.example.com"]),
        sni(&["www.b.example.com"]),
        any(),
    ];
    let with = |name| select(&chains, &Conn::new().tls(Some(name), &[]));
    assert_eq!(with("www.b.example.com"), Some(2));
    assert_eq!(with("WWW.B.Example.COM"), Some(2));
    assert_eq!(with("a.b.example.com"), Some(1));
    assert_eq!(with("x.a.b.example.com"), Some(1));
    assert_eq!(with("a.example.com"), Some(0));
    assert_eq!(with("example.com"), Some(3));
    assert_eq!(with("other.org"), Some(3));
    assert_eq!(select(&chains, &Conn::new()), Some(3));
}

#[test]
fn a_wildcard_needs_a_label_before_its_suffix() {
    let chains = [sni(&["*.example.com"])];
    let with = |name| select(&chains, &Conn::new().tls(Some(name), &[]));
    assert_eq!(with("a.example.com"), Some(0));
    assert_eq!(with("a.b.example.com"), Some(0));
    assert_eq!(with("example.com"), None);
    assert_eq!(with("aexample.com"), None);
    assert_eq!(with("é.example.com"), Some(0));
}

#[test]
fn server_names_in_config_are_case_insensitive() {
    let chains = [sni(&["*.Example.COM", "Foo.org"])];
    let with = |name| select(&chains, &Conn::new().tls(Some(name), &[]));
    assert_eq!(with("a.example.com"), Some(0));
    assert_eq!(with("foo.ORG"), Some(0));
}

#[test]
fn transport_protocol_exact_then_any() {
    let tls = FilterChainMatch {
        transport_protocol: Some("tls".to_owned()),
        ..any()
    };
    let raw = FilterChainMatch {
        transport_protocol: Some("raw_buffer".to_owned()),
        ..any()
    };
    assert_eq!(select(&[tls.clone(), raw.clone()], &Conn::new()), Some(1));
    let tls_conn = Conn::new().tls(None, &[]);
    assert_eq!(select(&[tls.clone(), raw.clone()], &tls_conn), Some(0));
    assert_eq!(select(&[raw.clone(), any()], &tls_conn), Some(1));
    assert_eq!(select(&[raw], &tls_conn), None);
}

#[test]
fn application_protocols_in_the_clients_order_then_any() {
    let chains = [alpn(&["http/1.1"]), alpn(&["h2"]), any()];
    let offer = |list: &[&str]| select(&chains, &Conn::new().tls(None, list));
    assert_eq!(offer(&["h2", "http/1.1"]), Some(1));
    assert_eq!(offer(&["http/1.1", "h2"]), Some(0));
    assert_eq!(offer(&["spdy/3", "http/1.1"]), Some(0));
    assert_eq!(offer(&["spdy/3"]), Some(2));
    assert_eq!(offer(&[]), Some(2));
}

#[test]
fn direct_source_ip_takes_the_longest_prefix() {
    let direct = |r: &[&str]| FilterChainMatch {
        direct_source_prefix_ranges: r.iter().map(|r| range(r)).collect(),
        ..any()
    };
    let chains = [direct(&["10.0.0.0/8"]), direct(&["10.0.0.0/24"]), any()];
    assert_eq!(select(&chains, &Conn::new()), Some(1));
    assert_eq!(select(&chains, &Conn::new().from("10.5.0.1:1")), Some(0));
    assert_eq!(select(&chains, &Conn::new().from("192.0.2.1:1")), Some(2));
    // The downstream address (after PROXY protocol) is not the direct peer.
    let mut conn = Conn::new();
    conn.peer = "192.0.2.1:1".parse().unwrap();
    assert_eq!(select(&chains, &conn), Some(1));
}

#[test]
fn source_type_local_or_external_then_any() {
    let chains = [
        source_type(SourceType::SameIpOrLoopback),
        source_type(SourceType::External),
    ];
    assert_eq!(select(&chains, &Conn::new()), Some(1));
    assert_eq!(select(&chains, &Conn::new().from("127.0.0.1:1")), Some(0));
    assert_eq!(select(&chains, &Conn::new().from("[::1]:1")), Some(0));
    // Only 127.0.0.1 is loopback to Envoy, not the rest of 127/8.
    assert_eq!(select(&chains, &Conn::new().from("127.0.0.2:1")), Some(1));
    let same = Conn::new().from("127.0.0.2:1").to("127.0.0.2:443");
    assert_eq!(select(&chains, &same), Some(0));
    // The connection's own IP counts as local.
    assert_eq!(select(&chains, &Conn::new().from("10.1.2.3:1")), Some(0));

    let local_or_any = [source_type(SourceType::SameIpOrLoopback), any()];
    assert_eq!(select(&local_or_any, &Conn::new()), Some(1));
    assert_eq!(
        select(&local_or_any, &Conn::new().from("127.0.0.1:1")),
        Some(0)
    );
    let external_only = [source_type(SourceType::External)];
    assert_eq!(
        select(&external_only, &Conn::new().from("127.0.0.1:1")),
        None
    );
}

#[test]
fn source_ip_longest_prefix_then_source_port() {
    let with_ports = |r: &[&str], ports: &[u16]| FilterChainMatch {
        source_prefix_ranges: r.iter().map(|r| range(r)).collect(),
        source_ports: ports.to_vec(),
        ..any()
    };
    let chains = [
        with_ports(&["10.0.0.0/8"], &[]),
        with_ports(&["10.0.0.0/24"], &[5555, 6666]),
        with_ports(&["10.0.0.0/24"], &[]),
    ];
    assert_eq!(select(&chains, &Conn::new()), Some(1));
    assert_eq!(select(&chains, &Conn::new().from("10.0.0.9:6666")), Some(1));
    assert_eq!(select(&chains, &Conn::new().from("10.0.0.9:7777")), Some(2));
    assert_eq!(select(&chains, &Conn::new().from("10.7.0.9:5555")), Some(0));
    assert_eq!(select(&chains, &Conn::new().from("192.0.2.1:5555")), None);
}

#[test]
fn levels_apply_in_envoys_order() {
    // The destination port decides before the server name does.
    let chains = [
        FilterChainMatch {
            server_names: names(&["a.com"]),
            ..any()
        },
        port(443),
    ];
    assert_eq!(
        select(&chains, &Conn::new().tls(Some("a.com"), &[])),
        Some(1)
    );
    // The server name decides before the source range does.
    let chains = [
        sni(&["a.com"]),
        FilterChainMatch {
            source_prefix_ranges: vec![range("10.0.0.9/32")],
            ..any()
        },
    ];
    assert_eq!(
        select(&chains, &Conn::new().tls(Some("a.com"), &[])),
        Some(0)
    );
}

#[test]
fn no_backtracking_when_the_most_specific_branch_fails_deeper() {
    // 443 is taken, its only chain wants another source: no chain, not the catch-all.
    let chains = [
        FilterChainMatch {
            destination_port: Some(443),
            source_prefix_ranges: vec![range("192.0.2.0/24")],
            ..any()
        },
        any(),
    ];
    assert_eq!(select(&chains, &Conn::new()), None);
    // The same at the server name level: the exact name wins, then ALPN fails under it.
    let chains = [
        FilterChainMatch {
            server_names: names(&["a.com"]),
            application_protocols: names(&["h2"]),
            ..any()
        },
        alpn(&["http/1.1"]),
    ];
    let conn = Conn::new().tls(Some("a.com"), &["http/1.1"]);
    assert_eq!(select(&chains, &conn), None);
    let conn = Conn::new().tls(Some("b.com"), &["http/1.1"]);
    assert_eq!(select(&chains, &conn), Some(1));
}

#[test]
fn a_chain_listing_several_values_is_filed_under_each() {
    let chains = [
        FilterChainMatch {
            server_names: names(&["a.com", "*.b.com"]),
            source_ports: vec![1, 2],
            ..any()
        },
        sni(&["c.com"]),
    ];
    let conn = |name, port| {
        let mut c = Conn::new().tls(Some(name), &[]);
        c.peer.set_port(port);
        c
    };
    assert_eq!(select(&chains, &conn("a.com", 1)), Some(0));
    assert_eq!(select(&chains, &conn("x.b.com", 2)), Some(0));
    assert_eq!(select(&chains, &conn("a.com", 3)), None);
    assert_eq!(select(&chains, &conn("c.com", 3)), Some(1));
}

fn overlap_of(matches: &[FilterChainMatch]) -> Option<(usize, usize)> {
    let refs: Vec<&FilterChainMatch> = matches.iter().collect();
    ChainSelector::new(&refs).err()
}

#[test]
fn overlapping_chains_are_found() {
    assert_eq!(overlap_of(&[any(), any()]), Some((0, 1)));
    assert_eq!(overlap_of(&[port(80), any(), port(80)]), Some((0, 2)));
    assert_eq!(
        overlap_of(&[sni(&["a.com", "b.com"]), sni(&["B.com"])]),
        Some((0, 1))
    );
    // Same range written two ways.
    assert_eq!(
        overlap_of(&[dest(&["10.0.0.1/8"]), dest(&["10.0.0.0/8"])]),
        Some((0, 1))
    );
    // `*.a.com` is filed as `.a.com`, as a bare `.a.com` is.
    assert_eq!(
        overlap_of(&[sni(&["*.a.com"]), sni(&[".a.com"])]),
        Some((0, 1))
    );
    // An empty name is "any".
    assert_eq!(overlap_of(&[sni(&[""]), any()]), Some((0, 1)));
    // A value listed twice in one chain.
    assert_eq!(overlap_of(&[any(), sni(&["a.com", "A.com"])]), Some((1, 1)));
    assert_eq!(
        overlap_of(&[source(&["10.0.0.0/8", "10.1.0.0/8"])]),
        Some((0, 0))
    );
}

#[test]
fn chains_differing_anywhere_do_not_overlap() {
    assert_eq!(overlap_of(&[any(), port(80)]), None);
    assert_eq!(
        overlap_of(&[dest(&["10.0.0.0/8"]), dest(&["10.0.0.0/16"])]),
        None
    );
    assert_eq!(overlap_of(&[any(), dest(&["0.0.0.0/0"])]), None);
    assert_eq!(overlap_of(&[sni(&["*.a.com"]), sni(&["a.com"])]), None);
    assert_eq!(
        overlap_of(&[
            source_type(SourceType::External),
            source_type(SourceType::SameIpOrLoopback),
            any()
        ]),
        None
    );
    let both = FilterChainMatch {
        server_names: names(&["a.com"]),
        source_ports: vec![1],
        ..any()
    };
    assert_eq!(overlap_of(&[both, sni(&["a.com"])]), None);
}

#[test]
fn what_the_caller_must_look_up() {
    let s = selector(&[port(80), source(&["10.0.0.0/8"])]);
    assert!(!s.uses_destination_ip());
    assert!(!s.uses_tls_facts());
    assert!(selector(&[dest(&["10.0.0.0/8"])]).uses_destination_ip());
    assert!(selector(&[source_type(SourceType::External)]).uses_destination_ip());
    assert!(selector(&[sni(&["a.com"])]).uses_tls_facts());
    assert!(selector(&[alpn(&["h2"])]).uses_tls_facts());
    let raw = FilterChainMatch {
        transport_protocol: Some("raw_buffer".to_owned()),
        ..any()
    };
    assert!(selector(&[raw]).uses_tls_facts());
    // An empty server name is no server name.
    assert!(!selector(&[sni(&[""])]).uses_tls_facts());
}

#[test]
fn unused_facts_may_be_unspecified() {
    let s = selector(&[port(443), port(80)]);
    let mut conn = Conn::new();
    conn.local = SocketAddr::new(IpAddr::from([0, 0, 0, 0]), 80);
    assert_eq!(s.select(&conn.facts()), Some(1));
}
