//! Errors of the safe layer.

use core::ffi::CStr;

use dpdk_sys as ffi;

/// Why a DPDK call failed, or why a request was refused before reaching DPDK.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// [`crate::Eal::init`] was called while an `Eal` exists (or another thread is creating
    /// one).
    #[error(
        "the DPDK EAL is already initialised in this process: rte_eal_init can run once per \
         process, so share the existing Eal (by reference) instead of creating another"
    )]
    EalAlreadyInitialised,
    /// [`crate::Eal::init`] was called after the process's `Eal` was dropped.
    #[error(
        "the DPDK EAL of this process was cleaned up (its Eal was dropped) and DPDK cannot \
         initialise it again: keep the Eal alive for the whole life of the process"
    )]
    EalCleanedUp,
    /// A name or argument passed to DPDK contains a NUL byte.
    #[error("{what} {value:?} contains a NUL byte")]
    Nul {
        /// What the string was for ("EAL argument", "mempool name", ...).
        what: &'static str,
        /// The string, lossily.
        value: String,
    },
    /// A DPDK function reported an error.
    #[error("{call} failed: {text} (errno {errno})")]
    Dpdk {
        /// The function that failed.
        call: &'static str,
        /// The error number it returned or left in `rte_errno`.
        errno: i32,
        /// `rte_strerror(errno)`.
        text: String,
    },
    /// No ethdev port has this name.
    #[error("no ethdev port is named {name:?} (see Eal::ports for the ports that exist)")]
    NoSuchPortName {
        /// The name looked up.
        name: String,
    },
    /// No ethdev port has this id.
    #[error("there is no ethdev port {id}")]
    NoSuchPort {
        /// The port id.
        id: u16,
    },
    /// The port is already owned by a [`crate::Port`].
    #[error("ethdev port {id} is already configured by another Port")]
    PortInUse {
        /// The port id.
        id: u16,
    },
    /// A queue count the driver does not support.
    #[error(
        "port {port} ({driver}): {requested} queues requested, valid is 1..={max} (the \
         driver's limit on rx and tx queues)"
    )]
    QueueCount {
        /// The port id.
        port: u16,
        /// The driver's name.
        driver: String,
        /// The number of queues asked for.
        requested: u16,
        /// The most the driver allows.
        max: u16,
    },
    /// An MTU outside the driver's range.
    #[error("port {port} ({driver}): MTU {requested} requested, valid is {min}..={max}")]
    Mtu {
        /// The port id.
        port: u16,
        /// The driver's name.
        driver: String,
        /// The MTU asked for.
        requested: u16,
        /// The driver's minimum.
        min: u16,
        /// The driver's maximum.
        max: u16,
    },
    /// A queue index past the port's queues.
    #[error("port {port} has {queues} queues; there is no queue {queue}")]
    NoSuchQueue {
        /// The port id.
        port: u16,
        /// The queue index asked for.
        queue: u16,
        /// The number of queues configured.
        queues: u16,
    },
    /// The queue's handle is already held (one handle per queue, for one lcore).
    #[error("{dir} queue {queue} of port {port} is already taken by another handle")]
    QueueTaken {
        /// The port id.
        port: u16,
        /// `"rx"` or `"tx"`.
        dir: &'static str,
        /// The queue index.
        queue: u16,
    },
    /// Queue handles are only given out for a started port.
    #[error("port {port} is not started: call Port::start before taking its queues")]
    NotStarted {
        /// The port id.
        port: u16,
    },
}

impl Error {
    /// An error from a DPDK function that returned `-errno` (the ethdev API).
    pub(crate) fn from_ret(call: &'static str, ret: i32) -> Error {
        Error::dpdk(call, ret.saturating_neg())
    }

    /// An error from a DPDK function that reported failure through `rte_errno`.
    pub(crate) fn from_rte_errno(call: &'static str) -> Error {
        Error::dpdk(call, rte_errno())
    }

    fn dpdk(call: &'static str, errno: i32) -> Error {
        Error::Dpdk { call, errno, text: strerror(errno) }
    }
}

/// The calling thread's `rte_errno`.
pub(crate) fn rte_errno() -> i32 {
    // SAFETY: reads a thread-local int; no preconditions.
    unsafe { ffi::esprit_rte_errno() }
}

/// DPDK's description of error number `errnum` (its own `E_RTE_*` numbers, or `strerror`).
pub(crate) fn strerror(errnum: i32) -> String {
    // SAFETY: rte_strerror takes any integer and returns a NUL-terminated string (static, or
    // in a thread-local buffer), or NULL, which is checked.
    let p = unsafe { ffi::rte_strerror(errnum) };
    if p.is_null() {
        return format!("error {errnum}");
    }
    // SAFETY: `p` is non-null and NUL-terminated (above); copied out before this thread can
    // call rte_strerror again.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_what_to_do() {
        assert!(Error::EalAlreadyInitialised.to_string().contains("share the existing Eal"));
        assert!(Error::EalCleanedUp.to_string().contains("cannot initialise it again"));
        let e = Error::from_ret("rte_eth_dev_configure", -22);
        assert_eq!(e, Error::Dpdk { call: "rte_eth_dev_configure", errno: 22, text: "Invalid argument".to_owned() });
        assert_eq!(e.to_string(), "rte_eth_dev_configure failed: Invalid argument (errno 22)");
    }
}
