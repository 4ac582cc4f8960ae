//! The composition root of `serve`: opens the archive, wires the live
//! stages into ingest, binds both listeners and shuts down gracefully.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;
use crate::http::{self, AppState};
use crate::ingest::Ingestor;
use crate::store::Store;

/// A running server: its bound addresses and a way to stop it.
pub struct Running {
    pub ingest_addr: SocketAddr,
    pub api_addr: SocketAddr,
    pub store: Store,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish, and waits.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Builds the ingest pipeline with the live stages hooked in.
pub fn ingestor(store: &Store, cfg: &Arc<Config>) -> Ingestor {
    let hooks = vec![crate::recordings::schedule::hook(cfg.clone())];
    Ingestor::new(store.clone(), cfg.clone(), hooks)
}

/// Opens the archive and starts both listeners (addresses from `cfg`; port 0 is fine).
pub async fn start(cfg: Config) -> anyhow::Result<Running> {
    let cfg = Arc::new(cfg);
    http::telemetry::metrics_handle();
    let store = Store::open(&cfg.db_path())
        .with_context(|| format!("opening archive {}", cfg.db_path().display()))?;
    let fetcher = crate::recordings::Fetcher::new(store.clone(), cfg.clone()).map_err(anyhow::Error::msg)?;
    fetcher.resume().await.context("resuming recording fetches")?;
    let ingest_l = TcpListener::bind(&cfg.ingest.listen)
        .await
        .with_context(|| format!("binding ingest listener {}", cfg.ingest.listen))?;
    let api_l = TcpListener::bind(&cfg.api.listen)
        .await
        .with_context(|| format!("binding API listener {}", cfg.api.listen))?;
    let (ingest_addr, api_addr) = (ingest_l.local_addr()?, api_l.local_addr()?);
    let (tx, rx) = watch::channel(false);

    let ing_app = http::ingest::ingest_router(ingestor(&store, &cfg));
    let api_app = http::api_router(AppState { store: store.clone(), cfg: cfg.clone() });
    let mut tasks = Vec::new();
    for (l, app, name) in [(ingest_l, ing_app, "ingest"), (api_l, api_app, "api")] {
        let mut rx = rx.clone();
        tasks.push(tokio::spawn(async move {
            let svc = app.into_make_service_with_connect_info::<SocketAddr>();
            let res = axum::serve(l, svc)
                .with_graceful_shutdown(async move {
                    let _ = rx.wait_for(|v| *v).await;
                })
                .await;
            if let Err(e) = res {
                tracing::error!(listener = name, error = %e, "listener failed");
            }
        }));
    }
    tasks.push(fetcher.spawn(rx.clone()));
    tracing::info!(%ingest_addr, %api_addr, data = %cfg.data_dir.display(), "callvault serving");
    Ok(Running { ingest_addr, api_addr, store, shutdown: tx, tasks })
}

/// Resolves when Ctrl-C or SIGTERM arrives.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
