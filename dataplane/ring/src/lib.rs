//! The contract between esprit-ike (control plane) and esprit-dataplane: shared-memory
//! rings carrying a versioned message ABI, and the data plane's stats segment.
//!
//! * [`region`]: a file under /dev/shm (`/dev/shm/esprit-<instance>`) with a versioned
//!   header and two single-producer single-consumer rings, one per direction. Either
//!   process may create it, either may restart; messages not yet consumed survive.
//!   [`Channel::attach`] is the entry point.
//! * [`ring`]: the lock-free index protocol of one ring (model-checked with loom).
//! * [`message`] and [`codec`]: what travels, and its little-endian encoding. [`decode`]
//!   accepts arbitrary bytes without panicking.
//! * [`stats`]: named 64-bit counters per lcore and per SA slot, written by the data plane
//!   and read by the control plane without locks.
//!
//! | tag | message | way |
//! | --- | --- | --- |
//! | `0x0001` | `AddSa` | control → data |
//! | `0x0002` | `DeleteSa` | control → data |
//! | `0x0003` | `SetPeer` | control → data |
//! | `0x0004` | `AddPolicy` | control → data |
//! | `0x0005` | `DeletePolicy` | control → data |
//! | `0x0006` | `AddRoute` | control → data |
//! | `0x0007` | `DeleteRoute` | control → data |
//! | `0x0008` | `SetAddress` | control → data |
//! | `0x0009` | `RemoveAddress` | control → data |
//! | `0x000a` | `SetKeepalive` | control → data |
//! | `0x000b` | `Transmit` | control → data |
//! | `0x000c` | `Flush` | control → data |
//! | `0x000d` | `SyncDone` | control → data |
//! | `0x000e` | `Trace` | control → data |
//! | `0x8001` | `Hello` | data → control |
//! | `0x8002` | `Punt` | data → control |
//! | `0x8003` | `SaEvent` | data → control |
//! | `0x8004` | `Ack` | data → control |
//! | `0x8005` | `Error` | data → control |

// Under loom only the ring protocol and its model checks are built: the shared mapping that
// uses it is not.
#![cfg_attr(loom, allow(dead_code))]

pub mod codec;
pub mod message;
pub mod ring;
mod sync;

#[cfg(not(loom))]
pub mod region;
#[cfg(not(loom))]
mod shm;
#[cfg(not(loom))]
pub mod stats;

pub use codec::{decode, DecodeError, EncodeError};
pub use message::{Heading, Message, MessageKind};
#[cfg(not(loom))]
pub use region::{
    inspect, shm_path, AttachError, Channel, PeerInfo, Received, Receiver, RecvError, Region, RegionOptions,
    RegionSnapshot, SendError, Sender, Side, ABI_MAJOR, ABI_MINOR,
};
pub use ring::{RingCorrupt, RingStats};
#[cfg(not(loom))]
pub use stats::{StatsLayout, StatsReader, StatsWriter};
