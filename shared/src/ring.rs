//! A single-producer single-consumer ring of length-prefixed frames in shared memory.
//!
//! Layout of one ring: a [`RingHeader`] (producer position, consumer position and the
//! consumer's "sleeping" flag, each on its own cache line) followed by `capacity` data bytes,
//! `capacity` a power of two. Positions are monotonically increasing byte counts; a frame is a
//! `u32` LE length and the frame bytes, padded to 8, copied in two pieces when it wraps.
//!
//! The other process is not trusted: every value read from shared memory is range-checked
//! before use, so a corrupt or hostile peer yields [`RingError::Corrupt`], never UB or a panic.
//!
//! Wake-ups never spin: a consumer that finds the ring empty raises `sleeping`, re-checks, and
//! waits on its doorbell; a producer rings the doorbell only when it clears a raised flag.
//! Both sides use sequentially consistent accesses on the flag and the producer position, so
//! either the consumer sees the new frame or the producer sees the flag (no lost wake-up).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

/// Bytes in front of each frame.
const LEN_PREFIX: u64 = 4;

/// Why a ring operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RingError {
    /// The frame is larger than the ring's frame cap.
    #[error("frame of {len} bytes exceeds the {max}-byte frame cap")]
    TooLarge { len: usize, max: usize },
    /// Not enough free space now; try again after the consumer catches up.
    #[error("ring full")]
    Full,
    /// Shared state is inconsistent: the other side is broken or hostile.
    #[error("ring corrupt: {0}")]
    Corrupt(&'static str),
}

#[repr(C, align(64))]
struct Line<T>(T);

/// The control block at the start of each ring. All fields are atomics: the memory is shared
/// with another process.
#[repr(C)]
pub struct RingHeader {
    head: Line<AtomicU64>,
    tail: Line<AtomicU64>,
    consumer_sleeping: Line<AtomicU32>,
    _reserved: Line<u64>,
}

/// Size reserved for a [`RingHeader`] in the region layout.
pub const RING_HEADER_BYTES: usize = 256;
const _: () = assert!(std::mem::size_of::<RingHeader>() <= RING_HEADER_BYTES);

const fn padded(len: u64) -> u64 {
    (LEN_PREFIX + len + 7) & !7
}

/// Raw view of one ring in mapped memory. Both endpoints use it; it enforces no roles.
#[derive(Clone, Copy)]
struct RawRing {
    header: *const RingHeader,
    data: *mut u8,
    capacity: u64,
    max_frame: u32,
}

impl RawRing {
    fn header(&self) -> &RingHeader {
        // SAFETY: `header` points into a live mapping (kept alive by the endpoint's owner),
        // is 64-byte aligned and only accessed through atomics.
        unsafe { &*self.header }
    }

    fn mask(&self) -> u64 {
        self.capacity - 1
    }

    /// Copies `src` into the ring at absolute position `pos`, wrapping.
    fn write_at(&self, pos: u64, src: &[u8]) {
        let start = (pos & self.mask()) as usize;
        let cap = self.capacity as usize;
        let first = src.len().min(cap - start);
        // SAFETY: start < cap and first <= cap - start; the rest (< cap) goes to offset 0.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), self.data.add(start), first);
            std::ptr::copy_nonoverlapping(src.as_ptr().add(first), self.data, src.len() - first);
        }
    }

    /// Copies `dst.len()` bytes out of the ring from absolute position `pos`, wrapping.
    fn read_at(&self, pos: u64, dst: &mut [u8]) {
        let start = (pos & self.mask()) as usize;
        let cap = self.capacity as usize;
        let first = dst.len().min(cap - start);
        // SAFETY: as in `write_at`; dst.len() <= capacity is checked by callers.
        unsafe {
            std::ptr::copy_nonoverlapping(self.data.add(start), dst.as_mut_ptr(), first);
            std::ptr::copy_nonoverlapping(self.data, dst.as_mut_ptr().add(first), dst.len() - first);
        }
    }
}

/// Builds a ring over `base`, which must point at `RING_HEADER_BYTES + capacity` writable
/// bytes, 64-byte aligned, that stay mapped while any endpoint built from it lives.
///
/// # Safety
/// The caller guarantees the memory contract above and that at most one [`Producer`] and one
/// [`Consumer`] exist for the ring across all processes.
/// Something that keeps a ring's memory mapped; each endpoint holds a clone, so moving an
/// endpoint out of its channel struct can never leave it pointing at unmapped memory.
pub(crate) type KeepAlive = Option<std::sync::Arc<dyn Send + Sync>>;

pub(crate) unsafe fn endpoints(
    base: *mut u8,
    capacity: u64,
    max_frame: u32,
    keep: KeepAlive,
) -> (Producer, Consumer) {
    let raw = RawRing {
        header: base as *const RingHeader,
        // SAFETY: the data area follows the header inside the same mapping.
        data: unsafe { base.add(RING_HEADER_BYTES) },
        capacity,
        max_frame,
    };
    let head = raw.header().head.0.load(Ordering::Acquire);
    let tail = raw.header().tail.0.load(Ordering::Acquire);
    (Producer { raw, head, _keep: keep.clone() }, Consumer { raw, tail, _keep: keep })
}

/// Bytes queued in the ring at `base` (producer position minus consumer position, clamped to
/// `capacity`), read from its header without being either endpoint: for gauges. The two
/// positions are read one after the other, so the figure is a snapshot of a moving ring.
///
/// # Safety
/// `base` points at a ring header inside a live mapping (as for [`endpoints`]).
pub(crate) unsafe fn depth(base: *const u8, capacity: u64) -> u64 {
    // SAFETY: the caller guarantees a mapped, aligned header; only atomics are read.
    let header = unsafe { &*(base as *const RingHeader) };
    let tail = header.tail.0.load(Ordering::Acquire);
    let head = header.head.0.load(Ordering::Acquire);
    // A corrupt peer can make head < tail: report it as empty rather than as huge.
    if head < tail { 0 } else { (head - tail).min(capacity) }
}

/// Zeroes a ring's header. Only for a freshly created region.
///
/// # Safety
/// As for [`endpoints`]; no endpoint may be in use.
pub(crate) unsafe fn init(base: *mut u8) {
    // SAFETY: the caller owns the fresh memory; the header is plain atomics.
    unsafe { std::ptr::write_bytes(base, 0, RING_HEADER_BYTES) };
}

/// The writing end of a ring.
pub struct Producer {
    raw: RawRing,
    head: u64,
    _keep: KeepAlive,
}

// SAFETY: a Producer is the only writer of its ring's head and data; moving it to another
// thread moves that role with it.
unsafe impl Send for Producer {}

impl Producer {
    /// Largest frame this ring accepts.
    pub fn max_frame(&self) -> usize {
        self.raw.max_frame as usize
    }

    /// Appends `frame`. Returns whether the consumer was asleep and must be woken (ring its
    /// doorbell).
    pub fn try_push(&mut self, frame: &[u8]) -> Result<bool, RingError> {
        if frame.len() > self.raw.max_frame as usize {
            return Err(RingError::TooLarge { len: frame.len(), max: self.raw.max_frame as usize });
        }
        let need = padded(frame.len() as u64);
        let tail = self.raw.header().tail.0.load(Ordering::Acquire);
        // Positions wrap at 2^64; the capacity (a power of two) divides that, so masks agree.
        let used = self.head.wrapping_sub(tail);
        if used > self.raw.capacity {
            return Err(RingError::Corrupt("consumer position out of range"));
        }
        if self.raw.capacity - used < need {
            return Err(RingError::Full);
        }
        self.raw.write_at(self.head, &(frame.len() as u32).to_le_bytes());
        self.raw.write_at(self.head.wrapping_add(LEN_PREFIX), frame);
        self.head = self.head.wrapping_add(need);
        self.raw.header().head.0.store(self.head, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        let hdr = self.raw.header();
        Ok(hdr.consumer_sleeping.0.load(Ordering::SeqCst) == 1
            && hdr.consumer_sleeping.0.swap(0, Ordering::SeqCst) == 1)
    }

    /// Bytes currently queued and not yet consumed.
    pub fn queued_bytes(&self) -> u64 {
        self.head.wrapping_sub(self.raw.header().tail.0.load(Ordering::Acquire)).min(self.raw.capacity)
    }
}

/// The reading end of a ring.
pub struct Consumer {
    raw: RawRing,
    tail: u64,
    _keep: KeepAlive,
}

// SAFETY: a Consumer is the only writer of its ring's tail; see Producer.
unsafe impl Send for Consumer {}

impl Consumer {
    /// Moves the next frame into `out` (cleared first). `Ok(false)` when the ring is empty.
    pub fn try_pop(&mut self, out: &mut Vec<u8>) -> Result<bool, RingError> {
        let head = self.raw.header().head.0.load(Ordering::Acquire);
        if head == self.tail {
            return Ok(false);
        }
        let avail = head.wrapping_sub(self.tail);
        if avail > self.raw.capacity || avail < 8 {
            return Err(RingError::Corrupt("producer position out of range"));
        }
        let mut len = [0u8; 4];
        self.raw.read_at(self.tail, &mut len);
        let len = u32::from_le_bytes(len);
        if len > self.raw.max_frame {
            return Err(RingError::Corrupt("frame length over the cap"));
        }
        let need = padded(u64::from(len));
        if need > avail {
            return Err(RingError::Corrupt("frame length past the producer position"));
        }
        out.clear();
        out.resize(len as usize, 0);
        self.raw.read_at(self.tail.wrapping_add(LEN_PREFIX), out);
        self.tail = self.tail.wrapping_add(need);
        self.raw.header().tail.0.store(self.tail, Ordering::Release);
        Ok(true)
    }

    /// Raises the sleeping flag before waiting on the doorbell. Returns `false` (and lowers
    /// the flag) when a frame arrived meanwhile: the caller must drain instead of sleeping.
    pub fn prepare_sleep(&self) -> bool {
        let hdr = self.raw.header();
        hdr.consumer_sleeping.0.store(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if hdr.head.0.load(Ordering::SeqCst) != self.tail {
            hdr.consumer_sleeping.0.store(0, Ordering::SeqCst);
            return false;
        }
        true
    }

    /// Lowers the sleeping flag after a wake-up (the producer normally has already).
    pub fn woke(&self) {
        self.raw.header().consumer_sleeping.0.store(0, Ordering::SeqCst);
    }

    /// Whether a frame is waiting.
    pub fn has_frames(&self) -> bool {
        self.raw.header().head.0.load(Ordering::Acquire) != self.tail
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A heap-backed ring for single-process tests.
    struct TestRing {
        _mem: Vec<u64>,
        producer: Producer,
        consumer: Consumer,
        base: *mut u8,
    }

    fn ring(capacity: u64, max_frame: u32) -> TestRing {
        let mut mem = vec![0u64; (RING_HEADER_BYTES + capacity as usize) / 8 + 8];
        let ptr = mem.as_mut_ptr() as *mut u8;
        let base = unsafe { ptr.add(ptr.align_offset(64)) };
        unsafe { init(base) };
        let (producer, consumer) = unsafe { endpoints(base, capacity, max_frame, None) };
        TestRing { _mem: mem, producer, consumer, base }
    }

    #[test]
    fn push_pop_in_order_with_wrap() {
        let mut r = ring(256, 64);
        let mut out = Vec::new();
        for i in 0..1000u32 {
            let frame = vec![i as u8; (i % 50) as usize];
            r.producer.try_push(&frame).unwrap();
            assert!(r.consumer.try_pop(&mut out).unwrap());
            assert_eq!(out, frame);
        }
        assert!(!r.consumer.try_pop(&mut out).unwrap());
    }

    #[test]
    fn full_and_too_large() {
        let mut r = ring(64, 40);
        assert_eq!(r.producer.try_push(&[0; 41]), Err(RingError::TooLarge { len: 41, max: 40 }));
        r.producer.try_push(&[1; 28]).unwrap(); // 32 bytes padded
        r.producer.try_push(&[2; 28]).unwrap();
        assert_eq!(r.producer.try_push(&[3; 1]), Err(RingError::Full));
        let mut out = Vec::new();
        r.consumer.try_pop(&mut out).unwrap();
        r.producer.try_push(&[3; 1]).unwrap();
    }

    #[test]
    fn sleeping_flag_requests_one_wake() {
        let mut r = ring(256, 64);
        assert!(r.consumer.prepare_sleep());
        assert!(r.producer.try_push(b"a").unwrap(), "first push after sleep wakes");
        assert!(!r.producer.try_push(b"b").unwrap(), "flag already cleared");
        assert!(!r.consumer.prepare_sleep(), "frames waiting: do not sleep");
    }

    #[test]
    fn corrupt_positions_and_lengths_are_errors() {
        let mut r = ring(256, 64);
        let hdr = unsafe { &*(r.base as *const RingHeader) };
        let mut out = Vec::new();
        // Producer claims more than capacity.
        hdr.head.0.store(10_000, Ordering::SeqCst);
        assert!(matches!(r.consumer.try_pop(&mut out), Err(RingError::Corrupt(_))));
        // A frame length over the cap.
        hdr.head.0.store(16, Ordering::SeqCst);
        unsafe { std::ptr::copy_nonoverlapping(1000u32.to_le_bytes().as_ptr(), r.base.add(RING_HEADER_BYTES), 4) };
        assert!(matches!(r.consumer.try_pop(&mut out), Err(RingError::Corrupt(_))));
        // A length past the producer position.
        unsafe { std::ptr::copy_nonoverlapping(60u32.to_le_bytes().as_ptr(), r.base.add(RING_HEADER_BYTES), 4) };
        assert!(matches!(r.consumer.try_pop(&mut out), Err(RingError::Corrupt(_))));
        // Consumer position moved past the producer.
        hdr.tail.0.store(5000, Ordering::SeqCst);
        assert!(matches!(r.producer.try_push(b"x"), Err(RingError::Corrupt(_))));
    }

    proptest! {
        #[test]
        fn interleaved_ops_preserve_order(ops in proptest::collection::vec((any::<bool>(), 0usize..100), 1..400)) {
            let mut r = ring(512, 100);
            let mut model = std::collections::VecDeque::new();
            let mut next = 0u8;
            let mut out = Vec::new();
            for (push, len) in ops {
                if push {
                    let frame = vec![next; len];
                    match r.producer.try_push(&frame) {
                        Ok(_) => { model.push_back(frame); next = next.wrapping_add(1); }
                        Err(RingError::Full) => {}
                        Err(e) => prop_assert!(false, "unexpected {e}"),
                    }
                } else {
                    let got = r.consumer.try_pop(&mut out).unwrap();
                    match model.pop_front() {
                        Some(f) => { prop_assert!(got); prop_assert_eq!(&out, &f); }
                        None => prop_assert!(!got),
                    }
                }
            }
        }

        #[test]
        fn garbage_header_never_panics(head in any::<u64>(), tail in any::<u64>(), junk in proptest::collection::vec(any::<u8>(), 64)) {
            let r = ring(64, 32);
            let hdr = unsafe { &*(r.base as *const RingHeader) };
            unsafe { std::ptr::copy_nonoverlapping(junk.as_ptr(), r.base.add(RING_HEADER_BYTES), 64) };
            hdr.head.0.store(head, Ordering::SeqCst);
            hdr.tail.0.store(tail, Ordering::SeqCst);
            let (mut p, mut c) = unsafe { endpoints(r.base, 64, 32, None) };
            let mut out = Vec::new();
            let _ = c.try_pop(&mut out);
            let _ = p.try_push(b"abc");
            prop_assert!(out.len() <= 32);
        }
    }
}
