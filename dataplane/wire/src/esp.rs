//! The ESP header and trailer ([RFC 4303 §2](https://www.rfc-editor.org/rfc/rfc4303#section-2)).
//!
//! ```text
//!  0                   1                   2                   3
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |               Security Parameters Index (SPI)                 |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                      Sequence Number                          |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  IV (if any) | Payload Data ... | Padding | Pad Len | Next Hdr |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |         Integrity Check Value (ICV), variable                  |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use crate::{be32, put32, Error, Result};

/// Length of the SPI and sequence number.
pub const HEADER_LEN: usize = 8;
/// Length of the pad length and next header bytes.
pub const TRAILER_LEN: usize = 2;

/// SPIs 1–255 are reserved by IANA and must not be used ([RFC 4303 §2.1]).
/// SPI 0 is reserved for local use and never appears on the wire; in UDP encapsulation four
/// zero bytes are the non-ESP marker of IKE (RFC 3948 §2.2).
///
/// [RFC 4303 §2.1]: https://www.rfc-editor.org/rfc/rfc4303#section-2.1
pub const fn spi_is_reserved(spi: u32) -> bool {
    spi < 256
}

/// A view of an ESP packet (header and everything after it).
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
    pub fn spi(&self) -> u32 {
        be32(self.buffer.as_ref(), 0)
    }
    /// The low 32 bits of the sequence number.
    pub fn seq(&self) -> u32 {
        be32(self.buffer.as_ref(), 4)
    }
    /// IV, encrypted payload and ICV.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_spi(&mut self, v: u32) {
        put32(self.buffer.as_mut(), 0, v);
    }
    pub fn set_seq(&mut self, v: u32) {
        put32(self.buffer.as_mut(), 4, v);
    }
}

/// The meaning of an ESP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub spi: u32,
    pub seq: u32,
}

impl Repr {
    /// Parses the header; a reserved SPI is `Malformed`.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        p.check_len()?;
        if spi_is_reserved(p.spi()) {
            return Err(Error::Malformed);
        }
        Ok(Repr { spi: p.spi(), seq: p.seq() })
    }
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }
    pub fn emit(&self, b: &mut [u8]) {
        put32(b, 0, self.spi);
        put32(b, 4, self.seq);
    }
}

/// What the decrypted trailer says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trailer {
    /// Length of the payload data before the padding.
    pub payload_len: usize,
    pub pad_len: u8,
    pub next_header: u8,
}

impl Trailer {
    /// Reads the trailer at the end of decrypted `plaintext` (payload, padding, pad length,
    /// next header) and verifies the padding.
    ///
    /// RFC 4303 §2.4: with the default padding scheme the padding bytes are 1, 2, 3, …;
    /// a receiver that checks them rejects any other content.
    pub fn parse(plaintext: &[u8]) -> Result<Trailer> {
        let n = plaintext.len();
        if n < TRAILER_LEN {
            return Err(Error::Truncated);
        }
        let pad_len = plaintext[n - 2];
        let next_header = plaintext[n - 1];
        let payload_len = n.checked_sub(TRAILER_LEN + pad_len as usize).ok_or(Error::BadLength)?;
        let pad = &plaintext[payload_len..n - TRAILER_LEN];
        // Compare every byte without an early exit; the content is already authenticated,
        // so this is about correctness, not timing.
        let mut bad = 0u8;
        for (i, &b) in pad.iter().enumerate() {
            bad |= b ^ (i as u8).wrapping_add(1);
        }
        if bad != 0 {
            return Err(Error::Malformed);
        }
        Ok(Trailer { payload_len, pad_len, next_header })
    }

    /// Writes the default padding (1, 2, 3, …), the pad length and the next header after
    /// `payload_len` bytes of `b`; `b` must be `payload_len + pad_len + 2` bytes long.
    pub fn emit(b: &mut [u8], payload_len: usize, pad_len: u8, next_header: u8) {
        let pad = &mut b[payload_len..payload_len + pad_len as usize];
        for (i, x) in pad.iter_mut().enumerate() {
            *x = i as u8 + 1;
        }
        let t = payload_len + pad_len as usize;
        b[t] = pad_len;
        b[t + 1] = next_header;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip() {
        let b = [0x00, 0x00, 0x10, 0x01, 0x00, 0x00, 0x00, 0x2a, 0xaa];
        let p = Packet::new_checked(&b[..]).unwrap();
        let r = Repr::parse(&p).unwrap();
        assert_eq!(r, Repr { spi: 0x1001, seq: 42 });
        assert_eq!(p.payload(), &[0xaa]);
        let mut out = [0u8; 8];
        r.emit(&mut out);
        assert_eq!(&out, &b[..8]);
    }

    #[test]
    fn reserved_spi_and_truncation() {
        assert_eq!(Packet::new_checked(&[0u8; 7][..]).unwrap_err(), Error::Truncated);
        for spi in [0u32, 1, 255] {
            let mut b = [0u8; 8];
            Repr { spi, seq: 1 }.emit(&mut b);
            assert_eq!(Repr::parse(&Packet::new_unchecked(&b[..])).unwrap_err(), Error::Malformed);
        }
        let mut b = [0u8; 8];
        Repr { spi: 256, seq: 1 }.emit(&mut b);
        assert!(Repr::parse(&Packet::new_unchecked(&b[..])).is_ok());
    }

    #[test]
    fn trailer_round_trip() {
        let mut b = [0xeeu8; 16];
        Trailer::emit(&mut b, 9, 5, 4);
        assert_eq!(&b[9..], &[1, 2, 3, 4, 5, 5, 4]);
        assert_eq!(Trailer::parse(&b).unwrap(), Trailer { payload_len: 9, pad_len: 5, next_header: 4 });
    }

    #[test]
    fn trailer_rejects_bad_padding_and_lengths() {
        let mut b = [0u8; 16];
        Trailer::emit(&mut b, 9, 5, 4);
        b[11] = 9;
        assert_eq!(Trailer::parse(&b).unwrap_err(), Error::Malformed);
        // Pad length larger than the plaintext.
        assert_eq!(Trailer::parse(&[0, 0, 3, 41]).unwrap_err(), Error::BadLength);
        assert_eq!(Trailer::parse(&[4]).unwrap_err(), Error::Truncated);
        // No padding at all is fine.
        assert_eq!(Trailer::parse(&[0x45, 0, 4]).unwrap(), Trailer { payload_len: 1, pad_len: 0, next_header: 4 });
    }
}
