//! The Encrypted payload (RFC 7296 §3.14; AEADs per RFC 5282 and RFC 7634) and IKE message
//! fragmentation (RFC 7383): sealing a payload chain into one datagram or several SKF
//! fragments, opening them, and reassembling fragments with bounded memory.

use std::collections::BTreeMap;

use zeroize::Zeroizing;

use crate::crypto::{CryptoError, CryptoProvider, EncrAlg, IntegAlg};
use crate::message::{self, Encrypted, Header, Payload, PayloadType};

/// Why a message could not be protected or unprotected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SkError {
    #[error("the Encrypted payload is too short ({len} bytes) for its IV, padding and ICV")]
    Short { len: usize },
    #[error("the ciphertext length {len} is not a multiple of the block size")]
    NotBlockAligned { len: usize },
    #[error("integrity check failed")]
    Integrity,
    #[error("pad length {pad} exceeds the {len} decrypted bytes")]
    BadPadding { pad: usize, len: usize },
    #[error("fragment size {0} leaves no room for data")]
    FragmentTooSmall(usize),
    #[error("the message needs {0} fragments (at most {MAX_FRAGMENTS})")]
    TooManyFragments(usize),
    #[error(transparent)]
    Encode(#[from] message::EncodeError),
    #[error(transparent)]
    Crypto(CryptoError),
}

/// One direction's SK keys and cipher suite.
#[derive(Clone, Copy)]
pub struct SkKeys<'a> {
    pub encr: EncrAlg,
    pub integ: Option<IntegAlg>,
    /// SK_ei or SK_er (with the salt for AEADs).
    pub ke: &'a [u8],
    /// SK_ai or SK_ar (empty for AEADs).
    pub ka: &'a [u8],
}

impl std::fmt::Debug for SkKeys<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SkKeys").field("encr", &self.encr).field("integ", &self.integ).finish_non_exhaustive()
    }
}

/// IV, cipher block (padding alignment) and ICV sizes.
fn sizes(encr: EncrAlg, integ: Option<IntegAlg>) -> (usize, usize, usize) {
    match encr {
        EncrAlg::AesCbc { .. } => (16, 16, integ.map_or(0, integ_len)),
        // RFC 5282 §3, RFC 7634 §2: 8-byte IV, 16-byte ICV; no alignment is required.
        EncrAlg::AesGcm16 { .. } | EncrAlg::ChaCha20Poly1305 => (8, 1, 16),
    }
}

fn integ_len(i: IntegAlg) -> usize {
    match i {
        IntegAlg::HmacSha1_96 => 12,
        IntegAlg::HmacSha256_128 => 16,
        IntegAlg::HmacSha384_192 => 24,
        IntegAlg::HmacSha512_256 => 32,
    }
}

/// Fragments a sealed message may be cut into (RFC 7383 allows 65535; nobody needs that).
pub const MAX_FRAGMENTS: usize = 1024;

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Seals `inner` into the Encrypted payload of a message with `header` (its next_payload and
/// length are filled in). With `max_datagram` (the peer supports RFC 7383 and the path
/// wants it), a message longer than that is cut into SKF fragments of at most that many
/// bytes each (the IKE message, without IP/UDP headers and the non-ESP marker).
/// `iv_counter` gives AEAD IVs that never repeat under one key.
pub fn seal(
    p: &dyn CryptoProvider,
    k: SkKeys<'_>,
    iv_counter: &mut u64,
    header: &Header,
    inner: &[Payload],
    max_datagram: Option<usize>,
) -> Result<Vec<Vec<u8>>, SkError> {
    let (first, chain) = message::encode_chain(inner)?;
    let (iv_len, block, icv_len) = sizes(k.encr, k.integ);
    let whole = message::HEADER_LEN + 4 + iv_len + (chain.len() + 1).next_multiple_of(block) + icv_len;
    let Some(max) = max_datagram.filter(|m| whole > *m) else {
        return Ok(vec![seal_one(p, k, iv_counter, header, first, None, &chain)?]);
    };
    // Room for plaintext in one fragment: what is left after the header, the SKF header
    // (8 bytes), IV and ICV, rounded down to the block, minus the pad length byte.
    let room = max.saturating_sub(message::HEADER_LEN + 8 + iv_len + icv_len) / block * block;
    let chunk = room.checked_sub(1).filter(|c| *c > 0).ok_or(SkError::FragmentTooSmall(max))?;
    let total = chain.len().div_ceil(chunk).max(1);
    if total > MAX_FRAGMENTS {
        return Err(SkError::TooManyFragments(total));
    }
    chain
        .chunks(chunk)
        .enumerate()
        .map(|(i, piece)| {
            let inner_first = if i == 0 { first } else { PayloadType::NONE };
            seal_one(p, k, iv_counter, header, inner_first, Some((i as u16 + 1, total as u16)), piece)
        })
        .collect()
}

fn seal_one(
    p: &dyn CryptoProvider,
    k: SkKeys<'_>,
    iv_counter: &mut u64,
    header: &Header,
    inner_first: PayloadType,
    fragment: Option<(u16, u16)>,
    plain: &[u8],
) -> Result<Vec<u8>, SkError> {
    let (iv_len, block, icv_len) = sizes(k.encr, k.integ);
    let padded = (plain.len() + 1).next_multiple_of(block);
    let mut pt = Zeroizing::new(Vec::with_capacity(padded));
    pt.extend_from_slice(plain);
    let pad = padded - plain.len() - 1;
    pt.resize(plain.len() + pad, 0);
    pt.push(pad as u8);
    let body_len = iv_len + padded + icv_len;
    let mut out = message::encode_encrypted_prefix(header, inner_first, fragment, body_len)?;
    let mut iv = vec![0u8; iv_len];
    match k.encr {
        EncrAlg::AesCbc { .. } => {
            // RFC 7296 §3.14: the IV must be unpredictable.
            p.fill_random(&mut iv);
            let ct = p.encrypt(k.encr, k.ke, &iv, &[], &pt).map_err(SkError::Crypto)?;
            let start = out.len();
            out.extend_from_slice(&iv);
            out.extend_from_slice(&ct);
            let integ = k.integ.ok_or(SkError::Crypto(CryptoError::Unsupported("AES-CBC without integrity")))?;
            let icv = p.integ(integ, k.ka, &[&out[..]]);
            debug_assert_eq!(out.len() - start + icv.len(), body_len);
            out.extend_from_slice(&icv[..icv_len]);
        }
        EncrAlg::AesGcm16 { .. } | EncrAlg::ChaCha20Poly1305 => {
            // RFC 5282 §3.1: the IV must never repeat for a key: a counter does that.
            *iv_counter += 1;
            iv.copy_from_slice(&iv_counter.to_be_bytes());
            let ct = p.encrypt(k.encr, k.ke, &iv, &out, &pt).map_err(SkError::Crypto)?;
            out.extend_from_slice(&iv);
            out.extend_from_slice(&ct);
        }
    }
    Ok(out)
}

/// Verifies and decrypts an Encrypted (or Encrypted Fragment) payload: the plaintext
/// payload chain (or fragment of it), padding removed.
pub fn open(p: &dyn CryptoProvider, k: SkKeys<'_>, e: &Encrypted<'_>) -> Result<Zeroizing<Vec<u8>>, SkError> {
    let (iv_len, block, icv_len) = sizes(k.encr, k.integ);
    let body = e.body;
    if body.len() < iv_len + icv_len + 1 {
        return Err(SkError::Short { len: body.len() });
    }
    let (iv, rest) = body.split_at(iv_len);
    let pt = match k.encr {
        EncrAlg::AesCbc { .. } => {
            let (ct, icv) = rest.split_at(rest.len() - icv_len);
            if ct.is_empty() || ct.len() % block != 0 {
                return Err(SkError::NotBlockAligned { len: ct.len() });
            }
            let integ = k.integ.ok_or(SkError::Crypto(CryptoError::Unsupported("AES-CBC without integrity")))?;
            let want = p.integ(integ, k.ka, &[e.authenticated_header, iv, ct]);
            if !ct_eq(&want[..icv_len.min(want.len())], icv) {
                return Err(SkError::Integrity);
            }
            p.decrypt(k.encr, k.ke, iv, &[], ct).map_err(SkError::Crypto)?
        }
        EncrAlg::AesGcm16 { .. } | EncrAlg::ChaCha20Poly1305 => {
            p.decrypt(k.encr, k.ke, iv, e.authenticated_header, rest).map_err(|err| match err {
                CryptoError::Integrity => SkError::Integrity,
                other => SkError::Crypto(other),
            })?
        }
    };
    let Some(&pad) = pt.last() else {
        return Err(SkError::BadPadding { pad: 0, len: 0 });
    };
    let pad = pad as usize;
    if pad + 1 > pt.len() {
        return Err(SkError::BadPadding { pad, len: pt.len() });
    }
    let mut pt = pt;
    let keep = pt.len() - pad - 1;
    pt.truncate(keep);
    Ok(pt)
}

/// Why a fragment was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FragmentError {
    #[error("fragment {number} of {total}: numbering is invalid")]
    BadNumbering { number: u16, total: u16 },
    #[error("a message of {0} fragments exceeds the limit")]
    TooMany(u16),
    #[error("reassembled message would exceed {0} bytes")]
    TooBig(usize),
    #[error("fragment of an older attempt (fewer fragments than the one in progress)")]
    Stale,
}

/// Reassembly of one fragmented message (RFC 7383 §2.6), from fragments already opened.
#[derive(Debug)]
pub struct Reassembly {
    pub message_id: u32,
    total: u16,
    first: PayloadType,
    parts: BTreeMap<u16, Zeroizing<Vec<u8>>>,
    bytes: usize,
}

/// The most plaintext bytes a reassembled message may have: generous for certificate
/// chains sent in many small fragments (Windows uses ~600-byte fragments).
pub const MAX_REASSEMBLED: usize = 256 * 1024;

impl Reassembly {
    pub fn new(message_id: u32) -> Reassembly {
        Reassembly { message_id, total: 0, first: PayloadType::NONE, parts: BTreeMap::new(), bytes: 0 }
    }

    /// Adds an opened fragment; the whole plaintext chain (with its first payload type) once
    /// every fragment is in.
    pub fn add(
        &mut self,
        number: u16,
        total: u16,
        inner_first: PayloadType,
        plain: Zeroizing<Vec<u8>>,
    ) -> Result<Option<(PayloadType, Vec<u8>)>, FragmentError> {
        if number == 0 || total == 0 || number > total {
            return Err(FragmentError::BadNumbering { number, total });
        }
        if total as usize > MAX_FRAGMENTS {
            return Err(FragmentError::TooMany(total));
        }
        // RFC 7383 §2.6.2: a retransmission cut differently (more fragments: a smaller
        // fragment size) replaces what was collected; fewer is an older attempt.
        if total < self.total {
            return Err(FragmentError::Stale);
        }
        if total > self.total {
            self.parts.clear();
            self.bytes = 0;
            self.total = total;
        }
        if self.parts.contains_key(&number) {
            return Ok(None);
        }
        if self.bytes + plain.len() > MAX_REASSEMBLED {
            return Err(FragmentError::TooBig(MAX_REASSEMBLED));
        }
        if number == 1 {
            self.first = inner_first;
        }
        self.bytes += plain.len();
        self.parts.insert(number, plain);
        if self.parts.len() < self.total as usize {
            return Ok(None);
        }
        let mut all = Vec::with_capacity(self.bytes);
        for p in self.parts.values() {
            all.extend_from_slice(p);
        }
        self.parts.clear();
        Ok(Some((self.first, all)))
    }
}
