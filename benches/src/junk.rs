//! Hostile ESP against valid traffic: one worker gets bursts that mix the valid frames of N
//! clients with junk — ESP for SPIs nobody installed, forgeries under a client's real SPI
//! (wrong ICV), and replays of packets a replay-protected SA has already accepted — and is
//! timed as in [`crate::measure`]. Every valid packet must come out and every junk packet
//! must be counted under its drop reason; the figures say what the junk costs the valid
//! traffic: the worker's valid packets per second with and without it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use esprit_engine::shared::{Control, Shared};
use esprit_engine::Worker;
use esprit_esp::{DropReason, HeapBuf, HeapPool, Transform};
use esprit_pktio::wait::cycles;
use esprit_satable::epoch;

use crate::gen;
use crate::measure::{Samples, Traffic, BURST};

/// Where the ESP header starts in an outside frame (Ethernet, IPv4, UDP).
const ESP_AT: usize = 14 + 20 + 8;

/// The kinds of junk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Junk {
    /// ESP for an SPI that was never installed.
    UnknownSpi,
    /// A client's SPI and a fresh sequence number, but not sealed with its key.
    Forged,
    /// Packets the replay-protected SA accepted once already.
    Replayed,
}

impl Junk {
    pub const ALL: [Junk; 3] = [Junk::UnknownSpi, Junk::Forged, Junk::Replayed];

    pub fn name(self) -> &'static str {
        match self {
            Junk::UnknownSpi => "unknown SPI",
            Junk::Forged => "forged (bad ICV)",
            Junk::Replayed => "replayed",
        }
    }

    /// The drop reason the data plane must count it under.
    pub fn reason(self) -> DropReason {
        match self {
            Junk::UnknownSpi => DropReason::EspNoSa,
            Junk::Forged => DropReason::AuthFailed,
            Junk::Replayed => DropReason::Replay,
        }
    }
}

/// How many packets the replay-protected SA accepts before they are replayed: inside its
/// window (1024), so that their replays count as `replay`, not `replay_too_old`.
pub const REPLAYED: usize = 512;

/// The client index of the replay-protected SA (beyond the `n` valid clients).
fn victim(n: u32) -> u32 {
    n
}

/// The gateway's tables: `n` clients with the replay check off (their frames are recycled)
/// and one more whose inbound SA keeps a replay window, for the replays.
pub fn gateway(t: Transform, n: u32) -> Result<(Control, Arc<Shared>), String> {
    let (mut c, sh) = crate::measure::gateway(t, n)?;
    let g = epoch::pin();
    let v = victim(n);
    for (dir, p) in gen::gateway_sas(t, v, false) {
        c.add_sa(dir, p, &g).map_err(|e| format!("the replay-protected SA: {e}"))?;
    }
    c.add_policy(gen::policy(v), &g).map_err(|e| format!("the replay-protected SA's policy: {e}"))?;
    Ok((c, sh))
}

/// `count` junk frames of `kind`, made from the valid traffic's frames (same sizes, same
/// addresses). For [`Junk::Replayed`], the frames of the replay-protected client, which
/// [`prime`] must have fed the worker once.
pub fn frames(kind: Junk, t: Transform, n: u32, valid: &Traffic, count: usize) -> Vec<Vec<u8>> {
    match kind {
        Junk::UnknownSpi => (0..count)
            .map(|k| {
                let mut f = valid.frames[k % valid.frames.len()].clone();
                f[ESP_AT..ESP_AT + 4].copy_from_slice(&(0x7000_0000u32 + k as u32).to_be_bytes());
                f
            })
            .collect(),
        Junk::Forged => (0..count)
            .map(|k| {
                let mut f = valid.frames[k % valid.frames.len()].clone();
                // A sequence number far ahead, then a ciphertext and ICV the key never made.
                f[ESP_AT + 4..ESP_AT + 8].copy_from_slice(&(0x4000_0000u32 + k as u32).to_be_bytes());
                for (j, b) in f[ESP_AT + 8..].iter_mut().enumerate() {
                    *b ^= (j as u8).wrapping_mul(31).wrapping_add(k as u8) | 1;
                }
                f
            })
            .collect(),
        Junk::Replayed => {
            let sizes: Vec<usize> = valid.inner.iter().take(BURST).copied().collect();
            gen::client_frames(t, victim(n), &sizes, count.min(REPLAYED))
        }
    }
}

/// Feeds the replay-protected SA its frames once (accepted: the window moves past them).
pub fn prime(sh: &Arc<Shared>, replayed: &[Vec<u8>]) -> Result<(), String> {
    let mut w = Worker::new(sh.clone(), HeapPool::new(4 * BURST), false);
    for chunk in replayed.chunks(BURST) {
        let bufs: Vec<HeapBuf> =
            chunk.iter().map(|f| w.pool().alloc_frame(f).ok_or("the buffer pool ran dry")).collect::<Result<_, _>>()?;
        w.rx(0, bufs, 1_000_000_000);
        let sent = crate::measure::free_sent(&mut w, 1);
        if sent != chunk.len() {
            return Err(format!(
                "priming: {sent} of {} accepted; drops: {:?}",
                chunk.len(),
                w.drops.nonzero().collect::<Vec<_>>()
            ));
        }
    }
    Ok(())
}

/// What one mixed run did.
#[derive(Debug, Clone, PartialEq)]
pub struct Mixed {
    /// Valid and junk packets of the measured bursts.
    pub valid: u64,
    pub junk: u64,
    /// Junk packets of every burst, the warm-up's included (what the drop counters saw).
    pub junk_total: u64,
    /// TSC cycles of the median burst times the bursts.
    pub cycles: u64,
    /// Drops counted, by reason.
    pub drops: Vec<(DropReason, u64)>,
}

impl Mixed {
    /// Valid packets per second of worker time, in millions.
    pub fn valid_mpps(&self, tsc_hz: f64) -> f64 {
        self.valid as f64 / (self.cycles as f64 / tsc_hz) / 1e6
    }
}

/// One worker for `secs` on bursts of `BURST - junk_per_burst` valid frames and
/// `junk_per_burst` junk frames (interleaved). Fails if a valid packet did not come out or
/// a junk one did.
pub fn run(
    sh: &Arc<Shared>,
    valid: &Traffic,
    junk: &[Vec<u8>],
    junk_per_burst: usize,
    secs: f64,
) -> Result<Mixed, String> {
    if junk_per_burst > BURST || (junk_per_burst > 0 && junk.is_empty()) {
        return Err(format!("{junk_per_burst} junk frames per burst of {BURST} from {} junk frames", junk.len()));
    }
    let mut w = Worker::new(sh.clone(), HeapPool::new(4 * BURST), false);
    let (mut at, mut jat) = (0, 0);
    let mut samples = Samples::default();
    let (mut nvalid, mut njunk, mut junk_total) = (0u64, 0u64, 0u64);
    let warm = Instant::now() + Duration::from_millis(100);
    let mut end = None;
    let mut bufs: Vec<HeapBuf> = Vec::with_capacity(BURST);
    let base: Vec<u64> = DropReason::ALL.iter().map(|&r| w.drops.get(r)).collect();
    loop {
        for k in 0..BURST {
            // Junk spread through the burst, not in a block.
            let is_junk = junk_per_burst > 0 && (k * junk_per_burst) % BURST < junk_per_burst;
            let f = if is_junk {
                jat = (jat + 1) % junk.len();
                &junk[jat]
            } else {
                at = (at + 1) % valid.frames.len();
                &valid.frames[at]
            };
            bufs.push(w.pool().alloc_frame(f).ok_or("the buffer pool ran dry")?);
        }
        junk_total += junk_per_burst as u64;
        let c0 = cycles();
        w.rx(0, bufs.drain(..), 1_000_000_000);
        let c1 = cycles();
        let sent = crate::measure::free_sent(&mut w, 1);
        if sent != BURST - junk_per_burst {
            return Err(format!(
                "{sent} forwarded from a burst with {} valid frames; drops: {:?}",
                BURST - junk_per_burst,
                w.drops.nonzero().collect::<Vec<_>>()
            ));
        }
        match end {
            None if Instant::now() >= warm => {
                end = Some(Instant::now() + Duration::from_secs_f64(secs));
            }
            None => {}
            Some(e) => {
                samples.add(c1.wrapping_sub(c0), 0);
                nvalid += (BURST - junk_per_burst) as u64;
                njunk += junk_per_burst as u64;
                if samples.len() % 64 == 0 && Instant::now() >= e {
                    break;
                }
            }
        }
    }
    let drops =
        DropReason::ALL.iter().zip(base).map(|(&r, b)| (r, w.drops.get(r) - b)).filter(|&(_, d)| d != 0).collect();
    Ok(Mixed { valid: nvalid, junk: njunk, junk_total, cycles: samples.figures().cycles, drops })
}
