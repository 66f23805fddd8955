use super::*;

const MS: u64 = 1_000_000;

#[test]
fn an_idle_direction_stops_its_timer_and_resumes_on_the_same_clock() {
    let mut tc = Transcoder::new(TranscoderConfig::new(Codec::Pcmu, Codec::Pcma)).expect("tc");
    let payload = [0xFFu8; 160];
    let mut out = [0u8; 1500];
    let mut last = None;
    // One second of packets, then nothing.
    for k in 0..50u64 {
        tc.push(k * 20 * MS, k as u16, (k * 160) as u32, &payload);
        while let Some(p) = tc.poll(k * 20 * MS, &mut out).expect("poll") {
            last = Some(p.ts);
        }
    }
    let mut now = 50 * 20 * MS;
    let mut wakeups = 0;
    while let Some(d) = tc.next_deadline() {
        assert!(wakeups < 200, "the timer never stopped");
        now = now.max(d);
        tc.poll(now, &mut out).expect("poll");
        wakeups += 1;
    }
    // About a second of concealment and silence, then no more deadlines.
    assert!((45..=60).contains(&wakeups), "{wakeups} wake-ups before stopping");
    let stopped_at = now;
    // Ten seconds later the sender comes back: the timer restarts, the first packet has the
    // marker and a timestamp that kept counting through the pause.
    let back = stopped_at + 10_000 * MS;
    tc.push(back, 50, 50 * 160, &payload);
    assert_eq!(tc.next_deadline(), Some(back));
    let mut first = None;
    for k in 0..5u64 {
        let t = back + k * 20 * MS;
        tc.push(t, 51 + k as u16, (51 + k as u32) * 160, &payload);
        if let Some(p) = tc.poll(t, &mut out).expect("poll") {
            first.get_or_insert(p);
        }
    }
    let first = first.expect("sending resumed");
    assert!(first.marker, "a talkspurt after the pause starts with the marker");
    let last = last.expect("sent before");
    let step = first.ts.wrapping_sub(last) as u64;
    let elapsed = (back - 49 * 20 * MS) / (20 * MS) * 160;
    assert!(step >= elapsed && step <= elapsed + 3 * 160, "timestamp step {step}, time elapsed {elapsed}");
}
