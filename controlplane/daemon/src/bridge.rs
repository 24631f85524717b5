//! Between the IKE endpoint and the data plane's ring: what the state machine outputs
//! becomes ring messages, what the data plane reports becomes endpoint input, and a mirror
//! of what the data plane holds (pairs and which pair each policy points at) lets a
//! restarted data plane be refilled and keeps a policy from being deleted by a pair that no
//! longer owns it.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;

use esprit_ikev2::{ChildEvent, ChildInstall, Output};
use esprit_ring::message::{
    AddSa, DeleteSa, KeyBytes, Lifetime, Message, Policy, SaDirection, SaEventKind, SetPeer, Transmit, UdpEncap,
};
use esprit_ring::message::{DfMode, Endpoint as RingEndpoint, IpCidr};

pub fn endpoint(a: SocketAddr) -> RingEndpoint {
    RingEndpoint { addr: a.ip(), port: a.port() }
}

pub fn socket(e: RingEndpoint) -> SocketAddr {
    SocketAddr::new(e.addr, e.port)
}

/// What the data plane holds, as the control plane put it there.
#[derive(Debug, Default)]
pub struct Mirror {
    pub pairs: HashMap<u64, ChildInstall>,
    /// (our side, their side) → cookie of the pair the policy points at.
    pub policies: BTreeMap<(IpCidr, IpCidr), u64>,
    /// Pairs whose outbound SA a restarted data plane lost: never installed again (its
    /// sequence numbers were used under these keys); they are being rekeyed.
    pub retired: BTreeSet<u64>,
}

fn add_sa(c: &ChildInstall, dir: SaDirection) -> Message {
    let (spi, keys) = match dir {
        SaDirection::In => (c.spi_in, &c.keys_in),
        SaDirection::Out => (c.spi_out, &c.keys_out),
    };
    Message::AddSa(Box::new(AddSa {
        cookie: c.cookie,
        direction: dir,
        spi,
        transform: c.transform,
        enc_key: KeyBytes::new(&keys.enc),
        int_key: KeyBytes::new(&keys.int),
        local: c.local.ip(),
        remote: c.remote.ip(),
        encap: c.encap.then(|| UdpEncap { local_port: c.local.port(), remote_port: c.remote.port() }),
        esn: c.esn,
        replay_window: if dir == SaDirection::In { c.replay_window } else { 0 },
        local_ts: c.local_ts.clone(),
        remote_ts: c.remote_ts.clone(),
        df: DfMode::Copy,
        lifetime: Lifetime {
            soft_secs: c.soft_secs,
            hard_secs: c.hard_secs,
            // Idleness is what dead peer detection asks about: inbound only.
            idle_secs: if dir == SaDirection::In { c.idle_secs } else { 0 },
            ..Lifetime::default()
        },
        initial_seq: 0,
    }))
}

impl Mirror {
    /// The ring messages for one endpoint output (none for events).
    pub fn translate(&mut self, o: &Output) -> Vec<Message> {
        let mut v = Vec::new();
        match o {
            Output::Send(d) => v.push(Message::Transmit(Transmit {
                src: endpoint(d.local),
                dst: endpoint(d.remote),
                non_esp_marker: d.marker,
                payload: d.data.clone(),
            })),
            Output::Install(c) => {
                // Inbound first: the peer may use the pair as soon as it has the response.
                v.push(add_sa(c, SaDirection::In));
                v.push(add_sa(c, SaDirection::Out));
                if c.route {
                    for &(src, dst) in &c.policies {
                        self.policies.insert((src, dst), c.cookie);
                        v.push(Message::AddPolicy(Policy { src, dst, spi_out: c.spi_out }));
                    }
                }
                self.pairs.insert(c.cookie, (**c).clone());
            }
            Output::Route { cookie, spi_out, policies } => {
                for &(src, dst) in policies {
                    self.policies.insert((src, dst), *cookie);
                    v.push(Message::AddPolicy(Policy { src, dst, spi_out: *spi_out }));
                }
            }
            Output::Remove { cookie, spi_in, spi_out, unroute } => {
                // Only the policies this pair still owns: another pair (a rekey, a client that
                // reconnected with INITIAL_CONTACT) may have taken them over.
                for &(src, dst) in unroute {
                    if self.policies.get(&(src, dst)) == Some(cookie) {
                        self.policies.remove(&(src, dst));
                        v.push(Message::DeletePolicy(Policy { src, dst, spi_out: *spi_out }));
                    }
                }
                // Policies left pointing at this pair would black-hole: drop them too.
                let stale: Vec<_> = self.policies.iter().filter(|(_, c)| *c == cookie).map(|(k, _)| *k).collect();
                for (src, dst) in stale {
                    self.policies.remove(&(src, dst));
                    v.push(Message::DeletePolicy(Policy { src, dst, spi_out: *spi_out }));
                }
                v.push(Message::DeleteSa(DeleteSa { direction: SaDirection::Out, spi: *spi_out }));
                v.push(Message::DeleteSa(DeleteSa { direction: SaDirection::In, spi: *spi_in }));
                self.pairs.remove(cookie);
                self.retired.remove(cookie);
            }
            Output::UpdatePeer { cookie, spi_in, spi_out, remote } => {
                if let Some(p) = self.pairs.get_mut(cookie) {
                    p.remote = *remote;
                }
                v.push(Message::SetPeer(SetPeer { spi_in: *spi_in, spi_out: *spi_out, endpoint: endpoint(*remote) }));
            }
            Output::Event(_) | Output::Decrypted { .. } => {}
        }
        v
    }

    /// Refills a data plane that (re)started empty. Outbound SAs are not re-installed: the
    /// control plane does not know which sequence numbers the old data plane used, and
    /// reusing one would repeat a GCM nonce. Inbound SAs and the policies come back (a
    /// policy without its SA drops, it never sends in clear), and every pair is rekeyed at
    /// once (the caller asks the endpoint); the new pairs replace them within a round trip.
    pub fn refill(&mut self, keepalive: Option<u32>) -> (Vec<Message>, Vec<u64>) {
        let mut v = vec![Message::Flush];
        if let Some(k) = keepalive {
            v.push(Message::SetKeepalive { interval_secs: k });
        }
        let mut cookies: Vec<u64> = self.pairs.keys().copied().collect();
        cookies.sort_unstable();
        self.retired.extend(cookies.iter().copied());
        for c in &cookies {
            v.push(add_sa(&self.pairs[c], SaDirection::In));
        }
        for (&(src, dst), c) in &self.policies {
            if let Some(p) = self.pairs.get(c) {
                v.push(Message::AddPolicy(Policy { src, dst, spi_out: p.spi_out }));
            }
        }
        v.push(Message::SyncDone);
        (v, cookies)
    }

    /// The mirror of what a restored endpoint has installed (`retired`: pairs whose outbound
    /// SA must not come back). A policy claimed by two pairs goes to the newest.
    pub fn rebuild(installed: Vec<ChildInstall>, retired: &BTreeSet<u64>) -> Mirror {
        let mut m = Mirror::default();
        let mut all = installed;
        all.sort_by_key(|c| c.cookie);
        for c in all {
            if c.route {
                for &(src, dst) in &c.policies {
                    m.policies.insert((src, dst), c.cookie);
                }
            }
            if retired.contains(&c.cookie) {
                m.retired.insert(c.cookie);
            }
            m.pairs.insert(c.cookie, c);
        }
        m
    }

    /// Brings a data plane that kept running while esprit-ike restarted in line with the
    /// restored state, without a flush (the SAs it has keep their sequence numbers and replay
    /// windows): the pairs removed just before the crash are deleted (their DeleteSa may not
    /// have left), every pair is added (the data plane refuses those it has, with `Exists`,
    /// and keeps them; one it lacks was never used), every policy is pointed again.
    pub fn reconcile(&self, keepalive: Option<u32>, tombstones: &[(u32, u32)]) -> Vec<Message> {
        let mut v = Vec::new();
        if let Some(k) = keepalive {
            v.push(Message::SetKeepalive { interval_secs: k });
        }
        let live_in: HashSet<u32> = self.pairs.values().map(|p| p.spi_in).collect();
        let live_out: HashSet<u32> = self.pairs.values().map(|p| p.spi_out).collect();
        for &(spi_in, spi_out) in tombstones {
            if !live_out.contains(&spi_out) {
                v.push(Message::DeleteSa(DeleteSa { direction: SaDirection::Out, spi: spi_out }));
            }
            if !live_in.contains(&spi_in) {
                v.push(Message::DeleteSa(DeleteSa { direction: SaDirection::In, spi: spi_in }));
            }
        }
        let mut cookies: Vec<u64> = self.pairs.keys().copied().collect();
        cookies.sort_unstable();
        for c in &cookies {
            v.push(add_sa(&self.pairs[c], SaDirection::In));
            if !self.retired.contains(c) {
                v.push(add_sa(&self.pairs[c], SaDirection::Out));
            }
        }
        for (&(src, dst), c) in &self.policies {
            if let Some(p) = self.pairs.get(c) {
                v.push(Message::AddPolicy(Policy { src, dst, spi_out: p.spi_out }));
            }
        }
        v.push(Message::SyncDone);
        v
    }
}

/// The endpoint's view of a data-plane SA event.
pub fn child_event(kind: SaEventKind) -> ChildEvent {
    match kind {
        SaEventKind::SoftLifetime => ChildEvent::SoftLifetime,
        SaEventKind::HardLifetime => ChildEvent::HardLifetime,
        SaEventKind::SeqNearExhaustion => ChildEvent::SeqNearExhaustion,
        SaEventKind::NatMappingChanged { endpoint } => ChildEvent::NatMappingChanged(socket(endpoint)),
        SaEventKind::Idle { seconds } => ChildEvent::Idle(seconds),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use esprit_ikev2::ChildKeys;
    use zeroize::Zeroizing;

    fn pair(cookie: u64, spi_in: u32, spi_out: u32, route: bool) -> ChildInstall {
        let k = || ChildKeys { enc: Zeroizing::new(vec![7; 20]), int: Zeroizing::new(vec![]) };
        ChildInstall {
            cookie,
            ike_spi: 1,
            connection: "rw".into(),
            transform: esprit_esp::Transform::from_ikev2_ids(20, 128, 0).unwrap(),
            esn: false,
            spi_in,
            spi_out,
            keys_in: k(),
            keys_out: k(),
            local: "198.51.100.1:4500".parse().unwrap(),
            remote: "203.0.113.2:4500".parse().unwrap(),
            encap: true,
            local_ts: vec![],
            remote_ts: vec![],
            policies: vec![("10.1.0.0/16".parse().unwrap(), "10.9.0.1/32".parse().unwrap())],
            route,
            replay_window: 1024,
            soft_secs: 3000,
            hard_secs: 3600,
            idle_secs: 30,
        }
    }

    fn kinds(v: &[Message]) -> Vec<&'static str> {
        v.iter().map(|m| m.kind().name()).collect()
    }

    #[test]
    fn a_policy_is_deleted_only_by_the_pair_that_owns_it() {
        let mut m = Mirror::default();
        let install = m.translate(&Output::Install(Box::new(pair(1, 0x100, 0x200, true))));
        assert_eq!(kinds(&install), ["AddSa", "AddSa", "AddPolicy"]);
        if let Message::AddSa(a) = &install[0] {
            assert_eq!((a.direction, a.spi, a.replay_window, a.lifetime.idle_secs), (SaDirection::In, 0x100, 1024, 30));
            assert_eq!(a.encap, Some(UdpEncap { local_port: 4500, remote_port: 4500 }));
        }
        // A client that reconnected (INITIAL_CONTACT) got the same address on pair 2...
        m.translate(&Output::Install(Box::new(pair(2, 0x101, 0x201, true))));
        // ... then the old pair goes: its SAs, not the policy pair 2 owns now.
        let p = pair(1, 0x100, 0x200, true);
        let rm = m.translate(&Output::Remove { cookie: 1, spi_in: 0x100, spi_out: 0x200, unroute: p.policies.clone() });
        assert_eq!(kinds(&rm), ["DeleteSa", "DeleteSa"]);
        assert_eq!(m.policies.values().copied().collect::<Vec<_>>(), [2]);
        let rm = m.translate(&Output::Remove { cookie: 2, spi_in: 0x101, spi_out: 0x201, unroute: p.policies });
        assert_eq!(kinds(&rm), ["DeletePolicy", "DeleteSa", "DeleteSa"]);
        assert!(m.policies.is_empty() && m.pairs.is_empty());
    }

    #[test]
    fn a_restarted_data_plane_gets_inbound_sas_and_policies_but_no_outbound_sa() {
        let mut m = Mirror::default();
        m.translate(&Output::Install(Box::new(pair(1, 0x100, 0x200, true))));
        m.translate(&Output::Install(Box::new(pair(2, 0x101, 0x201, false))));
        m.translate(&Output::Route { cookie: 2, spi_out: 0x201, policies: pair(2, 0, 0, false).policies });
        let (v, cookies) = m.refill(Some(20));
        assert_eq!(kinds(&v), ["Flush", "SetKeepalive", "AddSa", "AddSa", "AddPolicy", "SyncDone"]);
        assert!(v.iter().all(|x| !matches!(x, Message::AddSa(a) if a.direction == SaDirection::Out)));
        assert!(matches!(&v[4], Message::AddPolicy(p) if p.spi_out == 0x201), "the rekeyed pair owns the route");
        assert_eq!(cookies, [1, 2], "every pair is rekeyed");
        assert_eq!(m.retired.iter().copied().collect::<Vec<_>>(), [1, 2], "their outbound SAs never come back");
    }

    #[test]
    fn a_restarted_control_plane_reconciles_without_a_flush() {
        let mut a = pair(1, 0x100, 0x200, true);
        let b = pair(2, 0x101, 0x201, true);
        a.route = false;
        let m = Mirror::rebuild(vec![b.clone(), a], &[1].into_iter().collect());
        assert_eq!(m.policies.values().copied().collect::<Vec<_>>(), [2], "the routed pair owns the policy");
        let v = m.reconcile(Some(20), &[(0x100, 0x999), (0x555, 0x666)]);
        assert_eq!(
            kinds(&v),
            ["SetKeepalive", "DeleteSa", "DeleteSa", "DeleteSa", "AddSa", "AddSa", "AddSa", "AddPolicy", "SyncDone"]
        );
        assert!(!v.iter().any(|x| matches!(x, Message::Flush)));
        // The tombstone's inbound SPI 0x100 is live again (pair 1): only its outbound goes.
        assert!(matches!(&v[1], Message::DeleteSa(d) if d.direction == SaDirection::Out && d.spi == 0x999));
        // Pair 1 is retired: inbound only; pair 2 both ways.
        let adds: Vec<(SaDirection, u32)> = v
            .iter()
            .filter_map(|x| if let Message::AddSa(a) = x { Some((a.direction, a.spi)) } else { None })
            .collect();
        assert_eq!(adds, [(SaDirection::In, 0x100), (SaDirection::In, 0x101), (SaDirection::Out, 0x201)]);
    }
}
