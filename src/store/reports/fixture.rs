//! Test rows written the same on both backends (the report parity tests
//! and the recordings tests): legs, calls, call legs, queue visits and
//! recordings, by plain SQL, so that they do not depend on the stages that
//! normally write them. The tables and columns have the same names on both
//! backends (sql/sqlite, sql/postgres); what differs is said where it does.

use crate::store::{Result, Tx};

/// Runs `sql` (several statements) on either backend.
pub fn exec(tx: &Tx, sql: &str) -> Result<()> {
    match tx.pg() {
        Some(pg) => pg.batch_execute(sql)?,
        None => tx.execute_batch(sql)?,
    }
    Ok(())
}

/// One leg of the fixture.
pub struct Leg<'a> {
    pub id: i64,
    pub device: &'a str,
    pub leg_type: &'a str,
    pub cpn: &'a str,
    pub cdpn: &'a str,
    pub start: &'a str,
    pub end: &'a str,
    pub duration: i64,
    pub trunk: &'a str,
    pub recording: Option<&'a str>,
    pub codec: Option<&'a str>,
}

fn text(v: Option<&str>) -> String {
    v.map_or("NULL".into(), |s| format!("'{}'", s.replace('\'', "''")))
}

/// Stores `legs`. SQLite's legs need a push to point at (a foreign key);
/// PostgreSQL's carry their push's receive time (the partition key).
pub fn legs(tx: &Tx, legs: &[Leg]) -> Result<()> {
    let pg = tx.is_postgres();
    let mut sql = String::new();
    if !pg {
        sql.push_str(
            "INSERT OR IGNORE INTO pushes (id, received_at, received_ms, source, device, method,
                 path, body, outcome, status)
             VALUES (1, '2024-01-08T00:00:00Z', 0, 'test', 'd', 'POST', '/', x'', 'stored', 200);\n",
        );
    }
    for l in legs {
        let (pk_col, pk_val) = if pg {
            ("received_at, ", "'2024-01-08 00:00:00+00', ")
        } else {
            ("", "")
        };
        sql.push_str(&format!(
            "INSERT INTO legs ({pk_col}id, device, cdr_id, push_id, received_ms, callid, leg_type,
                 route, cpn, cdpn, time_start, time_end, start_utc, end_utc, duration,
                 trunk_number, recording, rec_codec, content_hash)
             VALUES ({pk_val}{id}, {device}, 'cdr-{id}', 1, 0, 'call-{id}', {leg_type}, 'IP',
                 {cpn}, {cdpn}, {start}, {end}, {start}, {end}, {duration}, {trunk}, {recording},
                 {codec}, 'h{id}');\n",
            id = l.id,
            device = text(Some(l.device)),
            leg_type = text(Some(l.leg_type)),
            cpn = text(Some(l.cpn)),
            cdpn = text(Some(l.cdpn)),
            start = text(Some(l.start)),
            end = text(Some(l.end)),
            duration = l.duration,
            trunk = text(Some(l.trunk)),
            recording = text(l.recording),
            codec = text(l.codec),
        ));
    }
    exec(tx, &sql)
}

/// Legs `ids` on `device` with nothing else to them (the recordings tests).
pub fn bare_legs(tx: &Tx, device: &str, ids: std::ops::RangeInclusive<i64>) -> Result<()> {
    let rows: Vec<Leg> = ids
        .map(|id| Leg {
            id,
            device,
            leg_type: "IN",
            cpn: "1",
            cdpn: "2",
            start: "2024-01-08 09:00:00",
            end: "2024-01-08 09:01:00",
            duration: 60,
            trunk: "",
            recording: Some("20240108/x.wav"),
            codec: None,
        })
        .collect();
    legs(tx, &rows)
}

/// The rows the report parity test runs every report over: two days
/// (2024-01-08 and -09) and the evening before, two devices whose names
/// sort differently by bytes and by language, calls with talk times whose
/// minutes round on a tie, one call not settled (last change at 2_000_000
/// ms), queue visits of every outcome, recordings of every status and one
/// leg whose recording was never queued, and conversation figures of
/// some recordings (one failed, one where nobody spoke).
pub fn report_rows(tx: &Tx) -> Result<()> {
    let l = |id, device, leg_type, cpn, cdpn, start, end, duration, trunk, recording| Leg {
        id,
        device,
        leg_type,
        cpn,
        cdpn,
        start,
        end,
        duration,
        trunk,
        recording,
        codec: recording.map(|_| "PCMU"),
    };
    legs(
        tx,
        &[
            l(
                1,
                "dev-a",
                "IN",
                "138001",
                "200",
                "2024-01-07 23:30:00",
                "2024-01-08 00:20:09",
                3009,
                "888",
                Some("20240107/1.wav"),
            ),
            l(
                2,
                "dev-a",
                "IN",
                "138002",
                "201",
                "2024-01-08 09:00:00",
                "2024-01-08 09:00:15",
                15,
                "888",
                Some("20240108/2.wav"),
            ),
            l(
                3,
                "dev-a",
                "FW",
                "138002",
                "139555",
                "2024-01-08 09:00:05",
                "2024-01-08 09:00:26",
                21,
                "888",
                Some("20240108/3.wav"),
            ),
            l(
                4,
                "Dev-B",
                "OU",
                "300",
                "0216120",
                "2024-01-08 09:00:10",
                "2024-01-08 09:01:50",
                100,
                "777",
                Some("20240108/4.wav"),
            ),
            l(
                5,
                "Dev-B",
                "CB",
                "300",
                "0216121",
                "2024-01-08 09:00:20",
                "2024-01-08 09:00:29",
                9,
                "777",
                None,
            ),
            l(
                6,
                "dev-a",
                "IN",
                "200",
                "Zed",
                "2024-01-08 13:59:59",
                "2024-01-08 14:00:00",
                1,
                "",
                Some("20240108/6.wav"),
            ),
            l(
                7,
                "dev-a",
                "IN",
                "138003",
                "abc",
                "2024-01-09 00:00:00",
                "2024-01-09 00:00:00",
                0,
                "888",
                Some("20240109/7.wav"),
            ),
            l(
                8,
                "Dev-B",
                "OU",
                "301",
                "=1+1",
                "2024-01-09 10:00:00",
                "2024-01-09 10:03:03",
                183,
                "777",
                None,
            ),
            l(
                9,
                "dev-a",
                "IN",
                "138004",
                "200",
                "2024-01-09 11:00:00",
                "2024-01-09 11:00:33",
                33,
                "888",
                Some("20240109/9.wav"),
            ),
        ],
    )?;
    exec(
        tx,
        "INSERT INTO calls (seq, id, device, direction, forwarded_out, caller, callee, extensions,
             answered_by, trunk, route, start_local, end_local, talk_seconds, billable_seconds,
             answered, leg_count, last_change_ms) VALUES
         (1, 'c01', 'dev-a', 'inbound', 0, '138001', '888', '[\"200\"]', '200', '888', 'IP',
             '2024-01-07 23:30:00', '2024-01-08 00:20:09', 3009, 3009, 1, 1, 100),
         (2, 'c02', 'dev-a', 'inbound', 1, '138002', '888', '[\"201\",\"200\",\"201\"]', NULL, '888', 'IP',
             '2024-01-08 09:00:00', '2024-01-08 09:00:26', 0, 21, 0, 2, 100),
         (3, 'C03', 'Dev-B', 'outbound', 0, '300', '0216120', '[\"300\"]', '300', '777', 'IP',
             '2024-01-08 09:00:10', '2024-01-08 09:01:50', 100, 109, 1, 2, 100),
         (4, 'c04', 'dev-a', 'internal', 0, '200', 'Zed', '[\"Zed\",\"abc\",\"200\"]', 'Zed', NULL, 'IP',
             '2024-01-08 13:59:59', '2024-01-08 14:00:00', 9, 0, 1, 1, 100),
         (5, 'c05', 'dev-a', 'inbound', 0, '138003', '888', '[]', NULL, '', 'IP',
             '2024-01-09 00:00:00', '2024-01-09 00:00:00', 0, 0, 0, 1, 100),
         (6, 'c06', 'Dev-B', 'outbound', 0, '301', '=1+1', '[\"300\"]', '300', '777', 'IP',
             '2024-01-09 10:00:00', '2024-01-09 10:03:03', 183, 183, 1, 1, 100),
         (7, 'c07', 'dev-a', 'callback', 0, '138004', '888', '[\"200\"]', '200', '888', 'IP',
             '2024-01-09 11:00:00', '2024-01-09 11:00:33', 33, 33, 1, 1, 2000000);
         INSERT INTO call_legs (leg_id, call_seq, leg_call_id) VALUES
             (1, 1, 'c01'), (2, 2, 'c02'), (3, 2, 'x03'), (4, 3, 'C03'), (5, 3, 'x05'),
             (6, 4, 'c04'), (7, 5, 'c05'), (8, 6, 'c06'), (9, 7, 'c07');
         INSERT INTO recordings (leg_id, device, path, codec, status, attempts, not_found, due_ms,
             last_error, updated_at) VALUES
             (1, 'dev-a', '20240107/1.wav', 'PCMU', 'done', 1, 0, 0, NULL, '2024-01-08T00:21:00.000Z'),
             (2, 'dev-a', '20240108/2.wav', 'PCMU', 'missing', 3, 3, 0, NULL, '2024-01-08T10:00:00.000Z'),
             (3, 'dev-a', '20240108/3.wav', 'PCMU', 'failed', 8, 1, 0, 'http 500', '2024-01-08T11:00:00.000Z'),
             (4, 'Dev-B', '20240108/4.wav', 'PCMU', 'pending', 0, 0, 0, NULL, '2024-01-08T09:02:00.000Z'),
             (7, 'dev-a', '20240109/7.wav', 'PCMU', 'fetching', 1, 0, 0, '', '2024-01-09T00:01:00.000Z'),
             (9, 'dev-a', '20240109/9.wav', 'PCMU', 'failed', 2, 0, 0, '', '2024-01-09T12:00:00.000Z');
         INSERT INTO conversations (recording_id, status, error, agent_talk_seconds,
             customer_talk_seconds, talk_ratio, overtalk_seconds, longest_silence_seconds,
             silence_seconds, interruptions, agent_first_word_seconds, segments, computed_at) VALUES
             (1, 'failed', 'recv side: no speech list', NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                 NULL, NULL, '2024-01-08T00:21:00.000Z'),
             (2, 'ok', NULL, 4.1, 3.3, 0.55, 0.7, 2.25, 3.1, 1, 0.5, '[]', '2024-01-08T10:00:00.000Z'),
             (3, 'ok', NULL, 1.2, 0.0, 1.0, 0.15, 0.0, 0.0, 0, 0.3, '[]', '2024-01-08T11:00:00.000Z'),
             (4, 'ok', NULL, 0.0, 0.0, NULL, 0.0, 0.0, 0.0, 0, NULL, '[]', '2024-01-08T09:02:00.000Z'),
             (5, 'ok', NULL, 2.0, 2.0, 0.5, 0.33, 1.05, 1.5, 2, 0.0, '[]', '2024-01-09T00:01:00.000Z');
         INSERT INTO queue_visits (key, device, grp, group_number, party_kind, party_id, caller,
             callid, entered_at, entered_local, entry_count, outcome, agent, ended_at,
             wait_seconds, call_id) VALUES
             ('dev-a:1', 'dev-a', 'sales', NULL, 'visitor', 'v1', '138002', 'x', '2024-01-08T01:00:00Z',
                 '2024-01-08 09:00:00', 1, 'answered', '201', NULL, 2.25, 'c02'),
             ('dev-a:2', 'dev-a', 'sales', '8001', 'visitor', 'v2', '1', 'x', '2024-01-08T01:00:00Z',
                 '2024-01-08 09:10:00', 3, 'answered', '200', NULL, 22.35, NULL),
             ('dev-a:3', 'dev-a', 'sales', '8001', 'visitor', 'v3', '1', 'x', '2024-01-08T01:00:00Z',
                 '2024-01-08 09:20:00', 2, 'abandoned', NULL, NULL, 4.05, NULL),
             ('dev-a:4', 'dev-a', 'Support', NULL, 'visitor', 'v4', '1', 'x', '2024-01-08T01:00:00Z',
                 '2024-01-08 09:30:00', 1, 'unknown', NULL, NULL, 7.5, NULL),
             ('dev-a:5', 'dev-a', 'Support', NULL, 'visitor', 'v5', '1', 'x', '2024-01-08T01:00:00Z',
                 '2024-01-08 09:40:00', 1, 'rejected_full', NULL, NULL, NULL, NULL),
             ('Dev-B:1', 'Dev-B', 'sales', NULL, 'ext', '300', NULL, NULL, '2024-01-09T01:00:00Z',
                 '2024-01-09 08:00:00', 5, 'waiting', NULL, NULL, NULL, NULL),
             ('Dev-B:2', 'Dev-B', 'sales', NULL, 'visitor', 'v6', '1', 'x', '2024-01-09T01:00:00Z',
                 '2024-01-09 08:05:00', 4, 'abandoned', NULL, NULL, 0.15, NULL),
             ('Dev-B:3', 'Dev-B', 'sales', NULL, 'visitor', 'v7', '1', 'x', '2024-01-09T01:00:00Z',
                 '2024-01-09 08:06:00', 4, 'rejected_offline', NULL, NULL, NULL, NULL);",
    )
}
