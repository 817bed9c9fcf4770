//! Times on the command line (Unix seconds or RFC 3339) and in output
//! (RFC 3339, UTC).

/// Days since 1970-01-01 of a civil date (Howard Hinnant's
/// days_from_civil), for any year.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

const TIME_HELP: &str = "write Unix seconds (1704067200) or RFC 3339 \
                         (2024-01-01T00:00:00Z, 2024-01-01T08:00:00+08:00, or a date 2024-01-01)";

/// Parses a time: Unix seconds, an RFC 3339 date-time (`T` or a space
/// between date and time; `Z` or `±HH:MM`; fractions of a second dropped,
/// i.e. floored like the records' times), or a bare date (midnight UTC).
pub fn parse_time(s: &str) -> Result<u64, String> {
    let t = s.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t
            .parse()
            .map_err(|_| format!("{s:?} is too large; {TIME_HELP}"));
    }
    let bad = || format!("{s:?} is not a time; {TIME_HELP}");
    let b = t.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = t.get(r)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return Err(bad());
    }
    let y = i64::from(num(0..4).ok_or_else(bad)?);
    let mo = num(5..7).ok_or_else(bad)?;
    let d = num(8..10).ok_or_else(bad)?;
    if !(1..=12).contains(&mo) || d == 0 || d > days_in_month(y, mo) {
        return Err(format!("{s:?}: no such date; {TIME_HELP}"));
    }
    let mut secs = days_from_civil(y, mo, d) * 86_400;
    if b.len() > 10 {
        if !matches!(b[10], b'T' | b't' | b' ') || b.len() < 19 || b[13] != b':' || b[16] != b':' {
            return Err(bad());
        }
        let h = num(11..13).ok_or_else(bad)?;
        let mi = num(14..16).ok_or_else(bad)?;
        let se = num(17..19).ok_or_else(bad)?;
        if h > 23 || mi > 59 || se > 60 {
            return Err(format!("{s:?}: no such time of day; {TIME_HELP}"));
        }
        secs += i64::from(h * 3600 + mi * 60 + se);
        let mut i = 19;
        if i < b.len() && b[i] == b'.' {
            i += 1;
            let fs = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if i == fs {
                return Err(bad());
            }
        }
        match &t[i..] {
            "Z" | "z" => {}
            off if off.len() == 6
                && (off.starts_with('+') || off.starts_with('-'))
                && off.as_bytes()[3] == b':' =>
            {
                let oh = num(i + 1..i + 3).ok_or_else(bad)?;
                let om = num(i + 4..i + 6).ok_or_else(bad)?;
                if oh > 23 || om > 59 {
                    return Err(bad());
                }
                let off_s = i64::from(oh * 3600 + om * 60);
                // Local time = UTC + offset.
                secs -= if off.starts_with('+') { off_s } else { -off_s };
            }
            "" => {
                return Err(format!(
                    "{s:?} has no time zone; add Z for UTC or an offset like +08:00"
                ))
            }
            _ => return Err(bad()),
        }
    }
    u64::try_from(secs).map_err(|_| format!("{s:?} is before 1970; {TIME_HELP}"))
}

/// RFC 3339 in UTC: `2024-01-01T00:00:00Z`.
pub fn rfc3339(secs: u64) -> String {
    let (y, m, d, h) = exporter::store::civil_utc(secs);
    let mi = secs % 3600 / 60;
    let s = secs % 60;
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_time("1704067200"), Ok(1_704_067_200));
        assert_eq!(parse_time("2024-01-01T00:00:00Z"), Ok(1_704_067_200));
        assert_eq!(parse_time("2024-01-01"), Ok(1_704_067_200));
        assert_eq!(parse_time("2024-01-01 08:00:00+08:00"), Ok(1_704_067_200));
        assert_eq!(
            parse_time("2023-12-31T19:00:00.999-05:00"),
            Ok(1_704_067_200)
        );
        assert_eq!(parse_time("2000-02-29T00:00:00Z"), Ok(951_782_400));
        assert!(parse_time("2001-02-29").is_err());
        assert!(parse_time("2024-01-01T00:00:00")
            .unwrap_err()
            .contains("time zone"));
        assert!(parse_time("yesterday").unwrap_err().contains("RFC 3339"));
        assert!(parse_time("1969-12-31T00:00:00Z").is_err());
        assert_eq!(rfc3339(1_704_067_200), "2024-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_704_067_200 + 3_723), "2024-01-01T01:02:03Z");
        for secs in [0, 951_782_400, 1_764_248_400, 4_107_542_399] {
            assert_eq!(parse_time(&rfc3339(secs)), Ok(secs));
        }
    }
}
