//! Encoding: [`Payload`]s → bytes, checked so that whatever encodes decodes back to an equal
//! value ([`decode`](super::decode), [`decode_chain`](super::decode_chain)).

use core::net::IpAddr;

use super::decode::check_config_value;
use super::*;

/// Encodes a payload chain: the first payload's type (NONE for an empty chain) and the bytes,
/// each payload's Next Payload naming the one after it and the last one's 0 (RFC 7296 §3.2).
///
/// This is the plaintext of an Encrypted payload; the type goes into its Next Payload field
/// (`inner_first` of [`encode_encrypted_prefix`]).
pub fn encode_chain(payloads: &[Payload]) -> Result<(PayloadType, Vec<u8>), EncodeError> {
    let mut out = Vec::new();
    let first = write_chain(&mut out, payloads)?;
    Ok((first, out))
}

/// An unencrypted message (IKE_SA_INIT, or an answer outside any SA): `header`, with its Next
/// Payload and Length replaced by those of `payloads`, followed by the chain. The version
/// octet is written as given ([`IKEV2_VERSION`] for IKEv2).
pub fn encode(header: &Header, payloads: &[Payload]) -> Result<Vec<u8>, EncodeError> {
    let mut out = vec![0; HEADER_LEN];
    let next_payload = write_chain(&mut out, payloads)?;
    let length = u32::try_from(out.len()).map_err(|_| EncodeError::TooLong { what: "IKE message", len: out.len() })?;
    out[..HEADER_LEN].copy_from_slice(&Header { next_payload, length, ..*header }.to_bytes());
    Ok(out)
}

/// The bytes of an encrypted message up to its body: the IKE header (Next Payload SK or SKF,
/// Length the whole message's) and the SK payload's generic header (Next Payload
/// `inner_first`, Payload Length 4 + `body_len`, RFC 7296 §3.14), or with `fragment =
/// Some((number, total))` the SKF header: generic header, Fragment Number, Total Fragments
/// (Payload Length 8 + `body_len`, RFC 7383 §2.5).
///
/// The caller appends the body (IV ‖ ciphertext ‖ ICV, `body_len` bytes). The prefix is what
/// the ICV (or the AEAD's associated data) covers besides the body, and exactly what
/// [`Encrypted::authenticated_header`] is when the message is decoded again.
///
/// Refused: a fragment number of 0 or above the total; an `inner_first` other than NONE in a
/// fragment after the first (RFC 7383 §2.5 sends 0 there); an Encrypted payload type as
/// `inner_first`; a payload longer than 65535 bytes.
pub fn encode_encrypted_prefix(
    header: &Header,
    inner_first: PayloadType,
    fragment: Option<(u16, u16)>,
    body_len: usize,
) -> Result<Vec<u8>, EncodeError> {
    if inner_first == PayloadType::SK || inner_first == PayloadType::SKF {
        return Err(EncodeError::Invalid {
            what: "Encrypted payload",
            why: "it cannot contain another Encrypted payload",
        });
    }
    let (kind, header_len) = match fragment {
        None => (PayloadType::SK, PAYLOAD_HEADER_LEN),
        Some((number, total)) => {
            if number == 0 || number > total {
                return Err(EncodeError::Invalid {
                    what: "Encrypted Fragment payload",
                    why: "the Fragment Number must be between 1 and Total Fragments",
                });
            }
            if number > 1 && inner_first != PayloadType::NONE {
                return Err(EncodeError::Invalid {
                    what: "Encrypted Fragment payload",
                    why: "only fragment 1 names the first inner payload; the others carry NONE (RFC 7383 §2.5)",
                });
            }
            (PayloadType::SKF, FRAGMENT_HEADER_LEN)
        }
    };
    let payload_len = header_len.saturating_add(body_len);
    let len16 = u16::try_from(payload_len).map_err(|_| EncodeError::TooLong { what: kind.name(), len: payload_len })?;
    let total = HEADER_LEN + payload_len;
    let length = u32::try_from(total).map_err(|_| EncodeError::TooLong { what: "IKE message", len: total })?;

    let mut out = Vec::with_capacity(HEADER_LEN + header_len);
    out.extend_from_slice(&Header { next_payload: kind, length, ..*header }.to_bytes());
    out.push(inner_first.0);
    out.push(0);
    out.extend_from_slice(&len16.to_be_bytes());
    if let Some((number, total)) = fragment {
        out.extend_from_slice(&number.to_be_bytes());
        out.extend_from_slice(&total.to_be_bytes());
    }
    Ok(out)
}

/// Appends the chain to `out`; returns the first payload's type.
fn write_chain(out: &mut Vec<u8>, payloads: &[Payload]) -> Result<PayloadType, EncodeError> {
    if payloads.len() > MAX_PAYLOADS {
        return Err(EncodeError::Invalid {
            what: "payload chain",
            why: "more than 64 payloads, which no decoder here accepts",
        });
    }
    for (i, p) in payloads.iter().enumerate() {
        let next = payloads.get(i + 1).map_or(PayloadType::NONE, Payload::kind);
        write_payload(out, p, next)?;
    }
    Ok(payloads.first().map_or(PayloadType::NONE, Payload::kind))
}

/// One payload: generic header (the critical bit only for an unknown payload that had it),
/// then the body; the length is filled in afterwards.
fn write_payload(out: &mut Vec<u8>, p: &Payload, next: PayloadType) -> Result<(), EncodeError> {
    let start = out.len();
    let critical = matches!(p, Payload::Unknown { critical: true, .. });
    out.extend_from_slice(&[next.0, if critical { 0x80 } else { 0 }, 0, 0]);
    match p {
        Payload::Sa(proposals) => sa(out, proposals)?,
        Payload::Ke { group, data } => {
            out.extend_from_slice(&group.to_be_bytes());
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(data);
        }
        Payload::IdI(id) | Payload::IdR(id) => {
            out.extend_from_slice(&[id.kind.0, 0, 0, 0]);
            out.extend_from_slice(&id.data);
        }
        Payload::Cert { encoding, data } | Payload::CertReq { encoding, data } => {
            out.push(encoding.0);
            out.extend_from_slice(data);
        }
        Payload::Auth { method, data } => {
            out.extend_from_slice(&[method.0, 0, 0, 0]);
            out.extend_from_slice(data);
        }
        Payload::Nonce(nonce) => {
            if !NONCE_LEN.contains(&nonce.len()) {
                return Err(EncodeError::Invalid {
                    what: "Nonce payload",
                    why: "a nonce is 16 to 256 bytes (RFC 7296 §3.9)",
                });
            }
            out.extend_from_slice(nonce);
        }
        Payload::Notify(n) => {
            if !matches!(n.spi.len(), 0 | 4 | 8) {
                return Err(EncodeError::Invalid { what: "Notify payload", why: "the SPI must be 0, 4 or 8 bytes" });
            }
            out.extend_from_slice(&[n.protocol.0, n.spi.len() as u8]);
            out.extend_from_slice(&n.kind.0.to_be_bytes());
            out.extend_from_slice(&n.spi);
            out.extend_from_slice(&n.data);
        }
        Payload::Delete(d) => delete(out, d)?,
        Payload::VendorId(data) | Payload::Eap(data) => out.extend_from_slice(data),
        Payload::TsI(ts) | Payload::TsR(ts) => traffic_selectors(out, ts)?,
        Payload::Cp(cp) => configuration(out, cp)?,
        Payload::Unknown { kind, data, .. } => {
            if kind.is_known() {
                return Err(EncodeError::Invalid {
                    what: "unknown payload",
                    why: "its type is one this codec knows: use that payload's own variant",
                });
            }
            out.extend_from_slice(data);
        }
    }
    let what = p.kind().name();
    patch_length(out, start, what)
}

/// Writes the 16-bit length of the structure starting at `start` (at `start + 2`).
fn patch_length(out: &mut [u8], start: usize, what: &'static str) -> Result<(), EncodeError> {
    let len = out.len() - start;
    let len16 = u16::try_from(len).map_err(|_| EncodeError::TooLong { what, len })?;
    out[start + 2..start + 4].copy_from_slice(&len16.to_be_bytes());
    Ok(())
}

/// Proposals and their transforms (RFC 7296 §3.3.1–§3.3.5); Last Substruc and the lengths
/// and counts are computed.
fn sa(out: &mut Vec<u8>, proposals: &[Proposal]) -> Result<(), EncodeError> {
    if proposals.is_empty() {
        return Err(EncodeError::Invalid { what: "SA payload", why: "it needs at least one proposal" });
    }
    for (i, p) in proposals.iter().enumerate() {
        let start = out.len();
        let last = if i + 1 == proposals.len() { 0 } else { 2 };
        let spi_size =
            u8::try_from(p.spi.len()).map_err(|_| EncodeError::TooLong { what: "proposal SPI", len: p.spi.len() })?;
        let count = u8::try_from(p.transforms.len())
            .map_err(|_| EncodeError::Invalid { what: "proposal", why: "more than 255 transforms" })?;
        out.extend_from_slice(&[last, 0, 0, 0, p.number, p.protocol.0, spi_size, count]);
        out.extend_from_slice(&p.spi);
        for (j, t) in p.transforms.iter().enumerate() {
            if t.unknown_attributes {
                return Err(EncodeError::Invalid {
                    what: "transform",
                    why: "its unknown attributes were not kept when decoding and cannot be written",
                });
            }
            let last = if j + 1 == p.transforms.len() { 0 } else { 3 };
            let len: u8 = if t.key_length.is_some() { 12 } else { 8 };
            out.extend_from_slice(&[last, 0, 0, len, t.kind.0, 0]);
            out.extend_from_slice(&t.id.to_be_bytes());
            if let Some(bits) = t.key_length {
                out.extend_from_slice(&(0x8000 | KEY_LENGTH_ATTRIBUTE).to_be_bytes());
                out.extend_from_slice(&bits.to_be_bytes());
            }
        }
        patch_length(out, start, "proposal")?;
    }
    Ok(())
}

/// RFC 7296 §3.11, with the SPI sizes [`decode`](super::decode) accepts: none for the IKE SA,
/// 4 bytes for AH and ESP, one common size for other protocols.
fn delete(out: &mut Vec<u8>, d: &Delete) -> Result<(), EncodeError> {
    let size = d.spis.first().map_or(0, Vec::len);
    if d.spis.iter().any(|s| s.len() != size) {
        return Err(EncodeError::Invalid { what: "Delete payload", why: "its SPIs differ in size" });
    }
    let size_ok = match d.protocol {
        ProtocolId::IKE => d.spis.is_empty(),
        ProtocolId::AH | ProtocolId::ESP => d.spis.is_empty() || size == 4,
        _ => d.spis.is_empty() || size > 0,
    };
    if !size_ok {
        return Err(EncodeError::Invalid {
            what: "Delete payload",
            why: "the IKE SA is deleted without SPIs, AH and ESP SPIs are 4 bytes, others not empty",
        });
    }
    let spi_size = match d.protocol {
        ProtocolId::AH | ProtocolId::ESP => 4,
        _ => u8::try_from(size).map_err(|_| EncodeError::TooLong { what: "Delete SPI", len: size })?,
    };
    let count =
        u16::try_from(d.spis.len()).map_err(|_| EncodeError::TooLong { what: "Delete SPIs", len: d.spis.len() })?;
    out.extend_from_slice(&[d.protocol.0, spi_size]);
    out.extend_from_slice(&count.to_be_bytes());
    for spi in &d.spis {
        out.extend_from_slice(spi);
    }
    Ok(())
}

/// RFC 7296 §3.13.1: type 7 for an IPv4 range, 8 for IPv6; both ends of one family, the end
/// not below the start.
fn traffic_selectors(out: &mut Vec<u8>, selectors: &[TrafficSelector]) -> Result<(), EncodeError> {
    let count = u8::try_from(selectors.len())
        .map_err(|_| EncodeError::Invalid { what: "TS payload", why: "more than 255 traffic selectors" })?;
    out.extend_from_slice(&[count, 0, 0, 0]);
    for ts in selectors {
        let (ts_type, len) = match (ts.start, ts.end) {
            (IpAddr::V4(s), IpAddr::V4(e)) if s <= e => (7u8, 16u16),
            (IpAddr::V6(s), IpAddr::V6(e)) if s <= e => (8, 40),
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
                return Err(EncodeError::Invalid {
                    what: "traffic selector",
                    why: "its end address is below its start",
                })
            }
            _ => {
                return Err(EncodeError::Invalid {
                    what: "traffic selector",
                    why: "its start and end addresses are of different families",
                })
            }
        };
        out.extend_from_slice(&[ts_type, ts.protocol]);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&ts.start_port.to_be_bytes());
        out.extend_from_slice(&ts.end_port.to_be_bytes());
        for addr in [ts.start, ts.end] {
            match addr {
                IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
                IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
            }
        }
    }
    Ok(())
}

/// RFC 7296 §3.15: the attribute types are 15 bits (the R bit is sent as 0), and the
/// attributes with a fixed layout must have one of their lengths.
fn configuration(out: &mut Vec<u8>, cp: &ConfigPayload) -> Result<(), EncodeError> {
    out.extend_from_slice(&[cp.kind.0, 0, 0, 0]);
    for a in &cp.attributes {
        if a.kind.0 >= 0x8000 {
            return Err(EncodeError::Invalid { what: "configuration attribute", why: "its type does not fit 15 bits" });
        }
        check_config_value(a.kind, a.value.len()).map_err(|what| EncodeError::Invalid {
            what,
            why: "the attribute's value has a length RFC 7296 §3.15.1 does not allow",
        })?;
        let len = u16::try_from(a.value.len())
            .map_err(|_| EncodeError::TooLong { what: "configuration attribute", len: a.value.len() })?;
        out.extend_from_slice(&a.kind.0.to_be_bytes());
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&a.value);
    }
    Ok(())
}
