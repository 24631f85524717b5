//! Tracing: every frame a device receives and sends, written to pcap files.

use std::io::Write;

use esprit_esp::{BufPool, PacketBuf};

use crate::pcap::PcapWriter;
use crate::{DevStats, Device};

/// Wraps a device and writes its traffic to `rx` and `tx` captures, stamped by `clock`.
pub struct Tap<D, W: Write> {
    inner: D,
    rx: Option<PcapWriter<W>>,
    tx: Option<PcapWriter<W>>,
    clock: Box<dyn FnMut() -> u64 + Send>,
}

impl<D: Device, W: Write> std::fmt::Debug for Tap<D, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tap").field("device", &self.inner.name()).finish()
    }
}

impl<D: Device, W: Write> Tap<D, W> {
    pub fn new(
        inner: D,
        rx: Option<PcapWriter<W>>,
        tx: Option<PcapWriter<W>>,
        clock: Box<dyn FnMut() -> u64 + Send>,
    ) -> Self {
        Tap { inner, rx, tx, clock }
    }
    pub fn into_parts(self) -> (D, Option<PcapWriter<W>>, Option<PcapWriter<W>>) {
        (self.inner, self.rx, self.tx)
    }
}

impl<D: Device, W: Write> Device for Tap<D, W> {
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
        let n = self.inner.rx_burst(pool, out, max)?;
        if let Some(w) = self.rx.as_mut() {
            let t = (self.clock)();
            for b in &out[start..] {
                w.write_frame(t, b.data())?;
            }
        }
        Ok(n)
    }

    fn tx_burst<P: BufPool<Buf = Self::Buf>>(
        &mut self,
        pool: &mut P,
        pkts: &mut Vec<Self::Buf>,
    ) -> std::io::Result<usize> {
        // Record what is offered before the device takes (and may free) the buffers; frames
        // it refuses stay in `pkts` and are recorded again when retried.
        if let Some(w) = self.tx.as_mut() {
            let t = (self.clock)();
            for b in pkts.iter() {
                w.write_frame(t, b.data())?;
            }
        }
        self.inner.tx_burst(pool, pkts)
    }

    fn stats(&self) -> DevStats {
        self.inner.stats()
    }
}
