//! The named report queries: every `reports/*.sql` of the source tree is
//! embedded at build time (see `build.rs`), and `<data_dir>/reports/*.sql`
//! adds reports (or replaces one of the same name) without a rebuild.
//!
//! Each file starts with a header of `--` comment lines:
//!
//! ```sql
//! -- name: daily_summary
//! -- description: Settled calls per day and direction ...
//! -- description: (a second description line continues the first)
//! -- params: from, to
//! ```
//!
//! Each backend has its own dialect: `reports/*.sql` is SQLite's and
//! `reports/postgres/*.sql` PostgreSQL's, a file of the same name for each
//! report (same columns, same values: ARCHITECTURE.md "src/reports/"); in
//! the data directory, `reports/*.sql` and `reports/postgres/*.sql` add or
//! replace the report for their backend only. The query run is the one for
//! the archive's backend ([`Report::sql_for`]).
//!
//! `name` must equal the file stem. Parameters are bound by name; besides the
//! user's `:from` and `:to` (device-local days, `to` inclusive) every query may
//! use `:to_next` (the day after `to`), `:settled_before_ms` and `:sla_seconds`.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{ReportError, Result};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/reports_catalog.rs"));
}

/// Parameters a header may list (the ones a user supplies).
pub const USER_PARAMS: &[&str] = &["from", "to"];

/// One named report query.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub name: String,
    pub description: String,
    pub params: Vec<String>,
    /// The query on SQLite (empty when the report has none: a file added
    /// for PostgreSQL only).
    #[serde(skip)]
    pub sql: String,
    /// `None` when built in, else the file it was read from.
    pub file: Option<PathBuf>,
    /// The query on PostgreSQL.
    #[serde(skip)]
    pub pg_sql: Option<String>,
    /// `None` when built in, else the file the PostgreSQL query was read from.
    pub pg_file: Option<PathBuf>,
}

impl Report {
    /// The query for the archive's backend, if the report has one.
    pub fn sql_for(&self, postgres: bool) -> Option<&str> {
        if postgres {
            self.pg_sql.as_deref()
        } else {
            Some(self.sql.as_str()).filter(|s| !s.trim().is_empty())
        }
    }
}

/// Parses one report file (`file` is its name, for the stem check and errors).
pub fn parse(file: &str, text: &str) -> Result<Report> {
    let err = |reason: &str| ReportError::Header {
        file: file.to_string(),
        reason: reason.to_string(),
    };
    let stem = file.strip_suffix(".sql").unwrap_or(file);
    let (mut name, mut description, mut params) =
        (None::<String>, String::new(), None::<Vec<String>>);
    for line in text
        .lines()
        .map(str::trim)
        .take_while(|l| l.starts_with("--"))
    {
        let body = line.trim_start_matches('-').trim();
        let Some((key, value)) = body.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "name" => name = Some(value.to_string()),
            "description" => {
                if !description.is_empty() {
                    description.push(' ');
                }
                description.push_str(value);
            }
            "params" => {
                params = Some(
                    value
                        .split(',')
                        .map(|p| p.trim().to_string())
                        .filter(|p| !p.is_empty())
                        .collect(),
                )
            }
            _ => {}
        }
    }
    let name = name.ok_or_else(|| err("header has no `-- name:` line"))?;
    if name != stem {
        return Err(err(&format!("name {name:?} differs from the file name")));
    }
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(err("name must be lower-case letters, digits and _"));
    }
    if description.is_empty() {
        return Err(err("header has no `-- description:` line"));
    }
    let params = params.ok_or_else(|| err("header has no `-- params:` line"))?;
    if let Some(p) = params.iter().find(|p| !USER_PARAMS.contains(&p.as_str())) {
        return Err(err(&format!(
            "unknown parameter {p:?} in `-- params:` (allowed: from, to)"
        )));
    }
    let body_has_sql = text
        .lines()
        .map(str::trim)
        .any(|l| !l.is_empty() && !l.starts_with("--"));
    if !body_has_sql {
        return Err(err("no SQL after the header"));
    }
    Ok(Report {
        name,
        description,
        params,
        sql: text.to_string(),
        file: None,
        pg_sql: None,
        pg_file: None,
    })
}

/// All known reports, sorted by name.
#[derive(Debug, Clone)]
pub struct Catalog {
    reports: Vec<Report>,
}

impl Catalog {
    /// The reports built into the binary.
    pub fn embedded() -> Result<Catalog> {
        let reports = embedded::EMBEDDED
            .iter()
            .map(|(file, text)| parse(file, text))
            .collect::<Result<Vec<_>>>()?;
        let mut cat = Catalog { reports };
        for (file, text) in embedded::EMBEDDED_PG {
            cat.add_postgres(parse(file, text)?, None);
        }
        Ok(cat)
    }

    /// Sets the PostgreSQL query of the report `r` names (`r.sql` holds
    /// it); a report that only PostgreSQL has is added with its header.
    fn add_postgres(&mut self, r: Report, file: Option<PathBuf>) {
        match self.reports.iter_mut().find(|old| old.name == r.name) {
            Some(old) => {
                old.pg_sql = Some(r.sql);
                old.pg_file = file;
            }
            None => self.reports.push(Report {
                pg_sql: Some(r.sql),
                pg_file: file,
                sql: String::new(),
                ..r
            }),
        }
    }

    /// The `*.sql` files of `dir`, sorted, with their text and file name.
    fn files(dir: &Path) -> Result<Vec<(PathBuf, String, String)>> {
        let rd = std::fs::read_dir(dir).map_err(|source| ReportError::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut files: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "sql"))
            .collect();
        files.sort();
        files
            .into_iter()
            .map(|path| {
                let text = std::fs::read_to_string(&path).map_err(|source| ReportError::Read {
                    path: path.clone(),
                    source,
                })?;
                let file = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default()
                    .to_string();
                Ok((path, file, text))
            })
            .collect()
    }

    /// The built-in reports plus the `*.sql` files of `dir` (when it exists)
    /// for SQLite and of `dir/postgres` for PostgreSQL; a file replaces the
    /// report of the same name on its backend.
    pub fn load(dir: Option<&Path>) -> Result<Catalog> {
        let mut cat = Catalog::embedded()?;
        let Some(dir) = dir.filter(|d| d.is_dir()) else {
            return Ok(cat);
        };
        for (path, file, text) in Catalog::files(dir)? {
            let mut r = parse(&file, &text)?;
            r.file = Some(path);
            if let Some(old) = cat.reports.iter().position(|old| old.name == r.name) {
                let old = cat.reports.remove(old);
                r.pg_sql = old.pg_sql;
                r.pg_file = old.pg_file;
            }
            cat.reports.push(r);
        }
        let pg_dir = dir.join("postgres");
        if pg_dir.is_dir() {
            for (path, file, text) in Catalog::files(&pg_dir)? {
                cat.add_postgres(parse(&file, &text)?, Some(path));
            }
        }
        cat.reports.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(cat)
    }

    pub fn list(&self) -> &[Report] {
        &self.reports
    }

    pub fn get(&self, name: &str) -> Result<&Report> {
        self.reports
            .iter()
            .find(|r| r.name == name)
            .ok_or_else(|| ReportError::Unknown {
                name: name.to_string(),
                known: self
                    .reports
                    .iter()
                    .map(|r| r.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str =
        "-- name: x\n-- description: one\n-- description: two\n-- params: from, to\nSELECT 1;\n";

    #[test]
    fn parse_reads_header() {
        let r = parse("x.sql", GOOD).expect("parses");
        assert_eq!((r.name.as_str(), r.description.as_str()), ("x", "one two"));
        assert_eq!(r.params, vec!["from", "to"]);
    }

    #[test]
    fn parse_rejects_name_other_than_file() {
        assert!(parse("y.sql", GOOD).is_err());
    }

    #[test]
    fn parse_rejects_missing_header_lines() {
        assert!(parse("x.sql", "-- name: x\n-- params: from\nSELECT 1;").is_err());
        assert!(parse("x.sql", "-- name: x\n-- description: d\nSELECT 1;").is_err());
        assert!(parse("x.sql", "SELECT 1;").is_err());
        assert!(parse("x.sql", "-- name: x\n-- description: d\n-- params: from\n").is_err());
    }

    #[test]
    fn parse_rejects_unknown_param() {
        assert!(parse(
            "x.sql",
            "-- name: x\n-- description: d\n-- params: from, carrier\nSELECT 1;"
        )
        .is_err());
    }

    #[test]
    fn embedded_every_file_parses_with_header() {
        let cat = Catalog::embedded().expect("every reports/*.sql parses");
        assert_eq!(cat.list().len(), embedded::EMBEDDED.len());
        for r in cat.list() {
            assert!(
                !r.description.is_empty() && !r.params.is_empty(),
                "{}",
                r.name
            );
            assert!(
                r.sql_for(false).is_some() && r.sql_for(true).is_some(),
                "{} needs a query for each backend",
                r.name
            );
        }
        assert_eq!(embedded::EMBEDDED_PG.len(), embedded::EMBEDDED.len());
        for must in [
            "daily_summary",
            "per_extension",
            "per_trunk",
            "hourly_profile",
            "peak_concurrent",
            "queues",
            "recording_coverage",
            "recordings_missing",
            "conversation",
            "billing",
            "billing_legs",
        ] {
            assert!(cat.get(must).is_ok(), "missing report {must}");
        }
    }

    #[test]
    fn load_adds_and_overrides_from_dir() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("mine.sql"), GOOD.replace("x", "mine")).expect("write");
        std::fs::write(dir.path().join("billing.sql"), GOOD.replace("x", "billing"))
            .expect("write");
        let cat = Catalog::load(Some(dir.path())).expect("loads");
        assert!(cat.get("mine").is_ok());
        assert_eq!(cat.get("billing").expect("billing").description, "one two");
        assert!(cat.get("nope").is_err());
    }

    #[test]
    fn load_replaces_each_backend_on_its_own() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("postgres")).expect("mkdir");
        std::fs::write(dir.path().join("mine.sql"), GOOD.replace("x", "mine")).expect("write");
        let pg = |name: &str| GOOD.replace("x", name).replace("SELECT 1", "SELECT 2");
        std::fs::write(dir.path().join("postgres/billing.sql"), pg("billing")).expect("write");
        std::fs::write(dir.path().join("postgres/pgonly.sql"), pg("pgonly")).expect("write");
        let cat = Catalog::load(Some(dir.path())).expect("loads");
        let builtin = Catalog::embedded().expect("embedded");
        let billing = cat.get("billing").expect("billing");
        assert_eq!(billing.sql, builtin.get("billing").expect("billing").sql);
        assert!(billing
            .sql_for(true)
            .is_some_and(|s| s.contains("SELECT 2")));
        let mine = cat.get("mine").expect("mine");
        assert!(mine.sql_for(false).is_some() && mine.sql_for(true).is_none());
        let pgonly = cat.get("pgonly").expect("pgonly");
        assert!(pgonly.sql_for(false).is_none() && pgonly.sql_for(true).is_some());
    }
}
