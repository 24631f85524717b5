//! esprit-pktgen: traffic for benchmarking Esprit.
//!
//! * `esprit-pktgen pcap`: captures of ESP-in-UDP from N clients and of plaintext toward
//!   them, with the matching data-plane configuration, for pktgen-dpdk, testpmd or tcpreplay
//!   on a bare-metal machine (benches/pktgen/);
//! * `esprit-pktgen table`: the per-worker table of benches/README.md — the whole data plane
//!   in process on recycled pre-built frames, next to the raw crypto cost of the same packets;
//! * `esprit-pktgen install`: SA installation through the shared-memory rings;
//! * `esprit-pktgen ike`: IKE_SA + CHILD_SA setups per second of esprit-ike's responder,
//!   driven by an in-tree initiator load generator;
//! * `esprit-pktgen soak`: clients connect, pass traffic, rekey, pass traffic, disconnect,
//!   cycle after cycle for a bounded time; nothing left behind, every packet accounted for,
//!   resident memory flat;
//! * `esprit-pktgen junk`: valid ESP with and without hostile ESP mixed in (unknown SPIs,
//!   forgeries, replays): what the junk costs the valid traffic.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// As esprit-dataplane: mimalloc, with the SA arena reserved before the tables fill.
#[global_allocator]
static HEAP: esprit_heap::Heap = esprit_heap::Heap;

use clap::{Parser, Subcommand};
use esprit_benches::junk::{self, Junk};
use esprit_benches::measure::{self, Figures, Traffic};
use esprit_benches::{ike, install, scenario, soak};
use esprit_esp::crypto::{default_provider, providers, CryptoProvider};
use esprit_esp::Transform;

#[derive(Parser)]
#[command(version, about = "Traffic and measurements for benchmarking Esprit")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
    /// Do not reserve the SA arena the data plane reserves at start-up (`sa_arena = false`):
    /// SAs then come from the ordinary heap as they are installed.
    #[arg(long, global = true)]
    no_sa_arena: bool,
}

#[derive(Subcommand)]
enum Cmd {
    /// Write outside.pcap, inside.pcap and esprit.toml for N clients into a directory.
    Pcap {
        #[arg(long, default_value = "aes128gcm16", value_parser = transform)]
        transform: Transform,
        /// Clients (each with an inbound and an outbound SA).
        #[arg(long, default_value_t = 1)]
        sas: u32,
        /// Inner packet size in bytes, or imix.
        #[arg(long, default_value = "64")]
        size: String,
        /// Frames per capture (default: one per client, at least 1024).
        #[arg(long)]
        count: Option<usize>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Measure one worker per direction, transform, SA count and size, with the raw crypto
    /// cost of the same packets; prints a Markdown table.
    Table {
        #[arg(long, default_value = "aes128gcm16,aes128-sha1", value_delimiter = ',', value_parser = transform)]
        transforms: Vec<Transform>,
        #[arg(long, default_value = "1,1000,100000", value_delimiter = ',')]
        sas: Vec<u32>,
        #[arg(long, default_value = "64,imix,1420", value_delimiter = ',')]
        sizes: Vec<String>,
        /// Workers running at once on the same tables (each on its own core).
        #[arg(long, default_value = "1", value_delimiter = ',')]
        workers: Vec<usize>,
        /// Measured seconds per figure.
        #[arg(long, default_value_t = 1.0)]
        seconds: f64,
        /// Only this direction (`inbound` or `outbound`); both by default.
        #[arg(long, value_parser = ["inbound", "outbound"])]
        direction: Option<String>,
        /// Leave out the raw crypto columns (for profiling the pipeline alone).
        #[arg(long)]
        no_raw: bool,
    },
    /// Install SA pairs through the shared-memory rings and report SAs per second.
    Install {
        #[arg(long, default_value = "aes128gcm16", value_parser = transform)]
        transform: Transform,
        /// Clients (SA pairs).
        #[arg(long, default_value_t = 100_000)]
        sas: u32,
    },
    /// Complete IKE_SA + CHILD_SA setups (PSK, x25519, AES-GCM) from many in-tree initiators
    /// against esprit-ike's responder, in memory; reports setups per second of the responder.
    Ike {
        /// Road warriors, each with its own identity and address.
        #[arg(long, default_value_t = 5000)]
        clients: u32,
        /// Setups under way at once.
        #[arg(long, default_value_t = 200)]
        window: u32,
        /// Over UDP sockets on loopback, responder and initiators on their own threads,
        /// instead of handing the datagrams over in memory (use a --window of 64 or less:
        /// nothing retransmits, and more overflows the sockets' receive buffers).
        #[arg(long)]
        loopback: bool,
    },
    /// Connect, traffic, rekey (CHILD and IKE), traffic, disconnect — for every client, cycle
    /// after cycle, for `seconds`; fails on anything left behind or unaccounted for, or if
    /// the resident memory grew.
    Soak {
        #[arg(long, default_value_t = 1000)]
        clients: u32,
        #[arg(long, default_value_t = 60.0)]
        seconds: f64,
        /// Packets each way per client in each traffic phase.
        #[arg(long, default_value_t = 4)]
        packets: u32,
    },
    /// One worker on valid inbound ESP alone, then with junk ESP mixed into every burst
    /// (each kind in turn); prints a Markdown table of valid Mpps and the cost of the junk.
    Junk {
        #[arg(long, default_value = "aes128gcm16,aes128-sha1", value_delimiter = ',', value_parser = transform)]
        transforms: Vec<Transform>,
        /// Clients sending valid traffic.
        #[arg(long, default_value_t = 1000)]
        sas: u32,
        /// Inner packet size in bytes, or imix.
        #[arg(long, default_value = "imix")]
        size: String,
        /// Junk frames in each burst of 32 (16: as much junk as valid traffic).
        #[arg(long, default_value = "16,28", value_delimiter = ',')]
        junk: Vec<usize>,
        /// Measured seconds per figure.
        #[arg(long, default_value_t = 1.0)]
        seconds: f64,
    },
}

fn transform(s: &str) -> Result<Transform, String> {
    Transform::from_name(s).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let arena = !cli.no_sa_arena;
    let r = match cli.cmd {
        Cmd::Pcap { transform, sas, size, count, out } => pcap(transform, sas, &size, count, out),
        Cmd::Table { transforms, sas, sizes, workers, seconds, direction, no_raw } => {
            let heap = sa_arena(arena, sas.iter().copied().max().unwrap_or(0));
            let dirs: &[bool] = match direction.as_deref() {
                Some("inbound") => &[true],
                Some(_) => &[false],
                None => &[true, false],
            };
            table(&transforms, &sas, &sizes, &workers, seconds, Only { dirs, raw: !no_raw }, &heap)
        }
        Cmd::Install { transform, sas } => install(transform, sas, &sa_arena(arena, sas)),
        Cmd::Ike { clients, window, loopback } => ike_setups(clients, window, loopback),
        Cmd::Soak { clients, seconds, packets } => soak_run(clients, seconds, packets),
        Cmd::Junk { transforms, sas, size, junk, seconds } => {
            let heap = sa_arena(arena, sas);
            junk_table(&transforms, sas, &size, &junk, seconds, &heap)
        }
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("esprit-pktgen: {e}");
            ExitCode::FAILURE
        }
    }
}

fn pcap(t: Transform, sas: u32, size: &str, count: Option<usize>, out: PathBuf) -> Result<(), String> {
    if sas == 0 {
        return Err("--sas must be at least 1".into());
    }
    let sizes = scenario::sizes(size, t)?;
    let sc = scenario::Scenario { transform: t, sas, sizes, count: count.unwrap_or((sas as usize).max(1024)) };
    let w = scenario::write(&out, &sc).map_err(|e| format!("writing into {}: {e}", out.display()))?;
    println!(
        "{} frames each: {} (to the outside port), {} (to the inside port); SAs and policies: {}",
        sc.count,
        w.outside.display(),
        w.inside.display(),
        w.config.display()
    );
    Ok(())
}

/// The targets of issue 6 for one worker, Mpps: AES-128-GCM 12 / 10 / 6 at 64 B / IMIX /
/// 1420 B with one SA (90 % of that with 1k SAs, 80 % with 100k), AES-CBC + HMAC-SHA1 8 at
/// 64 B and 3.5 at 1420 B.
fn target(t: Transform, sas: u32, size: &str) -> Option<f64> {
    let base = match (t, size) {
        (Transform::Aes128Gcm16, "64") => 12.0,
        (Transform::Aes128Gcm16, "imix") => 10.0,
        (Transform::Aes128Gcm16, "1420") => 6.0,
        (Transform::Aes128Sha1, "64") => 8.0,
        (Transform::Aes128Sha1, "1420") => 3.5,
        _ => return None,
    };
    Some(
        base * if sas >= 100_000 {
            0.8
        } else if sas >= 1000 {
            0.9
        } else {
            1.0
        },
    )
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// Reserves the SA arena for `clients` SA pairs, as esprit-dataplane does at start-up for
/// its `max_sas` (unless `--no-sa-arena`); says what it got, for the report's header.
fn sa_arena(reserve: bool, clients: u32) -> String {
    if !reserve {
        return "no SA arena (--no-sa-arena)".into();
    }
    match esprit_heap::reserve(esprit_heap::bytes_for_sas(clients as usize)) {
        Ok(r) => format!("SA arena {r}"),
        Err(e) => format!("no SA arena: {e}"),
    }
}

/// What of the table to measure: the directions (inbound = true), and whether the raw
/// crypto columns too.
struct Only<'a> {
    dirs: &'a [bool],
    raw: bool,
}

fn table(
    ts: &[Transform],
    counts: &[u32],
    sizes: &[String],
    workers: &[usize],
    secs: f64,
    only: Only<'_>,
    heap: &str,
) -> Result<(), String> {
    let hz = measure::tsc_hz(Duration::from_millis(200));
    let ipsec_mb = providers().into_iter().find(|p| p.name() == "ipsec-mb");
    println!(
        "{} × {}, TSC {:.2} GHz, {}; {} s per figure; bursts of {}; \"raw\": the provider's cipher alone on the same packets",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model(),
        hz / 1e9,
        heap,
        secs,
        measure::BURST
    );
    println!();
    println!(
        "| transform | SAs | direction | size | workers | Mpps | Gb/s | ns/pkt | TSC cycles/pkt | raw ipsec-mb ns/pkt | raw chosen ns/pkt | pipeline / raw ipsec-mb | target Mpps |"
    );
    println!("|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    let mut raws: HashMap<(&'static str, Transform, String, bool), f64> = HashMap::new();
    let mut raw = |p: &'static dyn CryptoProvider, t: Transform, label: &str, sz: &[usize], inbound: bool| {
        let k = (p.name(), t, label.to_string(), inbound);
        if let Some(v) = raws.get(&k) {
            return Ok::<f64, String>(*v);
        }
        let v = measure::raw(t, p, sz, inbound, secs)?.ns_per_packet(hz);
        raws.insert(k, v);
        Ok(v)
    };
    for &t in ts {
        let chosen = default_provider(t);
        for &n in counts {
            let (_control, sh) = measure::gateway(t, n)?;
            for label in sizes {
                let sz = scenario::sizes(label, t)?;
                for &inbound in only.dirs {
                    let tr = Traffic::new(t, n, &sz, inbound);
                    let mb = match ipsec_mb.filter(|_| only.raw) {
                        Some(p) => Some(raw(p, t, label, &sz, inbound)?),
                        None => None,
                    };
                    let ch = if only.raw { Some(raw(chosen, t, label, &sz, inbound)?) } else { None };
                    for &w in workers {
                        let per = measure::pipeline_threads(&sh, &tr, secs, w)
                            .map_err(|e| format!("{} {n} SAs {label} {}: {e}", t.name(), dir(inbound)))?;
                        let mpps: f64 = per.iter().map(|f| f.mpps(hz)).sum();
                        let gbps: f64 = per.iter().map(|f| f.gbps(hz)).sum();
                        let mut all = Figures::default();
                        per.iter().for_each(|f| {
                            all.packets += f.packets;
                            all.cycles += f.cycles;
                        });
                        let ns = all.ns_per_packet(hz);
                        let tgt = target(t, n, label).filter(|_| w == 1).map_or(String::new(), |x| {
                            format!("≥ {x:.1} {}", if mpps >= x { "met" } else { "missed" })
                        });
                        println!(
                            "| {} | {} | {} | {} | {} | {:.2} | {:.1} | {:.0} | {:.0} | {} | {} | {} | {} |",
                            t.name(),
                            n,
                            dir(inbound),
                            label,
                            w,
                            mpps,
                            gbps,
                            ns,
                            all.cycles_per_packet(),
                            mb.map_or("–".into(), |v| format!("{v:.0}")),
                            ch.map_or("–".into(), |v| format!("{v:.0} ({})", chosen.name())),
                            mb.map_or("–".into(), |v| format!("{:.2}", ns / v)),
                            tgt
                        );
                    }
                }
            }
        }
    }
    Ok(())
}

fn dir(inbound: bool) -> &'static str {
    if inbound {
        "inbound"
    } else {
        "outbound"
    }
}

fn install(t: Transform, sas: u32, heap: &str) -> Result<(), String> {
    let r = install::run(t, sas)?;
    println!(
        "{} SAs ({} pairs, {}) installed through the rings in {:.3} s: {:.0} SAs/s (target ≥ 500000: {}); {heap}{}",
        r.sas,
        sas,
        t.name(),
        r.secs,
        r.per_second(),
        if r.per_second() >= 500_000.0 { "met" } else { "missed" },
        match r.arena_bytes {
            0 => String::new(),
            b => format!("; {} bytes of it per SA", b / r.sas.max(1)),
        }
    );
    Ok(())
}

fn ike_setups(clients: u32, window: u32, loopback: bool) -> Result<(), String> {
    if clients == 0 || window == 0 {
        return Err("--clients and --window must be at least 1".into());
    }
    let hz = measure::tsc_hz(Duration::from_millis(200));
    if loopback {
        let r = ike::run_loopback(clients, window)?;
        let resp = r.completed as f64 / (r.responder_cycles as f64 / hz);
        println!(
            "{} IKE_SA + CHILD_SA setups (PSK, x25519, aes128gcm16; {} at once) over UDP on loopback: responder \
             {:.0} setups/s per core busy ({:.0} µs each, sockets included; target ≥ 10000: {}); {:.0} setups/s \
             wall-clock with the initiators ({:.0} µs each) on the other core; {:.2} s in all",
            r.completed,
            window,
            resp,
            1e6 / resp,
            if resp >= 10_000.0 { "met" } else { "missed" },
            r.completed as f64 / r.wall.as_secs_f64(),
            r.initiator_cycles as f64 / hz / r.completed as f64 * 1e6,
            r.wall.as_secs_f64()
        );
        return Ok(());
    }
    let r = ike::run(clients, window)?;
    let resp = r.completed as f64 / (r.responder_cycles as f64 / hz);
    println!(
        "{} IKE_SA + CHILD_SA setups (PSK, x25519, aes128gcm16; {} at once): responder {:.0} setups/s per core \
         ({:.0} µs each; target ≥ 10000: {}); initiators {:.0} µs each; {:.2} s in all",
        r.completed,
        window,
        resp,
        1e6 / resp,
        if resp >= 10_000.0 { "met" } else { "missed" },
        r.initiator_cycles as f64 / hz / r.completed as f64 * 1e6,
        r.wall.as_secs_f64()
    );
    Ok(())
}

fn junk_table(ts: &[Transform], n: u32, size: &str, shares: &[usize], secs: f64, heap: &str) -> Result<(), String> {
    if n == 0 || shares.iter().any(|&j| j == 0 || j >= measure::BURST) {
        return Err(format!("--sas must be at least 1 and --junk between 1 and {}", measure::BURST - 1));
    }
    let hz = measure::tsc_hz(Duration::from_millis(200));
    println!(
        "{} × {}, TSC {:.2} GHz, {heap}; one worker, inbound, {n} clients, {size}; bursts of {}; {secs} s per figure",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model(),
        hz / 1e9,
        measure::BURST
    );
    println!();
    println!("| transform | junk | junk per burst | valid Mpps | valid ns/pkt | ns per junk pkt | valid Mpps vs clean | junk counted as |");
    println!("|---|---|---:|---:|---:|---:|---:|---|");
    for &t in ts {
        let (_control, sh) = junk::gateway(t, n)?;
        let sizes = scenario::sizes(size, t)?;
        let valid = Traffic::new(t, n, &sizes, true);
        let clean = junk::run(&sh, &valid, &[], 0, secs)?;
        let per_valid = clean.cycles as f64 / clean.valid as f64;
        let clean_mpps = clean.valid_mpps(hz);
        println!("| {} | none | 0 | {:.2} | {:.0} | – | 1.00 | – |", t.name(), clean_mpps, per_valid * 1e9 / hz);
        for kind in Junk::ALL {
            let frames = junk::frames(kind, t, n, &valid, 4096);
            if kind == Junk::Replayed {
                junk::prime(&sh, &frames)?;
            }
            for &j in shares {
                let m = junk::run(&sh, &valid, &frames, j, secs)?;
                let counted = m.drops.iter().map(|(r, c)| format!("{} {c}", r.name())).collect::<Vec<_>>().join(", ");
                if m.drops != [(kind.reason(), m.junk_total)] {
                    return Err(format!(
                        "{} {}: {} junk packets, drops counted: {counted}",
                        t.name(),
                        kind.name(),
                        m.junk_total
                    ));
                }
                let per_junk = (m.cycles as f64 - m.valid as f64 * per_valid) / m.junk as f64;
                println!(
                    "| {} | {} | {j} | {:.2} | {:.0} | {:.0} | {:.2} | {counted} |",
                    t.name(),
                    kind.name(),
                    m.valid_mpps(hz),
                    m.cycles as f64 / m.valid as f64 * 1e9 / hz,
                    per_junk * 1e9 / hz,
                    m.valid_mpps(hz) / clean_mpps,
                );
            }
        }
    }
    Ok(())
}

fn soak_run(clients: u32, seconds: f64, packets: u32) -> Result<(), String> {
    let s = soak::run(clients, Duration::from_secs_f64(seconds), packets)?;
    let mib = |k: u64| k as f64 / 1024.0;
    // A leak grows with the cycles; the allocator's pools do not, but mimalloc returns freed
    // pages to the OS and takes them back as it goes, so the resident memory after one cycle
    // swings by several MiB (it even fell by 6 MiB from the first cycle to the second once).
    // So: the highest figure of the run's second half must stay within 5 % (and 1 MiB) of the
    // highest of its first half.
    let rss = &s.rss_kib;
    let half = (rss.len() / 2).max(1).min(rss.len());
    let base = rss[..half].iter().copied().max().unwrap_or(0);
    let (max, last) = (rss[half..].iter().copied().max().unwrap_or(0), rss.last().copied().unwrap_or(0));
    let flat = rss.len() < 4 || max <= base + base / 20 + 1024;
    println!(
        "{} cycles of {clients} clients in {:.1} s: {} IKE setups, {} CHILD rekeys, {} IKE rekeys, {} disconnects; \
         {} packets offered to the gateway, {} forwarded, {} dropped, {} opened by the clients; \
         resident memory highest in the first half {:.1} MiB, in the second half {:.1}, last {:.1}: {}",
        s.cycles,
        s.wall.as_secs_f64(),
        s.setups,
        s.child_rekeys,
        s.ike_rekeys,
        s.disconnects,
        s.offered,
        s.forwarded,
        s.dropped,
        s.opened,
        mib(base),
        mib(max),
        mib(last),
        if flat { "flat" } else { "GREW" }
    );
    let per: Vec<String> = s.rss_kib.iter().map(|&k| format!("{:.1}", mib(k))).collect();
    println!("resident memory after each cycle, MiB: {}", per.join(" "));
    if flat {
        Ok(())
    } else {
        Err(format!("resident memory grew, KiB after each cycle: {:?}", s.rss_kib))
    }
}
