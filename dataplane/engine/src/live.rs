//! The live data plane: worker threads pinned to cores, each polling its share of every
//! interface (AF_PACKET fanout groups spread flows by hash, so a client's SA always reaches
//! the same worker), running bursts through a [`Worker`], and transmitting what it queued;
//! and the control thread, the single writer of the shared tables, applying the workers'
//! requests (neighbor learning, NAT mapping changes).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use esprit_esp::{BufPool, DropReason, HeapPool, PacketBuf};
use esprit_pktio::afpacket::{AfPacket, Options};
use esprit_pktio::Device;

use crate::config::{Config, Driver};
use crate::link::{Link, Outgoing, PuntedIke};
use crate::shared::{Control, EngineError, Event, Limits, Request};
use crate::worker::{Counters, Handoff, IfStats, Worker};
use crossbeam_queue::ArrayQueue;

/// Frames read per interface per loop.
const RX_BURST: usize = 32;
/// Idle loops before a worker sleeps in poll(2).
const SPIN_BEFORE_SLEEP: u32 = 256;

/// Why the live data plane could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LiveError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("interface {name}: {source}")]
    Device { name: String, source: std::io::Error },
    #[error("interface {0} uses driver dpdk, but this build has no DPDK support (build with --features dpdk)")]
    NoDpdk(String),
    #[error("cannot start worker thread: {0}")]
    Thread(std::io::Error),
    #[error("every interface must use the same driver (all af_packet or all dpdk)")]
    MixedDrivers,
    #[error("DPDK: {0}")]
    Dpdk(String),
    #[error("control ring: {0}")]
    Ring(String),
}

/// What one worker reports.
#[derive(Debug, Default, Clone)]
pub struct WorkerReport {
    pub counters: Counters,
    pub if_stats: Vec<IfStats>,
    pub drops: Vec<(DropReason, u64)>,
    pub tx_full: u64,
}

/// The whole data plane's figures, summed over workers.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub workers: Vec<WorkerReport>,
    pub events: Vec<Event>,
}

/// Messages from workers to the control thread.
enum ToControl {
    Requests(Vec<Request>),
    Events(Vec<Event>),
    Punts(Vec<PuntedIke>),
}

/// Runs until `stop` is set; returns the final figures. Every interface uses the same
/// driver: AF_PACKET, or DPDK (with `--features dpdk`).
pub fn run(cfg: &Config, stop: Arc<AtomicBool>, on_tick: impl FnMut(&Report)) -> Result<Report, LiveError> {
    let dpdk = cfg.interfaces.iter().filter(|i| i.driver == Driver::Dpdk).count();
    if dpdk == 0 {
        return run_afpacket(cfg, stop, on_tick);
    }
    if dpdk != cfg.interfaces.len() {
        return Err(LiveError::MixedDrivers);
    }
    #[cfg(feature = "dpdk")]
    {
        dpdk_backend::run(cfg, stop, on_tick)
    }
    #[cfg(not(feature = "dpdk"))]
    {
        Err(LiveError::NoDpdk(cfg.interfaces[0].name.clone()))
    }
}

fn run_afpacket(cfg: &Config, stop: Arc<AtomicBool>, on_tick: impl FnMut(&Report)) -> Result<Report, LiveError> {
    let n = cfg.settings.workers.max(1);
    // Open every device for every worker before starting any thread: errors surface here.
    let mut per_worker: Vec<Vec<AfPacket>> = (0..n).map(|_| Vec::new()).collect();
    for (ifidx, i) in cfg.interfaces.iter().enumerate() {
        let group = (std::process::id() as u16).wrapping_mul(31).wrapping_add(ifidx as u16 * 257);
        for w in per_worker.iter_mut() {
            let opts = Options { promiscuous: true, fanout_group: (n > 1).then_some(group) };
            let d =
                AfPacket::open(&i.device, opts).map_err(|source| LiveError::Device { name: i.name.clone(), source })?;
            w.push(d);
        }
    }
    let pools = (0..n).map(|_| HeapPool::new(1 << 15)).collect();
    run_workers(cfg, per_worker, pools, |_| (), stop, on_tick)
}

/// Starts one worker per device set, runs the control loop on this thread until `stop`,
/// then joins the workers. `thread_init(w)` runs first on worker `w`'s thread (DPDK lcore
/// registration); what it returns lives as long as the worker.
fn run_workers<D, P, G>(
    cfg: &Config,
    per_worker: Vec<Vec<D>>,
    pools: Vec<P>,
    thread_init: impl Fn(usize) -> G + Sync,
    stop: Arc<AtomicBool>,
    on_tick: impl FnMut(&Report),
) -> Result<Report, LiveError>
where
    D: Device + Send,
    D::Buf: Send,
    P: BufPool<Buf = D::Buf> + Send,
{
    let st = &cfg.settings;
    if st.sa_arena {
        // Before the first SA (the configured ones are installed by Control::new), after
        // DPDK took its hugepages.
        match esprit_heap::reserve(esprit_heap::bytes_for_sas(st.max_sas)) {
            Ok(r) => eprintln!("esprit-dataplane: SA arena for {} SAs per direction: {r}", st.max_sas),
            Err(e) => eprintln!("esprit-dataplane: no SA arena ({e}); SAs come from the ordinary heap"),
        }
    }
    let (mut control, sh) = Control::new(cfg, Limits { max_sas: st.max_sas, ..Limits::default() })?;
    let n = per_worker.len();
    let mut link = match &st.control_ring {
        Some(instance) => {
            let path = esprit_ring::shm_path(instance).map_err(|e| LiveError::Ring(e.to_string()))?;
            let names = cfg.interfaces.iter().map(|i| i.name.clone()).collect();
            Some(Link::attach(&path, names).map_err(LiveError::Ring)?)
        }
        None => None,
    };
    let punting = link.is_some();
    // The stats segment goes with the rings: the control plane reads it.
    let mut stats_writer = match &st.control_ring {
        Some(instance) => Some(crate::stats::create(instance, cfg, n).map_err(LiveError::Ring)?),
        None => None,
    };
    let mut worker_stats: Vec<Option<crate::stats::WorkerStats>> =
        (0..n).map(|w| stats_writer.as_mut().and_then(|sw| crate::stats::WorkerStats::new(sw, w, cfg))).collect();
    let mut sa_export =
        stats_writer.as_mut().and_then(|sw| crate::stats::SaStatsExport::new(sw, n, crate::stats::MAX_SA_SLOTS));
    // IKE datagrams the control plane sends go out through worker 0.
    let (out_tx, out_rx) = bounded::<Outgoing>(1024);
    let (to_ctl, from_workers) = bounded::<ToControl>(1024);
    let reports: Vec<Arc<Mutex<WorkerReport>>> =
        (0..n).map(|_| Arc::new(Mutex::new(WorkerReport::default()))).collect();
    let start = Instant::now();
    // One hand-off queue per worker: ESP for an SA another worker owns goes there.
    let queues: Arc<[ArrayQueue<Handoff<D::Buf>>]> = (0..n).map(|_| ArrayQueue::new(4096)).collect();
    let mut all_events = Vec::new();
    std::thread::scope(|scope| -> Result<(), LiveError> {
        for (w, (devs, pool)) in per_worker.into_iter().zip(pools).enumerate() {
            let (sh, stop, to_ctl, report, queues) =
                (sh.clone(), stop.clone(), to_ctl.clone(), reports[w].clone(), queues.clone());
            let outgoing = (w == 0).then(|| out_rx.clone());
            let wstats = worker_stats[w].take();
            let core = st.cores.get(w).copied();
            let init = &thread_init;
            std::thread::Builder::new()
                .name(format!("esprit-worker-{w}"))
                .spawn_scoped(scope, move || {
                    if let Some(c) = core {
                        core_affinity::set_for_current(core_affinity::CoreId { id: c });
                    }
                    let _guard = init(w);
                    let mut worker = Worker::new(sh, pool, w == 0).with_handoff(w as u32, queues);
                    worker.set_ike_listener(punting);
                    let links = WorkerLinks { stop: &stop, to_ctl, outgoing, stats: wstats, report: &report, start };
                    worker_loop(worker, devs, links);
                })
                .map_err(LiveError::Thread)?;
        }
        drop(to_ctl);
        control_loop(
            &mut control,
            link.as_mut(),
            sa_export.as_mut(),
            &out_tx,
            &from_workers,
            &stop,
            &reports,
            &mut all_events,
            start,
            on_tick,
        );
        Ok(())
    })?;
    // Whatever the workers sent while stopping.
    drain(&mut control, link.as_mut(), &from_workers, &mut all_events);
    Ok(Report {
        workers: reports.iter().map(|r| r.lock().map(|g| g.clone()).unwrap_or_default()).collect(),
        events: all_events,
    })
}

#[cfg(feature = "dpdk")]
mod dpdk_backend {
    use super::*;
    use dpdk::{Eal, Mempool, Port, PortConfig};
    use esprit_pktio::dpdkdev::{DpdkQueues, MbufPool};

    /// Mbufs per worker and per port in the shared pool.
    const MBUFS_PER_QUEUE: u32 = 8192;

    pub fn run(cfg: &Config, stop: Arc<AtomicBool>, on_tick: impl FnMut(&Report)) -> Result<Report, LiveError> {
        let st = &cfg.settings;
        let n = st.workers.max(1);
        let mut args: Vec<String> = vec!["esprit-dataplane".into()];
        args.extend(st.eal_args.iter().cloned());
        if !args.iter().any(|a| a.starts_with("--file-prefix")) {
            args.push(format!("--file-prefix=esprit-{}", std::process::id()));
        }
        let dpdk_err = |e: dpdk::Error| LiveError::Dpdk(e.to_string());
        let eal = Eal::init(&args).map_err(dpdk_err)?;
        let nbufs = MBUFS_PER_QUEUE * (n as u32) * (cfg.interfaces.len() as u32);
        let pool = Mempool::new(&eal, "esprit-mbufs", nbufs, 256, 0, 2048 + 128, eal.socket_id()).map_err(dpdk_err)?;
        let mut ports: Vec<Port<'_>> = Vec::new();
        for i in &cfg.interfaces {
            // A vdev (net_af_packet0,iface=eth1 …) is created here; a PCI or named device is
            // looked up as the EAL probed it.
            let name = i.device.split(',').next().unwrap_or(&i.device);
            if i.device.starts_with("net_") {
                eal.probe_device(&i.device).map_err(|e| LiveError::Device {
                    name: i.name.clone(),
                    source: std::io::Error::other(e.to_string()),
                })?;
            }
            let id = eal.port_by_name(name).map_err(|e| LiveError::Device {
                name: i.name.clone(),
                source: std::io::Error::other(e.to_string()),
            })?;
            let pc =
                PortConfig { queues: n as u16, mtu: Some(i.mtu as u16), promiscuous: true, ..PortConfig::default() };
            let mut port = Port::configure(id, &pc, &pool).map_err(dpdk_err)?;
            if let Some(w) = port.rss().warning() {
                eprintln!("esprit-dataplane: {}: {w}", i.name);
            }
            port.start().map_err(dpdk_err)?;
            ports.push(port);
        }
        let mut per_worker = Vec::new();
        for w in 0..n {
            let mut devs = Vec::new();
            for (p, i) in ports.iter().zip(&cfg.interfaces) {
                let rx = p.rx_queue(w as u16).map_err(dpdk_err)?;
                let tx = p.tx_queue(w as u16).map_err(dpdk_err)?;
                devs.push(DpdkQueues::new(&i.name, rx, tx));
            }
            per_worker.push(devs);
        }
        let pools = (0..n).map(|_| MbufPool::new(&pool)).collect();
        let r = run_workers(cfg, per_worker, pools, |_| eal.register_thread().ok(), stop, on_tick);
        drop(ports);
        pool.flush_local_cache();
        r
    }
}

fn now_ns(start: Instant) -> u64 {
    // Offset by a second so that "time zero" never looks like a real timestamp.
    1_000_000_000 + start.elapsed().as_nanos() as u64
}

fn drain(control: &mut Control, mut link: Option<&mut Link>, rx: &Receiver<ToControl>, events: &mut Vec<Event>) {
    while let Ok(m) = rx.try_recv() {
        handle(control, link.as_deref_mut(), m, events);
    }
    flush_events(control, link, events);
}

fn handle(control: &mut Control, link: Option<&mut Link>, m: ToControl, events: &mut Vec<Event>) {
    match m {
        ToControl::Requests(r) => control.apply(r),
        ToControl::Events(e) => {
            if let Some(l) = link {
                e.iter().for_each(|x| l.event(x));
            }
            events.extend(e);
        }
        ToControl::Punts(p) => {
            if let Some(l) = link {
                p.into_iter().for_each(|x| l.punt(x));
            }
        }
    }
}

/// Events the writer itself produced (NAT mapping follows) go to the control plane too.
fn flush_events(control: &mut Control, link: Option<&mut Link>, events: &mut Vec<Event>) {
    let mine = std::mem::take(&mut control.events);
    if let Some(l) = link {
        mine.iter().for_each(|x| l.event(x));
    }
    events.extend(mine);
}

#[allow(clippy::too_many_arguments)]
fn control_loop(
    control: &mut Control,
    mut link: Option<&mut Link>,
    mut sa_export: Option<&mut crate::stats::SaStatsExport>,
    out_tx: &Sender<Outgoing>,
    rx: &Receiver<ToControl>,
    stop: &AtomicBool,
    reports: &[Arc<Mutex<WorkerReport>>],
    events: &mut Vec<Event>,
    start: Instant,
    mut on_tick: impl FnMut(&Report),
) {
    let mut next_age = 0;
    let mut next_tick = 0;
    let mut sas_changed = false;
    let mut last_export = 0;
    // With a control plane attached, its ring is polled every millisecond.
    let wait = if link.is_some() { Duration::from_millis(1) } else { Duration::from_millis(20) };
    while !stop.load(Ordering::Relaxed) {
        match rx.recv_timeout(wait) {
            Ok(m) => handle(control, link.as_deref_mut(), m, events),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        }
        while let Ok(m) = rx.try_recv() {
            handle(control, link.as_deref_mut(), m, events);
        }
        control.set_now(now_ns(start));
        if let Some(l) = link.as_deref_mut() {
            let applied = l.poll(control, 4096, |o| {
                // Worker 0's queue full: the IKE retransmission will try again.
                let _ = out_tx.try_send(o);
            });
            sas_changed |= applied > 0;
        }
        flush_events(control, link.as_deref_mut(), events);
        control.drain_trace();
        let now = now_ns(start);
        if now >= next_age {
            control.age_neighbors(now);
            next_age = now + 5_000_000_000;
        }
        // SAs added or deleted show in the stats segment within 20 ms (espritctl lists them),
        // every SA's counters within a second.
        if sas_changed && now >= last_export + 20_000_000 {
            if let Some(x) = sa_export.as_deref_mut() {
                x.refresh(control.shared(), now);
            }
            sas_changed = false;
            last_export = now;
        }
        if now >= next_tick {
            next_tick = now + 1_000_000_000;
            control.sweep(now);
            if let Some(x) = sa_export.as_deref_mut() {
                x.refresh(control.shared(), now);
                if let Some(l) = link.as_deref() {
                    x.link(l.stats.punts_dropped);
                }
            }
            last_export = now;
            let r = Report {
                workers: reports.iter().map(|r| r.lock().map(|g| g.clone()).unwrap_or_default()).collect(),
                events: events.clone(),
            };
            on_tick(&r);
        }
    }
}

/// A worker and its devices: one [`step`](Poller::step) is one round of the run-to-
/// completion loop — hand-offs, an rx burst from every device through the worker, timers,
/// and every transmit queue flushed.
pub struct Poller<D: Device, P: BufPool<Buf = D::Buf>> {
    pub worker: Worker<P>,
    pub devs: Vec<D>,
    frames: Vec<D::Buf>,
    pub tx_full: u64,
}

impl<D: Device, P: BufPool<Buf = D::Buf>> std::fmt::Debug for Poller<D, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Poller").field("devices", &self.devs.len()).finish()
    }
}

impl<D: Device, P: BufPool<Buf = D::Buf>> Poller<D, P> {
    pub fn new(worker: Worker<P>, devs: Vec<D>) -> Self {
        Poller { worker, devs, frames: Vec::with_capacity(RX_BURST), tx_full: 0 }
    }

    /// One round; true if anything was received or sent.
    pub fn step(&mut self, now: u64) -> bool {
        let w = &mut self.worker;
        let mut busy = w.rx_handoff(now) > 0;
        for (ifidx, d) in self.devs.iter_mut().enumerate() {
            self.frames.clear();
            match d.rx_burst(w.pool(), &mut self.frames, RX_BURST) {
                Ok(0) => {}
                Ok(_) => {
                    busy = true;
                    w.rx(ifidx, self.frames.drain(..), now);
                }
                Err(_) => w.drops.inc(DropReason::NoBuffer),
            }
        }
        w.poll(now);
        for (ifidx, d) in self.devs.iter_mut().enumerate() {
            let mut q = std::mem::take(w.tx_queue(ifidx));
            if !q.is_empty() {
                busy = true;
                let _ = d.tx_burst(w.pool(), &mut q);
                if !q.is_empty() {
                    // One retry, then count and drop: a worker never blocks on a full queue.
                    let _ = d.tx_burst(w.pool(), &mut q);
                    for b in q.drain(..) {
                        self.tx_full += 1;
                        w.drops.inc(DropReason::TxFull);
                        w.pool().free(b);
                    }
                }
            }
            *w.tx_queue(ifidx) = q;
        }
        busy
    }
}

/// Runs a single worker over `devs` with a deterministic clock (1 µs a round from `t0`)
/// until nothing has happened for `idle_rounds` rounds, applying its requests inline: the
/// harness of the golden-capture tests (pcap files in, pcap files out).
pub fn drive_until_idle<D, P>(poller: &mut Poller<D, P>, control: &mut Control, t0: u64, idle_rounds: u32) -> u64
where
    D: Device,
    P: BufPool<Buf = D::Buf>,
{
    let (mut now, mut idle) = (t0, 0);
    while idle < idle_rounds {
        now += 1_000;
        let busy = poller.step(now);
        control.apply(poller.worker.requests.drain(..));
        for p in std::mem::take(&mut poller.worker.punted) {
            poller.worker.drops.inc(DropReason::IkeNoListener);
            poller.worker.pool().free(p.buf);
        }
        idle = if busy { 0 } else { idle + 1 };
    }
    now
}

/// What a worker thread talks to besides its devices.
struct WorkerLinks<'a> {
    stop: &'a AtomicBool,
    to_ctl: Sender<ToControl>,
    /// Worker 0: datagrams the control plane sends.
    outgoing: Option<Receiver<Outgoing>>,
    /// Its block of the stats segment.
    stats: Option<crate::stats::WorkerStats>,
    report: &'a Mutex<WorkerReport>,
    start: Instant,
}

fn worker_loop<D, P>(worker: Worker<P>, devs: Vec<D>, links: WorkerLinks<'_>)
where
    D: Device,
    P: BufPool<Buf = D::Buf>,
{
    let WorkerLinks { stop, to_ctl, outgoing, stats: mut wstats, report, start } = links;
    let to_ctl = &to_ctl;
    let mut idle = 0u32;
    let mut next_report = 0;
    // Devices with a descriptor let an idle worker sleep in poll(2); poll-mode ones do not.
    let fds: Option<Vec<esprit_pktio::wait::PollFd>> =
        devs.iter().map(|d| d.wait_fd().map(esprit_pktio::wait::PollFd::new)).collect();
    let mut fds = fds;
    let mut p = Poller::new(worker, devs);
    while !stop.load(Ordering::Relaxed) {
        let now = now_ns(start);
        let t0 = esprit_pktio::wait::cycles();
        let mut busy = false;
        if let Some(rx) = &outgoing {
            while let Ok(o) = rx.try_recv() {
                busy = true;
                p.worker.transmit(o.src, o.dst, o.marker, &o.payload, now);
            }
        }
        busy |= p.step(now);
        let worker = &mut p.worker;
        if busy {
            worker.counters.busy_cycles += esprit_pktio::wait::cycles().wrapping_sub(t0);
        }
        if !worker.requests.is_empty() {
            let r = std::mem::take(&mut worker.requests);
            if let Err(TrySendError::Full(ToControl::Requests(r))) = to_ctl.try_send(ToControl::Requests(r)) {
                // Keep them for the next round: learning is never lost, only delayed.
                worker.requests = r;
            }
        }
        if !worker.events.is_empty() {
            let e = std::mem::take(&mut worker.events);
            let _ = to_ctl.try_send(ToControl::Events(e));
        }
        if !worker.punted.is_empty() {
            let mut v = Vec::new();
            for pk in std::mem::take(&mut worker.punted) {
                v.push(PuntedIke {
                    src: pk.src,
                    dst: pk.dst,
                    ifidx: pk.ifidx,
                    had_marker: pk.dst.port == esprit_wire::ike::NAT_T_PORT,
                    payload: pk.buf.data().get(pk.ike_offset..).unwrap_or_default().to_vec(),
                });
                worker.pool().free(pk.buf);
            }
            let n = v.len() as u64;
            if to_ctl.try_send(ToControl::Punts(v)).is_err() {
                worker.drops.add(DropReason::IkeNoListener, n);
            }
        }
        if now >= next_report {
            next_report = now + 200_000_000;
            publish(&p.worker, report, p.tx_full);
            if let Some(ws) = wstats.as_mut() {
                ws.publish(&p.worker);
            }
        }
        if busy {
            idle = 0;
        } else {
            idle += 1;
            if idle > SPIN_BEFORE_SLEEP {
                // Sleep until traffic arrives, at most 1 ms (timers keep running).
                match fds.as_mut() {
                    Some(f) => esprit_pktio::wait::wait(f, 1),
                    None => std::thread::sleep(Duration::from_micros(50)),
                }
            }
        }
    }
    publish(&p.worker, report, p.tx_full);
    if let Some(ws) = wstats.as_mut() {
        ws.publish(&p.worker);
    }
    let _ = to_ctl.try_send(ToControl::Requests(std::mem::take(&mut p.worker.requests)));
    let _ = to_ctl.try_send(ToControl::Events(std::mem::take(&mut p.worker.events)));
}

fn publish<P: BufPool>(worker: &Worker<P>, report: &Mutex<WorkerReport>, tx_full: u64) {
    if let Ok(mut r) = report.lock() {
        r.counters = worker.counters;
        r.if_stats = worker.if_stats.clone();
        r.drops = worker.drops.nonzero().collect();
        r.tx_full = tx_full;
    }
}

impl Report {
    /// Sum of a counter over workers.
    pub fn sum(&self, f: impl Fn(&Counters) -> u64) -> u64 {
        self.workers.iter().map(|w| f(&w.counters)).sum()
    }

    /// Sum of a drop reason over workers.
    pub fn drops(&self, r: DropReason) -> u64 {
        self.workers.iter().flat_map(|w| w.drops.iter()).filter(|(x, _)| *x == r).map(|(_, n)| n).sum()
    }

    /// Interface counters summed over workers.
    pub fn interface(&self, ifidx: usize) -> IfStats {
        let mut s = IfStats::default();
        for w in &self.workers {
            if let Some(i) = w.if_stats.get(ifidx) {
                s.rx_packets += i.rx_packets;
                s.rx_bytes += i.rx_bytes;
                s.tx_packets += i.tx_packets;
                s.tx_bytes += i.tx_bytes;
            }
        }
        s
    }

    /// The one-line summary printed every second with `--stats`.
    pub fn line(&self) -> String {
        let drops: u64 = self.workers.iter().flat_map(|w| w.drops.iter()).map(|(_, n)| n).sum();
        format!(
            "decrypted {} encrypted {} keepalives rx/tx {}/{} icmp-too-big {} drops {}",
            self.sum(|c| c.esp_decrypted),
            self.sum(|c| c.esp_encrypted),
            self.sum(|c| c.keepalives_rx),
            self.sum(|c| c.keepalives_tx),
            self.sum(|c| c.icmp_frag_needed_tx + c.icmp_packet_too_big_tx),
            drops
        )
    }
}
