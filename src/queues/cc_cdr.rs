//! Queue visits of a call-center PBX that reports them whole: the coocenter
//! `cc_cdr` push (seeds/002 通话日志2), kept as a `CC_CDR` event with all its
//! fields (`ingest::coocenter`). Unlike OM, which reports only the entry
//! (and callvault infers the rest from RING and BYE), each such event is one
//! finished visit: queue `queueCode`, entered after `ivrTime` from
//! `startTime`, waited `queueTime`, taken by `agentCode` or lost for
//! `missCause`.

use chrono::{DateTime, NaiveDateTime, TimeDelta, TimeZone, Utc};

use crate::model::{parse_json_time, Event};
use crate::model::{Outcome, Visit};

/// The attribute of the events this module reads.
pub const ATTRIBUTE: &str = "CC_CDR";

/// The finished visit a `CC_CDR` event reports; None when the call never
/// reached a queue (no `queueCode`) or its start time is unreadable. Times
/// are device-local in `tz`.
pub fn visit(device: &str, seq: i64, ev: &Event, tz: chrono_tz::Tz) -> Option<Visit> {
    let get = |k: &str| ev.attr(k).map_or("", str::trim);
    let secs = |k: &str| get(k).parse::<i64>().ok().filter(|s| *s >= 0).unwrap_or(0);
    let group = get("queueCode");
    if group.is_empty() {
        return None;
    }
    let start = parse_json_time(get("startTime"))?;
    // Checked: the archive may hold any number here (the parser refuses
    // more than MAX_LEG_DAYS, but a panic would stop derivation).
    let after = |t: NaiveDateTime, s: i64| t.checked_add_signed(TimeDelta::try_seconds(s)?);
    let entered = instant(after(start, secs("ivrTime"))?, tz)?;
    let wait = secs("queueTime");
    let ended = entered.checked_add_signed(TimeDelta::try_seconds(wait)?)?;
    let agent = get("agentCode");
    let outcome = match get("missCause") {
        "" if !agent.is_empty() => Outcome::Answered,
        // Hung up while waiting (the manual: within 10 s), or no agent answered.
        "MEMBER_CANCEL" | "NO_AGENT_ANSWER" => Outcome::Abandoned,
        // Nobody logged in to the queue.
        "NO_AGENT_LOGIN" => Outcome::RejectedOffline,
        // Not enough agents to take the call.
        "NO_ASSIGN" => Outcome::RejectedFull,
        _ => Outcome::Unknown,
    };
    let uuid = get("uuid");
    Some(Visit {
        key: format!("{device}:{seq}"),
        device: device.to_string(),
        group: group.to_string(),
        group_number: Some(group.to_string()),
        party_kind: "visitor".into(),
        // The call's id, which the coocenter leg carries as its visitor id:
        // how the visit finds its call.
        party_id: uuid.to_string(),
        caller: Some(get("caller").to_string()).filter(|c| !c.is_empty()),
        callid: Some(uuid.to_string()).filter(|c| !c.is_empty()),
        entered_at: entered,
        entry_count: 0,
        agent: (outcome == Outcome::Answered).then(|| agent.to_string()),
        ended_at: Some(ended),
        wait_seconds: Some(wait as f64),
        outcome,
    })
}

/// A device-local time as an instant (the earlier one when the clock was
/// set back; a time skipped by a DST jump is taken an hour later).
fn instant(t: NaiveDateTime, tz: chrono_tz::Tz) -> Option<DateTime<Utc>> {
    tz.from_local_datetime(&t)
        .earliest()
        .or_else(|| {
            tz.from_local_datetime(&(t + TimeDelta::hours(1)))
                .earliest()
        })
        .map(|d| d.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(fields: &[(&str, &str)]) -> Event {
        Event {
            attribute: ATTRIBUTE.into(),
            attrs: fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            mac: None,
            parties: Vec::new(),
        }
    }

    const BASE: [(&str, &str); 5] = [
        ("uuid", "1.5"),
        ("caller", "13800001111"),
        ("queueCode", "630"),
        ("startTime", "2024-01-08 10:00:00"),
        ("ivrTime", "12"),
    ];

    fn visit_with(more: &[(&str, &str)]) -> Option<Visit> {
        let fields: Vec<(&str, &str)> = BASE.iter().chain(more).copied().collect();
        visit("pbx", 7, &ev(&fields), chrono_tz::Asia::Shanghai)
    }

    #[test]
    fn an_answered_call_is_a_visit_taken_by_its_agent() {
        let v = visit_with(&[("queueTime", "20"), ("agentCode", "100"), ("missCause", "")])
            .expect("a visit");
        assert_eq!(
            (v.key.as_str(), v.group.as_str(), v.party_id.as_str()),
            ("pbx:7", "630", "1.5")
        );
        assert_eq!(
            (v.outcome, v.agent.as_deref()),
            (Outcome::Answered, Some("100"))
        );
        // 10:00:12 in Shanghai, after 12 s in the IVR; then 20 s waiting.
        assert_eq!(v.entered_at.to_rfc3339(), "2024-01-08T02:00:12+00:00");
        assert_eq!(v.wait_seconds, Some(20.0));
        assert_eq!(
            v.ended_at.map(|t| (t - v.entered_at).num_seconds()),
            Some(20)
        );
    }

    #[test]
    fn each_miss_cause_has_its_outcome() {
        for (cause, want) in [
            ("MEMBER_CANCEL", Outcome::Abandoned),
            ("NO_AGENT_ANSWER", Outcome::Abandoned),
            ("NO_AGENT_LOGIN", Outcome::RejectedOffline),
            ("NO_ASSIGN", Outcome::RejectedFull),
            ("SOMETHING_NEW", Outcome::Unknown),
        ] {
            let v = visit_with(&[("agentCode", "100"), ("missCause", cause)]).expect(cause);
            assert_eq!((v.outcome, v.agent), (want, None), "{cause}");
        }
        let v = visit_with(&[("agentCode", ""), ("missCause", "")]).expect("no agent, no cause");
        assert_eq!(v.outcome, Outcome::Unknown);
    }

    #[test]
    fn absurd_times_make_no_visit_rather_than_a_panic() {
        let max = "9223372036854775807";
        for (start, ivr, wait) in [
            ("2024-01-08 10:00:00", "0", max),
            ("2024-01-08 10:00:00", max, "0"),
            // Within TimeDelta's range, past DateTime's.
            ("2024-01-08 10:00:00", "0", "9000000000000000"),
        ] {
            let e = ev(&[
                ("uuid", "1"),
                ("queueCode", "6"),
                ("startTime", start),
                ("ivrTime", ivr),
                ("queueTime", wait),
            ]);
            assert!(
                visit("pbx", 1, &e, chrono_tz::UTC).is_none(),
                "{start} {ivr} {wait}"
            );
        }
    }

    #[test]
    fn a_call_that_never_queued_or_has_no_start_makes_no_visit() {
        let no_queue = ev(&[
            ("uuid", "1"),
            ("queueCode", ""),
            ("startTime", "2024-01-08 10:00:00"),
        ]);
        assert!(visit("pbx", 1, &no_queue, chrono_tz::UTC).is_none());
        let no_start = ev(&[("uuid", "1"), ("queueCode", "630"), ("startTime", "soon")]);
        assert!(visit("pbx", 1, &no_start, chrono_tz::UTC).is_none());
    }
}
