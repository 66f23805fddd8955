//! UDP port ranges as configured (`"20000-39999"`) and their even split among shards.
//!
//! Both processes need the same arithmetic: the signalling side validates the configured range
//! and passes it to the media plane, which gives shard k slice k. A slice is a run of pairs
//! (even RTP port, RTCP = RTP + 1); the remainder of an uneven split stays unused.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a range or slice is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    /// Not of the form `first-last` with numbers.
    #[error("port range {0:?} is not of the form FIRST-LAST")]
    Syntax(String),
    /// First port after last, or zero.
    #[error("port range {first}-{last} is empty or starts at 0")]
    Empty {
        /// First port.
        first: u16,
        /// Last port.
        last: u16,
    },
    /// Fewer pairs than shards.
    #[error("{pairs} port pairs cannot be split among {shards} shards")]
    TooSmall {
        /// Pairs in the range.
        pairs: u32,
        /// Shards asking.
        shards: u16,
    },
}

/// An inclusive range of UDP ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    /// First port.
    pub first: u16,
    /// Last port (inclusive).
    pub last: u16,
}

impl FromStr for PortRange {
    type Err = PortError;
    fn from_str(s: &str) -> Result<Self, PortError> {
        let (a, b) = s.split_once('-').ok_or_else(|| PortError::Syntax(s.into()))?;
        let first: u16 = a.trim().parse().map_err(|_| PortError::Syntax(s.into()))?;
        let last: u16 = b.trim().parse().map_err(|_| PortError::Syntax(s.into()))?;
        if first == 0 || first > last {
            return Err(PortError::Empty { first, last });
        }
        Ok(PortRange { first, last })
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

impl PortRange {
    /// Whole (even, odd) pairs in the range.
    pub fn pairs(&self) -> u32 {
        let first = u32::from(self.first.next_multiple_of(2));
        let last = u32::from(self.last);
        if last < first + 1 { 0 } else { (last - first).div_ceil(2) }
    }

    /// Slice `shard` of `shards` equal slices (the remainder stays unused).
    pub fn shard_slice(&self, shard: u16, shards: u16) -> Result<PortRange, PortError> {
        let shards_n = u32::from(shards.max(1));
        let per = self.pairs() / shards_n;
        if per == 0 || shard >= shards.max(1) {
            return Err(PortError::TooSmall { pairs: self.pairs(), shards });
        }
        let first = u32::from(self.first.next_multiple_of(2)) + 2 * per * u32::from(shard);
        let last = first + 2 * per - 1;
        // Both fit: they lie inside the original u16 range.
        Ok(PortRange { first: first as u16, last: last as u16 })
    }
}

impl Serialize for PortRange {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_display_and_split() {
        let r: PortRange = "20000-39999".parse().unwrap();
        assert_eq!(r.to_string(), "20000-39999");
        assert_eq!(r.pairs(), 10_000);
        assert_eq!(r.shard_slice(1, 2).unwrap(), PortRange { first: 30000, last: 39999 });
        assert!("x".parse::<PortRange>().is_err());
        assert!("0-10".parse::<PortRange>().is_err());
        assert!("10-5".parse::<PortRange>().is_err());
        assert!("20000-20001".parse::<PortRange>().unwrap().shard_slice(0, 2).is_err());
    }
}
