//! `callvault token create|list|revoke`: the API tokens (README "API
//! tokens and sessions"). The functions below are what the commands run,
//! public so that tests drive them as the command does.

use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Duration, Utc};
use clap::{Subcommand, ValueEnum};

use crate::config::Config;
use crate::roles::ROLES;
use crate::store::tokens::{self, TokenInfo};
use crate::store::Store;

#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Create an API token; prints it as the last line (it is stored hashed and cannot be shown again).
    #[command(
        long_about = "Create an API token. Its text is printed once, as the last line of output: only \
its sha256 is stored. Scripts send it as `Authorization: Bearer TOKEN`; people paste it into the web \
page's sign-in. The name is required and unique: it is how `token list` shows the token and how \
`token revoke` ends it.",
        after_help = "Example: callvault token create --role finance --name billing-cron --expires 90d --devices hq"
    )]
    Create {
        /// admin (everything), finance (calls, billing, reports), qa (calls, recordings), reports (calls, reports, metrics).
        #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(ROLES))]
        role: String,
        /// A unique label saying who or what uses the token (letters, digits, `-`, `_`, `.`, `@`; at most 64).
        #[arg(long, value_parser = parse_name)]
        name: String,
        /// Make the token expire after this long: a number and a unit, d (days), h (hours) or w (weeks), e.g. 90d. Default: never.
        #[arg(long, value_name = "DURATION", value_parser = parse_expires)]
        expires: Option<Duration>,
        /// Limit the token to these devices' calls, legs, recordings, queue visits, billing rows and built-in reports: device names as the archive names them (`[[device]]` name, `callvault devices add --name`), comma-separated. Default: every device.
        #[arg(long, value_name = "NAMES", value_delimiter = ',')]
        devices: Vec<String>,
    },
    /// List the tokens: name, role, created, expires, last used, devices (never the token itself).
    #[command(
        long_about = "List the tokens: name, role, when created, when it expires, when it was last \
used (recorded at most once a minute), and the devices it is limited to (empty: every device). A \
token's text is never shown: it is not stored."
    )]
    List {
        /// `table` for people, `json` for scripts.
        #[arg(long, value_enum, default_value = "table")]
        format: ListFormat,
    },
    /// Revoke a token by name: its requests, web sessions and downloads under way end within seconds.
    Revoke {
        /// The token's name, as `token list` shows it.
        name: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    Table,
    Json,
}

pub fn run(cfg: Config, cmd: TokenCmd) -> anyhow::Result<ExitCode> {
    let store = Store::open_config(&cfg)?;
    match cmd {
        TokenCmd::Create {
            role,
            name,
            expires,
            devices,
        } => {
            let expires_at = expires.map(|d| Utc::now() + d);
            let devices = known_devices(&cfg, &store, &devices)?;
            let token = create(&store, &name, &role, expires_at, &devices)?;
            let limit = if devices.is_empty() {
                String::new()
            } else {
                format!(", devices {}", devices.join(","))
            };
            super::audit::record_command(
                &store,
                crate::audit::Action::TokenCreate,
                name.clone(),
                true,
                format!("role {role}{limit}"),
            );
            match expires_at {
                Some(t) => eprintln!(
                    "created {role} token {name}, expiring {} (shown once; keep it safe):",
                    tokens::stamp(t)
                ),
                None => eprintln!("created {role} token {name} (shown once; keep it safe):"),
            }
            println!("{token}");
        }
        TokenCmd::List { format } => {
            let rows = list(&store)?;
            match format {
                ListFormat::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
                ListFormat::Table => print!("{}", table(&rows, Utc::now())),
            }
        }
        TokenCmd::Revoke { name } => {
            let sessions = revoke(&store, &name)?;
            super::audit::record_command(
                &store,
                crate::audit::Action::TokenRevoke,
                name.clone(),
                true,
                format!("{sessions} web sessions ended"),
            );
            println!("revoked token {name} ({sessions} web sessions ended)");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `--devices` checked against the devices the archive knows (the config
/// file's `[[device]]` names and `callvault devices add`): a name that is
/// none of them is refused, listing the known ones (a typo would otherwise
/// make a token that sees nothing). Sorted, without duplicates.
pub fn known_devices(cfg: &Config, store: &Store, asked: &[String]) -> anyhow::Result<Vec<String>> {
    let mut known: Vec<String> = cfg.devices.iter().map(|d| d.name.clone()).collect();
    known.extend(
        store
            .read_blocking(crate::store::devices::active)?
            .into_iter()
            .map(|d| d.name),
    );
    known.sort();
    known.dedup();
    let mut out: Vec<String> = Vec::new();
    for name in asked.iter().map(|n| n.trim()) {
        anyhow::ensure!(
            !name.is_empty(),
            "--devices: an empty device name (use names separated by commas, e.g. hq,branch)"
        );
        if !known.iter().any(|k| k == name) {
            let list = if known.is_empty() {
                "none yet: add one with `callvault devices add --name` or [[device]] in the config"
                    .to_string()
            } else {
                known.join(", ")
            };
            anyhow::bail!("unknown device {name:?}; the archive knows: {list}");
        }
        out.push(name.to_string());
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Creates the token `name` limited to `devices` (every device when
/// empty); refuses a name that is taken.
pub fn create(
    store: &Store,
    name: &str,
    role: &str,
    expires_at: Option<DateTime<Utc>>,
    devices: &[String],
) -> anyhow::Result<String> {
    parse_name(name).map_err(anyhow::Error::msg)?;
    anyhow::ensure!(
        ROLES.contains(&role),
        "unknown role {role}: one of {}",
        ROLES.join(", ")
    );
    let (n, r, d) = (name.to_string(), role.to_string(), devices.to_vec());
    store
        .writer
        .write_blocking(move |tx| tokens::create_unique(tx, &n, &r, expires_at, &d))
        .context("creating the token")?
        .with_context(|| {
            format!(
                "a token named {name} exists: pick another name, or `callvault token revoke {name}` first"
            )
        })
}

/// Every token, by name.
pub fn list(store: &Store) -> anyhow::Result<Vec<TokenInfo>> {
    Ok(store.read_blocking(tokens::list)?)
}

/// Revokes the token `name`; returns how many web sessions ended.
pub fn revoke(store: &Store, name: &str) -> anyhow::Result<u64> {
    let n = name.to_string();
    let ended = store
        .writer
        .write_blocking(move |tx| tokens::revoke(tx, &n))?
        .with_context(|| format!("no token is named {name} (`callvault token list` shows them)"))?;
    tracing::info!(token = name, sessions = ended, "token revoked");
    Ok(ended)
}

/// The table `token list` prints; an expired token says so.
pub fn table(rows: &[TokenInfo], now: DateTime<Utc>) -> String {
    let mut lines = vec![[
        "NAME".to_string(),
        "ROLE".into(),
        "CREATED".into(),
        "EXPIRES".into(),
        "LAST USED".into(),
        "DEVICES".into(),
    ]];
    for t in rows {
        let expires = match &t.expires_at {
            None => "never".to_string(),
            Some(s) if tokens::parse_stamp(s).is_some_and(|e| e <= now) => format!("{s} (expired)"),
            Some(s) => s.clone(),
        };
        lines.push([
            t.name.clone(),
            t.role.clone(),
            t.created_at.clone(),
            expires,
            t.last_used_at.clone().unwrap_or_else(|| "never".into()),
            t.devices.join(","),
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|i| {
            lines
                .iter()
                .map(|l| l[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for l in &lines {
        let cells: Vec<String> = l
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    if rows.is_empty() {
        out.push_str("(no tokens: create one with `callvault token create --role R --name N`)\n");
    }
    out
}

/// A token name as `token create` accepts it: 1 to 64 of letters,
/// digits, `-`, `_`, `.`, `@` (it is typed on command lines and shown in
/// logs).
pub fn parse_name(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.chars().count() <= 64
        && s.chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "{s:?} is not a token name: use 1 to 64 letters, digits, '-', '_', '.' or '@'"
        ))
    }
}

/// `--expires`: a whole number and a unit, `h`, `d` or `w` (e.g. `90d`).
pub fn parse_expires(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a duration: a number and h, d or w, e.g. 90d or 12h");
    let s = s.trim();
    let unit = s.chars().last().ok_or_else(bad)?;
    let n: i64 = s[..s.len() - unit.len_utf8()].parse().map_err(|_| bad())?;
    let too_long = || format!("{s:?}: the duration must be above 0 and at most 100 years");
    // Bounded before it is multiplied out (chrono panics past its range).
    if n <= 0 || n > 36_500 * 24 {
        return Err(too_long());
    }
    let d = match unit {
        'h' => Duration::hours(n),
        'd' => Duration::days(n),
        'w' => Duration::weeks(n),
        _ => return Err(bad()),
    };
    if d > Duration::days(36_500) {
        return Err(too_long());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_takes_hours_days_weeks_only() {
        assert_eq!(parse_expires("90d"), Ok(Duration::days(90)));
        assert_eq!(parse_expires("12h"), Ok(Duration::hours(12)));
        assert_eq!(parse_expires("2w"), Ok(Duration::weeks(2)));
        for bad in ["", "d", "90", "0d", "-1d", "5m", "1.5d", "99999999999d"] {
            assert!(parse_expires(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_are_plain_words() {
        assert!(parse_name("billing-cron").is_ok());
        assert!(parse_name("ann@qa.example").is_ok());
        for bad in ["", "two words", "a;b", &"x".repeat(65)] {
            assert!(parse_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_table_never_shows_a_secret_and_marks_expired_tokens() {
        let now = tokens::parse_stamp("2026-06-01T00:00:00Z").unwrap();
        let rows = vec![
            TokenInfo {
                name: "old".into(),
                role: "qa".into(),
                created_at: "2026-01-01T00:00:00Z".into(),
                expires_at: Some("2026-02-01T00:00:00Z".into()),
                last_used_at: None,
                devices: vec!["hq".into(), "branch".into()],
            },
            TokenInfo {
                name: "ops".into(),
                role: "admin".into(),
                created_at: "2026-01-01T00:00:00Z".into(),
                expires_at: None,
                last_used_at: Some("2026-05-31T23:59:00Z".into()),
                devices: vec![],
            },
        ];
        let t = table(&rows, now);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("NAME  ROLE   CREATED"), "{t}");
        assert!(lines[1].contains("2026-02-01T00:00:00Z (expired)"), "{t}");
        assert!(lines[0].ends_with("LAST USED             DEVICES"), "{t}");
        assert!(lines[1].ends_with("never                 hq,branch"), "{t}");
        assert!(
            lines[2].contains("never") && lines[2].ends_with("2026-05-31T23:59:00Z"),
            "{t}"
        );
    }
}
