//! Deflate backends on the workload's message text, cut in 1 MiB segments
//! as lvbak's writer compresses it, one thread: zlib-rs (through flate2,
//! what lvbak uses: `container::write::deflate_segment`) against libdeflate
//! (`libdeflater`), at the levels around lvbak's default. The compressed
//! sizes are printed before the timings.
//!
//! libdeflate compresses whole buffers only, each ending with a final
//! block, so its segments cannot be joined into one deflate stream the way
//! lvbak joins zlib-rs's flushed segments; this bench measures what it
//! would bring if they could.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

#[path = "workload/mod.rs"]
mod workload;

use lvbak::container::write::{deflate_segment, CHUNK};

const INPUT: usize = 64 << 20;

fn zlib_rs(text: &[u8], level: u32) -> usize {
    let n = text.len().div_ceil(CHUNK);
    text.chunks(CHUNK)
        .enumerate()
        .map(|(i, seg)| deflate_segment(level, seg, i + 1 == n).len())
        .sum()
}

fn libdeflate(text: &[u8], level: i32) -> usize {
    let Ok(lvl) = libdeflater::CompressionLvl::new(level) else {
        return 0;
    };
    let mut c = libdeflater::Compressor::new(lvl);
    let mut out = vec![0u8; c.deflate_compress_bound(CHUNK)];
    text.chunks(CHUNK)
        .map(|seg| c.deflate_compress(seg, &mut out).unwrap_or(0))
        .sum()
}

fn bench(c: &mut Criterion) {
    let text = workload::messages_ndjson(INPUT);
    eprintln!("input: {} bytes of messages NDJSON", text.len());
    for level in [1, 2, 3] {
        eprintln!("zlib-rs level {level}: {} bytes", zlib_rs(&text, level));
    }
    for level in [1, 2, 3] {
        eprintln!(
            "libdeflate level {level}: {} bytes",
            libdeflate(&text, level)
        );
    }
    let mut g = c.benchmark_group("deflate_backend");
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.sample_size(10);
    for level in [1u32, 2, 3] {
        g.bench_function(format!("zlib-rs/{level}"), |b| {
            b.iter(|| zlib_rs(&text, level))
        });
    }
    for level in [1i32, 2, 3] {
        g.bench_function(format!("libdeflate/{level}"), |b| {
            b.iter(|| libdeflate(&text, level))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
