//! Doorbells: a connected pair of non-blocking Unix datagram sockets per shard.
//!
//! A ring producer that finds its consumer asleep sends one byte; the consumer's event loop
//! (tokio `AsyncFd`, an io_uring poll, or [`Doorbell::wait`] for plain threads) wakes on it. A full
//! socket buffer means a wake-up is already pending, so sends never block and never fail
//! loudly. One pair serves both directions: each end reads what the other end rings.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType, recv, send, socketpair};

/// One end of a doorbell pair.
#[derive(Debug)]
pub struct Doorbell {
    fd: OwnedFd,
}

impl Doorbell {
    /// A connected pair; both ends non-blocking and close-on-exec.
    pub fn pair() -> io::Result<(Doorbell, Doorbell)> {
        let (a, b) = socketpair(
            AddressFamily::UNIX,
            SocketType::DGRAM,
            SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
            None,
        )?;
        Ok((Doorbell { fd: a }, Doorbell { fd: b }))
    }

    /// Wraps an inherited end (the media plane gets its ends by fd number).
    pub fn from_fd(fd: OwnedFd) -> io::Result<Doorbell> {
        let flags = rustix::fs::fcntl_getfl(&fd)?;
        rustix::fs::fcntl_setfl(&fd, flags | rustix::fs::OFlags::NONBLOCK)?;
        Ok(Doorbell { fd })
    }

    /// Wakes the other end. Never blocks.
    pub fn ring(&self) {
        // EAGAIN: a wake-up is already queued. ECONNREFUSED/EPIPE: the other side is gone,
        // which its supervisor notices on its own.
        let _ = send(&self.fd, &[1], SendFlags::DONTWAIT | SendFlags::NOSIGNAL);
    }

    /// Consumes every pending wake-up. Returns how many there were.
    pub fn drain(&self) -> usize {
        let mut buf = [0u8; 64];
        let mut n = 0;
        while recv(&self.fd, &mut buf, RecvFlags::DONTWAIT).is_ok() {
            n += 1;
        }
        n
    }

    /// Blocks the thread until rung or `timeout` passes; drains. For threads without a reactor.
    pub fn wait(&self, timeout: Duration) -> io::Result<bool> {
        let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
        let ts = Timespec {
            tv_sec: timeout.as_secs() as _,
            tv_nsec: timeout.subsec_nanos() as _,
        };
        let ready = poll(&mut fds, Some(&ts))?;
        Ok(ready > 0 && self.drain() > 0)
    }

    /// Takes the fd out (for runtimes that wrap it themselves).
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }
}

impl std::os::fd::AsRawFd for Doorbell {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for Doorbell {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_wakes_other_end() {
        let (a, b) = Doorbell::pair().unwrap();
        assert!(!b.wait(Duration::from_millis(1)).unwrap());
        a.ring();
        a.ring();
        assert!(b.wait(Duration::from_secs(1)).unwrap());
        assert_eq!(b.drain(), 0);
        b.ring();
        assert_eq!(a.drain(), 1);
    }
}
