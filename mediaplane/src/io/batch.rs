//! Batched datagram I/O through the shard's io_uring: a provided-buffer ring that every socket's
//! multishot `recvmsg` reads into, and a pool of send slots whose `send` requests are submitted
//! together by the shard loop's single `io_uring_enter`.
//!
//! Why: on this VM the kernel's UDP path costs ~3 µs per packet and each syscall's entry and
//! exit (retpolines, return thunks) is a large part of it. Before this module a relayed packet
//! cost one poll completion, one `recvmmsg` (the relay's sockets each carry one stream, so a
//! wake-up rarely finds more than one datagram per socket) and one `sendto`. Now a packet costs
//! no syscall of its own: the kernel receives it into a ring buffer in task work when the shard
//! enters to wait, and its send is one more SQE of the next enter.
//!
//! Invariants:
//! - [`RecvRing`]: every buffer is either published to the kernel (in the ring) or held by a
//!   completion being processed; the driver recycles a buffer exactly once per completion that
//!   carried it (stale or not), so the ring never leaks buffers. Buffers are
//!   [`RECV_BUF_LEN`] bytes: [`RECVMSG_HEADER`] bytes of `io_uring_recvmsg_out` and source
//!   address, then the datagram.
//! - [`SendPool`]: a slot is free, or owns a queued or submitted `send` until that request's
//!   completion names it ([`send_slot`]); its bytes and address stay put until then, so the
//!   kernel may read them at any time before. Free slots are reused last-in first-out, so only
//!   the few hot slots are ever touched (RSS).
//! - Nothing here allocates after construction: the queue of submissions is preallocated to the
//!   pool's size and a full pool makes the caller fall back to a plain `sendto`.

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::mem::size_of;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::ops::Range;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;
use io_uring::{Submitter, opcode, squeue, types};
use wavegate_shared::protocol::ShardTraffic;

/// Receive buffers in the shard's provided-buffer ring (a power of two).
pub const RECV_BUFS: u16 = 1024;
/// Bytes per receive buffer: the recvmsg header, the source address and an MTU-sized datagram.
pub const RECV_BUF_LEN: usize = 2048;
/// The buffer group every multishot `recvmsg` of the shard selects from.
pub const BUF_GROUP: u16 = 0;
/// Send slots (twice the receive ring: a batch of inputs can fan out into more sends).
pub const SEND_SLOTS: usize = 2048;
/// Largest datagram a send slot holds.
pub const SEND_BUF_LEN: usize = 2048;
/// Room for the source address in each receive buffer: a `sockaddr_in6` fits either family.
const NAME_LEN: usize = size_of::<libc::sockaddr_in6>();
/// `struct io_uring_recvmsg_out`: namelen, controllen, payloadlen, flags (four `u32`).
const OUT_LEN: usize = 16;
/// Where the datagram starts in a receive buffer.
pub const RECVMSG_HEADER: usize = OUT_LEN + NAME_LEN;
/// Send tokens: the high 32 bits are 0 (no socket generation is 0) and bit 31 is set.
const SEND_TAG: u64 = 1 << 31;

/// The token of send slot `slot`.
pub fn send_token(slot: u16) -> u64 {
    SEND_TAG | u64::from(slot)
}

/// The send slot a completion token names, if it is a send token.
pub fn send_slot(token: u64) -> Option<u16> {
    (token >> 32 == 0 && token & SEND_TAG != 0).then_some((token & 0xffff) as u16)
}

/// Parses one multishot `recvmsg` buffer (`buf` is the buffer cut to the completion's length):
/// the datagram's source and where its bytes are. `None` for a truncated datagram or an
/// address of an unknown family.
pub fn parse_recvmsg(buf: &[u8]) -> Option<(SocketAddr, Range<usize>)> {
    let word = |i: usize| -> Option<u32> { Some(u32::from_ne_bytes(buf.get(4 * i..4 * i + 4)?.try_into().ok()?)) };
    let (namelen, payloadlen, flags) = (word(0)? as usize, word(2)? as usize, word(3)?);
    if flags & libc::MSG_TRUNC as u32 != 0 || namelen > NAME_LEN {
        return None;
    }
    let src = parse_sockaddr(buf.get(OUT_LEN..OUT_LEN + namelen)?)?;
    let end = RECVMSG_HEADER.checked_add(payloadlen)?;
    (end <= buf.len()).then_some((src, RECVMSG_HEADER..end))
}

/// A `sockaddr_in` or `sockaddr_in6` as the kernel wrote it.
fn parse_sockaddr(name: &[u8]) -> Option<SocketAddr> {
    let family = i32::from(u16::from_ne_bytes(name.get(0..2)?.try_into().ok()?));
    let port = u16::from_be_bytes(name.get(2..4)?.try_into().ok()?);
    match family {
        libc::AF_INET => {
            let ip: [u8; 4] = name.get(4..8)?.try_into().ok()?;
            Some(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port)))
        }
        libc::AF_INET6 => {
            // Native order, as std's own conversions keep it.
            let flowinfo = u32::from_ne_bytes(name.get(4..8)?.try_into().ok()?);
            let ip: [u8; 16] = name.get(8..24)?.try_into().ok()?;
            let scope = u32::from_ne_bytes(name.get(24..28)?.try_into().ok()?);
            Some(SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(ip), port, flowinfo, scope)))
        }
        _ => None,
    }
}

/// Writes `addr` as a C socket address; returns its length.
pub fn write_sockaddr(addr: SocketAddr, out: &mut libc::sockaddr_in6) -> libc::socklen_t {
    match addr {
        SocketAddr::V4(v4) => {
            // SAFETY: sockaddr_in6 is larger than sockaddr_in and at least as aligned; both are
            // plain data.
            let a = unsafe { &mut *(out as *mut libc::sockaddr_in6).cast::<libc::sockaddr_in>() };
            a.sin_family = libc::AF_INET as libc::sa_family_t;
            a.sin_port = v4.port().to_be();
            a.sin_addr = libc::in_addr { s_addr: u32::from(*v4.ip()).to_be() };
            size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(v6) => {
            out.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            out.sin6_port = v6.port().to_be();
            out.sin6_flowinfo = v6.flowinfo();
            out.sin6_addr = libc::in6_addr { s6_addr: v6.ip().octets() };
            out.sin6_scope_id = v6.scope_id();
            size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

/// The shard's provided-buffer ring: [`RECV_BUFS`] buffers the kernel fills on receive.
pub struct RecvRing {
    /// Buffers in the ring (a power of two).
    count: u16,
    /// `count` ring entries, page aligned; entry 0's last two bytes are the shared tail.
    entries: NonNull<BufRingEntry>,
    /// `count * RECV_BUF_LEN` bytes of buffers.
    bufs: NonNull<u8>,
    /// Our tail (next entry to fill), published to the kernel by [`RecvRing::publish`].
    tail: u16,
    /// The header multishot `recvmsg` requests point at: only the name length matters.
    msghdr: Box<libc::msghdr>,
}

// SAFETY: the ring is owned by one shard thread; the raw pointers are its own allocations.
unsafe impl Send for RecvRing {}

fn entries_layout(count: u16) -> Option<Layout> {
    // 4096-byte alignment: the kernel requires the ring to start on a page.
    Layout::from_size_align(usize::from(count) * size_of::<BufRingEntry>(), 4096).ok()
}

fn bufs_layout(count: u16) -> Option<Layout> {
    Layout::from_size_align(usize::from(count) * RECV_BUF_LEN, 4096).ok()
}

impl RecvRing {
    /// Allocates a ring of `count` buffers (a power of two, at most 32,768; the shard uses
    /// [`RECV_BUFS`]), all published. The buffers are touched now, so their pages count in the
    /// idle RSS rather than in the first calls' memory.
    pub fn new(count: u16) -> std::io::Result<Self> {
        let invalid =
            || std::io::Error::new(std::io::ErrorKind::InvalidInput, "ring size must be a power of two <= 32768");
        if !count.is_power_of_two() || count > 1 << 15 {
            return Err(invalid());
        }
        let (Some(entries_layout), Some(bufs_layout)) = (entries_layout(count), bufs_layout(count)) else {
            return Err(invalid());
        };
        // SAFETY: both layouts have non-zero sizes.
        let (entries, bufs) = unsafe { (alloc_zeroed(entries_layout), alloc_zeroed(bufs_layout)) };
        let (Some(entries), Some(bufs)) = (NonNull::new(entries.cast::<BufRingEntry>()), NonNull::new(bufs)) else {
            // SAFETY: whichever allocation succeeded came from these layouts.
            unsafe {
                if !entries.is_null() {
                    dealloc(entries, entries_layout);
                }
                if !bufs.is_null() {
                    dealloc(bufs, bufs_layout);
                }
            }
            return Err(std::io::Error::from(std::io::ErrorKind::OutOfMemory));
        };
        for page in (0..bufs_layout.size()).step_by(4096) {
            // SAFETY: `page` is inside the buffer allocation.
            unsafe { bufs.as_ptr().add(page).write_volatile(0) };
        }
        // SAFETY: zero is a valid msghdr.
        let mut msghdr: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
        msghdr.msg_namelen = NAME_LEN as libc::socklen_t;
        let mut ring = Self { count, entries, bufs, tail: 0, msghdr };
        for bid in 0..count {
            ring.recycle(bid);
        }
        ring.publish();
        Ok(ring)
    }

    /// Registers the ring with the shard's io_uring as buffer group [`BUF_GROUP`].
    pub fn register(&self, submitter: &Submitter<'_>) -> std::io::Result<()> {
        // SAFETY: the ring memory lives as long as `self`, which the shard keeps until its
        // thread ends (`run_shard` declares the io_uring after the socket table, so the ring
        // is closed first).
        unsafe { submitter.register_buf_ring_with_flags(self.entries.as_ptr() as u64, self.count, BUF_GROUP, 0) }
    }

    /// The multishot `recvmsg` request for `fd`, completing with `token`.
    pub fn recv_entry(&self, fd: i32, token: u64) -> squeue::Entry {
        opcode::RecvMsgMulti::new(types::Fd(fd), &*self.msghdr, BUF_GROUP).build().user_data(token)
    }

    /// Buffer `bid` cut to `len` bytes (what its completion said the kernel wrote).
    ///
    /// The caller holds the completion that carried `bid`, so the kernel is not writing it.
    pub fn buf_mut(&mut self, bid: u16, len: usize) -> &mut [u8] {
        let bid = usize::from(bid % self.count);
        // SAFETY: buffer `bid` is inside the allocation and owned by us until recycled; `&mut
        // self` makes the slice unique.
        unsafe { std::slice::from_raw_parts_mut(self.bufs.as_ptr().add(bid * RECV_BUF_LEN), len.min(RECV_BUF_LEN)) }
    }

    /// Gives buffer `bid` back to the kernel (visible after [`RecvRing::publish`]).
    pub fn recycle(&mut self, bid: u16) {
        let bid = bid % self.count;
        let index = usize::from(self.tail & (self.count - 1));
        // SAFETY: `index` is inside the ring; the setters leave entry 0's tail bytes alone.
        let entry = unsafe { &mut *self.entries.as_ptr().add(index) };
        // SAFETY: as in `buf_mut`.
        entry.set_addr(unsafe { self.bufs.as_ptr().add(usize::from(bid) * RECV_BUF_LEN) } as u64);
        entry.set_len(RECV_BUF_LEN as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Publishes recycled buffers to the kernel (one release store per batch).
    pub fn publish(&self) {
        // SAFETY: the tail is a naturally aligned u16 inside the ring allocation, shared with
        // the kernel, which reads it atomically.
        let tail = unsafe { AtomicU16::from_ptr(BufRingEntry::tail(self.entries.as_ptr()).cast_mut()) };
        tail.store(self.tail, Ordering::Release);
    }
}

impl Drop for RecvRing {
    fn drop(&mut self) {
        let (Some(entries_layout), Some(bufs_layout)) = (entries_layout(self.count), bufs_layout(self.count)) else {
            return;
        };
        // SAFETY: allocated in `new` with these layouts.
        unsafe {
            dealloc(self.entries.as_ptr().cast(), entries_layout);
            dealloc(self.bufs.as_ptr(), bufs_layout);
        }
    }
}

/// One outgoing datagram: bytes and destination, owned until the send's completion.
#[repr(C)]
struct SendSlot {
    addr: libc::sockaddr_in6,
    buf: [u8; SEND_BUF_LEN],
}

/// Why a datagram could not be queued; the caller sends it with a plain `sendto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueRefused {
    /// Every slot is in flight.
    Full,
    /// The datagram is larger than a slot.
    TooLarge,
}

/// Send slots and the `send` requests queued since the last submission.
pub struct SendPool {
    slots: Box<[SendSlot]>,
    /// Free slot numbers; the last is reused first.
    free: Vec<u16>,
    /// Which slots are in flight (catches a completion naming a free slot).
    busy: Box<[bool]>,
    /// Requests queued since [`SendPool::take_queued`], with the receive time of the packet
    /// each forwards (0 = not a relayed packet).
    queued: Vec<(squeue::Entry, u64)>,
}

impl SendPool {
    /// A pool of `n` slots (at most 65,536).
    pub fn new(n: usize) -> Self {
        let n = n.min(1 << 16);
        // SAFETY: all-zero is a valid SendSlot (plain C address and bytes).
        let slots: Box<[SendSlot]> = (0..n).map(|_| unsafe { std::mem::zeroed() }).collect();
        let free = (0..n).rev().map(|i| i as u16).collect();
        Self { slots, free, busy: vec![false; n].into_boxed_slice(), queued: Vec::with_capacity(n) }
    }

    /// Copies `data` into a free slot and queues its send from `fd` to `dst`. `received_ns` is
    /// the receive time of the packet it forwards (0 if none), for the latency histogram.
    pub fn queue(&mut self, fd: i32, data: &[u8], dst: SocketAddr, received_ns: u64) -> Result<(), QueueRefused> {
        self.queue_to(fd, data, Some(dst), received_ns)
    }

    /// As [`SendPool::queue`] from a `connect()`ed socket, to its peer: the request carries no
    /// address, so the kernel uses the socket's cached route (with an address it would look the
    /// route up again, connected or not).
    pub fn queue_connected(&mut self, fd: i32, data: &[u8], received_ns: u64) -> Result<(), QueueRefused> {
        self.queue_to(fd, data, None, received_ns)
    }

    fn queue_to(&mut self, fd: i32, data: &[u8], dst: Option<SocketAddr>, received_ns: u64) -> Result<(), QueueRefused> {
        if data.len() > SEND_BUF_LEN {
            return Err(QueueRefused::TooLarge);
        }
        let slot = self.free.pop().ok_or(QueueRefused::Full)?;
        self.busy[usize::from(slot)] = true;
        let s = &mut self.slots[usize::from(slot)];
        s.buf[..data.len()].copy_from_slice(data);
        let mut send = opcode::Send::new(types::Fd(fd), s.buf.as_ptr(), data.len() as u32);
        if let Some(dst) = dst {
            let addr_len = write_sockaddr(dst, &mut s.addr);
            send = send.dest_addr((&s.addr as *const libc::sockaddr_in6).cast()).dest_addr_len(addr_len);
        }
        let entry = send
            // Never parked in the kernel: a full socket buffer fails the send (like `sendto`
            // with MSG_DONTWAIT did) instead of holding the slot.
            .flags(libc::MSG_DONTWAIT)
            .build()
            .user_data(send_token(slot));
        self.queued.push((entry, received_ns));
        Ok(())
    }

    /// The completion of slot `slot`'s send with result `res`: frees the slot and counts the
    /// datagram as sent when the kernel took it. Returns whether it did.
    pub fn complete(&mut self, slot: u16, res: i32, traffic: &mut ShardTraffic) -> bool {
        let Some(busy) = self.busy.get_mut(usize::from(slot)).filter(|b| **b) else {
            tracing::warn!(slot, "send completion for a free slot; ignored");
            return false;
        };
        *busy = false;
        self.free.push(slot);
        match usize::try_from(res) {
            Ok(bytes) => {
                traffic.sent(bytes);
                true
            }
            Err(_) => false,
        }
    }

    /// Sends in flight: queued or submitted and not yet completed.
    pub fn in_flight(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Whether requests wait to be submitted.
    pub fn has_queued(&self) -> bool {
        !self.queued.is_empty()
    }

    /// Takes the queued requests for submission at `now_ns`, recording each relayed packet's
    /// time from receive to this submission in `traffic`'s latency histogram.
    pub fn take_queued(&mut self, now_ns: u64, traffic: &mut ShardTraffic) -> impl Iterator<Item = squeue::Entry> + '_ {
        for &(_, received) in &self.queued {
            if received != 0 {
                traffic.relay_latency.record(now_ns.saturating_sub(received));
            }
        }
        self.queued.drain(..).map(|(e, _)| e)
    }
}

/// Datagrams read per `recvmmsg` when catching up.
pub const CATCH_UP_BATCH: usize = 32;

/// `recvmmsg` buffers for catching up on a socket whose multishot receive ended because the
/// ring ran dry (`ENOBUFS`, after a stall left more datagrams waiting than the ring holds):
/// the socket is drained here, in batches, before its receive is re-armed. Re-arming at once
/// instead would fail again while the ring is short, a churn of arms and `ENOBUFS`
/// completions that cost more than the packets (seen on this VM under load).
pub struct CatchUp {
    bufs: [[u8; RECV_BUF_LEN]; CATCH_UP_BATCH],
    addrs: [libc::sockaddr_storage; CATCH_UP_BATCH],
    iovecs: [libc::iovec; CATCH_UP_BATCH],
    msgs: [libc::mmsghdr; CATCH_UP_BATCH],
}

impl CatchUp {
    /// Preallocated, boxed so the self-referencing pointers stay valid.
    pub fn new() -> Box<Self> {
        // SAFETY: all-zero is a valid value for these plain C structs and byte arrays.
        unsafe { Box::new(std::mem::zeroed()) }
    }

    /// One non-blocking `recvmmsg` on `fd`; how many datagrams arrived (0 on `EAGAIN` or an
    /// error, such as an ICMP error queued by an earlier send).
    pub fn recv(&mut self, fd: i32) -> usize {
        for i in 0..CATCH_UP_BATCH {
            self.iovecs[i] = libc::iovec { iov_base: self.bufs[i].as_mut_ptr().cast(), iov_len: RECV_BUF_LEN };
            // SAFETY: zero is a valid msghdr; the pointers set below point into `self`, which
            // outlives the call.
            let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
            hdr.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            hdr.msg_iov = &mut self.iovecs[i];
            hdr.msg_iovlen = 1;
            self.msgs[i] = libc::mmsghdr { msg_hdr: hdr, msg_len: 0 };
        }
        // SAFETY: `msgs` holds CATCH_UP_BATCH initialised headers whose buffers live in `self`.
        let n = unsafe {
            libc::recvmmsg(fd, self.msgs.as_mut_ptr(), CATCH_UP_BATCH as u32, libc::MSG_DONTWAIT, std::ptr::null_mut())
        };
        usize::try_from(n).unwrap_or(0)
    }

    /// Datagram `i` of the last [`CatchUp::recv`]: its source and bytes (`None` if truncated).
    pub fn datagram(&mut self, i: usize) -> Option<(SocketAddr, &mut [u8])> {
        let msg = self.msgs.get(i)?;
        if msg.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
            return None;
        }
        let len = (msg.msg_len as usize).min(RECV_BUF_LEN);
        // SAFETY: reading the plain bytes of a C struct (NAME_LEN < its size).
        let name = unsafe {
            std::slice::from_raw_parts((&self.addrs[i] as *const libc::sockaddr_storage).cast::<u8>(), NAME_LEN)
        };
        let src = parse_sockaddr(name)?;
        Some((src, &mut self.bufs[i][..len]))
    }
}

#[cfg(test)]
#[path = "batch_tests.rs"]
mod tests;
