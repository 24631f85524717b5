//! Proposals as operators write them (strongSwan's syntax: `aes128gcm16-prfsha256-x25519`,
//! `aes256-sha256-modp2048`, ESP `aes128gcm16`, `aes128-sha1`), their SA payload encoding, and
//! the choice among a peer's proposals (RFC 7296 §2.7, §3.3).
//!
//! Algorithms below the floor of RFC 8247 (IKE) and RFC 8221 (ESP) — 3DES, MD5, DES, MODP
//! groups under 2048 bits — are refused by name with the RFC that retired them.

use core::fmt;

use esprit_esp::Transform as EspTransform;

use crate::crypto::{DhGroup, EncrAlg, IntegAlg, PrfAlg};
use crate::keys::IkeSuite;
use crate::message::{Proposal, ProtocolId, Transform, TransformType};

/// Why a proposal string was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProposalError {
    #[error("proposal '{proposal}': unknown algorithm '{token}'")]
    Unknown { proposal: String, token: String },
    #[error("proposal '{proposal}': '{token}' is deprecated ({rfc}) and refused")]
    Deprecated { proposal: String, token: String, rfc: &'static str },
    #[error("proposal '{proposal}': {why}")]
    Incomplete { proposal: String, why: &'static str },
    #[error("ESP proposal '{proposal}': {combo} is not implemented by the data plane")]
    NotInDataPlane { proposal: String, combo: String },
}

/// One algorithm name of the proposal syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Encr(EncrAlg),
    Integ(IntegAlg),
    Prf(PrfAlg),
    Dh(DhGroup),
    Esn(bool),
}

fn token(t: &str) -> Result<Token, Result<&'static str, ()>> {
    use Token::*;
    Ok(match t {
        "aes128" => Encr(EncrAlg::AesCbc { key_bits: 128 }),
        "aes192" => Encr(EncrAlg::AesCbc { key_bits: 192 }),
        "aes256" => Encr(EncrAlg::AesCbc { key_bits: 256 }),
        "aes128gcm16" | "aes128gcm128" => Encr(EncrAlg::AesGcm16 { key_bits: 128 }),
        "aes192gcm16" | "aes192gcm128" => Encr(EncrAlg::AesGcm16 { key_bits: 192 }),
        "aes256gcm16" | "aes256gcm128" => Encr(EncrAlg::AesGcm16 { key_bits: 256 }),
        "chacha20poly1305" => Encr(EncrAlg::ChaCha20Poly1305),
        "sha1" | "sha" => Integ(IntegAlg::HmacSha1_96),
        "sha256" | "sha2_256" => Integ(IntegAlg::HmacSha256_128),
        "sha384" | "sha2_384" => Integ(IntegAlg::HmacSha384_192),
        "sha512" | "sha2_512" => Integ(IntegAlg::HmacSha512_256),
        "prfsha1" => Prf(PrfAlg::HmacSha1),
        "prfsha256" => Prf(PrfAlg::HmacSha256),
        "prfsha384" => Prf(PrfAlg::HmacSha384),
        "prfsha512" => Prf(PrfAlg::HmacSha512),
        "modp2048" => Dh(DhGroup::Modp2048),
        "modp3072" => Dh(DhGroup::Modp3072),
        "modp4096" => Dh(DhGroup::Modp4096),
        "ecp256" => Dh(DhGroup::Ecp256),
        "ecp384" => Dh(DhGroup::Ecp384),
        "ecp521" => Dh(DhGroup::Ecp521),
        "curve25519" | "x25519" => Dh(DhGroup::Curve25519),
        "esn" => Esn(true),
        "noesn" => Esn(false),
        "3des" | "des" | "md5" | "prfmd5" | "modp768" | "modp1024" | "modp1536" | "aes128gcm8" | "aes256gcm8"
        | "aes128gcm12" | "aes256gcm12" => return Err(Ok("RFC 8247 and RFC 8221")),
        _ => return Err(Err(())),
    })
}

fn tokens(s: &str) -> Result<Vec<Token>, ProposalError> {
    let proposal = s.to_string();
    let s = s.trim().to_ascii_lowercase();
    if s.is_empty() {
        return Err(ProposalError::Incomplete { proposal, why: "empty" });
    }
    s.split('-')
        .map(|t| {
            token(t).map_err(|e| match e {
                Ok(rfc) => ProposalError::Deprecated { proposal: proposal.clone(), token: t.to_string(), rfc },
                Err(()) => ProposalError::Unknown { proposal: proposal.clone(), token: t.to_string() },
            })
        })
        .collect()
}

fn push<T: PartialEq>(v: &mut Vec<T>, x: T) {
    if !v.contains(&x) {
        v.push(x);
    }
}

fn is_aead(e: EncrAlg) -> bool {
    !matches!(e, EncrAlg::AesCbc { .. })
}

/// The PRF strongSwan pairs with an integrity algorithm when a proposal names none.
fn prf_for(i: IntegAlg) -> PrfAlg {
    match i {
        IntegAlg::HmacSha1_96 => PrfAlg::HmacSha1,
        IntegAlg::HmacSha256_128 => PrfAlg::HmacSha256,
        IntegAlg::HmacSha384_192 => PrfAlg::HmacSha384,
        IntegAlg::HmacSha512_256 => PrfAlg::HmacSha512,
    }
}

// ---- IANA transform IDs (RFC 7296 §3.3.2 and the IKEv2 registries)

fn encr_ids(e: EncrAlg) -> (u16, Option<u16>) {
    match e {
        EncrAlg::AesCbc { key_bits } => (12, Some(key_bits)),
        EncrAlg::AesGcm16 { key_bits } => (20, Some(key_bits)),
        EncrAlg::ChaCha20Poly1305 => (28, None),
    }
}

fn prf_id(p: PrfAlg) -> u16 {
    match p {
        PrfAlg::HmacSha1 => 2,
        PrfAlg::HmacSha256 => 5,
        PrfAlg::HmacSha384 => 6,
        PrfAlg::HmacSha512 => 7,
    }
}

fn integ_id(i: IntegAlg) -> u16 {
    match i {
        IntegAlg::HmacSha1_96 => 2,
        IntegAlg::HmacSha256_128 => 12,
        IntegAlg::HmacSha384_192 => 13,
        IntegAlg::HmacSha512_256 => 14,
    }
}

/// The IANA number of a DH group (also the KE payload's group field).
pub fn dh_id(g: DhGroup) -> u16 {
    match g {
        DhGroup::Modp2048 => 14,
        DhGroup::Modp3072 => 15,
        DhGroup::Modp4096 => 16,
        DhGroup::Ecp256 => 19,
        DhGroup::Ecp384 => 20,
        DhGroup::Ecp521 => 21,
        DhGroup::Curve25519 => 31,
    }
}

/// The group with this IANA number, if implemented.
pub fn dh_from_id(id: u16) -> Option<DhGroup> {
    DhGroup::ALL.into_iter().find(|g| dh_id(*g) == id)
}

fn tf(kind: TransformType, id: u16, key_length: Option<u16>) -> Transform {
    Transform { kind, id, key_length, unknown_attributes: false }
}

fn encr_tf(e: EncrAlg) -> Transform {
    let (id, k) = encr_ids(e);
    tf(TransformType::ENCR, id, k)
}

/// The usable transforms of a peer's proposal, by type (those with unknown attributes are
/// left out, RFC 7296 §3.3.6).
struct Offered<'a>(&'a Proposal);

impl Offered<'_> {
    fn of(&self, kind: TransformType) -> impl Iterator<Item = &Transform> {
        self.0.transforms.iter().filter(move |t| t.kind == kind && !t.unknown_attributes)
    }
    fn has_encr(&self, e: EncrAlg) -> bool {
        let (id, k) = encr_ids(e);
        self.of(TransformType::ENCR).any(|t| t.id == id && t.key_length == k)
    }
    fn has(&self, kind: TransformType, id: u16) -> bool {
        self.of(kind).any(|t| t.id == id)
    }
    fn none_of(&self, kind: TransformType) -> bool {
        // An INTEG transform "NONE" (id 0) counts as none.
        self.of(kind).all(|t| t.id == 0)
    }
}

/// An IKE SA proposal: the acceptable algorithms of each type, in order of preference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IkeProposal {
    pub encr: Vec<EncrAlg>,
    pub prf: Vec<PrfAlg>,
    /// Empty for AEAD proposals.
    pub integ: Vec<IntegAlg>,
    pub dh: Vec<DhGroup>,
}

impl IkeProposal {
    /// Parses one proposal string; a string that names AEAD and non-AEAD ciphers gives two
    /// proposals (RFC 7296 §3.3: they cannot share one).
    pub fn parse(s: &str) -> Result<Vec<IkeProposal>, ProposalError> {
        let (mut aead, mut cbc, mut prf, mut integ, mut dh) = (vec![], vec![], vec![], vec![], vec![]);
        for t in tokens(s)? {
            match t {
                Token::Encr(e) if is_aead(e) => push(&mut aead, e),
                Token::Encr(e) => push(&mut cbc, e),
                Token::Prf(p) => push(&mut prf, p),
                Token::Integ(i) => push(&mut integ, i),
                Token::Dh(g) => push(&mut dh, g),
                Token::Esn(_) => {
                    return Err(ProposalError::Incomplete { proposal: s.into(), why: "ESN is an ESP option" })
                }
            }
        }
        let bad = |why| Err(ProposalError::Incomplete { proposal: s.into(), why });
        if aead.is_empty() && cbc.is_empty() {
            return bad("no encryption algorithm");
        }
        if dh.is_empty() {
            return bad("no Diffie-Hellman group");
        }
        if !cbc.is_empty() && integ.is_empty() {
            return bad("AES-CBC needs an integrity algorithm (e.g. sha256)");
        }
        if prf.is_empty() {
            if integ.is_empty() {
                return bad("an AEAD proposal needs a PRF (e.g. prfsha256)");
            }
            prf = integ.iter().map(|i| prf_for(*i)).collect();
            prf.dedup();
        }
        let mut v = Vec::new();
        if !aead.is_empty() {
            v.push(IkeProposal { encr: aead, prf: prf.clone(), integ: vec![], dh: dh.clone() });
        }
        if !cbc.is_empty() {
            v.push(IkeProposal { encr: cbc, prf, integ, dh });
        }
        Ok(v)
    }

    /// The SA payload proposal offering all of it (`spi`: empty in IKE_SA_INIT, our new SPI
    /// when rekeying).
    pub fn to_wire(&self, number: u8, spi: &[u8]) -> Proposal {
        let mut t: Vec<Transform> = self.encr.iter().map(|e| encr_tf(*e)).collect();
        t.extend(self.prf.iter().map(|p| tf(TransformType::PRF, prf_id(*p), None)));
        t.extend(self.integ.iter().map(|i| tf(TransformType::INTEG, integ_id(*i), None)));
        t.extend(self.dh.iter().map(|g| tf(TransformType::DH, dh_id(*g), None)));
        Proposal { number, protocol: ProtocolId::IKE, spi: spi.to_vec(), transforms: t }
    }

    /// Our most preferred combination within a peer's proposal, if any.
    fn pick(&self, p: &Proposal) -> Option<IkeSuite> {
        if p.protocol != ProtocolId::IKE {
            return None;
        }
        let o = Offered(p);
        let encr = *self.encr.iter().find(|e| o.has_encr(**e))?;
        let prf = *self.prf.iter().find(|x| o.has(TransformType::PRF, prf_id(**x)))?;
        let integ = if is_aead(encr) {
            if !o.none_of(TransformType::INTEG) {
                return None;
            }
            None
        } else {
            Some(*self.integ.iter().find(|i| o.has(TransformType::INTEG, integ_id(**i)))?)
        };
        let dh = *self.dh.iter().find(|g| o.has(TransformType::DH, dh_id(**g)))?;
        Some(IkeSuite { encr, prf, integ, dh })
    }
}

/// The single proposal a responder answers with.
pub fn ike_reply(number: u8, spi: &[u8], s: &IkeSuite) -> Proposal {
    let mut t = vec![encr_tf(s.encr), tf(TransformType::PRF, prf_id(s.prf), None)];
    if let Some(i) = s.integ {
        t.push(tf(TransformType::INTEG, integ_id(i), None));
    }
    t.push(tf(TransformType::DH, dh_id(s.dh), None));
    Proposal { number, protocol: ProtocolId::IKE, spi: spi.to_vec(), transforms: t }
}

/// Responder: the first of our proposals (in our order) that one of the peer's proposals
/// allows, with the number of that peer proposal.
pub fn select_ike(ours: &[IkeProposal], theirs: &[Proposal]) -> Option<(IkeSuite, u8)> {
    ours.iter().find_map(|o| theirs.iter().find_map(|p| o.pick(p).map(|s| (s, p.number))))
}

/// Initiator: the suite of the responder's answer, if it is exactly one of ours.
pub fn accept_ike(ours: &[IkeProposal], reply: &[Proposal]) -> Option<IkeSuite> {
    let [p] = reply else { return None };
    let s = ours.iter().find_map(|o| o.pick(p))?;
    // One transform of each type: the responder chose, it does not offer.
    let n = |k| p.transforms.iter().filter(|t| t.kind == k).count();
    let one = n(TransformType::ENCR) == 1 && n(TransformType::PRF) == 1 && n(TransformType::DH) == 1;
    (one && n(TransformType::INTEG) == usize::from(s.integ.is_some())).then_some(s)
}

/// An ESP proposal (a CHILD SA's): the data plane's transforms acceptable, the DH groups
/// for PFS when a CHILD SA is created or rekeyed with CREATE_CHILD_SA (none: no PFS), and the
/// extended sequence number choices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EspProposal {
    pub transforms: Vec<EspTransform>,
    pub dh: Vec<DhGroup>,
    /// `[false]` unless the proposal says `esn` (`[true]`) or both (`esn-noesn`).
    pub esn: Vec<bool>,
}

/// What was agreed for a CHILD SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EspChoice {
    pub transform: EspTransform,
    pub esn: bool,
    /// The PFS group, when the exchange carries KE payloads.
    pub dh: Option<DhGroup>,
    /// The peer's SPI (its inbound SA: our outbound).
    pub peer_spi: u32,
    /// The peer's proposal number.
    pub number: u8,
}

impl EspProposal {
    /// Parses an ESP proposal string (`aes128gcm16`, `aes128-sha1`, `aes128gcm16-x25519`,
    /// `aes256-sha256-esn`, several encryption or integrity algorithms allowed).
    pub fn parse(s: &str) -> Result<EspProposal, ProposalError> {
        let (mut encr, mut integ, mut dh, mut esn) = (vec![], vec![], vec![], vec![]);
        for t in tokens(s)? {
            match t {
                Token::Encr(e) => push(&mut encr, e),
                Token::Integ(i) => push(&mut integ, i),
                Token::Dh(g) => push(&mut dh, g),
                Token::Esn(b) => push(&mut esn, b),
                Token::Prf(_) => {
                    return Err(ProposalError::Incomplete { proposal: s.into(), why: "a PRF is an IKE option" })
                }
            }
        }
        if encr.is_empty() {
            return Err(ProposalError::Incomplete { proposal: s.into(), why: "no encryption algorithm" });
        }
        let mut transforms = Vec::new();
        for e in encr {
            let (id, k) = encr_ids(e);
            let k = k.unwrap_or(0);
            if is_aead(e) {
                let t = EspTransform::from_ikev2_ids(id, k, 0)
                    .ok_or_else(|| ProposalError::NotInDataPlane { proposal: s.into(), combo: format!("{e:?}") })?;
                push(&mut transforms, t);
                continue;
            }
            if integ.is_empty() {
                return Err(ProposalError::Incomplete {
                    proposal: s.into(),
                    why: "AES-CBC needs an integrity algorithm (e.g. sha256)",
                });
            }
            for i in &integ {
                let t = EspTransform::from_ikev2_ids(id, k, integ_id(*i)).ok_or_else(|| {
                    ProposalError::NotInDataPlane { proposal: s.into(), combo: format!("{e:?} with {i:?}") }
                })?;
                push(&mut transforms, t);
            }
        }
        if esn.is_empty() {
            esn.push(false);
        }
        Ok(EspProposal { transforms, dh, esn })
    }

    /// The SA payload proposals offering it with our inbound `spi` (AEAD and non-AEAD
    /// transforms in separate proposals, RFC 7296 §3.3); `with_dh` adds the PFS groups (a
    /// CREATE_CHILD_SA exchange; in IKE_AUTH they are left out).
    pub fn to_wire(&self, first_number: u8, spi: u32, with_dh: bool) -> Vec<Proposal> {
        let mut out = Vec::new();
        for aead in [true, false] {
            let ts: Vec<EspTransform> = self.transforms.iter().copied().filter(|t| t.is_aead() == aead).collect();
            if ts.is_empty() {
                continue;
            }
            let mut t: Vec<Transform> = Vec::new();
            for x in &ts {
                let (e, k, _) = x.ikev2_ids();
                let tr = tf(TransformType::ENCR, e, (k != 0).then_some(k));
                if !t.contains(&tr) {
                    t.push(tr);
                }
            }
            for x in &ts {
                let (_, _, i) = x.ikev2_ids();
                let tr = tf(TransformType::INTEG, i, None);
                if i != 0 && !t.contains(&tr) {
                    t.push(tr);
                }
            }
            if with_dh {
                t.extend(self.dh.iter().map(|g| tf(TransformType::DH, dh_id(*g), None)));
            }
            t.extend(self.esn.iter().map(|e| tf(TransformType::ESN, u16::from(*e), None)));
            let number = first_number + out.len() as u8;
            out.push(Proposal { number, protocol: ProtocolId::ESP, spi: spi.to_be_bytes().to_vec(), transforms: t });
        }
        out
    }

    fn pick(&self, p: &Proposal, use_dh: bool) -> Option<EspChoice> {
        if p.protocol != ProtocolId::ESP {
            return None;
        }
        let peer_spi = u32::from_be_bytes(p.spi.as_slice().try_into().ok()?);
        let o = Offered(p);
        let transform = *self.transforms.iter().find(|t| {
            let (e, k, i) = t.ikev2_ids();
            o.of(TransformType::ENCR).any(|x| x.id == e && x.key_length == (k != 0).then_some(k))
                && if i == 0 { o.none_of(TransformType::INTEG) } else { o.has(TransformType::INTEG, i) }
        })?;
        // No ESN transform offered means no ESN (RFC 7296 §3.3.2 makes it mandatory for ESP,
        // but some peers leave it out).
        let esn = if o.of(TransformType::ESN).next().is_none() {
            self.esn.contains(&false).then_some(false)?
        } else {
            *self.esn.iter().find(|e| o.has(TransformType::ESN, u16::from(**e)))?
        };
        let dh = if use_dh && (!self.dh.is_empty() || o.of(TransformType::DH).any(|t| t.id != 0)) {
            // PFS: both sides must agree on a group (none offered by us: refuse theirs).
            Some(*self.dh.iter().find(|g| o.has(TransformType::DH, dh_id(**g)))?)
        } else {
            None
        };
        Some(EspChoice { transform, esn, dh, peer_spi, number: p.number })
    }
}

/// Responder: the first of our ESP proposals a peer proposal allows. `use_dh`: the exchange
/// is CREATE_CHILD_SA (PFS groups are negotiated); in IKE_AUTH they are ignored.
pub fn select_esp(ours: &[EspProposal], theirs: &[Proposal], use_dh: bool) -> Option<EspChoice> {
    ours.iter().find_map(|o| theirs.iter().find_map(|p| o.pick(p, use_dh)))
}

/// Initiator: the responder's single ESP proposal, if acceptable.
pub fn accept_esp(ours: &[EspProposal], reply: &[Proposal], use_dh: bool) -> Option<EspChoice> {
    let [p] = reply else { return None };
    ours.iter().find_map(|o| o.pick(p, use_dh))
}

/// The single proposal a responder answers with for a CHILD SA, carrying our inbound SPI.
pub fn esp_reply(c: &EspChoice, our_spi: u32) -> Proposal {
    let (e, k, i) = c.transform.ikev2_ids();
    let mut t = vec![tf(TransformType::ENCR, e, (k != 0).then_some(k))];
    if i != 0 {
        t.push(tf(TransformType::INTEG, i, None));
    }
    if let Some(g) = c.dh {
        t.push(tf(TransformType::DH, dh_id(g), None));
    }
    t.push(tf(TransformType::ESN, u16::from(c.esn), None));
    Proposal { number: c.number, protocol: ProtocolId::ESP, spi: our_spi.to_be_bytes().to_vec(), transforms: t }
}

impl fmt::Display for IkeProposal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}/{:?}/{:?}/{:?}", self.encr, self.prf, self.integ, self.dh)
    }
}
