//! Heap an import holds while it writes rows, measured with a counting
//! global allocator on an archive of 60,000 tiny files and 3,000 rows (its
//! own test binary: the counters are process-wide). The file entries wait
//! in a temporary file meanwhile, so the directory's ~180 bytes a file are
//! not held.

use std::io::Cursor;
use std::sync::atomic::Ordering::Relaxed;

use lvbak::engine::{import_owned, CancelToken, ImportOptions};
use lvbak::store::memory::MemoryStore;

#[path = "support/counting.rs"]
mod counting;
#[path = "support/tiny_files.rs"]
mod tiny_files;
use counting::CURRENT;

#[global_allocator]
static GLOBAL: counting::Counting = counting::Counting;

const FILES: usize = 60_000;
const ROWS: usize = 3_000;

#[test]
fn an_import_does_not_hold_the_directory_while_it_writes_rows() {
    let m = lvbak::Manifest::new("aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee", 1_700_000_000);
    let mut w = lvbak::ArchiveWriter::new(Vec::new(), &m, lvbak::WriteOptions::default()).unwrap();
    let mut t = w.table("chats").unwrap();
    for i in 0..ROWS {
        t.write_row(&format!(r#"{{"id":"chat-{i}","user_id":"u","name":"c"}}"#))
            .unwrap();
    }
    t.finish().unwrap();
    tiny_files::write_tiny_images(&mut w, FILES);
    let (bytes, _) = w.finish().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut store = MemoryStore::new("u-2");
    let opts = ImportOptions {
        spill_dir: Some(dir.path().to_path_buf()),
        now: Some(1),
        ..ImportOptions::default()
    };

    let base = CURRENT.load(Relaxed);
    let a = lvbak::Archive::open(Cursor::new(&bytes), lvbak::Limits::default()).unwrap();
    let open = CURRENT.load(Relaxed).saturating_sub(base) / FILES;
    // Heap held when the rows start (the first progress call of the
    // tables phase), and the most seen while they are written.
    let mut at_rows: Option<usize> = None;
    let mut during_rows = 0usize;
    let report = import_owned(
        a,
        &mut store,
        &opts,
        &mut |p| {
            if p.phase == "tables" {
                let now = CURRENT.load(Relaxed).saturating_sub(base);
                at_rows.get_or_insert(now);
                during_rows = during_rows.max(now);
            }
        },
        &CancelToken::new(),
    )
    .unwrap();
    let at_rows = at_rows.expect("progress during the rows") / FILES;
    eprintln!(
        "open: {open} bytes a file; rows start: {at_rows}; \
         most while writing {ROWS} rows: {during_rows} bytes"
    );
    assert_eq!(report.tables[0].inserted, ROWS as u64);
    assert_eq!(report.files[&lvbak::Bucket::Images].written, FILES as u64);
    assert_eq!(store.data.files.len(), FILES);
    // The open archive holds the directory (about 180 bytes a file). When
    // the rows start it holds the trailer's digests (32 bytes a file), at
    // most a 1 MiB chunk of the set-aside log (17 bytes a file here) and
    // the other entries: 49 measured.
    assert!(open >= 150, "open: {open} bytes a file");
    assert!(at_rows <= 60, "when the rows start: {at_rows} bytes a file");
}
