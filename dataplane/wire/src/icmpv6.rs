//! ICMPv6 ([RFC 4443](https://www.rfc-editor.org/rfc/rfc4443)) and the neighbor
//! solicitation/advertisement messages of [RFC 4861](https://www.rfc-editor.org/rfc/rfc4861).

use core::net::Ipv6Addr;

use crate::ethernet::EthernetAddress;
use crate::{be16, be32, checksum, ip_proto, put16, put32, Error, Result};

/// Length of the ICMPv6 header including the 4-byte message-specific word.
pub const HEADER_LEN: usize = 8;
/// Length of a neighbor solicitation/advertisement before its options.
pub const ND_LEN: usize = 24;

/// Message types.
pub mod kind {
    pub const DST_UNREACHABLE: u8 = 1;
    pub const PACKET_TOO_BIG: u8 = 2;
    pub const TIME_EXCEEDED: u8 = 3;
    pub const ECHO_REQUEST: u8 = 128;
    pub const ECHO_REPLY: u8 = 129;
    pub const NEIGHBOR_SOLICIT: u8 = 135;
    pub const NEIGHBOR_ADVERT: u8 = 136;
}

const OPT_SOURCE_LLADDR: u8 = 1;
const OPT_TARGET_LLADDR: u8 = 2;

/// Neighbor-advertisement flags (RFC 4861 §4.4).
pub const NA_FLAG_ROUTER: u8 = 0x80;
pub const NA_FLAG_SOLICITED: u8 = 0x40;
pub const NA_FLAG_OVERRIDE: u8 = 0x20;

/// A view of an ICMPv6 message.
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
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if matches!(self.msg_type(), kind::NEIGHBOR_SOLICIT | kind::NEIGHBOR_ADVERT) && b.len() < ND_LEN {
            return Err(Error::Truncated);
        }
        Ok(())
    }
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[0]
    }
    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[1]
    }
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), 2)
    }
    /// The MTU of a Packet Too Big message.
    pub fn mtu(&self) -> u32 {
        be32(self.buffer.as_ref(), 4)
    }
    pub fn echo_ident(&self) -> u16 {
        be16(self.buffer.as_ref(), 4)
    }
    pub fn echo_seq_no(&self) -> u16 {
        be16(self.buffer.as_ref(), 6)
    }
    /// The target address of a neighbor solicitation or advertisement.
    pub fn target_addr(&self) -> Ipv6Addr {
        crate::ipv6::addr_at(self.buffer.as_ref(), 8)
    }
    /// Verifies the checksum against the IPv6 pseudo-header.
    pub fn verify_checksum(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        let b = self.buffer.as_ref();
        checksum::fold(checksum::add(checksum::pseudo_v6(src, dst, ip_proto::ICMPV6, b.len() as u32), b)) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn fill_checksum(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        put16(self.buffer.as_mut(), 2, 0);
        let b = self.buffer.as_ref();
        let c = !checksum::fold(checksum::add(checksum::pseudo_v6(src, dst, ip_proto::ICMPV6, b.len() as u32), b));
        put16(self.buffer.as_mut(), 2, c);
    }
}

/// The meaning of the ICMPv6 messages the gateway sends and acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repr<'a> {
    DstUnreachable { code: u8, quoted: &'a [u8] },
    PacketTooBig { mtu: u32, quoted: &'a [u8] },
    TimeExceeded { code: u8, quoted: &'a [u8] },
    EchoRequest { ident: u16, seq_no: u16, data: &'a [u8] },
    EchoReply { ident: u16, seq_no: u16, data: &'a [u8] },
    NeighborSolicit { target: Ipv6Addr, lladdr: Option<EthernetAddress> },
    NeighborAdvert { flags: u8, target: Ipv6Addr, lladdr: Option<EthernetAddress> },
}

/// Finds the link-layer address option of type `want` among ND options (RFC 4861 §4.6).
fn find_lladdr(mut opts: &[u8], want: u8) -> Result<Option<EthernetAddress>> {
    let mut found = None;
    while !opts.is_empty() {
        if opts.len() < 2 {
            return Err(Error::Truncated);
        }
        let len = opts[1] as usize * 8;
        if len == 0 {
            return Err(Error::Malformed); // RFC 4861 §4.6: length 0 is invalid.
        }
        if opts.len() < len {
            return Err(Error::Truncated);
        }
        if opts[0] == want && len >= 8 {
            found = EthernetAddress::from_slice(&opts[2..8]);
        }
        opts = &opts[len..];
    }
    Ok(found)
}

impl<'a> Repr<'a> {
    /// Parses a message, verifying the checksum against `src`/`dst`.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(p: &Packet<&'a T>, src: Ipv6Addr, dst: Ipv6Addr) -> Result<Repr<'a>> {
        p.check_len()?;
        if !p.verify_checksum(src, dst) {
            return Err(Error::BadChecksum);
        }
        let buf: &'a T = p.buffer;
        let b = buf.as_ref();
        let data = &b[HEADER_LEN..];
        Ok(match p.msg_type() {
            kind::DST_UNREACHABLE => Repr::DstUnreachable { code: p.msg_code(), quoted: data },
            kind::PACKET_TOO_BIG => Repr::PacketTooBig { mtu: p.mtu(), quoted: data },
            kind::TIME_EXCEEDED => Repr::TimeExceeded { code: p.msg_code(), quoted: data },
            kind::ECHO_REQUEST => Repr::EchoRequest { ident: p.echo_ident(), seq_no: p.echo_seq_no(), data },
            kind::ECHO_REPLY => Repr::EchoReply { ident: p.echo_ident(), seq_no: p.echo_seq_no(), data },
            kind::NEIGHBOR_SOLICIT => {
                if p.msg_code() != 0 {
                    return Err(Error::Malformed);
                }
                Repr::NeighborSolicit { target: p.target_addr(), lladdr: find_lladdr(&b[ND_LEN..], OPT_SOURCE_LLADDR)? }
            }
            kind::NEIGHBOR_ADVERT => {
                if p.msg_code() != 0 {
                    return Err(Error::Malformed);
                }
                Repr::NeighborAdvert {
                    flags: b[4],
                    target: p.target_addr(),
                    lladdr: find_lladdr(&b[ND_LEN..], OPT_TARGET_LLADDR)?,
                }
            }
            _ => return Err(Error::Unsupported),
        })
    }

    pub fn buffer_len(&self) -> usize {
        match self {
            Repr::DstUnreachable { quoted, .. }
            | Repr::PacketTooBig { quoted, .. }
            | Repr::TimeExceeded { quoted, .. } => HEADER_LEN + quoted.len(),
            Repr::EchoRequest { data, .. } | Repr::EchoReply { data, .. } => HEADER_LEN + data.len(),
            Repr::NeighborSolicit { lladdr, .. } | Repr::NeighborAdvert { lladdr, .. } => {
                ND_LEN + if lladdr.is_some() { 8 } else { 0 }
            }
        }
    }

    /// Writes the message with its checksum for `src`/`dst` into the first `buffer_len()`
    /// bytes of `b`.
    pub fn emit(&self, b: &mut [u8], src: Ipv6Addr, dst: Ipv6Addr) {
        let b = &mut b[..self.buffer_len()];
        b[1] = 0;
        b[4..8].fill(0);
        match *self {
            Repr::DstUnreachable { code, quoted } | Repr::TimeExceeded { code, quoted } => {
                b[0] = if matches!(self, Repr::DstUnreachable { .. }) {
                    kind::DST_UNREACHABLE
                } else {
                    kind::TIME_EXCEEDED
                };
                b[1] = code;
                b[HEADER_LEN..].copy_from_slice(quoted);
            }
            Repr::PacketTooBig { mtu, quoted } => {
                b[0] = kind::PACKET_TOO_BIG;
                put32(b, 4, mtu);
                b[HEADER_LEN..].copy_from_slice(quoted);
            }
            Repr::EchoRequest { ident, seq_no, data } | Repr::EchoReply { ident, seq_no, data } => {
                b[0] = if matches!(self, Repr::EchoRequest { .. }) { kind::ECHO_REQUEST } else { kind::ECHO_REPLY };
                put16(b, 4, ident);
                put16(b, 6, seq_no);
                b[HEADER_LEN..].copy_from_slice(data);
            }
            Repr::NeighborSolicit { target, lladdr } | Repr::NeighborAdvert { target, lladdr, .. } => {
                let opt = if let Repr::NeighborAdvert { flags, .. } = *self {
                    b[0] = kind::NEIGHBOR_ADVERT;
                    b[4] = flags;
                    OPT_TARGET_LLADDR
                } else {
                    b[0] = kind::NEIGHBOR_SOLICIT;
                    OPT_SOURCE_LLADDR
                };
                b[8..24].copy_from_slice(&target.octets());
                if let Some(mac) = lladdr {
                    b[24] = opt;
                    b[25] = 1;
                    b[26..32].copy_from_slice(&mac.0);
                }
            }
        }
        Packet::new_unchecked(b).fill_checksum(src, dst);
    }
}

/// The solicited-node multicast address of `addr` (RFC 4291 §2.7.1).
pub fn solicited_node(addr: Ipv6Addr) -> Ipv6Addr {
    let o = addr.octets();
    Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00 | o[13] as u16, u16::from_be_bytes([o[14], o[15]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs() -> (Ipv6Addr, Ipv6Addr) {
        ("fe80::1".parse().unwrap(), "fe80::2".parse().unwrap())
    }

    #[test]
    fn round_trips() {
        let (s, d) = addrs();
        let mac: EthernetAddress = "02:00:00:00:00:01".parse().unwrap();
        let quoted = [0x60u8; 48];
        let cases = [
            Repr::PacketTooBig { mtu: 1280, quoted: &quoted },
            Repr::DstUnreachable { code: 4, quoted: &quoted },
            Repr::TimeExceeded { code: 0, quoted: &quoted },
            Repr::EchoRequest { ident: 1, seq_no: 2, data: b"ping" },
            Repr::EchoReply { ident: 1, seq_no: 2, data: b"pong" },
            Repr::NeighborSolicit { target: d, lladdr: Some(mac) },
            Repr::NeighborSolicit { target: d, lladdr: None },
            Repr::NeighborAdvert { flags: NA_FLAG_SOLICITED | NA_FLAG_OVERRIDE, target: d, lladdr: Some(mac) },
        ];
        for r in cases {
            let mut b = [0u8; 64];
            let n = r.buffer_len();
            r.emit(&mut b, s, d);
            let p = Packet::new_checked(&b[..n]).unwrap();
            assert!(p.verify_checksum(s, d));
            assert_eq!(Repr::parse(&p, s, d).unwrap(), r);
        }
    }

    #[test]
    fn bad_input() {
        let (s, d) = addrs();
        assert_eq!(Packet::new_checked(&[0u8; 7][..]).unwrap_err(), Error::Truncated);
        let mut b = [0u8; 32];
        Repr::NeighborSolicit { target: d, lladdr: Some(EthernetAddress([2, 0, 0, 0, 0, 9])) }.emit(&mut b, s, d);
        let other: Ipv6Addr = "fe80::3".parse().unwrap();
        assert_eq!(Repr::parse(&Packet::new_unchecked(&b[..]), s, other).unwrap_err(), Error::BadChecksum);
        // Zero-length option.
        b[25] = 0;
        Packet::new_unchecked(&mut b[..]).fill_checksum(s, d);
        assert_eq!(Repr::parse(&Packet::new_unchecked(&b[..]), s, d).unwrap_err(), Error::Malformed);
        assert_eq!(Packet::new_checked(&b[..20]).unwrap_err(), Error::Truncated);
    }

    #[test]
    fn solicited_node_address() {
        let a: Ipv6Addr = "2001:db8::1:2345:6789".parse().unwrap();
        assert_eq!(solicited_node(a), "ff02::1:ff45:6789".parse::<Ipv6Addr>().unwrap());
    }
}
