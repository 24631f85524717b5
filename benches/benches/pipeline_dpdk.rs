//! The data plane between DPDK net_ring ports, one worker lcore, fed by an in-tree generator
//! on another core that recycles pre-built frames (one memcpy per packet into a fresh mbuf),
//! so the generator is never the bottleneck: Mpps and Gb/s per worker, inbound and outbound,
//! for 1, 1 000 and 100 000 SAs, 64 B, IMIX and 1420 B, AES-128-GCM and AES-128-CBC +
//! HMAC-SHA1. Each figure is the worker's forwarded packets over ESPRIT_BENCH_SECONDS
//! (default 2) of steady state.
//!
//! `cargo bench -p esprit-benches --features dpdk,ipsec-mb --bench pipeline_dpdk`
//! (`ESPRIT_BENCH_SAS=1,1000`, `ESPRIT_BENCH_TRANSFORMS=aes128gcm16` narrow it).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dpdk::{Eal, Mbuf, Mempool, Port, PortConfig};
use esprit_benches::{gen, imix};
use esprit_engine::config::{self, Direction};
use esprit_engine::live::Poller;
use esprit_engine::shared::{Control, Limits};
use esprit_engine::Worker;
use esprit_esp::Transform;
use esprit_pktio::dpdkdev::{DpdkQueues, MbufPool};
use esprit_satable::epoch;

fn main() {
    // `cargo bench` passes harness flags; a filter argument is not supported here.
    let secs: f64 = std::env::var("ESPRIT_BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(2.0);
    let counts: Vec<u32> = std::env::var("ESPRIT_BENCH_SAS")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 1000, 100_000]);
    let transforms: Vec<Transform> = std::env::var("ESPRIT_BENCH_TRANSFORMS")
        .ok()
        .map(|s| s.split(',').filter_map(|x| Transform::from_name(x).ok()).collect())
        .unwrap_or_else(|| vec![Transform::Aes128Gcm16, Transform::Aes128Sha1]);
    let eal = Eal::init(&[
        "esprit-bench",
        "--no-huge",
        "-m",
        "2048",
        "--no-pci",
        "--no-telemetry",
        "--no-shconf",
        &format!("--file-prefix=esprit-bench-{}", std::process::id()),
    ])
    .expect("EAL");
    let pool = Mempool::new(&eal, "bench", 65535, 256, 0, 2048 + 128, eal.socket_id()).expect("mempool");
    // gen_out <-> dp_out (the outside link), gen_in <-> dp_in (the inside link).
    let (gen_out, dp_out) = eal.ring_pair("gen_out", "dp_out", 1).expect("ring pair");
    let (gen_in, dp_in) = eal.ring_pair("gen_in", "dp_in", 1).expect("ring pair");
    let mut ports: Vec<Port<'_>> = Vec::new();
    for id in [gen_out, dp_out, gen_in, dp_in] {
        let mut p = Port::configure(id, &PortConfig { queues: 1, ..Default::default() }, &pool).expect("port");
        p.start().expect("start");
        ports.push(p);
    }
    let cfg = config::parse("base.toml", gen::BASE_CONFIG).expect("base config");
    println!("| transform | SAs | direction | sizes | Mpps | Gb/s (inner) | ns/packet |");
    println!("|---|---:|---|---|---:|---:|---:|");
    for &t in &transforms {
        for &n in &counts {
            let (mut control, sh) =
                Control::new(&cfg, Limits { max_sas: n as usize + 16, ..Limits::default() }).expect("control");
            {
                let g = epoch::pin();
                for i in 0..n {
                    for (dir, p) in gen::gateway_sas(t, i, true) {
                        control.add_sa(dir, p, &g).expect("room");
                    }
                    control.add_policy(gen::policy(i), &g).expect("room");
                }
            }
            let mtu = esprit_esp::mtu::max_inner(1500, false, true, t.layout()) as usize;
            for (label, sizes) in [("64", vec![64usize]), ("imix", imix(mtu)), ("1420", vec![1420.min(mtu)])] {
                let count = (n as usize).clamp(64, 8192);
                for (dir, frames) in [
                    (Direction::In, gen::outside_frames(t, n, &sizes, count)),
                    (Direction::Out, gen::inside_frames(n, &sizes, count)),
                ] {
                    let avg_inner = sizes.iter().sum::<usize>() as f64 / sizes.len() as f64;
                    let (gen_tx, gen_rx) =
                        if dir == Direction::In { (&ports[0], &ports[2]) } else { (&ports[2], &ports[0]) };
                    let mpps = run(&eal, &pool, &sh, [&ports[1], &ports[3]], gen_tx, gen_rx, &frames, secs);
                    let d = if dir == Direction::In { "inbound" } else { "outbound" };
                    println!(
                        "| {} | {} | {} | {} | {:.2} | {:.2} | {:.0} |",
                        t.name(),
                        n,
                        d,
                        label,
                        mpps,
                        mpps * avg_inner * 8.0 / 1e3,
                        1e3 / mpps
                    );
                }
            }
        }
    }
    drop(ports);
    pool.flush_local_cache();
}

/// Runs the worker on the dp ports and the generator on this thread; returns the worker's
/// forwarding rate in Mpps over `secs` after a short warm-up.
#[allow(clippy::too_many_arguments)]
fn run<'p>(
    eal: &Eal,
    pool: &'p Mempool<'p>,
    sh: &std::sync::Arc<esprit_engine::Shared>,
    dp: [&'p Port<'p>; 2],
    gen_tx: &'p Port<'p>,
    gen_rx: &'p Port<'p>,
    frames: &[Vec<u8>],
    secs: f64,
) -> f64 {
    let stop = AtomicBool::new(false);
    let forwarded = AtomicU64::new(0);
    std::thread::scope(|s| {
        let (stop, forwarded) = (&stop, &forwarded);
        s.spawn(move || {
            core_pin(1);
            let _lcore = eal.register_thread().ok();
            let devs = vec![
                DpdkQueues::new("outside", dp[0].rx_queue(0).expect("rxq"), dp[0].tx_queue(0).expect("txq")),
                DpdkQueues::new("inside", dp[1].rx_queue(0).expect("rxq"), dp[1].tx_queue(0).expect("txq")),
            ];
            let mut p = Poller::new(Worker::new(sh.clone(), MbufPool::new(pool), false), devs);
            let mut now = 1_000_000_000u64;
            while !stop.load(Ordering::Relaxed) {
                now += 1000;
                p.step(now);
                let c = p.worker.counters;
                forwarded.store(c.esp_decrypted + c.esp_encrypted, Ordering::Relaxed);
            }
            pool.flush_local_cache();
        });
        core_pin(0);
        let _lcore = eal.register_thread().ok();
        let mut txq = gen_tx.tx_queue(0).expect("gen txq");
        let mut rxq = gen_rx.rx_queue(0).expect("gen rxq");
        let mut burst: Vec<Mbuf<'_>> = Vec::with_capacity(32);
        let mut sink: Vec<Mbuf<'_>> = Vec::with_capacity(64);
        let mut at = 0usize;
        let warm = Instant::now() + Duration::from_millis(300);
        let mut t0 = None;
        let mut c0 = 0;
        loop {
            // Keep the worker's rx ring fed: top up a burst of 32 recycled frames.
            while burst.len() < 32 {
                let Some(mut m) = pool.alloc() else { break };
                if !m.extend_from_slice(&frames[at]) {
                    break;
                }
                at = (at + 1) % frames.len();
                burst.push(m);
            }
            txq.tx_burst(&mut burst);
            sink.clear();
            rxq.rx_burst(&mut sink, 64);
            sink.clear();
            let now = Instant::now();
            match t0 {
                None if now >= warm => {
                    t0 = Some(now);
                    c0 = forwarded.load(Ordering::Relaxed);
                }
                Some(t) if now.duration_since(t).as_secs_f64() >= secs => {
                    let c1 = forwarded.load(Ordering::Relaxed);
                    stop.store(true, Ordering::Relaxed);
                    burst.clear();
                    return (c1 - c0) as f64 / now.duration_since(t).as_secs_f64() / 1e6;
                }
                _ => {}
            }
        }
    })
}

fn core_pin(c: usize) {
    core_affinity::set_for_current(core_affinity::CoreId { id: c });
}
