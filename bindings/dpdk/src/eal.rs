//! The DPDK Environment Abstraction Layer: initialised once per process, cleaned up on drop.

use core::ffi::{c_char, c_int, CStr};
use core::marker::PhantomData;
use std::ffi::CString;
use std::sync::atomic::{AtomicU8, Ordering};

use dpdk_sys as ffi;

use crate::error::Error;

/// The process's EAL state. DPDK's own `rte_eal_init` guard only exists after the first call
/// and its failure paths differ; this one answers every call with a clear [`Error`].
static STATE: AtomicU8 = AtomicU8::new(UNINIT);
const UNINIT: u8 = 0;
/// `rte_eal_init` running in some thread.
const INITIALISING: u8 = 1;
const LIVE: u8 = 2;
/// `rte_eal_cleanup` ran (or is running): DPDK cannot be initialised again.
const CLEANED_UP: u8 = 3;

/// The directory `rte_eal_init` loads poll-mode drivers from (DPDK's `RTE_EAL_PMD_PATH`,
/// Debian: `/usr/lib/x86_64-linux-gnu/dpdk/pmds-23.0`): `net_ring`, `net_null`, `net_pcap`,
/// `net_af_packet`, the PCI NIC drivers, ...
///
/// DPDK is linked as shared libraries, so `rte_eal_init` loads every driver in this
/// directory by itself; EAL arguments `-d <dir or .so>` add drivers from elsewhere.
pub fn pmd_dir() -> &'static str {
    CStr::from_bytes_with_nul(ffi::RTE_EAL_PMD_PATH).ok().and_then(|s| s.to_str().ok()).unwrap_or("")
}

/// The initialised DPDK environment of this process.
///
/// At most one exists per process, ever: [`Eal::init`] succeeds once. Pools, ports, queues and
/// mbufs borrow it, so it outlives them all. Dropping it calls `rte_eal_cleanup`, which
/// releases DPDK's memory; after that DPDK cannot be used again in this process (a later
/// [`Eal::init`] is an [`Error::EalCleanedUp`]).
#[derive(Debug)]
pub struct Eal {
    /// The argument strings `rte_eal_init` saw (NUL-terminated); kept until cleanup, as DPDK
    /// may keep pointers to them.
    _args: Vec<Vec<u8>>,
}

impl Eal {
    /// Initialises DPDK with `args`, as `rte_eal_init(argc, argv)`: `args[0]` is the program
    /// name (`"esprit"` is used if `args` is empty), the rest are
    /// [EAL options](https://doc.dpdk.org/guides-22.11/linux_gsg/linux_eal_parameters.html),
    /// e.g. `["esprit", "-l", "0-3", "--vdev", "net_ring0"]`. Arguments after a `--` are
    /// ignored.
    ///
    /// The calling thread becomes the main lcore (and is pinned to its CPU).
    ///
    /// Note for DPDK 22.11: `--no-huge` cannot be combined with `--in-memory` (it implies
    /// legacy memory, which `--in-memory` refuses); use `--no-huge --no-shconf` and a unique
    /// `--file-prefix` for a process that must not share anything.
    ///
    /// # Errors
    ///
    /// [`Error::EalAlreadyInitialised`] or [`Error::EalCleanedUp`] if this process already
    /// called it successfully; [`Error::Nul`] for an argument with a NUL byte;
    /// [`Error::Dpdk`] with `rte_errno`'s text if `rte_eal_init` fails (after which DPDK may
    /// or may not accept another attempt: it refuses with `EALREADY` when the failure left it
    /// half initialised).
    pub fn init<S: AsRef<str>>(args: &[S]) -> Result<Eal, Error> {
        // Owned, mutable, NUL-terminated copies: C's argv strings are writable, and DPDK may
        // keep pointers into them.
        let mut cargs: Vec<Vec<u8>> = Vec::with_capacity(args.len().max(1));
        if args.is_empty() {
            cargs.push(b"esprit\0".to_vec());
        }
        for a in args {
            let a = a.as_ref();
            let c = CString::new(a).map_err(|_| Error::Nul { what: "EAL argument", value: a.to_owned() })?;
            cargs.push(c.into_bytes_with_nul());
        }
        // More than c_int::MAX arguments cannot be passed; the extra ones are not seen.
        let argc = c_int::try_from(cargs.len()).unwrap_or(c_int::MAX);

        match STATE.compare_exchange(UNINIT, INITIALISING, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => {}
            Err(CLEANED_UP) => return Err(Error::EalCleanedUp),
            Err(_) => return Err(Error::EalAlreadyInitialised),
        }

        // rte_eal_init may permute argv (getopt), so it gets its own array of pointers, NULL
        // terminated as a C argv is.
        let mut argv: Vec<*mut c_char> = cargs
            .iter_mut()
            .map(|a| a.as_mut_ptr().cast::<c_char>())
            .chain(core::iter::once(core::ptr::null_mut()))
            .collect();
        // SAFETY: `argv` holds at least `argc` pointers to writable NUL-terminated strings,
        // followed by NULL, as a C argv; the strings live in `cargs`, whose heap buffers stay
        // in place (moved into the Eal) until after rte_eal_cleanup. STATE (INITIALISING, set
        // above) makes this the only call in the process.
        let ret = unsafe { ffi::rte_eal_init(argc, argv.as_mut_ptr()) };
        if ret < 0 {
            let err = Error::from_rte_errno("rte_eal_init");
            STATE.store(UNINIT, Ordering::Release);
            return Err(err);
        }
        STATE.store(LIVE, Ordering::Release);
        Ok(Eal { _args: cargs })
    }

    /// The lcore id of the calling thread, or `None` if it is not an EAL thread (not the main
    /// lcore, not a worker lcore).
    pub fn lcore_id() -> Option<u32> {
        // SAFETY: reads a thread-local variable; no preconditions.
        let id = unsafe { ffi::esprit_rte_lcore_id() };
        (id != ffi::LCORE_ID_ANY).then_some(id)
    }

    /// The NUMA socket of the calling thread (`SOCKET_ANY` off an EAL thread).
    pub fn socket_id(&self) -> i32 {
        // SAFETY: no preconditions once the EAL is initialised, which `&self` proves.
        let s = unsafe { ffi::rte_socket_id() };
        i32::try_from(s).unwrap_or(ffi::SOCKET_ID_ANY)
    }

    /// The number of lcores the EAL runs (the `-l`/`-c` EAL argument).
    pub fn lcore_count(&self) -> u32 {
        // SAFETY: no preconditions once the EAL is initialised, which `&self` proves.
        unsafe { ffi::rte_lcore_count() }
    }

    /// Creates and probes a device at run time (hotplug), e.g. `"net_null1"` or
    /// `"net_pcap1,rx_pcap=in.pcap,tx_pcap=out.pcap"`: the same string as a `--vdev` EAL
    /// argument. The new port is then found by name with [`Eal::port_by_name`].
    ///
    /// # Errors
    ///
    /// [`Error::Nul`], or [`Error::Dpdk`] from `rte_dev_probe` (e.g. `EEXIST` for a name in
    /// use, `ENOENT`/`EINVAL` for an unknown driver or bad arguments).
    pub fn probe_device(&self, devargs: &str) -> Result<(), Error> {
        let c =
            CString::new(devargs).map_err(|_| Error::Nul { what: "device arguments", value: devargs.to_owned() })?;
        // SAFETY: `c` is NUL-terminated and outlives the call, which copies what it keeps;
        // the EAL is initialised (`&self`).
        let ret = unsafe { ffi::rte_dev_probe(c.as_ptr()) };
        if ret < 0 {
            return Err(Error::from_ret("rte_dev_probe", ret));
        }
        Ok(())
    }

    /// Makes the calling thread (a `std::thread`, not launched by the EAL) an lcore
    /// (`rte_thread_register`) until the returned guard is dropped: it gets an lcore id, and
    /// with it per-lcore mempool caches, which make allocating and freeing mbufs much cheaper
    /// than on an unregistered thread (which goes to the pool's shared ring every time).
    ///
    /// Before dropping the guard, call [`crate::Mempool::flush_local_cache`] on the pools the
    /// thread used: the next thread to get the same lcore id inherits the cache, and a pool
    /// whose mbufs sit in a cache is not freed on drop.
    ///
    /// # Errors
    ///
    /// [`Error::Dpdk`] with `EEXIST` if the thread already is an lcore (the main lcore, an
    /// EAL worker, or registered), or from `rte_thread_register` (`ENOMEM`: no lcore id left,
    /// see the `--lcores`/`RTE_MAX_LCORE` limit; `EINVAL`: multi-process in use).
    pub fn register_thread(&self) -> Result<LcoreRegistration<'_>, Error> {
        if let Some(lcore) = Eal::lcore_id() {
            return Err(Error::Dpdk {
                call: "rte_thread_register",
                errno: EEXIST,
                text: format!("this thread already is lcore {lcore}"),
            });
        }
        // SAFETY: the EAL is initialised (`&self`); the calling thread is not an lcore
        // (checked), so registering does not replace an lcore id in use.
        let ret = unsafe { ffi::rte_thread_register() };
        if ret != 0 {
            return Err(Error::from_rte_errno("rte_thread_register"));
        }
        let lcore = Eal::lcore_id().ok_or_else(|| Error::Dpdk {
            call: "rte_thread_register",
            errno: ENOMEM,
            text: "no lcore id assigned".to_owned(),
        })?;
        Ok(LcoreRegistration { lcore, _thread: PhantomData })
    }

    /// The runtime directory DPDK uses (`/var/run/dpdk/<file-prefix>` as root).
    pub fn runtime_dir(&self) -> String {
        // SAFETY: returns a pointer to a static NUL-terminated buffer, or NULL (checked); the
        // EAL is initialised (`&self`).
        let p = unsafe { ffi::rte_eal_get_runtime_dir() };
        if p.is_null() {
            return String::new();
        }
        // SAFETY: `p` is non-null and NUL-terminated (above); copied out at once.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}

impl Drop for Eal {
    /// `rte_eal_cleanup`. Nothing DPDK allocated is usable afterwards, which the borrows on
    /// `Eal` guarantee: every pool, port, queue and mbuf is gone by now.
    fn drop(&mut self) {
        STATE.store(CLEANED_UP, Ordering::Release);
        // SAFETY: this Eal is the one successful rte_eal_init of the process (STATE), and
        // every object of this crate that refers to DPDK memory borrows it, so none is left.
        // Raw pointers taken with `into_raw` were documented to be dead by now.
        let ret = unsafe { ffi::rte_eal_cleanup() };
        // A failure leaves DPDK's memory mapped, which is harmless; there is no one to tell.
        let _ = ret;
    }
}

/// `EEXIST` and `ENOMEM` on Linux.
const EEXIST: i32 = 17;
const ENOMEM: i32 = 12;

/// The calling thread's lcore registration ([`Eal::register_thread`]); dropping it
/// unregisters the thread (`rte_thread_unregister`). Not `Send`: it must be dropped on the
/// thread it registered.
#[derive(Debug)]
pub struct LcoreRegistration<'e> {
    lcore: u32,
    /// `!Send` and `!Sync`, and borrows the Eal.
    _thread: PhantomData<(*const (), &'e Eal)>,
}

impl LcoreRegistration<'_> {
    /// The lcore id the thread got.
    pub fn lcore_id(&self) -> u32 {
        self.lcore
    }
}

impl Drop for LcoreRegistration<'_> {
    fn drop(&mut self) {
        // SAFETY: this thread was registered by `register_thread` (the guard is not Send, so
        // this runs on that thread) and the EAL is alive (the borrow); unregistering releases
        // the lcore id it got.
        unsafe { ffi::rte_thread_unregister() }
    }
}
