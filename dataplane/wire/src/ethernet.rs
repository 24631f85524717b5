//! Ethernet II frames with an optional IEEE 802.1Q tag.

use crate::{be16, put16, Error, Result};

/// A 48-bit MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct EthernetAddress(pub [u8; 6]);

impl EthernetAddress {
    pub const BROADCAST: EthernetAddress = EthernetAddress([0xff; 6]);

    /// The address in the first six bytes of `b`, or `None` if `b` is shorter.
    pub fn from_slice(b: &[u8]) -> Option<Self> {
        Some(EthernetAddress(b.get(..6)?.try_into().ok()?))
    }

    /// The address at `b[at..at + 6]`; the caller has checked the length.
    pub(crate) fn at(b: &[u8], at: usize) -> Self {
        let mut a = [0u8; 6];
        a.copy_from_slice(&b[at..at + 6]);
        EthernetAddress(a)
    }
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 != 0
    }
    pub fn is_unicast(&self) -> bool {
        !self.is_multicast()
    }
    /// The multicast MAC an IPv6 multicast address maps to (RFC 2464 §7).
    pub fn ipv6_multicast(addr: core::net::Ipv6Addr) -> Self {
        let o = addr.octets();
        EthernetAddress([0x33, 0x33, o[12], o[13], o[14], o[15]])
    }
}

impl core::fmt::Debug for EthernetAddress {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Display::fmt(self, f)
    }
}

impl core::fmt::Display for EthernetAddress {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let b = &self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3], b[4], b[5])
    }
}

impl core::str::FromStr for EthernetAddress {
    type Err = Error;
    /// Parses `aa:bb:cc:dd:ee:ff` (or with `-` separators).
    fn from_str(s: &str) -> Result<Self> {
        let mut out = [0u8; 6];
        let mut n = 0;
        for part in s.split([':', '-']) {
            if n == 6 || part.len() != 2 {
                return Err(Error::Malformed);
            }
            out[n] = u8::from_str_radix(part, 16).map_err(|_| Error::Malformed)?;
            n += 1;
        }
        if n != 6 {
            return Err(Error::Malformed);
        }
        Ok(EthernetAddress(out))
    }
}

/// EtherType values.
pub mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    pub const VLAN: u16 = 0x8100;
    pub const IPV6: u16 = 0x86dd;
}

mod field {
    use core::ops::Range;
    pub const DST: Range<usize> = 0..6;
    pub const SRC: Range<usize> = 6..12;
    pub const ETHERTYPE: usize = 12;
    pub const TCI: usize = 14;
    pub const INNER_ETHERTYPE: usize = 16;
}

/// Length of an untagged Ethernet header.
pub const HEADER_LEN: usize = 14;
/// Length of an 802.1Q-tagged Ethernet header.
pub const VLAN_HEADER_LEN: usize = 18;

/// A read/write view of an Ethernet II frame, possibly 802.1Q tagged.
#[derive(Debug, Clone)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        Frame { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self> {
        let f = Self::new_unchecked(buffer);
        f.check_len()?;
        Ok(f)
    }

    /// Ensures the header (including an 802.1Q tag, if the EtherType says so) is present.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if be16(b, field::ETHERTYPE) == ethertype::VLAN && b.len() < VLAN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }
    pub fn dst_addr(&self) -> EthernetAddress {
        EthernetAddress::at(self.buffer.as_ref(), field::DST.start)
    }
    pub fn src_addr(&self) -> EthernetAddress {
        EthernetAddress::at(self.buffer.as_ref(), field::SRC.start)
    }
    /// The VLAN ID of an 802.1Q tag, if the frame carries one.
    pub fn vlan_id(&self) -> Option<u16> {
        let b = self.buffer.as_ref();
        (be16(b, field::ETHERTYPE) == ethertype::VLAN).then(|| be16(b, field::TCI) & 0x0fff)
    }
    /// The EtherType of the payload (after an 802.1Q tag, if any).
    pub fn ethertype(&self) -> u16 {
        let b = self.buffer.as_ref();
        match be16(b, field::ETHERTYPE) {
            ethertype::VLAN => be16(b, field::INNER_ETHERTYPE),
            t => t,
        }
    }
    /// Length of the header, 14 or 18.
    pub fn header_len(&self) -> usize {
        if be16(self.buffer.as_ref(), field::ETHERTYPE) == ethertype::VLAN {
            VLAN_HEADER_LEN
        } else {
            HEADER_LEN
        }
    }
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    pub fn set_dst_addr(&mut self, a: EthernetAddress) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&a.0);
    }
    pub fn set_src_addr(&mut self, a: EthernetAddress) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&a.0);
    }
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let h = self.header_len();
        &mut self.buffer.as_mut()[h..]
    }
}

/// The meaning of an Ethernet header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub src: EthernetAddress,
    pub dst: EthernetAddress,
    /// The VLAN ID of an 802.1Q tag; priority (PCP) and DEI are emitted as zero.
    pub vlan: Option<u16>,
    pub ethertype: u16,
}

impl Repr {
    pub fn parse<T: AsRef<[u8]>>(f: &Frame<T>) -> Result<Repr> {
        f.check_len()?;
        Ok(Repr { src: f.src_addr(), dst: f.dst_addr(), vlan: f.vlan_id(), ethertype: f.ethertype() })
    }

    pub const fn buffer_len(&self) -> usize {
        if self.vlan.is_some() {
            VLAN_HEADER_LEN
        } else {
            HEADER_LEN
        }
    }

    /// Writes the header into the first `buffer_len()` bytes of `buf`.
    pub fn emit(&self, buf: &mut [u8]) {
        buf[field::DST].copy_from_slice(&self.dst.0);
        buf[field::SRC].copy_from_slice(&self.src.0);
        match self.vlan {
            Some(vid) => {
                put16(buf, field::ETHERTYPE, ethertype::VLAN);
                put16(buf, field::TCI, vid & 0x0fff);
                put16(buf, field::INNER_ETHERTYPE, self.ethertype);
            }
            None => put16(buf, field::ETHERTYPE, self.ethertype),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: [u8; 18] =
        [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0xaa, 0xbb, 0xcc, 0xdd];
    const TAGGED: [u8; 20] = [0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x81, 0x00, 0x00, 0x64, 0x86, 0xdd, 0x60, 0x00];

    #[test]
    fn parse() {
        let f = Frame::new_checked(&FRAME[..]).unwrap();
        let r = Repr::parse(&f).unwrap();
        assert_eq!(r.dst, EthernetAddress::BROADCAST);
        assert_eq!(r.src, "02:00:00:00:00:01".parse().unwrap());
        assert_eq!(r.ethertype, ethertype::ARP);
        assert_eq!(r.vlan, None);
        assert_eq!(f.payload(), &[0xaa, 0xbb, 0xcc, 0xdd]);
    }

    #[test]
    fn parse_vlan() {
        let f = Frame::new_checked(&TAGGED[..]).unwrap();
        assert_eq!(f.vlan_id(), Some(100));
        assert_eq!(f.ethertype(), ethertype::IPV6);
        assert_eq!(f.payload(), &[0x60, 0x00]);
    }

    #[test]
    fn emit_round_trip() {
        for frame in [&FRAME[..], &TAGGED[..]] {
            let r = Repr::parse(&Frame::new_checked(frame).unwrap()).unwrap();
            let mut out = [0u8; 18];
            r.emit(&mut out[..r.buffer_len()]);
            assert_eq!(&out[..r.buffer_len()], &frame[..r.buffer_len()]);
        }
    }

    #[test]
    fn truncated() {
        assert_eq!(Frame::new_checked(&FRAME[..13]).unwrap_err(), Error::Truncated);
        assert_eq!(Frame::new_checked(&TAGGED[..17]).unwrap_err(), Error::Truncated);
    }

    #[test]
    fn mac_parse_errors() {
        assert!("02:00:00:00:00".parse::<EthernetAddress>().is_err());
        assert!("02:00:00:00:00:00:01".parse::<EthernetAddress>().is_err());
        assert!("zz:00:00:00:00:00".parse::<EthernetAddress>().is_err());
    }
}
