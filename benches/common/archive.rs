//! The benches' archive of 1 M settled calls over 100 days (10 k a day; one
//! leg per call, half of them recorded, 5 % queue visits), made by inserting
//! rows directly in one transaction: what `benches/reports.rs` and
//! `benches/audit.rs` measure on. Set CALLVAULT_BENCH_DB=path to keep (and
//! reuse) it between runs.

use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::{Duration, NaiveDate};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub const CALLS: usize = 1_000_000;
pub const DAYS: i64 = 100;

pub fn first_day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 1, 1).unwrap_or_default()
}

pub fn generate(db: &Path) -> rusqlite::Result<()> {
    // Schema and migrations (including the report indexes) as the server makes them.
    drop(
        callvault::store::Store::open(db)
            .map_err(|e| rusqlite::Error::InvalidPath(PathBuf::from(e.to_string())))?,
    );
    let mut conn = rusqlite::Connection::open(db)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF; PRAGMA foreign_keys = OFF;",
    )?;
    let tx = conn.transaction()?;
    tx.execute(
        "INSERT INTO pushes (id, received_at, received_ms, source, device, method, path, body, outcome, status)
         VALUES (1, '2024-01-01T00:00:00Z', 0, 'bench', 'hq', 'POST', '/', x'', 'stored', 200)",
        [],
    )?;
    {
        let mut leg = tx.prepare(
            "INSERT INTO legs (id, device, cdr_id, push_id, received_ms, callid, visitor_id, outer_id, leg_type, route,
                 cpn, cdpn, time_start, time_end, start_utc, end_utc, duration, trunk_number, recording, rec_codec, content_hash)
             VALUES (?1, 'hq', ?2, 1, 0, ?2, NULL, '1', ?3, 'IP', ?4, ?5, ?6, ?7, ?6, ?7, ?8, '02161205555', ?9, 'G729', '')",
        )?;
        let mut call = tx.prepare(
            "INSERT INTO calls (seq, id, device, direction, forwarded_out, caller, callee, extensions, answered_by, trunk, route,
                 start_local, end_local, talk_seconds, billable_seconds, answered, leg_count, last_change_ms,
                 billed_number)
             VALUES (?13, ?1, 'hq', ?2, 0, ?3, ?4, ?5, ?6, ?7, 'IP', ?8, ?9, ?10, ?11, ?12, 1, 0, ?14)",
        )?;
        let mut link = tx
            .prepare("INSERT INTO call_legs (leg_id, call_seq, leg_call_id) VALUES (?1, ?1, ?2)")?;
        let mut rec = tx.prepare(
            "INSERT INTO recordings (leg_id, device, path, codec, status, attempts, due_ms, last_error, updated_at)
             VALUES (?1, 'hq', ?2, 'G729', ?3, 1, 0, ?4, '2024-01-01T00:00:00Z')",
        )?;
        let mut visit = tx.prepare(
            "INSERT INTO queue_visits (key, device, grp, party_kind, party_id, entered_at, entered_local, entry_count, outcome, agent, wait_seconds, call_id)
             VALUES (?1, 'hq', ?2, 'visitor', '1', '', ?3, 1, ?4, ?5, ?6, ?7)",
        )?;
        let mut rng = StdRng::seed_from_u64(7);
        let day_secs = 86_400 / (CALLS as i64 / DAYS);
        for i in 0..CALLS {
            let id = i as i64 + 1;
            let start = first_day().and_hms_opt(0, 0, 0).unwrap_or_default()
                + Duration::seconds(id * day_secs + rng.random_range(0..day_secs));
            let talk: i64 = if rng.random_bool(0.7) {
                rng.random_range(5..900)
            } else {
                0
            };
            let end = start + Duration::seconds(talk + rng.random_range(3..30));
            let ext = format!("2{:02}", rng.random_range(0..60));
            let external = format!("13{:09}", rng.random_range(0..1_000_000_000u64));
            let (dir, ty, caller, callee, billable) = match rng.random_range(0..10) {
                0..=4 => ("inbound", "IN", external.clone(), ext.clone(), 0),
                5..=7 => ("outbound", "OU", ext.clone(), external.clone(), talk),
                _ => (
                    "internal",
                    "LO",
                    ext.clone(),
                    format!("2{:02}", rng.random_range(0..60)),
                    0,
                ),
            };
            let (s, e) = (
                start.format("%Y-%m-%d %H:%M:%S").to_string(),
                end.format("%Y-%m-%d %H:%M:%S").to_string(),
            );
            let cid = format!("hq-{id}");
            let recording = (talk > 0 && rng.random_bool(0.5))
                .then(|| format!("{}/{cid}.wav", start.format("%Y%m%d")));
            leg.execute(rusqlite::params![
                id, cid, ty, caller, callee, s, e, talk, recording
            ])?;
            call.execute(rusqlite::params![
                cid,
                dir,
                caller,
                callee,
                format!("[\"{ext}\"]"),
                (talk > 0).then_some(&ext),
                (dir != "internal").then_some("02161205555"),
                s,
                e,
                talk,
                billable,
                talk > 0,
                id,
                (ty == "OU").then_some(&callee)
            ])?;
            link.execute(rusqlite::params![id, cid])?;
            if recording.is_some() {
                let (st, err) = match rng.random_range(0..20) {
                    0 => ("missing", None),
                    1 => ("failed", Some("HTTP 500")),
                    2 => ("pending", None),
                    _ => ("done", None),
                };
                rec.execute(rusqlite::params![id, recording, st, err])?;
            }
            if dir == "inbound" && rng.random_bool(0.1) {
                let out = if talk > 0 { "answered" } else { "abandoned" };
                visit.execute(rusqlite::params![
                    cid,
                    rng.random_range(1..4).to_string(),
                    s,
                    out,
                    (talk > 0).then_some(&ext),
                    rng.random_range(0.0..60.0),
                    cid
                ])?;
            }
        }
    }
    tx.commit()?;
    Ok(())
}

/// The archive at CALLVAULT_BENCH_DB, or a new one in `tmp`; generated
/// when the file does not exist yet.
pub fn bench_db(tmp: &Path) -> PathBuf {
    let db = std::env::var_os("CALLVAULT_BENCH_DB")
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp.join("bench.sqlite"));
    if !db.exists() {
        let t = Instant::now();
        generate(&db).unwrap_or_else(|e| panic!("generating: {e}"));
        println!(
            "generated {CALLS} calls over {DAYS} days in {:.1} s ({})",
            t.elapsed().as_secs_f64(),
            db.display()
        );
    }
    db
}
