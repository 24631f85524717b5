//! The ESP engine of esprit-dataplane: plain Rust over byte buffers, no NIC, no DPDK.
//!
//! * [`proposal`]: the ESP transforms, named as strongSwan names them, and their sizes;
//! * [`crypto`]: the provider trait and its implementations (RustCrypto, aws-lc-rs,
//!   intel-ipsec-mb), all driven through one batched interface;
//! * [`replay`]: the anti-replay window with extended sequence numbers (RFC 4303 App. A,
//!   RFC 6479);
//! * [`sa`]: inbound and outbound SAs — hot runtime state apart from cold configuration —
//!   with burst encapsulation and decapsulation in tunnel mode (RFC 4303, RFC 3948);
//! * [`classify`] and [`reasm`]: NAT-T demultiplexing of what arrives on the outside and
//!   reassembly of outer fragments;
//! * [`mtu`], [`icmp`], [`frag`], [`mss`]: the MTU story — exact per-SA overhead, ICMP
//!   fragmentation-needed / Packet Too Big back to inner senders, learned path MTU,
//!   fragmentation of inner IPv4 before encryption and TCP MSS clamping;
//! * [`drop`]: every reason a packet is dropped, each with its own counter.

#![forbid(unsafe_code)]

pub mod buf;
pub mod classify;
pub mod crypto;
pub mod drop;
pub mod frag;
pub mod icmp;
pub mod mss;
pub mod mtu;
pub mod proposal;
pub mod reasm;
pub mod replay;
pub mod sa;
pub mod ts;

pub use buf::{BufPool, HeapBuf, HeapPool, PacketBuf};
pub use drop::{DropCounters, DropReason};
pub use proposal::Transform;

/// The most packets one burst call processes at once.
pub const MAX_BURST: usize = 64;
