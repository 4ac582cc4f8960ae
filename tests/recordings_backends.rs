//! A G.729 call's recording through every pairing of archive and recording
//! store: SQLite or PostgreSQL (`util::backends`), files under the data
//! directory or an S3-compatible bucket (s3s-fs, `recordings_s3`). The
//! simulated recorder serves the call's send and recv halves; `serve`
//! fetches and merges them (docs/recordings.md), and the call's recording
//! is served back whole and by `Range` from wherever it was archived, its
//! sha256 the one the archive keeps.

#![cfg(feature = "g729")]

use callvault::sim::recorder::{self, Faults};

use crate::recordings_fetch::{cdr_with, merged, served, sha256_hex, spec, Rig};
use crate::recordings_http::get_with;
use crate::recordings_s3::S3Server;
use crate::util::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g729_call_recording_is_served_whole_and_by_range_on_each_backend_and_store() {
    let s = spec("4001", "G729", 2);
    let rec = recorder::start(vec![s.clone()], Faults::default())
        .await
        .unwrap();
    let halves = served(&s, &Faults::default());
    let wav = merged(&halves);
    let s3 = S3Server::start().await;
    for in_s3 in [false, true] {
        let store = if in_s3 { "S3" } else { "files" };
        for b in backends(&format!(
            "g729_call_recording_is_served_whole_and_by_range… (recordings in {store})"
        )) {
            let run = format!("{:?} with recordings in {store}", b.backend());
            // One prefix per run: the bucket is shared.
            let prefix = format!("{:?}", b.backend()).to_lowercase();
            let rig = Rig::start_on(b, &rec.base_url(), |c| {
                if in_s3 {
                    s3.configure(c, &prefix);
                }
            })
            .await;
            rig.push(&cdr_with("1-0", "4001", "G729"));
            rig.wait_status("1-0", "done").await;
            let (_, _, _, file, sha) = rig.row("1-0").unwrap();
            let (file, sha) = (file.unwrap(), sha.unwrap());
            assert_eq!(sha, sha256_hex(&wav), "{run}: the archive's sha256");

            // Archived once, with the halves as served, where the store says.
            let originals = rig.reader().rows("SELECT originals FROM recordings");
            let originals: Vec<String> =
                serde_json::from_str(originals[0][0].text()).expect("originals");
            assert_eq!(originals.len(), 2, "{run}");
            let stored = |rel: &str| {
                if in_s3 {
                    s3.object(&format!("{prefix}/{rel}"))
                } else {
                    std::fs::read(rig.archive_file(rel)).ok()
                }
            };
            assert_eq!(stored(&file).as_deref(), Some(&wav[..]), "{run}: {file}");
            for (rel, want) in originals.iter().zip(&halves) {
                assert_eq!(stored(rel).as_ref(), Some(want), "{run}: {rel}");
            }

            // The call's recording, whole and by range.
            let call = rig.reader().rows(
                "SELECT c.id FROM calls c JOIN call_legs cl ON cl.call_seq = c.seq
                 JOIN legs l ON l.id = cl.leg_id WHERE l.cdr_id = '1-0'",
            );
            let call = call[0][0].text().to_string();
            let tok = token_on(&rig.running, "qa").await;
            let api = rig.running.api_addr;
            let url = format!("/api/calls/{call}/recording");
            let r = get_with(api, &url, &tok, None).await;
            assert_eq!(r.status(), 200, "{run}");
            assert_eq!(r.headers()["content-type"], "audio/wav", "{run}");
            assert_eq!(r.headers()["etag"], format!("\"{sha}\"").as_str(), "{run}");
            let body = r.bytes().await.unwrap().to_vec();
            assert_eq!(sha256_hex(&body), sha, "{run}: whole");

            let r = get_with(api, &url, &tok, Some("bytes=100-1123")).await;
            assert_eq!(r.status(), 206, "{run}");
            assert_eq!(
                r.headers()["content-range"],
                format!("bytes 100-1123/{}", wav.len()).as_str(),
                "{run}"
            );
            assert_eq!(r.bytes().await.unwrap().to_vec(), wav[100..1124].to_vec());
            let r = get_with(api, &url, &tok, Some("bytes=-7")).await;
            assert_eq!(r.status(), 206, "{run}");
            assert_eq!(r.bytes().await.unwrap().to_vec(), wav[wav.len() - 7..]);
            let r = get_with(api, &url, &tok, Some(&format!("bytes={}-", wav.len()))).await;
            assert_eq!(r.status(), 416, "{run}");
            rig.running.stop().await;
        }
    }
    rec.stop().await;
}
