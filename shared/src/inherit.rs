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
