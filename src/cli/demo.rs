//! `callvault demo`: the whole product without a PBX. Starts `serve` on
//! `./demo-data` (or `--data`), a simulated OM device that has already pushed
//! a business day (yesterday) and keeps pushing calls in real time, and its
//! recorder serving the recordings those calls name (G.729 calls say the
//! simulator's dialogues, `sim::dialogue`). Prints the web address
//! with an admin token: the archive's token named `demo`, replaced at every
//! start (its text cannot be shown again, only its hash is stored), so
//! repeated demos leave one demo token, not one per start.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;
use chrono::{Duration, NaiveDateTime, Utc};
use clap::Args;

use crate::config::{Config, DeviceConfig};
use crate::sim::push::{self, Pace, Target};
use crate::sim::{generate, recorder, Plan, SimConfig};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Calls per hour of the live stream.
    #[arg(long, default_value_t = 120.0)]
    pub calls_per_hour: f64,
    /// Calls already made yesterday between 08:00 and 20:00 (pushed at start, so
    /// yesterday's daily report and billing have data at once).
    #[arg(long, default_value_t = 400)]
    pub backfill_calls: usize,
    /// Run the live stream this many times faster than real time.
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Random seed of the simulated traffic.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Address of the web page and API.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Address the simulated device pushes to (loopback only by default).
    #[arg(long, default_value = "127.0.0.1:8989")]
    pub ingest: String,
}

/// Name of the simulated device in the archive.
const DEVICE: &str = "demo-om";
/// Name of the demo's admin token in the archive.
pub const DEMO_TOKEN: &str = "demo";

pub fn run(mut cfg: Config, a: DemoArgs, data_given: bool) -> anyhow::Result<ExitCode> {
    if !data_given {
        cfg.data_dir = "demo-data".into();
    }
    anyhow::ensure!(
        a.speed > 0.0 && a.speed.is_finite(),
        "--speed must be a positive number"
    );
    cfg.ingest.listen = free_or_any(&a.ingest);
    cfg.api.listen = free_or_any(&a.listen);
    // Short delays so the demo shows settled calls and fetched recordings
    // within a minute rather than the production defaults.
    cfg.calls.settle_seconds = 30;
    cfg.recordings.fetch_delay_seconds = 3;
    let tz = cfg.default_tz();
    let now = Utc::now().with_timezone(&tz).naive_local();
    let backfill = generate(&SimConfig {
        seed: a.seed,
        calls: a.backfill_calls,
        start: yesterday_at_8(now),
        calls_per_hour: a.backfill_calls as f64 / 12.0,
        timezone: tz,
        ..SimConfig::default()
    });
    // One day of live traffic; the stream ends after it (the server keeps running).
    let live = generate(&SimConfig {
        seed: a.seed.wrapping_add(1),
        calls: (a.calls_per_hour * 24.0).round().max(1.0) as usize,
        start: now + Duration::seconds(5),
        calls_per_hour: a.calls_per_hour,
        timezone: tz,
        ..SimConfig::default()
    });
    super::runtime()?.block_on(async move {
        let specs = backfill
            .recordings
            .iter()
            .chain(&live.recordings)
            .cloned()
            .collect();
        let rec = recorder::start(specs, Default::default())
            .await
            .context("starting the simulated recorder")?;
        cfg.devices.push(DeviceConfig {
            name: DEVICE.into(),
            push_from: vec!["127.0.0.1".into()],
            recorder_url: Some(rec.base_url()),
            ..Default::default()
        });
        let data = cfg.data_dir.clone();
        let running = crate::server::start(cfg).await?;
        let token = running
            .store
            .writer
            .write(|tx| crate::store::tokens::rotate(tx, DEMO_TOKEN, "admin"))
            .await
            .context("creating the demo token")?;
        print_banner(
            running.api_addr,
            running.ingest_addr,
            &rec.base_url(),
            &data,
            &token,
            3600.0 / a.calls_per_hour.max(0.01) / a.speed,
        );

        let target = Target {
            addr: running.ingest_addr.to_string(),
            path: "/omapi".into(),
            post: false,
        };
        let ing = running.ingestor.clone();
        let stream = tokio::spawn(async move {
            // Yesterday's calls keep their timing: stored with the times the
            // device would have sent them, through the in-process path, so
            // their queue visits and waits count on their day.
            backfill_plan(&ing, &backfill, tz).await;
            push_plan(&target, &live, Pace::Timeline(a.speed), "live calls").await;
        });
        crate::server::shutdown_signal().await;
        eprintln!("stopping…");
        stream.abort();
        running.stop().await;
        rec.stop().await;
        Ok(ExitCode::SUCCESS)
    })
}

/// Stores `plan`'s pushes as received at their planned times (device
/// local time in `tz`), as `callvault import --manifest` does.
async fn backfill_plan(ing: &crate::ingest::Ingestor, plan: &Plan, tz: chrono_tz::Tz) {
    use chrono::TimeZone;
    tracing::info!(
        pushes = plan.pushes.len(),
        "storing yesterday's calls with their receive times"
    );
    let (mut ok, mut refused) = (0usize, 0usize);
    for p in &plan.pushes {
        let Some(at) = tz.from_local_datetime(&p.at).earliest() else {
            continue; // a time a DST gap skipped: none in the demo's zones
        };
        let req = crate::ingest::Incoming {
            source: "127.0.0.1".into(),
            method: "GET".into(),
            path: "/omapi".into(),
            query: None,
            body: p.body.clone().into_bytes(),
            body_end: crate::ingest::BodyEnd::Whole,
        };
        match ing
            .accept_received(req, at.with_timezone(&Utc))
            .await
            .reason
        {
            None => ok += 1,
            Some(r) => {
                refused += 1;
                tracing::warn!(reason = %r, "a backfilled push was refused");
            }
        }
    }
    tracing::info!(ok, refused, "stored yesterday's calls");
}

async fn push_plan(target: &Target, plan: &Plan, pace: Pace, what: &str) {
    tracing::info!(
        pushes = plan.pushes.len(),
        "simulated device pushing {what}"
    );
    let sent = push::run(target, &plan.pushes, pace, |i, r| {
        if let Err(e) = r {
            tracing::warn!(push = i, error = %e, "simulated push failed");
        }
    })
    .await;
    tracing::info!(
        ok = sent.ok,
        refused = sent.refused,
        failed = sent.failed,
        "simulated device finished {what}"
    );
}

fn yesterday_at_8(now: NaiveDateTime) -> NaiveDateTime {
    (now.date() - Duration::days(1))
        .and_hms_opt(8, 0, 0)
        .unwrap_or(now)
}

/// `addr` if it can be bound now, else the same host on a free port (a
/// second demo or a running `serve` should not stop the demo from starting).
fn free_or_any(addr: &str) -> String {
    match std::net::TcpListener::bind(addr) {
        Ok(_) => addr.to_string(),
        Err(_) => {
            let host = addr.rsplit_once(':').map(|(h, _)| h).unwrap_or("127.0.0.1");
            eprintln!("{addr} is busy; using a free port instead");
            format!("{host}:0")
        }
    }
}

fn print_banner(
    api: SocketAddr,
    ingest: SocketAddr,
    recorder: &str,
    data: &std::path::Path,
    token: &str,
    gap_s: f64,
) {
    println!("callvault demo");
    println!("  archive:           {}", data.display());
    println!("  device pushes to:  http://{ingest}/omapi");
    println!("  device recorder:   {recorder}");
    println!("  web page:          http://{api}/#token={token}");
    println!(
        "Yesterday's calls are pushed now, then a new call every ~{gap_s:.0} s. Ctrl-C stops."
    );
    println!("admin token (also for curl -H 'Authorization: Bearer …'):");
    println!("{token}");
}
