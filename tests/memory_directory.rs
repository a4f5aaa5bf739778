//! Heap an open archive costs per entry, measured with a counting global
//! allocator on an archive of 60,000 tiny files (its own test binary: the
//! counters are process-wide).

use std::io::Cursor;
use std::sync::atomic::Ordering::Relaxed;

#[path = "support/counting.rs"]
mod counting;
#[path = "support/tiny_files.rs"]
mod tiny_files;
use counting::{CURRENT, PEAK};

#[global_allocator]
static GLOBAL: counting::Counting = counting::Counting;

const FILES: usize = 60_000;

#[test]
fn an_open_archive_costs_a_bounded_number_of_bytes_an_entry() {
    let bytes = tiny_files::tiny_image_archive(FILES);

    let base = CURRENT.load(Relaxed);
    PEAK.store(base, Relaxed);
    let a = lvbak::Archive::open(Cursor::new(&bytes), lvbak::Limits::default()).unwrap();
    let peak = (PEAK.load(Relaxed) - base) / FILES;
    let held = (CURRENT.load(Relaxed) - base) / FILES;
    eprintln!("open archive of {FILES} files: peak {peak} bytes an entry, held {held}");
    assert_eq!(a.entries().len(), FILES + 2);
    // Held: an 80-byte slot, the 53-byte name, 16 bytes of lookup by
    // name and the 32-byte digest: 181 (the code before the entry table,
    // 7ecc291, held 262: an entry with two owned names).
    assert!(held <= 200, "held {held} bytes an entry");
    // Peak: the same plus the trailer's text and the transient sorts: 244
    // (7ecc291: 368).
    assert!(peak <= 300, "peak {peak} bytes an entry");
    // Still usable: a lookup by name and a read.
    let name = lvbak::EntryName::file(
        lvbak::Bucket::Images,
        "0000ea5f-0000-4000-8000-00000000ea5f.png",
    )
    .unwrap();
    let i = a.find(&name).unwrap();
    let mut a = a;
    let mut r = a.entry_reader(i).unwrap();
    let mut got = Vec::new();
    std::io::Read::read_to_end(&mut r, &mut got).unwrap();
    assert_eq!(got, 0xea5fusize.to_le_bytes());
}
