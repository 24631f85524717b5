//! Waiting for traffic: poll(2) over device descriptors, so an idle worker sleeps instead of
//! spinning (the lab and CI run on shared cores; a dedicated appliance can spin instead).

/// A descriptor to wait on.
#[derive(Debug, Clone, Copy)]
#[repr(transparent)]
pub struct PollFd(libc::pollfd);

impl PollFd {
    pub fn new(fd: i32) -> PollFd {
        PollFd(libc::pollfd { fd, events: libc::POLLIN, revents: 0 })
    }
}

/// Waits until one of `fds` is readable or `timeout_ms` passes.
pub fn wait(fds: &mut [PollFd], timeout_ms: i32) {
    // SAFETY: `PollFd` is a transparent wrapper of `libc::pollfd`; the slice is valid for
    // its length and the kernel writes only `revents`.
    unsafe {
        libc::poll(fds.as_mut_ptr().cast::<libc::pollfd>(), fds.len() as libc::nfds_t, timeout_ms);
    }
}

/// The CPU's time-stamp counter (constant-rate on every x86-64 CPU DPDK supports), or
/// nanoseconds since the first call elsewhere: what a worker's `busy_cycles` counts.
#[inline]
pub fn cycles() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: RDTSC has no preconditions and touches no memory; every x86-64 CPU has it.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        static T0: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        T0.get_or_init(std::time::Instant::now).elapsed().as_nanos() as u64
    }
}
