//! The `call` scenario's codec mix (`--codec-mix pcmu=70,opus=20,vp8=10`): what each
//! simulated browser offers, parsed at the boundary into [`MixCodec`]s and spread over the
//! calls so that every prefix of the ramp follows the shares. No I/O.
//!
//! `vp8` browsers are video calls the way Chrome makes them: PCMU audio plus a VP8 video
//! m-line, bundled; the audio is passed through like a `pcmu` call's and the video is
//! measured apart (video.rs).

use crate::browser::AudioCodec;

/// What one browser offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MixCodec {
    /// PCMU audio only.
    Pcmu,
    /// Opus audio only.
    Opus,
    /// PCMU audio and VP8 video.
    Vp8,
}

impl MixCodec {
    /// The audio codec of the offer.
    pub fn audio(self) -> AudioCodec {
        match self {
            MixCodec::Pcmu | MixCodec::Vp8 => AudioCodec::Pcmu,
            MixCodec::Opus => AudioCodec::Opus,
        }
    }

    /// Whether the offer has a video line.
    pub fn video(self) -> bool {
        self == MixCodec::Vp8
    }
}

/// Why a `--codec-mix` was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MixError {
    /// Not `name=share`.
    #[error("codec mix entry {0:?} is not name=share")]
    Entry(String),
    /// Not `pcmu`, `opus` or `vp8`.
    #[error("unknown codec {0:?} in the codec mix (pcmu, opus, vp8)")]
    Codec(String),
    /// Not a number.
    #[error("share {0:?} in the codec mix is not a whole number")]
    Share(String),
    /// All shares zero.
    #[error("the codec mix has no non-zero share")]
    Empty,
    /// The same codec twice.
    #[error("codec {0:?} appears twice in the codec mix")]
    Twice(String),
}

/// Parses `pcmu=80,opus=15,vp8=5` (shares need not sum to 100; zero shares are dropped).
pub fn parse_mix(text: &str) -> Result<Vec<(MixCodec, u32)>, MixError> {
    let mut mix: Vec<(MixCodec, u32)> = Vec::new();
    let mut seen: Vec<MixCodec> = Vec::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, share) = entry
            .split_once('=')
            .ok_or_else(|| MixError::Entry(entry.to_owned()))?;
        let codec = match name.trim().to_ascii_lowercase().as_str() {
            "pcmu" => MixCodec::Pcmu,
            "opus" => MixCodec::Opus,
            "vp8" => MixCodec::Vp8,
            _ => return Err(MixError::Codec(name.trim().to_owned())),
        };
        let share: u32 = share
            .trim()
            .parse()
            .map_err(|_| MixError::Share(share.trim().to_owned()))?;
        if seen.contains(&codec) {
            return Err(MixError::Twice(name.trim().to_owned()));
        }
        seen.push(codec);
        if share > 0 {
            mix.push((codec, share));
        }
    }
    if mix.is_empty() {
        return Err(MixError::Empty);
    }
    Ok(mix)
}

/// The codec of each of `calls` calls: every codec's count is its share rounded down, the
/// remainder going to the earliest codecs, interleaved so any prefix of the calls (the ramp)
/// follows the mix too.
pub fn assign_mix(mix: &[(MixCodec, u32)], calls: u32) -> Vec<MixCodec> {
    let total: u64 = mix.iter().map(|(_, s)| u64::from(*s)).sum();
    if total == 0 {
        return Vec::new();
    }
    let mut assigned = vec![0u64; mix.len()];
    (0..u64::from(calls))
        .map(|i| {
            // The codec furthest behind its share after this call gets it.
            let k = (0..mix.len())
                .max_by_key(|&k| {
                    let due = (i + 1) * u64::from(mix[k].1) * 1000 / total;
                    (due as i64 - assigned[k] as i64 * 1000, std::cmp::Reverse(k))
                })
                .unwrap_or(0);
            assigned[k] += 1;
            mix[k].0
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_parses_and_refuses() {
        assert_eq!(
            parse_mix("pcmu=80,opus=20"),
            Ok(vec![(MixCodec::Pcmu, 80), (MixCodec::Opus, 20)])
        );
        assert_eq!(
            parse_mix("pcmu=70, opus=20 ,VP8=10"),
            Ok(vec![
                (MixCodec::Pcmu, 70),
                (MixCodec::Opus, 20),
                (MixCodec::Vp8, 10)
            ])
        );
        assert_eq!(parse_mix("vp8=1"), Ok(vec![(MixCodec::Vp8, 1)]));
        assert_eq!(parse_mix(" PCMU = 1 "), Ok(vec![(MixCodec::Pcmu, 1)]));
        assert_eq!(
            parse_mix("pcmu=100,opus=0"),
            Ok(vec![(MixCodec::Pcmu, 100)])
        );
        assert_eq!(parse_mix("pcmu"), Err(MixError::Entry("pcmu".into())));
        assert_eq!(parse_mix("g729=5"), Err(MixError::Codec("g729".into())));
        assert_eq!(parse_mix("h264=5"), Err(MixError::Codec("h264".into())));
        assert_eq!(parse_mix("pcmu=x"), Err(MixError::Share("x".into())));
        assert_eq!(parse_mix("vp8=-1"), Err(MixError::Share("-1".into())));
        assert_eq!(parse_mix("pcmu=0"), Err(MixError::Empty));
        assert_eq!(parse_mix(""), Err(MixError::Empty));
        assert_eq!(
            parse_mix("pcmu=1,pcmu=2"),
            Err(MixError::Twice("pcmu".into()))
        );
        // A zero share still counts as given.
        assert_eq!(parse_mix("vp8=0,vp8=5"), Err(MixError::Twice("vp8".into())));
    }

    #[test]
    fn vp8_calls_offer_pcmu_audio_and_video() {
        assert_eq!(MixCodec::Vp8.audio(), AudioCodec::Pcmu);
        assert!(MixCodec::Vp8.video());
        assert_eq!(MixCodec::Opus.audio(), AudioCodec::Opus);
        assert!(!MixCodec::Opus.video() && !MixCodec::Pcmu.video());
    }

    #[test]
    fn mix_assignment_follows_shares_in_every_prefix() {
        let mix = [(MixCodec::Pcmu, 80), (MixCodec::Opus, 20)];
        let calls = assign_mix(&mix, 100);
        assert_eq!(calls.len(), 100);
        let opus = |n: usize| calls[..n].iter().filter(|c| **c == MixCodec::Opus).count();
        assert_eq!(opus(100), 20);
        assert_eq!(opus(10), 2);
        assert_eq!(opus(50), 10);
        assert_eq!(
            assign_mix(&[(MixCodec::Opus, 3)], 4),
            vec![MixCodec::Opus; 4]
        );
        assert!(assign_mix(&mix, 0).is_empty());
        // 7 calls, 1:1: counts differ by at most one.
        let odd = assign_mix(&[(MixCodec::Pcmu, 1), (MixCodec::Opus, 1)], 7);
        let p = odd.iter().filter(|c| **c == MixCodec::Pcmu).count();
        assert!((3..=4).contains(&p), "{odd:?}");
        // The smoke's mix: 50 calls, one in ten VP8, spread over the ramp.
        let smoke = assign_mix(&[(MixCodec::Pcmu, 90), (MixCodec::Vp8, 10)], 50);
        let vp8: Vec<usize> = (0..50).filter(|&i| smoke[i] == MixCodec::Vp8).collect();
        assert_eq!(vp8.len(), 5, "{smoke:?}");
        assert!(vp8[0] < 10 && vp8[4] >= 40, "{vp8:?}");
        let three = assign_mix(
            &[
                (MixCodec::Pcmu, 70),
                (MixCodec::Opus, 20),
                (MixCodec::Vp8, 10),
            ],
            100,
        );
        let count = |c| three.iter().filter(|x| **x == c).count();
        assert_eq!(
            (
                count(MixCodec::Pcmu),
                count(MixCodec::Opus),
                count(MixCodec::Vp8)
            ),
            (70, 20, 10)
        );
    }
}
