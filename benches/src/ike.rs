//! IKE setup rate: an in-tree initiator load generator (many road warriors, each with its own
//! identity and address, like strongSwan's load-tester) against esprit-ike's responder
//! state machine, both in this process with the datagrams handed over in memory — what is
//! measured is the responder's protocol and crypto work per completed IKE_SA + CHILD_SA
//! (IKE_SA_INIT with x25519, IKE_AUTH with PSK, the CHILD_SA installed), not sockets or the
//! rings. Only the responder's calls are timed (TSC), so the figure is setups per second of
//! one responder core; the initiators' own cost is reported beside it.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use esprit_ikev2::config::{Connection, IkeConfig, Retransmit};
use esprit_ikev2::crypto::default_provider;
use esprit_ikev2::identity::{parse_identity, IdentityPattern};
use esprit_ikev2::proposal::{EspProposal, IkeProposal};
use esprit_ikev2::{ts, Endpoint, InitiatorOptions, Output};
use esprit_pktio::wait::cycles;
use zeroize::Zeroizing;

/// The gateway's IKE address.
pub(crate) fn gateway() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(crate::gen::GW), 4500)
}

/// How a load run went.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Setups {
    /// CHILD_SAs the responder installed (one per completed setup).
    pub completed: u64,
    pub responder_cycles: u64,
    pub initiator_cycles: u64,
    pub wall: Duration,
}

fn conn(name: String, local: &str, remote: &str, responder: bool) -> Result<Connection, String> {
    let base = Connection::psk(
        &name,
        parse_identity(local).map_err(|e| e.to_string())?,
        IdentityPattern::parse(remote).map_err(|e| e.to_string())?,
        Arc::new(Zeroizing::new(b"load test secret".to_vec())),
        IkeProposal::parse("aes128gcm16-prfsha256-x25519").map_err(|e| e.to_string())?,
        vec![EspProposal::parse("aes128gcm16").map_err(|e| e.to_string())?],
    );
    if !responder {
        return Ok(base);
    }
    Ok(Connection {
        local_ts: vec![ts::from_cidr("10.1.0.0/16".parse().map_err(|_| "prefix")?)],
        pools: vec![0],
        ..base
    })
}

pub(crate) fn client_addr(i: u32) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(u32::from(Ipv4Addr::new(100, 64, 0, 0)) + i)), 4500)
}

/// The gateway's responder (PSK, pool 10.128.0.0/10) and one initiator endpoint holding
/// `clients` road warriors (user{i}@load.example), both at `now`.
pub(crate) fn endpoints(clients: u32, window: u32, now: Instant) -> Result<(Endpoint, Endpoint), String> {
    let p = default_provider();
    let unix = 1_900_000_000;
    let resp_cfg = IkeConfig {
        connections: vec![conn("rw".into(), "vpn.example.com", "*@load.example", true)?],
        pools: vec![("rw".into(), "10.128.0.0/10".into())],
        retransmit: Retransmit { timeout: Duration::from_secs(60), base: 1.5, tries: 1 },
        max_ike_sas: clients as usize + 16,
        cookie_threshold: (window as usize).max(1000) * 2,
        ..IkeConfig::default()
    };
    let init_cfg = IkeConfig {
        connections: (0..clients)
            .map(|i| conn(format!("c{i}"), &format!("user{i}@load.example"), "vpn.example.com", false))
            .collect::<Result<_, _>>()?,
        retransmit: Retransmit { timeout: Duration::from_secs(60), base: 1.5, tries: 1 },
        max_ike_sas: clients as usize + 16,
        ..IkeConfig::default()
    };
    let resp = Endpoint::new(Arc::new(resp_cfg), p, now, unix).map_err(|e| e.to_string())?;
    let init = Endpoint::new(Arc::new(init_cfg), p, now, unix).map_err(|e| e.to_string())?;
    Ok((resp, init))
}

/// What each road warrior asks for: a virtual IP and the protected network.
pub(crate) fn options() -> InitiatorOptions {
    InitiatorOptions {
        request_vip: true,
        local_ts: vec![],
        remote_ts: vec![ts::from_cidr("10.1.0.0/16".parse().expect("prefix"))],
        initial_contact: false,
    }
}

/// `clients` setups, at most `window` under way at once.
pub fn run(clients: u32, window: u32) -> Result<Setups, String> {
    let now = Instant::now();
    let (mut resp, mut init) = endpoints(clients, window, now)?;
    let gw = gateway();
    let mut s = Setups { completed: 0, responder_cycles: 0, initiator_cycles: 0, wall: Duration::ZERO };
    let mut to_resp: VecDeque<(SocketAddr, Vec<u8>)> = VecDeque::new();
    let mut to_init: VecDeque<(SocketAddr, Vec<u8>)> = VecDeque::new();
    let (mut started, mut stalled) = (0u32, 0);
    let t0 = Instant::now();
    while s.completed < u64::from(clients) {
        // Keep `window` setups under way.
        let c0 = cycles();
        while started < clients && started as u64 - s.completed < u64::from(window) {
            init.initiate(now, started as usize, client_addr(started), gw, options()).ok_or("initiate refused")?;
            started += 1;
        }
        while let Some((to, d)) = to_init.pop_front() {
            init.handle_datagram(now, to, gw, &d);
        }
        while let Some(o) = init.poll_output() {
            if let Output::Send(d) = o {
                to_resp.push_back((d.local, d.data));
            }
        }
        let c1 = cycles();
        let before = s.completed;
        while let Some((from, d)) = to_resp.pop_front() {
            resp.handle_datagram(now, gw, from, &d);
        }
        while let Some(o) = resp.poll_output() {
            match o {
                Output::Send(d) => to_init.push_back((d.remote, d.data)),
                Output::Install(_) => s.completed += 1,
                _ => {}
            }
        }
        let c2 = cycles();
        s.initiator_cycles += c1.wrapping_sub(c0);
        s.responder_cycles += c2.wrapping_sub(c1);
        stalled = if s.completed == before && to_init.is_empty() { stalled + 1 } else { 0 };
        if stalled > 3 {
            return Err(format!(
                "stalled after {} of {clients} setups ({} IKE SAs, {} half-open at the responder)",
                s.completed,
                resp.ike_sa_count(),
                resp.half_open_count()
            ));
        }
    }
    s.wall = t0.elapsed();
    Ok(s)
}

/// The same setups over real UDP sockets on loopback: the responder on one thread with its
/// own socket (the gateway's, on 127.0.0.1), the initiators on another sharing one socket —
/// to the responder they are many road warriors behind one NAT, as at a home router. Each
/// thread keeps its endpoint's clock at the start (retransmission is never due). The
/// responder polls its socket; its busy time (TSC) is every read that returned a datagram,
/// its calls and its sends — not the reads that found nothing.
pub fn run_loopback(clients: u32, window: u32) -> Result<Setups, String> {
    use std::collections::HashMap;
    use std::net::UdpSocket;
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

    let now = Instant::now();
    let (mut resp, mut init) = endpoints(clients, window, now)?;
    let io = |e: std::io::Error| format!("loopback socket: {e}");
    let rsock = UdpSocket::bind("127.0.0.1:0").map_err(io)?;
    let isock = UdpSocket::bind("127.0.0.1:0").map_err(io)?;
    let gw = rsock.local_addr().map_err(io)?;
    let me = isock.local_addr().map_err(io)?;
    let timeout = Some(Duration::from_millis(5));
    // The responder polls: a read that finds nothing is not counted as busy, one that finds
    // a datagram is, syscall included.
    rsock.set_nonblocking(true).map_err(io)?;
    isock.set_read_timeout(timeout).map_err(io)?;
    let done = AtomicBool::new(false);
    let deadline = Duration::from_secs(120);
    let t0 = Instant::now();

    // Datagrams as the daemon frames them: the non-ESP marker (RFC 3948 §2.2) on the NAT-T
    // port, stripped again on receipt.
    fn frame(d: &esprit_ikev2::Datagram) -> Vec<u8> {
        let mut v = Vec::with_capacity(d.data.len() + 4);
        if d.marker {
            v.extend_from_slice(&[0; 4]);
        }
        v.extend_from_slice(&d.data);
        v
    }
    fn unframe(b: &[u8]) -> &[u8] {
        match b {
            [0, 0, 0, 0, rest @ ..] => rest,
            _ => b,
        }
    }

    let (resp_done, resp_cycles) = std::thread::scope(|s| {
        let initiators = s.spawn(|| -> Result<u64, String> {
            let mut buf = vec![0u8; 65536];
            // The client each initiator SPI belongs to (the address it believes it has).
            let mut local_of: HashMap<[u8; 8], SocketAddr> = HashMap::new();
            let mut started = 0u32;
            let mut cyc = 0u64;
            let mut established = 0u64;
            while !done.load(Relaxed) && t0.elapsed() < deadline {
                let c0 = cycles();
                while started < clients && u64::from(started) < established + u64::from(window) {
                    init.initiate(now, started as usize, client_addr(started), gw, options())
                        .ok_or("initiate refused")?;
                    started += 1;
                }
                while let Some(o) = init.poll_output() {
                    match o {
                        Output::Send(d) => {
                            if let Some(spi) = d.data.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
                                local_of.insert(spi, d.local);
                            }
                            isock.send_to(&frame(&d), gw).map_err(io)?;
                        }
                        Output::Install(_) => established += 1,
                        _ => {}
                    }
                }
                cyc += cycles().wrapping_sub(c0);
                let (n, from) = match isock.recv_from(&mut buf) {
                    Ok(r) => r,
                    Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                        continue
                    }
                    Err(e) => return Err(io(e)),
                };
                let c0 = cycles();
                let data = unframe(&buf[..n]);
                let local = data
                    .get(..8)
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .and_then(|spi| local_of.get(&spi).copied())
                    .unwrap_or(me);
                init.handle_datagram(now, local, from, data);
                cyc += cycles().wrapping_sub(c0);
            }
            Ok(cyc)
        });
        let mut buf = vec![0u8; 65536];
        let (mut completed, mut busy) = (0u64, 0u64);
        let mut progress = (0u64, Instant::now());
        let r = (|| -> Result<(), String> {
            while completed < u64::from(clients) {
                if completed != progress.0 {
                    progress = (completed, Instant::now());
                }
                // Nothing retransmits (the clocks stand still), so a lost datagram stalls a
                // setup for good: with too many under way the sockets' receive buffers
                // overflow.
                if progress.1.elapsed() > Duration::from_secs(3) || t0.elapsed() > deadline {
                    return Err(format!(
                        "stalled after {completed} of {clients} setups: a datagram was lost (loopback receive \
                         buffers overflow with many setups under way; try a smaller --window)"
                    ));
                }
                let c0 = cycles();
                let (n, from) = match rsock.recv_from(&mut buf) {
                    Ok(r) => r,
                    Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                        if initiators.is_finished() {
                            return Err(format!("the initiators stopped after {completed} of {clients} setups"));
                        }
                        std::hint::spin_loop();
                        continue;
                    }
                    Err(e) => return Err(io(e)),
                };
                resp.handle_datagram(now, gw, from, unframe(&buf[..n]));
                while let Some(o) = resp.poll_output() {
                    match o {
                        Output::Send(d) => {
                            rsock.send_to(&frame(&d), d.remote).map_err(io)?;
                        }
                        Output::Install(_) => completed += 1,
                        _ => {}
                    }
                }
                busy += cycles().wrapping_sub(c0);
            }
            Ok(())
        })();
        done.store(true, Relaxed);
        let init_cycles = initiators.join().map_err(|_| "the initiators panicked".to_string()).and_then(|r| r);
        (r.and(init_cycles).map(|ic| (completed, ic)), busy)
    });
    let (completed, initiator_cycles) = resp_done?;
    Ok(Setups { completed, responder_cycles: resp_cycles, initiator_cycles, wall: t0.elapsed() })
}
