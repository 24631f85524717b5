//! IKEv2 key derivation ([RFC 7296 §2.13–2.18](https://www.rfc-editor.org/rfc/rfc7296#section-2.13)):
//! prf+, SKEYSEED (new and rekeyed), the seven IKE SA keys and CHILD_SA KEYMAT.
//!
//! ```text
//! SKEYSEED = prf(Ni | Nr, g^ir)                                   (§2.14)
//! {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr}
//!          = prf+ (SKEYSEED, Ni | Nr | SPIi | SPIr)                (§2.14)
//! KEYMAT   = prf+(SK_d, Ni | Nr)                                   (§2.17)
//! KEYMAT   = prf+(SK_d, g^ir (new) | Ni | Nr)                      (§2.17, with a KE)
//! SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr)                 (§2.18, IKE SA rekey)
//! ```
//!
//! Everything secret comes back in [`Zeroizing`] buffers, and no `Debug` prints key bytes.
//! The PRFs here are HMACs, which take a key of any length; the special case of §2.14 for
//! fixed-key PRFs (AES-XCBC, AES-CMAC: half of Ni and half of Nr) does not arise.

use core::fmt;

use esprit_esp::Transform;
use zeroize::Zeroizing;

use crate::crypto::{CryptoProvider, DhGroup, EncrAlg, IntegAlg, PrfAlg};

/// prf+ counts its iterations in one octet (RFC 7296 §2.13).
pub const PRF_PLUS_MAX_BLOCKS: usize = 255;

/// Why keys could not be derived.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// prf+ was asked for more than 255 blocks of its PRF's output.
    #[error(
        "prf+ with {prf:?} can give at most {max} bytes (255 blocks of {block}, RFC 7296 §2.13); {requested} were asked for"
    )]
    PrfPlusTooLong { prf: PrfAlg, requested: usize, max: usize, block: usize },
    /// The suite pairs an AEAD with an integrity algorithm, or a non-AEAD cipher without one.
    #[error("IKE suite with {encr:?}: {why}")]
    InconsistentSuite { encr: EncrAlg, why: &'static str },
    /// KEYMAT of the wrong length was given for a CHILD_SA's transform.
    #[error("CHILD_SA KEYMAT for {transform}: {len} bytes, expected {expected}")]
    KeymatLength { transform: Transform, len: usize, expected: usize },
}

/// prf+ ([RFC 7296 §2.13](https://www.rfc-editor.org/rfc/rfc7296#section-2.13)): the first
/// `len` bytes of T1 | T2 | T3 | …
///
/// ```text
/// T1 = prf (K, S | 0x01)
/// T2 = prf (K, T1 | S | 0x02)
/// T3 = prf (K, T2 | S | 0x03)
/// ```
///
/// The counter is one octet, so at most 255 blocks can be made: a longer request is
/// [`KeyError::PrfPlusTooLong`]. A request for 0 bytes gives an empty buffer.
pub fn prf_plus(
    p: &dyn CryptoProvider,
    prf: PrfAlg,
    key: &[u8],
    seed: &[u8],
    len: usize,
) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let block = prf.output_len();
    let max = PRF_PLUS_MAX_BLOCKS * block;
    if len > max {
        return Err(KeyError::PrfPlusTooLong { prf, requested: len, max, block });
    }
    let mut out = Zeroizing::new(Vec::with_capacity(len.next_multiple_of(block)));
    // T0 is empty, so that T1 = prf(K, S | 0x01) falls out of the same expression.
    let mut t: Zeroizing<Vec<u8>> = Zeroizing::new(Vec::new());
    let mut counter: u8 = 1;
    while out.len() < len {
        // Tn = prf(K, Tn-1 | S | n)
        t = Zeroizing::new(p.prf(prf, key, &[t.as_slice(), seed, &[counter]]));
        out.extend_from_slice(&t);
        // At most 255 rounds run (len ≤ 255 × block); the counter wraps only after the last.
        counter = counter.wrapping_add(1);
    }
    out.truncate(len);
    Ok(out)
}

/// SKEYSEED = prf(Ni | Nr, g^ir)
/// ([RFC 7296 §2.14](https://www.rfc-editor.org/rfc/rfc7296#section-2.14)), with the nonces
/// whole as the key (HMAC PRFs), and g^ir as the provider's `agree` gives it.
pub fn skeyseed(p: &dyn CryptoProvider, prf: PrfAlg, ni: &[u8], nr: &[u8], g_ir: &[u8]) -> Zeroizing<Vec<u8>> {
    let key = Zeroizing::new([ni, nr].concat());
    Zeroizing::new(p.prf(prf, &key, &[g_ir]))
}

/// SKEYSEED of a rekeyed IKE SA
/// ([RFC 7296 §2.18](https://www.rfc-editor.org/rfc/rfc7296#section-2.18)):
///
/// ```text
/// SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr)
/// ```
///
/// `old_prf` and `old_sk_d` are the PRF and SK_d of the IKE SA being rekeyed: the new SA's
/// PRF, which may differ, is used only from prf+ on. Ni and Nr are the nonces of the
/// CREATE_CHILD_SA exchange.
pub fn skeyseed_rekey(
    p: &dyn CryptoProvider,
    old_prf: PrfAlg,
    old_sk_d: &[u8],
    g_ir: &[u8],
    ni: &[u8],
    nr: &[u8],
) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(p.prf(old_prf, old_sk_d, &[g_ir, ni, nr]))
}

/// The transforms of an IKE SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IkeSuite {
    pub encr: EncrAlg,
    pub prf: PrfAlg,
    /// `None` for AEAD ciphers (RFC 5282 §8), required otherwise.
    pub integ: Option<IntegAlg>,
    pub dh: DhGroup,
}

impl IkeSuite {
    /// Bytes of SK_ei and SK_er: the cipher key, and for AEADs the 4-byte salt after it
    /// ([RFC 5282 §7.1](https://www.rfc-editor.org/rfc/rfc5282#section-7.1),
    /// [RFC 7634 §3](https://www.rfc-editor.org/rfc/rfc7634#section-3)).
    pub const fn encr_key_len(&self) -> usize {
        self.encr.keymat_len()
    }

    /// Bytes of SK_ai and SK_ar: 0 without an integrity algorithm.
    pub const fn integ_key_len(&self) -> usize {
        match self.integ {
            Some(i) => i.key_len(),
            None => 0,
        }
    }

    /// Bytes of SK_d, SK_pi and SK_pr: the PRF's preferred key length.
    pub const fn prf_key_len(&self) -> usize {
        self.prf.key_len()
    }

    /// Bytes of prf+ output the seven IKE SA keys take.
    pub const fn keymat_len(&self) -> usize {
        3 * self.prf_key_len() + 2 * self.integ_key_len() + 2 * self.encr_key_len()
    }

    /// Checks that an AEAD comes without an integrity algorithm and any other cipher with one
    /// ([RFC 5282 §8](https://www.rfc-editor.org/rfc/rfc5282#section-8),
    /// [RFC 7296 §3.3.3](https://www.rfc-editor.org/rfc/rfc7296#section-3.3.3)).
    pub fn check(&self) -> Result<(), KeyError> {
        match (self.encr.is_aead(), self.integ) {
            (true, Some(_)) => Err(KeyError::InconsistentSuite {
                encr: self.encr,
                why: "an AEAD cipher takes no integrity algorithm (RFC 5282 §8)",
            }),
            (false, None) => Err(KeyError::InconsistentSuite {
                encr: self.encr,
                why: "a non-AEAD cipher needs an integrity algorithm (RFC 7296 §3.3.3)",
            }),
            _ => Ok(()),
        }
    }
}

/// The seven secrets of an IKE SA
/// ([RFC 7296 §2.14](https://www.rfc-editor.org/rfc/rfc7296#section-2.14)). `_i` keys protect
/// what the original initiator sends, `_r` keys what the responder sends.
pub struct IkeKeys {
    /// Derives CHILD_SA keys and the next IKE SA's SKEYSEED.
    pub sk_d: Zeroizing<Vec<u8>>,
    /// Integrity keys; empty for AEAD suites.
    pub sk_ai: Zeroizing<Vec<u8>>,
    pub sk_ar: Zeroizing<Vec<u8>>,
    /// Encryption keys, with the 4-byte salt at the end for AEAD suites.
    pub sk_ei: Zeroizing<Vec<u8>>,
    pub sk_er: Zeroizing<Vec<u8>>,
    /// Keys for the AUTH payloads' MACed IDs (RFC 7296 §2.15).
    pub sk_pi: Zeroizing<Vec<u8>>,
    pub sk_pr: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for IkeKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Lengths only: never key bytes.
        f.debug_struct("IkeKeys")
            .field("sk_d_len", &self.sk_d.len())
            .field("sk_ai_len", &self.sk_ai.len())
            .field("sk_ar_len", &self.sk_ar.len())
            .field("sk_ei_len", &self.sk_ei.len())
            .field("sk_er_len", &self.sk_er.len())
            .field("sk_pi_len", &self.sk_pi.len())
            .field("sk_pr_len", &self.sk_pr.len())
            .finish()
    }
}

/// The IKE SA's keys from SKEYSEED
/// ([RFC 7296 §2.14](https://www.rfc-editor.org/rfc/rfc7296#section-2.14)):
///
/// ```text
/// {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr}
///                 = prf+ (SKEYSEED, Ni | Nr | SPIi | SPIr)
/// ```
///
/// taken in that order with the lengths of [`IkeSuite`]; the SPIs are in network byte order.
/// `skeyseed` comes from [`skeyseed`] or, on a rekey, [`skeyseed_rekey`] (whose SPIs are the
/// new SA's).
pub fn derive_ike_keys(
    p: &dyn CryptoProvider,
    suite: &IkeSuite,
    skeyseed: &[u8],
    ni: &[u8],
    nr: &[u8],
    spi_i: u64,
    spi_r: u64,
) -> Result<IkeKeys, KeyError> {
    suite.check()?;
    let seed = [ni, nr, &spi_i.to_be_bytes(), &spi_r.to_be_bytes()].concat();
    let keymat = prf_plus(p, suite.prf, skeyseed, &seed, suite.keymat_len())?;
    let mut rest: &[u8] = &keymat;
    let mut take = |n: usize| {
        let (k, r) = rest.split_at(n);
        rest = r;
        Zeroizing::new(k.to_vec())
    };
    let (prf_len, integ_len, encr_len) = (suite.prf_key_len(), suite.integ_key_len(), suite.encr_key_len());
    Ok(IkeKeys {
        sk_d: take(prf_len),
        sk_ai: take(integ_len),
        sk_ar: take(integ_len),
        sk_ei: take(encr_len),
        sk_er: take(encr_len),
        sk_pi: take(prf_len),
        sk_pr: take(prf_len),
    })
}

/// A CHILD_SA's KEYMAT ([RFC 7296 §2.17](https://www.rfc-editor.org/rfc/rfc7296#section-2.17)):
///
/// ```text
/// KEYMAT = prf+(SK_d, Ni | Nr)
/// KEYMAT = prf+(SK_d, g^ir (new) | Ni | Nr)      with a KE payload in CREATE_CHILD_SA
/// ```
///
/// Ni and Nr are those of the exchange that creates the CHILD_SA (IKE_SA_INIT's for the first
/// one). `len` is usually [`child_keymat_len`].
pub fn child_keymat(
    p: &dyn CryptoProvider,
    prf: PrfAlg,
    sk_d: &[u8],
    g_ir: Option<&[u8]>,
    ni: &[u8],
    nr: &[u8],
    len: usize,
) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let seed = Zeroizing::new([g_ir.unwrap_or_default(), ni, nr].concat());
    prf_plus(p, prf, sk_d, &seed, len)
}

/// The four keys of a CHILD_SA pair, as [`split_child_keymat`] takes them from KEYMAT.
/// `_i` keys protect initiator-to-responder traffic, `_r` keys the other direction.
pub struct ChildKeys {
    /// Encryption key, with the 4-byte salt at the end for GCM and ChaCha20-Poly1305.
    pub encr_i: Zeroizing<Vec<u8>>,
    /// Integrity key; empty for AEADs.
    pub integ_i: Zeroizing<Vec<u8>>,
    pub encr_r: Zeroizing<Vec<u8>>,
    pub integ_r: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for ChildKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Lengths only: never key bytes.
        f.debug_struct("ChildKeys")
            .field("encr_i_len", &self.encr_i.len())
            .field("integ_i_len", &self.integ_i.len())
            .field("encr_r_len", &self.encr_r.len())
            .field("integ_r_len", &self.integ_r.len())
            .finish()
    }
}

/// Bytes of KEYMAT an ESP CHILD_SA with transform `t` takes: both directions' encryption
/// keys (with salt for AEADs, RFC 4106 §8.1, RFC 7634 §2) and integrity keys.
pub const fn child_keymat_len(t: Transform) -> usize {
    2 * (t.enc_key_len() + t.int_key_len())
}

/// Splits CHILD_SA KEYMAT for an ESP transform
/// ([RFC 7296 §2.17](https://www.rfc-editor.org/rfc/rfc7296#section-2.17)): "All keys for
/// SAs carrying data from the initiator to the responder are taken before SAs going from the
/// responder to the initiator", and "the encryption key (if any) MUST be taken from the first
/// bits and the integrity key (if any) MUST be taken from the remaining bits":
///
/// ```text
/// KEYMAT = encr_i | integ_i | encr_r | integ_r
/// ```
///
/// # Panics
///
/// If `keymat` is not exactly [`child_keymat_len`]`(t)` bytes: KEYMAT of another length can
/// only come from a caller that derived it for something else, a bug, and splitting it would
/// install wrong keys silently. [`try_split_child_keymat`] returns the error instead.
pub fn split_child_keymat(t: Transform, keymat: &[u8]) -> ChildKeys {
    match try_split_child_keymat(t, keymat) {
        Ok(keys) => keys,
        Err(e) => panic!("{e}: derive it with child_keymat_len"),
    }
}

/// [`split_child_keymat`], giving [`KeyError::KeymatLength`] for KEYMAT of the wrong length.
pub fn try_split_child_keymat(t: Transform, keymat: &[u8]) -> Result<ChildKeys, KeyError> {
    let expected = child_keymat_len(t);
    if keymat.len() != expected {
        return Err(KeyError::KeymatLength { transform: t, len: keymat.len(), expected });
    }
    let (enc, int) = (t.enc_key_len(), t.int_key_len());
    let (initiator, responder) = keymat.split_at(enc + int);
    let (encr_i, integ_i) = initiator.split_at(enc);
    let (encr_r, integ_r) = responder.split_at(enc);
    Ok(ChildKeys {
        encr_i: Zeroizing::new(encr_i.to_vec()),
        integ_i: Zeroizing::new(integ_i.to_vec()),
        encr_r: Zeroizing::new(encr_r.to_vec()),
        integ_r: Zeroizing::new(integ_r.to_vec()),
    })
}
