//! AF_PACKET for real, on a veth pair inside a network namespace this test creates (needs
//! root, as CI has). The test thread enters the namespace with setns(2); nothing leaves it.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use esprit_esp::{BufPool, HeapBuf, HeapPool, PacketBuf};
use esprit_pktio::afpacket::{AfPacket, Options};
use esprit_pktio::Device;

struct Netns(String);

impl Netns {
    fn new(tag: &str) -> Netns {
        let name = format!("esprit-pk-{tag}-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).status();
        assert!(
            Command::new("ip").args(["netns", "add", &name]).status().unwrap().success(),
            "ip netns add (root needed)"
        );
        let run = |args: &str| {
            let ok = Command::new("ip").args(["netns", "exec", &name, "sh", "-c", args]).status().unwrap().success();
            assert!(ok, "{args}");
        };
        run(
            "ip link add name va type veth peer name vb && ip link set va up && ip link set vb up && ip link set lo up",
        );
        // No IPv6 autoconfiguration chatter on the links.
        run("sysctl -qw net.ipv6.conf.va.disable_ipv6=1 net.ipv6.conf.vb.disable_ipv6=1");
        Netns(name)
    }

    /// Moves the calling thread into the namespace.
    fn enter(&self) {
        let f = std::fs::File::open(format!("/run/netns/{}", self.0)).unwrap();
        // SAFETY: setns(2) on a namespace file we just opened; affects this thread only.
        let r = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&f), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn frame(i: usize, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len];
    f[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0xbb]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0xaa]);
    f[12..14].copy_from_slice(&[0x88, 0xb5]); // local experimental EtherType
    f[14..18].copy_from_slice(&(i as u32).to_be_bytes());
    for (k, b) in f[18..].iter_mut().enumerate() {
        *b = (k + i) as u8;
    }
    f
}

fn receive_all(dev: &mut AfPacket, pool: &mut HeapPool, want: usize) -> Vec<Vec<u8>> {
    receive_for(dev, pool, want, 5000)
}

fn receive_for(dev: &mut AfPacket, pool: &mut HeapPool, want: usize, ms: u64) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(ms);
    while got.len() < want && std::time::Instant::now() < deadline {
        let mut out = Vec::new();
        dev.rx_burst(pool, &mut out, 64).unwrap();
        for b in out {
            if b.data()[12..14] == [0x88, 0xb5] {
                got.push(b.data().to_vec());
            }
            pool.free(b);
        }
    }
    got
}

#[test]
fn bursts_cross_a_veth_pair() {
    let ns = Netns::new("burst");
    std::thread::spawn(move || {
        ns.enter();
        let mut pool = HeapPool::new(4096);
        let mut a = AfPacket::open("va", Options { promiscuous: true, fanout_group: None }).unwrap();
        let mut b = AfPacket::open("vb", Options { promiscuous: true, fanout_group: None }).unwrap();
        assert_eq!(a.mtu(), 1500);
        assert_ne!(a.mac(), [0; 6]);
        let sent: Vec<Vec<u8>> = (0..300).map(|i| frame(i, 60 + (i * 37) % 1454)).collect();
        let mut q: Vec<HeapBuf> = sent.iter().map(|f| pool.alloc_frame(f).unwrap()).collect();
        let mut n = 0;
        while !q.is_empty() {
            n += a.tx_burst(&mut pool, &mut q).unwrap();
        }
        assert_eq!(n, 300);
        let got = receive_all(&mut b, &mut pool, 300);
        assert_eq!(got, sent, "every frame, in order, intact");
        // Our own transmissions do not come back on the sending socket.
        assert!(receive_for(&mut a, &mut pool, 1, 300).is_empty());
        // A frame larger than the MTU is refused and counted, and the rest still go.
        let mut q = vec![pool.alloc_frame(&frame(1000, 1600)).unwrap(), pool.alloc_frame(&frame(1001, 100)).unwrap()];
        while !q.is_empty() {
            a.tx_burst(&mut pool, &mut q).unwrap();
        }
        assert_eq!(a.stats().tx_dropped, 1);
        assert_eq!(receive_all(&mut b, &mut pool, 1).len(), 1);
        assert_eq!(pool.outstanding(), 0, "every buffer returned");
        drop(ns);
    })
    .join()
    .unwrap();
}

#[test]
fn fanout_delivers_each_frame_once_and_keeps_flows_together() {
    let ns = Netns::new("fanout");
    std::thread::spawn(move || {
        ns.enter();
        let mut pool = HeapPool::new(8192);
        let mut a = AfPacket::open("va", Options { promiscuous: true, fanout_group: None }).unwrap();
        let mut w = [
            AfPacket::open("vb", Options { promiscuous: true, fanout_group: Some(7) }).unwrap(),
            AfPacket::open("vb", Options { promiscuous: true, fanout_group: Some(7) }).unwrap(),
        ];
        // 64 flows (IPv4/UDP with distinct source ports), 8 frames each.
        let mut sent = Vec::new();
        for k in 0..8u16 {
            for flow in 0..64u16 {
                let mut f = vec![0u8; 60];
                f[..12].copy_from_slice(&[2, 0, 0, 0, 0, 0xbb, 2, 0, 0, 0, 0, 0xaa]);
                f[12..14].copy_from_slice(&[0x08, 0x00]);
                f[14] = 0x45;
                f[16..18].copy_from_slice(&46u16.to_be_bytes());
                f[22] = 64;
                f[23] = 17;
                f[26..30].copy_from_slice(&[203, 0, 113, 7]);
                f[30..34].copy_from_slice(&[198, 51, 100, 1]);
                f[34..36].copy_from_slice(&(10000 + flow).to_be_bytes());
                f[36..38].copy_from_slice(&4500u16.to_be_bytes());
                f[42] = k as u8;
                sent.push(f);
            }
        }
        let mut q: Vec<HeapBuf> = sent.iter().map(|f| pool.alloc_frame(f).unwrap()).collect();
        while !q.is_empty() {
            a.tx_burst(&mut pool, &mut q).unwrap();
        }
        let mut by_worker: Vec<Vec<Vec<u8>>> = vec![Vec::new(), Vec::new()];
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while by_worker.iter().map(Vec::len).sum::<usize>() < sent.len() && std::time::Instant::now() < deadline {
            for (i, d) in w.iter_mut().enumerate() {
                let mut out = Vec::new();
                d.rx_burst(&mut pool, &mut out, 64).unwrap();
                for b in out {
                    if b.data()[12..14] == [0x08, 0x00] {
                        by_worker[i].push(b.data().to_vec());
                    }
                    pool.free(b);
                }
            }
        }
        assert_eq!(by_worker.iter().map(Vec::len).sum::<usize>(), sent.len(), "each frame exactly once");
        assert!(by_worker.iter().all(|v| !v.is_empty()), "both workers got flows");
        // A flow (source port) never lands on both workers.
        let ports = |v: &Vec<Vec<u8>>| {
            v.iter().map(|f| u16::from_be_bytes([f[34], f[35]])).collect::<std::collections::HashSet<_>>()
        };
        assert!(ports(&by_worker[0]).is_disjoint(&ports(&by_worker[1])));
        drop(ns);
    })
    .join()
    .unwrap();
}
