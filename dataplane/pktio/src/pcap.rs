//! Classic libpcap files (the format tcpdump, tshark and scapy write by default), Ethernet
//! link type. Microsecond and nanosecond timestamp variants and both byte orders are read;
//! microsecond little-endian files are written.

use std::io::{self, Read, Write};

/// LINKTYPE_ETHERNET.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// LINKTYPE_RAW: each record is an IPv4 or IPv6 packet.
pub const LINKTYPE_RAW: u32 = 101;
const MAGIC_US: u32 = 0xa1b2_c3d4;
const MAGIC_NS: u32 = 0xa1b2_3c4d;
/// Largest record accepted when reading (jumbo frames fit; anything larger is corrupt).
pub const MAX_RECORD: u32 = 262_144;

/// Why a capture file could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PcapError {
    #[error("not a pcap file (magic number {0:#010x}); pcapng is not supported: convert with `editcap -F pcap in.pcapng out.pcap`")]
    BadMagic(u32),
    #[error("link type {0} is not Ethernet (1)")]
    LinkType(u32),
    #[error("record {index} claims {len} bytes, more than the {max}-byte limit: the file is corrupt")]
    RecordTooLarge { index: u64, len: u32, max: u32 },
    #[error("file ends in the middle of record {index}")]
    Truncated { index: u64 },
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Reads frames from a pcap file.
#[derive(Debug)]
pub struct PcapReader<R> {
    r: R,
    nanos: bool,
    swapped: bool,
    index: u64,
}

impl<R: Read> PcapReader<R> {
    /// Reads the file header; fails unless it is a classic pcap file of Ethernet frames.
    pub fn new(mut r: R) -> Result<Self, PcapError> {
        let mut h = [0u8; 24];
        r.read_exact(&mut h).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => PcapError::BadMagic(0),
            _ => PcapError::Io(e),
        })?;
        let le = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        let (nanos, swapped) = match le {
            MAGIC_US => (false, false),
            MAGIC_NS => (true, false),
            m if m.swap_bytes() == MAGIC_US => (false, true),
            m if m.swap_bytes() == MAGIC_NS => (true, true),
            m => return Err(PcapError::BadMagic(m)),
        };
        let p = PcapReader { r, nanos, swapped, index: 0 };
        let linktype = p.u32(&h[20..24]);
        if linktype & 0x0fff_ffff != LINKTYPE_ETHERNET {
            return Err(PcapError::LinkType(linktype));
        }
        Ok(p)
    }

    fn u32(&self, b: &[u8]) -> u32 {
        let v = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        if self.swapped {
            v.swap_bytes()
        } else {
            v
        }
    }

    /// Reads the next frame into `buf` and returns its timestamp in nanoseconds since the
    /// epoch, or `None` at the end of the file.
    pub fn next_frame(&mut self, buf: &mut Vec<u8>) -> Result<Option<u64>, PcapError> {
        let mut h = [0u8; 16];
        match read_full(&mut self.r, &mut h)? {
            0 => return Ok(None),
            16 => {}
            _ => return Err(PcapError::Truncated { index: self.index }),
        }
        let (sec, frac, incl) = (self.u32(&h[0..4]), self.u32(&h[4..8]), self.u32(&h[8..12]));
        if incl > MAX_RECORD {
            return Err(PcapError::RecordTooLarge { index: self.index, len: incl, max: MAX_RECORD });
        }
        buf.resize(incl as usize, 0);
        if read_full(&mut self.r, buf)? != incl as usize {
            return Err(PcapError::Truncated { index: self.index });
        }
        self.index += 1;
        let ns = sec as u64 * 1_000_000_000 + if self.nanos { frac as u64 } else { frac as u64 * 1000 };
        Ok(Some(ns))
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Writes Ethernet frames (or, [`with_linktype`](Self::with_linktype), other records) to a
/// pcap file (microsecond timestamps, little-endian).
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    w: W,
    frames: u64,
}

impl<W: Write> PcapWriter<W> {
    pub fn new(w: W) -> io::Result<Self> {
        Self::with_linktype(w, LINKTYPE_ETHERNET)
    }

    pub fn with_linktype(mut w: W, linktype: u32) -> io::Result<Self> {
        let mut h = Vec::with_capacity(24);
        h.extend_from_slice(&MAGIC_US.to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&4u16.to_le_bytes());
        h.extend_from_slice(&0i32.to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes());
        h.extend_from_slice(&65535u32.to_le_bytes());
        h.extend_from_slice(&linktype.to_le_bytes());
        w.write_all(&h)?;
        Ok(PcapWriter { w, frames: 0 })
    }

    /// Appends a frame stamped `ts_ns` nanoseconds since the epoch.
    pub fn write_frame(&mut self, ts_ns: u64, frame: &[u8]) -> io::Result<()> {
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&((ts_ns / 1_000_000_000) as u32).to_le_bytes());
        h[4..8].copy_from_slice(&((ts_ns % 1_000_000_000 / 1000) as u32).to_le_bytes());
        h[8..12].copy_from_slice(&(frame.len() as u32).to_le_bytes());
        h[12..16].copy_from_slice(&(frame.len() as u32).to_le_bytes());
        self.w.write_all(&h)?;
        self.w.write_all(frame)?;
        self.frames += 1;
        Ok(())
    }

    pub fn frames(&self) -> u64 {
        self.frames
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }

    pub fn into_inner(self) -> W {
        self.w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        w.write_frame(1_700_000_000_123_456_000, &[1, 2, 3]).unwrap();
        w.write_frame(1_700_000_001_000_000_000, &[9; 1514]).unwrap();
        let bytes = w.into_inner();
        let mut r = PcapReader::new(&bytes[..]).unwrap();
        let mut f = Vec::new();
        assert_eq!(r.next_frame(&mut f).unwrap(), Some(1_700_000_000_123_456_000));
        assert_eq!(f, [1, 2, 3]);
        assert_eq!(r.next_frame(&mut f).unwrap(), Some(1_700_000_001_000_000_000));
        assert_eq!(f.len(), 1514);
        assert_eq!(r.next_frame(&mut f).unwrap(), None);
    }

    #[test]
    fn big_endian_nanosecond_files() {
        let mut b = Vec::new();
        b.extend_from_slice(&MAGIC_NS.to_be_bytes());
        b.extend_from_slice(&[0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 1]);
        b.extend_from_slice(&5u32.to_be_bytes());
        b.extend_from_slice(&7u32.to_be_bytes());
        b.extend_from_slice(&2u32.to_be_bytes());
        b.extend_from_slice(&2u32.to_be_bytes());
        b.extend_from_slice(&[0xaa, 0xbb]);
        let mut r = PcapReader::new(&b[..]).unwrap();
        let mut f = Vec::new();
        assert_eq!(r.next_frame(&mut f).unwrap(), Some(5_000_000_007));
        assert_eq!(f, [0xaa, 0xbb]);
    }

    #[test]
    fn errors_are_specific() {
        assert!(matches!(
            PcapReader::new(&b"\x0a\x0d\x0d\x0a pcapng........................"[..]),
            Err(PcapError::BadMagic(_))
        ));
        assert!(matches!(PcapReader::new(&b"short"[..]), Err(PcapError::BadMagic(0))));
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        w.write_frame(0, &[1, 2, 3, 4]).unwrap();
        let mut bytes = w.into_inner();
        bytes[20] = 113; // Linux cooked capture
        assert!(matches!(PcapReader::new(&bytes[..]), Err(PcapError::LinkType(113))));
        bytes[20] = 1;
        let cut = &bytes[..bytes.len() - 1];
        let mut r = PcapReader::new(cut).unwrap();
        assert!(matches!(r.next_frame(&mut Vec::new()), Err(PcapError::Truncated { index: 0 })));
        let mut huge = bytes.clone();
        huge[24 + 8..24 + 12].copy_from_slice(&(MAX_RECORD + 1).to_le_bytes());
        let mut r = PcapReader::new(&huge[..]).unwrap();
        assert!(matches!(r.next_frame(&mut Vec::new()), Err(PcapError::RecordTooLarge { .. })));
    }
}
