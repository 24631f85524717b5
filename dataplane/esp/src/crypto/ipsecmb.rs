//! The intel-ipsec-mb provider (Debian's `libipsec-mb-dev`), through the safe layer of
//! `ipsec-mb-sys`: this module holds no `unsafe`.
//!
//! * AES-128/256-GCM: the direct one-shot API, with the key data (round keys and GHASH key
//!   powers) precomputed once per SA;
//! * AES-128/256-CBC with HMAC-SHA1-96 or HMAC-SHA-256-128, and ChaCha20-Poly1305: the
//!   multi-buffer job API. A whole burst (up to [`MAX_BURST`] packets at a time) is submitted,
//!   then flushed, so that the library works on many packets at once in its SIMD lanes. Round
//!   keys and the HMAC inner and outer states are precomputed once per SA.
//!
//! An `IMB_MGR` is not thread-safe: each thread uses its own, allocated on first use and freed
//! when the thread exits. Key material is immutable once made, shared by those managers, and
//! zeroized on drop.
//!
//! Where the library decrypts before the ICV can be compared (GCM and ChaCha20-Poly1305 compute
//! the tag while decrypting; the job API hashes then decrypts in one job), a body that fails
//! authentication is zeroed, so it never holds unauthenticated plaintext. Should this thread
//! have no manager (allocation failure, or a call while the thread is exiting), the ops are left
//! [`OpStatus::Pending`]: not processed.

use std::sync::OnceLock;

use arrayvec::ArrayVec;
use ipsec_mb_sys::safe::{self, Arch, CbcHmacKey, ChachaPolyKey, Direction, GcmKey, HmacAlg, Job, JobStatus, Mgr};

use super::{
    aead_aad, aead_nonce, regions, CbcIvGen, CryptoError, CryptoOp, CryptoProvider, EspCipher, OpStatus, SaKeys,
};
use crate::proposal::{EspLayout, Transform};
use crate::MAX_BURST;

const NAME: &str = "ipsec-mb";

/// The intel-ipsec-mb provider. Get it with [`provider`].
#[derive(Debug)]
pub struct IpsecMb {
    arch: Arch,
}

impl IpsecMb {
    /// The code path the library picked for this CPU.
    pub fn arch(&self) -> Arch {
        self.arch
    }
}

static PROVIDER: OnceLock<Option<IpsecMb>> = OnceLock::new();

/// The provider, if the library initialises on this CPU (probed once).
pub fn provider() -> Option<&'static dyn CryptoProvider> {
    PROVIDER
        .get_or_init(|| safe::with_thread_mgr(|m| IpsecMb { arch: m.arch() }).ok())
        .as_ref()
        .map(|p| p as &'static dyn CryptoProvider)
}

fn init_err(e: safe::Error) -> CryptoError {
    CryptoError::Init { provider: NAME, reason: e.as_str() }
}

impl CryptoProvider for IpsecMb {
    fn name(&self) -> &'static str {
        NAME
    }

    fn supports(&self, _t: Transform) -> bool {
        // Every transform: AES-GCM, AES-CBC + HMAC-SHA1/SHA-256 and ChaCha20-Poly1305 are all
        // in intel-ipsec-mb 1.x.
        true
    }

    fn new_cipher(&self, t: Transform, keys: &SaKeys, esn: bool) -> Result<Box<dyn EspCipher>, CryptoError> {
        let enc_err = || CryptoError::KeyLength {
            transform: t,
            which: "encryption",
            want: t.enc_key_len(),
            got: keys.enc().len(),
        };
        // SaKeys has checked the lengths already; the AES key length is checked again below,
        // so a key length refused by the library can only be the integrity key's.
        let int_err = |e: safe::Error| match e {
            safe::Error::KeyLength => CryptoError::KeyLength {
                transform: t,
                which: "integrity",
                want: t.int_key_len(),
                got: keys.int().len(),
            },
            e => init_err(e),
        };
        let k = keys.cipher_key(t);
        let layout = t.layout();
        match t {
            Transform::Aes128Gcm16 | Transform::Aes256Gcm16 => {
                let salt: [u8; 4] = keys.salt(t).try_into().map_err(|_| enc_err())?;
                let key = safe::with_thread_mgr(|m| GcmKey::new(m, k)).map_err(init_err)?.map_err(|_| enc_err())?;
                Ok(Box::new(Gcm { t, esn, salt, key }))
            }
            Transform::Chacha20Poly1305 => {
                let salt: [u8; 4] = keys.salt(t).try_into().map_err(|_| enc_err())?;
                let key = ChachaPolyKey::new(k).map_err(|_| enc_err())?;
                Ok(Box::new(Multi { t, layout, esn, key: MultiKey::Chacha { key, salt } }))
            }
            Transform::Aes128Sha1 | Transform::Aes256Sha1 | Transform::Aes128Sha256 | Transform::Aes256Sha256 => {
                let alg = match t {
                    Transform::Aes128Sha1 | Transform::Aes256Sha1 => HmacAlg::Sha1,
                    _ => HmacAlg::Sha256,
                };
                if !matches!(k.len(), 16 | 32) {
                    return Err(enc_err());
                }
                let key = safe::with_thread_mgr(|m| CbcHmacKey::new(m, k, alg, keys.int(), layout.icv_len))
                    .map_err(init_err)?
                    .map_err(int_err)?;
                Ok(Box::new(Multi { t, layout, esn, key: MultiKey::Cbc { key, ivgen: CbcIvGen::new()? } }))
            }
        }
    }
}

/// Marks every op as not processed (this thread has no manager).
fn not_processed(ops: &mut [CryptoOp<'_>]) {
    for op in ops {
        op.status = OpStatus::Pending;
    }
}

// ---- AES-GCM through the direct API

struct Gcm {
    t: Transform,
    esn: bool,
    salt: [u8; 4],
    key: GcmKey,
}

impl core::fmt::Debug for Gcm {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ipsecmb::Gcm").field("transform", &self.t).finish_non_exhaustive()
    }
}

impl Gcm {
    fn seal_one(&self, mgr: &mut Mgr, op: &mut CryptoOp<'_>) -> OpStatus {
        let Some(r) = regions(op.esp, self.t.layout()) else {
            return OpStatus::BadLength;
        };
        // RFC 4106 §3.1: the explicit IV is the sequence number, unique per key.
        r.head[8..16].copy_from_slice(&op.seq.to_be_bytes());
        let nonce = aead_nonce(&self.salt, &r.head[8..16]);
        let (aad, aad_len) = aead_aad(r.head, op.seq, self.esn);
        let mut tag = [0u8; 16];
        match mgr.gcm_encrypt(&self.key, &nonce, &aad[..aad_len], r.body, &mut tag) {
            Ok(()) => {
                r.icv.copy_from_slice(&tag);
                OpStatus::Ok
            }
            Err(_) => OpStatus::Pending,
        }
    }

    fn open_one(&self, mgr: &mut Mgr, op: &mut CryptoOp<'_>) -> OpStatus {
        let Some(r) = regions(op.esp, self.t.layout()) else {
            return OpStatus::BadLength;
        };
        let nonce = aead_nonce(&self.salt, &r.head[8..16]);
        let (aad, aad_len) = aead_aad(r.head, op.seq, self.esn);
        let mut tag = [0u8; 16];
        if mgr.gcm_decrypt(&self.key, &nonce, &aad[..aad_len], r.body, &mut tag).is_err() {
            return OpStatus::Pending;
        }
        if super::icv_eq(&tag, r.icv) {
            OpStatus::Ok
        } else {
            // The library decrypts while it computes the tag: wipe the unauthenticated
            // plaintext.
            r.body.fill(0);
            OpStatus::AuthFailed
        }
    }
}

impl EspCipher for Gcm {
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
        let done = safe::with_thread_mgr(|m| {
            for op in ops.iter_mut() {
                op.status = self.seal_one(m, op);
            }
        });
        if done.is_err() {
            not_processed(ops);
        }
    }
    fn open(&self, ops: &mut [CryptoOp<'_>]) {
        let done = safe::with_thread_mgr(|m| {
            for op in ops.iter_mut() {
                op.status = self.open_one(m, op);
            }
        });
        if done.is_err() {
            not_processed(ops);
        }
    }
}

// ---- AES-CBC + HMAC and ChaCha20-Poly1305 through the multi-buffer job API

// One per SA, made once and never moved on the packet path: the size difference is moot.
#[allow(clippy::large_enum_variant)]
enum MultiKey {
    Cbc { key: CbcHmacKey, ivgen: CbcIvGen },
    Chacha { key: ChachaPolyKey, salt: [u8; 4] },
}

/// A cipher driven through the job API, a burst at a time.
struct Multi {
    t: Transform,
    layout: EspLayout,
    esn: bool,
    key: MultiKey,
}

impl core::fmt::Debug for Multi {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ipsecmb::Multi").field("transform", &self.t).finish_non_exhaustive()
    }
}

/// The most ICV bytes of any transform (HMAC-SHA-256-128, GCM, Poly1305).
const MAX_ICV: usize = 16;

impl Multi {
    /// Checks the length of `op`, writes its IV when sealing, and makes its job. Also returns
    /// the received ICV when opening (the ESN trick below overwrites part of it).
    fn job<'a>(&'a self, op: &'a mut CryptoOp<'_>, dir: Direction) -> Result<(Job<'a>, [u8; MAX_ICV]), OpStatus> {
        let seq = op.seq;
        let Some(r) = regions(op.esp, self.layout) else {
            return Err(OpStatus::BadLength);
        };
        let head_len = r.head.len();
        let icv_len = self.layout.icv_len;
        let n = op.esp.len() - icv_len;
        let mut icv = [0u8; MAX_ICV];
        if dir == Direction::Decrypt {
            icv[..icv_len].copy_from_slice(&op.esp[n..]);
        }
        let job = match &self.key {
            MultiKey::Cbc { key, ivgen } => {
                let mut iv = [0u8; 16];
                if dir == Direction::Encrypt {
                    iv = ivgen.iv(seq);
                    op.esp[8..24].copy_from_slice(&iv);
                } else {
                    iv.copy_from_slice(&op.esp[8..24]);
                }
                // RFC 4303 §3.3.2.1: with ESN the ICV also covers the high 32 bits of the
                // sequence number, as if they followed the ciphertext. Put them exactly there,
                // in the ICV's place (saved above when opening), so that the hashed region is
                // contiguous; the tag goes to the job, and the ICV is written back after.
                let mut hash_end = n;
                if self.esn {
                    op.esp[n..n + 4].copy_from_slice(&((seq >> 32) as u32).to_be_bytes());
                    hash_end = n + 4;
                }
                Job::cbc_hmac(key, dir, &mut *op.esp, iv, head_len..n, 0..hash_end)
            }
            MultiKey::Chacha { key, salt } => {
                if dir == Direction::Encrypt {
                    // RFC 7634 §2: the explicit IV is the sequence number, unique per key.
                    op.esp[8..16].copy_from_slice(&seq.to_be_bytes());
                }
                let nonce = aead_nonce(salt, &op.esp[8..16]);
                let (aad, aad_len) = aead_aad(&op.esp[..8], seq, self.esn);
                Job::chacha20_poly1305(key, dir, &mut *op.esp, nonce, &aad[..aad_len], head_len..n)
            }
        };
        // Cannot fail: regions() has checked that the body is a non-empty whole number of
        // blocks and that the ICV (at least 12 bytes) has room for the ESN bits.
        job.map(|j| (j, icv)).map_err(|_| OpStatus::BadLength)
    }

    fn run(&self, ops: &mut [CryptoOp<'_>], dir: Direction) {
        for chunk in ops.chunks_mut(MAX_BURST) {
            let ciphers = [Some(self); MAX_BURST];
            if safe::with_thread_mgr(|m| run_jobs(m, &ciphers, chunk, dir)).is_err() {
                not_processed(chunk);
            }
        }
    }
}

/// Seals or opens up to [`MAX_BURST`] ops with one run of the job API: `ops[i]` with
/// `ciphers[i]`, which may be the ciphers of different SAs (each job carries its own keys);
/// ops without a cipher are left alone.
fn run_jobs(mgr: &mut Mgr, ciphers: &[Option<&Multi>], ops: &mut [CryptoOp<'_>], dir: Direction) {
    let mut status = [None; MAX_BURST];
    {
        let mut jobs: ArrayVec<Job<'_>, MAX_BURST> = ArrayVec::new();
        let mut index: ArrayVec<(usize, &Multi, [u8; MAX_ICV]), MAX_BURST> = ArrayVec::new();
        for (i, (op, c)) in ops.iter_mut().zip(ciphers).enumerate().take(MAX_BURST) {
            let Some(c) = *c else { continue };
            match c.job(op, dir) {
                // Never full: at most MAX_BURST ops are taken.
                Ok((job, icv)) if !jobs.is_full() => {
                    jobs.push(job);
                    index.push((i, c, icv));
                }
                Ok(_) => {}
                Err(st) => status[i] = Some(st),
            }
        }

        mgr.run_jobs(&mut jobs);

        for (job, &(i, c, rx_icv)) in jobs.iter_mut().zip(&index) {
            let icv_len = c.layout.icv_len;
            let head_len = esprit_wire::esp::HEADER_LEN + c.layout.iv_len;
            let completed = job.status() == JobStatus::Completed;
            let mut tag = [0u8; MAX_ICV];
            tag[..icv_len].copy_from_slice(&job.tag()[..icv_len]);
            let buf = job.buf();
            let n = buf.len() - icv_len;
            let st = match dir {
                Direction::Encrypt => {
                    buf[n..].copy_from_slice(&tag[..icv_len]);
                    if completed {
                        OpStatus::Ok
                    } else {
                        OpStatus::BadLength
                    }
                }
                Direction::Decrypt => {
                    // Put back the ICV as received (the ESN bits were hashed in its place).
                    buf[n..].copy_from_slice(&rx_icv[..icv_len]);
                    if completed && super::icv_eq(&tag[..icv_len], &rx_icv[..icv_len]) {
                        OpStatus::Ok
                    } else {
                        // The job has already decrypted: wipe the unauthenticated plaintext.
                        buf[head_len..n].fill(0);
                        OpStatus::AuthFailed
                    }
                }
            };
            if let Some(s) = status.get_mut(i) {
                *s = Some(st);
            }
        }
    }
    for (op, st) in ops.iter_mut().zip(status) {
        if let Some(st) = st {
            op.status = st;
        }
    }
}

/// The part of a mixed burst ([`super::run_mixed`]) that this provider's ciphers hold: the
/// job-API ciphers' ops of every SA in one submission, the GCM ops one after the other
/// with one manager lookup. Marks what it processed in `done`.
pub(super) fn run_mixed(ciphers: &[&dyn EspCipher], ops: &mut [CryptoOp<'_>], seal: bool, done: &mut [bool]) {
    let dir = if seal { Direction::Encrypt } else { Direction::Decrypt };
    let mut multi: [Option<&Multi>; MAX_BURST] = [None; MAX_BURST];
    let mut gcm: [Option<&Gcm>; MAX_BURST] = [None; MAX_BURST];
    let mut any = false;
    for (i, &c) in ciphers.iter().enumerate().take(MAX_BURST) {
        if i > 0 && super::same_cipher(c, ciphers[i - 1]) {
            (multi[i], gcm[i]) = (multi[i - 1], gcm[i - 1]);
        } else {
            let a = c.as_any();
            multi[i] = a.downcast_ref::<Multi>();
            gcm[i] = a.downcast_ref::<Gcm>();
        }
        any |= multi[i].is_some() || gcm[i].is_some();
    }
    if !any {
        return;
    }
    let n = ops.len().min(MAX_BURST);
    let ran = safe::with_thread_mgr(|m| {
        if multi[..n].iter().any(Option::is_some) {
            run_jobs(m, &multi[..n], &mut ops[..n], dir);
        }
        for (op, g) in ops.iter_mut().zip(&gcm[..n]) {
            if let Some(g) = g {
                op.status = if seal { g.seal_one(m, op) } else { g.open_one(m, op) };
            }
        }
    });
    for (i, d) in done.iter_mut().enumerate().take(n) {
        if multi[i].is_some() || gcm[i].is_some() {
            if ran.is_err() {
                ops[i].status = OpStatus::Pending;
            }
            *d = true;
        }
    }
}

impl EspCipher for Multi {
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
        self.run(ops, Direction::Encrypt);
    }
    fn open(&self, ops: &mut [CryptoOp<'_>]) {
        self.run(ops, Direction::Decrypt);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::rustcrypto::RustCrypto;

    fn keys(t: Transform) -> SaKeys {
        let enc: Vec<u8> = (0..t.enc_key_len()).map(|i| i as u8 ^ 0x5a).collect();
        let int: Vec<u8> = (0..t.int_key_len()).map(|i| (i as u8).wrapping_mul(3)).collect();
        SaKeys::new(t, &enc, &int).unwrap()
    }

    /// An ESP packet with `payload` and default padding, ready to seal.
    fn packet(t: Transform, seq: u64, payload: &[u8]) -> Vec<u8> {
        let l = t.layout();
        let pad = l.pad_len(payload.len());
        let mut v = Vec::with_capacity(l.esp_len(payload.len()));
        v.extend_from_slice(&0xabcd_0001u32.to_be_bytes());
        v.extend_from_slice(&(seq as u32).to_be_bytes());
        v.resize(8 + l.iv_len, 0);
        v.extend_from_slice(payload);
        v.extend(1..=pad as u8);
        v.extend_from_slice(&[pad as u8, 4]);
        v.resize(v.len() + l.icv_len, 0);
        v
    }

    fn body(t: Transform, esp: &[u8]) -> &[u8] {
        let l = t.layout();
        &esp[8 + l.iv_len..esp.len() - l.icv_len]
    }

    #[test]
    fn registered_and_available() {
        let p = provider().expect("intel-ipsec-mb initialises here");
        assert_eq!(p.name(), "ipsec-mb");
        assert!(crate::crypto::provider_names().contains(&"ipsec-mb"));
        assert!(Transform::ALL.iter().all(|&t| p.supports(t)));
    }

    /// 64 AES-128-CBC + HMAC-SHA1-96 packets of mixed sizes in one burst, both ways, checked
    /// against RustCrypto, with and without ESN; plus bad packets among good ones.
    #[test]
    fn burst_of_64_cbc_sha1() {
        let t = Transform::Aes128Sha1;
        let p = provider().unwrap();
        for esn in [false, true] {
            let mb = p.new_cipher(t, &keys(t), esn).unwrap();
            let rc = RustCrypto.new_cipher(t, &keys(t), esn).unwrap();
            // With ESN, the high half of the sequence number changes within the burst.
            let base = if esn { 0x7_ffff_ffe0u64 } else { 1 };
            let payloads: Vec<Vec<u8>> =
                (0..64usize).map(|i| (0..(i * 97) % 1450).map(|j| (i + j) as u8).collect()).collect();
            let plain: Vec<Vec<u8>> =
                payloads.iter().enumerate().map(|(i, pl)| packet(t, base + i as u64, pl)).collect();

            // RustCrypto seals, ipsec-mb opens the burst.
            let mut pkts = plain.clone();
            for (i, e) in pkts.iter_mut().enumerate() {
                let mut ops = [CryptoOp::new(e, base + i as u64)];
                rc.seal(&mut ops);
                assert_eq!(ops[0].status, OpStatus::Ok);
            }
            let sealed = pkts.clone();
            let mut ops: Vec<CryptoOp> =
                pkts.iter_mut().enumerate().map(|(i, e)| CryptoOp::new(e, base + i as u64)).collect();
            mb.open(&mut ops);
            assert!(ops.iter().all(|o| o.status == OpStatus::Ok), "esn {esn}");
            for (i, e) in pkts.iter().enumerate() {
                assert_eq!(body(t, e), body(t, &plain[i]), "esn {esn} packet {i}");
                // The ICV is left as received.
                assert_eq!(e[e.len() - 12..], sealed[i][e.len() - 12..]);
            }

            // ipsec-mb seals the burst, RustCrypto opens each.
            let mut pkts = plain.clone();
            let mut ops: Vec<CryptoOp> =
                pkts.iter_mut().enumerate().map(|(i, e)| CryptoOp::new(e, base + i as u64)).collect();
            mb.seal(&mut ops);
            assert!(ops.iter().all(|o| o.status == OpStatus::Ok), "esn {esn}");
            for (i, e) in pkts.iter_mut().enumerate() {
                let mut ops = [CryptoOp::new(e, base + i as u64)];
                rc.open(&mut ops);
                assert_eq!(ops[0].status, OpStatus::Ok, "esn {esn} packet {i}");
                assert_eq!(body(t, e), body(t, &plain[i]));
            }

            // Tampered and short packets in the middle of a burst fail alone.
            let mut pkts = sealed.clone();
            pkts[3][30] ^= 0x80;
            let n = pkts[40].len();
            pkts[40][n - 1] ^= 1;
            pkts[50].truncate(20);
            pkts[51].pop();
            let mut ops: Vec<CryptoOp> =
                pkts.iter_mut().enumerate().map(|(i, e)| CryptoOp::new(e, base + i as u64)).collect();
            mb.open(&mut ops);
            for (i, o) in ops.iter().enumerate() {
                let want = match i {
                    3 | 40 => OpStatus::AuthFailed,
                    50 | 51 => OpStatus::BadLength,
                    _ => OpStatus::Ok,
                };
                assert_eq!(o.status, want, "esn {esn} packet {i}");
            }
            assert!(body(t, &pkts[3]).iter().all(|&b| b == 0));
            assert!(body(t, &pkts[40]).iter().all(|&b| b == 0));
            assert_eq!(body(t, &pkts[4]), body(t, &plain[4]));
        }
    }

    /// Bursts longer than MAX_BURST are processed in chunks.
    #[test]
    fn bursts_longer_than_max_burst() {
        for t in [Transform::Aes256Sha256, Transform::Chacha20Poly1305] {
            let p = provider().unwrap();
            let c = p.new_cipher(t, &keys(t), true).unwrap();
            let plain: Vec<Vec<u8>> =
                (0..150u64).map(|s| packet(t, s + 1, &vec![s as u8; 20 + s as usize * 3])).collect();
            let mut pkts = plain.clone();
            let mut ops: Vec<CryptoOp> =
                pkts.iter_mut().enumerate().map(|(i, e)| CryptoOp::new(e, i as u64 + 1)).collect();
            c.seal(&mut ops);
            assert!(ops.iter().all(|o| o.status == OpStatus::Ok));
            c.open(&mut ops);
            assert!(ops.iter().all(|o| o.status == OpStatus::Ok), "{t}");
            drop(ops);
            for (a, b) in pkts.iter().zip(&plain) {
                assert_eq!(body(t, a), body(t, b));
            }
        }
    }

    /// One cipher used from two threads at once (each with its own IMB_MGR).
    #[test]
    fn one_cipher_two_threads() {
        let p = provider().unwrap();
        for t in [Transform::Aes128Sha1, Transform::Aes128Gcm16, Transform::Chacha20Poly1305] {
            let c = p.new_cipher(t, &keys(t), false).unwrap();
            let rc = RustCrypto.new_cipher(t, &keys(t), false).unwrap();
            std::thread::scope(|s| {
                for th in 0..2u64 {
                    let (c, rc) = (&*c, &*rc);
                    s.spawn(move || {
                        for round in 0..50u64 {
                            let first = th * 1_000_000 + round * 32 + 1;
                            let plain: Vec<Vec<u8>> = (0..32u64)
                                .map(|i| {
                                    let len = ((first + i) % 300) as usize;
                                    packet(t, first + i, &vec![(th + i) as u8; len])
                                })
                                .collect();
                            let mut pkts = plain.clone();
                            let mut ops: Vec<CryptoOp> =
                                pkts.iter_mut().enumerate().map(|(i, e)| CryptoOp::new(e, first + i as u64)).collect();
                            c.seal(&mut ops);
                            assert!(ops.iter().all(|o| o.status == OpStatus::Ok));
                            drop(ops);
                            let mut copy = pkts.clone();
                            let mut ops: Vec<CryptoOp> =
                                pkts.iter_mut().enumerate().map(|(i, e)| CryptoOp::new(e, first + i as u64)).collect();
                            c.open(&mut ops);
                            assert!(ops.iter().all(|o| o.status == OpStatus::Ok), "{t}");
                            drop(ops);
                            for (i, e) in copy.iter_mut().enumerate() {
                                let mut ops = [CryptoOp::new(e, first + i as u64)];
                                rc.open(&mut ops);
                                assert_eq!(ops[0].status, OpStatus::Ok, "{t}");
                            }
                            for (a, b) in pkts.iter().zip(&plain) {
                                assert_eq!(body(t, a), body(t, b));
                            }
                        }
                    });
                }
            });
        }
    }
}
