//! ndjson::parse_row_into against serde_json: lines parsed one after
//! another into one reused row give serde_json's result for each line
//! alone (same keys, values and order), or an error both times.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut row = Map::new();
    for line in text.split('\n') {
        let want = serde_json::from_str::<Map<String, Value>>(line);
        match (want, lvbak::ndjson::parse_row_into(line, &mut row)) {
            (Ok(w), Ok(())) => {
                let w: Vec<_> = w.iter().collect();
                let g: Vec<_> = row.iter().collect();
                assert_eq!(g, w, "{line:?}");
            }
            (Err(_), Err(_)) => row = Map::new(),
            (w, g) => panic!("{line:?}: serde_json {w:?}, in place {g:?}"),
        }
    }
});
