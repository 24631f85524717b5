//! Fragmentation of an inner IPv4 packet before encryption
//! ([RFC 791 §3.2](https://www.rfc-editor.org/rfc/rfc791#section-3.2); RFC 4459 §3.2: fragment
//! the inner packet, never the outer one), for inner packets without DF that exceed the SA's
//! MTU. Each fragment is then encapsulated on its own.
//!
//! Also IPv6 source fragmentation ([RFC 8200 §4.5](https://www.rfc-editor.org/rfc/rfc8200#section-4.5))
//! of the datagrams the gateway itself originates (IKE messages larger than the link), the
//! only IPv6 packets a node other than their source never fragments.

use esprit_wire::{ip_proto, ipv4, ipv6};

use crate::buf::PacketBuf;

/// Why a packet cannot be fragmented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FragError {
    /// Not a valid IPv4 packet.
    Malformed,
    /// DF is set: the sender must get fragmentation-needed instead.
    DontFragment,
    /// The MTU cannot carry the header and 8 bytes of payload.
    MtuTooSmall,
    /// The output buffer is too small.
    NoRoom,
}

/// An iterator-like splitter writing one fragment at a time into caller-provided buffers.
#[derive(Debug)]
pub struct FragmentsV4<'a> {
    pkt: &'a [u8],
    first_hdr_len: usize,
    /// Header for the second and later fragments: options without the copy flag removed.
    later_hdr: [u8; 60],
    later_hdr_len: usize,
    payload_len: usize,
    /// Offset of the next fragment within this packet's payload.
    next: usize,
    /// Fragment offset of this packet itself (it may already be a fragment).
    base_offset: usize,
    base_more: bool,
    mtu: usize,
}

impl<'a> FragmentsV4<'a> {
    pub fn new(pkt: &'a [u8], mtu: usize) -> Result<FragmentsV4<'a>, FragError> {
        let p = ipv4::Packet::new_checked(pkt).map_err(|_| FragError::Malformed)?;
        if p.dont_frag() {
            return Err(FragError::DontFragment);
        }
        let hl = p.header_len();
        let (later_hdr, later_hdr_len) = later_header(p.header());
        if mtu < hl.max(later_hdr_len) + 8 {
            return Err(FragError::MtuTooSmall);
        }
        Ok(FragmentsV4 {
            pkt: &pkt[..p.total_len() as usize],
            first_hdr_len: hl,
            later_hdr,
            later_hdr_len,
            payload_len: p.total_len() as usize - hl,
            next: 0,
            base_offset: p.frag_offset() as usize,
            base_more: p.more_frags(),
            mtu,
        })
    }

    /// True when every fragment has been written.
    pub fn is_done(&self) -> bool {
        self.next >= self.payload_len && !(self.payload_len == 0 && self.next == 0)
    }

    /// Writes the next fragment into `out` (emptied first); `None` when done.
    pub fn next_into<B: PacketBuf>(&mut self, out: &mut B) -> Option<Result<(), FragError>> {
        if self.is_done() {
            return None;
        }
        let first = self.next == 0;
        let hdr: &[u8] = if first { &self.pkt[..self.first_hdr_len] } else { &self.later_hdr[..self.later_hdr_len] };
        let room = (self.mtu - hdr.len()) / 8 * 8;
        let chunk = room.min(self.payload_len - self.next);
        let more = self.next + chunk < self.payload_len || self.base_more;
        let total = hdr.len() + chunk;
        let cur = out.len();
        if !(out.trim(cur) && out.append(total)) {
            return Some(Err(FragError::NoRoom));
        }
        let d = out.data_mut();
        d[..hdr.len()].copy_from_slice(hdr);
        let src = self.first_hdr_len + self.next;
        d[hdr.len()..].copy_from_slice(&self.pkt[src..src + chunk]);
        let mut p = ipv4::Packet::new_unchecked(&mut d[..]);
        p.set_total_len(total as u16);
        p.set_frag(false, more, (self.base_offset + self.next) as u16);
        p.fill_checksum();
        self.next += chunk.max(1);
        Some(Ok(()))
    }
}

/// Source fragmentation of an IPv6 packet we originate, one fragment at a time. The
/// unfragmentable part is the IPv6 header with any Hop-by-Hop Options and Routing headers;
/// it is repeated in every fragment, followed by a Fragment header.
#[derive(Debug)]
pub struct FragmentsV6<'a> {
    pkt: &'a [u8],
    /// Length of the unfragmentable part.
    unfrag_len: usize,
    /// Where the next-header field to point at the Fragment header is.
    nh_at: usize,
    /// The next header the Fragment header carries.
    nh: u8,
    payload_len: usize,
    next: usize,
    ident: u32,
    mtu: usize,
}

impl<'a> FragmentsV6<'a> {
    /// Splits `pkt` for a link of `mtu` bytes, every fragment carrying identification
    /// `ident` (unique among the source's recent fragmented packets to that destination).
    pub fn new(pkt: &'a [u8], mtu: usize, ident: u32) -> Result<FragmentsV6<'a>, FragError> {
        let p = ipv6::Packet::new_checked(pkt).map_err(|_| FragError::Malformed)?;
        let pkt = &pkt[..p.total_len()];
        let (mut nh, mut nh_at, mut off) = (p.next_header(), 6, ipv6::HEADER_LEN);
        let mut first = true;
        while nh == ip_proto::IPV6_ROUTE || (nh == ip_proto::HOP_BY_HOP && first) {
            let h = pkt.get(off..off + 2).ok_or(FragError::Malformed)?;
            let len = (h[1] as usize + 1) * 8;
            if pkt.len() < off + len {
                return Err(FragError::Malformed);
            }
            (nh, nh_at, off, first) = (h[0], off, off + len, false);
        }
        if nh == ip_proto::IPV6_FRAG || nh == ip_proto::HOP_BY_HOP {
            return Err(FragError::Malformed);
        }
        if mtu < off + ipv6::FRAG_HEADER_LEN + 8 {
            return Err(FragError::MtuTooSmall);
        }
        Ok(FragmentsV6 { pkt, unfrag_len: off, nh_at, nh, payload_len: pkt.len() - off, next: 0, ident, mtu })
    }

    /// True when every fragment has been written.
    pub fn is_done(&self) -> bool {
        self.next >= self.payload_len && !(self.payload_len == 0 && self.next == 0)
    }

    /// Writes the next fragment into `out` (emptied first); `None` when done.
    pub fn next_into<B: PacketBuf>(&mut self, out: &mut B) -> Option<Result<(), FragError>> {
        if self.is_done() {
            return None;
        }
        let hdr = self.unfrag_len + ipv6::FRAG_HEADER_LEN;
        let room = (self.mtu - hdr) / 8 * 8;
        let chunk = room.min(self.payload_len - self.next);
        let more = self.next + chunk < self.payload_len;
        let total = hdr + chunk;
        let cur = out.len();
        if !(out.trim(cur) && out.append(total)) {
            return Some(Err(FragError::NoRoom));
        }
        let d = out.data_mut();
        d[..self.unfrag_len].copy_from_slice(&self.pkt[..self.unfrag_len]);
        d[self.nh_at] = ip_proto::IPV6_FRAG;
        ipv6::emit_frag_header(&mut d[self.unfrag_len..hdr], self.nh, self.next as u16, more, self.ident);
        let src = self.unfrag_len + self.next;
        d[hdr..].copy_from_slice(&self.pkt[src..src + chunk]);
        ipv6::Packet::new_unchecked(&mut d[..]).set_payload_len((total - ipv6::HEADER_LEN) as u16);
        self.next += chunk.max(1);
        Some(Ok(()))
    }
}

/// Fragments of a packet we originate, of either family.
#[derive(Debug)]
pub enum Fragments<'a> {
    V4(FragmentsV4<'a>),
    V6(FragmentsV6<'a>),
}

impl<'a> Fragments<'a> {
    /// Splits an IPv4 packet (without DF) or an IPv6 one (with identification `ident`).
    pub fn new(pkt: &'a [u8], mtu: usize, ident: u32) -> Result<Fragments<'a>, FragError> {
        match pkt.first().map(|b| b >> 4) {
            Some(4) => FragmentsV4::new(pkt, mtu).map(Fragments::V4),
            Some(6) => FragmentsV6::new(pkt, mtu, ident).map(Fragments::V6),
            _ => Err(FragError::Malformed),
        }
    }

    /// Writes the next fragment into `out`; `None` when done.
    pub fn next_into<B: PacketBuf>(&mut self, out: &mut B) -> Option<Result<(), FragError>> {
        match self {
            Fragments::V4(f) => f.next_into(out),
            Fragments::V6(f) => f.next_into(out),
        }
    }
}

/// The header of non-first fragments: only options with the copied flag (RFC 791 §3.1).
fn later_header(h: &[u8]) -> ([u8; 60], usize) {
    let mut out = [0u8; 60];
    out[..20].copy_from_slice(&h[..20]);
    let mut n = 20;
    let mut opts = &h[20..];
    while let Some(&kind) = opts.first() {
        let len = match kind {
            0 => break,
            1 => 1,
            _ => match opts.get(1) {
                Some(&l) if (2..=opts.len()).contains(&(l as usize)) => l as usize,
                _ => break,
            },
        };
        if kind & 0x80 != 0 {
            out[n..n + len].copy_from_slice(&opts[..len]);
            n += len;
        }
        opts = &opts[len..];
    }
    // Pad to a 4-byte boundary with end-of-options.
    let padded = n.next_multiple_of(4);
    out[n..padded].fill(0);
    out[0] = 0x40 | (padded / 4) as u8;
    (out, padded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HeapBuf;

    fn packet(payload: usize, options: &[u8]) -> Vec<u8> {
        let hl = 20 + options.len();
        let mut p = vec![0u8; hl + payload];
        ipv4::Repr {
            src: "10.0.0.1".parse().unwrap(),
            dst: "10.0.0.2".parse().unwrap(),
            protocol: 17,
            payload_len: payload,
            ttl: 64,
            tos: 0,
            ident: 0x4242,
            dont_frag: false,
            more_frags: false,
            frag_offset: 0,
        }
        .emit(&mut p);
        p[0] = 0x40 | (hl / 4) as u8;
        p[2..4].copy_from_slice(&((hl + payload) as u16).to_be_bytes());
        p[20..hl].copy_from_slice(options);
        for (i, b) in p[hl..].iter_mut().enumerate() {
            *b = i as u8;
        }
        ipv4::Packet::new_unchecked(&mut p[..]).fill_checksum();
        p
    }

    fn split(p: &[u8], mtu: usize) -> Vec<Vec<u8>> {
        let mut f = FragmentsV4::new(p, mtu).unwrap();
        let mut v = Vec::new();
        let mut b = HeapBuf::default();
        while let Some(r) = f.next_into(&mut b) {
            r.unwrap();
            v.push(b.data().to_vec());
        }
        v
    }

    /// Reassembles by offset, checking every fragment on the way.
    fn join(frags: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, f) in frags.iter().enumerate() {
            let p = ipv4::Packet::new_checked(&f[..]).unwrap();
            assert!(p.verify_checksum());
            assert_eq!(p.more_frags(), i + 1 < frags.len());
            assert_eq!(p.frag_offset() as usize, out.len());
            assert_eq!(p.ident(), 0x4242);
            out.extend_from_slice(p.payload());
        }
        out
    }

    #[test]
    fn splits_to_mtu_on_8_byte_boundaries() {
        let p = packet(3000, &[]);
        let f = split(&p, 1438);
        assert_eq!(f.len(), 3);
        assert!(f.iter().all(|x| x.len() <= 1438));
        assert_eq!(f[0].len(), 20 + 1416);
        assert_eq!(join(&f), p[20..]);
    }

    #[test]
    fn options_copied_only_when_flagged() {
        // Router alert (copied, 0x94) and record route (not copied, 0x07), then padding.
        let opts = [0x94, 4, 0, 0, 0x07, 7, 4, 0, 0, 0, 0, 0];
        let p = packet(100, &opts);
        let f = split(&p, 20 + 12 + 48);
        assert_eq!(ipv4::Packet::new_checked(&f[0][..]).unwrap().options(), &opts);
        let later = ipv4::Packet::new_checked(&f[1][..]).unwrap();
        assert_eq!(later.options(), &[0x94, 4, 0, 0]);
        let mut payload = Vec::new();
        for x in &f {
            payload.extend_from_slice(ipv4::Packet::new_checked(&x[..]).unwrap().payload());
        }
        assert_eq!(payload, p[32..]);
    }

    #[test]
    fn refuses_df_and_tiny_mtu() {
        let mut p = packet(100, &[]);
        assert_eq!(FragmentsV4::new(&p, 20).unwrap_err(), FragError::MtuTooSmall);
        p[6] |= 0x40;
        assert_eq!(FragmentsV4::new(&p, 60).unwrap_err(), FragError::DontFragment);
        assert_eq!(FragmentsV4::new(&p[..10], 60).unwrap_err(), FragError::Malformed);
    }

    fn packet6(payload: usize, routing: bool) -> Vec<u8> {
        let ext = if routing { 24 } else { 0 };
        let mut p = vec![0u8; 40 + ext + payload];
        ipv6::Repr {
            src: "2001:db8::1".parse().unwrap(),
            dst: "2001:db8::2".parse().unwrap(),
            next_header: if routing { ip_proto::IPV6_ROUTE } else { ip_proto::UDP },
            payload_len: ext + payload,
            hop_limit: 64,
            traffic_class: 0,
            flow_label: 0,
        }
        .emit(&mut p);
        if routing {
            // Type 0 is deprecated, but its length field is all this walk needs.
            p[40] = ip_proto::UDP;
            p[41] = 2;
        }
        for (i, b) in p[40 + ext..].iter_mut().enumerate() {
            *b = (i * 7) as u8;
        }
        p
    }

    fn split6(p: &[u8], mtu: usize) -> Vec<Vec<u8>> {
        let mut f = FragmentsV6::new(p, mtu, 0xdead_beef).unwrap();
        let mut v = Vec::new();
        let mut b = HeapBuf::default();
        while let Some(r) = f.next_into(&mut b) {
            r.unwrap();
            v.push(b.data().to_vec());
        }
        v
    }

    #[test]
    fn ipv6_source_fragmentation() {
        let p = packet6(3000, false);
        let f = split6(&p, 1280);
        assert_eq!(f.len(), 3);
        let mut joined = Vec::new();
        for (i, x) in f.iter().enumerate() {
            assert!(x.len() <= 1280);
            let ip = ipv6::Packet::new_checked(&x[..]).unwrap();
            assert_eq!(ip.total_len(), x.len());
            assert_eq!(ip.next_header(), ip_proto::IPV6_FRAG);
            let u = ipv6::walk_ext_headers(ip.next_header(), ip.payload()).unwrap();
            let fi = u.frag.unwrap();
            assert_eq!((fi.next_header, fi.ident, fi.more_frags), (ip_proto::UDP, 0xdead_beef, i + 1 < f.len()));
            assert_eq!(fi.offset as usize, joined.len());
            assert!(!fi.more_frags || (x.len() - 48) % 8 == 0, "non-last fragments are multiples of 8");
            joined.extend_from_slice(&ip.payload()[8..]);
        }
        assert_eq!(f[0].len(), 1280, "1232 bytes after the headers: a multiple of 8");
        assert_eq!(joined, p[40..]);
        // The receive side's reassembler (written separately) gets the packet back.
        let mut r = crate::reasm::Reassembler::new(crate::reasm::ReasmConfig::default());
        let mut whole = None;
        for x in f.iter().rev() {
            whole = r.push(x, 1).unwrap().map(<[u8]>::to_vec);
        }
        assert_eq!(whole.unwrap(), p);
        // Small enough: one fragment is still a valid (atomic) fragment, but the caller
        // only fragments what does not fit.
        assert_eq!(split6(&packet6(100, false), 1280).len(), 1);
    }

    #[test]
    fn ipv6_routing_header_is_repeated_in_every_fragment() {
        let p = packet6(2000, true);
        let f = split6(&p, 1280);
        assert_eq!(f.len(), 2);
        for x in &f {
            assert_eq!(x[6], ip_proto::IPV6_ROUTE);
            assert_eq!(&x[40..64][1..], &p[40..64][1..]);
            assert_eq!(x[40], ip_proto::IPV6_FRAG, "the routing header now points at the fragment header");
            assert_eq!(x[64], ip_proto::UDP);
        }
        assert_eq!(FragmentsV6::new(&p, 64 + 8, 1).unwrap_err(), FragError::MtuTooSmall);
        assert_eq!(FragmentsV6::new(&f[0], 1280, 1).unwrap_err(), FragError::Malformed, "already a fragment");
    }

    #[test]
    fn small_packet_is_one_fragment() {
        let p = packet(10, &[]);
        let f = split(&p, 1500);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0], p);
    }
}
