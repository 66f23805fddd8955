//! The call model of one shard and its packet path, with no sockets and no clock.
//!
//! A call has two legs: the offerer's (side A) and the answerer's (side B), each with one
//! [`Endpoint`] (a port pair of ours) per m-line. The offerer is told to send to A-side ports
//! (in the SDP the `Answer` returns), the answerer to B-side ports (in the SDP the `Offer`
//! returns); a packet arriving on an A-side port leaves from the matching B-side port, so
//! each peer sees one symmetric address. [`Relay::on_packet`] is the whole hot path: a table
//! lookup by local port, latching, validation, in-place rewrite, and the verdict. It never
//! allocates. Time is passed in as CLOCK_MONOTONIC nanoseconds.
//!
//! Sockets are the driver's: when the relay takes or frees a port pair it tells a
//! [`PortSockets`] implementation, which binds or closes the two UDP sockets.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use wavegate_shared::ShardId;
use wavegate_shared::ids::{CallId, LegTag};
use wavegate_shared::protocol::{CallStats, ControlError, ErrorCode, LegStats, MediaEvent, OfferFlags};

use crate::call::{Endpoint, PtMap};
use crate::ports::{PortAllocator, PortRange};
use crate::rtp::{PacketClass, RtcpCompound, RtpPacket, classify};
use crate::sdp::Sdp;

/// Opening and closing the sockets of a port pair; implemented by the driver.
pub trait PortSockets {
    /// Binds RTP `rtp_port` and RTCP `rtp_port + 1`. An error makes the relay try another pair.
    fn open(&mut self, rtp_port: u16) -> std::io::Result<()>;
    /// Closes both sockets of the pair.
    fn close(&mut self, rtp_port: u16);
    /// The shard's cumulative traffic counted by the driver (zero for cores without sockets);
    /// copied into the `ShardStats` reply.
    fn traffic(&self) -> wavegate_shared::protocol::ShardTraffic {
        wavegate_shared::protocol::ShardTraffic::default()
    }
}

/// For cores without sockets (tests, benches): every open succeeds.
#[derive(Debug, Default)]
pub struct NoSockets;

impl PortSockets for NoSockets {
    fn open(&mut self, _: u16) -> std::io::Result<()> {
        Ok(())
    }
    fn close(&mut self, _: u16) {}
}

/// Shard-wide settings.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// This shard.
    pub shard: ShardId,
    /// The shard's slice of RTP ports.
    pub ports: PortRange,
    /// The address written into SDP.
    pub announce_ip: IpAddr,
    /// Media timeout for calls whose offer does not say; 0 disables.
    pub media_timeout_secs: u32,
}

/// Which leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The offerer (A).
    Offerer,
    /// The answerer (B).
    Answerer,
}

/// Why a packet was not forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// No call holds that local port.
    UnknownPort,
    /// Not RTP or RTCP (or a header that does not validate).
    Malformed,
    /// From an address other than the latched peer.
    Stranger,
    /// A payload type the other leg did not negotiate.
    UnknownPayloadType,
    /// The other leg's address is not known yet.
    NoDestination,
}

/// Where a rewritten packet goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forward {
    /// The peer to send to.
    pub dst: SocketAddr,
    /// Bytes of the buffer to send.
    pub len: usize,
    /// The local port to send from (its socket).
    pub out_port: u16,
}

/// The outcome of one received packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send `buf[..len]` from `out_port` to `dst`.
    Forward(Forward),
    /// Do nothing (counted).
    Drop(DropReason),
}

#[derive(Debug)]
struct Leg {
    tag: Option<LegTag>,
    sdp: Option<Sdp>,
    streams: Vec<Endpoint>,
    stats: LegStats,
}

impl Leg {
    fn new() -> Self {
        Self { tag: None, sdp: None, streams: Vec::new(), stats: LegStats::default() }
    }

    fn snapshot(&self) -> LegStats {
        let mut s = self.stats.clone();
        s.tag = self.tag.clone();
        s.remote_rtp = self.streams.first().and_then(|e| e.remote_rtp);
        s
    }
}

#[derive(Debug)]
struct Call {
    id: CallId,
    created_ns: u64,
    last_media_ns: u64,
    timeout_ns: Option<u64>,
    timed_out: bool,
    legs: [Leg; 2],
}

impl Call {
    fn ports(&self) -> impl Iterator<Item = u16> + '_ {
        self.legs.iter().flat_map(|l| l.streams.iter().map(|e| e.local_port))
    }
}

#[derive(Debug, Clone, Copy)]
struct PortOwner {
    slot: u32,
    side: u8,
    stream: u16,
}

/// One shard's calls and ports.
pub struct Relay {
    config: RelayConfig,
    ports: PortAllocator,
    by_port: Vec<Option<PortOwner>>,
    slots: Vec<Option<Call>>,
    free_slots: Vec<u32>,
    by_id: HashMap<CallId, u32>,
    rng: StdRng,
}

fn err(code: ErrorCode, message: impl Into<String>) -> ControlError {
    ControlError::new(code, message)
}

/// Attempts at binding another pair when the driver cannot bind one (port taken elsewhere).
const OPEN_ATTEMPTS: usize = 16;

impl Relay {
    /// An empty shard; `seed` drives the outgoing SSRCs.
    pub fn new(config: RelayConfig, seed: u64) -> Self {
        let mut ports = PortAllocator::new(config.ports);
        ports.rotate((seed >> 17) as usize);
        let by_port = vec![None; ports.capacity()];
        Self { config, ports, by_port, slots: Vec::new(), free_slots: Vec::new(), by_id: HashMap::new(), rng: StdRng::seed_from_u64(seed) }
    }

    /// The shard's settings.
    pub fn config(&self) -> &RelayConfig {
        &self.config
    }

    /// Calls held.
    pub fn call_count(&self) -> usize {
        self.by_id.len()
    }

    /// Port pairs still free.
    pub fn free_pairs(&self) -> usize {
        self.ports.available()
    }

    fn call(&self, id: &CallId) -> Result<(u32, &Call), ControlError> {
        let slot = *self.by_id.get(id).ok_or_else(|| err(ErrorCode::UnknownCall, format!("no call {id}")))?;
        match self.slots.get(slot as usize).and_then(Option::as_ref) {
            Some(c) => Ok((slot, c)),
            None => Err(err(ErrorCode::Internal, "call index points at an empty slot")),
        }
    }

    fn call_mut(&mut self, slot: u32) -> Result<&mut Call, ControlError> {
        self.slots.get_mut(slot as usize).and_then(Option::as_mut).ok_or_else(|| err(ErrorCode::Internal, "empty call slot"))
    }

    fn open_pair(&mut self, sockets: &mut dyn PortSockets, owner: PortOwner) -> Result<u16, ControlError> {
        for _ in 0..OPEN_ATTEMPTS {
            let port = self.ports.allocate().ok_or_else(|| err(ErrorCode::NoPorts, "no free RTP port pairs on this shard"))?;
            match sockets.open(port) {
                Ok(()) => {
                    if let Some(slot) = self.ports.pair_index(port).and_then(|i| self.by_port.get_mut(i)) {
                        *slot = Some(owner);
                    }
                    return Ok(port);
                }
                Err(e) => {
                    tracing::warn!(port, error = %e, "cannot bind RTP port pair; trying another");
                    self.ports.release(port);
                }
            }
        }
        Err(err(ErrorCode::NoPorts, "could not bind any RTP port pair"))
    }

    fn close_pair(&mut self, sockets: &mut dyn PortSockets, port: u16) {
        if let Some(slot) = self.ports.pair_index(port).and_then(|i| self.by_port.get_mut(i)) {
            *slot = None;
        }
        if self.ports.release(port) {
            sockets.close(port);
        }
    }

    /// Makes sure `slot` has one endpoint per m-line on both legs, opening ports as needed.
    fn ensure_streams(&mut self, sockets: &mut dyn PortSockets, slot: u32, count: usize) -> Result<(), ControlError> {
        for side in 0..2u8 {
            loop {
                let have = self.call_mut(slot)?.legs[usize::from(side)].streams.len();
                if have >= count {
                    break;
                }
                let owner = PortOwner { slot, side, stream: have as u16 };
                let port = self.open_pair(sockets, owner)?;
                let ssrc: u32 = self.rng.random();
                self.call_mut(slot)?.legs[usize::from(side)].streams.push(Endpoint::new(port, ssrc));
            }
        }
        Ok(())
    }

    fn sdp_for(&self, mut sdp: Sdp, side: usize, call: &Call) -> Result<String, ControlError> {
        let ports: Vec<u16> = call.legs[side].streams.iter().map(|e| e.local_port).collect();
        sdp.rewrite_for_relay(self.config.announce_ip, &ports).map_err(|e| err(ErrorCode::Internal, e.to_string()))?;
        Ok(sdp.write())
    }

    /// Creates or refreshes a call from the offerer's SDP; returns the SDP for the answerer.
    pub fn offer(
        &mut self,
        now_ns: u64,
        call_id: &CallId,
        from_tag: &LegTag,
        sdp_text: &str,
        flags: &OfferFlags,
        sockets: &mut dyn PortSockets,
    ) -> Result<String, ControlError> {
        let sdp = Sdp::parse(sdp_text).map_err(|e| err(ErrorCode::BadSdp, e.to_string()))?;
        if let Ok((slot, call)) = self.call(call_id) {
            let a_tag = call.legs[0].tag.as_ref();
            if a_tag != Some(from_tag) {
                // An offer from the answerer's side (a re-INVITE the other way) updates its leg.
                if call.legs[1].tag.as_ref() == Some(from_tag) {
                    return self.update_answerer(now_ns, slot, sdp, sockets);
                }
                return Err(err(ErrorCode::UnknownLeg, format!("call {call_id} was offered by another leg")));
            }
            return self.update_offerer(slot, sdp, sockets);
        }
        let timeout_secs = flags.media_timeout_secs.unwrap_or(self.config.media_timeout_secs);
        let mut legs = [Leg::new(), Leg::new()];
        legs[0].tag = Some(from_tag.clone());
        let call = Call {
            id: call_id.clone(),
            created_ns: now_ns,
            last_media_ns: now_ns,
            timeout_ns: (timeout_secs > 0).then(|| u64::from(timeout_secs) * 1_000_000_000),
            timed_out: false,
            legs,
        };
        let slot = match self.free_slots.pop() {
            Some(s) => {
                self.slots[s as usize] = Some(call);
                s
            }
            None => {
                self.slots.push(Some(call));
                (self.slots.len() - 1) as u32
            }
        };
        self.by_id.insert(call_id.clone(), slot);
        match self.update_offerer(slot, sdp, sockets) {
            Ok(text) => Ok(text),
            Err(e) => {
                self.remove(slot, sockets);
                Err(e)
            }
        }
    }

    fn update_offerer(&mut self, slot: u32, sdp: Sdp, sockets: &mut dyn PortSockets) -> Result<String, ControlError> {
        self.ensure_streams(sockets, slot, sdp.media.len())?;
        let ip = self.config.announce_ip;
        let call = self.call_mut(slot)?;
        let answer = call.legs[1].sdp.take();
        for (i, m) in sdp.media.iter().enumerate() {
            let addr = sdp.media_address(i);
            call.legs[0].streams[i].learn_from_sdp(m, addr);
            match answer.as_ref().and_then(|a| a.media.get(i)) {
                // A re-offer after the answer: map against what the answerer said.
                Some(am) => {
                    call.legs[0].streams[i].rtcp_mux = m.rtcp_mux() && am.rtcp_mux();
                    call.legs[0].streams[i].pt_map = PtMap::between(m, am);
                    call.legs[1].streams[i].pt_map = PtMap::between(am, m);
                }
                // Until the answer, both sides use the offer's payload-type numbers.
                None => {
                    call.legs[0].streams[i].pt_map = PtMap::identity(m);
                    call.legs[1].streams[i].pt_map = PtMap::identity(m);
                    call.legs[1].streams[i].rtcp_mux = m.rtcp_mux();
                }
            }
        }
        call.legs[1].sdp = answer;
        call.legs[0].stats.local_rtp = call.legs[0].streams.first().map(|e| SocketAddr::new(ip, e.local_port));
        call.legs[1].stats.local_rtp = call.legs[1].streams.first().map(|e| SocketAddr::new(ip, e.local_port));
        call.legs[0].sdp = Some(sdp.clone());
        let call = self.slot_ref(slot)?;
        self.sdp_for(sdp, 1, call)
    }

    fn slot_ref(&self, slot: u32) -> Result<&Call, ControlError> {
        self.slots.get(slot as usize).and_then(Option::as_ref).ok_or_else(|| err(ErrorCode::Internal, "empty call slot"))
    }

    fn update_answerer(&mut self, _now_ns: u64, slot: u32, sdp: Sdp, sockets: &mut dyn PortSockets) -> Result<String, ControlError> {
        let offered = self.call_mut(slot)?.legs[0].sdp.as_ref().map_or(0, |s| s.media.len());
        if sdp.media.len() != offered {
            return Err(err(
                ErrorCode::BadSdp,
                format!("answer has {} media sections, the offer had {offered}", sdp.media.len()),
            ));
        }
        self.ensure_streams(sockets, slot, sdp.media.len())?;
        let call = self.call_mut(slot)?;
        let Some(offer) = call.legs[0].sdp.take() else {
            return Err(err(ErrorCode::Internal, "call without an offer"));
        };
        for (i, (om, am)) in offer.media.iter().zip(&sdp.media).enumerate() {
            call.legs[1].streams[i].learn_from_sdp(am, sdp.media_address(i));
            call.legs[0].streams[i].rtcp_mux = om.rtcp_mux() && am.rtcp_mux();
            call.legs[0].streams[i].pt_map = PtMap::between(om, am);
            call.legs[1].streams[i].pt_map = PtMap::between(am, om);
        }
        call.legs[0].sdp = Some(offer);
        call.legs[1].sdp = Some(sdp.clone());
        let call = self.slot_ref(slot)?;
        self.sdp_for(sdp, 0, call)
    }

    /// Records the answerer's SDP; returns the SDP for the offerer.
    pub fn answer(
        &mut self,
        now_ns: u64,
        call_id: &CallId,
        from_tag: &LegTag,
        to_tag: &LegTag,
        sdp_text: &str,
        sockets: &mut dyn PortSockets,
    ) -> Result<String, ControlError> {
        let (slot, call) = self.call(call_id)?;
        if call.legs[0].tag.as_ref() != Some(from_tag) {
            return Err(err(ErrorCode::UnknownLeg, format!("call {call_id} has no offer from {from_tag}")));
        }
        let sdp = Sdp::parse(sdp_text).map_err(|e| err(ErrorCode::BadSdp, e.to_string()))?;
        self.call_mut(slot)?.legs[1].tag = Some(to_tag.clone());
        self.update_answerer(now_ns, slot, sdp, sockets)
    }

    /// Counters of a call.
    pub fn query(&self, now_ns: u64, call_id: &CallId) -> Result<CallStats, ControlError> {
        let (_, call) = self.call(call_id)?;
        Ok(CallStats {
            call: Some(call.id.clone()),
            offerer: call.legs[0].snapshot(),
            answerer: call.legs[1].snapshot(),
            age_ms: now_ns.saturating_sub(call.created_ns) / 1_000_000,
        })
    }

    /// Ends a call, closes its ports and returns its final counters.
    pub fn delete(&mut self, now_ns: u64, call_id: &CallId, sockets: &mut dyn PortSockets) -> Result<CallStats, ControlError> {
        let stats = self.query(now_ns, call_id)?;
        let (slot, _) = self.call(call_id)?;
        self.remove(slot, sockets);
        Ok(stats)
    }

    fn remove(&mut self, slot: u32, sockets: &mut dyn PortSockets) {
        let Some(call) = self.slots.get_mut(slot as usize).and_then(Option::take) else { return };
        self.by_id.remove(&call.id);
        for port in call.ports() {
            self.close_pair(sockets, port);
        }
        self.free_slots.push(slot);
    }

    /// Appends a `MediaTimeout` for every call silent past its timeout, once per silence.
    pub fn poll_timeouts(&mut self, now_ns: u64, out: &mut Vec<MediaEvent>) {
        for call in self.slots.iter_mut().flatten() {
            let Some(limit) = call.timeout_ns else { continue };
            let idle = now_ns.saturating_sub(call.last_media_ns);
            if !call.timed_out && idle >= limit {
                call.timed_out = true;
                out.push(MediaEvent::MediaTimeout { call: call.id.clone(), idle_secs: (idle / 1_000_000_000) as u32 });
            }
        }
    }

    /// Handles one datagram that arrived on `local_port` from `src`; rewrites `buf` in place.
    #[inline]
    pub fn on_packet(&mut self, now_ns: u64, local_port: u16, src: SocketAddr, buf: &mut [u8]) -> Verdict {
        let Some(owner) = self.ports.pair_index(local_port).and_then(|i| self.by_port.get(i).copied().flatten()) else {
            return Verdict::Drop(DropReason::UnknownPort);
        };
        let Some(call) = self.slots.get_mut(owner.slot as usize).and_then(Option::as_mut) else {
            return Verdict::Drop(DropReason::UnknownPort);
        };
        let on_rtcp_port = local_port % 2 == 1;
        let x = usize::from(owner.side & 1);
        let [a, b] = &mut call.legs;
        let (here, there) = if x == 0 { (a, b) } else { (b, a) };
        let s = usize::from(owner.stream);
        let (Some(ep), Some(peer)) = (here.streams.get_mut(s), there.streams.get_mut(s)) else {
            return Verdict::Drop(DropReason::UnknownPort);
        };
        let class = if on_rtcp_port { PacketClass::Rtcp } else { classify(buf) };
        // Symmetric RTP: the first packet's source becomes the peer; others are strangers.
        let (latched, remote) = if on_rtcp_port {
            (&mut ep.rtcp_latched, &mut ep.remote_rtcp)
        } else {
            (&mut ep.rtp_latched, &mut ep.remote_rtp)
        };
        if *latched {
            if *remote != Some(src) {
                here.stats.dropped += 1;
                return Verdict::Drop(DropReason::Stranger);
            }
        } else if class != PacketClass::Other {
            *latched = true;
            *remote = Some(src);
        }
        let len = buf.len();
        match class {
            PacketClass::Rtp => {
                let Ok(mut p) = RtpPacket::parse(buf) else {
                    here.stats.dropped += 1;
                    return Verdict::Drop(DropReason::Malformed);
                };
                here.stats.rtp_packets_in += 1;
                here.stats.rtp_bytes_in += len as u64;
                call.last_media_ns = now_ns;
                call.timed_out = false;
                let Some((out_pt, clock)) = ep.pt_map.get(p.payload_type()) else {
                    here.stats.dropped += 1;
                    return Verdict::Drop(DropReason::UnknownPayloadType);
                };
                let Some(dst) = peer.remote_rtp else {
                    here.stats.dropped += 1;
                    return Verdict::Drop(DropReason::NoDestination);
                };
                ep.rewriter.rewrite(now_ns, &mut p, out_pt, clock);
                there.stats.rtp_packets_out += 1;
                there.stats.rtp_bytes_out += len as u64;
                Verdict::Forward(Forward { dst, len, out_port: peer.local_port })
            }
            PacketClass::Rtcp => {
                let Ok(mut c) = RtcpCompound::parse(buf) else {
                    here.stats.dropped += 1;
                    return Verdict::Drop(DropReason::Malformed);
                };
                here.stats.rtcp_packets_in += 1;
                call.last_media_ns = now_ns;
                call.timed_out = false;
                let Some((dst, out_port)) = peer.rtcp_route() else {
                    here.stats.dropped += 1;
                    return Verdict::Drop(DropReason::NoDestination);
                };
                // The sender is this direction's source; report blocks name the other
                // direction's outgoing SSRC, which the far peer knows by its own SSRC.
                let my_out = ep.rewriter.out_ssrc;
                let (their_out, their_in) = (peer.rewriter.out_ssrc, peer.rewriter.in_ssrc);
                c.rewrite_ssrcs(|_| my_out, |s| if s == their_out { their_in.unwrap_or(s) } else { s });
                there.stats.rtcp_packets_out += 1;
                Verdict::Forward(Forward { dst, len, out_port })
            }
            PacketClass::Other => {
                here.stats.dropped += 1;
                Verdict::Drop(DropReason::Malformed)
            }
        }
    }

    /// Whether the relay holds `call_id`.
    pub fn has_call(&self, call_id: &CallId) -> bool {
        self.by_id.contains_key(call_id)
    }

    /// Takes and binds a port pair that no relay call owns (a WebRTC bridge's SIP side): its
    /// packets reach [`Self::on_packet`] as [`DropReason::UnknownPort`] for the driver to pass on.
    pub fn reserve_pair(&mut self, sockets: &mut dyn PortSockets) -> Result<u16, ControlError> {
        for _ in 0..OPEN_ATTEMPTS {
            let port = self.ports.allocate().ok_or_else(|| err(ErrorCode::NoPorts, "no free RTP port pairs on this shard"))?;
            match sockets.open(port) {
                Ok(()) => return Ok(port),
                Err(e) => {
                    tracing::warn!(port, error = %e, "cannot bind RTP port pair; trying another");
                    self.ports.release(port);
                }
            }
        }
        Err(err(ErrorCode::NoPorts, "could not bind any RTP port pair"))
    }

    /// Frees a pair taken by [`Self::reserve_pair`].
    pub fn release_pair(&mut self, rtp_port: u16, sockets: &mut dyn PortSockets) {
        self.close_pair(sockets, rtp_port);
    }

    /// A fresh outgoing SSRC from the shard's generator.
    pub fn random_ssrc(&mut self) -> u32 {
        self.rng.random()
    }

    /// The side and m-line index a local port belongs to (for diagnostics and tests).
    pub fn port_owner(&self, local_port: u16) -> Option<(CallId, Side, usize)> {
        let owner = self.ports.pair_index(local_port).and_then(|i| self.by_port.get(i).copied().flatten())?;
        let call = self.slots.get(owner.slot as usize)?.as_ref()?;
        let side = if owner.side == 0 { Side::Offerer } else { Side::Answerer };
        Some((call.id.clone(), side, usize::from(owner.stream)))
    }

    /// The local RTP ports of a call's leg, in m-line order.
    pub fn leg_ports(&self, call_id: &CallId, side: Side) -> Option<Vec<u16>> {
        let (_, call) = self.call(call_id).ok()?;
        let i = if side == Side::Offerer { 0 } else { 1 };
        Some(call.legs[i].streams.iter().map(|e| e.local_port).collect())
    }
}

#[cfg(test)]
#[path = "relay_tests.rs"]
mod tests;
