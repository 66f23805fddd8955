//! The SDP the bridge writes for the SIP side and the codec mapping behind it: which payload
//! types name a codec a browser takes (`leg_codec`), which one we can transcode (`tc_formats`,
//! `tc_only`), and the RTP/AVP text of our offers and answers (`sip_sdp_text`). Split from
//! [`super::bridge_setup`] (the offer/answer flow) to keep files small.
//!
//! Invariant: pure functions of their arguments (no call state); what we write parses back
//! with [`crate::sdp::Sdp`] (`own_audio`).

use std::net::IpAddr;

use str0m::format::Codec;
use wavegate_shared::protocol::{ControlError, ErrorCode};

use super::bridge::{Tele, err};
use super::bridge_video::video_mline;
use super::leg::LegCodec;
use super::sdes::{CryptoAttr, crypto_value};

use crate::sdp::{Attribute, Direction, Media, Sdp};
use crate::transcode::Codec as TcCodec;
use crate::transcode::call::{CallConfig, CallSettings, CallTranscoder, Format, NegotiateError};

/// The `a=rtpmap` value of a codec a browser and a SIP peer can share.
pub(super) fn rtpmap_value(c: &LegCodec) -> String {
    match c.codec {
        Codec::Opus => "opus/48000/2".to_owned(),
        Codec::G722 => "G722/8000".to_owned(),
        Codec::PCMU => "PCMU/8000".to_owned(),
        Codec::PCMA => "PCMA/8000".to_owned(),
        _ => format!("telephone-event/{}", c.clock_rate),
    }
}

/// The passthrough codec a SIP m-line's payload type names, if a browser can take it.
pub(super) fn leg_codec(m: &Media, pt: u8) -> Option<LegCodec> {
    let (name, clock, channels) = match m.rtpmap(pt) {
        Some(r) => (r.encoding.to_ascii_lowercase(), r.clock_rate, r.channels.unwrap_or(1)),
        None => match pt {
            0 => ("pcmu".to_owned(), 8000, 1),
            8 => ("pcma".to_owned(), 8000, 1),
            9 => ("g722".to_owned(), 8000, 1),
            _ => return None,
        },
    };
    let (codec, channels) = match (name.as_str(), clock, channels) {
        // RFC 7587 mandates `/2`; SIP peers writing `opus/48000` mean the same codec.
        ("opus", 48_000, 1 | 2) => (Codec::Opus, Some(2)),
        ("g722", 8000, 1) => (Codec::G722, None),
        ("pcmu", 8000, 1) => (Codec::PCMU, None),
        ("pcma", 8000, 1) => (Codec::PCMA, None),
        ("telephone-event", 8000 | 48_000, 1) => (Codec::Tele, None),
        _ => return None,
    };
    Some(LegCodec { pt, codec, clock_rate: clock, channels, profile_level_id: None })
}

/// The transcoding core's name for a browser-side audio codec.
pub(super) fn tc_format(c: &LegCodec) -> Option<Format> {
    let codec = match c.codec {
        Codec::Opus => TcCodec::Opus,
        Codec::G722 => TcCodec::G722,
        Codec::PCMU => TcCodec::Pcmu,
        Codec::PCMA => TcCodec::Pcma,
        _ => return None,
    };
    Some(Format { pt: c.pt, codec })
}

/// The audio formats of an m-line we can transcode, in its order (RFC 3551 static types
/// without an rtpmap included).
pub(super) fn tc_formats(m: &Media) -> Vec<Format> {
    m.payload_types()
        .filter_map(|pt| {
            let codec = match m.rtpmap(pt) {
                Some(r) => TcCodec::from_rtpmap(&r.encoding, r.clock_rate)?,
                None => match pt {
                    0 => TcCodec::Pcmu,
                    8 => TcCodec::Pcma,
                    9 => TcCodec::G722,
                    18 => TcCodec::G729,
                    _ => return None,
                },
            };
            Some(Format { pt, codec })
        })
        .collect()
}

/// The formats of an m-line only the transcoder handles (no browser takes them: G.729,
/// Speex), kept when we re-offer or re-answer on a transcoded call.
pub(super) fn tc_only(m: &Media) -> Vec<Format> {
    tc_formats(m).into_iter().filter(|f| leg_codec(m, f.pt).is_none()).collect()
}

/// The `a=rtpmap` value (and `a=fmtp`, if any) of a format only the transcoder handles.
pub(super) fn extra_rtpmap(f: &Format) -> (String, Option<&'static str>) {
    match f.codec {
        TcCodec::Opus => ("opus/48000/2".to_owned(), None),
        // VAD is off in our encoder; we decode SID frames but do not offer Annex B.
        TcCodec::G729 => ("G729/8000".to_owned(), Some("annexb=no")),
        c => (format!("{}/{}", c.sdp_name(), c.rtp_clock()), None),
    }
}

/// The Opus fmtp parameters (RFC 7587 §6.1) asking a browser to send narrowband Opus, written
/// in our offer to the browser when the SIP side it is transcoded to is narrowband: the
/// browser's encoder then codes SILK NB only (checked with Chromium: `tests/browser/opus-nb.sh`),
/// which costs ~13 µs per 20 ms to decode instead of ~38 µs for its default hybrid fullband, and
/// nothing audible is lost since the SIP side carries 8 kHz anyway. `sprop-maxcapturerate` says
/// what we send is narrowband too (our encoder runs at the SIP side's rate).
/// `maxaveragebitrate=16000` asks the browser for the bitrate our own encoder uses toward it
/// (`OpusSettings::auto_bitrate`): SILK NB at 16 kbit/s decodes in ~8 µs instead of ~12 µs at
/// Chrome's default 32 kbit/s, and nothing audible is lost on an 8 kHz path.
pub(super) const NARROWBAND_OPUS_8K: &str = "maxplaybackrate=8000;sprop-maxcapturerate=8000;maxaveragebitrate=16000";
/// The same for a wideband (16 kHz) SIP side: SILK WB, ~22 µs per 20 ms to decode.
pub(super) const WIDEBAND_OPUS_16K: &str = "maxplaybackrate=16000;sprop-maxcapturerate=16000;maxaveragebitrate=24000";

/// Adds the parameters capping the Opus audio bandwidth at `rate` (8 or 16 kHz; other rates
/// leave the SDP as it is) to every Opus format of `sdp`: appended to its `a=fmtp` line, or in
/// a new one after its `a=rtpmap` line. Used on SDP text we wrote (str0m's offer toward the
/// browser), which has no such parameters yet.
pub(super) fn cap_opus_rate(sdp: &str, rate: u32) -> String {
    let caps = match rate {
        8000 => NARROWBAND_OPUS_8K,
        16_000 => WIDEBAND_OPUS_16K,
        _ => return sdp.to_owned(),
    };
    let opus_pt = |line: &str| -> Option<String> {
        let (pt, enc) = line.strip_prefix("a=rtpmap:")?.split_once(' ')?;
        enc.to_ascii_lowercase().starts_with("opus/48000").then(|| pt.to_owned())
    };
    let pts: Vec<String> = sdp.lines().filter_map(opus_pt).collect();
    let has_fmtp = |pt: &str| sdp.lines().any(|l| l.strip_prefix("a=fmtp:").and_then(|r| r.split_once(' ')).is_some_and(|(p, _)| p == pt));
    let mut out = String::with_capacity(sdp.len() + 64 * pts.len());
    for line in sdp.split_inclusive('\n') {
        let body = line.trim_end_matches(['\r', '\n']);
        let eol = &line[body.len()..];
        match body.strip_prefix("a=fmtp:").and_then(|r| r.split_once(' ')) {
            Some((pt, params)) if pts.iter().any(|p| p == pt) => {
                out.push_str(&format!("a=fmtp:{pt} {params};{caps}{eol}"));
                continue;
            }
            _ => out.push_str(line),
        }
        if let Some(pt) = opus_pt(body).filter(|pt| !has_fmtp(pt)) {
            out.push_str(&format!("a=fmtp:{pt} {caps}{}", if eol.is_empty() { "\r\n" } else { eol }));
        }
    }
    out
}

/// Narrows the video m-line of `sdp` to the format `keep` (and an RTX format whose `apt` is
/// it): its format list, and the `a=rtpmap` / `a=fmtp` / `a=rtcp-fb` lines of the other formats
/// dropped. Used on SDP text we wrote (str0m's re-offer toward the browser) so that the
/// browser, which sends the first format of what it answers, sends the one the SIP side took.
/// Other m-lines are untouched; without a video m-line listing `keep` the SDP is returned as is.
pub(super) fn narrow_video(sdp: &str, keep: u8) -> String {
    let lines: Vec<&str> = sdp.split_inclusive('\n').collect();
    let body = |l: &str| l.trim_end_matches(['\r', '\n']).to_owned();
    let Some(start) = lines.iter().position(|l| l.starts_with("m=video ")) else {
        return sdp.to_owned();
    };
    let end = lines[start + 1..].iter().position(|l| l.starts_with("m=")).map_or(lines.len(), |i| start + 1 + i);
    let m_line = body(lines[start]);
    let fields: Vec<&str> = m_line.split(' ').collect();
    let keep_s = keep.to_string();
    if fields.len() < 4 || !fields[3..].contains(&keep_s.as_str()) {
        return sdp.to_owned();
    }
    // The payload type an `a=<attr>:<pt> ...` line is about.
    let pt_of = |l: &str, attr: &str| -> Option<String> {
        let rest = l.strip_prefix("a=")?.strip_prefix(attr)?.strip_prefix(':')?;
        Some(rest.split_once(' ').map_or(rest, |(pt, _)| pt).trim().to_owned())
    };
    let apt = format!("apt={keep}");
    let mut kept = vec![keep_s.clone()];
    for l in &lines[start + 1..end] {
        let l = body(l);
        if let Some(pt) = pt_of(&l, "fmtp")
            && l.split_once(' ').is_some_and(|(_, params)| params.split(';').any(|kv| kv.trim() == apt))
        {
            kept.push(pt);
        }
    }
    let dropped = |pt: &str| fields[3..].contains(&pt) && !kept.iter().any(|k| k == pt);
    let mut out = String::with_capacity(sdp.len());
    for l in &lines[..start] {
        out.push_str(l);
    }
    let eol = &lines[start][m_line.len()..];
    let formats: Vec<&str> = fields[3..].iter().copied().filter(|f| kept.iter().any(|k| k == f)).collect();
    out.push_str(&format!("{} {}{eol}", fields[..3].join(" "), formats.join(" ")));
    for l in &lines[start + 1..end] {
        let b = body(l);
        let about = ["rtpmap", "fmtp", "rtcp-fb"].iter().find_map(|a| pt_of(&b, a));
        if about.as_deref().is_some_and(dropped) {
            continue;
        }
        out.push_str(l);
    }
    for l in &lines[end..] {
        out.push_str(l);
    }
    out
}

/// The packet time an m-line asks for (`a=ptime`, RFC 4566 §6), when it is one our transcoder
/// sends (10, 20, 30 or 40 ms); else 20 ms, the RTP/AVP default for the codecs we transcode.
pub(super) fn ptime_of(m: &Media) -> u32 {
    m.attributes()
        .find_map(|a| match a {
            Attribute::Other { name, value: Some(v) } if name.eq_ignore_ascii_case("ptime") => v.trim().parse().ok(),
            _ => None,
        })
        .filter(|ms| matches!(ms, 10 | 20 | 30 | 40))
        .unwrap_or(20)
}

/// Builds a call's transcoder, SSRC toward the SIP side as on passthrough (RTCP reports match),
/// sending the SIP side packets of `sip_ptime_ms` (its `a=ptime`); a packet time its codec
/// cannot carry (Speex or Opus at 30 ms...) falls back to 20 ms rather than failing the call.
pub(super) fn new_transcoder(
    sip: Format,
    browser: Format,
    sip_ssrc: u32,
    sip_ptime_ms: u32,
    settings: CallSettings,
) -> Result<Box<CallTranscoder>, ControlError> {
    let cfg = CallConfig {
        opus: settings.opus,
        jitter: settings.jitter,
        sip_ptime_ms,
        browser_ptime_ms: 20,
        sip_ssrc,
        browser_ssrc: sip_ssrc.rotate_left(16) ^ 0x5a5a_5a5a,
    };
    let made = CallTranscoder::new(sip, browser, cfg)
        .or_else(|_| CallTranscoder::new(sip, browser, CallConfig { sip_ptime_ms: 20, ..cfg }));
    made.map(Box::new).map_err(|e| err(ErrorCode::Internal, e.to_string()))
}

/// The error of a call that needs transcoding while it is disabled.
pub(super) fn disabled() -> ControlError {
    err(ErrorCode::TranscodingDisabled, NegotiateError::Disabled.to_string())
}

/// The telephone-event payload types of an m-line, in its order.
pub(super) fn tele_of(m: &Media) -> Vec<Tele> {
    m.payload_types()
        .filter_map(|pt| m.rtpmap(pt).filter(|r| r.encoding.eq_ignore_ascii_case("telephone-event")))
        .map(|r| (r.pt, r.clock_rate))
        .collect()
}

/// The first audio m-line of `sdp` and its index.
pub(super) fn audio(sdp: &Sdp) -> Option<(usize, &Media)> {
    sdp.media.iter().enumerate().find(|(_, m)| m.desc.kind == "audio")
}

pub(super) fn direction_attr(d: Direction) -> &'static str {
    use Direction::*;
    match d {
        SendRecv => "sendrecv",
        SendOnly => "sendonly",
        RecvOnly => "recvonly",
        Inactive => "inactive",
    }
}

/// The answer's direction for an offered one (RFC 3264 §6.1).
pub(super) fn answer_direction(offered: Direction) -> Direction {
    use Direction::*;
    match offered {
        SendOnly => RecvOnly,
        RecvOnly => SendOnly,
        d => d,
    }
}

/// Plain RTP/AVP SDP for the SIP side: one audio m-line on our `port` with `codecs`, with
/// `video` (port, formats) a video m-line after it (in an answer: at the offer's first video
/// m-line), and the offer's other m-lines rejected (port 0) when this is an answer to `offer`.
#[allow(clippy::too_many_arguments)]
pub(super) fn sip_sdp_text(
    ip: IpAddr,
    port: u16,
    version: u32,
    codecs: &[LegCodec],
    extra: &[Format],
    direction: Direction,
    offer: Option<(&Sdp, usize)>,
    crypto: Option<&CryptoAttr>,
    video: Option<(u16, &[LegCodec])>,
) -> String {
    let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
    let mut s =
        format!("v=0\r\no=wavegate 1 {version} IN {family} {ip}\r\ns=wavegate\r\nc=IN {family} {ip}\r\nt=0 0\r\n");
    let ours = |s: &mut String| {
        // Audio codecs, then those only the transcoder takes, then telephone-event.
        let audio = codecs.iter().filter(|c| c.codec != Codec::Tele).map(|c| c.pt);
        let tele = codecs.iter().filter(|c| c.codec == Codec::Tele).map(|c| c.pt);
        let pts: Vec<String> = audio.chain(extra.iter().map(|f| f.pt)).chain(tele).map(|pt| pt.to_string()).collect();
        let proto = if crypto.is_some() { "RTP/SAVP" } else { "RTP/AVP" };
        s.push_str(&format!("m=audio {port} {proto} {}\r\n", pts.join(" ")));
        if let Some(c) = crypto {
            s.push_str(&format!("a=crypto:{}\r\n", crypto_value(c)));
        }
        for c in codecs {
            s.push_str(&format!("a=rtpmap:{} {}\r\n", c.pt, rtpmap_value(c)));
            if c.codec == Codec::Tele {
                s.push_str(&format!("a=fmtp:{} 0-16\r\n", c.pt));
            }
        }
        for f in extra {
            let (rtpmap, fmtp) = extra_rtpmap(f);
            s.push_str(&format!("a=rtpmap:{} {rtpmap}\r\n", f.pt));
            if let Some(fmtp) = fmtp {
                s.push_str(&format!("a=fmtp:{} {fmtp}\r\n", f.pt));
            }
        }
        s.push_str(&format!("a={}\r\n", direction_attr(direction)));
    };
    let video = video.filter(|(_, codecs)| !codecs.is_empty());
    match offer {
        None => {
            ours(&mut s);
            if let Some((vport, vcodecs)) = video {
                video_mline(&mut s, vport, vcodecs, direction_attr(direction));
            }
        }
        Some((sdp, audio_index)) => {
            let video_index = sdp.media.iter().position(|m| m.desc.kind == "video");
            for (i, m) in sdp.media.iter().enumerate() {
                if i == audio_index {
                    ours(&mut s);
                } else if let (Some((vport, vcodecs)), true) = (video, Some(i) == video_index) {
                    video_mline(&mut s, vport, vcodecs, direction_attr(direction));
                } else {
                    let formats = if m.desc.formats.is_empty() { "0".to_owned() } else { m.desc.formats.join(" ") };
                    s.push_str(&format!("m={} 0 {} {formats}\r\n", m.desc.kind, m.desc.proto));
                }
            }
        }
    }
    s
}

#[cfg(test)]
#[path = "bridge_sdp_tests.rs"]
mod tests;

/// Parses SDP we wrote ourselves and returns its audio m-line.
pub(super) fn own_audio(text: &str) -> Result<Media, ControlError> {
    let sdp = Sdp::parse(text).map_err(|e| err(ErrorCode::Internal, format!("our own SDP does not parse: {e}")))?;
    audio(&sdp).map(|(_, m)| m.clone()).ok_or_else(|| err(ErrorCode::Internal, "our own SDP has no audio"))
}

/// The direction the offerer declared for its audio m-line.
pub(super) fn offered_direction(sdp: &str) -> Result<Direction, ControlError> {
    let parsed = Sdp::parse(sdp).map_err(|e| err(ErrorCode::BadSdp, e.to_string()))?;
    audio(&parsed).map(|(_, m)| m.direction()).ok_or_else(|| err(ErrorCode::BadSdp, "no audio m-line"))
}
