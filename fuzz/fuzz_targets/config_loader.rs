//! The config loader (`weir_config::parse`) over arbitrary text: UTF-8 as it is, anything else
//! through `from_utf8_lossy`. Seed it with the example configs and the YAML dictionary
//! (`fuzz/run.sh` does) so the mutations stay structured.
//!
//! A config that validates must never crash the proxy: its route tables are compiled as the
//! proxy compiles them and a few requests are routed; a forward names a real cluster.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_http1::{Headers, RequestHead, Version};
use weir_proxy::fuzzing::{Outcome, Router};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(bootstrap) = weir_config::parse(&text) else {
        return;
    };
    let clusters = bootstrap.clusters.len();
    let mut router = Router::new(&bootstrap, 1);
    for table in 0..router.tables() {
        for (authority, target) in [
            (&b"example.com"[..], &b"/"[..]),
            (b"api.example.com:10000", b"/v1/users/1?x=y"),
            (b"", b"*"),
        ] {
            let mut headers = Headers::new();
            headers.append("host", authority.to_vec());
            headers.append("x-canary", "1");
            let mut head = RequestHead {
                method: "GET".into(),
                target: target.to_vec().into(),
                version: Version::Http11,
                headers,
            };
            if let Outcome::Forward { cluster, .. } = router.route(table, authority, &mut head) {
                assert!(cluster < clusters, "cluster {cluster} of {clusters}");
            }
        }
    }
    // The dump of a valid config is JSON that serializes.
    let _ = serde_json::to_string(&bootstrap.source).expect("source serializes");
});
