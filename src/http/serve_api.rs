//! The accept loop of the API and web listener: plain HTTP through
//! `axum::serve`, or HTTPS when `[api] tls_cert` and `tls_key` are set
//! (README "HTTPS"), so that a deployment without a reverse proxy does
//! not send tokens and session cookies in clear.
//!
//! Over HTTPS each request carries [`ServedOverTls`], which makes the
//! session cookie `Secure` (`session.rs`). The certificate and key are
//! read again when their files change ([`tls::Reloading`]), so a renewed
//! certificate is served without a restart.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::serve::ListenerExt;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

pub use super::tls::ServedOverTls;

/// A client must finish the TLS handshake, then send its request's
/// headers, within this long: a connection that never does holds a task
/// and a socket, nothing more, and not for long.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends each write at once (no Nagle): an answer goes out as its head and
/// then its body, and with Nagle on the body waited for the client's
/// delayed ACK of the head, up to 40 ms on every request (a player's Range
/// requests took 34 ms each on loopback).
fn no_delay(stream: &mut tokio::net::TcpStream) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "could not set TCP_NODELAY on an API connection");
    }
}

/// Serves `app` on `listener` until `stop` turns true, then waits for
/// the requests in flight; over TLS when `tls` is given.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<TlsAcceptor>,
    mut stop: watch::Receiver<bool>,
) {
    let Some(acceptor) = tls else {
        let svc = app.into_make_service_with_connect_info::<SocketAddr>();
        let res = axum::serve(listener.tap_io(no_delay), svc)
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|v| *v).await;
            })
            .await;
        if let Err(e) = res {
            tracing::error!(error = %e, "API listener failed");
        }
        return;
    };
    let graceful = GracefulShutdown::new();
    loop {
        let (mut stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // EMFILE and friends: wait a little instead of spinning.
                    tracing::warn!(error = %e, "API accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = async { let _ = stop.wait_for(|v| *v).await; } => break,
        };
        no_delay(&mut stream);
        let (acceptor, app, watcher) = (acceptor.clone(), app.clone(), graceful.watcher());
        tokio::spawn(async move {
            let stream =
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(s)) => s,
                    // A plain-HTTP client, a scanner, an expired certificate on
                    // the client's side: nothing to answer, debug only.
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
            let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req.extensions_mut().insert(ServedOverTls);
                app.clone().oneshot(req.map(Body::new))
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), svc);
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(%peer, error = %e, "API connection ended with an error");
            }
        });
    }
    graceful.shutdown().await;
}
