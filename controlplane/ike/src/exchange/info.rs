//! INFORMATIONAL (RFC 7296 §1.4): deleting CHILD SAs and the IKE SA, and liveness checks
//! (§2.4, dead peer detection). Simultaneous deletes (§2.25.1) end with both pairs gone.
//!
//! ```text
//! HDR, SK{[D(ESP, SPIs…)]}   -->        (empty: a liveness check)
//!                            <--  HDR, SK{[D(ESP, our SPIs of the same pairs)]}
//! ```

use crate::message::{Delete, ExchangeType, Payload, ProtocolId};
use crate::sa::{ChildState, CloseReason, Ctx, Effect, IkeSa, SaState, Task};

/// Responder: an INFORMATIONAL request.
pub(crate) fn on_request(sa: &mut IkeSa, ctx: &mut Ctx<'_>, id: u32, pl: &[Payload]) -> Vec<Effect> {
    let mut reply_spis: Vec<Vec<u8>> = Vec::new();
    let mut delete_ike = false;
    for p in pl {
        let Payload::Delete(d) = p else { continue };
        if d.protocol == ProtocolId::IKE {
            delete_ike = true;
            continue;
        }
        if d.protocol != ProtocolId::ESP {
            continue;
        }
        for spi in &d.spis {
            let Ok(spi) = <[u8; 4]>::try_from(spi.as_slice()).map(u32::from_be_bytes) else { continue };
            // The peer names its inbound SA: our outbound.
            let Some(c) = sa.children.iter().find(|c| c.spi_out == spi).cloned() else { continue };
            // §2.25.1: if we are deleting it too, it goes without mention in our answer.
            if c.state != ChildState::Deleting {
                reply_spis.push(c.spi_in.to_be_bytes().to_vec());
            }
            if let ChildState::Rekeyed { by } = c.state {
                // The peer completed a rekey we answered: the new pair takes the traffic.
                sa.route_child(ctx, by);
            }
            sa.remove_child(ctx, c.cookie, CloseReason::PeerDeleted);
        }
    }
    if delete_ike {
        sa.send_response(ctx, ExchangeType::INFORMATIONAL, id, &[]);
        if let Some(c) = sa.rekey_collision.take().filter(|_| !matches!(sa.state, SaState::Rekeyed)) {
            // Both sides rekeyed at once and our exchange is still undecided (its answer
            // was lost): the peer finished its own and deletes this old SA, so its new SA
            // (which we answered) is the survivor and takes the children (§2.8.2).
            sa.state = SaState::Rekeyed;
            ctx.event(crate::sa::Event::IkeRekeyed { old: sa.spi, new: c.theirs });
            ctx.event(crate::sa::Event::IkeClosed { spi: sa.spi, reason: CloseReason::Rekeyed });
            return vec![Effect::MoveTo(c.theirs), Effect::Gone(sa.spi)];
        }
        if !matches!(sa.state, SaState::Rekeyed) {
            sa.teardown(ctx, CloseReason::PeerDeleted);
        } else {
            ctx.event(crate::sa::Event::IkeClosed { spi: sa.spi, reason: CloseReason::Rekeyed });
        }
        return vec![Effect::Gone(sa.spi)];
    }
    let reply = if reply_spis.is_empty() {
        Vec::new()
    } else {
        vec![Payload::Delete(Delete { protocol: ProtocolId::ESP, spis: reply_spis })]
    };
    sa.send_response(ctx, ExchangeType::INFORMATIONAL, id, &reply);
    Vec::new()
}

/// Initiator: deletes CHILD SAs (the request window is free).
pub(crate) fn start_delete_children(sa: &mut IkeSa, ctx: &mut Ctx<'_>, cookies: Vec<u64>) {
    let mut spis = Vec::new();
    let mut doomed = Vec::new();
    for c in &cookies {
        if let Some(ch) = sa.child_mut(*c) {
            ch.state = ChildState::Deleting;
            spis.push(ch.spi_in.to_be_bytes().to_vec());
            doomed.push(*c);
        }
    }
    if spis.is_empty() {
        return;
    }
    let pl = [Payload::Delete(Delete { protocol: ProtocolId::ESP, spis })];
    sa.send_request(ctx, ExchangeType::INFORMATIONAL, &pl, Task::DeleteChildren(doomed));
}

/// Initiator: the answer to our Delete of CHILD SAs.
pub(crate) fn on_delete_children_response(sa: &mut IkeSa, ctx: &mut Ctx<'_>, cookies: Vec<u64>) {
    for c in cookies {
        if let Some(ChildState::Rekeyed { by }) = sa.child(c).map(|x| x.state) {
            let _ = by;
        }
        sa.remove_child(ctx, c, CloseReason::Deleted);
    }
}

/// Initiator: deletes the IKE SA (the request window is free).
pub(crate) fn start_delete_ike(sa: &mut IkeSa, ctx: &mut Ctx<'_>) {
    sa.state = SaState::Deleting;
    let pl = [Payload::Delete(Delete { protocol: ProtocolId::IKE, spis: vec![] })];
    sa.send_request(ctx, ExchangeType::INFORMATIONAL, &pl, Task::DeleteIke);
}

/// Initiator: a liveness check.
pub(crate) fn start_dpd(sa: &mut IkeSa, ctx: &mut Ctx<'_>) {
    ctx.stats.dpd_sent += 1;
    sa.send_request(ctx, ExchangeType::INFORMATIONAL, &[], Task::Dpd);
}
