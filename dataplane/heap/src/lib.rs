//! The data plane's heap: mimalloc, with an arena for per-SA state reserved at start-up.
//!
//! The binaries that run the data plane (`esprit-dataplane`, `esprit-pktgen`) allocate
//! through [`Heap`] (mimalloc):
//!
//! ```ignore
//! #[global_allocator]
//! static HEAP: esprit_heap::Heap = esprit_heap::Heap;
//! ```
//!
//! and, before the first SA is installed, [`reserve`] an arena sized from the SA tables'
//! capacity ([`bytes_for_sas`]): on 2 MiB hugetlbfs pages when the host's pool has them,
//! otherwise on ordinary pages (which the kernel may back with transparent huge pages),
//! populated at once either way. What is allocated inside [`for_sas`] — the tables' writer
//! making an SA: the SA, its key schedule, its selectors, its table entry — comes from that
//! arena and nothing else does, so SA state sits together on few huge pages, and installing
//! an SA takes no page fault. Once the arena is full, SAs come from the ordinary heap.
//!
//! Why: with glibc's heap, 40 % of the data plane's time installing SAs went to first-touch
//! page faults and `posix_memalign` of each SA's memory (the 64-byte-aligned SA, ~1 KiB of
//! key schedule); installation ran at 240–400k SAs/s here. benches/README.md has the figures
//! with the arena and the method.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::Cell;
use core::ffi::c_void;
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering::*};
use std::time::{Duration, Instant};

use libmimalloc_sys as mi;

/// The global allocator of the data plane's binaries: mimalloc, and the SA arena inside
/// [`for_sas`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Heap;

/// The heap of the SA arena (null until [`reserve`]).
static SA_HEAP: AtomicPtr<mi::mi_heap_t> = AtomicPtr::new(core::ptr::null_mut());
/// The arena's address range, and the bytes allocated in it (by layout size).
static ARENA_START: AtomicUsize = AtomicUsize::new(0);
static ARENA_END: AtomicUsize = AtomicUsize::new(0);
static ARENA_USED: AtomicUsize = AtomicUsize::new(0);

#[inline]
fn in_arena(p: *mut u8) -> bool {
    let a = p as usize;
    ARENA_START.load(Relaxed) <= a && a < ARENA_END.load(Relaxed)
}

/// Bytes of SA state in the arena now (the sum of the sizes asked for).
pub fn arena_used() -> usize {
    ARENA_USED.load(Relaxed)
}

thread_local! {
    /// True while this thread runs [`for_sas`].
    static MAKING_SAS: Cell<bool> = const { Cell::new(false) };
}

/// The SA arena's heap, if this thread is making SAs and there is one.
#[inline]
fn sa_heap() -> Option<*mut mi::mi_heap_t> {
    // try_with: the allocator may run while the thread's locals are torn down.
    if MAKING_SAS.try_with(Cell::get).unwrap_or(false) {
        let h = SA_HEAP.load(Relaxed);
        return (!h.is_null()).then_some(h);
    }
    None
}

// SAFETY: every path returns memory from mimalloc (of the layout's size and alignment) or
// null, and mi_free / mi_realloc_aligned accept blocks of any mimalloc heap.
unsafe impl GlobalAlloc for Heap {
    #[inline]
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if let Some(h) = sa_heap() {
            // SAFETY: `h` is a live heap (heaps of the arena are never destroyed).
            let p = unsafe { mi::mi_heap_malloc_aligned(h, l.size(), l.align()) };
            if !p.is_null() {
                ARENA_USED.fetch_add(l.size(), Relaxed);
                return p.cast();
            }
        }
        // SAFETY: plain mimalloc allocation.
        unsafe { mi::mi_malloc_aligned(l.size(), l.align()).cast() }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        if let Some(h) = sa_heap() {
            // SAFETY: as in alloc.
            let p = unsafe { mi::mi_heap_zalloc_aligned(h, l.size(), l.align()) };
            if !p.is_null() {
                ARENA_USED.fetch_add(l.size(), Relaxed);
                return p.cast();
            }
        }
        // SAFETY: plain mimalloc allocation.
        unsafe { mi::mi_zalloc_aligned(l.size(), l.align()).cast() }
    }

    #[inline]
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        if in_arena(p) {
            ARENA_USED.fetch_sub(l.size(), Relaxed);
        }
        // SAFETY: `p` came from one of mimalloc's heaps.
        unsafe { mi::mi_free(p.cast()) }
    }

    #[inline]
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
        let was = in_arena(p);
        let q = match sa_heap() {
            // SAFETY: as in alloc; `p` came from mimalloc.
            Some(h) => unsafe { mi::mi_heap_realloc_aligned(h, p.cast(), new_size, l.align()) },
            None => core::ptr::null_mut(),
        };
        let q: *mut u8 = if q.is_null() {
            // SAFETY: `p` came from mimalloc.
            unsafe { mi::mi_realloc_aligned(p.cast(), new_size, l.align()).cast() }
        } else {
            q.cast()
        };
        if !q.is_null() {
            if was {
                ARENA_USED.fetch_sub(l.size(), Relaxed);
            }
            if in_arena(q) {
                ARENA_USED.fetch_add(new_size, Relaxed);
            }
        }
        q
    }
}

/// Runs `f` with this thread's allocations going to the SA arena (the ordinary heap when
/// there is none, or once it is full).
pub fn for_sas<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            MAKING_SAS.with(|m| m.set(self.0));
        }
    }
    let _restore = Restore(MAKING_SAS.with(|m| m.replace(true)));
    f()
}

/// Heap one SA (one direction) takes with its key schedule, selectors and table entry,
/// with a margin: `esprit-pktgen install` prints the measured figure (1 792 bytes with
/// AES-128-GCM, 1 800 with AES-128-CBC + HMAC-SHA1, through intel-ipsec-mb).
pub const SA_BYTES: usize = 2560;

/// Heap the data plane needs besides its SAs (tables, reassembly, IKE punts, buffers of
/// the AF_PACKET driver), covered by the reservation too.
pub const BASE_BYTES: usize = 64 << 20;

/// The arena for SA tables of `max_sas` per direction (inbound and outbound).
pub fn bytes_for_sas(max_sas: usize) -> usize {
    max_sas.saturating_mul(2).saturating_mul(SA_BYTES).saturating_add(BASE_BYTES)
}

/// Which pages back the arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pages {
    /// hugetlbfs pages (of this many bytes each) from the host's pool.
    Hugetlb(usize),
    /// Ordinary pages; this many bytes of them came as transparent huge pages.
    Ordinary { transparent_huge: usize },
}

/// An arena reserved and populated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reserved {
    start: usize,
    pub bytes: usize,
    pub pages: Pages,
    /// Time spent reserving and populating it.
    pub took: Duration,
}

impl core::fmt::Display for Reserved {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let mib = |b: usize| b >> 20;
        write!(f, "{} MiB reserved and populated in {:.2} s on ", mib(self.bytes), self.took.as_secs_f64())?;
        match self.pages {
            Pages::Hugetlb(size) => write!(f, "{} MiB hugetlbfs pages", mib(size)),
            Pages::Ordinary { transparent_huge: 0 } => {
                write!(f, "4 KiB pages (no hugetlbfs pages free, and no transparent huge pages)")
            }
            Pages::Ordinary { transparent_huge } => write!(
                f,
                "ordinary pages, {} MiB of them transparent huge pages (no hugetlbfs pages free)",
                mib(transparent_huge)
            ),
        }
    }
}

/// Why no arena could be reserved. The data plane runs on without one (its SAs then come
/// from the ordinary heap, mapped as they are installed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReserveError {
    #[error("this process does not allocate through mimalloc (esprit_heap::Heap is not its global allocator)")]
    NotMimalloc,
    #[error("cannot reserve {} MiB: error {errno} (out of memory?)", bytes >> 20)]
    NoMemory { bytes: usize, errno: i32 },
    #[error("the SA arena is reserved already (once per process)")]
    AlreadyReserved,
}

/// True if this process's allocations go through mimalloc.
pub fn in_use() -> bool {
    let probe = Box::new(0u64);
    // SAFETY: mi_is_in_heap_region only compares the address with mimalloc's own ranges.
    unsafe { mi::mi_is_in_heap_region((&*probe as *const u64).cast()) }
}

// Not bound by libmimalloc-sys; exported by the mimalloc it builds (v3).
extern "C" {
    fn mi_arena_area(arena_id: mi::mi_arena_id_t, size: *mut usize) -> *mut c_void;
}

/// `madvise` advice that faults a range in, writable, without changing its contents
/// (Linux 5.14).
const MADV_POPULATE_WRITE: i32 = 23;

extern "C" {
    fn madvise(addr: *mut c_void, len: usize, advice: i32) -> i32;
}

/// Reserves the SA arena of `bytes`, on hugetlbfs pages if the host's pool has them, and
/// populates it. Once per process.
pub fn reserve(bytes: usize) -> Result<Reserved, ReserveError> {
    if !in_use() {
        return Err(ReserveError::NotMimalloc);
    }
    if !SA_HEAP.load(Relaxed).is_null() {
        return Err(ReserveError::AlreadyReserved);
    }
    let t0 = Instant::now();
    let mut id: mi::mi_arena_id_t = core::ptr::null_mut();
    // SAFETY: plain calls into mimalloc with valid arguments; large OS pages are allowed
    // for this reservation only, so that what is allocated beyond it stays on ordinary pages
    // and the hugepage pool is not drained behind the operator's back.
    let rc = unsafe {
        mi::mi_option_set_enabled(mi::mi_option_large_os_pages, true);
        let rc = mi::mi_reserve_os_memory_ex(bytes, true, true, true, &mut id);
        mi::mi_option_set_enabled(mi::mi_option_large_os_pages, false);
        rc
    };
    if rc != 0 {
        return Err(ReserveError::NoMemory { bytes, errno: rc });
    }
    let mut size = 0usize;
    // SAFETY: `id` names the arena just made.
    let start = unsafe { mi_arena_area(id, &mut size) };
    if !start.is_null() && size != 0 {
        // SAFETY: the range is the arena's own mapping; populating it changes no byte. On a
        // kernel without MADV_POPULATE_WRITE it fails and the pages fault in on first use.
        unsafe { madvise(start, size, MADV_POPULATE_WRITE) };
    }
    // SAFETY: `id` names an exclusive arena just made; the heap lives as long as the process.
    let heap = unsafe { mi::mi_heap_new_in_arena(id) };
    if heap.is_null() {
        return Err(ReserveError::NoMemory { bytes, errno: 0 });
    }
    ARENA_START.store(start as usize, Relaxed);
    ARENA_END.store(start as usize + size, Relaxed);
    SA_HEAP.store(heap, Relaxed);
    let pages = backing(start as usize, size.max(bytes));
    Ok(Reserved { start: start as usize, bytes: size.max(bytes), pages, took: t0.elapsed() })
}

impl Reserved {
    /// True if `p` points into the arena.
    pub fn contains<T: ?Sized>(&self, p: *const T) -> bool {
        let a = p.cast::<u8>() as usize;
        self.start <= a && a < self.start + self.bytes
    }
}

/// What backs the mapping that starts at `start`, from /proc/self/smaps.
fn backing(start: usize, len: usize) -> Pages {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return Pages::Ordinary { transparent_huge: 0 };
    };
    let (mut inside, mut huge, mut page) = (false, 0usize, 0usize);
    for line in smaps.lines() {
        if let Some((range, _)) = line.split_once(' ') {
            if let Some((a, b)) = range.split_once('-') {
                if let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) {
                    inside = a < start + len && start < b;
                    continue;
                }
            }
        }
        if !inside {
            continue;
        }
        let kb = |l: &str| l.split_whitespace().nth(1).and_then(|v| v.parse::<usize>().ok()).unwrap_or(0) << 10;
        if line.starts_with("KernelPageSize:") {
            page = page.max(kb(line));
        } else if line.starts_with("AnonHugePages:") {
            huge += kb(line);
        }
    }
    if page > 4096 {
        Pages::Hugetlb(page)
    } else {
        Pages::Ordinary { transparent_huge: huge }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sized_from_the_tables() {
        assert_eq!(bytes_for_sas(0), BASE_BYTES);
        assert_eq!(bytes_for_sas(65536), 65536 * 2 * SA_BYTES + BASE_BYTES);
        assert_eq!(bytes_for_sas(usize::MAX), usize::MAX);
    }

    #[test]
    fn refuses_without_mimalloc() {
        // The test harness allocates through the system allocator.
        assert!(!in_use());
        assert_eq!(reserve(1 << 20), Err(ReserveError::NotMimalloc));
    }

    #[test]
    fn describes_what_it_got() {
        let r =
            Reserved { start: 0, bytes: 320 << 20, pages: Pages::Hugetlb(2 << 20), took: Duration::from_millis(40) };
        assert_eq!(r.to_string(), "320 MiB reserved and populated in 0.04 s on 2 MiB hugetlbfs pages");
        let r = Reserved {
            start: 0,
            bytes: 64 << 20,
            pages: Pages::Ordinary { transparent_huge: 0 },
            took: Duration::ZERO,
        };
        assert!(r.to_string().contains("4 KiB pages"), "{r}");
    }
}
