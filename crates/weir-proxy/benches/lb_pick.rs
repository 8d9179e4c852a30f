//! One pick of each load balancer over 10, 100 and 1000 hosts (`cargo bench -p weir-proxy
//! --features lb-bench --bench lb_pick`). Round robin and least request are measured with
//! equal weights (rotation; two random draws) and unequal ones (a walk over every host).

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use weir_config::LbPolicy;
use weir_proxy::lb_bench::Balancer;

fn picks(c: &mut Criterion) {
    let policies = [
        ("round_robin_equal", LbPolicy::RoundRobin, true),
        ("round_robin_weighted", LbPolicy::RoundRobin, false),
        (
            "least_request_equal",
            LbPolicy::LeastRequest {
                choice_count: 2,
                active_request_bias: 1.0,
            },
            true,
        ),
        (
            "least_request_weighted",
            LbPolicy::LeastRequest {
                choice_count: 2,
                active_request_bias: 1.0,
            },
            false,
        ),
        ("random", LbPolicy::Random, false),
        (
            "ring_hash",
            LbPolicy::RingHash {
                minimum_ring_size: 1024,
                maximum_ring_size: 8 * 1024 * 1024,
            },
            false,
        ),
        ("maglev", LbPolicy::Maglev { table_size: 65537 }, false),
    ];
    let mut group = c.benchmark_group("pick");
    for (name, policy, equal) in policies {
        for hosts in [10, 100, 1000] {
            let mut lb = Balancer::new(policy, hosts, equal);
            let mut hash = 0u64;
            group.bench_with_input(BenchmarkId::new(name, hosts), &hosts, |b, _| {
                b.iter(|| {
                    hash = hash.wrapping_add(0x9e37_79b9_7f4a_7c15);
                    lb.pick(Some(hash))
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, picks);
criterion_main!(benches);
