//! ICMPv4 ([RFC 792](https://www.rfc-editor.org/rfc/rfc792)), with the fragmentation-needed
//! message of [RFC 1191 §4](https://www.rfc-editor.org/rfc/rfc1191#section-4).

use crate::{be16, checksum, put16, Error, Result};

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    pub const IDENT: usize = 4;
    pub const SEQ: usize = 6;
    pub const NEXT_HOP_MTU: usize = 6;
}

/// Length of the ICMPv4 header (type, code, checksum and the 4-byte rest of header).
pub const HEADER_LEN: usize = 8;

/// Message types.
pub mod kind {
    pub const ECHO_REPLY: u8 = 0;
    pub const DST_UNREACHABLE: u8 = 3;
    pub const ECHO_REQUEST: u8 = 8;
    pub const TIME_EXCEEDED: u8 = 11;
}

/// Destination-unreachable code 4: fragmentation needed and DF set.
pub const CODE_FRAG_NEEDED: u8 = 4;

/// A view of an ICMPv4 message.
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
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }
    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }
    pub fn echo_ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::IDENT)
    }
    pub fn echo_seq_no(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SEQ)
    }
    /// The next-hop MTU of a fragmentation-needed message (0 from pre-RFC 1191 routers).
    pub fn next_hop_mtu(&self) -> u16 {
        be16(self.buffer.as_ref(), field::NEXT_HOP_MTU)
    }
    /// Everything after the 8-byte header: echo data, or the quoted datagram of an error.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
    pub fn verify_checksum(&self) -> bool {
        checksum::checksum(self.buffer.as_ref()) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn fill_checksum(&mut self) {
        put16(self.buffer.as_mut(), field::CHECKSUM, 0);
        let c = checksum::checksum(self.buffer.as_ref());
        put16(self.buffer.as_mut(), field::CHECKSUM, c);
    }
}

/// The meaning of the ICMPv4 messages the gateway sends and acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repr<'a> {
    EchoRequest {
        ident: u16,
        seq_no: u16,
        data: &'a [u8],
    },
    EchoReply {
        ident: u16,
        seq_no: u16,
        data: &'a [u8],
    },
    /// Destination unreachable; `next_hop_mtu` is meaningful for code 4 only.
    DstUnreachable {
        code: u8,
        next_hop_mtu: u16,
        quoted: &'a [u8],
    },
    TimeExceeded {
        code: u8,
        quoted: &'a [u8],
    },
}

impl<'a> Repr<'a> {
    /// Parses a message, verifying its checksum. Other message types are `Unsupported`.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(p: &Packet<&'a T>) -> Result<Repr<'a>> {
        p.check_len()?;
        if !p.verify_checksum() {
            return Err(Error::BadChecksum);
        }
        let buf: &'a T = p.buffer;
        let data = &buf.as_ref()[HEADER_LEN..];
        Ok(match p.msg_type() {
            kind::ECHO_REQUEST => Repr::EchoRequest { ident: p.echo_ident(), seq_no: p.echo_seq_no(), data },
            kind::ECHO_REPLY => Repr::EchoReply { ident: p.echo_ident(), seq_no: p.echo_seq_no(), data },
            kind::DST_UNREACHABLE => {
                Repr::DstUnreachable { code: p.msg_code(), next_hop_mtu: p.next_hop_mtu(), quoted: data }
            }
            kind::TIME_EXCEEDED => Repr::TimeExceeded { code: p.msg_code(), quoted: data },
            _ => return Err(Error::Unsupported),
        })
    }

    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
            + match self {
                Repr::EchoRequest { data, .. } | Repr::EchoReply { data, .. } => data.len(),
                Repr::DstUnreachable { quoted, .. } | Repr::TimeExceeded { quoted, .. } => quoted.len(),
            }
    }

    /// Writes the message and its checksum into the first `buffer_len()` bytes of `b`.
    pub fn emit(&self, b: &mut [u8]) {
        let b = &mut b[..self.buffer_len()];
        b[4..8].fill(0);
        match *self {
            Repr::EchoRequest { ident, seq_no, data } | Repr::EchoReply { ident, seq_no, data } => {
                b[field::TYPE] =
                    if matches!(self, Repr::EchoRequest { .. }) { kind::ECHO_REQUEST } else { kind::ECHO_REPLY };
                b[field::CODE] = 0;
                put16(b, field::IDENT, ident);
                put16(b, field::SEQ, seq_no);
                b[HEADER_LEN..].copy_from_slice(data);
            }
            Repr::DstUnreachable { code, next_hop_mtu, quoted } => {
                b[field::TYPE] = kind::DST_UNREACHABLE;
                b[field::CODE] = code;
                put16(b, field::NEXT_HOP_MTU, next_hop_mtu);
                b[HEADER_LEN..].copy_from_slice(quoted);
            }
            Repr::TimeExceeded { code, quoted } => {
                b[field::TYPE] = kind::TIME_EXCEEDED;
                b[field::CODE] = code;
                b[HEADER_LEN..].copy_from_slice(quoted);
            }
        }
        Packet::new_unchecked(b).fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_round_trip() {
        let r = Repr::EchoRequest { ident: 0x1234, seq_no: 7, data: b"abcd" };
        let mut b = [0u8; 12];
        r.emit(&mut b);
        assert_eq!(&b[..2], &[8, 0]);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(Repr::parse(&p).unwrap(), r);
    }

    #[test]
    fn frag_needed_round_trip() {
        let quoted = [0x45u8; 28];
        let r = Repr::DstUnreachable { code: CODE_FRAG_NEEDED, next_hop_mtu: 1438, quoted: &quoted };
        let mut b = [0u8; 36];
        r.emit(&mut b);
        assert_eq!(&b[..2], &[3, 4]);
        assert_eq!(&b[6..8], &1438u16.to_be_bytes());
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Repr::parse(&p).unwrap(), r);
    }

    #[test]
    fn bad_input() {
        assert_eq!(Packet::new_checked(&[0u8; 7][..]).unwrap_err(), Error::Truncated);
        let mut b = [0u8; 12];
        Repr::EchoReply { ident: 1, seq_no: 2, data: b"wxyz" }.emit(&mut b);
        b[9] ^= 0xff;
        assert_eq!(Repr::parse(&Packet::new_unchecked(&b[..])).unwrap_err(), Error::BadChecksum);
        let mut b = [0u8; 8];
        b[0] = 13; // timestamp request
        Packet::new_unchecked(&mut b[..]).fill_checksum();
        assert_eq!(Repr::parse(&Packet::new_unchecked(&b[..])).unwrap_err(), Error::Unsupported);
    }
}
