//! The UDP sockets of one shard's port slice, and the receive/forward step.
//!
//! Sockets are indexed by `port - first`. Each open socket has a multishot io_uring `recvmsg`
//! armed with a token `generation << 32 | index`, reading into the shard's provided-buffer
//! ring ([`batch::RecvRing`]), so a completion for a socket that was closed (and its port
//! perhaps reopened) is recognised as stale: its datagram is dropped but its buffer still goes
//! back to the ring. Arm and cancel requests are queued here and submitted by the shard loop;
//! closing a socket queues the cancellation of its receive before the descriptor is dropped
//! (the request holds its own file reference).
//!
//! [`SocketTable::on_recv`] is the packet path: one completion is one datagram, already in a
//! ring buffer; the relay rewrites it in place and the forward is copied into a send slot and
//! queued as an io_uring `send` ([`batch::SendPool`]) that the shard loop submits with the
//! batch's other sends in its next `io_uring_enter`; when every slot is in flight the datagram
//! goes out at once with `sendto`. Nothing in it allocates, locks or awaits. A datagram on a port
//! the relay does not own goes to the WebRTC [`Bridge`] (the SIP side of a WebRTC call).
//!
//! The shard's single WebRTC socket (when enabled) lives here too, with the token
//! [`TOKEN_WEBRTC`]; [`SocketTable::on_webrtc_recv`] hands its datagrams to the bridge, whose
//! sends take the same send slots. The bridge path allocates inside str0m (see
//! docs/webrtc.md).
//!
//! Connected twins (`media.connect_latched`, on by default): the first time a port sends to a
//! destination (the peer symmetric RTP latched, or until then the one its SDP gave), the table
//! opens a second socket on the same local address with `SO_REUSEPORT` and `connect()`s it to
//! that destination; from then on the port's sends to it leave from the twin as io_uring
//! `send`s without an address, so the kernel uses the twin's cached route instead of looking
//! the route up per datagram (`fib_table_lookup`, `xfrm_lookup`: ~4 % of the relay's profile).
//! The kernel delivers a datagram to the socket matching it best, and a connected socket
//! matches the peer's exact 4-tuple better than the unconnected one (reuseport's hash
//! selection also skips connected sockets), so the peer's datagrams arrive on the twin and
//! everyone else's (strangers) still on the port's own socket. Both feed the same relay/bridge
//! path with the same local port, so what the relay decides (latching, stranger drops and
//! their counters) does not depend on which of the two received a datagram: the twin only
//! changes which socket the kernel uses. A send to another destination (a re-latch, a re-offer
//! with a new address) goes out from the port's own socket with its address and requests a
//! twin for the new destination, which replaces the old one (closed like a port's socket); a
//! port opens at most [`MAX_TWIN_OPENS`] twins in its life, so a destination that keeps
//! changing costs no more than that. Closing the port closes its twin. The main socket gets
//! `SO_REUSEPORT` only when its first twin opens, so a port without a twin still refuses a
//! second bind, as it did before. Twins are opened between batches (in
//! [`SocketTable::take_pending`]), never on the packet path; requesting one is a flag and a
//! push into a vector sized at construction.
//!
//! The table also keeps the shard's [`ShardTraffic`]: every datagram read and every datagram
//! the kernel accepts is counted with plain additions (the shard thread owns the table and
//! answers `ShardStats` from it), and each relay forward records the time from the wake-up that
//! received it to the submission of its send.

use std::mem::MaybeUninit;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

use io_uring::{Submitter, cqueue, opcode, squeue};
use wavegate_shared::protocol::ShardTraffic;

use super::batch::{self, CatchUp, QueueRefused, RecvRing, SendPool};
use crate::relay::{DropReason, PortSockets, Relay, Verdict};
use crate::webrtc::bridge::{Bridge, BridgeIo};

const SOCKET_BUFFER: usize = 2 << 20;
/// Token of cancellation completions (ignored).
pub const TOKEN_REMOVE: u64 = u64::MAX - 1;
/// Token of the WebRTC socket's receive.
pub const TOKEN_WEBRTC: u64 = u64::MAX - 2;

/// Twins a port may open in its life (see the module doc).
pub const MAX_TWIN_OPENS: u8 = 8;
/// Bit 30 of a receive token: the completion is the twin's, not the port's own socket's.
const TWIN_TOKEN: u64 = 1 << 30;

struct Slot {
    socket: UdpSocket,
    generation: u32,
    /// The socket `connect()`ed to the port's current destination.
    twin: Option<Twin>,
    /// A twin requested for this destination (the index is in `SocketTable::wanted`).
    want: Option<SocketAddr>,
    /// Twins opened (or tried) so far.
    twin_opens: u8,
    /// `SO_REUSEPORT` is set on `socket` (at its first twin).
    reuseport: bool,
}

impl Slot {
    fn new(socket: UdpSocket, generation: u32) -> Self {
        Self { socket, generation, twin: None, want: None, twin_opens: 0, reuseport: false }
    }
}

/// A port's second socket, bound to the same address and `connect()`ed to `peer`.
struct Twin {
    socket: UdpSocket,
    generation: u32,
    peer: SocketAddr,
}

/// The sockets of a shard.
pub struct SocketTable {
    first: u16,
    bind_ip: IpAddr,
    slots: Vec<Option<Slot>>,
    next_generation: u32,
    pending: Vec<squeue::Entry>,
    recv: RecvRing,
    sends: SendPool,
    catch_up: Box<CatchUp>,
    webrtc: Option<UdpSocket>,
    traffic: ShardTraffic,
    /// Sockets closed since the last submission: requests queued before the close may still
    /// name their descriptors, so they stay open until the kernel has taken its references.
    closed: Vec<UdpSocket>,
    /// Open connected twins for the ports' destinations (`media.connect_latched`).
    connect: bool,
    /// Slot indices whose `want` asks for a twin; capacity for every slot, so it never grows.
    wanted: Vec<u16>,
}

/// Sends for the bridge and the relay from the table's sockets (borrowed apart from the
/// receive ring).
struct Sender<'a> {
    first: u16,
    slots: &'a mut [Option<Slot>],
    webrtc: Option<i32>,
    sends: &'a mut SendPool,
    traffic: &'a mut ShardTraffic,
    /// `Some` when twins are on: where to ask for one.
    wanted: Option<&'a mut Vec<u16>>,
}

impl Sender<'_> {
    /// Sends `buf` from local port `port` to `dst`: from the port's twin without an address
    /// when it is connected to `dst`, else from the port's socket (asking for a twin).
    fn send_from_port(&mut self, port: u16, buf: &[u8], dst: SocketAddr, received_ns: u64) {
        let Some(j) = port.checked_sub(self.first).map(usize::from) else { return };
        let Some(Some(slot)) = self.slots.get_mut(j) else { return };
        if let Some(twin) = &slot.twin
            && twin.peer == dst
        {
            let fd = twin.socket.as_raw_fd();
            self.send(fd, buf, None, received_ns);
            return;
        }
        let fd = slot.socket.as_raw_fd();
        if let Some(wanted) = self.wanted.as_deref_mut()
            && slot.want.is_none()
            && slot.twin_opens < MAX_TWIN_OPENS
            && wanted.len() < wanted.capacity()
        {
            slot.want = Some(dst);
            wanted.push(j as u16);
        }
        self.send(fd, buf, Some(dst), received_ns);
    }

    /// Queues `buf` for the next submission (to `dst`, or to the connected peer of `fd` when
    /// `None`), or sends it now when no slot is free. Returns false when the kernel refused an
    /// immediate send.
    fn send(&mut self, fd: i32, buf: &[u8], dst: Option<SocketAddr>, received_ns: u64) -> bool {
        let queued = match dst {
            Some(dst) => self.sends.queue(fd, buf, dst, received_ns),
            None => self.sends.queue_connected(fd, buf, received_ns),
        };
        match queued {
            Ok(()) => true,
            Err(QueueRefused::Full | QueueRefused::TooLarge) => {
                let sent = send_to(fd, buf, dst);
                if sent {
                    self.traffic.sent(buf.len());
                }
                sent
            }
        }
    }
}

impl BridgeIo for Sender<'_> {
    fn send_webrtc(&mut self, dst: SocketAddr, buf: &[u8]) {
        if let Some(fd) = self.webrtc {
            self.send(fd, buf, Some(dst), 0);
        }
    }

    fn send_rtp(&mut self, from_port: u16, dst: SocketAddr, buf: &[u8]) {
        self.send_from_port(from_port, buf, dst, 0);
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
    /// A table for ports `first ..= first + count - 1`, binding on `bind_ip`; allocates the
    /// receive ring and the send slots.
    pub fn new(first: u16, count: usize, bind_ip: IpAddr) -> std::io::Result<Self> {
        Self::with_buffers(first, count, bind_ip, batch::RECV_BUFS)
    }

    /// As [`SocketTable::new`] with `bufs` receive buffers (tests use a few to exhaust them).
    pub fn with_buffers(first: u16, count: usize, bind_ip: IpAddr, bufs: u16) -> std::io::Result<Self> {
        Ok(Self {
            first,
            bind_ip,
            slots: (0..count).map(|_| None).collect(),
            next_generation: 1,
            // Arms and cancellations only: one per socket open, close or ended receive.
            pending: Vec::with_capacity(1024),
            recv: RecvRing::new(bufs)?,
            sends: SendPool::new(batch::SEND_SLOTS),
            catch_up: CatchUp::new(),
            webrtc: None,
            traffic: ShardTraffic::default(),
            closed: Vec::new(),
            connect: false,
            wanted: Vec::with_capacity(count),
        })
    }

    /// Turns connected twins on or off (`media.connect_latched`; off for a new table). Turning
    /// them off keeps the twins already open until their ports close.
    pub fn set_connect_latched(&mut self, on: bool) {
        self.connect = on;
    }

    /// Twins open now (diagnostics and tests).
    pub fn twin_count(&self) -> usize {
        self.slots.iter().flatten().filter(|s| s.twin.is_some()).count()
    }

    /// The destination local port `port`'s twin is connected to, if it has one.
    pub fn twin_peer(&self, port: u16) -> Option<SocketAddr> {
        self.slots.get(self.index(port)?)?.as_ref()?.twin.as_ref().map(|t| t.peer)
    }

    /// Registers the receive ring with the shard's io_uring (before any socket is armed).
    pub fn register(&self, submitter: &Submitter<'_>) -> std::io::Result<()> {
        self.recv.register(submitter)
    }

    fn sender(&mut self) -> Sender<'_> {
        let webrtc = self.webrtc.as_ref().map(AsRawFd::as_raw_fd);
        let wanted = self.connect.then_some(&mut self.wanted);
        Sender { first: self.first, slots: &mut self.slots, webrtc, sends: &mut self.sends, traffic: &mut self.traffic, wanted }
    }

    /// Binds the shard's WebRTC socket on `addr` (port 0 picks one) and queues its receive;
    /// returns the bound address.
    pub fn open_webrtc(&mut self, addr: SocketAddr) -> std::io::Result<SocketAddr> {
        let socket = bind(addr.ip(), addr.port())?;
        let local = socket.local_addr()?;
        self.pending.push(self.recv.recv_entry(socket.as_raw_fd(), TOKEN_WEBRTC));
        self.webrtc = Some(socket);
        Ok(local)
    }

    /// Handles a completion of the WebRTC socket's receive: the datagram goes to the bridge,
    /// the buffer back to the ring, and an ended receive is re-armed.
    pub fn on_webrtc_recv(&mut self, res: i32, flags: u32, bridge: Option<&mut Bridge>, received_ns: u64) {
        let bid = cqueue::buffer_select(flags);
        let mut bridge = bridge;
        if let (Some(bid), Ok(len), Some(bridge)) = (bid, usize::try_from(res), bridge.as_deref_mut()) {
            let Self { first, slots, recv, sends, traffic, webrtc, connect, wanted, .. } = self;
            let buf = recv.buf_mut(bid, len);
            if let Some((src, range)) = batch::parse_recvmsg(buf) {
                traffic.received(1, range.len());
                let webrtc = webrtc.as_ref().map(AsRawFd::as_raw_fd);
                let wanted = connect.then_some(wanted);
                let mut sender = Sender { first: *first, slots, webrtc, sends, traffic, wanted };
                bridge.on_webrtc_datagram(received_ns, src, &buf[range], &mut sender);
            }
        }
        if let Some(bid) = bid {
            self.recv.recycle(bid);
        }
        if !cqueue::more(flags)
            && let Some(fd) = self.webrtc.as_ref().map(AsRawFd::as_raw_fd)
        {
            if res == -libc::ENOBUFS {
                self.catch_up_webrtc(fd, bridge, received_ns);
            }
            self.pending.push(self.recv.recv_entry(fd, TOKEN_WEBRTC));
        }
    }

    /// Drains the WebRTC socket with `recvmmsg` after its receive ran out of ring buffers.
    fn catch_up_webrtc(&mut self, fd: i32, mut bridge: Option<&mut Bridge>, now_ns: u64) {
        let Self { first, slots, catch_up, sends, traffic, connect, wanted, .. } = self;
        let wanted = connect.then_some(wanted);
        let mut sender = Sender { first: *first, slots, webrtc: Some(fd), sends, traffic, wanted };
        for _ in 0..CATCH_UP_ROUNDS {
            let n = catch_up.recv(fd);
            for i in 0..n {
                let Some((src, buf)) = catch_up.datagram(i) else { continue };
                sender.traffic.received(1, buf.len());
                if let Some(b) = bridge.as_deref_mut() {
                    b.on_webrtc_datagram(now_ns, src, buf, &mut sender);
                }
            }
            if n < batch::CATCH_UP_BATCH {
                break;
            }
        }
    }

    /// Requests to submit (taken by the shard loop): arms and cancellations first (after
    /// opening the twins requested since the last call), then the sends queued since the last
    /// call, recording relay latency up to `now_ns`.
    pub fn take_pending(&mut self, now_ns: u64) -> impl Iterator<Item = squeue::Entry> + '_ {
        self.open_twins();
        self.pending.drain(..).chain(self.sends.take_queued(now_ns, &mut self.traffic))
    }

    /// Opens the requested twins, closing the ones they replace.
    fn open_twins(&mut self) {
        let Self { first, bind_ip, slots, next_generation, pending, recv, closed, wanted, .. } = self;
        while let Some(j) = wanted.pop() {
            let index = usize::from(j);
            let Some(Some(slot)) = slots.get_mut(index) else { continue };
            // None: the port closed (and maybe reopened) since the request.
            let Some(peer) = slot.want.take() else { continue };
            if slot.twin.as_ref().is_some_and(|t| t.peer == peer) {
                continue;
            }
            if let Some(old) = slot.twin.take() {
                close_socket(pending, closed, old.socket, twin_token(old.generation, index));
            }
            slot.twin_opens = slot.twin_opens.saturating_add(1);
            let local = SocketAddr::new(*bind_ip, first.wrapping_add(j));
            let opened = set_reuseport(slot).and_then(|()| connect_twin(local, peer));
            match opened {
                Ok(socket) => {
                    let generation = *next_generation;
                    *next_generation = next_generation.wrapping_add(1).max(1);
                    pending.push(recv.recv_entry(socket.as_raw_fd(), twin_token(generation, index)));
                    slot.twin = Some(Twin { socket, generation, peer });
                }
                Err(e) => {
                    tracing::debug!(%local, %peer, error = %e, "cannot open a connected twin; sending unconnected");
                }
            }
        }
    }

    /// Called after each submission: descriptors closed before it may now be released.
    pub fn submitted(&mut self) {
        self.closed.clear();
    }

    /// Whether requests wait to be submitted (or twins to be opened).
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty() || self.sends.has_queued() || !self.wanted.is_empty()
    }

    /// Sends submitted or queued whose completions have not been handled: the shard waits for
    /// these plus one (they complete during the submission itself).
    pub fn sends_in_flight(&self) -> usize {
        self.sends.in_flight()
    }

    /// Handles the completion of send `slot` (see [`batch::send_slot`]).
    pub fn on_send_done(&mut self, slot: u16, res: i32) {
        self.sends.complete(slot, res, &mut self.traffic);
    }

    /// Publishes the buffers recycled since the last call (once per batch of completions).
    pub fn publish_buffers(&self) {
        self.recv.publish();
    }

    fn index(&self, port: u16) -> Option<usize> {
        port.checked_sub(self.first).map(usize::from).filter(|i| *i < self.slots.len())
    }

    /// Decodes a receive token into the slot index if it still names an open socket (the
    /// port's own or its twin).
    pub fn live_index(&self, token: u64) -> Option<usize> {
        self.live_socket(token).map(|(index, _)| index)
    }

    /// The slot index and descriptor of the socket a receive token names, if still open.
    fn live_socket(&self, token: u64) -> Option<(usize, i32)> {
        let index = (token & 0xffff) as usize;
        let generation = (token >> 32) as u32;
        let slot = self.slots.get(index)?.as_ref()?;
        if token & TWIN_TOKEN != 0 {
            let twin = slot.twin.as_ref().filter(|t| t.generation == generation)?;
            Some((index, twin.socket.as_raw_fd()))
        } else {
            (slot.generation == generation).then(|| (index, slot.socket.as_raw_fd()))
        }
    }

    /// Handles a receive completion of an RTP/RTCP socket (`token`, result, flags): lets the
    /// relay (or the bridge) process the datagram and queues what it sends, gives the buffer
    /// back to the ring and re-arms a receive that ended. `received_ns` is the wake-up's time.
    pub fn on_recv(
        &mut self,
        token: u64,
        res: i32,
        flags: u32,
        relay: &mut Relay,
        bridge: Option<&mut Bridge>,
        received_ns: u64,
    ) {
        let bid = cqueue::buffer_select(flags);
        let live = self.live_socket(token);
        let mut bridge = bridge;
        if let (Some(bid), Some((index, _)), Ok(len)) = (bid, live, usize::try_from(res)) {
            self.forward(index, bid, len, relay, bridge.as_deref_mut(), received_ns);
        }
        if let Some(bid) = bid {
            self.recv.recycle(bid);
        }
        // Twins open and close only between batches, so `live` still names an open socket. A
        // twin's receive also ends on an ICMP error (connected sockets report them, e.g. a
        // peer's closed port) and is re-armed like any other.
        if !cqueue::more(flags)
            && let Some((index, fd)) = live
        {
            if res == -libc::ENOBUFS {
                self.catch_up(index, fd, relay, bridge, received_ns);
            }
            let entry = self.recv.recv_entry(fd, token);
            self.pending.push(entry);
        }
    }

    /// Drains slot `index`'s socket with `recvmmsg` after its receive ran out of ring buffers
    /// (see [`CatchUp`]), forwarding like [`SocketTable::on_recv`].
    fn catch_up(&mut self, index: usize, fd: i32, relay: &mut Relay, mut bridge: Option<&mut Bridge>, now_ns: u64) {
        let local_port = self.first + index as u16;
        let webrtc = self.webrtc.as_ref().map(AsRawFd::as_raw_fd);
        let Self { first, slots, catch_up, sends, traffic, connect, wanted, .. } = self;
        let wanted = connect.then_some(wanted);
        let mut sender = Sender { first: *first, slots, webrtc, sends, traffic, wanted };
        for _ in 0..CATCH_UP_ROUNDS {
            let n = catch_up.recv(fd);
            for i in 0..n {
                let Some((src, buf)) = catch_up.datagram(i) else { continue };
                sender.traffic.received(1, buf.len());
                relay_datagram(&mut sender, relay, bridge.as_deref_mut(), local_port, src, buf, now_ns);
            }
            if n < batch::CATCH_UP_BATCH {
                break;
            }
        }
    }

    fn forward(
        &mut self,
        index: usize,
        bid: u16,
        len: usize,
        relay: &mut Relay,
        bridge: Option<&mut Bridge>,
        now_ns: u64,
    ) {
        let local_port = self.first + index as u16;
        let webrtc = self.webrtc.as_ref().map(AsRawFd::as_raw_fd);
        let Self { first, slots, recv, sends, traffic, connect, wanted, .. } = self;
        let buf = recv.buf_mut(bid, len);
        let Some((src, range)) = batch::parse_recvmsg(buf) else {
            return;
        };
        traffic.received(1, range.len());
        let wanted = connect.then_some(wanted);
        let mut sender = Sender { first: *first, slots, webrtc, sends, traffic, wanted };
        relay_datagram(&mut sender, relay, bridge, local_port, src, &mut buf[range], now_ns);
    }
}

/// Bounds one catch-up: 64 `recvmmsg` batches (2,048 datagrams) per ended receive.
const CATCH_UP_ROUNDS: usize = 64;

/// The relay's verdict on one datagram, carried out: forward it, hand it to the bridge (a port
/// the relay does not own) or drop it.
fn relay_datagram(
    sender: &mut Sender<'_>,
    relay: &mut Relay,
    bridge: Option<&mut Bridge>,
    local_port: u16,
    src: SocketAddr,
    buf: &mut [u8],
    now_ns: u64,
) {
    match relay.on_packet(now_ns, local_port, src, buf) {
        Verdict::Forward(f) => {
            if let Some(data) = buf.get(..f.len) {
                sender.send_from_port(f.out_port, data, f.dst, now_ns);
            }
        }
        Verdict::Drop(DropReason::UnknownPort) => {
            if let Some(b) = bridge {
                b.on_sip_packet(now_ns, local_port, src, buf, sender);
            }
        }
        Verdict::Drop(_) => {}
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
            self.pending.push(self.recv.recv_entry(socket.as_raw_fd(), token(generation, index)));
            self.slots[index] = Some(Slot::new(socket, generation));
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
                if let Some(twin) = slot.twin {
                    close_socket(&mut self.pending, &mut self.closed, twin.socket, twin_token(twin.generation, i));
                }
                close_socket(&mut self.pending, &mut self.closed, slot.socket, token(slot.generation, i));
            }
        }
    }
}

fn token(generation: u32, index: usize) -> u64 {
    u64::from(generation) << 32 | index as u64
}

fn twin_token(generation: u32, index: usize) -> u64 {
    token(generation, index) | TWIN_TOKEN
}

/// Queues the cancellation of `socket`'s receive (`token`) and keeps it open until that is
/// submitted: the receive holds its own file reference.
fn close_socket(pending: &mut Vec<squeue::Entry>, closed: &mut Vec<UdpSocket>, socket: UdpSocket, token: u64) {
    pending.push(opcode::AsyncCancel::new(token).build().user_data(TOKEN_REMOVE));
    closed.push(socket);
}

/// Sets `SO_REUSEPORT` on a port's own socket (once), so a twin may bind beside it. Set after
/// bind, the kernel forms the port's reuseport group when the twin binds.
fn set_reuseport(slot: &mut Slot) -> std::io::Result<()> {
    if !slot.reuseport {
        rustix::net::sockopt::set_socket_reuseport(&slot.socket, true)?;
        slot.reuseport = true;
    }
    Ok(())
}

/// A socket bound to `local` beside the port's own (`SO_REUSEPORT`) and connected to `peer`.
/// An IPv4 peer of an IPv6 (dual-stack) socket is connected as its v4-mapped address.
fn connect_twin(local: SocketAddr, peer: SocketAddr) -> std::io::Result<UdpSocket> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType};
    let (family, peer) = match (local, peer) {
        (SocketAddr::V4(_), SocketAddr::V4(_)) => (AddressFamily::INET, peer),
        (SocketAddr::V6(_), SocketAddr::V6(_)) => (AddressFamily::INET6, peer),
        (SocketAddr::V6(_), SocketAddr::V4(v4)) => {
            (AddressFamily::INET6, SocketAddr::new(IpAddr::V6(v4.ip().to_ipv6_mapped()), v4.port()))
        }
        (SocketAddr::V4(_), SocketAddr::V6(_)) => {
            return Err(std::io::Error::from(std::io::ErrorKind::InvalidInput));
        }
    };
    let fd = rustix::net::socket_with(family, SocketType::DGRAM, SocketFlags::NONBLOCK | SocketFlags::CLOEXEC, None)?;
    rustix::net::sockopt::set_socket_reuseport(&fd, true)?;
    rustix::net::bind(&fd, &local)?;
    rustix::net::connect(&fd, &peer)?;
    let socket = UdpSocket::from(fd);
    // Best effort, as for the port's own socket.
    let _ = rustix::net::sockopt::set_socket_recv_buffer_size(&socket, SOCKET_BUFFER);
    let _ = rustix::net::sockopt::set_socket_send_buffer_size(&socket, SOCKET_BUFFER);
    Ok(socket)
}

fn bind(ip: IpAddr, port: u16) -> std::io::Result<UdpSocket> {
    let socket = UdpSocket::bind(SocketAddr::new(ip, port))?;
    socket.set_nonblocking(true)?;
    // Best effort: the kernel caps these at net.core.[rw]mem_max.
    let _ = rustix::net::sockopt::set_socket_recv_buffer_size(&socket, SOCKET_BUFFER);
    let _ = rustix::net::sockopt::set_socket_send_buffer_size(&socket, SOCKET_BUFFER);
    Ok(socket)
}

/// `sendto` without allocation (the fallback when no send slot is free), or `send` on a
/// connected socket when `dst` is `None`; `true` when the kernel took the datagram.
fn send_to(fd: i32, buf: &[u8], dst: Option<SocketAddr>) -> bool {
    let Some(dst) = dst else {
        // SAFETY: `buf` is valid for its length.
        return unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) } >= 0;
    };
    let mut storage = MaybeUninit::<libc::sockaddr_in6>::zeroed();
    // SAFETY: all-zero is a valid sockaddr_in6.
    let len = batch::write_sockaddr(dst, unsafe { storage.assume_init_mut() });
    // SAFETY: `buf` and `storage` are valid for the lengths given.
    let sent =
        unsafe { libc::sendto(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_DONTWAIT, storage.as_ptr().cast(), len) };
    sent >= 0
}

#[cfg(test)]
#[path = "sockets_tests.rs"]
mod tests;
