use super::*;
use proptest::prelude::*;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// The RFC 3711 Appendix B.3 master key and salt.
fn rfc_master() -> MasterKey {
    let mut m = MasterKey { key: [0; 16], salt: [0; 14] };
    m.key.copy_from_slice(&hex("E1F97A0D3E018BE0D64FA32C06DE4139"));
    m.salt.copy_from_slice(&hex("0EC675AD498AFEEBB6960B3AABE6"));
    m
}

#[test]
fn rfc3711_b3_key_derivation() {
    let crypto = str0m::crypto::from_feature_flags();
    let m = rfc_master();
    let mut key = [0u8; 16];
    derive(&crypto, &m, LABEL_RTP_KEY, &mut key);
    assert_eq!(key.to_vec(), hex("C61E7A93744F39EE10734AFE3FF7A087"));
    let mut salt = [0u8; 14];
    derive(&crypto, &m, LABEL_RTP_SALT, &mut salt);
    assert_eq!(salt.to_vec(), hex("30CBBC08863D8C85D49DB34A9AE1"));
    let mut auth = [0u8; 20];
    derive(&crypto, &m, LABEL_RTP_AUTH, &mut auth);
    assert_eq!(auth.to_vec(), hex("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4"));
}

/// libsrtp's reference packet for AES_CM_128_HMAC_SHA1_80 with the RFC 3711 key
/// (srtp_driver: plaintext 800f1234 decafbad cafebabe + 16 x ab).
#[test]
fn reference_packet_protects_to_the_known_ciphertext() {
    let m = rfc_master();
    let mut s = SrtpSession::new(SrtpSuite::AesCm128HmacSha1_80, &m, &m);
    let mut buf = [0u8; 64];
    let plain = hex("800f1234decafbadcafebabeabababababababababababababababab");
    buf[..plain.len()].copy_from_slice(&plain);
    let n = s.protect_rtp(&mut buf, plain.len(), 12).unwrap();
    assert_eq!(buf[..n].to_vec(), hex("800f1234decafbadcafebabe4e55dc4ce79978d88ca4d215949d2402b78d6acc99ea179b8dbb"));
    let mut wire = buf[..n].to_vec();
    assert_eq!(s.unprotect_rtp(&mut wire, 12), Ok(plain.len()));
    assert_eq!(wire[..plain.len()].to_vec(), plain);
}

fn pair(suite: SrtpSuite) -> (SrtpSession, SrtpSession) {
    let a = MasterKey { key: [1; 16], salt: [2; 14] };
    let b = MasterKey { key: [3; 16], salt: [4; 14] };
    (SrtpSession::new(suite, &a, &b), SrtpSession::new(suite, &b, &a))
}

fn rtp(seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0x80, 0, 0, 0, 0, 0, 0, 160, 0, 0, 0x12, 0x34];
    v[2..4].copy_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

#[test]
fn round_trip_tamper_replay_and_rollover_for_both_suites() {
    for suite in [SrtpSuite::AesCm128HmacSha1_80, SrtpSuite::AesCm128HmacSha1_32] {
        let (mut tx, mut rx) = pair(suite);
        let mut last = None;
        // Across the 16-bit wrap: the rollover counter must follow on both sides.
        for seq in (65_530u16..=65_535).chain(0..6) {
            let plain = rtp(seq, &[seq as u8; 33]);
            let mut buf = vec![0u8; 128];
            buf[..plain.len()].copy_from_slice(&plain);
            let n = tx.protect_rtp(&mut buf, plain.len(), 12).unwrap();
            assert_eq!(n, plain.len() + suite.rtp_tag_len());
            assert_ne!(buf[12..plain.len()], plain[12..], "encrypted");
            let mut wire = buf[..n].to_vec();
            let mut tampered = wire.clone();
            tampered[20] ^= 1;
            assert_eq!(rx.unprotect_rtp(&mut tampered, 12), Err(SrtpError::Auth), "bad auth dropped");
            assert_eq!(rx.unprotect_rtp(&mut wire.clone(), 12), Ok(plain.len()));
            assert_eq!(rx.unprotect_rtp(&mut wire, 12), Err(SrtpError::Replay), "replay dropped");
            last = Some(buf[..n].to_vec());
        }
        // A stranger (other keys) fails authentication.
        let plain = rtp(7, &[9; 20]);
        let mut buf = vec![0u8; 64];
        buf[..plain.len()].copy_from_slice(&plain);
        let n = tx.protect_rtp(&mut buf, plain.len(), 12).unwrap();
        let k = MasterKey { key: [7; 16], salt: [9; 14] };
        let mut stranger = SrtpSession::new(suite, &k, &k);
        assert_eq!(stranger.unprotect_rtp(&mut buf[..n].to_vec(), 12), Err(SrtpError::Auth));
        assert!(last.is_some());
    }
}

#[test]
fn srtcp_round_trip_tamper_and_replay() {
    let (mut tx, mut rx) = pair(SrtpSuite::AesCm128HmacSha1_32);
    let rr = [
        0x81, 201, 0, 7, 0, 0, 0x51, 0x51, 1, 2, 3, 4, 25, 0, 0, 3, 0, 0, 0x10, 0, 0, 0, 0, 80, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    for _ in 0..3 {
        let mut buf = [0u8; 64];
        buf[..rr.len()].copy_from_slice(&rr);
        let n = tx.protect_rtcp(&mut buf, rr.len()).unwrap();
        assert_eq!(n, rr.len() + 14, "E+index and an 80-bit tag even for the _32 suite");
        assert_ne!(buf[8..rr.len()], rr[8..]);
        let mut bad = buf[..n].to_vec();
        bad[10] ^= 0x40;
        assert_eq!(rx.unprotect_rtcp(&mut bad), Err(SrtpError::Auth));
        let mut wire = buf[..n].to_vec();
        assert_eq!(rx.unprotect_rtcp(&mut wire.clone()), Ok(rr.len()));
        assert_eq!(wire.len(), n);
        assert_eq!(rx.unprotect_rtcp(&mut wire), Err(SrtpError::Replay));
    }
}

#[test]
fn replay_window_accepts_reordering_within_64() {
    let (mut tx, mut rx) = pair(SrtpSuite::AesCm128HmacSha1_80);
    let mut wires = Vec::new();
    for seq in 100u16..200 {
        let plain = rtp(seq, &[1; 10]);
        let mut buf = vec![0u8; 64];
        buf[..plain.len()].copy_from_slice(&plain);
        let n = tx.protect_rtp(&mut buf, plain.len(), 12).unwrap();
        wires.push(buf[..n].to_vec());
    }
    assert!(rx.unprotect_rtp(&mut wires[99].clone(), 12).is_ok());
    assert!(rx.unprotect_rtp(&mut wires[40].clone(), 12).is_ok(), "59 behind: in the window");
    assert_eq!(rx.unprotect_rtp(&mut wires[10].clone(), 12), Err(SrtpError::Replay), "89 behind: too old");
}

proptest! {
    #[test]
    fn arbitrary_input_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200), h in 0usize..40) {
        let (_, mut rx) = pair(SrtpSuite::AesCm128HmacSha1_80);
        let mut b = bytes.clone();
        let _ = rx.unprotect_rtp(&mut b, h);
        let mut b = bytes.clone();
        let _ = rx.unprotect_rtcp(&mut b);
        let (mut tx, _) = pair(SrtpSuite::AesCm128HmacSha1_32);
        let mut b = bytes.clone();
        b.resize(bytes.len() + 16, 0);
        let _ = tx.protect_rtp(&mut b, bytes.len(), h);
        let _ = tx.protect_rtcp(&mut b, bytes.len());
    }
}
