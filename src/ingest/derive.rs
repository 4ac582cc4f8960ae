//! Deriving legs and events from committed pushes, and handing each new
//! one to the live stages (calls, queue visits, recording schedule).
//!
//! Ingest commits only the raw push before it answers the device (every
//! pushed byte is stored raw before it is interpreted: ARCHITECTURE.md,
//! "Durability"); this step runs right after on the store's writer thread,
//! in push order, and records what it derived (`pushes::mark_derived`) in
//! the same transaction as what it derived — so a crash loses nothing and
//! derives nothing twice. Under a burst it falls behind and catches up when the
//! burst ends, while the devices keep getting their 200s within a commit
//! (ARCHITECTURE.md, "Derivation").
//!
//! The live stages plug in as [`Hook`]s (`calls::live::hook`,
//! `queues::live::hook`, `recordings::schedule::hook`); `server` wires them.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::device::{norm_mac, Registry};
use crate::config::Config;
use crate::model::{Event, Leg, Message};
use crate::store::{self, legs::Inserted, pushes, Tx};

/// What one derived document became; handed to the live stages inside the
/// same transaction.
pub enum StoredItem<'a> {
    Leg {
        device: &'a str,
        row_id: i64,
        received_ms: i64,
        leg: &'a Leg,
    },
    Event {
        device: &'a str,
        seq: i64,
        received_ms: i64,
        event: &'a Event,
    },
}

/// Called for every newly stored leg or event, in the derivation's transaction.
pub type Hook = Arc<dyn Fn(&Tx, &StoredItem) -> Result<(), HookError> + Send + Sync>;

/// Why a live stage's hook failed: each stage has its own error type.
pub type HookError = Box<dyn std::error::Error + Send + Sync>;

/// Why one push could not be derived (it is marked with this and skipped).
#[derive(Debug, thiserror::Error)]
pub enum DeriveError {
    /// The archive refused a read or write.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// The stored push no longer parses: it passed the checks when it was
    /// committed, so the parser changed (or has a bug).
    #[error("push {push} does not parse again: {reason}")]
    Reparse { push: i64, reason: String },
    /// A live stage (calls, queue visits, recordings) failed on an item.
    #[error(transparent)]
    Stage(HookError),
}

/// Pushes read per query.
const PAGE: i64 = 64;

/// On PostgreSQL a collector that does not derive learns of a device
/// registered since later than this step does, and holds that device's
/// pushes meanwhile; `devices_version` does not move again for them. So
/// the deriver releases held pushes again this often, not only when the
/// version moves.
const RELEASE_AGAIN: Duration = Duration::from_secs(5);

pub struct Deriver {
    cfg: Arc<Config>,
    hooks: Vec<Hook>,
    registry: Arc<Registry>,
    /// When held pushes were last released (PostgreSQL: [`RELEASE_AGAIN`]).
    released_at: Mutex<Option<Instant>>,
}

impl Deriver {
    pub fn new(cfg: Arc<Config>, hooks: Vec<Hook>, registry: Arc<Registry>) -> Deriver {
        Deriver {
            cfg,
            hooks,
            registry,
            released_at: Mutex::new(None),
        }
    }

    /// The step for [`store::Writer::set_background`].
    pub fn into_background(self) -> store::Background {
        Box::new(
            move |tx: &Tx, deadline: Instant| -> Result<usize, store::StepError> {
                Ok(self.step(tx, deadline)?)
            },
        )
    }

    /// Derives committed pushes not derived yet until `deadline` passes or
    /// none is left; returns how many it derived. A push that fails is
    /// rolled back alone, marked with its error, and skipped.
    ///
    /// First it notices devices registered or removed since the last step
    /// (and gives them their held pushes), then derives released held
    /// pushes, then the stored pushes not derived yet in push order: each
    /// device's pushes are derived in push order. (On PostgreSQL, pushes
    /// of one device that collectors committed concurrently have no order
    /// of their own; one the device sent after another's 200 has the
    /// larger id and commits after it, so it is derived after it.)
    pub fn step(&self, tx: &Tx, deadline: Instant) -> store::Result<usize> {
        self.refresh_devices(tx)?;
        let mut done = 0usize;
        loop {
            let page = pushes::queued(tx, PAGE)?;
            if page.is_empty() {
                break;
            }
            for p in &page {
                self.derive_one(tx, p)?;
                pushes::dequeue(tx, p.id)?;
                done += 1;
                if Instant::now() >= deadline {
                    return Ok(done);
                }
            }
        }
        // Exactly the pushes derived in this slice are marked derived, in
        // its transaction: on SQLite the cursor moves to the last one, on
        // PostgreSQL they leave `derive_pending` (a push committed later
        // with a smaller id is still pending: `pushes::next_to_derive`).
        let mut derived: Vec<i64> = Vec::new();
        let mut after = None;
        'pages: loop {
            let page = pushes::next_to_derive(tx, after, PAGE)?;
            if page.is_empty() {
                break;
            }
            for p in &page {
                after = Some(p.id);
                derived.push(p.id);
                done += 1;
                self.derive_one(tx, p)?;
                if Instant::now() >= deadline {
                    break 'pages;
                }
            }
        }
        pushes::mark_derived(tx, &derived)?;
        Ok(done)
    }

    /// Derives one push in a savepoint: a failure is rolled back alone,
    /// marked with its error, and skipped.
    fn derive_one(&self, tx: &Tx, p: &pushes::Committed) -> store::Result<()> {
        if let Err(e) = store::savepoint(tx, |tx| self.derive(tx, p))? {
            tracing::error!(push = p.id, device = %p.device, error = %e,
                "could not derive legs/events of a stored push (raw body kept; `rebuild` after a fix)");
            metrics::counter!("callvault_derive_failures_total").increment(1);
            pushes::set_derive_error(tx, p.id, &e.to_string())?;
        }
        Ok(())
    }

    /// Reloads the archive's devices when `devices_version` moved (or on
    /// the first step) and releases every device's held pushes; on
    /// PostgreSQL releases them again every [`RELEASE_AGAIN`] too.
    fn refresh_devices(&self, tx: &Tx) -> store::Result<()> {
        let version = store::devices::version(tx)?;
        let devices = if self.registry.version() == Some(version) {
            if !(tx.is_postgres() && self.release_due()) {
                return Ok(());
            }
            self.registry.devices()
        } else {
            self.registry
                .set_registered(store::devices::active(tx)?, version)
        };
        *self.released_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        for d in devices {
            let mac = d.mac.as_deref().map(norm_mac);
            let released = store::devices::release_held(
                tx,
                &store::devices::Claim {
                    name: &d.name,
                    mac: mac.as_deref(),
                    sources: &d.allowed_sources(),
                },
            )?;
            if released > 0 {
                tracing::info!(device = %d.name, pushes = released,
                    "device registered: deriving the pushes held from it");
            }
        }
        Ok(())
    }

    fn release_due(&self) -> bool {
        self.released_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none_or(|t| t.elapsed() >= RELEASE_AGAIN)
    }

    fn derive(&self, tx: &Tx, p: &pushes::Committed) -> Result<(), DeriveError> {
        let docs = parse(p)?;
        let tz = self.cfg.device_tz(&p.device);
        let device = p.device.as_str();
        let (mut legs, mut events) = (0u64, 0u64);
        for doc in &docs {
            match &doc.message {
                Message::Cdr(leg) => {
                    let ins = store::legs::insert(tx, device, p.id, p.received_ms, leg, tz)?;
                    if let Inserted::New(row_id) = ins {
                        legs += 1;
                        self.run_hooks(
                            tx,
                            &StoredItem::Leg {
                                device,
                                row_id,
                                received_ms: p.received_ms,
                                leg,
                            },
                        )?;
                    } else {
                        let kind = if matches!(ins, Inserted::Duplicate(_)) {
                            "duplicate"
                        } else {
                            "conflict"
                        };
                        metrics::counter!("callvault_legs_repushed_total", "kind" => kind)
                            .increment(1);
                    }
                }
                Message::Event(ev) => {
                    let seq =
                        store::events::insert(tx, device, p.id, &p.received_at, p.received_ms, ev)?;
                    events += 1;
                    self.run_hooks(
                        tx,
                        &StoredItem::Event {
                            device,
                            seq,
                            received_ms: p.received_ms,
                            event: ev,
                        },
                    )?;
                }
            }
        }
        metrics::counter!("callvault_legs_stored_total").increment(legs);
        metrics::counter!("callvault_events_stored_total").increment(events);
        Ok(())
    }

    fn run_hooks(&self, tx: &Tx, item: &StoredItem) -> Result<(), DeriveError> {
        self.hooks
            .iter()
            .try_for_each(|h| h(tx, item))
            .map_err(DeriveError::Stage)
    }
}

/// The documents of a stored push: the checks already passed before it was
/// committed, so a failure here means the parser changed (or a bug).
fn parse(p: &pushes::Committed) -> Result<Vec<crate::model::Document>, DeriveError> {
    let reparse = |reason: String| DeriveError::Reparse { push: p.id, reason };
    let text =
        super::pipeline::push_text(&p.body, p.query.as_deref()).map_err(|(_, e)| reparse(e))?;
    // No cap here: the push passed the one it was accepted under.
    super::parse_push(&text, usize::MAX).map_err(|e| reparse(e.reason))
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;
    use crate::store::testing::{each_backend, TestDb};
    use crate::store::Store;

    fn deriver() -> Arc<Deriver> {
        let cfg = Arc::new(Config::default());
        let registry = Registry::new(&cfg);
        Arc::new(Deriver::new(cfg, Vec::new(), registry))
    }

    fn cdr_push(cdr_id: &str) -> pushes::NewPush {
        let (received_at, received_ms) = store::now_stamp();
        let body = format!(
            r#"<?xml version="1.0" encoding="utf-8" ?>
<Cdr id="{cdr_id}">
  <callid>32818</callid>
  <visitor id="48" />
  <TimeStart>20170309162708</TimeStart>
  <Type>IN</Type>
  <Route>IP</Route>
  <CPN>18201008888</CPN>
  <CDPN>200</CDPN>
  <TimeEnd>20170309162713</TimeEnd>
  <Duration>2</Duration>
  <TrunkNumber>888</TrunkNumber>
</Cdr>
"#
        );
        pushes::NewPush {
            received_at,
            received_ms,
            source: "127.0.0.1".into(),
            device: Some("om".into()),
            method: "POST".into(),
            path: "/".into(),
            query: None,
            body: body.into_bytes(),
            outcome: pushes::Outcome::Stored,
            status: 200,
            reason: None,
            sender_mac: None,
        }
    }

    fn step(store: &Store, deriver: &Arc<Deriver>) -> usize {
        let d = deriver.clone();
        store
            .writer
            .write_blocking(move |tx| d.step(tx, Instant::now() + Duration::from_secs(60)))
            .expect("step")
    }

    fn legs(store: &Store) -> i64 {
        store.read_blocking(store::legs::count).expect("legs")
    }

    /// Each stored push is derived once, across steps, and a step with
    /// nothing new derives nothing.
    #[test]
    fn each_push_is_derived_once() {
        each_backend("each_push_is_derived_once", |_, store| {
            let d = deriver();
            for id in ["1-0", "2-0"] {
                store
                    .writer
                    .write_blocking(move |tx| pushes::insert(tx, &cdr_push(id)))
                    .expect("push");
            }
            assert_eq!(step(store, &d), 2);
            assert_eq!(legs(store), 2);
            assert_eq!(step(store, &d), 0);
            store
                .writer
                .write_blocking(|tx| pushes::insert(tx, &cdr_push("3-0")))
                .expect("push");
            assert_eq!(step(store, &d), 1);
            assert_eq!(legs(store), 3);
            let backlog = store
                .read_blocking(pushes::derive_backlog)
                .expect("backlog");
            assert_eq!(backlog, 0);
        });
    }

    /// A held push derives nothing until its sender is registered; then
    /// it is released to the device and derived, once.
    #[test]
    fn a_held_push_is_derived_once_its_sender_is_registered() {
        each_backend(
            "a_held_push_is_derived_once_its_sender_is_registered",
            |_, store| {
                let d = deriver();
                let mut held = cdr_push("1-0");
                held.outcome = pushes::Outcome::Held;
                held.device = None;
                held.source = "10.0.0.7".into();
                store
                    .writer
                    .write_blocking(move |tx| pushes::insert(tx, &held))
                    .expect("held push");
                assert_eq!(step(store, &d), 0);
                assert_eq!(legs(store), 0);
                store
                    .writer
                    .write_blocking(|tx| store::devices::add(tx, "om", None, Some("10.0.0.7")))
                    .expect("add");
                assert_eq!(step(store, &d), 1);
                assert_eq!(step(store, &d), 0, "nothing twice");
                let tz = |_: &str| chrono_tz::UTC;
                store
                    .read_blocking(|tx| {
                        assert_eq!(store::legs::count(tx)?, 1);
                        assert!(store::legs::by_cdr_id(tx, "om", "1-0", &tz)?.is_some());
                        assert_eq!(pushes::derive_backlog(tx)?, 0);
                        Ok(())
                    })
                    .expect("read");
            },
        );
    }

    /// On PostgreSQL a collector whose registry has not caught up with a
    /// `devices add` holds that device's pushes; the deriver releases them
    /// at its next look, though `devices_version` did not move again.
    #[test]
    fn a_push_held_by_a_collector_that_did_not_know_the_device_yet_is_released() {
        let Some(db) = TestDb::fresh("a_push_held_by_a_collector_that_did_not_know") else {
            return;
        };
        let store = db.store();
        let d = deriver();
        store
            .writer
            .write_blocking(|tx| store::devices::add(tx, "om", None, Some("10.0.0.7")))
            .expect("add");
        assert_eq!(step(&store, &d), 0, "the registry is loaded");
        let mut held = cdr_push("1-0");
        held.outcome = pushes::Outcome::Held;
        held.device = None;
        held.source = "10.0.0.7".into();
        store
            .writer
            .write_blocking(move |tx| pushes::insert(tx, &held))
            .expect("held push");
        assert_eq!(step(&store, &d), 0, "not looked at again yet");
        *d.released_at.lock().expect("lock") = None;
        assert_eq!(step(&store, &d), 1);
        assert_eq!(step(&store, &d), 0);
        let tz = |_: &str| chrono_tz::UTC;
        let leg = store
            .read_blocking(|tx| store::legs::by_cdr_id(tx, "om", "1-0", &tz))
            .expect("read");
        assert!(leg.is_some());
    }

    /// On PostgreSQL collectors commit concurrently: a push whose id is
    /// below one already derived can commit after it. It is derived at the
    /// next step, and neither is derived twice.
    #[test]
    fn a_push_committed_after_a_larger_id_is_still_derived_once() {
        let Some(db) = TestDb::fresh("a_push_committed_after_a_larger_id_is_still_derived_once")
        else {
            return;
        };
        let store = db.store();
        let pg = store.postgres().expect("on PostgreSQL").clone();
        let d = deriver();
        let (inserted, got_id) = mpsc::channel();
        let (commit, may_commit) = mpsc::channel::<()>();
        // The smaller id: inserted first, committed last.
        let first = std::thread::spawn(move || {
            pg.with_tx(false, |tx| {
                let id = pushes::insert(tx, &cdr_push("1-0"))?;
                inserted.send(id).expect("send");
                may_commit.recv().expect("recv");
                Ok(id)
            })
        });
        let small = got_id.recv().expect("first insert");
        let large = store
            .writer
            .write_blocking(|tx| pushes::insert(tx, &cdr_push("2-0")))
            .expect("second push");
        assert!(large > small, "{large} > {small}");
        assert_eq!(step(&store, &d), 1, "only the committed one");
        assert_eq!(legs(&store), 1);
        commit.send(()).expect("commit");
        assert_eq!(first.join().expect("thread").expect("first push"), small);
        assert_eq!(step(&store, &d), 1, "the smaller id, committed late");
        assert_eq!(step(&store, &d), 0, "nothing twice");
        let tz = |_: &str| chrono_tz::UTC;
        store
            .read_blocking(|tx| {
                assert_eq!(store::legs::count(tx)?, 2);
                for cdr in ["1-0", "2-0"] {
                    assert!(
                        store::legs::by_cdr_id(tx, "om", cdr, &tz)?.is_some(),
                        "{cdr}"
                    );
                }
                assert_eq!(pushes::derive_backlog(tx)?, 0);
                Ok(())
            })
            .expect("read");
    }
}
