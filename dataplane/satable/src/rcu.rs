//! A read-copy-update cell: readers borrow the current value without locks; a writer
//! publishes a replacement and the old value is freed once every reader has moved on. For
//! small, rarely changed data (routes, prefix policies).

use crossbeam_epoch::{Atomic, Guard, Owned};

#[cfg(crossbeam_loom)]
use loom::sync::atomic::Ordering::*;
#[cfg(not(crossbeam_loom))]
use std::sync::atomic::Ordering::*;

/// A value replaced wholesale, read lock-free.
pub struct Rcu<T> {
    cur: Atomic<T>,
}

impl<T> core::fmt::Debug for Rcu<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Rcu")
    }
}

impl<T: Send + Sync + 'static> Rcu<T> {
    pub fn new(v: T) -> Rcu<T> {
        Rcu { cur: Atomic::new(v) }
    }

    /// The current value, valid while `guard` is pinned and the cell borrowed.
    #[inline]
    pub fn load<'g>(&'g self, guard: &'g Guard) -> &'g T {
        // SAFETY: `cur` is never null (set in `new`, replaced by non-null values), and
        // replaced values are retired with `defer_destroy` while `guard` pins the epoch.
        unsafe { self.cur.load(Acquire, guard).deref() }
    }

    /// Publishes `v`; the previous value is freed after every current reader unpins.
    pub fn store(&self, v: T, guard: &Guard) {
        let old = self.cur.swap(Owned::new(v), AcqRel, guard);
        // SAFETY: `old` is unlinked; readers still holding it are pinned.
        unsafe { guard.defer_destroy(old) };
    }
}

impl<T> Drop for Rcu<T> {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: no reader remains.
        unsafe {
            let g = crossbeam_epoch::unprotected();
            let p = self.cur.load(Relaxed, g);
            if !p.is_null() {
                drop(p.into_owned());
            }
        }
    }
}

// SAFETY: values are read from any thread (T: Sync) and freed on another (T: Send).
unsafe impl<T: Send + Sync> Sync for Rcu<T> {}
// SAFETY: as above.
unsafe impl<T: Send + Sync> Send for Rcu<T> {}
