//! The accept loop of the ingest listener. We drive hyper ourselves instead
//! of `axum::serve` for one setting: `half_close(true)`. The OM device (and
//! many embedded HTTP clients) writes its request and shuts its sending side
//! at once; without half-close hyper treats that EOF as the end of the
//! connection and drops the in-flight handler, and the push is lost before
//! it is stored (ARCHITECTURE.md, "Durability": a message is committed even
//! when the device never reads the reply). With half-close the request is processed and the
//! reply written to a socket nobody reads, which is harmless.
//!
//! The listener takes unauthenticated HTTP from anything that reaches it,
//! so it also bounds what a connection may hold (README "Limits"): request
//! headers must come within `header_timeout_seconds` (also between requests
//! on a kept-alive connection: hyper runs the same timer while it waits for
//! the next request, so an idle keep-alive connection lives that long), and
//! the connection caps of `connections`, which never apply to a registered
//! device (`Ingestor::is_registered_source`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tower::ServiceExt;
use tracing::warn;

use super::connections::{Admitted, Connections, Made, Refused};
use crate::ingest::Ingestor;
use crate::log_throttle::LogThrottle;

/// One line per source address and kind of limit every 10 s; the counts
/// are in the metrics.
static LOG: LogThrottle = LogThrottle::new(Duration::from_secs(10));

/// Serves `app` on `listener` over HTTP/1.x until `stop` turns true, then
/// waits for in-flight requests to finish. `ing` decides which sources are
/// registered devices, and holds the configuration of the limits.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    ing: Ingestor,
    mut stop: watch::Receiver<bool>,
) {
    let cfg = &ing.config().ingest;
    let conns = Connections::new(cfg.max_connections, cfg.max_connections_per_ip);
    let header_timeout = Duration::from_secs(cfg.header_timeout_seconds.max(1));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .half_close(true)
        .keep_alive(true)
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let builder = Arc::new(builder);
    // Each connection task holds a sender: when all are gone, every
    // connection has finished.
    let (done_tx, mut all_done) = mpsc::channel::<()>(1);
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
        let ip = peer.ip().to_canonical();
        let registered = ing.is_registered_source(ip);
        let admitted = match conns.admit(ip, registered) {
            Ok((admitted, made)) => {
                note(ip, made);
                admitted
            }
            Err(why) => {
                refuse(stream, peer, why);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let task = connection(
            stream,
            peer,
            app.clone(),
            builder.clone(),
            admitted,
            stop.clone(),
            done_tx.clone(),
        );
        tokio::spawn(task);
    }
    drop(listener);
    drop(done_tx);
    let _ = all_done.recv().await;
}

/// Serves one admitted connection until it ends, the table asks it to make
/// room (closed at once when idle, else after its request), or the server
/// stops (closed after its request).
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    builder: Arc<hyper::server::conn::http1::Builder>,
    admitted: Admitted,
    mut stop: watch::Receiver<bool>,
    _done: mpsc::Sender<()>,
) {
    let slot = admitted.slot.clone();
    let svc = {
        let slot = slot.clone();
        hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            // Called as soon as the headers are in: from here the
            // connection is delivering a push and is never cut.
            let busy = slot.start_request();
            req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
            let app = app.clone();
            async move {
                let res = app
                    .oneshot(req.map(axum::body::Body::new))
                    .await
                    .unwrap_or_else(|e| match e {});
                drop(busy);
                Ok::<_, Infallible>(res)
            }
        })
    };
    let conn = builder.serve_connection(TokioIo::new(stream), svc);
    tokio::pin!(conn);
    let mut closing = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    if e.is_timeout() {
                        metrics::counter!("callvault_ingest_header_timeouts_total").increment(1);
                    }
                    tracing::debug!(%peer, error = %e, "ingest connection ended with an error");
                }
                break;
            }
            _ = slot.close_requested(), if !closing => {
                // No request can start between this check and the drop:
                // hyper starts them only while `conn` is polled.
                if !slot.busy() {
                    break;
                }
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            _ = stop.wait_for(|v| *v), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
        }
    }
    drop(admitted);
}

/// Counts (and logs, throttled) what admitting a connection cost.
fn note(ip: std::net::IpAddr, made: Made) {
    match made {
        Made::Room => {}
        Made::Evicted(victim) => {
            metrics::counter!("callvault_ingest_connections_evicted_total").increment(1);
            if let Some(left_out) = LOG.admit(&format!("{victim} evicted")) {
                warn!(
                    source = %victim,
                    more_since_last_line = left_out,
                    "ingest connection cap reached: closed an idle connection to make room"
                );
            }
        }
        Made::OverCap => {
            metrics::counter!("callvault_ingest_connections_over_cap_total").increment(1);
            if let Some(left_out) = LOG.admit(&format!("{ip} over_cap")) {
                warn!(
                    source = %ip,
                    more_since_last_line = left_out,
                    "ingest connection cap reached with nothing idle: registered device admitted over it"
                );
            }
        }
    }
}

/// Closes a refused connection at once, with a one-line 429 if the socket
/// takes it without waiting.
fn refuse(stream: TcpStream, peer: SocketAddr, why: Refused) {
    metrics::counter!("callvault_ingest_connections_refused_total", "reason" => why.metric_reason())
        .increment(1);
    let line = why.reason();
    let reply = format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{line}\n",
        line.len() + 1
    );
    let _ = stream.try_write(reply.as_bytes());
    let ip = peer.ip().to_canonical();
    if let Some(left_out) = LOG.admit(&format!("{ip} {}", why.metric_reason())) {
        warn!(
            source = %ip,
            reason = line,
            more_since_last_line = left_out,
            "ingest connection refused"
        );
    }
}
