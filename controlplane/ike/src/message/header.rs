//! The fixed IKE header ([RFC 7296 §3.1](https://www.rfc-editor.org/rfc/rfc7296#section-3.1)).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                       IKE SA Initiator's SPI                  |
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                       IKE SA Responder's SPI                  |
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Next Payload | MjVer | MnVer | Exchange Type |     Flags     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                          Message ID                           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                            Length                             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use super::{DecodeError, ExchangeType, Header, PayloadType, HEADER_LEN};

mod field {
    pub const SPI_I: usize = 0;
    pub const SPI_R: usize = 8;
    pub const NEXT_PAYLOAD: usize = 16;
    pub const VERSION: usize = 17;
    pub const EXCHANGE: usize = 18;
    pub const FLAGS: usize = 19;
    pub const MESSAGE_ID: usize = 20;
    pub const LENGTH: usize = 24;
}

/// The Initiator flag (bit 3 of the Flags octet). The Version flag (bit 4, "I could speak a
/// higher major version") and bits 0–2, 6, 7 are sent clear and ignored on receipt.
const FLAG_INITIATOR: u8 = 0x08;
/// The Response flag (bit 5).
const FLAG_RESPONSE: u8 = 0x20;

/// The version octet of IKEv2: major 2, minor 0.
pub const IKEV2_VERSION: u8 = 0x20;

impl Header {
    /// Reads the fixed header at the start of `bytes`.
    ///
    /// Only the size is checked: the version, the length field and the payloads are left to
    /// [`decode`](super::decode), so that a caller can still answer a message of another
    /// major version with INVALID_MAJOR_VERSION under the SPIs it carried (RFC 7296 §1.5).
    /// Flag bits other than Initiator and Response are ignored, as RFC 7296 §3.1 requires.
    pub fn parse(bytes: &[u8]) -> Result<Header, DecodeError> {
        let b: &[u8; HEADER_LEN] = bytes
            .get(..HEADER_LEN)
            .and_then(|h| h.try_into().ok())
            .ok_or(DecodeError::Truncated { what: "IKE header" })?;
        let u32_at = |at: usize| u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let u64_at = |at: usize| (u64::from(u32_at(at)) << 32) | u64::from(u32_at(at + 4));
        let flags = b[field::FLAGS];
        Ok(Header {
            spi_i: u64_at(field::SPI_I),
            spi_r: u64_at(field::SPI_R),
            next_payload: PayloadType(b[field::NEXT_PAYLOAD]),
            version: b[field::VERSION],
            exchange: ExchangeType(b[field::EXCHANGE]),
            initiator: flags & FLAG_INITIATOR != 0,
            response: flags & FLAG_RESPONSE != 0,
            message_id: u32_at(field::MESSAGE_ID),
            length: u32_at(field::LENGTH),
        })
    }

    /// The header's 28 bytes, as they are: `next_payload` and `length` are written as given
    /// (the encoders fill them in). The reserved flag bits, Version included, are sent as zero.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[field::SPI_I..field::SPI_I + 8].copy_from_slice(&self.spi_i.to_be_bytes());
        b[field::SPI_R..field::SPI_R + 8].copy_from_slice(&self.spi_r.to_be_bytes());
        b[field::NEXT_PAYLOAD] = self.next_payload.0;
        b[field::VERSION] = self.version;
        b[field::EXCHANGE] = self.exchange.0;
        b[field::FLAGS] =
            (if self.initiator { FLAG_INITIATOR } else { 0 }) | (if self.response { FLAG_RESPONSE } else { 0 });
        b[field::MESSAGE_ID..field::MESSAGE_ID + 4].copy_from_slice(&self.message_id.to_be_bytes());
        b[field::LENGTH..field::LENGTH + 4].copy_from_slice(&self.length.to_be_bytes());
        b
    }

    /// The major version: the high nibble of the version octet.
    pub fn major_version(&self) -> u8 {
        self.version >> 4
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const FLAG_VERSION: u8 = 0x10;

    /// An IKE_SA_INIT response header written from the diagram above.
    const BYTES: [u8; HEADER_LEN] = [
        0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, // initiator's SPI
        0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, // responder's SPI
        33,   // next payload: SA
        0x20, // version 2.0
        34,   // IKE_SA_INIT
        0x20, // flags: Response
        0x00, 0x00, 0x00, 0x00, // message ID 0
        0x00, 0x00, 0x01, 0x2c, // length 300
    ];

    fn header() -> Header {
        Header {
            spi_i: 0x0102_0304_0506_0708,
            spi_r: 0x1112_1314_1516_1718,
            next_payload: PayloadType::SA,
            version: IKEV2_VERSION,
            exchange: ExchangeType::IKE_SA_INIT,
            initiator: false,
            response: true,
            message_id: 0,
            length: 300,
        }
    }

    #[test]
    fn parse_known_bytes() {
        assert_eq!(Header::parse(&BYTES).unwrap(), header());
        assert_eq!(header().major_version(), 2);
    }

    #[test]
    fn emit_known_bytes() {
        assert_eq!(header().to_bytes(), BYTES);
    }

    #[test]
    fn reserved_flag_bits_are_ignored() {
        let mut b = BYTES;
        b[field::FLAGS] = !FLAG_INITIATOR;
        let h = Header::parse(&b).unwrap();
        assert!(h.response && !h.initiator);
        assert_eq!(h.to_bytes()[field::FLAGS], FLAG_RESPONSE);
        b[field::FLAGS] = FLAG_VERSION | FLAG_INITIATOR;
        let h = Header::parse(&b).unwrap();
        assert!(!h.response && h.initiator);
    }

    #[test]
    fn other_versions_still_parse() {
        let mut b = BYTES;
        b[field::VERSION] = 0x10;
        assert_eq!(Header::parse(&b).unwrap().major_version(), 1);
    }

    #[test]
    fn truncated() {
        for n in 0..HEADER_LEN {
            assert_eq!(Header::parse(&BYTES[..n]), Err(DecodeError::Truncated { what: "IKE header" }));
        }
    }
}
