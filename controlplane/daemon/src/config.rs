//! esprit-ike's configuration: one TOML file, validated up front. Every error names the line
//! and column and what would be valid; all errors are reported at once.
//!
//! The file may be the one esprit-dataplane reads too: the data plane's sections
//! (`[dataplane]`, `[[interface]]`, `[[neighbor]]`, `[[route]]`, `[[sa]]`, `[[policy]]`) are
//! skipped here, as esprit-ike's (`[ike]`, `[[pool]]`, `[[connection]]`) are there.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use esprit_ikev2::config::{Connection, IkeConfig, Lifetimes, LocalAuth, RemoteAuth, Retransmit};
use esprit_ikev2::identity::{parse_identity, IdentityPattern};
use esprit_ikev2::pki::{Certificate, PrivateKey, TrustStore};
use esprit_ikev2::pool::Pool;
use esprit_ikev2::proposal::{EspProposal, IkeProposal};
use esprit_ikev2::ts;
use esprit_wire::IpCidr;
use serde::Deserialize;
use toml::Spanned;
use zeroize::Zeroizing;

/// One configuration error, with its position.
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

/// Every error of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
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

impl std::error::Error for ConfigErrors {}

/// Where the daemon's own files and endpoints are.
#[derive(Debug, Clone, PartialEq)]
pub struct Daemon {
    /// The data plane's control-ring instance (`control_ring` of its configuration).
    pub ring: String,
    /// espritctl's socket.
    pub ctl_socket: PathBuf,
    /// Prometheus `/metrics` listener (none: not served).
    pub metrics: Option<SocketAddr>,
    /// NAT keepalive interval to give the data plane (none: the data plane's own setting).
    pub keepalive: Option<u32>,
    /// At most this many SAs get their own labelled series in /metrics.
    pub metrics_sa_limit: usize,
}

/// Everything in the file.
#[derive(Debug, Clone)]
pub struct Config {
    pub daemon: Daemon,
    pub ike: Arc<IkeConfig>,
}

pub const DEFAULT_CTL_SOCKET: &str = "/run/esprit/esprit-ike.sock";

// ---- as written

type S<T> = Spanned<T>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    ike: Option<S<RawIke>>,
    #[serde(default)]
    pool: Vec<S<RawPool>>,
    #[serde(default)]
    connection: Vec<S<RawConnection>>,
    // The data plane's sections (the same file may configure both processes).
    #[serde(default)]
    dataplane: Option<toml::Value>,
    #[serde(default)]
    interface: Option<toml::Value>,
    #[serde(default)]
    neighbor: Option<toml::Value>,
    #[serde(default)]
    route: Option<toml::Value>,
    #[serde(default)]
    sa: Option<toml::Value>,
    #[serde(default)]
    policy: Option<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIke {
    ring: Option<S<String>>,
    ctl_socket: Option<S<String>>,
    metrics: Option<S<String>>,
    metrics_sa_limit: Option<S<i64>>,
    fragment_size: Option<S<i64>>,
    cookie_threshold: Option<S<i64>>,
    max_ike_sas: Option<S<i64>>,
    half_open_timeout: Option<S<f64>>,
    auth_failure_limit: Option<S<i64>>,
    auth_failure_window: Option<S<f64>>,
    keepalive_interval: Option<S<i64>>,
    retransmit: Option<S<RawRetransmit>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetransmit {
    timeout: Option<S<f64>>,
    base: Option<S<f64>>,
    tries: Option<S<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPool {
    name: S<String>,
    addrs: S<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConnection {
    name: S<String>,
    #[serde(default)]
    local_addrs: Vec<S<String>>,
    ike_proposals: Option<Vec<S<String>>>,
    esp_proposals: Option<Vec<S<String>>>,
    local_id: Option<S<String>>,
    local_auth: S<String>,
    psk: Option<S<String>>,
    key: Option<S<String>>,
    #[serde(default)]
    certs: Vec<S<String>>,
    remote_id: Option<S<String>>,
    remote_auth: S<String>,
    #[serde(default)]
    cacerts: Vec<S<String>>,
    #[serde(default)]
    local_ts: Vec<S<String>>,
    #[serde(default)]
    remote_ts: Vec<S<String>>,
    #[serde(default)]
    pools: Vec<S<String>>,
    #[serde(default)]
    dns: Vec<S<String>>,
    ike_rekey: Option<S<f64>>,
    ike_lifetime: Option<S<f64>>,
    child_rekey: Option<S<f64>>,
    child_lifetime: Option<S<f64>>,
    rand_time: Option<S<f64>>,
    dpd_delay: Option<S<f64>>,
    fragmentation: Option<bool>,
    keepalive_interval: Option<S<i64>>,
    replay_window: Option<S<i64>>,
}

struct Ctx<'a> {
    file: &'a str,
    src: &'a str,
    dir: PathBuf,
    errors: Vec<ConfigError>,
}

fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let before = &src[..offset.min(src.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map_or(before.len(), |nl| before.len() - nl - 1) + 1;
    (line, column)
}

impl Ctx<'_> {
    fn at(&mut self, span: Range<usize>, message: impl Into<String>) {
        let (line, column) = line_col(self.src, span.start);
        self.errors.push(ConfigError { file: self.file.to_string(), line, column, message: message.into() });
    }

    /// A path relative to the configuration file's directory.
    fn path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_owned()
        } else {
            self.dir.join(p)
        }
    }

    fn seconds(&mut self, what: &str, v: &S<f64>, min: f64, max: f64) -> Option<Duration> {
        let x = *v.get_ref();
        if !(min..=max).contains(&x) || !x.is_finite() {
            self.at(v.span(), format!("{what} = {x}: seconds from {min} to {max}"));
            return None;
        }
        Some(Duration::from_secs_f64(x))
    }

    fn int(&mut self, what: &str, v: &S<i64>, min: i64, max: i64) -> Option<i64> {
        let x = *v.get_ref();
        if !(min..=max).contains(&x) {
            self.at(v.span(), format!("{what} = {x}: from {min} to {max}"));
            return None;
        }
        Some(x)
    }
}

/// Reads and validates the file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let name = path.display().to_string();
    let src = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError { file: name.clone(), line: 0, column: 0, message: format!("cannot read: {e}") }])
    })?;
    let dir = path.parent().map(Path::to_owned).unwrap_or_default();
    parse(&name, &src, &dir)
}

/// Parses and validates `src`, read from `file` in directory `dir` (relative paths of keys
/// and certificates are relative to it).
pub fn parse(file: &str, src: &str, dir: &Path) -> Result<Config, ConfigErrors> {
    let mut c = Ctx { file, src, dir: dir.to_owned(), errors: Vec::new() };
    let raw: Raw = match toml::from_str(src) {
        Ok(r) => r,
        Err(e) => {
            c.at(e.span().unwrap_or(0..0), e.message().trim().to_string());
            return Err(ConfigErrors(c.errors));
        }
    };
    let _ = (&raw.dataplane, &raw.interface, &raw.neighbor, &raw.route, &raw.sa, &raw.policy);
    let mut ike = IkeConfig::default();
    let mut daemon = Daemon {
        ring: "default".into(),
        ctl_socket: DEFAULT_CTL_SOCKET.into(),
        metrics: None,
        keepalive: None,
        metrics_sa_limit: 256,
    };
    if let Some(r) = &raw.ike {
        settings(&mut c, r.get_ref(), &mut ike, &mut daemon);
    }
    // Pools.
    let mut pool_names: Vec<String> = Vec::new();
    for p in &raw.pool {
        let p = p.get_ref();
        let name = p.name.get_ref().trim().to_string();
        if name.is_empty() || pool_names.contains(&name) {
            c.at(p.name.span(), format!("pool name '{name}' must be non-empty and unique"));
            continue;
        }
        if let Err(e) = Pool::new(&name, p.addrs.get_ref()) {
            c.at(p.addrs.span(), format!("{e}; write a prefix like 10.9.0.0/24 or a range like 10.9.0.10-10.9.0.99"));
            continue;
        }
        pool_names.push(name.clone());
        ike.pools.push((name, p.addrs.get_ref().trim().to_string()));
    }
    if raw.connection.is_empty() {
        c.at(0..0, "no [[connection]]: nothing to accept");
    }
    let mut names = Vec::new();
    for rc in &raw.connection {
        let (conn, keepalive) = connection(&mut c, rc.get_ref(), &pool_names);
        if let Some(k) = keepalive {
            daemon.keepalive = Some(daemon.keepalive.map_or(k, |d| d.min(k)));
        }
        let Some(conn) = conn else { continue };
        if names.contains(&conn.name) {
            c.at(rc.get_ref().name.span(), format!("connection name '{}' is used twice", conn.name));
            continue;
        }
        names.push(conn.name.clone());
        ike.connections.push(conn);
    }
    if c.errors.is_empty() {
        Ok(Config { daemon, ike: Arc::new(ike) })
    } else {
        Err(ConfigErrors(c.errors))
    }
}

fn settings(c: &mut Ctx<'_>, r: &RawIke, ike: &mut IkeConfig, d: &mut Daemon) {
    if let Some(v) = &r.ring {
        if esprit_ring::region::shm_path(v.get_ref()).is_err() {
            c.at(v.span(), format!("ring '{}': letters, digits, '-' and '_' only", v.get_ref()));
        } else {
            d.ring = v.get_ref().clone();
        }
    }
    if let Some(v) = &r.ctl_socket {
        d.ctl_socket = c.path(v.get_ref());
    }
    if let Some(v) = &r.metrics {
        match v.get_ref().parse::<SocketAddr>() {
            Ok(a) => d.metrics = Some(a),
            Err(_) => c.at(v.span(), format!("metrics '{}': an address and port like 127.0.0.1:9477", v.get_ref())),
        }
    }
    if let Some(v) = &r.metrics_sa_limit {
        if let Some(x) = c.int("metrics_sa_limit", v, 0, 100_000) {
            d.metrics_sa_limit = x as usize;
        }
    }
    if let Some(v) = &r.fragment_size {
        if let Some(x) = c.int("fragment_size", v, 576, 65_000) {
            ike.fragment_size = x as usize;
        }
    }
    if let Some(v) = &r.cookie_threshold {
        if let Some(x) = c.int("cookie_threshold", v, 0, 10_000_000) {
            ike.cookie_threshold = x as usize;
        }
    }
    if let Some(v) = &r.max_ike_sas {
        if let Some(x) = c.int("max_ike_sas", v, 1, 100_000_000) {
            ike.max_ike_sas = x as usize;
        }
    }
    if let Some(v) = &r.half_open_timeout {
        if let Some(x) = c.seconds("half_open_timeout", v, 1.0, 3600.0) {
            ike.half_open_timeout = x;
        }
    }
    if let Some(v) = &r.auth_failure_limit {
        if let Some(x) = c.int("auth_failure_limit", v, 0, 1_000_000) {
            ike.auth_failure_limit = x as u32;
        }
    }
    if let Some(v) = &r.auth_failure_window {
        if let Some(x) = c.seconds("auth_failure_window", v, 1.0, 86_400.0) {
            ike.auth_failure_window = x;
        }
    }
    if let Some(v) = &r.keepalive_interval {
        if let Some(x) = c.int("keepalive_interval", v, 0, 3600) {
            d.keepalive = Some(x as u32);
        }
    }
    if let Some(rt) = &r.retransmit {
        let rt = rt.get_ref();
        let mut t = Retransmit::default();
        if let Some(v) = &rt.timeout {
            if let Some(x) = c.seconds("retransmit.timeout", v, 0.1, 600.0) {
                t.timeout = x;
            }
        }
        if let Some(v) = &rt.base {
            if !(1.0..=10.0).contains(v.get_ref()) {
                c.at(v.span(), format!("retransmit.base = {}: from 1.0 to 10.0", v.get_ref()));
            } else {
                t.base = *v.get_ref();
            }
        }
        if let Some(v) = &rt.tries {
            if let Some(x) = c.int("retransmit.tries", v, 0, 20) {
                t.tries = x as u32;
            }
        }
        ike.retransmit = t;
    }
}

fn secret_file_ok(c: &mut Ctx<'_>, span: Range<usize>, path: &Path) -> bool {
    match std::fs::metadata(path) {
        Ok(m) if m.permissions().mode() & 0o077 != 0 => {
            c.at(
                span,
                format!(
                    "private key {} is readable by others (mode {:o}); chmod 600 it",
                    path.display(),
                    m.permissions().mode() & 0o777
                ),
            );
            false
        }
        Ok(_) => true,
        Err(e) => {
            c.at(span, format!("private key {}: {e}", path.display()));
            false
        }
    }
}

fn connection(c: &mut Ctx<'_>, r: &RawConnection, pool_names: &[String]) -> (Option<Connection>, Option<u32>) {
    let errors_before = c.errors.len();
    let name = r.name.get_ref().trim().to_string();
    if name.is_empty() {
        c.at(r.name.span(), "connection name must not be empty");
    }
    let local_addrs: Vec<IpAddr> = r
        .local_addrs
        .iter()
        .filter_map(|a| match a.get_ref().trim().parse() {
            Ok(ip) => Some(ip),
            Err(_) => {
                c.at(a.span(), format!("local_addrs: '{}' is not an IPv4 or IPv6 address", a.get_ref()));
                None
            }
        })
        .collect();
    let mut ike_proposals = Vec::new();
    match &r.ike_proposals {
        None => ike_proposals.extend(
            IkeProposal::parse("aes128gcm16-aes256gcm16-prfsha256-prfsha384-x25519-ecp256-modp2048")
                .unwrap_or_default(),
        ),
        Some(v) => {
            for p in v {
                match IkeProposal::parse(p.get_ref()) {
                    Ok(x) => ike_proposals.extend(x),
                    Err(e) => c.at(
                        p.span(),
                        format!(
                            "ike_proposals: {e} (write them as strongSwan does, like aes128gcm16-prfsha256-x25519)"
                        ),
                    ),
                }
            }
        }
    }
    let mut esp_proposals = Vec::new();
    match &r.esp_proposals {
        None => esp_proposals.extend(["aes128gcm16", "aes256gcm16"].iter().filter_map(|s| EspProposal::parse(s).ok())),
        Some(v) => {
            for p in v {
                match EspProposal::parse(p.get_ref()) {
                    Ok(x) => esp_proposals.push(x),
                    Err(e) => c.at(p.span(), format!("esp_proposals: {e} (like aes128gcm16 or aes128-sha1)")),
                }
            }
        }
    }
    // Authentication (one PSK serves both directions: parsed once, reported once).
    let shared_psk = match (&r.psk, r.local_auth.get_ref() == "psk" || r.remote_auth.get_ref() == "psk") {
        (Some(p), true) => psk(c, p),
        _ => None,
    };
    let mut local_auth = None;
    let mut local_cert_id = None;
    match r.local_auth.get_ref().as_str() {
        "psk" => match &r.psk {
            Some(_) => local_auth = shared_psk.clone().map(LocalAuth::Psk),
            None => c.at(r.local_auth.span(), "local_auth = \"psk\" needs psk = \"...\""),
        },
        "pubkey" => {
            let key = match &r.key {
                None => {
                    c.at(
                        r.local_auth.span(),
                        "local_auth = \"pubkey\" needs key = \"FILE.pem\" and certs = [\"FILE.pem\"]",
                    );
                    None
                }
                Some(k) => {
                    let path = c.path(k.get_ref());
                    if secret_file_ok(c, k.span(), &path) {
                        match PrivateKey::load(&path) {
                            Ok(key) => Some(key),
                            Err(e) => {
                                c.at(k.span(), format!("key {}: {e}", path.display()));
                                None
                            }
                        }
                    } else {
                        None
                    }
                }
            };
            let mut certs = Vec::new();
            for f in &r.certs {
                let path = c.path(f.get_ref());
                match Certificate::load(&path) {
                    Ok(v) if !v.is_empty() => certs.extend(v),
                    Ok(_) => c.at(f.span(), format!("certs: {} holds no certificate", path.display())),
                    Err(e) => c.at(f.span(), format!("certs: {}: {e}", path.display())),
                }
            }
            if r.certs.is_empty() && r.key.is_some() {
                c.at(
                    r.local_auth.span(),
                    "local_auth = \"pubkey\" needs certs = [\"FILE.pem\"] (ours first, then intermediates)",
                );
            }
            if let (Some(key), Some(first)) = (key, certs.first()) {
                if !key.matches_certificate(first) {
                    c.at(r.certs[0].span(), "the first certificate in certs is not the one of key");
                } else {
                    local_cert_id = Some(first.subject_id());
                    local_auth = Some(LocalAuth::Pubkey { key: Arc::new(key), certs });
                }
            }
        }
        other => c.at(r.local_auth.span(), format!("local_auth = \"{other}\": \"psk\" or \"pubkey\"")),
    }
    let mut remote_auth = None;
    match r.remote_auth.get_ref().as_str() {
        "psk" => match &r.psk {
            Some(_) => remote_auth = shared_psk.clone().map(RemoteAuth::Psk),
            None => c.at(r.remote_auth.span(), "remote_auth = \"psk\" needs psk = \"...\""),
        },
        "pubkey" => {
            let mut cas = Vec::new();
            for f in &r.cacerts {
                let path = c.path(f.get_ref());
                match Certificate::load(&path) {
                    Ok(v) if !v.is_empty() => cas.extend(v),
                    Ok(_) => c.at(f.span(), format!("cacerts: {} holds no certificate", path.display())),
                    Err(e) => c.at(f.span(), format!("cacerts: {}: {e}", path.display())),
                }
            }
            if r.cacerts.is_empty() {
                c.at(
                    r.remote_auth.span(),
                    "remote_auth = \"pubkey\" needs cacerts = [\"CA.pem\"]: the CAs that sign clients",
                );
            }
            remote_auth = Some(RemoteAuth::Pubkey(Arc::new(TrustStore::new(cas))));
        }
        other => c.at(r.remote_auth.span(), format!("remote_auth = \"{other}\": \"psk\" or \"pubkey\"")),
    }
    let local_id = match &r.local_id {
        Some(v) => match parse_identity(v.get_ref()) {
            Ok(id) => Some(id),
            Err(e) => {
                c.at(
                    v.span(),
                    format!("local_id: {e} (an FQDN like vpn.example.com, an email, an IP address or a DN)"),
                );
                None
            }
        },
        None => local_cert_id.or_else(|| local_addrs.first().and_then(|a| parse_identity(&a.to_string()).ok())),
    };
    if local_id.is_none() && r.local_id.is_none() {
        c.at(r.name.span(), "local_id is needed (no certificate and no local_addrs to take it from)");
    }
    let remote_id = match &r.remote_id {
        None => IdentityPattern::parse("%any").ok(),
        Some(v) => match IdentityPattern::parse(v.get_ref()) {
            Ok(p) => Some(p),
            Err(e) => {
                c.at(v.span(), format!("remote_id: {e} (%any, an identity, or a pattern like *@example.com)"));
                None
            }
        },
    };
    let cidrs = |c: &mut Ctx<'_>, what: &str, v: &[S<String>]| -> Vec<IpCidr> {
        v.iter()
            .filter_map(|s| match s.get_ref().trim().parse::<IpCidr>() {
                Ok(x) => Some(x),
                Err(_) => {
                    c.at(s.span(), format!("{what}: '{}' is not a prefix like 10.1.0.0/16", s.get_ref()));
                    None
                }
            })
            .collect()
    };
    let local_ts: Vec<_> = cidrs(c, "local_ts", &r.local_ts).into_iter().map(ts::from_cidr).collect();
    let remote_ts: Vec<_> = cidrs(c, "remote_ts", &r.remote_ts).into_iter().map(ts::from_cidr).collect();
    if local_ts.is_empty() {
        c.at(r.name.span(), "local_ts is needed: the protected networks behind the gateway, like [\"10.1.0.0/16\"]");
    }
    let mut pools = Vec::new();
    for p in &r.pools {
        match pool_names.iter().position(|n| n == p.get_ref().trim()) {
            Some(i) => pools.push(i),
            None => c.at(
                p.span(),
                format!("pools: no [[pool]] named '{}' (there are: {})", p.get_ref(), pool_names.join(", ")),
            ),
        }
    }
    let dns: Vec<IpAddr> = r
        .dns
        .iter()
        .filter_map(|a| match a.get_ref().trim().parse() {
            Ok(ip) => Some(ip),
            Err(_) => {
                c.at(a.span(), format!("dns: '{}' is not an IP address", a.get_ref()));
                None
            }
        })
        .collect();
    let day = 86_400.0 * 365.0;
    let mut ike_lifetime = Lifetimes::IKE_DEFAULT;
    let mut child_lifetime = Lifetimes::CHILD_DEFAULT;
    if let Some(v) = &r.ike_rekey {
        if let Some(d) = c.seconds("ike_rekey", v, 0.0, day) {
            ike_lifetime.rekey = d;
            ike_lifetime.hard = d + d / 10;
            ike_lifetime.jitter = d / 10;
        }
    }
    if let Some(v) = &r.ike_lifetime {
        if let Some(d) = c.seconds("ike_lifetime", v, 0.0, day) {
            ike_lifetime.hard = d;
        }
    }
    if let Some(v) = &r.child_rekey {
        if let Some(d) = c.seconds("child_rekey", v, 0.0, day) {
            child_lifetime.rekey = d;
            child_lifetime.hard = d + d / 10;
            child_lifetime.jitter = d / 10;
        }
    }
    if let Some(v) = &r.child_lifetime {
        if let Some(d) = c.seconds("child_lifetime", v, 0.0, day) {
            child_lifetime.hard = d;
        }
    }
    if let Some(v) = &r.rand_time {
        if let Some(d) = c.seconds("rand_time", v, 0.0, day) {
            ike_lifetime.jitter = d;
            child_lifetime.jitter = d;
        }
    }
    for (what, lt, span) in [
        ("ike", ike_lifetime, r.ike_lifetime.as_ref().or(r.ike_rekey.as_ref()).map(|s| s.span())),
        ("child", child_lifetime, r.child_lifetime.as_ref().or(r.child_rekey.as_ref()).map(|s| s.span())),
    ] {
        if !lt.hard.is_zero() && !lt.rekey.is_zero() && lt.hard <= lt.rekey {
            c.at(span.unwrap_or(r.name.span()), format!("{what}_lifetime must be longer than {what}_rekey"));
        }
    }
    let dpd_delay = match &r.dpd_delay {
        Some(v) => c.seconds("dpd_delay", v, 0.0, 86_400.0).unwrap_or_default(),
        None => Duration::from_secs(30),
    };
    let keepalive =
        r.keepalive_interval.as_ref().and_then(|v| c.int("keepalive_interval", v, 0, 3600)).map(|x| x as u32);
    let replay_window = match &r.replay_window {
        Some(v) => c.int("replay_window", v, 0, 4096).unwrap_or(1024) as u32,
        None => 1024,
    };
    if c.errors.len() != errors_before {
        return (None, keepalive);
    }
    let (Some(local_id), Some(local_auth), Some(remote_id), Some(remote_auth)) =
        (local_id, local_auth, remote_id, remote_auth)
    else {
        return (None, keepalive);
    };
    let conn = Connection {
        name,
        local_addrs,
        ike_proposals,
        esp_proposals,
        local_id,
        local_auth,
        remote_id,
        remote_auth,
        local_ts,
        remote_ts,
        pools,
        dns,
        ike_lifetime,
        child_lifetime,
        dpd_delay,
        fragmentation: r.fragmentation.unwrap_or(true),
        replay_window,
    };
    (Some(conn), keepalive)
}

/// A PSK as written: text, or hex after `0x` (as strongSwan's secrets take it).
fn psk(c: &mut Ctx<'_>, p: &S<String>) -> Option<Arc<Zeroizing<Vec<u8>>>> {
    let s = p.get_ref();
    let bytes = match s.strip_prefix("0x") {
        Some(h) => match hex::decode(h) {
            Ok(b) => b,
            Err(_) => {
                c.at(p.span(), "psk starting with 0x must be hexadecimal");
                return None;
            }
        },
        None => s.as_bytes().to_vec(),
    };
    if bytes.len() < 16 {
        c.at(
            p.span(),
            format!("psk is {} bytes: use at least 16 (a PSK is only as strong as it is long)", bytes.len()),
        );
        return None;
    }
    Some(Arc::new(Zeroizing::new(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[dataplane]
workers = 2

[[interface]]
name = "outside"

[ike]
ring = "lab1"
ctl_socket = "ctl.sock"
metrics = "127.0.0.1:9477"

[ike.retransmit]
timeout = 2.0
tries = 3

[[pool]]
name = "rw4"
addrs = "10.9.0.0/24"

[[connection]]
name = "rw"
local_addrs = ["198.51.100.1"]
local_id = "vpn.example.com"
local_auth = "psk"
psk = "0123456789abcdef0123"
remote_id = "*@example.com"
remote_auth = "psk"
local_ts = ["10.1.0.0/16"]
pools = ["rw4"]
child_rekey = 600
dpd_delay = 10
keepalive_interval = 15
"#;

    #[test]
    fn a_good_file_shared_with_the_data_plane() {
        let c = parse("gw.toml", GOOD, Path::new("/etc/esprit")).unwrap();
        assert_eq!(c.daemon.ring, "lab1");
        assert_eq!(c.daemon.ctl_socket, PathBuf::from("/etc/esprit/ctl.sock"), "relative to the file");
        assert_eq!(c.daemon.metrics, Some("127.0.0.1:9477".parse().unwrap()));
        assert_eq!(c.daemon.keepalive, Some(15));
        assert_eq!(c.ike.retransmit.tries, 3);
        let conn = &c.ike.connections[0];
        assert_eq!(conn.pools, vec![0]);
        assert_eq!(conn.child_lifetime.rekey, Duration::from_secs(600));
        assert!(conn.child_lifetime.hard > conn.child_lifetime.rekey);
        assert_eq!(conn.dpd_delay, Duration::from_secs(10));
        assert_eq!(conn.ike_lifetime, Lifetimes::IKE_DEFAULT, "seed 004: IKE SA one day");
        assert!(!conn.ike_proposals.is_empty() && !conn.esp_proposals.is_empty(), "default proposals");
    }

    #[test]
    fn every_error_is_reported_with_its_line() {
        let bad = GOOD
            .replace("addrs = \"10.9.0.0/24\"", "addrs = \"10.9.0.0/33\"")
            .replace("psk = \"0123456789abcdef0123\"", "psk = \"short\"")
            .replace("local_ts = [\"10.1.0.0/16\"]", "local_ts = [\"10.1.0.0/16\", \"nonsense\"]")
            .replace("pools = [\"rw4\"]", "pools = [\"rw6\"]");
        let e = parse("gw.toml", &bad, Path::new(".")).unwrap_err();
        let text = e.to_string();
        let line_of = |needle: &str| bad.lines().position(|l| l.contains(needle)).unwrap() + 1;
        assert!(text.contains(&format!("gw.toml:{}:9: pool 'rw4'", line_of("/33"))), "{text}");
        assert!(text.contains("psk is 5 bytes"), "{text}");
        assert!(text.contains("'nonsense' is not a prefix"), "{text}");
        assert!(text.contains("no [[pool]] named 'rw6'"), "{text}");
        assert!(text.contains(&format!("gw.toml:{}:7: psk", line_of("psk = \"short\""))), "{text}");
        assert_eq!(text.matches("psk is").count(), 1, "{text}");
    }

    #[test]
    fn unknown_keys_and_bad_types_are_refused() {
        let e = parse("x.toml", &GOOD.replace("dpd_delay = 10", "dpd_dealy = 10"), Path::new(".")).unwrap_err();
        assert!(e.to_string().contains("dpd_dealy"), "{e}");
        let e = parse("x.toml", &GOOD.replace("tries = 3", "tries = \"three\""), Path::new(".")).unwrap_err();
        assert!(e.0[0].line > 0, "{e}");
        let e = parse("x.toml", "[ike]\n", Path::new(".")).unwrap_err();
        assert!(e.to_string().contains("no [[connection]]"), "{e}");
        let e =
            parse("x.toml", &GOOD.replace("local_auth = \"psk\"", "local_auth = \"eap\""), Path::new(".")).unwrap_err();
        assert!(e.to_string().contains("\"psk\" or \"pubkey\""), "{e}");
    }

    #[test]
    fn private_keys_readable_by_others_are_refused() {
        let dir = std::env::temp_dir().join(format!("esprit-ike-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("gw.key");
        std::fs::write(&key, "not a key").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let src =
            GOOD.replace("local_auth = \"psk\"", "local_auth = \"pubkey\"\nkey = \"gw.key\"\ncerts = [\"gw.pem\"]");
        let e = parse("x.toml", &src, &dir).unwrap_err().to_string();
        assert!(e.contains("readable by others (mode 644)"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
