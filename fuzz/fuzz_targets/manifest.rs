//! Manifest::parse and Trailer::parse on arbitrary bytes; a trailer
//! parsed survives its own text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lvbak::{Manifest, Trailer};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Manifest::parse(data, 128) {
        // What was accepted serialises and parses again.
        let again = Manifest::parse(&m.to_json(), 128).expect("re-parse of to_json");
        assert_eq!(again.archive_id, m.archive_id);
    }
    if let Some(t) = Trailer::parse(data, 128) {
        // What was accepted serialises and parses back to the same trailer
        // (digests included, and any value kept as stored).
        let again = Trailer::parse(&t.to_json(), 128).expect("re-parse of to_json");
        assert_eq!(again, t);
        let _ = t.digest("manifest.json");
    }
});
