//! A fast reader of one JSON Lines record: a scan over the bytes of a flat
//! object that records, for each known key, where its value lies — without
//! building a tree or copying a string. It handles what the product writes
//! (strings without escapes, non-negative integers, `null`) in any key
//! order, with any whitespace; anything else on a line (an escape, a
//! nested value, a negative or fractional number) sends that line to
//! serde_json instead, so the answer is the same either way.

use crate::model::{Field, OwnedRow, Row, V};

/// The fast path's answer for one line.
#[derive(Debug)]
pub enum Parsed<'a> {
    /// The line, read in place.
    Fast(Row<'a>),
    /// The line needs a full JSON parser.
    Slow,
    /// An empty or blank line.
    Blank,
}

#[inline]
fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\r' | b'\n') {
        i += 1;
    }
    i
}

/// Reads one line (without its `\n`) in place.
#[inline]
pub fn parse_line(line: &[u8]) -> Parsed<'_> {
    let b = line;
    let mut i = skip_ws(b, 0);
    if i == b.len() {
        return Parsed::Blank;
    }
    if b[i] != b'{' {
        return Parsed::Slow;
    }
    i += 1;
    let mut row = Row::default();
    i = skip_ws(b, i);
    if i < b.len() && b[i] == b'}' {
        return Parsed::Fast(row);
    }
    loop {
        i = skip_ws(b, i);
        if i >= b.len() || b[i] != b'"' {
            return Parsed::Slow;
        }
        let ks = i + 1;
        let mut j = ks;
        while j < b.len() && b[j] != b'"' {
            if b[j] == b'\\' {
                return Parsed::Slow;
            }
            j += 1;
        }
        if j >= b.len() {
            return Parsed::Slow;
        }
        let key = &b[ks..j];
        i = skip_ws(b, j + 1);
        if i >= b.len() || b[i] != b':' {
            return Parsed::Slow;
        }
        i = skip_ws(b, i + 1);
        if i >= b.len() {
            return Parsed::Slow;
        }
        let v = match b[i] {
            b'"' => {
                let vs = i + 1;
                let mut j = vs;
                while j < b.len() && b[j] != b'"' {
                    if b[j] == b'\\' || b[j] < 0x20 {
                        return Parsed::Slow;
                    }
                    j += 1;
                }
                if j >= b.len() {
                    return Parsed::Slow;
                }
                i = j + 1;
                // The line came from a `str`, and quotes are ASCII, so this
                // is on character boundaries; checked anyway, cheaply.
                match std::str::from_utf8(&b[vs..j]) {
                    Ok(s) => V::Str(s),
                    Err(_) => return Parsed::Slow,
                }
            }
            b'0'..=b'9' => {
                let vs = i;
                let mut j = i;
                while j < b.len() && b[j].is_ascii_digit() {
                    j += 1;
                }
                if j < b.len() && matches!(b[j], b'.' | b'e' | b'E') {
                    return Parsed::Slow;
                }
                if j - vs > 20 {
                    return Parsed::Slow;
                }
                i = j;
                // Digits are ASCII.
                V::Digits(std::str::from_utf8(&b[vs..j]).unwrap_or("0"))
            }
            b'n' => {
                if b.len() < i + 4 || &b[i..i + 4] != b"null" {
                    return Parsed::Slow;
                }
                i += 4;
                V::Null
            }
            _ => return Parsed::Slow,
        };
        if let Some(f) = Field::of_key(key) {
            row.vals[f.index()] = v;
        }
        i = skip_ws(b, i);
        if i >= b.len() {
            return Parsed::Slow;
        }
        match b[i] {
            b',' => i += 1,
            b'}' => {
                i = skip_ws(b, i + 1);
                return if i == b.len() {
                    Parsed::Fast(row)
                } else {
                    Parsed::Slow
                };
            }
            _ => return Parsed::Slow,
        }
    }
}

/// Reads one line with serde_json (the slow path): an object, or an error
/// that says what is wrong.
pub fn parse_line_slow(line: &[u8]) -> Result<OwnedRow, String> {
    let v: serde_json::Value = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    match v {
        serde_json::Value::Object(m) => Ok(OwnedRow::from_json(&m)),
        _ => Err("the line is not a JSON object".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"{"version":1,"account-id":"1234567890","vpc-id":"vpc-1","vswitch-id":"vsw-1","vm-id":null,"eni-id":"eni-a1","srcaddr":"10.0.1.5","dstaddr":"fd00::1:5","srcport":40001,"dstport":443,"protocol":6,"direction":"out","packets":3,"bytes":180,"start":1764248401,"end":1764248460,"tcp-flags":18,"log-status":"OK","action":"ACCEPT","flow-log-id":"fl-1","window-start":1764248400,"extra":"x"}"#;

    #[test]
    fn fast_equals_slow() {
        let Parsed::Fast(fast) = parse_line(LINE.as_bytes()) else {
            panic!("not fast")
        };
        let slow = parse_line_slow(LINE.as_bytes()).unwrap();
        assert_eq!(fast.to_json(), slow.row().to_json());
        assert_eq!(fast.get(Field::Peer), V::Str("fd00::1:5"));
        assert_eq!(fast.bytes(), 180);
        assert_eq!(fast.get(Field::VmId), V::Null);
    }

    #[test]
    fn odd_lines_go_slow_or_blank() {
        assert!(matches!(parse_line(b"   "), Parsed::Blank));
        assert!(matches!(parse_line(br#"{"eni-id":"a\"b"}"#), Parsed::Slow));
        assert!(matches!(parse_line(br#"{"bytes":1.5}"#), Parsed::Slow));
        assert!(matches!(parse_line(br#"{"bytes":-1}"#), Parsed::Slow));
        assert!(matches!(parse_line(br#"{"a":{"b":1}}"#), Parsed::Slow));
        assert!(matches!(parse_line(br#"{"bytes":1"#), Parsed::Slow));
        assert!(matches!(parse_line(br#"{"bytes":1} x"#), Parsed::Slow));
        assert!(matches!(parse_line(br#"[1]"#), Parsed::Slow));
        let Parsed::Fast(r) = parse_line(br#" { "bytes" : 7 , "eni-id" : "e" } "#) else {
            panic!()
        };
        assert_eq!(r.bytes(), 7);
        assert!(parse_line_slow(b"[1]").is_err());
        assert!(parse_line_slow(b"{").is_err());
    }
}
