//! UDP ([RFC 768](https://www.rfc-editor.org/rfc/rfc768)).

use core::net::IpAddr;

use crate::{be16, checksum, ip_proto, put16, Error, Result};

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
}

/// Length of the UDP header.
pub const HEADER_LEN: usize = 8;

/// A view of a UDP datagram.
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
    /// Checks the header and that the length field is within `8..=buffer length`.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let l = self.len() as usize;
        if l < HEADER_LEN {
            return Err(Error::BadLength);
        }
        if l > b.len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }
    pub fn into_inner(self) -> T {
        self.buffer
    }
    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SRC_PORT)
    }
    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::DST_PORT)
    }
    /// The length field: header plus payload.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH)
    }
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.len() as usize]
    }
    /// Verifies the checksum against the pseudo-header of `src`/`dst`.
    ///
    /// Over IPv4 a zero checksum means "not computed" and verifies (RFC 768; RFC 3948 §2.1
    /// asks ESP-in-UDP receivers to accept it). Over IPv6 a zero checksum is invalid
    /// (RFC 8200 §8.1).
    pub fn verify_checksum(&self, src: IpAddr, dst: IpAddr) -> bool {
        let c = self.checksum();
        let seg = &self.buffer.as_ref()[..self.len() as usize];
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                c == 0
                    || checksum::fold(checksum::add(checksum::pseudo_v4(s, d, ip_proto::UDP, seg.len() as u32), seg))
                        == 0xffff
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                c != 0
                    && checksum::fold(checksum::add(checksum::pseudo_v6(s, d, ip_proto::UDP, seg.len() as u32), seg))
                        == 0xffff
            }
            _ => false,
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_src_port(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::SRC_PORT, v);
    }
    pub fn set_dst_port(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::DST_PORT, v);
    }
    pub fn set_len(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::LENGTH, v);
    }
    pub fn set_checksum(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::CHECKSUM, v);
    }
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let l = self.len() as usize;
        &mut self.buffer.as_mut()[HEADER_LEN..l]
    }
    /// Computes and stores the checksum for the pseudo-header of `src`/`dst`.
    pub fn fill_checksum(&mut self, src: IpAddr, dst: IpAddr) {
        self.set_checksum(0);
        let l = self.len() as usize;
        let seg = &self.buffer.as_ref()[..l];
        let pseudo = match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => checksum::pseudo_v4(s, d, ip_proto::UDP, l as u32),
            (IpAddr::V6(s), IpAddr::V6(d)) => checksum::pseudo_v6(s, d, ip_proto::UDP, l as u32),
            _ => 0,
        };
        let mut c = !checksum::fold(checksum::add(pseudo, seg));
        if c == 0 {
            c = 0xffff; // RFC 768: a computed zero is sent as all ones.
        }
        self.set_checksum(c);
    }
}

/// The meaning of a UDP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub src_port: u16,
    pub dst_port: u16,
    pub payload_len: usize,
}

impl Repr {
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        p.check_len()?;
        Ok(Repr { src_port: p.src_port(), dst_port: p.dst_port(), payload_len: p.len() as usize - HEADER_LEN })
    }
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }
    /// Writes the header with a zero checksum; call `Packet::fill_checksum` once the payload
    /// is in place if a checksum is wanted.
    pub fn emit(&self, b: &mut [u8]) {
        put16(b, field::SRC_PORT, self.src_port);
        put16(b, field::DST_PORT, self.dst_port);
        put16(b, field::LENGTH, (HEADER_LEN + self.payload_len) as u16);
        put16(b, field::CHECKSUM, 0);
    }
}

/// Bytes of an IPv4 (or IPv6) packet without options carrying a UDP datagram of
/// `payload_len` bytes.
pub const fn ip_datagram_len(v4: bool, payload_len: usize) -> usize {
    (if v4 { 20 } else { 40 }) + HEADER_LEN + payload_len
}

/// Writes into `d` (exactly [`ip_datagram_len`] bytes) an IP packet from `src` to `dst`
/// carrying a UDP datagram of `prefix` then `payload`, with a valid UDP checksum (TTL 64,
/// no fragmentation). False, `d` untouched: the families differ, `d` has the wrong length,
/// or the datagram exceeds 65535 bytes.
pub fn emit_ip_datagram(d: &mut [u8], src: (IpAddr, u16), dst: (IpAddr, u16), prefix: &[u8], payload: &[u8]) -> bool {
    use crate::{ipv4, ipv6};
    let l4 = HEADER_LEN + prefix.len() + payload.len();
    let v4 = src.0.is_ipv4();
    if l4 > u16::MAX as usize || v4 != dst.0.is_ipv4() || d.len() != ip_datagram_len(v4, l4 - HEADER_LEN) {
        return false;
    }
    let ip_len = d.len() - l4;
    match (src.0, dst.0) {
        (IpAddr::V4(s), IpAddr::V4(t)) => ipv4::Repr {
            src: s,
            dst: t,
            protocol: ip_proto::UDP,
            payload_len: l4,
            ttl: 64,
            tos: 0,
            ident: 0,
            dont_frag: false,
            more_frags: false,
            frag_offset: 0,
        }
        .emit(d),
        (IpAddr::V6(s), IpAddr::V6(t)) => ipv6::Repr {
            src: s,
            dst: t,
            next_header: ip_proto::UDP,
            payload_len: l4,
            hop_limit: 64,
            traffic_class: 0,
            flow_label: 0,
        }
        .emit(d),
        _ => return false,
    }
    Repr { src_port: src.1, dst_port: dst.1, payload_len: l4 - HEADER_LEN }.emit(&mut d[ip_len..]);
    let at = ip_len + HEADER_LEN;
    d[at..at + prefix.len()].copy_from_slice(prefix);
    d[at + prefix.len()..].copy_from_slice(payload);
    Packet::new_unchecked(&mut d[ip_len..]).fill_checksum(src.0, dst.0);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{Ipv4Addr, Ipv6Addr};

    const DGRAM: [u8; 12] = [0x11, 0x94, 0x11, 0x94, 0x00, 0x0c, 0x00, 0x00, 0xff, 0x00, 0x00, 0x00];

    #[test]
    fn parse_emit_round_trip() {
        let p = Packet::new_checked(&DGRAM[..]).unwrap();
        let r = Repr::parse(&p).unwrap();
        assert_eq!(r, Repr { src_port: 4500, dst_port: 4500, payload_len: 4 });
        let mut out = [0u8; 12];
        r.emit(&mut out);
        out[8..].copy_from_slice(p.payload());
        assert_eq!(out, DGRAM);
    }

    #[test]
    fn checksums() {
        let s4 = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        let d4 = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));
        let mut b = DGRAM;
        assert!(Packet::new_checked(&b[..]).unwrap().verify_checksum(s4, d4), "zero accepted over IPv4");
        Packet::new_checked(&mut b[..]).unwrap().fill_checksum(s4, d4);
        assert_ne!(Packet::new_unchecked(&b[..]).checksum(), 0);
        assert!(Packet::new_unchecked(&b[..]).verify_checksum(s4, d4));
        b[9] ^= 1;
        assert!(!Packet::new_unchecked(&b[..]).verify_checksum(s4, d4));

        let s6 = IpAddr::V6("2001:db8::1".parse::<Ipv6Addr>().unwrap());
        let d6 = IpAddr::V6("2001:db8::2".parse::<Ipv6Addr>().unwrap());
        let mut b = DGRAM;
        assert!(!Packet::new_unchecked(&b[..]).verify_checksum(s6, d6), "zero rejected over IPv6");
        Packet::new_checked(&mut b[..]).unwrap().fill_checksum(s6, d6);
        assert!(Packet::new_unchecked(&b[..]).verify_checksum(s6, d6));
    }

    #[test]
    fn bad_lengths() {
        assert_eq!(Packet::new_checked(&DGRAM[..7]).unwrap_err(), Error::Truncated);
        let mut b = DGRAM;
        b[5] = 7;
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::BadLength);
        b[5] = 13;
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::Truncated);
    }

    #[test]
    fn ip_datagram_carries_the_marker_and_a_good_checksum() {
        let (src, dst) = (("192.0.2.1".parse().unwrap(), 4500), ("198.51.100.7".parse().unwrap(), 61_000));
        let mut d = [0u8; ip_datagram_len(true, 4 + 3)];
        assert!(emit_ip_datagram(&mut d, src, dst, &[0; 4], b"ike"));
        let p = crate::ipv4::Packet::new_checked(&d[..]).unwrap();
        let u = Packet::new_checked(p.payload()).unwrap();
        assert!(u.verify_checksum(src.0, dst.0));
        assert_eq!((u.src_port(), u.dst_port()), (4500, 61_000));
        assert_eq!(u.payload(), b"\0\0\0\0ike");
        let v6 = ("2001:db8::1".parse().unwrap(), 500);
        assert!(!emit_ip_datagram(&mut d, src, v6, &[], b"ike"), "families differ");
        assert!(!emit_ip_datagram(&mut [0; 10], src, dst, &[], b"ike"), "wrong length");
    }
}
