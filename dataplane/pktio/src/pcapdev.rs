//! A device backed by capture files: receives the frames of an input file, in order and as
//! fast as asked; writes what it sends to an output file. The golden-capture counterpart of
//! DPDK's `net_pcap`.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::Path;

use esprit_esp::{BufPool, PacketBuf};

use crate::pcap::{PcapError, PcapReader, PcapWriter};
use crate::{DevStats, Device};

/// Frames in from a file, frames out to a file.
pub struct PcapDevice {
    name: String,
    reader: Option<PcapReader<BufReader<File>>>,
    writer: Option<PcapWriter<BufWriter<File>>>,
    /// Timestamp written on transmitted frames: the last received one.
    clock: u64,
    scratch: Vec<u8>,
    stats: DevStats,
}

impl std::fmt::Debug for PcapDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcapDevice").field("name", &self.name).finish()
    }
}

impl PcapDevice {
    pub fn open(name: &str, rx: Option<&Path>, tx: Option<&Path>) -> Result<PcapDevice, PcapError> {
        let reader = rx
            .map(|p| File::open(p).map_err(PcapError::Io).and_then(|f| PcapReader::new(BufReader::new(f))))
            .transpose()?;
        let writer = tx.map(|p| File::create(p).and_then(|f| PcapWriter::new(BufWriter::new(f)))).transpose()?;
        Ok(PcapDevice { name: name.into(), reader, writer, clock: 0, scratch: Vec::new(), stats: DevStats::default() })
    }

    /// True once the input file is exhausted.
    pub fn rx_done(&self) -> bool {
        self.reader.is_none()
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.writer.as_mut().map_or(Ok(()), |w| w.flush())
    }
}

impl Device for PcapDevice {
    type Buf = esprit_esp::HeapBuf;

    fn name(&self) -> &str {
        &self.name
    }

    fn rx_burst<P: BufPool<Buf = Self::Buf>>(
        &mut self,
        pool: &mut P,
        out: &mut Vec<Self::Buf>,
        max: usize,
    ) -> std::io::Result<usize> {
        let mut n = 0;
        while n < max {
            let Some(r) = self.reader.as_mut() else { break };
            match r.next_frame(&mut self.scratch) {
                Ok(Some(ts)) => {
                    self.clock = ts;
                    let Some(mut b) = pool.alloc_len(self.scratch.len()) else {
                        self.stats.rx_errors += 1;
                        continue;
                    };
                    if !b.append(self.scratch.len()) {
                        pool.free(b);
                        self.stats.rx_errors += 1;
                        continue;
                    }
                    b.data_mut().copy_from_slice(&self.scratch);
                    self.stats.rx_packets += 1;
                    self.stats.rx_bytes += b.len() as u64;
                    out.push(b);
                    n += 1;
                }
                Ok(None) => self.reader = None,
                Err(PcapError::Io(e)) => return Err(e),
                Err(e) => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())),
            }
        }
        Ok(n)
    }

    fn tx_burst<P: BufPool<Buf = Self::Buf>>(
        &mut self,
        pool: &mut P,
        pkts: &mut Vec<Self::Buf>,
    ) -> std::io::Result<usize> {
        let n = pkts.len();
        for b in pkts.drain(..) {
            if let Some(w) = self.writer.as_mut() {
                w.write_frame(self.clock, b.data())?;
            }
            self.stats.tx_packets += 1;
            self.stats.tx_bytes += b.len() as u64;
            pool.free(b);
        }
        Ok(n)
    }

    fn stats(&self) -> DevStats {
        self.stats
    }
}
