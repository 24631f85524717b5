//! The atomics of the ring protocol: loom's under `--cfg loom`, so that the model checker
//! sees every access; the standard ones otherwise.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::AtomicU64;

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::AtomicU64;

pub(crate) use core::sync::atomic::Ordering;
