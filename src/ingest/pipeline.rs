//! One push, end to end: size and encoding checks, parsing, device
//! identification, reverse auth, then one durable write of the raw push.
//! Its legs and events are derived from that row right after the commit
//! (`derive`), off the device's path. Anything refused is written to the
//! quarantine (the `pushes` table with outcome `quarantined` and a reason)
//! before we answer, so bad input is never silently dropped.

use std::borrow::Cow;
use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tracing::{info_span, warn, Instrument};

use super::device::{self, Identified};
use super::limits::{SourceLimits, QUARANTINE_KEPT_WHEN_OVER};
use super::om;
use crate::config::Config;
use crate::log_throttle::LogThrottle;
use crate::model::{Document, Message};
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
}

#[derive(Clone)]
pub struct Ingestor {
    store: Store,
    cfg: Arc<Config>,
    /// The addresses of the configured devices (`is_registered_source`).
    registered: Arc<HashSet<IpAddr>>,
    /// Rates and quarantine budget of the other sources.
    limits: Arc<SourceLimits>,
}

/// Why a push was refused: status and one-line reason.
struct Refusal {
    status: u16,
    reason: String,
    device: Option<String>,
    metric_reason: &'static str,
}

impl Ingestor {
    pub fn new(store: Store, cfg: Arc<Config>) -> Ingestor {
        // The same match as `device::identify`, which compares the peer's
        // canonical IP text with each allowed source: an entry that is not
        // an IP in that very text (a host name, `::ffff:1.2.3.4`) matches no
        // peer there, so none here.
        let registered = cfg
            .devices
            .iter()
            .flat_map(|d| d.allowed_sources())
            .filter_map(|s| {
                let ip = s.parse::<IpAddr>().ok()?;
                (ip.to_canonical().to_string() == s).then_some(ip)
            })
            .collect();
        let limits = SourceLimits::new(&cfg.ingest);
        Ingestor {
            store,
            cfg,
            registered: Arc::new(registered),
            limits: Arc::new(limits),
        }
    }

    /// Whether `ip` is where a registered device pushes from. No limit
    /// (connection caps, rates, quarantine budget) ever applies to such a
    /// source: the OM device does not read replies, so a refused push from
    /// it is a lost CDR. Called per connection and per push: keep it cheap.
    pub fn is_registered_source(&self, ip: IpAddr) -> bool {
        self.registered.contains(&ip.to_canonical())
    }

    /// The push rates and quarantine budget of unregistered sources.
    pub fn limits(&self) -> &SourceLimits {
        &self.limits
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Checks, stores and answers one push. Never panics on input; a store
    /// failure answers 503 so the device (or operator) retries.
    pub async fn accept(&self, req: Incoming) -> Reply {
        metrics::counter!("callvault_pushes_received_total").increment(1);
        let (received_at, received_ms) = store::now_stamp();
        match self.check(&req) {
            Ok((device, docs)) => {
                self.store_docs(req, device, docs, received_at, received_ms)
                    .await
            }
            Err(r) => {
                // A span per push only for refusals: at thousands of pushes
                // per second an always-on span showed in the ingest profile.
                let span = info_span!("ingest", source = %req.source, path = %req.path);
                self.quarantine(req, r, received_at, received_ms)
                    .instrument(span)
                    .await
            }
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
        let span = info_span!("ingest", source = %req.source, path = %req.path);
        self.quarantine(req, r, received_at, received_ms)
            .instrument(span)
            .await
    }

    /// Everything that can refuse a push, before any write.
    fn check(&self, req: &Incoming) -> Result<(String, Vec<Document>), Refusal> {
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
        let docs = super::parse_push(&text).map_err(|e| refuse(400, "malformed", e))?;
        let mac = docs.iter().find_map(|d| d.message.mac());
        let ident = device::identify(&self.cfg, mac, &req.source).map_err(|e| {
            let status = 403;
            refuse(status, "device", e.to_string())
        })?;
        if let Identified::Known(dev) = &ident {
            if let Some(pw) = dev.server_password.as_deref().filter(|p| !p.is_empty()) {
                let now = chrono::Utc::now().timestamp();
                for d in &docs {
                    om::verify(d.auth.as_ref(), pw, dev.auth_timeout, now).map_err(|e| {
                        Refusal {
                            status: 401,
                            reason: format!("authentication failed: {e}"),
                            device: Some(dev.name.clone()),
                            metric_reason: "auth",
                        }
                    })?;
                }
            }
        }
        Ok((ident.name().to_string(), docs))
    }

    /// Commits the raw push; its legs and events are derived right after.
    async fn store_docs(
        &self,
        req: Incoming,
        device: String,
        docs: Vec<Document>,
        received_at: String,
        received_ms: i64,
    ) -> Reply {
        let legs = docs
            .iter()
            .filter(|d| matches!(d.message, Message::Cdr(_)))
            .count();
        let push = pushes::NewPush {
            received_at,
            received_ms,
            source: req.source,
            device: Some(device),
            method: req.method,
            path: req.path,
            query: req.query,
            body: req.body,
            outcome: pushes::Outcome::Stored,
            status: 200,
            reason: None,
        };
        match self
            .store
            .writer
            .write_statement(move |tx| pushes::insert(tx, &push))
            .await
        {
            Ok(_) => {
                metrics::counter!("callvault_pushes_stored_total").increment(1);
                Reply {
                    status: 200,
                    reason: None,
                    legs,
                    events: docs.len() - legs,
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "could not store push");
                metrics::counter!("callvault_pushes_failed_total").increment(1);
                unavailable()
            }
        }
    }

    async fn quarantine(
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
    }
}

/// The XML of a push: its body, or when the body is blank, the query string
/// (DESIGN §2). Err is (metric reason, one-line reason).
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
