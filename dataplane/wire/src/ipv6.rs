//! IPv6 ([RFC 8200](https://www.rfc-editor.org/rfc/rfc8200)) and a walker over its extension
//! headers.

use core::net::Ipv6Addr;

use crate::{be16, be32, ip_proto, put16, put32, Error, Result};

mod field {
    pub const VER_TC_FLOW: usize = 0;
    pub const LENGTH: usize = 4;
    pub const NXT_HDR: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: usize = 8;
    pub const DST: usize = 24;
}

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = 40;
/// Length of the fragment extension header.
pub const FRAG_HEADER_LEN: usize = 8;
/// The smallest MTU every IPv6 link must carry (RFC 8200 §5).
pub const MIN_MTU: usize = 1280;
/// The most extension headers the walker follows before calling the packet malformed.
pub const MAX_EXT_HEADERS: usize = 8;

/// A view of an IPv6 packet.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }
    /// Checks the fixed header and the payload length. A longer buffer is allowed (padding).
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if b.len() < HEADER_LEN + self.payload_len() as usize {
            return Err(Error::Truncated);
        }
        Ok(())
    }
    pub fn into_inner(self) -> T {
        self.buffer
    }
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TC_FLOW] >> 4
    }
    pub fn traffic_class(&self) -> u8 {
        ((be16(self.buffer.as_ref(), 0) >> 4) & 0xff) as u8
    }
    pub fn flow_label(&self) -> u32 {
        be32(self.buffer.as_ref(), 0) & 0x000f_ffff
    }
    pub fn payload_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH)
    }
    /// Total length: fixed header plus payload.
    pub fn total_len(&self) -> usize {
        HEADER_LEN + self.payload_len() as usize
    }
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NXT_HDR]
    }
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }
    pub fn src_addr(&self) -> Ipv6Addr {
        addr_at(self.buffer.as_ref(), field::SRC)
    }
    pub fn dst_addr(&self) -> Ipv6Addr {
        addr_at(self.buffer.as_ref(), field::DST)
    }
    /// Everything after the fixed header, up to the payload length.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.payload_range()]
    }
    fn payload_range(&self) -> core::ops::Range<usize> {
        HEADER_LEN..self.total_len()
    }
    /// Walks the extension headers to the upper-layer protocol.
    pub fn upper_layer(&self) -> Result<UpperLayer> {
        walk_ext_headers(self.next_header(), self.payload())
    }
}

pub(crate) fn addr_at(b: &[u8], at: usize) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[at..at + 16]);
    Ipv6Addr::from(a)
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_payload_len(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::LENGTH, v);
    }
    pub fn set_next_header(&mut self, v: u8) {
        self.buffer.as_mut()[field::NXT_HDR] = v;
    }
    pub fn set_hop_limit(&mut self, v: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = v;
    }
    pub fn set_src_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC..field::SRC + 16].copy_from_slice(&a.octets());
    }
    pub fn set_dst_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::DST..field::DST + 16].copy_from_slice(&a.octets());
    }
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let r = self.payload_range();
        &mut self.buffer.as_mut()[r]
    }
}

impl<'a> Packet<&'a [u8]> {
    /// [`payload`](Packet::payload), borrowed for as long as the packet's bytes rather than
    /// the view.
    pub fn into_payload(self) -> &'a [u8] {
        let r = self.payload_range();
        &self.buffer[r]
    }
}

/// What a fragment header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragInfo {
    /// Offset of the fragment header within the IPv6 payload.
    pub header_offset: usize,
    /// Next header value of the fragment header (the protocol of the reassembled payload).
    pub next_header: u8,
    /// Fragment offset in bytes.
    pub offset: u16,
    pub more_frags: bool,
    pub ident: u32,
}

/// Where the upper layer starts, after the extension headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpperLayer {
    /// The upper-layer protocol (or `IPV6_NO_NXT`, or the next header after a fragment
    /// header in a non-first fragment, whose payload is not an upper-layer header).
    pub protocol: u8,
    /// Offset of the upper-layer header within the IPv6 payload.
    pub offset: usize,
    /// The fragment header, if there is one.
    pub frag: Option<FragInfo>,
}

/// Walks extension headers (RFC 8200 §4) from `next_header` over `payload`.
///
/// Hop-by-hop options are only accepted first (RFC 8200 §4.1); at most
/// [`MAX_EXT_HEADERS`] are followed. The walk stops at the first header that is not an
/// extension header, and at a fragment header with a non-zero offset (what follows is the
/// middle of a datagram, not a header).
pub fn walk_ext_headers(mut next_header: u8, payload: &[u8]) -> Result<UpperLayer> {
    let mut offset = 0usize;
    let mut frag = None;
    for n in 0..=MAX_EXT_HEADERS {
        match next_header {
            ip_proto::HOP_BY_HOP | ip_proto::IPV6_ROUTE | ip_proto::IPV6_OPTS => {
                if next_header == ip_proto::HOP_BY_HOP && n != 0 {
                    return Err(Error::Malformed);
                }
                let h = payload.get(offset..offset + 2).ok_or(Error::Truncated)?;
                let len = (h[1] as usize + 1) * 8;
                if payload.len() < offset + len {
                    return Err(Error::Truncated);
                }
                next_header = h[0];
                offset += len;
            }
            ip_proto::IPV6_FRAG => {
                if frag.is_some() {
                    return Err(Error::Malformed);
                }
                let h = payload.get(offset..offset + FRAG_HEADER_LEN).ok_or(Error::Truncated)?;
                let off_m = be16(h, 2);
                let info = FragInfo {
                    header_offset: offset,
                    next_header: h[0],
                    offset: off_m & 0xfff8,
                    more_frags: off_m & 1 != 0,
                    ident: be32(h, 4),
                };
                frag = Some(info);
                next_header = h[0];
                offset += FRAG_HEADER_LEN;
                if info.offset != 0 {
                    return Ok(UpperLayer { protocol: next_header, offset, frag });
                }
            }
            _ => return Ok(UpperLayer { protocol: next_header, offset, frag }),
        }
    }
    Err(Error::Malformed)
}

/// Writes a fragment extension header into the first 8 bytes of `b`.
pub fn emit_frag_header(b: &mut [u8], next_header: u8, offset: u16, more: bool, ident: u32) {
    b[0] = next_header;
    b[1] = 0;
    put16(b, 2, (offset & 0xfff8) | more as u16);
    put32(b, 4, ident);
}

/// The meaning of a fixed IPv6 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub next_header: u8,
    pub payload_len: usize,
    pub hop_limit: u8,
    pub traffic_class: u8,
    pub flow_label: u32,
}

impl Repr {
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        p.check_len()?;
        if p.version() != 6 {
            return Err(Error::BadVersion);
        }
        Ok(Repr {
            src: p.src_addr(),
            dst: p.dst_addr(),
            next_header: p.next_header(),
            payload_len: p.payload_len() as usize,
            hop_limit: p.hop_limit(),
            traffic_class: p.traffic_class(),
            flow_label: p.flow_label(),
        })
    }

    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    pub fn emit(&self, b: &mut [u8]) {
        let w = (6u32 << 28) | ((self.traffic_class as u32) << 20) | (self.flow_label & 0x000f_ffff);
        put32(b, field::VER_TC_FLOW, w);
        put16(b, field::LENGTH, self.payload_len as u16);
        b[field::NXT_HDR] = self.next_header;
        b[field::HOP_LIMIT] = self.hop_limit;
        b[field::SRC..field::SRC + 16].copy_from_slice(&self.src.octets());
        b[field::DST..field::DST + 16].copy_from_slice(&self.dst.octets());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn repr(next_header: u8, payload_len: usize) -> Repr {
        Repr {
            src: "2001:db8::1".parse().unwrap(),
            dst: "2001:db8::2".parse().unwrap(),
            next_header,
            payload_len,
            hop_limit: 64,
            traffic_class: 0xb8,
            flow_label: 0x12345,
        }
    }

    fn packet(next_header: u8, payload: &[u8]) -> Vec<u8> {
        let mut b = std::vec![0u8; HEADER_LEN + payload.len()];
        repr(next_header, payload.len()).emit(&mut b);
        b[HEADER_LEN..].copy_from_slice(payload);
        b
    }

    #[test]
    fn parse_and_round_trip() {
        let b = packet(ip_proto::UDP, &[1, 2, 3, 4, 5, 6, 7, 8]);
        let p = Packet::new_checked(&b[..]).unwrap();
        let r = Repr::parse(&p).unwrap();
        assert_eq!(r, repr(ip_proto::UDP, 8));
        let mut out = std::vec![0u8; 40];
        r.emit(&mut out);
        assert_eq!(&out[..], &b[..40]);
        assert_eq!(p.upper_layer().unwrap(), UpperLayer { protocol: ip_proto::UDP, offset: 0, frag: None });
    }

    #[test]
    fn walks_hop_by_hop_dest_opts_and_fragment() {
        // HBH (8 bytes) -> DestOpts (16 bytes) -> Fragment (offset 0, M) -> ESP
        let mut pl = Vec::new();
        pl.extend_from_slice(&[ip_proto::IPV6_OPTS, 0, 1, 4, 0, 0, 0, 0]);
        pl.extend_from_slice(&[ip_proto::IPV6_FRAG, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let mut fh = [0u8; 8];
        emit_frag_header(&mut fh, ip_proto::ESP, 0, true, 0xdeadbeef);
        pl.extend_from_slice(&fh);
        pl.extend_from_slice(&[0, 0, 1, 0, 0, 0, 0, 1]);
        let b = packet(ip_proto::HOP_BY_HOP, &pl);
        let u = Packet::new_checked(&b[..]).unwrap().upper_layer().unwrap();
        assert_eq!(u.protocol, ip_proto::ESP);
        assert_eq!(u.offset, 32);
        let f = u.frag.unwrap();
        assert_eq!((f.header_offset, f.offset, f.more_frags, f.ident), (24, 0, true, 0xdeadbeef));
    }

    #[test]
    fn non_first_fragment_stops_walk() {
        let mut fh = [0u8; 8];
        emit_frag_header(&mut fh, ip_proto::UDP, 1448, false, 7);
        let mut pl = fh.to_vec();
        pl.extend_from_slice(&[0xaa; 16]);
        let b = packet(ip_proto::IPV6_FRAG, &pl);
        let u = Packet::new_checked(&b[..]).unwrap().upper_layer().unwrap();
        assert_eq!(u.offset, 8);
        assert_eq!(u.frag.unwrap().offset, 1448);
        assert!(!u.frag.unwrap().more_frags);
    }

    #[test]
    fn bad_input() {
        let b = packet(ip_proto::UDP, &[0; 8]);
        assert_eq!(Packet::new_checked(&b[..39]).unwrap_err(), Error::Truncated);
        assert_eq!(Packet::new_checked(&b[..47]).unwrap_err(), Error::Truncated);
        let mut x = b.clone();
        x[0] = 0x40;
        assert_eq!(Repr::parse(&Packet::new_checked(&x[..]).unwrap()).unwrap_err(), Error::BadVersion);
        // Extension header running past the payload.
        let b = packet(ip_proto::IPV6_OPTS, &[ip_proto::UDP, 3, 0, 0, 0, 0, 0, 0]);
        assert_eq!(Packet::new_checked(&b[..]).unwrap().upper_layer().unwrap_err(), Error::Truncated);
        // Hop-by-hop not first.
        let b = packet(ip_proto::IPV6_OPTS, &[ip_proto::HOP_BY_HOP, 0, 0, 0, 0, 0, 0, 0, 17, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(Packet::new_checked(&b[..]).unwrap().upper_layer().unwrap_err(), Error::Malformed);
        // A chain longer than the limit.
        let mut pl = Vec::new();
        for _ in 0..MAX_EXT_HEADERS + 1 {
            pl.extend_from_slice(&[ip_proto::IPV6_OPTS, 0, 0, 0, 0, 0, 0, 0]);
        }
        let b = packet(ip_proto::IPV6_OPTS, &pl);
        assert_eq!(Packet::new_checked(&b[..]).unwrap().upper_layer().unwrap_err(), Error::Malformed);
        // Two fragment headers.
        let mut pl = Vec::new();
        let mut fh = [0u8; 8];
        emit_frag_header(&mut fh, ip_proto::IPV6_FRAG, 0, true, 1);
        pl.extend_from_slice(&fh);
        emit_frag_header(&mut fh, ip_proto::UDP, 0, true, 1);
        pl.extend_from_slice(&fh);
        let b = packet(ip_proto::IPV6_FRAG, &pl);
        assert_eq!(Packet::new_checked(&b[..]).unwrap().upper_layer().unwrap_err(), Error::Malformed);
    }
}
