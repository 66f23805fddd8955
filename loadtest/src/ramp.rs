//! The wait at the heart of the call ramps (the Wavegate leg in `call`, the Janus leg in
//! `janus`): sleep until the next placement or sample is due, or until a call task ends, and
//! keep that call's outcome. Bounded: it never waits past `wake`.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::task::JoinSet;
use wavegate_shared::clock::monotonic_ns;

use crate::call::{CallOutcome, Counters};
use crate::relay::RunError;

/// Waits until `wake` (monotonic ns, at least 0.1 ms from now) or until one call task ends,
/// whichever is first; an ended call's outcome is kept and counted if it failed. The ramp loops
/// of the Wavegate and Janus legs share it.
pub(crate) async fn collect_until(
    wake: u64,
    tasks: &mut JoinSet<CallOutcome>,
    counters: &Counters,
    outcomes: &mut Vec<CallOutcome>,
) -> Result<(), RunError> {
    let nap = Duration::from_nanos(wake.saturating_sub(monotonic_ns()).max(100_000));
    if tasks.is_empty() {
        tokio::time::sleep(nap).await;
    } else if let Ok(Some(done)) = tokio::time::timeout(nap, tasks.join_next()).await {
        let o = done.map_err(|_| RunError::Thread("call"))?;
        if o.failure.is_some() {
            counters.failed.fetch_add(1, Ordering::Relaxed);
        }
        outcomes.push(o);
    }
    Ok(())
}
