//! The per-worker measurement behind `esprit-pktgen table`: the whole data plane of one
//! worker (Ethernet, NAT-T classification, SA lookup, ESP, policy, route, neighbor, transmit
//! queue) in bursts of 32 pre-built frames, and in the same run the raw cipher cost of the
//! same packets with each provider, so the pipeline/crypto ratio is read off one table.
//!
//! Only the worker's processing is timed: copying a recycled frame into a buffer (what a NIC
//! does) and freeing what it transmitted (what the driver does) stay outside. Time is read
//! with the TSC around each burst, the figure taken at the median burst, and converted with
//! a calibration against the wall clock.

use std::sync::Arc;
use std::time::{Duration, Instant};

use esprit_engine::shared::{Control, Limits, Shared};
use esprit_engine::{config, Worker};
use esprit_esp::crypto::{CryptoOp, CryptoProvider, OpStatus};
use esprit_esp::{BufPool, HeapBuf, HeapPool, Transform};
use esprit_pktio::wait::cycles;
use esprit_satable::epoch;

use crate::gen;

pub const BURST: usize = 32;

/// Frees what worker `w` queued for transmission on `ifidx` (the driver's work) and says how
/// many there were. The queue keeps its allocation, as in the live data plane: a queue taken
/// away with `mem::take` grew again inside the next timed burst, three reallocations per
/// burst counted as pipeline time.
pub(crate) fn free_sent(w: &mut Worker<HeapPool>, ifidx: usize) -> usize {
    let mut q = std::mem::take(w.tx_queue(ifidx));
    let sent = q.len();
    for b in q.drain(..) {
        w.pool().free(b);
    }
    *w.tx_queue(ifidx) = q;
    sent
}

/// Packets processed, the TSC cycles they took, and their inner bytes.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Figures {
    pub packets: u64,
    pub cycles: u64,
    pub inner_bytes: u64,
}

/// Per-burst samples; the figure is taken at their median, so that a burst preempted by the
/// hypervisor or the kernel (this machine's vCPUs see steal) does not count.
#[derive(Debug, Default)]
pub(crate) struct Samples {
    cycles: Vec<u64>,
    inner_bytes: u64,
}

impl Samples {
    pub(crate) fn add(&mut self, cycles: u64, inner_bytes: usize) {
        self.cycles.push(cycles);
        self.inner_bytes += inner_bytes as u64;
    }
    pub(crate) fn len(&self) -> usize {
        self.cycles.len()
    }
    pub(crate) fn figures(mut self) -> Figures {
        let n = self.cycles.len() as u64;
        let mid = self.cycles.len() / 2;
        let median = if n == 0 { 0 } else { *self.cycles.select_nth_unstable(mid).1 };
        Figures { packets: n * BURST as u64, cycles: median * n, inner_bytes: self.inner_bytes }
    }
}

impl Figures {
    pub fn cycles_per_packet(&self) -> f64 {
        self.cycles as f64 / self.packets.max(1) as f64
    }
    pub fn ns_per_packet(&self, tsc_hz: f64) -> f64 {
        self.cycles_per_packet() * 1e9 / tsc_hz
    }
    pub fn mpps(&self, tsc_hz: f64) -> f64 {
        1e3 / self.ns_per_packet(tsc_hz)
    }
    /// Inner (cleartext) gigabits per second.
    pub fn gbps(&self, tsc_hz: f64) -> f64 {
        self.inner_bytes as f64 * 8.0 / (self.cycles as f64 / tsc_hz) / 1e9
    }
}

/// TSC ticks per second, measured against the wall clock over `over`.
pub fn tsc_hz(over: Duration) -> f64 {
    let (c0, t0) = (cycles(), Instant::now());
    std::thread::sleep(over);
    let (c1, t1) = (cycles(), Instant::now());
    c1.wrapping_sub(c0) as f64 / t1.duration_since(t0).as_secs_f64()
}

/// The gateway's tables with `n` clients' SA pairs and policies installed (replay check off:
/// the same frames are replayed).
pub fn gateway(t: Transform, n: u32) -> Result<(Control, Arc<Shared>), String> {
    let cfg = config::parse("base.toml", gen::BASE_CONFIG).map_err(|e| format!("{e:?}"))?;
    let (mut c, sh) =
        Control::new(&cfg, Limits { max_sas: 2 * n as usize + 16, ..Limits::default() }).map_err(|e| e.to_string())?;
    let g = epoch::pin();
    for i in 0..n {
        for (dir, p) in gen::gateway_sas(t, i, true) {
            c.add_sa(dir, p, &g).map_err(|e| format!("SA {i}: {e}"))?;
        }
        c.add_policy(gen::policy(i), &g).map_err(|e| format!("policy {i}: {e}"))?;
    }
    Ok((c, sh))
}

/// Pre-built frames of one direction and the inner size of each.
#[derive(Debug, Clone)]
pub struct Traffic {
    pub inbound: bool,
    pub frames: Vec<Vec<u8>>,
    pub inner: Vec<usize>,
}

impl Traffic {
    /// Enough distinct frames to touch every SA (capped: 100k SAs cycle through 8192
    /// frames, so lookups still spread over the table).
    pub fn new(t: Transform, n: u32, sizes: &[usize], inbound: bool) -> Traffic {
        let count = (n as usize).clamp(BURST * sizes.len(), 8192);
        let frames =
            if inbound { gen::outside_frames(t, n, sizes, count) } else { gen::inside_frames(n, sizes, count) };
        let inner = (0..count).map(|k| sizes[k % sizes.len()]).collect();
        Traffic { inbound, frames, inner }
    }
}

/// One worker on `sh` for `secs` (after a short warm-up); fails if it dropped anything.
pub fn pipeline(sh: &Arc<Shared>, tr: &Traffic, secs: f64, start: usize) -> Result<Figures, String> {
    let mut w = Worker::new(sh.clone(), HeapPool::new(4 * BURST), false);
    let (rx_if, tx_if) = if tr.inbound { (0, 1) } else { (1, 0) };
    let mut at = start % tr.frames.len();
    let mut f = Samples::default();
    let warm = Instant::now() + Duration::from_millis(100);
    let mut end = None;
    let mut bufs: Vec<HeapBuf> = Vec::with_capacity(BURST);
    loop {
        let mut bytes = 0;
        for _ in 0..BURST {
            bufs.push(w.pool().alloc_frame(&tr.frames[at]).ok_or("the buffer pool ran dry")?);
            bytes += tr.inner[at];
            at = (at + 1) % tr.frames.len();
        }
        let c0 = cycles();
        w.rx(rx_if, bufs.drain(..), 1_000_000_000);
        let c1 = cycles();
        let sent = free_sent(&mut w, tx_if);
        if sent != BURST {
            return Err(format!("{sent} of {BURST} forwarded; drops: {:?}", w.drops.nonzero().collect::<Vec<_>>()));
        }
        match end {
            None if Instant::now() >= warm => end = Some(Instant::now() + Duration::from_secs_f64(secs)),
            None => {}
            Some(e) => {
                f.add(c1.wrapping_sub(c0), bytes);
                if f.len() % 64 == 0 && Instant::now() >= e {
                    return Ok(f.figures());
                }
            }
        }
    }
}

/// `threads` workers at once on the same tables, each pinned to its own core and fed by
/// its own copy loop; their figures summed (the rate is the sum of the per-worker rates).
pub fn pipeline_threads(sh: &Arc<Shared>, tr: &Traffic, secs: f64, threads: usize) -> Result<Vec<Figures>, String> {
    if threads <= 1 {
        return pipeline(sh, tr, secs, 0).map(|f| vec![f]);
    }
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|k| {
                let core = cores.get(k % cores.len().max(1)).copied();
                s.spawn(move || {
                    if let Some(c) = core {
                        core_affinity::set_for_current(c);
                    }
                    pipeline(sh, tr, secs, k * tr.frames.len() / threads)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().map_err(|_| "a worker thread panicked".to_string())?).collect()
    })
}

/// The provider's cipher alone on the ESP packets of the same sizes: `open` for inbound,
/// `seal` for outbound, bursts of 32, for `secs`. Fails if an op did not succeed (a
/// measurement of failing opens would be meaningless).
pub fn raw(t: Transform, p: &dyn CryptoProvider, sizes: &[usize], inbound: bool, secs: f64) -> Result<Figures, String> {
    let (tx, rx) = crate::pair(t, p);
    // A whole number of bursts that is also a whole number of size cycles.
    let n = BURST * sizes.len();
    let all: Vec<usize> = sizes.iter().cycle().take(n).copied().collect();
    let esp: Vec<Vec<u8>> = crate::sealed(&tx, &all).into_iter().map(|o| o[28..].to_vec()).collect();
    let mut f = Samples::default();
    let mut work: Vec<Vec<u8>> = esp[..BURST].to_vec();
    let end = Instant::now() + Duration::from_millis(50) + Duration::from_secs_f64(secs);
    let warm = Instant::now() + Duration::from_millis(50);
    let mut at = 0;
    while Instant::now() < end {
        for k in 0..BURST {
            work[k].clear();
            work[k].extend_from_slice(&esp[at + k]);
        }
        let bytes: usize = all[at..at + BURST].iter().sum();
        // `sealed` numbered the packets from 1 in order; GCM's AAD carries the number.
        let mut ops: Vec<CryptoOp<'_>> =
            work.iter_mut().enumerate().map(|(i, e)| CryptoOp::new(e, 1 + (at + i) as u64)).collect();
        at = (at + BURST) % n;
        let c0 = cycles();
        if inbound {
            rx.cipher().open(&mut ops);
        } else {
            tx.cipher().seal(&mut ops);
        }
        let c1 = cycles();
        if let Some(op) = ops.iter().find(|o| o.status != OpStatus::Ok) {
            return Err(format!("{} {} failed: {:?}", p.name(), if inbound { "open" } else { "seal" }, op.status));
        }
        drop(ops);
        if Instant::now() >= warm {
            f.add(c1.wrapping_sub(c0), bytes);
        }
    }
    Ok(f.figures())
}
