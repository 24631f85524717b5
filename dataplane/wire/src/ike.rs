//! The IKE header ([RFC 7296 §3.1](https://www.rfc-editor.org/rfc/rfc7296#section-3.1)) and the
//! non-ESP marker of UDP encapsulation ([RFC 3948 §2.2](https://www.rfc-editor.org/rfc/rfc3948#section-2.2)).
//!
//! The data plane only needs enough of IKE to punt it: the header is checked for a sane
//! length, everything else is the control plane's business.

use crate::{be32, put32, Error, Result};

/// The fixed IKE header.
pub const HEADER_LEN: usize = 28;
/// Four zero bytes in front of IKE messages on UDP port 4500.
pub const NON_ESP_MARKER: [u8; 4] = [0; 4];
/// IKE's well-known port.
pub const PORT: u16 = 500;
/// The NAT-T port shared by IKE (behind the marker) and UDP-encapsulated ESP.
pub const NAT_T_PORT: u16 = 4500;

mod field {
    pub const ISPI: usize = 0;
    pub const RSPI: usize = 8;
    pub const NEXT_PAYLOAD: usize = 16;
    pub const VERSION: usize = 17;
    pub const EXCHANGE: usize = 18;
    pub const FLAGS: usize = 19;
    pub const MSG_ID: usize = 20;
    pub const LENGTH: usize = 24;
}

/// Exchange types (RFC 7296 §3.1).
pub mod exchange {
    pub const IKE_SA_INIT: u8 = 34;
    pub const IKE_AUTH: u8 = 35;
    pub const CREATE_CHILD_SA: u8 = 36;
    pub const INFORMATIONAL: u8 = 37;
}

/// Header flags.
pub mod flags {
    pub const INITIATOR: u8 = 0x08;
    pub const VERSION: u8 = 0x10;
    pub const RESPONSE: u8 = 0x20;
}

/// A view of an IKE message.
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
    /// Checks the header and that the length field equals the buffer length (IKE messages
    /// fill their UDP datagram exactly).
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let l = self.len() as usize;
        if l < HEADER_LEN || l != b.len() {
            return Err(Error::BadLength);
        }
        Ok(())
    }
    pub fn initiator_spi(&self) -> u64 {
        let b = self.buffer.as_ref();
        u64::from_be_bytes(b[field::ISPI..field::ISPI + 8].try_into().unwrap_or([0; 8]))
    }
    pub fn responder_spi(&self) -> u64 {
        let b = self.buffer.as_ref();
        u64::from_be_bytes(b[field::RSPI..field::RSPI + 8].try_into().unwrap_or([0; 8]))
    }
    pub fn next_payload(&self) -> u8 {
        self.buffer.as_ref()[field::NEXT_PAYLOAD]
    }
    pub fn major_version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION] >> 4
    }
    pub fn minor_version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION] & 0x0f
    }
    pub fn exchange_type(&self) -> u8 {
        self.buffer.as_ref()[field::EXCHANGE]
    }
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }
    pub fn message_id(&self) -> u32 {
        be32(self.buffer.as_ref(), field::MSG_ID)
    }
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u32 {
        be32(self.buffer.as_ref(), field::LENGTH)
    }
}

/// The meaning of an IKE header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub initiator_spi: u64,
    pub responder_spi: u64,
    pub next_payload: u8,
    pub exchange_type: u8,
    pub flags: u8,
    pub message_id: u32,
    /// Length of the whole message including this header.
    pub length: u32,
}

impl Repr {
    /// Parses an IKEv2 header: major version 2 (RFC 7296 §3.1: a higher major version is
    /// answered with INVALID_MAJOR_VERSION by the control plane, never here).
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        p.check_len()?;
        if p.major_version() != 2 {
            return Err(Error::BadVersion);
        }
        Ok(Repr {
            initiator_spi: p.initiator_spi(),
            responder_spi: p.responder_spi(),
            next_payload: p.next_payload(),
            exchange_type: p.exchange_type(),
            flags: p.flags(),
            message_id: p.message_id(),
            length: p.len(),
        })
    }
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }
    pub fn emit(&self, b: &mut [u8]) {
        b[field::ISPI..field::ISPI + 8].copy_from_slice(&self.initiator_spi.to_be_bytes());
        b[field::RSPI..field::RSPI + 8].copy_from_slice(&self.responder_spi.to_be_bytes());
        b[field::NEXT_PAYLOAD] = self.next_payload;
        b[field::VERSION] = 0x20;
        b[field::EXCHANGE] = self.exchange_type;
        b[field::FLAGS] = self.flags;
        put32(b, field::MSG_ID, self.message_id);
        put32(b, field::LENGTH, self.length);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Repr {
        Repr {
            initiator_spi: 0x0102030405060708,
            responder_spi: 0,
            next_payload: 33,
            exchange_type: exchange::IKE_SA_INIT,
            flags: flags::INITIATOR,
            message_id: 0,
            length: 28,
        }
    }

    #[test]
    fn round_trip() {
        let mut b = [0u8; 28];
        header().emit(&mut b);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.major_version(), 2);
        assert_eq!(Repr::parse(&p).unwrap(), header());
    }

    #[test]
    fn bad_input() {
        let mut b = [0u8; 29];
        header().emit(&mut b);
        assert_eq!(Packet::new_checked(&b[..27]).unwrap_err(), Error::Truncated);
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::BadLength, "length field 28 but 29 bytes");
        b[17] = 0x10;
        assert_eq!(Repr::parse(&Packet::new_unchecked(&b[..28])).unwrap_err(), Error::BadVersion);
    }
}
