//! Two real processes talking through one control region: a million frames each way.
//!
//! The parent creates a deliberately small region (16 KiB rings, so `Full` and wrap-around
//! happen constantly), then re-executes this very test binary as the peer (`child_echo_peer`,
//! selected by `--exact` and an environment variable), handing it the memfd and one doorbell
//! end as inherited file descriptors. Each side pushes frames numbered 0..N of varying length
//! (the length and content are a pure function of the number) on its outgoing ring while
//! draining the other ring, and checks the incoming numbers are exactly 0, 1, 2, ... with the
//! expected length and bytes: nothing lost, duplicated, reordered or torn.
//!
//! Nobody spins: an idle side raises its sleeping flag and waits on the doorbell. The rings
//! have no "producer waiting for space" flag, so a side that drained frames rings the peer's
//! doorbell once per drained batch; a producer blocked on `Full` sleeps until then (with a
//! short timeout as a safety net).

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use wavegate_shared::doorbell::Doorbell;
use wavegate_shared::region::{Geometry, PROTOCOL_VERSION, Region, RegionError};
use wavegate_shared::ring::{Consumer, Producer, RingError};

/// Set in the child's environment: "you are the peer"; the value is `<region fd>,<bell fd>`.
const ENV_CHILD: &str = "WAVEGATE_TWO_PROCESS_CHILD";
/// Frames each side sends.
const FRAMES: u64 = 1_000_000;
/// Hard bound on the whole exchange.
const DEADLINE: Duration = Duration::from_secs(120);
/// The largest frame; every 997th frame is this big to hit `Full` with a large frame.
const MAX_FRAME: usize = 4096;

fn geometry() -> Geometry {
    Geometry {
        shards: 1,
        command_ring_bytes: 16 << 10,
        event_ring_bytes: 16 << 10,
        max_frame: MAX_FRAME as u32,
    }
}

/// Length of frame `seq`: 8..=1031 bytes, pseudo-random, and the maximum now and then.
fn frame_len(seq: u64) -> usize {
    if seq % 997 == 996 {
        return MAX_FRAME;
    }
    let h = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
    8 + (h % 1024) as usize
}

/// Pattern bytes; frame `seq` carries `pattern[seq % 251 ..][..len - 8]` after its number.
fn pattern() -> Vec<u8> {
    (0..MAX_FRAME + 256).map(|i| (i * 7 + 3) as u8).collect()
}

fn build_frame(seq: u64, pattern: &[u8], out: &mut Vec<u8>) {
    let len = frame_len(seq);
    let off = (seq % 251) as usize;
    out.clear();
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&pattern[off..off + len - 8]);
}

fn check_frame(expected: u64, frame: &[u8], pattern: &[u8]) {
    assert!(
        frame.len() >= 8,
        "frame {expected}: only {} bytes",
        frame.len()
    );
    let seq = u64::from_le_bytes(frame[..8].try_into().unwrap());
    assert_eq!(
        seq, expected,
        "frames out of sequence (lost, duplicated or reordered)"
    );
    assert_eq!(frame.len(), frame_len(seq), "frame {seq}: wrong length");
    let off = (seq % 251) as usize;
    assert!(
        frame[8..] == pattern[off..off + frame.len() - 8],
        "frame {seq}: torn or corrupted payload"
    );
}

/// Runs one side: sends `FRAMES` on `tx`, expects `FRAMES` on `rx`. Returns how often it slept
/// and how often a push found the ring full.
/// `peer_failed` is polled while idle so a crashed peer fails the test at once.
fn exchange(
    mut tx: Producer,
    mut rx: Consumer,
    bell: &Doorbell,
    started: Instant,
    peer_failed: &mut dyn FnMut() -> Option<String>,
) -> (u64, u64) {
    let pattern = pattern();
    let mut out = Vec::with_capacity(MAX_FRAME);
    let mut inbuf = Vec::with_capacity(MAX_FRAME);
    let (mut next_tx, mut next_rx) = (0u64, 0u64);
    let (mut sleeps, mut fulls) = (0u64, 0u64);
    build_frame(0, &pattern, &mut out);
    while next_tx < FRAMES || next_rx < FRAMES {
        assert!(
            started.elapsed() < DEADLINE,
            "no completion within {DEADLINE:?}: sent {next_tx}, received {next_rx}"
        );
        let mut progressed = false;
        let mut blocked = false;
        for _ in 0..64 {
            if next_tx == FRAMES {
                break;
            }
            match tx.try_push(&out) {
                Ok(wake) => {
                    if wake {
                        bell.ring();
                    }
                    next_tx += 1;
                    progressed = true;
                    if next_tx < FRAMES {
                        build_frame(next_tx, &pattern, &mut out);
                    }
                }
                Err(RingError::Full) => {
                    fulls += 1;
                    blocked = true;
                    break;
                }
                Err(e) => panic!("push failed: {e}"),
            }
        }
        let mut drained = 0;
        while rx.try_pop(&mut inbuf).expect("pop failed") {
            check_frame(next_rx, &inbuf, &pattern);
            next_rx += 1;
            drained += 1;
        }
        if drained > 0 {
            // Space was freed: the peer may be blocked on a full ring.
            bell.ring();
            progressed = true;
        }
        if progressed && !blocked {
            continue;
        }
        if next_tx == FRAMES && next_rx == FRAMES {
            break;
        }
        if let Some(why) = peer_failed() {
            panic!("peer gone after we sent {next_tx} and received {next_rx}: {why}");
        }
        if rx.prepare_sleep() {
            sleeps += 1;
            bell.wait(Duration::from_millis(if blocked { 2 } else { 50 }))
                .expect("doorbell wait");
            rx.woke();
        }
    }
    (sleeps, fulls)
}

/// The peer process. Only does something when started by `million_frames_each_way_between_two_processes`.
#[test]
#[ignore = "peer process of million_frames_each_way_between_two_processes; not a test on its own"]
fn child_echo_peer() {
    let Ok(spec) = std::env::var(ENV_CHILD) else {
        return;
    };
    let fds: Vec<RawFd> = spec
        .split(',')
        .map(|s| s.parse().expect("fd number"))
        .collect();
    // SAFETY: the parent passed these two descriptors to us and nobody else owns them here.
    let (region_fd, bell_fd) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let region = Region::attach(region_fd).expect("attach");
    assert_eq!(region.geometry(), geometry());
    let bell = Doorbell::from_fd(bell_fd).expect("doorbell");
    let mut guest = region.take_guest_channels().expect("guest channels");
    let ch = guest.remove(0);
    let (sleeps, fulls) = exchange(ch.events, ch.commands, &bell, Instant::now(), &mut || None);
    eprintln!("child: slept {sleeps} times, hit Full {fulls} times");
}

#[test]
fn million_frames_each_way_between_two_processes() {
    let started = Instant::now();
    let region = Region::create(geometry()).expect("create region");
    let (parent_bell, child_bell) = Doorbell::pair().expect("doorbell pair");
    let inherit = [region.fd().as_raw_fd(), child_bell.as_raw_fd()];
    let mut child = Command::new(std::env::current_exe().expect("current exe"));
    child
        .args([
            "--exact",
            "child_echo_peer",
            "--ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(ENV_CHILD, format!("{},{}", inherit[0], inherit[1]))
        .stdin(Stdio::null())
        // The peer's harness chatter stays out of our output; its panics go to stderr.
        .stdout(Stdio::null());
    // SAFETY: the hook runs between fork and exec; the peer must not outlive a failed parent.
    unsafe {
        child.pre_exec(move || wavegate_shared::inherit::prepare_child(&inherit));
    }
    let mut child = child.spawn().expect("spawn peer");
    drop(child_bell);

    let mut host = region.take_host_channels().expect("host channels");
    let ch = host.remove(0);
    // The peer exiting early (a failed check panics there) is a failure here too.
    let mut peer_failed = || match child.try_wait() {
        Ok(Some(status)) if !status.success() => Some(format!("exited with {status}")),
        Ok(_) => None,
        Err(e) => Some(format!("cannot wait for it: {e}")),
    };
    let (sleeps, fulls) = exchange(
        ch.commands,
        ch.events,
        &parent_bell,
        started,
        &mut peer_failed,
    );

    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for peer") {
            break status;
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("peer did not exit within {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(status.success(), "peer failed: {status}");
    eprintln!(
        "parent: {FRAMES} frames each way in {:?}; slept {sleeps} times, hit Full {fulls} times",
        started.elapsed()
    );
    assert!(
        fulls > 0,
        "the ring never filled up: the Full path was not exercised"
    );
}

#[test]
fn peer_with_another_protocol_version_is_refused() {
    let host = Region::create(geometry()).expect("create region");
    // Rewrite the version word (bytes 8..12 of the header) through a second descriptor, as a
    // host built from another protocol version would have written it.
    let dup = rustix::io::fcntl_dupfd_cloexec(host.fd(), 0).expect("dup");
    let file = File::from(rustix::io::fcntl_dupfd_cloexec(host.fd(), 0).expect("dup"));
    file.write_at(&(PROTOCOL_VERSION + 1).to_le_bytes(), 8)
        .expect("write version");
    match Region::attach(dup) {
        Err(RegionError::VersionMismatch { found, expected }) => {
            assert_eq!(found, PROTOCOL_VERSION + 1);
            assert_eq!(expected, PROTOCOL_VERSION);
        }
        Err(other) => panic!("expected a version mismatch, got {other}"),
        Ok(_) => panic!("attached to a region of another protocol version"),
    }
    // And with the right version the same file attaches.
    file.write_at(&PROTOCOL_VERSION.to_le_bytes(), 8)
        .expect("write version");
    let again = rustix::io::fcntl_dupfd_cloexec(host.fd(), 0).expect("dup");
    assert!(Region::attach(again).is_ok());
}
