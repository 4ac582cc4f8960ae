//! Reports only read: a custom report file whose statement writes (here an
//! `INSERT … RETURNING` that would add an admin token) is refused with an
//! error naming the file, and the archive is unchanged — on SQLite (a
//! `query_only` connection) and on PostgreSQL (a read-only transaction).

use callvault::store::testing::TestDb;

/// `callvault` on `data`, against PostgreSQL `pg` when given.
fn callvault(data: &std::path::Path, pg: Option<&TestDb>, args: &[&str]) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_callvault"));
    if let Some(db) = pg {
        cmd.env("CALLVAULT_STORE_URL", db.url());
    }
    cmd.arg("--data")
        .arg(data)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run callvault")
}

#[test]
fn a_custom_report_that_writes_is_refused_and_changes_nothing() {
    refused_on(None);
}

#[test]
fn a_custom_report_that_writes_is_refused_and_changes_nothing_on_postgres() {
    let Some(db) = TestDb::fresh("reports_readonly") else {
        eprintln!("skipped …_on_postgres: CALLVAULT_TEST_PG is not set");
        return;
    };
    refused_on(Some(&db));
}

fn refused_on(pg: Option<&TestDb>) {
    let dir = tempfile::tempdir().unwrap();
    let o = callvault(
        dir.path(),
        pg,
        &["token", "create", "--role", "qa", "--name", "desk"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Each backend reads its own dialect's folder (docs/reports.md).
    let reports = match pg {
        None => dir.path().join("reports"),
        Some(_) => dir.path().join("reports/postgres"),
    };
    std::fs::create_dir_all(&reports).unwrap();
    let file = reports.join("grant.sql");
    std::fs::write(
        &file,
        "-- name: grant\n-- description: not a report\n-- params: from, to\n\
         INSERT INTO tokens (name, role, hash, created_at)\n\
         VALUES ('intruder', 'admin', 'x', :from) RETURNING name;\n",
    )
    .unwrap();
    let o = callvault(
        dir.path(),
        pg,
        &[
            "report",
            "run",
            "grant",
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-01",
        ],
    );
    assert!(!o.status.success(), "the writing report ran");
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(said.contains("may only read"), "{said}");
    assert!(said.contains("grant.sql"), "names the file: {said}");
    let o = callvault(dir.path(), pg, &["token", "list", "--format", "json"]);
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let names: Vec<&str> = list
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, ["desk"], "the tokens table is unchanged");
}
