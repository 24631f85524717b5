//! Reassembly of outer IPv4 and IPv6 fragments of ESP and NAT-T UDP
//! ([RFC 791 §3.2](https://www.rfc-editor.org/rfc/rfc791#section-3.2),
//! [RFC 8200 §4.5](https://www.rfc-editor.org/rfc/rfc8200#section-4.5)): clients whose path
//! MTU is small have their host fragment the ESP-in-UDP packets, and IKE_AUTH messages with
//! certificates arrive fragmented at the IP layer.
//!
//! Memory is bounded and allocated once: a fixed number of slots, each with a buffer for the
//! largest datagram allowed. Datagrams time out. Overlapping fragments discard the whole
//! datagram (RFC 5722 for IPv6, applied to IPv4 too); exact duplicates are ignored.

use core::net::IpAddr;

use arrayvec::ArrayVec;
use esprit_wire::{ip_proto, ipv4, ipv6};

use crate::drop::DropReason;

/// Limits of the reassembler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReasmConfig {
    /// Datagrams under reassembly at once.
    pub slots: usize,
    /// Largest reassembled payload (after the IP header), at most 65535.
    pub max_datagram: usize,
    /// Time allowed from the first fragment to the last (ns).
    pub timeout_ns: u64,
}

impl Default for ReasmConfig {
    fn default() -> Self {
        // 64 × 64 KiB = 4 MiB; 30 s is RFC 8200 §4.5's 60 s halved: a fragment of ESP that
        // waits half a minute is of no use to anyone.
        ReasmConfig { slots: 64, max_datagram: 65535, timeout_ns: 30_000_000_000 }
    }
}

/// Fragments of one datagram the reassembler keeps track of.
const MAX_FRAGMENTS: usize = 64;
/// Room in front of the payload for the header (IPv4 with options, or IPv6 with the
/// extension headers that precede the fragment header).
const HDR_ROOM: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    src: IpAddr,
    dst: IpAddr,
    ident: u32,
    proto: u8,
}

#[derive(Debug)]
struct Slot {
    key: Option<Key>,
    deadline: u64,
    buf: Box<[u8]>,
    /// Received payload ranges, sorted, disjoint.
    ranges: ArrayVec<(usize, usize), MAX_FRAGMENTS>,
    /// Payload length, known once the last fragment arrived.
    total: Option<usize>,
    /// Length of the header saved from the first fragment (0 until it arrives).
    hdr_len: usize,
}

/// Counters the reassembler keeps (besides the drop reasons it returns).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReasmStats {
    pub fragments: u64,
    pub reassembled: u64,
    pub duplicates: u64,
    pub timeouts: u64,
}

/// The reassembler.
#[derive(Debug)]
pub struct Reassembler {
    cfg: ReasmConfig,
    slots: Vec<Slot>,
    pub stats: ReasmStats,
}

/// A fragment, parsed.
struct Frag<'a> {
    key: Key,
    offset: usize,
    more: bool,
    payload: &'a [u8],
    /// The header to keep if this is the first fragment, and (IPv6) where the next-header
    /// byte that points at the fragment header sits within it.
    header: &'a [u8],
    nh_at: usize,
}

impl Reassembler {
    pub fn new(cfg: ReasmConfig) -> Reassembler {
        let cfg = ReasmConfig { max_datagram: cfg.max_datagram.min(65535), ..cfg };
        let slots = (0..cfg.slots)
            .map(|_| Slot {
                key: None,
                deadline: 0,
                buf: vec![0u8; HDR_ROOM + cfg.max_datagram].into_boxed_slice(),
                ranges: ArrayVec::new(),
                total: None,
                hdr_len: 0,
            })
            .collect();
        Reassembler { cfg, slots, stats: ReasmStats::default() }
    }

    /// Datagrams currently under reassembly.
    pub fn in_progress(&self) -> usize {
        self.slots.iter().filter(|s| s.key.is_some()).count()
    }

    /// Drops datagrams whose time is up; returns how many.
    pub fn expire(&mut self, now: u64) -> u64 {
        let mut n = 0;
        for s in &mut self.slots {
            if s.key.is_some() && now >= s.deadline {
                s.key = None;
                n += 1;
            }
        }
        self.stats.timeouts += n;
        n
    }

    /// Adds a fragment (a whole IP packet, already classified as a fragment for us).
    /// Returns the reassembled IP packet once the last piece is in.
    pub fn push(&mut self, pkt: &[u8], now: u64) -> Result<Option<&[u8]>, DropReason> {
        self.stats.fragments += 1;
        let f = parse(pkt)?;
        let end = f.offset + f.payload.len();
        if end > self.cfg.max_datagram {
            self.forget(&f.key);
            return Err(DropReason::FragTooBig);
        }
        if f.more && f.payload.len() % 8 != 0 {
            return Err(DropReason::FragMalformed);
        }
        let i = match self.slots.iter().position(|s| s.key == Some(f.key)) {
            Some(i) => i,
            None => self.claim(f.key, now)?,
        };
        let slot = &mut self.slots[i];
        match slot.add(&f) {
            Err(e) => {
                slot.key = None;
                Err(e)
            }
            Ok(Added::Duplicate) => {
                self.stats.duplicates += 1;
                Ok(None)
            }
            Ok(Added::Partial) => Ok(None),
            Ok(Added::Complete) => {
                self.stats.reassembled += 1;
                let slot = &mut self.slots[i];
                slot.key = None;
                Ok(Some(slot.finish(f.key.src.is_ipv6())))
            }
        }
    }

    fn forget(&mut self, key: &Key) {
        if let Some(s) = self.slots.iter_mut().find(|s| s.key.as_ref() == Some(key)) {
            s.key = None;
        }
    }

    /// A free slot for `key`, reusing expired ones.
    fn claim(&mut self, key: Key, now: u64) -> Result<usize, DropReason> {
        let i = match self.slots.iter().position(|s| s.key.is_none()) {
            Some(i) => i,
            None => {
                if self.expire(now) == 0 {
                    return Err(DropReason::FragTableFull);
                }
                self.slots.iter().position(|s| s.key.is_none()).ok_or(DropReason::FragTableFull)?
            }
        };
        let s = &mut self.slots[i];
        s.key = Some(key);
        s.deadline = now.saturating_add(self.cfg.timeout_ns);
        s.ranges.clear();
        s.total = None;
        s.hdr_len = 0;
        Ok(i)
    }
}

enum Added {
    Partial,
    Duplicate,
    Complete,
}

impl Slot {
    fn add(&mut self, f: &Frag<'_>) -> Result<Added, DropReason> {
        let (start, end) = (f.offset, f.offset + f.payload.len());
        // Exact duplicate, or overlap (which poisons the datagram).
        for &(a, b) in &self.ranges {
            if start < b && a < end {
                return if (a, b) == (start, end) { Ok(Added::Duplicate) } else { Err(DropReason::FragOverlap) };
            }
        }
        if !f.more {
            if self.total.is_some_and(|t| t != end) || self.ranges.last().is_some_and(|&(_, b)| b > end) {
                return Err(DropReason::FragMalformed);
            }
            self.total = Some(end);
        } else if self.total.is_some_and(|t| end > t) {
            return Err(DropReason::FragMalformed);
        }
        if self.ranges.is_full() {
            return Err(DropReason::FragMalformed);
        }
        if f.offset == 0 {
            if f.header.len() > HDR_ROOM {
                return Err(DropReason::FragMalformed);
            }
            self.hdr_len = f.header.len();
            let h = HDR_ROOM - f.header.len();
            self.buf[h..HDR_ROOM].copy_from_slice(f.header);
            // IPv6: the byte that named the fragment header now names the payload. (IPv4:
            // the protocol field, rewritten with the value it already has.)
            self.buf[h + f.nh_at] = f.key.proto;
        }
        self.buf[HDR_ROOM + start..HDR_ROOM + end].copy_from_slice(f.payload);
        let pos = self.ranges.iter().position(|&(a, _)| a > start).unwrap_or(self.ranges.len());
        self.ranges.insert(pos, (start, end));
        let complete = self.total.is_some_and(|t| {
            let mut covered = 0;
            for &(a, b) in &self.ranges {
                if a != covered {
                    return false;
                }
                covered = b;
            }
            covered == t
        });
        Ok(if complete && self.hdr_len != 0 { Added::Complete } else { Added::Partial })
    }

    /// Fixes up the saved header for the whole datagram and returns header + payload.
    fn finish(&mut self, v6: bool) -> &[u8] {
        let total = self.total.unwrap_or(0);
        let start = HDR_ROOM - self.hdr_len;
        let pkt = &mut self.buf[start..HDR_ROOM + total];
        if v6 {
            // The saved header ends before the fragment header; the next-header byte that
            // pointed at it now names the payload's protocol (saved there by `parse`).
            let pl = (pkt.len() - ipv6::HEADER_LEN) as u16;
            pkt[4..6].copy_from_slice(&pl.to_be_bytes());
        } else {
            let mut p = ipv4::Packet::new_unchecked(&mut pkt[..]);
            p.set_total_len((self.hdr_len + total) as u16);
            p.set_frag(false, false, 0);
            p.fill_checksum();
        }
        &self.buf[start..HDR_ROOM + total]
    }
}

/// Reads a fragment. For IPv6 the saved header is the fixed header plus the extension
/// headers before the fragment header, with the next-header byte that named the fragment
/// header rewritten to the fragment header's own next header.
fn parse(pkt: &[u8]) -> Result<Frag<'_>, DropReason> {
    match pkt.first().map(|b| b >> 4) {
        Some(4) => {
            let p = ipv4::Packet::new_checked(pkt).map_err(|_| DropReason::Ipv4Malformed)?;
            let hl = p.header_len();
            let payload = &pkt[hl..p.total_len() as usize];
            if payload.is_empty() {
                return Err(DropReason::FragMalformed);
            }
            Ok(Frag {
                key: Key {
                    src: IpAddr::V4(p.src_addr()),
                    dst: IpAddr::V4(p.dst_addr()),
                    ident: p.ident() as u32,
                    proto: p.protocol(),
                },
                offset: p.frag_offset() as usize,
                more: p.more_frags(),
                payload,
                header: &pkt[..hl],
                nh_at: 9,
            })
        }
        Some(6) => {
            let p = ipv6::Packet::new_checked(pkt).map_err(|_| DropReason::Ipv6Malformed)?;
            let u = p.upper_layer().map_err(|_| DropReason::Ipv6BadExtHeaders)?;
            let f = u.frag.ok_or(DropReason::FragMalformed)?;
            let unfrag_end = ipv6::HEADER_LEN + f.header_offset;
            let payload = &pkt[unfrag_end + ipv6::FRAG_HEADER_LEN..p.total_len()];
            if payload.is_empty() {
                return Err(DropReason::FragMalformed);
            }
            Ok(Frag {
                key: Key {
                    src: IpAddr::V6(p.src_addr()),
                    dst: IpAddr::V6(p.dst_addr()),
                    ident: f.ident,
                    proto: f.next_header,
                },
                offset: f.offset as usize,
                more: f.more_frags,
                payload,
                header: &pkt[..unfrag_end],
                nh_at: nh_pointer(pkt, f.header_offset),
            })
        }
        _ => Err(DropReason::IpBadVersion),
    }
}

/// Offset (from the IPv6 header) of the next-header byte that names the extension header at
/// `target` (an offset within the payload).
fn nh_pointer(pkt: &[u8], target: usize) -> usize {
    let mut at = 6; // the fixed header's next-header field
    let mut off = 0;
    while off < target {
        at = ipv6::HEADER_LEN + off;
        off += (pkt[ipv6::HEADER_LEN + off + 1] as usize + 1) * 8;
    }
    at
}

/// True for the protocols whose fragments the gateway reassembles.
pub fn reassembles(proto: u8) -> bool {
    matches!(proto, ip_proto::ESP | ip_proto::UDP)
}
