//! Archive::open on arbitrary bytes, then deep verify and inspect; the
//! streamed verify must report exactly what the reader that holds the
//! directory reports, also when it holds the trailer's digests one at a
//! time (parsing the trailer again for each), and on a file with two
//! threads (the trailer read ahead, deep checks shared).
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use lvbak::archive::{
    verify, verify_digest_window, verify_holding_directory, verify_path, verify_path_split_from,
    Depth,
};
use lvbak::{Archive, Limits};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    // Deep verification must never panic, whatever the bytes.
    let report = verify(Cursor::new(data), limits.clone(), Depth::Deep);
    let fast = verify(Cursor::new(data), limits.clone(), Depth::Fast);
    let held = verify_holding_directory(Cursor::new(data), limits.clone(), Depth::Deep);
    assert_eq!(report, held, "streamed and held deep verify disagree");
    let windowed = verify_digest_window(Cursor::new(data), limits.clone(), Depth::Deep, 1);
    assert_eq!(
        windowed, held,
        "a window of one digest changes the deep report"
    );
    let held_fast = verify_holding_directory(Cursor::new(data), limits.clone(), Depth::Fast);
    assert_eq!(fast, held_fast, "streamed and held fast verify disagree");
    let path = std::env::temp_dir().join(format!("lvbak-fuzz-{}.lvbak", std::process::id()));
    if std::fs::write(&path, data).is_ok() {
        for (depth, want) in [(Depth::Fast, &held_fast), (Depth::Deep, &held)] {
            let on_file = verify_path(&path, limits.clone(), depth, 2, &mut |_, _, _| {});
            assert_eq!(
                &on_file, want,
                "verify_path on two threads disagrees ({depth:?})"
            );
        }
        // Every deflated NDJSON entry checked in parts where it can be split.
        let in_parts =
            verify_path_split_from(&path, limits.clone(), Depth::Deep, 2, 0, &mut |_, _, _| {});
        assert_eq!(in_parts, held, "verify_path in parts disagrees");
    }
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
