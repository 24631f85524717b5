//! esprit-dataplane: the data plane of the Esprit IPsec concentrator.
//!
//! Offline mode: `esprit-dataplane --config FILE --pcap-in outside=A.pcap --pcap-in
//! inside=B.pcap --pcap-out outside=C.pcap --pcap-out inside=D.pcap`.

use std::path::PathBuf;
use std::process::ExitCode;

use esprit_engine::{offline, Engine, HeapPool};

const USAGE: &str = "\
usage: esprit-dataplane --config FILE [--check-config]
                        [--pcap-in IF=FILE]... [--pcap-out IF=FILE]...

  --config FILE      the TOML configuration (interfaces, neighbors, routes, SAs, policies)
  --check-config     validate the configuration and exit
  --pcap-in IF=FILE  feed the frames of FILE to interface IF (offline mode; repeatable)
  --pcap-out IF=FILE write what interface IF transmits to FILE (repeatable)

With --pcap-in, every input frame goes through the engine in timestamp order and the
counters, drops by reason included, are printed at the end.";

struct Args {
    config: PathBuf,
    check: bool,
    ins: Vec<(String, PathBuf)>,
    outs: Vec<(String, PathBuf)>,
}

fn args() -> Result<Args, String> {
    let mut a = std::env::args().skip(1);
    let mut config = None;
    let (mut check, mut ins, mut outs) = (false, Vec::new(), Vec::new());
    while let Some(x) = a.next() {
        let mut val = |name: &str| a.next().ok_or_else(|| format!("{name} needs a value"));
        match x.as_str() {
            "--config" | "-c" => config = Some(PathBuf::from(val("--config")?)),
            "--check-config" => check = true,
            "--pcap-in" => {
                ins.push(offline::parse_spec(&val("--pcap-in")?).map_err(|e| e.to_string())?)
            }
            "--pcap-out" => {
                outs.push(offline::parse_spec(&val("--pcap-out")?).map_err(|e| e.to_string())?)
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument '{other}'")),
        }
    }
    let config = config.ok_or("--config FILE is required")?;
    Ok(Args {
        config,
        check,
        ins,
        outs,
    })
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
    let cfg = match offline::load_config(&a.config) {
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
    if a.ins.is_empty() {
        eprintln!("esprit-dataplane: the live data plane is not part of this build yet; run offline with --pcap-in IF=FILE");
        return ExitCode::from(2);
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
