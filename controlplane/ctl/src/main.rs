//! espritctl: the operator's tool.
//!
//! `espritctl mtu --proposal P --encap udp|none --outer-mtu N` works out the largest inner
//! packet an ESP tunnel carries — the figure `tracepath` reports through it — and where the
//! bytes go.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use esprit_esp::mtu;
use esprit_esp::proposal::layout_for_name;

#[derive(Parser, Debug)]
#[command(name = "espritctl", version, about = "Operate the Esprit IPsec concentrator")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Print the largest inner packet that fits an ESP tunnel, and the overhead.
    Mtu {
        /// ESP proposal as strongSwan names it (aes128gcm16, aes128-sha1, aes256-sha256, …;
        /// the legacy 3des-md5 and 3des-sha1 too, for the arithmetic only).
        #[arg(long)]
        proposal: String,
        /// UDP encapsulation (NAT-T) or raw ESP.
        #[arg(long, value_enum, default_value_t = Encap::Udp)]
        encap: Encap,
        /// MTU of the path the outer packets take.
        #[arg(long, default_value_t = 1500)]
        outer_mtu: u32,
        /// Outer packets are IPv6.
        #[arg(long)]
        ipv6: bool,
        /// Print only the number.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Print the data plane's counters from its stats segment (/dev/shm/esprit-NAME-stats):
    /// totals over worker lcores, and with --sa every SA's counters.
    DataplaneStats {
        /// The instance name (`control_ring` of the data plane's configuration).
        #[arg(long, default_value = "default")]
        instance: String,
        /// Also list every SA.
        #[arg(long)]
        sa: bool,
        /// Include counters that are zero.
        #[arg(long)]
        all: bool,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Encap {
    Udp,
    None,
}

fn dataplane_stats(instance: &str, sa: bool, all: bool) -> Result<(), String> {
    let p = esprit_ring::shm_path(instance).map_err(|e| e.to_string())?;
    let path = std::path::PathBuf::from(format!("{}-stats", p.display()));
    let r = esprit_ring::StatsReader::open(&path)
        .map_err(|e| format!("{e} (is esprit-dataplane running with control_ring = \"{instance}\"?)"))?;
    println!(
        "stats segment {} (epoch {}, {} blocks, writer {})",
        path.display(),
        r.epoch(),
        r.lcores(),
        if r.writer_alive() { "running" } else { "gone" }
    );
    for name in r.counter_names() {
        let Some(id) = r.counter(name) else { continue };
        let v = r.total(id);
        if v != 0 || all {
            println!("  {name:<32} {v}");
        }
    }
    if sa {
        let ids: Vec<_> = ["spi", "direction", "packets", "bytes", "auth_failed", "replay_dropped", "other_dropped"]
            .iter()
            .map(|n| r.sa_counter(n))
            .collect::<Option<Vec<_>>>()
            .ok_or("the segment has no per-SA counters")?;
        println!(
            "  {:<12} {:<4} {:>12} {:>14} {:>12} {:>12} {:>12}",
            "spi", "dir", "packets", "bytes", "auth_failed", "replay", "other"
        );
        // The control thread's block is the last one.
        let block = r.lcores().saturating_sub(1);
        for slot in 0..r.max_sa() as u32 {
            let v: Vec<u64> = ids.iter().map(|&c| r.sa_get(block, slot, c)).collect();
            if v[0] == 0 {
                continue;
            }
            let dir = if v[1] == 0 { "in" } else { "out" };
            println!("  {:<#12x} {:<4} {:>12} {:>14} {:>12} {:>12} {:>12}", v[0], dir, v[2], v[3], v[4], v[5], v[6]);
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match Cli::parse().cmd {
        Cmd::DataplaneStats { instance, sa, all } => match dataplane_stats(&instance, sa, all) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("espritctl: {e}");
                ExitCode::from(1)
            }
        },
        Cmd::Mtu { proposal, encap, outer_mtu, ipv6, quiet } => {
            let layout = match layout_for_name(&proposal) {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("espritctl: {e}");
                    return ExitCode::from(2);
                }
            };
            let udp = encap == Encap::Udp;
            let r = mtu::report(outer_mtu, ipv6, udp, layout);
            if r.max_inner == 0 {
                eprintln!("espritctl: an outer MTU of {outer_mtu} cannot carry any packet with {proposal}");
                return ExitCode::from(1);
            }
            if quiet {
                println!("{}", r.max_inner);
                return ExitCode::SUCCESS;
            }
            let fam = if ipv6 { "IPv6" } else { "IPv4" };
            let enc = if udp { "UDP-encapsulated (NAT-T)" } else { "raw ESP" };
            println!("{proposal}, {enc}, {fam} outer, outer MTU {outer_mtu}");
            println!("  outer {fam} header {:>6}", r.outer_ip);
            if udp {
                println!("  UDP header        {:>6}", r.udp);
            }
            println!("  ESP header        {:>6}", r.esp_header);
            println!("  IV                {:>6}", r.iv);
            println!("  padding, trailer  {:>6}  (payload + 2 padded to a multiple of {})", r.pad_and_trailer, r.align);
            println!("  ICV               {:>6}", r.icv);
            let used = r.outer_ip + r.udp + r.esp_header + r.iv + r.max_inner as usize + r.pad_and_trailer + r.icv;
            if used < outer_mtu as usize {
                println!("  unusable          {:>6}  (less than one block)", outer_mtu as usize - used);
            }
            println!("largest inner packet: {}", r.max_inner);
            ExitCode::SUCCESS
        }
    }
}
