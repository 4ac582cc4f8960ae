//! `callvault devices [list|add|remove]`: who may put records in the
//! archive. The config file's `[[device]]` tables and the devices
//! registered here together; senders whose pushes are held because they
//! match neither. The list has each one's figures (`crate::device_status`,
//! the same JSON as `GET /api/devices`).

use std::process::ExitCode;

use anyhow::bail;
use clap::{ArgGroup, Args, Subcommand, ValueEnum};

use crate::config::Config;
use crate::device_status;
use crate::ingest::device::norm_mac;
use crate::store::{devices, Store};

#[derive(Debug, Subcommand)]
pub enum DevicesCmd {
    /// Configured and registered devices, and unregistered senders, with their figures
    /// (the default when no command is given).
    List {
        #[command(flatten)]
        out: ListFormat,
    },
    /// Register a device: its held pushes are derived at once (by the running server, or by the
    /// next `serve`), and its later pushes count in calls, billing and reports.
    #[command(group(ArgGroup::new("id").required(true).args(["mac", "ip"])))]
    Add {
        /// Name in the archive and the API.
        #[arg(long)]
        name: String,
        /// The MAC (OM `<MAC>`, API_MAC=yes) or `sn` (IVR PBX) its pushes name.
        #[arg(long)]
        mac: Option<String>,
        /// The address it pushes from; its recordings are fetched from http://IP/mcc/Recorder/.
        /// With --mac too, pushes naming the MAC from another address are refused (403).
        #[arg(long)]
        ip: Option<std::net::IpAddr>,
    },
    /// Stop deriving a registered device's new pushes (they are held again); what was derived stays.
    Remove {
        /// The registered device's name.
        name: String,
    },
}

/// How the list is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// `--format table|json` (`--json` is `--format json`).
#[derive(Debug, Clone, Copy, Args)]
pub struct ListFormat {
    /// table (the default) or json: the same JSON as `GET /api/devices`.
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Same as --format json.
    #[arg(long)]
    json: bool,
}

impl ListFormat {
    fn json(self) -> bool {
        self.json || self.format == Some(Format::Json)
    }
}

pub fn run(cfg: Config, cmd: Option<DevicesCmd>, out: ListFormat) -> anyhow::Result<ExitCode> {
    let store = Store::open_config(&cfg)?;
    match cmd.unwrap_or(DevicesCmd::List { out }) {
        DevicesCmd::List { out: inner } => list(&cfg, &store, out.json() || inner.json()),
        DevicesCmd::Add { name, mac, ip } => {
            let name = name.trim().to_string();
            if name.is_empty() {
                bail!("--name must not be empty");
            }
            if cfg.device(&name).is_some() {
                bail!("{name} is a [[device]] of the config file already");
            }
            let mac = mac.map(|m| norm_mac(&m)).filter(|m| !m.is_empty());
            if let Some(m) = &mac {
                if let Some(d) = cfg
                    .devices
                    .iter()
                    .find(|d| d.mac.as_deref().map(norm_mac).as_deref() == Some(m))
                {
                    bail!("MAC {m} belongs to the config file's device {}", d.name);
                }
            }
            let ip = ip.map(|ip| ip.to_canonical().to_string());
            let (n, m, i) = (name.clone(), mac.clone(), ip.clone());
            // Counted in the registering transaction, by the rule the server
            // releases them by: after the commit a running server may
            // already have taken them.
            let (added, waiting) = store.writer.write_blocking(move |tx| {
                if !devices::add(tx, &n, m.as_deref(), i.as_deref())? {
                    return Ok((false, 0));
                }
                let sources: Vec<String> = i.into_iter().collect();
                let claim = devices::Claim {
                    name: &n,
                    mac: m.as_deref(),
                    sources: &sources,
                };
                Ok((true, devices::held_for(tx, &claim)?.len()))
            })?;
            if !added {
                bail!(
                    "a device called {name} is registered already (`devices remove {name}` first)"
                );
            }
            if mac.is_some() && ip.is_none() {
                eprintln!(
                    "warning: {name} has a MAC but no --ip: anyone who can reach the ingest port can push as it"
                );
            }
            println!(
                "registered {name}; {waiting} held pushes from it are derived by the running server \
                 within seconds (or by the next `serve`)"
            );
            Ok(ExitCode::SUCCESS)
        }
        DevicesCmd::Remove { name } => {
            if cfg.device(&name).is_some() {
                bail!("{name} is a [[device]] of the config file: remove it there and restart");
            }
            let n = name.clone();
            if !store
                .writer
                .write_blocking(move |tx| devices::remove(tx, &n))?
            {
                bail!("no registered device called {name}");
            }
            println!("removed {name}: its new pushes are held; what was derived stays");
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn list(cfg: &Config, store: &Store, json: bool) -> anyhow::Result<ExitCode> {
    let c = cfg.clone();
    let now_ms = chrono::Utc::now().timestamp_millis();
    let rows = store.read_blocking(move |tx| device_status::rows(&c, tx, now_ms))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<14} {:<12} {:<18} {:<16} {:>7} {:>7} {:>7} {:>7} {:>7} {:>6}  {:<24} SILENT",
        "NAME",
        "KIND",
        "MAC",
        "ADDRESS",
        "PUSHES",
        "TODAY",
        "REFUSED",
        "REC.PND",
        "REC.ERR",
        "SKEW",
        "LAST PUSH"
    );
    let dash = || "-".to_string();
    for r in &rows {
        let silent = match (r.silent, r.silent_for_seconds, r.usual_gap_seconds) {
            (true, Some(q), Some(g)) => format!("SILENT {q}s (usually {g}s)"),
            _ => String::new(),
        };
        println!(
            "{:<14} {:<12} {:<18} {:<16} {:>7} {:>7} {:>7} {:>7} {:>7} {:>6}  {:<24} {}",
            r.name.clone().unwrap_or_else(dash),
            r.kind,
            r.mac.clone().unwrap_or_else(dash),
            r.address.clone().unwrap_or_else(dash),
            r.pushes,
            r.pushes_today,
            r.refused_today,
            r.recordings_pending,
            r.recordings_failed,
            r.clock_skew_seconds.map_or_else(dash, |s| format!("{s}s")),
            r.last_push.clone().unwrap_or_else(dash),
            silent
        );
        for (reason, n) in &r.refusals_today {
            println!("{:<14}   refused today: {n} × {reason}", "");
        }
    }
    let backlog: i64 = rows.iter().map(|r| r.derive_backlog).sum();
    if backlog > 0 {
        println!("{backlog} stored pushes are not derived yet (calls and reports lag behind)");
    }
    Ok(ExitCode::SUCCESS)
}
