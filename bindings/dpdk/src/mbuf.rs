//! Single-owner packet mbufs.

use core::fmt;
use core::marker::PhantomData;
use core::ptr::NonNull;

use dpdk_sys as ffi;
use esprit_esp::buf::PacketBuf;

/// One packet in one DPDK mbuf segment, with exactly one owner.
///
/// * Not `Clone`: DPDK's reference count stays at 1 while an `Mbuf` exists, so
///   [`PacketBuf::data_mut`] is never shared.
/// * `Drop` frees it (`rte_pktmbuf_free`) back to its pool; [`crate::TxQueue::tx_burst`] and
///   [`Mbuf::into_raw`] hand it to DPDK instead.
/// * `Send`: it moves from lcore to lcore (rx, crypto, tx).
/// * Always one segment, so its data is one contiguous slice: the pools' mbufs start that
///   way and no method chains them; the receive queues refuse chained (and shared) mbufs
///   rather than linearising them (see [`crate::RxQueue::rx_burst`]).
/// * `'a` is a borrow of the [`crate::Mempool`] it was allocated from or of the
///   [`crate::RxQueue`] it was received on, so it cannot outlive the pool or the port.
///
/// `repr(transparent)` over a non-null `*mut rte_mbuf`: a `[Mbuf]` is a `struct rte_mbuf *[]`,
/// so bursts go to and from DPDK without copying the pointers.
#[repr(transparent)]
pub struct Mbuf<'a> {
    m: NonNull<ffi::rte_mbuf>,
    _pool: PhantomData<&'a ()>,
}

// Bursts reinterpret `[Mbuf]` as `[*mut rte_mbuf]`.
const _: () = assert!(
    core::mem::size_of::<Mbuf<'static>>() == core::mem::size_of::<*mut ffi::rte_mbuf>()
        && core::mem::align_of::<Mbuf<'static>>() == core::mem::align_of::<*mut ffi::rte_mbuf>()
);

// SAFETY: an Mbuf is the only handle to its mbuf (refcnt 1, not shared, see `from_raw`), and
// freeing an mbuf from any thread is supported (the pool's ring is multi-producer; a non-EAL
// thread bypasses the per-lcore caches).
unsafe impl Send for Mbuf<'_> {}
// SAFETY: `&Mbuf` only reads the mbuf; every write needs `&mut Mbuf` or ownership.
unsafe impl Sync for Mbuf<'_> {}

impl<'a> Mbuf<'a> {
    /// Takes ownership of a raw mbuf, e.g. one [`Mbuf::into_raw`] gave out.
    ///
    /// # Safety
    ///
    /// `m` points to a valid, direct (not indirect, no external buffer), single-segment packet
    /// mbuf whose reference count is 1 and that nothing else will use or free; its pool
    /// outlives `'a`, and the EAL outlives the returned `Mbuf`.
    #[inline]
    pub unsafe fn from_raw(m: NonNull<ffi::rte_mbuf>) -> Mbuf<'a> {
        Mbuf { m, _pool: PhantomData }
    }

    /// Gives up ownership without freeing: the caller now owns the mbuf (to pass to DPDK, or
    /// back to [`Mbuf::from_raw`]).
    #[inline]
    pub fn into_raw(self) -> NonNull<ffi::rte_mbuf> {
        let m = self.m;
        core::mem::forget(self);
        m
    }

    /// The raw mbuf, still owned by `self`.
    #[inline]
    pub fn as_ptr(&self) -> *const ffi::rte_mbuf {
        self.m.as_ptr()
    }

    #[inline]
    fn raw(&self) -> &ffi::rte_mbuf {
        // SAFETY: `self.m` is valid while `self` lives and only `&mut self` methods write
        // through it (type invariant, from `from_raw`).
        unsafe { self.m.as_ref() }
    }

    /// The receive-side RSS hash the driver computed, if any (`mbuf->hash.rss` when
    /// `ol_flags` has `RTE_MBUF_F_RX_RSS_HASH`).
    #[inline]
    pub fn rss_hash(&self) -> Option<u32> {
        if self.ol_flags() & ffi::RTE_MBUF_F_RX_RSS_HASH == 0 {
            return None;
        }
        // SAFETY: `self.m` is a valid mbuf (type invariant); the call reads one field.
        Some(unsafe { ffi::esprit_rte_mbuf_rss_hash(self.m.as_ptr()) })
    }

    /// The offload flags (`RTE_MBUF_F_*`).
    #[inline]
    pub fn ol_flags(&self) -> u64 {
        self.raw().ol_flags
    }

    /// The port the packet was received on (meaningful for received mbufs only).
    #[inline]
    pub fn port(&self) -> u16 {
        self.raw().port
    }

    /// The size of the buffer: headroom + data + tailroom.
    #[inline]
    pub fn capacity(&self) -> usize {
        usize::from(self.raw().buf_len)
    }

    /// Appends `bytes` at the back; false, and no change, if the tailroom is too small.
    pub fn extend_from_slice(&mut self, bytes: &[u8]) -> bool {
        let old = self.len();
        if !self.append(bytes.len()) {
            return false;
        }
        self.data_mut()[old..].copy_from_slice(bytes);
        true
    }

    /// Empties the mbuf and restores the default headroom (`rte_pktmbuf_reset`), for reuse.
    pub fn reset(&mut self) {
        // SAFETY: `self.m` is a valid single-segment mbuf we own exclusively (type invariant);
        // reset keeps it single-segment.
        unsafe { ffi::esprit_rte_pktmbuf_reset(self.m.as_ptr()) }
    }
}

impl Drop for Mbuf<'_> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: we own the mbuf (type invariant) and never use it again; its pool is alive
        // (the borrow `'a`, or the pool's leak-unless-all-back rule).
        unsafe { ffi::esprit_rte_pktmbuf_free(self.m.as_ptr()) }
    }
}

impl fmt::Debug for Mbuf<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mbuf")
            .field("len", &self.len())
            .field("headroom", &self.headroom())
            .field("tailroom", &self.tailroom())
            .finish()
    }
}

/// The data of a single-segment mbuf: `data_len` bytes from `buf_addr + data_off`, with
/// `data_off` bytes of headroom before and `buf_len - data_off - data_len` of tailroom after.
/// The getters read the mbuf fields directly (inlined, no call); the four resizing operations
/// call DPDK's own (`rte_pktmbuf_prepend`, `_append`, `_adj`, `_trim`), whose bounds checks
/// match the trait's "false, and no change".
impl PacketBuf for Mbuf<'_> {
    #[inline]
    fn data(&self) -> &[u8] {
        let m = self.raw();
        // SAFETY: for a valid single-segment mbuf (type invariant) the `data_len` bytes from
        // `buf_addr + data_off` lie inside its buffer, are initialised (DPDK buffers are
        // allocated zeroed or written by a driver), and are ours alone while `&self` lives;
        // `buf_addr` is never null.
        unsafe {
            core::slice::from_raw_parts(m.buf_addr.cast::<u8>().add(usize::from(m.data_off)), usize::from(m.data_len))
        }
    }

    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        let m = self.raw();
        let (addr, off, len) = (m.buf_addr, m.data_off, m.data_len);
        // SAFETY: as in `data`, and exclusively ours while `&mut self` lives: the reference
        // count is 1, so no other owner can see the buffer.
        unsafe { core::slice::from_raw_parts_mut(addr.cast::<u8>().add(usize::from(off)), usize::from(len)) }
    }

    #[inline]
    fn headroom(&self) -> usize {
        usize::from(self.raw().data_off)
    }

    #[inline]
    fn tailroom(&self) -> usize {
        let m = self.raw();
        usize::from(m.buf_len) - usize::from(m.data_off) - usize::from(m.data_len)
    }

    #[inline]
    fn prepend(&mut self, n: usize) -> bool {
        let Ok(n) = u16::try_from(n) else {
            return false;
        };
        // SAFETY: `self.m` is a valid mbuf we own exclusively (type invariant); prepend checks
        // `n` against the headroom and changes nothing when it returns NULL.
        !unsafe { ffi::esprit_rte_pktmbuf_prepend(self.m.as_ptr(), n) }.is_null()
    }

    #[inline]
    fn append(&mut self, n: usize) -> bool {
        let Ok(n) = u16::try_from(n) else {
            return false;
        };
        // SAFETY: as in `prepend`; append checks `n` against the (single) segment's tailroom.
        !unsafe { ffi::esprit_rte_pktmbuf_append(self.m.as_ptr(), n) }.is_null()
    }

    #[inline]
    fn adj(&mut self, n: usize) -> bool {
        let Ok(n) = u16::try_from(n) else {
            return false;
        };
        // SAFETY: as in `prepend`; adj checks `n` against the segment's data length.
        !unsafe { ffi::esprit_rte_pktmbuf_adj(self.m.as_ptr(), n) }.is_null()
    }

    #[inline]
    fn trim(&mut self, n: usize) -> bool {
        let Ok(n) = u16::try_from(n) else {
            return false;
        };
        // SAFETY: as in `prepend`; trim checks `n` against the last (only) segment's length.
        unsafe { ffi::esprit_rte_pktmbuf_trim(self.m.as_ptr(), n) == 0 }
    }
}
