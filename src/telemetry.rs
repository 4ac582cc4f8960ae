//! Prometheus metrics (metrics + metrics-exporter-prometheus) and logging
//! set-up, for the server and the CLI alike.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder once; later calls return the same handle.
pub fn metrics_handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("callvault_commit_seconds".into()),
                &[
                    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0,
                ],
            )
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("callvault_commit_batch_size".into()),
                    &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0],
                )
            })
            .unwrap_or_else(|_| PrometheusBuilder::new());
        match builder.install_recorder() {
            Ok(h) => h,
            // Another recorder is already installed (embedding); keep a private one.
            Err(_) => PrometheusBuilder::new().build_recorder().handle(),
        }
    })
}

/// Logs to stderr in `format` (`[log] format`); `RUST_LOG` overrides the
/// default `info`. Called once the configuration is read, so that its
/// format applies from the first line. Colours only on a terminal (and
/// not with `NO_COLOR`): under systemd, cron or a redirect the lines go to
/// files and journals, where escape codes are noise.
pub fn init_logging(format: crate::config::LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        // Fields flattened into the object, the span names kept: one
        // object per line with `timestamp`, `level`, `target`, `message`.
        crate::config::LogFormat::Json => fmt
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        crate::config::LogFormat::Text => {
            let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            fmt.with_ansi(colour).try_init()
        }
    };
}
