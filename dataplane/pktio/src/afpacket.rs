//! AF_PACKET on a named Linux interface: the backend where there is no DPDK. The interface
//! must be up and should have no kernel address (the kernel would otherwise answer ARP and
//! send ICMP port unreachable for UDP 4500 behind our back).
//!
//! Bursts use `recvmmsg`/`sendmmsg`. Several workers share an interface through a
//! `PACKET_FANOUT_HASH` group: the kernel spreads flows over the sockets by their hash, so a
//! client's traffic always reaches the same worker — AF_PACKET's RSS.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use esprit_esp::{BufPool, PacketBuf};

use crate::{DevStats, Device};

/// Frames per system call.
const BATCH: usize = 64;

/// How to open the socket.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Receive frames addressed to any MAC (the configured MAC may differ from the
    /// interface's).
    pub promiscuous: bool,
    /// Join this fanout group (one group per interface, shared by its workers).
    pub fanout_group: Option<u16>,
}

/// An AF_PACKET socket bound to one interface.
#[derive(Debug)]
pub struct AfPacket {
    name: String,
    fd: OwnedFd,
    ifindex: i32,
    mac: [u8; 6],
    mtu: u32,
    stats: DevStats,
}

fn last_err(what: &str, ifname: &str) -> io::Error {
    let e = io::Error::last_os_error();
    io::Error::new(e.kind(), format!("{ifname}: {what}: {e}"))
}

fn setsockopt<T>(fd: i32, level: i32, name: i32, val: &T) -> i32 {
    // SAFETY: `val` points to a live `T` of the size passed; the kernel copies it.
    unsafe { libc::setsockopt(fd, level, name, (val as *const T).cast(), std::mem::size_of::<T>() as libc::socklen_t) }
}

impl AfPacket {
    /// Opens a non-blocking raw socket on `ifname`.
    pub fn open(ifname: &str, opts: Options) -> io::Result<AfPacket> {
        let cname = CString::new(ifname)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface name contains NUL"))?;
        // SAFETY: `cname` is a valid NUL-terminated string.
        let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) } as i32;
        if ifindex == 0 {
            return Err(io::Error::new(io::ErrorKind::NotFound, format!("{ifname}: no such interface")));
        }
        let proto = (libc::ETH_P_ALL as u16).to_be() as i32;
        // SAFETY: plain socket(2) call; the result is checked.
        let raw =
            unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, proto) };
        if raw < 0 {
            return Err(last_err("socket(AF_PACKET) (needs CAP_NET_RAW)", ifname));
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let fdn = fd.as_raw_fd();
        // SAFETY: an all-zero sockaddr_ll is valid; the fields we need are set below.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = ifindex;
        // SAFETY: `sll` is a valid sockaddr_ll and its size is passed.
        let r = unsafe {
            libc::bind(
                fdn,
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(last_err("bind", ifname));
        }
        // Our own transmissions must not come back to us.
        let one: libc::c_int = 1;
        if setsockopt(fdn, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, &one) < 0 {
            return Err(last_err("PACKET_IGNORE_OUTGOING", ifname));
        }
        let buf: libc::c_int = 8 << 20;
        setsockopt(fdn, libc::SOL_SOCKET, libc::SO_RCVBUF, &buf);
        setsockopt(fdn, libc::SOL_SOCKET, libc::SO_SNDBUF, &buf);
        if opts.promiscuous {
            // SAFETY: an all-zero packet_mreq is valid.
            let mut m: libc::packet_mreq = unsafe { std::mem::zeroed() };
            m.mr_ifindex = ifindex;
            m.mr_type = libc::PACKET_MR_PROMISC as u16;
            if setsockopt(fdn, libc::SOL_PACKET, libc::PACKET_ADD_MEMBERSHIP, &m) < 0 {
                return Err(last_err("PACKET_MR_PROMISC", ifname));
            }
        }
        if let Some(group) = opts.fanout_group {
            let v: libc::c_int = group as libc::c_int | (libc::PACKET_FANOUT_HASH << 16) as libc::c_int;
            if setsockopt(fdn, libc::SOL_PACKET, libc::PACKET_FANOUT, &v) < 0 {
                return Err(last_err("PACKET_FANOUT", ifname));
            }
        }
        let (mac, mtu) = if_info(fdn, ifname)?;
        Ok(AfPacket { name: ifname.into(), fd, ifindex, mac, mtu, stats: DevStats::default() })
    }

    /// The interface's MAC address.
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// The interface's MTU.
    pub fn mtu(&self) -> u32 {
        self.mtu
    }

    pub fn ifindex(&self) -> i32 {
        self.ifindex
    }

    /// The descriptor, to wait on with poll(2) when idle.
    pub fn raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }
}

fn if_info(fd: i32, ifname: &str) -> io::Result<([u8; 6], u32)> {
    // SAFETY: an all-zero ifreq is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(ifname.bytes().take(libc::IFNAMSIZ - 1)) {
        *d = s as libc::c_char;
    }
    // SAFETY: SIOCGIFHWADDR reads `ifr_name` and fills `ifr_hwaddr` of our `req`.
    if unsafe { libc::ioctl(fd, libc::SIOCGIFHWADDR, &mut req) } < 0 {
        return Err(last_err("SIOCGIFHWADDR", ifname));
    }
    let mut mac = [0u8; 6];
    // SAFETY: the union member the ioctl just filled.
    let sa = unsafe { req.ifr_ifru.ifru_hwaddr };
    for (d, s) in mac.iter_mut().zip(sa.sa_data.iter()) {
        *d = *s as u8;
    }
    // SAFETY: SIOCGIFMTU reads `ifr_name` and fills `ifr_mtu`.
    if unsafe { libc::ioctl(fd, libc::SIOCGIFMTU, &mut req) } < 0 {
        return Err(last_err("SIOCGIFMTU", ifname));
    }
    // SAFETY: the union member the ioctl just filled.
    let mtu = unsafe { req.ifr_ifru.ifru_mtu } as u32;
    Ok((mac, mtu))
}

impl Device for AfPacket {
    type Buf = esprit_esp::HeapBuf;

    fn name(&self) -> &str {
        &self.name
    }

    fn rx_burst<P: BufPool<Buf = Self::Buf>>(
        &mut self,
        pool: &mut P,
        out: &mut Vec<Self::Buf>,
        max: usize,
    ) -> io::Result<usize> {
        let n = max.min(BATCH);
        let mut bufs: Vec<Self::Buf> = Vec::with_capacity(n);
        while bufs.len() < n {
            let Some(mut b) = pool.alloc() else { break };
            let cap = b.tailroom();
            b.append(cap);
            bufs.push(b);
        }
        if bufs.is_empty() {
            return Ok(0);
        }
        // SAFETY: all-zero iovec/mmsghdr arrays are valid; filled in below.
        let mut iov: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for (i, b) in bufs.iter_mut().enumerate() {
            let d = b.data_mut();
            iov[i] = libc::iovec { iov_base: d.as_mut_ptr().cast(), iov_len: d.len() };
            msgs[i].msg_hdr.msg_iov = &mut iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: `msgs[..len]` point at `iov` entries that point into buffers we own and do
        // not touch until the call returns; the kernel writes at most `iov_len` bytes each.
        let r = unsafe {
            libc::recvmmsg(
                self.fd.as_raw_fd(),
                msgs.as_mut_ptr(),
                bufs.len() as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        let got = if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::WouldBlock && e.kind() != io::ErrorKind::Interrupted {
                for b in bufs {
                    pool.free(b);
                }
                return Err(e);
            }
            0
        } else {
            r as usize
        };
        let mut taken = 0;
        for (i, mut b) in bufs.into_iter().enumerate() {
            if i >= got || msgs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                if i < got {
                    self.stats.rx_errors += 1;
                }
                pool.free(b);
                continue;
            }
            let len = msgs[i].msg_len as usize;
            let extra = b.len() - len;
            b.trim(extra);
            self.stats.rx_packets += 1;
            self.stats.rx_bytes += len as u64;
            out.push(b);
            taken += 1;
        }
        Ok(taken)
    }

    fn tx_burst<P: BufPool<Buf = Self::Buf>>(&mut self, pool: &mut P, pkts: &mut Vec<Self::Buf>) -> io::Result<usize> {
        let mut sent_total = 0;
        while !pkts.is_empty() {
            let n = pkts.len().min(BATCH);
            // SAFETY: all-zero arrays are valid; filled in below.
            let mut iov: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
            // SAFETY: as above.
            let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
            for (i, b) in pkts[..n].iter().enumerate() {
                let d = b.data();
                iov[i] = libc::iovec { iov_base: d.as_ptr() as *mut libc::c_void, iov_len: d.len() };
                msgs[i].msg_hdr.msg_iov = &mut iov[i];
                msgs[i].msg_hdr.msg_iovlen = 1;
            }
            // SAFETY: the iovecs point into frames in `pkts` that stay alive and unmodified
            // during the call; the kernel only reads them.
            let r = unsafe { libc::sendmmsg(self.fd.as_raw_fd(), msgs.as_mut_ptr(), n as u32, libc::MSG_DONTWAIT) };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted {
                    break;
                }
                // A frame the interface refuses (too big for its MTU, …) is dropped and
                // counted, not retried forever.
                if e.raw_os_error() == Some(libc::EMSGSIZE) {
                    let b = pkts.remove(0);
                    self.stats.tx_dropped += 1;
                    pool.free(b);
                    continue;
                }
                return Err(e);
            }
            let sent = r as usize;
            for b in pkts.drain(..sent) {
                self.stats.tx_packets += 1;
                self.stats.tx_bytes += b.len() as u64;
                pool.free(b);
            }
            sent_total += sent;
            if sent < n {
                break;
            }
        }
        Ok(sent_total)
    }

    fn stats(&self) -> DevStats {
        self.stats
    }

    fn wait_fd(&self) -> Option<i32> {
        Some(self.fd.as_raw_fd())
    }
}
