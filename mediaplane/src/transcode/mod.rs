//! Audio transcoding for calls whose two sides share no codec: a sans-IO core.
//!
//! Per call and direction a [`pipeline::Transcoder`] runs jitter buffer → decode (or conceal) →
//! resample → re-frame to the outgoing ptime → encode. Everything takes time as an argument
//! (nanoseconds on the shard's clock) and touches no sockets, so it is tested on virtual time.
//!
//! Invariants:
//! - All buffers are sized when a transcoder is built (call setup); the per-frame path allocates
//!   nothing (codec states are created once; rubato and libopus work in preallocated state).
//! - DTMF never enters this module: telephone-event packets are mapped by the bridge as they are
//!   for passthrough calls; only the audio payload type is transcoded.
//! - Packet loss concealment and the adaptive jitter buffer exist on this path only; passthrough
//!   calls keep end-to-end timing untouched.
//!
//! Layout: [`call`] (codec choice and a call's two directions, for the bridge), [`codec`] (the codec traits, [`codec::Codec`] and construction), one file per codec
//! ([`g711`], [`g722`], [`g729`], [`opus`], [`speex`]), [`plc`] (concealment for codecs that
//! have none), [`resample`], [`jitter`], [`pipeline`].

pub mod call;
pub mod codec;
pub mod g711;
pub mod g722;
pub mod g729;
pub mod jitter;
pub mod opus;
pub mod pipeline;
pub mod plc;
pub mod resample;
pub mod speex;

#[cfg(test)]
mod golden_tests;

pub use codec::{Codec, CodecError};
pub use pipeline::{Transcoder, TranscoderConfig};
