//! Fuzzes the STUN header + USERNAME parser the WebRTC demultiplexer runs on every datagram, and
//! the demultiplexer itself: no panic, and a returned ufrag is a colon-free slice of the input.
#![no_main]

use std::net::SocketAddr;

use libfuzzer_sys::fuzz_target;
use wavegate_mediaplane::webrtc::demux::{Demux, LegId};
use wavegate_mediaplane::webrtc::stun;

fuzz_target!(|data: &[u8]| {
    let _ = stun::looks_like_stun(data);
    let _ = stun::message_type(data);
    let _ = stun::username(data);
    if let Ok(ufrag) = stun::local_ufrag(data) {
        assert!(!ufrag.is_empty() && ufrag.len() <= stun::MAX_USERNAME);
        assert!(!ufrag.contains(&b':'));
    }
    // The integrity walk (the HMAC itself is the crypto provider's; a stand-in is enough to
    // exercise the bounds of what it is fed).
    let _ = stun::integrity_ok(data, b"pw", |_, parts: &[&[u8]]| {
        let covered: usize = parts.iter().map(|p| p.len()).sum();
        assert!(covered <= data.len());
        [0; 20]
    });
    let mut demux = Demux::new();
    let _ = demux.insert(LegId(1), "abcd");
    let remote = SocketAddr::from(([127, 0, 0, 1], 5000));
    let local = SocketAddr::from(([127, 0, 0, 1], 40000));
    let _ = demux.route(remote, local, data);
    let _ = demux.route(remote, local, data);
});
