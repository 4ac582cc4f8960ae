//! The PostgreSQL archive as the store opens it: the pool, the runtime its
//! connections live on, and running one unit of work in a transaction.
//!
//! The store's functions are blocking; the connections are async. The
//! backend owns a small runtime of its own ("store-pg" threads) that
//! drives the connections, so blocking callers (the writer's jobs on
//! `spawn_blocking`, the deriver's thread, the CLI) wait for their queries
//! whatever runtime, if any, they were called from (`PgTx`).

use std::sync::Arc;

use tokio::runtime::{Handle, Runtime};
// Waiting with a plain executor for a tokio JoinHandle: a JoinHandle
// counts against the cooperative budget of the tokio task it is polled in
// (if any), and once an async caller's task has used its budget, each poll
// answers "not yet" and wakes itself at once: the plain executor polls
// again and again and never returns (the budget is only refilled when that
// task yields, which a blocking wait never does). Unconstrained, the wait
// counts against no budget.
use tokio::task::unconstrained;

use super::{migrate, partitions, PgError, PgTx, Pool};
use crate::store::{Result, Tx};

/// Months of partitions made ahead of the current one at start (and daily
/// by the maintenance leader).
pub const PARTITIONS_AHEAD: u32 = 3;

pub struct PgBackend {
    pool: Pool,
    rt: Handle,
    /// The runtime, shut down in the background when the last handle on
    /// the store goes (dropping a runtime inside another one's async
    /// context would panic).
    _runtime: RuntimeOwner,
    /// The URL with its password replaced, for messages.
    shown: String,
}

struct RuntimeOwner(Option<Runtime>);

impl Drop for RuntimeOwner {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

impl PgBackend {
    /// Connects to `url`, applies the missing migrations (one collector at
    /// a time), checks the schema version, and makes the partitions of
    /// this month and the next ones.
    pub fn open(url: &str) -> Result<Arc<PgBackend>> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("store-pg")
            .enable_all()
            .build()
            .map_err(|e| PgError::Pool(format!("cannot start the store's runtime: {e}")))?;
        let rt = runtime.handle().clone();
        let pool = {
            let _enter = rt.enter();
            super::pool(url)?
        };
        // Waited for with a plain executor: `open` may be called from async
        // code (`serve` starts inside its runtime), where tokio's block_on
        // would panic.
        let p = pool.clone();
        futures_executor::block_on(unconstrained(rt.spawn(async move {
            migrate::apply(&p).await?;
            migrate::check(&p).await?;
            partitions::ensure(&p, chrono::Utc::now(), PARTITIONS_AHEAD).await?;
            Ok::<_, PgError>(())
        })))
        .map_err(|e| PgError::Pool(format!("the store's runtime stopped: {e}")))??;
        Ok(Arc::new(PgBackend {
            pool,
            rt,
            _runtime: RuntimeOwner(Some(runtime)),
            shown: crate::config::redact_url(url),
        }))
    }

    /// Runs `f` (async work on the pool) on the backend's runtime and waits
    /// for it without blocking the caller's runtime.
    async fn on_runtime<T: Send + 'static>(
        &self,
        f: impl std::future::Future<Output = std::result::Result<T, PgError>> + Send + 'static,
    ) -> std::result::Result<T, PgError> {
        self.rt
            .spawn(f)
            .await
            .map_err(|e| PgError::Pool(format!("the store's runtime stopped: {e}")))?
    }

    pub async fn make_partitions_ahead(&self) -> std::result::Result<Vec<String>, PgError> {
        let pool = self.pool.clone();
        self.on_runtime(async move {
            partitions::ensure(&pool, chrono::Utc::now(), PARTITIONS_AHEAD).await
        })
        .await
    }

    pub async fn default_partition_rows(&self) -> std::result::Result<Vec<(String, i64)>, PgError> {
        let pool = self.pool.clone();
        self.on_runtime(async move { partitions::default_rows(&pool).await })
            .await
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    pub fn runtime(&self) -> &Handle {
        &self.rt
    }

    /// The URL without its password.
    pub fn shown_url(&self) -> &str {
        &self.shown
    }

    /// A pooled connection. A new one is made on the backend's runtime (its
    /// connection task is spawned there), waited for from any thread.
    pub fn client(&self) -> std::result::Result<deadpool_postgres::Object, PgError> {
        let pool = self.pool.clone();
        let got = futures_executor::block_on(unconstrained(
            self.rt.spawn(async move { pool.get().await }),
        ))
        .map_err(|e| PgError::Pool(format!("the store's runtime stopped: {e}")))?;
        Ok(got?)
    }

    /// Runs `f` in one transaction on a pooled connection and commits when
    /// it returns `Ok` (a read-only one is rolled back: it wrote nothing).
    /// Blocking, like the SQLite store's reads and writes.
    pub fn with_tx<T>(&self, read_only: bool, f: impl FnOnce(&Tx) -> Result<T>) -> Result<T> {
        let mut client = self.client()?;
        let tx =
            futures_executor::block_on(client.build_transaction().read_only(read_only).start())
                .map_err(PgError::from)?;
        let pg = PgTx::new(tx);
        let out = f(&Tx::postgres(&pg))?;
        if !read_only {
            pg.commit()?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use crate::store::testing::TestDb;

    /// Blocking store calls from inside async code (a handler, a test) on
    /// PostgreSQL: many in a row, more than the task's cooperative budget,
    /// all return. Each used to spin at 100 % CPU for ever once the budget
    /// was spent (seen from a test polling the derive backlog).
    #[test]
    fn many_blocking_reads_inside_one_async_task_all_return() {
        let Some(db) = TestDb::fresh("many_blocking_reads_inside_one_async_task") else {
            return;
        };
        let store = db.store();
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                for _ in 0..500 {
                    store
                        .read_blocking(crate::store::pushes::derive_backlog)
                        .expect("backlog");
                }
            });
            let _ = done.send(());
        });
        finished
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("500 blocking reads inside one async task returned within 60 s");
    }
}
