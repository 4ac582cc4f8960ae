//! Conversation figures through the API on both backends, over real
//! sockets (docs/recordings.md "Conversation figures"): `GET
//! /api/calls/{id}`'s `conversation` (figures of a real G.729 merge),
//! `conversation_error` when they failed, `null` without; the search's
//! four filters and their 400s; and `callvault recordings analyze`.
#![cfg(feature = "g729")]

use callvault::store::conversations;
use serde_json::Value;

use crate::conversation_figures::{dialogue, merged, truth};
use crate::devices_figures::call_cdr;
use crate::util::*;

fn near(what: &str, got: &Value, want: f64) {
    let g = got.as_f64().unwrap_or_else(|| panic!("{what}: {got}"));
    assert!((g - want).abs() <= 0.3, "{what}: {g}, truth {want}");
    assert!(
        ((g * 100.0).round() - g * 100.0).abs() < 1e-6,
        "{what}: {g} is rounded to 2 decimals"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_detail_and_search_show_conversation_figures_on_both_backends() {
    let ((a_pcm, a_truth), (c_pcm, c_truth)) = dialogue();
    let t = truth(&a_truth, &c_truth);
    let (_, figures) = merged(&a_pcm, &c_pcm);
    for backend in backends("conversation_api") {
        let name = format!("{:?}", backend.backend());
        let ts = start_on(backend, |c| c.recordings.fetch_delay_seconds = 3600).await;
        for n in 0..3 {
            let resp = raw_exchange(
                ts.ingest(),
                &om_request("POST", "/omapi", &call_cdr(n, true, "20170309162713")),
            );
            assert_eq!(status_of(&resp), 200, "{name}: {resp}");
        }
        let recs: Vec<(i64, String)> = ts
            .rows(
                "SELECT r.id, c.id FROM recordings r JOIN call_legs cl ON cl.leg_id = r.leg_id
                 JOIN calls c ON c.seq = cl.call_seq ORDER BY r.id",
            )
            .iter()
            .map(|r| (r[0].int(), r[1].text().to_string()))
            .collect();
        assert_eq!(recs.len(), 3, "{name}");
        let (ok_id, failed_id) = (recs[0].0, recs[1].0);
        let fig = figures.clone();
        ts.running
            .store
            .writer
            .write(move |tx| {
                conversations::put(tx, ok_id, &Ok(fig))?;
                conversations::put(tx, failed_id, &Err("send side: more than 100000".into()))
            })
            .await
            .expect("figures stored");

        let tok = token(&ts, "qa").await;
        let api = ts.api();
        let detail = |id: String| {
            let tok = tok.clone();
            async move { get_json(api, &format!("/api/calls/{id}"), &tok).await }
        };
        let ok = detail(recs[0].1.clone()).await;
        let v = &ok["conversation"];
        near("agent talk", &v["agent_talk_seconds"], t.agent);
        near("customer talk", &v["customer_talk_seconds"], t.customer);
        near("overtalk", &v["overtalk_seconds"], t.overtalk);
        near(
            "longest silence",
            &v["longest_silence_seconds"],
            t.longest_silence,
        );
        near("silence", &v["silence_seconds"], t.silence);
        near("first word", &v["agent_first_word_seconds"], 1.0);
        near(
            "talk ratio",
            &v["talk_ratio"],
            t.agent / (t.agent + t.customer),
        );
        assert_eq!(v["interruptions"], 2, "{name}");
        let segs = v["segments"].as_array().expect("segments");
        assert_eq!(segs.len(), 6, "{name}: {segs:?}");
        assert_eq!(segs[0]["side"], "agent", "{name}");
        assert!(segs
            .windows(2)
            .all(|w| w[0]["start"].as_f64() <= w[1]["start"].as_f64()));
        assert!(ok.get("conversation_error").is_none(), "{name}");

        let failed = detail(recs[1].1.clone()).await;
        assert_eq!(failed["conversation"], Value::Null, "{name}");
        assert_eq!(
            failed["conversation_error"], "send side: more than 100000",
            "{name}"
        );
        let none = detail(recs[2].1.clone()).await;
        assert_eq!(none["conversation"], Value::Null, "{name}");
        assert!(none.get("conversation_error").is_none(), "{name}");

        // The search's filters.
        let ids = |q: &'static str| {
            let tok = tok.clone();
            async move {
                let v = get_json(api, &format!("/api/calls?from=2017-03-09{q}"), &tok).await;
                v["calls"]
                    .as_array()
                    .expect("calls")
                    .iter()
                    .map(|c| c["id"].as_str().unwrap_or_default().to_string())
                    .collect::<Vec<_>>()
            }
        };
        let only_ok = vec![recs[0].1.clone()];
        assert_eq!(ids("&longest_silence_min=2.5").await, only_ok, "{name}");
        assert_eq!(ids("&overtalk_min=1").await, only_ok, "{name}");
        assert_eq!(
            ids("&talk_ratio_min=0.2&talk_ratio_max=0.6").await,
            only_ok,
            "{name}"
        );
        assert!(ids("&longest_silence_min=10").await.is_empty(), "{name}");
        assert!(ids("&talk_ratio_max=0.1").await.is_empty(), "{name}");
        assert_eq!(ids("").await.len(), 3, "{name}: no filter, every call");
        for (q, param) in [
            ("&talk_ratio_min=1.5", "talk_ratio_min"),
            ("&talk_ratio_max=-0.1", "talk_ratio_max"),
            ("&overtalk_min=lots", "overtalk_min"),
            ("&longest_silence_min=NaN", "longest_silence_min"),
        ] {
            let (code, body) =
                get(api, &format!("/api/calls?from=2017-03-09{q}"), Some(&tok)).await;
            assert_eq!(code, 400, "{name}: {q}");
            assert!(
                String::from_utf8_lossy(&body).contains(param),
                "{name}: {q}: {}",
                String::from_utf8_lossy(&body)
            );
        }
    }
}
