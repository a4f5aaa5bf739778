//! Writing and reading back: repack of every fixture, determinism, a
//! writer over a non-seekable sink, the server's byte layout.

mod common;

use std::fs::File;
use std::io::{BufReader, Cursor, Read, Write};

use lvbak::repack::{repack, repair, RepackOptions};
use lvbak::{Archive, Bucket, EntryName, Limits, Manifest, WriteOptions};

/// Every row (exact line) per table, and every file's bytes.
type Content = (Vec<(String, Vec<String>)>, Vec<(String, Vec<u8>)>);

fn content<R: Read + std::io::Seek>(a: &mut Archive<R>) -> Content {
    let mut tables = Vec::new();
    for t in a.tables() {
        let rows = a
            .rows(&t)
            .unwrap()
            .map(|r| r.unwrap().into_string())
            .collect();
        tables.push((t, rows));
    }
    for t in a.vector_tables() {
        let rows = a
            .vector_rows(&t)
            .unwrap()
            .map(|r| r.unwrap().into_string())
            .collect();
        tables.push((format!("lancedb:{t}"), rows));
    }
    let mut files = Vec::new();
    for i in 0..a.entries().len() {
        let name = a.entry(i).unwrap().name();
        if let EntryName::File { .. } = name {
            let mut b = Vec::new();
            a.entry_reader(i).unwrap().read_to_end(&mut b).unwrap();
            files.push((name.to_string(), b));
        }
    }
    files.sort();
    (tables, files)
}

fn open_fixture(dir: &std::path::Path, name: &str) -> Archive<BufReader<File>> {
    Archive::open(
        BufReader::new(File::open(dir.join(format!("{name}.lvbak"))).unwrap()),
        Limits::default(),
    )
    .unwrap()
}

#[test]
fn repack_of_every_fixture_keeps_rows_and_files_and_is_deterministic() {
    let Some(dir) = common::fixtures() else {
        return;
    };
    for name in [
        "basic",
        "empty-account",
        "with-secrets",
        "legacy-no-ndjson-version",
    ] {
        let mut a = open_fixture(&dir, name);
        let before = content(&mut a);
        let opts = RepackOptions {
            write: WriteOptions {
                deterministic: true,
                ..WriteOptions::default()
            },
            ..RepackOptions::default()
        };
        let (one, summary) = repack(&mut a, Vec::new(), &opts).unwrap();
        let (two, _) = repack(&mut a, Vec::new(), &opts).unwrap();
        assert_eq!(one, two, "{name}: deterministic repack differs");
        assert_eq!(summary.bytes, one.len() as u64);
        let mut b = Archive::open(Cursor::new(one), Limits::default()).unwrap();
        assert_eq!(content(&mut b), before, "{name}: content changed");
        assert_eq!(
            b.manifest().raw,
            a.manifest().raw,
            "{name}: manifest changed"
        );
        // Digests are recorded for every entry but the trailer, and check out.
        let digests = b.trailer().unwrap().lvbak.as_ref().unwrap().digests.len();
        assert_eq!(digests, b.entries().len() - 1);
        let report = lvbak::archive::verify(
            Cursor::new(b.into_inner().into_inner()),
            Limits::default(),
            lvbak::archive::Depth::Deep,
        );
        assert!(report.is_ok(), "{name}: {:?}", report.problems);
    }
}

#[test]
fn repair_recovers_the_fflate_duplicate() {
    let Some(dir) = common::fixtures() else {
        return;
    };
    let mut a = open_fixture(&dir, "legacy-fflate-async-duplicated");
    // A plain repack refuses it, naming the entry.
    let err = repack(&mut a, Vec::new(), &RepackOptions::default()).unwrap_err();
    assert_eq!(err.entry(), Some("database/messages.ndjson"));
    let (out, _, fixed) = repair(&mut a, Vec::new(), &RepackOptions::default()).unwrap();
    assert_eq!(fixed.len(), 1);
    assert_eq!(fixed[0].entry, "database/messages.ndjson");
    assert_eq!(fixed[0].dropped_bytes, 14_000_306);
    let mut b = Archive::open(Cursor::new(out), Limits::default()).unwrap();
    let v = lvbak::inspect::inspect(&mut b).unwrap();
    let exp = common::expected(&dir, "legacy-fflate-async-duplicated");
    // One copy of the duplicated row is gone; every other count is as stored.
    let mut want = exp["tables"].clone();
    want["messages"] = serde_json::json!(exp["tables"]["messages"].as_u64().unwrap() - 1);
    assert_eq!(v["tables"], want);
    assert_eq!(v["files"], exp["files"]);
    // The repaired rows equal the legacy fixture made from the same account.
    // No row appears twice any more, and the 14 MB row is still there once.
    let lens: Vec<usize> = b
        .rows("messages")
        .unwrap()
        .map(|r| r.unwrap().as_str().len())
        .collect();
    assert_eq!(
        lens.iter().filter(|&&n| n == 14_000_305).count(),
        1,
        "{lens:?}"
    );
}

#[test]
fn repair_leaves_good_archives_alone() {
    let Some(dir) = common::fixtures() else {
        return;
    };
    let mut a = open_fixture(&dir, "basic");
    let (_, _, fixed) = repair(&mut a, Vec::new(), &RepackOptions::default()).unwrap();
    assert!(fixed.is_empty());
}

/// A `Write` that cannot seek (like a pipe or an HTTP body).
struct Pipe(Vec<u8>);
impl Write for Pipe {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn writing_through_a_non_seekable_sink_reads_back() {
    let m = Manifest::new("00000000-0000-4000-8000-000000000000", 1_795_522_458);
    let mut w = lvbak::ArchiveWriter::new(Pipe(Vec::new()), &m, WriteOptions::default()).unwrap();
    let mut t = w.table("chats").unwrap();
    t.write_row(r#"{"id":"a","n":12345678901234567890,"s":"é\u0001"}"#)
        .unwrap();
    t.finish().unwrap();
    w.table("messages").unwrap().finish().unwrap();
    w.add_file(Bucket::Avatars, "a.png", &[1u8, 2, 3][..])
        .unwrap();
    w.add_file(Bucket::Avatars, "empty.png", &[][..]).unwrap();
    let (pipe, s) = w.finish().unwrap();
    assert_eq!(s.counts, vec![("chats".into(), 1), ("messages".into(), 0)]);
    let mut a = Archive::open(Cursor::new(pipe.0.clone()), Limits::default()).unwrap();
    let rows: Vec<_> = a
        .rows("chats")
        .unwrap()
        .map(|r| r.unwrap().into_string())
        .collect();
    assert_eq!(
        rows,
        vec![r#"{"id":"a","n":12345678901234567890,"s":"é\u0001"}"#.to_string()]
    );
    let mut f = Vec::new();
    a.file(Bucket::Avatars, "a.png")
        .unwrap()
        .read_to_end(&mut f)
        .unwrap();
    assert_eq!(f, vec![1, 2, 3]);
    // A standard ZIP reader agrees.
    let mut z = zip::ZipArchive::new(Cursor::new(pipe.0)).unwrap();
    assert_eq!(z.len(), 6);
    let mut s = String::new();
    z.by_name("database/chats.ndjson")
        .unwrap()
        .read_to_string(&mut s)
        .unwrap();
    assert!(s.ends_with("}\n"));
}

#[test]
fn byte_layout_matches_the_server_profile() {
    let m = Manifest::new("00000000-0000-4000-8000-000000000000", 1_795_522_458);
    let mut w = lvbak::ArchiveWriter::new(
        Vec::new(),
        &m,
        WriteOptions {
            deterministic: true,
            ..WriteOptions::default()
        },
    )
    .unwrap();
    w.table("settings").unwrap().finish().unwrap();
    w.add_file(Bucket::Avatars, "z.png", &[][..]).unwrap();
    w.add_file(Bucket::Avatars, "x.png", &b"xx"[..]).unwrap();
    let (b, _) = w.finish().unwrap();
    assert_eq!(&b[..4], b"PK\x03\x04");
    // Classic EOCD with sentinels and no comment, preceded by the ZIP64 locator and record.
    let eocd = &b[b.len() - 22..];
    assert_eq!(
        eocd,
        &[
            0x50, 0x4b, 5, 6, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xff, 0, 0
        ]
    );
    let loc = &b[b.len() - 42..b.len() - 22];
    assert_eq!(&loc[..8], &[0x50, 0x4b, 6, 7, 0, 0, 0, 0]);
    assert_eq!(&loc[16..], &[1, 0, 0, 0]);
    let cd =
        lvbak::container::CentralDirectory::read(&mut Cursor::new(&b), &Limits::default()).unwrap();
    assert!(cd.zip64);
    let by = |n: &str| cd.entries.iter().find(|e| e.name == n).unwrap().clone();
    let manifest = by("manifest.json");
    assert_eq!(
        (
            manifest.version_made_by,
            manifest.version_needed,
            manifest.flags,
            manifest.method
        ),
        (0x032D, 20, 8, 8)
    );
    assert_eq!(manifest.external_attr, (0o100644 << 16) | 0x20);
    assert_eq!((manifest.time, manifest.date), (25033, 23928));
    let empty_table = by("database/settings.ndjson");
    assert_eq!(
        (
            empty_table.flags,
            empty_table.method,
            empty_table.compressed_size,
            empty_table.uncompressed_size
        ),
        (8, 8, 2, 0)
    );
    let empty_file = by("files/avatars/z.png");
    assert_eq!(
        (
            empty_file.version_needed,
            empty_file.flags,
            empty_file.method
        ),
        (10, 0, 0)
    );
    let file = by("files/avatars/x.png");
    assert_eq!(
        (
            file.version_needed,
            file.flags,
            file.method,
            file.compressed_size
        ),
        (20, 8, 0, 2)
    );
    assert_eq!(cd.entries.last().unwrap().name, "manifest-stats.json");
    assert_eq!(cd.entries.first().unwrap().name, "manifest.json");
}

#[test]
fn writer_refuses_rows_the_server_would_refuse() {
    let m = Manifest::new("x", 0);
    let mut w = lvbak::ArchiveWriter::new(Vec::new(), &m, WriteOptions::default()).unwrap();
    let mut t = w.table("chats").unwrap();
    assert!(t.write_row("[1]").is_err());
    assert!(t.write_row("{\"a\":1}\n{}").is_err());
    assert!(t.write_row("{").is_err());
    let big = format!("{{\"a\":\"{}\"}}", "x".repeat(4 * 1024 * 1024));
    let e = t.write_row(&big).unwrap_err();
    assert!(e.to_string().contains("exceeds 4194304"), "{e}");
    t.finish().unwrap();
    assert!(w.table("Bad-Name").is_err());
    assert!(w.file(Bucket::Images, "../../etc/passwd").is_err());
    assert!(w.table("chats").is_err(), "duplicate entry");
}

#[test]
fn parallel_compression_is_deterministic_and_reads_back() {
    let m = Manifest::new("00000000-0000-4000-8000-000000000000", 1_795_522_458);
    let write = |threads: usize| {
        let opts = WriteOptions {
            deterministic: true,
            threads,
            ..WriteOptions::default()
        };
        let mut w = lvbak::ArchiveWriter::new(Vec::new(), &m, opts).unwrap();
        let mut t = w.table("messages").unwrap();
        for i in 0..40_000u32 {
            t.write_row(&format!(r#"{{"id":"m{i}","content":"row {i} of a table spanning several 1 MiB segments {}"}}"#, i * 7919 % 10007)).unwrap();
        }
        t.finish().unwrap();
        w.finish().unwrap().0
    };
    let one = write(1);
    assert_eq!(one, write(3), "output depends on the thread count");
    assert_eq!(one, write(0));
    let mut a = Archive::open(Cursor::new(one.clone()), Limits::default()).unwrap();
    assert_eq!(a.rows("messages").unwrap().count(), 40_000);
    let mut z = zip::ZipArchive::new(Cursor::new(one)).unwrap();
    let mut s = String::new();
    z.by_name("database/messages.ndjson")
        .unwrap()
        .read_to_string(&mut s)
        .unwrap();
    assert!(s.len() > 3 << 20, "not multi-segment: {}", s.len());
    assert_eq!(s.lines().count(), 40_000);
}

/// The central directory of `zip` with its records in reverse order (same
/// size and place, so the end records still hold; offsets below 4 GiB).
fn reverse_directory(mut zip: Vec<u8>) -> Vec<u8> {
    let eocd = zip.len() - 22;
    let u16_at = |b: &[u8], at: usize| usize::from(u16::from_le_bytes([b[at], b[at + 1]]));
    let u32_at =
        |b: &[u8], at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize;
    let (mut size, mut start) = (u32_at(&zip, eocd + 12), u32_at(&zip, eocd + 16));
    if start == 0xFFFF_FFFF || size == 0xFFFF_FFFF {
        // The ZIP64 end record sits before its 20-byte locator.
        let z = eocd - 20 - 56;
        assert_eq!(u32_at(&zip, z), 0x0606_4b50);
        size = u32_at(&zip, z + 40);
        start = u32_at(&zip, z + 48);
    }
    let mut records = Vec::new();
    let mut p = start;
    while p < start + size {
        assert_eq!(u32_at(&zip, p), 0x0201_4b50);
        let len = 46 + u16_at(&zip, p + 28) + u16_at(&zip, p + 30) + u16_at(&zip, p + 32);
        records.push(zip[p..p + len].to_vec());
        p += len;
    }
    records.reverse();
    zip.splice(start..start + size, records.concat());
    zip
}

#[test]
fn a_directory_out_of_offset_order_reads_the_same() {
    let m = Manifest::new("00000000-0000-4000-8000-000000000000", 1_795_522_458);
    // Without digests: version-2 digests follow the directory's order.
    let opts = WriteOptions {
        digests: false,
        ..WriteOptions::default()
    };
    let mut w = lvbak::ArchiveWriter::new(Vec::new(), &m, opts).unwrap();
    let mut t = w.table("chats").unwrap();
    for i in 0..50 {
        t.write_row(&format!(r#"{{"id":"c{i}","name":"chat {i}"}}"#))
            .unwrap();
    }
    t.finish().unwrap();
    for i in 0..20u8 {
        let body = vec![i; usize::from(i) * 100];
        w.add_file(Bucket::Avatars, &format!("a{i}.png"), &body[..])
            .unwrap();
    }
    let (bytes, _) = w.finish().unwrap();
    let reversed = reverse_directory(bytes.clone());
    assert_ne!(reversed, bytes);
    let mut a = Archive::open(Cursor::new(&bytes), Limits::default()).unwrap();
    let mut b = Archive::open(Cursor::new(&reversed), Limits::default()).unwrap();
    assert_eq!(b.entries().next().unwrap().path(), "manifest-stats.json");
    let (mut ta, mut fa) = content(&mut a);
    let (mut tb, mut fb) = content(&mut b);
    ta.sort();
    tb.sort();
    fa.sort();
    fb.sort();
    assert_eq!(fa.len(), 20);
    assert!(
        ta == tb && fa == fb,
        "the reordered archive reads differently"
    );
    let report = lvbak::archive::verify(
        Cursor::new(&reversed),
        Limits::default(),
        lvbak::archive::Depth::Deep,
    );
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}
