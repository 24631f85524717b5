//! Shared mappings of files under /dev/shm, and the open-file-description locks
//! (`F_OFD_SETLK`) that say which process holds which role in a region.
//!
//! OFD locks belong to an open file, not to a process: two opens in one process conflict
//! as two processes do, and the kernel drops a lock when its holder closes the file or dies
//! — which is how a peer learns that a restart is possible.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::ptr::NonNull;

/// A `MAP_SHARED` mapping of a whole file, unmapped on drop. It keeps the file open, and so
/// keeps the file's locks.
#[derive(Debug)]
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
    file: File,
}

// SAFETY: the mapping is plain shared memory; every access through it is either an atomic
// or a copy of bytes that the ring or stats protocol gives to one party at a time.
unsafe impl Send for Mapping {}
// SAFETY: as above.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps the first `len` bytes of `file` (which must be at least that long).
    pub fn new(file: File, len: usize, writable: bool) -> io::Result<Mapping> {
        if len == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty mapping"));
        }
        let prot = if writable { libc::PROT_READ | libc::PROT_WRITE } else { libc::PROT_READ };
        // SAFETY: a fresh mapping chosen by the kernel (address null); the fd is valid for
        // the duration of the call. Failure is reported as MAP_FAILED.
        let p = unsafe { libc::mmap(core::ptr::null_mut(), len, prot, libc::MAP_SHARED, file.as_raw_fd(), 0) };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned a null mapping"))?;
        Ok(Mapping { ptr, len, file })
    }

    pub fn ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    /// A `T` at `offset`.
    ///
    /// # Safety
    /// `offset + size_of::<T>() <= len`, `offset` is aligned for `T`, and any bit pattern is
    /// a valid `T` (atomics over integers) — and the mapping outlives the reference.
    pub unsafe fn at<T>(&self, offset: usize) -> &T {
        debug_assert!(offset + core::mem::size_of::<T>() <= self.len);
        debug_assert!(offset % core::mem::align_of::<T>() == 0);
        // SAFETY: guaranteed by the caller; page-aligned base plus aligned offset.
        unsafe { &*self.ptr.as_ptr().add(offset).cast::<T>() }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly what mmap returned, and no reference into the
        // mapping outlives `self` (every holder keeps the `Mapping` alive through an Arc).
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

/// One `F_OFD_*` command on the one-byte range at `byte`, retried on EINTR.
fn ofd(file: &File, cmd: libc::c_int, kind: libc::c_short, byte: i64) -> io::Result<libc::flock> {
    // SAFETY: `flock` is a plain C struct for which all-zero is valid.
    let mut fl: libc::flock = unsafe { core::mem::zeroed() };
    fl.l_type = kind;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = byte as libc::off_t;
    fl.l_len = 1;
    // l_pid must be 0 for OFD locks.
    loop {
        // SAFETY: a valid fd and a pointer to a live, initialised `flock`.
        let r = unsafe { libc::fcntl(file.as_raw_fd(), cmd, &mut fl as *mut libc::flock) };
        if r == 0 {
            return Ok(fl);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Takes the write lock on one byte; `Ok(false)` if another open file holds it.
pub(crate) fn try_lock(file: &File, byte: i64) -> io::Result<bool> {
    match ofd(file, libc::F_OFD_SETLK, libc::F_WRLCK as libc::c_short, byte) {
        Ok(_) => Ok(true),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EACCES)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Takes the write lock on one byte, waiting for it.
pub(crate) fn lock_wait(file: &File, byte: i64) -> io::Result<()> {
    ofd(file, libc::F_OFD_SETLKW, libc::F_WRLCK as libc::c_short, byte).map(|_| ())
}

pub(crate) fn unlock(file: &File, byte: i64) -> io::Result<()> {
    ofd(file, libc::F_OFD_SETLK, libc::F_UNLCK as libc::c_short, byte).map(|_| ())
}

/// True if another open file holds a lock on `byte`.
pub(crate) fn is_locked(file: &File, byte: i64) -> io::Result<bool> {
    let fl = ofd(file, libc::F_OFD_GETLK, libc::F_WRLCK as libc::c_short, byte)?;
    Ok(fl.l_type != libc::F_UNLCK as libc::c_short)
}

/// Nanoseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn unix_ns() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}
