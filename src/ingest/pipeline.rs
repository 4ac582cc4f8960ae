//! One push, end to end: size and encoding checks, parsing, device
//! identification, reverse auth, then one durable write of the raw push.
//! Its legs and events are derived from that row right after the commit
//! (`derive`), off the device's path. Anything refused is written to the
//! quarantine (the `pushes` table with outcome `quarantined` and a reason)
//! before we answer, so bad input is never silently dropped.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tracing::{info_span, warn, Instrument};

use super::device::{Identified, Registry};
use super::limits::{SourceLimits, QUARANTINE_KEPT_WHEN_OVER};
use super::om::{self, replay::NonceCache, AuthError};
use crate::config::{Config, DeviceConfig};
use crate::log_throttle::LogThrottle;
use crate::model::{Document, Message};
use crate::store::devices::Nonce;
use crate::store::{self, pushes, Store};

/// A request as the listener (or `import`) saw it.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// Peer IP (or `import:<file>` for replays).
    pub source: String,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub body: Vec<u8>,
    /// Whether `body` is all of it.
    pub body_end: BodyEnd,
}

/// How reading a request body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyEnd {
    /// All of it was read.
    Whole,
    /// Cut at `max_body_bytes`: `body` holds only its start.
    TooLarge,
    /// The sender stopped sending before the end (within the listener's
    /// body timeout): `body` holds what came.
    Stalled,
    /// The connection ended or broke before the end of the body: `body`
    /// holds what came.
    Broken,
}

/// What to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    /// One-line reason for a refusal.
    pub reason: Option<String>,
    /// Cdr and Event documents in the push (stored legs may be fewer: a
    /// re-pushed Cdr id is not stored twice).
    pub legs: usize,
    pub events: usize,
    /// Stored but held: the sender matches no registered device.
    pub held: bool,
}

#[derive(Clone)]
pub struct Ingestor {
    store: Store,
    cfg: Arc<Config>,
    registry: Arc<Registry>,
    nonces: Arc<NonceCache>,
    /// Rates and quarantine budget of the sources that are not devices.
    limits: Arc<SourceLimits>,
}

/// Why a push was refused: status and one-line reason.
struct Refusal {
    status: u16,
    reason: String,
    device: Option<String>,
    metric_reason: &'static str,
}

/// A push that passed every check, and what it is to become.
struct Accepted {
    legs: usize,
    events: usize,
    /// The device it is stored under (None: held).
    device: Option<String>,
    outcome: pushes::Outcome,
    sender_mac: Option<String>,
    /// Single-use nonces it claimed, stored with it.
    nonces: Vec<Nonce>,
}

impl Ingestor {
    /// An ingestor knowing only the config file's devices (tests, tools).
    pub fn new(store: Store, cfg: Arc<Config>) -> Ingestor {
        let registry = Registry::new(&cfg);
        Ingestor::with_registry(store, cfg, registry, Arc::new(NonceCache::default()))
    }

    /// An ingestor sharing the server's device registry and nonce cache.
    pub fn with_registry(
        store: Store,
        cfg: Arc<Config>,
        registry: Arc<Registry>,
        nonces: Arc<NonceCache>,
    ) -> Ingestor {
        let limits = Arc::new(SourceLimits::new(&cfg.ingest));
        Ingestor {
            store,
            cfg,
            registry,
            nonces,
            limits,
        }
    }

    /// The push rates and quarantine budget of unregistered sources.
    pub fn limits(&self) -> &SourceLimits {
        &self.limits
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Whether `ip` is an address a registered device pushes from: the
    /// listener's connection and rate limits never apply to it.
    pub fn is_registered_source(&self, ip: IpAddr) -> bool {
        self.registry.is_device_ip(ip)
    }

    /// Checks, stores and answers one push. Never panics on input; a store
    /// failure answers 503 so the device (or operator) retries.
    pub async fn accept(&self, req: Incoming) -> Reply {
        self.accept_received(req, chrono::Utc::now()).await
    }

    /// [`accept`](Self::accept) of a push that reached a device's network
    /// at `received` (a captured day replayed by `callvault import
    /// --manifest`, the demo's first day): stored with that receive time,
    /// so its events, queue visits and calls land on their day, and its
    /// signature is checked against it. In-process only — the listener
    /// always passes the clock; nothing a sender sends can set it.
    pub async fn accept_received(
        &self,
        req: Incoming,
        received: chrono::DateTime<chrono::Utc>,
    ) -> Reply {
        metrics::counter!("callvault_pushes_received_total").increment(1);
        let (received_at, received_ms) = store::stamp_of(received);
        match self.check(&req, received_ms) {
            Ok(ok) => self.store_docs(req, ok, received_at, received_ms).await,
            Err(r) => self.quarantine(req, r, received_at, received_ms).await,
        }
    }

    /// Refuses a push before it is checked (the listener's rate limits):
    /// quarantined with `reason` like every refusal, answered `status`.
    pub async fn refuse(
        &self,
        req: Incoming,
        status: u16,
        metric_reason: &'static str,
        reason: String,
    ) -> Reply {
        metrics::counter!("callvault_pushes_received_total").increment(1);
        let (received_at, received_ms) = store::now_stamp();
        let r = Refusal {
            status,
            reason,
            device: None,
            metric_reason,
        };
        self.quarantine(req, r, received_at, received_ms).await
    }

    /// Everything that can refuse a push, before any write.
    fn check(&self, req: &Incoming, now_ms: i64) -> Result<Accepted, Refusal> {
        let refuse = |status, metric_reason, reason: String| Refusal {
            status,
            reason,
            device: None,
            metric_reason,
        };
        let cut = match req.body_end {
            BodyEnd::Whole => None,
            BodyEnd::TooLarge => Some((
                413,
                "too_large",
                format!(
                    "body exceeds max_body_bytes ({} bytes)",
                    self.cfg.ingest.max_body_bytes
                ),
            )),
            BodyEnd::Broken => Some((
                400,
                "incomplete",
                format!(
                    "body incomplete: the connection ended after {} bytes",
                    req.body.len()
                ),
            )),
            BodyEnd::Stalled => Some((
                408,
                "stalled",
                format!(
                    "body not complete after {} s ({} bytes came)",
                    self.cfg.ingest.body_timeout_seconds,
                    req.body.len()
                ),
            )),
        };
        if let Some((status, metric_reason, reason)) = cut {
            return Err(refuse(status, metric_reason, reason));
        }
        let text = push_text(&req.body, req.query.as_deref())
            .map_err(|(metric_reason, reason)| refuse(400, metric_reason, reason))?;
        let docs = super::parse_push(&text, self.cfg.ingest.max_documents).map_err(|e| {
            if e.too_many {
                refuse(413, "too_many_documents", e.reason)
            } else {
                refuse(400, "malformed", e.reason)
            }
        })?;
        let legs = docs
            .iter()
            .filter(|d| matches!(d.message, Message::Cdr(_)))
            .count();
        let events = docs.len() - legs;
        let mac = docs.iter().find_map(|d| d.message.mac());
        let ident = self
            .registry
            .identify(mac, &req.source)
            .map_err(|e| refuse(403, "device", e.to_string()))?;
        let dev = match ident {
            Identified::Known(dev) => dev,
            Identified::Unregistered { mac, source } => {
                let lab = self.cfg.ingest.accept_unknown_devices;
                return Ok(Accepted {
                    legs,
                    events,
                    device: lab.then_some(source),
                    outcome: if lab {
                        pushes::Outcome::Stored
                    } else {
                        pushes::Outcome::Held
                    },
                    sender_mac: mac,
                    nonces: Vec::new(),
                });
            }
        };
        let nonces = self.authenticate(&dev, &docs, now_ms)?;
        if let Ok(ip) = req.source.parse() {
            self.registry.learn_ip(ip, &dev.name);
        }
        Ok(Accepted {
            legs,
            events,
            device: Some(dev.name.clone()),
            outcome: pushes::Outcome::Stored,
            sender_mac: mac.map(super::device::norm_mac),
            nonces,
        })
    }

    /// Reverse authentication of a device with a server password (manual
    /// §4.5); with `auth_nonce_single_use`, each Auth is also claimed once.
    fn authenticate(
        &self,
        dev: &DeviceConfig,
        docs: &[Document],
        now_ms: i64,
    ) -> Result<Vec<Nonce>, Refusal> {
        let Some(pw) = dev.server_password.as_deref().filter(|p| !p.is_empty()) else {
            return Ok(Vec::new());
        };
        let failed = |e: AuthError| Refusal {
            status: 401,
            reason: format!("authentication failed: {e}"),
            device: Some(dev.name.clone()),
            metric_reason: "auth",
        };
        let window = dev.auth_window();
        for d in docs {
            om::verify(d.auth.as_ref(), pw, window, now_ms.div_euclid(1000)).map_err(failed)?;
        }
        if !dev.auth_nonce_single_use {
            return Ok(Vec::new());
        }
        let mut claimed: Vec<Nonce> = Vec::new();
        for auth in docs.iter().filter_map(|d| d.auth.as_ref()) {
            let ts: i64 = auth.timestamp.trim().parse().unwrap_or(0);
            let expires_ms = match window {
                0 => i64::MAX,
                w => ts
                    .saturating_add(i64::try_from(w).unwrap_or(i64::MAX))
                    .saturating_mul(1000),
            };
            let n = Nonce {
                device: dev.name.clone(),
                nonce: auth.nonce.trim().to_string(),
                timestamp: auth.timestamp.trim().to_string(),
                expires_ms,
            };
            // Two documents of one push may share an Auth; a second push may not.
            if claimed
                .iter()
                .any(|c| c.nonce == n.nonce && c.timestamp == n.timestamp)
            {
                continue;
            }
            // On PostgreSQL the archive decides, in the transaction that
            // stores the push (`store_docs`): a replay may reach another
            // collector, whose memory knows nothing of this one's.
            if !self.store.is_postgres() && !self.nonces.claim(&n, now_ms) {
                claimed.iter().for_each(|c| self.nonces.release(c));
                return Err(failed(AuthError::Replayed));
            }
            claimed.push(n);
        }
        Ok(claimed)
    }

    /// Commits the raw push; its legs and events are derived right after
    /// (a held push's once its sender is registered).
    async fn store_docs(
        &self,
        req: Incoming,
        ok: Accepted,
        received_at: String,
        received_ms: i64,
    ) -> Reply {
        let held = ok.outcome == pushes::Outcome::Held;
        if held {
            static LOG: LogThrottle = LogThrottle::new(Duration::from_secs(60));
            let sender = ok.sender_mac.as_deref().unwrap_or(&req.source);
            if let Some(left_out) = LOG.admit(sender) {
                warn!(source = %req.source, mac = ?ok.sender_mac, more_since_last_line = left_out,
                    "push from an unregistered sender stored and held (`callvault devices` lists it, `devices add` registers it)");
            }
        }
        let push = pushes::NewPush {
            received_at,
            received_ms,
            source: req.source,
            device: ok.device,
            method: req.method,
            path: req.path,
            query: req.query,
            body: req.body,
            outcome: ok.outcome,
            status: 200,
            reason: None,
            sender_mac: ok.sender_mac,
        };
        let written = if ok.nonces.is_empty() {
            self.store
                .writer
                .write_statement(move |tx| pushes::insert(tx, &push))
                .await
        } else if self.store.is_postgres() {
            match self
                .store_claimed(push, ok.nonces.clone(), received_ms)
                .await
            {
                Ok(Ok(id)) => Ok(id),
                Ok(Err(push)) => {
                    let refusal = Refusal {
                        status: 401,
                        reason: format!("authentication failed: {}", AuthError::Replayed),
                        device: push.device.clone(),
                        metric_reason: "auth",
                    };
                    let req = Incoming {
                        source: push.source,
                        method: push.method,
                        path: push.path,
                        query: push.query,
                        body: push.body,
                        body_end: BodyEnd::Whole,
                    };
                    return self
                        .quarantine(req, refusal, push.received_at, received_ms)
                        .await;
                }
                Err(e) => Err(e),
            }
        } else {
            let nonces = ok.nonces.clone();
            self.store
                .writer
                .write(move |tx| {
                    let id = pushes::insert(tx, &push)?;
                    for n in &nonces {
                        store::devices::insert_nonce(tx, n)?;
                    }
                    // Stale entries go as new ones come: the table stays
                    // as small as the cache.
                    if id % 256 == 0 {
                        store::devices::prune_nonces(tx, received_ms)?;
                    }
                    Ok(id)
                })
                .await
        };
        match written {
            Ok(_) => {
                let name = if held {
                    "callvault_pushes_held_total"
                } else {
                    "callvault_pushes_stored_total"
                };
                metrics::counter!(name).increment(1);
                Reply {
                    status: 200,
                    reason: None,
                    legs: ok.legs,
                    events: ok.events,
                    held,
                }
            }
            Err(e) => {
                ok.nonces.iter().for_each(|n| self.nonces.release(n));
                tracing::error!(error = %e, "could not store push");
                metrics::counter!("callvault_pushes_failed_total").increment(1);
                unavailable()
            }
        }
    }

    /// On PostgreSQL: claims the push's single-use nonces in the archive and
    /// stores the push, in one transaction. A nonce already claimed (on any
    /// collector) and still valid makes it a replay: nothing is written
    /// and the push comes back, to be quarantined.
    async fn store_claimed(
        &self,
        push: pushes::NewPush,
        nonces: Vec<Nonce>,
        now_ms: i64,
    ) -> store::Result<Result<i64, pushes::NewPush>> {
        self.store
            .writer
            .write(move |tx| {
                // A replay undoes the claims made before it (Err(None)).
                let claimed = store::savepoint(tx, |tx| {
                    for n in &nonces {
                        match store::devices::claim_nonce(tx, n, now_ms) {
                            Ok(true) => {}
                            Ok(false) => return Err(None),
                            Err(e) => return Err(Some(e)),
                        }
                    }
                    Ok(())
                })?;
                match claimed {
                    Ok(()) => {}
                    Err(None) => return Ok(Err(push)),
                    Err(Some(e)) => return Err(e),
                }
                let id = pushes::insert(tx, &push)?;
                // Stale entries go as new ones come: the table stays small.
                if id % 256 == 0 {
                    store::devices::prune_nonces(tx, now_ms)?;
                }
                Ok(Ok(id))
            })
            .await
    }

    /// Keeps a refused push with its reason, and answers the refusal.
    async fn quarantine(
        &self,
        req: Incoming,
        r: Refusal,
        received_at: String,
        received_ms: i64,
    ) -> Reply {
        // A span per push only for refusals: at thousands of pushes per
        // second an always-on span showed in the ingest profile.
        let span = info_span!("ingest", source = %req.source, path = %req.path);
        self.write_refusal(req, r, received_at, received_ms)
            .instrument(span)
            .await
    }

    async fn write_refusal(
        &self,
        mut req: Incoming,
        mut r: Refusal,
        received_at: String,
        received_ms: i64,
    ) -> Reply {
        // A device with a wrong password is refused at every push: one line
        // per source and kind of refusal every 10 s, with the count left
        // out. Every refusal is in the quarantine and the metric.
        static LOG: LogThrottle = LogThrottle::new(Duration::from_secs(10));
        if let Some(left_out) = LOG.admit(&format!("{} {}", req.source, r.metric_reason)) {
            warn!(
                status = r.status,
                reason = %r.reason,
                more_since_last_line = left_out,
                "push refused and quarantined"
            );
        }
        metrics::counter!("callvault_pushes_rejected_total", "reason" => r.metric_reason)
            .increment(1);
        // Refused junk from an unregistered source stays bounded on disk:
        // past its budget only the start of each body is kept, and the row
        // says so. Not a registered device's: its refused pushes are what
        // the operator recovers from once the configuration is fixed.
        // (`import:<file>` sources are no address: the operator's own.)
        if let Ok(ip) = req.source.parse::<IpAddr>() {
            if req.body.len() > QUARANTINE_KEPT_WHEN_OVER
                && !self.is_registered_source(ip)
                && !self.limits.quarantine_whole(ip, req.body.len())
            {
                req.body.truncate(QUARANTINE_KEPT_WHEN_OVER);
                r.reason.push_str(&format!(
                    "; body truncated to {QUARANTINE_KEPT_WHEN_OVER} bytes \
                     (quarantine budget of this source exhausted)"
                ));
                metrics::counter!("callvault_quarantine_truncated_total").increment(1);
                static BUDGET_LOG: LogThrottle = LogThrottle::new(Duration::from_secs(10));
                if let Some(left_out) = BUDGET_LOG.admit(&req.source) {
                    warn!(
                        source = %req.source,
                        budget_bytes_per_hour = self.cfg.ingest.quarantine_bytes_per_hour,
                        more_since_last_line = left_out,
                        "quarantine budget of this source exhausted: refused bodies truncated"
                    );
                }
            }
        }
        let push = pushes::NewPush {
            received_at,
            received_ms,
            source: req.source,
            device: r.device,
            method: req.method,
            path: req.path,
            query: req.query,
            body: req.body,
            outcome: pushes::Outcome::Quarantined,
            status: r.status,
            reason: Some(r.reason.clone()),
            sender_mac: None,
        };
        if let Err(e) = self
            .store
            .writer
            .write_statement(move |tx| pushes::insert(tx, &push))
            .await
        {
            tracing::error!(error = %e, "could not write quarantine row");
            return unavailable();
        }
        Reply {
            status: r.status,
            reason: Some(r.reason),
            legs: 0,
            events: 0,
            held: false,
        }
    }
}

/// The answer when the archive cannot take the push: the device retries.
fn unavailable() -> Reply {
    Reply {
        status: 503,
        reason: Some("archive unavailable, retry".into()),
        legs: 0,
        events: 0,
        held: false,
    }
}

/// The XML of a push: its body, or when the body is blank, the query string
/// (manual §1.2: GET puts it there). Err is (metric reason, one-line reason).
pub fn push_text<'a>(
    body: &'a [u8],
    query: Option<&str>,
) -> Result<Cow<'a, str>, (&'static str, String)> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return query
            .and_then(om::body_from_query)
            .map(Cow::Owned)
            .ok_or(("empty_body", "empty body".into()));
    }
    std::str::from_utf8(body).map(Cow::Borrowed).map_err(|e| {
        (
            "not_utf8",
            format!("body is not valid UTF-8 (at byte {})", e.valid_up_to()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DeviceConfig;
    use crate::store::testing::TestDb;

    fn signed_busy(nonce: &str, ts: i64) -> Incoming {
        let body = format!(
            "<Event attribute=\"BUSY\"><ext id=\"201\"/></Event>\n<Auth><nonce>{nonce}</nonce><timestamp>{ts}</timestamp><signature>{}</signature></Auth>",
            om::sign("s3cret", nonce, &ts.to_string())
        );
        Incoming {
            source: "127.0.0.1".into(),
            method: "POST".into(),
            path: "/".into(),
            query: None,
            body: body.into_bytes(),
            body_end: BodyEnd::Whole,
        }
    }

    /// On PostgreSQL the archive decides whether a single-use nonce was
    /// seen, so a replay is refused on whichever collector it reaches
    /// (OM manual §4.5), and kept in the quarantine like every refusal.
    #[test]
    fn a_replay_is_refused_by_another_collector() {
        let Some(db) = TestDb::fresh("a_replay_is_refused_by_another_collector") else {
            return;
        };
        let mut cfg = Config::default();
        cfg.devices.push(DeviceConfig {
            name: "hq".into(),
            push_from: vec!["127.0.0.1".into()],
            server_password: Some("s3cret".into()),
            auth_nonce_single_use: true,
            ..Default::default()
        });
        let cfg = Arc::new(cfg);
        let (one, two) = (db.store(), db.store());
        let a = Ingestor::new(one.clone(), cfg.clone());
        let b = Ingestor::new(two, cfg);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let now = chrono::Utc::now().timestamp();
        rt.block_on(async {
            assert_eq!(a.accept(signed_busy("A1", now)).await.status, 200);
            let replay = b.accept(signed_busy("A1", now)).await;
            assert_eq!(replay.status, 401, "{:?}", replay.reason);
            assert!(
                replay
                    .reason
                    .as_deref()
                    .unwrap_or("")
                    .contains("nonce already used"),
                "{replay:?}"
            );
            assert_eq!(a.accept(signed_busy("A1", now)).await.status, 401);
            assert_eq!(b.accept(signed_busy("A2", now)).await.status, 200);
        });
        let (counts, backlog) = one
            .read_blocking(|tx| Ok((pushes::counts(tx)?, pushes::derive_backlog(tx)?)))
            .expect("read");
        let reason = format!("authentication failed: {}", AuthError::Replayed);
        assert_eq!(
            counts,
            [
                ("quarantined".to_string(), Some(reason), 2),
                ("stored".to_string(), None, 2)
            ]
        );
        assert_eq!(backlog, 2, "only the stored pushes wait for derivation");
    }
}
