//! DPDK integration tests.
//!
//! DPDK's EAL can be initialised once per process, so this file has a single `#[test]` that
//! initialises it and runs every scenario in sequence on the one `Eal` (other test files would
//! be other processes, and may have their own). It needs no hugepages and no NIC: the EAL runs
//! with
//!
//! * `--no-huge -m 256`: 256 MiB of ordinary memory instead of hugepages;
//! * `--no-pci`: no PCI scan (no NIC is touched, no VFIO/UIO needed);
//! * `--no-shconf` and a per-process `--file-prefix`: no shared config or lock files, so
//!   concurrent runs (other engineers, CI) do not collide. (`--in-memory`, which would imply
//!   both, is refused by DPDK 22.11 together with `--no-huge`.)
//! * `--no-telemetry`: no telemetry thread and socket;
//! * `--vdev net_null0`: one virtual device created from the command line; the others
//!   (`net_ring` pairs, `net_pcap`, `net_af_packet`) are created at run time.
//!
//! Independent checks: the `PacketBuf` behaviour is compared with `HeapBuf`'s, the mbuf
//! getters with DPDK's own inline functions (through the shim), the pcap files are written
//! and read back here byte by byte (and also by libpcap, through a second `net_pcap` port).

use std::path::{Path, PathBuf};

use dpdk::{Eal, Error, Mbuf, Mempool, Port, PortConfig, RssStatus, RSS_REQUESTED, SOCKET_ANY};
use esprit_esp::buf::{HeapBuf, PacketBuf};

#[test]
fn dpdk_scenarios() {
    let prefix = format!("esprit-dpdk-test-{}", std::process::id());
    let tmp = std::env::temp_dir().join(&prefix);
    std::fs::create_dir_all(&tmp).expect("create the temporary directory");

    // A failed init (a bad option) leaves DPDK ready for another attempt.
    match Eal::init(&["esprit-dpdk-test", "--no-such-eal-option"]) {
        Err(Error::Dpdk { call, errno, text }) => {
            assert_eq!(call, "rte_eal_init");
            assert_eq!(errno, 22, "EINVAL, got {text}");
            assert!(!text.is_empty());
        }
        other => panic!("a bad EAL option must fail rte_eal_init, got {other:?}"),
    }

    let eal = Eal::init(&[
        "esprit-dpdk-test",
        "--no-huge",
        "-m",
        "256",
        "--no-pci",
        "--no-shconf",
        "--file-prefix",
        &prefix,
        "--no-telemetry",
        "--vdev",
        "net_null0",
    ])
    .expect("EAL init with --no-huge");
    let runtime_dir = eal.runtime_dir();

    // A second init is refused by the wrapper, not passed to DPDK.
    assert_eq!(Eal::init(&["esprit-dpdk-test", "--no-huge"]).err(), Some(Error::EalAlreadyInitialised));
    assert_eq!(Eal::lcore_id(), Some(0), "the initialising thread is the main lcore");
    std::thread::spawn(|| assert_eq!(Eal::lcore_id(), None)).join().expect("non-EAL thread");

    drivers_are_found(&eal);
    mempool_counts_balance(&eal);
    mbuf_is_a_packet_buf(&eal);
    ring_pair_loopback(&eal);
    null_port_rss_and_counters(&eal);
    pcap_rx_and_tx(&eal, &tmp);

    drop(eal);
    assert_eq!(Eal::init(&["esprit-dpdk-test", "--no-huge"]).err(), Some(Error::EalCleanedUp));
    // Only empty directories are removed: with --no-shconf DPDK leaves its runtime directory
    // empty.
    let _ = std::fs::remove_dir(&runtime_dir);
    let _ = std::fs::remove_dir_all(&tmp);
}

/// The vdev drivers are loaded from the PMD directory without any `-d`.
fn drivers_are_found(eal: &Eal) {
    assert!(Path::new(dpdk::pmd_dir()).is_dir(), "pmd_dir {:?} is not a directory", dpdk::pmd_dir());
    let ports = eal.ports();
    assert_eq!(usize::from(eal.port_count()), ports.len());
    let null = ports.iter().find(|p| p.name == "net_null0").expect("net_null0 from --vdev");
    assert_eq!(null.driver, "net_null");
    assert_eq!(eal.port_by_name("net_null0").expect("by name"), null.id);
    assert_eq!(eal.port(null.id.raw()).expect("by id"), null.id);
    assert!(matches!(eal.port_by_name("no_such_port"), Err(Error::NoSuchPortName { .. })));
    assert!(matches!(eal.port(31), Err(Error::NoSuchPort { id: 31 })));

    // net_af_packet needs CAP_NET_RAW to open its socket on `lo`: a failure to attach is
    // tolerated, but not a missing driver (which rte_dev_probe reports as "failed to parse
    // device", EFAULT).
    match eal.probe_device("net_af_packet_t0,iface=lo") {
        Ok(()) => {
            let id = eal.port_by_name("net_af_packet_t0").expect("af_packet port");
            let info = eal.ports().into_iter().find(|p| p.id == id).expect("listed");
            assert_eq!(info.driver, "net_af_packet");
        }
        Err(Error::Dpdk { errno, text, .. }) => {
            assert_ne!(errno, 14, "net_af_packet driver not found: {text}");
            println!("net_af_packet is loaded but could not attach to lo: {text}");
        }
        Err(e) => panic!("net_af_packet probe: {e}"),
    }
    assert!(eal.probe_device("net_no_such_driver0").is_err());
}

fn mempool_counts_balance(eal: &Eal) {
    let pool = Mempool::new(eal, "t_counts", 511, 32, 0, 2176, SOCKET_ANY).expect("pool");
    assert_eq!(pool.name(), "t_counts");
    assert_eq!(pool.size(), 511);
    assert_eq!(pool.data_room(), 2176);
    assert_eq!(pool.priv_size(), 0);
    assert_eq!(pool.avail_count(), 511);
    assert_eq!(pool.in_use_count(), 0);
    assert!(matches!(
        Mempool::new(eal, "t_counts", 63, 0, 0, 2176, SOCKET_ANY),
        Err(Error::Dpdk {
            call: "rte_pktmbuf_pool_create",
            errno: 17, // EEXIST
            ..
        })
    ));

    let mut held: Vec<Mbuf<'_>> = (0..100).map(|_| pool.alloc().expect("alloc")).collect();
    assert!(pool.alloc_bulk(&mut held, 50));
    assert_eq!(held.len(), 150);
    assert_eq!(pool.in_use_count(), 150);
    assert_eq!(pool.avail_count(), 511 - 150);
    // All or nothing.
    assert!(!pool.alloc_bulk(&mut held, 400));
    assert_eq!(held.len(), 150);
    assert_eq!(pool.avail_count(), 511 - 150);
    while let Some(m) = pool.alloc() {
        held.push(m);
    }
    assert_eq!(held.len(), 511);
    assert_eq!(pool.avail_count(), 0);
    held.truncate(11);
    assert_eq!(pool.avail_count(), 500);
    drop(held);
    assert_eq!(pool.avail_count(), 511, "every drop frees");
    assert_eq!(pool.in_use_count(), 0);

    // A pool with an mbuf out is not freed.
    let raw = pool.alloc().expect("alloc").into_raw();
    let pool = pool.try_free().expect_err("an mbuf is out");
    assert_eq!(pool.in_use_count(), 1);
    // SAFETY: `raw` came from `into_raw` of an mbuf of `pool` just above and was not used
    // since: direct, single-segment, refcnt 1, ours.
    drop(unsafe { Mbuf::from_raw(raw) });
    pool.try_free().expect("every mbuf is back");
    // The name is free again.
    let again = Mempool::new(eal, "t_counts", 63, 0, 0, 2176, SOCKET_ANY).expect("name reused");
    drop(again);
}

/// The same sequence of operations, with the same results, on any `PacketBuf`.
fn exercise<B: PacketBuf + std::fmt::Debug>(b: &mut B, capacity: usize, headroom: usize) {
    let pattern: Vec<u8> = (0..200u32).map(|i| (i * 7 + 3) as u8).collect();
    assert!(b.is_empty(), "{b:?}");
    assert_eq!(b.headroom(), headroom);
    assert_eq!(b.tailroom(), capacity - headroom);

    assert!(!b.append(capacity - headroom + 1), "past the tailroom");
    assert!(!b.append(usize::MAX));
    assert!(b.is_empty());
    assert!(b.append(200));
    b.data_mut().copy_from_slice(&pattern);
    assert_eq!(b.tailroom(), capacity - headroom - 200);

    assert!(!b.prepend(headroom + 1), "past the headroom");
    assert!(!b.prepend(usize::MAX));
    assert!(b.prepend(28));
    assert_eq!(b.headroom(), headroom - 28);
    assert_eq!(b.len(), 228);
    assert_eq!(&b.data()[28..], &pattern[..], "prepend keeps the data");
    b.data_mut()[..28].fill(0xee);

    assert!(!b.adj(229), "past the data");
    assert_eq!(b.len(), 228);
    assert!(b.adj(28));
    assert_eq!(b.data(), &pattern[..]);

    assert!(!b.trim(201), "past the data");
    assert!(b.trim(50));
    assert_eq!(b.data(), &pattern[..150]);
    assert_eq!(b.tailroom(), capacity - headroom - 150);

    assert!(b.adj(150));
    assert!(b.is_empty());
    assert_eq!(b.headroom(), headroom + 150);
    assert!(b.prepend(headroom + 150), "all the headroom");
    assert_eq!(b.headroom(), 0);
    assert!(b.append(capacity - headroom - 150), "all the tailroom");
    assert_eq!(b.len(), capacity);
    assert_eq!(b.tailroom(), 0);
    assert!(!b.append(1));
    assert!(!b.prepend(1));
}

fn mbuf_is_a_packet_buf(eal: &Eal) {
    const HEADROOM: usize = dpdk::sys::RTE_PKTMBUF_HEADROOM as usize;
    const CAPACITY: usize = HEADROOM + 256;
    let pool = Mempool::new(eal, "t_buf", 63, 0, 0, CAPACITY as u16, SOCKET_ANY).expect("pool");

    let mut heap = HeapBuf::new(CAPACITY, HEADROOM);
    exercise(&mut heap, CAPACITY, HEADROOM);
    let mut m = pool.alloc().expect("alloc");
    assert_eq!(m.capacity(), CAPACITY);
    exercise(&mut m, CAPACITY, HEADROOM);
    assert_eq!(m.data(), heap.data(), "same bytes as HeapBuf after the same operations");

    // The Rust getters agree with DPDK's inline functions.
    m.reset();
    assert!(m.is_empty());
    assert_eq!(m.headroom(), HEADROOM);
    assert!(m.extend_from_slice(b"an inner IPv4 packet"));
    assert!(m.prepend(8));
    assert!(!m.extend_from_slice(&[0; 512]));
    let p = m.as_ptr();
    // SAFETY: `p` is the live, single-segment mbuf owned by `m`; these calls only read it
    // (mtod takes a mutable pointer but does not write).
    unsafe {
        assert_eq!(usize::from(dpdk::sys::esprit_rte_pktmbuf_headroom(p)), m.headroom());
        assert_eq!(usize::from(dpdk::sys::esprit_rte_pktmbuf_tailroom(p)), m.tailroom());
        assert_eq!(usize::from(dpdk::sys::esprit_rte_pktmbuf_data_len(p)), m.len());
        assert_eq!(dpdk::sys::esprit_rte_pktmbuf_pkt_len(p) as usize, m.len());
        assert_eq!(dpdk::sys::esprit_rte_pktmbuf_nb_segs(p), 1);
        assert_eq!(dpdk::sys::esprit_rte_pktmbuf_mtod(p.cast_mut()).cast::<u8>().cast_const(), m.data().as_ptr());
    }
    assert_eq!(&m.data()[8..], b"an inner IPv4 packet");
    assert_eq!(m.rss_hash(), None, "no RSS hash on a locally allocated mbuf");
    drop(m);
    assert_eq!(pool.avail_count(), 63);
}

/// A frame of `len` bytes whose content depends on `i`, with `i` at bytes 14..18.
fn frame(i: u32, len: usize) -> Vec<u8> {
    let mut f: Vec<u8> = (0..len).map(|j| (j as u32).wrapping_mul(31).wrapping_add(i.wrapping_mul(7)) as u8).collect();
    f[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14..18].copy_from_slice(&i.to_le_bytes());
    f
}

fn mbuf_from<'p>(pool: &'p Mempool<'_>, bytes: &[u8]) -> Mbuf<'p> {
    let mut m = pool.alloc().expect("pool not exhausted");
    assert!(m.extend_from_slice(bytes));
    m
}

/// Receives on `rx` until `want` packets came or the queue stays empty.
fn receive_all<'q>(rx: &mut dpdk::RxQueue<'q>, want: usize) -> Vec<Mbuf<'q>> {
    let mut got = Vec::with_capacity(want + 64);
    let mut idle = 0;
    while got.len() < want && idle < 1000 {
        if rx.rx_burst(&mut got, 64) == 0 {
            idle += 1;
        }
    }
    got
}

fn ring_pair_loopback(eal: &Eal) {
    let pool = Mempool::new(eal, "t_ring", 2047, 64, 0, 2176, SOCKET_ANY).expect("pool");
    let (a, b) = eal.ring_pair("esprit_a", "esprit_b", 2).expect("ring pair");
    assert_eq!(eal.port_by_name("net_ring_esprit_a").expect("A by name"), a);
    assert_eq!(eal.port_by_name("net_ring_esprit_b").expect("B by name"), b);

    // Refusals that leave the port free to configure properly.
    assert!(matches!(
        Port::configure(b, &PortConfig { queues: 3, ..PortConfig::default() }, &pool),
        Err(Error::QueueCount { requested: 3, max: 2, .. })
    ));
    assert!(matches!(
        Port::configure(b, &PortConfig { mtu: Some(10), ..PortConfig::default() }, &pool),
        Err(Error::Mtu { requested: 10, .. })
    ));

    let config = PortConfig { queues: 2, mtu: Some(1400), promiscuous: true, ..PortConfig::default() };
    let mut port_a = Port::configure(a, &config, &pool).expect("configure A");
    let mut port_b = Port::configure(b, &config, &pool).expect("configure B");
    assert!(matches!(Port::configure(a, &config, &pool), Err(Error::PortInUse { .. })));

    // net_ring has no RSS: two queues are configured anyway, with the fallback reported.
    match port_a.rss() {
        RssStatus::Unsupported { warning } => {
            assert!(warning.contains("net_ring"), "{warning}");
            println!("expected RSS fallback: {warning}");
        }
        other => panic!("net_ring cannot do RSS, got {other:?}"),
    }
    assert!(port_a.rss().warning().is_some());
    assert_eq!(port_a.queues(), 2);
    assert_eq!(port_a.driver(), "net_ring");
    assert_eq!(port_a.mtu().expect("mtu"), 1400);
    assert!(port_a.promiscuous());
    port_a.set_promiscuous(false).expect("promiscuous off");
    assert!(!port_a.promiscuous());
    port_a.mac_address().expect("mac");

    assert!(matches!(port_a.tx_queue(0), Err(Error::NotStarted { .. })));
    port_a.start().expect("start A");
    port_b.start().expect("start B");
    assert!(port_a.link().expect("link").up);

    let mut tx0 = port_a.tx_queue(0).expect("A tx 0");
    let mut rx0 = port_b.rx_queue(0).expect("B rx 0");
    assert!(matches!(port_a.tx_queue(0), Err(Error::QueueTaken { dir: "tx", queue: 0, .. })));
    assert!(matches!(port_b.rx_queue(2), Err(Error::NoSuchQueue { queue: 2, queues: 2, .. })));

    // One burst across, same bytes, same order.
    let frames: Vec<Vec<u8>> = (0..32).map(|i| frame(i, 60 + 40 * i as usize)).collect();
    let mut out: Vec<Mbuf<'_>> = frames.iter().map(|f| mbuf_from(&pool, f)).collect();
    assert_eq!(tx0.tx_burst(&mut out), 32);
    assert!(out.is_empty());
    drop(out);
    let mut got = Vec::with_capacity(64);
    let (ptr, cap) = (got.as_ptr(), got.capacity());
    assert_eq!(rx0.rx_burst(&mut got, 64), 32);
    assert_eq!((got.as_ptr(), got.capacity()), (ptr, cap), "no allocation with capacity");
    let got_bytes: Vec<&[u8]> = got.iter().map(PacketBuf::data).collect();
    assert_eq!(got_bytes, frames.iter().map(Vec::as_slice).collect::<Vec<_>>());
    got.clear();

    // More than the ring holds: the rest stays in the Vec, in order, for a retry.
    let mut out: Vec<Mbuf<'_>> = (0..1100).map(|i| mbuf_from(&pool, &frame(i, 64))).collect();
    let sent = tx0.tx_burst(&mut out);
    assert_eq!(sent, 1023, "a 1024-slot ring holds 1023");
    assert_eq!(out.len(), 1100 - 1023);
    assert_eq!(out[0].data(), frame(1023, 64).as_slice());
    let first = receive_all(&mut rx0, 1023);
    assert_eq!(first.len(), 1023);
    assert_eq!(tx0.tx_burst(&mut out), 77);
    let second = receive_all(&mut rx0, 77);
    for (i, m) in first.iter().chain(&second).enumerate() {
        assert_eq!(m.data(), frame(i as u32, 64).as_slice(), "packet {i}");
    }
    drop((first, second));

    // A shared mbuf (reference count 2) is refused at receive, and only our reference freed.
    let raw = pool.alloc().expect("alloc").into_raw();
    // SAFETY: `raw` is a live mbuf we own; DPDK updates refcnt atomically, as done here.
    unsafe {
        std::sync::atomic::AtomicU16::from_ptr(std::ptr::addr_of_mut!((*raw.as_ptr()).refcnt))
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    let mut one = raw.as_ptr();
    // SAFETY: `one` points to one live mbuf; tx queue 0 of A is only used by this thread
    // (`tx0` is not in a call); net_ring takes the pointer into the ring.
    let n = unsafe { dpdk::sys::esprit_rte_eth_tx_burst(a.raw(), 0, &mut one, 1) };
    assert_eq!(n, 1);
    let mut refused = Vec::new();
    assert_eq!(rx0.rx_burst(&mut refused, 8), 0);
    assert_eq!(rx0.refused_shared(), 1);
    assert_eq!(rx0.refused_chained(), 0);
    // SAFETY: the refusal dropped one reference; ours is the last (refcnt 1), single segment.
    drop(unsafe { Mbuf::from_raw(raw) });

    // Queue 1, from two other threads: handles and mbufs are Send, the pool is Sync.
    let mut tx1 = port_a.tx_queue(1).expect("A tx 1");
    let mut rx1 = port_b.rx_queue(1).expect("B rx 1");
    let pool_ref = &pool;
    let received = std::thread::scope(|s| {
        s.spawn(move || {
            // A registered thread allocates through its own lcore cache.
            let lcore = eal.register_thread().expect("register the sender as an lcore");
            assert_eq!(Eal::lcore_id(), Some(lcore.lcore_id()));
            assert_ne!(lcore.lcore_id(), 0);
            assert!(eal.register_thread().is_err(), "already an lcore");
            let mut out: Vec<Mbuf<'_>> = (0..100).map(|i| mbuf_from(pool_ref, &frame(i, 128))).collect();
            while !out.is_empty() {
                tx1.tx_burst(&mut out);
            }
            pool_ref.flush_local_cache();
            drop(lcore);
            assert_eq!(Eal::lcore_id(), None);
        });
        s.spawn(move || {
            let got = receive_all(&mut rx1, 100);
            got.iter().map(|m| m.data().to_vec()).collect::<Vec<_>>()
        })
        .join()
        .expect("receiver")
    });
    assert_eq!(received, (0..100).map(|i| frame(i, 128)).collect::<Vec<_>>());

    let stats_a = port_a.stats().expect("stats A");
    let stats_b = port_b.stats().expect("stats B");
    assert_eq!(stats_a.opackets, 32 + 1100 + 1 + 100);
    assert_eq!(stats_b.ipackets, 32 + 1100 + 1 + 100);

    drop((out, got, refused, tx0, rx0));
    port_a.stop().expect("stop A");
    assert!(!port_a.is_started());
    drop((port_a, port_b));
    assert_eq!(pool.avail_count(), 2047, "every mbuf back");
    // Also in the common store (the main lcore's cache is flushed by try_free; the sender
    // thread flushed its own): the pool can be freed.
    pool.try_free().expect("every mbuf back in the pool's ring");
}

fn null_port_rss_and_counters(eal: &Eal) {
    let pool = Mempool::new(eal, "t_null", 1023, 32, 0, 2176, SOCKET_ANY).expect("pool");
    let id = eal.port_by_name("net_null0").expect("net_null0");
    let config = PortConfig { queues: 2, ..PortConfig::default() };
    let mut port = Port::configure(id, &config, &pool).expect("configure null");
    match port.rss() {
        RssStatus::Enabled { hash_types } => {
            assert_ne!(*hash_types, 0);
            assert_eq!(hash_types & !RSS_REQUESTED, 0, "only what was asked");
        }
        other => panic!("net_null supports RSS, got {other:?}"),
    }
    assert_eq!(port.rss().warning(), None);
    port.start().expect("start");
    {
        let mut tx0 = port.tx_queue(0).expect("tx 0");
        let mut tx1 = port.tx_queue(1).expect("tx 1");
        let mut out: Vec<Mbuf<'_>> = (0..64).map(|i| mbuf_from(&pool, &frame(i, 100))).collect();
        assert_eq!(tx0.tx_burst(&mut out), 64);
        let mut out: Vec<Mbuf<'_>> = (0..64).map(|i| mbuf_from(&pool, &frame(i, 100))).collect();
        assert_eq!(tx1.tx_burst(&mut out), 64);

        // net_null receives 64-byte packets from the pool, as many as asked.
        let mut rx = port.rx_queue(1).expect("rx 1");
        let mut got = Vec::with_capacity(32);
        assert_eq!(rx.rx_burst(&mut got, 32), 32);
        assert!(got.iter().all(|m| m.len() == 64));
    }
    let stats = port.stats().expect("stats");
    assert_eq!(stats.opackets, 128);
    assert_eq!(stats.ipackets, 32);
    port.reset_stats().expect("reset");
    assert_eq!(port.stats().expect("stats").opackets, 0);
    drop(port);
    assert_eq!(pool.avail_count(), 1023);
    assert!(eal.port_by_name("net_null0").is_err(), "a closed vdev port is released");
}

/// Writes a pcap file (microsecond timestamps, Ethernet).
fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let mut f = Vec::new();
    f.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    f.extend_from_slice(&2u16.to_le_bytes());
    f.extend_from_slice(&4u16.to_le_bytes());
    f.extend_from_slice(&0i32.to_le_bytes());
    f.extend_from_slice(&0u32.to_le_bytes());
    f.extend_from_slice(&65535u32.to_le_bytes());
    f.extend_from_slice(&1u32.to_le_bytes()); // LINKTYPE_ETHERNET
    for (i, frame) in frames.iter().enumerate() {
        f.extend_from_slice(&(1_700_000_000u32 + i as u32).to_le_bytes());
        f.extend_from_slice(&0u32.to_le_bytes());
        f.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        f.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        f.extend_from_slice(frame);
    }
    std::fs::write(path, f).expect("write pcap");
}

/// Reads a little-endian pcap file (micro- or nanosecond), checking its structure.
fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let f = std::fs::read(path).expect("read pcap");
    let u32_at = |o: usize| u32::from_le_bytes(f[o..o + 4].try_into().expect("4 bytes"));
    assert!(f.len() >= 24, "pcap header");
    assert!(matches!(u32_at(0), 0xa1b2_c3d4 | 0xa1b2_3c4d), "pcap magic {:#x}", u32_at(0));
    assert_eq!(u32_at(20), 1, "LINKTYPE_ETHERNET");
    let mut frames = Vec::new();
    let mut o = 24;
    while o < f.len() {
        assert!(o + 16 <= f.len(), "truncated record header");
        let (caplen, len) = (u32_at(o + 8) as usize, u32_at(o + 12) as usize);
        assert_eq!(caplen, len, "whole frames");
        assert!(o + 16 + caplen <= f.len(), "truncated record");
        frames.push(f[o + 16..o + 16 + caplen].to_vec());
        o += 16 + caplen;
    }
    frames
}

fn pcap_rx_and_tx(eal: &Eal, tmp: &Path) {
    let pool = Mempool::new(eal, "t_pcap", 1023, 32, 0, 2176, SOCKET_ANY).expect("pool");
    let (rx_file, tx_file): (PathBuf, PathBuf) = (tmp.join("in.pcap"), tmp.join("out.pcap"));
    // Frame 3 is longer than an mbuf's 2048 bytes of data room: net_pcap chains it.
    let sizes = [60, 64, 1514, 3000, 100, 999];
    let frames: Vec<Vec<u8>> = sizes.iter().enumerate().map(|(i, &n)| frame(i as u32, n)).collect();
    write_pcap(&rx_file, &frames);
    let expected: Vec<&[u8]> = frames.iter().filter(|f| f.len() <= 2048).map(Vec::as_slice).collect();

    eal.probe_device(&format!("net_pcap_t0,rx_pcap={},tx_pcap={}", rx_file.display(), tx_file.display()))
        .expect("probe net_pcap");
    let id = eal.port_by_name("net_pcap_t0").expect("pcap port");
    let mut port = Port::configure(id, &PortConfig::default(), &pool).expect("configure pcap");
    assert_eq!(port.driver(), "net_pcap");
    assert_eq!(port.rss(), &RssStatus::SingleQueue);
    port.start().expect("start");
    {
        let mut rx = port.rx_queue(0).expect("rx");
        let mut tx = port.tx_queue(0).expect("tx");
        let mut got = receive_all(&mut rx, expected.len());
        assert_eq!(got.iter().map(PacketBuf::data).collect::<Vec<_>>(), expected);
        assert_eq!(rx.refused_chained(), 1, "the 3000-byte frame came chained");
        assert_eq!(rx.rx_burst(&mut got, 32), 0, "end of file");
        assert_eq!(tx.tx_burst(&mut got), expected.len());
    }
    let stats = port.stats().expect("stats");
    assert_eq!(stats.ipackets, frames.len() as u64, "the driver delivered every frame");
    assert_eq!(stats.opackets, expected.len() as u64);
    drop(port); // Stops the port, which closes the pcap dumper.
    assert_eq!(pool.avail_count(), 1023);

    // The written file, read here ...
    assert_eq!(read_pcap(&tx_file), expected);
    // ... and by libpcap, through another net_pcap port.
    eal.probe_device(&format!("net_pcap_t1,rx_pcap={}", tx_file.display())).expect("probe net_pcap reading the output");
    let id = eal.port_by_name("net_pcap_t1").expect("pcap port");
    let mut port = Port::configure(id, &PortConfig::default(), &pool).expect("configure");
    port.start().expect("start");
    {
        let mut rx = port.rx_queue(0).expect("rx");
        let got = receive_all(&mut rx, expected.len());
        assert_eq!(got.iter().map(PacketBuf::data).collect::<Vec<_>>(), expected);
    }
    drop(port);
    assert_eq!(pool.avail_count(), 1023);
    pool.try_free().expect("every mbuf back in the pool's ring");
}
