//! RTP port ranges and a shard's port-pair allocator.
//!
//! The configured range is split evenly among shards; shard k owns slice k. A slice is a run
//! of pairs (even RTP port, RTCP = RTP + 1). The allocator hands pairs out first-in first-out,
//! so a freed pair goes to the back of the queue and late packets for an ended call rarely hit
//! a new one. Invariant: a pair is either free (queued once) or in use, never both.

use std::collections::VecDeque;

pub use wavegate_shared::ports::{PortError, PortRange};

/// Hands out port pairs of one shard's slice.
#[derive(Debug, Clone)]
pub struct PortAllocator {
    first: u16,
    free: VecDeque<u16>,
    in_use: Vec<bool>,
}

impl PortAllocator {
    /// An allocator over every whole pair of `range`.
    pub fn new(range: PortRange) -> Self {
        let first = range.first.next_multiple_of(2);
        let pairs = range.pairs() as usize;
        let free = (0..pairs).map(|i| first + 2 * i as u16).collect();
        Self { first, free, in_use: vec![false; pairs] }
    }

    /// Index of the pair holding `port` (RTP or RTCP), if it is in this slice.
    #[inline]
    pub fn pair_index(&self, port: u16) -> Option<usize> {
        let i = usize::from(port.checked_sub(self.first)? / 2);
        (i < self.in_use.len()).then_some(i)
    }

    /// Number of pairs in the slice.
    pub fn capacity(&self) -> usize {
        self.in_use.len()
    }

    /// Pairs currently free.
    pub fn available(&self) -> usize {
        self.free.len()
    }

    /// Rotates the free queue so allocation starts `offset` pairs into the slice.
    ///
    /// A media plane restarted right after a busy generation must not begin with the very
    /// ports the old one used first: the kernel releases a dead process's io_uring (and the
    /// sockets its polls hold) asynchronously, so those ports can stay bound for a moment.
    pub fn rotate(&mut self, offset: usize) {
        if !self.free.is_empty() {
            let n = offset % self.free.len();
            self.free.rotate_left(n);
        }
    }

    /// Takes the next free pair; returns its RTP port.
    pub fn allocate(&mut self) -> Option<u16> {
        let port = self.free.pop_front()?;
        if let Some(i) = self.pair_index(port) {
            self.in_use[i] = true;
        }
        Some(port)
    }

    /// Returns a pair; false if it was not in use (double free is ignored).
    pub fn release(&mut self, rtp_port: u16) -> bool {
        match self.pair_index(rtp_port) {
            Some(i) if self.in_use[i] && rtp_port.is_multiple_of(2) => {
                self.in_use[i] = false;
                self.free.push_back(rtp_port);
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parse_and_split() {
        let r: PortRange = "20000-39999".parse().unwrap();
        assert_eq!(r.pairs(), 10_000);
        assert_eq!(r.shard_slice(0, 2).unwrap(), PortRange { first: 20000, last: 29999 });
        assert_eq!(r.shard_slice(1, 2).unwrap(), PortRange { first: 30000, last: 39999 });
        let odd: PortRange = "20001-20010".parse().unwrap();
        assert_eq!(odd.pairs(), 4); // 20002..=20009
        assert_eq!(odd.shard_slice(0, 1).unwrap(), PortRange { first: 20002, last: 20009 });
        assert!("x".parse::<PortRange>().is_err());
        assert!("10-5".parse::<PortRange>().is_err());
        assert!(matches!(odd.shard_slice(0, 5), Err(PortError::TooSmall { .. })));
        assert!(odd.shard_slice(1, 1).is_err());
    }

    #[test]
    fn allocate_release_fifo() {
        let mut rotated = PortAllocator::new("1000-1005".parse().unwrap());
        rotated.rotate(4);
        assert_eq!(rotated.allocate(), Some(1002), "4 mod 3 pairs = start at the second pair");
        let mut a = PortAllocator::new("1000-1005".parse().unwrap());
        assert_eq!(a.capacity(), 3);
        assert_eq!(a.allocate(), Some(1000));
        assert_eq!(a.allocate(), Some(1002));
        assert!(a.release(1000));
        assert!(!a.release(1000), "double free ignored");
        assert!(!a.release(1001), "RTCP port is not a pair");
        assert_eq!(a.allocate(), Some(1004));
        assert_eq!(a.allocate(), Some(1000));
        assert_eq!(a.allocate(), None);
        assert_eq!(a.pair_index(1003), Some(1));
        assert_eq!(a.pair_index(999), None);
        assert_eq!(a.pair_index(1006), None);
    }

    proptest! {
        #[test]
        fn slices_are_disjoint_and_even(first in 1u16..60000, len in 0u16..5000, shards in 1u16..8) {
            let r = PortRange { first, last: first.saturating_add(len) };
            let mut prev_last = 0u32;
            for k in 0..shards {
                if let Ok(s) = r.shard_slice(k, shards) {
                    prop_assert_eq!(s.first % 2, 0);
                    prop_assert_eq!(s.last % 2, 1);
                    prop_assert!(s.first >= r.first && s.last <= r.last);
                    prop_assert!(u32::from(s.first) > prev_last || k == 0);
                    prev_last = u32::from(s.last);
                }
            }
        }

        #[test]
        fn no_pair_handed_out_twice(ops in proptest::collection::vec(any::<bool>(), 0..200)) {
            let mut a = PortAllocator::new("2000-2019".parse().unwrap());
            let mut held: Vec<u16> = Vec::new();
            for alloc in ops {
                if alloc {
                    if let Some(p) = a.allocate() {
                        prop_assert!(!held.contains(&p));
                        held.push(p);
                    } else {
                        prop_assert_eq!(held.len(), 10);
                    }
                } else if let Some(p) = held.pop() {
                    prop_assert!(a.release(p));
                }
            }
            prop_assert_eq!(a.available() + held.len(), 10);
        }
    }
}
