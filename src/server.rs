//! The composition root of `serve`: opens the archive, wires the live
//! stages into ingest, binds both listeners and shuts down gracefully.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;
use crate::http::{self, AppState};
use crate::ingest::device::Registry;
use crate::ingest::om::replay::{self, NonceCache};
use crate::ingest::{Deriver, Ingestor};
use crate::queues::live::QueueLive;
use crate::store::Store;

/// A running server: its bound addresses and a way to stop it.
pub struct Running {
    pub ingest_addr: SocketAddr,
    pub api_addr: SocketAddr,
    pub store: Store,
    /// The ingest path of this server, for pushes made in-process (the
    /// demo's backdated first day).
    pub ingestor: Ingestor,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish, derives what they
    /// committed, and waits.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        // Not needed for safety (the cursor is durable: a restart derives
        // the rest), but a stopped server leaves a fully derived archive.
        if let Err(e) = self.store.writer.drain().await {
            tracing::warn!(error = %e, "could not derive the last pushes before stopping");
        }
    }
}

/// The time zone of each device, as the stages need it.
pub type TzOf = Arc<dyn Fn(&str) -> chrono_tz::Tz + Send + Sync>;

pub fn tz_of(cfg: &Arc<Config>) -> TzOf {
    let cfg = cfg.clone();
    Arc::new(move |d: &str| cfg.device_tz(d))
}

/// Builds the ingest pipeline and installs, on the store's writer, the
/// derivation of committed pushes with each live stage's hook: calls for
/// legs, queue visits for events (and their link to the calls of legs),
/// recording fetches for legs naming one. The background step first brings
/// the queue tracker up to date by replaying the events derived so far, in
/// slices (`QueueLive::replay_step`: pushes are taken meanwhile); then
/// pushes committed but not yet derived (a burst, a crash) are derived.
pub fn ingestor(store: &Store, cfg: &Arc<Config>) -> anyhow::Result<(Ingestor, QueueLive)> {
    let queues = QueueLive::new(cfg.queues.visit_timeout_seconds, tz_of(cfg));
    let hooks = vec![
        crate::calls::live::hook(),
        crate::queues::live::hook(queues.clone()),
        crate::recordings::schedule::hook(cfg.clone()),
    ];
    let registry = Registry::new(cfg);
    registry.preload(store.read_blocking(crate::store::devices::active)?);
    let now_ms = chrono::Utc::now().timestamp_millis();
    let nonces = store.read_blocking(|c| {
        crate::store::devices::live_nonces(c, now_ms, replay::MAX_NONCES as i64)
    })?;
    let nonces = Arc::new(NonceCache::with(nonces, now_ms));
    let derive = Deriver::new(cfg.clone(), hooks, registry.clone()).into_background();
    {
        // On PostgreSQL another collector may have derived while this one
        // did not: what the stages keep in memory is rebuilt on takeover.
        let (q, reg) = (queues.clone(), registry.clone());
        store.writer.on_takeover(Box::new(move || {
            if let Err(e) = q.replay_again() {
                tracing::error!(error = %e, "queue tracker cannot replay on takeover");
            }
            reg.forget_version();
        }));
    }
    store.writer.set_background(queues.replay_before(derive))?;
    let ing = Ingestor::with_registry(store.clone(), cfg.clone(), registry, nonces);
    Ok((ing, queues))
}

/// Notices devices registered or removed by another process (`callvault
/// devices add`): when the archive's device list changed, the writer's
/// background step is woken, which reloads the registry and derives the
/// new device's held pushes, even while no device pushes.
async fn watch_devices(store: Store, registry: Arc<Registry>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            _ = stop.wait_for(|v| *v) => return,
        }
        match store.read(crate::store::devices::version).await {
            Ok(v) if registry.version() != Some(v) && !store.writer.is_leader() => {
                // Another collector derives (PostgreSQL): it releases the
                // held pushes; this one only needs to know the devices.
                match store.read(crate::store::devices::active).await {
                    Ok(active) => {
                        registry.set_registered(active, v);
                    }
                    Err(e) => tracing::warn!(error = %e, "could not read the device list"),
                }
            }
            Ok(v) if registry.version() != Some(v) => {
                if let Err(e) = store.writer.wake_background().await {
                    tracing::warn!(error = %e, "could not wake the deriver for a device change");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not read the device list"),
        }
    }
}

/// Opens the archive and starts both listeners (addresses from `cfg`; port 0 is fine).
pub async fn start(cfg: Config) -> anyhow::Result<Running> {
    let cfg = Arc::new(cfg);
    crate::telemetry::metrics_handle();
    let store = Store::open_config(&cfg)
        .with_context(|| format!("opening archive {}", cfg.db_path().display()))?;
    let (ing, queues) = ingestor(&store, &cfg)?;
    let registry = ing.registry().clone();
    let fetcher = crate::recordings::Fetcher::new(store.clone(), cfg.clone(), registry.clone())?;
    fetcher
        .resume()
        .await
        .context("resuming recording fetches")?;
    let ingest_l = TcpListener::bind(&cfg.ingest.listen)
        .await
        .with_context(|| format!("binding ingest listener {}", cfg.ingest.listen))?;
    let api_tls = api_tls(&cfg)?;
    let api_l = TcpListener::bind(&cfg.api.listen)
        .await
        .with_context(|| format!("binding API listener {}", cfg.api.listen))?;
    let (ingest_addr, api_addr) = (ingest_l.local_addr()?, api_l.local_addr()?);
    let (tx, rx) = watch::channel(false);

    for d in crate::ingest::device::unprotected(&cfg) {
        tracing::warn!(device = %d.name,
            "device has a mac but no push_from or addr: anyone who can reach the ingest port can push as it");
    }
    let ing_app = http::ingest::ingest_router(ing.clone());
    let api_app = http::api_router(AppState {
        store: store.clone(),
        cfg: cfg.clone(),
        recordings_paused: fetcher.pause_state(),
        recordings: fetcher.recording_store(),
        live: crate::live::Feed::start(store.clone(), rx.clone()),
    });
    let mut tasks = vec![tokio::spawn(http::serve_device::serve(
        ingest_l,
        ing_app,
        ing.clone(),
        rx.clone(),
    ))];
    tasks.push(tokio::spawn(http::serve_api::serve(
        api_l,
        api_app,
        api_tls,
        rx.clone(),
    )));
    tasks.push(tokio::spawn(expire_queue_visits(
        store.clone(),
        queues,
        rx.clone(),
    )));
    tasks.push(fetcher.spawn(rx.clone()));
    if store.is_postgres() {
        tasks.push(tokio::spawn(keep_partitions_ahead(
            store.clone(),
            rx.clone(),
        )));
    }
    tasks.push(tokio::spawn(watch_devices(
        store.clone(),
        registry,
        rx.clone(),
    )));
    tracing::info!(%ingest_addr, %api_addr, data = %cfg.data_dir.display(), "callvault serving");
    Ok(Running {
        ingest_addr,
        api_addr,
        store,
        ingestor: ing,
        shutdown: tx,
        tasks,
    })
}

/// The API listener's TLS, when `[api] tls_cert`/`tls_key` are set; a
/// warning when tokens would cross a network in clear.
fn api_tls(cfg: &Config) -> anyhow::Result<Option<tokio_rustls::TlsAcceptor>> {
    if let (Some(cert), Some(key)) = (&cfg.api.tls_cert, &cfg.api.tls_key) {
        return Ok(Some(http::tls::acceptor(cert, key)?));
    }
    let loopback = cfg
        .api
        .listen
        .parse::<SocketAddr>()
        .map(|a| a.ip().is_loopback())
        .unwrap_or_else(|_| cfg.api.listen.starts_with("localhost:"));
    if !loopback {
        tracing::warn!(listen = %cfg.api.listen,
            "the API listens beyond this machine without TLS: tokens and session cookies cross the network in clear; set [api] tls_cert and tls_key, or put an HTTPS proxy in front (README \"HTTPS\")");
    }
    Ok(None)
}

/// Closes queue visits left open past the timeout, once a minute
/// (`QueueLive::expire_due`).
async fn expire_queue_visits(store: Store, queues: QueueLive, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(60)) => {}
            _ = stop.wait_for(|v| *v) => return,
        }
        // Only the collector that derives knows the open visits.
        if !store.writer.is_leader() {
            continue;
        }
        if let Err(e) = queues.expire_due(&store).await {
            tracing::warn!(error = %e, "could not expire queue visits");
        }
    }
}

/// Makes the coming months' partitions on PostgreSQL, every six hours, on
/// the collector that derives (the maintenance leader; the schema lock
/// keeps two from doing it at once anyway). `open` made them at start.
async fn keep_partitions_ahead(store: Store, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(6 * 3600)) => {}
            _ = stop.wait_for(|v| *v) => return,
        }
        if !store.writer.is_leader() {
            continue;
        }
        if let Err(e) = store.make_partitions_ahead().await {
            tracing::error!(error = %e, "could not make the coming months' partitions");
        }
    }
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
