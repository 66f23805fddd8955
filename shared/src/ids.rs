//! Small, copyable or cheaply cloned identifiers used on both sides of the control channel.
//!
//! Every id is parsed once at the boundary (`FromStr` / `new`) and never re-validated: a
//! `CallId` in hand is always 1..=256 visible ASCII bytes, a `LegTag` 1..=128. Shard
//! selection is a pure function of the call id, so both processes agree on where a call lives
//! without asking each other.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a textual id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The id was empty.
    #[error("{kind} must not be empty")]
    Empty { kind: &'static str },
    /// The id was longer than the protocol allows.
    #[error("{kind} is {len} bytes long; at most {max} are allowed")]
    TooLong { kind: &'static str, len: usize, max: usize },
    /// The id held a byte outside visible ASCII (0x21..=0x7e).
    #[error("{kind} contains a byte outside visible ASCII at offset {offset}")]
    BadByte { kind: &'static str, offset: usize },
}

fn check_token(kind: &'static str, s: &str, max: usize) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if s.len() > max {
        return Err(IdError::TooLong { kind, len: s.len(), max });
    }
    if let Some(offset) = s.bytes().position(|b| !(0x21..=0x7e).contains(&b)) {
        return Err(IdError::BadByte { kind, offset });
    }
    Ok(())
}

macro_rules! token_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $max:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Box<str>);

        impl $name {
            /// Longest accepted value in bytes.
            pub const MAX_LEN: usize = $max;

            /// Validates and wraps `s`.
            pub fn new(s: &str) -> Result<Self, IdError> {
                check_token($kind, s, Self::MAX_LEN)?;
                Ok(Self(s.into()))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::new(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), &*self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <&str>::deserialize(d)?;
                Self::new(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

token_id!(
    /// A call as the signalling side names it (for SIP calls: the Call-ID header).
    CallId, "call id", 256
);
token_id!(
    /// One side of a call, named by its dialog tag (rtpengine's from-tag / to-tag).
    LegTag, "leg tag", 128
);

/// Correlates a reply with its request; unique per control channel and process lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RequestId(pub u64);

/// Index of a media-plane shard (one pinned executor, one core).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ShardId(pub u16);

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "shard{}", self.0)
    }
}

impl ShardId {
    /// The shard that owns `call` among `shard_count` shards (FNV-1a of the id bytes).
    ///
    /// Pure and stable across processes and versions of the same protocol, so either side
    /// can compute it. `shard_count` of 0 is treated as 1.
    pub fn for_call(call: &CallId, shard_count: u16) -> ShardId {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for b in call.as_str().bytes() {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        let count = u64::from(shard_count.max(1));
        ShardId((hash % count) as u16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_sip_call_ids() {
        let id = CallId::new("a84b4c76e66710@pc33.atlanta.com").unwrap();
        assert_eq!(id.as_str(), "a84b4c76e66710@pc33.atlanta.com");
        assert!(LegTag::new("1928301774").is_ok());
    }

    #[test]
    fn rejects_empty_long_and_spaces() {
        assert_eq!(CallId::new(""), Err(IdError::Empty { kind: "call id" }));
        assert!(matches!(CallId::new(&"x".repeat(257)), Err(IdError::TooLong { .. })));
        assert_eq!(
            LegTag::new("a b"),
            Err(IdError::BadByte { kind: "leg tag", offset: 1 })
        );
    }

    #[test]
    fn shard_is_stable_and_in_range() {
        let id = CallId::new("call-1").unwrap();
        assert_eq!(ShardId::for_call(&id, 1), ShardId(0));
        assert_eq!(ShardId::for_call(&id, 0), ShardId(0));
        let s = ShardId::for_call(&id, 8);
        assert_eq!(s, ShardId::for_call(&id, 8));
    }

    proptest! {
        #[test]
        fn valid_ids_roundtrip(s in "[!-~]{1,256}", n in 1u16..64) {
            let id = CallId::new(&s).unwrap();
            let bytes = postcard::to_allocvec(&id).unwrap();
            let back: CallId = postcard::from_bytes(&bytes).unwrap();
            prop_assert_eq!(&back, &id);
            prop_assert!(ShardId::for_call(&id, n).0 < n);
        }

        #[test]
        fn arbitrary_text_never_panics(s in ".*") {
            let _ = CallId::new(&s);
            let _ = LegTag::new(&s);
        }
    }
}
