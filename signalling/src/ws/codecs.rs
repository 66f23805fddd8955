//! The per-browser codec policy (config `ws.codecs`, docs/configuration.md): which codecs a
//! browser family must not use (`strip`) and which it should prefer (`prefer`), applied by the
//! signalling to the SDP a page and the media plane exchange, so the media plane itself needs
//! no policy: the browser's offer is filtered before `WebRtcOffer` (the media plane answers in
//! the browser's order, so `prefer` decides the codec), and the media plane's offer
//! (`OfferToBrowser`) and answer are filtered before the page gets them.
//!
//! Invariants: only `m=` format lists and the `a=rtpmap`/`a=fmtp`/`a=rtcp-fb` lines of removed
//! payload types change; every other line, its order and line ending stay as they were; an RTX
//! format (`apt=`) goes with the codec it repairs; a media section is never left without a
//! codec (the policy is then refused with a cause naming the section); applying a policy twice
//! gives the same SDP as applying it once.

use crate::config::CodecRule;

/// The browser families a policy can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Chrome, Chromium and other Blink browsers except Edge.
    Chrome,
    /// Microsoft Edge (Chromium based: `Edg/` in the user agent).
    Edge,
    /// Firefox.
    Firefox,
    /// Safari (WebKit without `Chrome/`).
    Safari,
    /// Anything else (no User-Agent, tools).
    Other,
}

impl Family {
    /// The family of a `User-Agent` header.
    pub fn from_user_agent(ua: &str) -> Family {
        if ua.contains("Edg/") || ua.contains("Edge/") {
            Family::Edge
        } else if ua.contains("Firefox/") {
            Family::Firefox
        } else if ua.contains("Chrome/") || ua.contains("Chromium/") {
            Family::Chrome
        } else if ua.contains("Safari/") {
            Family::Safari
        } else {
            Family::Other
        }
    }

    /// The config key (`ws.codecs.<name>`).
    pub fn name(self) -> &'static str {
        match self {
            Family::Chrome => "chrome",
            Family::Edge => "edge",
            Family::Firefox => "firefox",
            Family::Safari => "safari",
            Family::Other => "other",
        }
    }

    /// Every family, for config validation.
    pub const ALL: [Family; 5] = [
        Family::Chrome,
        Family::Edge,
        Family::Firefox,
        Family::Safari,
        Family::Other,
    ];
}

/// Why a policy could not be applied.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    /// Stripping would leave a media section with no codec.
    #[error("the codec policy for {family} leaves no codec in the {media} section")]
    NothingLeft {
        /// The browser family.
        family: &'static str,
        /// `audio`, `video`, …
        media: String,
    },
}

/// Whether the policy changes anything.
pub fn is_noop(rule: &CodecRule) -> bool {
    rule.strip.is_empty() && rule.prefer.is_empty()
}

/// What one media section says about a payload type.
struct Format {
    pt: String,
    name: String,
    /// `apt=` of an RTX format.
    apt: Option<String>,
}

/// Applies `rule` to an SDP (offer or answer). `reorder` puts preferred codecs first (offers);
/// answers keep their order (the answerer's order is not ours to change).
pub fn apply(
    sdp: &str,
    rule: &CodecRule,
    family: Family,
    reorder: bool,
) -> Result<String, PolicyError> {
    if is_noop(rule) {
        return Ok(sdp.to_string());
    }
    let eol = if sdp.contains("\r\n") { "\r\n" } else { "\n" };
    let lines: Vec<&str> = sdp.split(eol).collect();
    // Section boundaries: [start, end) of each m= section; the session part stays as is.
    let starts: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("m="))
        .map(|(i, _)| i)
        .collect();
    let mut out: Vec<String> = lines[..starts.first().copied().unwrap_or(lines.len())]
        .iter()
        .map(|l| l.to_string())
        .collect();
    for (k, &start) in starts.iter().enumerate() {
        let end = starts.get(k + 1).copied().unwrap_or(lines.len());
        out.extend(section(&lines[start..end], rule, family, reorder)?);
    }
    Ok(out.join(eol))
}

fn section(
    lines: &[&str],
    rule: &CodecRule,
    family: Family,
    reorder: bool,
) -> Result<Vec<String>, PolicyError> {
    let Some((m_line, rest)) = lines.split_first() else {
        return Ok(Vec::new());
    };
    let fields: Vec<&str> = m_line.split(' ').collect();
    // m=<media> <port> <proto> <fmt>…; anything shorter is not ours to judge.
    if fields.len() < 4 || fields[1] == "0" {
        return Ok(lines.iter().map(|l| l.to_string()).collect());
    }
    let media = fields[0].trim_start_matches("m=").to_string();
    let formats: Vec<Format> = fields[3..]
        .iter()
        .map(|pt| Format {
            pt: pt.to_string(),
            name: attr_value(rest, "a=rtpmap:", pt)
                .and_then(|v| v.split('/').next())
                .map(str::to_string)
                .unwrap_or_else(|| static_name(pt).to_string()),
            apt: attr_value(rest, "a=fmtp:", pt).and_then(|v| {
                v.split(';')
                    .find_map(|p| p.trim().strip_prefix("apt="))
                    .map(str::to_string)
            }),
        })
        .collect();
    let listed =
        |names: &[String], f: &Format| names.iter().any(|n| n.eq_ignore_ascii_case(&f.name));
    let mut removed: Vec<&str> = formats
        .iter()
        .filter(|f| listed(&rule.strip, f))
        .map(|f| f.pt.as_str())
        .collect();
    // RTX of a removed codec goes too.
    let rtx: Vec<&str> = formats
        .iter()
        .filter(|f| f.apt.as_deref().is_some_and(|a| removed.contains(&a)))
        .map(|f| f.pt.as_str())
        .collect();
    removed.extend(rtx);
    let mut kept: Vec<&Format> = formats
        .iter()
        .filter(|f| !removed.contains(&f.pt.as_str()))
        .collect();
    let is_codec = |f: &&Format| {
        f.apt.is_none()
            && ![
                "telephone-event",
                "rtx",
                "red",
                "ulpfec",
                "flexfec-03",
                "CN",
            ]
            .iter()
            .any(|n| n.eq_ignore_ascii_case(&f.name))
    };
    if !removed.is_empty() && !kept.iter().any(is_codec) {
        return Err(PolicyError::NothingLeft {
            family: family.name(),
            media,
        });
    }
    if reorder && !rule.prefer.is_empty() {
        // Stable: preferred codecs in the policy's order first, then the rest as they were.
        let rank = |f: &&Format| {
            rule.prefer
                .iter()
                .position(|n| n.eq_ignore_ascii_case(&f.name))
                .unwrap_or(usize::MAX)
        };
        kept.sort_by_key(rank);
    }
    let mut m = fields[..3].join(" ");
    for f in &kept {
        m.push(' ');
        m.push_str(&f.pt);
    }
    let mut out = vec![m];
    for l in rest {
        let dropped = ["a=rtpmap:", "a=fmtp:", "a=rtcp-fb:"].iter().any(|p| {
            l.strip_prefix(p)
                .and_then(|v| v.split([' ', '\t']).next())
                .is_some_and(|pt| removed.contains(&pt))
        });
        if !dropped {
            out.push(l.to_string());
        }
    }
    Ok(out)
}

/// The value after `<prefix><pt> ` in a section's lines.
fn attr_value<'a>(lines: &[&'a str], prefix: &str, pt: &str) -> Option<&'a str> {
    lines.iter().find_map(|l| {
        let rest = l.strip_prefix(prefix)?;
        let (p, v) = rest.split_once(' ')?;
        (p == pt).then_some(v.trim())
    })
}

/// Names of the static payload types a browser or phone may list without an rtpmap.
fn static_name(pt: &str) -> &'static str {
    match pt {
        "0" => "PCMU",
        "8" => "PCMA",
        "9" => "G722",
        "13" => "CN",
        "18" => "G729",
        _ => "",
    }
}

#[cfg(test)]
#[path = "codecs_tests.rs"]
mod tests;
