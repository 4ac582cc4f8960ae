//! The call filters the API and the CLI share: a day range (`date_range`),
//! and the call search's parameters (`Search`) turned into the store's
//! [`CallFilter`] (`filter_from`), with the search's paging cursor. A
//! parameter that does not parse is a [`FilterError`]: HTTP answers it with
//! 400, the CLI prints it.

use base64::Engine;
use chrono::NaiveDate;
use serde::Deserialize;

use crate::store::call_search::{CallFilter, ConversationFilter};
use crate::store::legs::LOCAL_FMT;

/// A search or range parameter that is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// Not a `YYYY-MM-DD` date.
    #[error("invalid date {0:?}: expected YYYY-MM-DD")]
    BadDate(String),
    /// `to` before `from`.
    #[error("`to` is before `from`")]
    Reversed,
    /// A day with no day after it (every range reads up to the next day).
    #[error("invalid date {0}: too late")]
    TooLate(NaiveDate),
    /// A paging cursor we did not hand out.
    #[error("invalid cursor")]
    BadCursor,
    /// `answered` that is not a yes or a no.
    #[error("answered must be true or false, not {0:?}")]
    Answered(String),
    /// `has_recording` that is not a yes or a no.
    #[error("has_recording must be true or false, not {0:?}")]
    HasRecording(String),
    /// A conversation filter that is not a number in its range.
    #[error("{name} must be {range}, not {value:?}")]
    Figure {
        name: &'static str,
        range: &'static str,
        value: String,
    },
    /// A direction calls do not have.
    #[error("direction must be inbound, outbound, internal or callback, not {0:?}")]
    Direction(String),
}

/// Parses `from`/`to` (`YYYY-MM-DD`, device local; `to` inclusive; either
/// missing = the other; both missing = today in the default zone `tz`).
pub fn date_range(
    from: Option<&str>,
    to: Option<&str>,
    tz: chrono_tz::Tz,
) -> Result<(NaiveDate, NaiveDate), FilterError> {
    let parse = |s: &str| {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| FilterError::BadDate(s.to_string()))
    };
    let today = chrono::Utc::now().with_timezone(&tz).date_naive();
    let (f, t) = match (from, to) {
        (Some(f), Some(t)) => (parse(f)?, parse(t)?),
        (Some(f), None) => (parse(f)?, parse(f)?),
        (None, Some(t)) => (parse(t)?, parse(t)?),
        (None, None) => (today, today),
    };
    if t < f {
        return Err(FilterError::Reversed);
    }
    // Every caller reads up to the start of the day after `to`; chrono's
    // last day (year 262142, which `%Y` parses) has none.
    if t.succ_opt().is_none() {
        return Err(FilterError::TooLate(t));
    }
    Ok((f, t))
}

/// The parameters of the call search (`GET /api/calls`, `callvault calls`).
#[derive(Debug, Default, Deserialize)]
pub struct Search {
    pub from: Option<String>,
    pub to: Option<String>,
    pub number: Option<String>,
    pub ext: Option<String>,
    pub direction: Option<String>,
    pub answered: Option<String>,
    /// `true`: only calls with a recorded leg; `false`: only calls without.
    pub has_recording: Option<String>,
    /// Conversation figures (docs/recordings.md "Conversation figures"):
    /// seconds at least, and the talk ratio's range (0..1).
    pub longest_silence_min: Option<String>,
    pub overtalk_min: Option<String>,
    pub talk_ratio_min: Option<String>,
    pub talk_ratio_max: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The cursor of the page after the call that started at `start_local` with `id`.
pub fn encode_cursor(start_local: &str, id: &str) -> String {
    B64.encode(format!("{start_local}\n{id}"))
}

fn decode_cursor(c: &str) -> Result<(String, String), FilterError> {
    let bytes = B64.decode(c).map_err(|_| FilterError::BadCursor)?;
    let s = String::from_utf8(bytes).map_err(|_| FilterError::BadCursor)?;
    let (a, b) = s.split_once('\n').ok_or(FilterError::BadCursor)?;
    Ok((a.to_string(), b.to_string()))
}

/// A yes/no parameter: absent or empty is neither; Err is the value given.
fn yes_no(v: Option<&str>) -> Result<Option<bool>, String> {
    match v {
        None | Some("") => Ok(None),
        Some("1" | "true" | "yes") => Ok(Some(true)),
        Some("0" | "false" | "no") => Ok(Some(false)),
        Some(o) => Err(o.to_string()),
    }
}

/// A conversation figure filter: absent or empty is none; else a finite
/// number within `lo..=hi`.
fn figure(
    name: &'static str,
    v: Option<&str>,
    lo: f64,
    hi: f64,
    range: &'static str,
) -> Result<Option<f64>, FilterError> {
    let Some(v) = v.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    match v.parse::<f64>() {
        Ok(x) if x.is_finite() && (lo..=hi).contains(&x) => Ok(Some(x)),
        _ => Err(FilterError::Figure {
            name,
            range,
            value: v.to_string(),
        }),
    }
}

/// The conversation filters of `q`.
fn conversation_filter(q: &Search) -> Result<ConversationFilter, FilterError> {
    const SECONDS: &str = "a number of seconds (0 or more)";
    const RATIO: &str = "a number from 0 to 1";
    let f = ConversationFilter {
        longest_silence_min: figure(
            "longest_silence_min",
            q.longest_silence_min.as_deref(),
            0.0,
            f64::MAX,
            SECONDS,
        )?,
        overtalk_min: figure(
            "overtalk_min",
            q.overtalk_min.as_deref(),
            0.0,
            f64::MAX,
            SECONDS,
        )?,
        talk_ratio_min: figure(
            "talk_ratio_min",
            q.talk_ratio_min.as_deref(),
            0.0,
            1.0,
            RATIO,
        )?,
        talk_ratio_max: figure(
            "talk_ratio_max",
            q.talk_ratio_max.as_deref(),
            0.0,
            1.0,
            RATIO,
        )?,
    };
    Ok(f)
}

/// Turns the search parameters into a store filter (days in `tz` when
/// neither is given; at most 1000 calls a page, 100 by default).
pub fn filter_from(q: &Search, tz: chrono_tz::Tz) -> Result<CallFilter, FilterError> {
    let (from, to) = date_range(q.from.as_deref(), q.to.as_deref(), tz)?;
    let answered = yes_no(q.answered.as_deref()).map_err(FilterError::Answered)?;
    let has_recording = yes_no(q.has_recording.as_deref()).map_err(FilterError::HasRecording)?;
    if let Some(d) = q.direction.as_deref().filter(|d| !d.is_empty()) {
        if !["inbound", "outbound", "internal", "callback"].contains(&d) {
            return Err(FilterError::Direction(d.to_string()));
        }
    }
    let nonempty = |o: &Option<String>| o.clone().filter(|s| !s.trim().is_empty());
    Ok(CallFilter {
        from: from
            .and_hms_opt(0, 0, 0)
            .unwrap_or_default()
            .format(LOCAL_FMT)
            .to_string(),
        to: (to + chrono::Duration::days(1))
            .and_hms_opt(0, 0, 0)
            .unwrap_or_default()
            .format(LOCAL_FMT)
            .to_string(),
        number: nonempty(&q.number),
        ext: nonempty(&q.ext),
        direction: nonempty(&q.direction),
        answered,
        has_recording,
        conversation: conversation_filter(q)?,
        settled_before_ms: None,
        after: q
            .cursor
            .as_deref()
            .filter(|c| !c.is_empty())
            .map(decode_cursor)
            .transpose()?,
        limit: q.limit.unwrap_or(100).clamp(1, 1000),
        devices: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_range_refuses_the_last_day_chrono_knows() {
        let tz = chrono_tz::UTC;
        for (from, to) in [
            (None, Some("+262142-12-31")),
            (Some("+262142-12-31"), None),
            (Some("2024-01-01"), Some("+262142-12-31")),
        ] {
            let err = date_range(from, to, tz).expect_err("no day after it");
            assert!(err.to_string().contains("too late"), "{err}");
        }
        let (f, t) = date_range(Some("+262142-12-30"), None, tz).expect("a day follows");
        assert_eq!(
            (f, t.succ_opt().map(|d| d.to_string())),
            (t, Some("+262142-12-31".into()))
        );
    }

    #[test]
    fn filter_from_round_trips_the_cursor() {
        let q = Search {
            from: Some("2024-01-08".into()),
            cursor: Some(encode_cursor("2024-01-08 09:00:00", "abc")),
            ..Search::default()
        };
        let f = filter_from(&q, chrono_tz::UTC).expect("filter");
        assert_eq!(f.after, Some(("2024-01-08 09:00:00".into(), "abc".into())));
        assert_eq!(
            (f.from.as_str(), f.to.as_str(), f.limit),
            ("2024-01-08 00:00:00", "2024-01-09 00:00:00", 100)
        );
    }

    #[test]
    fn filter_from_refuses_bad_values() {
        let bad = |q: Search| filter_from(&q, chrono_tz::UTC).expect_err("refused");
        assert_eq!(
            bad(Search {
                cursor: Some("!".into()),
                ..Search::default()
            }),
            FilterError::BadCursor
        );
        assert_eq!(
            bad(Search {
                answered: Some("maybe".into()),
                ..Search::default()
            }),
            FilterError::Answered("maybe".into())
        );
        assert_eq!(
            bad(Search {
                has_recording: Some("sometimes".into()),
                ..Search::default()
            }),
            FilterError::HasRecording("sometimes".into())
        );
        assert_eq!(
            bad(Search {
                direction: Some("up".into()),
                ..Search::default()
            }),
            FilterError::Direction("up".into())
        );
    }
}
