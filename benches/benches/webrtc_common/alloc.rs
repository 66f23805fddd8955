//! A counting global allocator (over mimalloc, the media plane's allocator) that attributes
//! every heap block to the code that allocated it: blocks allocated while [`in_bridge`] runs
//! are the bridge's (the media plane's per-call state), all others the harness's (the
//! simulated browsers, the network). Each block carries a 16-byte header with its owner, so a
//! block freed outside the section still leaves the right account.
//!
//! Optionally ([`trace_from`]) every bridge block of at least a given size records the
//! backtrace of its allocation until it is freed, so the live bytes can be grouped by call
//! site ([`trace_report`]); that bookkeeping is done with the owner flag off and a re-entrancy
//! guard, so it is never counted as the bridge's.
//!
//! Invariants: the counting path never allocates; the flags are const-initialised
//! thread-locals (no lazy allocation); counters are relaxed atomics (one thread measures).

use std::alloc::{GlobalAlloc, Layout};
use std::backtrace::Backtrace;
use std::cell::Cell;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering::Relaxed};

/// Bytes of header in front of every block.
const HEADER: usize = 16;
/// Size classes of live bridge blocks: `[2^k, 2^(k+1))` bytes.
pub const CLASSES: usize = 24;

thread_local! {
    static IN_BRIDGE: Cell<bool> = const { Cell::new(false) };
    /// Inside the tracing bookkeeping: allocate untracked.
    static IN_TRACE: Cell<bool> = const { Cell::new(false) };
}

/// Smallest bridge block whose allocation site is recorded (`usize::MAX`: tracing off).
static TRACE_MIN: AtomicUsize = AtomicUsize::new(usize::MAX);
/// Live traced blocks: address -> (size, where it was allocated).
static TRACES: Mutex<Option<HashMap<usize, (usize, Backtrace)>>> = Mutex::new(None);

/// Records the allocation site of every later bridge block of at least `min_bytes`.
pub fn trace_from(min_bytes: usize) {
    TRACE_MIN.store(min_bytes, Relaxed);
}

fn traced(f: impl FnOnce()) {
    IN_TRACE.with(|t| t.set(true));
    f();
    IN_TRACE.with(|t| t.set(false));
}

/// Live traced bridge bytes grouped by allocation site (the first `depth` frames of str0m or
/// Wavegate code), largest first: (site, bytes, blocks).
pub fn trace_report(depth: usize) -> Vec<(String, usize, usize)> {
    let mut sites: HashMap<String, (usize, usize)> = HashMap::new();
    let mut out = Vec::new();
    traced(|| {
        let Ok(guard) = TRACES.lock() else { return };
        for (size, bt) in guard.iter().flat_map(|m| m.values()) {
            let text = bt.to_string();
            let frames: Vec<&str> = text
                .lines()
                .map(str::trim)
                .filter(|l| {
                    !l.starts_with("at ")
                        && (l.contains("str0m") || l.contains("wavegate") || l.contains("dimpl"))
                })
                .take(depth)
                .collect();
            let e = sites.entry(frames.join(" <- ")).or_default();
            e.0 += size;
            e.1 += 1;
        }
        out = sites.into_iter().map(|(k, (b, n))| (k, b, n)).collect();
        out.sort_by(|a, b| b.1.cmp(&a.1));
    });
    out
}

/// The allocator; make it the `#[global_allocator]` of a bench binary.
pub struct Counting;

/// Live bytes the bridge allocated (requested sizes, headers excluded).
pub static BRIDGE_LIVE: AtomicI64 = AtomicI64::new(0);
/// Allocations (incl. reallocations) made by the bridge.
pub static BRIDGE_ALLOCS: AtomicU64 = AtomicU64::new(0);
/// Live bridge bytes per size class.
pub static BRIDGE_CLASS_BYTES: [AtomicI64; CLASSES] = [const { AtomicI64::new(0) }; CLASSES];
/// Live bridge blocks per size class.
pub static BRIDGE_CLASS_BLOCKS: [AtomicI64; CLASSES] = [const { AtomicI64::new(0) }; CLASSES];
/// Live bytes of everything else.
pub static OTHER_LIVE: AtomicI64 = AtomicI64::new(0);

fn class(size: usize) -> usize {
    (usize::BITS - 1 - size.max(1).leading_zeros()).min(CLASSES as u32 - 1) as usize
}

/// Runs `f` with its allocations counted as the bridge's.
pub fn in_bridge<T>(f: impl FnOnce() -> T) -> T {
    let was = IN_BRIDGE.with(|c| c.replace(true));
    let out = f();
    IN_BRIDGE.with(|c| c.set(was));
    out
}

fn outer(layout: Layout) -> Option<(Layout, usize)> {
    let offset = layout.align().max(HEADER);
    let size = layout.size().checked_add(offset)?;
    Some((Layout::from_size_align(size, offset).ok()?, offset))
}

fn account(bridge: bool, size: usize, sign: i64) {
    let bytes = size as i64 * sign;
    if bridge {
        BRIDGE_LIVE.fetch_add(bytes, Relaxed);
        BRIDGE_CLASS_BYTES[class(size)].fetch_add(bytes, Relaxed);
        BRIDGE_CLASS_BLOCKS[class(size)].fetch_add(sign, Relaxed);
        if sign > 0 {
            BRIDGE_ALLOCS.fetch_add(1, Relaxed);
        }
    } else {
        OTHER_LIVE.fetch_add(bytes, Relaxed);
    }
}

// SAFETY: every block handed out is `offset` bytes into a block of the inner allocator made
// with the outer layout, aligned to `offset` (>= the caller's alignment); dealloc recomputes the
// same outer layout from the caller's layout and frees the inner block.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some((outer, offset)) = outer(layout) else {
            return std::ptr::null_mut();
        };
        // SAFETY: outer has a non-zero size.
        let base = unsafe { mimalloc::MiMalloc.alloc(outer) };
        if base.is_null() {
            return base;
        }
        let tracing = IN_TRACE.with(Cell::get);
        let bridge = IN_BRIDGE.with(Cell::get) && !tracing;
        // SAFETY: offset >= 16 bytes lie in the block; the tag byte sits just before the user
        // pointer.
        let user = unsafe {
            let user = base.add(offset);
            *user.sub(1) = u8::from(bridge);
            user
        };
        account(bridge, layout.size(), 1);
        if bridge && layout.size() >= TRACE_MIN.load(Relaxed) {
            traced(|| {
                let bt = Backtrace::force_capture();
                if let Ok(mut g) = TRACES.lock() {
                    g.get_or_insert_with(HashMap::new)
                        .insert(user as usize, (layout.size(), bt));
                }
            });
        }
        user
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some((outer, offset)) = outer(layout) else {
            return;
        };
        // SAFETY: ptr came from alloc above with this layout.
        let bridge = unsafe { *ptr.sub(1) == 1 };
        account(bridge, layout.size(), -1);
        if bridge && layout.size() >= TRACE_MIN.load(Relaxed) && !IN_TRACE.with(Cell::get) {
            traced(|| {
                if let Ok(mut g) = TRACES.lock()
                    && let Some(m) = g.as_mut()
                {
                    m.remove(&(ptr as usize));
                }
            });
        }
        // SAFETY: as above.
        unsafe { mimalloc::MiMalloc.dealloc(ptr.sub(offset), outer) };
    }
}

/// Live bridge bytes.
pub fn bridge_live() -> i64 {
    BRIDGE_LIVE.load(Relaxed)
}

/// Bridge allocations so far.
pub fn bridge_allocs() -> u64 {
    BRIDGE_ALLOCS.load(Relaxed)
}

/// Live bridge (bytes, blocks) per size class.
pub fn bridge_classes() -> [(i64, i64); CLASSES] {
    std::array::from_fn(|k| {
        (
            BRIDGE_CLASS_BYTES[k].load(Relaxed),
            BRIDGE_CLASS_BLOCKS[k].load(Relaxed),
        )
    })
}
