//! `callvault simulate`: the simulated OM device alone, pushing to any collector.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::config::Config;
use crate::sim::push::{self, Pace, Target};
use crate::sim::{generate, SimConfig};

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Collector URL, e.g. http://127.0.0.1:8989/omapi (the device's configured API URL).
    #[arg(long)]
    pub target: String,
    /// Number of calls to simulate.
    #[arg(long, default_value_t = 100)]
    pub calls: usize,
    /// Pushes per second (0 = as fast as possible).
    #[arg(long, default_value_t = 50.0)]
    pub rate: f64,
    /// Random seed: the same seed gives the same traffic.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Device-local time of the first call, "YYYY-MM-DD HH:MM:SS" (default: now minus the plan's length).
    #[arg(long)]
    pub start: Option<String>,
    /// Mean arrival rate of calls per hour of simulated time.
    #[arg(long, default_value_t = 120.0)]
    pub calls_per_hour: f64,
    /// Put <MAC> into every message.
    #[arg(long)]
    pub mac: Option<String>,
    /// Sign every message (API_SERVER_PASSWORD, OM manual §4.5).
    #[arg(long)]
    pub server_password: Option<String>,
    /// Use POST (API_METHOD=1) instead of GET.
    #[arg(long)]
    pub post: bool,
    /// Write what really happened (calls and queue visits) as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub truth: Option<PathBuf>,
    /// Also serve the plan's recordings at this address (/mcc/Recorder/…) until Ctrl-C.
    #[arg(long, value_name = "ADDR")]
    pub recorder: Option<String>,
}

pub fn sim_config(a: &SimulateArgs, tz: chrono_tz::Tz) -> anyhow::Result<SimConfig> {
    let start = match &a.start {
        Some(s) => chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
            .with_context(|| format!("--start {s:?}: expected \"YYYY-MM-DD HH:MM:SS\""))?,
        None => {
            let hours = a.calls as f64 / a.calls_per_hour.max(0.01);
            let now = chrono::Utc::now().with_timezone(&tz).naive_local();
            now - chrono::Duration::seconds((hours * 3600.0) as i64 + 600)
        }
    };
    Ok(SimConfig {
        seed: a.seed,
        calls: a.calls,
        start,
        calls_per_hour: a.calls_per_hour,
        mac: a.mac.clone(),
        server_password: a.server_password.clone(),
        timezone: tz,
        ..SimConfig::default()
    })
}

pub fn run(cfg: Config, a: SimulateArgs) -> anyhow::Result<ExitCode> {
    let mut target = Target::parse(&a.target)?;
    target.post = a.post;
    let plan = generate(&sim_config(&a, cfg.default_tz())?);
    if let Some(p) = &a.truth {
        std::fs::write(p, serde_json::to_vec_pretty(&plan.truth)?)
            .with_context(|| format!("writing {}", p.display()))?;
    }
    eprintln!(
        "simulating {} calls: {} pushes, {} recordings -> {}",
        a.calls,
        plan.pushes.len(),
        plan.recordings.len(),
        a.target
    );
    let sent = super::runtime()?.block_on(async {
        // The recorder is up before the first push so that an archiver
        // fetching on CDR arrival finds the files.
        let recorder = match &a.recorder {
            Some(addr) => {
                let h = crate::sim::recorder::start_at(
                    addr,
                    plan.recordings.clone(),
                    Default::default(),
                )
                .await
                .with_context(|| format!("binding the simulated recorder on {addr}"))?;
                eprintln!("simulated recorder serving {}", h.base_url());
                Some(h)
            }
            None => None,
        };
        let sent = push::run(&target, &plan.pushes, Pace::Rate(a.rate), |i, r| {
            if let Err(e) = r {
                tracing::warn!(push = i, error = %e, "push failed");
            }
        })
        .await;
        if let Some(h) = recorder {
            eprintln!("pushes done; recorder keeps serving until Ctrl-C");
            crate::server::shutdown_signal().await;
            h.stop().await;
        }
        anyhow::Ok(sent)
    })?;
    println!(
        "{} pushes accepted, {} refused, {} failed",
        sent.ok, sent.refused, sent.failed
    );
    Ok(if sent.refused + sent.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}
