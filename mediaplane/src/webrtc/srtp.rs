//! SRTP (RFC 3711) with keys exchanged in SDP (SDES, RFC 4568), for SIP peers that offer
//! RTP/SAVP: AES_CM_128_HMAC_SHA1_80 and AES_CM_128_HMAC_SHA1_32.
//!
//! The cryptography is not ours: AES-128 (counter mode and the ECB rounds of the key derivation)
//! and HMAC-SHA1 come from str0m's crypto provider (aws-lc-rs), the same code that protects the
//! browser legs; str0m keeps its own SRTP context private, so only the RFC 3711 framing is here:
//! key derivation (§4.3), the packet index and rollover counter (§3.3.1, Appendix A), the
//! replay window (§3.3.2), SRTCP's E flag and index (§3.4). No new crate: the one well-kept
//! libsrtp binding needs a C library, and the pure-Rust `srtp` crates bring a second AES/HMAC
//! stack beside str0m's.
//!
//! Sans-IO; per packet no allocation (one scratch buffer per session for the cipher's output).
//! Invariants: a packet that fails authentication or is a replay is refused before anything is
//! decrypted or any state moves; one SSRC per direction (the bridge's rewriters guarantee it
//! outbound; inbound a new SSRC restarts the receive state, as a new source would).

use str0m::crypto::{Aes128CmSha1_80, Aes128CmSha1_80Cipher, CryptoProvider, Sha1HmacProvider};
use thiserror::Error;

/// Why a packet or key was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SrtpError {
    /// Too short for its header and tag.
    #[error("packet too short")]
    Short,
    /// The authentication tag does not match.
    #[error("authentication failed")]
    Auth,
    /// Already received (or older than the replay window).
    #[error("replayed packet")]
    Replay,
    /// No room after the packet for the tag, or larger than the scratch buffer.
    #[error("no room to protect")]
    NoRoom,
    /// The cipher refused (never expected with valid lengths).
    #[error("cipher failure")]
    Cipher,
}

/// The SDES crypto suites offered toward SIP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SrtpSuite {
    /// 80-bit RTP authentication tag.
    AesCm128HmacSha1_80,
    /// 32-bit RTP authentication tag (SRTCP keeps 80 bits, RFC 4568 §6.2.1).
    AesCm128HmacSha1_32,
}

impl SrtpSuite {
    /// The RTP authentication tag length.
    pub fn rtp_tag_len(self) -> usize {
        match self {
            Self::AesCm128HmacSha1_80 => 10,
            Self::AesCm128HmacSha1_32 => 4,
        }
    }

    /// The name in `a=crypto`.
    pub fn name(self) -> &'static str {
        match self {
            Self::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Self::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
        }
    }

    /// The suite an `a=crypto` line names, if supported.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "AES_CM_128_HMAC_SHA1_80" => Some(Self::AesCm128HmacSha1_80),
            "AES_CM_128_HMAC_SHA1_32" => Some(Self::AesCm128HmacSha1_32),
            _ => None,
        }
    }
}

/// A master key and salt (the 30 bytes of an SDES `inline:` key).
#[derive(Clone, PartialEq, Eq)]
pub struct MasterKey {
    /// AES-128 master key.
    pub key: [u8; 16],
    /// Master salt.
    pub salt: [u8; 14],
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)") // never log keys
    }
}

const LABEL_RTP_KEY: u8 = 0;
const LABEL_RTP_AUTH: u8 = 1;
const LABEL_RTP_SALT: u8 = 2;
const LABEL_RTCP_KEY: u8 = 3;
const LABEL_RTCP_AUTH: u8 = 4;
const LABEL_RTCP_SALT: u8 = 5;
const SRTCP_TAG_LEN: usize = 10;
/// Largest packet handled (the shard's datagram size).
const MAX_PACKET: usize = 2048;
/// The counter-mode cipher may write up to a block past its input.
const CTR_SLACK: usize = 16;

/// RFC 3711 §4.3.1 with the key derivation rate 0: `out` = AES-CM keystream of the master key
/// at IV (salt XOR label << 48) << 16.
fn derive(crypto: &CryptoProvider, master: &MasterKey, label: u8, out: &mut [u8]) {
    let mut input = [0u8; 16];
    input[..14].copy_from_slice(&master.salt);
    input[7] ^= label;
    let mut block = [0u8; 32];
    for (round, chunk) in out.chunks_mut(16).enumerate() {
        input[14..].copy_from_slice(&(round as u16).to_be_bytes());
        crypto.srtp_provider.srtp_aes_128_ecb_round(&master.key, &input, &mut block);
        chunk.copy_from_slice(&block[..chunk.len()]);
    }
}

/// Session keys of one direction and kind (RTP or RTCP).
struct Keys {
    auth: [u8; 20],
    salt: [u8; 14],
    cipher: Box<dyn Aes128CmSha1_80Cipher>,
}

impl Keys {
    fn new(crypto: &CryptoProvider, master: &MasterKey, labels: [u8; 3], encrypt: bool) -> Self {
        let (mut key, mut auth, mut salt) = ([0u8; 16], [0u8; 20], [0u8; 14]);
        derive(crypto, master, labels[0], &mut key);
        derive(crypto, master, labels[1], &mut auth);
        derive(crypto, master, labels[2], &mut salt);
        let cipher = crypto.srtp_provider.aes_128_cm_sha1_80().create_cipher(key, encrypt);
        Self { auth, salt, cipher }
    }
}

/// Receive state of one source: highest index and a 64-packet replay window (§3.3.2).
#[derive(Debug, Default, Clone, Copy)]
struct RxState {
    ssrc: Option<u32>,
    /// Highest authenticated index (48 bits: ROC << 16 | SEQ).
    max_index: u64,
    /// Bit i: index `max_index - i` was received.
    window: u64,
}

impl RxState {
    /// Appendix A: the index of `seq` nearest the highest one.
    fn estimate(&self, seq: u16) -> u64 {
        if self.ssrc.is_none() {
            return u64::from(seq);
        }
        let roc = self.max_index >> 16;
        let s_l = self.max_index as u16;
        let v = if s_l < 0x8000 {
            if seq > s_l && seq - s_l > 0x8000 { roc.wrapping_sub(1) } else { roc }
        } else if s_l - 0x8000 > seq {
            roc + 1
        } else {
            roc
        };
        (v << 16) | u64::from(seq)
    }

    fn is_replay(&self, index: u64) -> bool {
        if self.ssrc.is_none() || index > self.max_index {
            return false;
        }
        let age = self.max_index - index;
        age >= 64 || self.window & (1 << age) != 0
    }

    fn accept(&mut self, ssrc: u32, index: u64) {
        if self.ssrc.is_none() {
            *self = Self { ssrc: Some(ssrc), max_index: index, window: 1 };
        } else if index > self.max_index {
            let shift = index - self.max_index;
            self.window = if shift >= 64 { 1 } else { (self.window << shift) | 1 };
            self.max_index = index;
        } else {
            self.window |= 1 << (self.max_index - index);
        }
    }
}

/// One SDES-SRTP session: our outbound keys and the peer's inbound keys, RTP and RTCP.
pub struct SrtpSession {
    suite: SrtpSuite,
    hmac: &'static dyn Sha1HmacProvider,
    tx_rtp: Keys,
    tx_rtcp: Keys,
    rx_rtp: Keys,
    rx_rtcp: Keys,
    /// Outbound extended sequence number (ROC << 16 | SEQ) of the last packet.
    tx_index: Option<u64>,
    srtcp_index: u32,
    rx: RxState,
    rx_rtcp_window: RxState,
    scratch: Box<[u8; MAX_PACKET + CTR_SLACK]>,
}

impl std::fmt::Debug for SrtpSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtpSession").field("suite", &self.suite).finish_non_exhaustive()
    }
}

impl SrtpSession {
    /// A session sending with `ours` and receiving with `theirs`.
    pub fn new(suite: SrtpSuite, ours: &MasterKey, theirs: &MasterKey) -> Self {
        let crypto = str0m::crypto::from_feature_flags();
        let rtp = [LABEL_RTP_KEY, LABEL_RTP_AUTH, LABEL_RTP_SALT];
        let rtcp = [LABEL_RTCP_KEY, LABEL_RTCP_AUTH, LABEL_RTCP_SALT];
        Self {
            suite,
            hmac: crypto.sha1_hmac_provider,
            tx_rtp: Keys::new(&crypto, ours, rtp, true),
            tx_rtcp: Keys::new(&crypto, ours, rtcp, true),
            rx_rtp: Keys::new(&crypto, theirs, rtp, false),
            rx_rtcp: Keys::new(&crypto, theirs, rtcp, false),
            tx_index: None,
            srtcp_index: 0,
            rx: RxState::default(),
            rx_rtcp_window: RxState::default(),
            scratch: Box::new([0; MAX_PACKET + CTR_SLACK]),
        }
    }

    /// Protects the RTP packet in `buf[..len]` (header of `header_len` bytes) in place and
    /// returns the SRTP length (`len` + the tag; `buf` must have the room).
    pub fn protect_rtp(&mut self, buf: &mut [u8], len: usize, header_len: usize) -> Result<usize, SrtpError> {
        let tag_len = self.suite.rtp_tag_len();
        if header_len < 12 || len < header_len || len > MAX_PACKET {
            return Err(SrtpError::Short);
        }
        if buf.len() < len + tag_len {
            return Err(SrtpError::NoRoom);
        }
        let seq = u16::from_be_bytes([buf[2], buf[3]]);
        let ssrc = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
        let index = match self.tx_index {
            None => u64::from(seq),
            Some(last) => RxState { ssrc: Some(ssrc), max_index: last, window: 0 }.estimate(seq),
        };
        self.tx_index = Some(self.tx_index.map_or(index, |l| l.max(index)));
        let iv = Aes128CmSha1_80::rtp_iv(self.tx_rtp.salt, ssrc, index);
        let body = len - header_len;
        self.tx_rtp
            .cipher
            .encrypt(&iv, &buf[header_len..len], &mut self.scratch[..body + CTR_SLACK])
            .map_err(|_| SrtpError::Cipher)?;
        buf[header_len..len].copy_from_slice(&self.scratch[..body]);
        let roc = ((index >> 16) as u32).to_be_bytes();
        let tag = self.hmac.sha1_hmac(&self.tx_rtp.auth, &[&buf[..len], &roc]);
        buf[len..len + tag_len].copy_from_slice(&tag[..tag_len]);
        Ok(len + tag_len)
    }

    /// Authenticates, replay-checks and decrypts the SRTP packet `buf` (header of `header_len`
    /// bytes) in place; returns the RTP length.
    pub fn unprotect_rtp(&mut self, buf: &mut [u8], header_len: usize) -> Result<usize, SrtpError> {
        let tag_len = self.suite.rtp_tag_len();
        if header_len < 12 || buf.len() < header_len + tag_len || buf.len() > MAX_PACKET + tag_len {
            return Err(SrtpError::Short);
        }
        let len = buf.len() - tag_len;
        let seq = u16::from_be_bytes([buf[2], buf[3]]);
        let ssrc = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
        if self.rx.ssrc.is_some_and(|s| s != ssrc) {
            self.rx = RxState::default(); // a new source starts its own index
        }
        let index = self.rx.estimate(seq);
        if self.rx.is_replay(index) {
            return Err(SrtpError::Replay);
        }
        let roc = ((index >> 16) as u32).to_be_bytes();
        let tag = self.hmac.sha1_hmac(&self.rx_rtp.auth, &[&buf[..len], &roc]);
        if !constant_time_eq(&tag[..tag_len], &buf[len..]) {
            return Err(SrtpError::Auth);
        }
        let iv = Aes128CmSha1_80::rtp_iv(self.rx_rtp.salt, ssrc, index);
        let body = len - header_len;
        self.rx_rtp
            .cipher
            .decrypt(&iv, &buf[header_len..len], &mut self.scratch[..body + CTR_SLACK])
            .map_err(|_| SrtpError::Cipher)?;
        buf[header_len..len].copy_from_slice(&self.scratch[..body]);
        self.rx.accept(ssrc, index);
        Ok(len)
    }

    /// Protects the compound RTCP packet in `buf[..len]` in place (encrypted after the first 8
    /// bytes, then E flag + index and an 80-bit tag); returns the SRTCP length.
    pub fn protect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        if !(8..=MAX_PACKET).contains(&len) {
            return Err(SrtpError::Short);
        }
        if buf.len() < len + 4 + SRTCP_TAG_LEN {
            return Err(SrtpError::NoRoom);
        }
        self.srtcp_index = (self.srtcp_index + 1) & 0x7fff_ffff;
        let index = self.srtcp_index;
        let ssrc = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        let iv = Aes128CmSha1_80::rtp_iv(self.tx_rtcp.salt, ssrc, u64::from(index));
        let body = len - 8;
        self.tx_rtcp
            .cipher
            .encrypt(&iv, &buf[8..len], &mut self.scratch[..body + CTR_SLACK])
            .map_err(|_| SrtpError::Cipher)?;
        buf[8..len].copy_from_slice(&self.scratch[..body]);
        buf[len..len + 4].copy_from_slice(&(index | 0x8000_0000).to_be_bytes());
        let tag = self.hmac.sha1_hmac(&self.tx_rtcp.auth, &[&buf[..len + 4]]);
        buf[len + 4..len + 4 + SRTCP_TAG_LEN].copy_from_slice(&tag[..SRTCP_TAG_LEN]);
        Ok(len + 4 + SRTCP_TAG_LEN)
    }

    /// Authenticates, replay-checks and (when the E flag says so) decrypts an SRTCP packet in
    /// place; returns the RTCP length.
    pub fn unprotect_rtcp(&mut self, buf: &mut [u8]) -> Result<usize, SrtpError> {
        if buf.len() < 8 + 4 + SRTCP_TAG_LEN || buf.len() > MAX_PACKET + 4 + SRTCP_TAG_LEN {
            return Err(SrtpError::Short);
        }
        let tag_at = buf.len() - SRTCP_TAG_LEN;
        let len = tag_at - 4;
        let e_index = u32::from_be_bytes([buf[len], buf[len + 1], buf[len + 2], buf[len + 3]]);
        let (encrypted, index) = (e_index & 0x8000_0000 != 0, u64::from(e_index & 0x7fff_ffff));
        let ssrc = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        if self.rx_rtcp_window.ssrc.is_some_and(|s| s != ssrc) {
            self.rx_rtcp_window = RxState::default();
        }
        if self.rx_rtcp_window.is_replay(index) {
            return Err(SrtpError::Replay);
        }
        let tag = self.hmac.sha1_hmac(&self.rx_rtcp.auth, &[&buf[..tag_at]]);
        if !constant_time_eq(&tag[..SRTCP_TAG_LEN], &buf[tag_at..]) {
            return Err(SrtpError::Auth);
        }
        if encrypted {
            let iv = Aes128CmSha1_80::rtp_iv(self.rx_rtcp.salt, ssrc, index);
            let body = len - 8;
            self.rx_rtcp
                .cipher
                .decrypt(&iv, &buf[8..len], &mut self.scratch[..body + CTR_SLACK])
                .map_err(|_| SrtpError::Cipher)?;
            buf[8..len].copy_from_slice(&self.scratch[..body]);
        }
        self.rx_rtcp_window.accept(ssrc, index);
        Ok(len)
    }
}

/// The length of an RTP header (fixed part, CSRCs, extension) read from a protected packet,
/// whose header is in the clear; `None` when it does not fit.
pub fn rtp_header_len(buf: &[u8]) -> Option<usize> {
    let first = *buf.first()?;
    let mut len = 12 + 4 * usize::from(first & 0x0f);
    if first & 0x10 != 0 {
        let ext = buf.get(len + 2..len + 4)?;
        len += 4 + 4 * usize::from(u16::from_be_bytes([ext[0], ext[1]]));
    }
    (len <= buf.len()).then_some(len)
}

/// Compares tags without an early exit.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
#[path = "srtp_tests.rs"]
mod tests;
