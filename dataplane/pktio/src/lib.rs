//! Packet I/O for esprit-dataplane: one [`Device`] trait and its backends.
//!
//! | backend | for |
//! | --- | --- |
//! | [`afpacket::AfPacket`] | a named Linux interface that is up with no kernel address: laptops, VMs, CI, the lab |
//! | [`pcapdev::PcapDevice`] | capture files in and out: offline replay, golden tests |
//! | [`mem::MemPort`] | in-memory links: tests and benches |
//! | DPDK (crate `dpdk`, `--features dpdk` of the engine) | bare metal |
//!
//! Wrappers add behaviour to any backend: [`tap::Tap`] writes every frame received and sent
//! to pcap files (tracing), [`fault::Faulty`] drops, duplicates, reorders and corrupts
//! (testing what the data plane does with a bad network).

#![deny(unsafe_op_in_unsafe_fn)]

pub mod afpacket;
#[cfg(feature = "dpdk")]
pub mod dpdkdev;
pub mod fault;
pub mod mem;
pub mod pcap;
pub mod pcapdev;
pub mod tap;
pub mod wait;

use esprit_esp::{BufPool, PacketBuf};

/// Counters every device keeps.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DevStats {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Frames the device could not take (queue full, would block).
    pub tx_dropped: u64,
    /// Frames received but unusable (truncated to the buffer, errors).
    pub rx_errors: u64,
}

/// A network device: bursts in, bursts out.
pub trait Device {
    type Buf: PacketBuf;

    fn name(&self) -> &str;

    /// Receives up to `max` frames, appending them to `out`; returns how many. Never blocks.
    fn rx_burst<P: BufPool<Buf = Self::Buf>>(
        &mut self,
        pool: &mut P,
        out: &mut Vec<Self::Buf>,
        max: usize,
    ) -> std::io::Result<usize>;

    /// Sends frames from the front of `pkts`, removing those sent (buffers the device does
    /// not keep go back to `pool`); unsent frames stay for the caller to retry or drop.
    /// Returns how many were sent. Never blocks.
    fn tx_burst<P: BufPool<Buf = Self::Buf>>(
        &mut self,
        pool: &mut P,
        pkts: &mut Vec<Self::Buf>,
    ) -> std::io::Result<usize>;

    fn stats(&self) -> DevStats;

    /// A descriptor that becomes readable when frames arrive, to sleep on when idle
    /// (poll-mode devices have none).
    fn wait_fd(&self) -> Option<i32> {
        None
    }
}
