//! Fragmentation of an inner IPv4 packet before encryption
//! ([RFC 791 §3.2](https://www.rfc-editor.org/rfc/rfc791#section-3.2); RFC 4459 §3.2: fragment
//! the inner packet, never the outer one), for inner packets without DF that exceed the SA's
//! MTU. Each fragment is then encapsulated on its own.

use esprit_wire::ipv4;

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

    #[test]
    fn small_packet_is_one_fragment() {
        let p = packet(10, &[]);
        let f = split(&p, 1500);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0], p);
    }
}
