//! Lock-free tables for the data plane: SAs by SPI, policies by inner destination.
//!
//! One writer (the thread that applies control-plane messages) and any number of readers
//! (the worker lcores). Readers never block, never allocate and never write shared memory
//! besides their epoch pin; the writer publishes with Release stores and retires what it
//! replaces through crossbeam's epoch-based reclamation, so memory is freed only after every
//! reader has passed a quiescent point (unpinned its guard — once per burst in a worker).
//!
//! [`HashTable`] is open addressing with linear probing over a power-of-two slot array sized
//! at creation (twice the maximum number of entries): lookup cost is one hash and, at the
//! configured load, one or two probes — flat from a thousand to a million SAs. A full table
//! is a clear error, never a resize on the fast path.

#![deny(unsafe_op_in_unsafe_fn)]

mod hash;
pub mod policy;
mod rcu;

pub use crossbeam_epoch::{self as epoch, Guard};
pub use hash::{HashTable, TableFull, TableWriter};
pub use policy::{Policy, PolicyTable, PolicyWriter};
pub use rcu::Rcu;
