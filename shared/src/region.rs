//! The shared-memory region that carries the control channel.
//!
//! One memfd, created by the host (signalling or the load generator) and inherited by the
//! media plane. Layout, every offset 64-byte aligned:
//!
//! ```text
//! 0      RegionHeader  magic, protocol version, geometry, total length  (one page)
//! 4096   ShardSlot[n]  per shard: heartbeat, state, pid, call count      (64 B each)
//! page   per shard:    command ring (host -> shard), event ring (shard -> host)
//! ```
//!
//! [`Region::attach`] validates the header against the file before anything else touches it:
//! a wrong magic, another protocol version or inconsistent geometry is a [`RegionError`],
//! never a crash. The endpoints of each ring can be taken once per process and role
//! ([`Region::take_host_channels`] / [`Region::take_guest_channels`]).

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use memmap2::{MmapOptions, MmapRaw};
use rustix::fs::{MemfdFlags, fstat, ftruncate, memfd_create};

use crate::ids::ShardId;
use crate::ring::{self, Consumer, Producer, RING_HEADER_BYTES};

/// "WAVEGATE" in ASCII, little-endian.
pub const MAGIC: u64 = u64::from_le_bytes(*b"WAVEGATE");
/// Bumped on every incompatible change of the layout or of the message schema.
pub const PROTOCOL_VERSION: u32 = 7;
const PAGE: usize = 4096;
const SLOT_BYTES: usize = 64;
/// Most shards one region can describe.
pub const MAX_SHARDS: u16 = 256;
const MIN_RING: u32 = 4096;
const MAX_RING: u32 = 64 << 20;

/// Why a region could not be created or attached.
#[derive(Debug, thiserror::Error)]
pub enum RegionError {
    /// The operating system refused (memfd, ftruncate, mmap).
    #[error("shared memory: {0}")]
    Os(#[from] std::io::Error),
    /// The file does not start with the Wavegate magic.
    #[error("not a Wavegate control region (magic {0:#018x})")]
    BadMagic(u64),
    /// The other process speaks another protocol version.
    #[error("control protocol version mismatch: region has v{found}, this binary speaks v{expected}")]
    VersionMismatch { found: u32, expected: u32 },
    /// Sizes in the header are out of range or disagree with the file.
    #[error("bad region geometry: {0}")]
    Geometry(String),
    /// This process already took the endpoints for that role.
    #[error("ring endpoints already taken")]
    AlreadyTaken,
}

/// Sizes of the rings in a region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Number of media-plane shards.
    pub shards: u16,
    /// Data bytes of each command ring (power of two).
    pub command_ring_bytes: u32,
    /// Data bytes of each event ring (power of two).
    pub event_ring_bytes: u32,
    /// Largest frame either ring accepts.
    pub max_frame: u32,
}

impl Geometry {
    /// A geometry with 1 MiB rings and 64 KiB frames.
    pub fn with_shards(shards: u16) -> Self {
        Self { shards, command_ring_bytes: 1 << 20, event_ring_bytes: 1 << 20, max_frame: 64 << 10 }
    }

    fn validate(&self) -> Result<(), RegionError> {
        let bad = |m: String| Err(RegionError::Geometry(m));
        if self.shards == 0 || self.shards > MAX_SHARDS {
            return bad(format!("{} shards (1..={MAX_SHARDS})", self.shards));
        }
        for (name, size) in [("command", self.command_ring_bytes), ("event", self.event_ring_bytes)] {
            if !size.is_power_of_two() || !(MIN_RING..=MAX_RING).contains(&size) {
                return bad(format!("{name} ring of {size} bytes (power of two in {MIN_RING}..={MAX_RING})"));
            }
            if self.max_frame == 0 || u64::from(self.max_frame) * 4 > u64::from(size) {
                return bad(format!("frame cap {} over a quarter of the {name} ring", self.max_frame));
            }
        }
        Ok(())
    }

    fn shard_stride(&self) -> usize {
        2 * RING_HEADER_BYTES + self.command_ring_bytes as usize + self.event_ring_bytes as usize
    }

    fn rings_offset(&self) -> usize {
        (PAGE + usize::from(self.shards) * SLOT_BYTES).next_multiple_of(PAGE)
    }

    /// Total bytes of a region with this geometry.
    pub fn total_len(&self) -> usize {
        self.rings_offset() + usize::from(self.shards) * self.shard_stride()
    }
}

#[repr(C)]
struct RegionHeader {
    magic: AtomicU64,
    version: AtomicU32,
    shards: AtomicU32,
    command_ring_bytes: AtomicU32,
    event_ring_bytes: AtomicU32,
    max_frame: AtomicU32,
    _pad: AtomicU32,
    total_len: AtomicU64,
}

/// Lifecycle of a shard as it reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardState {
    /// Not attached yet.
    Starting,
    /// Serving.
    Running,
    /// Left in an orderly way.
    Stopped,
}

/// Per-shard status words written by the shard and read by the host.
#[repr(C, align(64))]
pub struct ShardSlot {
    heartbeat_ns: AtomicU64,
    state: AtomicU32,
    pid: AtomicU32,
    calls: AtomicU32,
}
const _: () = assert!(std::mem::size_of::<ShardSlot>() == SLOT_BYTES);

impl ShardSlot {
    /// Records a heartbeat at `now_ns` (CLOCK_MONOTONIC, see [`crate::clock`]).
    pub fn beat(&self, now_ns: u64, calls: u32) {
        self.calls.store(calls, Ordering::Relaxed);
        self.heartbeat_ns.store(now_ns, Ordering::Release);
    }
    /// Last heartbeat time, 0 if never.
    pub fn heartbeat_ns(&self) -> u64 {
        self.heartbeat_ns.load(Ordering::Acquire)
    }
    /// Calls the shard held at its last heartbeat.
    pub fn calls(&self) -> u32 {
        self.calls.load(Ordering::Relaxed)
    }
    /// Marks the shard's state and process id.
    pub fn set_state(&self, state: ShardState, pid: u32) {
        self.pid.store(pid, Ordering::Relaxed);
        self.state.store(state as u32, Ordering::Release);
    }
    /// The state the shard last reported.
    pub fn state(&self) -> ShardState {
        match self.state.load(Ordering::Acquire) {
            1 => ShardState::Running,
            2 => ShardState::Stopped,
            _ => ShardState::Starting,
        }
    }
}

struct Mapping {
    map: MmapRaw,
    fd: OwnedFd,
    geometry: Geometry,
    host_taken: AtomicBool,
    guest_taken: AtomicBool,
}

/// Occupancy of one shard's two rings ([`Region::ring_depths`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingDepths {
    /// Bytes queued in the command ring.
    pub commands: u64,
    /// Bytes queued in the event ring.
    pub events: u64,
    /// Data bytes of the command ring.
    pub command_capacity: u32,
    /// Data bytes of the event ring.
    pub event_capacity: u32,
}

/// A mapped control region. Cheap to clone; the mapping lives while any clone or endpoint does.
#[derive(Clone)]
pub struct Region {
    inner: Arc<Mapping>,
}

/// The host's ends of one shard's rings.
pub struct HostChannel {
    /// Which shard.
    pub shard: ShardId,
    /// Host writes commands here.
    pub commands: Producer,
    /// Host reads replies and events here.
    pub events: Consumer,
    _keep: Region,
}

/// The shard's ends of its rings.
pub struct GuestChannel {
    /// Which shard.
    pub shard: ShardId,
    /// Shard reads commands here.
    pub commands: Consumer,
    /// Shard writes replies and events here.
    pub events: Producer,
    _keep: Region,
}

impl Region {
    /// Creates a fresh region in a memfd (close-on-exec; the spawner clears that for its child).
    pub fn create(geometry: Geometry) -> Result<Region, RegionError> {
        geometry.validate()?;
        let fd = memfd_create("wavegate-control", MemfdFlags::CLOEXEC).map_err(std::io::Error::from)?;
        let len = geometry.total_len();
        ftruncate(&fd, len as u64).map_err(std::io::Error::from)?;
        let map = MmapOptions::new().len(len).map_raw(&fd)?;
        let region = Region {
            inner: Arc::new(Mapping {
                map,
                fd,
                geometry,
                host_taken: AtomicBool::new(false),
                guest_taken: AtomicBool::new(false),
            }),
        };
        let h = region.header();
        h.version.store(PROTOCOL_VERSION, Ordering::Relaxed);
        h.shards.store(u32::from(geometry.shards), Ordering::Relaxed);
        h.command_ring_bytes.store(geometry.command_ring_bytes, Ordering::Relaxed);
        h.event_ring_bytes.store(geometry.event_ring_bytes, Ordering::Relaxed);
        h.max_frame.store(geometry.max_frame, Ordering::Relaxed);
        h.total_len.store(len as u64, Ordering::Relaxed);
        for shard in 0..geometry.shards {
            let (cmd, evt) = region.ring_bases(shard);
            // SAFETY: the memory is fresh, mapped for `len` bytes and not shared yet.
            unsafe {
                ring::init(cmd);
                ring::init(evt);
            }
        }
        h.magic.store(MAGIC, Ordering::Release);
        Ok(region)
    }

    /// Maps and validates a region created by [`Region::create`] in another process.
    pub fn attach(fd: OwnedFd) -> Result<Region, RegionError> {
        let file_len = fstat(&fd).map_err(std::io::Error::from)?.st_size;
        let file_len = usize::try_from(file_len).map_err(|_| RegionError::Geometry("negative size".into()))?;
        if file_len < PAGE {
            return Err(RegionError::Geometry(format!("file of {file_len} bytes is smaller than a header")));
        }
        let map = MmapOptions::new().len(file_len).map_raw(&fd)?;
        // SAFETY: the mapping is at least one page long and page aligned.
        let header = unsafe { &*(map.as_ptr() as *const RegionHeader) };
        let magic = header.magic.load(Ordering::Acquire);
        if magic != MAGIC {
            return Err(RegionError::BadMagic(magic));
        }
        let version = header.version.load(Ordering::Relaxed);
        if version != PROTOCOL_VERSION {
            return Err(RegionError::VersionMismatch { found: version, expected: PROTOCOL_VERSION });
        }
        let shards = header.shards.load(Ordering::Relaxed);
        let geometry = Geometry {
            shards: u16::try_from(shards).map_err(|_| RegionError::Geometry(format!("{shards} shards")))?,
            command_ring_bytes: header.command_ring_bytes.load(Ordering::Relaxed),
            event_ring_bytes: header.event_ring_bytes.load(Ordering::Relaxed),
            max_frame: header.max_frame.load(Ordering::Relaxed),
        };
        geometry.validate()?;
        let declared = header.total_len.load(Ordering::Relaxed);
        if declared != geometry.total_len() as u64 || file_len != geometry.total_len() {
            return Err(RegionError::Geometry(format!(
                "header says {declared} bytes, geometry needs {}, file has {file_len}",
                geometry.total_len()
            )));
        }
        Ok(Region {
            inner: Arc::new(Mapping {
                map,
                fd,
                geometry,
                host_taken: AtomicBool::new(false),
                guest_taken: AtomicBool::new(false),
            }),
        })
    }

    /// The ring sizes and shard count.
    pub fn geometry(&self) -> Geometry {
        self.inner.geometry
    }

    /// The memfd, to hand to a child process.
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.inner.fd.as_fd()
    }

    /// Status words of `shard`; `None` when out of range.
    pub fn shard(&self, shard: ShardId) -> Option<&ShardSlot> {
        if shard.0 >= self.inner.geometry.shards {
            return None;
        }
        // SAFETY: slots start at PAGE, one 64-byte slot per shard, inside the mapping.
        Some(unsafe { &*(self.base().add(PAGE + usize::from(shard.0) * SLOT_BYTES) as *const ShardSlot) })
    }

    /// Bytes queued now in `shard`'s command ring (host to shard) and event ring (shard to
    /// host), read from the ring headers: no endpoint, no lock. `None` when out of range.
    pub fn ring_depths(&self, shard: ShardId) -> Option<RingDepths> {
        if shard.0 >= self.inner.geometry.shards {
            return None;
        }
        let g = self.inner.geometry;
        let (cmd, evt) = self.ring_bases(shard.0);
        // SAFETY: both bases are ring headers inside the live mapping held by `self`.
        let (commands, events) = unsafe {
            (ring::depth(cmd, u64::from(g.command_ring_bytes)), ring::depth(evt, u64::from(g.event_ring_bytes)))
        };
        Some(RingDepths { commands, events, command_capacity: g.command_ring_bytes, event_capacity: g.event_ring_bytes })
    }

    /// Takes the host ends of every shard's rings (once per process).
    pub fn take_host_channels(&self) -> Result<Vec<HostChannel>, RegionError> {
        if self.inner.host_taken.swap(true, Ordering::AcqRel) {
            return Err(RegionError::AlreadyTaken);
        }
        let g = self.inner.geometry;
        Ok((0..g.shards)
            .map(|s| {
                let (cmd, evt) = self.ring_bases(s);
                // SAFETY: bases lie in the live mapping (kept by `_keep`); this process holds
                // the host role once; the guest role belongs to the other process.
                let (commands, _) = unsafe { ring::endpoints(cmd, u64::from(g.command_ring_bytes), g.max_frame, self.keep_alive()) };
                let (_, events) = unsafe { ring::endpoints(evt, u64::from(g.event_ring_bytes), g.max_frame, self.keep_alive()) };
                HostChannel { shard: ShardId(s), commands, events, _keep: self.clone() }
            })
            .collect())
    }

    /// Takes the shard ends of every shard's rings (once per process).
    pub fn take_guest_channels(&self) -> Result<Vec<GuestChannel>, RegionError> {
        if self.inner.guest_taken.swap(true, Ordering::AcqRel) {
            return Err(RegionError::AlreadyTaken);
        }
        let g = self.inner.geometry;
        Ok((0..g.shards)
            .map(|s| {
                let (cmd, evt) = self.ring_bases(s);
                // SAFETY: as in `take_host_channels`, for the opposite role.
                let (_, commands) = unsafe { ring::endpoints(cmd, u64::from(g.command_ring_bytes), g.max_frame, self.keep_alive()) };
                let (events, _) = unsafe { ring::endpoints(evt, u64::from(g.event_ring_bytes), g.max_frame, self.keep_alive()) };
                GuestChannel { shard: ShardId(s), commands, events, _keep: self.clone() }
            })
            .collect())
    }

    fn keep_alive(&self) -> ring::KeepAlive {
        Some(self.inner.clone())
    }

    fn base(&self) -> *mut u8 {
        self.inner.map.as_mut_ptr()
    }

    fn header(&self) -> &RegionHeader {
        // SAFETY: the mapping starts with a page holding the header.
        unsafe { &*(self.base() as *const RegionHeader) }
    }

    fn ring_bases(&self, shard: u16) -> (*mut u8, *mut u8) {
        let g = &self.inner.geometry;
        let start = g.rings_offset() + usize::from(shard) * g.shard_stride();
        let evt = start + RING_HEADER_BYTES + g.command_ring_bytes as usize;
        // SAFETY: validated geometry keeps both offsets inside the mapping.
        unsafe { (self.base().add(start), self.base().add(evt)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn dup(region: &Region) -> OwnedFd {
        rustix::io::fcntl_dupfd_cloexec(region.fd(), 0).unwrap()
    }

    #[test]
    fn create_attach_and_talk() {
        let host = Region::create(Geometry::with_shards(2)).unwrap();
        let guest = Region::attach(dup(&host)).unwrap();
        assert_eq!(guest.geometry(), host.geometry());
        let mut h = host.take_host_channels().unwrap();
        let mut g = guest.take_guest_channels().unwrap();
        assert!(matches!(host.take_host_channels(), Err(RegionError::AlreadyTaken)));
        h[1].commands.try_push(b"hello").unwrap();
        let mut out = Vec::new();
        assert!(!g[0].commands.try_pop(&mut out).unwrap());
        assert!(g[1].commands.try_pop(&mut out).unwrap());
        assert_eq!(out, b"hello");
        g[1].events.try_push(b"back").unwrap();
        assert!(h[1].events.try_pop(&mut out).unwrap());
        assert_eq!(out, b"back");
        guest.shard(ShardId(1)).unwrap().beat(123, 4);
        assert_eq!(host.shard(ShardId(1)).unwrap().heartbeat_ns(), 123);
        assert!(host.shard(ShardId(2)).is_none());
    }

    #[test]
    fn ring_depths_follow_push_and_pop() {
        let host = Region::create(Geometry::with_shards(2)).unwrap();
        let guest = Region::attach(dup(&host)).unwrap();
        let mut h = host.take_host_channels().unwrap();
        let mut g = guest.take_guest_channels().unwrap();
        let empty = host.ring_depths(ShardId(1)).unwrap();
        assert_eq!((empty.commands, empty.events), (0, 0));
        assert_eq!(empty.command_capacity, Geometry::with_shards(2).command_ring_bytes);
        h[1].commands.try_push(b"hello").unwrap();
        h[1].commands.try_push(b"again!!!!").unwrap();
        g[1].events.try_push(b"back").unwrap();
        // 4-byte length prefix, padded to 8: 5 -> 16, 9 -> 16, 4 -> 8.
        let d = guest.ring_depths(ShardId(1)).unwrap();
        assert_eq!((d.commands, d.events), (32, 8));
        assert_eq!(h[1].commands.queued_bytes(), 32);
        assert_eq!(host.ring_depths(ShardId(0)).unwrap().commands, 0);
        let mut out = Vec::new();
        assert!(g[1].commands.try_pop(&mut out).unwrap());
        assert!(h[1].events.try_pop(&mut out).unwrap());
        let d = host.ring_depths(ShardId(1)).unwrap();
        assert_eq!((d.commands, d.events), (16, 0));
        assert!(host.ring_depths(ShardId(2)).is_none());
    }

    #[test]
    fn endpoints_keep_the_mapping_alive() {
        let host = Region::create(Geometry::with_shards(1)).unwrap();
        let guest = Region::attach(dup(&host)).unwrap();
        // Move the endpoints out of their channels and drop every Region handle.
        let mut tx = host.take_host_channels().unwrap().remove(0).commands;
        let mut rx = guest.take_guest_channels().unwrap().remove(0).commands;
        drop((host, guest));
        tx.try_push(b"still mapped").unwrap();
        let mut out = Vec::new();
        assert!(rx.try_pop(&mut out).unwrap());
        assert_eq!(out, b"still mapped");
    }

    #[test]
    fn version_mismatch_is_reported() {
        let host = Region::create(Geometry::with_shards(1)).unwrap();
        host.header().version.store(99, Ordering::SeqCst);
        match Region::attach(dup(&host)) {
            Err(RegionError::VersionMismatch { found: 99, expected: PROTOCOL_VERSION }) => {}
            other => panic!("unexpected {:?}", other.map(|_| ())),
        }
    }

    #[test]
    fn bad_magic_and_geometry_are_reported() {
        let host = Region::create(Geometry::with_shards(1)).unwrap();
        host.header().shards.store(3, Ordering::SeqCst);
        assert!(matches!(Region::attach(dup(&host)), Err(RegionError::Geometry(_))));
        host.header().magic.store(7, Ordering::SeqCst);
        assert!(matches!(Region::attach(dup(&host)), Err(RegionError::BadMagic(7))));
        let empty = memfd_create("x", MemfdFlags::CLOEXEC).unwrap();
        assert!(Region::attach(empty).is_err());
        assert!(host.fd().as_raw_fd() >= 0);
    }

    #[test]
    fn geometry_limits() {
        assert!(Region::create(Geometry { shards: 0, ..Geometry::with_shards(1) }).is_err());
        assert!(Region::create(Geometry { command_ring_bytes: 5000, ..Geometry::with_shards(1) }).is_err());
        assert!(Region::create(Geometry { max_frame: 1 << 20, ..Geometry::with_shards(1) }).is_err());
    }
}
