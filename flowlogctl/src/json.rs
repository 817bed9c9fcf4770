//! A fast reader of one JSON Lines record: a scan over the bytes of a flat
//! object that records, for each known key, where its value lies — without
//! building a tree or copying a string. It handles what the product writes
//! (strings without escapes, non-negative integers, `null`) in any key
//! order, with any whitespace; anything else on a line (an escape, a
//! nested value, a negative or fractional number) sends that line to
//! serde_json instead, so the answer is the same either way.

use crate::model::{Field, OwnedRow, Row, V};

/// The fast path's answer for one line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// The line was read in place into the row.
    Fast,
    /// The line needs a full JSON parser.
    Slow,
    /// An empty or blank line.
    Blank,
}

/// Skips blanks within a line (a newline ends the record, so it is not one).
#[inline]
fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\r') {
        i += 1;
    }
    i
}

/// The end of a string starting at `i` (just after its opening quote):
/// the index of the closing quote, or `None` at an escape or the line's end.
#[inline]
fn string_end(b: &[u8], i: usize) -> Option<usize> {
    let n = b[i..]
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c == b'\n')?;
    (b[i + n] == b'"').then_some(i + n)
}

/// Where a line that ends at `i` (after its blanks) leaves off: just past
/// its newline, or at the end of the text; `None` if something else follows.
#[inline]
fn line_end(b: &[u8], i: usize) -> Option<usize> {
    let i = skip_ws(b, i);
    if i == b.len() {
        Some(i)
    } else if b[i] == b'\n' {
        Some(i + 1)
    } else {
        None
    }
}

/// Reads the record of the line starting at `start` of `b` (a whole file's
/// text, or one line) in place into `row`, whose `set` mask it clears
/// first. Returns what it found and, for [`Parsed::Fast`] and
/// [`Parsed::Blank`], where the next line starts — the newline is found on
/// the way, so the text is scanned once. For [`Parsed::Slow`] the caller
/// finds the line's end itself.
#[inline]
pub fn parse_at<'a>(b: &'a [u8], start: usize, row: &mut Row<'a>) -> (Parsed, usize) {
    const SLOW: (Parsed, usize) = (Parsed::Slow, 0);
    row.set = 0;
    let mut i = skip_ws(b, start);
    if let Some(end) = line_end(b, i) {
        return (Parsed::Blank, end);
    }
    if b[i] != b'{' {
        return SLOW;
    }
    i = skip_ws(b, i + 1);
    if i < b.len() && b[i] == b'}' {
        return match line_end(b, i + 1) {
            Some(end) => (Parsed::Fast, end),
            None => SLOW,
        };
    }
    loop {
        if i >= b.len() || b[i] != b'"' {
            return SLOW;
        }
        let Some(ke) = string_end(b, i + 1) else {
            return SLOW;
        };
        let key = &b[i + 1..ke];
        i = ke + 1;
        if i < b.len() && b[i] == b':' {
            i += 1;
        } else {
            i = skip_ws(b, i);
            if i >= b.len() || b[i] != b':' {
                return SLOW;
            }
            i += 1;
        }
        i = skip_ws(b, i);
        if i >= b.len() {
            return SLOW;
        }
        let v = match b[i] {
            b'"' => {
                let Some(e) = string_end(b, i + 1) else {
                    return SLOW;
                };
                let v = V::Str(&b[i + 1..e]);
                i = e + 1;
                v
            }
            b'0'..=b'9' => {
                let vs = i;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                if i - vs > 20 || (i < b.len() && matches!(b[i], b'.' | b'e' | b'E')) {
                    return SLOW;
                }
                V::Digits(&b[vs..i])
            }
            b'n' if b.len() >= i + 4 && &b[i..i + 4] == b"null" => {
                i += 4;
                V::Null
            }
            _ => return SLOW,
        };
        if let Some(f) = Field::of_key(key) {
            row.put(f, v);
        }
        if i < b.len() && b[i] == b',' {
            i += 1;
            if i < b.len() && b[i] == b'"' {
                continue;
            }
            i = skip_ws(b, i);
            continue;
        }
        i = skip_ws(b, i);
        if i >= b.len() {
            return SLOW;
        }
        match b[i] {
            b',' => i = skip_ws(b, i + 1),
            b'}' => {
                return match line_end(b, i + 1) {
                    Some(end) => (Parsed::Fast, end),
                    None => SLOW,
                };
            }
            _ => return SLOW,
        }
    }
}

/// Reads one line (without its `\n`) in place into `row`, whose `set`
/// mask it starts by clearing (the values of a line read before stay
/// behind it, unread).
#[inline]
pub fn parse_line<'a>(line: &'a [u8], row: &mut Row<'a>) -> Parsed {
    match parse_at(line, 0, row) {
        (Parsed::Slow, _) => Parsed::Slow,
        (p, end) if end == line.len() => p,
        // A newline inside the line: not one record.
        _ => Parsed::Slow,
    }
}

/// [`parse_line`] into a fresh row: the row when the fast path read it.
pub fn parse_line_row(line: &[u8]) -> Option<Row<'_>> {
    let mut row = Row::default();
    (parse_line(line, &mut row) == Parsed::Fast).then_some(row)
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
        let fast = parse_line_row(LINE.as_bytes()).expect("fast");
        let slow = parse_line_slow(LINE.as_bytes()).unwrap();
        assert_eq!(fast.to_json(), slow.row().to_json());
        assert_eq!(fast.get(Field::Peer), V::Str(b"fd00::1:5"));
        assert_eq!(fast.bytes(), 180);
        assert_eq!(fast.get(Field::VmId), V::Null);
    }

    #[test]
    fn a_reused_row_forgets_the_line_before() {
        let mut row = Row::default();
        assert_eq!(parse_line(LINE.as_bytes(), &mut row), Parsed::Fast);
        assert_eq!(parse_line(br#"{"bytes":7}"#, &mut row), Parsed::Fast);
        assert_eq!(row.bytes(), 7);
        assert_eq!(row.get(Field::SrcAddr), V::Null);
        assert_eq!(row.get(Field::EniId), V::Null);
    }

    #[test]
    fn a_whole_text_is_read_line_by_line() {
        let text = b"{\"bytes\":1}\n\n  \r\n{\"bytes\":2} \r\n{\"bytes\":\"a\\\"\"}\n{\"bytes\":3}";
        let mut row = Row::default();
        let (p, e) = parse_at(text, 0, &mut row);
        assert_eq!((p, e, row.bytes()), (Parsed::Fast, 12, 1));
        let (p, e) = parse_at(text, e, &mut row);
        assert_eq!((p, e), (Parsed::Blank, 13));
        let (p, e) = parse_at(text, e, &mut row);
        assert_eq!((p, e), (Parsed::Blank, 17));
        let (p, e) = parse_at(text, e, &mut row);
        assert_eq!((p, e, row.bytes()), (Parsed::Fast, 31, 2));
        assert_eq!(parse_at(text, e, &mut row).0, Parsed::Slow);
        let (p, e) = parse_at(text, 47, &mut row);
        assert_eq!((p, e, row.bytes()), (Parsed::Fast, text.len(), 3));
        // A record broken by a newline is not read across it.
        assert_eq!(
            parse_at(b"{\"bytes\":1,\n\"end\":2}", 0, &mut row).0,
            Parsed::Slow
        );
        assert_eq!(parse_line(b"{\"bytes\":1}\n{}", &mut row), Parsed::Slow);
    }

    #[test]
    fn odd_lines_go_slow_or_blank() {
        let p = |l: &[u8]| parse_line(l, &mut Row::default());
        assert_eq!(p(b"   "), Parsed::Blank);
        assert_eq!(p(br#"{"eni-id":"a\"b"}"#), Parsed::Slow);
        assert_eq!(p(br#"{"eni\u002did":"a"}"#), Parsed::Slow);
        assert_eq!(p(br#"{"bytes":1.5}"#), Parsed::Slow);
        assert_eq!(p(br#"{"bytes":-1}"#), Parsed::Slow);
        assert_eq!(p(br#"{"a":{"b":1}}"#), Parsed::Slow);
        assert_eq!(p(br#"{"a":true}"#), Parsed::Slow);
        assert_eq!(p(br#"{"bytes":1"#), Parsed::Slow);
        assert_eq!(p(br#"{"bytes":1,}"#), Parsed::Slow);
        assert_eq!(p(br#"{"bytes":1} x"#), Parsed::Slow);
        assert_eq!(p(br#"{"bytes" 1}"#), Parsed::Slow);
        assert_eq!(p(br#"[1]"#), Parsed::Slow);
        assert_eq!(p(br#"{}"#), Parsed::Fast);
        let r = parse_line_row(br#" { "bytes" : 7 , "eni-id" : "e" } "#).expect("fast");
        assert_eq!(r.bytes(), 7);
        assert_eq!(r.get(Field::EniId), V::Str(b"e"));
        assert!(parse_line_slow(b"[1]").is_err());
        assert!(parse_line_slow(b"{").is_err());
    }
}
