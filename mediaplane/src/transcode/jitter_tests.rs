use super::*;

const MS: u64 = 1_000_000;

fn pay(seq: u16) -> [u8; 4] {
    let b = seq.to_be_bytes();
    [b[0], b[1], 0xAA, 0x55]
}

fn seq_of(p: &Pop<'_>) -> Option<u16> {
    match p {
        Pop::Packet { payload, .. } => Some(u16::from_be_bytes([payload[0], payload[1]])),
        _ => None,
    }
}

#[test]
fn in_order_stream_plays_in_order_after_prefill() {
    let mut jb = JitterBuffer::new(JitterConfig::default(), 8000, 160);
    assert_eq!(jb.pop(), Pop::Wait, "empty buffer waits");
    jb.insert(0, 0, 0, &pay(0));
    assert_eq!(
        jb.pop(),
        Pop::Wait,
        "one packet is not yet the packet played plus the margin"
    );
    for i in 1..10u16 {
        jb.insert(i as u64 * 20 * MS, i, i as u32 * 160, &pay(i));
        assert_eq!(
            seq_of(&jb.pop()),
            Some(i - 1),
            "one packet waits behind the one played"
        );
    }
    assert_eq!(jb.stats().lost, 0);
}

#[test]
fn reordered_packets_are_played_in_sequence() {
    let mut jb = JitterBuffer::new(JitterConfig::default(), 8000, 160);
    for i in [0u16, 2, 1, 3] {
        jb.insert(0, i, i as u32 * 160, &pay(i));
    }
    let got: Vec<_> = (0..4).map(|_| seq_of(&jb.pop())).collect();
    assert_eq!(got, vec![Some(0), Some(1), Some(2), Some(3)]);
}

#[test]
fn a_gap_with_later_packets_is_a_loss_with_the_next_payload() {
    let mut jb = JitterBuffer::new(JitterConfig::default(), 8000, 160);
    jb.insert(0, 10, 0, &pay(10));
    jb.insert(0, 12, 320, &pay(12));
    assert_eq!(seq_of(&jb.pop()), Some(10));
    match jb.pop() {
        Pop::Lost { next: Some(p) } => assert_eq!(p, &pay(12)),
        other => panic!("expected a loss, got {other:?}"),
    }
    assert_eq!(seq_of(&jb.pop()), Some(12));
    assert_eq!(jb.stats().lost, 1);
}

#[test]
fn an_underrun_rebuffers_and_late_packets_are_dropped() {
    let mut jb = JitterBuffer::new(JitterConfig::default(), 8000, 160);
    jb.insert(0, 0, 0, &pay(0));
    jb.insert(20 * MS, 1, 160, &pay(1));
    assert_eq!(seq_of(&jb.pop()), Some(0));
    assert_eq!(seq_of(&jb.pop()), Some(1), "the margin plays out");
    assert_eq!(jb.pop(), Pop::Wait, "nothing buffered: underrun, not loss");
    assert_eq!(jb.stats().underruns, 1);
    assert_eq!(jb.stats().lost, 0);
    jb.insert(60 * MS, 2, 320, &pay(2));
    assert_eq!(
        jb.pop(),
        Pop::Wait,
        "rebuffering to the packet played plus the margin"
    );
    jb.insert(80 * MS, 3, 480, &pay(3));
    assert_eq!(
        seq_of(&jb.pop()),
        Some(2),
        "the late-but-not-lost packet still plays"
    );
    jb.insert(100 * MS, 2, 320, &pay(2));
    assert_eq!(jb.stats().late, 1);
}

#[test]
fn sequence_numbers_wrap() {
    let mut jb = JitterBuffer::new(JitterConfig::default(), 8000, 160);
    jb.insert(0, 65533, 0, &pay(65533));
    assert_eq!(jb.pop(), Pop::Wait);
    for k in 1..6u32 {
        let s = 65533u16.wrapping_add(k as u16);
        jb.insert(k as u64 * 20 * MS, s, k * 160, &pay(s));
        assert_eq!(seq_of(&jb.pop()), Some(s.wrapping_sub(1)));
    }
    assert_eq!(jb.stats().lost + jb.stats().late, 0);
}

#[test]
fn jitter_raises_the_target_within_bounds() {
    let mut jb = JitterBuffer::new(JitterConfig::default(), 8000, 160);
    assert_eq!(jb.target_ms(), 20);
    for i in 0..200u16 {
        // Alternate 0 and 15 ms of extra delay.
        let extra = if i % 2 == 0 { 0 } else { 15 * MS };
        jb.insert(i as u64 * 20 * MS + extra, i, i as u32 * 160, &pay(i));
        jb.pop();
    }
    let t = jb.target_ms();
    assert!(t > 20 && t <= 60, "target {t} ms");
}

#[test]
fn oversize_and_duplicate_packets_are_counted() {
    let mut jb = JitterBuffer::new(JitterConfig::default(), 8000, 160);
    jb.insert(0, 1, 0, &[0u8; MAX_PAYLOAD + 1]);
    jb.insert(0, 2, 0, &pay(2));
    jb.insert(0, 2, 0, &pay(2));
    assert_eq!(jb.stats().oversize, 1);
    assert_eq!(jb.stats().duplicate, 1);
}
