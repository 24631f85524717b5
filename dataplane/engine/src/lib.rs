//! esprit-dataplane: the forwarding engine and its configuration, shared by the offline mode
//! (pcap files in and out) and the live data plane.

#![forbid(unsafe_code)]

pub mod config;
pub mod engine;
pub mod link;
pub mod live;
pub mod local;
pub mod offline;
pub mod shared;
pub mod stats;
pub mod tables;
pub mod trace;
pub mod worker;

pub use config::Config;
pub use engine::Engine;
pub use esprit_esp::{BufPool, HeapPool};
pub use shared::{Control, Event, Shared};
pub use worker::Worker;
