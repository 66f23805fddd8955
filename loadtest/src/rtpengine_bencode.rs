//! Bencode (the BitTorrent encoding, BEP 3), the body format of rtpengine's ng control
//! protocol: integers `i42e`, byte strings `4:spam`, lists `l...e`, dictionaries `d...e`.
//!
//! Sans-IO and self-contained (std and thiserror only, so the fuzz crate can include this file
//! as it is). Invariants: [`Value::encode`] writes dictionary keys in sorted byte order, as BEP 3
//! requires, because the map is a `BTreeMap`; [`Value::decode`] accepts exactly one value with
//! nothing after it, rejects leading zeros and `-0` in integers, and bounds nesting at
//! [`MAX_DEPTH`] so a hostile reply cannot exhaust the stack.

use std::collections::BTreeMap;

/// Deepest nesting of lists and dictionaries accepted.
pub const MAX_DEPTH: usize = 32;

/// One bencoded value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `i<decimal>e`
    Int(i64),
    /// `<length>:<bytes>`
    Bytes(Vec<u8>),
    /// `l<values>e`
    List(Vec<Value>),
    /// `d<key value ...>e`, keys are byte strings.
    Dict(BTreeMap<Vec<u8>, Value>),
}

/// Why a buffer is not one bencoded value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BencodeError {
    /// The input ended inside a value.
    #[error("truncated at byte {0}")]
    Truncated(usize),
    /// A byte that cannot start or continue a value here.
    #[error("unexpected byte {byte:#04x} at {at}")]
    Unexpected { byte: u8, at: usize },
    /// An integer or length that is not canonical decimal or does not fit.
    #[error("bad number at byte {0}")]
    Number(usize),
    /// Bytes after the one value.
    #[error("{0} trailing bytes")]
    Trailing(usize),
    /// Nesting deeper than [`MAX_DEPTH`].
    #[error("nested deeper than {MAX_DEPTH}")]
    TooDeep,
    /// A dictionary key that is not a byte string.
    #[error("dictionary key at byte {0} is not a string")]
    Key(usize),
}

impl Value {
    /// A byte string from text.
    pub fn str(s: &str) -> Value {
        Value::Bytes(s.as_bytes().to_vec())
    }

    /// A list of byte strings from text.
    pub fn strs(items: &[&str]) -> Value {
        Value::List(items.iter().map(|s| Value::str(s)).collect())
    }

    /// Appends the encoding of `self` to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Value::Int(n) => {
                out.push(b'i');
                out.extend_from_slice(n.to_string().as_bytes());
                out.push(b'e');
            }
            Value::Bytes(b) => {
                out.extend_from_slice(b.len().to_string().as_bytes());
                out.push(b':');
                out.extend_from_slice(b);
            }
            Value::List(items) => {
                out.push(b'l');
                for v in items {
                    v.encode(out);
                }
                out.push(b'e');
            }
            Value::Dict(map) => {
                out.push(b'd');
                for (k, v) in map {
                    Value::Bytes(k.clone()).encode(out);
                    v.encode(out);
                }
                out.push(b'e');
            }
        }
    }

    /// Decodes exactly one value filling `input`.
    pub fn decode(input: &[u8]) -> Result<Value, BencodeError> {
        let mut p = Parser { input, at: 0 };
        let v = p.value(0)?;
        match input.len() - p.at {
            0 => Ok(v),
            n => Err(BencodeError::Trailing(n)),
        }
    }

    /// The value under `key` when `self` is a dictionary.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(map) => map.get(key.as_bytes()),
            _ => None,
        }
    }

    /// The text of a byte string (lossy: ng strings are ASCII or UTF-8 SDP).
    pub fn as_text(&self) -> Option<String> {
        match self {
            Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }
}

struct Parser<'a> {
    input: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Result<u8, BencodeError> {
        self.input
            .get(self.at)
            .copied()
            .ok_or(BencodeError::Truncated(self.at))
    }

    fn value(&mut self, depth: usize) -> Result<Value, BencodeError> {
        if depth > MAX_DEPTH {
            return Err(BencodeError::TooDeep);
        }
        match self.peek()? {
            b'i' => {
                self.at += 1;
                let n = self.number(b'e')?;
                Ok(Value::Int(n))
            }
            b'0'..=b'9' => self.bytes().map(Value::Bytes),
            b'l' => {
                self.at += 1;
                let mut items = Vec::new();
                while self.peek()? != b'e' {
                    items.push(self.value(depth + 1)?);
                }
                self.at += 1;
                Ok(Value::List(items))
            }
            b'd' => {
                self.at += 1;
                let mut map = BTreeMap::new();
                while self.peek()? != b'e' {
                    if !self.peek()?.is_ascii_digit() {
                        return Err(BencodeError::Key(self.at));
                    }
                    let k = self.bytes()?;
                    let v = self.value(depth + 1)?;
                    map.insert(k, v);
                }
                self.at += 1;
                Ok(Value::Dict(map))
            }
            byte => Err(BencodeError::Unexpected { byte, at: self.at }),
        }
    }

    /// A canonical decimal up to `end` (consumed).
    fn number(&mut self, end: u8) -> Result<i64, BencodeError> {
        let start = self.at;
        let rest = &self.input[start..];
        let len = rest
            .iter()
            .position(|&b| b == end)
            .ok_or(BencodeError::Truncated(self.input.len()))?;
        let digits = &rest[..len];
        let body = digits.strip_prefix(b"-").unwrap_or(digits);
        let canonical = !body.is_empty()
            && body.iter().all(u8::is_ascii_digit)
            && (body == b"0" || body[0] != b'0')
            && digits != b"-0";
        if !canonical {
            return Err(BencodeError::Number(start));
        }
        let n = std::str::from_utf8(digits)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or(BencodeError::Number(start))?;
        self.at = start + len + 1;
        Ok(n)
    }

    fn bytes(&mut self) -> Result<Vec<u8>, BencodeError> {
        let start = self.at;
        let len = self.number(b':')?;
        let len = usize::try_from(len).map_err(|_| BencodeError::Number(start))?;
        let end = self
            .at
            .checked_add(len)
            .filter(|&e| e <= self.input.len())
            .ok_or(BencodeError::Truncated(self.input.len()))?;
        let b = self.input[self.at..end].to_vec();
        self.at = end;
        Ok(b)
    }
}

#[cfg(test)]
#[path = "rtpengine_bencode_tests.rs"]
mod tests;
