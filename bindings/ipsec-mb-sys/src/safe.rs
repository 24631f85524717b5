//! A small safe layer over the raw bindings, so that crates above need no `unsafe`.
//!
//! * [`Mgr`]: an allocated and initialised `IMB_MGR`. A manager is not thread-safe, so `Mgr` is
//!   neither `Send` nor `Sync`; [`with_thread_mgr`] lends the calling thread its own manager,
//!   allocated on first use and freed when the thread exits.
//! * Key material — [`GcmKey`], [`CbcHmacKey`], [`ChachaPolyKey`] — is expanded once, kept in
//!   64-byte aligned boxes (the library wants 16-byte aligned round keys and a 64-byte aligned
//!   `gcm_key_data`), never changed afterwards, so shared by every thread's manager
//!   (`Send + Sync`), and zeroized on drop.
//! * [`Mgr::gcm_encrypt`] and [`Mgr::gcm_decrypt`]: the direct (one-shot) AES-GCM API.
//! * [`Job`] and [`Mgr::run_jobs`]: the multi-buffer job API. Every job of one call is
//!   submitted, then the manager is flushed before `run_jobs` returns (also when unwinding), so
//!   no job the library holds ever outlives the buffers, IVs, tags and keys it points to.
//!
//! Every `unsafe` block below says why it holds.

#![deny(clippy::undocumented_unsafe_blocks)]

use core::ffi::CStr;
use core::fmt;
use core::ops::Range;
use core::ptr::{self, NonNull};
use std::cell::RefCell;

use zeroize::Zeroize;

use crate as ffi;

/// Why the library could not be used, or why a request was refused before reaching it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// `alloc_mb_mgr` returned NULL.
    Alloc,
    /// `init_mb_mgr_auto` left this library error number (`IMB_ERR_*` or an `errno`).
    Init(i32),
    /// The library picked no architecture this layer knows of.
    UnknownArch(u32),
    /// This thread's manager is already lent out (a re-entrant call).
    Busy,
    /// This thread is exiting and its manager is gone.
    ThreadExiting,
    /// A key of a length the algorithm does not take.
    KeyLength,
    /// A tag length the algorithm does not produce.
    TagLength,
    /// A region outside its buffer, or a length the algorithm does not take.
    BadRange,
    /// Key data precomputed by a manager of another architecture.
    ArchMismatch,
}

impl Error {
    /// A short, static description.
    pub fn as_str(self) -> &'static str {
        match self {
            Error::Alloc => "alloc_mb_mgr failed",
            Error::Init(_) => "init_mb_mgr_auto failed",
            Error::UnknownArch(_) => "unknown architecture",
            Error::Busy => "this thread's manager is in use",
            Error::ThreadExiting => "thread exiting",
            Error::KeyLength => "bad key length",
            Error::TagLength => "bad tag length",
            Error::BadRange => "region outside its buffer or bad length",
            Error::ArchMismatch => "key data made for another architecture",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::Init(errno) => write!(f, "{}: {}", self.as_str(), strerror(errno)),
            Error::UnknownArch(a) => write!(f, "{} {a}", self.as_str()),
            e => f.write_str(e.as_str()),
        }
    }
}

impl std::error::Error for Error {}

/// The library's description of error number `errnum`.
pub fn strerror(errnum: i32) -> String {
    // SAFETY: imb_get_strerror takes any integer and returns a NUL-terminated string (a static
    // one for library errors, strerror()'s otherwise), or NULL, which is checked.
    let p = unsafe { ffi::imb_get_strerror(errnum) };
    if p.is_null() {
        return format!("error {errnum}");
    }
    // SAFETY: `p` is non-null and NUL-terminated (above); it is copied out at once.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// The version of the library linked, e.g. `1.3.0`.
pub fn version() -> String {
    // SAFETY: imb_get_version_str has no preconditions and returns a pointer to a static,
    // NUL-terminated string, or NULL, which is checked.
    let p = unsafe { ffi::imb_get_version_str() };
    if p.is_null() {
        return String::new();
    }
    // SAFETY: `p` is non-null and NUL-terminated (above); it is copied out at once.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// The code path a manager was initialised for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// No AES-NI: AES emulated in software.
    NoAesni,
    Sse,
    Avx,
    Avx2,
    /// AVX-512, with VAES/VPCLMULQDQ code paths where the CPU has them.
    Avx512,
}

impl Arch {
    fn from_raw(a: ffi::IMB_ARCH) -> Option<Arch> {
        Some(match a {
            ffi::IMB_ARCH_NOAESNI => Arch::NoAesni,
            ffi::IMB_ARCH_SSE => Arch::Sse,
            ffi::IMB_ARCH_AVX => Arch::Avx,
            ffi::IMB_ARCH_AVX2 => Arch::Avx2,
            ffi::IMB_ARCH_AVX512 => Arch::Avx512,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Arch::NoAesni => "no-aesni",
            Arch::Sse => "sse",
            Arch::Avx => "avx",
            Arch::Avx2 => "avx2",
            Arch::Avx512 => "avx512",
        }
    }
}

/// An allocated, initialised multi-buffer manager (`IMB_MGR`), freed on drop.
///
/// Not `Send`/`Sync`: a manager must not be used from two threads at once, and the raw pointer
/// keeps it on the thread that made it. See [`with_thread_mgr`].
pub struct Mgr {
    ptr: NonNull<ffi::IMB_MGR>,
    arch: Arch,
}

impl fmt::Debug for Mgr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mgr").field("arch", &self.arch).finish()
    }
}

impl Mgr {
    /// Allocates a manager and initialises it for the best code path of this CPU.
    pub fn new() -> Result<Mgr, Error> {
        // SAFETY: alloc_mb_mgr has no preconditions; flags 0 lets the library use every CPU
        // extension it detects. NULL is checked.
        let raw = unsafe { ffi::alloc_mb_mgr(0) };
        let ptr = NonNull::new(raw).ok_or(Error::Alloc)?;
        // Owned from here: freed by Drop on every early return below.
        let mut mgr = Mgr { ptr, arch: Arch::NoAesni };
        let mut arch: ffi::IMB_ARCH = ffi::IMB_ARCH_NONE;
        // SAFETY: `ptr` was just returned by alloc_mb_mgr and is used by nothing else; `arch` is
        // a valid place for the out-parameter.
        unsafe { ffi::init_mb_mgr_auto(ptr.as_ptr(), &mut arch) };
        // SAFETY: `ptr` is a live manager.
        let errno = unsafe { ffi::imb_get_errno(ptr.as_ptr()) };
        if errno != 0 {
            return Err(Error::Init(errno));
        }
        mgr.arch = Arch::from_raw(arch).ok_or(Error::UnknownArch(arch))?;
        Ok(mgr)
    }

    /// The code path this manager uses.
    pub fn arch(&self) -> Arch {
        self.arch
    }

    /// The `IMB_FEATURE_*` bits the library detected (and did not have disabled).
    pub fn features(&self) -> u64 {
        // SAFETY: `self.ptr` is a live, initialised manager; the shim only reads a field.
        unsafe { ffi::esprit_imb_features(self.ptr.as_ptr()) }
    }

    fn raw(&mut self) -> *mut ffi::IMB_MGR {
        self.ptr.as_ptr()
    }

    /// AES-GCM encryption of `data` in place with the 12-byte `iv` (salt ‖ explicit IV for
    /// ESP), authenticating `aad` too; writes the 16-byte tag.
    pub fn gcm_encrypt(
        &mut self,
        key: &GcmKey,
        iv: &[u8; 12],
        aad: &[u8],
        data: &mut [u8],
        tag: &mut [u8; 16],
    ) -> Result<(), Error> {
        self.gcm(Direction::Encrypt, key, iv, aad, data, tag)
    }

    /// AES-GCM decryption of `data` in place; writes the tag it computes over `aad` and the
    /// ciphertext to `computed_tag`.
    ///
    /// `data` then holds plaintext that is **not yet authenticated**: the caller must compare
    /// `computed_tag` with the received one in constant time, and wipe `data` if they differ.
    pub fn gcm_decrypt(
        &mut self,
        key: &GcmKey,
        iv: &[u8; 12],
        aad: &[u8],
        data: &mut [u8],
        computed_tag: &mut [u8; 16],
    ) -> Result<(), Error> {
        self.gcm(Direction::Decrypt, key, iv, aad, data, computed_tag)
    }

    fn gcm(
        &mut self,
        dir: Direction,
        key: &GcmKey,
        iv: &[u8; 12],
        aad: &[u8],
        data: &mut [u8],
        tag: &mut [u8; 16],
    ) -> Result<(), Error> {
        if key.arch != self.arch {
            return Err(Error::ArchMismatch);
        }
        let f: GcmFn = match (key.aes256, dir) {
            (false, Direction::Encrypt) => ffi::esprit_imb_aes128_gcm_enc,
            (false, Direction::Decrypt) => ffi::esprit_imb_aes128_gcm_dec,
            (true, Direction::Encrypt) => ffi::esprit_imb_aes256_gcm_enc,
            (true, Direction::Decrypt) => ffi::esprit_imb_aes256_gcm_dec,
        };
        let m = self.raw();
        let iv = j0(iv);
        let mut ctx = ffi::gcm_context_data::default();
        let p = data.as_mut_ptr();
        // SAFETY: `m` is this thread's live manager, borrowed exclusively through `self`;
        // `f` is the one-shot function for the key size the key data was precomputed for, by a
        // manager of the same architecture (checked above); that key data is 64-byte aligned
        // and alive for the call; `ctx` is a writable context; `p` is valid for reads and
        // writes of `data.len()` bytes (in place is supported); `iv` holds the 12 IV bytes the
        // function reads (padded to a whole block); `aad` has `aad.len()` readable bytes; `tag`
        // has room for the 16-byte tag asked for.
        unsafe {
            f(
                m,
                key.raw(),
                &mut ctx,
                p,
                p,
                data.len() as u64,
                iv.as_ptr(),
                aad.as_ptr(),
                aad.len() as u64,
                tag.as_mut_ptr(),
                16,
            )
        };
        Ok(())
    }

    /// Runs `jobs` through the multi-buffer job API: submits every job, then flushes the
    /// manager, so that every job has finished when this returns. Each job's
    /// [`status`](Job::status) tells how it ended; jobs may complete in any order.
    pub fn run_jobs(&mut self, jobs: &mut [Job<'_>]) {
        let m = self.raw();
        // Should anything below unwind, the guard still waits for every job the library holds,
        // before `jobs` (their buffers, IVs and tags) can go away.
        let _flush = FlushOnDrop(m);
        for i in 0..jobs.len() {
            let Some(job) = jobs.get_mut(i) else { break };
            job.status = JobStatus::NotRun;
            let raw = job.raw_job(i);
            // SAFETY: `m` is this thread's live manager, borrowed exclusively through `self`.
            let slot = unsafe { ffi::esprit_imb_get_next_job(m) };
            if slot.is_null() {
                continue;
            }
            // SAFETY: `slot` is the manager's next free job, valid and aligned for one IMB_JOB
            // and not used by the library until it is submitted. The pointers in `raw` point
            // into `jobs[i]` (IV, AAD, tag output), its buffer and its key: all borrowed for the
            // whole of this call, not touched again until the job has completed, and every job
            // completes before this function returns (final flush below, or the guard).
            unsafe { slot.write(raw) };
            // SAFETY: `m` is live; the job returned by get_next_job was just filled in.
            let done = unsafe { ffi::esprit_imb_submit_job(m) };
            complete(done, jobs);
            loop {
                // SAFETY: `m` is live.
                let done = unsafe { ffi::esprit_imb_get_completed_job(m) };
                if done.is_null() {
                    break;
                }
                complete(done, jobs);
            }
        }
        loop {
            // SAFETY: `m` is live; flushing forces the remaining jobs to completion.
            let done = unsafe { ffi::esprit_imb_flush_job(m) };
            if done.is_null() {
                break;
            }
            complete(done, jobs);
        }
    }
}

impl Drop for Mgr {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from alloc_mb_mgr, is freed only here, and holds no job in flight
        // (run_jobs always flushes before returning).
        unsafe { ffi::free_mb_mgr(self.ptr.as_ptr()) };
    }
}

/// The signature of the one-shot AES-GCM functions (`IMB_AES128_GCM_ENC`, ...).
type GcmFn = unsafe extern "C" fn(
    *mut ffi::IMB_MGR,
    *const ffi::gcm_key_data,
    *mut ffi::gcm_context_data,
    *mut u8,
    *const u8,
    u64,
    *const u8,
    *const u8,
    u64,
    *mut u8,
    u64,
);

/// The 16-byte pre-counter block J0 = IV ‖ 0x00000001 of a 12-byte GCM IV. The library appends
/// the counter itself and reads only 12 bytes, but handing it 16 makes sure that no code path
/// that loads a whole block could read past the IV.
fn j0(iv: &[u8; 12]) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..12].copy_from_slice(iv);
    b[15] = 1;
    b
}

/// Flushes every job left in a manager when dropped.
struct FlushOnDrop(*mut ffi::IMB_MGR);

impl Drop for FlushOnDrop {
    fn drop(&mut self) {
        loop {
            // SAFETY: the pointer is the live manager run_jobs borrows for the guard's lifetime.
            if unsafe { ffi::esprit_imb_flush_job(self.0) }.is_null() {
                break;
            }
        }
    }
}

/// Records the outcome of a job the library handed back.
fn complete(done: *mut ffi::IMB_JOB, jobs: &mut [Job<'_>]) {
    if done.is_null() {
        return;
    }
    // SAFETY: a non-null job returned by submit/get_completed/flush points to a slot inside the
    // manager, valid until the next get_next_job; two plain fields are read.
    let (idx, st) = unsafe { ((*done).user_data.addr(), (*done).status) };
    if let Some(j) = jobs.get_mut(idx) {
        j.status = if st == ffi::IMB_STATUS_COMPLETED { JobStatus::Completed } else { JobStatus::Failed(st) };
    }
}

thread_local! {
    static THREAD_MGR: RefCell<Option<Mgr>> = const { RefCell::new(None) };
}

/// Runs `f` with the calling thread's own manager, allocating and initialising it on first use;
/// it is freed when the thread exits.
///
/// Fails if the manager cannot be made, if called again from inside `f` ([`Error::Busy`]), or
/// while the thread is being torn down.
pub fn with_thread_mgr<R>(f: impl FnOnce(&mut Mgr) -> R) -> Result<R, Error> {
    THREAD_MGR
        .try_with(|cell| {
            let mut slot = cell.try_borrow_mut().map_err(|_| Error::Busy)?;
            if slot.is_none() {
                *slot = Some(Mgr::new()?);
            }
            match slot.as_mut() {
                Some(m) => Ok(f(m)),
                None => Err(Error::Alloc),
            }
        })
        .unwrap_or(Err(Error::ThreadExiting))
}

// ---- key material

const GCM_KEY_DATA_LEN: usize = core::mem::size_of::<ffi::gcm_key_data>();

/// Storage for one `gcm_key_data`, as bytes so that it can be zeroized without `unsafe`.
#[repr(C, align(64))]
struct GcmKeyStorage([u8; GCM_KEY_DATA_LEN]);

const _: () = assert!(core::mem::align_of::<GcmKeyStorage>() >= 64);
const _: () = assert!(core::mem::align_of::<GcmKeyStorage>() >= core::mem::align_of::<ffi::gcm_key_data>());

/// The expanded AES round keys and GHASH key powers of one AES-GCM key.
pub struct GcmKey {
    data: Box<GcmKeyStorage>,
    aes256: bool,
    arch: Arch,
}

impl fmt::Debug for GcmKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("GcmKey").field("aes256", &self.aes256).field("arch", &self.arch).finish_non_exhaustive()
    }
}

impl GcmKey {
    /// Precomputes the key data of a 16- or 32-byte AES key (`IMB_AES128_GCM_PRE` /
    /// `IMB_AES256_GCM_PRE`). The layout of that data depends on the manager's architecture:
    /// use the key only with managers of the same one (all managers of one process are).
    pub fn new(mgr: &mut Mgr, key: &[u8]) -> Result<GcmKey, Error> {
        let aes256 = match key.len() {
            16 => false,
            32 => true,
            _ => return Err(Error::KeyLength),
        };
        let mut data = Box::new(GcmKeyStorage([0; GCM_KEY_DATA_LEN]));
        let kd = data.0.as_mut_ptr().cast::<ffi::gcm_key_data>();
        let m = mgr.raw();
        if aes256 {
            // SAFETY: `m` is a live manager borrowed exclusively; `key` has the 32 bytes read;
            // `kd` points to size_of::<gcm_key_data>() writable bytes, 64-byte aligned.
            unsafe { ffi::esprit_imb_aes256_gcm_pre(m, key.as_ptr().cast(), kd) };
        } else {
            // SAFETY: as above, with the 16 bytes of an AES-128 key.
            unsafe { ffi::esprit_imb_aes128_gcm_pre(m, key.as_ptr().cast(), kd) };
        }
        Ok(GcmKey { data, aes256, arch: mgr.arch })
    }

    fn raw(&self) -> *const ffi::gcm_key_data {
        self.data.0.as_ptr().cast()
    }
}

impl Drop for GcmKey {
    fn drop(&mut self) {
        self.data.0.zeroize();
    }
}

/// One 64-byte hash block, aligned as the library's one-block functions like it.
#[repr(C, align(64))]
struct Block([u8; 64]);

/// AES round keys and HMAC pads. 64-byte aligned, so each array is too.
#[repr(C, align(64))]
struct CbcHmacKeyData {
    /// Up to 15 AES round keys (240 bytes) for encryption.
    enc: [u8; 256],
    /// ... and for decryption (equivalent inverse cipher).
    dec: [u8; 256],
    /// Hash state after the block key ⊕ ipad.
    ipad: [u8; 64],
    /// Hash state after the block key ⊕ opad.
    opad: [u8; 64],
}

/// The HMAC of a [`CbcHmacKey`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HmacAlg {
    Sha1,
    Sha256,
}

impl HmacAlg {
    fn raw(self) -> ffi::IMB_HASH_ALG {
        match self {
            HmacAlg::Sha1 => ffi::IMB_AUTH_HMAC_SHA_1,
            HmacAlg::Sha256 => ffi::IMB_AUTH_HMAC_SHA_256,
        }
    }

    /// The tag lengths the library produces: truncated as IPsec does, or whole.
    fn tag_len_ok(self, n: usize) -> bool {
        match self {
            HmacAlg::Sha1 => n == 12 || n == 20,
            HmacAlg::Sha256 => n == 16 || n == 32,
        }
    }
}

/// The expanded keys of AES-CBC with HMAC-SHA1 or HMAC-SHA-256, for the job API.
pub struct CbcHmacKey {
    data: Box<CbcHmacKeyData>,
    aes_key_len: u64,
    hmac: HmacAlg,
    tag_len: usize,
}

impl fmt::Debug for CbcHmacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("CbcHmacKey")
            .field("aes_key_len", &self.aes_key_len)
            .field("hmac", &self.hmac)
            .field("tag_len", &self.tag_len)
            .finish_non_exhaustive()
    }
}

impl CbcHmacKey {
    /// Expands a 16- or 32-byte AES key (`IMB_AES_KEYEXP_128/256`) and precomputes the inner
    /// and outer HMAC states of `hmac_key` (at most one 64-byte block), as DPDK's aesni_mb PMD
    /// does. `tag_len` is the length of tag the jobs output (12 or 20 for SHA1, 16 or 32 for
    /// SHA-256).
    pub fn new(
        mgr: &mut Mgr,
        aes_key: &[u8],
        hmac: HmacAlg,
        hmac_key: &[u8],
        tag_len: usize,
    ) -> Result<CbcHmacKey, Error> {
        let aes256 = match aes_key.len() {
            16 => false,
            32 => true,
            _ => return Err(Error::KeyLength),
        };
        if hmac_key.len() > 64 {
            return Err(Error::KeyLength);
        }
        if !hmac.tag_len_ok(tag_len) {
            return Err(Error::TagLength);
        }
        let mut data = Box::new(CbcHmacKeyData { enc: [0; 256], dec: [0; 256], ipad: [0; 64], opad: [0; 64] });
        let m = mgr.raw();
        let (enc, dec) = (data.enc.as_mut_ptr().cast(), data.dec.as_mut_ptr().cast());
        if aes256 {
            // SAFETY: `m` is a live manager borrowed exclusively; `aes_key` has the 32 bytes
            // read; `enc` and `dec` each have 256 writable bytes (15 round keys need 240),
            // 64-byte aligned, and do not overlap.
            unsafe { ffi::esprit_imb_aes_keyexp_256(m, aes_key.as_ptr().cast(), enc, dec) };
        } else {
            // SAFETY: as above, with the 16 bytes of an AES-128 key (11 round keys, 176 bytes).
            unsafe { ffi::esprit_imb_aes_keyexp_128(m, aes_key.as_ptr().cast(), enc, dec) };
        }
        let mut block = Block([0; 64]);
        for (pad, out) in [(0x36u8, &mut data.ipad), (0x5cu8, &mut data.opad)] {
            block.0 = [pad; 64];
            for (b, k) in block.0.iter_mut().zip(hmac_key) {
                *b ^= k;
            }
            let (src, dst) = (block.0.as_ptr().cast(), out.as_mut_ptr().cast());
            match hmac {
                // SAFETY: `m` is live; `src` is one readable 64-byte block; `dst` has 64
                // writable bytes for the 20-byte SHA1 state.
                HmacAlg::Sha1 => unsafe { ffi::esprit_imb_sha1_one_block(m, src, dst) },
                // SAFETY: as above, for the 32-byte SHA-256 state.
                HmacAlg::Sha256 => unsafe { ffi::esprit_imb_sha256_one_block(m, src, dst) },
            }
        }
        block.0.zeroize();
        Ok(CbcHmacKey { data, aes_key_len: if aes256 { 32 } else { 16 }, hmac, tag_len })
    }

    /// The length of the tags this key's jobs output.
    pub fn tag_len(&self) -> usize {
        self.tag_len
    }
}

impl Drop for CbcHmacKey {
    fn drop(&mut self) {
        self.data.enc.zeroize();
        self.data.dec.zeroize();
        self.data.ipad.zeroize();
        self.data.opad.zeroize();
    }
}

#[repr(C, align(64))]
struct Key32([u8; 32]);

/// A ChaCha20-Poly1305 key, for the job API.
pub struct ChachaPolyKey {
    key: Box<Key32>,
}

impl fmt::Debug for ChachaPolyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChachaPolyKey")
    }
}

impl ChachaPolyKey {
    /// A 32-byte key.
    pub fn new(key: &[u8]) -> Result<ChachaPolyKey, Error> {
        let key: [u8; 32] = key.try_into().map_err(|_| Error::KeyLength)?;
        Ok(ChachaPolyKey { key: Box::new(Key32(key)) })
    }
}

impl Drop for ChachaPolyKey {
    fn drop(&mut self) {
        self.key.0.zeroize();
    }
}

// ---- the job API

/// Encrypt (then authenticate) or (authenticate then) decrypt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Encrypt,
    Decrypt,
}

/// How a [`Job`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    /// Not run (yet).
    NotRun,
    /// Ciphered and hashed.
    Completed,
    /// The library refused or failed it, with this `IMB_STATUS`.
    Failed(u32),
}

#[derive(Debug, Clone, Copy)]
enum JobKey<'a> {
    CbcHmac(&'a CbcHmacKey),
    ChachaPoly(&'a ChachaPolyKey),
}

/// One operation for [`Mgr::run_jobs`]: a buffer, the regions of it to cipher and to hash, and
/// the IV, AAD and tag output the job points to while it runs.
#[derive(Debug)]
pub struct Job<'a> {
    key: JobKey<'a>,
    buf: &'a mut [u8],
    dir: Direction,
    cipher: Range<usize>,
    hash: Range<usize>,
    iv: [u8; 16],
    iv_len: usize,
    aad: [u8; 16],
    aad_len: usize,
    tag: [u8; 32],
    tag_len: usize,
    status: JobStatus,
}

fn within(r: &Range<usize>, len: usize) -> bool {
    r.start <= r.end && r.end <= len
}

impl<'a> Job<'a> {
    /// AES-CBC with HMAC over `buf`: the `cipher` region (a non-empty whole number of 16-byte
    /// blocks) is encrypted with `iv` and then the `hash` region is authenticated, or the
    /// `hash` region is authenticated and then the `cipher` region decrypted. The HMAC tag
    /// goes to [`Job::tag`], not into `buf`.
    pub fn cbc_hmac(
        key: &'a CbcHmacKey,
        dir: Direction,
        buf: &'a mut [u8],
        iv: [u8; 16],
        cipher: Range<usize>,
        hash: Range<usize>,
    ) -> Result<Job<'a>, Error> {
        if !within(&cipher, buf.len()) || !within(&hash, buf.len()) {
            return Err(Error::BadRange);
        }
        if cipher.is_empty() || cipher.len() % 16 != 0 {
            return Err(Error::BadRange);
        }
        Ok(Job {
            key: JobKey::CbcHmac(key),
            buf,
            dir,
            cipher,
            hash,
            iv,
            iv_len: 16,
            aad: [0; 16],
            aad_len: 0,
            tag: [0; 32],
            tag_len: key.tag_len,
            status: JobStatus::NotRun,
        })
    }

    /// ChaCha20-Poly1305 (RFC 8439) over the `data` region of `buf` with a 12-byte nonce and up
    /// to 16 bytes of AAD. The 16-byte tag goes to [`Job::tag`]. On decryption the library
    /// decrypts while it computes the tag: the caller must compare it and wipe on mismatch.
    pub fn chacha20_poly1305(
        key: &'a ChachaPolyKey,
        dir: Direction,
        buf: &'a mut [u8],
        nonce: [u8; 12],
        aad: &[u8],
        data: Range<usize>,
    ) -> Result<Job<'a>, Error> {
        if !within(&data, buf.len()) || aad.len() > 16 {
            return Err(Error::BadRange);
        }
        let mut iv = [0u8; 16];
        iv[..12].copy_from_slice(&nonce);
        let mut a = [0u8; 16];
        a[..aad.len()].copy_from_slice(aad);
        Ok(Job {
            key: JobKey::ChachaPoly(key),
            buf,
            dir,
            cipher: data.clone(),
            hash: data,
            iv,
            iv_len: 12,
            aad: a,
            aad_len: aad.len(),
            tag: [0; 32],
            tag_len: 16,
            status: JobStatus::NotRun,
        })
    }

    /// How the job ended.
    pub fn status(&self) -> JobStatus {
        self.status
    }

    /// The tag the job computed (meaningful once [`JobStatus::Completed`]).
    pub fn tag(&self) -> &[u8] {
        &self.tag[..self.tag_len]
    }

    /// The buffer the job works on.
    pub fn buf(&mut self) -> &mut [u8] {
        self.buf
    }

    /// The IMB_JOB for this job; `idx` goes to `user_data`. The pointers in it point into
    /// `self`, its buffer and its key.
    fn raw_job(&mut self, idx: usize) -> ffi::IMB_JOB {
        let mut j = ffi::IMB_JOB::default();
        let base = self.buf.as_mut_ptr();
        j.__bindgen_anon_1.src = base.cast_const();
        // `src` is the start of the buffer (cipher and hash offsets count from it), but `dst`
        // is where the ciphered output goes: in place, that is the start of the cipher region.
        // `cipher.start <= buf.len()` (checked when the job was made): still in the buffer.
        j.__bindgen_anon_2.dst = base.wrapping_add(self.cipher.start);
        j.__bindgen_anon_3.cipher_start_src_offset_in_bytes = self.cipher.start as u64;
        j.__bindgen_anon_4.msg_len_to_cipher_in_bytes = self.cipher.len() as u64;
        j.hash_start_src_offset_in_bytes = self.hash.start as u64;
        j.__bindgen_anon_5.msg_len_to_hash_in_bytes = self.hash.len() as u64;
        j.iv = self.iv.as_ptr();
        j.iv_len_in_bytes = self.iv_len as u64;
        j.auth_tag_output = self.tag.as_mut_ptr();
        j.auth_tag_output_len_in_bytes = self.tag_len as u64;
        (j.cipher_direction, j.chain_order) = match self.dir {
            Direction::Encrypt => (ffi::IMB_DIR_ENCRYPT, ffi::IMB_ORDER_CIPHER_HASH),
            Direction::Decrypt => (ffi::IMB_DIR_DECRYPT, ffi::IMB_ORDER_HASH_CIPHER),
        };
        j.user_data = ptr::without_provenance_mut(idx);
        match self.key {
            JobKey::CbcHmac(k) => {
                j.enc_keys = k.data.enc.as_ptr().cast();
                j.dec_keys = k.data.dec.as_ptr().cast();
                j.key_len_in_bytes = k.aes_key_len;
                j.cipher_mode = ffi::IMB_CIPHER_CBC;
                j.hash_alg = k.hmac.raw();
                j.u.HMAC = ffi::IMB_JOB__bindgen_ty_6__HMAC_specific_fields {
                    _hashed_auth_key_xor_ipad: k.data.ipad.as_ptr(),
                    _hashed_auth_key_xor_opad: k.data.opad.as_ptr(),
                };
            }
            JobKey::ChachaPoly(k) => {
                j.enc_keys = k.key.0.as_ptr().cast();
                j.dec_keys = k.key.0.as_ptr().cast();
                j.key_len_in_bytes = 32;
                j.cipher_mode = ffi::IMB_CIPHER_CHACHA20_POLY1305;
                j.hash_alg = ffi::IMB_AUTH_CHACHA20_POLY1305;
                j.u.CHACHA20_POLY1305 = ffi::IMB_JOB__bindgen_ty_6__CHACHA20_POLY1305_specific_fields {
                    aad: self.aad.as_ptr().cast(),
                    aad_len_in_bytes: self.aad_len as u64,
                    ctx: ptr::null_mut(),
                };
            }
        }
        j
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manager_initialises() {
        let arch = with_thread_mgr(|m| m.arch()).unwrap();
        assert!(!version().is_empty());
        eprintln!("intel-ipsec-mb {} arch {}", version(), arch.name());
    }

    #[test]
    fn reentrant_use_is_refused() {
        let r = with_thread_mgr(|_| with_thread_mgr(|_| ()));
        assert_eq!(r, Ok(Err(Error::Busy)));
    }

    #[test]
    fn bad_ranges_are_refused() {
        let k = with_thread_mgr(|m| CbcHmacKey::new(m, &[1; 16], HmacAlg::Sha1, &[2; 20], 12)).unwrap().unwrap();
        let mut buf = [0u8; 64];
        assert!(Job::cbc_hmac(&k, Direction::Encrypt, &mut buf, [0; 16], 24..48, 0..48).is_err());
        assert!(Job::cbc_hmac(&k, Direction::Encrypt, &mut buf, [0; 16], 48..80, 0..48).is_err());
        assert!(Job::cbc_hmac(&k, Direction::Encrypt, &mut buf, [0; 16], 16..48, 0..65).is_err());
        assert!(Job::cbc_hmac(&k, Direction::Encrypt, &mut buf, [0; 16], 16..48, 0..64).is_ok());
    }

    /// AES-128-CBC of RFC 3602 §4 case 2 at an offset in the buffer, and back.
    #[test]
    fn cbc_at_an_offset_round_trips() {
        let hex = |s: &str| -> Vec<u8> {
            (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
        };
        let key = hex("c286696d887c9aa0611bbb3e2025a45a");
        let iv: [u8; 16] = hex("562e17996d093d28ddb3ba695a2e6f58").try_into().unwrap();
        let pt = hex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
        let ct = hex("d296cd94c2cccf8a3a863028b5e1dc0a7586602d253cfff91b8266bea6d61ab1");
        let k = with_thread_mgr(|m| CbcHmacKey::new(m, &key, HmacAlg::Sha1, &[2; 20], 12)).unwrap().unwrap();
        let mut buf = [0xeeu8; 64];
        buf[16..48].copy_from_slice(&pt);
        let mut jobs = [Job::cbc_hmac(&k, Direction::Encrypt, &mut buf, iv, 16..48, 0..48).unwrap()];
        with_thread_mgr(|m| m.run_jobs(&mut jobs)).unwrap();
        assert_eq!(jobs[0].status(), JobStatus::Completed);
        let tag = jobs[0].tag().to_vec();
        assert_eq!(&buf[16..48], &ct[..]);
        assert!(buf[..16].iter().chain(&buf[48..]).all(|&b| b == 0xee));
        let mut jobs = [Job::cbc_hmac(&k, Direction::Decrypt, &mut buf, iv, 16..48, 0..48).unwrap()];
        with_thread_mgr(|m| m.run_jobs(&mut jobs)).unwrap();
        assert_eq!(jobs[0].status(), JobStatus::Completed);
        assert_eq!(jobs[0].tag(), &tag[..]);
        assert_eq!(&buf[16..48], &pt[..]);
    }

    /// RFC 4231 test case 2 (HMAC-SHA-256, "Jefe") through an AES-CBC job whose ciphered
    /// region is separate from the hashed one.
    #[test]
    fn hmac_sha256_through_a_job() {
        let msg = b"what do ya want for nothing?";
        let k = with_thread_mgr(|m| CbcHmacKey::new(m, &[0; 16], HmacAlg::Sha256, b"Jefe", 32)).unwrap().unwrap();
        let mut buf = [0u8; 28 + 16];
        buf[..28].copy_from_slice(msg);
        let mut jobs = [Job::cbc_hmac(&k, Direction::Decrypt, &mut buf, [0; 16], 28..44, 0..28).unwrap()];
        with_thread_mgr(|m| m.run_jobs(&mut jobs)).unwrap();
        assert_eq!(jobs[0].status(), JobStatus::Completed);
        let want = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        let got: String = jobs[0].tag().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(got, want);
    }
}
