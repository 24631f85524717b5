//! Two workers on two threads under load, as the live data plane runs them: inbound ESP for
//! 64 SAs spread over both (and deliberately re-spread mid-run, as a NAT rebinding changes a
//! flow's hash) — every packet is decrypted exactly once, none is taken for a replay; and the
//! replies for those SAs encrypted by both workers at once — no sequence number is used twice.
#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use esprit_engine::live::Poller;
use esprit_engine::shared::{Control, Limits};
use esprit_engine::worker::Handoff;
use esprit_engine::{config, Worker};
use esprit_esp::crypto::default_provider;
use esprit_esp::sa::{OutboundSa, UdpEncap};
use esprit_esp::{HeapBuf, HeapPool, PacketBuf, Transform};
use esprit_pktio::mem::{link, MemPort};
use esprit_satable::epoch;

const BASE: &str = r#"
[dataplane]
keepalive_interval = 0
[[interface]]
name = "outside"
role = "outside"
address = "198.51.100.1/24"
mac = "02:00:00:00:01:01"
[[interface]]
name = "inside"
role = "inside"
address = "10.1.0.1/16"
mac = "02:00:00:00:02:01"
[[neighbor]]
interface = "outside"
address = "198.51.100.254"
mac = "02:00:00:00:01:fe"
[[neighbor]]
interface = "inside"
address = "10.1.0.5"
mac = "02:00:00:00:02:05"
[[route]]
destination = "0.0.0.0/0"
via = "198.51.100.254"
interface = "outside"
"#;

const N_SA: u32 = 64;
const PER_SA: usize = 400;

fn vip(i: u32) -> [u8; 4] {
    (0x0a80_0000u32 + i).to_be_bytes()
}

fn params(i: u32, dir: u8) -> esprit_esp::sa::SaParams {
    let t = Transform::Aes128Gcm16;
    let enc: Vec<u8> = (0..20).map(|k| (k as u32 ^ i ^ (dir as u32 * 77)) as u8).collect();
    esprit_esp::sa::SaParams {
        spi: if dir == 1 { 0x1000_0000 + i } else { 0x2000_0000 + i },
        transform: t,
        keys: esprit_esp::crypto::SaKeys::new(t, &enc, &[]).unwrap(),
        local: "198.51.100.1".parse().unwrap(),
        remote: format!("198.18.0.{}", i + 1).parse().unwrap(),
        encap: Some(UdpEncap { local_port: 4500, remote_port: 4500 }),
        esn: false,
        replay_window: 64,
        local_ts: vec![esprit_esp::ts::TrafficSelector::from_cidr("10.1.0.0/16".parse().unwrap())],
        remote_ts: vec![esprit_esp::ts::TrafficSelector::from_cidr(format!("10.128.0.{i}/32").parse().unwrap())],
        df: esprit_esp::sa::DfMode::Copy,
        lifetime: Default::default(),
    }
}

fn udp(src: [u8; 4], dst: [u8; 4], tag: u32) -> Vec<u8> {
    let mut p = vec![0u8; 60];
    esprit_wire::ipv4::Repr {
        src: src.into(),
        dst: dst.into(),
        protocol: 17,
        payload_len: 40,
        ttl: 64,
        tos: 0,
        ident: 0,
        dont_frag: true,
        more_frags: false,
        frag_offset: 0,
    }
    .emit(&mut p);
    esprit_wire::udp::Repr { src_port: 1000, dst_port: 2000, payload_len: 32 }.emit(&mut p[20..]);
    p[28..32].copy_from_slice(&tag.to_be_bytes());
    p
}

fn eth(dst: [u8; 6], src: [u8; 6], ip: &[u8]) -> Vec<u8> {
    [&dst[..], &src[..], &[8, 0], ip].concat()
}

#[test]
fn two_workers_under_load() {
    let cfg = config::parse("base.toml", BASE).unwrap();
    let (mut control, sh) = Control::new(&cfg, Limits::default()).unwrap();
    {
        let g = epoch::pin();
        for i in 0..N_SA {
            control.add_sa(config::Direction::In, params(i, 1), &g).unwrap();
            control.add_sa(config::Direction::Out, params(i, 2), &g).unwrap();
            let p = esprit_satable::Policy {
                src: "10.1.0.0/16".parse().unwrap(),
                dst: format!("10.128.0.{i}/32").parse().unwrap(),
                spi: 0x2000_0000 + i,
            };
            control.add_policy(p, &g).unwrap();
        }
    }
    // The clients' sealing SAs.
    let clients: Vec<OutboundSa> = (0..N_SA)
        .map(|i| {
            let mut p = params(i, 1);
            std::mem::swap(&mut p.local, &mut p.remote);
            OutboundSa::new(p, default_provider(Transform::Aes128Gcm16)).unwrap()
        })
        .collect();
    // Per worker: an outside link and an inside link whose far ends the test drives.
    let mut far: Vec<(MemPort<HeapBuf>, MemPort<HeapBuf>)> = Vec::new();
    let mut pollers = Vec::new();
    let queues: Arc<[crossbeam_queue::ArrayQueue<Handoff<HeapBuf>>]> =
        (0..2).map(|_| crossbeam_queue::ArrayQueue::new(1 << 16)).collect();
    for w in 0..2u32 {
        let (o_near, o_far) = link::<HeapBuf>("outside", "wire", 1 << 16);
        let (i_near, i_far) = link::<HeapBuf>("inside", "wire", 1 << 16);
        far.push((o_far, i_far));
        let worker = Worker::new(sh.clone(), HeapPool::new(1 << 16), w == 0).with_handoff(w, queues.clone());
        pollers.push(Poller::new(worker, vec![o_near, i_near]));
    }
    // Inbound: SA i's packets go to worker i % 2. In the second half every third SA's flow
    // moves to the other worker (a NAT rebinding changed its hash); its owner stays the first
    // worker that saw it, and the moved packets are handed over.
    let inbound = |k: usize, i: u32| {
        let inner = udp(vip(i), [10, 1, 0, 5], (i << 16) | k as u32);
        let mut b = [HeapBuf::from_slice(&inner)];
        clients[i as usize].encap_burst(&mut b, &mut [Ok(())], 0);
        HeapBuf::from_slice(&eth([2, 0, 0, 0, 1, 1], [2, 0, 0, 0, 1, 0xfe], b[0].data()))
    };
    let outbound = |k: usize, i: u32| {
        HeapBuf::from_slice(&eth([2, 0, 0, 0, 2, 1], [2, 0, 0, 0, 2, 5], &udp([10, 1, 0, 5], vip(i), k as u32)))
    };
    let mut tags = HashSet::new();
    let mut seqs: HashMap<u32, Vec<u32>> = HashMap::new();
    let mut collect = |far: &[(MemPort<HeapBuf>, MemPort<HeapBuf>)]| {
        for (outside, inside) in far {
            while let Some(b) = inside.recv() {
                let d = b.data();
                assert!(tags.insert(u32::from_be_bytes(d[14 + 28..14 + 32].try_into().unwrap())), "delivered twice");
            }
            while let Some(b) = outside.recv() {
                let esp = &b.data()[14 + 28..];
                let spi = u32::from_be_bytes(esp[0..4].try_into().unwrap());
                seqs.entry(spi).or_default().push(u32::from_be_bytes(esp[4..8].try_into().unwrap()));
            }
        }
        tags.len() + seqs.values().map(Vec::len).sum::<usize>()
    };
    let stop = AtomicBool::new(false);
    let total = 2 * PER_SA * N_SA as usize;
    std::thread::scope(|s| {
        let stop = &stop;
        let handles: Vec<_> = pollers
            .into_iter()
            .map(|mut p| {
                s.spawn(move || {
                    let mut now = 1_000_000_000u64;
                    while !stop.load(Ordering::Relaxed) {
                        now += 1000;
                        if !p.step(now) {
                            std::thread::yield_now();
                        }
                    }
                    p
                })
            })
            .collect();
        let mut seen = 0;
        for phase in 0..2 {
            for k in phase * PER_SA / 2..(phase + 1) * PER_SA / 2 {
                for i in 0..N_SA {
                    let moved = phase == 1 && i % 3 == 0;
                    let w = (i as usize + moved as usize) % 2;
                    far[w].0.send(inbound(k, i)).unwrap();
                    far[(k + i as usize) % 2].1.send(outbound(k, i)).unwrap();
                }
            }
            // Wait for this phase's packets to come out the far ends.
            let want = (phase + 1) * total / 2;
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            while seen < want && std::time::Instant::now() < deadline {
                seen = collect(&far);
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
        stop.store(true, Ordering::Relaxed);
        let done: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let decrypted: u64 = done.iter().map(|p| p.worker.counters.esp_decrypted).sum();
        let handed: u64 = done.iter().map(|p| p.worker.counters.handed_off).sum();
        let drops: Vec<_> = done.iter().flat_map(|p| p.worker.drops.nonzero().collect::<Vec<_>>()).collect();
        assert!(drops.is_empty(), "{drops:?}");
        assert_eq!(decrypted as usize, PER_SA * N_SA as usize, "every inbound packet decrypted once");
        assert!(handed > 0, "moved flows were handed to their SA's owner");
    });
    collect(&far);
    assert_eq!(tags.len(), PER_SA * N_SA as usize, "everything decrypted reached the inside, once");
    // Every outbound sequence number used once per SA, all of 1..=PER_SA.
    assert_eq!(seqs.len(), N_SA as usize);
    for (spi, mut v) in seqs {
        v.sort_unstable();
        let want: Vec<u32> = (1..=PER_SA as u32).collect();
        assert_eq!(v, want, "SPI {spi:#x}: sequence numbers reused or skipped");
    }
}
