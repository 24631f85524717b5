//! Fault injection on the receive side of any device: drop, duplicate, reorder (swap with
//! the next frame of the burst) and corrupt (flip one bit), each with its own probability,
//! from a seeded generator so a failing run can be replayed.

use esprit_esp::{BufPool, PacketBuf};

use crate::{DevStats, Device};

/// Probabilities in parts per million.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Faults {
    pub drop_ppm: u32,
    pub duplicate_ppm: u32,
    pub reorder_ppm: u32,
    pub corrupt_ppm: u32,
    pub seed: u64,
}

/// What the injector did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FaultStats {
    pub dropped: u64,
    pub duplicated: u64,
    pub reordered: u64,
    pub corrupted: u64,
}

/// A device whose received frames suffer `faults`.
#[derive(Debug)]
pub struct Faulty<D> {
    inner: D,
    f: Faults,
    rng: u64,
    pub injected: FaultStats,
}

impl<D: Device> Faulty<D> {
    pub fn new(inner: D, f: Faults) -> Self {
        Faulty { inner, rng: f.seed | 1, f, injected: FaultStats::default() }
    }

    pub fn into_inner(self) -> D {
        self.inner
    }

    fn roll(&mut self, ppm: u32) -> bool {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let r = self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d);
        ((r >> 32) % 1_000_000) < ppm as u64
    }
}

impl<D: Device> Device for Faulty<D> {
    type Buf = D::Buf;

    fn name(&self) -> &str {
        self.inner.name()
    }

    fn rx_burst<P: BufPool<Buf = Self::Buf>>(
        &mut self,
        pool: &mut P,
        out: &mut Vec<Self::Buf>,
        max: usize,
    ) -> std::io::Result<usize> {
        let start = out.len();
        self.inner.rx_burst(pool, out, max)?;
        let got: Vec<Self::Buf> = out.drain(start..).collect();
        for mut b in got {
            if self.roll(self.f.drop_ppm) {
                self.injected.dropped += 1;
                pool.free(b);
                continue;
            }
            if !b.is_empty() && self.roll(self.f.corrupt_ppm) {
                let at = (self.rng as usize) % b.len();
                b.data_mut()[at] ^= 1 << (self.rng % 8);
                self.injected.corrupted += 1;
            }
            let dup = self.roll(self.f.duplicate_ppm);
            if dup {
                if let Some(mut c) = pool.alloc_len(b.len()) {
                    if c.append(b.len()) {
                        c.data_mut().copy_from_slice(b.data());
                        self.injected.duplicated += 1;
                        out.push(b);
                        out.push(c);
                        continue;
                    }
                    pool.free(c);
                }
            }
            out.push(b);
        }
        let n = out.len() - start;
        for i in start..out.len().saturating_sub(1) {
            if self.roll(self.f.reorder_ppm) {
                out.swap(i, i + 1);
                self.injected.reordered += 1;
            }
        }
        Ok(n)
    }

    fn tx_burst<P: BufPool<Buf = Self::Buf>>(
        &mut self,
        pool: &mut P,
        pkts: &mut Vec<Self::Buf>,
    ) -> std::io::Result<usize> {
        self.inner.tx_burst(pool, pkts)
    }

    fn stats(&self) -> DevStats {
        self.inner.stats()
    }
}
