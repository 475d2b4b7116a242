//! ns/packet for one worker's load-balancing decision, without DPDK: the
//! worker loop's passes ([`CoreLb::prefetch_burst`],
//! [`CoreLb::prefetch_entries`], [`CoreLb::look_up_established`], then
//! [`CoreLb::process_prefetched`]) over bursts of 32 in-memory frames, with
//! the bench script's DUT services (DNAT to static neighbours). Each packet
//! is first copied from its pristine image, as a memif RX copies it into an
//! mbuf; `copy_only` measures that copy alone. With a million clients the
//! images themselves miss the caches (a hundred megabytes of them), which a
//! DUT's freshly received frames do not; `established_hao_1m_hot_of_4m`
//! instead gives one burst's worth of images each client's home address in
//! turn. `established_gen_mix_1k_of_4m` runs the bench script's own
//! established traffic (`roamlb gen`'s frames of its mix). Run with
//! `cargo bench --bench lb -- --warm-up-time 1 --measurement-time 3`.
//!
//! This isolates roamlb's own per-packet work from the PMD's: the end-to-end
//! figures (`scripts/bench.sh`) add memif's RX and TX copies and the rings.
#![forbid(unsafe_code)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use roamlb::config::Config;
use roamlb::dataplane::buckets::BucketMap;
use roamlb::dataplane::lb::{
    CoreLb, CoreSizing, Frame, Now, Prefetched, Topology, VecFrame, Verdict,
};
use roamlb::gen::{Generator, Profile, Transport};
use roamlb::identity::IdentityHasher;
use roamlb::packet::build::{self, Ext, L4};
use roamlb::runtime::worker::{lap_budget, slice_budget, LAP_PERIOD_MIN_MS};
use std::hint::black_box;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// The bench script's DUT services and neighbours (`scripts/bench.sh`).
const CONFIG: &str = r#"
[workers]
lcores = [1]
[[ports]]
name = "client"
device = "net_null0"
role = "client"
[[ports]]
name = "server"
device = "net_null1"
role = "server"
addresses = ["2001:db8:1::1/64", "192.0.2.1/24"]
[[service]]
name = "mobile6"
vip = "2001:db8:ffff::80"
protocol = "any"
identity = "slaac"
session_lifetime = "10s"
backend = [{ address = "2001:db8:1::10" }, { address = "2001:db8:1::11" }, { address = "2001:db8:1::12" }, { address = "2001:db8:1::13" }]
[[service]]
name = "web4"
vip = "198.51.100.80"
protocol = "any"
session_lifetime = "10s"
backend = [{ address = "192.0.2.30" }, { address = "192.0.2.31" }]
[[neighbor]]
address = "2001:db8:1::10"
mac = "02:00:00:00:10:10"
port = "server"
[[neighbor]]
address = "2001:db8:1::11"
mac = "02:00:00:00:10:11"
port = "server"
[[neighbor]]
address = "2001:db8:1::12"
mac = "02:00:00:00:10:12"
port = "server"
[[neighbor]]
address = "2001:db8:1::13"
mac = "02:00:00:00:10:13"
port = "server"
[[neighbor]]
address = "192.0.2.30"
mac = "02:00:00:00:10:30"
port = "server"
[[neighbor]]
address = "192.0.2.31"
mac = "02:00:00:00:10:31"
port = "server"
"#;

const BURST: usize = 32;
fn core(sessions: usize) -> (Arc<Topology>, CoreLb) {
    core_of(CONFIG, sessions)
}

fn core_of(config: &str, sessions: usize) -> (Arc<Topology>, CoreLb) {
    let cfg = Config::from_toml(config, "bench").expect("config");
    let macs = [[2, 0xc, 0, 0, 0, 1], [2, 5, 0, 0, 0, 1]];
    let topo = Arc::new(Topology::from_config(&cfg, &macs, false).expect("topology"));
    let mut map = BucketMap::new(4096, 0).expect("buckets");
    map.assign_cores(0, 1, |_| true).expect("assign");
    let sizing = CoreSizing {
        sessions,
        aliases: 1024,
        notify_guard: 1024,
        wall_base_ms: 0,
        neighbors: 1024,
        neighbor_hold: 64,
        extension_header_limit: 8,
        connections: 1024,
        workers: 1,
        icmp_errors_per_second: 1000,
        icmp_translated_per_second: 0,
    };
    let hasher = IdentityHasher::new(*b"0123456789abcdef");
    let lb = CoreLb::new(topo.clone(), 0, Arc::new(map), hasher, sizing).expect("core");
    (topo, lb)
}

/// `n` clients' frames of one shape.
fn clients(shape: &str, n: u32) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let hi = (i >> 16) as u16;
            let lo = i as u16;
            match shape {
                "hao" => {
                    let home = Ipv6Addr::new(0x2001, 0xdb8, 0x40, 0, 0, 0, hi, lo);
                    let coa = Ipv6Addr::new(0x2001, 0xdb8, 0xc0a, 0, 0, 0, hi, lo);
                    build::ethernet(
                        roamlb::packet::ethernet::EtherType::Ipv6,
                        &[],
                        &build::ipv6(
                            coa,
                            "2001:db8:ffff::80".parse().unwrap(),
                            &[Ext::Hao(home)],
                            &L4::Udp(5000, 80, vec![0; 8]),
                        ),
                    )
                }
                "ipv6" => {
                    let src = Ipv6Addr::new(0x2001, 0xdb8, 0xc0a, hi, 0, 0, 0, lo);
                    build::ethernet(
                        roamlb::packet::ethernet::EtherType::Ipv6,
                        &[],
                        &build::ipv6(
                            src,
                            "2001:db8:ffff::80".parse().unwrap(),
                            &[],
                            &L4::Udp(5000, 80, vec![0; 2]),
                        ),
                    )
                }
                _ => {
                    let src = Ipv4Addr::from(0x0a00_0000 | i);
                    build::ethernet(
                        roamlb::packet::ethernet::EtherType::Ipv4,
                        &[],
                        &build::ipv4(
                            src,
                            Ipv4Addr::new(198, 51, 100, 80),
                            &L4::Udp(5000, 80, vec![0; 18]),
                        ),
                    )
                }
            }
        })
        .collect()
}

/// `count` frames of `roamlb gen --nodes <nodes> --mix hao=80,esp=10,slaac=10
/// --move-every 64 --size 64`, the bench script's established profile.
fn generated(nodes: u32, count: usize) -> Vec<Vec<u8>> {
    let profile = Profile {
        nodes,
        mix: "hao=80,esp=10,slaac=10".parse().expect("mix"),
        move_every: 64,
        new_share: 0.0,
        transport: Transport::Udp,
        size: 64,
        vip6: "2001:db8:ffff::80".parse().unwrap(),
        vip4: Ipv4Addr::new(198, 51, 100, 80),
        dport: 80,
        src_mac: [2, 0, 0, 0, 0, 1],
        dst_mac: [2, 0, 0, 0, 0, 2],
    };
    let mut g = Generator::new(&profile).expect("generator");
    (0..count)
        .map(|_| {
            let p = g.plan();
            let mut f = vec![0; g.len_of(&p)];
            g.fill(&p, &mut f, 0);
            f
        })
        .collect()
}

/// Offset of the last four octets of client 0's home address,
/// 2001:db8:40::, in its HAO frame (client `i` has `i` there, big-endian).
fn home_address_at(image: &[u8]) -> usize {
    let home = Ipv6Addr::new(0x2001, 0xdb8, 0x40, 0, 0, 0, 0, 0).octets();
    image
        .windows(16)
        .position(|w| w == home)
        .expect("the home address is in the frame")
        + 12
}

/// One burst the way the worker runs it; returns the packets transmitted.
#[inline]
fn burst(
    topo: &Topology,
    lb: &mut CoreLb,
    frames: &mut [VecFrame],
    images: &[Vec<u8>],
    pre: &mut [Prefetched],
    now: Now,
) -> usize {
    for (f, image) in frames.iter_mut().zip(images) {
        f.load(image);
    }
    lb.prefetch_burst(topo, frames.iter().map(|f| f.bytes()), 0, pre);
    lb.prefetch_entries();
    lb.look_up_established(topo, pre, now);
    let mut sent = 0;
    for (f, p) in frames.iter_mut().zip(pre.iter()) {
        if let Verdict::Transmit(_) = lb.process_prefetched(topo, f, 0, now, p) {
            sent += 1;
        }
    }
    sent
}

/// A worker whose sessions for every client are established.
struct Established {
    topo: Arc<Topology>,
    lb: CoreLb,
    images: Vec<Vec<u8>>,
    frames: Vec<VecFrame>,
    pre: Vec<Prefetched>,
    at: usize,
}

impl Established {
    fn new(shape: &str, n: u32, room: usize) -> Self {
        let s = Self::from_images(clients(shape, n), room);
        assert_eq!(s.lb.sessions(), n as usize);
        s
    }

    /// A worker that has seen every frame of `images` once.
    fn from_images(images: Vec<Vec<u8>>, room: usize) -> Self {
        let (topo, mut lb) = core(room);
        let mut frames: Vec<VecFrame> = (0..BURST).map(|_| VecFrame::new(Vec::new())).collect();
        let mut pre = vec![Prefetched::default(); BURST];
        for chunk in images.chunks(BURST) {
            let k = chunk.len();
            let sent = burst(
                &topo,
                &mut lb,
                &mut frames[..k],
                chunk,
                &mut pre[..k],
                Now::from_secs(1),
            );
            assert_eq!(sent, k, "every client is forwarded");
        }
        Established {
            topo,
            lb,
            images,
            frames,
            pre,
            at: 0,
        }
    }

    /// The next burst's images, cycling through the clients.
    fn next_chunk(&mut self) -> std::ops::Range<usize> {
        let r = self.at..self.at + BURST;
        self.at = (self.at + BURST) % (self.images.len() - self.images.len() % BURST);
        r
    }

    /// One burst of the next images, at the clock's second 2; returns the
    /// packets transmitted.
    fn next_burst(&mut self) -> usize {
        let r = self.next_chunk();
        burst(
            &self.topo,
            &mut self.lb,
            &mut self.frames,
            &self.images[r],
            &mut self.pre,
            Now::from_secs(2),
        )
    }
}

/// A worker fed a new identity per packet.
struct Churn {
    topo: Arc<Topology>,
    lb: CoreLb,
    /// Offset of the home address's last four octets in `image`.
    home_at: usize,
    frames: Vec<VecFrame>,
    images: Vec<Vec<u8>>,
    pre: Vec<Prefetched>,
    next: u32,
    bursts: u64,
    created_at_last_expire: u64,
    /// Packets per second of the session clock.
    per_second: u64,
    /// The sweep's lap period (ms): the worker loop's, the shortest
    /// lifetime but at least a second.
    lap_ms: u32,
}

impl Churn {
    /// `new-100pct-hao-64`: sessions of 1 s, the clock ticking every 3.5M
    /// packets, so some 3.5 million live identities.
    fn crowded() -> Self {
        Self::with(1000, 3_500_000)
    }

    /// `new-1m-hao-64`: sessions of 200 ms at 5M packets a tick-second, so a
    /// million live identities, as the goal states the new-identity rate.
    fn million_live() -> Self {
        Self::with(200, 5_000_000)
    }

    fn with(lifetime_ms: u32, per_second: u64) -> Self {
        let config = CONFIG.replace(
            "session_lifetime = \"10s\"",
            &format!("session_lifetime = \"{lifetime_ms}ms\""),
        );
        let (topo, lb) = core_of(&config, 4 << 20);
        let image = clients("hao", 1).remove(0);
        // Client 0's home address, 2001:db8:40::, in its Home Address option.
        let home_at = home_address_at(&image);
        Churn {
            topo,
            lb,
            home_at,
            frames: (0..BURST).map(|_| VecFrame::new(Vec::new())).collect(),
            images: vec![image; BURST],
            pre: vec![Prefetched::default(); BURST],
            next: 1,
            bursts: 0,
            created_at_last_expire: 0,
            per_second,
            lap_ms: lifetime_ms.max(LAP_PERIOD_MIN_MS),
        }
    }

    fn burst(&mut self) -> usize {
        for img in self.images.iter_mut() {
            img[self.home_at..self.home_at + 4].copy_from_slice(&self.next.to_be_bytes());
            self.next = self.next.wrapping_add(1);
        }
        let now = Now::from_millis(1000 + self.bursts * BURST as u64 * 1000 / self.per_second);
        self.bursts += 1;
        if self.bursts % 256 == 0 {
            // The worker loop's slice (time here is packets, `per_second` to
            // the tick).
            let created = self.lb.counters.sessions_created;
            let churn = (created - self.created_at_last_expire) as usize;
            self.created_at_last_expire = created;
            let lap = lap_budget(
                self.lb.session_slots(),
                256 * BURST as u64,
                self.lap_ms,
                self.per_second,
            );
            self.lb.expire(now, slice_budget(churn, lap));
        }
        burst(
            &self.topo,
            &mut self.lb,
            &mut self.frames,
            &self.images,
            &mut self.pre,
            now,
        )
    }
}

fn lb_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("lb");
    g.throughput(Throughput::Elements(BURST as u64));
    // The bench script's DUT has room for 4M sessions per worker; the
    // 2048-session table shows what the big table's TLB misses cost.
    let cases: [(&str, u32, usize); 5] = [
        ("hao", 1_000, 4 << 20),
        ("hao", 1_000, 2048),
        ("ipv6", 1_000, 4 << 20),
        ("ipv4", 1_000, 4 << 20),
        ("hao", 1_000_000, 4 << 20),
    ];
    for (shape, n, room) in cases {
        let label = format!(
            "established_{shape}_{}_of_{}",
            if n >= 1_000_000 { "1m" } else { "1k" },
            if room >= 1 << 20 {
                format!("{}m", room >> 20)
            } else {
                format!("{room}")
            }
        );
        // Built on first use, so a filtered run sets up only its case.
        let mut state: Option<Established> = None;
        g.bench_function(label, |b| {
            let s = state.get_or_insert_with(|| Established::new(shape, n, room));
            b.iter(|| black_box(s.next_burst()))
        });
    }
    // A million HAO clients as the DUT sees them: the frames of a burst
    // are hot (memif has just copied them into the mbufs), unlike the
    // million distinct images above, each a miss of its own. The burst's
    // images are client 0's, given each client's home address in turn, so
    // only the tables' misses remain.
    let mut state: Option<(Established, usize, Vec<Vec<u8>>, u32)> = None;
    g.bench_function("established_hao_1m_hot_of_4m", |b| {
        let (s, home_at, hot, next) = state.get_or_insert_with(|| {
            let s = Established::new("hao", 1_000_000, 4 << 20);
            let home_at = home_address_at(&s.images[0]);
            let hot = vec![s.images[0].clone(); BURST];
            (s, home_at, hot, 0)
        });
        b.iter(|| {
            for img in hot.iter_mut() {
                img[*home_at..*home_at + 4].copy_from_slice(&next.to_be_bytes());
                *next = (*next + 1) % 1_000_000;
            }
            black_box(burst(
                &s.topo,
                &mut s.lb,
                &mut s.frames,
                hot,
                &mut s.pre,
                Now::from_secs(2),
            ))
        })
    });
    // The bench script's established traffic itself: `roamlb gen`'s
    // frames for 1,000 nodes of its mix (80 % HAO, 10 % ESP, 10 % SLAAC,
    // interleaved node by node, care-of addresses changing every 64
    // packets), 64 octets, so the packet path's branches see the DUT's mix.
    let mut state: Option<Established> = None;
    g.bench_function("established_gen_mix_1k_of_4m", |b| {
        let s =
            state.get_or_insert_with(|| Established::from_images(generated(1_000, 3_200), 4 << 20));
        b.iter(|| black_box(s.next_burst()))
    });
    // New identities, as `new-100pct-hao-64` of the bench script: every
    // packet a home address never seen, sessions of 1 s (its churn
    // configuration), the clock ticking every 3.5M packets (about the rate
    // measured end to end), and the worker loop's expiry slices.
    let mut state: Option<Churn> = None;
    g.bench_function("new_identities_hao", |b| {
        let s = state.get_or_insert_with(Churn::crowded);
        b.iter(|| black_box(s.burst()))
    });
    // New identities as `new-1m-hao-64` and the goal have them: a million
    // live (200 ms sessions at 5M packets a tick-second).
    let mut state: Option<Churn> = None;
    g.bench_function("new_identities_1m_live_hao", |b| {
        let s = state.get_or_insert_with(Churn::million_live);
        b.iter(|| black_box(s.burst()))
    });
    let mut state: Option<Established> = None;
    g.bench_function("copy_only_hao", |b| {
        let s = state.get_or_insert_with(|| Established::new("hao", 1_000, 2048));
        b.iter(|| {
            let r = s.next_chunk();
            for (f, image) in s.frames.iter_mut().zip(&s.images[r]) {
                f.load(image);
            }
            black_box(s.frames[BURST - 1].bytes()[20])
        })
    });
    g.finish();
}

criterion_group!(benches, lb_benches);
criterion_main!(benches);
