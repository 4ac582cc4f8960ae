//! `store::conversations` on both backends, over the report fixture's
//! calls and recordings (`reports::fixture`), which already hold figures
//! for some recordings (recording 1 failed; 2, 3 and 4 of 2024-01-08).

use super::*;
use crate::model::conversation::TalkSide;
use crate::store::call_search::{self, CallFilter, ConversationFilter};
use crate::store::reports::fixture;
use crate::store::testing::each_backend;

fn figures(longest_silence: f64) -> Conversation {
    Conversation {
        agent_talk_seconds: 12.346,
        customer_talk_seconds: 7.0,
        talk_ratio: Some(12.346 / 19.346),
        overtalk_seconds: 1.5,
        longest_silence_seconds: longest_silence,
        silence_seconds: 4.0,
        interruptions: 3,
        agent_first_word_seconds: Some(0.456),
        segments: vec![
            TalkSegment {
                side: TalkSide::Agent,
                start: 0.5,
                end: 3.0,
            },
            TalkSegment {
                side: TalkSide::Customer,
                start: 2.5,
                end: 9.5,
            },
        ],
    }
}

fn day_filter(conversation: ConversationFilter) -> CallFilter {
    CallFilter {
        from: "2024-01-08 00:00:00".into(),
        to: "2024-01-10 00:00:00".into(),
        limit: 100,
        conversation,
        ..CallFilter::default()
    }
}

#[test]
fn figures_are_stored_replaced_and_found_by_call_on_both_backends() {
    each_backend("conversations_stored", |backend, store| {
        store
            .writer
            .write_blocking(fixture::report_rows)
            .expect("fixture");
        // Recording 3 (c02's second leg) gets figures: c02 still shows those of
        // recording 2, its first leg's.
        store
            .writer
            .write_blocking(|tx| put(tx, 3, &Ok(figures(9.0))))
            .expect("put");
        let got = store
            .read_blocking(|c| get(c, 3))
            .expect("get")
            .expect("row");
        let c = got.outcome.expect("ok");
        assert_eq!(c.agent_talk_seconds, 12.35, "{backend:?}: kept rounded");
        assert_eq!(c.talk_ratio, Some(0.64), "{backend:?}");
        assert_eq!(c.agent_first_word_seconds, Some(0.46), "{backend:?}");
        assert_eq!(c.segments, figures(9.0).segments, "{backend:?}");
        let shown = store.read_blocking(|c| of_call(c, "c02")).expect("of_call");
        assert_eq!(shown.map(|s| s.recording_id), Some(2), "{backend:?}");
        // A failure replaces the figures.
        store
            .writer
            .write_blocking(|tx| put(tx, 3, &Err("recv side: too many".into())))
            .expect("put failed");
        let got = store
            .read_blocking(|c| get(c, 3))
            .expect("get")
            .expect("row");
        assert_eq!(
            got.outcome,
            Err("recv side: too many".into()),
            "{backend:?}"
        );
        // A call without figures, and a failed one.
        assert_eq!(
            store.read_blocking(|c| of_call(c, "c06")).expect("c06"),
            None
        );
        let failed = store.read_blocking(|c| of_call(c, "c01")).expect("c01");
        assert_eq!(
            failed.map(|s| s.outcome),
            Some(Err("recv side: no speech list".into())),
            "{backend:?}"
        );
    });
}

#[test]
fn the_search_filters_by_figures_on_both_backends() {
    each_backend("conversations_filters", |backend, store| {
        store
            .writer
            .write_blocking(fixture::report_rows)
            .expect("fixture");
        let count = |f: ConversationFilter| {
            store
                .read_blocking(move |c| call_search::count(c, &day_filter(f), 1000))
                .expect("count")
        };
        let all = count(ConversationFilter::default());
        assert!(all >= 5, "{backend:?}: {all}");
        // c02 (longest 2.25) and c05 (1.05) have figures in range.
        let f = |silence, overtalk, lo, hi| ConversationFilter {
            longest_silence_min: silence,
            overtalk_min: overtalk,
            talk_ratio_min: lo,
            talk_ratio_max: hi,
        };
        assert_eq!(count(f(Some(2.0), None, None, None)), 1, "{backend:?}");
        assert_eq!(count(f(Some(1.0), None, None, None)), 2, "{backend:?}");
        assert_eq!(count(f(None, Some(0.3), None, None)), 2, "{backend:?}");
        assert_eq!(
            count(f(None, None, Some(0.9), None)),
            1,
            "{backend:?}: c02's leg 3"
        );
        assert_eq!(count(f(None, None, None, Some(0.5))), 1, "{backend:?}: c05");
        assert_eq!(count(f(Some(2.0), None, None, Some(0.5))), 0, "{backend:?}");
        // The same condition in the page as in the count.
        let rows = store
            .read_blocking(|c| {
                let cfg = crate::config::Config::default();
                let view = call_search::CallView {
                    cfg: &cfg,
                    now_ms: 0,
                };
                call_search::search_page(c, &day_filter(f(Some(1.0), None, None, None)), &view)
            })
            .expect("page");
        let ids: Vec<_> = rows.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["c02", "c05"], "{backend:?}");
    });
}

#[test]
fn analyze_lists_done_recordings_and_the_purge_drops_figures_on_both_backends() {
    each_backend("conversations_analyze_purge", |backend, store| {
        store
            .writer
            .write_blocking(fixture::report_rows)
            .expect("fixture");
        // Recording 1 is the only `done` one, and it has (failed) figures.
        let (n, todo) = store
            .read_blocking(|c| Ok((count_to_analyze(c, false)?, to_analyze(c, false, 0, 10)?)))
            .expect("todo");
        assert_eq!((n, todo.len()), (0, 0), "{backend:?}");
        let (n, all) = store
            .read_blocking(|c| Ok((count_to_analyze(c, true)?, to_analyze(c, true, 0, 10)?)))
            .expect("all");
        assert_eq!(
            (n, all.iter().map(|r| r.id).collect::<Vec<_>>()),
            (1, vec![1])
        );
        assert!(store
            .read_blocking(|c| to_analyze(c, true, 1, 10))
            .expect("after")
            .is_empty());
        // Purging c02 (seq 2) drops its recordings' figures, not c01's.
        store
            .writer
            .write_blocking(|tx| crate::store::retention::mark_recordings_purged(tx, &[2]))
            .expect("purge");
        let left = |id| {
            store
                .read_blocking(move |c| get(c, id))
                .expect("get")
                .is_some()
        };
        assert_eq!(
            (left(1), left(2), left(3), left(4)),
            (true, false, false, true),
            "{backend:?}"
        );
        // Deleting c01 with its rows drops its figures too (its file is gone).
        store
            .writer
            .write_blocking(|tx| {
                crate::store::reports::fixture::exec(
                    tx,
                    "UPDATE recordings SET file = NULL, originals = NULL WHERE id = 1",
                )?;
                crate::store::retention::delete_calls(tx, &[1])
            })
            .expect("delete");
        assert!(!left(1), "{backend:?}");
    });
}
