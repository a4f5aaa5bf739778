//! Export, import, fast verify and deep verify on the generated workload at
//! 1/20 of scale 1 (15,000 messages, 100 images with thumbnails), through
//! the SQLite store. `cargo bench --bench engines`. Full-scale figures with
//! peak RSS come from `scripts/bench-rss.sh`.

#[path = "workload/mod.rs"]
mod workload;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lvbak::archive::{verify_path, Depth};
use lvbak::engine::{export, import, CancelToken, ExportOptions, ImportOptions};
use lvbak::Limits;

fn bench(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let db = workload::generate(&src, 50).unwrap();
    let archive = tmp.path().join("w.lvbak");
    let mut store = lvbak::sqlite::SqliteStore::open(&db, &src, workload::USER).unwrap();
    let (_, res) = export(
        &mut store,
        std::fs::File::create(&archive).unwrap(),
        &ExportOptions::default(),
        &mut |_| {},
        &CancelToken::new(),
    )
    .unwrap();
    let bytes = res.summary.bytes;
    let mut g = c.benchmark_group("engines");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function("export", |b| {
        b.iter(|| {
            let out =
                std::io::BufWriter::new(std::fs::File::create(tmp.path().join("e.lvbak")).unwrap());
            export(
                &mut store,
                out,
                &ExportOptions::default(),
                &mut |_| {},
                &CancelToken::new(),
            )
            .unwrap();
        })
    });
    let mut n = 0;
    g.bench_function("import", |b| {
        b.iter(|| {
            n += 1;
            let dir = tmp.path().join(format!("dst{n}"));
            let mut sink =
                lvbak::sqlite::SqliteStore::open(&dir.join("lumiverse.db"), &dir, "u").unwrap();
            let mut a = lvbak::Archive::open(
                std::io::BufReader::new(std::fs::File::open(&archive).unwrap()),
                Limits::default(),
            )
            .unwrap();
            import(
                &mut a,
                &mut sink,
                &ImportOptions::default(),
                &mut |_| {},
                &CancelToken::new(),
            )
            .unwrap();
            drop(sink);
            let _ = std::fs::remove_dir_all(&dir);
        })
    });
    g.bench_function("verify_deep", |b| {
        b.iter(|| {
            assert!(verify_path(
                &archive,
                Limits::default(),
                Depth::Deep,
                0,
                &mut |_, _, _| {}
            )
            .is_ok())
        })
    });
    g.finish();
    let mut g = c.benchmark_group("engines_fast");
    g.bench_function("verify_fast", |b| {
        b.iter(|| {
            assert!(verify_path(
                &archive,
                Limits::default(),
                Depth::Fast,
                0,
                &mut |_, _, _| {}
            )
            .is_ok())
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
