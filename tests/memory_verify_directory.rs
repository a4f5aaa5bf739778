//! Heap a verify costs per entry, measured with a counting global
//! allocator on an archive of 60,000 tiny files (its own test binary: the
//! counters are process-wide). The streamed verify holds a hash of each
//! name, not the directory, and in deep mode the trailer's digests 16,384
//! at a time; the reader that holds the directory is measured beside it
//! for comparison.

use std::io::Cursor;
use std::sync::atomic::Ordering::Relaxed;

use lvbak::archive::{verify, verify_holding_directory, Depth, Report};

#[path = "support/counting.rs"]
mod counting;
#[path = "support/tiny_files.rs"]
mod tiny_files;
use counting::{CURRENT, PEAK};

#[global_allocator]
static GLOBAL: counting::Counting = counting::Counting;

const FILES: usize = 60_000;

/// The report of `run` and the peak heap it took, in bytes.
fn peak(run: impl FnOnce() -> Report) -> (Report, usize) {
    let base = CURRENT.load(Relaxed);
    PEAK.store(base, Relaxed);
    let r = run();
    (r, PEAK.load(Relaxed) - base)
}

#[test]
fn a_verify_costs_a_few_bytes_an_entry() {
    let bytes = tiny_files::tiny_image_archive(FILES);
    let limits = lvbak::Limits::default();

    let mut peaks = Vec::new();
    for depth in [Depth::Fast, Depth::Deep] {
        let (streamed, s) = peak(|| verify(Cursor::new(&bytes), limits.clone(), depth));
        let (held, h) =
            peak(|| verify_holding_directory(Cursor::new(&bytes), limits.clone(), depth));
        eprintln!(
            "{depth:?} verify of {FILES} files: streamed {s} bytes ({} an entry), held {h} ({})",
            s / FILES,
            h / FILES
        );
        assert!(streamed.is_ok(), "{:?}", streamed.problems);
        assert_eq!(streamed, held);
        peaks.push((s, h));
    }
    let [(fast, fast_held), (deep, deep_held)] = peaks[..] else {
        unreachable!()
    };
    // Fast: the 8-byte hash of each name (the held directory: ~180 bytes
    // an entry, plus the trailer's text and digests).
    assert!(fast <= 16 * FILES, "fast verify peak {fast} bytes");
    // Deep: a window of 16,384 digests besides (512 KiB), never all
    // 60,000 (1.9 MB).
    assert!(
        deep.saturating_sub(fast) <= 600 * 1024,
        "deep verify peak {deep} bytes, fast {fast}"
    );
    assert!(fast_held > 4 * fast.max(1) && deep_held > 2 * deep.max(1));
}
