//! A panic on the reading side of deep verify's pipeline (here the
//! caller's `Read` panics in the middle of a large version-3 table) ends
//! `verify` (the panic propagates) instead of hanging it. Found by a
//! review of 1993525: the entry reader's stored-bytes sink holds a clone of
//! the channel's sender, and with the reader outside the thread scope the
//! clone outlived the unwinding, so the checking thread waited for the end
//! forever, and the scope for it.

use std::io::{Cursor, Read, Seek, SeekFrom, Write};
use std::sync::mpsc;
use std::time::Duration;

use base64::Engine as _;
use lvbak::container::write::{EntryOptions, Method, ZipWriter, DEFAULT_EXTERNAL_ATTR};
use lvbak::container::CentralDirectory;
use lvbak::Limits;
use sha2::{Digest, Sha256};

const MANIFEST: &[u8] =
    br#"{"schemaVersion":1,"producer":"lumiverse","archiveId":"x","ndjsonFormatVersion":1}"#;

fn opts(method: Method) -> EntryOptions {
    EntryOptions {
        method,
        dos_time: (0, 33),
        external_attr: DEFAULT_EXTERNAL_ATTR,
    }
}

/// A valid archive with a 6 MiB messages table (deflated, about 3 MiB stored) and version-3
/// digests; returns it and the second quarter of the table's stored bytes.
fn archive() -> (Vec<u8>, (u64, u64)) {
    let mut content = Vec::new();
    let mut i = 0u64;
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    while content.len() < 6 << 20 {
        // Hex of a simple generator: the stored bytes stay megabytes long.
        let mut hex = String::new();
        for _ in 0..16 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            hex.push_str(&format!("{x:016x}"));
        }
        content
            .extend_from_slice(format!("{{\"id\":\"m{i}\",\"content\":\"{hex}\"}}\n").as_bytes());
        i += 1;
    }
    let build = |trailer: &[u8]| {
        let mut z = ZipWriter::new(Vec::new());
        z.add_entry("manifest.json", opts(Method::Deflated(3)), MANIFEST)
            .unwrap();
        z.add_entry(
            "database/messages.ndjson",
            opts(Method::Deflated(3)),
            &content,
        )
        .unwrap();
        z.add_entry("manifest-stats.json", opts(Method::Deflated(3)), trailer)
            .unwrap();
        z.finish().unwrap().0
    };
    let first = build(b"{}");
    let cd = CentralDirectory::read(&mut Cursor::new(&first[..]), &Limits::default()).unwrap();
    let data = |k: usize| {
        let e = &cd.entries[k];
        let local = e.local_offset as usize;
        let lextra = u16::from_le_bytes([first[local + 28], first[local + 29]]) as usize;
        let start = local + 30 + e.name.len() + lextra;
        (start, e.compressed_size as usize)
    };
    let mut ds = Vec::new();
    for k in 0..2 {
        let (s, n) = data(k);
        ds.extend_from_slice(&Sha256::digest(&first[s..s + n]));
    }
    let b64 = base64::engine::general_purpose::STANDARD.encode(ds);
    let trailer = format!(
        "{{\"counts\":{{}},\"missingFiles\":[],\"lvbak\":{{\"version\":3,\"entries\":2,\"sha256\":\"{b64}\"}}}}"
    );
    let (s, n) = data(1);
    (
        build(trailer.as_bytes()),
        ((s + n / 4) as u64, (s + n / 2) as u64),
    )
}

/// A reader over `bytes` that panics on a read starting in `at` (when armed):
/// only the entry reader reads from inside the table's data.
struct PanicsAt {
    inner: Cursor<Vec<u8>>,
    at: Option<(u64, u64)>,
}

impl Read for PanicsAt {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self
            .at
            .is_some_and(|(from, to)| (from..to).contains(&self.inner.position()))
        {
            panic!("the caller's reader failed");
        }
        self.inner.read(buf)
    }
}

impl Seek for PanicsAt {
    fn seek(&mut self, p: SeekFrom) -> std::io::Result<u64> {
        self.inner.seek(p)
    }
}

fn deep_verify_ends(at: Option<(u64, u64)>, bytes: Vec<u8>) -> Option<bool> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let r = std::panic::catch_unwind(move || {
            let src = PanicsAt {
                inner: Cursor::new(bytes),
                at,
            };
            lvbak::archive::verify(src, Limits::default(), lvbak::archive::Depth::Deep).is_ok()
        });
        let _ = tx.send(r.is_ok());
    });
    rx.recv_timeout(Duration::from_secs(20)).ok()
}

#[test]
fn a_panicking_reader_ends_deep_verify_of_a_version_3_table() {
    let (b, middle) = archive();
    // Without the panic the archive is good (and goes through the pipeline).
    assert_eq!(deep_verify_ends(None, b.clone()), Some(true));
    let _ = std::io::stderr().flush();
    // Panicking a quarter of the way into the table's stored bytes: verify must end (by
    // the panic), not hang.
    let ended = deep_verify_ends(Some(middle), b);
    assert_eq!(
        ended,
        Some(false),
        "deep verify hung after the reader panicked"
    );
}
