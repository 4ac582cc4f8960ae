//! Embeds every `reports/*.sql` and `reports/postgres/*.sql` into the binary: generates
//! `$OUT_DIR/reports_catalog.rs` with one `include_str!` per file, so adding a
//! file adds a report (cargo re-runs this when the directory changes).

use std::fmt::Write as _;
use std::path::PathBuf;

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"))
        .join("reports");
    let mut out = String::new();
    // SQLite's dialect in reports/, PostgreSQL's in reports/postgres/.
    for (konst, dir) in [
        ("EMBEDDED", root.clone()),
        ("EMBEDDED_PG", root.join("postgres")),
    ] {
        println!("cargo:rerun-if-changed={}", dir.display());
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "sql"))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        let _ = writeln!(
            out,
            "/// (file name, SQL text) of every `{}/*.sql`, sorted by name.\npub const {konst}: &[(&str, &str)] = &[",
            dir.strip_prefix(root.parent().unwrap_or(&root)).unwrap_or(&dir).display()
        );
        for f in &files {
            println!("cargo:rerun-if-changed={}", f.display());
            let name = f.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let _ = writeln!(
                out,
                "    ({name:?}, include_str!({:?})),",
                f.display().to_string()
            );
        }
        out.push_str("];\n");
    }
    let dest = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("reports_catalog.rs");
    std::fs::write(dest, out).expect("write reports_catalog.rs");
}
