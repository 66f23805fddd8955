//! Wavegate's media plane: a sans-IO relay core and a thin io_uring driver.
//!
//! - [`sdp`]: parse, rewrite and write SIP-side SDP.
//! - [`rtp`]: zero-allocation RTP/RTCP views and the RFC 5761 demultiplexer.
//! - [`ports`]: port ranges, shard slices and the pair allocator.
//! - [`call`]: endpoints, rewriters, payload-type maps.
//! - [`relay`]: a shard's calls and the per-packet function [`relay::Relay::on_packet`].
//! - [`transcode`]: audio transcoding core (codecs, resampling, jitter buffer, pipeline).
//! - [`control`]: command frames in, reply frames out.
//! - [`io`] (driver): one pinned thread per shard running an io_uring loop: sockets, control, timers.
//!
//! Everything but `io` takes time as an argument and touches no sockets, so it is tested and
//! benchmarked in-process.

pub mod call;
pub mod control;
pub mod io;
pub mod ports;
pub mod relay;
pub mod rtp;
pub mod sdp;
pub mod transcode;
pub mod webrtc;
