//! Prometheus metrics: esprit-ike's own (from the endpoint's events and state) and the data
//! plane's (read from its stats segment at scrape time, so the workers never notice).
//!
//! Per-SA series are bounded: at most `sa_limit` SAs get labelled series (configurable in
//! `[ike] metrics_sa_limit`); every SA is in the totals either way.

use std::collections::BTreeMap;

use esprit_ikev2::{CloseReason, Event};
use esprit_ring::StatsReader;
use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

/// What esprit-ike counts as it goes.
pub struct Metrics {
    registry: Registry,
    handshakes: IntCounterVec,
    failures: IntCounterVec,
    latency: HistogramVec,
    rekeys: IntCounterVec,
    dpd_timeouts: IntCounterVec,
    deletes: IntCounterVec,
    children: IntCounterVec,
    nat_changes: IntCounterVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(c.clone())).expect("unique metric");
    c
}

fn close_reason(r: CloseReason) -> &'static str {
    match r {
        CloseReason::PeerDeleted => "peer_deleted",
        CloseReason::Deleted => "deleted",
        CloseReason::Rekeyed => "rekeyed",
        CloseReason::PeerDead => "dpd_timeout",
        CloseReason::Expired => "expired",
        CloseReason::Replaced => "replaced",
        _ => "failed",
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let r = Registry::new();
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "esprit_ike_handshake_duration_seconds",
                "From the first IKE_SA_INIT to the end of IKE_AUTH, for completed handshakes.",
            )
            .buckets(vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            &["connection"],
        )
        .expect("valid histogram");
        r.register(Box::new(latency.clone())).expect("unique metric");
        let m = Metrics {
            handshakes: counter(
                &r,
                "esprit_ike_handshakes_total",
                "IKE SAs established (IKE_AUTH completed).",
                &["connection"],
            ),
            failures: counter(
                &r,
                "esprit_ike_handshake_failures_total",
                "Handshakes that failed, by reason.",
                &["reason"],
            ),
            rekeys: counter(&r, "esprit_ike_rekeys_total", "Completed rekeys, of IKE SAs and CHILD SAs.", &["kind"]),
            dpd_timeouts: counter(&r, "esprit_ike_dpd_timeouts_total", "Peers declared dead by liveness checks.", &[]),
            deletes: counter(&r, "esprit_ike_sa_deletes_total", "IKE SAs gone, by reason.", &["reason"]),
            children: counter(
                &r,
                "esprit_ike_child_sas_installed_total",
                "CHILD SA pairs installed in the data plane.",
                &[],
            ),
            nat_changes: counter(
                &r,
                "esprit_ike_nat_mapping_changes_total",
                "Peers followed to a new NAT mapping.",
                &[],
            ),
            latency,
            registry: r,
        };
        // Every series exists from the start (at 0), so that rates and dashboards work
        // before the first event of each kind.
        for reason in [
            "authentication",
            "timeout",
            "no_proposal_chosen",
            "invalid_ke_payload",
            "internal_address_failure",
            "ts_unacceptable",
            "refused",
        ] {
            m.failures.with_label_values(&[reason]);
        }
        for kind in ["ike", "child"] {
            m.rekeys.with_label_values(&[kind]);
        }
        for r in ["peer_deleted", "deleted", "rekeyed", "dpd_timeout", "expired", "replaced", "failed"] {
            m.deletes.with_label_values(&[r]);
        }
        m.dpd_timeouts.with_label_values::<&str>(&[]);
        m.children.with_label_values::<&str>(&[]);
        m.nat_changes.with_label_values::<&str>(&[]);
        m
    }

    pub fn event(&self, e: &Event) {
        match e {
            Event::IkeEstablished { connection, took, .. } => {
                self.handshakes.with_label_values(&[connection]).inc();
                self.latency.with_label_values(&[connection]).observe(took.as_secs_f64());
            }
            Event::IkeRekeyed { .. } => self.rekeys.with_label_values(&["ike"]).inc(),
            Event::IkeClosed { reason, .. } => {
                let r = close_reason(*reason);
                if r == "failed" {
                    self.failures.with_label_values(&["timeout"]).inc();
                }
                if *reason == CloseReason::PeerDead {
                    self.dpd_timeouts.with_label_values::<&str>(&[]).inc();
                }
                self.deletes.with_label_values(&[r]).inc();
            }
            Event::ChildEstablished { rekey_of, .. } => {
                self.children.with_label_values::<&str>(&[]).inc();
                if rekey_of.is_some() {
                    self.rekeys.with_label_values(&["child"]).inc();
                }
            }
            Event::ChildClosed { .. } | Event::AddressBlocked { .. } => {}
            Event::AuthFailed { .. } => self.failures.with_label_values(&["authentication"]).inc(),
            Event::Refused { notify, .. } => {
                let reason = match *notify {
                    14 => "no_proposal_chosen",
                    17 => "invalid_ke_payload",
                    24 => "authentication",
                    34 => "internal_address_failure",
                    38 => "ts_unacceptable",
                    _ => "refused",
                };
                self.failures.with_label_values(&[reason]).inc();
            }
            Event::NatMappingChanged { .. } => self.nat_changes.with_label_values::<&str>(&[]).inc(),
        }
    }

    /// The exposition: our metrics, `state` (gauges sampled now) and the data plane's.
    pub fn render(&self, state: &State, dp: Option<&StatsReader>, sa_limit: usize) -> String {
        let scrape = Registry::new();
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
            scrape.register(Box::new(g.clone())).expect("unique metric");
            g
        };
        let total = |name: &str, help: &str, labels: &[&str]| counter(&scrape, name, help, labels);
        let sas = gauge("esprit_ike_sas", "IKE SAs by state.", &["state"]);
        for s in ["half-open", "connecting", "authenticating", "established", "rekeyed", "deleting"] {
            sas.with_label_values(&[s]).set(state.ike_states.get(s).copied().unwrap_or(0) as i64);
        }
        gauge("esprit_ike_child_sas", "CHILD SA pairs installed.", &[])
            .with_label_values::<&str>(&[])
            .set(state.child_sas as i64);
        let used = gauge("esprit_ike_pool_addresses_in_use", "Virtual IPs leased, by pool.", &["pool"]);
        let size = gauge("esprit_ike_pool_addresses", "Virtual IPs in each pool.", &["pool"]);
        for (name, u, s) in &state.pools {
            used.with_label_values(&[name]).set(*u as i64);
            size.with_label_values(&[name]).set((*s).min(i64::MAX as u128) as i64);
        }
        let ike =
            total("esprit_ike_datagrams_total", "IKE datagrams, by direction and outcome.", &["direction", "outcome"]);
        for (d, o, v) in &state.datagrams {
            ike.with_label_values(&[d, o]).inc_by(*v);
        }
        gauge("esprit_ike_dataplane_up", "1 while the data plane is attached to the ring.", &[])
            .with_label_values::<&str>(&[])
            .set(i64::from(state.dataplane_alive));
        if let Some(r) = dp {
            dataplane(&scrape, r, sa_limit);
        }
        let mut families = self.registry.gather();
        families.extend(scrape.gather());
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&families, &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Gauges sampled at scrape time.
#[derive(Debug, Default)]
pub struct State {
    pub ike_states: BTreeMap<&'static str, usize>,
    pub child_sas: usize,
    pub pools: Vec<(String, usize, u128)>,
    pub datagrams: Vec<(&'static str, &'static str, u64)>,
    pub dataplane_alive: bool,
}

fn metric_name(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect()
}

/// The data plane's stats segment as Prometheus counters.
fn dataplane(scrape: &Registry, r: &StatsReader, sa_limit: usize) {
    let workers = r.lcores().saturating_sub(1);
    let mut families: BTreeMap<String, IntCounterVec> = BTreeMap::new();
    let mut family = |name: String, help: &str, labels: &[&str]| {
        families
            .entry(name.clone())
            .or_insert_with(|| {
                let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
                scrape.register(Box::new(c.clone())).expect("unique metric");
                c
            })
            .clone()
    };
    for n in r.counter_names() {
        let Some(id) = r.counter(n) else { continue };
        for lcore in 0..workers {
            let v = r.get(lcore, id);
            let lc = lcore.to_string();
            if let Some(rest) = n.strip_prefix("if.") {
                let Some((ifname, what)) = rest.rsplit_once('.') else { continue };
                family(
                    format!("esprit_dataplane_interface_{}_total", metric_name(what)),
                    "Frames and bytes on each interface, per worker lcore.",
                    &["interface", "lcore"],
                )
                .with_label_values(&[ifname, &lc])
                .inc_by(v);
            } else if let Some(reason) = n.strip_prefix("drop.") {
                family(
                    "esprit_dataplane_drops_total".into(),
                    "Packets dropped, by reason, per worker lcore.",
                    &["reason", "lcore"],
                )
                .with_label_values(&[reason, &lc])
                .inc_by(v);
            } else {
                family(
                    format!("esprit_dataplane_{}_total", metric_name(n)),
                    "Data-plane counter, per worker lcore.",
                    &["lcore"],
                )
                .with_label_values(&[&lc])
                .inc_by(v);
            }
        }
    }
    let per_sa = [
        ("esprit_dataplane_sa_packets_total", "Packets through each SA (bounded: metrics_sa_limit)."),
        ("esprit_dataplane_sa_bytes_total", "Bytes through each SA."),
        ("esprit_dataplane_sa_auth_failures_total", "Packets of each SA that failed authentication."),
        ("esprit_dataplane_sa_replay_drops_total", "Replayed or too old packets of each SA."),
    ];
    let names = ["spi", "direction", "packets", "bytes", "auth_failed", "replay_dropped", "path_mtu"];
    let Some(rows) = r.sa_rows(&names) else { return };
    let pmtu = IntGaugeVec::new(
        Opts::new(
            "esprit_dataplane_sa_path_mtu_bytes",
            "Outer path MTU toward an outbound SA's peer, learned from ICMP (only SAs with one).",
        ),
        &["spi", "direction"],
    )
    .expect("valid metric");
    scrape.register(Box::new(pmtu.clone())).expect("unique metric");
    for v in rows.take(sa_limit) {
        let dir = if v[1] == 0 { "in" } else { "out" };
        let spi = format!("{:08x}", v[0]);
        for (i, (name, help)) in per_sa.iter().enumerate() {
            family(name.to_string(), help, &["spi", "direction"]).with_label_values(&[&spi, dir]).inc_by(v[2 + i]);
        }
        if v[6] != 0 {
            pmtu.with_label_values(&[&spi, dir]).set(v[6] as i64);
        }
    }
}
