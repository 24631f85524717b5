//! The hash table.

use core::hash::{Hash, Hasher};
use std::sync::Arc;

use crossbeam_epoch::{Atomic, Guard, Owned, Shared};

#[cfg(crossbeam_loom)]
use loom::sync::atomic::{AtomicU64, AtomicUsize, Ordering::*};
#[cfg(not(crossbeam_loom))]
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::*};

/// Slot tags: 0 = never used (ends a probe), 1 = deleted (probing continues past it),
/// anything else = the key's hash with bit 1 set.
const EMPTY: u64 = 0;
const DELETED: u64 = 1;

struct Node<K, V> {
    key: K,
    value: V,
}

struct Slot<K, V> {
    tag: AtomicU64,
    node: Atomic<Node<K, V>>,
}

struct Slots<K, V> {
    mask: usize,
    slots: Box<[Slot<K, V>]>,
}

impl<K, V> Slots<K, V> {
    fn new(n: usize) -> Self {
        let mut v: Vec<Slot<K, V>> = Vec::with_capacity(n);
        // Before the first write, so that the pages are huge from the first fault on.
        advise_huge_pages(v.as_ptr() as usize, n * core::mem::size_of::<Slot<K, V>>());
        v.extend((0..n).map(|_| Slot { tag: AtomicU64::new(EMPTY), node: Atomic::null() }));
        Slots { mask: n - 1, slots: v.into_boxed_slice() }
    }
}

/// Asks the kernel to back a large allocation with transparent huge pages: with a million
/// entries, random probes otherwise miss the TLB on almost every lookup.
fn advise_huge_pages(start: usize, len: usize) {
    const HUGE: usize = 2 << 20;
    let first = start.next_multiple_of(HUGE);
    let end = (start + len) / HUGE * HUGE;
    #[cfg(all(target_os = "linux", not(crossbeam_loom)))]
    if end > first {
        // SAFETY: madvise(MADV_HUGEPAGE) only changes how the kernel backs these pages of
        // our own allocation (whole 2 MiB pages inside it), never their contents; failure
        // (THP disabled) is harmless.
        unsafe {
            libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE);
        }
    }
    let _ = (first, end);
}

/// A lock-free hash table: any number of readers, one [`TableWriter`].
pub struct HashTable<K, V> {
    slots: Atomic<Slots<K, V>>,
    capacity: usize,
    len: AtomicUsize,
}

impl<K, V> core::fmt::Debug for HashTable<K, V> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HashTable").field("capacity", &self.capacity).field("len", &self.len.load(Relaxed)).finish()
    }
}

// SAFETY: readers get `&V` from any thread (V: Sync) and values are dropped on the writer's or
// a reclaiming reader's thread (V: Send); keys likewise.
unsafe impl<K: Send + Sync, V: Send + Sync> Sync for HashTable<K, V> {}
// SAFETY: as above; the table owns its nodes.
unsafe impl<K: Send + Sync, V: Send + Sync> Send for HashTable<K, V> {}

/// The table is at its configured capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableFull {
    pub capacity: usize,
}

impl core::fmt::Display for TableFull {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "table full: {} entries (raise the configured maximum)", self.capacity)
    }
}

impl std::error::Error for TableFull {}

/// A fast, non-cryptographic hash (SPIs and addresses come from our own control plane or are
/// looked up, not chosen by an attacker to collide: SPIs are random, virtual IPs from pools).
#[derive(Default)]
struct FxHasher(u64);

impl Hasher for FxHasher {
    fn finish(&self) -> u64 {
        // Final avalanche (splitmix64) so linear probing sees well-mixed low bits.
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// A word at a time: the multiplications form one dependency chain, and a key hashed a
    /// byte at a time (as `IpAddr`'s discriminant and addresses were, through the default
    /// `write_usize` / `write_u128`) took one per byte, 9 to 25 per address.
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            self.add(u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let tail = rest.iter().enumerate().fold(0u64, |w, (i, &b)| w | (b as u64) << (8 * i));
            self.add(tail);
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }
    fn write_u16(&mut self, i: u16) {
        self.add(i as u64);
    }
    fn write_u32(&mut self, i: u32) {
        self.add(i as u64);
    }
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    fn write_u128(&mut self, i: u128) {
        self.add(i as u64);
        self.add((i >> 64) as u64);
    }
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
}

impl FxHasher {
    #[inline(always)]
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

/// A cache prefetch hint (a no-op where there is no such instruction, and under loom).
#[inline(always)]
fn prefetch<T>(p: &T) {
    #[cfg(all(target_arch = "x86_64", not(crossbeam_loom)))]
    // SAFETY: a prefetch is only a hint to the cache: it never faults and changes nothing
    // the program can observe; `p` is a valid reference besides.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>((p as *const T).cast());
    }
    #[cfg(not(all(target_arch = "x86_64", not(crossbeam_loom))))]
    let _ = p;
}

/// Prefetches the first line of a slice's elements (nothing for an empty one).
#[inline(always)]
pub(crate) fn prefetch_slice<T>(s: &[T]) {
    if let Some(first) = s.first() {
        prefetch(first);
    }
}

/// Keys handled at once by the burst lookups.
const BURST_CHUNK: usize = 32;

/// Per key of a chunk: the entry its home slot holds under its tag, if any, and whether the
/// home slot was never used.
type HomeEntries<'g, K, V> = ([Option<&'g Node<K, V>>; BURST_CHUNK], [bool; BURST_CHUNK]);

/// For up to [`BURST_CHUNK`] keys: every key's home slot is prefetched, then the entry of
/// each home slot whose tag matches is loaded and prefetched. Returns per key that entry
/// (if any) and whether the home slot was never used (the key is absent).
#[inline(always)]
fn home_entries<'g, K: Hash, V>(slots: &'g Slots<K, V>, keys: &[K], guard: &'g Guard) -> HomeEntries<'g, K, V> {
    debug_assert!(keys.len() <= BURST_CHUNK);
    let mut tags = [0u64; BURST_CHUNK];
    for (t, k) in tags.iter_mut().zip(keys) {
        *t = tag_of(k);
        prefetch(&slots.slots[*t as usize & slots.mask]);
    }
    let mut nodes: [Option<&'g Node<K, V>>; BURST_CHUNK] = [None; BURST_CHUNK];
    let mut empty = [false; BURST_CHUNK];
    for j in 0..keys.len() {
        let slot = &slots.slots[tags[j] as usize & slots.mask];
        match slot.tag.load(Acquire) {
            EMPTY => empty[j] = true,
            t if t == tags[j] => {
                // SAFETY: as in `HashTable::get`: the caller's guard was pinned before the
                // slot array and the node pointer were loaded.
                nodes[j] = unsafe { slot.node.load(Acquire, guard).as_ref() };
                if let Some(n) = nodes[j] {
                    prefetch(n);
                }
            }
            _ => {}
        }
    }
    (nodes, empty)
}

fn tag_of<K: Hash>(k: &K) -> u64 {
    let mut h = FxHasher::default();
    k.hash(&mut h);
    h.finish() | 2
}

impl<K: Hash + Eq + 'static, V: 'static> HashTable<K, V> {
    /// A table for up to `max_entries` entries, and its single writer.
    pub fn new(max_entries: usize) -> (Arc<Self>, TableWriter<K, V>) {
        let n = (max_entries.max(4) * 2).next_power_of_two();
        let t = Arc::new(HashTable {
            slots: Atomic::new(Slots::new(n)),
            capacity: max_entries.max(4),
            len: AtomicUsize::new(0),
        });
        (t.clone(), TableWriter { table: t, deleted: 0 })
    }

    /// The entry for `key`, valid while `guard` is pinned and the table is borrowed. Never
    /// blocks, never allocates.
    #[inline]
    pub fn get<'g>(&'g self, key: &K, guard: &'g Guard) -> Option<&'g V> {
        let tag = tag_of(key);
        let s = self.slots.load(Acquire, guard);
        // SAFETY: the slot array is only retired (deferred) by the writer after a new one is
        // published; `guard` keeps the one we loaded alive.
        let slots = unsafe { s.deref() };
        let mut i = tag as usize & slots.mask;
        for _ in 0..=slots.mask {
            let slot = &slots.slots[i];
            match slot.tag.load(Acquire) {
                EMPTY => return None,
                t if t == tag => {
                    let n = slot.node.load(Acquire, guard);
                    // SAFETY: nodes are retired with `defer_destroy` after being unlinked;
                    // `guard` was pinned before we loaded the pointer.
                    if let Some(node) = unsafe { n.as_ref() } {
                        if node.key == *key {
                            return Some(&node.value);
                        }
                    }
                }
                _ => {}
            }
            i = (i + 1) & slots.mask;
        }
        None
    }

    /// Looks up every key of `keys` into `out` (the same answers as [`get`](Self::get),
    /// key by key), overlapping their cache misses: the home slots of all keys are
    /// prefetched first, then the nodes whose tags match, then the keys compared. With a
    /// million entries a lookup misses the caches twice; a burst pays those misses once
    /// instead of once per key.
    /// `out` must be at least as long as `keys`.
    pub fn get_many<'g>(&'g self, keys: &[K], guard: &'g Guard, out: &mut [Option<&'g V>]) {
        debug_assert!(out.len() >= keys.len());
        let s = self.slots.load(Acquire, guard);
        // SAFETY: as in `get`.
        let slots = unsafe { s.deref() };
        for (keys, out) in keys.chunks(BURST_CHUNK).zip(out.chunks_mut(BURST_CHUNK)) {
            let (nodes, empty) = home_entries(slots, keys, guard);
            for (j, (k, o)) in keys.iter().zip(out.iter_mut()).enumerate() {
                *o = match nodes[j] {
                    Some(n) if n.key == *k => Some(&n.value),
                    _ if empty[j] => None,
                    // A collision, a deleted slot or a concurrent change: probe the chain.
                    _ => self.get(k, guard),
                };
            }
        }
    }

    /// Hints that every key of `keys` will be looked up soon: the first two steps of
    /// [`get_many`](Self::get_many) (home slots, then the entries whose tags match, into
    /// the cache). The lookups that follow, one [`get`](Self::get) each, then hit the
    /// cache, and a burst pays its misses about once instead of twice per key.
    pub fn prefetch_many(&self, keys: &[K], guard: &Guard) {
        let s = self.slots.load(Acquire, guard);
        // SAFETY: as in `get`.
        let slots = unsafe { s.deref() };
        for keys in keys.chunks(BURST_CHUNK) {
            home_entries(slots, keys, guard);
        }
    }

    /// Hints that `key` will be looked up soon (its home slot is fetched into the cache).
    #[inline]
    pub fn prefetch(&self, key: &K, guard: &Guard) {
        let s = self.slots.load(Acquire, guard);
        // SAFETY: as in `get`.
        let slots = unsafe { s.deref() };
        prefetch(&slots.slots[tag_of(key) as usize & slots.mask]);
    }

    /// Entries in the table.
    pub fn len(&self) -> usize {
        self.len.load(Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most entries the table takes.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Calls `f` on every entry (for listings; not for the fast path).
    pub fn for_each<'g>(&'g self, guard: &'g Guard, mut f: impl FnMut(&'g K, &'g V)) {
        let s = self.slots.load(Acquire, guard);
        // SAFETY: as in `get`.
        let slots = unsafe { s.deref() };
        for slot in slots.slots.iter() {
            let n = slot.node.load(Acquire, guard);
            // SAFETY: as in `get`.
            if let Some(node) = unsafe { n.as_ref() } {
                f(&node.key, &node.value);
            }
        }
    }
}

impl<K, V> Drop for HashTable<K, V> {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: no reader or writer exists any more (the writer holds an Arc),
        // so everything can be freed now.
        unsafe {
            let g = crossbeam_epoch::unprotected();
            let s = self.slots.load(Relaxed, g);
            if let Some(slots) = s.as_ref() {
                for slot in slots.slots.iter() {
                    let n = slot.node.load(Relaxed, g);
                    if !n.is_null() {
                        drop(n.into_owned());
                    }
                }
                drop(s.into_owned());
            }
        }
    }
}

/// The one writer of a [`HashTable`]. Not `Clone`: there is exactly one.
pub struct TableWriter<K, V> {
    table: Arc<HashTable<K, V>>,
    deleted: usize,
}

impl<K, V> core::fmt::Debug for TableWriter<K, V> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TableWriter").field("deleted_slots", &self.deleted).finish()
    }
}

impl<K: Hash + Eq + Clone + 'static, V: 'static> TableWriter<K, V> {
    pub fn table(&self) -> &Arc<HashTable<K, V>> {
        &self.table
    }

    /// Inserts or replaces `key`. Readers see either the old or the new value, never a
    /// mixture; a replaced value is freed once every reader has moved on.
    pub fn insert(&mut self, key: K, value: V, guard: &Guard) -> Result<(), TableFull> {
        let t = &*self.table;
        let tag = tag_of(&key);
        let s = t.slots.load(Acquire, guard);
        // SAFETY: only this writer retires slot arrays.
        let slots = unsafe { s.deref() };
        let mut free = None;
        let mut i = tag as usize & slots.mask;
        for _ in 0..=slots.mask {
            let slot = &slots.slots[i];
            match slot.tag.load(Relaxed) {
                EMPTY => {
                    free.get_or_insert(i);
                    break;
                }
                DELETED => {
                    free.get_or_insert(i);
                }
                x if x == tag => {
                    let n = slot.node.load(Relaxed, guard);
                    // SAFETY: the writer is the only one who unlinks nodes.
                    if unsafe { n.as_ref() }.is_some_and(|node| node.key == key) {
                        let old = slot.node.swap(Owned::new(Node { key, value }), AcqRel, guard);
                        // SAFETY: `old` is unlinked; readers that still hold it are pinned.
                        unsafe { guard.defer_destroy(old) };
                        return Ok(());
                    }
                }
                _ => {}
            }
            i = (i + 1) & slots.mask;
        }
        if t.len() >= t.capacity {
            return Err(TableFull { capacity: t.capacity });
        }
        let Some(i) = free else {
            return Err(TableFull { capacity: t.capacity });
        };
        let slot = &slots.slots[i];
        if slot.tag.load(Relaxed) == DELETED {
            self.deleted -= 1;
        }
        // Publish the node before the tag: a reader that sees the tag finds the node.
        slot.node.store(Owned::new(Node { key, value }), Release);
        slot.tag.store(tag, Release);
        t.len.fetch_add(1, Relaxed);
        Ok(())
    }

    /// Removes `key`; true if it was there.
    pub fn remove(&mut self, key: &K, guard: &Guard) -> bool {
        let t = &*self.table;
        let tag = tag_of(key);
        let s = t.slots.load(Acquire, guard);
        // SAFETY: only this writer retires slot arrays.
        let slots = unsafe { s.deref() };
        let mut i = tag as usize & slots.mask;
        for _ in 0..=slots.mask {
            let slot = &slots.slots[i];
            match slot.tag.load(Relaxed) {
                EMPTY => return false,
                x if x == tag => {
                    let n = slot.node.load(Relaxed, guard);
                    // SAFETY: the writer is the only one who unlinks nodes.
                    if unsafe { n.as_ref() }.is_some_and(|node| node.key == *key) {
                        slot.tag.store(DELETED, Release);
                        slot.node.store(Shared::null(), Release);
                        // SAFETY: unlinked above; pinned readers may still hold it.
                        unsafe { guard.defer_destroy(n) };
                        t.len.fetch_sub(1, Relaxed);
                        self.deleted += 1;
                        self.maybe_rebuild(guard);
                        return true;
                    }
                }
                _ => {}
            }
            i = (i + 1) & slots.mask;
        }
        false
    }

    /// Deleted slots lengthen probes: when live and deleted slots together pass three
    /// quarters of the array, publish a fresh array holding the live nodes (the nodes move,
    /// they are not copied) and retire the old one.
    fn maybe_rebuild(&mut self, guard: &Guard) {
        let t = &*self.table;
        let s = t.slots.load(Acquire, guard);
        // SAFETY: only this writer retires slot arrays.
        let old = unsafe { s.deref() };
        if (t.len() + self.deleted) * 4 < (old.mask + 1) * 3 {
            return;
        }
        let fresh = Slots::new(old.mask + 1);
        for slot in old.slots.iter() {
            let tag = slot.tag.load(Relaxed);
            let n = slot.node.load(Relaxed, guard);
            if tag <= DELETED || n.is_null() {
                continue;
            }
            let mut i = tag as usize & fresh.mask;
            while fresh.slots[i].tag.load(Relaxed) != EMPTY {
                i = (i + 1) & fresh.mask;
            }
            fresh.slots[i].node.store(n, Relaxed);
            fresh.slots[i].tag.store(tag, Relaxed);
        }
        let prev = t.slots.swap(Owned::new(fresh), AcqRel, guard);
        self.deleted = 0;
        // SAFETY: `prev` is unlinked. Its nodes now belong to the fresh array, so only the
        // array itself is destroyed: `Slots` has no Drop that frees nodes.
        unsafe { guard.defer_destroy(prev) };
    }

    /// Removes every entry.
    pub fn clear(&mut self, guard: &Guard) {
        let t = &*self.table;
        let s = t.slots.load(Acquire, guard);
        // SAFETY: only this writer retires slot arrays.
        let slots = unsafe { s.deref() };
        let fresh = Slots::<K, V>::new(slots.mask + 1);
        let prev = t.slots.swap(Owned::new(fresh), AcqRel, guard);
        // SAFETY: the old array is unlinked; retire its nodes and the array.
        unsafe {
            for slot in prev.deref().slots.iter() {
                let n = slot.node.load(Relaxed, guard);
                if !n.is_null() {
                    guard.defer_destroy(n);
                }
            }
            guard.defer_destroy(prev);
        }
        t.len.store(0, Relaxed);
        self.deleted = 0;
    }
}

#[cfg(all(test, not(crossbeam_loom)))]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn prefetch_many_changes_nothing() {
        // Hits, misses, deleted slots, and more keys than one chunk; a hint only.
        let (t, mut w) = HashTable::<u32, u32>::new(256);
        let g = crossbeam_epoch::pin();
        for k in 0..200 {
            w.insert(k, k * 3, &g).unwrap();
        }
        for k in (0..200).step_by(7) {
            w.remove(&k, &g);
        }
        let keys: Vec<u32> = (0..300).rev().collect();
        t.prefetch_many(&keys, &g);
        t.prefetch_many(&[], &g);
        for k in keys {
            let want = (k < 200 && k % 7 != 0).then_some(k * 3);
            assert_eq!(t.get(&k, &g).copied(), want, "{k}");
        }
    }

    #[test]
    fn insert_get_replace_remove() {
        let (t, mut w) = HashTable::<u32, String>::new(8);
        let g = crossbeam_epoch::pin();
        assert!(t.get(&1, &g).is_none());
        w.insert(1, "one".into(), &g).unwrap();
        w.insert(2, "two".into(), &g).unwrap();
        assert_eq!(t.get(&1, &g).map(String::as_str), Some("one"));
        w.insert(1, "uno".into(), &g).unwrap();
        assert_eq!(t.get(&1, &g).map(String::as_str), Some("uno"));
        assert_eq!(t.len(), 2);
        assert!(w.remove(&1, &g));
        assert!(!w.remove(&1, &g));
        assert!(t.get(&1, &g).is_none());
        assert_eq!(t.get(&2, &g).map(String::as_str), Some("two"));
    }

    #[test]
    fn full_is_an_error() {
        let (t, mut w) = HashTable::<u32, u32>::new(4);
        let g = crossbeam_epoch::pin();
        for k in 0..4 {
            w.insert(k, k, &g).unwrap();
        }
        assert_eq!(w.insert(9, 9, &g), Err(TableFull { capacity: 4 }));
        w.insert(3, 33, &g).unwrap();
        assert_eq!(t.get(&3, &g), Some(&33), "replacing is fine when full");
    }

    proptest::proptest! {
        /// Against a HashMap under random inserts, replaces and removes (with rebuilds).
        #[test]
        fn matches_hashmap(ops in proptest::collection::vec((0u8..3, 0u32..64, proptest::num::u32::ANY), 1..2000)) {
            let (t, mut w) = HashTable::<u32, u32>::new(64);
            let mut m = HashMap::new();
            let g = crossbeam_epoch::pin();
            for (op, k, v) in ops {
                match op {
                    0 | 1 => {
                        w.insert(k, v, &g).unwrap();
                        m.insert(k, v);
                    }
                    _ => {
                        proptest::prop_assert_eq!(w.remove(&k, &g), m.remove(&k).is_some());
                    }
                }
                proptest::prop_assert_eq!(t.len(), m.len());
            }
            for k in 0..64 {
                proptest::prop_assert_eq!(t.get(&k, &g), m.get(&k));
            }
            // The burst lookup gives the same answers, in bursts longer than its chunk.
            let keys: Vec<u32> = (0..80).map(|i| (i * 7) % 70).collect();
            let mut out = vec![None; keys.len()];
            t.get_many(&keys, &g, &mut out);
            for (k, o) in keys.iter().zip(&out) {
                proptest::prop_assert_eq!(*o, m.get(k));
            }
            let mut n = 0;
            t.for_each(&g, |k, v| { n += 1; assert_eq!(m.get(k), Some(v)); });
            proptest::prop_assert_eq!(n, m.len());
        }
    }
}
