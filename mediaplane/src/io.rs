//! The driver: one glommio executor per shard, the sockets of its port pairs, and the
//! control, heartbeat and media-timeout tasks. Everything glommio-specific lives here.
//!
//! A shard owns a [`Relay`] in a `RefCell`; tasks are cooperative on one thread, and no task
//! awaits while holding a borrow, so a borrow never fails. Each open port pair has two UDP
//! sockets with one receive task each. A receive task does recv -> borrow -> `on_packet` ->
//! release -> `send_to` from the other leg's socket, with no allocation in between. Deleting a
//! call drops the tasks (glommio cancels a dropped task) and with them the sockets.
//!
//! The control task sleeps on the shard's doorbell (a datagram socket read through glommio's
//! `UnixStream`, which polls and recv(2)s any socket fd) after raising the ring's sleeping flag, so an
//! idle media plane uses no CPU.

use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr, UdpSocket as StdUdpSocket};
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::rc::Rc;
use std::time::Duration;

use futures_lite::AsyncReadExt;
use glommio::net::{UdpSocket, UnixStream};
use glommio::{LocalExecutorBuilder, Placement, Task};
use wavegate_shared::ShardId;
use wavegate_shared::clock::monotonic_ns;
use wavegate_shared::doorbell::Doorbell;
use wavegate_shared::protocol::{self, ControlError, ErrorCode, MediaEvent};
use wavegate_shared::region::{GuestChannel, Region, ShardState};
use wavegate_shared::ring::{Producer, RingError};

use crate::control::handle_frame;
use crate::relay::{PortSockets, Relay, RelayConfig, Verdict};

/// Why a shard stopped.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    /// The executor could not be built or joined (io_uring, memlock, CPU placement).
    #[error("executor for {shard}: {reason}")]
    Executor {
        /// The shard.
        shard: ShardId,
        /// glommio's message.
        reason: String,
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
}

const HEARTBEAT: Duration = Duration::from_millis(250);
const TIMEOUT_TICK: Duration = Duration::from_secs(1);
const SOCKET_BUFFER: usize = 2 << 20;
/// Largest datagram a receive task reads; RTP over UDP fits in an Ethernet MTU.
const RECV_BUF: usize = 2048;
/// Pushing to a full event ring: pause this long between tries, at most this many times.
const FULL_PAUSE: Duration = Duration::from_micros(200);
const FULL_TRIES: u32 = 50_000;
/// Consecutive receive errors after which a socket's task gives up.
const MAX_RECV_ERRORS: u32 = 1000;

/// Starts the shard on its own thread; the handle yields the shard's outcome.
pub fn spawn_shard(setup: ShardSetup) -> Result<glommio::ExecutorJoinHandle<Result<(), IoError>>, IoError> {
    let shard = setup.relay.shard;
    let placement = match setup.cpu {
        Some(cpu) => Placement::Fixed(cpu),
        None => Placement::Unbound,
    };
    LocalExecutorBuilder::new(placement)
        .name(&format!("wavegate-{shard}"))
        .io_memory(2 << 20)
        .spawn(move || async move {
            let outcome = run_shard(setup).await;
            if let Err(e) = &outcome {
                // One broken shard means a broken control channel: let the host restart us all.
                tracing::error!(%shard, error = %e, "shard failed; exiting");
                std::process::exit(1);
            }
            outcome
        })
        .map_err(|e| IoError::Executor { shard, reason: e.to_string() })
}

struct Shared {
    shard: ShardId,
    relay: RefCell<Relay>,
    sockets: RefCell<SocketTable>,
    events: RefCell<Producer>,
    bell: Doorbell,
}

/// The sockets of a shard's port slice, indexed by `port - first`.
struct SocketTable {
    first: u16,
    bind_ip: IpAddr,
    sockets: Vec<Option<Rc<UdpSocket>>>,
    tasks: Vec<Option<Task<()>>>,
}

impl SocketTable {
    #[inline]
    fn get(&self, port: u16) -> Option<&Rc<UdpSocket>> {
        let i = usize::from(port.checked_sub(self.first)?);
        self.sockets.get(i)?.as_ref()
    }
}

fn bind_socket(ip: IpAddr, port: u16) -> std::io::Result<UdpSocket> {
    let std_sock = StdUdpSocket::bind(SocketAddr::new(ip, port))?;
    std_sock.set_nonblocking(true)?;
    // Best effort: the kernel caps these at net.core.[rw]mem_max.
    let _ = rustix::net::sockopt::set_socket_recv_buffer_size(&std_sock, SOCKET_BUFFER);
    let _ = rustix::net::sockopt::set_socket_send_buffer_size(&std_sock, SOCKET_BUFFER);
    // SAFETY: the fd comes from a freshly bound UDP socket whose ownership moves here.
    Ok(unsafe { UdpSocket::from_raw_fd(std_sock.into_raw_fd()) })
}

/// The driver's side of port allocation: binds sockets and starts their receive tasks.
struct Opener<'a> {
    shared: &'a Rc<Shared>,
}

impl PortSockets for Opener<'_> {
    fn open(&mut self, rtp_port: u16) -> std::io::Result<()> {
        let mut table = self.shared.sockets.borrow_mut();
        let ip = table.bind_ip;
        let rtp = Rc::new(bind_socket(ip, rtp_port)?);
        let rtcp = Rc::new(bind_socket(ip, rtp_port.wrapping_add(1))?);
        for (port, sock) in [(rtp_port, rtp), (rtp_port.wrapping_add(1), rtcp)] {
            let Some(i) = port.checked_sub(table.first).map(usize::from).filter(|i| *i < table.sockets.len()) else {
                return Err(std::io::Error::other(format!("port {port} outside this shard's slice")));
            };
            let task = glommio::spawn_local(receive_loop(self.shared.clone(), sock.clone(), port));
            table.sockets[i] = Some(sock);
            table.tasks[i] = Some(task);
        }
        Ok(())
    }

    fn close(&mut self, rtp_port: u16) {
        let mut table = self.shared.sockets.borrow_mut();
        for port in [rtp_port, rtp_port.wrapping_add(1)] {
            if let Some(i) = port.checked_sub(table.first).map(usize::from).filter(|i| *i < table.sockets.len()) {
                table.sockets[i] = None;
                // Dropping a glommio task cancels it; its socket closes with it.
                table.tasks[i] = None;
            }
        }
    }
}

async fn receive_loop(shared: Rc<Shared>, sock: Rc<UdpSocket>, port: u16) {
    let mut buf = [0u8; RECV_BUF];
    let mut errors = 0u32;
    loop {
        let (n, src) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                // ICMP port-unreachable from an earlier send surfaces here; keep going.
                errors += 1;
                if errors >= MAX_RECV_ERRORS {
                    tracing::warn!(shard = %shared.shard, port, error = %e, "socket keeps failing; stopping its receiver");
                    return;
                }
                continue;
            }
        };
        errors = 0;
        let verdict = shared.relay.borrow_mut().on_packet(monotonic_ns(), port, src, &mut buf[..n]);
        if let Verdict::Forward(f) = verdict {
            let out = shared.sockets.borrow().get(f.out_port).cloned();
            if let Some(out) = out
                && let Err(e) = out.send_to(&buf[..f.len], f.dst).await
            {
                tracing::trace!(port = f.out_port, dst = %f.dst, error = %e, "send failed");
            }
        }
    }
}

async fn run_shard(setup: ShardSetup) -> Result<(), IoError> {
    let ShardSetup { relay: config, bind_ip, cpu: _, parent_pid, region, channel, doorbell } = setup;
    let shard = config.shard;
    let slot = region.shard(shard).ok_or(IoError::NoSlot(shard))?;
    slot.set_state(ShardState::Running, std::process::id());
    slot.beat(monotonic_ns(), 0);

    let bell_err = |source| IoError::Doorbell { shard, source };
    let bell = Doorbell::from_fd(doorbell).map_err(bell_err)?;
    let dup = rustix::io::fcntl_dupfd_cloexec(&bell, 3).map_err(|e| bell_err(e.into()))?;
    // glommio's UdpSocket insists on an inet peer address and its UnixDatagram cannot adopt
    // an fd; its UnixStream can, and reads by poll-for-readable + recv(2), which works the same
    // on a datagram socket.
    // SAFETY: `dup` is a fresh socket fd we own; glommio only polls and reads it.
    let bell_rx = unsafe { UnixStream::from_raw_fd(dup.into_raw_fd()) };

    let pairs = config.ports.pairs() as usize;
    let first = config.ports.first;
    let seed = monotonic_ns() ^ (u64::from(shard.0) << 48) ^ u64::from(std::process::id());
    let GuestChannel { commands, events, .. } = channel;
    let shared = Rc::new(Shared {
        shard,
        relay: RefCell::new(Relay::new(config, seed)),
        sockets: RefCell::new(SocketTable {
            first,
            bind_ip,
            sockets: (0..2 * pairs).map(|_| None).collect(),
            tasks: (0..2 * pairs).map(|_| None).collect(),
        }),
        events: RefCell::new(events),
        bell,
    });
    tracing::info!(%shard, ports = %shared.relay.borrow().config().ports, "shard running");

    let heartbeat = {
        let shared = shared.clone();
        let region = region.clone();
        glommio::spawn_local(async move {
            loop {
                if let Some(slot) = region.shard(shard) {
                    slot.beat(monotonic_ns(), shared.relay.borrow().call_count() as u32);
                }
                if rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get() as u32) != parent_pid {
                    tracing::error!(%shard, "parent process is gone; exiting");
                    std::process::exit(3);
                }
                glommio::timer::sleep(HEARTBEAT).await;
            }
        })
    };
    let timeouts = {
        let shared = shared.clone();
        glommio::spawn_local(async move {
            let mut found = Vec::new();
            let mut frame = Vec::new();
            loop {
                glommio::timer::sleep(TIMEOUT_TICK).await;
                shared.relay.borrow_mut().poll_timeouts(monotonic_ns(), &mut found);
                for event in found.drain(..) {
                    if let MediaEvent::MediaTimeout { call, idle_secs } = &event {
                        tracing::info!(%shard, %call, idle_secs, "media timeout");
                    }
                    match protocol::encode_event(&event, &mut frame) {
                        Ok(()) => {
                            if let Err(e) = push_frame(&shared, &frame).await {
                                tracing::error!(%shard, error = %e, "cannot queue event");
                            }
                        }
                        Err(e) => tracing::error!(%shard, error = %e, "cannot encode event"),
                    }
                }
            }
        })
    };
    let outcome = control_loop(&shared, commands, bell_rx).await;
    drop((heartbeat, timeouts));
    if let Some(slot) = region.shard(shard) {
        slot.set_state(ShardState::Stopped, std::process::id());
    }
    outcome
}

async fn push_frame(shared: &Shared, frame: &[u8]) -> Result<(), RingError> {
    for _ in 0..FULL_TRIES {
        let pushed = shared.events.borrow_mut().try_push(frame);
        match pushed {
            Ok(wake) => {
                if wake {
                    shared.bell.ring();
                }
                return Ok(());
            }
            Err(RingError::Full) => glommio::timer::sleep(FULL_PAUSE).await,
            Err(e) => return Err(e),
        }
    }
    Err(RingError::Full)
}

async fn control_loop(
    shared: &Rc<Shared>,
    mut commands: wavegate_shared::ring::Consumer,
    mut bell_rx: UnixStream,
) -> Result<(), IoError> {
    let shard = shared.shard;
    let mut frame = Vec::with_capacity(4096);
    let mut out = Vec::with_capacity(4096);
    let mut scratch = [0u8; 64];
    loop {
        match commands.try_pop(&mut frame) {
            Ok(true) => {
                let handled = {
                    let mut relay = shared.relay.borrow_mut();
                    handle_frame(&mut relay, monotonic_ns(), &frame, &mut Opener { shared }, &mut out)
                };
                if let Err(e) = handled {
                    tracing::error!(%shard, error = %e, "cannot encode a reply");
                    continue;
                }
                match push_frame(shared, &out).await {
                    Ok(()) => {}
                    Err(RingError::TooLarge { len, max }) => {
                        // The reply does not fit a frame (a huge SDP): fail the request instead.
                        if let Ok((header, _)) = protocol::split_frame(&frame) {
                            let e = ControlError::new(ErrorCode::Internal, format!("reply of {len} bytes exceeds the {max}-byte frame cap"));
                            if protocol::encode_error_reply(header.kind, header.id, &e, &mut out).is_ok() {
                                push_frame(shared, &out).await.map_err(|source| IoError::Ring { shard, source })?;
                            }
                        }
                    }
                    Err(source) => return Err(IoError::Ring { shard, source }),
                }
                // Many frames in a row must not starve the packet tasks.
                glommio::executor().yield_if_needed().await;
                continue;
            }
            Ok(false) => {}
            Err(source) => return Err(IoError::Ring { shard, source }),
        }
        if !commands.prepare_sleep() {
            continue;
        }
        match bell_rx.read(&mut scratch).await {
            Ok(0) => {
                // Not a doorbell datagram (the peer end misbehaves): do not spin on it.
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
            Ok(_) => {}
            Err(source) => return Err(IoError::Doorbell { shard, source }),
        }
        shared.bell.drain();
        commands.woke();
    }
}
