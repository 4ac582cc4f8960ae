//! The `from` and `to` of an audit query (`GET /api/audit`, `callvault
//! audit`): a date (`YYYY-MM-DD`, a day of the configured `timezone`, as
//! every other date of the API) or an RFC 3339 instant. `from` is
//! inclusive; `to` a date takes in the whole day, an instant is exclusive.

use chrono::{NaiveDate, TimeZone};

/// A bound that is neither a date nor an RFC 3339 time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid time {0:?}: expected YYYY-MM-DD or an RFC 3339 time such as 2024-01-08T09:30:00Z")]
pub struct BadTime(pub String);

/// Unix ms of the start of `s` (`from`).
pub fn from_ms(s: &str, tz: chrono_tz::Tz) -> Result<i64, BadTime> {
    bound(s, tz, false)
}

/// Unix ms just after `s` (`to`: the end of the day of a date, the instant itself).
pub fn to_ms(s: &str, tz: chrono_tz::Tz) -> Result<i64, BadTime> {
    bound(s, tz, true)
}

fn bound(s: &str, tz: chrono_tz::Tz, end: bool) -> Result<i64, BadTime> {
    let s = s.trim();
    let bad = || BadTime(s.to_string());
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    let day = NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| bad())?;
    let day = if end {
        day.succ_opt().ok_or_else(bad)?
    } else {
        day
    };
    let midnight = day.and_hms_opt(0, 0, 0).ok_or_else(bad)?;
    // A zone whose clocks skip midnight: the first instant of the day.
    tz.from_local_datetime(&midnight)
        .earliest()
        .or_else(|| {
            tz.from_local_datetime(&(midnight + chrono::Duration::hours(1)))
                .earliest()
        })
        .map(|t| t.timestamp_millis())
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_local_days_and_instants_are_exact() {
        let tz = chrono_tz::Asia::Shanghai;
        // 2024-01-08 00:00 in Shanghai is 2024-01-07T16:00Z.
        assert_eq!(from_ms("2024-01-08", tz), Ok(1_704_643_200_000));
        assert_eq!(to_ms("2024-01-08", tz), Ok(1_704_643_200_000 + 86_400_000));
        assert_eq!(from_ms("2024-01-07T16:00:00Z", tz), Ok(1_704_643_200_000));
        assert_eq!(
            to_ms("2024-01-08T00:00:00+08:00", tz),
            Ok(1_704_643_200_000)
        );
        assert!(from_ms("yesterday", tz).is_err());
        assert!(to_ms("2024-13-01", tz).is_err());
    }
}
