//! Archive::open on arbitrary bytes, then deep verify and inspect.
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use lvbak::archive::{verify, Depth};
use lvbak::{Archive, Limits};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    // Deep verification must never panic, whatever the bytes.
    let report = verify(Cursor::new(data), limits.clone(), Depth::Deep);
    let fast = verify(Cursor::new(data), limits.clone(), Depth::Fast);
    // Fast problems are a subset of what deep finds (deep runs every fast check).
    if !fast.is_ok() {
        assert!(!report.is_ok(), "fast verify failed but deep passed");
    }
    if let Ok(mut archive) = Archive::open(Cursor::new(data), limits) {
        let _ = lvbak::inspect::inspect(&mut archive);
        let _ = lvbak::inspect::secrets_summary(&mut archive);
        for i in 0..archive.entries().len() {
            if let Ok(mut r) = archive.entry_reader(i) {
                let _ = r.drain();
            }
        }
    }
});
