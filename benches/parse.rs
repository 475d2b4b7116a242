//! ns/packet for the classifier's per-packet work: parse + identity + keyed
//! hash, on the frame shapes roamlb sees. Run with
//! `cargo bench --bench parse -- --warm-up-time 1 --measurement-time 3`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use roamlb::identity::{binding_update, IdentityHasher, IdentityMode};
use roamlb::packet::build::{self, addr6, Ext, L4};
use roamlb::packet::mobility::{bu_flags, BindingUpdateRepr};
use roamlb::packet::{parse_into, ParseConfig, Parsed};
use std::hint::black_box;

const COA: &str = "2001:db8:c0a::1";
const CN: &str = "2001:db8:5::80";
const HOME: &str = "2001:db8:40::1";

fn frames() -> Vec<(&'static str, Vec<u8>)> {
    let mut padn_hao = vec![1, 2, 0, 0, 201, 16];
    padn_hao.extend_from_slice(&addr6(HOME).octets());
    let bu = BindingUpdateRepr {
        sequence: 10,
        flags: bu_flags::ACK | bu_flags::HOME_REGISTRATION,
        lifetime: 150,
        alternate_coa: Some(addr6("2001:db8:c0b::2")),
    };
    vec![
        (
            "ipv4_tcp",
            build::eth_ipv4("192.0.2.10", "198.51.100.1", &L4::Tcp(40000, 80, 1, 0x10)),
        ),
        (
            "ipv6_tcp",
            build::eth_ipv6(COA, CN, &[], &L4::Tcp(40000, 80, 1, 0x10)),
        ),
        (
            "ipv6_hao_tcp",
            build::eth_ipv6(
                COA,
                CN,
                &[Ext::Hao(addr6(HOME))],
                &L4::Tcp(40000, 80, 1, 0x10),
            ),
        ),
        (
            "ipv6_hbh_padn_hao_udp",
            build::eth_ipv6(
                COA,
                CN,
                &[Ext::HopByHop(vec![5, 2, 0, 0]), Ext::DestOpts(padn_hao)],
                &L4::Udp(5000, 53, vec![0; 32]),
            ),
        ),
        (
            "ipv6_esp",
            build::eth_ipv6(COA, CN, &[], &L4::Esp(0xabcd, 7)),
        ),
        (
            "ipv6_mh_bu",
            build::eth_ipv6(
                COA,
                "2001:db8:40::ffff",
                &[Ext::Hao(addr6(HOME))],
                &L4::BindingUpdate(bu),
            ),
        ),
    ]
}

fn bench(c: &mut Criterion) {
    let cfg = ParseConfig::new();
    let hasher = IdentityHasher::new(*b"roamlb-bench-key");
    let mut g = c.benchmark_group("parse_identity_hash");
    g.throughput(Throughput::Elements(1));
    for (name, frame) in frames() {
        assert!(roamlb::packet::parse(&frame, &cfg).is_ok(), "{name}");
        g.bench_function(name, |b| {
            let mut p = Parsed::default();
            b.iter(|| {
                let f = black_box(&frame[..]);
                let ok = parse_into(f, &cfg, &mut p).is_ok();
                let (id, h) = hasher
                    .identify(f, &p, IdentityMode::Default)
                    .map_or((None, 0), |(k, h)| (Some(k), h));
                black_box(&id);
                let bu = if p.is_binding_update() {
                    binding_update(f, &p).map_or(0, |b| b.sequence)
                } else {
                    0
                };
                // One black_box per value: boxing the tuple made the
                // harness store a bool and a u16 into one word and reload
                // it, a store-forwarding stall of its own (about 7 ns per
                // iteration in `perf annotate`) that the packet path does not
                // have.
                black_box(ok);
                black_box(h);
                black_box(bu);
            })
        });
    }
    g.finish();
    let mut g = c.benchmark_group("parse_only");
    g.throughput(Throughput::Elements(1));
    for (name, frame) in frames().into_iter().filter(|(n, _)| *n == "ipv6_hao_tcp") {
        g.bench_function(name, |b| {
            let mut p = Parsed::default();
            b.iter(|| black_box(parse_into(black_box(&frame[..]), &cfg, &mut p).is_ok()))
        });
    }
    g.finish();
    let mut g = c.benchmark_group("hash_only");
    let id = roamlb::identity::Identity::HomeAddress(addr6(HOME));
    g.bench_function("home_address", |b| {
        b.iter(|| black_box(hasher.hash(black_box(&id))))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
