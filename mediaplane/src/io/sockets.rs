//! The UDP sockets of one shard's port slice, and the batched receive/forward step.
//!
//! Sockets are indexed by `port - first`. Each open socket has a multishot io_uring poll armed
//! with a token `generation << 32 | index`, so a completion for a socket that was closed (and
//! its port perhaps reopened) is recognised as stale and ignored. Poll add/remove requests are
//! queued here and submitted by the shard loop; closing a socket queues the removal of its
//! poll before the descriptor is dropped.
//!
//! [`SocketTable::pump`] is the packet path: `recvmmsg` up to [`BATCH`] datagrams from a ready
//! socket into preallocated buffers, let the relay rewrite each in place, and `sendto` it from
//! the chosen socket. Nothing in it allocates, locks or awaits. A datagram on a port the relay
//! does not own goes to the WebRTC [`Bridge`] (the SIP side of a WebRTC call).
//!
//! The shard's single WebRTC socket (when enabled) lives here too, polled with
//! [`TOKEN_WEBRTC`]; [`SocketTable::pump_webrtc`] hands its datagrams to the bridge. The bridge
//! path allocates inside str0m (see docs/webrtc.md).
//!
//! The table also keeps the shard's [`ShardTraffic`]: every datagram read and every datagram
//! the kernel accepts is counted with plain additions (the shard thread owns the table and
//! answers `ShardStats` from it), and each relay forward records the time from the end of the
//! `recvmmsg` that read it to the return of its `sendto` (one extra vDSO clock read per
//! forwarded datagram, one per batch).

use std::mem::{MaybeUninit, size_of, zeroed};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;

use io_uring::{opcode, squeue, types};
use wavegate_shared::clock::monotonic_ns;
use wavegate_shared::protocol::ShardTraffic;

use crate::relay::{DropReason, PortSockets, Relay, Verdict};
use crate::webrtc::bridge::{Bridge, BridgeIo};

/// Datagrams read per `recvmmsg`.
pub const BATCH: usize = 32;
/// Largest datagram read; RTP over UDP fits an Ethernet MTU.
const RECV_BUF: usize = 2048;
const SOCKET_BUFFER: usize = 2 << 20;
/// Token of poll-remove completions (ignored).
pub const TOKEN_REMOVE: u64 = u64::MAX - 1;
/// Token of the WebRTC socket's poll.
pub const TOKEN_WEBRTC: u64 = u64::MAX - 2;

struct Slot {
    socket: UdpSocket,
    generation: u32,
}

/// Preallocated `recvmmsg` state; boxed so the self-referencing pointers stay valid.
struct RecvBatch {
    bufs: [[u8; RECV_BUF]; BATCH],
    addrs: [libc::sockaddr_storage; BATCH],
    iovecs: [libc::iovec; BATCH],
    msgs: [libc::mmsghdr; BATCH],
}

/// What happened in one [`SocketTable::pump`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PumpStats {
    /// Datagrams read.
    pub received: usize,
    /// Datagrams sent on.
    pub forwarded: usize,
    /// Sends the kernel refused (full buffer, unreachable).
    pub send_errors: usize,
}

/// The sockets of a shard.
pub struct SocketTable {
    first: u16,
    bind_ip: IpAddr,
    slots: Vec<Option<Slot>>,
    next_generation: u32,
    pending: Vec<squeue::Entry>,
    batch: Box<RecvBatch>,
    webrtc: Option<UdpSocket>,
    traffic: ShardTraffic,
}

/// Sends for the bridge from the table's sockets (borrowed apart from the receive buffers).
struct Sender<'a> {
    first: u16,
    slots: &'a [Option<Slot>],
    webrtc: Option<i32>,
    traffic: &'a mut ShardTraffic,
}

impl BridgeIo for Sender<'_> {
    fn send_webrtc(&mut self, dst: SocketAddr, buf: &[u8]) {
        if let Some(fd) = self.webrtc
            && send_to(fd, buf, dst)
        {
            self.traffic.sent(buf.len());
        }
    }

    fn send_rtp(&mut self, from_port: u16, dst: SocketAddr, buf: &[u8]) {
        let slot = from_port.checked_sub(self.first).and_then(|j| self.slots.get(usize::from(j)));
        if let Some(Some(slot)) = slot
            && send_to(slot.socket.as_raw_fd(), buf, dst)
        {
            self.traffic.sent(buf.len());
        }
    }
}

impl BridgeIo for SocketTable {
    fn send_webrtc(&mut self, dst: SocketAddr, buf: &[u8]) {
        self.sender().send_webrtc(dst, buf);
    }

    fn send_rtp(&mut self, from_port: u16, dst: SocketAddr, buf: &[u8]) {
        self.sender().send_rtp(from_port, dst, buf);
    }
}

impl SocketTable {
    /// A table for ports `first ..= first + count - 1`, binding on `bind_ip`.
    pub fn new(first: u16, count: usize, bind_ip: IpAddr) -> Self {
        // SAFETY: all-zero is a valid value for these plain C structs and byte arrays.
        let batch: Box<RecvBatch> = unsafe { Box::new(zeroed()) };
        Self {
            first,
            bind_ip,
            slots: (0..count).map(|_| None).collect(),
            next_generation: 1,
            pending: Vec::with_capacity(64),
            batch,
            webrtc: None,
            traffic: ShardTraffic::default(),
        }
    }

    fn sender(&mut self) -> Sender<'_> {
        let webrtc = self.webrtc.as_ref().map(AsRawFd::as_raw_fd);
        Sender { first: self.first, slots: &self.slots, webrtc, traffic: &mut self.traffic }
    }

    /// Binds the shard's WebRTC socket on `addr` (port 0 picks one) and queues its poll;
    /// returns the bound address.
    pub fn open_webrtc(&mut self, addr: SocketAddr) -> std::io::Result<SocketAddr> {
        let socket = bind(addr.ip(), addr.port())?;
        let local = socket.local_addr()?;
        self.pending.push(poll_entry(&socket, TOKEN_WEBRTC));
        self.webrtc = Some(socket);
        Ok(local)
    }

    /// Re-arms the WebRTC socket's poll.
    pub fn rearm_webrtc(&mut self) {
        if let Some(socket) = &self.webrtc {
            self.pending.push(poll_entry(socket, TOKEN_WEBRTC));
        }
    }

    /// Reads every datagram waiting on the WebRTC socket and hands each to the bridge.
    pub fn pump_webrtc(&mut self, bridge: &mut Bridge, now_ns: u64) -> usize {
        let Some(fd) = self.webrtc.as_ref().map(AsRawFd::as_raw_fd) else { return 0 };
        let mut received = 0;
        let Self { first, slots, batch, traffic, .. } = self;
        let mut sender = Sender { first: *first, slots, webrtc: Some(fd), traffic };
        loop {
            let n = recv_batch(fd, batch);
            received += n;
            let bytes = (0..n).map(|i| (batch.msgs[i].msg_len as usize).min(RECV_BUF)).sum();
            sender.traffic.received(n, bytes);
            for i in 0..n {
                let len = (batch.msgs[i].msg_len as usize).min(RECV_BUF);
                let Some(src) = sockaddr_to_std(&batch.addrs[i]) else { continue };
                bridge.on_webrtc_datagram(now_ns, src, &batch.bufs[i][..len], &mut sender);
            }
            if n < BATCH {
                break;
            }
        }
        received
    }

    /// Poll requests to submit (taken by the shard loop).
    pub fn take_pending(&mut self) -> std::vec::Drain<'_, squeue::Entry> {
        self.pending.drain(..)
    }

    /// Whether poll requests wait to be submitted.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    fn index(&self, port: u16) -> Option<usize> {
        port.checked_sub(self.first).map(usize::from).filter(|i| *i < self.slots.len())
    }

    /// Decodes a poll token into the slot index if it still names an open socket.
    pub fn live_index(&self, token: u64) -> Option<usize> {
        let index = (token & 0xffff_ffff) as usize;
        let generation = (token >> 32) as u32;
        match self.slots.get(index)? {
            Some(slot) if slot.generation == generation => Some(index),
            _ => None,
        }
    }

    /// Re-arms the poll of slot `index` (a multishot poll ended without `F_MORE`).
    pub fn rearm(&mut self, index: usize) {
        if let Some(Some(slot)) = self.slots.get(index) {
            let entry = poll_entry(&slot.socket, token(slot.generation, index));
            self.pending.push(entry);
        }
    }

    /// Reads every datagram waiting on slot `index` (in batches) and forwards what the relay
    /// says to forward.
    pub fn pump(&mut self, index: usize, relay: &mut Relay, mut bridge: Option<&mut Bridge>, now_ns: u64) -> PumpStats {
        let mut stats = PumpStats::default();
        let Some(Some(slot)) = self.slots.get(index) else { return stats };
        let fd = slot.socket.as_raw_fd();
        let local_port = self.first + index as u16;
        let webrtc_fd = self.webrtc.as_ref().map(AsRawFd::as_raw_fd);
        let Self { first, slots, batch, traffic, .. } = self;
        let out_fd = |port: u16| {
            let j = usize::from(port.checked_sub(*first)?);
            slots.get(j)?.as_ref().map(|s| s.socket.as_raw_fd())
        };
        loop {
            let n = recv_batch(fd, batch);
            if n == 0 {
                break;
            }
            let received_ns = monotonic_ns();
            stats.received += n;
            let bytes = (0..n).map(|i| (batch.msgs[i].msg_len as usize).min(RECV_BUF)).sum();
            traffic.received(n, bytes);
            for i in 0..n {
                let len = batch.msgs[i].msg_len as usize;
                let Some(src) = sockaddr_to_std(&batch.addrs[i]) else { continue };
                let buf = &mut batch.bufs[i][..len.min(RECV_BUF)];
                match relay.on_packet(now_ns, local_port, src, buf) {
                    Verdict::Forward(f) => match out_fd(f.out_port) {
                        Some(out) if send_to(out, &buf[..f.len], f.dst) => {
                            stats.forwarded += 1;
                            traffic.sent(f.len);
                            traffic.relay_latency.record(monotonic_ns().saturating_sub(received_ns));
                        }
                        _ => stats.send_errors += 1,
                    },
                    Verdict::Drop(DropReason::UnknownPort) => {
                        if let Some(b) = bridge.as_deref_mut() {
                            let mut sender = Sender { first: *first, slots, webrtc: webrtc_fd, traffic };
                            b.on_sip_packet(now_ns, local_port, src, buf, &mut sender);
                        }
                    }
                    Verdict::Drop(_) => {}
                }
            }
            if n < BATCH {
                break;
            }
        }
        stats
    }
}

impl PortSockets for SocketTable {
    fn open(&mut self, rtp_port: u16) -> std::io::Result<()> {
        let rtcp_port = rtp_port.wrapping_add(1);
        let (Some(i), Some(j)) = (self.index(rtp_port), self.index(rtcp_port)) else {
            return Err(std::io::Error::other(format!("ports {rtp_port}/{rtcp_port} outside this shard's slice")));
        };
        let rtp = bind(self.bind_ip, rtp_port)?;
        let rtcp = bind(self.bind_ip, rtcp_port)?;
        for (index, socket) in [(i, rtp), (j, rtcp)] {
            let generation = self.next_generation;
            self.next_generation = self.next_generation.wrapping_add(1).max(1);
            self.pending.push(poll_entry(&socket, token(generation, index)));
            self.slots[index] = Some(Slot { socket, generation });
        }
        Ok(())
    }

    fn traffic(&self) -> ShardTraffic {
        self.traffic.clone()
    }

    fn close(&mut self, rtp_port: u16) {
        for port in [rtp_port, rtp_port.wrapping_add(1)] {
            if let Some(i) = self.index(port)
                && let Some(slot) = self.slots[i].take()
            {
                // The poll holds its own file reference: remove it, then the socket may close.
                self.pending.push(opcode::PollRemove::new(token(slot.generation, i)).build().user_data(TOKEN_REMOVE));
            }
        }
    }
}

fn token(generation: u32, index: usize) -> u64 {
    u64::from(generation) << 32 | index as u64
}

fn poll_entry(socket: &UdpSocket, token: u64) -> squeue::Entry {
    opcode::PollAdd::new(types::Fd(socket.as_raw_fd()), libc::POLLIN as u32).multi(true).build().user_data(token)
}

fn bind(ip: IpAddr, port: u16) -> std::io::Result<UdpSocket> {
    let socket = UdpSocket::bind(SocketAddr::new(ip, port))?;
    socket.set_nonblocking(true)?;
    // Best effort: the kernel caps these at net.core.[rw]mem_max.
    let _ = rustix::net::sockopt::set_socket_recv_buffer_size(&socket, SOCKET_BUFFER);
    let _ = rustix::net::sockopt::set_socket_send_buffer_size(&socket, SOCKET_BUFFER);
    Ok(socket)
}

/// One non-blocking `recvmmsg`; returns how many datagrams arrived (0 on `EAGAIN` or error).
fn recv_batch(fd: i32, b: &mut RecvBatch) -> usize {
    for i in 0..BATCH {
        b.iovecs[i] = libc::iovec { iov_base: b.bufs[i].as_mut_ptr().cast(), iov_len: RECV_BUF };
        // SAFETY: zero is a valid msghdr; the pointers set below point into `b`, which
        // outlives the call.
        let mut hdr: libc::msghdr = unsafe { zeroed() };
        hdr.msg_name = (&mut b.addrs[i] as *mut libc::sockaddr_storage).cast();
        hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        hdr.msg_iov = &mut b.iovecs[i];
        hdr.msg_iovlen = 1;
        b.msgs[i] = libc::mmsghdr { msg_hdr: hdr, msg_len: 0 };
    }
    // SAFETY: `msgs` holds BATCH initialised headers whose buffers live in `b`.
    let n = unsafe {
        libc::recvmmsg(fd, b.msgs.as_mut_ptr(), BATCH as u32, libc::MSG_DONTWAIT, std::ptr::null_mut())
    };
    // Errors (EAGAIN, or an ICMP error queued by an earlier send) end this pump; the socket
    // stays armed.
    usize::try_from(n).unwrap_or(0)
}

fn sockaddr_to_std(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says this storage holds a sockaddr_in.
            let a = unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(a.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says this storage holds a sockaddr_in6.
            let a = unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(ip, u16::from_be(a.sin6_port), a.sin6_flowinfo, a.sin6_scope_id)))
        }
        _ => None,
    }
}

/// `sendto` without allocation; `true` when the kernel took the datagram.
fn send_to(fd: i32, buf: &[u8], dst: SocketAddr) -> bool {
    let mut storage = MaybeUninit::<libc::sockaddr_storage>::zeroed();
    let len = match dst {
        SocketAddr::V4(v4) => {
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in.
            let a = unsafe { &mut *storage.as_mut_ptr().cast::<libc::sockaddr_in>() };
            a.sin_family = libc::AF_INET as libc::sa_family_t;
            a.sin_port = v4.port().to_be();
            a.sin_addr = libc::in_addr { s_addr: u32::from(*v4.ip()).to_be() };
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            // SAFETY: as above, for sockaddr_in6.
            let a = unsafe { &mut *storage.as_mut_ptr().cast::<libc::sockaddr_in6>() };
            a.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            a.sin6_port = v6.port().to_be();
            a.sin6_flowinfo = v6.flowinfo();
            a.sin6_addr = libc::in6_addr { s6_addr: v6.ip().octets() };
            a.sin6_scope_id = v6.scope_id();
            size_of::<libc::sockaddr_in6>()
        }
    };
    // SAFETY: `buf` and `storage` are valid for the lengths given.
    let sent = unsafe {
        libc::sendto(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_DONTWAIT, storage.as_ptr().cast(), len as libc::socklen_t)
    };
    sent >= 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockaddr_roundtrip_v4_and_v6() {
        for addr in ["127.0.0.1:5004", "[::1]:6000"] {
            let addr: SocketAddr = addr.parse().unwrap();
            let sock = UdpSocket::bind(SocketAddr::new(addr.ip(), 0)).unwrap();
            let dst = sock.local_addr().unwrap();
            let from = UdpSocket::bind(SocketAddr::new(addr.ip(), 0)).unwrap();
            assert!(send_to(from.as_raw_fd(), b"hello", dst));
            sock.set_nonblocking(true).unwrap();
            let mut batch: Box<RecvBatch> = unsafe { Box::new(zeroed()) };
            std::thread::sleep(std::time::Duration::from_millis(20));
            assert_eq!(recv_batch(sock.as_raw_fd(), &mut batch), 1);
            assert_eq!(batch.msgs[0].msg_len, 5);
            assert_eq!(sockaddr_to_std(&batch.addrs[0]), Some(from.local_addr().unwrap()));
            assert_eq!(recv_batch(sock.as_raw_fd(), &mut batch), 0, "drained");
        }
    }

    #[test]
    fn stale_tokens_are_not_live() {
        let mut t = SocketTable::new(46000, 4, IpAddr::V4(Ipv4Addr::LOCALHOST));
        // Ports may be busy on a shared machine; only check the token logic when bind works.
        if t.open(46000).is_err() {
            return;
        }
        let slot0 = t.slots[0].as_ref().unwrap().generation;
        assert_eq!(t.live_index(token(slot0, 0)), Some(0));
        assert_eq!(t.take_pending().count(), 2);
        t.close(46000);
        assert_eq!(t.live_index(token(slot0, 0)), None);
        assert_eq!(t.take_pending().count(), 2, "two poll removals queued");
        assert!(t.open(47000).is_err(), "outside the slice");
    }
}
