//! Recordings in S3-compatible object storage (docs/recordings.md "Object
//! storage"), against a real S3-protocol server: s3s-fs, started in-process
//! on a free port over a temp directory. A G.729 call from the simulated
//! recorder is merged locally, uploaded, and served back from the object
//! store (whole and by Range); a large file goes up as a multipart upload.

use std::net::SocketAddr;
use std::path::Path;

use callvault::config::{Config, S3Config};
use callvault::recordings::RecordingStore;
use futures_util::StreamExt;

use crate::recordings_fetch::all_files;

pub const BUCKET: &str = "callvault";
pub const AK: &str = "test-access-key";
pub const SK: &str = "test-secret-key-0123456789";

/// An s3s-fs server serving `dir` (bucket [`BUCKET`] made) until dropped.
pub struct S3Server {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl S3Server {
    pub async fn start() -> S3Server {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join(BUCKET)).expect("bucket dir");
        let fs = s3s_fs::FileSystem::new(dir.path()).expect("s3s-fs");
        let mut b = s3s::service::S3ServiceBuilder::new(fs);
        b.set_auth(s3s::auth::SimpleAuth::from_single(AK, SK));
        let service = b.build();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let svc = service.clone();
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(sock), svc)
                        .await;
                });
            }
        });
        S3Server { addr, dir, task }
    }

    /// `[recordings]` pointing at this server under `prefix`.
    pub fn configure(&self, c: &mut Config, prefix: &str) {
        c.recordings.store = format!("s3://{BUCKET}/{prefix}");
        c.recordings.s3 = S3Config {
            endpoint: Some(format!("http://{}", self.addr)),
            access_key_id: Some(AK.into()),
            secret_access_key: Some(SK.into()),
            allow_http: true,
            ..Default::default()
        };
    }

    /// The bytes s3s-fs holds for `key` in the bucket.
    pub fn object(&self, key: &str) -> Option<Vec<u8>> {
        std::fs::read(self.dir.path().join(BUCKET).join(key)).ok()
    }
}

async fn collect(mut s: callvault::recordings::storage::ByteStream) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(b) = s.next().await {
        out.extend_from_slice(&b.expect("chunk"));
    }
    out
}

fn files_in(dir: &Path) -> Vec<std::path::PathBuf> {
    all_files(dir)
}

#[cfg(feature = "g729")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g729_recording_is_archived_in_s3_and_served_by_range() {
    use crate::recordings_fetch::{cdr_with, merged, served, sha256_hex, spec, Rig};
    use crate::recordings_http::get_with;
    use callvault::sim::recorder::{self, Faults};

    let s3 = S3Server::start().await;
    let s = spec("3001", "G729", 2);
    let rec = recorder::start(vec![s.clone()], Faults::default())
        .await
        .unwrap();
    let rig = Rig::start(&rec, |c| s3.configure(c, "pbx/hq")).await;
    rig.push(&cdr_with("3-0", "3001", "G729"));
    rig.wait_status("3-0", "done").await;
    let (_, _, _, file, sha) = rig.row("3-0").unwrap();
    let (file, sha) = (file.unwrap(), sha.unwrap());
    assert!(file.starts_with("2017/03/09/"), "{file}");

    let halves = served(&s, &Faults::default());
    let wav = merged(&halves);
    assert_eq!(sha, sha256_hex(&wav));
    assert_eq!(
        s3.object(&format!("pbx/hq/{file}")).as_deref(),
        Some(&wav[..]),
        "the merged WAV is an object under the prefix"
    );
    let originals: String = rig
        .db()
        .query_row("SELECT originals FROM recordings", [], |r| r.get(0))
        .unwrap();
    let originals: Vec<String> = serde_json::from_str(&originals).unwrap();
    for (rel, want) in originals.iter().zip(&halves) {
        assert_eq!(
            s3.object(&format!("pbx/hq/{rel}")).as_ref(),
            Some(want),
            "{rel}"
        );
    }
    assert!(
        files_in(&rig.dir.path().join("recordings")).is_empty(),
        "no local copies left: {:?}",
        files_in(&rig.dir.path().join("recordings"))
    );

    let tok = crate::util::token_on(&rig.running, "qa").await;
    let api = rig.running.api_addr;
    let id: i64 = rig
        .db()
        .query_row("SELECT id FROM recordings", [], |r| r.get(0))
        .unwrap();
    let url = format!("/api/recordings/{id}");

    let r = get_with(api, &url, &tok, None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["etag"], format!("\"{sha}\"").as_str());
    let body = r.bytes().await.unwrap().to_vec();
    assert_eq!(sha256_hex(&body), sha);

    let r = get_with(api, &url, &tok, Some("bytes=100-1123")).await;
    assert_eq!(r.status(), 206);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes 100-1123/{}", wav.len()).as_str()
    );
    assert_eq!(r.bytes().await.unwrap().to_vec(), wav[100..1124].to_vec());

    let r = get_with(api, &url, &tok, Some("bytes=-7")).await;
    assert_eq!(r.status(), 206);
    assert_eq!(
        r.bytes().await.unwrap().to_vec(),
        wav[wav.len() - 7..].to_vec()
    );

    // Cut the object short behind the server's back (s3s-fs keeps its ETag,
    // the size tells): checked again, refused, not served.
    let obj = s3.dir.path().join(BUCKET).join(format!("pbx/hq/{file}"));
    std::fs::write(&obj, &wav[..wav.len() - 1]).unwrap();
    let r = get_with(api, &url, &tok, None).await;
    assert_eq!(r.status(), 500);

    rig.running.stop().await;
    rec.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_file_goes_up_as_multipart_and_reads_back_by_range() {
    let s3 = S3Server::start().await;
    let data_dir = tempfile::tempdir().unwrap();
    let mut cfg = Config {
        data_dir: data_dir.path().to_path_buf(),
        ..Default::default()
    };
    s3.configure(&mut cfg, "big");
    let store = RecordingStore::from_config(&cfg).unwrap();
    let key = "2024/01/08/9-long.wav".to_string();
    let local = store.local().resolve(&key).unwrap();
    std::fs::create_dir_all(local.parent().unwrap()).unwrap();
    let len = (8 << 20) * 2 + 12_345;
    let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&local, &data).unwrap();
    let sha = crate::recordings_fetch::sha256_hex(&data);

    store.publish(std::slice::from_ref(&key)).await.unwrap();
    assert!(!local.exists(), "the staged file is removed once uploaded");
    assert_eq!(s3.object(&format!("big/{key}")).as_ref(), Some(&data));
    assert_eq!(store.size(&key).await.unwrap(), len as u64);
    assert_eq!(store.verified_len(&key, &sha).await.unwrap(), len as u64);

    let edge = (8 << 20) - 10;
    let got = collect(store.open_range(&key, edge as u64, 20).await.unwrap()).await;
    assert_eq!(
        got,
        data[edge..edge + 20].to_vec(),
        "across a part boundary"
    );
    let got = collect(store.open_range(&key, 0, 5).await.unwrap()).await;
    assert_eq!(got, data[..5].to_vec());

    store.delete(&key).await.unwrap();
    assert!(s3.object(&format!("big/{key}")).is_none());
    assert!(store.size(&key).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_fail_the_upload_and_leave_no_local_file() {
    let s3 = S3Server::start().await;
    let data_dir = tempfile::tempdir().unwrap();
    let mut cfg = Config {
        data_dir: data_dir.path().to_path_buf(),
        ..Default::default()
    };
    s3.configure(&mut cfg, "x");
    cfg.recordings.s3.secret_access_key = Some("wrong".into());
    let store = RecordingStore::from_config(&cfg).unwrap();
    let key = "2024/01/08/1-a.wav".to_string();
    let local = store.local().resolve(&key).unwrap();
    std::fs::create_dir_all(local.parent().unwrap()).unwrap();
    std::fs::write(&local, b"RIFF").unwrap();
    assert!(store.publish(std::slice::from_ref(&key)).await.is_err());
    assert!(!local.exists());
    assert!(s3.object(&format!("x/{key}")).is_none());
}
