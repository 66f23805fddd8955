//! The contract between Wavegate's signalling process and its media plane, and nothing else.
//!
//! - [`ids`]: typed identifiers parsed at the boundary, and the pure call-to-shard mapping.
//! - [`protocol`]: every request names its reply type; frames are `kind | request id | body`.
//! - [`ring`] and [`region`]: one shared-memory region with, per shard, an SPSC command ring
//!   (host to shard) and an SPSC event ring (shard to host); versioned header, heartbeats.
//! - [`doorbell`]: idle wake-ups without spinning.
//! - [`spawn`] (feature `host`): how a host creates the region and starts the media plane, and
//!   the async request/reply client both the signalling process and the load tester use.

pub mod clock;
pub mod doorbell;
pub mod ids;
pub mod inherit;
pub mod ports;
pub mod protocol;
pub mod region;
pub mod ring;

#[cfg(feature = "host")]
pub mod client;
#[cfg(feature = "host")]
pub mod spawn;

pub use ids::{CallId, IdError, LegTag, RequestId, ShardId};
