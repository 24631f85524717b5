//! Ethdev ports and their queues.

use core::ffi::{c_char, CStr};
use core::fmt;
use core::marker::PhantomData;
use core::ptr;
use std::ffi::CString;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU32, Ordering};

use dpdk_sys as ffi;

use crate::eal::Eal;
use crate::error::Error;
use crate::mbuf::Mbuf;
use crate::mempool::Mempool;

/// The packet types RSS is asked to hash on when a port has several queues: IPv4 and IPv6
/// (addresses: spreads ESP, which has no ports) and UDP over both (addresses and ports:
/// spreads NAT-T and IKE). Masked by what the driver supports (`flow_type_rss_offloads`).
pub const RSS_REQUESTED: u64 = ffi::RTE_ETH_RSS_IP | ffi::RTE_ETH_RSS_UDP;

const MAX_PORTS: usize = ffi::RTE_MAX_ETHPORTS as usize;

/// Which port ids a [`Port`] owns: one `Port` per port id at a time.
static PORT_OWNED: [AtomicBool; MAX_PORTS] = [const { AtomicBool::new(false) }; MAX_PORTS];

/// Numbers the rings of [`Eal::ring_pair`], whose names must be unique in the process.
static RING_PAIRS: AtomicU32 = AtomicU32::new(0);

/// The id of an ethdev port that existed when it was looked up ([`Eal::port`],
/// [`Eal::port_by_name`], [`Eal::ports`], [`Eal::ring_pair`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortId(u16);

impl PortId {
    /// The raw DPDK port id.
    pub fn raw(self) -> u16 {
        self.0
    }
}

impl fmt::Display for PortId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An ethdev port, as [`Eal::ports`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortInfo {
    pub id: PortId,
    /// The device name, e.g. `net_ring0` or `0000:03:00.0`.
    pub name: String,
    /// The driver name, e.g. `net_ring`.
    pub driver: String,
    /// The NUMA socket the device is attached to, or [`crate::SOCKET_ANY`].
    pub socket: i32,
}

/// How to configure a [`Port`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConfig {
    /// Rx queues and tx queues (as many of each), one pair per lcore. With more than one,
    /// RSS spreads received flows over the rx queues if the driver can ([`RssStatus`]).
    pub queues: u16,
    /// Descriptors per rx queue (adjusted to the driver's limits).
    pub rx_descriptors: u16,
    /// Descriptors per tx queue (adjusted to the driver's limits).
    pub tx_descriptors: u16,
    /// The MTU (L3 payload size); `None` for the driver's default (1500).
    pub mtu: Option<u16>,
    /// Receive frames for every MAC address.
    pub promiscuous: bool,
}

impl Default for PortConfig {
    fn default() -> PortConfig {
        PortConfig { queues: 1, rx_descriptors: 1024, tx_descriptors: 1024, mtu: None, promiscuous: false }
    }
}

/// Whether received flows are spread over a port's rx queues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RssStatus {
    /// One queue: nothing to spread.
    SingleQueue,
    /// RSS hashes these `RTE_ETH_RSS_*` packet types ([`RSS_REQUESTED`] as far as the driver
    /// supports it) and spreads flows over the queues.
    Enabled {
        /// The `rss_hf` configured.
        hash_types: u64,
    },
    /// The driver cannot hash IP or UDP: the queues were configured without RSS (all traffic
    /// may arrive on one queue). Not an error: the warning says what happened, for the caller
    /// to log.
    Unsupported {
        /// A sentence for a log.
        warning: String,
    },
}

impl RssStatus {
    /// The warning of [`RssStatus::Unsupported`].
    pub fn warning(&self) -> Option<&str> {
        match self {
            RssStatus::Unsupported { warning } => Some(warning),
            _ => None,
        }
    }
}

/// Link state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    pub up: bool,
    /// Mbit/s (`RTE_ETH_SPEED_NUM_*`); 0 if unknown.
    pub speed_mbps: u32,
    pub full_duplex: bool,
    pub autoneg: bool,
}

/// Port counters (`rte_eth_stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Packets received.
    pub ipackets: u64,
    /// Packets sent.
    pub opackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Bytes sent.
    pub obytes: u64,
    /// Packets the hardware dropped because the rx queues were full.
    pub imissed: u64,
    /// Erroneous received packets.
    pub ierrors: u64,
    /// Failed transmissions.
    pub oerrors: u64,
    /// Receive failures for want of an mbuf.
    pub rx_nombuf: u64,
}

impl Eal {
    /// The number of usable ethdev ports.
    pub fn port_count(&self) -> u16 {
        // SAFETY: no preconditions once the EAL is initialised (`&self`).
        unsafe { ffi::rte_eth_dev_count_avail() }
    }

    /// Every usable ethdev port (those not owned by another driver, as
    /// `RTE_ETH_FOREACH_DEV`).
    pub fn ports(&self) -> Vec<PortInfo> {
        let mut out = Vec::new();
        let mut next = 0u16;
        loop {
            // SAFETY: any port id may be passed; the EAL is initialised (`&self`).
            let id = unsafe { ffi::rte_eth_find_next_owned_by(next, u64::from(ffi::RTE_ETH_DEV_NO_OWNER)) };
            let Ok(id) = u16::try_from(id) else { break };
            if usize::from(id) >= MAX_PORTS {
                break;
            }
            if let Ok(info) = port_info(id) {
                out.push(info);
            }
            next = id + 1;
        }
        out
    }

    /// The port with this id, if it exists.
    ///
    /// # Errors
    ///
    /// [`Error::NoSuchPort`].
    pub fn port(&self, id: u16) -> Result<PortId, Error> {
        // SAFETY: any port id may be passed; the EAL is initialised (`&self`).
        if unsafe { ffi::rte_eth_dev_is_valid_port(id) } == 1 {
            Ok(PortId(id))
        } else {
            Err(Error::NoSuchPort { id })
        }
    }

    /// The port with this device name (`rte_eth_dev_get_port_by_name`), e.g. `net_ring0`,
    /// `net_pcap0` or a PCI address `0000:03:00.0`.
    ///
    /// # Errors
    ///
    /// [`Error::NoSuchPortName`] (also for a name with a NUL byte).
    pub fn port_by_name(&self, name: &str) -> Result<PortId, Error> {
        let not_found = || Error::NoSuchPortName { name: name.to_owned() };
        let c = CString::new(name).map_err(|_| not_found())?;
        let mut id = 0u16;
        // SAFETY: `c` is NUL-terminated and outlives the call; `id` is a valid out-pointer;
        // the EAL is initialised (`&self`).
        let ret = unsafe { ffi::rte_eth_dev_get_port_by_name(c.as_ptr(), &mut id) };
        if ret != 0 {
            return Err(not_found());
        }
        Ok(PortId(id))
    }

    /// Creates two `net_ring` ports wired back to back with `queues` rings each way (what
    /// port A sends on its tx queue *q*, port B receives on its rx queue *q*, and the other
    /// way round): a loopback link for tests and for chaining data planes in one process.
    /// The ports are named `net_ring_<a>` and `net_ring_<b>`; they support neither RSS nor
    /// more than 16 queues.
    ///
    /// The rings are never freed before `rte_eal_cleanup`: the `net_ring` driver does not own
    /// rings it is given, and they may still hold mbufs when the ports close.
    ///
    /// # Errors
    ///
    /// [`Error::Nul`], or [`Error::Dpdk`] from `rte_ring_create` or `rte_eth_from_rings`
    /// (e.g. `EEXIST` for a name in use). If creating port B fails, port A stays.
    pub fn ring_pair(&self, a: &str, b: &str, queues: u16) -> Result<(PortId, PortId), Error> {
        let nul = |v: &str| Error::Nul { what: "ring port name", value: v.to_owned() };
        let (ca, cb) = (CString::new(a).map_err(|_| nul(a))?, CString::new(b).map_err(|_| nul(b))?);
        let socket = self.socket_id();
        let k = RING_PAIRS.fetch_add(1, Ordering::Relaxed);
        let mut a_to_b = Vec::with_capacity(usize::from(queues));
        let mut b_to_a = Vec::with_capacity(usize::from(queues));
        for q in 0..queues {
            a_to_b.push(create_ring(&format!("esprit_rp{k}_ab{q}"), socket)?);
            b_to_a.push(create_ring(&format!("esprit_rp{k}_ba{q}"), socket)?);
        }
        let numa = u32::try_from(socket).unwrap_or(0);
        let from_rings = |name: &CStr, rx: &[*mut ffi::rte_ring], tx: &[*mut ffi::rte_ring]| {
            // SAFETY: `name` is NUL-terminated; `rx` and `tx` hold `queues` live rings each
            // (created above, never freed); the driver copies the arrays. The EAL is
            // initialised (`&self`).
            let ret = unsafe {
                ffi::rte_eth_from_rings(
                    name.as_ptr(),
                    rx.as_ptr(),
                    u32::from(queues),
                    tx.as_ptr(),
                    u32::from(queues),
                    numa,
                )
            };
            u16::try_from(ret).map(PortId).map_err(|_| Error::from_rte_errno("rte_eth_from_rings"))
        };
        let pa = from_rings(&ca, &b_to_a, &a_to_b)?;
        let pb = from_rings(&cb, &a_to_b, &b_to_a)?;
        Ok((pa, pb))
    }
}

fn create_ring(name: &str, socket: i32) -> Result<*mut ffi::rte_ring, Error> {
    let c = CString::new(name).map_err(|_| Error::Nul { what: "ring name", value: name.to_owned() })?;
    // SAFETY: `c` is NUL-terminated and outlives the call (DPDK copies the name); 1024 is a
    // power of two; single-producer/single-consumer suits one tx queue feeding one rx queue.
    let r = unsafe { ffi::rte_ring_create(c.as_ptr(), 1024, socket, ffi::RING_F_SP_ENQ | ffi::RING_F_SC_DEQ) };
    if r.is_null() {
        return Err(Error::from_rte_errno("rte_ring_create"));
    }
    Ok(r)
}

fn dev_info(id: u16) -> Result<ffi::rte_eth_dev_info, Error> {
    let mut info = ffi::rte_eth_dev_info::default();
    // SAFETY: `info` is a valid out-pointer; an invalid port id is an error return.
    let ret = unsafe { ffi::rte_eth_dev_info_get(id, &mut info) };
    if ret != 0 {
        return Err(Error::from_ret("rte_eth_dev_info_get", ret));
    }
    Ok(info)
}

/// Copies a C string DPDK owns; empty for NULL.
fn c_string(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: non-null (checked) pointers DPDK gives out here (driver names) are
    // NUL-terminated static strings; copied out at once.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

fn port_info(id: u16) -> Result<PortInfo, Error> {
    let mut name = [0 as c_char; ffi::RTE_ETH_NAME_MAX_LEN as usize];
    // SAFETY: `name` has the RTE_ETH_NAME_MAX_LEN bytes the function may write (it writes a
    // NUL-terminated name); an invalid port id is an error return.
    let ret = unsafe { ffi::rte_eth_dev_get_name_by_port(id, name.as_mut_ptr()) };
    if ret != 0 {
        return Err(Error::from_ret("rte_eth_dev_get_name_by_port", ret));
    }
    let info = dev_info(id)?;
    // SAFETY: any port id may be passed.
    let socket = unsafe { ffi::rte_eth_dev_socket_id(id) };
    Ok(PortInfo { id: PortId(id), name: c_string(name.as_ptr()), driver: c_string(info.driver_name), socket })
}

/// A configured ethdev port, owned: at most one `Port` per port id.
///
/// `'p` borrows the [`Mempool`] its rx queues allocate from. Dropping the port stops and
/// closes it (`rte_eth_dev_close`), which releases its queues and the mbufs the driver held;
/// a closed port is gone (DPDK releases its id) and cannot be configured again.
#[derive(Debug)]
pub struct Port<'p> {
    id: u16,
    name: String,
    driver: String,
    queues: u16,
    rss: RssStatus,
    started: bool,
    /// One flag per queue: a handle exists.
    rx_taken: Box<[AtomicBool]>,
    tx_taken: Box<[AtomicBool]>,
    _pool: PhantomData<&'p ()>,
}

/// Releases a port id claimed in `Port::configure` if configuration stops before the `Port`
/// exists.
struct Claim(u16);

impl Claim {
    fn take(id: u16) -> Result<Claim, Error> {
        let flag = PORT_OWNED.get(usize::from(id)).ok_or(Error::NoSuchPort { id })?;
        flag.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire).map_err(|_| Error::PortInUse { id })?;
        Ok(Claim(id))
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        release_port(self.0);
    }
}

fn release_port(id: u16) {
    if let Some(flag) = PORT_OWNED.get(usize::from(id)) {
        flag.store(false, Ordering::Release);
    }
}

impl<'p> Port<'p> {
    /// Configures port `id`: `config.queues` rx queues filled from `pool` and as many tx
    /// queues, RSS over IP and UDP when there are several queues and the driver supports it
    /// (see [`Port::rss`] for the fallback), the MTU and promiscuous mode. The port is left
    /// stopped: [`Port::start`] it.
    ///
    /// # Errors
    ///
    /// [`Error::NoSuchPort`], [`Error::PortInUse`], [`Error::QueueCount`], [`Error::Mtu`],
    /// or [`Error::Dpdk`] from the ethdev call that failed (e.g. `rte_eth_rx_queue_setup`
    /// with `EINVAL` when the pool's data room is below the driver's minimum). If the
    /// failure comes after the queues were being set up, the port is closed (its driver may
    /// hold the pool).
    pub fn configure(id: PortId, config: &PortConfig, pool: &'p Mempool<'_>) -> Result<Port<'p>, Error> {
        let id = id.0;
        let claim = Claim::take(id)?;
        let info = port_info(id)?;
        let dev = dev_info(id)?;
        let max_queues = dev.max_rx_queues.min(dev.max_tx_queues);
        if config.queues == 0 || config.queues > max_queues {
            return Err(Error::QueueCount { port: id, driver: info.driver, requested: config.queues, max: max_queues });
        }
        let mut conf = ffi::rte_eth_conf::default();
        if let Some(mtu) = config.mtu {
            if mtu < dev.min_mtu || mtu > dev.max_mtu {
                return Err(Error::Mtu {
                    port: id,
                    driver: info.driver,
                    requested: mtu,
                    min: dev.min_mtu,
                    max: dev.max_mtu,
                });
            }
            conf.rxmode.mtu = u32::from(mtu);
        }
        let rss = if config.queues == 1 {
            RssStatus::SingleQueue
        } else {
            let hash_types = RSS_REQUESTED & dev.flow_type_rss_offloads;
            if hash_types == 0 {
                RssStatus::Unsupported {
                    warning: format!(
                        "port {id} ({}, driver {}) cannot hash IP or UDP for RSS \
                         (flow_type_rss_offloads {:#x}): its {} rx queues are configured \
                         without RSS, so flows are not spread over them",
                        info.name, info.driver, dev.flow_type_rss_offloads, config.queues
                    ),
                }
            } else {
                conf.rxmode.mq_mode = ffi::RTE_ETH_MQ_RX_RSS;
                // rss_key NULL: the driver's default key.
                conf.rx_adv_conf.rss_conf.rss_hf = hash_types;
                RssStatus::Enabled { hash_types }
            }
        };

        // SAFETY: `conf` is a valid, fully initialised rte_eth_conf that outlives the call
        // (DPDK copies it); the port is ours (claim) and stopped (never started by us).
        let ret = unsafe { ffi::rte_eth_dev_configure(id, config.queues, config.queues, &conf) };
        if ret != 0 {
            return Err(Error::from_ret("rte_eth_dev_configure", ret));
        }

        // From here on the driver may refer to `pool`: an error drops (closes) the Port.
        core::mem::forget(claim);
        let mut port = Port {
            id,
            name: info.name,
            driver: info.driver,
            queues: config.queues,
            rss,
            started: false,
            rx_taken: (0..config.queues).map(|_| AtomicBool::new(false)).collect(),
            tx_taken: (0..config.queues).map(|_| AtomicBool::new(false)).collect(),
            _pool: PhantomData,
        };
        port.setup_queues(config, pool)?;
        port.set_promiscuous(config.promiscuous)?;
        Ok(port)
    }

    fn setup_queues(&mut self, config: &PortConfig, pool: &'p Mempool<'_>) -> Result<(), Error> {
        let (mut nb_rx, mut nb_tx) = (config.rx_descriptors, config.tx_descriptors);
        // SAFETY: valid out-pointers; the port is configured.
        let ret = unsafe { ffi::rte_eth_dev_adjust_nb_rx_tx_desc(self.id, &mut nb_rx, &mut nb_tx) };
        if ret != 0 {
            return Err(Error::from_ret("rte_eth_dev_adjust_nb_rx_tx_desc", ret));
        }
        // SAFETY: any port id may be passed.
        let socket = unsafe { ffi::rte_eth_dev_socket_id(self.id) };
        // The queue setup calls take the socket unsigned: SOCKET_ID_ANY (-1) is u32::MAX there.
        let socket = u32::try_from(socket).unwrap_or(u32::MAX);
        for q in 0..self.queues {
            // SAFETY: the port is configured with `self.queues` rx queues and stopped; NULL
            // rx_conf means the driver's defaults; `pool` is a live pktmbuf pool that outlives
            // the port (`'p`).
            let ret = unsafe { ffi::rte_eth_rx_queue_setup(self.id, q, nb_rx, socket, ptr::null(), pool.as_ptr()) };
            if ret != 0 {
                return Err(Error::from_ret("rte_eth_rx_queue_setup", ret));
            }
            // SAFETY: as above, for the tx queues; NULL tx_conf means the defaults.
            let ret = unsafe { ffi::rte_eth_tx_queue_setup(self.id, q, nb_tx, socket, ptr::null()) };
            if ret != 0 {
                return Err(Error::from_ret("rte_eth_tx_queue_setup", ret));
            }
        }
        Ok(())
    }

    /// The port id.
    pub fn id(&self) -> PortId {
        PortId(self.id)
    }

    /// The device name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The driver name.
    pub fn driver(&self) -> &str {
        &self.driver
    }

    /// The number of rx queues (and of tx queues).
    pub fn queues(&self) -> u16 {
        self.queues
    }

    /// Whether RSS spreads flows over the rx queues; [`RssStatus::warning`] is the sentence
    /// to log when the driver could not.
    pub fn rss(&self) -> &RssStatus {
        &self.rss
    }

    /// Whether the port is started.
    pub fn is_started(&self) -> bool {
        self.started
    }

    /// Starts the port (`rte_eth_dev_start`).
    ///
    /// # Errors
    ///
    /// [`Error::Dpdk`] from `rte_eth_dev_start`.
    pub fn start(&mut self) -> Result<(), Error> {
        if self.started {
            return Ok(());
        }
        // SAFETY: the port is ours and configured; `&mut self` proves no queue handle exists.
        let ret = unsafe { ffi::rte_eth_dev_start(self.id) };
        if ret != 0 {
            return Err(Error::from_ret("rte_eth_dev_start", ret));
        }
        self.started = true;
        Ok(())
    }

    /// Stops the port (`rte_eth_dev_stop`). Its queues keep their configuration; the mbufs
    /// its driver holds stay there until [`Port::start`] or drop.
    ///
    /// # Errors
    ///
    /// [`Error::Dpdk`] from `rte_eth_dev_stop`.
    pub fn stop(&mut self) -> Result<(), Error> {
        if !self.started {
            return Ok(());
        }
        // SAFETY: the port is ours and started; `&mut self` proves no queue handle exists,
        // so no lcore is in a burst on it.
        let ret = unsafe { ffi::rte_eth_dev_stop(self.id) };
        if ret != 0 {
            return Err(Error::from_ret("rte_eth_dev_stop", ret));
        }
        self.started = false;
        Ok(())
    }

    /// Turns promiscuous mode on or off.
    ///
    /// # Errors
    ///
    /// [`Error::Dpdk`] (`ENOTSUP` if the driver cannot turn it on; turning it off on such a
    /// driver succeeds).
    pub fn set_promiscuous(&mut self, on: bool) -> Result<(), Error> {
        // SAFETY: the port is ours and configured.
        let ret = unsafe {
            if on {
                ffi::rte_eth_promiscuous_enable(self.id)
            } else {
                ffi::rte_eth_promiscuous_disable(self.id)
            }
        };
        match ret {
            0 => Ok(()),
            r if !on && r == -(ENOTSUP) => Ok(()),
            r if on => Err(Error::from_ret("rte_eth_promiscuous_enable", r)),
            r => Err(Error::from_ret("rte_eth_promiscuous_disable", r)),
        }
    }

    /// Whether promiscuous mode is on.
    pub fn promiscuous(&self) -> bool {
        // SAFETY: any port id may be passed; reads a flag.
        unsafe { ffi::rte_eth_promiscuous_get(self.id) == 1 }
    }

    /// The MTU.
    ///
    /// # Errors
    ///
    /// [`Error::Dpdk`] from `rte_eth_dev_get_mtu`.
    pub fn mtu(&self) -> Result<u16, Error> {
        let mut mtu = 0u16;
        // SAFETY: `mtu` is a valid out-pointer; the port is ours.
        let ret = unsafe { ffi::rte_eth_dev_get_mtu(self.id, &mut mtu) };
        if ret != 0 {
            return Err(Error::from_ret("rte_eth_dev_get_mtu", ret));
        }
        Ok(mtu)
    }

    /// Changes the MTU (some drivers only while stopped).
    ///
    /// # Errors
    ///
    /// [`Error::Dpdk`] from `rte_eth_dev_set_mtu` (`EINVAL` out of range, `EBUSY` while
    /// started on drivers that need a stop, `ENOTSUP`).
    pub fn set_mtu(&mut self, mtu: u16) -> Result<(), Error> {
        // SAFETY: the port is ours and configured.
        let ret = unsafe { ffi::rte_eth_dev_set_mtu(self.id, mtu) };
        if ret != 0 {
            return Err(Error::from_ret("rte_eth_dev_set_mtu", ret));
        }
        Ok(())
    }

    /// The port's MAC address.
    ///
    /// # Errors
    ///
    /// [`Error::Dpdk`] from `rte_eth_macaddr_get`.
    pub fn mac_address(&self) -> Result<[u8; 6], Error> {
        let mut mac = ffi::rte_ether_addr::default();
        // SAFETY: `mac` is a valid out-pointer; the port is ours.
        let ret = unsafe { ffi::rte_eth_macaddr_get(self.id, &mut mac) };
        if ret != 0 {
            return Err(Error::from_ret("rte_eth_macaddr_get", ret));
        }
        Ok(mac.addr_bytes)
    }

    /// The link state, without waiting (`rte_eth_link_get_nowait`).
    ///
    /// # Errors
    ///
    /// [`Error::Dpdk`] from `rte_eth_link_get_nowait`.
    pub fn link(&self) -> Result<Link, Error> {
        let mut link = ffi::rte_eth_link::default();
        // SAFETY: `link` is a valid out-pointer; the port is ours.
        let ret = unsafe { ffi::rte_eth_link_get_nowait(self.id, &mut link) };
        if ret != 0 {
            return Err(Error::from_ret("rte_eth_link_get_nowait", ret));
        }
        Ok(Link {
            up: u32::from(link.link_status()) == ffi::RTE_ETH_LINK_UP,
            speed_mbps: link.link_speed,
            full_duplex: u32::from(link.link_duplex()) == ffi::RTE_ETH_LINK_FULL_DUPLEX,
            autoneg: u32::from(link.link_autoneg()) == ffi::RTE_ETH_LINK_AUTONEG,
        })
    }

    /// The port's counters (`rte_eth_stats_get`).
    ///
    /// # Errors
    ///
    /// [`Error::Dpdk`] from `rte_eth_stats_get`.
    pub fn stats(&self) -> Result<Stats, Error> {
        let mut s = ffi::rte_eth_stats::default();
        // SAFETY: `s` is a valid out-pointer; the port is ours.
        let ret = unsafe { ffi::rte_eth_stats_get(self.id, &mut s) };
        if ret != 0 {
            return Err(Error::from_ret("rte_eth_stats_get", ret));
        }
        Ok(Stats {
            ipackets: s.ipackets,
            opackets: s.opackets,
            ibytes: s.ibytes,
            obytes: s.obytes,
            imissed: s.imissed,
            ierrors: s.ierrors,
            oerrors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        })
    }

    /// Zeroes the port's counters.
    ///
    /// # Errors
    ///
    /// [`Error::Dpdk`] from `rte_eth_stats_reset`.
    pub fn reset_stats(&mut self) -> Result<(), Error> {
        // SAFETY: the port is ours.
        let ret = unsafe { ffi::rte_eth_stats_reset(self.id) };
        if ret != 0 {
            return Err(Error::from_ret("rte_eth_stats_reset", ret));
        }
        Ok(())
    }

    /// The handle of rx queue `queue`, for one lcore. The port cannot be stopped or dropped
    /// while a handle exists.
    ///
    /// # Errors
    ///
    /// [`Error::NotStarted`], [`Error::NoSuchQueue`], or [`Error::QueueTaken`] while another
    /// handle of the same queue exists.
    pub fn rx_queue(&self, queue: u16) -> Result<RxQueue<'_>, Error> {
        let taken = self.take_queue(&self.rx_taken, "rx", queue)?;
        Ok(RxQueue { port: self.id, queue, taken, refused_chained: 0, refused_shared: 0 })
    }

    /// The handle of tx queue `queue`, for one lcore. The port cannot be stopped or dropped
    /// while a handle exists.
    ///
    /// # Errors
    ///
    /// As [`Port::rx_queue`].
    pub fn tx_queue(&self, queue: u16) -> Result<TxQueue<'_>, Error> {
        let taken = self.take_queue(&self.tx_taken, "tx", queue)?;
        Ok(TxQueue { port: self.id, queue, taken })
    }

    fn take_queue<'a>(&self, flags: &'a [AtomicBool], dir: &'static str, queue: u16) -> Result<&'a AtomicBool, Error> {
        if !self.started {
            return Err(Error::NotStarted { port: self.id });
        }
        let flag =
            flags.get(usize::from(queue)).ok_or(Error::NoSuchQueue { port: self.id, queue, queues: self.queues })?;
        flag.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire).map_err(|_| Error::QueueTaken {
            port: self.id,
            dir,
            queue,
        })?;
        Ok(flag)
    }
}

impl Drop for Port<'_> {
    /// Stops and closes the port; the driver frees the mbufs it holds back to their pools.
    fn drop(&mut self) {
        // Failures cannot be reported from drop; a port that fails to stop or close is
        // unusable either way.
        let _ = self.stop();
        // SAFETY: the port is ours and stopped; no queue handle exists (`&mut self`). Its id is
        // not used again by this Port.
        let _ = unsafe { ffi::rte_eth_dev_close(self.id) };
        release_port(self.id);
    }
}

/// `ENOTSUP` on Linux, as the ethdev API returns it.
const ENOTSUP: i32 = 95;

/// A receive queue of a started [`Port`], for one lcore.
///
/// It refuses mbufs the rest of the data plane could not handle as an [`Mbuf`]: chained
/// (multi-segment: a frame longer than the pool's data room, with scatter or LRO) and shared
/// (indirect, with an external buffer, or reference count above 1). They are freed at once
/// and counted ([`RxQueue::refused_chained`], [`RxQueue::refused_shared`]); size the pool's
/// data room for the MTU so that none are chained. They are not linearised: that would need
/// a copy into a larger buffer, on the fast path.
#[derive(Debug)]
pub struct RxQueue<'q> {
    port: u16,
    queue: u16,
    taken: &'q AtomicBool,
    refused_chained: u64,
    refused_shared: u64,
}

impl<'q> RxQueue<'q> {
    /// Receives up to `max` packets (`rte_eth_rx_burst`, at most 65535) and appends them to
    /// `out`; returns how many were appended. Allocates only if `out` has less than `max`
    /// spare capacity.
    pub fn rx_burst<'m>(&mut self, out: &mut Vec<Mbuf<'m>>, max: usize) -> usize
    where
        'q: 'm,
    {
        let max = u16::try_from(max).unwrap_or(u16::MAX);
        out.reserve(usize::from(max));
        let len = out.len();
        // SAFETY: `len` is the Vec's length, so the pointer is one past its last element,
        // inside (or at the end of) its allocation.
        let base = unsafe { out.as_mut_ptr().add(len) }.cast::<*mut ffi::rte_mbuf>();
        // SAFETY: `base` has room for `max` pointers (reserve above; `Mbuf` is
        // `repr(transparent)` over `*mut rte_mbuf`). The port is started (a handle exists only
        // then, and holds off stop) and this handle is the only user of this queue.
        let n = unsafe { ffi::esprit_rte_eth_rx_burst(self.port, self.queue, base, max) };
        let mut kept = 0;
        for i in 0..usize::from(n) {
            // SAFETY: the driver wrote `n` mbuf pointers from `base`; `kept <= i`.
            let m = unsafe { *base.add(i) };
            match check_received(m) {
                Refusal::None => {
                    // SAFETY: `kept <= i < n`, inside the spare capacity.
                    unsafe { *base.add(kept) = m };
                    kept += 1;
                }
                refusal => {
                    if refusal == Refusal::Chained {
                        self.refused_chained += 1;
                    } else {
                        self.refused_shared += 1;
                    }
                    // SAFETY: the driver handed the mbuf (and its chain) to us; freeing
                    // releases our reference.
                    unsafe { ffi::esprit_rte_pktmbuf_free(m) };
                }
            }
        }
        // SAFETY: the first `kept` slots after `len` hold non-null, direct, single-segment
        // mbufs with reference count 1 that the driver handed over (checked by
        // `check_received`); they come from the rx pool, which outlives `'q` and so `'m`, or
        // from a pool that never frees while mbufs are out (the Mempool rule).
        unsafe { out.set_len(len + kept) };
        kept
    }

    /// Chained mbufs refused (freed) so far.
    pub fn refused_chained(&self) -> u64 {
        self.refused_chained
    }

    /// Shared (indirect, external or reference-counted) mbufs refused (freed) so far.
    pub fn refused_shared(&self) -> u64 {
        self.refused_shared
    }

    /// The port id.
    pub fn port(&self) -> PortId {
        PortId(self.port)
    }

    /// The queue index.
    pub fn queue(&self) -> u16 {
        self.queue
    }
}

impl Drop for RxQueue<'_> {
    fn drop(&mut self) {
        self.taken.store(false, Ordering::Release);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    None,
    Chained,
    Shared,
}

/// Whether a received mbuf can become an [`Mbuf`].
#[inline]
fn check_received(m: *mut ffi::rte_mbuf) -> Refusal {
    // SAFETY: `m` is a valid mbuf the driver just handed over; `nb_segs` and `ol_flags` are
    // plain fields only its owner (us) writes. `refcnt` is read atomically: if the mbuf is
    // shared, other owners update it atomically.
    let (segs, flags, refcnt) = unsafe {
        ((*m).nb_segs, (*m).ol_flags, AtomicU16::from_ptr(ptr::addr_of_mut!((*m).refcnt)).load(Ordering::Relaxed))
    };
    if segs != 1 {
        Refusal::Chained
    } else if refcnt != 1 || flags & (ffi::RTE_MBUF_F_INDIRECT | ffi::RTE_MBUF_F_EXTERNAL) != 0 {
        Refusal::Shared
    } else {
        Refusal::None
    }
}

/// A transmit queue of a started [`Port`], for one lcore.
#[derive(Debug)]
pub struct TxQueue<'q> {
    port: u16,
    queue: u16,
    taken: &'q AtomicBool,
}

impl TxQueue<'_> {
    /// Sends packets from the front of `pkts` (`rte_eth_tx_burst`, at most 65535 per call)
    /// and removes the ones the driver took; returns how many. The ones it did not take (its
    /// queue was full) stay in `pkts`, in order, for the caller to retry or drop. Never
    /// allocates.
    pub fn tx_burst(&mut self, pkts: &mut Vec<Mbuf<'_>>) -> usize {
        let len = pkts.len();
        let count = u16::try_from(len).unwrap_or(u16::MAX);
        let base = pkts.as_mut_ptr().cast::<*mut ffi::rte_mbuf>();
        // SAFETY: `base` points to `len >= count` initialised mbuf pointers (`Mbuf` is
        // `repr(transparent)`), each a single-segment mbuf we own. The port is started and this
        // handle is the only user of this queue.
        let sent = usize::from(unsafe { ffi::esprit_rte_eth_tx_burst(self.port, self.queue, base, count) });
        // SAFETY: the driver now owns the first `sent` mbufs, so they are dropped from the Vec
        // without freeing: the remaining `len - sent` are moved to the front (overlapping copy)
        // and the length cut, with nothing in between that could panic.
        unsafe {
            ptr::copy(base.add(sent), base, len - sent);
            pkts.set_len(len - sent);
        }
        sent
    }

    /// The port id.
    pub fn port(&self) -> PortId {
        PortId(self.port)
    }

    /// The queue index.
    pub fn queue(&self) -> u16 {
        self.queue
    }
}

impl Drop for TxQueue<'_> {
    fn drop(&mut self) {
        self.taken.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The RSS bits asked for, against the bit numbers of DPDK 22.11's `rte_ethdev.h`
    /// (`RTE_ETH_RSS_IPV4` is bit 2, ...), not against the bindings' own macros.
    #[test]
    fn rss_requested_is_ip_and_udp() {
        let bit = |n: u32| 1u64 << n;
        let ip = bit(2) | bit(3) | bit(7) | bit(8) | bit(9) | bit(13) | bit(15);
        let udp = bit(5) | bit(11) | bit(17);
        assert_eq!(RSS_REQUESTED, ip | udp);
        assert_eq!(RSS_REQUESTED & ffi::RTE_ETH_RSS_ESP, 0, "ESP is hashed by address only");
    }

    #[test]
    fn default_config_is_one_queue() {
        let c = PortConfig::default();
        assert_eq!(c.queues, 1);
        assert_eq!(c.mtu, None);
        assert!(!c.promiscuous);
    }
}
