//! Creating the control region and starting a media-plane process that inherits it.
//!
//! The child receives the region's memfd and one doorbell end per shard as inherited file
//! descriptors, named in `WAVEGATE_CONTROL_FD` and `WAVEGATE_DOORBELL_FDS`; everything else is
//! ordinary command-line arguments. The child also gets `PR_SET_PDEATHSIG = SIGKILL`, so a
//! media plane never outlives the process that spawned it.

use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use crate::client::{ClientError, ControlClient, EventReceiver};
use crate::doorbell::Doorbell;
use crate::region::{Geometry, Region, RegionError};

pub use crate::inherit::{ENV_CONTROL_FD, ENV_DOORBELL_FDS, inherited_fds};

/// Why the media plane could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// Creating the region failed.
    #[error(transparent)]
    Region(#[from] RegionError),
    /// Creating doorbells or the process failed.
    #[error("cannot start media plane {program}: {source}")]
    Process { program: String, source: std::io::Error },
    /// Starting the client failed.
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// What to start and how big its rings are.
#[derive(Debug, Clone)]
pub struct MediaPlaneCommand {
    /// Path of the `wavegate-mediaplane` binary.
    pub program: PathBuf,
    /// Its arguments (ports, shards' CPUs, timeouts).
    pub args: Vec<OsString>,
    /// Ring geometry; `shards` must match what the child will run.
    pub geometry: Geometry,
    /// Deadline for each control request.
    pub request_timeout: Duration,
}

/// A running media plane and the channel to it.
pub struct MediaPlane {
    /// The child process.
    pub child: tokio::process::Child,
    /// Its process id.
    pub pid: u32,
    /// The control channel.
    pub client: ControlClient,
    /// Unsolicited events from its shards.
    pub events: EventReceiver,
}

/// Creates a region, starts the media plane on it and returns the control channel.
/// Must run inside a tokio runtime.
pub fn spawn_media_plane(cmd: &MediaPlaneCommand) -> Result<MediaPlane, SpawnError> {
    let program = cmd.program.display().to_string();
    let io_err = |source| SpawnError::Process { program: program.clone(), source };
    let region = Region::create(cmd.geometry)?;
    let mut host_ends = Vec::new();
    let mut child_ends: Vec<OwnedFd> = Vec::new();
    for _ in 0..cmd.geometry.shards {
        let (host, child) = Doorbell::pair().map_err(io_err)?;
        host_ends.push(host);
        child_ends.push(child.into_fd());
    }
    let region_fd = region.fd().as_raw_fd();
    let inherit: Vec<RawFd> =
        std::iter::once(region_fd).chain(child_ends.iter().map(|fd| fd.as_raw_fd())).collect();
    let bells = child_ends.iter().map(|fd| fd.as_raw_fd().to_string()).collect::<Vec<_>>().join(",");

    let mut command = tokio::process::Command::new(&cmd.program);
    command
        .args(&cmd.args)
        .env(ENV_CONTROL_FD, region_fd.to_string())
        .env(ENV_DOORBELL_FDS, bells)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    // SAFETY: the hook runs between fork and exec, which is what `prepare_child` requires.
    unsafe {
        command.pre_exec(move || crate::inherit::prepare_child(&inherit));
    }
    let child = command.spawn().map_err(io_err)?;
    drop(child_ends);
    let pid = child.id().unwrap_or(0);
    let (client, events) = ControlClient::start(region, host_ends, cmd.request_timeout)?;
    Ok(MediaPlane { child, pid, client, events })
}
