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
    /// esprit-ike's control socket (`ctl_socket` of its configuration).
    #[arg(long, global = true, default_value = "/run/esprit/esprit-ike.sock")]
    socket: std::path::PathBuf,
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
    /// List IKE SAs and their CHILD SAs (like `swanctl --list-sas`): peer, NAT mapping,
    /// identity, virtual IPs, proposals, SPIs, traffic selectors, packets and bytes.
    #[command(alias = "ike-sas")]
    ListSas {
        /// Print esprit-ike's JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// List the configured connections.
    ListConns {
        #[arg(long)]
        json: bool,
    },
    /// esprit-ike's counters.
    Stats,
    /// Re-read esprit-ike's configuration file: established SAs stay; a file with errors
    /// is refused (each error printed with its line) and the running configuration kept.
    Reload,
    /// Delete an IKE SA (and its CHILD SAs), telling the peer.
    Terminate {
        /// The IKE SA's initiator or responder SPI, in hex (as list-sas prints it).
        #[arg(long, conflicts_with = "peer")]
        ike: Option<String>,
        /// Every IKE SA of this peer identity.
        #[arg(long)]
        peer: Option<String>,
    },
    /// Capture a peer's traffic (or everyone's) for a while, as Wireshark reads it: IKE as on
    /// the wire and decrypted, ESP as on the wire, the inner packets; plus the key tables
    /// (esp_sa, ikev2_decryption_table) that let Wireshark decrypt the wire captures.
    Trace {
        /// The client's outer address (its NAT's, as list-sas shows it); default: every peer.
        #[arg(long)]
        peer: Option<String>,
        /// How long to capture.
        #[arg(long, default_value_t = 30.0)]
        seconds: f64,
        /// A directory to create for the files (default: /var/lib/esprit/traces/trace-TIME).
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
        /// Packets per data-plane capture at most.
        #[arg(long, default_value_t = 1_000_000)]
        max_packets: u32,
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
        let rows = r
            .sa_rows(&[
                "spi",
                "direction",
                "packets",
                "bytes",
                "auth_failed",
                "replay_dropped",
                "other_dropped",
                "path_mtu",
            ])
            .ok_or("the segment has no per-SA counters")?;
        println!(
            "  {:<12} {:<4} {:>12} {:>14} {:>12} {:>12} {:>12} {:>9}",
            "spi", "dir", "packets", "bytes", "auth_failed", "replay", "other", "path_mtu"
        );
        for v in rows {
            let dir = if v[1] == 0 { "in" } else { "out" };
            // The outer path MTU learned from ICMP toward the SA's peer ("-": none).
            let pmtu = if v[7] == 0 { "-".to_string() } else { v[7].to_string() };
            println!(
                "  {:<#12x} {:<4} {:>12} {:>14} {:>12} {:>12} {:>12} {:>9}",
                v[0], dir, v[2], v[3], v[4], v[5], v[6], pmtu
            );
        }
    }
    Ok(())
}

/// One request to esprit-ike, its `ok` answer.
fn ask(socket: &std::path::Path, req: serde_json::Value) -> Result<serde_json::Value, String> {
    ask_within(socket, req, std::time::Duration::from_secs(10))
}

/// `espritctl trace`: waits for the trace to end, then says what was written.
fn trace(
    socket: &std::path::Path,
    peer: Option<String>,
    seconds: f64,
    dir: Option<std::path::PathBuf>,
    max_packets: u32,
) -> Result<(), String> {
    let mut req = serde_json::json!({"cmd": "trace", "seconds": seconds, "max_packets": max_packets});
    if let Some(p) = peer {
        req["peer"] = p.into();
    }
    if let Some(d) = dir {
        let d = std::path::absolute(&d).map_err(|e| format!("--dir {}: {e}", d.display()))?;
        req["dir"] = d.display().to_string().into();
    }
    if !(seconds > 0.0 && seconds <= 3600.0) {
        return Err(format!("--seconds must be more than 0 and at most 3600, not {seconds}"));
    }
    eprintln!("espritctl: tracing for {seconds} s ...");
    let v = ask_within(socket, req, std::time::Duration::from_secs_f64(seconds + 20.0))?;
    let dir = str_of(&v, "dir");
    println!("trace of {} written to {dir}:", str_of(&v, "peer"));
    if let Some(files) = v.get("files").and_then(|f| f.as_object()) {
        for (name, n) in files {
            let n = n.as_str().map_or_else(|| format!("{n} packets"), str::to_string);
            println!("  {name:<20} {n}");
        }
    }
    println!(
        "  esp_sa               {} ESP SAs\n  ikev2_decryption_table {} IKE SAs",
        str_of(&v, "esp_sas"),
        str_of(&v, "ike_sas")
    );
    let not = v.get("not_decryptable_by_wireshark").and_then(|x| x.as_array()).cloned().unwrap_or_default();
    if !not.is_empty() {
        let not: Vec<String> = not.iter().map(|x| x.as_str().unwrap_or_default().to_string()).collect();
        println!("Wireshark cannot decrypt: {}", not.join("; "));
    }
    println!("Open with the keys: WIRESHARK_CONFIG_DIR={dir} wireshark {dir}/esp-wire.pcap");
    Ok(())
}

fn ask_within(
    socket: &std::path::Path,
    req: serde_json::Value,
    patience: std::time::Duration,
) -> Result<serde_json::Value, String> {
    use std::io::{BufRead, BufReader, Write};
    let mut s = std::os::unix::net::UnixStream::connect(socket)
        .map_err(|e| format!("cannot reach esprit-ike at {}: {e} (is it running? --socket)", socket.display()))?;
    s.set_read_timeout(Some(patience)).map_err(|e| e.to_string())?;
    let mut line = req.to_string();
    line.push('\n');
    s.write_all(line.as_bytes()).map_err(|e| e.to_string())?;
    let mut answer = String::new();
    BufReader::new(&s).read_line(&mut answer).map_err(|e| format!("no answer from esprit-ike: {e}"))?;
    let v: serde_json::Value = serde_json::from_str(&answer).map_err(|e| format!("bad answer from esprit-ike: {e}"))?;
    if let Some(e) = v.get("error") {
        return Err(e.as_str().unwrap_or("error").to_string());
    }
    Ok(v.get("ok").cloned().unwrap_or_default())
}

fn str_of(v: &serde_json::Value, k: &str) -> String {
    match v.get(k) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Null) | None => "-".into(),
        Some(x) => x.to_string(),
    }
}

fn list_of(v: &serde_json::Value, k: &str) -> String {
    v.get(k).and_then(|x| x.as_array()).map_or_else(String::new, |a| {
        a.iter().map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string)).collect::<Vec<_>>().join(" ")
    })
}

fn print_sas(sas: &serde_json::Value) {
    let Some(sas) = sas.as_array() else { return };
    if sas.is_empty() {
        println!("no IKE SAs");
    }
    for s in sas {
        let nat = if s.get("nat").and_then(|x| x.as_bool()) == Some(true) { ", NAT detected" } else { "" };
        println!(
            "{}: #{}_i {}_r, {}",
            str_of(s, "connection"),
            str_of(s, "spi_i"),
            str_of(s, "spi_r"),
            str_of(s, "state").to_uppercase()
        );
        println!("  local  {}", str_of(s, "local"));
        println!("  remote {} [{}]{nat}", str_of(s, "remote"), str_of(s, "peer_id"));
        let vips = list_of(s, "vips");
        if !vips.is_empty() {
            println!("  virtual IPs {vips}");
        }
        for c in s.get("children").and_then(|x| x.as_array()).into_iter().flatten() {
            let encap = if c.get("encap").and_then(|x| x.as_bool()) == Some(true) { " in UDP" } else { "" };
            println!(
                "  child #{}: {}, ESP{encap} SPIs: {}_i {}_o, {}",
                str_of(c, "cookie"),
                str_of(c, "state").to_uppercase(),
                str_of(c, "spi_in"),
                str_of(c, "spi_out"),
                str_of(c, "proposal")
            );
            println!("    in  {} bytes, {} packets", str_of(c, "bytes_in"), str_of(c, "packets_in"));
            println!("    out {} bytes, {} packets", str_of(c, "bytes_out"), str_of(c, "packets_out"));
            println!("    local  {}", list_of(c, "local_ts"));
            println!("    remote {}", list_of(c, "remote_ts"));
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let socket = cli.socket;
    let done = |r: Result<(), String>| match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("espritctl: {e}");
            ExitCode::from(1)
        }
    };
    match cli.cmd {
        Cmd::ListSas { json } => done(ask(&socket, serde_json::json!({"cmd": "list-sas"})).map(|v| {
            if json {
                println!("{v}");
            } else {
                print_sas(&v);
            }
        })),
        Cmd::ListConns { json } => done(ask(&socket, serde_json::json!({"cmd": "list-conns"})).map(|v| {
            if json {
                println!("{v}");
            } else {
                for c in v.as_array().into_iter().flatten() {
                    println!(
                        "{}: {} [{}] <-> [{}]",
                        str_of(c, "name"),
                        list_of(c, "local_addrs"),
                        str_of(c, "local_id"),
                        str_of(c, "remote_id")
                    );
                    println!("  IKE  {}", list_of(c, "ike_proposals"));
                    println!("  ESP  {}", list_of(c, "esp_proposals"));
                    println!("  local_ts {}", list_of(c, "local_ts"));
                    println!(
                        "  dpd_delay {}s, IKE rekey {}s, CHILD rekey {}s",
                        str_of(c, "dpd_delay"),
                        str_of(c, "ike_rekey"),
                        str_of(c, "child_rekey")
                    );
                }
            }
        })),
        Cmd::Stats => done(ask(&socket, serde_json::json!({"cmd": "stats"})).map(|v| {
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        })),
        Cmd::Reload => done(ask(&socket, serde_json::json!({"cmd": "reload"})).map(|v| {
            println!(
                "reloaded: connections {}; {} IKE SA(s) of removed connections deleted",
                list_of(&v, "connections"),
                str_of(&v, "deleted_ike_sas")
            );
            let restart = list_of(&v, "needs_restart");
            if !restart.is_empty() {
                println!("changed but only applied after a restart: {restart}");
            }
        })),
        Cmd::Terminate { ike, peer } => {
            let req = match (ike, peer) {
                (Some(s), _) => serde_json::json!({"cmd": "terminate", "ike": s}),
                (None, Some(p)) => serde_json::json!({"cmd": "terminate", "peer": p}),
                (None, None) => {
                    eprintln!("espritctl: terminate needs --ike SPI or --peer ID");
                    return ExitCode::from(2);
                }
            };
            done(ask(&socket, req).map(|v| println!("terminated {} IKE SA(s)", str_of(&v, "terminated"))))
        }
        Cmd::DataplaneStats { instance, sa, all } => done(dataplane_stats(&instance, sa, all)),
        Cmd::Trace { peer, seconds, dir, max_packets } => done(trace(&socket, peer, seconds, dir, max_packets)),
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
