//! How a media-plane child finds the descriptors its host handed it: the control region's memfd
//! and one doorbell end per shard, named by number in two environment variables. Kept out of
//! the `host` feature so the media plane needs no tokio.

use std::os::fd::{OwnedFd, RawFd};

/// Environment variable naming the inherited region fd.
pub const ENV_CONTROL_FD: &str = "WAVEGATE_CONTROL_FD";
/// Environment variable naming the inherited doorbell fds, comma-separated, shard order.
pub const ENV_DOORBELL_FDS: &str = "WAVEGATE_DOORBELL_FDS";

/// Parses the inherited fds in a media-plane child: the region and the doorbell ends.
pub fn inherited_fds() -> Result<(OwnedFd, Vec<OwnedFd>), String> {
    fn parse_fd(s: &str) -> Result<OwnedFd, String> {
        let fd: RawFd = s.trim().parse().map_err(|_| format!("not a file descriptor: {s:?}"))?;
        if fd < 3 || rustix::io::fcntl_getfd(unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }).is_err() {
            return Err(format!("file descriptor {fd} is not open"));
        }
        // SAFETY: the fd was checked to be open and is handed to us by the spawner alone.
        Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
    }
    let region = std::env::var(ENV_CONTROL_FD).map_err(|_| format!("{ENV_CONTROL_FD} is not set"))?;
    let bells = std::env::var(ENV_DOORBELL_FDS).map_err(|_| format!("{ENV_DOORBELL_FDS} is not set"))?;
    let region = parse_fd(&region)?;
    let bells = bells.split(',').filter(|s| !s.is_empty()).map(parse_fd).collect::<Result<Vec<_>, _>>()?;
    Ok((region, bells))
}

/// Runs in a freshly forked child before exec (from a `pre_exec` hook): keeps `fds` open across
/// exec and asks for SIGKILL when the parent dies, so a child never outlives its host.
///
/// # Safety
/// Call only between fork and exec; it makes only async-signal-safe calls (fcntl, prctl).
pub unsafe fn prepare_child(fds: &[RawFd]) -> std::io::Result<()> {
    for &fd in fds {
        // SAFETY: fcntl on a descriptor number; failure is reported, not undefined.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    // SAFETY: prctl with plain integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
