//! The words of an audit query, shared by `GET /api/audit` and `callvault
//! audit`: `actor`, `action` (one of [`Action`]'s names), `from` and `to`
//! (see `time`), a paging `cursor` (the id of the last row of the previous
//! page) and `limit`.

use serde::Deserialize;

use super::Action;
use crate::store::audit::Filter;

/// The query of `GET /api/audit`.
#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<i64>,
}

/// Rows a page holds by default, and at most.
pub const DEFAULT_LIMIT: i64 = 100;
pub const MAX_LIMIT: i64 = 1000;

/// The store's filter for `q`, dates in `tz`; a bad value is the message
/// to show (HTTP: a 400).
pub fn filter_of(q: &AuditQuery, tz: chrono_tz::Tz) -> Result<Filter, String> {
    let nonempty = |o: &Option<String>| o.clone().filter(|s| !s.trim().is_empty());
    let action = nonempty(&q.action);
    if let Some(a) = &action {
        if Action::parse(a).is_none() {
            let names: Vec<&str> = Action::ALL.iter().map(|a| a.as_str()).collect();
            return Err(format!("unknown action {a:?}: one of {}", names.join(", ")));
        }
    }
    let from_ms = nonempty(&q.from)
        .map(|s| super::time::from_ms(&s, tz))
        .transpose()
        .map_err(|e| e.to_string())?;
    let to_ms = nonempty(&q.to)
        .map(|s| super::time::to_ms(&s, tz))
        .transpose()
        .map_err(|e| e.to_string())?;
    let before_id = nonempty(&q.cursor)
        .map(|c| {
            c.trim()
                .parse::<i64>()
                .map_err(|_| "invalid cursor".to_string())
        })
        .transpose()?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(format!("limit must be between 1 and {MAX_LIMIT}"));
    }
    Ok(Filter {
        actor: nonempty(&q.actor),
        action,
        from_ms,
        to_ms,
        before_id,
        limit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_words_are_refused_with_a_reason() {
        let tz = chrono_tz::UTC;
        let q = |f: fn(&mut AuditQuery)| {
            let mut q = AuditQuery::default();
            f(&mut q);
            filter_of(&q, tz)
        };
        assert!(q(|q| q.action = Some("recording.erase".into()))
            .unwrap_err()
            .contains("unknown action"));
        assert!(q(|q| q.from = Some("last week".into()))
            .unwrap_err()
            .contains("invalid time"));
        assert_eq!(
            q(|q| q.cursor = Some("x".into())).unwrap_err(),
            "invalid cursor"
        );
        assert!(q(|q| q.limit = Some(0)).is_err());
        assert!(q(|q| q.limit = Some(MAX_LIMIT + 1)).is_err());
        let f = q(|q| {
            q.actor = Some("qa-desk".into());
            q.from = Some("2024-01-08".into());
            q.cursor = Some("42".into());
        })
        .unwrap();
        assert_eq!(f.actor.as_deref(), Some("qa-desk"));
        assert_eq!(f.from_ms, Some(1_704_672_000_000));
        assert_eq!((f.before_id, f.limit), (Some(42), DEFAULT_LIMIT));
    }
}
