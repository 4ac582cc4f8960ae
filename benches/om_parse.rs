//! Parse speed of OM push bodies: the ingest path parses every push before
//! it answers (to refuse bad ones with 400), and derivation parses it again.
//! Prints µs per body for the manual's CDR and event examples and for the
//! ~500-byte CDR of examples/ingest_bench.
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
    let bench_cdr = r#"<?xml version="1.0" encoding="utf-8" ?>
<Cdr id="120240108000000-0">
  <callid>4242</callid>
  <visitor id="17" />
  <TimeStart>20240108000000</TimeStart>
  <Type>IN</Type>
  <Route>IP</Route>
  <CPN>18201000000</CPN>
  <CDPN>200</CDPN>
  <TimeEnd>20240108000213</TimeEnd>
  <Duration>120</Duration>
  <TrunkNumber>02161208234</TrunkNumber>
  <Recording>20240108/18201000000_200_20240108_000013_8032_cd.wav</Recording>
  <RecCodec>G729</RecCodec>
</Cdr>
"#;
    time("ingest_bench CDR", bench_cdr);
    for name in [
        "1.3.2-cdr-internal-in.xml",
        "2.5.3.1-ring-1-visitor-to-ext.xml",
        "2.5.1.1-bootup.xml",
    ] {
        time(name, &fixture(name));
    }
}
