//! Packet I/O for esprit-dataplane.
//!
//! [`pcap`] reads and writes classic libpcap capture files: the offline mode replays them
//! through the engine, and traces are written in the same format.

#![forbid(unsafe_code)]

pub mod pcap;
