//! IKEv2 messages ([RFC 7296 §3](https://www.rfc-editor.org/rfc/rfc7296#section-3)) as owned
//! values, with their byte encoding.
//!
//! [`decode`] splits a datagram into its header, its unencrypted payloads and, if there is
//! one, the Encrypted (SK) or Encrypted Fragment (SKF, RFC 7383) payload, left opaque: the
//! caller decrypts its body with the SA's keys and parses the plaintext with
//! [`decode_chain`]. [`encode_chain`] writes a payload chain; [`encode`] a whole unencrypted
//! message. Arbitrary input gives a [`DecodeError`], never a panic.
//!
//! Encrypted messages are written in two steps: [`encode_chain`] gives the plaintext that the
//! caller pads and encrypts, and [`encode_encrypted_prefix`] the bytes in front of the
//! ciphertext (IKE header and SK/SKF payload header), which are also the integrity check's
//! (or AEAD's) associated data, exactly as [`Encrypted::authenticated_header`] shows them
//! when the message is decoded again.
//!
//! The decoder is strict about structure (every length, count and substructure must add up;
//! see [`decode`]) and liberal about values that the state machine judges (unknown payload
//! types, transform ids, notify types, ID types). Whatever [`encode`] or [`encode_chain`]
//! accepts decodes back to an equal value; values that cannot be written are an
//! [`EncodeError`], never truncated.

use core::net::IpAddr;

pub use esprit_esp::ts::TrafficSelector;

mod decode;
mod encode;
mod header;

pub use decode::{decode, decode_chain};
pub use encode::{encode, encode_chain, encode_encrypted_prefix};
pub use header::IKEV2_VERSION;

/// The fixed header's length.
pub const HEADER_LEN: usize = 28;
/// The generic payload header's length.
pub const PAYLOAD_HEADER_LEN: usize = 4;
/// The header of an Encrypted Fragment payload: the generic header, Fragment Number and Total
/// Fragments (RFC 7383 §2.5).
pub const FRAGMENT_HEADER_LEN: usize = 8;
/// The most payloads one message (or one decrypted chain) may carry; more is refused as a
/// likely attack. An IKE_AUTH with certificates, configuration and notifies has about 20.
pub const MAX_PAYLOADS: usize = 64;
/// The shortest and longest nonce (RFC 7296 §3.9: 16 to 256 octets).
pub const NONCE_LEN: core::ops::RangeInclusive<usize> = 16..=256;
/// The transform attribute type of Key Length, the only one RFC 7296 defines (§3.3.5).
pub const KEY_LENGTH_ATTRIBUTE: u16 = 14;

/// Exchange types (RFC 7296 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExchangeType(pub u8);

impl ExchangeType {
    pub const IKE_SA_INIT: ExchangeType = ExchangeType(34);
    pub const IKE_AUTH: ExchangeType = ExchangeType(35);
    pub const CREATE_CHILD_SA: ExchangeType = ExchangeType(36);
    pub const INFORMATIONAL: ExchangeType = ExchangeType(37);
}

/// Payload type numbers (RFC 7296 §3.2, RFC 7383).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PayloadType(pub u8);

impl PayloadType {
    pub const NONE: PayloadType = PayloadType(0);
    pub const SA: PayloadType = PayloadType(33);
    pub const KE: PayloadType = PayloadType(34);
    pub const IDI: PayloadType = PayloadType(35);
    pub const IDR: PayloadType = PayloadType(36);
    pub const CERT: PayloadType = PayloadType(37);
    pub const CERTREQ: PayloadType = PayloadType(38);
    pub const AUTH: PayloadType = PayloadType(39);
    pub const NONCE: PayloadType = PayloadType(40);
    pub const NOTIFY: PayloadType = PayloadType(41);
    pub const DELETE: PayloadType = PayloadType(42);
    pub const VENDOR_ID: PayloadType = PayloadType(43);
    pub const TSI: PayloadType = PayloadType(44);
    pub const TSR: PayloadType = PayloadType(45);
    pub const SK: PayloadType = PayloadType(46);
    pub const CP: PayloadType = PayloadType(47);
    pub const EAP: PayloadType = PayloadType(48);
    pub const SKF: PayloadType = PayloadType(53);

    /// True for the types this codec decodes into their own [`Payload`] variant or into
    /// [`Encrypted`] (and for NONE, which ends a chain); all others become
    /// [`Payload::Unknown`].
    pub fn is_known(self) -> bool {
        matches!(self.0, 0 | 33..=48 | 53)
    }

    /// The payload's name, for error messages.
    pub fn name(self) -> &'static str {
        match self {
            PayloadType::NONE => "no next payload",
            PayloadType::SA => "SA payload",
            PayloadType::KE => "KE payload",
            PayloadType::IDI => "IDi payload",
            PayloadType::IDR => "IDr payload",
            PayloadType::CERT => "CERT payload",
            PayloadType::CERTREQ => "CERTREQ payload",
            PayloadType::AUTH => "AUTH payload",
            PayloadType::NONCE => "Nonce payload",
            PayloadType::NOTIFY => "Notify payload",
            PayloadType::DELETE => "Delete payload",
            PayloadType::VENDOR_ID => "Vendor ID payload",
            PayloadType::TSI => "TSi payload",
            PayloadType::TSR => "TSr payload",
            PayloadType::SK => "Encrypted payload",
            PayloadType::CP => "CP payload",
            PayloadType::EAP => "EAP payload",
            PayloadType::SKF => "Encrypted Fragment payload",
            _ => "unknown payload",
        }
    }
}

/// The fixed IKE header (RFC 7296 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub spi_i: u64,
    pub spi_r: u64,
    /// The type of the first payload.
    pub next_payload: PayloadType,
    /// Major version in the high nibble: 0x20 for IKEv2.
    pub version: u8,
    pub exchange: ExchangeType,
    /// The Initiator flag: set by the original initiator of the IKE SA.
    pub initiator: bool,
    /// The Response flag.
    pub response: bool,
    pub message_id: u32,
    /// The whole message's length, header included.
    pub length: u32,
}

/// Security protocol identifiers (RFC 7296 §3.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProtocolId(pub u8);

impl ProtocolId {
    pub const IKE: ProtocolId = ProtocolId(1);
    pub const AH: ProtocolId = ProtocolId(2);
    pub const ESP: ProtocolId = ProtocolId(3);
}

/// Transform types (RFC 7296 §3.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TransformType(pub u8);

impl TransformType {
    pub const ENCR: TransformType = TransformType(1);
    pub const PRF: TransformType = TransformType(2);
    pub const INTEG: TransformType = TransformType(3);
    pub const DH: TransformType = TransformType(4);
    pub const ESN: TransformType = TransformType(5);
}

/// One transform of a proposal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Transform {
    pub kind: TransformType,
    pub id: u16,
    /// The Key Length attribute (type 14), in bits.
    pub key_length: Option<u16>,
    /// The transform carried an attribute this implementation does not know: it must not be
    /// chosen (RFC 7296 §3.3.6).
    pub unknown_attributes: bool,
}

/// One proposal of an SA payload (RFC 7296 §3.3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    /// Numbered from 1; the responder's single proposal repeats the number it chose.
    pub number: u8,
    pub protocol: ProtocolId,
    /// Empty in the IKE_SA_INIT proposals; 8 bytes when rekeying an IKE SA; 4 for ESP.
    pub spi: Vec<u8>,
    pub transforms: Vec<Transform>,
}

/// Identification types (RFC 7296 §3.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IdType(pub u8);

impl IdType {
    pub const IPV4_ADDR: IdType = IdType(1);
    pub const FQDN: IdType = IdType(2);
    pub const RFC822_ADDR: IdType = IdType(3);
    pub const IPV6_ADDR: IdType = IdType(5);
    pub const DER_ASN1_DN: IdType = IdType(9);
    pub const DER_ASN1_GN: IdType = IdType(10);
    pub const KEY_ID: IdType = IdType(11);
}

/// An IDi or IDr payload's content.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identification {
    pub kind: IdType,
    pub data: Vec<u8>,
}

/// Authentication methods (RFC 7296 §3.8, RFC 7427).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AuthMethod(pub u8);

impl AuthMethod {
    pub const RSA_SIG: AuthMethod = AuthMethod(1);
    pub const SHARED_KEY: AuthMethod = AuthMethod(2);
    pub const ECDSA_SHA256_P256: AuthMethod = AuthMethod(9);
    pub const ECDSA_SHA384_P384: AuthMethod = AuthMethod(10);
    pub const ECDSA_SHA512_P521: AuthMethod = AuthMethod(11);
    pub const DIGITAL_SIGNATURE: AuthMethod = AuthMethod(14);
}

/// A Notify payload (RFC 7296 §3.10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    /// 0 when no SA is concerned.
    pub protocol: ProtocolId,
    pub spi: Vec<u8>,
    pub kind: NotifyType,
    pub data: Vec<u8>,
}

/// Notify message types (RFC 7296 §3.10.1 and the IANA registry); below 16384 are errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NotifyType(pub u16);

impl NotifyType {
    pub const UNSUPPORTED_CRITICAL_PAYLOAD: NotifyType = NotifyType(1);
    pub const INVALID_IKE_SPI: NotifyType = NotifyType(4);
    pub const INVALID_MAJOR_VERSION: NotifyType = NotifyType(5);
    pub const INVALID_SYNTAX: NotifyType = NotifyType(7);
    pub const INVALID_MESSAGE_ID: NotifyType = NotifyType(9);
    pub const INVALID_SPI: NotifyType = NotifyType(11);
    pub const NO_PROPOSAL_CHOSEN: NotifyType = NotifyType(14);
    pub const INVALID_KE_PAYLOAD: NotifyType = NotifyType(17);
    pub const AUTHENTICATION_FAILED: NotifyType = NotifyType(24);
    pub const SINGLE_PAIR_REQUIRED: NotifyType = NotifyType(34);
    pub const NO_ADDITIONAL_SAS: NotifyType = NotifyType(35);
    pub const INTERNAL_ADDRESS_FAILURE: NotifyType = NotifyType(36);
    pub const FAILED_CP_REQUIRED: NotifyType = NotifyType(37);
    pub const TS_UNACCEPTABLE: NotifyType = NotifyType(38);
    pub const INVALID_SELECTORS: NotifyType = NotifyType(39);
    pub const TEMPORARY_FAILURE: NotifyType = NotifyType(43);
    pub const CHILD_SA_NOT_FOUND: NotifyType = NotifyType(44);
    pub const INITIAL_CONTACT: NotifyType = NotifyType(16384);
    pub const SET_WINDOW_SIZE: NotifyType = NotifyType(16385);
    pub const ADDITIONAL_TS_POSSIBLE: NotifyType = NotifyType(16386);
    pub const IPCOMP_SUPPORTED: NotifyType = NotifyType(16387);
    pub const NAT_DETECTION_SOURCE_IP: NotifyType = NotifyType(16388);
    pub const NAT_DETECTION_DESTINATION_IP: NotifyType = NotifyType(16389);
    pub const COOKIE: NotifyType = NotifyType(16390);
    pub const USE_TRANSPORT_MODE: NotifyType = NotifyType(16391);
    pub const HTTP_CERT_LOOKUP_SUPPORTED: NotifyType = NotifyType(16392);
    pub const REKEY_SA: NotifyType = NotifyType(16393);
    pub const ESP_TFC_PADDING_NOT_SUPPORTED: NotifyType = NotifyType(16394);
    pub const NON_FIRST_FRAGMENTS_ALSO: NotifyType = NotifyType(16395);
    pub const MOBIKE_SUPPORTED: NotifyType = NotifyType(16396);
    pub const EAP_ONLY_AUTHENTICATION: NotifyType = NotifyType(16417);
    pub const IKEV2_FRAGMENTATION_SUPPORTED: NotifyType = NotifyType(16430);
    pub const SIGNATURE_HASH_ALGORITHMS: NotifyType = NotifyType(16431);

    /// Error types are below 16384 (RFC 7296 §3.10.1).
    pub fn is_error(self) -> bool {
        self.0 < 16384
    }
}

/// A Delete payload (RFC 7296 §3.11): the IKE SA itself (no SPIs), or CHILD SAs by their
/// inbound SPIs (4 bytes each for ESP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delete {
    pub protocol: ProtocolId,
    pub spis: Vec<Vec<u8>>,
}

/// Certificate encodings (RFC 7296 §3.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CertEncoding(pub u8);

impl CertEncoding {
    pub const X509_SIGNATURE: CertEncoding = CertEncoding(4);
}

/// A Configuration payload (RFC 7296 §3.15).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigPayload {
    pub kind: ConfigType,
    pub attributes: Vec<ConfigAttribute>,
}

/// CFG_REQUEST, CFG_REPLY, CFG_SET, CFG_ACK.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConfigType(pub u8);

impl ConfigType {
    pub const REQUEST: ConfigType = ConfigType(1);
    pub const REPLY: ConfigType = ConfigType(2);
    pub const SET: ConfigType = ConfigType(3);
    pub const ACK: ConfigType = ConfigType(4);
}

/// One configuration attribute: its type (15 bits) and value (may be empty in a request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigAttribute {
    pub kind: ConfigAttributeType,
    pub value: Vec<u8>,
}

/// Configuration attribute types (RFC 7296 §3.15.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConfigAttributeType(pub u16);

impl ConfigAttributeType {
    pub const INTERNAL_IP4_ADDRESS: ConfigAttributeType = ConfigAttributeType(1);
    pub const INTERNAL_IP4_NETMASK: ConfigAttributeType = ConfigAttributeType(2);
    pub const INTERNAL_IP4_DNS: ConfigAttributeType = ConfigAttributeType(3);
    pub const INTERNAL_IP4_NBNS: ConfigAttributeType = ConfigAttributeType(4);
    pub const INTERNAL_IP4_DHCP: ConfigAttributeType = ConfigAttributeType(6);
    pub const APPLICATION_VERSION: ConfigAttributeType = ConfigAttributeType(7);
    pub const INTERNAL_IP6_ADDRESS: ConfigAttributeType = ConfigAttributeType(8);
    pub const INTERNAL_IP6_DNS: ConfigAttributeType = ConfigAttributeType(10);
    pub const INTERNAL_IP6_DHCP: ConfigAttributeType = ConfigAttributeType(12);
    pub const INTERNAL_IP4_SUBNET: ConfigAttributeType = ConfigAttributeType(13);
    pub const SUPPORTED_ATTRIBUTES: ConfigAttributeType = ConfigAttributeType(14);
    pub const INTERNAL_IP6_SUBNET: ConfigAttributeType = ConfigAttributeType(15);
}

/// A payload other than SK/SKF, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    Sa(Vec<Proposal>),
    Ke {
        group: u16,
        data: Vec<u8>,
    },
    IdI(Identification),
    IdR(Identification),
    Cert {
        encoding: CertEncoding,
        data: Vec<u8>,
    },
    CertReq {
        encoding: CertEncoding,
        data: Vec<u8>,
    },
    Auth {
        method: AuthMethod,
        data: Vec<u8>,
    },
    Nonce(Vec<u8>),
    Notify(Notify),
    Delete(Delete),
    VendorId(Vec<u8>),
    TsI(Vec<TrafficSelector>),
    TsR(Vec<TrafficSelector>),
    Cp(ConfigPayload),
    Eap(Vec<u8>),
    /// A payload type this implementation does not know; with `critical` set the whole
    /// message must be refused with UNSUPPORTED_CRITICAL_PAYLOAD (RFC 7296 §2.5).
    Unknown {
        kind: PayloadType,
        critical: bool,
        data: Vec<u8>,
    },
}

impl Payload {
    /// The payload type number this payload is sent with.
    pub fn kind(&self) -> PayloadType {
        match self {
            Payload::Sa(_) => PayloadType::SA,
            Payload::Ke { .. } => PayloadType::KE,
            Payload::IdI(_) => PayloadType::IDI,
            Payload::IdR(_) => PayloadType::IDR,
            Payload::Cert { .. } => PayloadType::CERT,
            Payload::CertReq { .. } => PayloadType::CERTREQ,
            Payload::Auth { .. } => PayloadType::AUTH,
            Payload::Nonce(_) => PayloadType::NONCE,
            Payload::Notify(_) => PayloadType::NOTIFY,
            Payload::Delete(_) => PayloadType::DELETE,
            Payload::VendorId(_) => PayloadType::VENDOR_ID,
            Payload::TsI(_) => PayloadType::TSI,
            Payload::TsR(_) => PayloadType::TSR,
            Payload::Cp(_) => PayloadType::CP,
            Payload::Eap(_) => PayloadType::EAP,
            Payload::Unknown { kind, .. } => *kind,
        }
    }
}

/// The first unknown payload with the critical bit set, if any: the message must then be
/// refused with UNSUPPORTED_CRITICAL_PAYLOAD carrying this type (RFC 7296 §2.5, §3.2).
pub fn unsupported_critical(payloads: &[Payload]) -> Option<PayloadType> {
    payloads.iter().find_map(|p| match p {
        Payload::Unknown { kind, critical: true, .. } => Some(*kind),
        _ => None,
    })
}

/// The Encrypted payload of a message, still encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encrypted<'a> {
    /// The type of the first payload inside (for an SKF: meaningful in fragment 1 only).
    pub inner_first: PayloadType,
    /// SKF only: this fragment's number (from 1) and the total (RFC 7383 §2.5).
    pub fragment: Option<(u16, u16)>,
    /// What the integrity check (or the AEAD's associated data) covers besides the body:
    /// the message from the start of the IKE header through the SK payload's generic header
    /// (and, for SKF, its Fragment Number and Total Fragments fields).
    pub authenticated_header: &'a [u8],
    /// IV ‖ ciphertext (with padding and pad length) ‖ ICV.
    pub body: &'a [u8],
}

/// A datagram split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded<'a> {
    pub header: Header,
    /// Payloads before the SK/SKF payload (all of them in an unencrypted message).
    pub payloads: Vec<Payload>,
    pub encrypted: Option<Encrypted<'a>>,
}

impl Decoded<'_> {
    /// The first unknown critical payload before the Encrypted payload (see
    /// [`unsupported_critical`]).
    pub fn unsupported_critical(&self) -> Option<PayloadType> {
        unsupported_critical(&self.payloads)
    }
}

/// Why bytes are not an IKEv2 message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    #[error("{what}: truncated")]
    Truncated { what: &'static str },
    #[error("{what}: length {len} is inconsistent")]
    BadLength { what: &'static str, len: usize },
    #[error("IKE major version {0} (only 2 is spoken)")]
    Version(u8),
    #[error("{what}: value {value} is invalid")]
    BadValue { what: &'static str, value: u32 },
    #[error("the Encrypted payload is not the last one")]
    EncryptedNotLast,
    #[error("more than {0} payloads")]
    TooManyPayloads(usize),
}

/// Why a message cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    #[error("{what}: {len} bytes do not fit the length field")]
    TooLong { what: &'static str, len: usize },
    #[error("{what}: {why}")]
    Invalid { what: &'static str, why: &'static str },
}

/// For the notify payloads that carry addresses and ports.
pub type Endpoint = (IpAddr, u16);
