//! The host side of the control channel: async request/reply over a shard's rings.
//!
//! One reader task per shard drains its event ring, completes pending requests by request id
//! and forwards unsolicited [`MediaEvent`]s. Writers share a shard's command ring behind a
//! short mutex (the control path is not the packet path). When the rings break (a corrupt
//! frame, the media plane gone) every pending request fails with [`ClientError::Closed`] and
//! the client reports itself broken, so its owner can restart the media plane.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::sync::{Notify, mpsc, oneshot};

use crate::clock::monotonic_ns;
use crate::doorbell::Doorbell;
use crate::ids::{CallId, RequestId, ShardId};
use crate::protocol::{self, ControlError, FrameError, Incoming, MediaEvent, Request};
use crate::region::{HostChannel, Region, RegionError};
use crate::ring::{Consumer, Producer, RingError};

/// Why a request did not get a successful reply.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The media plane answered with an error.
    #[error("media plane refused: {0}")]
    Remote(#[from] ControlError),
    /// No reply within the deadline.
    #[error("no reply from {shard} within {after:?}")]
    Timeout { shard: ShardId, after: Duration },
    /// The channel is closed (media plane gone or being restarted).
    #[error("control channel closed")]
    Closed,
    /// The shard index is out of range.
    #[error("no such shard {0}")]
    NoShard(ShardId),
    /// Encoding or decoding a frame failed.
    #[error("control frame: {0}")]
    Frame(#[from] FrameError),
    /// The command ring refused the frame.
    #[error("command ring: {0}")]
    Ring(#[from] RingError),
    /// Setting up the client failed.
    #[error("control region: {0}")]
    Region(#[from] RegionError),
    /// Registering the doorbell with the runtime failed.
    #[error("doorbell: {0}")]
    Io(#[from] std::io::Error),
}

type ReplySlot = oneshot::Sender<Result<(u8, Vec<u8>), ClientError>>;

struct ShardLink {
    commands: Mutex<Producer>,
    doorbell: Arc<AsyncFd<Doorbell>>,
    pending: Arc<Mutex<HashMap<u64, ReplySlot>>>,
}

struct Inner {
    region: Region,
    shards: Vec<ShardLink>,
    next_id: AtomicU64,
    closed: AtomicBool,
    close_notify: Notify,
    timeout: Duration,
}

/// A cloneable handle to the media plane's control channel.
#[derive(Clone)]
pub struct ControlClient {
    inner: Arc<Inner>,
}

/// Events from every shard, tagged with their shard.
pub type EventReceiver = mpsc::UnboundedReceiver<(ShardId, MediaEvent)>;

impl ControlClient {
    /// Takes the host ends of `region` and starts one reader task per shard on the current
    /// tokio runtime. `doorbells[k]` is the host end of shard k's doorbell pair.
    pub fn start(region: Region, doorbells: Vec<Doorbell>, timeout: Duration) -> Result<(Self, EventReceiver), ClientError> {
        let channels = region.take_host_channels()?;
        if channels.len() != doorbells.len() {
            return Err(ClientError::Region(RegionError::Geometry(format!(
                "{} shards but {} doorbells",
                channels.len(),
                doorbells.len()
            ))));
        }
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let mut links = Vec::new();
        let mut readers = Vec::new();
        for (HostChannel { shard, commands, events, .. }, bell) in channels.into_iter().zip(doorbells) {
            // SAFETY: the doorbell owns its fd, which stays open until the AsyncFd drops it.
            let doorbell = Arc::new(unsafe { AsyncFd::register(bell) }.map_err(std::io::Error::from)?);
            let pending = Arc::new(Mutex::new(HashMap::new()));
            readers.push((shard, events, doorbell.clone(), pending.clone()));
            links.push(ShardLink { commands: Mutex::new(commands), doorbell, pending });
        }
        let client = ControlClient {
            inner: Arc::new(Inner {
                region,
                shards: links,
                next_id: AtomicU64::new(1),
                closed: AtomicBool::new(false),
                close_notify: Notify::new(),
                timeout,
            }),
        };
        for (shard, events, doorbell, pending) in readers {
            let client = client.clone();
            let tx = events_tx.clone();
            tokio::spawn(async move { client.read_events(shard, events, doorbell, pending, tx).await });
        }
        Ok((client, events_rx))
    }

    /// Number of shards.
    pub fn shard_count(&self) -> u16 {
        self.inner.shards.len() as u16
    }

    /// The shard that owns `call`.
    pub fn shard_for(&self, call: &CallId) -> ShardId {
        ShardId::for_call(call, self.shard_count())
    }

    /// The mapped region (heartbeats, shard states).
    pub fn region(&self) -> &Region {
        &self.inner.region
    }

    /// Time since `shard`'s last heartbeat; `None` if it never beat or does not exist.
    pub fn heartbeat_age(&self, shard: ShardId) -> Option<Duration> {
        let beat = self.inner.region.shard(shard)?.heartbeat_ns();
        (beat != 0).then(|| Duration::from_nanos(monotonic_ns().saturating_sub(beat)))
    }

    /// Whether the channel is closed (by [`close`](Self::close) or a broken ring).
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    /// Closes the channel: pending and future requests fail with [`ClientError::Closed`].
    pub fn close(&self) {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        self.inner.close_notify.notify_waiters();
        for link in &self.inner.shards {
            if let Ok(mut pending) = link.pending.lock() {
                for (_, slot) in pending.drain() {
                    let _ = slot.send(Err(ClientError::Closed));
                }
            }
        }
    }

    /// Sends `req` to `shard` and waits for its typed reply.
    pub async fn request<R: Request>(&self, shard: ShardId, req: &R) -> Result<R::Reply, ClientError> {
        let link = self.inner.shards.get(usize::from(shard.0)).ok_or(ClientError::NoShard(shard))?;
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let mut frame = Vec::with_capacity(256);
        protocol::encode_request(RequestId(id), req, &mut frame)?;
        let (tx, rx) = oneshot::channel();
        lock(&link.pending).insert(id, tx);
        let deadline = tokio::time::Instant::now() + self.inner.timeout;
        if let Err(e) = self.push(link, &frame, deadline).await {
            lock(&link.pending).remove(&id);
            return Err(e);
        }
        let reply = match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(reply)) => reply?,
            Ok(Err(_)) => return Err(ClientError::Closed),
            Err(_) => {
                lock(&link.pending).remove(&id);
                return Err(ClientError::Timeout { shard, after: self.inner.timeout });
            }
        };
        let (kind, body) = reply;
        Ok(protocol::decode_reply::<R>(kind, &body)??)
    }

    async fn push(&self, link: &ShardLink, frame: &[u8], deadline: tokio::time::Instant) -> Result<(), ClientError> {
        loop {
            if self.is_closed() {
                return Err(ClientError::Closed);
            }
            let pushed = lock(&link.commands).try_push(frame);
            match pushed {
                Ok(wake) => {
                    if wake {
                        link.doorbell.get_ref().ring();
                    }
                    return Ok(());
                }
                Err(RingError::Full) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_micros(200)).await;
                }
                Err(RingError::Full) => return Err(ClientError::Ring(RingError::Full)),
                Err(e) => {
                    self.close();
                    return Err(e.into());
                }
            }
        }
    }

    async fn read_events(
        self,
        shard: ShardId,
        mut events: Consumer,
        doorbell: Arc<AsyncFd<Doorbell>>,
        pending: Arc<Mutex<HashMap<u64, ReplySlot>>>,
        tx: mpsc::UnboundedSender<(ShardId, MediaEvent)>,
    ) {
        let mut buf = Vec::with_capacity(4096);
        while !self.is_closed() {
            match events.try_pop(&mut buf) {
                Ok(true) => {
                    self.dispatch(shard, &buf, &pending, &tx);
                    continue;
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(%shard, error = %e, "event ring broken; closing control channel");
                    self.close();
                    return;
                }
            }
            if !events.prepare_sleep() {
                continue;
            }
            let closed = self.inner.close_notify.notified();
            tokio::select! {
                ready = doorbell.readable() => match ready {
                    Ok(mut guard) => {
                        guard.get_inner().drain();
                        guard.clear_ready();
                    }
                    Err(e) => {
                        tracing::error!(%shard, error = %e, "doorbell failed; closing control channel");
                        self.close();
                        return;
                    }
                },
                _ = closed => return,
            }
            events.woke();
        }
    }

    fn dispatch(
        &self,
        shard: ShardId,
        frame: &[u8],
        pending: &Mutex<HashMap<u64, ReplySlot>>,
        tx: &mpsc::UnboundedSender<(ShardId, MediaEvent)>,
    ) {
        match protocol::decode_incoming(frame) {
            Ok(Incoming::Reply { id, kind, body }) => match lock(pending).remove(&id.0) {
                Some(slot) => {
                    let _ = slot.send(Ok((kind, body.to_vec())));
                }
                None => tracing::debug!(%shard, id = id.0, "reply to a request nobody waits for (timed out?)"),
            },
            Ok(Incoming::Event(event)) => {
                let _ = tx.send((shard, event));
            }
            Err(e) => tracing::warn!(%shard, error = %e, "dropping malformed event frame"),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding these locks leaves plain data behind; keep going with it.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
