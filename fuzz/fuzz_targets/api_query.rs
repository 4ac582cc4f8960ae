//! The API's query strings, extracted as axum does (`Query::try_from_uri`)
//! into each query struct of `src/http` and `src/query.rs`: the call search (`Search`, then
//! `filter_from` and the search itself on an empty archive), the day range
//! of legs and queues (`Range`, `date_range`, and their queries on the same
//! empty archive), the daily report
//! (`DailyQuery`: day, format, parameters) and the billing export
//! (`BillingQuery`). Also the `Range` header of recording downloads.
//!
//! Invariants: no panic; a call filter's bounds are ordered and its limit
//! within 1..=1000; a range's end is not before its start; a part of a
//! file lies inside it.
#![no_main]

use std::sync::OnceLock;

use axum::extract::Query;
use axum::http::Uri;
use callvault::config::Config;
use callvault::http::legs::Range;
use callvault::http::recordings::{parse_range, RangeReq};
use callvault::http::reports::{BillingQuery, DailyQuery};
use callvault::query::{date_range, filter_from, Search};
use callvault::reports::daily::DailyFormat;
use callvault::reports::run::{resolve_day, Params};
use callvault::store::call_search::{self, CallView};
use callvault::store::{legs, queues, Store};
use libfuzzer_sys::fuzz_target;

fn store() -> &'static Store {
    static STORE: OnceLock<(Store, tempfile::TempDir)> = OnceLock::new();
    &STORE
        .get_or_init(|| {
            let dir = tempfile::tempdir().expect("temporary directory");
            let store = Store::open(&dir.path().join("callvault.sqlite")).expect("archive");
            (store, dir)
        })
        .0
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let tz = Config::default().default_tz();

    if let Ok(uri) = format!("http://x/api/calls?{text}").parse::<Uri>() {
        if let Ok(Query(q)) = Query::<Search>::try_from_uri(&uri) {
            if let Ok(f) = filter_from(&q, tz) {
                assert!(f.from < f.to, "{} .. {}", f.from, f.to);
                assert!((1..=1000).contains(&f.limit));
                let view = CallView {
                    tz_of: &|_| tz,
                    now_ms: 0,
                    settle_ms: 0,
                };
                store()
                    .read_blocking(|c| call_search::search_page(c, &f, &view))
                    .expect("search an empty archive");
            }
        }
        if let Ok(Query(q)) = Query::<Range>::try_from_uri(&uri) {
            if let Ok((from, to)) = date_range(q.from.as_deref(), q.to.as_deref(), tz) {
                assert!(from <= to);
                let limit = q.limit.unwrap_or(10_000).clamp(1, 100_000);
                store()
                    .read_blocking(|c| {
                        legs::between(c, from, to, limit, &|_| tz)?;
                        queues::between(c, from, to)
                    })
                    .expect("legs and queue visits of an empty archive");
            }
        }
        if let Ok(Query(q)) = Query::<DailyQuery>::try_from_uri(&uri) {
            if let Ok(day) = resolve_day(q.date.as_deref().unwrap_or("yesterday"), tz) {
                let _ = Params::new(day, day, i64::MAX, i64::MAX, i64::MIN).expect("one day");
            }
            let _ = q.format.as_deref().unwrap_or("html").parse::<DailyFormat>();
        }
        if let Ok(Query(q)) = Query::<BillingQuery>::try_from_uri(&uri) {
            if let Ok((from, to)) = date_range(q.from.as_deref(), q.to.as_deref(), tz) {
                let _ = Params::new(from, to, i64::MIN, i64::MAX, 0).expect("ordered range");
            }
        }
    }

    let len = data.len() as u64 * 1_000_003 % 100_000;
    match parse_range(Some(&text), len) {
        RangeReq::Part { start, end } => assert!(start <= end && end < len, "{start}-{end}/{len}"),
        RangeReq::Full | RangeReq::Unsatisfiable => {}
    }
});
