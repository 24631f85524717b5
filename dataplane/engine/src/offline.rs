//! The offline mode: feed capture files to named interfaces, run every frame through the
//! engine with the capture's own clock, write every frame the appliance would transmit.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use esprit_esp::{DropReason, PacketBuf};
use esprit_pktio::pcap::{PcapError, PcapReader, PcapWriter};

use crate::engine::Engine;
use esprit_esp::HeapPool;

/// Why an offline run failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OfflineError {
    #[error("no interface named '{name}' (interfaces: {known})")]
    NoInterface { name: String, known: String },
    #[error("{path}: {source}")]
    Read { path: PathBuf, source: PcapError },
    #[error("{path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("'{0}' is not INTERFACE=FILE")]
    BadSpec(String),
}

/// `IF=FILE` as given on the command line.
pub fn parse_spec(s: &str) -> Result<(String, PathBuf), OfflineError> {
    match s.split_once('=') {
        Some((i, f)) if !i.is_empty() && !f.is_empty() => Ok((i.to_string(), PathBuf::from(f))),
        _ => Err(OfflineError::BadSpec(s.to_string())),
    }
}

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub frames_in: u64,
    /// Frames written, per output file.
    pub frames_out: Vec<(String, u64)>,
    /// Frames transmitted on interfaces that had no output file.
    pub frames_unwritten: u64,
}

/// An output capture per interface (`None`: not written).
type Outputs = Vec<Option<(PathBuf, PcapWriter<BufWriter<File>>)>>;

struct Input {
    ifidx: usize,
    path: PathBuf,
    reader: PcapReader<BufReader<File>>,
    next: Option<(u64, Vec<u8>)>,
}

impl Input {
    fn advance(&mut self) -> Result<(), OfflineError> {
        let mut buf = Vec::new();
        self.next = match self.reader.next_frame(&mut buf) {
            Ok(Some(ts)) => Some((ts, buf)),
            Ok(None) => None,
            Err(source) => return Err(OfflineError::Read { path: self.path.clone(), source }),
        };
        Ok(())
    }
}

/// Runs the capture files `inputs` (interface name, file) through `engine`, writing what
/// each interface transmits to `outputs`.
pub fn run(
    engine: &mut Engine<HeapPool>,
    inputs: &[(String, PathBuf)],
    outputs: &[(String, PathBuf)],
) -> Result<Summary, OfflineError> {
    let index = |engine: &Engine<HeapPool>, name: &str| {
        engine.interface_index(name).ok_or_else(|| OfflineError::NoInterface {
            name: name.to_string(),
            known: engine.interface_names().collect::<Vec<_>>().join(", "),
        })
    };
    let mut ins = Vec::new();
    for (name, path) in inputs {
        let ifidx = index(engine, name)?;
        let f = File::open(path).map_err(|e| OfflineError::Read { path: path.clone(), source: PcapError::Io(e) })?;
        let reader =
            PcapReader::new(BufReader::new(f)).map_err(|source| OfflineError::Read { path: path.clone(), source })?;
        let mut i = Input { ifidx, path: path.clone(), reader, next: None };
        i.advance()?;
        ins.push(i);
    }
    let mut outs: Outputs = engine.interface_names().map(|_| None).collect();
    for (name, path) in outputs {
        let ifidx = index(engine, name)?;
        let w = File::create(path)
            .and_then(|f| PcapWriter::new(BufWriter::new(f)))
            .map_err(|source| OfflineError::Write { path: path.clone(), source })?;
        outs[ifidx] = Some((path.clone(), w));
    }
    let mut summary = Summary::default();
    let mut last_ts = 0;
    // Merge the inputs by timestamp (the first input wins ties, so the order is stable).
    while let Some(k) =
        ins.iter().enumerate().filter_map(|(k, i)| i.next.as_ref().map(|(ts, _)| (*ts, k))).min().map(|(_, k)| k)
    {
        let (ts, frame) = ins[k].next.take().unwrap_or_default();
        let ifidx = ins[k].ifidx;
        ins[k].advance()?;
        summary.frames_in += 1;
        // Timestamps that go backwards (merged captures) are clamped: the engine's clock is
        // monotonic.
        last_ts = last_ts.max(ts);
        engine.poll(last_ts);
        let Some(b) = engine.pool().alloc_frame(&frame) else {
            engine.drops.inc(DropReason::NoBuffer);
            continue;
        };
        engine.rx(ifidx, [b], last_ts);
        drain(engine, &mut outs, last_ts, &mut summary)?;
    }
    for (path, w) in outs.iter_mut().flatten() {
        w.flush().map_err(|source| OfflineError::Write { path: path.clone(), source })?;
        summary.frames_out.push((path.display().to_string(), w.frames()));
    }
    Ok(summary)
}

fn drain(
    engine: &mut Engine<HeapPool>,
    outs: &mut Outputs,
    ts: u64,
    summary: &mut Summary,
) -> Result<(), OfflineError> {
    for (ifidx, out) in outs.iter_mut().enumerate() {
        let frames: Vec<_> = engine.tx_queue(ifidx).drain(..).collect();
        for b in frames {
            match out {
                Some((path, w)) => {
                    w.write_frame(ts, b.data()).map_err(|source| OfflineError::Write { path: path.clone(), source })?
                }
                None => summary.frames_unwritten += 1,
            }
            engine.pool().free_buf(b);
        }
    }
    Ok(())
}

/// Writes the end-of-run report: frames per interface, what the engine did, and every
/// non-zero drop counter by reason.
pub fn report<W: Write>(engine: &Engine<HeapPool>, summary: &Summary, mut w: W) -> std::io::Result<()> {
    writeln!(w, "frames read: {}", summary.frames_in)?;
    for (path, n) in &summary.frames_out {
        writeln!(w, "frames written to {path}: {n}")?;
    }
    if summary.frames_unwritten > 0 {
        writeln!(w, "frames transmitted on interfaces without --pcap-out: {}", summary.frames_unwritten)?;
    }
    writeln!(w, "interfaces:")?;
    for (name, s) in engine.interface_names().zip(&engine.if_stats) {
        writeln!(
            w,
            "  {name:<12} rx {:>8} pkts {:>10} bytes   tx {:>8} pkts {:>10} bytes",
            s.rx_packets, s.rx_bytes, s.tx_packets, s.tx_bytes
        )?;
    }
    writeln!(w, "counters:")?;
    let c = &engine.counters;
    for (name, v) in [
        ("esp_decrypted", c.esp_decrypted),
        ("esp_encrypted", c.esp_encrypted),
        ("ike_punted", c.ike_punted),
        ("natt_keepalives_rx", c.keepalives_rx),
        ("natt_keepalives_tx", c.keepalives_tx),
        ("icmp_frag_needed_tx", c.icmp_frag_needed_tx),
        ("icmp_packet_too_big_tx", c.icmp_packet_too_big_tx),
        ("icmp_time_exceeded_tx", c.icmp_time_exceeded_tx),
        ("icmp_echo_replies_tx", c.icmp_echo_replies_tx),
        ("pmtu_icmp_rx", c.pmtu_icmp_rx),
        ("pmtu_updates", c.pmtu_updates),
        ("inner_fragmented", c.inner_fragmented),
        ("inner_fragments_out", c.fragments_out),
        ("outer_fragments_in", c.fragments_held),
        ("outer_reassembled", c.reassembled),
        ("mss_clamped", c.mss_clamped),
        ("arp_rx", c.arp_rx),
        ("arp_replies_tx", c.arp_replies_tx),
        ("arp_requests_tx", c.arp_requests_tx),
        ("nd_rx", c.nd_rx),
        ("nd_adverts_tx", c.nd_adverts_tx),
        ("nd_solicits_tx", c.nd_solicits_tx),
        ("nat_mapping_changes", c.nat_mapping_changes),
    ] {
        if v != 0 {
            writeln!(w, "  {name:<28} {v}")?;
        }
    }
    writeln!(w, "drops by reason:")?;
    let mut any = false;
    for (r, n) in engine.drops.nonzero() {
        any = true;
        writeln!(w, "  {:<28} {n}", r.name())?;
    }
    if !any {
        writeln!(w, "  (none)")?;
    }
    Ok(())
}

/// Loads a configuration file.
pub fn load_config(path: &Path) -> Result<crate::Config, String> {
    let src = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    crate::config::parse(&path.display().to_string(), &src).map_err(|e| e.to_string())
}

/// The live data plane's final report, in the offline report's shape.
pub fn report_live<W: Write>(cfg: &crate::Config, r: &crate::live::Report, mut w: W) -> std::io::Result<()> {
    writeln!(w, "interfaces:")?;
    for (i, iface) in cfg.interfaces.iter().enumerate() {
        let s = r.interface(i);
        writeln!(
            w,
            "  {:<12} rx {:>8} pkts {:>10} bytes   tx {:>8} pkts {:>10} bytes",
            iface.name, s.rx_packets, s.rx_bytes, s.tx_packets, s.tx_bytes
        )?;
    }
    writeln!(w, "{}", r.line())?;
    writeln!(w, "drops by reason:")?;
    let mut any = false;
    for &reason in DropReason::ALL {
        let n = r.drops(reason);
        if n != 0 {
            any = true;
            writeln!(w, "  {:<28} {n}", reason.name())?;
        }
    }
    if !any {
        writeln!(w, "  (none)")?;
    }
    for e in &r.events {
        writeln!(w, "event: {e:?}")?;
    }
    Ok(())
}
