//! Crypto behind a provider trait.
//!
//! A [`CryptoProvider`] turns a transform and its keys into an [`EspCipher`]: the expanded,
//! ready-to-use key state of one direction of one SA. An `EspCipher` works on bursts of
//! [`CryptoOp`]s, each one whole ESP packet laid out in place:
//!
//! ```text
//! esp: | SPI | seq low | IV (iv_len) | payload ‖ padding ‖ pad len ‖ next hdr | ICV (icv_len) |
//!       0     4         8             8 + iv_len                                len - icv_len
//! ```
//!
//! * `seal` writes the IV (derived from the sequence number: RFC 4106 §3.1 for GCM, an
//!   unpredictable encryption of it for CBC, RFC 3602 §3), encrypts the payload and trailer
//!   in place and writes the ICV;
//! * `open` verifies the ICV (in constant time) and, only if it verifies, decrypts in place.
//!
//! The AAD of the AEADs is SPI ‖ sequence number, with the high 32 bits in between when ESN
//! is on (RFC 4106 §5, RFC 7634 §2.1); the HMAC of CBC transforms covers header ‖ IV ‖
//! ciphertext ‖ high 32 bits with ESN (RFC 4303 §3.3.2.1).
//!
//! The same test suite runs against every provider (`tests/providers.rs`); the benches in
//! `benches/` measure them and the order of [`providers`] follows those figures.

use core::any::Any;
use core::fmt::Debug;

use zeroize::Zeroizing;

use crate::proposal::{EspLayout, Transform};
use crate::MAX_BURST;

#[cfg(feature = "aws-lc")]
pub mod awslc;
#[cfg(feature = "ipsec-mb")]
pub mod ipsecmb;
pub mod rustcrypto;

/// The outcome of one crypto operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpStatus {
    /// Not processed yet.
    Pending,
    /// Sealed, or verified and decrypted.
    Ok,
    /// The ICV did not verify. The body is left as received, or zeroed where the provider
    /// decrypts before it verifies: it never holds unauthenticated plaintext.
    AuthFailed,
    /// The packet is too short for the transform, or its ciphertext is not a whole number of
    /// blocks.
    BadLength,
}

/// One ESP packet to seal or open.
#[derive(Debug)]
pub struct CryptoOp<'a> {
    /// From the ESP header to the end of the ICV.
    pub esp: &'a mut [u8],
    /// The full (64-bit with ESN) sequence number of this packet.
    pub seq: u64,
    pub status: OpStatus,
}

impl<'a> CryptoOp<'a> {
    pub fn new(esp: &'a mut [u8], seq: u64) -> Self {
        CryptoOp { esp, seq, status: OpStatus::Pending }
    }
}

/// The keyed crypto state of one direction of one SA.
pub trait EspCipher: Send + Sync + Debug {
    fn transform(&self) -> Transform;
    /// Name of the provider that made this cipher.
    fn provider(&self) -> &'static str;
    /// Seals each op: writes IV and ICV, encrypts in place. Sets each `status`.
    fn seal(&self, ops: &mut [CryptoOp<'_>]);
    /// Opens each op: verifies the ICV, then decrypts in place. Sets each `status`.
    fn open(&self, ops: &mut [CryptoOp<'_>]);
    /// This cipher as `Any`: a provider recognises its own ciphers in a burst that mixes SAs
    /// ([`seal_mixed`], [`open_mixed`]).
    fn as_any(&self) -> &dyn Any;
}

/// Seals a burst whose ops belong to different SAs: `ops[i]` with `ciphers[i]`.
///
/// With many SAs a burst holds one or two packets per SA; handing each SA's ops to its
/// cipher separately would run the crypto a packet at a time. Instead the providers that
/// can take ops of different keys in one submission get all of theirs at once
/// (intel-ipsec-mb's multi-buffer job API fills its SIMD lanes with the whole burst, as it
/// does for one SA); the others get each run of consecutive ops of one cipher.
pub fn seal_mixed(ciphers: &[&dyn EspCipher], ops: &mut [CryptoOp<'_>]) {
    run_mixed(ciphers, ops, true);
}

/// Opens a burst whose ops belong to different SAs: `ops[i]` with `ciphers[i]`. See
/// [`seal_mixed`].
pub fn open_mixed(ciphers: &[&dyn EspCipher], ops: &mut [CryptoOp<'_>]) {
    run_mixed(ciphers, ops, false);
}

fn run_mixed(ciphers: &[&dyn EspCipher], ops: &mut [CryptoOp<'_>], seal: bool) {
    let n = ciphers.len().min(ops.len());
    // Ops without a cipher (a caller's mistake) are left as they are: Pending.
    let (ciphers, ops) = (&ciphers[..n], &mut ops[..n]);
    for (ciphers, ops) in ciphers.chunks(MAX_BURST).zip(ops.chunks_mut(MAX_BURST)) {
        // One SA (the common case with few clients): its cipher takes the whole burst.
        if let Some(&c) = ciphers.first() {
            if ciphers.iter().all(|&o| same_cipher(o, c)) {
                if seal {
                    c.seal(ops);
                } else {
                    c.open(ops);
                }
                continue;
            }
        }
        // Ops the multi-buffer provider has run; without it, none.
        #[cfg_attr(not(feature = "ipsec-mb"), allow(unused_mut))]
        let mut done = [false; MAX_BURST];
        #[cfg(feature = "ipsec-mb")]
        ipsecmb::run_mixed(ciphers, ops, seal, &mut done);
        let mut i = 0;
        while i < ops.len() {
            if done[i] {
                i += 1;
                continue;
            }
            let c = ciphers[i];
            let mut j = i + 1;
            while j < ops.len() && !done[j] && same_cipher(ciphers[j], c) {
                j += 1;
            }
            if seal {
                c.seal(&mut ops[i..j]);
            } else {
                c.open(&mut ops[i..j]);
            }
            i = j;
        }
    }
}

/// True if `a` and `b` are the same cipher object (the same SA's key state).
#[inline]
pub(crate) fn same_cipher(a: &dyn EspCipher, b: &dyn EspCipher) -> bool {
    core::ptr::addr_eq(a as *const dyn EspCipher, b as *const dyn EspCipher)
}

/// A source of [`EspCipher`]s.
pub trait CryptoProvider: Send + Sync + Debug {
    /// Short, stable name (`rustcrypto`, `aws-lc`, `ipsec-mb`).
    fn name(&self) -> &'static str;
    /// True if this provider implements `t` on this machine.
    fn supports(&self, t: Transform) -> bool;
    /// Expands `keys` for `t`.
    fn new_cipher(&self, t: Transform, keys: &SaKeys, esn: bool) -> Result<Box<dyn EspCipher>, CryptoError>;
}

/// Why a cipher could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    #[error("{transform} needs a {want}-byte {which} key, got {got} bytes")]
    KeyLength { transform: Transform, which: &'static str, want: usize, got: usize },
    #[error("provider {provider} does not implement {transform}")]
    Unsupported { provider: &'static str, transform: Transform },
    #[error("provider {provider} failed to initialise: {reason}")]
    Init { provider: &'static str, reason: &'static str },
}

/// The keys of one SA, zeroized on drop.
#[derive(Clone)]
pub struct SaKeys {
    enc: Zeroizing<Vec<u8>>,
    int: Zeroizing<Vec<u8>>,
}

impl Debug for SaKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Never print key material.
        f.debug_struct("SaKeys").field("enc_len", &self.enc.len()).field("int_len", &self.int.len()).finish()
    }
}

impl SaKeys {
    /// Keys for `t`: `enc` is the cipher key (followed by the 4-byte salt for AEADs, as
    /// RFC 4106 §8.1 takes it from KEYMAT), `int` the integrity key (empty for AEADs).
    pub fn new(t: Transform, enc: &[u8], int: &[u8]) -> Result<SaKeys, CryptoError> {
        if enc.len() != t.enc_key_len() {
            return Err(CryptoError::KeyLength {
                transform: t,
                which: "encryption",
                want: t.enc_key_len(),
                got: enc.len(),
            });
        }
        if int.len() != t.int_key_len() {
            return Err(CryptoError::KeyLength {
                transform: t,
                which: "integrity",
                want: t.int_key_len(),
                got: int.len(),
            });
        }
        Ok(SaKeys { enc: Zeroizing::new(enc.to_vec()), int: Zeroizing::new(int.to_vec()) })
    }
    /// The cipher key without the salt.
    pub fn cipher_key(&self, t: Transform) -> &[u8] {
        if t.is_aead() {
            &self.enc[..self.enc.len() - 4]
        } else {
            &self.enc
        }
    }
    /// The 4-byte salt of an AEAD (empty otherwise).
    pub fn salt(&self, t: Transform) -> &[u8] {
        if t.is_aead() {
            &self.enc[self.enc.len() - 4..]
        } else {
            &[]
        }
    }
    pub fn enc(&self) -> &[u8] {
        &self.enc
    }
    pub fn int(&self) -> &[u8] {
        &self.int
    }
}

/// Every provider compiled in and usable on this machine, fastest first (order from the
/// figures of `benches/`: intel-ipsec-mb, then aws-lc-rs, then RustCrypto).
#[allow(clippy::vec_init_then_push)] // pushes are conditional on features
pub fn providers() -> Vec<&'static dyn CryptoProvider> {
    let mut v: Vec<&'static dyn CryptoProvider> = Vec::new();
    #[cfg(feature = "ipsec-mb")]
    if let Some(p) = ipsecmb::provider() {
        v.push(p);
    }
    #[cfg(feature = "aws-lc")]
    v.push(&awslc::AwsLc);
    v.push(&rustcrypto::RustCrypto);
    v
}

/// The fastest available provider that implements `t`.
pub fn default_provider(t: Transform) -> &'static dyn CryptoProvider {
    providers().into_iter().find(|p| p.supports(t)).unwrap_or(&rustcrypto::RustCrypto)
}

/// The provider called `name`, if compiled in and available.
pub fn provider_by_name(name: &str) -> Option<&'static dyn CryptoProvider> {
    providers().into_iter().find(|p| p.name() == name)
}

/// Names of the providers compiled in and available, fastest first.
pub fn provider_names() -> Vec<&'static str> {
    providers().iter().map(|p| p.name()).collect()
}

// ---- helpers shared by the providers

/// Compares a computed ICV with the received one in constant time: every byte is looked at
/// whatever the others hold, 8 at a time, with the running difference hidden from the
/// optimiser after each word so that it cannot stop early. (`subtle`'s slice comparison does
/// the same a byte at a time, with one optimisation barrier per byte: 3 % of a 64-byte
/// packet's whole path. Whole words are read as words: XORing them a byte at a time into
/// an array took 44 instructions for a 16-byte ICV.) Lengths are public; different lengths
/// are unequal.
#[inline]
pub(crate) fn icv_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let word = |c: &[u8]| u64::from_ne_bytes(c.try_into().unwrap_or([0; 8]));
    let mut diff = 0u64;
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        diff = core::hint::black_box(diff | (word(x) ^ word(y)));
    }
    for (x, y) in ra.iter().zip(rb) {
        diff = core::hint::black_box(diff | (x ^ y) as u64);
    }
    diff == 0
}

/// The three regions of an ESP packet, checked for length.
pub(crate) struct Regions<'a> {
    /// ESP header and IV.
    pub head: &'a mut [u8],
    /// Payload, padding and trailer (plaintext or ciphertext).
    pub body: &'a mut [u8],
    pub icv: &'a mut [u8],
}

/// Splits `esp` per `layout`; `None` if too short or, for block ciphers, if the body is not a
/// whole number of blocks.
#[inline]
pub(crate) fn regions(esp: &mut [u8], layout: EspLayout) -> Option<Regions<'_>> {
    let head_len = esprit_wire::esp::HEADER_LEN + layout.iv_len;
    let min = head_len + esprit_wire::esp::TRAILER_LEN + layout.icv_len;
    if esp.len() < min {
        return None;
    }
    let body_len = esp.len() - head_len - layout.icv_len;
    if body_len % layout.align != 0 {
        return None;
    }
    let (head, rest) = esp.split_at_mut(head_len);
    let (body, icv) = rest.split_at_mut(body_len);
    Some(Regions { head, body, icv })
}

/// The AEAD additional data: SPI ‖ [seq high] ‖ seq low (RFC 4106 §5).
#[inline]
pub(crate) fn aead_aad(head: &[u8], seq: u64, esn: bool) -> ([u8; 12], usize) {
    let mut aad = [0u8; 12];
    aad[..4].copy_from_slice(&head[..4]);
    if esn {
        aad[4..8].copy_from_slice(&((seq >> 32) as u32).to_be_bytes());
        aad[8..12].copy_from_slice(&head[4..8]);
        (aad, 12)
    } else {
        aad[4..8].copy_from_slice(&head[4..8]);
        (aad, 8)
    }
}

/// The AEAD nonce: 4-byte salt ‖ 8-byte explicit IV (RFC 4106 §4).
#[inline]
pub(crate) fn aead_nonce(salt: &[u8; 4], iv: &[u8]) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..4].copy_from_slice(salt);
    n[4..].copy_from_slice(&iv[..8]);
    n
}

/// Generates CBC IVs: the encryption of the sequence number under a random key drawn when the
/// SA is made. Unpredictable to anyone without that key, as RFC 3602 §3 requires, and
/// never repeated because sequence numbers are not.
pub(crate) struct CbcIvGen {
    aes: aes::Aes128,
}

impl CbcIvGen {
    pub fn new() -> Result<CbcIvGen, CryptoError> {
        use aes::cipher::KeyInit;
        let mut k = Zeroizing::new([0u8; 16]);
        getrandom::fill(&mut k[..]).map_err(|_| CryptoError::Init { provider: "iv", reason: "no randomness" })?;
        let aes = aes::Aes128::new_from_slice(&k[..])
            .map_err(|_| CryptoError::Init { provider: "iv", reason: "bad IV key length" })?;
        Ok(CbcIvGen { aes })
    }

    #[inline]
    pub fn iv(&self, seq: u64) -> [u8; 16] {
        use aes::cipher::BlockCipherEncrypt;
        let mut b = aes::cipher::array::Array::<u8, aes::cipher::consts::U16>::default();
        b[8..].copy_from_slice(&seq.to_be_bytes());
        self.aes.encrypt_block(&mut b);
        b.into()
    }
}

impl Debug for CbcIvGen {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("CbcIvGen")
    }
}

#[cfg(test)]
mod tests {
    use super::icv_eq;

    #[test]
    fn icv_comparison_sees_every_byte() {
        let a: Vec<u8> = (0..16).collect();
        assert!(icv_eq(&a, &a.clone()));
        assert!(icv_eq(&a[..12], &a[..12]));
        assert!(icv_eq(&[], &[]));
        for i in 0..16 {
            for bit in 0..8 {
                let mut b = a.clone();
                b[i] ^= 1 << bit;
                assert!(!icv_eq(&a, &b), "byte {i} bit {bit}");
                assert!(!icv_eq(&a[..12], &b[..12]) || i >= 12, "byte {i} bit {bit} of 12");
            }
        }
        assert!(!icv_eq(&a[..12], &a[..16]), "lengths differ");
        // Every ICV length there is (and odd ones): each bit of each byte, words and tail.
        for n in 1..=32 {
            let a: Vec<u8> = (0..n as u8).map(|v| v.wrapping_mul(37)).collect();
            assert!(icv_eq(&a, &a.clone()), "{n} bytes");
            for i in 0..n {
                for bit in 0..8 {
                    let mut b = a.clone();
                    b[i] ^= 1 << bit;
                    assert!(!icv_eq(&a, &b), "{n} bytes: byte {i} bit {bit}");
                }
            }
        }
    }
}
