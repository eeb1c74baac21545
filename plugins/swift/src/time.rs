//! The two timestamp forms Swift uses, as milliseconds since the epoch.

/// `Last-Modified: Tue, 01 Dec 2026 23:26:13 GMT` (RFC 7231's IMF-fixdate).
pub fn http_date_ms(value: &str) -> Option<u64> {
    let mut words = value.split_whitespace().skip(1);
    let day: u32 = words.next()?.parse().ok()?;
    let month = match words.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = words.next()?.parse().ok()?;
    let (h, m, s) = clock(words.next()?)?;
    epoch_ms(year, month, day, h, m, s, 0)
}

/// Listing's `last_modified`: `2026-12-01T23:26:11.874470`, UTC.
pub fn listing_ms(value: &str) -> Option<u64> {
    let (date, time) = value.split_once('T')?;
    let mut parts = date.split('-');
    let year: i64 = parts.next()?.parse().ok()?;
    let month: u32 = parts.next()?.parse().ok()?;
    let day: u32 = parts.next()?.parse().ok()?;
    let time = time.trim_end_matches('Z');
    let (clock_part, fraction) = time.split_once('.').unwrap_or((time, "0"));
    let (h, m, s) = clock(clock_part)?;
    let digits: String = fraction.chars().take(3).collect();
    let ms: u64 = format!("{digits:0<3}").parse().ok()?;
    epoch_ms(year, month, day, h, m, s, ms)
}

fn clock(value: &str) -> Option<(u32, u32, u32)> {
    let mut parts = value.split(':');
    let h = parts.next()?.parse().ok()?;
    let m = parts.next()?.parse().ok()?;
    let s = parts.next()?.parse().ok()?;
    Some((h, m, s))
}

fn epoch_ms(year: i64, month: u32, day: u32, h: u32, m: u32, s: u32, ms: u64) -> Option<u64> {
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let seconds = days * 86_400 + (h * 3600 + m * 60 + s) as i64;
    u64::try_from(seconds).ok().map(|s| s * 1000 + ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_agree() {
        // date -d '2026-12-01T23:26:13Z' +%s
        assert_eq!(
            http_date_ms("Tue, 01 Dec 2026 23:26:13 GMT"),
            Some(1_796_167_573_000)
        );
        assert_eq!(
            listing_ms("2026-12-01T23:26:13.874470"),
            Some(1_796_167_573_874)
        );
        assert_eq!(listing_ms("1970-01-01T00:00:00"), Some(0));
        assert_eq!(
            http_date_ms("Thu, 29 Feb 2024 00:00:00 GMT"),
            Some(1_709_164_800_000)
        );
        assert_eq!(http_date_ms("garbage"), None);
    }
}
