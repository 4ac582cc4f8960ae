//! One push, end to end: size and encoding checks, parsing, device
//! identification, reverse auth, then one durable write of the raw body
//! plus every leg and event it carried. Anything refused is written to the
//! quarantine (the `pushes` table with outcome `quarantined` and a reason)
//! before we answer, so bad input is never silently dropped.

use std::sync::Arc;

use rusqlite::Transaction;
use tracing::{info_span, warn, Instrument};

use super::device::{self, Identified};
use super::om;
use crate::config::Config;
use crate::model::{Document, Message};
use crate::store::{self, legs::Inserted, pushes, Store};

/// A request as the listener (or `import`) saw it.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// Peer IP (or `import:<file>` for replays).
    pub source: String,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub body: Vec<u8>,
    /// The body was cut at `max_body_bytes`: `body` holds only its start.
    pub oversized: bool,
}

/// What to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    /// One-line reason for a refusal.
    pub reason: Option<String>,
    pub legs: usize,
    pub events: usize,
}

/// What one stored document became; handed to the live stages (calls,
/// queues, recordings) inside the same transaction.
pub enum StoredItem<'a> {
    Leg {
        device: &'a str,
        row_id: i64,
        received_ms: i64,
        leg: &'a crate::model::Leg,
    },
    Event {
        device: &'a str,
        seq: i64,
        received_ms: i64,
        event: &'a crate::model::Event,
    },
}

/// Called for every newly stored leg or event, in the push's transaction.
pub type Hook = Arc<dyn Fn(&Transaction, &StoredItem) -> store::Result<()> + Send + Sync>;

#[derive(Clone)]
pub struct Ingestor {
    store: Store,
    cfg: Arc<Config>,
    hooks: Arc<Vec<Hook>>,
}

/// Why a push was refused: status and one-line reason.
struct Refusal {
    status: u16,
    reason: String,
    device: Option<String>,
    metric_reason: &'static str,
}

impl Ingestor {
    pub fn new(store: Store, cfg: Arc<Config>, hooks: Vec<Hook>) -> Ingestor {
        Ingestor {
            store,
            cfg,
            hooks: Arc::new(hooks),
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Checks, stores and answers one push. Never panics on input; a store
    /// failure answers 503 so the device (or operator) retries.
    pub async fn accept(&self, req: Incoming) -> Reply {
        metrics::counter!("callvault_pushes_received_total").increment(1);
        let span = info_span!("ingest", source = %req.source, path = %req.path);
        async move {
            let (received_at, received_ms) = store::now_stamp();
            match self.check(&req) {
                Ok((device, docs)) => {
                    self.store_docs(req, device, docs, received_at, received_ms)
                        .await
                }
                Err(r) => self.quarantine(req, r, received_at, received_ms).await,
            }
        }
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
        if req.oversized {
            return Err(refuse(
                413,
                "too_large",
                format!(
                    "body exceeds max_body_bytes ({} bytes)",
                    self.cfg.ingest.max_body_bytes
                ),
            ));
        }
        let from_query;
        let text: &str = if req.body.iter().all(|b| b.is_ascii_whitespace()) {
            from_query = req.query.as_deref().and_then(om::body_from_query);
            match &from_query {
                Some(q) => q,
                None => return Err(refuse(400, "empty_body", "empty body".into())),
            }
        } else {
            std::str::from_utf8(&req.body).map_err(|e| {
                refuse(
                    400,
                    "not_utf8",
                    format!("body is not valid UTF-8 (at byte {})", e.valid_up_to()),
                )
            })?
        };
        let docs = om::parse_body(text).map_err(|e| refuse(400, "malformed", e.to_string()))?;
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

    async fn store_docs(
        &self,
        req: Incoming,
        device: String,
        docs: Vec<Document>,
        received_at: String,
        received_ms: i64,
    ) -> Reply {
        let tz = self.cfg.device_tz(&device);
        let hooks = self.hooks.clone();
        let push = pushes::NewPush {
            received_at: received_at.clone(),
            received_ms,
            source: req.source,
            device: Some(device.clone()),
            method: req.method,
            path: req.path,
            body: req.body,
            outcome: pushes::Outcome::Stored,
            status: 200,
            reason: None,
        };
        let res = self
            .store
            .writer
            .write(move |tx| {
                let push_id = pushes::insert(tx, &push)?;
                let (mut legs, mut events) = (0usize, 0usize);
                for doc in &docs {
                    match &doc.message {
                        Message::Cdr(leg) => {
                            let ins = store::legs::insert(tx, &device, push_id, received_ms, leg, tz)?;
                            if let Inserted::New(row_id) = ins {
                                legs += 1;
                                let item = StoredItem::Leg { device: &device, row_id, received_ms, leg };
                                for h in hooks.iter() {
                                    h(tx, &item)?;
                                }
                            } else {
                                metrics::counter!("callvault_legs_repushed_total",
                                    "kind" => if matches!(ins, Inserted::Duplicate(_)) { "duplicate" } else { "conflict" })
                                .increment(1);
                            }
                        }
                        Message::Event(ev) => {
                            let seq = store::events::insert(tx, &device, push_id, &received_at, received_ms, ev)?;
                            events += 1;
                            let item = StoredItem::Event { device: &device, seq, received_ms, event: ev };
                            for h in hooks.iter() {
                                h(tx, &item)?;
                            }
                        }
                    }
                }
                Ok((legs, events))
            })
            .await;
        match res {
            Ok((legs, events)) => {
                metrics::counter!("callvault_pushes_stored_total").increment(1);
                metrics::counter!("callvault_legs_stored_total").increment(legs as u64);
                metrics::counter!("callvault_events_stored_total").increment(events as u64);
                Reply {
                    status: 200,
                    reason: None,
                    legs,
                    events,
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "could not store push");
                metrics::counter!("callvault_pushes_failed_total").increment(1);
                Reply {
                    status: 503,
                    reason: Some("archive unavailable, retry".into()),
                    legs: 0,
                    events: 0,
                }
            }
        }
    }

    async fn quarantine(
        &self,
        req: Incoming,
        r: Refusal,
        received_at: String,
        received_ms: i64,
    ) -> Reply {
        warn!(status = r.status, reason = %r.reason, "push refused and quarantined");
        metrics::counter!("callvault_pushes_rejected_total", "reason" => r.metric_reason)
            .increment(1);
        let push = pushes::NewPush {
            received_at,
            received_ms,
            source: req.source,
            device: r.device,
            method: req.method,
            path: req.path,
            body: req.body,
            outcome: pushes::Outcome::Quarantined,
            status: r.status,
            reason: Some(r.reason.clone()),
        };
        if let Err(e) = self
            .store
            .writer
            .write(move |tx| pushes::insert(tx, &push))
            .await
        {
            tracing::error!(error = %e, "could not write quarantine row");
            return Reply {
                status: 503,
                reason: Some("archive unavailable, retry".into()),
                legs: 0,
                events: 0,
            };
        }
        Reply {
            status: r.status,
            reason: Some(r.reason),
            legs: 0,
            events: 0,
        }
    }
}
