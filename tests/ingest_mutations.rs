//! Bad input never panics and is never dropped: every example of the manuals
//! (tests/fixtures/om, and the JSON sources' in tests/fixtures/{coocenter,cloud}),
//! mutated thousands of ways — bytes flipped, cut,
//! repeated; field values and attributes replaced by extremes (numbers past
//! i64, impossible dates, entities, paths, invalid UTF-8) — goes through the
//! real ingest path into a real SQLite file. Each push must be answered
//! with a status of the contract and kept (stored or quarantined), and
//! derivation must get through every stored one without stopping.
//!
//! The mutations come from a fixed seed, so a failure is reproducible; the
//! failing body is printed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use callvault::reports::{daily, html, run, Catalog, Params};
use callvault::store::Store;

use crate::util::*;

/// A fixed sequence (seeded), with the two picks the mutations need.
struct Rng(rand::rngs::StdRng);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        rand::Rng::random_range(&mut self.0, 0..n.max(1))
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Values that have broken parsers and date arithmetic elsewhere.
const NASTY: &[&str] = &[
    "",
    " ",
    "-1",
    "0",
    "99999999999999999999",
    "9223372036854775807",
    "-9223372036854775808",
    "18446744073709551616",
    "1e308",
    "NaN",
    "20241301250000",
    "20240230120000",
    "20241231246161",
    "99991231235959",
    "00000101000000",
    "00000000000000",
    "2024022912000",
    "202402291200000",
    "１２３",
    "中文名称",
    "../../etc/passwd",
    "/etc/passwd",
    "C:\\recordings\\a.wav",
    "20240101/../../x.wav",
    "a\u{0}b",
    "&amp;&lt;&gt;&quot;&apos;",
    "&#x1F600;",
    "&#0;",
    "&#xFFFFFFFF;",
    "&bogus;",
    "&",
    "<![CDATA[x]]>",
    "]]>",
    "<",
    "\"",
    "RING ",
    " BYE",
    "QUEUE",
];

/// Tags and attributes of the OM documents, and the string values of the
/// JSON ones, each a place to put a value.
fn value_spans(doc: &str) -> Vec<(usize, usize)> {
    let b = doc.as_bytes();
    let mut spans = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            // Element text: between '>' and the next '<'.
            b'>' => {
                if let Some(end) = doc[i + 1..].find('<') {
                    if end > 0 {
                        spans.push((i + 1, i + 1 + end));
                    }
                }
            }
            // Attribute value: between '="' and the next '"'; a JSON string
            // value: between '":"' (or '": "') and the next '"'.
            b'"' if i > 0
                && (b[i - 1] == b'='
                    || b[i - 1] == b':'
                    || (b[i - 1] == b' ' && i > 1 && b[i - 2] == b':')) =>
            {
                if let Some(end) = doc[i + 1..].find('"') {
                    spans.push((i + 1, i + 1 + end));
                    i += end + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    spans
}

/// `fresh_id`: a Cdr id not used before, so that a CDR with replaced
/// values becomes a leg of its own (a re-pushed id would only be a
/// conflict of the manual's leg).
fn mutate(rng: &mut Rng, docs: &[String], fresh_id: &str) -> Vec<u8> {
    let base = rng.pick(docs).clone();
    match rng.below(8) {
        // A field or attribute value replaced by something nasty (the
        // most useful: it gets past the XML and into the field parsers).
        0..=2 => {
            let mut doc = base;
            for _ in 0..1 + rng.below(3) {
                let spans = value_spans(&doc);
                if spans.is_empty() {
                    break;
                }
                let (s, e) = *rng.pick(&spans);
                let long;
                let value = if rng.below(20) == 0 {
                    long = "9".repeat(10_000);
                    long.as_str()
                } else {
                    rng.pick(NASTY)
                };
                doc.replace_range(s..e, value);
            }
            for key in [
                "<Cdr id=\"",
                "\"uniqueid\":\"",
                "\"uuid\":\"",
                "\"callSid\": \"",
            ] {
                if let Some(at) = doc.find(key).map(|i| i + key.len()) {
                    if let Some(len) = doc[at..].find('"') {
                        doc.replace_range(at..at + len, fresh_id);
                    }
                }
            }
            doc.into_bytes()
        }
        // A byte flipped (also into invalid UTF-8).
        3 => {
            let mut b = base.into_bytes();
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
            b
        }
        // Cut short.
        4 => {
            let mut b = base.into_bytes();
            b.truncate(rng.below(b.len()));
            b
        }
        // A slice deleted or repeated.
        5 => {
            let mut b = base.into_bytes();
            let i = rng.below(b.len());
            let j = (i + rng.below(40)).min(b.len());
            if rng.below(2) == 0 {
                b.drain(i..j);
            } else {
                let piece = b[i..j].to_vec();
                b.splice(i..i, piece);
            }
            b
        }
        // Two documents in one body, the second one damaged.
        6 => {
            let mut b = base.into_bytes();
            let mut other = rng.pick(docs).clone().into_bytes();
            other.truncate(rng.below(other.len()) + 1);
            b.extend(other);
            b
        }
        // Raw garbage bytes spliced in.
        _ => {
            let mut b = base.into_bytes();
            let i = rng.below(b.len());
            let junk: Vec<u8> = (0..1 + rng.below(8))
                .map(|_| *rng.pick(&[0xFF, 0xC3, 0x00, b'<', b'&', b'>', b'"', 0x80]))
                .collect();
            b.splice(i..i, junk);
            b
        }
    }
}

fn manual_examples() -> Vec<String> {
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let read = |dir: &str, ext: &str| -> Vec<String> {
        let mut docs: Vec<String> = std::fs::read_dir(fixtures.join(dir))
            .expect("fixtures")
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == ext))
            .map(|p| std::fs::read_to_string(p).expect("fixture"))
            .collect();
        docs.sort();
        docs
    };
    let mut docs = read("om", "xml");
    assert!(docs.len() >= 60, "the OM manual's examples are missing");
    let json = [read("coocenter", "json"), read("cloud", "json")].concat();
    assert!(json.len() >= 6, "the JSON sources' examples are missing");
    // Weighted so that about a fifth of the cases start from JSON.
    for _ in 0..3 {
        docs.extend(json.iter().cloned());
    }
    docs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutated_manual_examples_are_answered_kept_and_derived() {
    const CASES: usize = 3_000;
    let dir = tempfile::tempdir().unwrap();
    let cfg = Arc::new(test_config(dir.path()));
    let store = Store::open(&cfg.db_path()).unwrap();
    let (ing, _queues) = callvault::server::ingestor(&store, &cfg).unwrap();
    let docs = manual_examples();
    let mut rng = Rng(rand::SeedableRng::seed_from_u64(0x5EED_CA11));
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    for case in 0..CASES {
        let body = mutate(&mut rng, &docs, &format!("{case}20240101000000-0"));
        let mut req = incoming("");
        req.body = body.clone();
        let ing = ing.clone();
        let answer = tokio::spawn(async move { ing.accept(req).await }).await;
        let reply = answer.unwrap_or_else(|e| {
            panic!(
                "case {case} panicked ({e}); body:\n{}",
                String::from_utf8_lossy(&body)
            )
        });
        assert!(
            matches!(reply.status, 200 | 400),
            "case {case}: status {} ({:?}) outside the contract; body:\n{}",
            reply.status,
            reply.reason,
            String::from_utf8_lossy(&body)
        );
        if reply.status != 200 {
            let reason = reply.reason.as_deref().unwrap_or("");
            assert!(
                !reason.is_empty() && !reason.contains('\n'),
                "case {case}: a refusal needs a one-line reason, got {reason:?}"
            );
        }
        *statuses.entry(reply.status).or_default() += 1;
    }
    // Derivation gets through all of it (a panic there would stop the
    // writer's background thread and drain would fail).
    store
        .writer
        .drain()
        .await
        .expect("derivation of the mutated pushes");
    // A good push after all that is still derived into its leg.
    let good = ing
        .accept(incoming(&cdr("424242-0", "7", "18201000000")))
        .await;
    assert_eq!(good.status, 200);
    store
        .writer
        .drain()
        .await
        .expect("derivation of a good push");

    let c = rusqlite::Connection::open(cfg.db_path()).unwrap();
    let q = |sql: &str| -> i64 { c.query_row(sql, [], |r| r.get(0)).expect(sql) };
    let stored = statuses.get(&200).copied().unwrap_or(0) as i64;
    let refused = CASES as i64 - stored;
    println!(
        "{CASES} mutated pushes: {stored} stored, {refused} quarantined; {} legs, {} events, {} not derivable",
        q("SELECT COUNT(*) FROM legs"),
        q("SELECT COUNT(*) FROM events"),
        q("SELECT COUNT(*) FROM pushes WHERE derive_error IS NOT NULL"),
    );
    // The refusals by kind (offsets and values blanked), for whoever reads
    // the test's output.
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    let mut st = c
        .prepare("SELECT reason FROM pushes WHERE outcome = 'quarantined'")
        .unwrap();
    for reason in st.query_map([], |r| r.get::<_, String>(0)).unwrap() {
        let kind: String = reason
            .unwrap()
            .chars()
            .take(60)
            .filter(|ch| !ch.is_ascii_digit())
            .collect();
        *kinds.entry(kind).or_default() += 1;
    }
    let mut kinds: Vec<_> = kinds.into_iter().collect();
    kinds.sort_by_key(|k| std::cmp::Reverse(k.1));
    for (kind, n) in kinds.iter().take(25) {
        println!("  {n:>5} × {kind}");
    }
    // Every push kept: stored or quarantined, none dropped.
    assert_eq!(
        q("SELECT COUNT(*) FROM pushes WHERE outcome = 'stored'"),
        stored + 1
    );
    assert_eq!(
        q("SELECT COUNT(*) FROM pushes WHERE outcome = 'quarantined'"),
        refused
    );
    // Both kinds happen, or the mutations are not reaching the parser.
    assert!(stored > CASES as i64 / 10 && refused > CASES as i64 / 10);
    assert_eq!(q("SELECT COUNT(*) FROM legs WHERE cdr_id = '424242-0'"), 1);
    // What ingest accepted, derivation can read: a stored push that cannot
    // be derived would be one the device was told is archived but that
    // never becomes a leg or event.
    let not_derived = rows_as_text(
        &c,
        "SELECT derive_error || ' :: ' || CAST(body AS TEXT) FROM pushes WHERE derive_error IS NOT NULL LIMIT 5",
    );
    assert!(
        not_derived.is_empty(),
        "accepted pushes that derivation refused:\n{}",
        not_derived.join("\n---\n")
    );

    // What was derived from all that, the consumers read: rebuild gives
    // exactly the live calls, and every named report and the daily report
    // run over the days the legs claim.
    let calls = |c: &rusqlite::Connection| {
        rows_as_text(c, "SELECT * FROM calls ORDER BY id")
            .into_iter()
            .chain(rows_as_text(c, "SELECT * FROM call_legs ORDER BY leg_id"))
            .collect::<Vec<_>>()
    };
    let live = calls(&c);
    assert!(live.len() > 100, "calls were derived: {}", live.len());
    callvault::calls::live::rebuild_store(
        &store,
        callvault::calls::live::REBUILD_BATCH_LEGS,
        &mut |_, _| {},
    )
    .expect("rebuild");
    assert_eq!(calls(&c), live, "rebuild reproduces the live calls");
    let visits =
        |c: &rusqlite::Connection| rows_as_text(c, "SELECT * FROM queue_visits ORDER BY key");
    let live_visits = visits(&c);
    assert!(!live_visits.is_empty(), "queue visits were derived");
    let queues = callvault::queues::live::QueueLive::new(
        cfg.queues.visit_timeout_seconds,
        callvault::server::tz_of(&cfg),
    );
    let now = chrono::Utc::now().timestamp_millis();
    store
        .writer
        .write(move |tx| queues.replay(tx, true, now))
        .await
        .expect("queue rebuild");
    assert_eq!(
        visits(&c),
        live_visits,
        "rebuild reproduces the live queue visits"
    );
    let catalog = Catalog::embedded().expect("catalog");
    let now_ms = chrono::Utc::now().timestamp_millis();
    let mut st = c
        .prepare("SELECT DISTINCT substr(time_start, 1, 10) FROM legs")
        .unwrap();
    let days: Vec<String> = st
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|d| d.unwrap())
        .collect();
    for d in &days {
        let day = chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").expect("leg day");
        let p = Params::new(day, day, now_ms, 0, 20).expect("params");
        for r in catalog.list() {
            let mut out = Vec::new();
            run::write_csv(&c, r, &p, &mut out, true)
                .unwrap_or_else(|e| panic!("report {} for {d}: {e}", r.name));
        }
        let report = daily::build(&c, &catalog, &p, 0, "now".into())
            .unwrap_or_else(|e| panic!("daily report for {d}: {e}"));
        assert!(html::render(&report).contains("</html>"));
    }
}
