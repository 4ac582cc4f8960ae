//! `callvault devices [list|add|remove]`: who may put records in the
//! archive. The config file's `[[device]]` tables and the devices
//! registered here together; senders whose pushes are held because they
//! match neither.

use std::process::ExitCode;

use anyhow::bail;
use clap::{ArgGroup, Subcommand};

use crate::config::Config;
use crate::ingest::device::norm_mac;
use crate::store::{devices, Store};

#[derive(Debug, Subcommand)]
pub enum DevicesCmd {
    /// Configured and registered devices, and unregistered senders, with their pushes.
    List {
        /// Output as JSON instead of a table.
        #[arg(long)]
        json: bool,
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

pub fn run(cfg: Config, cmd: Option<DevicesCmd>) -> anyhow::Result<ExitCode> {
    let store = Store::open_config(&cfg)?;
    match cmd.unwrap_or(DevicesCmd::List { json: false }) {
        DevicesCmd::List { json } => list(&cfg, &store, json),
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

/// One row of the list.
#[derive(serde::Serialize)]
struct Row {
    name: Option<String>,
    /// config | registered | unregistered
    kind: &'static str,
    mac: Option<String>,
    address: Option<String>,
    pushes: i64,
    last_push: Option<String>,
}

fn list(cfg: &Config, store: &Store, json: bool) -> anyhow::Result<ExitCode> {
    let (registered, senders, counts) = store.read_blocking(|c| {
        Ok((
            devices::active(c)?,
            devices::unregistered(c)?,
            devices::push_counts(c)?,
        ))
    })?;
    let count = |name: &str| {
        counts
            .iter()
            .find(|(d, _, _)| d == name)
            .map(|(_, n, last)| (*n, Some(last.clone())))
            .unwrap_or((0, None))
    };
    let mut rows = Vec::new();
    for d in &cfg.devices {
        let (pushes, last_push) = count(&d.name);
        rows.push(Row {
            name: Some(d.name.clone()),
            kind: "config",
            mac: d.mac.clone(),
            address: Some(d.allowed_sources().join(",")).filter(|a| !a.is_empty()),
            pushes,
            last_push,
        });
    }
    for d in registered {
        let (pushes, last_push) = count(&d.name);
        rows.push(Row {
            name: Some(d.name),
            kind: "registered",
            mac: d.mac,
            address: d.ip,
            pushes,
            last_push,
        });
    }
    for s in senders {
        rows.push(Row {
            name: None,
            kind: "unregistered",
            mac: s.mac,
            address: Some(s.source),
            pushes: s.pushes,
            last_push: Some(s.last_push),
        });
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<16} {:<12} {:<20} {:<18} {:>8}  LAST PUSH",
        "NAME", "KIND", "MAC", "ADDRESS", "PUSHES"
    );
    let dash = || "-".to_string();
    for r in rows {
        println!(
            "{:<16} {:<12} {:<20} {:<18} {:>8}  {}",
            r.name.unwrap_or_else(dash),
            r.kind,
            r.mac.unwrap_or_else(dash),
            r.address.unwrap_or_else(dash),
            r.pushes,
            r.last_push.unwrap_or_else(dash)
        );
    }
    Ok(ExitCode::SUCCESS)
}
