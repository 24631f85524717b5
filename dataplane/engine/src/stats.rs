//! The stats segment: every worker's counters, and every SA's, in shared memory
//! (`/dev/shm/esprit-NAME-stats`) for the control plane and `espritctl` to read without
//! disturbing the workers — the data plane never serves HTTP.
//!
//! Each worker owns one block and adds its deltas a few times a second (relaxed load and
//! store, no locked instruction). The control thread owns one more block, where each SA
//! has a slot: its SPI, direction and counters, refreshed once a second.

use std::collections::HashMap;
use std::path::PathBuf;

use esprit_esp::{BufPool, DropReason};
use esprit_ring::stats::{CounterId, LcoreStats, SaCounterId, StatsError, StatsLayout, StatsWriter};
use esprit_satable::epoch;

use crate::config::Config;
use crate::shared::Shared;
use crate::worker::{Counters, Worker};

/// Counters of each SA slot; `path_mtu` is a gauge: the outer path MTU learned from ICMP for
/// an outbound SA's peer (0: none learned, or it expired).
pub const SA_COUNTERS: [&str; 8] =
    ["spi", "direction", "packets", "bytes", "auth_failed", "replay_dropped", "other_dropped", "path_mtu"];

/// The path of the stats segment for ring instance `name`.
pub fn path(name: &str) -> Result<PathBuf, String> {
    let p = esprit_ring::shm_path(name).map_err(|e| e.to_string())?;
    Ok(PathBuf::from(format!("{}-stats", p.display())))
}

/// The per-worker counter names: interfaces, engine counters, drops by reason.
pub fn counter_names(cfg: &Config) -> Vec<String> {
    let mut v = Vec::new();
    for i in &cfg.interfaces {
        for c in ["rx_packets", "rx_bytes", "tx_packets", "tx_bytes"] {
            v.push(format!("if.{}.{c}", i.name));
        }
    }
    v.extend(Counters::default().fields().iter().map(|(n, _)| n.to_string()));
    v.extend(DropReason::ALL.iter().map(|r| format!("drop.{}", r.name())));
    v
}

fn worker_values<P: BufPool>(w: &Worker<P>) -> Vec<u64> {
    let mut v = Vec::new();
    for s in &w.if_stats {
        v.extend([s.rx_packets, s.rx_bytes, s.tx_packets, s.tx_bytes]);
    }
    v.extend(w.counters.fields().iter().map(|(_, x)| *x));
    v.extend(DropReason::ALL.iter().map(|&r| w.drops.get(r)));
    v
}

/// Creates the segment: one block per worker and one for the control thread.
pub fn create(name: &str, cfg: &Config, workers: usize) -> Result<StatsWriter, String> {
    let layout = StatsLayout {
        lcores: workers + 1,
        counters: counter_names(cfg),
        sa_counters: SA_COUNTERS.iter().map(|s| s.to_string()).collect(),
        max_sa: cfg.settings.max_sas.min(MAX_SA_SLOTS),
    };
    StatsWriter::create(&path(name)?, &layout).map_err(|e: StatsError| e.to_string())
}

/// SA slots exported (the rest are counted in the totals only).
pub const MAX_SA_SLOTS: usize = 1 << 16;

/// A worker's block.
pub struct WorkerStats {
    lcore: LcoreStats,
    ids: Vec<CounterId>,
    last: Vec<u64>,
}

impl std::fmt::Debug for WorkerStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WorkerStats")
    }
}

impl WorkerStats {
    pub fn new(w: &mut StatsWriter, lcore: usize, cfg: &Config) -> Option<WorkerStats> {
        let ids = counter_names(cfg).iter().map(|n| w.counter(n)).collect::<Option<Vec<_>>>()?;
        let last = vec![0; ids.len()];
        Some(WorkerStats { lcore: w.take_lcore(lcore)?, ids, last })
    }

    /// Adds what changed since the last call.
    pub fn publish<P: BufPool>(&mut self, w: &Worker<P>) {
        for ((id, last), v) in self.ids.iter().zip(self.last.iter_mut()).zip(worker_values(w)) {
            if v != *last {
                self.lcore.add(*id, v.wrapping_sub(*last));
                *last = v;
            }
        }
    }
}

/// The control thread's block: per-SA slots.
pub struct SaStatsExport {
    lcore: LcoreStats,
    ids: Vec<SaCounterId>,
    slots: HashMap<(bool, u32), (u32, [u64; 8])>,
    free: Vec<u32>,
    next: u32,
    max: u32,
    /// Punted IKE the link could not hand to esprit-ike (its ring full), as the drop reason
    /// `ike_no_listener` of the control thread's block.
    punt_drops: Option<(CounterId, u64)>,
}

impl std::fmt::Debug for SaStatsExport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaStatsExport").field("slots", &self.slots.len()).finish()
    }
}

impl SaStatsExport {
    pub fn new(w: &mut StatsWriter, lcore: usize, max: usize) -> Option<SaStatsExport> {
        let ids = SA_COUNTERS.iter().map(|n| w.sa_counter(n)).collect::<Option<Vec<_>>>()?;
        let punt_drops = w.counter(&format!("drop.{}", DropReason::IkeNoListener.name())).map(|c| (c, 0));
        Some(SaStatsExport {
            lcore: w.take_lcore(lcore)?,
            punt_drops,
            ids,
            slots: HashMap::new(),
            free: Vec::new(),
            next: 0,
            max: max as u32,
        })
    }

    /// Publishes the link's count of punts it had to drop.
    pub fn link(&mut self, punts_dropped: u64) {
        if let Some((id, last)) = self.punt_drops.as_mut() {
            if punts_dropped != *last {
                self.lcore.add(*id, punts_dropped.wrapping_sub(*last));
                *last = punts_dropped;
            }
        }
    }

    /// Writes every SA's counters into its slot (as of `now`, the workers' clock); frees the
    /// slots of deleted SAs.
    pub fn refresh(&mut self, sh: &Shared, now: u64) {
        let g = epoch::pin();
        let mut seen = Vec::new();
        let mut rows: Vec<((bool, u32), [u64; 8])> = Vec::new();
        let read = |s: &esprit_esp::sa::SaStats| {
            use std::sync::atomic::Ordering::Relaxed;
            [
                s.packets.load(Relaxed),
                s.bytes.load(Relaxed),
                s.auth_failed.load(Relaxed),
                s.replay.load(Relaxed),
                s.other_drops.load(Relaxed),
            ]
        };
        sh.sa_in.for_each(&g, |spi, sa| {
            let [p, b, a, r, o] = read(&sa.stats);
            rows.push(((true, *spi), [*spi as u64, 0, p, b, a, r, o, 0]));
        });
        sh.sa_out.for_each(&g, |spi, sa| {
            let [p, b, a, r, o] = read(&sa.stats);
            let mtu = sa.pmtu.get(now).unwrap_or(0) as u64;
            rows.push(((false, *spi), [*spi as u64, 1, p, b, a, r, o, mtu]));
        });
        for (key, vals) in rows {
            seen.push(key);
            let slot = match self.slots.get(&key) {
                Some(&(s, _)) => s,
                None => {
                    let Some(s) = self.free.pop().or_else(|| {
                        (self.next < self.max).then(|| {
                            self.next += 1;
                            self.next - 1
                        })
                    }) else {
                        continue; // more SAs than slots: still in the totals
                    };
                    self.slots.insert(key, (s, [0; 8]));
                    s
                }
            };
            let Some(entry) = self.slots.get_mut(&key) else { continue };
            for (i, v) in vals.iter().enumerate() {
                if *v != entry.1[i] {
                    self.lcore.sa_add(slot, self.ids[i], v.wrapping_sub(entry.1[i]));
                    entry.1[i] = *v;
                }
            }
        }
        let live: std::collections::HashSet<(bool, u32)> = seen.into_iter().collect();
        let gone: Vec<(bool, u32)> = self.slots.keys().filter(|k| !live.contains(k)).copied().collect();
        for k in gone {
            if let Some((s, _)) = self.slots.remove(&k) {
                self.lcore.sa_clear(s);
                self.free.push(s);
            }
        }
    }
}
