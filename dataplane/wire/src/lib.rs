//! Zero-copy packet views and their parse/emit representations.
//!
//! Every format follows the same contract, after smoltcp's `wire` module:
//!
//! * `Packet::new_unchecked(buf)` wraps a buffer without looking at it;
//! * `Packet::new_checked(buf)` (= `new_unchecked` + `check_len`) verifies that every
//!   fixed field and every length field is consistent with the buffer. **Once `check_len`
//!   has passed, no accessor panics**, whatever the bytes are;
//! * getters need `T: AsRef<[u8]>`, setters `T: AsMut<[u8]>`;
//! * a `Repr` is the parsed, owned meaning of a header: `Repr::parse` validates
//!   semantics (version, reserved values), `Repr::emit` writes a header into a view whose
//!   buffer is at least `Repr::buffer_len()` long.
//!
//! Truncated or inconsistent input is an [`Error`], never a panic. Nothing here allocates.

#![forbid(unsafe_code)]
#![no_std]

#[cfg(test)]
extern crate std;

pub mod arp;
pub mod checksum;
pub mod cidr;
pub mod esp;
pub mod ethernet;
pub mod icmpv4;
pub mod icmpv6;
pub mod ike;
pub mod ipv4;
pub mod ipv6;
pub mod udp;

pub use cidr::IpCidr;
pub use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
pub use ethernet::EthernetAddress;

/// Why a buffer could not be read as the format asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Error {
    /// The buffer ends before the fixed header does.
    Truncated,
    /// A length field disagrees with the buffer or with another length field.
    BadLength,
    /// A version field holds a value this format does not have.
    BadVersion,
    /// The header checksum does not verify.
    BadChecksum,
    /// A field holds a value the format forbids (reserved SPI, bad header length, ...).
    Malformed,
    /// A well-formed header of a kind this module does not handle.
    Unsupported,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Error::Truncated => "truncated packet",
            Error::BadLength => "inconsistent length field",
            Error::BadVersion => "unexpected version",
            Error::BadChecksum => "checksum does not verify",
            Error::Malformed => "malformed header",
            Error::Unsupported => "unsupported header",
        })
    }
}

impl core::error::Error for Error {}

/// The result of reading a packet.
pub type Result<T> = core::result::Result<T, Error>;

/// IP protocol numbers (IANA "Assigned Internet Protocol Numbers") that the gateway meets.
pub mod ip_proto {
    pub const HOP_BY_HOP: u8 = 0;
    pub const ICMP: u8 = 1;
    pub const IPV4: u8 = 4;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const IPV6: u8 = 41;
    pub const IPV6_ROUTE: u8 = 43;
    pub const IPV6_FRAG: u8 = 44;
    pub const ESP: u8 = 50;
    pub const AH: u8 = 51;
    pub const ICMPV6: u8 = 58;
    pub const IPV6_NO_NXT: u8 = 59;
    pub const IPV6_OPTS: u8 = 60;
}

/// Reads a big-endian `u16` at `at`; the caller has checked the length.
#[inline(always)]
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Reads a big-endian `u32` at `at`; the caller has checked the length.
#[inline(always)]
pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[inline(always)]
pub(crate) fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

#[inline(always)]
pub(crate) fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}
