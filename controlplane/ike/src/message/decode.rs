//! Decoding: datagram → [`Decoded`], plaintext chain → [`Payload`]s.
//!
//! Every length field is checked against the bytes of the structure that holds it, every
//! count against what follows, and every substructure must fill its parent exactly. Reading
//! past the end of a length-delimited structure is a [`DecodeError::BadLength`] of that
//! structure (its length field lied); only the datagram itself is ever
//! [`DecodeError::Truncated`]. Indexing goes through `get`, so no input can panic.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;

/// Splits a datagram (an IKE message, without the non-ESP marker) into its header, its
/// plaintext payloads and the still-encrypted SK/SKF payload.
///
/// Checks, in order:
/// * at least the 28-byte header ([`DecodeError::Truncated`]), major version 2
///   ([`DecodeError::Version`]: the caller answers INVALID_MAJOR_VERSION, RFC 7296 §1.5);
/// * the header's Length equals the datagram's length: a shorter datagram is
///   [`DecodeError::Truncated`], trailing bytes are [`DecodeError::BadLength`];
/// * every payload's length (at least its 4-byte header, within the message), and each
///   payload's own structure (see the parsers below), RFC 7296 §3.2–§3.16;
/// * the SK (RFC 7296 §3.14) or SKF (RFC 7383 §2.5) payload is the last one
///   ([`DecodeError::EncryptedNotLast`]), its Next Payload is not SK/SKF again, and an SKF
///   has 1 ≤ Fragment Number ≤ Total Fragments. A fragment after the first that names an
///   inner payload (RFC 7383 §2.5 has senders write 0) is taken as it is;
/// * at most [`MAX_PAYLOADS`] payloads ([`DecodeError::TooManyPayloads`]).
///
/// Unknown payload types come back as [`Payload::Unknown`]: the caller refuses the message if
/// one of them is critical ([`Decoded::unsupported_critical`]).
pub fn decode(bytes: &[u8]) -> Result<Decoded<'_>, DecodeError> {
    let header = Header::parse(bytes)?;
    if header.major_version() != 2 {
        return Err(DecodeError::Version(header.major_version()));
    }
    let len = usize::try_from(header.length).unwrap_or(usize::MAX);
    if len < HEADER_LEN || len < bytes.len() {
        return Err(DecodeError::BadLength { what: "IKE header Length", len });
    }
    if len > bytes.len() {
        return Err(DecodeError::Truncated { what: "IKE message" });
    }

    let mut payloads = Vec::new();
    let mut chain = Chain { bytes, at: HEADER_LEN, next: header.next_payload, count: 0 };
    while let Some(raw) = chain.next()? {
        if raw.kind == PayloadType::SK || raw.kind == PayloadType::SKF {
            let encrypted = encrypted(bytes, &raw)?;
            return Ok(Decoded { header, payloads, encrypted: Some(encrypted) });
        }
        payloads.push(payload(&raw)?);
    }
    Ok(Decoded { header, payloads, encrypted: None })
}

/// Parses a plaintext payload chain (the decrypted content of an SK payload, or of the
/// reassembled SKF fragments) that starts with a payload of type `first`.
///
/// The same checks as [`decode`] apply to each payload; an SK or SKF payload inside is a
/// [`DecodeError::BadValue`] (RFC 7296 §3.14: the Encrypted payload is the last one of the
/// message, so it cannot be nested).
pub fn decode_chain(first: PayloadType, bytes: &[u8]) -> Result<Vec<Payload>, DecodeError> {
    let mut payloads = Vec::new();
    let mut chain = Chain { bytes, at: 0, next: first, count: 0 };
    while let Some(raw) = chain.next()? {
        if raw.kind == PayloadType::SK || raw.kind == PayloadType::SKF {
            return Err(DecodeError::BadValue {
                what: "payload type inside the Encrypted payload",
                value: raw.kind.0.into(),
            });
        }
        payloads.push(payload(&raw)?);
    }
    Ok(payloads)
}

/// One payload of a chain, its generic header read (RFC 7296 §3.2):
///
/// ```text
/// | Next Payload  |C|  RESERVED   |         Payload Length        |
/// ```
struct RawPayload<'a> {
    kind: PayloadType,
    /// The Next Payload field (for SK/SKF: the first inner payload's type).
    next: PayloadType,
    critical: bool,
    /// The Payload Length field: the generic header included.
    len: usize,
    /// Offset of the generic header within the chain's bytes.
    start: usize,
    body: &'a [u8],
}

/// Walks a payload chain.
struct Chain<'a> {
    bytes: &'a [u8],
    at: usize,
    next: PayloadType,
    count: usize,
}

impl<'a> Chain<'a> {
    /// The next payload, `None` at the end of the chain (which must be the end of the bytes).
    fn next(&mut self) -> Result<Option<RawPayload<'a>>, DecodeError> {
        let rest = self.bytes.get(self.at..).unwrap_or_default();
        if self.next == PayloadType::NONE {
            if !rest.is_empty() {
                return Err(DecodeError::BadLength { what: "bytes after the last payload", len: rest.len() });
            }
            return Ok(None);
        }
        if self.count == MAX_PAYLOADS {
            return Err(DecodeError::TooManyPayloads(MAX_PAYLOADS));
        }
        let kind = self.next;
        let Some(&[next, flags, l0, l1]) = rest.get(..PAYLOAD_HEADER_LEN) else {
            return Err(DecodeError::Truncated { what: "generic payload header" });
        };
        let len = usize::from(u16::from_be_bytes([l0, l1]));
        let body = match rest.get(PAYLOAD_HEADER_LEN..len) {
            Some(body) if len >= PAYLOAD_HEADER_LEN => body,
            _ => return Err(DecodeError::BadLength { what: kind.name(), len }),
        };
        let raw = RawPayload { kind, next: PayloadType(next), critical: flags & 0x80 != 0, len, start: self.at, body };
        self.at += len;
        self.count += 1;
        self.next = raw.next;
        Ok(Some(raw))
    }
}

/// The SK or SKF payload, which must end the message (RFC 7296 §3.14, RFC 7383 §2.5):
///
/// ```text
/// | Next Payload  |C|  RESERVED   |         Payload Length        |
/// |        Fragment Number        |        Total Fragments        |   (SKF only)
/// |                  IV ‖ Encrypted Payloads ‖ ICV ...            |
/// ```
fn encrypted<'a>(message: &'a [u8], raw: &RawPayload<'a>) -> Result<Encrypted<'a>, DecodeError> {
    let end = raw.start + raw.len;
    if end != message.len() {
        return Err(DecodeError::EncryptedNotLast);
    }
    if raw.next == PayloadType::SK || raw.next == PayloadType::SKF {
        // What it names would have to follow it inside: refused now rather than after
        // decryption, as `decode_chain` would.
        return Err(DecodeError::BadValue {
            what: "first payload inside the Encrypted payload",
            value: raw.next.0.into(),
        });
    }
    let (fragment, header_len) = if raw.kind == PayloadType::SKF {
        let Some(&[n0, n1, t0, t1]) = raw.body.get(..FRAGMENT_HEADER_LEN - PAYLOAD_HEADER_LEN) else {
            return Err(DecodeError::BadLength { what: raw.kind.name(), len: raw.len });
        };
        let (number, total) = (u16::from_be_bytes([n0, n1]), u16::from_be_bytes([t0, t1]));
        if total == 0 {
            return Err(DecodeError::BadValue { what: "SKF Total Fragments", value: 0 });
        }
        if number == 0 || number > total {
            return Err(DecodeError::BadValue { what: "SKF Fragment Number", value: number.into() });
        }
        (Some((number, total)), FRAGMENT_HEADER_LEN)
    } else {
        (None, PAYLOAD_HEADER_LEN)
    };
    let split = raw.start + header_len;
    let (Some(authenticated_header), Some(body)) = (message.get(..split), message.get(split..)) else {
        return Err(DecodeError::BadLength { what: raw.kind.name(), len: raw.len });
    };
    Ok(Encrypted { inner_first: raw.next, fragment, authenticated_header, body })
}

/// A payload's body, by type.
fn payload(raw: &RawPayload<'_>) -> Result<Payload, DecodeError> {
    let mut r = Reader::new(raw.body, raw.kind.name(), raw.len);
    let p = match raw.kind {
        PayloadType::SA => Payload::Sa(sa(&mut r)?),
        PayloadType::KE => {
            // Diffie-Hellman Group Num (2), RESERVED (2), Key Exchange Data (RFC 7296 §3.4).
            let group = r.u16()?;
            r.take(2)?;
            Payload::Ke { group, data: r.rest().to_vec() }
        }
        PayloadType::IDI => Payload::IdI(identification(&mut r)?),
        PayloadType::IDR => Payload::IdR(identification(&mut r)?),
        PayloadType::CERT | PayloadType::CERTREQ => {
            // Cert Encoding (1), data (RFC 7296 §3.6, §3.7).
            let encoding = CertEncoding(r.u8()?);
            let data = r.rest().to_vec();
            if raw.kind == PayloadType::CERT {
                Payload::Cert { encoding, data }
            } else {
                Payload::CertReq { encoding, data }
            }
        }
        PayloadType::AUTH => {
            // Auth Method (1), RESERVED (3), Authentication Data (RFC 7296 §3.8).
            let method = AuthMethod(r.u8()?);
            r.take(3)?;
            Payload::Auth { method, data: r.rest().to_vec() }
        }
        PayloadType::NONCE => {
            // RFC 7296 §3.9: "between 16 and 256 octets, inclusive".
            if !NONCE_LEN.contains(&raw.body.len()) {
                return Err(DecodeError::BadLength { what: raw.kind.name(), len: raw.len });
            }
            Payload::Nonce(r.rest().to_vec())
        }
        PayloadType::NOTIFY => Payload::Notify(notify(&mut r)?),
        PayloadType::DELETE => Payload::Delete(delete(&mut r)?),
        PayloadType::VENDOR_ID => Payload::VendorId(r.rest().to_vec()),
        PayloadType::TSI => Payload::TsI(traffic_selectors(&mut r)?),
        PayloadType::TSR => Payload::TsR(traffic_selectors(&mut r)?),
        PayloadType::CP => Payload::Cp(configuration(&mut r)?),
        PayloadType::EAP => Payload::Eap(r.rest().to_vec()),
        kind => Payload::Unknown { kind, critical: raw.critical, data: r.rest().to_vec() },
    };
    r.finish()?;
    Ok(p)
}

/// The proposals of an SA payload (RFC 7296 §3.3.1): each one
///
/// ```text
/// | Last Substruc |   RESERVED    |         Proposal Length       |
/// | Proposal Num  |  Protocol ID  |    SPI Size   |Num  Transforms|
/// ~                        SPI (variable)                         ~
/// ~                        <Transforms>                           ~
/// ```
///
/// Last Substruc is 2 before another proposal and 0 on the last one, whose end must be the
/// payload's end. An SA payload without proposals is refused.
fn sa(r: &mut Reader<'_>) -> Result<Vec<Proposal>, DecodeError> {
    if r.is_empty() {
        return Err(r.bad_length());
    }
    let mut proposals = Vec::new();
    loop {
        let mut p = r.substructure("proposal", 8)?;
        let last = p.u8()?;
        p.take(3)?; // RESERVED, Proposal Length: read by substructure
        let number = p.u8()?;
        let protocol = ProtocolId(p.u8()?);
        let spi_size = p.u8()?;
        let count = p.u8()?;
        let spi = p.take(spi_size.into())?.to_vec();
        let mut transforms = Vec::with_capacity(count.into());
        if count > 0 {
            loop {
                let (t, more) = transform(&mut p)?;
                transforms.push(t);
                if !more {
                    break;
                }
            }
        }
        if transforms.len() != usize::from(count) {
            return Err(DecodeError::BadValue { what: "proposal Num Transforms", value: count.into() });
        }
        p.finish()?;
        proposals.push(Proposal { number, protocol, spi, transforms });
        match last {
            0 => break,
            2 => {}
            v => return Err(DecodeError::BadValue { what: "proposal Last Substruc", value: v.into() }),
        }
    }
    Ok(proposals)
}

/// One transform (RFC 7296 §3.3.2) and whether another follows (Last Substruc 3, or 0):
///
/// ```text
/// | Last Substruc |   RESERVED    |        Transform Length       |
/// |Transform Type |   RESERVED    |          Transform ID         |
/// ~                      Transform Attributes                     ~
/// ```
fn transform(proposal: &mut Reader<'_>) -> Result<(Transform, bool), DecodeError> {
    let mut r = proposal.substructure("transform", 8)?;
    let more = match r.u8()? {
        0 => false,
        3 => true,
        v => return Err(DecodeError::BadValue { what: "transform Last Substruc", value: v.into() }),
    };
    r.take(3)?; // RESERVED, Transform Length
    let kind = TransformType(r.u8()?);
    r.take(1)?;
    let id = r.u16()?;
    // Attributes (RFC 7296 §3.3.5): AF set = TV (type, 2-byte value); AF clear = TLV (type,
    // length, value). Key Length (14) is the only one defined, and always TV.
    let mut key_length = None;
    let mut unknown_attributes = false;
    while !r.is_empty() {
        let af_type = r.u16()?;
        let kind = af_type & 0x7fff;
        if af_type & 0x8000 != 0 {
            let value = r.u16()?;
            if kind == KEY_LENGTH_ATTRIBUTE {
                if key_length.is_some() {
                    return Err(DecodeError::BadValue { what: "Key Length attribute repeated", value: value.into() });
                }
                key_length = Some(value);
            } else {
                unknown_attributes = true;
            }
        } else {
            if kind == KEY_LENGTH_ATTRIBUTE {
                return Err(DecodeError::BadValue { what: "Key Length attribute in TLV format", value: kind.into() });
            }
            let len = r.u16()?;
            r.take(len.into())?;
            unknown_attributes = true;
        }
    }
    Ok((Transform { kind, id, key_length, unknown_attributes }, more))
}

/// ID Type (1), RESERVED (3), Identification Data (RFC 7296 §3.5).
fn identification(r: &mut Reader<'_>) -> Result<Identification, DecodeError> {
    let kind = IdType(r.u8()?);
    r.take(3)?;
    Ok(Identification { kind, data: r.rest().to_vec() })
}

/// Protocol ID (1), SPI Size (1), Notify Message Type (2), SPI, Notification Data
/// (RFC 7296 §3.10). The SPI is absent (0), an ESP/AH SPI (4) or an IKE SPI (8).
fn notify(r: &mut Reader<'_>) -> Result<Notify, DecodeError> {
    let protocol = ProtocolId(r.u8()?);
    let spi_size = r.u8()?;
    let kind = NotifyType(r.u16()?);
    if !matches!(spi_size, 0 | 4 | 8) {
        return Err(DecodeError::BadValue { what: "Notify SPI Size", value: spi_size.into() });
    }
    let spi = r.take(spi_size.into())?.to_vec();
    Ok(Notify { protocol, spi, kind, data: r.rest().to_vec() })
}

/// Protocol ID (1), SPI Size (1), Num of SPIs (2), SPIs (RFC 7296 §3.11). Deleting the IKE
/// SA names no SPI (size 0, count 0); AH and ESP SPIs are 4 bytes. For other protocols any
/// size is taken, but SPIs of size 0 must number 0.
fn delete(r: &mut Reader<'_>) -> Result<Delete, DecodeError> {
    let protocol = ProtocolId(r.u8()?);
    let spi_size = r.u8()?;
    let count = r.u16()?;
    let size_ok = match protocol {
        ProtocolId::IKE => spi_size == 0,
        ProtocolId::AH | ProtocolId::ESP => spi_size == 4,
        _ => true,
    };
    if !size_ok {
        return Err(DecodeError::BadValue { what: "Delete SPI Size", value: spi_size.into() });
    }
    if spi_size == 0 && count != 0 {
        return Err(DecodeError::BadValue { what: "Delete Num of SPIs (with SPI Size 0)", value: count.into() });
    }
    let size = usize::from(spi_size);
    if r.remaining() != size * usize::from(count) {
        return Err(r.bad_length());
    }
    let spis = if size == 0 { Vec::new() } else { r.rest().chunks(size).map(<[u8]>::to_vec).collect() };
    Ok(Delete { protocol, spis })
}

/// Traffic selector types (RFC 7296 §3.13.1).
const TS_IPV4_ADDR_RANGE: u8 = 7;
const TS_IPV6_ADDR_RANGE: u8 = 8;

/// Number of TSs (1), RESERVED (3), then each selector (RFC 7296 §3.13.1):
///
/// ```text
/// |   TS Type     |IP Protocol ID*|       Selector Length         |
/// |           Start Port*         |           End Port*           |
/// ~                         Starting Address*                     ~
/// ~                         Ending Address*                       ~
/// ```
///
/// Type 7 (IPv4) is 16 bytes long, type 8 (IPv6) 40; other types, and an ending address
/// below the starting one, are [`DecodeError::BadValue`]. A start port above the end port is
/// kept: 65535–0 is how RFC 7296 writes OPAQUE ports.
fn traffic_selectors(r: &mut Reader<'_>) -> Result<Vec<TrafficSelector>, DecodeError> {
    let count = r.u8()?;
    r.take(3)?;
    let mut selectors = Vec::with_capacity(count.into());
    for _ in 0..count {
        let ts_type = r.u8()?;
        let protocol = r.u8()?;
        let len = r.u16()?;
        let want = match ts_type {
            TS_IPV4_ADDR_RANGE => 16,
            TS_IPV6_ADDR_RANGE => 40,
            t => return Err(DecodeError::BadValue { what: "TS Type", value: t.into() }),
        };
        if len != want {
            return Err(DecodeError::BadLength { what: "traffic selector", len: len.into() });
        }
        let start_port = r.u16()?;
        let end_port = r.u16()?;
        let (start, end) = if ts_type == TS_IPV4_ADDR_RANGE {
            let (s, e) = (r.u32()?, r.u32()?);
            if e < s {
                return Err(DecodeError::BadValue { what: "IPv4 traffic selector ending below its start", value: e });
            }
            (IpAddr::V4(Ipv4Addr::from(s)), IpAddr::V4(Ipv4Addr::from(e)))
        } else {
            let (s, e) = (u128::from_be_bytes(r.array()?), u128::from_be_bytes(r.array()?));
            if e < s {
                return Err(DecodeError::BadValue { what: "IPv6 traffic selector ending below its start", value: 8 });
            }
            (IpAddr::V6(Ipv6Addr::from(s)), IpAddr::V6(Ipv6Addr::from(e)))
        };
        selectors.push(TrafficSelector { start, end, protocol, start_port, end_port });
    }
    Ok(selectors)
}

/// Whether a configuration attribute's value has a length RFC 7296 §3.15.1 allows for its
/// type: an address attribute is empty (in a request) or one address (with a prefix length
/// for the IPv6 ones, and a netmask for INTERNAL_IP4_SUBNET); SUPPORTED_ATTRIBUTES lists
/// 2-byte types. On failure, the attribute's name. Other types are free-form.
pub(super) fn check_config_value(kind: ConfigAttributeType, len: usize) -> Result<(), &'static str> {
    const ADDR4: &[usize] = &[0, 4];
    const ADDR6: &[usize] = &[0, 16];
    const PREFIX6: &[usize] = &[0, 17];
    const SUBNET4: &[usize] = &[0, 8];
    let (name, lengths) = match kind {
        ConfigAttributeType::INTERNAL_IP4_ADDRESS => ("INTERNAL_IP4_ADDRESS", ADDR4),
        ConfigAttributeType::INTERNAL_IP4_NETMASK => ("INTERNAL_IP4_NETMASK", ADDR4),
        ConfigAttributeType::INTERNAL_IP4_DNS => ("INTERNAL_IP4_DNS", ADDR4),
        ConfigAttributeType::INTERNAL_IP4_NBNS => ("INTERNAL_IP4_NBNS", ADDR4),
        ConfigAttributeType::INTERNAL_IP4_DHCP => ("INTERNAL_IP4_DHCP", ADDR4),
        ConfigAttributeType::INTERNAL_IP6_ADDRESS => ("INTERNAL_IP6_ADDRESS", PREFIX6),
        ConfigAttributeType::INTERNAL_IP6_DNS => ("INTERNAL_IP6_DNS", ADDR6),
        ConfigAttributeType::INTERNAL_IP6_DHCP => ("INTERNAL_IP6_DHCP", ADDR6),
        ConfigAttributeType::INTERNAL_IP4_SUBNET => ("INTERNAL_IP4_SUBNET", SUBNET4),
        ConfigAttributeType::INTERNAL_IP6_SUBNET => ("INTERNAL_IP6_SUBNET", PREFIX6),
        ConfigAttributeType::SUPPORTED_ATTRIBUTES if len % 2 != 0 => return Err("SUPPORTED_ATTRIBUTES"),
        _ => return Ok(()),
    };
    if lengths.contains(&len) {
        Ok(())
    } else {
        Err(name)
    }
}

/// CFG Type (1), RESERVED (3), then attributes (RFC 7296 §3.15, §3.15.1):
///
/// ```text
/// |R|         Attribute Type      |            Length             |
/// ~                             Value                             ~
/// ```
///
/// The R bit is ignored. The attributes with a fixed layout must have one of their lengths
/// (an address is 0 bytes in a request or 4/16 in a reply); SUPPORTED_ATTRIBUTES lists 2-byte
/// types.
fn configuration(r: &mut Reader<'_>) -> Result<ConfigPayload, DecodeError> {
    let kind = ConfigType(r.u8()?);
    r.take(3)?;
    let mut attributes = Vec::new();
    while !r.is_empty() {
        let attr_kind = ConfigAttributeType(r.u16()? & 0x7fff);
        let len = r.u16()?;
        let value = r.take(len.into())?.to_vec();
        check_config_value(attr_kind, value.len()).map_err(|what| DecodeError::BadLength { what, len: len.into() })?;
        attributes.push(ConfigAttribute { kind: attr_kind, value });
    }
    Ok(ConfigPayload { kind, attributes })
}

/// Reads the fields of one length-delimited structure. Running out of bytes means the
/// structure's length field was too small: a [`DecodeError::BadLength`] naming it.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    what: &'static str,
    /// The structure's length field, for the error.
    len: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8], what: &'static str, len: usize) -> Self {
        Reader { bytes, at: 0, what, len }
    }

    fn bad_length(&self) -> DecodeError {
        DecodeError::BadLength { what: self.what, len: self.len }
    }

    fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.at)
    }

    fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let s = self.bytes.get(self.at..).and_then(|rest| rest.get(..n)).ok_or_else(|| self.bad_length())?;
        self.at += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let s = self.take(N)?;
        s.try_into().map_err(|_| self.bad_length())
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn rest(&mut self) -> &'a [u8] {
        let s = self.bytes.get(self.at..).unwrap_or_default();
        self.at = self.bytes.len();
        s
    }

    /// Everything must have been read.
    fn finish(&self) -> Result<(), DecodeError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(self.bad_length())
        }
    }

    /// A substructure whose 16-bit length (counting its whole self) sits at offset 2, as in
    /// proposals and transforms: a reader over exactly its bytes, from its first byte. The
    /// length must be at least `min` and within this structure.
    fn substructure(&mut self, what: &'static str, min: usize) -> Result<Reader<'a>, DecodeError> {
        let rest = self.bytes.get(self.at..).unwrap_or_default();
        let Some(&[_, _, l0, l1]) = rest.get(..4) else {
            return Err(self.bad_length());
        };
        let len = usize::from(u16::from_be_bytes([l0, l1]));
        if len < min {
            return Err(DecodeError::BadLength { what, len });
        }
        let bytes = rest.get(..len).ok_or(DecodeError::BadLength { what, len })?;
        self.at += len;
        Ok(Reader::new(bytes, what, len))
    }
}
