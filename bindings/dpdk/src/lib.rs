//! A safe layer over [`dpdk_sys`] (DPDK 22.11 LTS) for Esprit's data plane, so that the crates
//! above it need no `unsafe`.
//!
//! # Objects and who owns what
//!
//! ```text
//! Eal ──borrowed by──▶ Mempool<'e> ──borrowed by──▶ Mbuf<'p>   (allocated)
//!                                  └─borrowed by──▶ Port<'p> ──borrowed by──▶ RxQueue<'q> ──▶ Mbuf<'q> (received)
//!                                                            └─borrowed by──▶ TxQueue<'q> ◀── Mbuf<'_> (sent)
//! ```
//!
//! * [`Eal`] — the DPDK environment, initialised at most once per process by [`Eal::init`];
//!   a second call is an [`Error::EalAlreadyInitialised`] (and one after the `Eal` was dropped
//!   an [`Error::EalCleanedUp`]: DPDK cannot initialise twice), never a second `rte_eal_init`.
//!   Dropping it calls `rte_eal_cleanup`. Everything below borrows it, so the borrow checker
//!   keeps every pool, port, queue and mbuf from outliving it.
//! * [`Mempool`] — an mbuf pool (`rte_pktmbuf_pool_create`). Dropping it frees the pool only
//!   if every mbuf is back in it, and otherwise leaves it allocated (a leak, never a dangling
//!   mbuf): see [`Mempool`] for the exact rule. Mbufs allocated from a pool borrow it.
//! * [`Mbuf`] — one packet in one mbuf segment, with exactly one owner: not `Clone`, freed by
//!   `Drop`, moved between lcores (`Send`), and handed to DPDK by [`TxQueue::tx_burst`] or
//!   [`Mbuf::into_raw`]. It implements [`esprit_esp::buf::PacketBuf`], so the ESP engine works
//!   on it in place. Chained (multi-segment) and shared (indirect, external or
//!   reference-counted) mbufs are refused at receive: freed and counted, never handed out.
//! * [`Port`] — the one owner of a configured ethdev port: queues, RSS, MTU, promiscuous
//!   mode, start/stop, MAC, link, statistics. Dropping it stops and closes the port, which
//!   returns the mbufs its driver holds to their pools.
//! * [`RxQueue`] / [`TxQueue`] — one handle per queue of a started port, meant for one lcore
//!   each (`Send`, and `&mut self` to burst). Received mbufs borrow the queue.
//! * [`LcoreRegistration`] — [`Eal::register_thread`] makes a `std::thread` an lcore (with
//!   its own mempool caches) until dropped, on that thread.
//!
//! # Drivers
//!
//! `rte_eal_init` loads the poll-mode drivers itself, from [`pmd_dir`] (DPDK is linked as
//! shared libraries: nothing extra to pass). Virtual devices are created with `--vdev` EAL
//! arguments, at run time with [`Eal::probe_device`], or, for a pair of ports wired back to
//! back, with [`Eal::ring_pair`].
//!
//! # Example
//!
//! ```no_run
//! use dpdk::{Eal, Mempool, Port, PortConfig};
//!
//! let eal = Eal::init(&["esprit", "--no-huge", "-m", "256", "--no-pci", "--no-shconf",
//!                       "--vdev", "net_ring0"])?;
//! let pool = Mempool::new(&eal, "rx", 4095, 256, 0, 2048 + 128, dpdk::SOCKET_ANY)?;
//! let mut port = Port::configure(eal.port_by_name("net_ring0")?, &PortConfig::default(), &pool)?;
//! port.start()?;
//! let (mut rx, mut tx) = (port.rx_queue(0)?, port.tx_queue(0)?);
//! let mut pkts = Vec::with_capacity(32);
//! loop {
//!     rx.rx_burst(&mut pkts, 32);
//!     // ... work on the packets ...
//!     tx.tx_burst(&mut pkts);
//!     pkts.clear(); // drops (frees) whatever the driver did not take
//! #   break;
//! }
//! # Ok::<(), dpdk::Error>(())
//! ```

#![deny(clippy::undocumented_unsafe_blocks)]

mod eal;
mod error;
mod mbuf;
mod mempool;
mod port;

pub use eal::{pmd_dir, Eal, LcoreRegistration};
pub use error::Error;
pub use mbuf::Mbuf;
pub use mempool::Mempool;
pub use port::{Link, Port, PortConfig, PortId, PortInfo, RssStatus, RxQueue, Stats, TxQueue, RSS_REQUESTED};

/// Any NUMA socket, for [`Mempool::new`].
pub const SOCKET_ANY: i32 = dpdk_sys::SOCKET_ID_ANY;

/// The raw bindings, for what the safe layer does not cover.
pub use dpdk_sys as sys;
