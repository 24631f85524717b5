//! The portable provider: RustCrypto's `aes-gcm`, `chacha20poly1305`, `aes` + `cbc`, `hmac`,
//! `sha1` and `sha2`. Uses AES-NI and CLMUL when the CPU has them (runtime detection).

use aes::cipher::array::Array;
use aes::cipher::{BlockModeDecrypt, BlockModeEncrypt, InnerIvInit, KeyInit};
use aes_gcm::aead::AeadInOut;
use hmac::{Hmac, Mac};

use super::{
    aead_aad, aead_nonce, regions, CbcIvGen, CryptoError, CryptoOp, CryptoProvider, EspCipher, OpStatus, SaKeys,
};
use crate::proposal::{EspLayout, Transform};

/// The RustCrypto provider.
#[derive(Debug, Clone, Copy, Default)]
pub struct RustCrypto;

const NAME: &str = "rustcrypto";

impl CryptoProvider for RustCrypto {
    fn name(&self) -> &'static str {
        NAME
    }
    fn supports(&self, _t: Transform) -> bool {
        true
    }
    fn new_cipher(&self, t: Transform, keys: &SaKeys, esn: bool) -> Result<Box<dyn EspCipher>, CryptoError> {
        let bad = |_| CryptoError::KeyLength {
            transform: t,
            which: "encryption",
            want: t.enc_key_len(),
            got: keys.enc().len(),
        };
        let salt: [u8; 4] = keys.salt(t).try_into().unwrap_or([0; 4]);
        let k = keys.cipher_key(t);
        Ok(match t {
            Transform::Aes128Gcm16 => Box::new(Aead {
                t,
                esn,
                salt,
                alg: AeadAlg::Gcm128(aes_gcm::Aes128Gcm::new_from_slice(k).map_err(bad)?),
            }),
            Transform::Aes256Gcm16 => Box::new(Aead {
                t,
                esn,
                salt,
                alg: AeadAlg::Gcm256(aes_gcm::Aes256Gcm::new_from_slice(k).map_err(bad)?),
            }),
            Transform::Chacha20Poly1305 => Box::new(Aead {
                t,
                esn,
                salt,
                alg: AeadAlg::Chacha(chacha20poly1305::ChaCha20Poly1305::new_from_slice(k).map_err(bad)?),
            }),
            Transform::Aes128Sha1 => Box::new(Cbc::new(
                t,
                esn,
                aes::Aes128::new_from_slice(k).map_err(bad)?,
                hmac_key::<sha1::Sha1>(t, keys)?,
            )?),
            Transform::Aes256Sha1 => Box::new(Cbc::new(
                t,
                esn,
                aes::Aes256::new_from_slice(k).map_err(bad)?,
                hmac_key::<sha1::Sha1>(t, keys)?,
            )?),
            Transform::Aes128Sha256 => Box::new(Cbc::new(
                t,
                esn,
                aes::Aes128::new_from_slice(k).map_err(bad)?,
                hmac_key::<sha2::Sha256>(t, keys)?,
            )?),
            Transform::Aes256Sha256 => Box::new(Cbc::new(
                t,
                esn,
                aes::Aes256::new_from_slice(k).map_err(bad)?,
                hmac_key::<sha2::Sha256>(t, keys)?,
            )?),
        })
    }
}

fn hmac_key<D>(t: Transform, keys: &SaKeys) -> Result<Hmac<D>, CryptoError>
where
    D: hmac::EagerHash,
    Hmac<D>: KeyInit,
{
    <Hmac<D> as KeyInit>::new_from_slice(keys.int()).map_err(|_| CryptoError::KeyLength {
        transform: t,
        which: "integrity",
        want: t.int_key_len(),
        got: keys.int().len(),
    })
}

enum AeadAlg {
    Gcm128(aes_gcm::Aes128Gcm),
    Gcm256(aes_gcm::Aes256Gcm),
    Chacha(chacha20poly1305::ChaCha20Poly1305),
}

struct Aead {
    t: Transform,
    esn: bool,
    salt: [u8; 4],
    alg: AeadAlg,
}

impl core::fmt::Debug for Aead {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("rustcrypto::Aead").field("transform", &self.t).finish_non_exhaustive()
    }
}

impl Aead {
    fn seal_one(&self, op: &mut CryptoOp<'_>) -> OpStatus {
        let Some(r) = regions(op.esp, self.t.layout()) else {
            return OpStatus::BadLength;
        };
        // RFC 4106 §3.1: the explicit IV is the sequence number, unique per key.
        r.head[8..16].copy_from_slice(&op.seq.to_be_bytes());
        let nonce = aead_nonce(&self.salt, &r.head[8..16]);
        let (aad, aad_len) = aead_aad(r.head, op.seq, self.esn);
        let tag = match &self.alg {
            AeadAlg::Gcm128(c) => c.encrypt_inout_detached(&nonce.into(), &aad[..aad_len], r.body.into()),
            AeadAlg::Gcm256(c) => c.encrypt_inout_detached(&nonce.into(), &aad[..aad_len], r.body.into()),
            AeadAlg::Chacha(c) => c.encrypt_inout_detached(&nonce.into(), &aad[..aad_len], r.body.into()),
        };
        match tag {
            Ok(tag) => {
                r.icv.copy_from_slice(&tag);
                OpStatus::Ok
            }
            Err(_) => OpStatus::BadLength,
        }
    }

    fn open_one(&self, op: &mut CryptoOp<'_>) -> OpStatus {
        let Some(r) = regions(op.esp, self.t.layout()) else {
            return OpStatus::BadLength;
        };
        let nonce = aead_nonce(&self.salt, &r.head[8..16]);
        let (aad, aad_len) = aead_aad(r.head, op.seq, self.esn);
        let tag = Array::try_from(&r.icv[..]).unwrap_or_default();
        let res = match &self.alg {
            AeadAlg::Gcm128(c) => c.decrypt_inout_detached(&nonce.into(), &aad[..aad_len], r.body.into(), &tag),
            AeadAlg::Gcm256(c) => c.decrypt_inout_detached(&nonce.into(), &aad[..aad_len], r.body.into(), &tag),
            AeadAlg::Chacha(c) => c.decrypt_inout_detached(&nonce.into(), &aad[..aad_len], r.body.into(), &tag),
        };
        if res.is_ok() {
            OpStatus::Ok
        } else {
            OpStatus::AuthFailed
        }
    }
}

impl EspCipher for Aead {
    fn transform(&self) -> Transform {
        self.t
    }
    fn provider(&self) -> &'static str {
        NAME
    }
    fn as_any(&self) -> &dyn core::any::Any {
        self
    }
    fn seal(&self, ops: &mut [CryptoOp<'_>]) {
        for op in ops {
            op.status = self.seal_one(op);
        }
    }
    fn open(&self, ops: &mut [CryptoOp<'_>]) {
        for op in ops {
            op.status = self.open_one(op);
        }
    }
}

/// AES-CBC with HMAC, encrypt-then-MAC (RFC 4303 §3.3.2).
struct Cbc<C, M> {
    t: Transform,
    layout: EspLayout,
    esn: bool,
    cipher: C,
    /// Keyed HMAC state (inner and outer pads absorbed), cloned per packet.
    mac: M,
    ivgen: CbcIvGen,
}

impl<C, M> core::fmt::Debug for Cbc<C, M> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("rustcrypto::Cbc").field("transform", &self.t).finish_non_exhaustive()
    }
}

impl<C, M> Cbc<C, M>
where
    C: aes::cipher::BlockCipherEncrypt
        + aes::cipher::BlockCipherDecrypt
        + aes::cipher::BlockSizeUser<BlockSize = aes::cipher::consts::U16>
        + Clone,
    M: Mac + Clone,
{
    fn new(t: Transform, esn: bool, cipher: C, mac: M) -> Result<Self, CryptoError> {
        Ok(Cbc { t, layout: t.layout(), esn, cipher, mac, ivgen: CbcIvGen::new()? })
    }

    fn icv_of(&self, authenticated: &[u8], seq: u64) -> M {
        let mut m = self.mac.clone();
        m.update(authenticated);
        if self.esn {
            m.update(&((seq >> 32) as u32).to_be_bytes());
        }
        m
    }

    fn seal_one(&self, op: &mut CryptoOp<'_>) -> OpStatus {
        let icv_len = self.layout.icv_len;
        {
            let Some(r) = regions(op.esp, self.layout) else {
                return OpStatus::BadLength;
            };
            let iv = self.ivgen.iv(op.seq);
            r.head[8..24].copy_from_slice(&iv);
            let mut enc = cbc::Encryptor::<C>::inner_iv_init(self.cipher.clone(), &iv.into());
            let (blocks, _) = Array::slice_as_chunks_mut(r.body);
            enc.encrypt_blocks(blocks);
        }
        let n = op.esp.len() - icv_len;
        let tag = self.icv_of(&op.esp[..n], op.seq).finalize().into_bytes();
        op.esp[n..].copy_from_slice(&tag[..icv_len]);
        OpStatus::Ok
    }

    fn open_one(&self, op: &mut CryptoOp<'_>) -> OpStatus {
        if regions(op.esp, self.layout).is_none() {
            return OpStatus::BadLength;
        }
        let n = op.esp.len() - self.layout.icv_len;
        let tag = self.icv_of(&op.esp[..n], op.seq).finalize().into_bytes();
        // Constant-time comparison of the truncated ICV (RFC 2404 §2, RFC 4868 §2.6).
        if !super::icv_eq(&tag[..self.layout.icv_len], &op.esp[n..]) {
            return OpStatus::AuthFailed;
        }
        let Some(r) = regions(op.esp, self.layout) else {
            return OpStatus::BadLength;
        };
        let iv: [u8; 16] = r.head[8..24].try_into().unwrap_or([0; 16]);
        let mut dec = cbc::Decryptor::<C>::inner_iv_init(self.cipher.clone(), &iv.into());
        let (blocks, _) = Array::slice_as_chunks_mut(r.body);
        dec.decrypt_blocks(blocks);
        OpStatus::Ok
    }
}

impl<C, M> EspCipher for Cbc<C, M>
where
    C: aes::cipher::BlockCipherEncrypt
        + aes::cipher::BlockCipherDecrypt
        + aes::cipher::BlockSizeUser<BlockSize = aes::cipher::consts::U16>
        + Clone
        + Send
        + Sync
        + 'static,
    M: Mac + Clone + Send + Sync + 'static,
{
    fn transform(&self) -> Transform {
        self.t
    }
    fn provider(&self) -> &'static str {
        NAME
    }
    fn as_any(&self) -> &dyn core::any::Any {
        self
    }
    fn seal(&self, ops: &mut [CryptoOp<'_>]) {
        for op in ops {
            op.status = self.seal_one(op);
        }
    }
    fn open(&self, ops: &mut [CryptoOp<'_>]) {
        for op in ops {
            op.status = self.open_one(op);
        }
    }
}
