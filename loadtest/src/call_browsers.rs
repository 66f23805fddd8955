//! The `call` scenario's browser threads (see call.rs): each drives its str0m browsers from an
//! epoll set, fed by [`Cmd`]s from the call tasks (add, start sending, stop, remove), paces
//! their audio probes (or Opus frames, transcoded calls) and `vp8` browsers' video frames, and
//! hands each call's [`CallMedia`] back when it is removed or the run stops.
//!
//! Bounded: at most 256 commands and 64 ready sockets per turn, the loop ends on `stop`; after a
//! stall a call catches up at most one period rather than bursting.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::mpsc as tmpsc;
use wavegate_shared::clock::monotonic_ns;

use crate::browser::{Browser, BrowserEvent, Epoll};
use crate::call::{Cmd, Counters};
use crate::call_report::{CallMedia, Jitter};
use crate::relay::RunError;
use crate::sipp_audio::MarkerLoop;
use crate::wire::{Direction, Probe};

/// Sleep when a browser thread found nothing to do.
const IDLE: Duration = Duration::from_micros(200);

fn io_err(e: impl std::fmt::Display) -> RunError {
    RunError::Io(std::io::Error::other(e.to_string()))
}

/// The browser threads of a run: `threads` (1-16) threads each running [`browser_thread`],
/// fed by the returned senders (one per thread); each reports finished calls on `done`.
pub(crate) struct BrowserThreads {
    pub senders: Vec<mpsc::Sender<Cmd>>,
    pub workers: Vec<std::thread::JoinHandle<Result<(), RunError>>>,
}

impl BrowserThreads {
    pub(crate) fn spawn(
        threads: usize,
        done: &tmpsc::UnboundedSender<CallMedia>,
        stop: &Arc<AtomicBool>,
        counters: &Arc<Counters>,
        (pps, payload): (u32, usize),
        frames: &Arc<MarkerLoop>,
    ) -> std::io::Result<Self> {
        let mut senders = Vec::new();
        let mut workers = Vec::new();
        for k in 0..threads.clamp(1, 16) {
            let (tx, rx) = mpsc::channel();
            senders.push(tx);
            let (done, stop, counters, frames) = (done.clone(), stop.clone(), counters.clone(), frames.clone());
            workers.push(
                std::thread::Builder::new()
                    .name(format!("browsers-{k}"))
                    .spawn(move || browser_thread(rx, done, stop, counters, pps, payload, frames))?,
            );
        }
        Ok(Self { senders, workers })
    }
}

/// Browser thread: drives its browsers until `stop`.
pub(crate) fn browser_thread(
    rx: mpsc::Receiver<Cmd>,
    done: tmpsc::UnboundedSender<CallMedia>,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    pps: u32,
    payload: usize,
    frames: Arc<MarkerLoop>,
) -> Result<(), RunError> {
    struct Live {
        b: Box<Browser>,
        media: CallMedia,
        call_sent_ns: u64,
        sending: bool,
    }
    let ep = Epoll::new()?;
    let mut live: HashMap<u32, Live> = HashMap::new();
    let period = 1_000_000_000 / u64::from(pps.max(1));
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 64];
    let mut buf = vec![0u8; 2048];
    let mut scratch = Vec::with_capacity(2048);
    let mut packet = Vec::with_capacity(2048);
    while !stop.load(Ordering::Relaxed) {
        let mut busy = false;
        // Bounded: at most 256 commands per turn.
        for _ in 0..256 {
            let Ok(cmd) = rx.try_recv() else { break };
            busy = true;
            match cmd {
                Cmd::Add(b, codec, call_sent_ns) => {
                    let index = b.index;
                    ep.add(b.fd(), u64::from(index))?;
                    let media = CallMedia {
                        codec,
                        transcoded: b.audio.is_some(),
                        sent: 0,
                        received: 0,
                        rtt_us: Histogram::new_with_bounds(1, 60_000_000, 2).map_err(io_err)?,
                        jitter: Jitter::default(),
                        connect_us: None,
                        audio: None,
                        video: None,
                    };
                    live.insert(
                        index,
                        Live {
                            b,
                            media,
                            call_sent_ns,
                            sending: false,
                        },
                    );
                }
                Cmd::Start(i) => {
                    if let Some(l) = live.get_mut(&i) {
                        l.sending = true;
                        // Spread first sends over one interval, by index.
                        l.b.next_send_ns = monotonic_ns() + period * u64::from(i % 64) / 64;
                        if let Some(v) = l.b.video.as_mut() {
                            v.tx.start(l.b.next_send_ns);
                        }
                    }
                }
                Cmd::Stop(i) => {
                    if let Some(l) = live.get_mut(&i) {
                        l.sending = false;
                        if let Some(v) = l.b.video.as_mut() {
                            v.tx.stop();
                        }
                    }
                }
                Cmd::Reoffer(i, sdp, reply) => {
                    let answer = match live.get_mut(&i) {
                        Some(l) => l.b.accept_reoffer(&sdp).map_err(|e| e.to_string()),
                        None => Err("no such browser".to_string()),
                    };
                    let _ = reply.send(answer);
                }
                Cmd::Remove(i) => {
                    if let Some(mut l) = live.remove(&i) {
                        ep.remove(l.b.fd());
                        l.media.audio = l.b.audio.as_mut().map(|a| a.finish(monotonic_ns()));
                        l.media.video = l.b.video.as_ref().map(|v| v.tx.call.clone());
                        let _ = done.send(l.media);
                    }
                }
            }
        }
        let n = ep.poll(&mut events);
        for ev in events.iter().take(n) {
            let Some(l) = live.get_mut(&(ev.u64 as u32)) else {
                continue;
            };
            let (media, sent_at) = (&mut l.media, l.call_sent_ns);
            let mut on = |_: &Browser, ev: BrowserEvent| on_event(media, sent_at, &counters, ev);
            let video_before = l.b.video.as_ref().map_or(0, |v| v.tx.call.received);
            busy |= l.b.receive(&mut buf, &mut scratch, &mut on);
            if let Some(v) = l.b.video.as_ref() {
                let got = v.tx.call.received.saturating_sub(video_before);
                counters.video_received.fetch_add(got, Ordering::Relaxed);
            }
        }
        let now = Instant::now();
        let now_ns = monotonic_ns();
        for l in live.values_mut() {
            let (media, sent_at) = (&mut l.media, l.call_sent_ns);
            let mut on = |_: &Browser, ev: BrowserEvent| on_event(media, sent_at, &counters, ev);
            if l.sending && l.b.connected && now_ns >= l.b.next_send_ns {
                l.b.next_send_ns += period;
                // Catch up at most one period after a stall rather than bursting.
                l.b.next_send_ns = l.b.next_send_ns.max(now_ns.saturating_sub(period));
                let probe = Probe {
                    stream: l.b.index,
                    direction: Direction::AToB,
                    seq: l.b.seq,
                    sent_ns: now_ns,
                };
                let sent = if l.b.audio.is_some() {
                    l.b.send_audio(&frames, &mut scratch, &mut on)
                } else {
                    l.b.send_probe(&probe, payload, &mut packet, &mut scratch, &mut on)
                };
                l.b.seq += 1;
                if sent {
                    l.media.sent += 1;
                    counters.sent.fetch_add(1, Ordering::Relaxed);
                }
                busy = true;
            }
            if l.sending && l.b.connected && l.b.video.is_some() {
                let (media, sent_at) = (&mut l.media, l.call_sent_ns);
                let mut on =
                    |_: &Browser, ev: BrowserEvent| on_event(media, sent_at, &counters, ev);
                let n = l.b.send_video(now_ns, &mut packet, &mut scratch, &mut on);
                counters
                    .video_sent
                    .fetch_add(u64::from(n), Ordering::Relaxed);
                busy |= n > 0;
            }
            let (media, sent_at) = (&mut l.media, l.call_sent_ns);
            let mut on = |_: &Browser, ev: BrowserEvent| on_event(media, sent_at, &counters, ev);
            busy |= l.b.tick(now, &mut scratch, &mut on);
        }
        if !busy {
            std::thread::sleep(IDLE);
        }
    }
    for (_, mut l) in live.drain() {
        l.media.audio = l.b.audio.as_mut().map(|a| a.finish(monotonic_ns()));
        l.media.video = l.b.video.as_ref().map(|v| v.tx.call.clone());
        let _ = done.send(l.media);
    }
    Ok(())
}

fn on_event(media: &mut CallMedia, call_sent_ns: u64, counters: &Counters, ev: BrowserEvent) {
    match ev {
        BrowserEvent::Connected => {
            media.connect_us = Some(monotonic_ns().saturating_sub(call_sent_ns) / 1000);
        }
        BrowserEvent::Probe { rx, now_ns } => {
            media.received += 1;
            counters.received.fetch_add(1, Ordering::Relaxed);
            let transit = now_ns.saturating_sub(rx.probe.sent_ns);
            let _ = media.rtt_us.record((transit / 1000).clamp(1, 60_000_000));
            media.jitter.observe(transit);
        }
        // Transcoded calls' audio (counted for the progress line; measured by the browser).
        BrowserEvent::NotProbe if media.transcoded => {
            counters.received.fetch_add(1, Ordering::Relaxed);
        }
        BrowserEvent::NotProbe | BrowserEvent::Error => {}
    }
}
