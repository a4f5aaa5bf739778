//! Write and read throughput of the archive core on generated data.
//!
//! Workload: one table of 50,000 rows of ~1 KB prose-like text plus 100
//! stored files of 256 KiB random bytes (~76 MB uncompressed). Run with
//! `cargo bench --bench throughput`. `verify_path_deep_2t_one_pass` and
//! `_parts` deep-verify it from a file on two threads, the table inflated
//! on one thread or in parts.
//!
//! The `directory` group opens and fast-verifies an archive of 96,000
//! tiny files (the entry count of the 16× benchmark account), where the
//! cost is the central directory and the trailer's digests: in memory,
//! and from a file on one thread and on two (the trailer read ahead).

use std::io::Cursor;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lvbak::archive::{verify, Depth};
use lvbak::{Archive, ArchiveWriter, Bucket, Limits, Manifest, WriteOptions};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

const WORDS: [&str; 16] = [
    "lantern", "river", "archive", "letter", "copied", "hand", "mistake", "new", "the", "of",
    "and", "every", "small", "carried", "quiet", "moon",
];

struct Data {
    rows: Vec<String>,
    files: Vec<Vec<u8>>,
}

fn data() -> Data {
    let mut rng = Rng(42);
    let rows = (0..50_000)
        .map(|i| {
            let mut s = format!(
                "{{\"id\":\"m{i}\",\"chat_id\":\"c{}\",\"content\":\"",
                i / 1000
            );
            while s.len() < 1000 {
                s.push_str(WORDS[(rng.next() % 16) as usize]);
                s.push(' ');
            }
            s.push_str("\",\"created_at\":1767225707}");
            s
        })
        .collect();
    let files = (0..100)
        .map(|_| {
            (0..256 * 1024 / 8)
                .flat_map(|_| rng.next().to_le_bytes())
                .collect()
        })
        .collect();
    Data { rows, files }
}

fn write(d: &Data) -> Vec<u8> {
    let m = Manifest::new("aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee", 1_700_000_000);
    let mut w =
        ArchiveWriter::new(Vec::with_capacity(64 << 20), &m, WriteOptions::default()).unwrap();
    let mut t = w.table("messages").unwrap();
    for r in &d.rows {
        t.write_row(r).unwrap();
    }
    t.finish().unwrap();
    for (i, f) in d.files.iter().enumerate() {
        w.add_file(
            Bucket::Images,
            &format!("{i:08x}-0000-4000-8000-000000000000.png"),
            &f[..],
        )
        .unwrap();
    }
    w.finish().unwrap().0
}

fn read(b: &[u8]) -> u64 {
    let mut a = Archive::open(Cursor::new(b), Limits::default()).unwrap();
    let mut n = 0;
    let mut rows = a.rows("messages").unwrap();
    while rows.next_line().unwrap().is_some() {
        n += 1;
    }
    drop(rows);
    for i in 0..a.entries().len() {
        if a.entry(i).is_some_and(|e| e.file().is_some()) {
            n += a.entry_reader(i).unwrap().drain().unwrap();
        }
    }
    n
}

/// Verifies the archive at `path` as the CLI does (`verify_path`), or
/// with `split_from` as the threshold for checking an entry in parts; it
/// must be sound.
fn verify_file(path: &std::path::Path, depth: Depth, threads: usize, split_from: Option<u64>) {
    let (limits, none) = (Limits::default(), &mut |_, _, _| {});
    let r = match split_from {
        None => lvbak::archive::verify_path(path, limits, depth, threads, none),
        Some(from) => {
            lvbak::archive::verify_path_split_from(path, limits, depth, threads, from, none)
        }
    };
    assert!(r.is_ok(), "{:?}", r.problems);
}

fn bench(c: &mut Criterion) {
    let d = data();
    let bytes: u64 = d.rows.iter().map(|r| r.len() as u64 + 1).sum::<u64>()
        + d.files.iter().map(|f| f.len() as u64).sum::<u64>();
    let archive = write(&d);
    let mut g = c.benchmark_group("archive");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function("write", |b| b.iter(|| write(&d)));
    g.bench_function("read", |b| b.iter(|| read(&archive)));
    g.bench_function("verify_deep", |b| {
        b.iter(|| {
            assert!(verify(Cursor::new(&archive[..]), Limits::default(), Depth::Deep).is_ok())
        })
    });
    // As the CLI verifies, from a file on two threads: the message table
    // inflated on one thread (threshold above every entry) or in parts
    // (threshold 0).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("archive.lvbak");
    std::fs::write(&path, &archive).unwrap();
    for (name, split_from) in [("one_pass", u64::MAX), ("parts", 0)] {
        g.bench_function(format!("verify_path_deep_2t_{name}"), |b| {
            b.iter(|| verify_file(&path, Depth::Deep, 2, Some(split_from)))
        });
    }
    g.finish();
    let mut g = c.benchmark_group("verify_fast");
    g.bench_function("fast", |b| {
        b.iter(|| {
            assert!(verify(Cursor::new(&archive[..]), Limits::default(), Depth::Fast).is_ok())
        })
    });
    g.finish();
}

/// An archive of `n` 16-byte image files, with digests.
fn many_entries(n: u32) -> Vec<u8> {
    let m = Manifest::new("aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee", 1_700_000_000);
    let mut w = ArchiveWriter::new(Vec::new(), &m, WriteOptions::default()).unwrap();
    for i in 0..n {
        let name = format!("{i:08x}-0000-4000-8000-000000000000.png");
        w.add_file(Bucket::Images, &name, &i.to_le_bytes().repeat(4)[..])
            .unwrap();
    }
    w.finish().unwrap().0
}

fn directory(c: &mut Criterion) {
    let archive = many_entries(96_000);
    let mut g = c.benchmark_group("directory");
    g.sample_size(20);
    g.throughput(Throughput::Elements(96_000));
    g.bench_function("open_96k", |b| {
        b.iter(|| Archive::open(Cursor::new(&archive[..]), Limits::default()).unwrap())
    });
    g.bench_function("verify_fast_96k", |b| {
        b.iter(|| {
            assert!(verify(Cursor::new(&archive[..]), Limits::default(), Depth::Fast).is_ok())
        })
    });
    // As the CLI verifies: from a file, the trailer read on a second
    // thread while the directory is scanned (one thread: no read-ahead).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("96k.lvbak");
    std::fs::write(&path, &archive).unwrap();
    for threads in [1, 2] {
        g.bench_function(format!("verify_path_fast_96k_{threads}t"), |b| {
            b.iter(|| verify_file(&path, Depth::Fast, threads, None))
        });
    }
    g.finish();
}

criterion_group!(benches, bench, directory);
criterion_main!(benches);
