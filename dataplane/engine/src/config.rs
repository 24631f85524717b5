//! The TOML configuration of the data plane, validated up front. Every error names the file,
//! the line and what would be valid; all errors are reported at once.
//!
//! ```toml
//! [dataplane]                # optional; every key has a default
//! keepalive_interval = 20    # seconds between NAT keepalives on idle NAT-T SAs (0: off)
//! workers = 2                # worker threads (lcores) of the live data plane
//! cores = [1, 2]             # pin them to these CPUs
//! max_sas = 65536            # SAs per direction the tables hold
//! sa_arena = true            # live: reserve memory for max_sas SAs at start-up (hugepages
//!                            # when the host has them free): no page fault installing SAs
//!
//! [[interface]]
//! name = "wan"
//! role = "outside"           # or "inside"
//! address = "198.51.100.1/24"
//! mac = "02:00:00:00:01:01"
//! mtu = 1500
//! driver = "af_packet"       # or "dpdk"
//! device = "eth1"            # Linux interface (af_packet) or DPDK device; default: name
//!
//! [[neighbor]]               # static next hops; ARP/ND learns the rest
//! interface = "wan"
//! address = "198.51.100.254"
//! mac = "02:00:00:00:01:fe"
//!
//! [[route]]
//! destination = "0.0.0.0/0"
//! via = "198.51.100.254"
//! interface = "wan"
//!
//! [[sa]]                     # manually keyed SA (setkey / ip xfrm state)
//! spi = 0x1001
//! direction = "in"
//! proposal = "aes128gcm16"
//! enc_key = "…40 hex digits: 16-byte key + 4-byte salt…"
//! local = "198.51.100.1"
//! remote = "203.0.113.7"
//! local_port = 4500          # both ports: UDP encapsulation; neither: raw ESP
//! remote_port = 4500
//! local_ts = ["10.1.0.0/16"]
//! remote_ts = ["10.9.0.2/32"]
//!
//! [[policy]]
//! src = "10.1.0.0/16"
//! dst = "10.9.0.2/32"
//! sa = 0x1002                # an outbound SPI
//! ```

use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;
use std::ops::Range;

use esprit_esp::crypto::SaKeys;
use esprit_esp::proposal::Transform;
use esprit_esp::sa::{DfMode, Lifetime, SaParams, UdpEncap};
use esprit_esp::ts::TrafficSelector;
use esprit_wire::{EthernetAddress, IpCidr};
use serde::Deserialize;
use toml::Spanned;

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file, self.line, self.column, self.message)
    }
}

/// Every problem found in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Role of an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Faces the clients (the internet): ESP, IKE, keepalives.
    Outside,
    /// Faces the protected networks.
    Inside,
}

/// An address on an interface: the host address and its subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IfAddr {
    pub addr: IpAddr,
    pub subnet: IpCidr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceConfig {
    pub name: String,
    pub role: Role,
    pub addresses: Vec<IfAddr>,
    pub mac: EthernetAddress,
    pub mtu: u32,
    /// How the live data plane reaches the wire.
    pub driver: Driver,
    /// The Linux interface (AF_PACKET) or DPDK device name (`net_af_packet0`, a PCI
    /// address…) behind this interface; defaults to `name`.
    pub device: String,
}

/// Packet I/O backend of an interface in the live data plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    AfPacket,
    Dpdk,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighborConfig {
    pub interface: usize,
    pub address: IpAddr,
    pub mac: EthernetAddress,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteConfig {
    pub destination: IpCidr,
    pub via: Option<IpAddr>,
    pub interface: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    In,
    Out,
}

#[derive(Debug, Clone)]
pub struct SaConfig {
    pub direction: Direction,
    pub params: SaParams,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyConfig {
    pub src: IpCidr,
    pub dst: IpCidr,
    pub spi: u32,
}

/// Data-plane settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Seconds between NAT keepalives on idle UDP-encapsulated SAs (RFC 3948 §4); 0 disables.
    pub keepalive_interval: u64,
    /// ICMP errors generated per second, and the burst allowed (RFC 4443 §2.4(f)).
    pub icmp_rate: u32,
    pub icmp_burst: u32,
    /// Seconds a learned path MTU is kept (RFC 1191 §6.3 suggests 10 minutes).
    pub pmtu_timeout: u64,
    /// Lowest path MTU believed from ICMP (IPv4 outer).
    pub pmtu_min: u32,
    /// Clamp the MSS of TCP SYNs in both directions to the tunnel's MTU.
    pub mss_clamp: bool,
    pub reassembly_slots: usize,
    pub reassembly_max: usize,
    /// Milliseconds allowed to reassemble one datagram.
    pub reassembly_timeout_ms: u64,
    /// Crypto provider: "auto" (fastest available) or a provider name.
    pub crypto: String,
    /// Worker threads (lcores) of the live data plane.
    pub workers: usize,
    /// CPU cores to pin the workers to, in order (none: not pinned).
    pub cores: Vec<usize>,
    /// Most SAs per direction the tables hold.
    pub max_sas: usize,
    /// Live mode: reserve and populate the memory of `max_sas` SAs per direction at start-up
    /// (on hugetlbfs pages if the host has them free), so that installing an SA takes no
    /// page fault and SA state sits on few huge pages (`esprit_heap`).
    pub sa_arena: bool,
    /// Extra DPDK EAL arguments (for `driver = "dpdk"` interfaces).
    pub eal_args: Vec<String>,
    /// Instance name of the shared-memory rings to esprit-ike (`/dev/shm/esprit-NAME`);
    /// none: no control plane, IKE is dropped and counted.
    pub control_ring: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            keepalive_interval: 20,
            icmp_rate: 100,
            icmp_burst: 50,
            pmtu_timeout: 600,
            pmtu_min: esprit_esp::sa::MIN_PMTU_V4,
            mss_clamp: false,
            reassembly_slots: 64,
            reassembly_max: 65535,
            reassembly_timeout_ms: 30_000,
            crypto: "auto".into(),
            workers: 1,
            cores: Vec::new(),
            max_sas: 1 << 16,
            sa_arena: true,
            eal_args: Vec::new(),
            control_ring: None,
        }
    }
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub settings: Settings,
    pub interfaces: Vec<InterfaceConfig>,
    pub neighbors: Vec<NeighborConfig>,
    pub routes: Vec<RouteConfig>,
    pub sas: Vec<SaConfig>,
    pub policies: Vec<PolicyConfig>,
}

impl Config {
    pub fn interface(&self, name: &str) -> Option<usize> {
        self.interfaces.iter().position(|i| i.name == name)
    }
}

// ---- raw, as written

type S<T> = Spanned<T>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    dataplane: Option<S<RawSettings>>,
    #[serde(default)]
    interface: Vec<S<RawInterface>>,
    #[serde(default)]
    neighbor: Vec<S<RawNeighbor>>,
    #[serde(default)]
    route: Vec<S<RawRoute>>,
    #[serde(default)]
    sa: Vec<S<RawSa>>,
    #[serde(default)]
    policy: Vec<S<RawPolicy>>,
    // esprit-ike's sections (the same file may configure both processes).
    #[serde(default, rename = "ike")]
    _ike: Option<toml::Value>,
    #[serde(default, rename = "pool")]
    _pool: Option<toml::Value>,
    #[serde(default, rename = "connection")]
    _connection: Option<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    keepalive_interval: Option<S<u64>>,
    icmp_rate: Option<S<u32>>,
    icmp_burst: Option<S<u32>>,
    pmtu_timeout: Option<S<u64>>,
    pmtu_min: Option<S<u32>>,
    mss_clamp: Option<bool>,
    reassembly_slots: Option<S<usize>>,
    reassembly_max: Option<S<usize>>,
    reassembly_timeout_ms: Option<S<u64>>,
    crypto: Option<S<String>>,
    workers: Option<S<usize>>,
    cores: Option<S<Vec<usize>>>,
    max_sas: Option<S<usize>>,
    sa_arena: Option<bool>,
    eal_args: Option<Vec<String>>,
    control_ring: Option<S<String>>,
}

/// A string or a list of strings. (Spans cannot cross an untagged enum, so the span is of
/// the whole value.)
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInterface {
    name: S<String>,
    role: S<String>,
    address: S<OneOrMany>,
    mac: S<String>,
    mtu: Option<S<u32>>,
    driver: Option<S<String>>,
    device: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNeighbor {
    interface: S<String>,
    address: S<String>,
    mac: S<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    destination: S<String>,
    via: Option<S<String>>,
    interface: S<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSa {
    spi: S<i64>,
    direction: S<String>,
    proposal: S<String>,
    enc_key: S<String>,
    int_key: Option<S<String>>,
    local: S<String>,
    remote: S<String>,
    local_port: Option<S<i64>>,
    remote_port: Option<S<i64>>,
    esn: Option<bool>,
    replay_window: Option<S<i64>>,
    local_ts: Option<Vec<S<String>>>,
    remote_ts: Option<Vec<S<String>>>,
    df: Option<S<String>>,
    soft_packets: Option<u64>,
    hard_packets: Option<u64>,
    soft_bytes: Option<u64>,
    hard_bytes: Option<u64>,
    soft_seconds: Option<u32>,
    hard_seconds: Option<u32>,
    idle_seconds: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    src: S<String>,
    dst: S<String>,
    sa: S<i64>,
}

/// Collects errors with positions.
struct Ctx<'a> {
    file: &'a str,
    src: &'a str,
    errors: Vec<ConfigError>,
}

impl Ctx<'_> {
    fn at(&mut self, span: Range<usize>, message: impl Into<String>) {
        let (line, column) = line_col(self.src, span.start);
        self.errors.push(ConfigError { file: self.file.to_string(), line, column, message: message.into() });
    }
}

fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let before = &src[..offset.min(src.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map_or(before.len(), |nl| before.len() - nl - 1) + 1;
    (line, column)
}

fn parse_mac(c: &mut Ctx<'_>, s: &S<String>) -> Option<EthernetAddress> {
    match s.get_ref().parse::<EthernetAddress>() {
        Ok(m) if m.is_unicast() && m != EthernetAddress([0; 6]) => Some(m),
        Ok(_) => {
            c.at(s.span(), format!("mac '{}' must be a unicast address", s.get_ref()));
            None
        }
        Err(_) => {
            c.at(
                s.span(),
                format!("mac '{}' is not a MAC address; write six hex pairs like 02:00:00:00:00:01", s.get_ref()),
            );
            None
        }
    }
}

fn parse_ip(c: &mut Ctx<'_>, what: &str, s: &S<String>) -> Option<IpAddr> {
    match s.get_ref().trim().parse() {
        Ok(a) => Some(a),
        Err(_) => {
            c.at(s.span(), format!("{what} '{}' is not an IPv4 or IPv6 address", s.get_ref()));
            None
        }
    }
}

fn parse_cidr(c: &mut Ctx<'_>, what: &str, s: &S<String>) -> Option<IpCidr> {
    match s.get_ref().trim().parse() {
        Ok(a) => Some(a),
        Err(_) => {
            c.at(
                s.span(),
                format!(
                    "{what} '{}' is not a prefix; write an address with a length, like 10.1.0.0/16 or 2001:db8::/32",
                    s.get_ref()
                ),
            );
            None
        }
    }
}

fn parse_hex(c: &mut Ctx<'_>, what: &str, s: &S<String>) -> Option<Vec<u8>> {
    let t: String =
        s.get_ref().trim().trim_start_matches("0x").chars().filter(|ch| *ch != ':' && !ch.is_whitespace()).collect();
    match hex::decode(&t) {
        Ok(v) => Some(v),
        Err(_) => {
            c.at(
                s.span(),
                format!("{what} is not hexadecimal (digits 0-9 a-f, optionally with a 0x prefix or ':' separators)"),
            );
            None
        }
    }
}

/// Parses and validates `src`, read from `file`.
pub fn parse(file: &str, src: &str) -> Result<Config, ConfigErrors> {
    let mut c = Ctx { file, src, errors: Vec::new() };
    let raw: Raw = match toml::from_str(src) {
        Ok(r) => r,
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            c.at(span, e.message().trim().to_string());
            return Err(ConfigErrors(c.errors));
        }
    };
    let settings = settings(&mut c, raw.dataplane.as_ref());
    let interfaces = interfaces(&mut c, &raw.interface);
    let find_if = |c: &mut Ctx<'_>, s: &S<String>| -> Option<usize> {
        let i = interfaces.iter().position(|i| &i.name == s.get_ref());
        if i.is_none() {
            let names: Vec<_> = interfaces.iter().map(|i| i.name.as_str()).collect();
            c.at(s.span(), format!("no interface named '{}'; defined: {}", s.get_ref(), names.join(", ")));
        }
        i
    };

    let mut neighbors = Vec::new();
    for n in &raw.neighbor {
        let n = n.get_ref();
        let (i, a, m) =
            (find_if(&mut c, &n.interface), parse_ip(&mut c, "address", &n.address), parse_mac(&mut c, &n.mac));
        if let (Some(interface), Some(address), Some(mac)) = (i, a, m) {
            if !interfaces[interface].addresses.iter().any(|x| x.subnet.contains(address)) {
                c.at(
                    n.address.span(),
                    format!("neighbor {address} is not in a subnet of interface '{}'", interfaces[interface].name),
                );
            }
            neighbors.push(NeighborConfig { interface, address, mac });
        }
    }

    let mut routes = Vec::new();
    for r in &raw.route {
        let r = r.get_ref();
        let d = parse_cidr(&mut c, "destination", &r.destination);
        let via = r.via.as_ref().map(|v| (v, parse_ip(&mut c, "via", v)));
        let i = find_if(&mut c, &r.interface);
        if let (Some(destination), Some(interface)) = (d, i) {
            let via = match via {
                Some((s, Some(a))) => {
                    if !interfaces[interface].addresses.iter().any(|x| x.subnet.contains(a)) {
                        c.at(
                            s.span(),
                            format!(
                                "gateway {a} is not directly reachable on interface '{}' (not in any of its subnets)",
                                interfaces[interface].name
                            ),
                        );
                    }
                    if a.is_ipv4() != destination.is_ipv4() {
                        c.at(
                            s.span(),
                            format!("gateway {a} and destination {destination} are of different address families"),
                        );
                    }
                    Some(a)
                }
                Some((_, None)) => continue,
                None => None,
            };
            routes.push(RouteConfig { destination, via, interface });
        }
    }

    let outside_addrs: Vec<IpAddr> = interfaces
        .iter()
        .filter(|i| i.role == Role::Outside)
        .flat_map(|i| i.addresses.iter().map(|a| a.addr))
        .collect();
    let mut sas = Vec::new();
    let mut spis = HashSet::new();
    for s in &raw.sa {
        if let Some(sa) = sa(&mut c, s.get_ref(), &outside_addrs) {
            if !spis.insert((sa.direction, sa.params.spi)) {
                let dir = if sa.direction == Direction::In { "inbound" } else { "outbound" };
                c.at(s.get_ref().spi.span(), format!("a second {dir} SA with SPI {:#x}", sa.params.spi));
            }
            sas.push(sa);
        }
    }

    let mut policies = Vec::new();
    for p in &raw.policy {
        let p = p.get_ref();
        let (src, dst) = (parse_cidr(&mut c, "src", &p.src), parse_cidr(&mut c, "dst", &p.dst));
        let spi = *p.sa.get_ref();
        let out = sas.iter().find(|s| s.direction == Direction::Out && s.params.spi as i64 == spi);
        if out.is_none() {
            let known: Vec<String> =
                sas.iter().filter(|s| s.direction == Direction::Out).map(|s| format!("{:#x}", s.params.spi)).collect();
            c.at(
                p.sa.span(),
                format!(
                    "sa = {spi:#x} names no outbound [[sa]]; outbound SPIs: {}",
                    if known.is_empty() { "none".into() } else { known.join(", ") }
                ),
            );
        }
        if let (Some(src), Some(dst), Some(_)) = (src, dst, out) {
            if src.is_ipv4() != dst.is_ipv4() {
                c.at(p.dst.span(), "src and dst are of different address families");
            }
            policies.push(PolicyConfig { src, dst, spi: spi as u32 });
        }
    }

    if !raw.interface.is_empty() && !interfaces.iter().any(|i| i.role == Role::Outside) {
        c.at(raw.interface[0].span(), "no interface has role = \"outside\"; one must face the clients");
    }
    if raw.interface.is_empty() {
        c.at(0..0, "no [[interface]] defined; at least one with role = \"outside\" is needed");
    }
    if c.errors.is_empty() {
        Ok(Config { settings, interfaces, neighbors, routes, sas, policies })
    } else {
        Err(ConfigErrors(c.errors))
    }
}

fn settings(c: &mut Ctx<'_>, raw: Option<&S<RawSettings>>) -> Settings {
    let mut s = Settings::default();
    let Some(r) = raw.map(|r| r.get_ref()) else {
        return s;
    };
    let range = |c: &mut Ctx<'_>, v: &Option<S<u64>>, name: &str, lo: u64, hi: u64, out: &mut u64| {
        if let Some(v) = v {
            if (lo..=hi).contains(v.get_ref()) {
                *out = *v.get_ref();
            } else {
                c.at(v.span(), format!("{name} = {} is out of range; valid: {lo} to {hi}", v.get_ref()));
            }
        }
    };
    range(c, &r.keepalive_interval, "keepalive_interval", 0, 3600, &mut s.keepalive_interval);
    range(c, &r.pmtu_timeout, "pmtu_timeout", 10, 86400, &mut s.pmtu_timeout);
    range(c, &r.reassembly_timeout_ms, "reassembly_timeout_ms", 100, 120_000, &mut s.reassembly_timeout_ms);
    let widen32 = |v: &Option<S<u32>>| v.as_ref().map(|x| Spanned::new(x.span(), *x.get_ref() as u64));
    let widen = |v: &Option<S<usize>>| v.as_ref().map(|x| Spanned::new(x.span(), *x.get_ref() as u64));
    let mut t = s.icmp_rate as u64;
    range(c, &widen32(&r.icmp_rate), "icmp_rate", 1, 1_000_000, &mut t);
    s.icmp_rate = t as u32;
    let mut t = s.icmp_burst as u64;
    range(c, &widen32(&r.icmp_burst), "icmp_burst", 1, 1_000_000, &mut t);
    s.icmp_burst = t as u32;
    let mut t = s.pmtu_min as u64;
    range(c, &widen32(&r.pmtu_min), "pmtu_min", 576, 9000, &mut t);
    s.pmtu_min = t as u32;
    let mut t = s.reassembly_slots as u64;
    range(c, &widen(&r.reassembly_slots), "reassembly_slots", 1, 65536, &mut t);
    s.reassembly_slots = t as usize;
    let mut t = s.reassembly_max as u64;
    range(c, &widen(&r.reassembly_max), "reassembly_max", 1280, 65535, &mut t);
    s.reassembly_max = t as usize;
    if let Some(m) = r.mss_clamp {
        s.mss_clamp = m;
    }
    let mut t = s.workers as u64;
    range(c, &widen(&r.workers), "workers", 1, 64, &mut t);
    s.workers = t as usize;
    let mut t = s.max_sas as u64;
    range(c, &widen(&r.max_sas), "max_sas", 16, 1 << 24, &mut t);
    s.max_sas = t as usize;
    if let Some(a) = r.sa_arena {
        s.sa_arena = a;
    }
    if let Some(cores) = &r.cores {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        match cores.get_ref().iter().find(|&&k| k >= n) {
            Some(bad) => {
                c.at(cores.span(), format!("core {bad} does not exist; this machine has cores 0 to {}", n - 1))
            }
            None => s.cores = cores.get_ref().clone(),
        }
    }
    if let Some(a) = &r.eal_args {
        s.eal_args = a.clone();
    }
    if let Some(n) = &r.control_ring {
        if esprit_ring::shm_path(n.get_ref()).is_ok() {
            s.control_ring = Some(n.get_ref().clone());
        } else {
            c.at(
                n.span(),
                format!("control_ring '{}' is not a valid instance name (letters, digits, '-', '_')", n.get_ref()),
            );
        }
    }
    if let Some(p) = &r.crypto {
        let names = esprit_esp::crypto::provider_names();
        if p.get_ref() == "auto" || names.contains(&p.get_ref().as_str()) {
            s.crypto = p.get_ref().clone();
        } else {
            c.at(
                p.span(),
                format!("crypto = '{}' is not available in this build; valid: auto, {}", p.get_ref(), names.join(", ")),
            );
        }
    }
    s
}

fn interfaces(c: &mut Ctx<'_>, raw: &[S<RawInterface>]) -> Vec<InterfaceConfig> {
    let mut out = Vec::new();
    let mut names = HashSet::new();
    for r in raw {
        let r = r.get_ref();
        let name = r.name.get_ref().trim().to_string();
        if name.is_empty() || !name.chars().all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch)) {
            c.at(r.name.span(), format!("interface name '{name}' must be letters, digits, '-', '_' or '.'"));
            continue;
        }
        if !names.insert(name.clone()) {
            c.at(r.name.span(), format!("a second interface named '{name}'"));
        }
        let role = match r.role.get_ref().as_str() {
            "outside" => Some(Role::Outside),
            "inside" => Some(Role::Inside),
            other => {
                c.at(r.role.span(), format!("role '{other}' is not valid; valid: outside, inside"));
                None
            }
        };
        let addrs: Vec<&String> = match r.address.get_ref() {
            OneOrMany::One(a) => vec![a],
            OneOrMany::Many(v) => v.iter().collect(),
        };
        let mut addresses = Vec::new();
        for s in addrs {
            let a = &r.address;
            let s = s.trim();
            match (s.split_once('/'), s.parse::<IpCidr>()) {
                (Some((host, _)), Ok(subnet)) => match host.parse::<IpAddr>() {
                    Ok(addr) if addr != subnet.addr() || subnet.prefix_len() >= 31 => addresses.push(IfAddr { addr, subnet }),
                    _ => c.at(a.span(), format!("address '{s}' is the network address of its subnet; give the interface's own address, like 192.0.2.1/24")),
                },
                _ => c.at(a.span(), format!("address '{s}' must be the interface address with its prefix length, like 192.0.2.1/24 or 2001:db8::1/64")),
            }
        }
        let mac = parse_mac(c, &r.mac);
        let mut mtu = 1500;
        if let Some(m) = &r.mtu {
            let min = if addresses.iter().any(|a| a.addr.is_ipv6()) { 1280 } else { 576 };
            if (min..=9216).contains(m.get_ref()) {
                mtu = *m.get_ref();
            } else {
                c.at(m.span(), format!("mtu = {} is out of range; valid: {min} to 9216", m.get_ref()));
            }
        }
        let driver = match r.driver.as_ref().map(|d| (d, d.get_ref().as_str())) {
            None | Some((_, "af_packet")) => Some(Driver::AfPacket),
            Some((_, "dpdk")) => Some(Driver::Dpdk),
            Some((d, other)) => {
                c.at(d.span(), format!("driver '{other}' is not valid; valid: af_packet, dpdk"));
                None
            }
        };
        let device = r.device.as_ref().map_or_else(|| name.clone(), |d| d.get_ref().clone());
        if let (Some(role), Some(mac), Some(driver)) = (role, mac, driver) {
            out.push(InterfaceConfig { name, role, addresses, mac, mtu, driver, device });
        }
    }
    out
}

/// Selectors matching everything, IPv4 and IPv6: the default when none are given.
fn any_ts() -> Vec<TrafficSelector> {
    [IpAddr::from([0u8; 4]), IpAddr::from([0u8; 16])]
        .into_iter()
        .map(|a| {
            TrafficSelector::from_cidr(IpCidr::new(a, 0).expect("a zero-length prefix is valid for both families"))
        })
        .collect()
}

fn sa(c: &mut Ctx<'_>, r: &RawSa, outside: &[IpAddr]) -> Option<SaConfig> {
    let n0 = c.errors.len();
    let spi = *r.spi.get_ref();
    if !(256..=u32::MAX as i64).contains(&spi) {
        c.at(
            r.spi.span(),
            format!("spi = {spi} is out of range; valid: 256 to 4294967295 (0x100 to 0xffffffff; 1-255 are reserved)"),
        );
    }
    let direction = match r.direction.get_ref().as_str() {
        "in" => Some(Direction::In),
        "out" => Some(Direction::Out),
        other => {
            c.at(r.direction.span(), format!("direction '{other}' is not valid; valid: in, out"));
            None
        }
    };
    let transform = match Transform::from_name(r.proposal.get_ref()) {
        Ok(t) => Some(t),
        Err(e) => {
            c.at(r.proposal.span(), e.to_string());
            None
        }
    };
    let enc = parse_hex(c, "enc_key", &r.enc_key);
    let int = r.int_key.as_ref().and_then(|k| parse_hex(c, "int_key", k));
    if let (Some(t), Some(enc)) = (transform, &enc) {
        if enc.len() != t.enc_key_len() {
            let salt = if t.is_aead() { format!(" ({} key + 4 salt)", t.enc_key_len() - 4) } else { String::new() };
            c.at(
                r.enc_key.span(),
                format!(
                    "enc_key for {t} must be {} bytes{salt} = {} hex digits; got {} bytes",
                    t.enc_key_len(),
                    t.enc_key_len() * 2,
                    enc.len()
                ),
            );
        }
        match (&r.int_key, t.int_key_len()) {
            (Some(k), 0) => c.at(k.span(), format!("{t} is an AEAD and takes no int_key")),
            (None, n) if n > 0 => {
                c.at(r.proposal.span(), format!("{t} needs int_key: {n} bytes = {} hex digits", n * 2))
            }
            (Some(k), n) if int.as_ref().is_some_and(|v| v.len() != n) => c.at(
                k.span(),
                format!(
                    "int_key for {t} must be {n} bytes = {} hex digits; got {} bytes",
                    n * 2,
                    int.as_ref().map_or(0, Vec::len)
                ),
            ),
            _ => {}
        }
    }
    let local = parse_ip(c, "local", &r.local);
    let remote = parse_ip(c, "remote", &r.remote);
    if let Some(l) = local {
        if !outside.contains(&l) {
            let list: Vec<String> = outside.iter().map(|a| a.to_string()).collect();
            c.at(
                r.local.span(),
                format!(
                    "local {l} is not an address of an outside interface; those are: {}",
                    if list.is_empty() { "none".into() } else { list.join(", ") }
                ),
            );
        }
    }
    if let (Some(l), Some(rm)) = (local, remote) {
        if l.is_ipv4() != rm.is_ipv4() {
            c.at(r.remote.span(), format!("remote {rm} and local {l} are of different address families"));
        }
    }
    let port = |c: &mut Ctx<'_>, p: &Option<S<i64>>, name: &str| -> Option<u16> {
        p.as_ref().and_then(|v| match u16::try_from(*v.get_ref()) {
            Ok(x) if x != 0 => Some(x),
            _ => {
                c.at(v.span(), format!("{name} = {} is not a port; valid: 1 to 65535", v.get_ref()));
                None
            }
        })
    };
    let (lp, rp) = (port(c, &r.local_port, "local_port"), port(c, &r.remote_port, "remote_port"));
    let encap = match (&r.local_port, &r.remote_port) {
        (Some(_), Some(_)) => lp.zip(rp).map(|(local_port, remote_port)| UdpEncap { local_port, remote_port }),
        (None, None) => None,
        (Some(p), None) | (None, Some(p)) => {
            c.at(p.span(), "give both local_port and remote_port for UDP encapsulation, or neither for raw ESP");
            None
        }
    };
    let mut replay_window = 64;
    if let Some(w) = &r.replay_window {
        if (0..=esprit_esp::replay::MAX_WINDOW as i64).contains(w.get_ref()) {
            replay_window = *w.get_ref() as u32;
        } else {
            c.at(
                w.span(),
                format!(
                    "replay_window = {} is out of range; valid: 0 (off) to {}",
                    w.get_ref(),
                    esprit_esp::replay::MAX_WINDOW
                ),
            );
        }
    }
    let ts = |c: &mut Ctx<'_>, v: &Option<Vec<S<String>>>, name: &str| -> Vec<TrafficSelector> {
        match v {
            None => any_ts(),
            Some(list) => list.iter().filter_map(|s| parse_cidr(c, name, s)).map(TrafficSelector::from_cidr).collect(),
        }
    };
    let local_ts = ts(c, &r.local_ts, "local_ts");
    let remote_ts = ts(c, &r.remote_ts, "remote_ts");
    let df = match r.df.as_ref().map(|d| (d, d.get_ref().as_str())) {
        None | Some((_, "copy")) => DfMode::Copy,
        Some((_, "set")) => DfMode::Set,
        Some((_, "clear")) => DfMode::Clear,
        Some((d, other)) => {
            c.at(d.span(), format!("df = '{other}' is not valid; valid: copy, set, clear"));
            DfMode::Copy
        }
    };
    if c.errors.len() != n0 {
        return None;
    }
    let (direction, transform, enc, local, remote) = (direction?, transform?, enc?, local?, remote?);
    let keys = match SaKeys::new(transform, &enc, int.as_deref().unwrap_or(&[])) {
        Ok(k) => k,
        Err(e) => {
            c.at(r.enc_key.span(), e.to_string());
            return None;
        }
    };
    let d = Lifetime::default();
    Some(SaConfig {
        direction,
        params: SaParams {
            spi: spi as u32,
            transform,
            keys,
            local,
            remote,
            encap,
            esn: r.esn.unwrap_or(false),
            replay_window,
            local_ts,
            remote_ts,
            df,
            lifetime: Lifetime {
                soft_bytes: r.soft_bytes.unwrap_or(d.soft_bytes),
                hard_bytes: r.hard_bytes.unwrap_or(d.hard_bytes),
                soft_packets: r.soft_packets.unwrap_or(d.soft_packets),
                hard_packets: r.hard_packets.unwrap_or(d.hard_packets),
                soft_secs: r.soft_seconds.unwrap_or(0),
                hard_secs: r.hard_seconds.unwrap_or(0),
                idle_secs: r.idle_seconds.unwrap_or(0),
            },
        },
    })
}
