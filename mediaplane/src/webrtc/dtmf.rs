//! RFC 4733 telephone-events (DTMF): the 4-byte payload, a receiver that reports each event once,
//! and a sender that turns one digit into a correct packet train.
//!
//! Sans-IO: the [`DtmfSender`] is driven by the shard's `now_ns` and says what to send; the
//! caller owns sequence numbers, the SSRC and the socket. Invariants: the parser never panics and
//! reads only the first four bytes (RFC 4733 §2.3: a payload may carry redundant events after
//! them, which we ignore); durations are in RTP clock ticks and never overflow 16 bits (a digit
//! whose duration does not fit is refused, rather than split into segments — RFC 4733 §2.5.1.3 —
//! which no DTMF digit needs at 8 kHz and only digits over 1.36 s need at 48 kHz).

use thiserror::Error;

/// Why a telephone-event payload or request was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DtmfError {
    /// Shorter than the 4-byte event.
    #[error("telephone-event payload of {0} bytes (4 needed)")]
    Short(usize),
    /// Not one of `0-9 * # A-D`.
    #[error("not a DTMF digit: {0:?}")]
    Digit(char),
    /// The duration does not fit in 16 bits of clock ticks, or is too short to be heard.
    #[error("duration of {ms} ms does not fit an event at {clock} Hz (20 ms at least)")]
    Duration {
        /// Requested.
        ms: u32,
        /// The event's clock rate.
        clock: u32,
    },
}

/// One RFC 4733 §2.3 event payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// Event code (0-15 for DTMF).
    pub event: u8,
    /// E bit: the event has ended.
    pub end: bool,
    /// Power level in -dBm0 (0..=63).
    pub volume: u8,
    /// Duration so far, in RTP clock ticks since the event's timestamp.
    pub duration: u16,
}

impl TelephoneEvent {
    /// Payload length.
    pub const LEN: usize = 4;

    /// Reads the first event of `payload`.
    pub fn parse(payload: &[u8]) -> Result<Self, DtmfError> {
        let [event, flags, d0, d1, ..] = *payload else {
            return Err(DtmfError::Short(payload.len()));
        };
        Ok(Self { event, end: flags & 0x80 != 0, volume: flags & 0x3f, duration: u16::from_be_bytes([d0, d1]) })
    }

    /// The 4-byte wire form (the reserved bit is 0).
    pub fn to_bytes(self) -> [u8; Self::LEN] {
        let [d0, d1] = self.duration.to_be_bytes();
        [self.event, (u8::from(self.end) << 7) | (self.volume & 0x3f), d0, d1]
    }
}

/// The DTMF digit of event code `event` (RFC 4733 §3.2 table 7).
pub fn digit_of(event: u8) -> Option<char> {
    Some(match event {
        0..=9 => char::from(b'0' + event),
        10 => '*',
        11 => '#',
        12..=15 => char::from(b'A' + event - 12),
        _ => return None,
    })
}

/// The event code of a DTMF digit (lower-case letters accepted).
pub fn event_of(digit: char) -> Result<u8, DtmfError> {
    Ok(match digit {
        '0'..='9' => digit as u8 - b'0',
        '*' => 10,
        '#' => 11,
        'A'..='D' => digit as u8 - b'A' + 12,
        'a'..='d' => digit as u8 - b'a' + 12,
        other => return Err(DtmfError::Digit(other)),
    })
}

/// `ticks` of a `from` Hz clock in a `to` Hz clock, saturating at 16 bits.
pub fn rescale(ticks: u16, from: u32, to: u32) -> u16 {
    if from == to || from == 0 {
        return ticks;
    }
    u16::try_from(u64::from(ticks) * u64::from(to) / u64::from(from)).unwrap_or(u16::MAX)
}

/// Reports each received event once (RFC 4733 §2.5.2: an event is identified by its RTP
/// timestamp; its end is sent three times, and may be lost entirely).
#[derive(Debug, Default, Clone, Copy)]
pub struct DtmfDetector {
    /// The timestamp of the event being received, its code and last duration.
    current: Option<(u32, u8, u16)>,
    /// The timestamp of the last event reported.
    reported: Option<u32>,
}

impl DtmfDetector {
    /// Feeds one telephone-event packet (`timestamp` from its RTP header, `clock` its rate);
    /// `report(digit, duration_ms)` is called when an event completes: at its first end packet,
    /// or when a new event starts before the previous one's end was seen.
    pub fn on_packet(&mut self, timestamp: u32, ev: TelephoneEvent, clock: u32, mut report: impl FnMut(char, u32)) {
        if self.reported == Some(timestamp) {
            return; // a repeated end packet, or a late packet of an event already reported
        }
        if let Some((ts, code, duration)) = self.current
            && ts != timestamp
        {
            // The previous event lost its end packets: it is over now.
            self.reported = Some(ts);
            if let Some(d) = digit_of(code) {
                report(d, ms(duration, clock));
            }
        }
        self.current = Some((timestamp, ev.event, ev.duration));
        if ev.end {
            self.current = None;
            self.reported = Some(timestamp);
            if let Some(d) = digit_of(ev.event) {
                report(d, ms(ev.duration, clock));
            }
        }
    }
}

fn ms(ticks: u16, clock: u32) -> u32 {
    (u64::from(ticks) * 1000 / u64::from(clock.max(1))) as u32
}

/// Interval between continuation packets (RFC 4733 §2.5.1.2 suggests 50 ms for DTMF).
pub const CONTINUATION_NS: u64 = 50_000_000;
/// End packets sent (RFC 4733 §2.5.1.4: three, for reliability).
pub const END_PACKETS: u8 = 3;
/// Volume of generated tones, -dBm0 (a common default).
const VOLUME: u8 = 10;

/// One packet a [`DtmfSender`] wants sent now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfPacket {
    /// RTP marker bit (the first packet of the event).
    pub marker: bool,
    /// The event's RTP timestamp (the same for every packet of it).
    pub timestamp: u32,
    /// The payload.
    pub event: TelephoneEvent,
}

/// Generates one digit: a start packet (marker, duration 0), a continuation every 50 ms with the
/// duration so far, then three end packets (E bit, the full duration), all on the timestamp of
/// the start. The caller gives each packet the next sequence number of its stream.
#[derive(Debug, Clone)]
pub struct DtmfSender {
    event: u8,
    timestamp: u32,
    clock: u32,
    start_ns: u64,
    total_ns: u64,
    /// When the next packet is due.
    next_ns: u64,
    started: bool,
    ends_sent: u8,
}

impl DtmfSender {
    /// A digit of `duration_ms` starting at `now_ns`, on timestamp `timestamp` of a `clock` Hz
    /// stream.
    pub fn new(digit: char, duration_ms: u32, now_ns: u64, timestamp: u32, clock: u32) -> Result<Self, DtmfError> {
        let event = event_of(digit)?;
        let ticks = u64::from(duration_ms) * u64::from(clock) / 1000;
        if duration_ms < 20 || ticks > u64::from(u16::MAX) {
            return Err(DtmfError::Duration { ms: duration_ms, clock });
        }
        let total_ns = u64::from(duration_ms) * 1_000_000;
        Ok(Self { event, timestamp, clock, start_ns: now_ns, total_ns, next_ns: now_ns, started: false, ends_sent: 0 })
    }

    /// When [`Self::poll`] has something next (`u64::MAX` once finished).
    pub fn deadline(&self) -> u64 {
        if self.is_done() { u64::MAX } else { self.next_ns }
    }

    /// All three end packets went out.
    pub fn is_done(&self) -> bool {
        self.ends_sent >= END_PACKETS
    }

    /// The next packet due by `now_ns`; call until `None`. A late call does not replay missed
    /// continuations (each carries the cumulative duration, so the latest one says it all).
    pub fn poll(&mut self, now_ns: u64) -> Option<DtmfPacket> {
        if self.is_done() || now_ns < self.next_ns {
            return None;
        }
        let elapsed = now_ns.saturating_sub(self.start_ns);
        let end_ns = self.start_ns + self.total_ns;
        let (marker, end, elapsed) = if !self.started {
            self.started = true;
            self.next_ns = (self.start_ns + CONTINUATION_NS).min(end_ns);
            (true, false, 0)
        } else if now_ns < end_ns {
            self.next_ns = (now_ns + CONTINUATION_NS).min(end_ns);
            (false, false, elapsed)
        } else {
            // The end packets go out back to back; their duration is the full one.
            self.ends_sent += 1;
            (false, true, self.total_ns)
        };
        let ticks = elapsed * u64::from(self.clock) / 1_000_000_000;
        let duration = u16::try_from(ticks).unwrap_or(u16::MAX);
        let event = TelephoneEvent { event: self.event, end, volume: VOLUME, duration };
        Some(DtmfPacket { marker, timestamp: self.timestamp, event })
    }
}

#[cfg(test)]
#[path = "dtmf_tests.rs"]
mod tests;
