//! Drops at the WebRTC socket are counted by reason (`Bridge::drops`) and harm nothing: strangers,
//! malformed STUN, checks with the wrong password, forged and replayed SRTP.

use super::*;
use crate::webrtc::drops::srtp_id;
use crate::webrtc::stun;

/// Lets the browser send one RTP packet and returns its SRTP datagram without delivering it;
/// anything else it sends meanwhile goes to the bridge as usual.
fn capture_srtp(i: &mut Incoming, seq: u64) -> Vec<u8> {
    i.b.send(i.now, 8, seq, 160 * seq as u32, false, &[0xC0, seq as u8]);
    let browser: SocketAddr = BROWSER.parse().unwrap();
    for _ in 0..50 {
        i.b.rtc.handle_input(Input::Timeout(i.b.clock.instant(i.now))).unwrap();
        loop {
            match i.b.rtc.poll_output().unwrap() {
                Output::Timeout(_) => break,
                Output::Transmit(t) if srtp_id(&t.contents).is_some() => {
                    return t.contents.to_vec();
                }
                Output::Transmit(t) => i.bridge.on_webrtc_datagram(i.now, browser, &t.contents, &mut i.net),
                Output::Event(_) => {}
            }
        }
        i.now += MS;
    }
    panic!("the browser sent no SRTP");
}

/// A Binding request for `ufrag` whose MESSAGE-INTEGRITY is made with the wrong key.
fn forged_check(ufrag: &str) -> Vec<u8> {
    let name = format!("{ufrag}:brow");
    let mut msg = vec![0x00, 0x01, 0, 0];
    msg.extend_from_slice(&stun::MAGIC_COOKIE.to_be_bytes());
    msg.extend_from_slice(&[7; 12]);
    msg.extend_from_slice(&stun::ATTR_USERNAME.to_be_bytes());
    msg.extend_from_slice(&(name.len() as u16).to_be_bytes());
    msg.extend_from_slice(name.as_bytes());
    msg.resize(msg.len().div_ceil(4) * 4, 0);
    msg.extend_from_slice(&stun::ATTR_MESSAGE_INTEGRITY.to_be_bytes());
    msg.extend_from_slice(&20u16.to_be_bytes());
    msg.extend_from_slice(&[0x5A; 20]);
    let len = (msg.len() - stun::HEADER_LEN) as u16;
    msg[2..4].copy_from_slice(&len.to_be_bytes());
    msg
}

#[test]
fn each_kind_of_drop_is_counted_and_the_call_goes_on() {
    let mut i = incoming_call();
    let zero = WebRtcDrops::default();
    assert_eq!(i.bridge.drops(), &zero, "a real browser's checks, DTLS and nothing else: no drops");
    let browser: SocketAddr = BROWSER.parse().unwrap();
    let sip_peer: SocketAddr = SIP_PEER.parse().unwrap();

    // Media flows first (the SIP side latches, str0m learns the browser's SSRC).
    for seq in 1..=5u64 {
        i.b.send(i.now, 8, seq, 160 * seq as u32, false, &[0xB0, seq as u8]);
        i.now = run(&mut i.bridge, &mut i.b, &mut i.net, i.now, 20, |_, _| false);
    }
    let to_sip = i.net.to_sip.len();
    assert!(to_sip >= 4, "browser RTP reached the SIP side: {to_sip}");
    assert_eq!(i.bridge.drops(), &zero, "genuine SRTP is not counted as dropped");

    // A delivered SRTP packet, then the same bytes again: one replay.
    let srtp = capture_srtp(&mut i, 6);
    i.bridge.on_webrtc_datagram(i.now, browser, &srtp, &mut i.net);
    assert_eq!(i.net.to_sip.len(), to_sip + 1, "delivered once");
    i.bridge.on_webrtc_datagram(i.now, browser, &srtp, &mut i.net);
    assert_eq!(i.net.to_sip.len(), to_sip + 1, "not twice");
    assert_eq!(i.bridge.drops().srtp_replayed, 1);

    // A fresh packet with a flipped payload bit: authentication fails.
    let mut forged = capture_srtp(&mut i, 7);
    forged[14] ^= 0x01;
    i.bridge.on_webrtc_datagram(i.now, browser, &forged, &mut i.net);
    assert_eq!(i.net.to_sip.len(), to_sip + 1, "a forgery is not relayed");
    assert_eq!(i.bridge.drops().srtp_refused, 1);

    // Strangers: media from an unknown address, a check for an unknown ufrag.
    let stranger: SocketAddr = "127.0.0.1:59999".parse().unwrap();
    i.bridge.on_webrtc_datagram(i.now, stranger, &srtp, &mut i.net);
    i.bridge.on_webrtc_datagram(i.now, stranger, &forged_check("nobody"), &mut i.net);
    assert_eq!(i.bridge.drops().strangers, 2);

    // STUN whose length field lies, and a check for our ufrag signed with the wrong password.
    let mut broken = forged_check("x");
    broken[3] = 0xFF;
    i.bridge.on_webrtc_datagram(i.now, browser, &broken, &mut i.net);
    assert_eq!(i.bridge.drops().malformed_stun, 1);
    let ufrag = i.bridge.calls.iter().flatten().next().unwrap().leg.local_ufrag().to_owned();
    i.bridge.on_webrtc_datagram(i.now, browser, &forged_check(&ufrag), &mut i.net);
    i.bridge.on_webrtc_datagram(i.now, stranger, &forged_check(&ufrag), &mut i.net);
    assert_eq!(i.bridge.drops().stun_refused, 2);
    assert_eq!(i.bridge.drops().other, 0);

    // None of it hurt the call: media still flows both ways, the browser stays connected.
    let got = i.b.got.len();
    for n in 0..10u16 {
        let seq = 8 + u64::from(n);
        i.b.send(i.now, 8, seq, 160 * seq as u32, false, &[0xB1, n as u8]);
        let mut p = sip_rtp(8, 200 + n, 160 * u32::from(n), false, &[0xA1, n as u8]);
        assert!(i.bridge.on_sip_packet(i.now, i.sip_port, sip_peer, &mut p, &mut i.net));
        i.now = run(&mut i.bridge, &mut i.b, &mut i.net, i.now, 20, |_, _| false);
    }
    assert!(i.net.to_sip.len() >= to_sip + 1 + 9, "browser -> SIP goes on");
    assert!(i.b.got.len() >= got + 8, "SIP -> browser goes on");
    assert!(!i.b.disconnected && i.bridge.has_call(&i.call));
    let d = i.bridge.drops();
    assert_eq!((d.srtp_refused, d.srtp_replayed), (1, 1), "and genuine packets never counted: {d:?}");
}
