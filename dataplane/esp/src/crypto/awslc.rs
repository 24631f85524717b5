//! The aws-lc-rs provider: AWS-LC's assembly AES-GCM (VAES/VPCLMULQDQ where present),
//! ChaCha20-Poly1305, AES-CBC and HMAC.

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::cipher::{self, DecryptingKey, DecryptionContext, EncryptingKey, EncryptionContext, UnboundCipherKey};
use aws_lc_rs::hmac;
use aws_lc_rs::iv::FixedLength;

use super::{
    aead_aad, aead_nonce, regions, CbcIvGen, CryptoError, CryptoOp, CryptoProvider, EspCipher, OpStatus, SaKeys,
};
use crate::proposal::{EspLayout, Transform};

/// The aws-lc-rs provider.
#[derive(Debug, Clone, Copy, Default)]
pub struct AwsLc;

const NAME: &str = "aws-lc";

impl CryptoProvider for AwsLc {
    fn name(&self) -> &'static str {
        NAME
    }
    fn supports(&self, _t: Transform) -> bool {
        true
    }
    fn new_cipher(&self, t: Transform, keys: &SaKeys, esn: bool) -> Result<Box<dyn EspCipher>, CryptoError> {
        let key_err = || CryptoError::KeyLength {
            transform: t,
            which: "encryption",
            want: t.enc_key_len(),
            got: keys.enc().len(),
        };
        let k = keys.cipher_key(t);
        if t.is_aead() {
            let alg = match t {
                Transform::Aes128Gcm16 => &aead::AES_128_GCM,
                Transform::Aes256Gcm16 => &aead::AES_256_GCM,
                _ => &aead::CHACHA20_POLY1305,
            };
            let key = LessSafeKey::new(UnboundKey::new(alg, k).map_err(|_| key_err())?);
            let salt: [u8; 4] = keys.salt(t).try_into().map_err(|_| key_err())?;
            return Ok(Box::new(Aead { t, esn, salt, key }));
        }
        let alg = if k.len() == 16 { &cipher::AES_128 } else { &cipher::AES_256 };
        let enc = EncryptingKey::cbc(UnboundCipherKey::new(alg, k).map_err(|_| key_err())?).map_err(|_| key_err())?;
        let dec = DecryptingKey::cbc(UnboundCipherKey::new(alg, k).map_err(|_| key_err())?).map_err(|_| key_err())?;
        let halg = match t {
            Transform::Aes128Sha1 | Transform::Aes256Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            _ => hmac::HMAC_SHA256,
        };
        Ok(Box::new(Cbc {
            t,
            layout: t.layout(),
            esn,
            enc,
            dec,
            mac: hmac::Key::new(halg, keys.int()),
            ivgen: CbcIvGen::new()?,
        }))
    }
}

struct Aead {
    t: Transform,
    esn: bool,
    salt: [u8; 4],
    key: LessSafeKey,
}

impl core::fmt::Debug for Aead {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("awslc::Aead").field("transform", &self.t).finish_non_exhaustive()
    }
}

impl Aead {
    fn seal_one(&self, op: &mut CryptoOp<'_>) -> OpStatus {
        let Some(r) = regions(op.esp, self.t.layout()) else {
            return OpStatus::BadLength;
        };
        r.head[8..16].copy_from_slice(&op.seq.to_be_bytes());
        let nonce = Nonce::assume_unique_for_key(aead_nonce(&self.salt, &r.head[8..16]));
        let (aad, aad_len) = aead_aad(r.head, op.seq, self.esn);
        match self.key.seal_in_place_separate_tag(nonce, Aad::from(&aad[..aad_len]), r.body) {
            Ok(tag) => {
                r.icv.copy_from_slice(tag.as_ref());
                OpStatus::Ok
            }
            Err(_) => OpStatus::BadLength,
        }
    }

    fn open_one(&self, op: &mut CryptoOp<'_>) -> OpStatus {
        let Some(r) = regions(op.esp, self.t.layout()) else {
            return OpStatus::BadLength;
        };
        let nonce = Nonce::assume_unique_for_key(aead_nonce(&self.salt, &r.head[8..16]));
        let (aad, aad_len) = aead_aad(r.head, op.seq, self.esn);
        match self.key.open_in_place_separate_tag(nonce, Aad::from(&aad[..aad_len]), r.icv, r.body) {
            Ok(_) => OpStatus::Ok,
            Err(_) => {
                // AWS-LC decrypts before it checks the tag: wipe the unauthenticated plaintext.
                r.body.fill(0);
                OpStatus::AuthFailed
            }
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

struct Cbc {
    t: Transform,
    layout: EspLayout,
    esn: bool,
    enc: EncryptingKey,
    dec: DecryptingKey,
    mac: hmac::Key,
    ivgen: CbcIvGen,
}

impl core::fmt::Debug for Cbc {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("awslc::Cbc").field("transform", &self.t).finish_non_exhaustive()
    }
}

impl Cbc {
    fn icv(&self, authenticated: &[u8], seq: u64) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.mac);
        ctx.update(authenticated);
        if self.esn {
            ctx.update(&((seq >> 32) as u32).to_be_bytes());
        }
        ctx.sign()
    }

    fn seal_one(&self, op: &mut CryptoOp<'_>) -> OpStatus {
        {
            let Some(r) = regions(op.esp, self.layout) else {
                return OpStatus::BadLength;
            };
            let iv = self.ivgen.iv(op.seq);
            r.head[8..24].copy_from_slice(&iv);
            let ctx = EncryptionContext::Iv128(FixedLength::from(iv));
            if self.enc.less_safe_encrypt(r.body, ctx).is_err() {
                return OpStatus::BadLength;
            }
        }
        let n = op.esp.len() - self.layout.icv_len;
        let tag = self.icv(&op.esp[..n], op.seq);
        op.esp[n..].copy_from_slice(&tag.as_ref()[..self.layout.icv_len]);
        OpStatus::Ok
    }

    fn open_one(&self, op: &mut CryptoOp<'_>) -> OpStatus {
        if regions(op.esp, self.layout).is_none() {
            return OpStatus::BadLength;
        }
        let n = op.esp.len() - self.layout.icv_len;
        let tag = self.icv(&op.esp[..n], op.seq);
        if !super::icv_eq(&tag.as_ref()[..self.layout.icv_len], &op.esp[n..]) {
            return OpStatus::AuthFailed;
        }
        let Some(r) = regions(op.esp, self.layout) else {
            return OpStatus::BadLength;
        };
        let iv: [u8; 16] = r.head[8..24].try_into().unwrap_or([0; 16]);
        match self.dec.decrypt(r.body, DecryptionContext::Iv128(FixedLength::from(iv))) {
            Ok(_) => OpStatus::Ok,
            Err(_) => OpStatus::BadLength,
        }
    }
}

impl EspCipher for Cbc {
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
