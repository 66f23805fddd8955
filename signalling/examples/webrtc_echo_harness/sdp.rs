//! The echo peer's SDP: reading the media plane's offers (codecs, port, direction) and writing
//! the echo peer's one-codec answers and offers. Text in, text out; no I/O.

use super::{SipCodec, VideoCodec};

/// `(port, [(pt, encoding)])` of the first audio m-line of an SDP.
pub(crate) fn audio_codecs(sdp: &str) -> Option<(u16, Vec<(u8, String)>)> {
    let mut port = None;
    let mut codecs = Vec::new();
    for line in sdp.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("m=audio ") {
            if port.is_some() {
                break;
            }
            let mut f = rest.split_whitespace();
            port = f.next().and_then(|p| p.parse().ok());
            codecs = f
                .skip(1)
                .filter_map(|pt| pt.parse().ok())
                .map(|pt| (pt, String::new()))
                .collect();
        } else if port.is_some()
            && let Some(rest) = line.strip_prefix("a=rtpmap:")
            && let Some((pt, enc)) = rest.split_once(' ')
            && let Ok(pt) = pt.parse::<u8>()
            && let Some(c) = codecs.iter_mut().find(|c| c.0 == pt)
        {
            c.1 = enc.to_string();
        }
    }
    Some((port?, codecs))
}

/// The direction attribute of an SDP (sendrecv when absent).
pub(crate) fn offered_direction(sdp: &str) -> &'static str {
    for line in sdp.lines().map(str::trim) {
        for d in ["sendrecv", "sendonly", "recvonly", "inactive"] {
            if line.strip_prefix("a=") == Some(d) {
                return d;
            }
        }
    }
    "sendrecv"
}

/// The echo peer's answer: one codec from the media plane's offer, plus telephone-event/8000
/// when offered. Returns `(codec pt, telephone-event pt, sdp)`.
/// The answer's direction is the mirror of the offer's (RFC 3264 §6.1), so a re-offer for hold
/// (sendonly or inactive) is answered recvonly or inactive.
pub(crate) fn echo_answer(offer: &str, codec: SipCodec, echo_port: u16) -> Option<(u8, Option<u8>, String)> {
    let direction = match offered_direction(offer) {
        "sendonly" => "recvonly",
        "recvonly" => "sendonly",
        other => other,
    };
    let (_, codecs) = audio_codecs(offer)?;
    let te = codecs
        .iter()
        .find(|(_, enc)| enc.eq_ignore_ascii_case("telephone-event/8000"))
        .map(|(pt, _)| *pt);
    let (pt, enc) = codecs.into_iter().find(|(pt, enc)| {
        let enc = enc.to_ascii_lowercase();
        match codec {
            SipCodec::Opus => enc.starts_with("opus/48000"),
            SipCodec::Pcmu => enc.starts_with("pcmu/8000") || (enc.is_empty() && *pt == 0),
        }
    })?;
    let enc = if enc.is_empty() {
        "PCMU/8000".to_string()
    } else {
        enc
    };
    let fmtp = if codec == SipCodec::Opus {
        format!("a=fmtp:{pt} minptime=10;useinbandfec=1\r\n")
    } else {
        String::new()
    };
    let (te_fmt, te_lines) = match te {
        Some(te) => (
            format!(" {te}"),
            format!("a=rtpmap:{te} telephone-event/8000\r\na=fmtp:{te} 0-15\r\n"),
        ),
        None => (String::new(), String::new()),
    };
    Some((
        pt,
        te,
        format!(
            "v=0\r\no=echo 1 1 IN IP4 127.0.0.1\r\ns=echo\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {echo_port} RTP/AVP {pt}{te_fmt}\r\na=rtpmap:{pt} {enc}\r\n{fmtp}{te_lines}a={direction}\r\n"
        ),
    ))
}

/// The echo peer's video m-line answering the first m=video section of `offer` with `codec`
/// (H.264: mode 1, profile 42e01f first), RTCP multiplexed; `(pt, m-line)`.
pub(crate) fn echo_video_answer(offer: &str, codec: VideoCodec, port: u16, direction: &str) -> Option<(u8, String)> {
    let section: Vec<&str> = offer
        .lines()
        .map(str::trim)
        .skip_while(|l| !l.starts_with("m=video "))
        .take_while({
            let mut first = true;
            move |l| std::mem::take(&mut first) || !l.starts_with("m=")
        })
        .collect();
    let fmtp = |pt: &str| {
        section
            .iter()
            .find_map(|l| l.strip_prefix(&format!("a=fmtp:{pt} ")).map(str::to_string))
            .unwrap_or_default()
    };
    let mut candidates: Vec<(String, String, String)> = section
        .iter()
        .filter_map(|l| l.strip_prefix("a=rtpmap:")?.split_once(' '))
        .filter(|(pt, enc)| match codec {
            VideoCodec::Vp8 => enc.eq_ignore_ascii_case("VP8/90000"),
            VideoCodec::H264 => {
                enc.eq_ignore_ascii_case("H264/90000") && fmtp(pt).contains("packetization-mode=1")
            }
        })
        .map(|(pt, enc)| (pt.to_string(), enc.to_string(), fmtp(pt)))
        .collect();
    candidates.sort_by_key(|(_, _, f)| !f.contains("42e01f"));
    let (pt, enc, f) = candidates.into_iter().next()?;
    let fmtp_line = if f.is_empty() { String::new() } else { format!("a=fmtp:{pt} {f}\r\n") };
    let line = format!(
        "m=video {port} RTP/AVP {pt}\r\na=rtpmap:{pt} {enc}\r\n{fmtp_line}a=rtcp-fb:{pt} nack pli\r\na=rtcp-mux\r\na={direction}\r\n"
    );
    Some((pt.parse().ok()?, line))
}

/// The echo peer's SIP offer for an incoming call: one codec (Opus as dynamic type 96, so the
/// browser must use the SIP side's number, or PCMU) plus telephone-event/8000 as 101.
pub(crate) fn echo_offer(codec: SipCodec, echo_port: u16) -> (u8, String) {
    let (pt, lines) = match codec {
        SipCodec::Opus => (
            96,
            "a=rtpmap:96 opus/48000/2\r\na=fmtp:96 minptime=10;useinbandfec=1\r\n",
        ),
        SipCodec::Pcmu => (0, "a=rtpmap:0 PCMU/8000\r\n"),
    };
    let sdp = format!(
        "v=0\r\no=echo 1 1 IN IP4 127.0.0.1\r\ns=echo\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {echo_port} RTP/AVP {pt} 101\r\n{lines}a=rtpmap:101 telephone-event/8000\r\n\
         a=fmtp:101 0-15\r\na=sendrecv\r\n"
    );
    (pt, sdp)
}
