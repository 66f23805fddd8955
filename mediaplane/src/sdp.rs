//! SIP-side SDP (RFC 8866, formerly 4566): parse into types, rewrite for the relay, write back.
//!
//! Our own small parser rather than a crate: the relay needs exactly the lines it rewrites or
//! reads (`c=`, `m=`, `a=rtpmap`, `a=fmtp`, `a=rtcp`, `a=rtcp-mux`, direction) typed, and
//! every other line kept verbatim *in order*, which general-purpose SDP crates (built for
//! WebRTC's JSEP model) do not promise. Invariant: `parse(&write(x)) == x` for every value
//! this module can produce, and any text either parses or yields [`SdpError`], never a panic.
//! Input lines may end in CRLF or LF; output always uses CRLF.

use std::fmt::{self, Write as _};
use std::net::IpAddr;

/// Why an SDP body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// The body does not start with `v=0`.
    #[error("SDP must start with v=0")]
    NoVersion,
    /// A required session line (`o=` or `s=`) is missing.
    #[error("missing required {0}= line")]
    Missing(char),
    /// A line is not `<letter>=<value>`.
    #[error("line {line}: not of the form <type>=<value>")]
    Syntax {
        /// 1-based line number.
        line: usize,
    },
    /// A known line type has a malformed value.
    #[error("line {line}: bad {what}")]
    Field {
        /// 1-based line number.
        line: usize,
        /// Which field.
        what: &'static str,
    },
    /// The number of ports given for a rewrite does not match the m-lines.
    #[error("{given} ports for {media} media sections")]
    PortCount {
        /// Ports supplied.
        given: usize,
        /// Media sections present.
        media: usize,
    },
}

/// A parsed session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sdp {
    /// Session-level lines in order (starting with `v=`).
    pub session: Vec<Line>,
    /// Media sections in order.
    pub media: Vec<Media>,
}

/// One media section: its `m=` line and the lines after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    /// The `m=` line.
    pub desc: MediaDesc,
    /// Media-level lines in order.
    pub lines: Vec<Line>,
}

/// `m=<media> <port>[/<count>] <proto> <fmt> ...`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDesc {
    /// audio, video, ...
    pub kind: String,
    /// Transport port; 0 rejects the stream.
    pub port: u16,
    /// Number of ports, when given.
    pub port_count: Option<u16>,
    /// RTP/AVP, RTP/SAVP, ...
    pub proto: String,
    /// Formats (payload types for RTP profiles).
    pub formats: Vec<String>,
}

/// A line of the description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// `v=`
    Version(u32),
    /// `o=`
    Origin(Origin),
    /// `s=` (free text; may be a single space)
    SessionName(String),
    /// `c=`
    Connection(Connection),
    /// `a=`
    Attribute(Attribute),
    /// Any other type letter, kept verbatim (`i u e p b t r z k`).
    Other {
        /// Type letter.
        kind: char,
        /// Value after `=`.
        value: String,
    },
}

/// `o=<username> <sess-id> <sess-version> IN <addrtype> <address>`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Username token.
    pub username: String,
    /// Session id token.
    pub session_id: String,
    /// Session version token.
    pub session_version: String,
    /// `IP4` or `IP6`.
    pub addr_type: String,
    /// Address or host name.
    pub address: String,
}

/// `c=IN <IP4|IP6> <address>[/<ttl>[/<count>]]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// The address.
    pub address: Host,
    /// A multicast suffix (`/127`, `/127/3`), verbatim without the first slash.
    pub suffix: Option<String>,
}

/// A connection address: an IP literal, or a host name (RFC 3264's examples use them; the
/// relay cannot send there before latching, but the body is still valid).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// An IP literal; its family gives the address type.
    Ip(IpAddr),
    /// A fully qualified domain name.
    Name {
        /// `IP4` or `IP6`.
        addr_type: String,
        /// The name.
        name: String,
    },
}

impl Host {
    /// The IP, when the address is a literal.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Host::Ip(a) => Some(*a),
            Host::Name { .. } => None,
        }
    }
}

/// Media direction (RFC 3264 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// a=sendrecv
    SendRecv,
    /// a=sendonly
    SendOnly,
    /// a=recvonly
    RecvOnly,
    /// a=inactive
    Inactive,
}

/// `a=rtpmap:<pt> <encoding>/<clock>[/<channels>]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    /// Payload type.
    pub pt: u8,
    /// Encoding name as written.
    pub encoding: String,
    /// Clock rate in Hz.
    pub clock_rate: u32,
    /// Channels, when given.
    pub channels: Option<u16>,
}

/// An attribute line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attribute {
    /// a=rtpmap
    RtpMap(RtpMap),
    /// `a=fmtp:<pt> <params>`
    Fmtp {
        /// Payload type.
        pt: u8,
        /// Parameters, verbatim.
        params: String,
    },
    /// `a=rtcp:<port> [IN <addrtype> <address>]` (RFC 3605)
    Rtcp {
        /// RTCP port.
        port: u16,
        /// Address, when given.
        address: Option<IpAddr>,
    },
    /// a=rtcp-mux (RFC 5761)
    RtcpMux,
    /// A direction attribute.
    Direction(Direction),
    /// Anything else: `a=<name>` or `a=<name>:<value>`.
    Other {
        /// Name before the colon.
        name: String,
        /// Value after the colon.
        value: Option<String>,
    },
}

impl Attribute {
    /// Whether this is an ICE attribute the SIP side must not see (RFC 8839).
    pub fn is_ice(&self) -> bool {
        match self {
            Attribute::Other { name, .. } => {
                name == "candidate"
                    || name == "end-of-candidates"
                    || name == "remote-candidates"
                    || name.starts_with("ice-")
            }
            _ => false,
        }
    }
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic())
}

fn parse_addr(s: &str, addr_type: &str) -> Option<IpAddr> {
    let a: IpAddr = s.parse().ok()?;
    match (addr_type, a) {
        ("IP4", IpAddr::V4(_)) | ("IP6", IpAddr::V6(_)) => Some(a),
        _ => None,
    }
}

fn parse_connection(v: &str) -> Option<Connection> {
    let mut it = v.split(' ');
    let (net, at, addr) = (it.next()?, it.next()?, it.next()?);
    if net != "IN" || it.next().is_some() {
        return None;
    }
    let (host, suffix) = match addr.split_once('/') {
        Some((h, s)) if is_token(s) => (h, Some(s.to_string())),
        Some(_) => return None,
        None => (addr, None),
    };
    let address = match parse_addr(host, at) {
        Some(ip) => Host::Ip(ip),
        None if (at == "IP4" || at == "IP6")
            && is_token(host)
            && host.parse::<IpAddr>().is_err()
            && host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-') =>
        {
            Host::Name { addr_type: at.into(), name: host.into() }
        }
        None => return None,
    };
    Some(Connection { address, suffix })
}

fn parse_origin(v: &str) -> Option<Origin> {
    let f: Vec<&str> = v.split(' ').collect();
    if f.len() != 6 || f[3] != "IN" || !f.iter().all(|t| is_token(t)) {
        return None;
    }
    Some(Origin {
        username: f[0].into(),
        session_id: f[1].into(),
        session_version: f[2].into(),
        addr_type: f[4].into(),
        address: f[5].into(),
    })
}

fn parse_media(v: &str) -> Option<MediaDesc> {
    let f: Vec<&str> = v.split(' ').collect();
    if f.len() < 4 || !f.iter().all(|t| is_token(t)) {
        return None;
    }
    let (port, port_count) = match f[1].split_once('/') {
        Some((p, n)) => (p.parse().ok()?, Some(n.parse().ok()?)),
        None => (f[1].parse().ok()?, None),
    };
    Some(MediaDesc {
        kind: f[0].into(),
        port,
        port_count,
        proto: f[2].into(),
        formats: f[3..].iter().map(|s| s.to_string()).collect(),
    })
}

fn parse_pt(s: &str) -> Option<u8> {
    s.parse::<u8>().ok().filter(|pt| *pt < 128 && s == pt.to_string())
}

fn parse_attribute(v: &str) -> Option<Attribute> {
    let (name, value) = match v.split_once(':') {
        Some((n, val)) => (n, Some(val)),
        None => (v, None),
    };
    if !is_token(name) {
        return None;
    }
    let typed = match (name, value) {
        ("rtpmap", Some(val)) => parse_rtpmap(val).map(Attribute::RtpMap),
        ("fmtp", Some(val)) => val
            .split_once(' ')
            .and_then(|(pt, params)| Some(Attribute::Fmtp { pt: parse_pt(pt)?, params: params.to_string() })),
        ("rtcp", Some(val)) => parse_rtcp(val),
        ("rtcp-mux", None) => Some(Attribute::RtcpMux),
        ("sendrecv", None) => Some(Attribute::Direction(Direction::SendRecv)),
        ("sendonly", None) => Some(Attribute::Direction(Direction::SendOnly)),
        ("recvonly", None) => Some(Attribute::Direction(Direction::RecvOnly)),
        ("inactive", None) => Some(Attribute::Direction(Direction::Inactive)),
        _ => None,
    };
    // An attribute we know by name but cannot type stays verbatim rather than failing the
    // whole body: peers send odd fmtp/rtcp lines and the relay can live without them.
    Some(typed.unwrap_or_else(|| Attribute::Other { name: name.into(), value: value.map(str::to_string) }))
}

fn parse_rtpmap(v: &str) -> Option<RtpMap> {
    let (pt, rest) = v.split_once(' ')?;
    let mut parts = rest.split('/');
    let encoding = parts.next().filter(|e| is_token(e) && !e.contains('/'))?;
    let clock_rate = parts.next()?;
    let channels = parts.next();
    if parts.next().is_some() {
        return None;
    }
    let clock: u32 = clock_rate.parse().ok().filter(|c: &u32| c.to_string() == clock_rate)?;
    let channels = match channels {
        Some(c) => Some(c.parse::<u16>().ok().filter(|n| n.to_string() == c)?),
        None => None,
    };
    Some(RtpMap { pt: parse_pt(pt)?, encoding: encoding.into(), clock_rate: clock, channels })
}

fn parse_rtcp(v: &str) -> Option<Attribute> {
    let mut it = v.split(' ');
    let port_s = it.next()?;
    let port: u16 = port_s.parse().ok().filter(|p: &u16| p.to_string() == port_s)?;
    let address = match (it.next(), it.next(), it.next()) {
        (None, _, _) => None,
        (Some("IN"), Some(at), Some(a)) => Some(parse_addr(a, at)?),
        _ => return None,
    };
    if it.next().is_some() {
        return None;
    }
    Some(Attribute::Rtcp { port, address })
}

impl Sdp {
    /// Parses an SDP body.
    pub fn parse(text: &str) -> Result<Sdp, SdpError> {
        let mut session = Vec::new();
        let mut media: Vec<Media> = Vec::new();
        for (i, raw) in text.split('\n').enumerate() {
            let n = i + 1;
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            if line.is_empty() {
                continue;
            }
            let b = line.as_bytes();
            if b.len() < 2 || b[1] != b'=' || !b[0].is_ascii_lowercase() {
                return Err(SdpError::Syntax { line: n });
            }
            let kind = char::from(b[0]);
            let value = &line[2..];
            if value.chars().any(|c| c == '\r' || c == '\0') {
                return Err(SdpError::Syntax { line: n });
            }
            let field = |what| SdpError::Field { line: n, what };
            if session.is_empty() {
                if line != "v=0" {
                    return Err(SdpError::NoVersion);
                }
                session.push(Line::Version(0));
                continue;
            }
            let parsed = match kind {
                'v' => return Err(field("duplicate version")),
                'm' => {
                    let desc = parse_media(value).ok_or(field("media line"))?;
                    media.push(Media { desc, lines: Vec::new() });
                    continue;
                }
                'o' => Line::Origin(parse_origin(value).ok_or(field("origin"))?),
                's' => Line::SessionName(value.to_string()),
                'c' => Line::Connection(parse_connection(value).ok_or(field("connection"))?),
                'a' => Line::Attribute(parse_attribute(value).ok_or(field("attribute"))?),
                other => Line::Other { kind: other, value: value.to_string() },
            };
            match media.last_mut() {
                Some(m) => m.lines.push(parsed),
                None => session.push(parsed),
            }
        }
        if session.is_empty() {
            return Err(SdpError::NoVersion);
        }
        for (c, pred) in [('o', matches!(session.get(1), Some(Line::Origin(_)))), ('s', session.iter().any(|l| matches!(l, Line::SessionName(_))))] {
            if !pred {
                return Err(SdpError::Missing(c));
            }
        }
        Ok(Sdp { session, media })
    }

    /// The session-level connection address, if any.
    pub fn session_connection(&self) -> Option<&Connection> {
        self.session.iter().find_map(|l| match l {
            Line::Connection(c) => Some(c),
            _ => None,
        })
    }

    /// The connection address that applies to media section `i` (media level wins).
    pub fn media_address(&self, i: usize) -> Option<IpAddr> {
        let m = self.media.get(i)?;
        m.connection().or_else(|| self.session_connection()).and_then(|c| c.address.ip())
    }

    /// Rewrites the description so its media flows through `address` and `ports` (one RTP
    /// port per media section; rejected sections with port 0 stay rejected). RTCP is
    /// announced at RTP+1, or at the RTP port itself under rtcp-mux. ICE lines are removed.
    pub fn rewrite_for_relay(&mut self, address: IpAddr, ports: &[u16]) -> Result<(), SdpError> {
        if ports.len() != self.media.len() {
            return Err(SdpError::PortCount { given: ports.len(), media: self.media.len() });
        }
        let ours = Connection { address: Host::Ip(address), suffix: None };
        let mut have_session_c = false;
        for line in &mut self.session {
            if let Line::Connection(c) = line {
                *c = ours.clone();
                have_session_c = true;
            }
        }
        if !have_session_c {
            // RFC 8866 §5: c= comes after v o s i u e p and before b t.
            let at = self
                .session
                .iter()
                .position(|l| matches!(l, Line::Other { kind: 'b' | 't' | 'r' | 'z' | 'k', .. } | Line::Attribute(_)))
                .unwrap_or(self.session.len());
            self.session.insert(at, Line::Connection(ours.clone()));
        }
        self.session.retain(|l| !matches!(l, Line::Attribute(a) if a.is_ice()));
        for (m, &port) in self.media.iter_mut().zip(ports) {
            // A rejected section (port 0) stays rejected; it still loses ICE and old addresses.
            let rejected = m.desc.port == 0;
            if !rejected {
                m.desc.port = port;
            }
            let rtcp = if m.rtcp_mux() { port } else { port.wrapping_add(1) };
            m.lines.retain(|l| !matches!(l, Line::Attribute(a) if a.is_ice()));
            for line in &mut m.lines {
                match line {
                    Line::Connection(c) => *c = ours.clone(),
                    Line::Attribute(Attribute::Rtcp { port: p, address: a }) if !rejected => {
                        *p = rtcp;
                        if a.is_some() {
                            *a = Some(address);
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// Serialises with CRLF line ends.
    pub fn write(&self) -> String {
        self.to_string()
    }
}

impl Media {
    /// The media-level connection line, if any.
    pub fn connection(&self) -> Option<&Connection> {
        self.lines.iter().find_map(|l| match l {
            Line::Connection(c) => Some(c),
            _ => None,
        })
    }

    /// Typed attributes of this section.
    pub fn attributes(&self) -> impl Iterator<Item = &Attribute> {
        self.lines.iter().filter_map(|l| match l {
            Line::Attribute(a) => Some(a),
            _ => None,
        })
    }

    /// Whether a=rtcp-mux is present.
    pub fn rtcp_mux(&self) -> bool {
        self.attributes().any(|a| matches!(a, Attribute::RtcpMux))
    }

    /// The a=rtcp port and address, if present.
    pub fn rtcp(&self) -> Option<(u16, Option<IpAddr>)> {
        self.attributes().find_map(|a| match a {
            Attribute::Rtcp { port, address } => Some((*port, *address)),
            _ => None,
        })
    }

    /// The rtpmap of payload type `pt`, if declared.
    pub fn rtpmap(&self, pt: u8) -> Option<&RtpMap> {
        self.attributes().find_map(|a| match a {
            Attribute::RtpMap(m) if m.pt == pt => Some(m),
            _ => None,
        })
    }

    /// The formats that are valid RTP payload types.
    pub fn payload_types(&self) -> impl Iterator<Item = u8> + '_ {
        self.desc.formats.iter().filter_map(|f| parse_pt(f))
    }

    /// The direction attribute (sendrecv when absent, RFC 3264 §5.1).
    pub fn direction(&self) -> Direction {
        self.attributes()
            .find_map(|a| match a {
                Attribute::Direction(d) => Some(*d),
                _ => None,
            })
            .unwrap_or(Direction::SendRecv)
    }
}

impl fmt::Display for Sdp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for l in &self.session {
            writeln_crlf(f, l)?;
        }
        for m in &self.media {
            let d = &m.desc;
            write!(f, "m={} {}", d.kind, d.port)?;
            if let Some(n) = d.port_count {
                write!(f, "/{n}")?;
            }
            write!(f, " {}", d.proto)?;
            for fmt_ in &d.formats {
                write!(f, " {fmt_}")?;
            }
            f.write_str("\r\n")?;
            for l in &m.lines {
                writeln_crlf(f, l)?;
            }
        }
        Ok(())
    }
}

fn addr_type(a: &IpAddr) -> &'static str {
    if a.is_ipv4() { "IP4" } else { "IP6" }
}

fn writeln_crlf(f: &mut fmt::Formatter<'_>, l: &Line) -> fmt::Result {
    match l {
        Line::Version(v) => write!(f, "v={v}")?,
        Line::Origin(o) => write!(
            f,
            "o={} {} {} IN {} {}",
            o.username, o.session_id, o.session_version, o.addr_type, o.address
        )?,
        Line::SessionName(s) => write!(f, "s={s}")?,
        Line::Connection(c) => {
            match &c.address {
                Host::Ip(a) => write!(f, "c=IN {} {a}", addr_type(a))?,
                Host::Name { addr_type, name } => write!(f, "c=IN {addr_type} {name}")?,
            }
            if let Some(s) = &c.suffix {
                write!(f, "/{s}")?;
            }
        }
        Line::Attribute(a) => {
            f.write_str("a=")?;
            match a {
                Attribute::RtpMap(m) => {
                    write!(f, "rtpmap:{} {}/{}", m.pt, m.encoding, m.clock_rate)?;
                    if let Some(c) = m.channels {
                        write!(f, "/{c}")?;
                    }
                }
                Attribute::Fmtp { pt, params } => write!(f, "fmtp:{pt} {params}")?,
                Attribute::Rtcp { port, address } => {
                    write!(f, "rtcp:{port}")?;
                    if let Some(a) = address {
                        write!(f, " IN {} {a}", addr_type(a))?;
                    }
                }
                Attribute::RtcpMux => f.write_str("rtcp-mux")?,
                Attribute::Direction(d) => f.write_str(match d {
                    Direction::SendRecv => "sendrecv",
                    Direction::SendOnly => "sendonly",
                    Direction::RecvOnly => "recvonly",
                    Direction::Inactive => "inactive",
                })?,
                Attribute::Other { name, value } => {
                    f.write_str(name)?;
                    if let Some(v) = value {
                        f.write_char(':')?;
                        f.write_str(v)?;
                    }
                }
            }
        }
        Line::Other { kind, value } => write!(f, "{kind}={value}")?,
    }
    f.write_str("\r\n")
}

/// The fuzz target's and the property tests' entry point: parse, and on success check the
/// write/parse round trip and run a rewrite. Panics only if an invariant is broken.
pub fn exercise(text: &str) {
    if let Ok(mut sdp) = Sdp::parse(text) {
        let again = Sdp::parse(&sdp.write());
        assert_eq!(again.as_ref(), Ok(&sdp), "write/parse round trip");
        let ports: Vec<u16> = (0..sdp.media.len()).map(|i| 30_000 + 2 * i as u16).collect();
        let _ = sdp.rewrite_for_relay(IpAddr::from([127, 0, 0, 1]), &ports);
        let rewritten = Sdp::parse(&sdp.write());
        assert_eq!(rewritten.as_ref(), Ok(&sdp), "rewritten round trip");
    }
}

#[cfg(test)]
#[path = "sdp_tests.rs"]
mod tests;
