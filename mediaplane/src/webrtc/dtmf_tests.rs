use super::*;
use proptest::prelude::*;

const MS: u64 = 1_000_000;

#[test]
fn rfc4733_payload_example() {
    // RFC 4733 §2.3 layout: event 5 ("5"), E set, volume 10, duration 800 (100 ms at 8 kHz).
    let bytes = [5u8, 0x80 | 10, 0x03, 0x20];
    let ev = TelephoneEvent::parse(&bytes).unwrap();
    assert_eq!(ev, TelephoneEvent { event: 5, end: true, volume: 10, duration: 800 });
    assert_eq!(ev.to_bytes(), bytes);
    // The reserved bit (0x40) is ignored on input and written as 0.
    let ev = TelephoneEvent::parse(&[11, 0x40 | 7, 0, 160, 0xff]).unwrap();
    assert_eq!((ev.event, ev.end, ev.volume, ev.duration), (11, false, 7, 160));
    assert_eq!(ev.to_bytes(), [11, 7, 0, 160]);
    assert_eq!(TelephoneEvent::parse(&[1, 2, 3]), Err(DtmfError::Short(3)));
}

#[test]
fn digits_and_codes() {
    let digits = "0123456789*#ABCD";
    for (code, d) in digits.chars().enumerate() {
        assert_eq!(digit_of(code as u8), Some(d));
        assert_eq!(event_of(d), Ok(code as u8));
    }
    assert_eq!(event_of('b'), Ok(13));
    assert_eq!(digit_of(16), None, "flash is not a digit");
    assert!(event_of('x').is_err());
}

#[test]
fn rescale_between_clock_rates() {
    assert_eq!(rescale(4800, 48_000, 8_000), 800);
    assert_eq!(rescale(800, 8_000, 48_000), 4800);
    assert_eq!(rescale(20_000, 8_000, 48_000), u16::MAX, "saturates");
    assert_eq!(rescale(123, 8_000, 8_000), 123);
}

/// Runs a sender on a 1 ms virtual clock and returns (time ms, packet) for everything it sent.
fn run(mut s: DtmfSender, start_ms: u64, until_ms: u64) -> Vec<(u64, DtmfPacket)> {
    let mut out = Vec::new();
    for t in start_ms..until_ms {
        while let Some(p) = s.poll(t * MS) {
            out.push((t, p));
        }
    }
    assert!(s.is_done(), "finished by {until_ms} ms");
    assert_eq!(s.deadline(), u64::MAX);
    out
}

fn check_train(packets: &[(u64, DtmfPacket)], clock: u32, duration_ms: u32, ts: u32) {
    let full = (u64::from(duration_ms) * u64::from(clock) / 1000) as u16;
    let (first_t, first) = packets[0];
    assert!(first.marker && !first.event.end && first.event.duration == 0, "start: {first:?}");
    assert_eq!(first_t, 1000);
    let ends: Vec<_> = packets.iter().filter(|(_, p)| p.event.end).collect();
    assert_eq!(ends.len(), 3, "three end packets");
    for (t, p) in &ends {
        assert_eq!((*t, p.event.duration), (1000 + u64::from(duration_ms), full));
    }
    let conts: Vec<_> = packets[1..].iter().filter(|(_, p)| !p.event.end).collect();
    assert_eq!(conts.len(), (duration_ms as usize - 1) / 50, "one continuation per 50 ms");
    let mut last = 0;
    for (i, (t, p)) in conts.iter().enumerate() {
        assert!(!p.marker);
        assert_eq!(*t, 1000 + 50 * (i as u64 + 1), "every 50 ms");
        assert_eq!(u64::from(p.event.duration), (t - 1000) * u64::from(clock) / 1000);
        assert!(p.event.duration > last);
        last = p.event.duration;
    }
    assert!(packets.iter().all(|(_, p)| p.timestamp == ts && p.event.event == 5 && !p.marker || p == &first));
    assert!(packets.iter().filter(|(_, p)| p.marker).count() == 1);
}

#[test]
fn sender_train_at_8k_and_48k() {
    for clock in [8_000, 48_000] {
        let s = DtmfSender::new('5', 160, 1000 * MS, 4242, clock).unwrap();
        check_train(&run(s, 1000, 2000), clock, 160, 4242);
        let s = DtmfSender::new('5', 100, 1000 * MS, 7, clock).unwrap();
        check_train(&run(s, 1000, 2000), clock, 100, 7);
    }
}

#[test]
fn sender_refuses_bad_digits_and_durations() {
    assert!(matches!(DtmfSender::new('x', 100, 0, 0, 8000), Err(DtmfError::Digit('x'))));
    assert!(DtmfSender::new('1', 10, 0, 0, 8000).is_err(), "too short");
    assert!(DtmfSender::new('1', 8000, 0, 0, 8000).is_ok(), "64000 ticks fit");
    assert!(DtmfSender::new('1', 1400, 0, 0, 48_000).is_err(), "67200 ticks do not");
}

#[test]
fn late_poll_sends_current_duration_not_a_backlog() {
    let mut s = DtmfSender::new('1', 200, 0, 0, 8000).unwrap();
    assert!(s.poll(0).unwrap().marker);
    let p = s.poll(130 * MS).unwrap();
    assert_eq!(p.event.duration, 1040, "130 ms at 8 kHz");
    assert!(s.poll(130 * MS).is_none(), "one packet for the missed continuations");
    assert_eq!(s.deadline(), 180 * MS);
}

#[test]
fn detector_reports_once_per_event() {
    let mut d = DtmfDetector::default();
    let mut got = Vec::new();
    let ev = |event, end, duration| TelephoneEvent { event, end, volume: 10, duration };
    // Digit 7 at ts 1000: start, continuations, three ends.
    for (end, dur) in [(false, 0), (false, 400), (false, 800), (true, 960), (true, 960), (true, 960)] {
        d.on_packet(1000, ev(7, end, dur), 8000, |c, ms| got.push((c, ms)));
    }
    assert_eq!(got, vec![('7', 120)]);
    // Digit # at 48 kHz whose end packets are all lost: reported when the next event starts.
    d.on_packet(9000, ev(11, false, 4800), 48_000, |c, ms| got.push((c, ms)));
    d.on_packet(9000, ev(11, false, 9600), 48_000, |c, ms| got.push((c, ms)));
    assert_eq!(got.len(), 1);
    d.on_packet(20_000, ev(1, false, 0), 48_000, |c, ms| got.push((c, ms)));
    assert_eq!(got, vec![('7', 120), ('#', 200)]);
    // A late packet of the reported event changes nothing; the new one ends normally.
    d.on_packet(9000, ev(11, true, 9600), 48_000, |c, ms| got.push((c, ms)));
    d.on_packet(20_000, ev(1, true, 2400), 48_000, |c, ms| got.push((c, ms)));
    d.on_packet(20_000, ev(1, true, 2400), 48_000, |c, ms| got.push((c, ms)));
    assert_eq!(got, vec![('7', 120), ('#', 200), ('1', 50)]);
}

#[test]
fn detector_reads_what_the_sender_writes() {
    for clock in [8_000, 48_000] {
        let s = DtmfSender::new('D', 240, 1000 * MS, 55, clock).unwrap();
        let mut d = DtmfDetector::default();
        let mut got = Vec::new();
        for (_, p) in run(s, 1000, 2000) {
            let ev = TelephoneEvent::parse(&p.event.to_bytes()).unwrap();
            d.on_packet(p.timestamp, ev, clock, |c, ms| got.push((c, ms)));
        }
        assert_eq!(got, vec![('D', 240)]);
    }
}

proptest! {
    #[test]
    fn parse_never_panics_and_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..16)) {
        match TelephoneEvent::parse(&bytes) {
            Ok(ev) => {
                let mut expect = [bytes[0], bytes[1] & 0xbf, bytes[2], bytes[3]];
                expect[1] &= 0xbf;
                prop_assert_eq!(ev.to_bytes(), expect);
            }
            Err(e) => prop_assert_eq!(e, DtmfError::Short(bytes.len())),
        }
    }

    #[test]
    fn detector_reports_each_event_once(events in proptest::collection::vec((0u8..16, 1u16..2000, 1usize..4), 1..10)) {
        let mut d = DtmfDetector::default();
        let mut got = Vec::new();
        for (i, (code, dur, ends)) in events.iter().enumerate() {
            let ts = 10_000 * i as u32;
            for k in 0..3u16 {
                d.on_packet(ts, TelephoneEvent { event: *code, end: false, volume: 0, duration: dur / 3 * k }, 8000, |c, _| got.push(c));
            }
            for _ in 0..*ends {
                d.on_packet(ts, TelephoneEvent { event: *code, end: true, volume: 0, duration: *dur }, 8000, |c, _| got.push(c));
            }
        }
        let want: Vec<char> = events.iter().filter_map(|(c, _, _)| digit_of(*c)).collect();
        prop_assert_eq!(got, want);
    }
}
