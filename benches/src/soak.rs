//! The soak: road warriors of the in-tree initiator connect to esprit-ike's responder, pass
//! traffic both ways through a data-plane worker whose tables follow what the responder
//! installs and removes, rekey their CHILD and IKE SAs, pass traffic again, disconnect —
//! and do it all again, cycle after cycle, for a bounded time. After every cycle nothing
//! may be left (no IKE SA on either side, no leased address, no SA or policy in the data
//! plane), every packet offered must be accounted for (forwarded, or dropped and counted),
//! and the process's resident memory is sampled: it must stay flat.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use esprit_engine::config::Direction;
use esprit_engine::shared::{Control, Shared};
use esprit_engine::Worker;
use esprit_esp::crypto::default_provider;
use esprit_esp::sa::{DfMode, InboundMeta, InboundSa, Lifetime, OutboundSa, SaParams, UdpEncap};
use esprit_esp::{BufPool, HeapBuf, HeapPool, PacketBuf};
use esprit_ikev2::{ChildInstall, CloseReason, Endpoint, Event, Output};
use esprit_satable::{epoch, Policy};
use esprit_wire::IpCidr;

use crate::gen;
use crate::ike;

/// What the soak did, cycle by cycle.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Soak {
    pub cycles: u32,
    pub setups: u64,
    pub child_rekeys: u64,
    pub ike_rekeys: u64,
    pub disconnects: u64,
    /// Packets offered to the gateway's worker (both directions), forwarded by it, dropped
    /// and counted by it; and packets the clients opened.
    pub offered: u64,
    pub forwarded: u64,
    pub dropped: u64,
    pub opened: u64,
    /// Resident memory after each cycle, KiB.
    pub rss_kib: Vec<u64>,
    pub wall: Duration,
}

/// The process's resident memory, KiB.
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn params(c: &ChildInstall, inbound: bool, client: bool) -> Result<SaParams, String> {
    let (spi, k) = if inbound { (c.spi_in, &c.keys_in) } else { (c.spi_out, &c.keys_out) };
    Ok(SaParams {
        spi,
        transform: c.transform,
        keys: esprit_esp::crypto::SaKeys::new(c.transform, &k.enc, &k.int).map_err(|e| e.to_string())?,
        local: c.local.ip(),
        remote: c.remote.ip(),
        encap: c.encap.then(|| UdpEncap { local_port: c.local.port(), remote_port: c.remote.port() }),
        esn: c.esn,
        // The clients see their traffic in order; the gateway checks as configured.
        replay_window: if inbound && !client { c.replay_window } else { 0 },
        local_ts: c.local_ts.clone(),
        remote_ts: c.remote_ts.clone(),
        df: DfMode::Copy,
        lifetime: Lifetime::default(),
    })
}

/// A road warrior's side of its current CHILD SA.
struct ClientPair {
    cookie: u64,
    vip: IpAddr,
    seal: OutboundSa,
    open: InboundSa,
}

/// The gateway's data plane as esprit-ike's outputs make it (what the daemon's ring bridge
/// does, applied to the tables directly): a policy is removed only by the pair it points
/// at, since a rekeyed pair takes the old one's policies over before the old one goes.
struct Gateway {
    control: Control,
    sh: Arc<Shared>,
    owner: HashMap<(IpCidr, IpCidr), u64>,
}

impl Gateway {
    fn apply(&mut self, o: &Output) -> Result<(), String> {
        let g = epoch::pin();
        match o {
            Output::Install(c) => {
                self.control.add_sa(Direction::In, params(c, true, false)?, &g).map_err(|e| e.to_string())?;
                self.control.add_sa(Direction::Out, params(c, false, false)?, &g).map_err(|e| e.to_string())?;
                if c.route {
                    self.route(c.cookie, c.spi_out, &c.policies)?;
                }
            }
            Output::Route { cookie, spi_out, policies } => self.route(*cookie, *spi_out, policies)?,
            Output::Remove { cookie, spi_in, spi_out, unroute } => {
                for k in unroute {
                    if self.owner.get(k) == Some(cookie) {
                        self.owner.remove(k);
                        self.control.delete_policy(k.0, k.1, &g);
                    }
                }
                self.control.delete_sa(Direction::Out, *spi_out, &g);
                self.control.delete_sa(Direction::In, *spi_in, &g);
            }
            _ => {}
        }
        Ok(())
    }

    fn route(&mut self, cookie: u64, spi: u32, policies: &[(IpCidr, IpCidr)]) -> Result<(), String> {
        let g = epoch::pin();
        for &(src, dst) in policies {
            self.owner.insert((src, dst), cookie);
            self.control.add_policy(Policy { src, dst, spi }, &g).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// Both endpoints, the gateway's tables and worker, and the clients' SAs.
struct World {
    resp: Endpoint,
    init: Endpoint,
    gw: Gateway,
    worker: Worker<HeapPool>,
    /// By the client's connection name.
    clients: HashMap<String, ClientPair>,
    to_resp: VecDeque<(SocketAddr, Vec<u8>)>,
    to_init: VecDeque<(SocketAddr, Vec<u8>)>,
    now: Instant,
    s: Soak,
}

impl World {
    /// Moves datagrams and applies outputs until both sides are quiet.
    fn settle(&mut self) -> Result<(), String> {
        let gw = ike::gateway();
        for _ in 0..1000 {
            while let Some(o) = self.init.poll_output() {
                match o {
                    Output::Send(d) => self.to_resp.push_back((d.local, d.data)),
                    Output::Install(c) => {
                        let vip = self
                            .init
                            .list()
                            .into_iter()
                            .find(|s| s.spi_i == c.ike_spi || s.spi_r == c.ike_spi)
                            .and_then(|s| s.vips.first().copied())
                            .ok_or("a CHILD SA without a virtual IP")?;
                        let p = default_provider(c.transform);
                        let pair = ClientPair {
                            cookie: c.cookie,
                            vip,
                            seal: OutboundSa::new(params(&c, false, true)?, p).map_err(|e| e.to_string())?,
                            open: InboundSa::new(params(&c, true, true)?, p).map_err(|e| e.to_string())?,
                        };
                        // The newest pair carries the traffic (a rekey installs before it removes).
                        self.clients.insert(c.connection.clone(), pair);
                    }
                    Output::Remove { cookie, .. } => self.clients.retain(|_, p| p.cookie != cookie),
                    _ => {}
                }
            }
            while let Some(o) = self.resp.poll_output() {
                match &o {
                    Output::Send(d) => self.to_init.push_back((d.remote, d.data.clone())),
                    Output::Event(Event::IkeEstablished { .. }) => self.s.setups += 1,
                    Output::Event(Event::IkeRekeyed { .. }) => self.s.ike_rekeys += 1,
                    Output::Event(Event::ChildEstablished { rekey_of: Some(_), .. }) => self.s.child_rekeys += 1,
                    Output::Event(Event::IkeClosed { reason: CloseReason::PeerDeleted, .. }) => self.s.disconnects += 1,
                    Output::Event(Event::AuthFailed { reason, .. }) => {
                        return Err(format!("authentication failed: {reason}"))
                    }
                    _ => {}
                }
                self.gw.apply(&o)?;
            }
            if self.to_resp.is_empty() && self.to_init.is_empty() {
                return Ok(());
            }
            while let Some((from, d)) = self.to_resp.pop_front() {
                self.resp.handle_datagram(self.now, gw, from, &d);
            }
            while let Some((to, d)) = self.to_init.pop_front() {
                self.init.handle_datagram(self.now, to, gw, &d);
            }
        }
        Err("the endpoints never went quiet".into())
    }
}

/// Frames of `n` packets from each client to the server (sealed by the client) and from the
/// server to each client, as they reach the gateway's outside and inside ports.
fn frames(w: &World, n: u32) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let (mut up, mut down) = (Vec::new(), Vec::new());
    for c in w.clients.values() {
        let IpAddr::V4(vip) = c.vip else { continue };
        for k in 0..n {
            let size = 64 + 8 * k as usize;
            up.push(gen::client_frame(&c.seal, vip, size, k as u8));
            down.push(gen::server_frame(vip, size, k as u8));
        }
    }
    (up, down)
}

/// Sends `n` packets each way per client through the gateway's worker; the clients open
/// what comes back. Every packet must be forwarded or counted as dropped.
fn traffic(w: &mut World, n: u32) -> Result<(), String> {
    let (up, down) = frames(w, n);
    let drops_before: u64 = w.worker.drops.nonzero().map(|(_, c)| c).sum();
    let mut forwarded = 0u64;
    let mut to_clients: Vec<Vec<u8>> = Vec::new();
    for (frames, rx_if, tx_if) in [(&up, 0usize, 1usize), (&down, 1, 0)] {
        for chunk in frames.chunks(crate::measure::BURST) {
            let bufs: Vec<HeapBuf> = chunk
                .iter()
                .map(|f| w.worker.pool().alloc_frame(f).ok_or("the buffer pool ran dry"))
                .collect::<Result<_, _>>()?;
            w.worker.rx(rx_if, bufs, 1_000_000_000);
            for b in std::mem::take(w.worker.tx_queue(tx_if)) {
                forwarded += 1;
                if tx_if == 0 {
                    to_clients.push(b.data().to_vec());
                }
                w.worker.pool().free(b);
            }
        }
    }
    let dropped = w.worker.drops.nonzero().map(|(_, c)| c).sum::<u64>() - drops_before;
    let offered = (up.len() + down.len()) as u64;
    if forwarded + dropped != offered {
        return Err(format!("{offered} packets offered, {forwarded} forwarded, {dropped} dropped: some are missing"));
    }
    if dropped != 0 {
        return Err(format!("{dropped} packets dropped: {:?}", w.worker.drops.nonzero().collect::<Vec<_>>()));
    }
    // The clients open what the gateway sealed for them.
    let by_spi: HashMap<u32, &ClientPair> = w.clients.values().map(|c| (c.open.params().spi, c)).collect();
    let mut opened = 0u64;
    for f in to_clients {
        let ip = f.get(14..).ok_or("a runt frame")?;
        let esp_at = 20 + if ip.get(9) == Some(&17) { 8 } else { 0 };
        let spi = u32::from_be_bytes(ip.get(esp_at..esp_at + 4).ok_or("no ESP header")?.try_into().map_err(|_| "SPI")?);
        let c = by_spi.get(&spi).ok_or_else(|| format!("ESP for SPI {spi:08x}, which no client has"))?;
        let mut b = [HeapBuf::from_slice(ip)];
        let meta = [InboundMeta {
            esp_offset: esp_at,
            src: esprit_esp::sa::Endpoint { addr: c.open.params().remote, port: 0 },
            udp: esp_at == 28,
        }];
        let mut out = [Err(esprit_esp::DropReason::NoBuffer)];
        c.open.decap_burst(&mut b, &meta, &mut out, 0);
        out[0].map_err(|e| format!("a client could not open its packet: {e:?}"))?;
        opened += 1;
    }
    if opened != down.len() as u64 {
        return Err(format!("{} packets sent to the clients, {opened} opened", down.len()));
    }
    w.s.offered += offered;
    w.s.forwarded += forwarded;
    w.s.dropped += dropped;
    w.s.opened += opened;
    Ok(())
}

/// `clients` road warriors, `packets` packets each way per phase, cycles until `duration`
/// has passed (at least one).
pub fn run(clients: u32, duration: Duration, packets: u32) -> Result<Soak, String> {
    if clients == 0 {
        return Err("at least one client".into());
    }
    let now = Instant::now();
    let (resp, init) = ike::endpoints(clients, clients, now)?;
    let cfg = esprit_engine::config::parse("base.toml", gen::BASE_CONFIG).map_err(|e| format!("{e:?}"))?;
    let limits = esprit_engine::shared::Limits { max_sas: 4 * clients as usize + 16, ..Default::default() };
    let (control, sh) = Control::new(&cfg, limits).map_err(|e| e.to_string())?;
    let worker = Worker::new(sh.clone(), HeapPool::new(4 * crate::measure::BURST), false);
    let mut w = World {
        resp,
        init,
        gw: Gateway { control, sh, owner: HashMap::new() },
        worker,
        clients: HashMap::new(),
        to_resp: VecDeque::new(),
        to_init: VecDeque::new(),
        now,
        s: Soak::default(),
    };
    let gw = ike::gateway();
    let t0 = Instant::now();
    while w.s.cycles == 0 || t0.elapsed() < duration {
        let cycle = w.s.cycles + 1;
        let fail = |what: &str, e: String| format!("cycle {cycle}, {what}: {e}");
        for i in 0..clients {
            w.init.initiate(w.now, i as usize, ike::client_addr(i), gw, ike::options()).ok_or("initiate refused")?;
        }
        w.settle().map_err(|e| fail("connecting", e))?;
        if w.clients.len() != clients as usize {
            return Err(fail("connecting", format!("{} of {clients} clients have a CHILD SA", w.clients.len())));
        }
        traffic(&mut w, packets).map_err(|e| fail("traffic", e))?;
        // Every client rekeys its CHILD SA, then its IKE SA.
        let cookies: Vec<u64> = w.clients.values().map(|c| c.cookie).collect();
        for c in cookies {
            w.init.rekey_child(w.now, c);
        }
        w.settle().map_err(|e| fail("rekeying CHILD SAs", e))?;
        let spis: Vec<u64> = w.init.list().iter().map(|s| s.spi_i).collect();
        for s in &spis {
            w.init.rekey_ike(w.now, *s);
        }
        w.settle().map_err(|e| fail("rekeying IKE SAs", e))?;
        traffic(&mut w, packets).map_err(|e| fail("traffic after the rekeys", e))?;
        // Everyone disconnects.
        let spis: Vec<u64> = w.init.list().iter().map(|s| s.spi_i).collect();
        for s in &spis {
            w.init.terminate(w.now, *s);
        }
        w.settle().map_err(|e| fail("disconnecting", e))?;
        let leased: usize = w.resp.pool_usage().iter().map(|p| p.1).sum();
        let left = (
            w.resp.ike_sa_count(),
            w.init.ike_sa_count(),
            leased,
            w.gw.sh.sa_in.len() + w.gw.sh.sa_out.len(),
            w.gw.owner.len(),
            w.clients.len(),
        );
        if left != (0, 0, 0, 0, 0, 0) {
            return Err(fail(
                "after disconnecting",
                format!("left: (gateway IKE SAs, client IKE SAs, leases, data-plane SAs, policies, client pairs) = {left:?}"),
            ));
        }
        w.s.cycles = cycle;
        w.s.rss_kib.push(rss_kib());
    }
    w.s.wall = t0.elapsed();
    Ok(w.s)
}
