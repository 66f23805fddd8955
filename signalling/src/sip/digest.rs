//! HTTP digest authentication for SIP (RFC 3261 §22.4, RFC 2617, RFC 7616, RFC 8760), sans-IO.
//! We parse challenges ourselves instead of through rsipstack's typed `WwwAuthenticate`, which
//! rejects a qop *list* such as `qop="auth,auth-int"` (legal and sent by real servers): from a
//! list we choose `auth`. Of several challenges (RFC 8760 lets a server offer SHA-256 and MD5)
//! we answer the strongest we support. A [`DigestSession`] keeps one challenge and counts its
//! uses (`nc`), so refreshes can answer pre-emptively with the same nonce; the caller supplies
//! the client nonce, keeping this module deterministic.

use std::fmt::Write as _;

use md5::{Digest as _, Md5};
use sha2::Sha256;
use thiserror::Error;

/// Longest challenge header we look at (bounds hostile input).
pub const MAX_CHALLENGE_LEN: usize = 4096;

/// Why a challenge could not be answered.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DigestError {
    /// No challenge header at all in a 401/407.
    #[error("the 401/407 carries no WWW-Authenticate/Proxy-Authenticate challenge")]
    NoChallenge,
    /// The scheme is not `Digest`.
    #[error("challenge scheme is not Digest: {0:?}")]
    NotDigest(String),
    /// A required parameter (realm, nonce) is missing.
    #[error("challenge lacks {0}")]
    Missing(&'static str),
    /// The parameters do not follow `name=token|quoted-string` separated by commas.
    #[error("malformed challenge: {0}")]
    Malformed(&'static str),
    /// An algorithm we do not implement.
    #[error("unsupported digest algorithm {0:?} (MD5, MD5-sess, SHA-256, SHA-256-sess are)")]
    Algorithm(String),
    /// A qop offer without `auth` (only `auth-int`, or unknown values).
    #[error("unsupported qop {0:?} (only auth is)")]
    Qop(String),
    /// The challenge is longer than [`MAX_CHALLENGE_LEN`].
    #[error("challenge longer than {MAX_CHALLENGE_LEN} bytes")]
    TooLong,
}

/// Digest hash algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Algorithm {
    /// MD5 (RFC 2617; the default when absent).
    Md5,
    /// MD5-sess.
    Md5Sess,
    /// SHA-256 (RFC 7616/8760).
    Sha256,
    /// SHA-256-sess.
    Sha256Sess,
}

impl Algorithm {
    fn parse(s: &str) -> Result<Algorithm, DigestError> {
        match s.to_ascii_uppercase().as_str() {
            "MD5" => Ok(Algorithm::Md5),
            "MD5-SESS" => Ok(Algorithm::Md5Sess),
            "SHA-256" | "SHA256" => Ok(Algorithm::Sha256),
            "SHA-256-SESS" | "SHA256-SESS" => Ok(Algorithm::Sha256Sess),
            _ => Err(DigestError::Algorithm(s.to_owned())),
        }
    }

    /// The RFC 8760 token.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
        }
    }

    fn strength(self) -> u8 {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => 0,
            Algorithm::Sha256 | Algorithm::Sha256Sess => 1,
        }
    }

    fn hash(self, data: &str) -> String {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => hex(&Md5::digest(data.as_bytes())),
            Algorithm::Sha256 | Algorithm::Sha256Sess => hex(&Sha256::digest(data.as_bytes())),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// A parsed Digest challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Protection realm.
    pub realm: String,
    /// Server nonce.
    pub nonce: String,
    /// Opaque, echoed back.
    pub opaque: Option<String>,
    /// Hash algorithm.
    pub algorithm: Algorithm,
    /// Whether the server offered qop (we then always answer `qop=auth`).
    pub qop_auth: bool,
    /// `stale=true`: our credentials were right but the nonce expired; retry, do not fail.
    pub stale: bool,
}

impl Challenge {
    /// Parses one `WWW-Authenticate` / `Proxy-Authenticate` value.
    pub fn parse(value: &str) -> Result<Challenge, DigestError> {
        if value.len() > MAX_CHALLENGE_LEN {
            return Err(DigestError::TooLong);
        }
        let value = value.trim();
        let (scheme, rest) = value.split_once([' ', '\t']).unwrap_or((value, ""));
        if !scheme.eq_ignore_ascii_case("digest") {
            return Err(DigestError::NotDigest(scheme.chars().take(32).collect()));
        }
        let (mut realm, mut nonce, mut opaque, mut algorithm, mut qop, mut stale) =
            (None, None, None, None, None, false);
        for (name, val) in AuthParams::new(rest) {
            let (name, val) = (name?, val);
            match name.to_ascii_lowercase().as_str() {
                "realm" => realm = Some(val),
                "nonce" => nonce = Some(val),
                "opaque" => opaque = Some(val),
                "algorithm" => algorithm = Some(Algorithm::parse(&val)?),
                "qop" => qop = Some(val),
                "stale" => stale = val.eq_ignore_ascii_case("true"),
                _ => {}
            }
        }
        let qop_auth = match qop {
            None => false,
            // The qop-options list: `auth` wins whenever it is offered.
            Some(list)
                if list
                    .split(',')
                    .any(|q| q.trim().eq_ignore_ascii_case("auth")) =>
            {
                true
            }
            Some(list) => return Err(DigestError::Qop(list.chars().take(64).collect())),
        };
        Ok(Challenge {
            realm: realm.ok_or(DigestError::Missing("realm"))?,
            nonce: nonce.ok_or(DigestError::Missing("nonce"))?,
            opaque,
            algorithm: algorithm.unwrap_or(Algorithm::Md5),
            qop_auth,
            stale,
        })
    }

    /// Of several challenge values, the strongest we can answer; the first error if none.
    pub fn choose<'a>(values: impl IntoIterator<Item = &'a str>) -> Result<Challenge, DigestError> {
        let mut best: Option<Challenge> = None;
        let mut first_err = None;
        for v in values {
            match Challenge::parse(v) {
                Ok(c) => {
                    if best
                        .as_ref()
                        .is_none_or(|b| c.algorithm.strength() > b.algorithm.strength())
                    {
                        best = Some(c);
                    }
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        best.ok_or(first_err.unwrap_or(DigestError::NoChallenge))
    }
}

/// Iterator over `name=value` pairs of an auth-param list; values unquoted.
struct AuthParams<'a> {
    rest: &'a str,
    failed: bool,
}

impl<'a> AuthParams<'a> {
    fn new(s: &'a str) -> Self {
        AuthParams {
            rest: s,
            failed: false,
        }
    }
}

impl Iterator for AuthParams<'_> {
    type Item = (Result<String, DigestError>, String);

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let s = self.rest.trim_start_matches([' ', '\t', ',', '\r', '\n']);
        if s.is_empty() {
            return None;
        }
        let fail = |this: &mut Self, why| {
            this.failed = true;
            Some((Err(DigestError::Malformed(why)), String::new()))
        };
        let Some(eq) = s.find('=') else {
            return fail(self, "parameter without '='");
        };
        let name = s[..eq].trim();
        if name.is_empty() || !name.bytes().all(super::grammar::is_token_char) {
            return fail(self, "bad parameter name");
        }
        let after = s[eq + 1..].trim_start();
        if let Some(q) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = q.char_indices();
            loop {
                match chars.next() {
                    Some((_, '\\')) => match chars.next() {
                        Some((_, c)) => value.push(c),
                        None => return fail(self, "unterminated quoted-string"),
                    },
                    Some((i, '"')) => {
                        self.rest = &q[i + 1..];
                        return Some((Ok(name.to_owned()), value));
                    }
                    Some((_, c)) => value.push(c),
                    None => return fail(self, "unterminated quoted-string"),
                }
            }
        }
        let end = after.find(',').unwrap_or(after.len());
        let value = after[..end].trim();
        self.rest = &after[end..];
        Some((Ok(name.to_owned()), value.to_owned()))
    }
}

/// Which header carries our answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthHeader {
    /// `Authorization` (answer to 401 / WWW-Authenticate).
    Authorization,
    /// `Proxy-Authorization` (answer to 407 / Proxy-Authenticate).
    ProxyAuthorization,
}

/// One challenge and its use count, answering requests until the server sends a new nonce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestSession {
    /// The challenge being answered.
    pub challenge: Challenge,
    /// Where the answer goes.
    pub header: AuthHeader,
    nc: u32,
}

impl DigestSession {
    /// Starts answering `challenge`.
    pub fn new(challenge: Challenge, header: AuthHeader) -> DigestSession {
        DigestSession {
            challenge,
            header,
            nc: 0,
        }
    }

    /// The nonce count the next answer will carry.
    pub fn next_nc(&self) -> u32 {
        self.nc.wrapping_add(1)
    }

    /// The header value answering a request with `method` and Request-URI `uri`.
    pub fn authorize(
        &mut self,
        method: &str,
        uri: &str,
        username: &str,
        password: &str,
        cnonce: &str,
    ) -> String {
        self.nc = self.nc.wrapping_add(1);
        let c = &self.challenge;
        let response = response(c, self.nc, method, uri, username, password, cnonce);
        let mut out = format!(
            "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", response=\"{response}\", algorithm={}",
            quote(username),
            quote(&c.realm),
            quote(&c.nonce),
            quote(uri),
            c.algorithm.as_str()
        );
        if c.qop_auth || matches!(c.algorithm, Algorithm::Md5Sess | Algorithm::Sha256Sess) {
            let _ = write!(out, ", cnonce=\"{}\"", quote(cnonce));
        }
        if let Some(o) = &c.opaque {
            let _ = write!(out, ", opaque=\"{}\"", quote(o));
        }
        if c.qop_auth {
            let _ = write!(out, ", qop=auth, nc={:08x}", self.nc);
        }
        out
    }
}

/// The `response` value (RFC 7616 §3.4.1 with qop=auth, or RFC 2069 without qop).
pub fn response(
    c: &Challenge,
    nc: u32,
    method: &str,
    uri: &str,
    username: &str,
    password: &str,
    cnonce: &str,
) -> String {
    let alg = c.algorithm;
    let mut ha1 = alg.hash(&format!("{username}:{}:{password}", c.realm));
    if matches!(alg, Algorithm::Md5Sess | Algorithm::Sha256Sess) {
        ha1 = alg.hash(&format!("{ha1}:{}:{cnonce}", c.nonce));
    }
    let ha2 = alg.hash(&format!("{method}:{uri}"));
    if c.qop_auth {
        alg.hash(&format!("{ha1}:{}:{nc:08x}:{cnonce}:auth:{ha2}", c.nonce))
    } else {
        alg.hash(&format!("{ha1}:{}:{ha2}", c.nonce))
    }
}

fn quote(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
#[path = "digest_tests.rs"]
mod tests;
