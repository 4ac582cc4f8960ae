//! API tokens and web sessions (README "API tokens and sessions"), on a
//! real server over real sockets, on SQLite and (with `CALLVAULT_TEST_PG`)
//! on PostgreSQL: `token create|list|revoke` as the command runs them,
//! expiry, revocation ending requests, sessions and downloads under way,
//! the session cookie's flags, sign-out, no `?token=`, the migration that
//! makes names unique, the demo's one token, and migrate-store's copy.

use std::future::Future;
use std::ops::{AsyncFnMut, AsyncFnOnce};
use std::time::{Duration, Instant};

use callvault::cli::token as cli;
use callvault::store::testing::TestDb;
use callvault::store::{sessions, tokens, Store};
use chrono::Utc;
use futures_util::StreamExt;
use reqwest::header::{COOKIE, SET_COOKIE};

use crate::util::{self, TestServer};

/// Which archive a test server runs on: SQLite, or the PostgreSQL
/// database at this URL.
#[derive(Clone)]
enum On {
    Sqlite,
    Postgres(String),
}

/// Runs `f` against a fresh server on SQLite, then on PostgreSQL when
/// `CALLVAULT_TEST_PG` is set (the server's archive is that database).
async fn each_server<F, Fut>(test: &str, tweak: fn(&mut callvault::config::Config), f: F)
where
    F: Fn(TestServer, On) -> Fut,
    Fut: Future<Output = ()>,
{
    f(util::start_with(tweak).await, On::Sqlite).await;
    if let Some(db) = TestDb::fresh(test) {
        let url = db.url().to_string();
        let u = url.clone();
        let ts = util::start_with(move |c| {
            tweak(c);
            c.store.url = u;
        })
        .await;
        f(ts, On::Postgres(url)).await;
        drop(db);
    }
}

fn no_tweak(_: &mut callvault::config::Config) {}

/// A CLI function (blocking store calls) from an async test.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

fn url(ts: &TestServer, path: &str) -> String {
    format!("http://{}{path}", ts.api())
}

const CALLS: &str = "/api/calls?from=2024-01-08";

async fn status(rb: reqwest::RequestBuilder) -> u16 {
    rb.send().await.expect("request").status().as_u16()
}

/// Sends `rb`, which must be answered 200; the response, its body unread.
async fn ok(rb: reqwest::RequestBuilder) -> reqwest::Response {
    let resp = rb.send().await.expect("request");
    assert_eq!(resp.status(), 200, "{}", resp.url());
    resp
}

/// Signs in with `token` (bearer); returns the cookie pair and the whole
/// Set-Cookie header.
async fn sign_in(ts: &TestServer, token: &str, https: bool) -> (String, String) {
    let mut rb = reqwest::Client::new()
        .post(url(ts, "/api/session"))
        .bearer_auth(token);
    if https {
        rb = rb.header("x-forwarded-proto", "https");
    }
    let resp = rb.send().await.expect("post");
    assert_eq!(resp.status(), 200, "sign-in");
    let set = resp.headers()[SET_COOKIE]
        .to_str()
        .expect("ascii")
        .to_string();
    let pair = set.split(';').next().expect("pair").to_string();
    (pair, set)
}

/// Waits (up to `secs`) for `cond` to hold, polling every 50 ms.
async fn within(secs: u64, mut cond: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if cond().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[test]
fn token_create_list_revoke_as_the_command_runs_them() {
    callvault::store::testing::each_backend("token_create_list_revoke", |_, store| {
        let soon = Utc::now() + chrono::Duration::days(90);
        let t = cli::create(store, "qa-desk", "qa", Some(soon), &[]).expect("create");
        assert!(t.starts_with("cv_"));
        let e = cli::create(store, "qa-desk", "admin", None, &[]).expect_err("taken");
        assert!(
            e.to_string().contains("a token named qa-desk exists"),
            "{e}"
        );
        let e = cli::create(store, "two words", "qa", None, &[]).expect_err("bad name");
        assert!(e.to_string().contains("not a token name"), "{e}");
        let e = cli::create(store, "x", "boss", None, &[]).expect_err("bad role");
        assert!(e.to_string().contains("unknown role"), "{e}");
        cli::create(store, "billing-cron", "finance", None, &[]).expect("create");

        let rows = cli::list(store).expect("list");
        let names: Vec<_> = rows
            .iter()
            .map(|r| (r.name.as_str(), r.role.as_str()))
            .collect();
        assert_eq!(names, [("billing-cron", "finance"), ("qa-desk", "qa")]);
        assert_eq!(rows[1].expires_at, Some(tokens::stamp(soon)));
        let json = serde_json::to_string(&rows).expect("json");
        let table = cli::table(&rows, Utc::now());
        for shown in [&json, &table] {
            assert!(
                !shown.contains(&t) && !shown.contains(&tokens::hash(&t)),
                "{shown}"
            );
        }
        assert!(
            table.contains("qa-desk") && table.contains("LAST USED"),
            "{table}"
        );

        assert_eq!(cli::revoke(store, "qa-desk").expect("revoke"), 0);
        let e = cli::revoke(store, "qa-desk").expect_err("gone");
        assert!(e.to_string().contains("no token is named qa-desk"), "{e}");
        assert!(store
            .read_blocking(move |tx| tokens::lookup(tx, &t, Utc::now()))
            .expect("lookup")
            .is_none());
        // The name is free again.
        cli::create(store, "qa-desk", "qa", None, &[]).expect("create again");
    });
}

/// The real binary: the last line is the token, a taken name is refused,
/// `list --format json` parses, `revoke` ends it.
#[test]
fn token_commands_of_the_binary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_callvault"))
            .arg("--data")
            .arg(dir.path())
            .arg("token")
            .args(args)
            .env("RUST_LOG", "warn")
            .output()
            .expect("run callvault")
    };
    let out = run(&[
        "create",
        "--role",
        "qa",
        "--name",
        "desk",
        "--expires",
        "90d",
    ]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    let token = stdout.lines().last().expect("a line");
    assert!(token.starts_with("cv_") && token.len() == 67, "{stdout}");
    let again = run(&["create", "--role", "qa", "--name", "desk"]);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("exists"),
        "{again:?}"
    );
    let missing = run(&["create", "--role", "qa"]);
    assert!(!missing.status.success(), "--name is required");
    let bad = run(&["create", "--role", "qa", "--name", "x", "--expires", "soon"]);
    assert!(!bad.status.success());

    let list = run(&["list", "--format", "json"]);
    assert!(list.status.success(), "{list:?}");
    let v: serde_json::Value = serde_json::from_slice(&list.stdout).expect("json");
    assert_eq!(v[0]["name"], "desk");
    assert_eq!(v[0]["role"], "qa");
    assert!(
        v[0]["expires_at"].is_string() && v[0]["last_used_at"].is_null(),
        "{v}"
    );
    assert!(!String::from_utf8_lossy(&list.stdout).contains(token));
    let table = run(&["list"]);
    assert!(String::from_utf8_lossy(&table.stdout).starts_with("NAME"));

    assert!(run(&["revoke", "desk"]).status.success());
    let gone = run(&["revoke", "desk"]);
    assert!(!gone.status.success(), "revoking an unknown name fails");
    let list = run(&["list", "--format", "json"]);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&list.stdout).expect("json"),
        serde_json::json!([])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_revoked_expired_or_in_the_url_get_401() {
    each_server("bearer_tokens_401", no_tweak, |ts, _| async move {
        let store = ts.running.store.clone();
        let http = reqwest::Client::new();
        let tok = blocking(|| cli::create(&store, "ops", "admin", None, &[])).expect("create");
        assert_eq!(
            status(http.get(url(&ts, CALLS)).bearer_auth(&tok)).await,
            200
        );
        // Never from the URL, on any route.
        for path in [
            format!("{CALLS}&token={tok}"),
            format!("/export/billing.csv?from=2024-01-08&to=2024-01-08&token={tok}"),
            format!("/reports/daily?date=2024-01-08&token={tok}"),
            format!("/api/session?token={tok}"),
        ] {
            assert_eq!(status(http.get(url(&ts, &path))).await, 401, "{path}");
        }
        assert_eq!(
            status(http.post(url(&ts, &format!("/api/session?token={tok}")))).await,
            400
        );

        // last_used_at is recorded (through the writer, not per request).
        assert!(
            within(10, async || blocking(|| cli::list(&store)).expect("list")
                [0]
            .last_used_at
            .is_some())
            .await,
            "last use recorded"
        );

        // Revoked: refused at once.
        blocking(|| cli::revoke(&store, "ops")).expect("revoke");
        assert_eq!(
            status(http.get(url(&ts, CALLS)).bearer_auth(&tok)).await,
            401
        );

        // Expired: refused, and no session can be made with it.
        let past = Utc::now() - chrono::Duration::seconds(1);
        let old =
            blocking(|| cli::create(&store, "old", "admin", Some(past), &[])).expect("create");
        assert_eq!(
            status(http.get(url(&ts, CALLS)).bearer_auth(&old)).await,
            401
        );
        assert_eq!(
            status(http.post(url(&ts, "/api/session")).bearer_auth(&old)).await,
            401
        );
        // One that expires in a moment works until then.
        let soon = Utc::now() + chrono::Duration::seconds(2);
        let brief =
            blocking(|| cli::create(&store, "brief", "qa", Some(soon), &[])).expect("create");
        assert_eq!(
            status(http.get(url(&ts, CALLS)).bearer_auth(&brief)).await,
            200
        );
        tokio::time::sleep(Duration::from_millis(2100)).await;
        assert_eq!(
            status(http.get(url(&ts, CALLS)).bearer_auth(&brief)).await,
            401
        );
        ts.running.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_sessions_are_server_side_and_end_with_sign_out_revocation_or_idleness() {
    each_server("web_sessions", no_tweak, |ts, _| async move {
        let store = ts.running.store.clone();
        let http = reqwest::Client::new();
        let tok = blocking(|| cli::create(&store, "ann", "qa", None, &[])).expect("create");

        // The cookie: an opaque id, never the token; HttpOnly, SameSite=Strict.
        let (cookie, set) = sign_in(&ts, &tok, false).await;
        assert!(cookie.starts_with("callvault_session=cvs_"), "{set}");
        assert!(!set.contains(&tok), "{set}");
        for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(set.contains(attr), "{attr} in {set}");
        }
        assert!(!set.contains("Secure"), "plain HTTP: {set}");
        let (_, behind_tls) = sign_in(&ts, &tok, true).await;
        assert!(
            behind_tls.contains("; Secure"),
            "behind an HTTPS proxy: {behind_tls}"
        );
        // Only the id's hash is stored.
        let id = cookie.split_once('=').expect("pair").1.to_string();
        assert_eq!(
            blocking(|| store.read_blocking(sessions::count)).expect("count"),
            2
        );

        let with = |c: String| http.get(url(&ts, CALLS)).header(COOKIE, c);
        assert_eq!(status(with(format!("other=1; {cookie}"))).await, 200);
        let who: serde_json::Value = http
            .get(url(&ts, "/api/session"))
            .header(COOKIE, &cookie)
            .send()
            .await
            .expect("get")
            .bytes()
            .await
            .map(|b| serde_json::from_slice(&b).expect("json"))
            .expect("body");
        assert_eq!(
            (
                who["name"].as_str(),
                who["role"].as_str(),
                who["via"].as_str()
            ),
            (Some("ann"), Some("qa"), Some("session"))
        );
        // The token itself is no cookie; nor is a made-up id.
        assert_eq!(status(with(format!("callvault_session={tok}"))).await, 401);
        assert_eq!(status(with("callvault_session=cvs_00".into())).await, 401);

        // A JSON body signs in too (the page's way); a wrong token does not.
        let resp = http
            .post(url(&ts, "/api/session"))
            .header("content-type", "application/json")
            .body(serde_json::json!({"token": tok}).to_string())
            .send()
            .await
            .expect("post");
        assert_eq!(resp.status(), 200);
        for rb in [
            http.post(url(&ts, "/api/session"))
                .header("content-type", "application/json")
                .body(r#"{"token": "cv_wrong"}"#),
            http.post(url(&ts, "/api/session")).bearer_auth("wrong"),
            http.post(url(&ts, "/api/session")).header(COOKIE, &cookie),
        ] {
            let resp = rb.send().await.expect("post");
            assert!(resp.status().is_client_error(), "{}", resp.status());
            assert!(resp.headers().get(SET_COOKIE).is_none());
        }

        // Sign-out deletes it server-side: the old value is refused.
        let resp = http
            .delete(url(&ts, "/api/session"))
            .header(COOKIE, &cookie)
            .send()
            .await
            .expect("delete");
        assert_eq!(resp.status(), 204);
        let gone = resp.headers()[SET_COOKIE].to_str().expect("ascii");
        assert!(
            gone.starts_with("callvault_session=;") && gone.contains("Max-Age=0"),
            "{gone}"
        );
        assert_eq!(status(with(cookie.clone())).await, 401, "signed out");
        assert!(blocking(|| store.read_blocking(move |tx| sessions::lookup(
            tx,
            &id,
            Utc::now(),
            0
        )))
        .expect("lookup")
        .is_none());

        // Idle too long (its last use set back two hours): refused.
        let (idle, _) = sign_in(&ts, &tok, false).await;
        let idle_hash = tokens::hash(idle.split_once('=').expect("pair").1);
        let back = Utc::now().timestamp_millis() - 2 * 3600 * 1000;
        blocking(|| {
            store
                .writer
                .write_blocking(move |tx| sessions::touch(tx, &idle_hash, back))
        })
        .expect("set back");
        assert_eq!(status(with(idle)).await, 401, "idle session");

        // Revoking the token ends its open sessions at once.
        let (open, _) = sign_in(&ts, &tok, false).await;
        assert_eq!(status(with(open.clone())).await, 200);
        blocking(|| cli::revoke(&store, "ann")).expect("revoke");
        assert_eq!(status(with(open)).await, 401, "revoked token's session");
        assert_eq!(
            status(http.get(url(&ts, CALLS)).bearer_auth(&tok)).await,
            401
        );

        // An expiring token's session ends with it.
        let soon = Utc::now() + chrono::Duration::seconds(2);
        let brief =
            blocking(|| cli::create(&store, "brief", "qa", Some(soon), &[])).expect("create");
        let (s, _) = sign_in(&ts, &brief, false).await;
        assert_eq!(status(with(s.clone())).await, 200);
        tokio::time::sleep(Duration::from_millis(2100)).await;
        assert_eq!(status(with(s)).await, 401, "expired token's session");
        ts.running.stop().await;
    })
    .await;
}

/// A large recording file archived as recording `id` (status done).
async fn large_recording(ts: &TestServer, on: &On, bytes: usize) -> i64 {
    use sha2::Digest;
    let rel = "20240108/large.wav";
    let path = ts.dir.path().join("recordings").join(rel);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let data = vec![0x55u8; bytes];
    std::fs::write(&path, &data).expect("write");
    let sha = hex::encode(sha2::Sha256::digest(&data));
    let cols = "leg_id, device, path, codec, status, attempts, due_ms, file, bytes, duration_seconds, sha256, updated_at";
    match on {
        On::Sqlite => {
            let c = rusqlite::Connection::open(ts.db_path()).expect("open");
            // No leg behind it: the route serves the row by its id.
            c.pragma_update(None, "foreign_keys", false)
                .expect("pragma");
            c.execute(
                &format!(
                    "INSERT INTO recordings ({cols}) VALUES (9999, 'hq', ?1, 'PCMU', 'done', 1, 0, ?1, ?2, 1.0, ?3, '2024-01-08T10:00:00Z')"
                ),
                rusqlite::params![rel, bytes as i64, sha],
            )
            .expect("recording row");
            c.last_insert_rowid()
        }
        On::Postgres(url) => {
            let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .expect("connect");
            tokio::spawn(conn);
            client
                .query_one(
                    &format!(
                        "INSERT INTO recordings ({cols}) VALUES (9999, 'hq', $1, 'PCMU', 'done', 1, 0, $1, $2, 1.0, $3, '2024-01-08T10:00:00Z') RETURNING id"
                    ),
                    &[&rel, &(bytes as i64), &sha],
                )
                .await
                .expect("recording row")
                .get(0)
        }
    }
}

/// Reads `resp` at about `per_second` bytes a second (unlimited when 0)
/// until it ends or fails; calls `midway` once after `after` bytes.
/// Returns (bytes read, whether the body failed) and when it ended.
async fn read_slowly(
    resp: reqwest::Response,
    after: usize,
    per_second: usize,
    midway: impl AsyncFnOnce(),
) -> (usize, bool, Instant) {
    let mut stream = resp.bytes_stream();
    let (mut read, mut midway) = (0usize, Some(midway));
    loop {
        match stream.next().await {
            None => return (read, false, Instant::now()),
            Some(Err(_)) => return (read, true, Instant::now()),
            Some(Ok(chunk)) => {
                read += chunk.len();
                if read >= after {
                    if let Some(f) = midway.take() {
                        f().await;
                    }
                }
                if per_second > 0 {
                    let pause = chunk.len() as f64 / per_second as f64;
                    tokio::time::sleep(Duration::from_secs_f64(pause)).await;
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_under_way_is_cut_when_its_token_is_revoked() {
    // Unrevoked, the slow reader would take 16 s for the file; the cut
    // comes within a few seconds.
    const SIZE: usize = 64 << 20;
    const SLOW: usize = 4 << 20;
    each_server(
        "a_download_under_way_is_cut",
        no_tweak,
        |ts, on| async move {
            let store = ts.running.store.clone();
            let id = large_recording(&ts, &on, SIZE).await;
            let path = format!("/api/recordings/{id}");
            let http = reqwest::Client::new();

            // Unrevoked, a slow reader gets the whole file.
            let keep = blocking(|| cli::create(&store, "keeper", "qa", None, &[])).expect("create");
            let resp = ok(http.get(url(&ts, &path)).bearer_auth(&keep)).await;
            let (read, failed, _) = read_slowly(resp, usize::MAX, 0, async || {}).await;
            assert_eq!((read, failed), (SIZE, false), "the whole file");

            // By bearer token: revoked a megabyte in, the rest never comes.
            let tok =
                blocking(|| cli::create(&store, "listener", "qa", None, &[])).expect("create");
            let resp = ok(http.get(url(&ts, &path)).bearer_auth(&tok)).await;
            let mut revoked_at = Instant::now();
            let (read, failed, ended) = read_slowly(resp, 1 << 20, SLOW, async || {
                blocking(|| cli::revoke(&store, "listener")).expect("revoke");
                revoked_at = Instant::now();
            })
            .await;
            assert!(failed && read < SIZE, "cut: {read} of {SIZE} bytes read");
            assert!(
                ended.duration_since(revoked_at) < Duration::from_secs(15),
                "cut within seconds"
            );

            // By session cookie (the page's audio and download links): the same.
            let tok = blocking(|| cli::create(&store, "page", "qa", None, &[])).expect("create");
            let (cookie, _) = sign_in(&ts, &tok, false).await;
            let resp = ok(http.get(url(&ts, &path)).header(COOKIE, &cookie)).await;
            let (read, failed, _) = read_slowly(resp, 1 << 20, SLOW, async || {
                blocking(|| cli::revoke(&store, "page")).expect("revoke");
            })
            .await;
            assert!(failed && read < SIZE, "cut: {read} of {SIZE} bytes read");

            // Signing out ends that session's download too, while the
            // token (and its other sessions) live on.
            let tok = blocking(|| cli::create(&store, "desk", "qa", None, &[])).expect("create");
            let (cookie, _) = sign_in(&ts, &tok, false).await;
            let (other, _) = sign_in(&ts, &tok, false).await;
            let resp = ok(http.get(url(&ts, &path)).header(COOKIE, &cookie)).await;
            let (read, failed, _) = read_slowly(resp, 1 << 20, SLOW, async || {
                let out = http
                    .delete(url(&ts, "/api/session"))
                    .header(COOKIE, &cookie)
                    .send()
                    .await
                    .expect("sign out");
                assert_eq!(out.status(), 204);
            })
            .await;
            assert!(failed && read < SIZE, "cut at sign-out: {read} of {SIZE}");
            // The token's other session lives on.
            ok(http.get(url(&ts, "/api/session")).header(COOKIE, &other)).await;
            ts.running.stop().await;
        },
    )
    .await;
}

#[test]
fn the_migration_renames_duplicate_token_names_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("callvault.sqlite");
    {
        let c = rusqlite::Connection::open(&path).expect("open");
        let before = callvault::store::MIGRATIONS
            .iter()
            .position(|(n, _)| *n == "013_token_names_sessions")
            .expect("migration 013");
        for (_, sql) in &callvault::store::MIGRATIONS[..before] {
            c.execute_batch(sql).expect("old schema");
        }
        c.pragma_update(None, "user_version", before as i64)
            .expect("version");
        c.execute_batch(
            "INSERT INTO tokens (name, role, hash, created_at) VALUES
               ('qa', 'qa', 'h1', '2024-01-01T00:00:00Z'),
               ('qa', 'qa', 'h2', '2024-01-02T00:00:00Z'),
               ('', 'finance', 'h3', '2024-01-03T00:00:00Z'),
               ('qa', 'admin', 'h4', '2024-01-04T00:00:00Z');",
        )
        .expect("old tokens");
    }
    let store = Store::open(&path).expect("migrates");
    assert_eq!(renamed(&store), expected_renames());
}

/// The old tokens qa, qa, "" (finance), qa (admin) after the migration,
/// by name.
fn expected_renames() -> Vec<(String, String)> {
    [
        ("finance", "finance"),
        ("qa", "qa"),
        ("qa-2", "qa"),
        ("qa-3", "admin"),
    ]
    .map(|(n, r)| (n.to_string(), r.to_string()))
    .to_vec()
}

fn renamed(store: &Store) -> Vec<(String, String)> {
    store
        .read_blocking(tokens::list)
        .expect("list")
        .into_iter()
        .map(|t| (t.name, t.role))
        .collect::<Vec<_>>()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_migration_renames_duplicate_token_names_on_postgres() {
    let Some(db) = TestDb::fresh("the_migration_renames_duplicate_token_names") else {
        return;
    };
    let (client, conn) = tokio_postgres::connect(db.url(), tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    let all = callvault::store::postgres::migrate::MIGRATIONS;
    let before = all
        .iter()
        .position(|(n, _)| *n == "006_token_names_sessions")
        .expect("migration 006");
    client
        .batch_execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .await
        .expect("schema_migrations");
    for (i, (name, sql)) in all[..before].iter().enumerate() {
        client.batch_execute(sql).await.expect("old schema");
        client
            .execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                &[&(i as i32 + 1), name],
            )
            .await
            .expect("version");
    }
    client
        .batch_execute(
            "INSERT INTO tokens (name, role, hash, created_at) VALUES
               ('qa', 'qa', 'h1', '2024-01-01T00:00:00Z'),
               ('qa', 'qa', 'h2', '2024-01-02T00:00:00Z'),
               ('', 'finance', 'h3', '2024-01-03T00:00:00Z'),
               ('qa', 'admin', 'h4', '2024-01-04T00:00:00Z');",
        )
        .await
        .expect("old tokens");
    drop(client);
    let url = db.url().to_string();
    let names = blocking(move || {
        let store = Store::open_postgres(&url).expect("migrates");
        renamed(&store)
    });
    assert_eq!(names, expected_renames());
}

/// `callvault demo` started twice on one archive leaves one demo token:
/// the second start replaces the first's (which stops working).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_started_twice_leaves_one_demo_token() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("demo");
    let start_demo = || {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_callvault"))
            .args(["--data", data.to_str().expect("utf-8"), "demo"])
            .args(["--listen", "127.0.0.1:0", "--ingest", "127.0.0.1:0"])
            .args(["--backfill-calls", "2", "--calls-per-hour", "1"])
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn demo");
        let out = BufReader::new(child.stdout.take().expect("stdout"));
        let token = out
            .lines()
            .map(|l| l.expect("line"))
            .find(|l| l.starts_with("cv_"))
            .expect("the token line");
        (child, token)
    };
    let stop = |mut child: std::process::Child| {
        std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if child.try_wait().expect("wait").is_some() {
                return;
            }
            assert!(Instant::now() < deadline, "demo did not stop");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let (first, t1) = start_demo();
    stop(first);
    let (second, t2) = start_demo();
    stop(second);
    assert_ne!(t1, t2);
    let store = Store::open(&data.join("callvault.sqlite")).expect("open");
    let demo: Vec<_> = blocking(|| cli::list(&store))
        .expect("list")
        .into_iter()
        .filter(|t| t.name.starts_with("demo"))
        .map(|t| t.name)
        .collect();
    assert_eq!(demo, ["demo"]);
    let now = Utc::now();
    assert!(store
        .read_blocking(move |tx| tokens::lookup(tx, &t1, now))
        .expect("lookup")
        .is_none());
    assert!(store
        .read_blocking(move |tx| tokens::lookup(tx, &t2, now))
        .expect("lookup")
        .is_some());
}

/// migrate-store copies tokens (with expiry and last use) and sessions: a
/// page signed in before the move is still signed in after it.
#[test]
fn migrate_store_copies_tokens_and_sessions() {
    let Some(pg) = TestDb::fresh("migrate_store_copies_tokens_and_sessions") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("callvault.sqlite");
    let soon = Utc::now() + chrono::Duration::days(1);
    let (tok, session) = {
        let src = Store::open(&path).expect("open");
        let tok = cli::create(&src, "ann", "qa", Some(soon), &[]).expect("token");
        let t = tok.clone();
        let id = src
            .read_blocking(move |tx| tokens::lookup(tx, &t, Utc::now()))
            .expect("lookup")
            .expect("valid")
            .id;
        let now = Utc::now();
        src.writer
            .write_blocking(move |tx| tokens::touch(tx, id, now))
            .expect("touch");
        let session = src
            .writer
            .write_blocking(move |tx| sessions::create(tx, id, now, 0))
            .expect("session");
        (tok, session)
    };
    let target = pg.store();
    let copied = callvault::store::copy::sqlite_to_postgres(&path, &target, &mut |_, _, _| {})
        .expect("copy");
    for table in ["tokens", "sessions"] {
        let c = copied.iter().find(|c| c.table == table).expect(table);
        assert_eq!((c.source_rows, c.target_rows), (1, 1), "{table}");
    }
    let info = target.read_blocking(tokens::list).expect("list");
    assert_eq!(info[0].expires_at, Some(tokens::stamp(soon)));
    assert!(info[0].last_used_at.is_some());
    let s = target
        .read_blocking(move |tx| sessions::lookup(tx, &session, Utc::now(), 0))
        .expect("lookup")
        .expect("the session survives the move");
    assert_eq!(s.token.hash, tokens::hash(&tok));
    // New tokens get new ids after the copy (identity moved past).
    cli::create(&target, "bob", "qa", None, &[]).expect("a new token");
}
