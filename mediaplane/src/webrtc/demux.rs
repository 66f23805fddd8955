//! Routing datagrams that arrive on a shard's single WebRTC UDP port to their leg.
//!
//! A STUN connectivity check names its leg in USERNAME (`local-ufrag:remote-ufrag`): the local
//! ufrag is looked up in a map. Every other datagram (DTLS, SRTP, SRTCP, STUN responses) is looked
//! up by its 5-tuple (protocol is always UDP here, so the pair remote address + local address).
//! A 5-tuple is learnt when a connectivity check for a known ufrag arrives from it, which is
//! always the first thing a browser sends on a candidate pair (ICE-lite: we never check first).
//!
//! Invariants: routing is two hash lookups and never a scan over legs (`str0m::Rtc::accepts` is
//! linear in the number of legs); the hot path allocates nothing — only learning a new 5-tuple
//! does; each leg holds at most [`MAX_TUPLES_PER_LEG`] 5-tuples (the oldest is forgotten), so a
//! sender spraying checks from many addresses with a known ufrag cannot grow the tables without
//! bound. Learning is not authentication: the leg (str0m) still verifies MESSAGE-INTEGRITY, DTLS
//! fingerprints and SRTP, so a forged check only makes its own source reach a leg that rejects it.

use std::collections::HashMap;
use std::net::SocketAddr;

use thiserror::Error;

use super::stun;

/// A leg's handle inside one shard's demultiplexer (the driver maps it to the leg itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LegId(pub u32);

/// A UDP 5-tuple as seen by the shard: the browser's address and our local address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tuple {
    /// The sender of the datagram (browser or its NAT).
    pub remote: SocketAddr,
    /// The local address it was received on (the shard's WebRTC port).
    pub local: SocketAddr,
}

/// How many 5-tuples one leg may own (one per browser candidate that checks us; browsers with
/// IPv4 + IPv6 + relay candidates stay well under this).
pub const MAX_TUPLES_PER_LEG: usize = 8;

/// Why a datagram could not be routed or a leg not registered.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DemuxError {
    /// A STUN check for a ufrag no leg owns.
    #[error("STUN check for unknown ufrag")]
    UnknownUfrag,
    /// A non-STUN datagram (or a STUN message without USERNAME) from an unknown 5-tuple.
    #[error("datagram from unknown 5-tuple")]
    UnknownTuple,
    /// A STUN message that is malformed.
    #[error("malformed STUN: {0}")]
    Stun(#[from] stun::StunError),
    /// Registering a ufrag that another leg already owns.
    #[error("ufrag already registered")]
    DuplicateUfrag,
    /// Registering a leg id that is already registered.
    #[error("leg already registered")]
    DuplicateLeg,
}

/// How a datagram was routed (the driver may count these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routed {
    /// By the ufrag in a STUN check (the 5-tuple is now known too).
    ByUfrag(LegId),
    /// By a known 5-tuple.
    ByTuple(LegId),
}

impl Routed {
    /// The leg the datagram goes to.
    pub fn leg(self) -> LegId {
        match self {
            Routed::ByUfrag(leg) | Routed::ByTuple(leg) => leg,
        }
    }
}

#[derive(Debug)]
struct LegEntry {
    ufrag: Box<[u8]>,
    /// Learnt 5-tuples, oldest first.
    tuples: Vec<Tuple>,
}

/// One shard's WebRTC routing tables.
#[derive(Debug, Default)]
pub struct Demux {
    by_ufrag: HashMap<Box<[u8]>, LegId>,
    by_tuple: HashMap<Tuple, LegId>,
    legs: HashMap<LegId, LegEntry>,
}

impl Demux {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of registered legs.
    pub fn len(&self) -> usize {
        self.legs.len()
    }

    /// No leg registered.
    pub fn is_empty(&self) -> bool {
        self.legs.is_empty()
    }

    /// Number of learnt 5-tuples over all legs.
    pub fn tuple_count(&self) -> usize {
        self.by_tuple.len()
    }

    /// Registers a leg under its local ICE ufrag (before its answer is sent).
    pub fn insert(&mut self, leg: LegId, ufrag: &str) -> Result<(), DemuxError> {
        if self.legs.contains_key(&leg) {
            return Err(DemuxError::DuplicateLeg);
        }
        if self.by_ufrag.contains_key(ufrag.as_bytes()) {
            return Err(DemuxError::DuplicateUfrag);
        }
        let ufrag: Box<[u8]> = ufrag.as_bytes().into();
        self.by_ufrag.insert(ufrag.clone(), leg);
        self.legs.insert(leg, LegEntry { ufrag, tuples: Vec::with_capacity(2) });
        Ok(())
    }

    /// Forgets a leg, its ufrag and all its 5-tuples. Returns whether it was registered.
    pub fn remove(&mut self, leg: LegId) -> bool {
        let Some(entry) = self.legs.remove(&leg) else {
            return false;
        };
        self.by_ufrag.remove(&entry.ufrag);
        for tuple in &entry.tuples {
            if self.by_tuple.get(tuple) == Some(&leg) {
                self.by_tuple.remove(tuple);
            }
        }
        true
    }

    /// Routes one datagram received from `remote` on `local`.
    pub fn route(&mut self, remote: SocketAddr, local: SocketAddr, datagram: &[u8]) -> Result<Routed, DemuxError> {
        let tuple = Tuple { remote, local };
        if stun::looks_like_stun(datagram) {
            match stun::local_ufrag(datagram) {
                Ok(ufrag) => {
                    let leg = *self.by_ufrag.get(ufrag).ok_or(DemuxError::UnknownUfrag)?;
                    self.learn(leg, tuple);
                    return Ok(Routed::ByUfrag(leg));
                }
                // Responses and indications carry no USERNAME: they follow their 5-tuple.
                Err(stun::StunError::NoUsername) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.by_tuple.get(&tuple).map(|&leg| Routed::ByTuple(leg)).ok_or(DemuxError::UnknownTuple)
    }

    /// The leg a 5-tuple is bound to, if any.
    pub fn leg_for(&self, remote: SocketAddr, local: SocketAddr) -> Option<LegId> {
        self.by_tuple.get(&Tuple { remote, local }).copied()
    }

    fn learn(&mut self, leg: LegId, tuple: Tuple) {
        match self.by_tuple.get(&tuple) {
            Some(&owner) if owner == leg => return,
            // The same browser address now checks another leg (a new call from the same port):
            // the newest check wins, the old leg's ICE will time out on its own.
            Some(&owner) => {
                if let Some(old) = self.legs.get_mut(&owner) {
                    old.tuples.retain(|t| *t != tuple);
                }
            }
            None => {}
        }
        let Some(entry) = self.legs.get_mut(&leg) else {
            return;
        };
        if entry.tuples.len() >= MAX_TUPLES_PER_LEG {
            let oldest = entry.tuples.remove(0);
            self.by_tuple.remove(&oldest);
        }
        entry.tuples.push(tuple);
        self.by_tuple.insert(tuple, leg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(ufrag: &str) -> Vec<u8> {
        let name = format!("{ufrag}:browser");
        let mut msg = vec![0x00, 0x01];
        let padded = name.len().div_ceil(4) * 4;
        msg.extend_from_slice(&((4 + padded) as u16).to_be_bytes());
        msg.extend_from_slice(&stun::MAGIC_COOKIE.to_be_bytes());
        msg.extend_from_slice(&[9; 12]);
        msg.extend_from_slice(&stun::ATTR_USERNAME.to_be_bytes());
        msg.extend_from_slice(&(name.len() as u16).to_be_bytes());
        msg.extend_from_slice(name.as_bytes());
        msg.resize(20 + 4 + padded, 0);
        msg
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    const LOCAL: u16 = 40_000;
    const DTLS: &[u8] = &[22, 254, 253, 0, 0];

    #[test]
    fn stun_by_ufrag_then_media_by_tuple() {
        let mut d = Demux::new();
        d.insert(LegId(1), "aaaa").unwrap();
        d.insert(LegId(2), "bbbb").unwrap();
        assert_eq!(d.route(addr(5000), addr(LOCAL), DTLS), Err(DemuxError::UnknownTuple));
        assert_eq!(d.route(addr(5000), addr(LOCAL), &check("bbbb")), Ok(Routed::ByUfrag(LegId(2))));
        assert_eq!(d.route(addr(5000), addr(LOCAL), DTLS), Ok(Routed::ByTuple(LegId(2))));
        assert_eq!(d.route(addr(5001), addr(LOCAL), DTLS), Err(DemuxError::UnknownTuple));
        assert_eq!(d.route(addr(5001), addr(LOCAL), &check("cccc")), Err(DemuxError::UnknownUfrag));
        assert_eq!(d.route(addr(5001), addr(LOCAL), &check("aaaa")), Ok(Routed::ByUfrag(LegId(1))));
        assert_eq!(d.leg_for(addr(5001), addr(LOCAL)), Some(LegId(1)));
    }

    #[test]
    fn stun_response_follows_the_tuple() {
        let mut d = Demux::new();
        d.insert(LegId(1), "aaaa").unwrap();
        d.route(addr(5000), addr(LOCAL), &check("aaaa")).unwrap();
        let mut response = check("aaaa")[..20].to_vec();
        response[0] = 0x01;
        response[1] = 0x01;
        response[3] = 0;
        assert_eq!(d.route(addr(5000), addr(LOCAL), &response), Ok(Routed::ByTuple(LegId(1))));
        let mut broken = check("aaaa");
        broken[3] = 3;
        assert!(matches!(d.route(addr(5000), addr(LOCAL), &broken), Err(DemuxError::Stun(_))));
    }

    #[test]
    fn duplicates_are_refused() {
        let mut d = Demux::new();
        d.insert(LegId(1), "aaaa").unwrap();
        assert_eq!(d.insert(LegId(2), "aaaa"), Err(DemuxError::DuplicateUfrag));
        assert_eq!(d.insert(LegId(1), "bbbb"), Err(DemuxError::DuplicateLeg));
    }

    #[test]
    fn remove_forgets_everything() {
        let mut d = Demux::new();
        d.insert(LegId(1), "aaaa").unwrap();
        d.route(addr(5000), addr(LOCAL), &check("aaaa")).unwrap();
        assert!(d.remove(LegId(1)));
        assert!(!d.remove(LegId(1)));
        assert!(d.is_empty());
        assert_eq!(d.tuple_count(), 0);
        assert_eq!(d.route(addr(5000), addr(LOCAL), DTLS), Err(DemuxError::UnknownTuple));
        assert_eq!(d.route(addr(5000), addr(LOCAL), &check("aaaa")), Err(DemuxError::UnknownUfrag));
        // The ufrag can be reused by a new leg.
        d.insert(LegId(3), "aaaa").unwrap();
    }

    #[test]
    fn tuples_per_leg_are_bounded() {
        let mut d = Demux::new();
        d.insert(LegId(1), "aaaa").unwrap();
        for port in 0..100 {
            d.route(addr(6000 + port), addr(LOCAL), &check("aaaa")).unwrap();
        }
        assert_eq!(d.tuple_count(), MAX_TUPLES_PER_LEG);
        // The newest survive, the oldest were forgotten.
        assert_eq!(d.leg_for(addr(6099), addr(LOCAL)), Some(LegId(1)));
        assert_eq!(d.leg_for(addr(6000), addr(LOCAL)), None);
    }

    #[test]
    fn a_tuple_moves_to_the_leg_it_last_checked() {
        let mut d = Demux::new();
        d.insert(LegId(1), "aaaa").unwrap();
        d.insert(LegId(2), "bbbb").unwrap();
        d.route(addr(5000), addr(LOCAL), &check("aaaa")).unwrap();
        d.route(addr(5000), addr(LOCAL), &check("bbbb")).unwrap();
        assert_eq!(d.route(addr(5000), addr(LOCAL), DTLS), Ok(Routed::ByTuple(LegId(2))));
        assert_eq!(d.tuple_count(), 1);
        // Removing the old owner must not drop the tuple the new owner holds.
        d.remove(LegId(1));
        assert_eq!(d.leg_for(addr(5000), addr(LOCAL)), Some(LegId(2)));
    }
}
