//! The module boundaries ARCHITECTURE.md promises, checked on the source
//! text: which top-level module may name which (`use crate::…` and inline
//! `crate::…` paths), that only the store names a database library (rusqlite,
//! tokio-postgres, deadpool), and that no
//! source file grows past 800 lines. Comments are skipped: a doc link is
//! not a dependency.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Everything that sits above the store in the pipeline (ARCHITECTURE.md
/// "Code map"): neither `model` nor `store` may name any of it.
const ABOVE_THE_STORE: &[&str] = &[
    "ingest",
    "calls",
    "queues",
    "recordings",
    "reports",
    "retention",
    "http",
    "cli",
    "server",
    "sim",
    "live",
];

/// Top-level modules a module may not name, beyond [`ABOVE_THE_STORE`]
/// for `model` and `store`.
const FORBIDDEN: &[(&str, &[&str])] = &[
    ("model", &["store", "config"]),
    (
        "calls",
        &["queues", "recordings", "reports", "http", "cli", "server"],
    ),
    (
        "queues",
        &["recordings", "reports", "http", "cli", "server"],
    ),
    ("recordings", &["reports", "http", "cli", "server"]),
    ("reports", &["http", "cli", "server"]),
    ("retention", &["http", "cli", "server"]),
    ("cli", &["http"]),
    ("live", &["http", "cli", "server"]),
];

/// What `module` may not name.
fn banned_for(module: &str) -> Vec<&'static str> {
    let mut banned: Vec<&'static str> = FORBIDDEN
        .iter()
        .filter(|(m, _)| *m == module)
        .flat_map(|(_, b)| b.iter().copied())
        .collect();
    if module == "model" || module == "store" {
        banned.extend(ABOVE_THE_STORE);
    }
    banned
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a file under `src/` belongs to (`store/writer/mod.rs`
/// → `store`, `model.rs` → `model`).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// Code lines only: line comments and doc comments dropped.
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().filter_map(|(i, l)| {
        let code = match l.find("//") {
            // A `//` inside a string literal ("http://…") is rare in paths
            // we look at; cutting there only hides text, never adds any.
            Some(at) => &l[..at],
            None => l,
        };
        (!code.trim().is_empty()).then_some((i + 1, code))
    })
}

/// Every top-level module a file names through `crate::`, with a line.
fn named_modules(text: &str) -> Vec<(String, usize)> {
    let mut found = Vec::new();
    // `use crate::{a, b::c}` may span lines: look at the whole code text.
    let code: Vec<(usize, &str)> = code_lines(text).collect();
    let joined: String = code
        .iter()
        .map(|(_, l)| format!("{l}\n"))
        .collect::<String>();
    let line_at = |offset: usize| -> usize {
        let nl = joined[..offset].matches('\n').count();
        code.get(nl).map_or(0, |(n, _)| *n)
    };
    let bytes = joined.as_bytes();
    let mut from = 0;
    while let Some(at) = joined[from..].find("crate::") {
        let start = from + at;
        from = start + "crate::".len();
        // `$crate::` and `some_crate::` are not this crate.
        if start > 0
            && (bytes[start - 1].is_ascii_alphanumeric() || b"_$".contains(&bytes[start - 1]))
        {
            continue;
        }
        let rest = &joined[from..];
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level names of the group: split at depth-0 commas.
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        found.push((head(&item), line_at(start)));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            found.push((head(&item), line_at(start)));
        } else {
            found.push((head(rest), line_at(start)));
        }
    }
    found.retain(|(m, _)| !m.is_empty());
    found
}

fn head(path: &str) -> String {
    path.trim()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

#[test]
fn no_arrow_from_a_module_to_a_later_stage() {
    let src = Path::new(ROOT).join("src");
    let mut files = Vec::new();
    rs_files(&src, &mut files);
    let mut wrong = BTreeSet::new();
    for f in &files {
        let module = module_of(&src, f);
        let banned = banned_for(&module);
        if banned.is_empty() {
            continue;
        }
        let text = std::fs::read_to_string(f).unwrap();
        for (named, line) in named_modules(&text) {
            if banned.contains(&named.as_str()) {
                let rel = f.strip_prefix(ROOT).unwrap().display().to_string();
                wrong.insert(format!("{rel}:{line}: {module} names crate::{named}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against ARCHITECTURE.md's code map:\n{}",
        wrong.into_iter().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn only_the_store_names_a_database_library() {
    let src = Path::new(ROOT).join("src");
    let mut files = Vec::new();
    rs_files(&src, &mut files);
    let libraries = ["rusqlite", "tokio_postgres", "deadpool_postgres"];
    let wrong: Vec<String> = files
        .iter()
        .filter(|f| module_of(&src, f) != "store")
        .flat_map(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            let rel = f.strip_prefix(ROOT).unwrap().display().to_string();
            code_lines(&text)
                .filter(|(_, l)| libraries.iter().any(|lib| l.contains(lib)))
                .map(|(n, _)| format!("{rel}:{n}"))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "a database library named outside src/store/:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn no_source_file_over_800_lines() {
    let mut files = Vec::new();
    for dir in ["src", "tests", "benches", "examples"] {
        let d = Path::new(ROOT).join(dir);
        if d.is_dir() {
            rs_files(&d, &mut files);
        }
    }
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let n = std::fs::read_to_string(f).unwrap().lines().count();
            (n > 800).then(|| format!("{} ({n} lines)", f.strip_prefix(ROOT).unwrap().display()))
        })
        .collect();
    assert!(
        long.is_empty(),
        "files over 800 lines:\n{}",
        long.join("\n")
    );
}

#[test]
fn the_checker_sees_grouped_and_inline_paths() {
    let text = "use crate::{model::Leg, store::{self, legs}};\nfn f() { crate::http::x(); }\n// crate::cli::y\nlet a = \"$crate::z\";";
    let names: Vec<String> = named_modules(text).into_iter().map(|(m, _)| m).collect();
    assert_eq!(names, ["model", "store", "http"]);
}

#[test]
fn architecture_md_names_every_folder_in_src() {
    let doc = std::fs::read_to_string(Path::new(ROOT).join("ARCHITECTURE.md")).unwrap();
    let src = Path::new(ROOT).join("src");
    let missing: Vec<String> = std::fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .map(|p| format!("`src/{}/`", p.file_name().unwrap().to_string_lossy()))
        .filter(|name| !doc.contains(name.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md does not name {missing:?}"
    );
}
