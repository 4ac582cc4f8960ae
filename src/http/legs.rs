//! `GET /api/legs?from=&to=`: the stored CDR legs of device-local days.

use axum::extract::State;
use axum::Json;
use chrono::NaiveDate;
use serde::Deserialize;

use super::auth::{Caller, Perm};
use super::error::Query;
use super::{AppError, AppState};
use crate::store::legs;

#[derive(Debug, Deserialize)]
pub struct Range {
    pub from: Option<String>,
    pub to: Option<String>,
    pub limit: Option<i64>,
}

/// Parses `from`/`to` (`YYYY-MM-DD`, device local; `to` inclusive; either
/// missing = the other; both missing = today in the default zone).
pub fn date_range(
    from: Option<&str>,
    to: Option<&str>,
    tz: chrono_tz::Tz,
) -> Result<(NaiveDate, NaiveDate), AppError> {
    let parse = |s: &str| {
        NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map_err(|_| AppError::BadRequest(format!("invalid date {s:?}: expected YYYY-MM-DD")))
    };
    let today = chrono::Utc::now().with_timezone(&tz).date_naive();
    let (f, t) = match (from, to) {
        (Some(f), Some(t)) => (parse(f)?, parse(t)?),
        (Some(f), None) => (parse(f)?, parse(f)?),
        (None, Some(t)) => (parse(t)?, parse(t)?),
        (None, None) => (today, today),
    };
    if t < f {
        return Err(AppError::BadRequest("`to` is before `from`".into()));
    }
    // Every caller reads up to the start of the day after `to`; chrono's
    // last day (year 262142, which `%Y` parses) has none.
    if t.succ_opt().is_none() {
        return Err(AppError::BadRequest(format!("invalid date {t}: too late")));
    }
    Ok((f, t))
}

pub async fn list(
    caller: Caller,
    State(st): State<AppState>,
    Query(q): Query<Range>,
) -> Result<Json<serde_json::Value>, AppError> {
    caller.require(Perm::ReadCalls)?;
    let (from, to) = date_range(q.from.as_deref(), q.to.as_deref(), st.cfg.default_tz())?;
    let limit = q.limit.unwrap_or(10_000).clamp(1, 100_000);
    let cfg = st.cfg.clone();
    let rows = st
        .store
        .read(move |c| legs::between(c, from, to, limit, &|d| cfg.device_tz(d)))
        .await?;
    Ok(Json(serde_json::json!({ "legs": rows })))
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
}
