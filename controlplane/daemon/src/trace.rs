//! `espritctl trace`: the four captures an operator opens in Wireshark, for one peer or all —
//! IKE as on the wire and IKE in the clear (written here), ESP as on the wire and the inner
//! traffic (written by the data plane, asked over the ring) — and the key tables that let
//! Wireshark decrypt the wire captures itself: `esp_sa` and `ikev2_decryption_table` (its
//! "UAT" files), with a `preferences` file turning ESP decryption on.
//!
//! Every file is mode 0600 in a directory of mode 0700: they hold keys and cleartext.

use std::collections::BTreeMap;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use esprit_esp::Transform;
use esprit_ikev2::crypto::{EncrAlg, IntegAlg};
use esprit_ikev2::{ChildInstall, IkeSaKeys, TraceScope};
use serde_json::{json, Value};
use tokio::sync::oneshot;

/// LINKTYPE_RAW: records are IPv4 or IPv6 packets.
const LINKTYPE_RAW: u32 = 101;

/// A pcap file of raw IP packets.
struct Pcap {
    w: BufWriter<File>,
    packets: u64,
}

fn create(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)
}

impl Pcap {
    fn create(path: &Path) -> Result<Pcap, String> {
        let f = create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        let mut w = BufWriter::new(f);
        let mut h = Vec::with_capacity(24);
        h.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&4u16.to_le_bytes());
        h.extend_from_slice(&[0; 8]);
        h.extend_from_slice(&65_535u32.to_le_bytes());
        h.extend_from_slice(&LINKTYPE_RAW.to_le_bytes());
        w.write_all(&h).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Pcap { w, packets: 0 })
    }

    /// Appends the UDP datagram `src` → `dst` (the non-ESP marker first, on port 4500).
    fn udp(&mut self, src: SocketAddr, dst: SocketAddr, marker: bool, payload: &[u8]) {
        let prefix: &[u8] = if marker { &[0; 4] } else { &[] };
        let mut p = vec![0; esprit_wire::udp::ip_datagram_len(src.is_ipv4(), prefix.len() + payload.len())];
        let ok =
            esprit_wire::udp::emit_ip_datagram(&mut p, (src.ip(), src.port()), (dst.ip(), dst.port()), prefix, payload);
        if !ok {
            return;
        }
        let t = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&(t.as_secs() as u32).to_le_bytes());
        h[4..8].copy_from_slice(&t.subsec_micros().to_le_bytes());
        h[8..12].copy_from_slice(&(p.len() as u32).to_le_bytes());
        h[12..16].copy_from_slice(&(p.len() as u32).to_le_bytes());
        // A write error shows in the summary as a short count; the trace goes on.
        if self.w.write_all(&h).and_then(|()| self.w.write_all(&p)).is_ok() {
            self.packets += 1;
        }
    }
}

/// Wireshark's names (its ESP preferences' "esp_sa" table) for an ESP transform:
/// (encryption, authentication). `None`: Wireshark 4.0 cannot decrypt it (ChaCha20-Poly1305).
fn esp_names(t: Transform) -> Option<(&'static str, &'static str)> {
    const GCM: &str = "AES-GCM with 16 octet ICV [RFC4106]";
    const CBC: &str = "AES-CBC [RFC3602]";
    match t {
        Transform::Aes128Gcm16 | Transform::Aes256Gcm16 => Some((GCM, "NULL")),
        Transform::Aes128Sha1 | Transform::Aes256Sha1 => Some((CBC, "HMAC-SHA-1-96 [RFC2404]")),
        Transform::Aes128Sha256 | Transform::Aes256Sha256 => Some((CBC, "HMAC-SHA-256-128 [RFC4868]")),
        _ => None,
    }
}

/// Wireshark's names (its ISAKMP preferences' "ikev2_decryption_table") for an IKE SA's
/// encryption and integrity algorithms. `None`: Wireshark 4.0 cannot decrypt it.
fn ike_names(encr: EncrAlg, integ: Option<IntegAlg>) -> Option<(String, &'static str)> {
    let e = match encr {
        EncrAlg::AesCbc { key_bits } => format!("AES-CBC-{key_bits} [RFC3602]"),
        EncrAlg::AesGcm16 { key_bits } => format!("AES-GCM-{key_bits} with 16 octet ICV [RFC5282]"),
        EncrAlg::ChaCha20Poly1305 => return None,
    };
    let i = match integ {
        None => "NONE [RFC4306]",
        Some(IntegAlg::HmacSha1_96) => "HMAC_SHA1_96 [RFC2404]",
        Some(IntegAlg::HmacSha256_128) => "HMAC_SHA2_256_128 [RFC4868]",
        Some(IntegAlg::HmacSha384_192) => "HMAC_SHA2_384_192 [RFC4868]",
        Some(IntegAlg::HmacSha512_256) => "HMAC_SHA2_512_256 [RFC4868]",
    };
    Some((e, i))
}

/// Where the data plane's half stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DataPlane {
    Asked,
    Capturing,
    Refused(String),
    Stopped,
}

/// A trace under way.
pub struct Trace {
    pub id: u32,
    pub scope: TraceScope,
    pub dir: PathBuf,
    pub until: Instant,
    /// Set once the data plane was asked to stop: how long to wait for its answer.
    pub stopping: Option<Instant>,
    reply: Option<oneshot::Sender<Value>>,
    ike_wire: Pcap,
    ike_clear: Pcap,
    esp_rows: BTreeMap<u32, String>,
    ike_rows: BTreeMap<(u64, u64), String>,
    undecryptable: Vec<String>,
    dataplane: DataPlane,
}

impl std::fmt::Debug for Trace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trace").field("id", &self.id).field("dir", &self.dir).finish()
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Trace {
    /// Creates `dir` (mode 0700; it must not exist yet) and the IKE captures in it.
    pub fn start(
        id: u32,
        scope: TraceScope,
        dir: PathBuf,
        until: Instant,
        reply: oneshot::Sender<Value>,
    ) -> Result<Trace, (String, oneshot::Sender<Value>)> {
        if !dir.is_absolute() {
            return Err((format!("trace directory {} is not an absolute path", dir.display()), reply));
        }
        if let Err(e) = DirBuilder::new().recursive(false).mode(0o700).create(&dir) {
            return Err((
                format!("cannot create the trace directory {}: {e} (it must not exist yet)", dir.display()),
                reply,
            ));
        }
        let files = Pcap::create(&dir.join("ike-wire.pcap"))
            .and_then(|w| Ok((w, Pcap::create(&dir.join("ike-decrypted.pcap"))?)));
        let (ike_wire, ike_clear) = match files {
            Ok(f) => f,
            Err(e) => return Err((e, reply)),
        };
        Ok(Trace {
            id,
            scope,
            dir,
            until,
            stopping: None,
            reply: Some(reply),
            ike_wire,
            ike_clear,
            esp_rows: BTreeMap::new(),
            ike_rows: BTreeMap::new(),
            undecryptable: Vec::new(),
            dataplane: DataPlane::Asked,
        })
    }

    /// An IKE datagram, received (`inbound`) or sent; an unencrypted one (IKE_SA_INIT) goes to
    /// the decrypted capture too.
    pub fn ike(&mut self, inbound: bool, local: SocketAddr, remote: SocketAddr, marker: bool, message: &[u8]) {
        if !self.scope.matches(remote.ip()) {
            return;
        }
        let (src, dst) = if inbound { (remote, local) } else { (local, remote) };
        self.ike_wire.udp(src, dst, marker, message);
        // Next Payload of the header: SK (46) and SKF (53) are encrypted.
        if message.len() >= 28 && !matches!(message[16], 46 | 53) {
            self.ike_clear.udp(src, dst, marker, message);
        }
    }

    /// An encrypted IKE message in the clear (from the endpoint).
    pub fn decrypted(&mut self, inbound: bool, d: &esprit_ikev2::Datagram) {
        let (src, dst) = if inbound { (d.remote, d.local) } else { (d.local, d.remote) };
        self.ike_clear.udp(src, dst, d.marker, &d.data);
    }

    /// True if the keys of the IKE SA with these SPIs are in the table already.
    pub fn knows(&self, spi_i: u64, spi_r: u64) -> bool {
        self.ike_rows.contains_key(&(spi_i, spi_r))
    }

    /// An IKE SA's keys, for `ikev2_decryption_table`.
    pub fn ike_keys(&mut self, k: &IkeSaKeys) {
        match ike_names(k.encr, k.integ) {
            Some((e, i)) => {
                // Byte fields of a UAT file are bare hex; text fields are quoted.
                let row = format!(
                    "{:016x},{:016x},{},{},\"{e}\",{},{},\"{i}\"",
                    k.spi_i,
                    k.spi_r,
                    hex(&k.sk_ei),
                    hex(&k.sk_er),
                    hex(&k.sk_ai),
                    hex(&k.sk_ar)
                );
                self.ike_rows.insert((k.spi_i, k.spi_r), row);
            }
            None => self.note_undecryptable(format!("IKE SA {:016x}_i {:016x}_r ({:?})", k.spi_i, k.spi_r, k.encr)),
        }
    }

    /// A CHILD SA pair in scope, for `esp_sa`: both directions, any address (NAT mappings
    /// change; the SPI tells them apart).
    pub fn child(&mut self, c: &ChildInstall) {
        if !self.scope.matches(c.remote.ip()) {
            return;
        }
        let Some((e, a)) = esp_names(c.transform) else {
            return self.note_undecryptable(format!("CHILD SA {:08x}/{:08x} ({})", c.spi_in, c.spi_out, c.transform));
        };
        let proto = if c.remote.is_ipv4() { "IPv4" } else { "IPv6" };
        for (spi, k) in [(c.spi_in, &c.keys_in), (c.spi_out, &c.keys_out)] {
            let int = if k.int.is_empty() { String::new() } else { format!("0x{}", hex(&k.int)) };
            let row =
                format!("\"{proto}\",\"*\",\"*\",\"0x{spi:08x}\",\"{e}\",\"0x{}\",\"{a}\",\"{int}\"", hex(&k.enc));
            self.esp_rows.insert(spi, row);
        }
    }

    fn note_undecryptable(&mut self, what: String) {
        if !self.undecryptable.contains(&what) {
            self.undecryptable.push(what);
        }
    }

    /// The data plane's answer about this trace: `Ok` (started, then stopped) or a refusal.
    pub fn dataplane_answer(&mut self, r: Result<(), String>) {
        self.dataplane = match (r, &self.dataplane) {
            (Err(e), _) => DataPlane::Refused(e),
            (Ok(()), DataPlane::Asked) => DataPlane::Capturing,
            (Ok(()), DataPlane::Capturing) => DataPlane::Stopped,
            (Ok(()), other) => other.clone(),
        };
    }

    /// True once the data plane has closed its files (or will not write any).
    pub fn dataplane_done(&self) -> bool {
        matches!(self.dataplane, DataPlane::Stopped | DataPlane::Refused(_))
    }

    /// Writes the key tables and the preferences, closes the captures and answers espritctl.
    pub fn finish(mut self) {
        let answer = match self.write_tables() {
            Ok(()) => json!({ "ok": self.summary() }),
            Err(e) => json!({ "error": e }),
        };
        tracing::info!(dir = %self.dir.display(), "trace finished");
        if let Some(r) = self.reply.take() {
            let _ = r.send(answer);
        }
    }

    fn write_tables(&mut self) -> Result<(), String> {
        let write = |name: &str, text: String| -> Result<(), String> {
            let path = self.dir.join(name);
            create(&path).and_then(|mut f| f.write_all(text.as_bytes())).map_err(|e| format!("{}: {e}", path.display()))
        };
        let table = |rows: Vec<&String>| rows.into_iter().map(|r| format!("{r}\n")).collect::<String>();
        write("esp_sa", table(self.esp_rows.values().collect()))?;
        write("ikev2_decryption_table", table(self.ike_rows.values().collect()))?;
        write(
            "preferences",
            "# Wireshark preferences for this trace: ESP decryption with the keys in esp_sa.\n\
             esp.enable_encryption_decode: TRUE\n\
             esp.enable_authentication_check: TRUE\n"
                .to_string(),
        )?;
        for p in [&mut self.ike_wire, &mut self.ike_clear] {
            p.w.flush().map_err(|e| format!("trace capture: {e}"))?;
        }
        Ok(())
    }

    fn summary(&self) -> Value {
        let dp = |name: &str| -> Value {
            match &self.dataplane {
                DataPlane::Stopped => json!(count_records(&self.dir.join(name))),
                DataPlane::Refused(e) => json!(format!("not written: the data plane refused ({e})")),
                DataPlane::Asked | DataPlane::Capturing => {
                    json!(format!(
                        "incomplete: the data plane did not confirm ({})",
                        count_records(&self.dir.join(name))
                    ))
                }
            }
        };
        json!({
            "dir": self.dir.display().to_string(),
            "peer": match self.scope { TraceScope::Peer(a) => a.to_string(), _ => "all".to_string() },
            "files": {
                "ike-decrypted.pcap": self.ike_clear.packets,
                "ike-wire.pcap": self.ike_wire.packets,
                "esp-wire.pcap": dp("esp-wire.pcap"),
                "inner.pcap": dp("inner.pcap"),
            },
            "ike_sas": self.ike_rows.len(),
            "esp_sas": self.esp_rows.len(),
            "not_decryptable_by_wireshark": self.undecryptable,
        })
    }
}

/// Records in a pcap file (its length walked record by record).
fn count_records(path: &Path) -> u64 {
    let Ok(b) = std::fs::read(path) else { return 0 };
    let (mut at, mut n) = (24usize, 0);
    while let Some(h) = b.get(at..at + 16) {
        let len = u32::from_le_bytes([h[8], h[9], h[10], h[11]]) as usize;
        at += 16 + len;
        if at > b.len() {
            break;
        }
        n += 1;
    }
    n
}

/// The peer scope a request names: an address, or every peer.
pub fn scope(peer: Option<&str>) -> Result<TraceScope, String> {
    match peer {
        None | Some("all") => Ok(TraceScope::All),
        Some(p) => p
            .parse::<IpAddr>()
            .map(TraceScope::Peer)
            .map_err(|_| format!("peer '{p}' is not an IP address (the client's outer address, as list-sas shows it)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wireshark_names_cover_what_it_decrypts() {
        assert_eq!(esp_names(Transform::Aes128Gcm16), Some(("AES-GCM with 16 octet ICV [RFC4106]", "NULL")));
        assert_eq!(esp_names(Transform::Aes256Sha256).map(|x| x.1), Some("HMAC-SHA-256-128 [RFC4868]"));
        assert_eq!(esp_names(Transform::Chacha20Poly1305), None);
        let (e, i) = ike_names(EncrAlg::AesGcm16 { key_bits: 256 }, None).unwrap();
        assert_eq!((e.as_str(), i), ("AES-GCM-256 with 16 octet ICV [RFC5282]", "NONE [RFC4306]"));
        let (e, i) = ike_names(EncrAlg::AesCbc { key_bits: 128 }, Some(IntegAlg::HmacSha256_128)).unwrap();
        assert_eq!((e.as_str(), i), ("AES-CBC-128 [RFC3602]", "HMAC_SHA2_256_128 [RFC4868]"));
    }

    #[test]
    fn scopes() {
        assert_eq!(scope(None), Ok(TraceScope::All));
        assert_eq!(scope(Some("198.51.100.7")), Ok(TraceScope::Peer("198.51.100.7".parse().unwrap())));
        assert!(scope(Some("client-1")).is_err());
    }
}
