//! `callvault serve`.

use std::process::ExitCode;

use clap::Args;

use crate::config::Config;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address of the push listener (default from config: 0.0.0.0:8989).
    #[arg(long, value_name = "ADDR")]
    pub ingest: Option<String>,
    /// Address of the API/web listener (default from config: 127.0.0.1:8080).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
}

pub fn run(mut cfg: Config, a: ServeArgs) -> anyhow::Result<ExitCode> {
    if let Some(i) = a.ingest {
        cfg.ingest.listen = i;
    }
    if let Some(l) = a.listen {
        cfg.api.listen = l;
    }
    let scheme = if cfg.api.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    let purge_cfg = std::sync::Arc::new(cfg.clone());
    let files = crate::recordings::RecordingStore::from_config(&cfg)?;
    super::runtime()?.block_on(async move {
        let running = crate::server::start(cfg).await?;
        // The retention purge: shortly after start, then daily
        // (docs/operations.md "Retention").
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let purge = tokio::spawn(crate::retention::daily(
            running.store.clone(),
            files,
            purge_cfg,
            stopped,
        ));
        println!("ingest listening on {}", running.ingest_addr);
        println!("API and web page on {scheme}://{}/", running.api_addr);
        crate::server::shutdown_signal().await;
        tracing::info!("shutting down");
        let _ = stop.send(true);
        let _ = purge.await;
        running.stop().await;
        Ok(ExitCode::SUCCESS)
    })
}
