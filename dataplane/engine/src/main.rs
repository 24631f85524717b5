//! esprit-dataplane: the data plane of the Esprit IPsec concentrator.
//!
//! Live: `esprit-dataplane --config FILE` runs on the configured interfaces until SIGTERM or
//! SIGINT. Offline: `esprit-dataplane --config FILE --pcap-in outside=A.pcap --pcap-in
//! inside=B.pcap --pcap-out outside=C.pcap --pcap-out inside=D.pcap`.

use std::path::PathBuf;
use std::process::ExitCode;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use esprit_engine::{live, offline, Engine, HeapPool};

/// mimalloc, with the SA arena the live data plane reserves at start-up.
#[global_allocator]
static HEAP: esprit_heap::Heap = esprit_heap::Heap;

const USAGE: &str = "\
usage: esprit-dataplane --config FILE [--check-config] [--stats]
                        [--pcap-in IF=FILE]... [--pcap-out IF=FILE]...

  --config FILE      the TOML configuration (interfaces, neighbors, routes, SAs, policies)
  --check-config     validate the configuration and exit
  --stats            live mode: print a one-line summary every second
  --ring NAME        live mode: attach to esprit-ike through /dev/shm/esprit-NAME
                     (overrides [dataplane] control_ring)
  --pcap-in IF=FILE  feed the frames of FILE to interface IF (offline mode; repeatable)
  --pcap-out IF=FILE write what interface IF transmits to FILE (repeatable)

Without --pcap-in the data plane runs live on the configured interfaces (each interface's
`device`, by AF_PACKET) until SIGTERM or SIGINT, then prints its counters. With --pcap-in,
every input frame goes through the engine in timestamp order and the counters, drops by
reason included, are printed at the end.";

struct Args {
    config: PathBuf,
    check: bool,
    stats: bool,
    ring: Option<String>,
    ins: Vec<(String, PathBuf)>,
    outs: Vec<(String, PathBuf)>,
}

fn args() -> Result<Args, String> {
    let mut a = std::env::args().skip(1);
    let mut config = None;
    let (mut check, mut stats, mut ins, mut outs) = (false, false, Vec::new(), Vec::new());
    let mut ring = None;
    while let Some(x) = a.next() {
        let mut val = |name: &str| a.next().ok_or_else(|| format!("{name} needs a value"));
        match x.as_str() {
            "--config" | "-c" => config = Some(PathBuf::from(val("--config")?)),
            "--check-config" => check = true,
            "--stats" => stats = true,
            "--ring" => ring = Some(val("--ring")?),
            "--pcap-in" => ins.push(offline::parse_spec(&val("--pcap-in")?).map_err(|e| e.to_string())?),
            "--pcap-out" => outs.push(offline::parse_spec(&val("--pcap-out")?).map_err(|e| e.to_string())?),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument '{other}'")),
        }
    }
    let config = config.ok_or("--config FILE is required")?;
    Ok(Args { config, check, stats, ring, ins, outs })
}

fn main() -> ExitCode {
    let a = match args() {
        Ok(a) => a,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("esprit-dataplane: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut cfg = match offline::load_config(&a.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    if a.check {
        println!(
            "{}: OK ({} interfaces, {} SAs, {} policies)",
            a.config.display(),
            cfg.interfaces.len(),
            cfg.sas.len(),
            cfg.policies.len()
        );
        return ExitCode::SUCCESS;
    }
    if a.ring.is_some() {
        cfg.settings.control_ring = a.ring.clone();
    }
    if a.ins.is_empty() {
        return live(&cfg, a.stats);
    }
    let mut engine = match Engine::new(&cfg, HeapPool::new(1 << 16)) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("esprit-dataplane: {e}");
            return ExitCode::from(1);
        }
    };
    match offline::run(&mut engine, &a.ins, &a.outs) {
        Ok(summary) => {
            if let Err(e) = offline::report(&engine, &summary, std::io::stdout().lock()) {
                eprintln!("esprit-dataplane: {e}");
                return ExitCode::from(1);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("esprit-dataplane: {e}");
            ExitCode::from(1)
        }
    }
}

fn live(cfg: &esprit_engine::Config, stats: bool) -> ExitCode {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        if let Err(e) = signal_hook::flag::register(sig, stop.clone()) {
            eprintln!("esprit-dataplane: cannot handle signal {sig}: {e}");
            return ExitCode::from(1);
        }
    }
    let names: Vec<String> = cfg.interfaces.iter().map(|i| format!("{} ({})", i.name, i.device)).collect();
    eprintln!(
        "esprit-dataplane: running on {} with {} worker(s); SIGTERM or ^C stops",
        names.join(", "),
        cfg.settings.workers
    );
    let r = live::run(cfg, stop, |r| {
        if stats {
            println!("{}", r.line());
        }
    });
    match r {
        Ok(report) => {
            let _ = offline::report_live(cfg, &report, std::io::stdout().lock());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("esprit-dataplane: {e}");
            ExitCode::from(1)
        }
    }
}
