//! Peak heap while writing then reading a large generated archive, measured
//! with a counting global allocator.

use std::io::{BufReader, BufWriter, Read, Write};
use std::sync::atomic::Ordering::Relaxed;

#[path = "support/counting.rs"]
mod counting;
use counting::{CURRENT, PEAK};

#[global_allocator]
static GLOBAL: counting::Counting = counting::Counting;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn fill(&mut self, b: &mut [u8]) {
        for c in b.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }
}

const MIB: usize = 1 << 20;
const LIMIT: usize = 32 * MIB;

#[test]
fn write_then_read_a_large_archive_in_bounded_heap() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.lvbak");
    let baseline = CURRENT.load(Relaxed);
    PEAK.store(baseline, Relaxed);

    // Write: 300,000 rows of ~1 KB, 400 stored files of 256 KiB, one 300 MiB file.
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let m = lvbak::Manifest::new("aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee", 1_700_000_000);
    let out = BufWriter::with_capacity(256 * 1024, std::fs::File::create(&path).unwrap());
    let mut w = lvbak::ArchiveWriter::new(out, &m, lvbak::WriteOptions::default()).unwrap();
    let mut t = w.table("messages").unwrap();
    let mut row = String::with_capacity(2048);
    let mut noise = [0u8; 480];
    for i in 0..300_000u32 {
        rng.fill(&mut noise);
        row.clear();
        row.push_str(&format!(
            "{{\"id\":\"m{i}\",\"chat_id\":\"c{}\",\"content\":\"",
            i / 1000
        ));
        for b in noise {
            row.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
            row.push(char::from(b"ghijklmnopqrstuv"[usize::from(b >> 4)]));
        }
        row.push_str("\"}");
        t.write_row(&row).unwrap();
    }
    t.finish().unwrap();
    let mut chunk = vec![0u8; MIB];
    for i in 0..400 {
        let id = format!("{:08x}-0000-4000-8000-{:012x}.png", i, i);
        let mut f = w.file(lvbak::Bucket::Images, &id).unwrap();
        rng.fill(&mut chunk[..256 * 1024]);
        f.write_bytes(&chunk[..256 * 1024]).unwrap();
        f.finish().unwrap();
    }
    let mut f = w
        .file(
            lvbak::Bucket::Images,
            "ffffffff-0000-4000-8000-000000000000.bin",
        )
        .unwrap();
    for _ in 0..300 {
        rng.fill(&mut chunk);
        f.write_bytes(&chunk).unwrap();
    }
    f.finish().unwrap();
    let (mut out, summary) = w.finish().unwrap();
    out.flush().unwrap();
    drop(out);
    drop(chunk);
    let write_peak = PEAK.load(Relaxed) - baseline;
    assert!(
        summary.bytes >= 512 * MIB as u64,
        "archive is only {} bytes",
        summary.bytes
    );

    // Read: every row, every file, with CRC and digest checks.
    PEAK.store(CURRENT.load(Relaxed), Relaxed);
    let base2 = CURRENT.load(Relaxed);
    let file = BufReader::new(std::fs::File::open(&path).unwrap());
    let mut a = lvbak::Archive::open(file, lvbak::Limits::default()).unwrap();
    let mut rows = 0u64;
    let mut it = a.rows("messages").unwrap();
    while it.next_line().unwrap().is_some() {
        rows += 1;
    }
    drop(it);
    assert_eq!(rows, 300_000);
    let mut buf = vec![0u8; 64 * 1024];
    let mut bytes = 0u64;
    for i in 0..a.entries().len() {
        if a.entry(i).unwrap().file().is_some() {
            let mut r = a.entry_reader(i).unwrap();
            loop {
                let n = r.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                bytes += n as u64;
            }
        }
    }
    assert_eq!(bytes, 400 * 256 * 1024 + 300 * MIB as u64);
    let read_peak = PEAK.load(Relaxed) - base2;
    eprintln!(
        "archive {} MiB: peak heap writing {:.1} MiB, reading {:.1} MiB",
        summary.bytes / MIB as u64,
        write_peak as f64 / MIB as f64,
        read_peak as f64 / MIB as f64
    );
    assert!(write_peak < LIMIT, "write peak {write_peak}");
    assert!(read_peak < LIMIT, "read peak {read_peak}");
}
