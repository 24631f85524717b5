//! Two ways for several lcores to send on one outbound SA without ever reusing a sequence
//! number (or a GCM IV): each burst reserves its block of sequence numbers with one atomic
//! add (what the data plane does), or one lcore owns the SA and the others hand their
//! packets to it through a queue (what it does for inbound SAs, whose replay window must
//! have one writer). Two threads pinned to two cores send bursts of 32 on the same SA;
//! the time is per burst of the whole run, so lower is better, next to one thread alone.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use crossbeam_queue::ArrayQueue;
use esprit_benches::{inner_v4, pair};
use esprit_esp::crypto::default_provider;
use esprit_esp::sa::OutboundSa;
use esprit_esp::{DropReason, HeapBuf, Transform};

const BURST: usize = 32;

fn burst(inner: &[u8]) -> Vec<HeapBuf> {
    (0..BURST).map(|_| HeapBuf::from_slice(inner)).collect()
}

fn encap(sa: &OutboundSa, bufs: &mut [HeapBuf]) {
    let mut res = [Ok::<(), DropReason>(()); BURST];
    sa.encap_burst(bufs, &mut res[..bufs.len()], 1);
    assert!(res[..bufs.len()].iter().all(Result::is_ok));
}

fn pin(core: usize) {
    if let Some(ids) = core_affinity::get_core_ids() {
        if let Some(id) = ids.get(core % ids.len()) {
            core_affinity::set_for_current(*id);
        }
    }
}

/// Both threads encapsulate their own bursts; each burst reserves its sequence numbers.
fn atomic(sa: &OutboundSa, inner: &[u8], bursts: u64) -> Duration {
    let t = Instant::now();
    std::thread::scope(|s| {
        for core in 0..2 {
            s.spawn(move || {
                pin(core);
                for _ in 0..bursts / 2 {
                    encap(sa, &mut burst(inner));
                }
            });
        }
    });
    t.elapsed()
}

/// Thread 1 hands every packet to thread 0, which owns the SA and encapsulates its own
/// bursts and the handed-off packets in bursts of up to 32.
fn handoff(sa: &OutboundSa, inner: &[u8], bursts: u64) -> Duration {
    let q: ArrayQueue<HeapBuf> = ArrayQueue::new(4096);
    let done = AtomicBool::new(false);
    let t = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| {
            pin(0);
            let drain = |all: bool| loop {
                let mut b: Vec<HeapBuf> = std::iter::from_fn(|| q.pop()).take(BURST).collect();
                if b.is_empty() {
                    return;
                }
                encap(sa, &mut b);
                if !all && b.len() < BURST {
                    return;
                }
            };
            for _ in 0..bursts / 2 {
                encap(sa, &mut burst(inner));
                drain(false);
            }
            while !done.load(Ordering::Acquire) {
                drain(false);
                std::hint::spin_loop();
            }
            drain(true);
        });
        s.spawn(|| {
            pin(1);
            for _ in 0..bursts / 2 {
                for mut p in burst(inner) {
                    while let Err(back) = q.push(p) {
                        p = back;
                        std::hint::spin_loop();
                    }
                }
            }
            done.store(true, Ordering::Release);
        });
    });
    t.elapsed()
}

fn bench(c: &mut Criterion) {
    let t = Transform::Aes128Gcm16;
    let (sa, _) = pair(t, default_provider(t));
    let mut g = c.benchmark_group(format!("seq/{}/{}", t.name(), default_provider(t).name()));
    g.sample_size(20).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(2));
    g.throughput(Throughput::Elements(BURST as u64));
    for size in [64usize, 1420] {
        let inner = inner_v4(size, 1);
        g.bench_function(BenchmarkId::new("one_thread", size), |b| {
            b.iter_custom(|n| {
                let t = Instant::now();
                for _ in 0..n {
                    encap(&sa, &mut burst(&inner));
                }
                t.elapsed()
            })
        });
        g.bench_function(BenchmarkId::new("atomic_reservation", size), |b| {
            b.iter_custom(|n| atomic(&sa, &inner, n.max(2)))
        });
        g.bench_function(BenchmarkId::new("owner_handoff", size), |b| {
            b.iter_custom(|n| handoff(&sa, &inner, n.max(2)))
        });
    }
    g.finish();
    // Neither way ever reuses a number: every one up to the counter was handed out once.
    let used = sa.seq_used();
    assert!(used > 0 && used < u32::MAX as u64);
}

criterion_group!(benches, bench);
criterion_main!(benches);
