//! In-memory links: two ports joined by bounded lock-free queues, for tests and benches.
//! Buffers move through the queues; nothing is copied.

use std::sync::Arc;

use crossbeam_queue::ArrayQueue;
use esprit_esp::{BufPool, PacketBuf};

use crate::{DevStats, Device};

/// One end of an in-memory link.
pub struct MemPort<B> {
    name: String,
    rx: Arc<ArrayQueue<B>>,
    tx: Arc<ArrayQueue<B>>,
    stats: DevStats,
}

impl<B> std::fmt::Debug for MemPort<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemPort").field("name", &self.name).finish()
    }
}

/// A link of two ports, each queue holding `depth` frames.
pub fn link<B>(a: &str, b: &str, depth: usize) -> (MemPort<B>, MemPort<B>) {
    let (ab, ba) = (Arc::new(ArrayQueue::new(depth)), Arc::new(ArrayQueue::new(depth)));
    (
        MemPort { name: a.into(), rx: ba.clone(), tx: ab.clone(), stats: DevStats::default() },
        MemPort { name: b.into(), rx: ab, tx: ba, stats: DevStats::default() },
    )
}

impl<B: PacketBuf> MemPort<B> {
    /// Puts a frame in this port's receive queue as if it came from the wire (tests).
    pub fn inject(&self, b: B) -> Result<(), B> {
        self.rx.push(b)
    }
    /// Takes a frame this port's peer has not yet received (tests).
    pub fn take_sent(&self) -> Option<B> {
        self.tx.pop()
    }
    /// Sends one frame to the peer (a traffic source on the far end of a link).
    pub fn send(&self, b: B) -> Result<(), B> {
        self.tx.push(b)
    }
    /// Receives one frame the peer sent (a sink on the far end of a link).
    pub fn recv(&self) -> Option<B> {
        self.rx.pop()
    }
}

impl<B: PacketBuf> Device for MemPort<B> {
    type Buf = B;

    fn name(&self) -> &str {
        &self.name
    }

    fn rx_burst<P: BufPool<Buf = B>>(&mut self, _pool: &mut P, out: &mut Vec<B>, max: usize) -> std::io::Result<usize> {
        let mut n = 0;
        while n < max {
            let Some(b) = self.rx.pop() else { break };
            self.stats.rx_packets += 1;
            self.stats.rx_bytes += b.len() as u64;
            out.push(b);
            n += 1;
        }
        Ok(n)
    }

    fn tx_burst<P: BufPool<Buf = B>>(&mut self, _pool: &mut P, pkts: &mut Vec<B>) -> std::io::Result<usize> {
        let mut sent = 0;
        let mut rest = Vec::new();
        for b in pkts.drain(..) {
            if !rest.is_empty() {
                rest.push(b);
                continue;
            }
            let len = b.len() as u64;
            match self.tx.push(b) {
                Ok(()) => {
                    sent += 1;
                    self.stats.tx_packets += 1;
                    self.stats.tx_bytes += len;
                }
                Err(b) => rest.push(b),
            }
        }
        *pkts = rest;
        Ok(sent)
    }

    fn stats(&self) -> DevStats {
        self.stats
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::fault::{Faults, Faulty};
    use esprit_esp::{HeapBuf, HeapPool};

    #[test]
    fn link_and_backpressure() {
        let (mut a, mut b) = link::<HeapBuf>("a", "b", 4);
        let mut pool = HeapPool::new(64);
        let mut q: Vec<HeapBuf> = (0..6u8).map(|i| pool.alloc_frame(&[i; 20]).unwrap()).collect();
        assert_eq!(a.tx_burst(&mut pool, &mut q).unwrap(), 4);
        assert_eq!(q.len(), 2, "unsent frames stay with the caller");
        let mut out = Vec::new();
        assert_eq!(b.rx_burst(&mut pool, &mut out, 3).unwrap(), 3);
        assert_eq!(out[0].data(), &[0u8; 20]);
        assert_eq!(b.stats().rx_packets, 3);
    }

    #[test]
    fn faults_are_injected_at_their_rates() {
        let (mut a, b) = link::<HeapBuf>("a", "b", 100_000);
        let mut pool = HeapPool::new(1 << 20);
        let mut q: Vec<HeapBuf> = (0..50_000u32).map(|i| pool.alloc_frame(&i.to_be_bytes()).unwrap()).collect();
        a.tx_burst(&mut pool, &mut q).unwrap();
        let f = Faults { drop_ppm: 100_000, duplicate_ppm: 50_000, reorder_ppm: 20_000, corrupt_ppm: 10_000, seed: 42 };
        let mut fb = Faulty::new(b, f);
        let mut out = Vec::new();
        while fb.rx_burst(&mut pool, &mut out, 64).unwrap() > 0 {}
        let s = fb.injected;
        let near = |got: u64, ppm: u32, n: u64| {
            (got as f64 - n as f64 * ppm as f64 / 1e6).abs() < n as f64 * ppm as f64 / 1e6 * 0.15
        };
        assert!(near(s.dropped, 100_000, 50_000), "{s:?}");
        assert!(near(s.duplicated, 50_000, 45_000), "{s:?}");
        assert_eq!(out.len() as u64, 50_000 - s.dropped + s.duplicated);
        assert!(s.reordered > 0 && s.corrupted > 0);
    }
}
