//! The PostgreSQL archive, for many collectors on one database
//! (ARCHITECTURE.md "src/store/"): it connects ([`pool`]), applies and
//! checks the schema ([`migrate`]), keeps the monthly partitions of the big
//! tables ahead ([`partitions`]), runs units of work in transactions
//! ([`backend`], [`PgTx`]), writes and elects the one collector that
//! derives ([`writer`]). The PostgreSQL version of each store function
//! lives in the file of its table here, called from the store function
//! itself when its `Tx` is on PostgreSQL.

pub mod audit;
pub mod backend;
pub mod call_detail;
pub mod call_search;
pub mod calls;
pub mod conversations;
pub mod device_figures;
pub mod devices;
pub mod events;
pub mod legs;
pub mod migrate;
pub mod partitions;
pub mod pushes;
pub mod queues;
pub mod rebuild;
pub mod recordings;
pub mod reports;
pub mod retention;
pub mod sessions;
pub mod tls;
pub mod tokens;
mod tx;
pub mod writer;

pub use tx::{Params, PgTx};

use tokio_postgres::NoTls;

pub use deadpool_postgres::Pool;

/// Errors of the PostgreSQL archive.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// `[store] url` is not a PostgreSQL URL we can use.
    #[error("[store] url: {0}")]
    Url(String),
    /// The server refused or the connection broke (the server's message,
    /// which tokio-postgres keeps in the error's source, is shown).
    #[error("PostgreSQL: {}", with_causes(.0))]
    Db(#[from] tokio_postgres::Error),
    /// No connection could be had from the pool.
    #[error("PostgreSQL pool: {0}")]
    Pool(String),
    /// Another collector (a newer callvault) migrated the archive further
    /// than this binary knows: running on it could misread its tables.
    #[error(
        "the archive's schema is at version {found}, newer than this callvault knows ({known}): \
         upgrade callvault on this collector"
    )]
    SchemaNewer { found: i64, known: i64 },
    /// The archive has not been migrated to what this binary needs.
    #[error(
        "the archive's schema is at version {found}, this callvault needs {known}: \
         start one collector with migrations (the default) first"
    )]
    SchemaOlder { found: i64, known: i64 },
    /// A month's partition cannot be made because the DEFAULT partition
    /// already holds rows of that month.
    #[error("partition {name}: {source} (rows of that month sit in the DEFAULT partition: move them first)")]
    Partition {
        name: String,
        source: tokio_postgres::Error,
    },
}

impl From<deadpool_postgres::PoolError> for PgError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        PgError::Pool(with_causes(&e))
    }
}

/// `e` and its causes, for one line: tokio-postgres shows only its kind
/// ("error performing TLS handshake") and keeps the reason (which
/// certificate check failed, which option is unknown) in its source.
pub(crate) fn with_causes(e: &dyn std::error::Error) -> String {
    let mut line = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !line.ends_with(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        cause = c.source();
    }
    line
}

/// Connections kept per collector.
const POOL_SIZE: usize = 8;
/// Longest wait for a pooled connection, or for a new one to be made.
const POOL_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// A pool of connections to `url`
/// (`postgres://user:pass@host:port/db?sslmode=…&sslrootcert=…`).
///
/// TLS is rustls with libpq's `sslmode` ([`tls`]): `disable` plain;
/// `prefer` (the default) TLS when the server offers it, else plain;
/// `require` TLS without checking the certificate; `verify-ca` the chain
/// against `sslrootcert` (a PEM file) or the system's roots; `verify-full`
/// the chain and the host name. Connections are made when first used, so a
/// refused certificate shows up at the first query, in libpq's terms.
pub fn pool(url: &str) -> Result<Pool, PgError> {
    let (mut cfg, settings) = tls::split_url(url)?;
    // JIT compiling a report's plan costs more than it saves at our row
    // counts (measured: benches/reports.rs); options the URL sets come first
    // and a later `-c jit=on` there wins.
    let options = format!("-c jit=off {}", cfg.get_options().unwrap_or(""));
    cfg.options(options.trim());
    let mgr_config = deadpool_postgres::ManagerConfig {
        recycling_method: deadpool_postgres::RecyclingMethod::Fast,
    };
    let mgr = match tls::connector(&settings)? {
        Some(connector) => deadpool_postgres::Manager::from_config(cfg, connector, mgr_config),
        None => deadpool_postgres::Manager::from_config(cfg, NoTls, mgr_config),
    };
    // Bounded waits: a database that went away makes a write fail (the
    // device gets a 503) instead of hanging its connection for ever.
    Pool::builder(mgr)
        .max_size(POOL_SIZE)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .wait_timeout(Some(POOL_WAIT))
        .create_timeout(Some(POOL_WAIT))
        .recycle_timeout(Some(POOL_WAIT))
        .build()
        .map_err(|e| PgError::Pool(e.to_string()))
}

#[cfg(test)]
mod calls_tests;
