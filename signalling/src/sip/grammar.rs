//! RFC 3261 §25.1 character classes and small validators shared by the SIP account and URI
//! parsers. Everything here is pure and allocation-free: each function answers whether a byte
//! or a whole string belongs to one production, or where the first offending byte is, so the
//! callers can name the field and the position in their errors.

/// `alphanum` (ASCII letters and digits).
pub fn is_alphanum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

/// `mark = "-" / "_" / "." / "!" / "~" / "*" / "'" / "(" / ")"`.
pub fn is_mark(b: u8) -> bool {
    matches!(
        b,
        b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
    )
}

/// `unreserved = alphanum / mark`.
pub fn is_unreserved(b: u8) -> bool {
    is_alphanum(b) || is_mark(b)
}

/// `user-unreserved = "&" / "=" / "+" / "$" / "," / ";" / "?" / "/"`.
pub fn is_user_unreserved(b: u8) -> bool {
    matches!(b, b'&' | b'=' | b'+' | b'$' | b',' | b';' | b'?' | b'/')
}

/// The unescaped bytes of `password` (URI userinfo): unreserved and `& = + $ ,`.
pub fn is_password_char(b: u8) -> bool {
    is_unreserved(b) || matches!(b, b'&' | b'=' | b'+' | b'$' | b',')
}

/// `paramchar = param-unreserved / unreserved` (escapes handled by the caller).
pub fn is_param_char(b: u8) -> bool {
    is_unreserved(b) || matches!(b, b'[' | b']' | b'/' | b':' | b'&' | b'+' | b'$')
}

/// `hnv-unreserved / unreserved` for URI header names and values.
pub fn is_hnv_char(b: u8) -> bool {
    is_unreserved(b) || matches!(b, b'[' | b']' | b'/' | b'?' | b':' | b'+' | b'$')
}

/// `token` characters: `alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~"`.
pub fn is_token_char(b: u8) -> bool {
    is_alphanum(b)
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

/// Checks `1*( allowed / escaped )`: returns the byte offset of the first byte that is neither
/// allowed nor the start of a well-formed `%HH` escape, or `None` when the whole string fits.
pub fn first_bad_escaped(s: &str, allowed: fn(u8) -> bool) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if i + 2 < b.len() && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit() {
                i += 3;
                continue;
            }
            return Some(i);
        }
        if !allowed(b[i]) {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// The character starting at byte `at` of `s` (for error messages; `at` comes from the
/// validators above, so it is on a char boundary whenever the byte is ASCII, and non-ASCII
/// bytes are always rejected at the first byte of their character).
pub fn char_at(s: &str, at: usize) -> char {
    s.get(at..)
        .and_then(|t| t.chars().next())
        .unwrap_or('\u{FFFD}')
}

/// `hostname = *( domainlabel "." ) toplabel [ "." ]`, with
/// `domainlabel = alphanum / alphanum *( alphanum / "-" ) alphanum` and a toplabel that starts
/// with a letter. Also bounded by DNS limits (63 per label, 253 overall).
pub fn is_hostname(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    if s.is_empty() || s.len() > 253 {
        return false;
    }
    let mut labels = s.split('.').peekable();
    while let Some(label) = labels.next() {
        let b = label.as_bytes();
        let (Some(&first), Some(&last)) = (b.first(), b.last()) else {
            return false;
        };
        if b.len() > 63 || !is_alphanum(first) || !is_alphanum(last) {
            return false;
        }
        if !b.iter().all(|&c| is_alphanum(c) || c == b'-') {
            return false;
        }
        if labels.peek().is_none() && !first.is_ascii_alphabetic() {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_must_be_complete() {
        assert_eq!(first_bad_escaped("a%20b", is_unreserved), None);
        assert_eq!(first_bad_escaped("a%2", is_unreserved), Some(1));
        assert_eq!(first_bad_escaped("a%zz", is_unreserved), Some(1));
        assert_eq!(first_bad_escaped("a b", is_unreserved), Some(1));
    }

    #[test]
    fn hostnames() {
        for ok in ["atlanta.com", "a", "biloxi.example.com.", "a-b.c9", "x1.y"] {
            assert!(is_hostname(ok), "{ok}");
        }
        for bad in [
            "", "-a.com", "a-.com", "a..b", "1.2.3.4", "a.1b", "a_b.com", "host com",
        ] {
            assert!(!is_hostname(bad), "{bad}");
        }
    }
}
