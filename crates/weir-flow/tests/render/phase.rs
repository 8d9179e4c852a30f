//! `Phase::of`: every kind of event, on each lane.

use std::net::SocketAddr;

use weir_flow::{Closer, EventKind as K, Lane, Phase, ReadResult, ShortText};

fn every_kind() -> Vec<K> {
    let host: SocketAddr = "10.0.0.3:80".parse().unwrap();
    let ready = |readable, writable| K::Ready {
        readable,
        writable,
        hup: false,
        error: false,
    };
    vec![
        K::Accept {
            peer: "10.0.0.1:1".parse().unwrap(),
            local: "10.0.0.2:2".parse().unwrap(),
        },
        K::ListenerFilter {
            name: "tls_inspector".into(),
        },
        K::FilterChain {
            name: "chain".into(),
        },
        K::Registered {
            readable: true,
            writable: true,
            edge_triggered: true,
        },
        ready(true, false),
        ready(false, true),
        ready(true, true),
        K::Read {
            asked: 1,
            result: ReadResult::Bytes(1),
        },
        K::Write {
            asked: 1,
            written: 1,
        },
        K::RequestHead {
            method: ShortText::new(b"GET"),
            path: ShortText::new(b"/"),
            config: 1,
        },
        K::RequestComplete,
        K::ReadPaused { syscall: false },
        K::ReadResumed { syscall: false },
        K::RouteMatched {
            vhost: "v".into(),
            route: "r".into(),
            cluster: "c".into(),
        },
        K::PoolCreated {
            cluster: "c".into(),
            host,
        },
        K::HostChosen {
            cluster: "c".into(),
            host,
            policy: "round_robin",
            why: "weighted turn".into(),
        },
        K::ConnectStarted { host },
        K::Connected,
        K::TlsHandshake {
            version: "TLSv1.3".into(),
            cipher: "TLS_AES_128_GCM_SHA256".into(),
            server_name: Some("a.test".into()),
            alpn: None,
            resumed: false,
        },
        K::StreamAttached { reused: true },
        K::ResponseHead { status: 200 },
        K::ResponseComplete,
        K::LocalReply {
            status: 503,
            flag: "UF",
        },
        K::Close { by: Closer::Peer },
        K::WakeRound {
            round: 1,
            ready: 1,
            waited_ns: 1,
            ran_ns: 1,
        },
    ]
}

fn expected(lane: Lane, kind: &K) -> Option<Phase> {
    use Phase::*;
    let name = kind.name();
    match lane {
        Lane::Worker => None,
        _ if name == "wake_round" => None,
        Lane::Downstream => Some(match kind {
            K::Ready { readable: true, .. } => DownstreamReadRequest,
            K::Ready { .. } => DownstreamWriteResponse,
            _ => match name {
                "accept" | "listener_filter" | "filter_chain" | "tls_handshake" | "registered"
                | "read" | "request_head" | "request_complete" | "read_paused"
                | "route_matched" | "pool_created" | "host_chosen" | "connect_started"
                | "local_reply" => DownstreamReadRequest,
                "read_resumed" | "connected" | "stream_attached" | "response_head"
                | "response_complete" => UpstreamReadResponse,
                "write" | "close" => DownstreamWriteResponse,
                other => panic!("unexpected {other}"),
            },
        }),
        Lane::Upstream => Some(match kind {
            K::Ready { readable: true, .. } => UpstreamReadResponse,
            K::Ready { .. } => UpstreamWriteRequest,
            K::StreamAttached { reused: true } => DownstreamReadRequest,
            _ => match name {
                "pool_created" | "host_chosen" | "connect_started" | "registered" => {
                    DownstreamReadRequest
                }
                "read" | "response_head" | "response_complete" | "close" => UpstreamReadResponse,
                _ => UpstreamWriteRequest,
            },
        }),
    }
}

#[test]
fn every_kind_on_every_lane() {
    for lane in [Lane::Worker, Lane::Downstream, Lane::Upstream] {
        for kind in every_kind() {
            assert_eq!(
                Phase::of(lane, &kind),
                expected(lane, &kind),
                "{lane:?} {kind:?}"
            );
        }
    }
}

#[test]
fn the_seed_walk_lands_in_its_four_events() {
    use Phase::*;
    let host: SocketAddr = "10.0.0.3:80".parse().unwrap();
    let walk = [
        (
            Lane::Downstream,
            K::Ready {
                readable: true,
                writable: false,
                hup: false,
                error: false,
            },
            DownstreamReadRequest,
        ),
        (
            Lane::Upstream,
            K::ConnectStarted { host },
            DownstreamReadRequest,
        ),
        (
            Lane::Upstream,
            K::Ready {
                readable: false,
                writable: true,
                hup: false,
                error: false,
            },
            UpstreamWriteRequest,
        ),
        (
            Lane::Upstream,
            K::Write {
                asked: 262,
                written: 262,
            },
            UpstreamWriteRequest,
        ),
        (
            Lane::Upstream,
            K::Read {
                asked: 65536,
                result: ReadResult::Bytes(4511),
            },
            UpstreamReadResponse,
        ),
        (
            Lane::Downstream,
            K::ReadResumed { syscall: false },
            UpstreamReadResponse,
        ),
        (
            Lane::Downstream,
            K::Write {
                asked: 4631,
                written: 4631,
            },
            DownstreamWriteResponse,
        ),
    ];
    for (lane, kind, phase) in walk {
        assert_eq!(Phase::of(lane, &kind), Some(phase), "{lane:?} {kind:?}");
    }
}

#[test]
fn names_are_the_json_names() {
    for phase in Phase::ALL {
        assert_eq!(serde_json::to_value(phase).unwrap(), phase.name());
    }
    for lane in [Lane::Worker, Lane::Downstream, Lane::Upstream] {
        assert_eq!(serde_json::to_value(lane).unwrap(), lane.name());
    }
    for kind in every_kind() {
        assert_eq!(serde_json::to_value(&kind).unwrap()["event"], kind.name());
    }
}
