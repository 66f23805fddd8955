//! The driver: one OS thread per shard, pinned, running an io_uring event loop around the
//! sans-IO [`Relay`]. Everything that touches the kernel lives under this module.
//!
//! The loop waits in one `io_uring_enter` for any of: a datagram received by one of the shard's
//! UDP sockets (multishot `recvmsg` into a provided-buffer ring, [`batch`]), the doorbell
//! socket, or the next timer deadline (heartbeat every 250 ms, media-timeout scan every second).
//! Each datagram completion goes through the relay or the bridge ([`sockets`]); what they send
//! is queued as io_uring `send` requests that the same `io_uring_enter` submits before it
//! waits, so a wake-up costs one syscall however many packets it moves. The doorbell drains
//! the command ring through [`handle_frame_with`]. The shard owns all its state; nothing is
//! shared with other shards. With WebRTC enabled the shard also owns one WebRTC UDP socket and a [`Bridge`]; the
//! bridge's earliest leg timeout joins the wait deadline.
//!
//! Why not glommio here: with thousands of sockets its datagram path (one io_uring `recvmsg`
//! per packet plus a cancellation scan per re-arm) cost 17.8 µs of CPU per relayed packet at
//! 50k packets/s on this 2-core VM; one ring we drive ourselves, with no syscall per packet,
//! goes below the cost of a bare `recv` + `sendto` loop. See docs/architecture.md.

pub mod batch;
pub mod sockets;

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use io_uring::{IoUring, cqueue, opcode, squeue, types};
use wavegate_shared::ShardId;
use wavegate_shared::clock::monotonic_ns;
use wavegate_shared::doorbell::Doorbell;
use wavegate_shared::protocol::{self, ControlError, ErrorCode, MediaEvent};
use wavegate_shared::region::{GuestChannel, Region, ShardState};
use wavegate_shared::ring::{Consumer, Producer, RingError};

use crate::control::handle_frame_with;
use crate::relay::{Relay, RelayConfig};
use crate::webrtc::Clock;
use crate::webrtc::bridge::Bridge;
use crate::webrtc::leg::{LegAddr, generate_certificate};
use batch::send_slot;
use sockets::{SocketTable, TOKEN_REMOVE, TOKEN_WEBRTC};

/// Why a shard stopped.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    /// The io_uring instance could not be created or entered.
    #[error("io_uring for {shard}: {source}")]
    Uring {
        /// The shard.
        shard: ShardId,
        /// The OS error.
        source: std::io::Error,
    },
    /// The shard thread could not be started.
    #[error("thread for {shard}: {source}")]
    Thread {
        /// The shard.
        shard: ShardId,
        /// The OS error.
        source: std::io::Error,
    },
    /// The command or event ring is corrupt: the host is broken; it will restart us.
    #[error("control ring of {shard}: {source}")]
    Ring {
        /// The shard.
        shard: ShardId,
        /// What the ring said.
        source: RingError,
    },
    /// The doorbell failed.
    #[error("doorbell of {shard}: {source}")]
    Doorbell {
        /// The shard.
        shard: ShardId,
        /// The OS error.
        source: std::io::Error,
    },
    /// The region has no slot for this shard.
    #[error("region has no slot for {0}")]
    NoSlot(ShardId),
}

/// What one shard needs to run.
pub struct ShardSetup {
    /// Relay settings (shard id, port slice, announce address, timeouts).
    pub relay: RelayConfig,
    /// Address the RTP sockets bind to.
    pub bind_ip: IpAddr,
    /// CPU to pin to, or `None` for no pinning.
    pub cpu: Option<usize>,
    /// The process that spawned us; when it changes we exit.
    pub parent_pid: u32,
    /// The mapped region (heartbeat slot).
    pub region: Region,
    /// This shard's ring ends.
    pub channel: GuestChannel,
    /// This shard's doorbell end.
    pub doorbell: OwnedFd,
    /// The shard's WebRTC socket, or `None` for no WebRTC.
    pub webrtc: Option<WebRtcSetup>,
    /// Send to each port's destination from a second socket `connect()`ed to it
    /// (`media.connect_latched`, see [`sockets`]).
    pub connect_latched: bool,
}

/// Where a shard's WebRTC socket binds and what it announces.
#[derive(Debug, Clone, Copy)]
pub struct WebRtcSetup {
    /// Bind address (port 0 picks a free one).
    pub bind: SocketAddr,
    /// The IP written into the browser answer's host candidate (the port is the bound one).
    pub announce_ip: IpAddr,
    /// Periodic keyframe requests toward browsers for SIP video peers without RTCP feedback
    /// (milliseconds, 0 = off; `Bridge::set_keyframe_interval_ms`).
    pub keyframe_interval_ms: u32,
    /// Calls whose sides share no codec are transcoded (`Bridge::set_transcoding`).
    pub transcoding: bool,
    /// Opus settings and jitter range of transcoded calls (`Bridge::set_transcode_settings`).
    pub transcode: crate::transcode::call::CallSettings,
}

const HEARTBEAT_NS: u64 = 250_000_000;
const TIMEOUT_TICK_NS: u64 = 1_000_000_000;
/// Retry interval while the event ring is full.
const FULL_RETRY_NS: u64 = 1_000_000;
const RING_ENTRIES: u32 = 4096;
const CQ_ENTRIES: u32 = 32768;
/// Wake-up coalescing: a waiting shard wakes when [`COALESCE_EVENTS`] events are ready, or
/// [`COALESCE_WINDOW_US`] after it went to sleep if at least one is (io_uring's minimum wait,
/// Linux 6.12+), or at once for an event that arrives after the window. Under load a wake-up
/// then moves tens of packets (its fixed cost, ~5 µs of scheduling and `io_uring_enter` here,
/// was most of a packet's cost at one packet per wake-up); an idle shard adds no delay; a busy
/// one adds at most the window to a packet (the relay's p99 target is 1 ms).
const COALESCE_WINDOW_US: u32 = 200;
/// See [`COALESCE_WINDOW_US`].
const COALESCE_EVENTS: usize = 64;
const TOKEN_DOORBELL: u64 = u64::MAX;

/// Starts the shard on its own pinned thread; the handle yields the shard's outcome.
pub fn spawn_shard(setup: ShardSetup) -> Result<std::thread::JoinHandle<Result<(), IoError>>, IoError> {
    let shard = setup.relay.shard;
    std::thread::Builder::new()
        .name(format!("wavegate-{shard}"))
        .spawn(move || {
            if let Some(cpu) = setup.cpu {
                pin_to(cpu, shard);
            }
            let outcome = run_shard(setup);
            if let Err(e) = &outcome {
                // One broken shard means a broken control channel: let the host restart us all.
                tracing::error!(%shard, error = %e, "shard failed; exiting");
                std::process::exit(1);
            }
            outcome
        })
        .map_err(|source| IoError::Thread { shard, source })
}

fn pin_to(cpu: usize, shard: ShardId) {
    // SAFETY: cpu_set_t is plain data; CPU_SET bounds-checks against its size.
    let ok = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    };
    if !ok {
        tracing::warn!(%shard, cpu, error = %std::io::Error::last_os_error(), "cannot pin shard; running unpinned");
    }
}

/// One shard's state, owned by its thread.
struct Shard {
    id: ShardId,
    relay: Relay,
    sockets: SocketTable,
    commands: Consumer,
    events: Producer,
    /// Frames that found the event ring full, in order.
    outbox: VecDeque<Vec<u8>>,
    bell: Doorbell,
    frame: Vec<u8>,
    reply: Vec<u8>,
    timeouts: Vec<MediaEvent>,
    bridge: Option<Bridge>,
}

/// Binds the WebRTC socket and builds the bridge (certificate, clock).
fn webrtc_bridge(id: ShardId, setup: WebRtcSetup, sockets: &mut SocketTable, announce_ip: IpAddr) -> Option<Bridge> {
    let bound = match sockets.open_webrtc(setup.bind) {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(shard = %id, addr = %setup.bind, error = %e, "cannot bind the WebRTC socket; WebRTC disabled");
            return None;
        }
    };
    let cert = match generate_certificate() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(shard = %id, error = %e, "WebRTC disabled");
            return None;
        }
    };
    // Instant is CLOCK_MONOTONIC on Linux, so `base + monotonic_ns()` is the real instant.
    let Some(base) = Instant::now().checked_sub(Duration::from_nanos(monotonic_ns())) else {
        tracing::error!(shard = %id, "cannot align the WebRTC clock; WebRTC disabled");
        return None;
    };
    let addr = LegAddr { bind: bound, announce: SocketAddr::new(setup.announce_ip, bound.port()) };
    tracing::info!(shard = %id, bind = %bound, announce = %addr.announce, "WebRTC socket open");
    let mut bridge = Bridge::new(Clock::new(base), addr, cert, announce_ip);
    bridge.set_keyframe_interval_ms(setup.keyframe_interval_ms);
    bridge.set_transcoding(setup.transcoding);
    bridge.set_transcode_settings(setup.transcode);
    Some(bridge)
}

fn run_shard(setup: ShardSetup) -> Result<(), IoError> {
    let ShardSetup { relay: config, bind_ip, cpu: _, parent_pid, region, channel, doorbell, webrtc, connect_latched } =
        setup;
    let id = config.shard;
    let uring_err = |source| IoError::Uring { shard: id, source };
    let slot = region.shard(id).ok_or(IoError::NoSlot(id))?;
    let bell = Doorbell::from_fd(doorbell).map_err(|source| IoError::Doorbell { shard: id, source })?;
    let pairs = config.ports.pairs() as usize;
    let first = config.ports.first;
    let seed = monotonic_ns() ^ (u64::from(id.0) << 48) ^ u64::from(std::process::id());
    let GuestChannel { commands, events, .. } = channel;
    let announce_ip = config.announce_ip;
    let mut shard = Shard {
        id,
        relay: Relay::new(config, seed),
        sockets: SocketTable::new(first, 2 * pairs, bind_ip).map_err(uring_err)?,
        commands,
        events,
        outbox: VecDeque::new(),
        bell,
        frame: Vec::with_capacity(4096),
        reply: Vec::with_capacity(4096),
        timeouts: Vec::new(),
        bridge: None,
    };
    // Declared after the socket table so it is dropped first: the kernel lets go of the
    // receive buffers and send slots before they are freed.
    let mut ring: IoUring<squeue::Entry, cqueue::Entry> = IoUring::builder()
        .setup_cqsize(CQ_ENTRIES)
        .setup_single_issuer()
        .setup_defer_taskrun()
        .build(RING_ENTRIES)
        .map_err(uring_err)?;
    shard.sockets.register(&ring.submitter()).map_err(uring_err)?;
    shard.sockets.set_connect_latched(connect_latched);
    let coalesce = ring.params().is_feature_min_timeout();
    if !coalesce {
        tracing::warn!(shard = %id, "kernel without io_uring minimum wait (Linux < 6.12): one wake-up per event");
    }
    shard.bridge = webrtc.and_then(|w| webrtc_bridge(id, w, &mut shard.sockets, announce_ip));
    let bell_poll = opcode::PollAdd::new(types::Fd(shard.bell.as_raw_fd()), libc::POLLIN as u32)
        .multi(true)
        .build()
        .user_data(TOKEN_DOORBELL);
    push_entries(&mut ring, std::iter::once(bell_poll.clone())).map_err(uring_err)?;

    slot.set_state(ShardState::Running, std::process::id());
    slot.beat(monotonic_ns(), 0);
    tracing::info!(shard = %id, ports = %shard.relay.config().ports, "shard running");

    let mut next_beat = monotonic_ns() + HEARTBEAT_NS;
    let mut next_scan = monotonic_ns() + TIMEOUT_TICK_NS;
    let mut ready: Vec<(u64, i32, u32)> = Vec::with_capacity(CQ_ENTRIES as usize);
    loop {
        // Commands first: they may open sockets whose polls must be submitted below.
        shard.drain_commands()?;
        let now = monotonic_ns();
        // The batch's sends (and any arms or cancellations) go in with the wait below.
        if shard.sockets.has_pending() {
            push_entries(&mut ring, shard.sockets.take_pending(now)).map_err(uring_err)?;
        }

        let mut deadline = next_beat.min(next_scan);
        if let Some(b) = &shard.bridge {
            deadline = deadline.min(b.next_deadline());
        }
        if !shard.outbox.is_empty() {
            deadline = deadline.min(now + FULL_RETRY_NS);
        }
        // Sleep only with the command ring's sleeping flag raised (see shared::ring).
        let may_sleep = ring.completion().is_empty() && shard.commands.prepare_sleep();
        let wait = if may_sleep { deadline.saturating_sub(now) } else { 0 };
        let ts = types::Timespec::new().sec(wait / 1_000_000_000).nsec((wait % 1_000_000_000) as u32);
        // Sends complete during the submission itself (MSG_DONTWAIT: never parked), so their
        // completions are added to the events waited for, all in one enter.
        let (args, batch) = if coalesce && may_sleep {
            (types::SubmitArgs::new().timespec(&ts).min_wait_usec(COALESCE_WINDOW_US), COALESCE_EVENTS)
        } else {
            (types::SubmitArgs::new().timespec(&ts), 1)
        };
        let want = shard.sockets.sends_in_flight() + batch;
        match ring.submitter().submit_with_args(want, &args) {
            Ok(_) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME | libc::EINTR | libc::EBUSY)) => {}
            Err(e) => return Err(uring_err(e)),
        }
        shard.sockets.submitted();
        if may_sleep {
            shard.commands.woke();
        }

        ready.clear();
        ready.extend(ring.completion().map(|cqe| (cqe.user_data(), cqe.result(), cqe.flags())));
        let now = monotonic_ns();
        for &(token, res, flags) in &ready {
            match token {
                TOKEN_DOORBELL => {
                    shard.bell.drain();
                    if !cqueue::more(flags) {
                        push_entries(&mut ring, std::iter::once(bell_poll.clone())).map_err(uring_err)?;
                    }
                }
                TOKEN_REMOVE => {}
                TOKEN_WEBRTC => shard.sockets.on_webrtc_recv(res, flags, shard.bridge.as_mut(), now),
                token => match send_slot(token) {
                    Some(slot) => shard.sockets.on_send_done(slot, res),
                    None => shard.sockets.on_recv(token, res, flags, &mut shard.relay, shard.bridge.as_mut(), now),
                },
            }
        }
        shard.sockets.publish_buffers();

        if let Some(b) = shard.bridge.as_mut() {
            b.on_timeout(now, &mut shard.sockets);
        }
        if now >= next_beat {
            next_beat = now + HEARTBEAT_NS;
            let calls = shard.relay.call_count() + shard.bridge.as_ref().map_or(0, Bridge::call_count);
            slot.beat(now, calls as u32);
            if rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get() as u32) != parent_pid {
                tracing::error!(shard = %id, "parent process is gone; exiting");
                std::process::exit(3);
            }
        }
        if now >= next_scan {
            next_scan = now + TIMEOUT_TICK_NS;
            shard.scan_timeouts(now)?;
        } else if shard.bridge.as_ref().is_some_and(Bridge::has_events) {
            // DTMF heard on the packet path goes out now, not at the next scan.
            if let Some(b) = shard.bridge.as_mut() {
                b.take_events(&mut shard.timeouts);
            }
            shard.send_events()?;
        }
        shard.flush_outbox()?;
    }
}

/// Pushes entries to the submission queue (one queue sync per batch), submitting when it is
/// full.
fn push_entries(ring: &mut IoUring, entries: impl Iterator<Item = squeue::Entry>) -> std::io::Result<()> {
    let mut entries = entries.peekable();
    while entries.peek().is_some() {
        {
            let mut sq = ring.submission();
            while !sq.is_full() {
                let Some(entry) = entries.next() else { break };
                // SAFETY: entries reference descriptors kept open until submitted (the socket
                // table's `closed` list), the table's receive ring (alive as long as the
                // ring) and send slots owned by their request until its completion.
                if unsafe { sq.push(&entry) }.is_err() {
                    unreachable!("checked not full");
                }
            }
        }
        if entries.peek().is_some() {
            ring.submit()?;
        }
    }
    Ok(())
}

impl Shard {
    fn ring_err(&self, source: RingError) -> IoError {
        IoError::Ring { shard: self.id, source }
    }

    fn drain_commands(&mut self) -> Result<(), IoError> {
        loop {
            match self.commands.try_pop(&mut self.frame) {
                Ok(true) => {}
                Ok(false) => return Ok(()),
                Err(e) => return Err(self.ring_err(e)),
            }
            let handled = handle_frame_with(
                &mut self.relay,
                self.bridge.as_mut(),
                monotonic_ns(),
                &self.frame,
                &mut self.sockets,
                &mut self.reply,
            );
            if let Err(e) = handled {
                tracing::error!(shard = %self.id, error = %e, "cannot encode a reply");
                continue;
            }
            let reply = std::mem::take(&mut self.reply);
            self.send_frame(&reply)?;
            self.reply = reply;
        }
    }

    fn scan_timeouts(&mut self, now: u64) -> Result<(), IoError> {
        self.relay.poll_timeouts(now, &mut self.timeouts);
        if let Some(b) = self.bridge.as_mut() {
            b.poll_timeouts(now, &mut self.timeouts);
        }
        self.send_events()
    }

    /// Sends the events collected in `timeouts` to the host.
    fn send_events(&mut self) -> Result<(), IoError> {
        let found = std::mem::take(&mut self.timeouts);
        for event in &found {
            if let MediaEvent::MediaTimeout { call, idle_secs } = event {
                tracing::info!(shard = %self.id, %call, idle_secs, "media timeout");
            }
            let mut frame = Vec::new();
            match protocol::encode_event(event, &mut frame) {
                Ok(()) => self.send_frame(&frame)?,
                Err(e) => tracing::error!(shard = %self.id, error = %e, "cannot encode event"),
            }
        }
        self.timeouts = found;
        self.timeouts.clear();
        Ok(())
    }

    /// Sends a frame to the host, queueing it behind earlier frames when the ring is full.
    fn send_frame(&mut self, frame: &[u8]) -> Result<(), IoError> {
        if !self.outbox.is_empty() {
            self.outbox.push_back(frame.to_vec());
            return Ok(());
        }
        match self.events.try_push(frame) {
            Ok(wake) => {
                if wake {
                    self.bell.ring();
                }
                Ok(())
            }
            Err(RingError::Full) => {
                self.outbox.push_back(frame.to_vec());
                Ok(())
            }
            Err(RingError::TooLarge { len, max }) => {
                // A reply too big for a frame (a huge SDP): fail the request instead.
                if let Ok((header, _)) = protocol::split_frame(&self.frame) {
                    let e = ControlError::new(
                        ErrorCode::Internal,
                        format!("reply of {len} bytes exceeds the {max}-byte frame cap"),
                    );
                    let mut out = Vec::new();
                    if protocol::encode_error_reply(header.kind, header.id, &e, &mut out).is_ok() {
                        return self.send_frame(&out);
                    }
                }
                Ok(())
            }
            Err(e) => Err(self.ring_err(e)),
        }
    }

    fn flush_outbox(&mut self) -> Result<(), IoError> {
        while let Some(frame) = self.outbox.front() {
            match self.events.try_push(frame) {
                Ok(wake) => {
                    if wake {
                        self.bell.ring();
                    }
                    self.outbox.pop_front();
                }
                Err(RingError::Full) => return Ok(()),
                Err(e) => return Err(self.ring_err(e)),
            }
        }
        Ok(())
    }
}
