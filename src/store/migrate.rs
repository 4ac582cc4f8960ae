//! Schema migrations from `sql/NNN_name.sql`, applied in order at start;
//! `PRAGMA user_version` records how many have been applied.

use rusqlite::Connection;

/// (name, SQL) in order. Adding a migration = adding a file and a line here.
pub const MIGRATIONS: &[(&str, &str)] = &[
    (
        "001_ingest",
        include_str!("../../sql/sqlite/001_ingest.sql"),
    ),
    ("002_calls", include_str!("../../sql/sqlite/002_calls.sql")),
    (
        "003_queues",
        include_str!("../../sql/sqlite/003_queues.sql"),
    ),
    (
        "004_recordings",
        include_str!("../../sql/sqlite/004_recordings.sql"),
    ),
    (
        "005_recordings_more",
        include_str!("../../sql/sqlite/005_recordings_more.sql"),
    ),
    (
        "006_report_indexes",
        include_str!("../../sql/sqlite/006_report_indexes.sql"),
    ),
    (
        "007_rebuild_indexes",
        include_str!("../../sql/sqlite/007_rebuild_indexes.sql"),
    ),
    (
        "008_derive_after_commit",
        include_str!("../../sql/sqlite/008_derive_after_commit.sql"),
    ),
    (
        "009_calls_time_order",
        include_str!("../../sql/sqlite/009_calls_time_order.sql"),
    ),
    (
        "010_queue_visits_call",
        include_str!("../../sql/sqlite/010_queue_visits_call.sql"),
    ),
    (
        "011_recordings_fair",
        include_str!("../../sql/sqlite/011_recordings_fair.sql"),
    ),
    (
        "012_devices",
        include_str!("../../sql/sqlite/012_devices.sql"),
    ),
    (
        "013_token_names_sessions",
        include_str!("../../sql/sqlite/013_token_names_sessions.sql"),
    ),
    ("014_audit", include_str!("../../sql/sqlite/014_audit.sql")),
    (
        "015_calls_billed_number",
        include_str!("../../sql/sqlite/015_calls_billed_number.sql"),
    ),
    (
        "016_token_devices",
        include_str!("../../sql/sqlite/016_token_devices.sql"),
    ),
    (
        "017_retention",
        include_str!("../../sql/sqlite/017_retention.sql"),
    ),
    (
        "018_conversations",
        include_str!("../../sql/sqlite/018_conversations.sql"),
    ),
];

pub fn apply(conn: &mut Connection) -> super::Result<()> {
    // Migrations copy whole tables and build indexes: SQLite sorts them in
    // temporary files, which with temp_store = MEMORY would sit in RAM, as
    // big as the tables. On disk for this, then the connection's own setting.
    let temp_store: i64 = conn.query_row("PRAGMA temp_store", [], |r| r.get(0))?;
    conn.pragma_update(None, "temp_store", "FILE")?;
    let done: usize = conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))? as usize;
    if done > MIGRATIONS.len() {
        // A newer callvault migrated this archive: its tables may mean
        // something this binary would misread or overwrite.
        return Err(super::StoreError::Backend(format!(
            "the archive's schema is at version {done}, newer than this callvault knows ({}): \
             upgrade callvault",
            MIGRATIONS.len()
        )));
    }
    for (i, (name, sql)) in MIGRATIONS.iter().enumerate().skip(done) {
        let tx = conn.transaction()?;
        if *name == "013_token_names_sessions" {
            // The file builds a unique index on token names: duplicates
            // are renamed (and logged) first.
            super::tokens::make_names_unique_sqlite(&tx)?;
        }
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
        tracing::info!(migration = name, "applied schema migration");
    }
    // Not a migration: indexes that a rebuild drops while it replays, put
    // back if one was interrupted (nothing to do when they exist).
    super::calls::create_lookup_indexes(&super::Tx::new(conn))?;
    conn.pragma_update(None, "temp_store", temp_store)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection at schema version `n` (the first `n` migrations).
    fn at_version(n: usize) -> Connection {
        let conn = Connection::open_in_memory().expect("db");
        for (_, sql) in &MIGRATIONS[..n] {
            conn.execute_batch(sql).expect("schema");
        }
        conn.pragma_update(None, "user_version", n as i64)
            .expect("version");
        conn
    }

    fn rows(conn: &Connection, sql: &str) -> Vec<String> {
        let mut st = conn.prepare(sql).expect("sql");
        let r = st.query_map([], |r| r.get::<_, String>(0)).expect("rows");
        r.map(|v| v.expect("row")).collect()
    }

    /// The call tables as users see them: each call with its legs and the
    /// ids that resolve to it.
    const CALLS_AS_SEEN: &str = "SELECT c.id || ' ' || c.caller || ' ' || group_concat(cl.leg_id || '=' || cl.leg_call_id, ',')
         FROM calls c JOIN call_legs cl ON cl.call_seq = c.seq GROUP BY c.seq ORDER BY c.seq";

    #[test]
    fn an_archive_migrated_by_a_newer_callvault_is_refused() {
        let mut conn = at_version(MIGRATIONS.len());
        apply(&mut conn).expect("current archive opens");
        conn.pragma_update(None, "user_version", MIGRATIONS.len() as i64 + 1)
            .expect("version");
        let e = apply(&mut conn).expect_err("newer schema refused");
        assert!(e.to_string().contains("newer than this callvault"), "{e}");
    }

    #[test]
    fn apply_009_keeps_calls_links_keys_and_creation_order() {
        let mut conn = at_version(7);
        // Old schema: calls by hashed id, links by that id. 'b' was created
        // first (rowid 1), so it keeps the first seq.
        conn.execute_batch(
            "INSERT INTO pushes (id, received_at, received_ms, source, method, path, body, outcome, status)
               VALUES (1, '', 0, 'test', 'POST', '/', x'', 'stored', 200);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3)
             INSERT INTO legs (id, device, cdr_id, push_id, received_ms, callid, leg_type, route, cpn, cdpn,
                 time_start, time_end, start_utc, end_utc, duration, trunk_number, content_hash)
             SELECT i, 'd', i, 1, 0, '', 'IN', 'IP', '', '', '', '', '', '', 0, '', '' FROM n;
             INSERT INTO calls VALUES ('b','d','outbound',0,'201','139','[]',NULL,NULL,'IP',
               '2024-01-08 09:00:00','2024-01-08 09:01:00',0,0,0,1,0);
             INSERT INTO calls VALUES ('a','d','inbound',0,'138','888','[]',NULL,NULL,'IP',
               '2024-01-08 09:00:30','2024-01-08 09:02:00',0,0,0,2,0);
             INSERT INTO call_legs VALUES (1, 'a', 'a'), (2, 'b', 'b'), (3, 'a', 'x');
             INSERT INTO leg_keys (device, key, start_s, end_s, leg_id)
               VALUES ('d', 'v:1', 86000, 86500, 1), ('d', 'v:1', 86300, 86390, 3), ('d', 'o:2', 10, 70, 2);",
        )
        .expect("old rows");
        apply(&mut conn).expect("migrates");
        assert_eq!(
            rows(&conn, CALLS_AS_SEEN),
            ["b 201 2=b", "a 138 1=a,3=x"],
            "every call and link survives, calls in creation order"
        );
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .expect("version");
        assert_eq!(version as usize, MIGRATIONS.len());
        assert_eq!(
            crate::store::calls::resolve_id(&crate::store::Tx::new(&conn), "x").expect("resolve"),
            Some("a".into()),
            "an alias id still resolves"
        );
        assert_eq!(
            rows(
                &conn,
                "SELECT end_day || ' ' || key || ' ' || leg_id FROM leg_keys ORDER BY leg_id"
            ),
            ["1 v:1 1", "0 o:2 2", "0 v:1 3"],
            "join keys grouped by the day their leg ends"
        );
        let keys = ["v:1".to_string()];
        assert_eq!(
            crate::store::calls::candidates(
                &crate::store::Tx::new(&conn),
                "d",
                &keys,
                80_000,
                86_450,
                86_350
            )
            .expect("candidates"),
            [1, 3],
            "a key's legs are found across day buckets"
        );
    }

    #[test]
    fn apply_015_fills_each_calls_billed_number_from_its_first_billed_leg() {
        let before = MIGRATIONS
            .iter()
            .position(|(name, _)| *name == "015_calls_billed_number")
            .expect("015 is a migration");
        let mut conn = at_version(before);
        // Call 1: an IN leg first, then two carrier-billed legs starting in
        // the same second (the lower Cdr id wins, not the row id); call 2:
        // no billed leg.
        conn.execute_batch(
            "INSERT INTO pushes (id, received_at, received_ms, source, method, path, body, outcome, status)
               VALUES (1, '', 0, 'test', 'POST', '/', x'', 'stored', 200);
             INSERT INTO legs (id, device, cdr_id, push_id, received_ms, callid, leg_type, route, cpn, cdpn,
                 time_start, time_end, start_utc, end_utc, duration, trunk_number, content_hash) VALUES
               (1, 'd', '10', 1, 0, '', 'IN', 'IP', '138', '200', '2024-01-08 09:00:00', '', '', '', 0, '', ''),
               (2, 'd', '12', 1, 0, '', 'FW', 'IP', '200', '139', '2024-01-08 09:00:05', '', '', '', 0, '', ''),
               (3, 'd', '11', 1, 0, '', 'OU', 'IP', '200', '137', '2024-01-08 09:00:05', '', '', '', 0, '', ''),
               (4, 'd', '20', 1, 0, '', 'LO', 'IP', '201', '202', '2024-01-08 10:00:00', '', '', '', 0, '', '');
             INSERT INTO calls (seq, id, device, direction, forwarded_out, caller, callee, extensions,
                 answered_by, trunk, route, start_local, end_local, talk_seconds, billable_seconds,
                 answered, leg_count, last_change_ms) VALUES
               (1, 'a', 'd', 'inbound', 1, '138', '200', '[]', NULL, NULL, 'IP',
                '2024-01-08 09:00:00', '2024-01-08 09:01:00', 0, 0, 0, 3, 0),
               (2, 'b', 'd', 'internal', 0, '201', '202', '[]', NULL, NULL, 'IP',
                '2024-01-08 10:00:00', '2024-01-08 10:01:00', 0, 0, 0, 1, 0);
             INSERT INTO call_legs VALUES (1, 1, 'a'), (2, 1, 'a2'), (3, 1, 'a3'), (4, 2, 'b');",
        )
        .expect("old rows");
        apply(&mut conn).expect("migrates");
        assert_eq!(
            rows(
                &conn,
                "SELECT id || ' ' || coalesce(billed_number, '-') FROM calls ORDER BY seq"
            ),
            ["a 137", "b -"]
        );
    }

    /// A rebuild interrupted while the lookup indexes were dropped leaves
    /// none missing after the next open.
    #[test]
    fn apply_recreates_dropped_lookup_indexes() {
        let mut conn = at_version(MIGRATIONS.len());
        apply(&mut conn).expect("indexes");
        let indexes = "SELECT name FROM sqlite_master WHERE type = 'index'
             AND tbl_name IN ('calls', 'call_legs') ORDER BY name";
        let all = rows(&conn, indexes);
        conn.execute_batch("DROP INDEX calls_id; DROP INDEX call_legs_alias;")
            .expect("drop");
        apply(&mut conn).expect("reopen");
        assert_eq!(rows(&conn, indexes), all);
        assert!(all.contains(&"calls_id".to_string()));
        assert!(all.contains(&"call_legs_alias".to_string()));
    }
}
