//! Shared body of the EAL tests: each test file starts the EAL once, in its own
//! memory mode, and runs [`run_all`].

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dpdk::ring::{mbuf_ring, typed_ring};
use dpdk::{Eal, LcoreId, Mempool, PacketBurst, Port, PortSetup, SocketId};

/// Whether this machine has free hugepages and a mounted hugetlbfs.
#[allow(dead_code)]
pub fn hugepages_available() -> bool {
    let free = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("HugePages_Free:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(0);
    let mounted = std::fs::read_to_string("/proc/mounts")
        .map(|m| {
            m.lines()
                .any(|l| l.split_whitespace().nth(2) == Some("hugetlbfs"))
        })
        .unwrap_or(false);
    free >= 64 && mounted
}

/// Starts the EAL with net_ring0 on lcores 0 (main) and 1 (worker).
pub fn start_eal(hugepages: bool) -> Eal {
    dpdk::eal::log_to_stderr().unwrap();
    let mut args = vec![
        "-l",
        "0,1",
        "--no-pci",
        "--vdev=net_ring0",
        "--log-level=warning",
    ];
    if !hugepages {
        // --in-memory implies hugepage files; without hugepages, --no-shconf
        // is what keeps the process free of shared runtime files.
        args.extend(["--no-huge", "--no-shconf", "-m", "128"]);
    } else {
        args.push("--in-memory");
    }
    Eal::init(args).expect("EAL starts")
}

const PACKETS: usize = 20_000;
const FRAME: usize = 64;

fn fill(frame: &mut [u8], seq: u32) {
    for (i, b) in frame.iter_mut().enumerate() {
        *b = (seq as usize).wrapping_mul(31).wrapping_add(i) as u8;
    }
    frame[..4].copy_from_slice(&seq.to_be_bytes());
}

/// Sends PACKETS frames from the worker lcore over net_ring0 (a loopback:
/// what TX queue 0 sends, RX queue 0 receives) and checks every one on the
/// main lcore, in order, byte for byte; then checks every mbuf came back.
fn ring_port_between_two_lcores(eal: &Eal) {
    let pool = Arc::new(Mempool::create("test_pool", 4095, 64, 2176, SocketId::ANY).unwrap());
    assert_eq!(pool.available(), 4095);
    let id = Port::lookup("net_ring0").unwrap();
    let setup = PortSetup {
        rx_queues: 1,
        tx_queues: 1,
        rx_descriptors: 512,
        tx_descriptors: 512,
        mtu: None,
        promiscuous: false,
        rss_hash_types: 0,
    };
    let mut port = Port::configure(id, "ring", &setup, pool.clone()).unwrap();
    assert_eq!(port.port_info().driver, "net_ring");
    port.start().unwrap();
    let mut rxq = port.take_rx_queue(0).unwrap();
    let mut txq = port.take_tx_queue(0).unwrap();
    assert!(
        port.take_rx_queue(0).is_none(),
        "a queue handle is handed out once"
    );

    let worker = eal.worker_lcores()[0];
    assert_eq!(worker, LcoreId(1));
    let tx_pool = pool.clone();
    let handle = dpdk::lcore::launch(worker, move || {
        let mut burst = PacketBurst::new();
        let mut seq = 0u32;
        let deadline = Instant::now() + Duration::from_secs(20);
        while (seq as usize) < PACKETS && Instant::now() < deadline {
            while burst.len() < 32 && (seq as usize) < PACKETS {
                let Some(mut m) = tx_pool.alloc() else { break };
                fill(m.append(FRAME as u16).expect("room for a frame"), seq);
                burst.push(m).expect("burst has room");
                seq += 1;
            }
            // Retry what the ring did not take, in order.
            while !burst.is_empty() && Instant::now() < deadline {
                let before = burst.len();
                let (sent, dropped) = txq.send(&mut burst);
                if dropped > 0 {
                    // send() frees what it could not queue: account for it by
                    // rewinding the sequence so the receiver still sees all.
                    seq -= (before - sent) as u32;
                    std::thread::yield_now();
                }
            }
        }
        seq as i32
    })
    .unwrap();

    let mut burst = PacketBurst::new();
    let mut expected = 0u32;
    let deadline = Instant::now() + Duration::from_secs(30);
    while (expected as usize) < PACKETS && Instant::now() < deadline {
        if rxq.recv(&mut burst, 32) == 0 {
            std::hint::spin_loop();
            continue;
        }
        for m in burst.drain() {
            assert_eq!(m.len(), FRAME);
            let mut want = [0u8; FRAME];
            fill(&mut want, expected);
            assert_eq!(
                m.data(),
                &want[..],
                "packet {expected} arrived intact and in order"
            );
            expected += 1;
        }
    }
    assert_eq!(handle.join().unwrap(), PACKETS as i32);
    assert_eq!(expected as usize, PACKETS, "every packet received");
    port.close().unwrap();
    assert_eq!(pool.in_use(), 0, "every mbuf is back in the pool");
    assert_eq!(pool.available(), 4095);
}

/// Typed messages and mbufs cross lcores through rings without loss.
fn rings_between_two_lcores(eal: &Eal) {
    #[derive(Debug, PartialEq)]
    struct Msg {
        seq: u64,
        text: String,
    }
    let (tx, mut rx) = typed_ring::<Msg>("test_msgs", 64, SocketId::ANY).unwrap();
    let worker = eal.worker_lcores()[0];
    let h = dpdk::lcore::launch(worker, move || {
        for seq in 0..1000u64 {
            let mut m = Msg {
                seq,
                text: format!("message {seq}"),
            };
            loop {
                match tx.send(m) {
                    Ok(()) => break,
                    Err(back) => {
                        m = back;
                        std::hint::spin_loop();
                    }
                }
            }
        }
        0
    })
    .unwrap();
    let mut next = 0u64;
    let deadline = Instant::now() + Duration::from_secs(10);
    while next < 1000 && Instant::now() < deadline {
        if let Some(m) = rx.try_recv() {
            assert_eq!(
                m,
                Msg {
                    seq: next,
                    text: format!("message {next}")
                }
            );
            next += 1;
        }
    }
    assert_eq!(h.join().unwrap(), 0);
    assert_eq!(next, 1000);

    // Undelivered messages are dropped (their destructors run) with the ring.
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    struct Counted(#[allow(dead_code)] u32);
    impl Drop for Counted {
        fn drop(&mut self) {
            DROPS.fetch_add(1, Ordering::SeqCst);
        }
    }
    let (tx, rx) = typed_ring::<Counted>("test_drops", 8, SocketId::ANY).unwrap();
    for _ in 0..5 {
        tx.send(Counted(7)).ok().unwrap();
    }
    drop(rx);
    drop(tx);
    assert_eq!(DROPS.load(Ordering::SeqCst), 5);

    // Mbuf ring: a full ring leaves the rest in the burst; dropping the
    // consumer frees what was queued.
    let pool = Mempool::create("ring_pool", 1023, 0, 512, SocketId::ANY).unwrap();
    let (prod, mut cons) = mbuf_ring("test_mbufs", 16, SocketId::ANY).unwrap();
    let mut burst = PacketBurst::new();
    for _ in 0..32 {
        burst.push(pool.alloc().unwrap()).unwrap();
    }
    assert_eq!(prod.enqueue(&mut burst), 16);
    assert_eq!(burst.len(), 16);
    let mut out = PacketBurst::new();
    assert_eq!(cons.dequeue(&mut out, 8), 8);
    assert_eq!(prod.enqueue(&mut burst), 8);
    drop(burst);
    drop(out);
    drop(cons);
    drop(prod);
    assert_eq!(pool.in_use(), 0);

    // A producer that enqueues after the consumer is gone (a worker still
    // running while its peer has stopped): the ring frees those mbufs when
    // its last handle goes.
    let (prod, cons) = mbuf_ring("test_mbufs_late", 16, SocketId::ANY).unwrap();
    drop(cons);
    let mut burst = PacketBurst::new();
    for _ in 0..10 {
        burst.push(pool.alloc().unwrap()).unwrap();
    }
    assert_eq!(prod.enqueue(&mut burst), 10);
    assert_eq!(pool.in_use(), 10);
    drop(prod);
    assert_eq!(pool.in_use(), 0, "late enqueues freed with the ring");
}

/// A panic on a worker lcore is caught and reported, and the lcore is
/// usable again.
fn panics_are_caught(eal: &Eal) {
    let worker = eal.worker_lcores()[0];
    // The panic below is the point of the test: keep its message out of the log.
    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let h = dpdk::lcore::launch(worker, || panic!("worker exploded")).unwrap();
    let joined = h.join();
    std::panic::set_hook(previous_hook);
    match joined {
        Err(dpdk::lcore::LcoreError::Panicked { lcore, message }) => {
            assert_eq!(lcore, worker);
            assert_eq!(message, "worker exploded");
        }
        other => panic!("expected a caught panic, got {other:?}"),
    }
    assert_eq!(
        dpdk::lcore::launch(worker, || 7).unwrap().join().unwrap(),
        7
    );
}

/// Errors carry rte_strerror text.
fn errors_are_readable() {
    let e = Port::lookup("net_nonexistent9").unwrap_err();
    assert_eq!(e.errno(), Some(19));
    assert_eq!(
        e.to_string(),
        "rte_eth_dev_get_port_by_name(net_nonexistent9): No such device (errno 19)"
    );
    let e = Eal::init(["--no-huge"]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the DPDK EAL can be initialised only once per process"
    );
}

/// Everything, in one EAL.
pub fn run_all(eal: Eal, hugepages: bool) {
    assert_eq!(eal.has_hugepages(), hugepages);
    assert!(dpdk::time::tsc_hz() > 0);
    assert!(
        dpdk::eal::version().starts_with("DPDK 22.11"),
        "{}",
        dpdk::eal::version()
    );
    ring_port_between_two_lcores(&eal);
    rings_between_two_lcores(&eal);
    panics_are_caught(&eal);
    errors_are_readable();
    eal.cleanup().unwrap();
}
