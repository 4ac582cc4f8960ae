//! Test support: a fresh archive on each backend, so that a test of a store
//! function or a stage runs the same steps on SQLite and on PostgreSQL
//! (ARCHITECTURE.md "Testing"). Hidden from the docs; used by unit tests,
//! the integration tests and the benchmarks.
//!
//! The PostgreSQL server comes from `CALLVAULT_TEST_PG` (`.ci/run` sets
//! it); each archive is a database of its own, dropped when the handle
//! goes. Without the variable the PostgreSQL half says it was skipped.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio_postgres::NoTls;

use super::Store;

/// Which backend an archive of [`each_backend`] is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh database on the test server, dropped with the handle.
pub struct TestDb {
    base: String,
    name: String,
    url: String,
}

static N: AtomicUsize = AtomicUsize::new(0);

/// Runs `f` on a thread of its own with a small runtime: callers may be
/// plain tests or async ones.
fn on_own_runtime<T: Send + 'static>(
    f: impl FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>> + Send + 'static,
) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("test runtime")
            .block_on(f())
    })
    .join()
    .expect("test database thread")
}

impl TestDb {
    /// A fresh, empty database, or `None` (and a line saying `test` was
    /// skipped) when `CALLVAULT_TEST_PG` is not set.
    pub fn fresh(test: &str) -> Option<TestDb> {
        let Ok(base) = std::env::var("CALLVAULT_TEST_PG") else {
            eprintln!("skipped {test} on PostgreSQL: set CALLVAULT_TEST_PG to a PostgreSQL URL");
            return None;
        };
        let name = format!(
            "cv_t{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let url = database_url(&base, &name);
        let (b, n) = (base.clone(), name.clone());
        on_own_runtime(move || {
            Box::pin(async move {
                admin(&b, &format!("DROP DATABASE IF EXISTS {n} WITH (FORCE)")).await;
                admin(&b, &format!("CREATE DATABASE {n}")).await;
            })
        });
        Some(TestDb { base, name, url })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The store on this database (migrated at open).
    pub fn store(&self) -> Store {
        Store::open_postgres(&self.url).expect("open the PostgreSQL test archive")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (b, n) = (self.base.clone(), self.name.clone());
        on_own_runtime(move || {
            Box::pin(async move {
                admin(&b, &format!("DROP DATABASE IF EXISTS {n} WITH (FORCE)")).await;
            })
        });
    }
}

async fn admin(base: &str, sql: &str) {
    let (client, conn) = tokio_postgres::connect(base, NoTls)
        .await
        .unwrap_or_else(|e| panic!("CALLVAULT_TEST_PG={base} does not answer: {e}"));
    let task = tokio::spawn(conn);
    client
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    drop(client);
    let _ = task.await;
}

/// `base` with its database name replaced by `name`.
pub fn database_url(base: &str, name: &str) -> String {
    let (path, query) = match base.split_once('?') {
        Some((p, q)) => (p, format!("?{q}")),
        None => (base, String::new()),
    };
    let start = path
        .find("://")
        .map(|s| s + 3)
        .unwrap_or_else(|| panic!("CALLVAULT_TEST_PG is not a URL: {base}"));
    let head = match path[start..].find('/') {
        Some(slash) => &path[..start + slash],
        None => path,
    };
    format!("{head}/{name}{query}")
}

/// A fresh SQLite archive in a directory of its own under the system's
/// temporary directory, removed when the handle goes.
pub struct TestDir(pub PathBuf);

impl TestDir {
    pub fn fresh() -> TestDir {
        let dir = std::env::temp_dir().join(format!(
            "callvault-t{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("test directory");
        TestDir(dir)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `f` on a fresh SQLite archive, then (when `CALLVAULT_TEST_PG` is
/// set) on a fresh PostgreSQL one: the same steps and assertions on both.
pub fn each_backend(test: &str, mut f: impl FnMut(Backend, &Store)) {
    {
        let dir = TestDir::fresh();
        let store = Store::open(&dir.0.join("callvault.db")).expect("open the SQLite archive");
        f(Backend::Sqlite, &store);
    }
    if let Some(db) = TestDb::fresh(test) {
        let store = db.store();
        f(Backend::Postgres, &store);
        drop(store);
    }
}
