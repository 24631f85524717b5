//! `espritctl trace` in the data plane: the ESP packets of the peers being traced as they are
//! on the wire, and their inner packets as they are before encryption and after decryption,
//! written to two pcap files (raw IP) by the control thread.
//!
//! A worker pays one atomic load per burst while no trace is on. While one is, it copies
//! each matching packet into a bounded queue; a full queue leaves the packet out of the
//! capture (counted, and reported when the trace stops), never stalls the worker.

use std::fs::{File, OpenOptions};
use std::io::BufWriter;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering::*};
use std::time::{SystemTime, UNIX_EPOCH};

use crossbeam_queue::ArrayQueue;
use esprit_pktio::pcap::{PcapWriter, LINKTYPE_RAW};

/// Where a packet was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    /// ESP (in UDP, with NAT-T) as received or as sent.
    EspWire,
    /// The inner packet, after decryption or before encryption.
    Inner,
}

#[derive(Debug)]
struct Captured {
    point: Point,
    /// The workers' clock.
    ts: u64,
    data: Vec<u8>,
}

/// Packets in flight between the workers and the writer.
const QUEUE: usize = 16_384;

/// An address as (4 or 6, its bits).
fn addr_bits(a: IpAddr) -> (u8, u128) {
    match a {
        IpAddr::V4(v) => (4, u32::from(v) as u128),
        IpAddr::V6(v) => (6, u128::from(v)),
    }
}

/// The workers' side: shared by every worker, read once per burst.
#[derive(Debug)]
pub struct Tracer {
    on: AtomicBool,
    /// 0: every peer; 4 or 6: only the address in `peer`.
    family: AtomicU8,
    peer: [AtomicU64; 2],
    queue: ArrayQueue<Captured>,
    /// Packets left out because the queue was full.
    pub left_out: AtomicU64,
}

impl Default for Tracer {
    fn default() -> Self {
        Tracer {
            on: AtomicBool::new(false),
            family: AtomicU8::new(0),
            peer: [AtomicU64::new(0), AtomicU64::new(0)],
            queue: ArrayQueue::new(QUEUE),
            left_out: AtomicU64::new(0),
        }
    }
}

impl Tracer {
    /// True while a trace is on.
    #[inline]
    pub fn active(&self) -> bool {
        self.on.load(Acquire)
    }

    /// True if packets to or from the outer address `a` are traced.
    pub fn wants(&self, a: IpAddr) -> bool {
        let (family, bits) = addr_bits(a);
        match self.family.load(Relaxed) {
            0 => true,
            f => f == family && self.peer_bits() == bits,
        }
    }

    fn peer_bits(&self) -> u128 {
        ((self.peer[0].load(Relaxed) as u128) << 64) | self.peer[1].load(Relaxed) as u128
    }

    /// Copies `data` into the capture at `point`.
    pub fn capture(&self, point: Point, ts: u64, data: &[u8]) {
        if self.queue.push(Captured { point, ts, data: data.to_vec() }).is_err() {
            self.left_out.fetch_add(1, Relaxed);
        }
    }

    /// The filter is set while the trace is off, then published by `on` (release).
    fn start(&self, peer: Option<IpAddr>) {
        let (family, bits) = peer.map_or((0, 0), addr_bits);
        self.peer[0].store((bits >> 64) as u64, Relaxed);
        self.peer[1].store(bits as u64, Relaxed);
        self.family.store(family, Relaxed);
        self.on.store(true, Release);
    }

    fn stop(&self) {
        self.on.store(false, Release);
    }
}

/// The writer's side: the open files of the trace under way (the control thread's).
#[derive(Debug)]
pub struct TraceWriter {
    pub id: u32,
    esp: PcapWriter<BufWriter<File>>,
    inner: PcapWriter<BufWriter<File>>,
    max: u64,
    /// Wall-clock nanoseconds minus the workers' clock.
    offset: i128,
    left_out_at_start: u64,
}

fn create(dir: &Path, name: &str) -> Result<PcapWriter<BufWriter<File>>, String> {
    let path = dir.join(name);
    // Mode 0600: the inner capture is the clients' traffic in the clear.
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    PcapWriter::with_linktype(BufWriter::new(f), LINKTYPE_RAW).map_err(|e| format!("{}: {e}", path.display()))
}

/// What a finished trace wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceSummary {
    pub esp_packets: u64,
    pub inner_packets: u64,
    /// Left out: the queue was full, or the file reached its limit.
    pub left_out: u64,
}

impl TraceWriter {
    /// Opens `esp-wire.pcap` and `inner.pcap` in `dir` and turns the workers' capture on.
    pub fn start(
        t: &Tracer,
        id: u32,
        peer: Option<IpAddr>,
        dir: &Path,
        max_packets: u32,
        now: u64,
    ) -> Result<TraceWriter, String> {
        if !dir.is_absolute() {
            return Err(format!("trace directory {} is not an absolute path", dir.display()));
        }
        let esp = create(dir, "esp-wire.pcap")?;
        let inner = create(dir, "inner.pcap")?;
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i128);
        // Whatever an earlier trace left in the queue is not this trace's.
        while t.queue.pop().is_some() {}
        t.start(peer);
        Ok(TraceWriter {
            id,
            esp,
            inner,
            max: if max_packets == 0 { u64::MAX } else { max_packets as u64 },
            offset: wall - now as i128,
            left_out_at_start: t.left_out.load(Relaxed),
        })
    }

    /// Writes what the workers captured so far.
    pub fn drain(&mut self, t: &Tracer) -> Result<(), String> {
        while let Some(c) = t.queue.pop() {
            let w = match c.point {
                Point::EspWire => &mut self.esp,
                Point::Inner => &mut self.inner,
            };
            if w.frames() >= self.max {
                t.left_out.fetch_add(1, Relaxed);
                continue;
            }
            let ts = (c.ts as i128 + self.offset).max(0) as u64;
            w.write_frame(ts, &c.data).map_err(|e| format!("trace file: {e}"))?;
        }
        Ok(())
    }

    /// Turns the capture off, writes the rest and closes the files.
    pub fn stop(mut self, t: &Tracer) -> Result<TraceSummary, String> {
        t.stop();
        let r = self.drain(t);
        let flushed = self.esp.flush().and_then(|()| self.inner.flush()).map_err(|e| format!("trace file: {e}"));
        r.and(flushed)?;
        Ok(TraceSummary {
            esp_packets: self.esp.frames(),
            inner_packets: self.inner.frames(),
            left_out: t.left_out.load(Relaxed) - self.left_out_at_start,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_takes_one_peer_or_all() {
        let t = Tracer::default();
        t.start(Some("198.51.100.7".parse().unwrap()));
        assert!(t.wants("198.51.100.7".parse().unwrap()));
        assert!(!t.wants("198.51.100.8".parse().unwrap()));
        assert!(!t.wants("::ffff:198.51.100.7".parse().unwrap()));
        t.start(Some("2001:db8::7".parse().unwrap()));
        assert!(t.wants("2001:db8::7".parse().unwrap()));
        assert!(!t.wants("2001:db8::8".parse().unwrap()));
        t.start(None);
        assert!(t.wants("203.0.113.1".parse().unwrap()));
    }

    #[test]
    fn files_hold_the_capture_up_to_the_limit() {
        let dir = std::env::temp_dir().join(format!("esprit-trace-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let t = Tracer::default();
        let mut w = TraceWriter::start(&t, 1, None, &dir, 2, 1_000).unwrap();
        assert!(t.active());
        for i in 0..3u8 {
            t.capture(Point::EspWire, 2_000, &[0x45, i]);
        }
        t.capture(Point::Inner, 3_000, &[0x60]);
        w.drain(&t).unwrap();
        let s = w.stop(&t).unwrap();
        assert!(!t.active());
        assert_eq!(s, TraceSummary { esp_packets: 2, inner_packets: 1, left_out: 1 });
        let esp = std::fs::read(dir.join("esp-wire.pcap")).unwrap();
        assert_eq!(u32::from_le_bytes(esp[20..24].try_into().unwrap()), LINKTYPE_RAW);
        assert_eq!(esp.len(), 24 + 2 * (16 + 2));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("inner.pcap")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(TraceWriter::start(&t, 2, None, Path::new("relative"), 0, 0).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
