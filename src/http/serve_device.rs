//! The accept loop of the ingest listener. We drive hyper ourselves instead
//! of `axum::serve` for one setting: `half_close(true)`. The OM device (and
//! many embedded HTTP clients) writes its request and shuts its sending side
//! at once; without half-close hyper treats that EOF as the end of the
//! connection and drops the in-flight handler, and the push is lost before
//! it is stored (DESIGN §2: a message is committed even when the device
//! never reads the reply). With half-close the request is processed and the
//! reply written to a socket nobody reads, which is harmless.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

/// How long a device may take to send its request headers before we give up
/// on the connection (protects the listener from idle sockets).
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `app` on `listener` over HTTP/1.x until `stop` turns true, then
/// waits for in-flight requests to finish.
pub async fn serve(listener: TcpListener, app: Router, mut stop: watch::Receiver<bool>) {
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // EMFILE and friends: wait a little instead of spinning.
                    tracing::warn!(error = %e, "ingest accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = async { let _ = stop.wait_for(|v| *v).await; } => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
            let app = app.clone();
            async move {
                Ok::<_, Infallible>(
                    app.oneshot(req.map(axum::body::Body::new))
                        .await
                        .unwrap_or_else(|e| match e {}),
                )
            }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .half_close(true)
            .keep_alive(true)
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT)
            .serve_connection(TokioIo::new(stream), svc);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "ingest connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
