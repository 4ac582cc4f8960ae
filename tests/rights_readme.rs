//! The README's route × role table is the rights table of the code
//! (`callvault::http::rights::readme_table`), between its marker comments.
//! `UPDATE_README=1 cargo test -j 1 --test tests rights_readme` rewrites
//! the block.

use callvault::http::rights::readme_table;

const BEGIN: &str = "<!-- rights:begin (generated from src/http/rights.rs) -->\n";
const END: &str = "<!-- rights:end -->";

#[test]
fn the_readme_route_role_table_is_generated_from_the_rights_table() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let text = std::fs::read_to_string(&path).expect("README.md");
    let start = text
        .find(BEGIN)
        .expect("the README has the rights:begin marker")
        + BEGIN.len();
    let end = start
        + text[start..]
            .find(END)
            .expect("the README has the rights:end marker");
    let fresh = readme_table();
    if text[start..end] == fresh {
        return;
    }
    if std::env::var_os("UPDATE_README").is_some() {
        let updated = format!("{}{fresh}{}", &text[..start], &text[end..]);
        std::fs::write(&path, updated).expect("rewrite README.md");
        return;
    }
    panic!(
        "README.md's route × role table differs from src/http/rights.rs; \
         run `UPDATE_README=1 cargo test -j 1 --test tests rights_readme` or paste:\n\n{fresh}"
    );
}
