//! Two realistic flows built by hand, as weir's recorder would hand them out: a request on a
//! fresh connection that opens a new upstream connection, and the next request on the same
//! keep-alive connection, served by the pooled upstream connection.

use std::net::SocketAddr;

use weir_flow::{Event, EventKind as K, Flow, Lane, ReadResult, ShortText};

pub(crate) const WORKER: u16 = 0;
pub(crate) const DOWN_FD: i32 = 41;
pub(crate) const DOWN_CONN: u64 = 3;
pub(crate) const UP_FD: i32 = 44;
pub(crate) const UP_CONN: u64 = 4;
/// When the fresh request's connection was accepted: one second after the recorder's epoch.
pub(crate) const T0: u64 = 1_000_000_000;
/// When the keep-alive request arrived.
pub(crate) const T1: u64 = T0 + 20_000_000;

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

/// Builds a flow's events in order, with times relative to a base.
struct Recorder {
    base: u64,
    stream: u64,
    events: Vec<Event>,
}

impl Recorder {
    fn down(&mut self, dt: u64, stream: bool, kind: K) {
        let stream = if stream { self.stream } else { 0 };
        let at = self.base + dt;
        self.events.push(Event::new(
            at,
            WORKER,
            Lane::Downstream,
            DOWN_FD,
            DOWN_CONN,
            stream,
            kind,
        ));
    }

    fn up(&mut self, dt: u64, kind: K) {
        let at = self.base + dt;
        let stream = self.stream;
        self.events.push(Event::new(
            at,
            WORKER,
            Lane::Upstream,
            UP_FD,
            UP_CONN,
            stream,
            kind,
        ));
    }

    fn round(&mut self, dt: u64, round: u64, waited_ns: u64, ran_ns: u64) {
        let at = self.base + dt;
        let kind = K::WakeRound {
            round,
            ready: 1,
            waited_ns,
            ran_ns,
        };
        self.events
            .push(Event::new(at, WORKER, Lane::Worker, -1, 0, 0, kind));
    }

    fn finish(self, method: &str, path: &str, status: u16) -> Flow {
        Flow {
            stream: self.stream,
            worker: WORKER,
            downstream: DOWN_CONN,
            start: self.events.first().map_or(0, |e| e.at),
            end: self.events.last().map_or(0, |e| e.at),
            status,
            method: ShortText::new(method.as_bytes()),
            path: ShortText::new(path.as_bytes()),
            truncated: false,
            events: self.events,
        }
    }
}

fn registered() -> K {
    K::Registered {
        readable: true,
        writable: true,
        edge_triggered: true,
    }
}

fn readable() -> K {
    K::Ready {
        readable: true,
        writable: false,
        hup: false,
        error: false,
    }
}

fn writable() -> K {
    K::Ready {
        readable: false,
        writable: true,
        hup: false,
        error: false,
    }
}

fn read(result: ReadResult) -> K {
    K::Read {
        asked: 65536,
        result,
    }
}

/// Stream 7: accept, read, route, connect, write, read the response, write it back.
pub(crate) fn fresh() -> Flow {
    let mut r = Recorder {
        base: T0,
        stream: 7,
        events: Vec::new(),
    };
    r.down(
        0,
        false,
        K::Accept {
            peer: addr("10.0.0.1:58708"),
            local: addr("10.0.0.2:8080"),
        },
    );
    r.down(
        1_500,
        false,
        K::ListenerFilter {
            name: "tls_inspector".into(),
        },
    );
    r.down(
        3_000,
        false,
        K::FilterChain {
            name: "0.0.0.0_8080".into(),
        },
    );
    r.down(4_000, false, registered());
    r.round(31_400, 1, 1_004_000, 33_000);
    r.down(250_000, false, readable());
    r.down(251_000, false, read(ReadResult::Bytes(89)));
    r.down(252_000, false, read(ReadResult::WouldBlock));
    r.down(
        253_000,
        true,
        K::RequestHead {
            method: ShortText::new(b"GET"),
            path: ShortText::new(b"/index.html"),
            config: 1,
        },
    );
    r.down(253_500, true, K::RequestComplete);
    r.down(254_000, true, K::ReadPaused { syscall: false });
    r.down(
        256_000,
        true,
        K::RouteMatched {
            vhost: "local".into(),
            route: "".into(),
            cluster: "backend".into(),
        },
    );
    r.down(
        257_000,
        true,
        K::PoolCreated {
            cluster: "backend".into(),
            host: addr("10.0.0.3:80"),
        },
    );
    r.down(
        258_000,
        true,
        K::HostChosen {
            cluster: "backend".into(),
            host: addr("10.0.0.3:80"),
            policy: "round_robin",
            why: "weighted turn".into(),
        },
    );
    r.up(
        260_000,
        K::ConnectStarted {
            host: addr("10.0.0.3:80"),
        },
    );
    r.up(261_000, registered());
    r.round(290_000, 2, 218_600, 41_000);
    r.up(400_000, writable());
    r.up(401_000, K::Connected);
    r.up(402_000, K::StreamAttached { reused: false });
    r.up(
        404_000,
        K::Write {
            asked: 262,
            written: 262,
        },
    );
    r.round(420_000, 3, 110_000, 21_000);
    r.up(5_400_000, readable());
    r.up(5_401_000, read(ReadResult::Bytes(4511)));
    r.up(5_402_000, read(ReadResult::WouldBlock));
    r.up(5_403_000, K::ResponseHead { status: 200 });
    r.up(5_404_000, K::ResponseComplete);
    r.down(5_405_000, true, K::ReadResumed { syscall: false });
    r.down(
        5_407_000,
        true,
        K::Write {
            asked: 4631,
            written: 4631,
        },
    );
    r.round(5_430_000, 4, 4_980_000, 31_000);
    r.finish("GET", "/index.html", 200)
}

/// Stream 8: the next request on the same downstream connection, written to the pooled
/// upstream connection without a connect.
pub(crate) fn reused() -> Flow {
    let mut r = Recorder {
        base: T1,
        stream: 8,
        events: Vec::new(),
    };
    r.down(0, false, readable());
    r.down(1_000, false, read(ReadResult::Bytes(120)));
    r.down(2_000, false, read(ReadResult::WouldBlock));
    r.down(
        3_000,
        true,
        K::RequestHead {
            method: ShortText::new(b"GET"),
            path: ShortText::new(b"/api/items?page=2"),
            config: 1,
        },
    );
    r.down(3_500, true, K::RequestComplete);
    r.down(4_000, true, K::ReadPaused { syscall: false });
    r.down(
        5_000,
        true,
        K::RouteMatched {
            vhost: "local".into(),
            route: "api".into(),
            cluster: "backend".into(),
        },
    );
    r.down(
        6_000,
        true,
        K::HostChosen {
            cluster: "backend".into(),
            host: addr("10.0.0.3:80"),
            policy: "round_robin",
            why: "weighted turn".into(),
        },
    );
    r.up(7_000, K::StreamAttached { reused: true });
    r.up(
        9_000,
        K::Write {
            asked: 280,
            written: 280,
        },
    );
    r.round(12_000, 5, 14_590_000, 13_000);
    r.up(900_000, readable());
    r.up(901_000, read(ReadResult::Bytes(1024)));
    r.up(902_000, read(ReadResult::WouldBlock));
    r.up(903_000, K::ResponseHead { status: 404 });
    r.up(904_000, K::ResponseComplete);
    r.down(905_000, true, K::ReadResumed { syscall: false });
    r.down(
        907_000,
        true,
        K::Write {
            asked: 1100,
            written: 1100,
        },
    );
    r.round(910_000, 6, 888_000, 11_000);
    r.finish("GET", "/api/items?page=2", 404)
}

/// Both, newest first, as the recorder hands them out.
pub(crate) fn both() -> Vec<Flow> {
    vec![reused(), fresh()]
}

/// Stream 9: a new connection whose upstream refuses it; weir answers 503 UF itself, then
/// the client closes.
pub(crate) fn refused() -> Flow {
    let mut r = Recorder {
        base: T1 + 50_000_000,
        stream: 9,
        events: Vec::new(),
    };
    r.down(0, false, readable());
    r.down(1_000, false, read(ReadResult::Bytes(78)));
    r.down(
        2_000,
        true,
        K::RequestHead {
            method: ShortText::new(b"POST"),
            path: ShortText::new(b"/upload"),
            config: 1,
        },
    );
    r.down(2_500, true, K::RequestComplete);
    r.down(3_000, true, K::ReadPaused { syscall: false });
    r.down(
        4_000,
        true,
        K::RouteMatched {
            vhost: "local".into(),
            route: "".into(),
            cluster: "backend".into(),
        },
    );
    r.down(
        5_000,
        true,
        K::HostChosen {
            cluster: "backend".into(),
            host: addr("10.0.0.3:80"),
            policy: "round_robin",
            why: "weighted turn".into(),
        },
    );
    r.up(
        6_000,
        K::ConnectStarted {
            host: addr("10.0.0.3:80"),
        },
    );
    r.up(7_000, registered());
    r.round(9_000, 7, 1_000_000, 10_000);
    r.up(
        60_000,
        K::Ready {
            readable: true,
            writable: true,
            hup: true,
            error: true,
        },
    );
    r.up(
        61_000,
        K::Close {
            by: weir_flow::Closer::Error,
        },
    );
    r.down(
        62_000,
        true,
        K::LocalReply {
            status: 503,
            flag: "UF",
        },
    );
    r.down(
        63_000,
        true,
        K::Write {
            asked: 300,
            written: 120,
        },
    );
    r.round(64_000, 8, 51_000, 5_000);
    r.down(
        80_000,
        false,
        K::Ready {
            readable: false,
            writable: true,
            hup: false,
            error: false,
        },
    );
    r.down(
        81_000,
        true,
        K::Write {
            asked: 180,
            written: -32,
        },
    );
    r.down(82_000, false, read(ReadResult::Error(104)));
    r.down(
        83_000,
        false,
        K::Close {
            by: weir_flow::Closer::Error,
        },
    );
    r.round(84_000, 9, 15_000, 5_000);
    r.finish("POST", "/upload", 503)
}
