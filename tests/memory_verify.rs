//! Deep verify of a large table keeps a bounded heap whatever its deflate
//! stream holds (counting allocator). Found by a review: stored bytes
//! copied aside for the checking thread grew with input that inflates to
//! nothing (64 MiB of empty blocks: an 82 MiB peak).

use std::io::{Cursor, Write};
use std::sync::atomic::Ordering::Relaxed;

use base64::Engine as _;
use lvbak::container::write::{EntryOptions, Method, ZipWriter, DEFAULT_EXTERNAL_ATTR};
use lvbak::container::CentralDirectory;
use lvbak::Limits;
use sha2::{Digest, Sha256};

#[path = "support/counting.rs"]
mod counting;
use counting::{CURRENT, PEAK};

#[global_allocator]
static GLOBAL: counting::Counting = counting::Counting;

const MIB: usize = 1 << 20;
const MANIFEST: &[u8] =
    br#"{"schemaVersion":1,"producer":"lumiverse","archiveId":"x","ndjsonFormatVersion":1}"#;

fn opts(method: Method) -> EntryOptions {
    EntryOptions {
        method,
        dos_time: (0, 33),
        external_attr: DEFAULT_EXTERNAL_ATTR,
    }
}

/// (name, local offset, central record offset, data start)
fn layout(b: &[u8]) -> Vec<(String, usize, usize, usize)> {
    let cd = CentralDirectory::read(&mut Cursor::new(b), &Limits::default()).unwrap();
    let mut pos = cd.cd_offset as usize;
    let mut out = Vec::new();
    for e in &cd.entries {
        let local = e.local_offset as usize;
        let lextra = u16::from_le_bytes([b[local + 28], b[local + 29]]) as usize;
        out.push((
            e.name.clone(),
            local,
            pos,
            local + 30 + e.name.len() + lextra,
        ));
        let nl = u16::from_le_bytes([b[pos + 28], b[pos + 29]]) as usize;
        let el = u16::from_le_bytes([b[pos + 30], b[pos + 31]]) as usize;
        let cl = u16::from_le_bytes([b[pos + 32], b[pos + 33]]) as usize;
        pos += 46 + nl + el + cl;
    }
    out
}

/// A valid archive whose 5 MiB table is deflated as `empty_blocks` empty
/// stored blocks (5 bytes each, no output) followed by the content; the
/// trailer's version-3 digests are right. Deep verify must pass it in
/// bounded heap, as reading its rows does.
fn archive(empty_blocks: usize) -> Vec<u8> {
    let mut content = Vec::new();
    let mut i = 0;
    while content.len() < 5 * MIB {
        content.extend_from_slice(
            format!(
                "{{\"id\":\"m{i}\",\"content\":\"{}\"}}\n",
                "word ".repeat(i % 40)
            )
            .as_bytes(),
        );
        i += 1;
    }
    let mut stored = Vec::with_capacity(empty_blocks * 5 + MIB);
    for _ in 0..empty_blocks {
        stored.extend_from_slice(&[0x00, 0x00, 0x00, 0xff, 0xff]);
    }
    let mut enc = flate2::write::DeflateEncoder::new(stored, flate2::Compression::new(3));
    enc.write_all(&content).unwrap();
    let stored = enc.finish().unwrap();
    let build = |trailer: &[u8]| {
        let mut z = ZipWriter::new(Vec::new());
        z.add_entry("manifest.json", opts(Method::Deflated(3)), MANIFEST)
            .unwrap();
        // Written as stored, then marked deflated below.
        z.add_entry("database/messages.ndjson", opts(Method::Stored), &stored)
            .unwrap();
        z.add_entry("manifest-stats.json", opts(Method::Deflated(3)), trailer)
            .unwrap();
        let mut b = z.finish().unwrap().0;
        let l = layout(&b);
        let (_, local, central, data) = l[1].clone();
        let crc = crc32fast::hash(&content).to_le_bytes();
        let size = (content.len() as u32).to_le_bytes();
        b[local + 8] = 8;
        b[central + 10] = 8;
        b[central + 16..central + 20].copy_from_slice(&crc);
        b[central + 24..central + 28].copy_from_slice(&size);
        let desc = data + stored.len();
        assert_eq!(&b[desc..desc + 4], b"PK\x07\x08");
        b[desc + 4..desc + 8].copy_from_slice(&crc);
        b[desc + 12..desc + 16].copy_from_slice(&size);
        b
    };
    let first = build(b"{}");
    let l = layout(&first);
    let m = &l[0];
    let m_len = l[1].1 - m.3 - 16; // manifest data, then its 16-byte descriptor
    let mut ds = Vec::new();
    ds.extend_from_slice(&Sha256::digest(&first[m.3..m.3 + m_len]));
    ds.extend_from_slice(&Sha256::digest(&stored));
    let b64 = base64::engine::general_purpose::STANDARD.encode(ds);
    let trailer = format!(
        "{{\"counts\":{{}},\"missingFiles\":[],\"lvbak\":{{\"version\":3,\"entries\":2,\"sha256\":\"{b64}\"}}}}"
    );
    build(trailer.as_bytes())
}

#[test]
fn deep_verify_of_a_version_3_table_stays_in_bounded_heap() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.lvbak");
    std::fs::write(&p, archive(64 * MIB / 5)).unwrap();

    // Reading the rows (digest checked as the stored bytes are read).
    let base = CURRENT.load(Relaxed);
    PEAK.store(base, Relaxed);
    {
        let f = std::io::BufReader::new(std::fs::File::open(&p).unwrap());
        let mut a = lvbak::Archive::open(f, Limits::default()).unwrap();
        let mut rows = a.rows("messages").unwrap();
        while rows.next_line().unwrap().is_some() {}
    }
    let rows_peak = PEAK.load(Relaxed) - base;

    let base = CURRENT.load(Relaxed);
    PEAK.store(base, Relaxed);
    let r = lvbak::archive::verify_path(
        &p,
        Limits::default(),
        lvbak::archive::Depth::Deep,
        1,
        &mut |_, _, _| {},
    );
    let verify_peak = PEAK.load(Relaxed) - base;
    eprintln!(
        "rows peak {:.1} MiB, deep verify peak {:.1} MiB, problems {:?}",
        rows_peak as f64 / MIB as f64,
        verify_peak as f64 / MIB as f64,
        r.problems
    );
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    assert!(rows_peak < 8 * MIB, "rows peak {rows_peak}");
    assert!(verify_peak < 32 * MIB, "deep verify peak {verify_peak}");
}
