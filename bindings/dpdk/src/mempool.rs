//! Mbuf pools.

use core::marker::PhantomData;
use core::ptr::NonNull;
use std::ffi::CString;
use std::sync::atomic::{fence, Ordering};

use dpdk_sys as ffi;

use crate::eal::Eal;
use crate::error::Error;
use crate::mbuf::Mbuf;

/// A pool of packet mbufs (`rte_pktmbuf_pool_create`), living no longer than the [`Eal`].
///
/// Mbufs allocated from it ([`Mempool::alloc`]) borrow it, and so does a [`crate::Port`]
/// whose driver fills its receive queues from it.
///
/// # When the pool is freed
///
/// Dropping a `Mempool` calls `rte_mempool_free` only if **every one of its mbufs is back in
/// the pool's common store**; otherwise the pool is left allocated (leaked until
/// `rte_eal_cleanup`), so that no mbuf anywhere can point into freed memory. The borrows
/// make that the rare case, but they cannot see everything: an mbuf sent into a `net_ring`
/// and not yet received, an mbuf received on another port (it belongs to the pool that
/// allocated it, whatever port it arrived on), or one forgotten with `mem::forget` or
/// [`Mbuf::into_raw`].
///
/// "In the common store" does not count the per-lcore caches: an mbuf freed on an EAL lcore
/// may sit in that lcore's cache. The drop flushes the calling lcore's cache first; worker
/// lcores that used the pool call [`Mempool::flush_local_cache`] before they finish. The
/// check reads the common store (a ring whose count only moves once an mbuf is completely
/// back) rather than `rte_mempool_avail_count`, which adds the caches' lengths and can, while
/// another lcore is freeing, count an mbuf that lcore is still writing into its cache.
/// [`Mempool::try_free`] does the same and tells whether it freed.
#[derive(Debug)]
pub struct Mempool<'e> {
    mp: NonNull<ffi::rte_mempool>,
    name: String,
    /// Set once `rte_mempool_free` ran (by `try_free`), so that drop does not run it again.
    freed: bool,
    _eal: PhantomData<&'e Eal>,
}

// SAFETY: a mempool created by rte_pktmbuf_pool_create uses DPDK's default multi-producer,
// multi-consumer ring, so allocating and freeing from several threads at once is supported;
// the per-lcore caches are only touched by their own lcore. Nothing in `Mempool` is
// thread-affine.
unsafe impl Send for Mempool<'_> {}
// SAFETY: as for Send: every `&self` method is an MT-safe DPDK call or a read of fields set at
// creation.
unsafe impl Sync for Mempool<'_> {}

impl<'e> Mempool<'e> {
    /// Creates a pool of `n` mbufs (`rte_pktmbuf_pool_create`), each with `data_room` bytes of
    /// buffer (headroom included: `RTE_MBUF_DEFAULT_BUF_SIZE` is 2048 + 128) and `priv_size`
    /// bytes of private area (a multiple of 8), with a per-lcore cache of `cache` mbufs (at most
    /// `RTE_MEMPOOL_CACHE_MAX_SIZE` and `n / 1.5`; 0 for none), on NUMA `socket`
    /// ([`crate::SOCKET_ANY`] for any). `n` is best one less than a power of two. `name` must be
    /// unique in the process and at most 25 bytes
    /// (`RTE_MEMPOOL_NAMESIZE` - 1).
    ///
    /// # Errors
    ///
    /// [`Error::Nul`], or [`Error::Dpdk`] from `rte_pktmbuf_pool_create` with `rte_errno`
    /// (`EEXIST` for a name in use, `EINVAL` for a bad cache or private size, `ENOMEM`, ...).
    pub fn new(
        _eal: &'e Eal,
        name: &str,
        n: u32,
        cache: u32,
        priv_size: u16,
        data_room: u16,
        socket: i32,
    ) -> Result<Mempool<'e>, Error> {
        let cname = CString::new(name).map_err(|_| Error::Nul { what: "mempool name", value: name.to_owned() })?;
        // SAFETY: `cname` is NUL-terminated and outlives the call (DPDK copies the name); the
        // other arguments are plain values DPDK validates; the EAL is initialised (`_eal`).
        let mp = unsafe { ffi::rte_pktmbuf_pool_create(cname.as_ptr(), n, cache, priv_size, data_room, socket) };
        let mp = NonNull::new(mp).ok_or_else(|| Error::from_rte_errno("rte_pktmbuf_pool_create"))?;
        Ok(Mempool { mp, name: name.to_owned(), freed: false, _eal: PhantomData })
    }

    /// Allocates one mbuf (`rte_pktmbuf_alloc`): empty, with the pool's default headroom
    /// (`RTE_PKTMBUF_HEADROOM`, 128, or the whole buffer if smaller). `None` if the pool is
    /// exhausted.
    #[inline]
    pub fn alloc(&self) -> Option<Mbuf<'_>> {
        // SAFETY: `self.mp` is a live pktmbuf pool (created in `new`; only `try_free`, which
        // consumes `self`, and drop free it).
        let m = unsafe { ffi::esprit_rte_pktmbuf_alloc(self.mp.as_ptr()) };
        // SAFETY: a freshly allocated mbuf is direct, single-segment, refcnt 1 and owned by
        // nobody else; it comes from this pool, which the returned Mbuf borrows.
        NonNull::new(m).map(|m| unsafe { Mbuf::from_raw(m) })
    }

    /// Allocates `n` mbufs at once (`rte_pktmbuf_alloc_bulk`) and appends them to `out`; all
    /// or nothing: false, and `out` unchanged, if the pool has fewer than `n` available.
    /// Does not allocate memory when `out` has room for `n` more.
    pub fn alloc_bulk<'a>(&'a self, out: &mut Vec<Mbuf<'a>>, n: usize) -> bool {
        let Ok(count) = u32::try_from(n) else {
            return false;
        };
        out.reserve(n);
        let len = out.len();
        // SAFETY: `out` has room for `n` more elements after `len` (reserve above). `Mbuf` is
        // `repr(transparent)` over a non-null `*mut rte_mbuf`, so the spare capacity is a valid
        // `struct rte_mbuf *[n]` for rte_pktmbuf_alloc_bulk to fill; it writes all `n` or none.
        let ret = unsafe {
            ffi::esprit_rte_pktmbuf_alloc_bulk(
                self.mp.as_ptr(),
                out.as_mut_ptr().add(len).cast::<*mut ffi::rte_mbuf>(),
                count,
            )
        };
        if ret != 0 {
            return false;
        }
        // SAFETY: rte_pktmbuf_alloc_bulk returned 0, so it wrote `n` non-null pointers to
        // fresh mbufs (direct, single-segment, refcnt 1, owned by nobody else) of this pool,
        // which the Vec's element lifetime borrows.
        unsafe { out.set_len(len + n) };
        true
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The number of mbufs the pool was created with.
    pub fn size(&self) -> u32 {
        // SAFETY: `self.mp` is a live pool; reads a field set at creation.
        unsafe { ffi::esprit_rte_mempool_size(self.mp.as_ptr()) }
    }

    /// Mbufs available to allocate (`rte_mempool_avail_count`: the common store plus every
    /// lcore's cache). Exact only when no other lcore is using the pool.
    pub fn avail_count(&self) -> u32 {
        // SAFETY: `self.mp` is a live pool; the call only reads counters.
        unsafe { ffi::rte_mempool_avail_count(self.mp.as_ptr()) }
    }

    /// Mbufs allocated and not yet back (`rte_mempool_in_use_count`), with the same caveat as
    /// [`Mempool::avail_count`].
    pub fn in_use_count(&self) -> u32 {
        // SAFETY: `self.mp` is a live pool; the call only reads counters.
        unsafe { ffi::rte_mempool_in_use_count(self.mp.as_ptr()) }
    }

    /// The buffer size of each mbuf, headroom included.
    pub fn data_room(&self) -> u16 {
        // SAFETY: `self.mp` is a live pktmbuf pool; reads its private data set at creation.
        unsafe { ffi::esprit_rte_pktmbuf_data_room_size(self.mp.as_ptr()) }
    }

    /// The size of each mbuf's private area.
    pub fn priv_size(&self) -> u16 {
        // SAFETY: `self.mp` is a live pktmbuf pool; reads its private data set at creation.
        unsafe { ffi::esprit_rte_pktmbuf_priv_size(self.mp.as_ptr()) }
    }

    /// Moves the mbufs the calling lcore's cache holds back to the common store. A no-op on a
    /// thread that is not an EAL lcore (it has no cache). Worker lcores call it when they stop
    /// using the pool, so that dropping the pool can free it.
    pub fn flush_local_cache(&self) {
        // SAFETY: `self.mp` is a live pool; the cache flushed is the calling lcore's own,
        // which no other thread touches.
        unsafe { ffi::esprit_rte_mempool_flush_local_cache(self.mp.as_ptr()) }
    }

    /// The raw pool, for DPDK calls the safe layer does not cover. It stays valid while
    /// `self` lives.
    pub fn as_ptr(&self) -> *mut ffi::rte_mempool {
        self.mp.as_ptr()
    }

    /// Frees the pool if every mbuf is back (the rule in the type's documentation); gives it
    /// back otherwise, so the caller can retry later or drop it (and leak it).
    ///
    /// # Errors
    ///
    /// The pool, unchanged, if some of its mbufs are still out.
    pub fn try_free(mut self) -> Result<(), Mempool<'e>> {
        if self.release() {
            self.freed = true;
            Ok(())
        } else {
            Err(self)
        }
    }

    /// Frees the pool if every mbuf is back in its common store; true if it did.
    fn release(&mut self) -> bool {
        self.flush_local_cache();
        // SAFETY: `self.mp` is a live pool; reads the common store's count.
        let home = unsafe { ffi::esprit_rte_mempool_common_count(self.mp.as_ptr()) };
        if home != self.size() {
            return false;
        }
        // Pairs with the release of the ring's tail update by the threads that put the mbufs
        // back: their writes to the pool happen before the free below.
        fence(Ordering::Acquire);
        // SAFETY: every mbuf of the pool is in its common store (checked above), so no Mbuf,
        // driver queue or other thread holds one; nothing can allocate from it, as that needs a
        // `&Mempool` (borrowed by every Mbuf and Port) and `self` is exclusively held. A thread
        // that just put an mbuf back no longer touches the pool once the count shows it. After
        // this, `self.mp` is never used again: `try_free` sets `freed`, which drop
        // checks, and drop is the last use.
        unsafe { ffi::rte_mempool_free(self.mp.as_ptr()) };
        true
    }
}

impl Drop for Mempool<'_> {
    fn drop(&mut self) {
        if !self.freed {
            // Leaked if some mbufs are still out: see the type's documentation.
            let _freed = self.release();
        }
    }
}
