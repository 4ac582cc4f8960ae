//! Parse speed of OM push bodies: the ingest path parses every push before
//! it answers (to refuse bad ones with 400), and derivation parses it again.
//! Prints µs per body for the manual's CDR and event examples (the CDRs
//! are the size of examples/ingest_bench's, 400-500 bytes).
//!
//! Run: `cargo bench --bench om_parse`

use std::time::Instant;

// The allocator of the callvault binary (src/main.rs): parsing allocates.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/om/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn time(label: &str, body: &str) {
    callvault::ingest::om::parse_body(body).expect("parses");
    let n = 200_000;
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(callvault::ingest::om::parse_body(std::hint::black_box(body)).ok());
    }
    let us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    println!("{label:<44} {:>5} bytes {us:>7.2} µs/body", body.len());
}

fn main() {
    for name in [
        "1.3.2-cdr-internal-in.xml",
        "4.9-in-recorded.xml",
        "2.6.1-in-ip-trunk.xml",
        "2.5.3.1-ring-1-visitor-to-ext.xml",
        "2.5.1.1-bootup.xml",
    ] {
        time(name, &fixture(name));
    }
}
