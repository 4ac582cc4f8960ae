//! The recorder's day listing (an HTML page): `recordings::locate::
//! listing_names` and `halves_in_listing`. The first line of the input is
//! the recording's stem, the rest the page.
//!
//! Invariants: no panic; names are safe file names without duplicates; the
//! halves found are listed names that start with the stem.
#![no_main]

use callvault::recordings::archive::check_file_name;
use callvault::recordings::locate::{halves_in_listing, listing_names};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (stem, html) = text.split_once('\n').unwrap_or(("", &text));
    let names = listing_names(html);
    let mut seen = std::collections::HashSet::new();
    for n in &names {
        assert!(check_file_name(n).is_ok(), "unsafe name {n:?} listed");
        assert!(seen.insert(n), "duplicate name {n:?}");
    }
    if let Some((send, recv)) = halves_in_listing(&names, stem) {
        for half in [&send, &recv] {
            assert!(names.contains(half) && half.starts_with(stem));
        }
    }
});
