//! The one clock both processes agree on: CLOCK_MONOTONIC in nanoseconds.
//!
//! Only drivers call this; protocol cores take time as an argument.

/// Nanoseconds on CLOCK_MONOTONIC (shared by all processes on the host).
pub fn monotonic_ns() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    (ts.tv_sec as u64).wrapping_mul(1_000_000_000).wrapping_add(ts.tv_nsec as u64)
}
