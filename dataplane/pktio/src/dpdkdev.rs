//! DPDK ports as [`Device`]s: each worker owns one rx and one tx queue of every port, and
//! allocates from a shared mempool (with DPDK's per-lcore cache).

use dpdk::{Mbuf, Mempool, RxQueue, TxQueue};
use esprit_esp::{BufPool, PacketBuf};

use crate::{DevStats, Device};

/// A mempool as a [`BufPool`]: `free` is dropping the mbuf (back to the pool).
#[derive(Debug)]
pub struct MbufPool<'m> {
    pool: &'m Mempool<'m>,
    /// Mbufs larger than a pool mbuf cannot be had (reassembled IKE datagrams): refused.
    data_room: usize,
}

impl<'m> MbufPool<'m> {
    pub fn new(pool: &'m Mempool<'m>) -> Self {
        MbufPool { pool, data_room: pool.data_room() as usize }
    }
}

impl<'m> BufPool for MbufPool<'m> {
    type Buf = Mbuf<'m>;
    fn alloc(&mut self) -> Option<Mbuf<'m>> {
        self.pool.alloc()
    }
    fn free(&mut self, b: Mbuf<'m>) {
        drop(b);
    }
    fn alloc_len(&mut self, len: usize) -> Option<Mbuf<'m>> {
        if len + esprit_esp::buf::DEFAULT_HEADROOM > self.data_room {
            return None;
        }
        self.pool.alloc()
    }
}

/// One worker's queue pair on one port.
#[derive(Debug)]
pub struct DpdkQueues<'q> {
    name: String,
    rx: RxQueue<'q>,
    tx: TxQueue<'q>,
    stats: DevStats,
}

impl<'q> DpdkQueues<'q> {
    pub fn new(name: &str, rx: RxQueue<'q>, tx: TxQueue<'q>) -> Self {
        DpdkQueues { name: name.into(), rx, tx, stats: DevStats::default() }
    }
}

impl<'q> Device for DpdkQueues<'q> {
    type Buf = Mbuf<'q>;

    fn name(&self) -> &str {
        &self.name
    }

    fn rx_burst<P: BufPool<Buf = Mbuf<'q>>>(
        &mut self,
        _pool: &mut P,
        out: &mut Vec<Mbuf<'q>>,
        max: usize,
    ) -> std::io::Result<usize> {
        let start = out.len();
        let n = self.rx.rx_burst(out, max);
        self.stats.rx_packets += n as u64;
        self.stats.rx_bytes += out[start..].iter().map(|b| b.len() as u64).sum::<u64>();
        Ok(n)
    }

    fn tx_burst<P: BufPool<Buf = Mbuf<'q>>>(
        &mut self,
        _pool: &mut P,
        pkts: &mut Vec<Mbuf<'q>>,
    ) -> std::io::Result<usize> {
        let bytes: Vec<u64> = pkts.iter().map(|b| b.len() as u64).collect();
        let n = self.tx.tx_burst(pkts);
        self.stats.tx_packets += n as u64;
        self.stats.tx_bytes += bytes[..n].iter().sum::<u64>();
        Ok(n)
    }

    fn stats(&self) -> DevStats {
        // Chained (jumbo) and shared mbufs are refused at rx: count them as errors.
        DevStats { rx_errors: self.rx.refused_chained() + self.rx.refused_shared(), ..self.stats }
    }
}
