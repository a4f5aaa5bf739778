//! Verification: fast (end records, central directory, names, manifest:
//! cost independent of entry sizes) and deep (every entry inflated and
//! checked), listing every problem rather than stopping at the first.

use std::collections::HashSet;
use std::io::{BufRead, Read, Seek};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use sha2::{Digest, Sha256};

use super::reader::{checked_reader, next_checked_line, read_indexed};
use super::{Archive, ArchiveError};
use crate::container::{check_descriptor, check_local, ContainerError, DigestOf, LocalInfo};
use crate::entry_name::EntryName;
use crate::manifest::Digests;
use crate::ndjson::LineReader;
use crate::Limits;

/// How far to verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// End records, central directory, names, overlap, manifest, trailer.
    Fast,
    /// Everything in `Fast`, plus every entry: local header, inflate, size,
    /// CRC-32, data descriptor, SHA-256 digest, NDJSON and JSON parse.
    Deep,
}

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The entry it is about, if any.
    pub entry: Option<String>,
    /// A stable code (see [`ArchiveError::code`]).
    pub code: &'static str,
    /// A readable message.
    pub message: String,
}

impl From<&ArchiveError> for Problem {
    fn from(e: &ArchiveError) -> Problem {
        Problem {
            entry: e.entry().map(str::to_owned),
            code: e.code(),
            message: e.to_string(),
        }
    }
}

/// What verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// How far it went.
    pub depth: Depth,
    /// Entries in the central directory.
    pub entries: u64,
    /// Uncompressed bytes checked (deep only).
    pub bytes_checked: u64,
    /// Every problem, in the order found.
    pub problems: Vec<Problem>,
}

impl Report {
    /// True when no problem was found.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Progress callback: (entries done, entries total, bytes done).
pub type ProgressFn<'a> = &'a mut dyn FnMut(u64, u64, u64);

/// Verifies an archive. Never panics and never stops at the first problem
/// (except when the central directory itself cannot be read).
pub fn verify<R: Read + Seek>(reader: R, limits: Limits, depth: Depth) -> Report {
    verify_with_progress(reader, limits, depth, &mut |_, _, _| {})
}

/// [`verify`] with a progress callback, called after each entry in deep mode.
pub fn verify_with_progress<R: Read + Seek>(
    reader: R,
    limits: Limits,
    depth: Depth,
    progress: ProgressFn<'_>,
) -> Report {
    let (mut report, archive) = fast_checks(reader, limits, depth);
    let Some(mut archive) = archive.filter(|_| depth == Depth::Deep) else {
        return report;
    };
    report.problems.extend(digest_coverage(&archive));
    let total = archive.entries().len() as u64;
    let ctx = DeepCtx::of(&archive);
    let mut scratch = vec![0u8; SCRATCH];
    for i in 0..archive.entries().len() {
        let Some(e) = archive.entry(i).map(|e| e.to_entry()) else {
            break;
        };
        let digest = archive.digest_of(i);
        let (n, found) = check_entry(archive.reader_mut(), &ctx, &e, digest, &mut scratch);
        report.bytes_checked += n;
        report.problems.extend(found);
        progress(i as u64 + 1, total, report.bytes_checked);
    }
    report
}

/// The fast checks (end records, directory, names, manifest, trailer),
/// with the archive they opened for the deep ones; no archive when the
/// central directory itself cannot be read.
fn fast_checks<R: Read + Seek>(
    mut reader: R,
    limits: Limits,
    depth: Depth,
) -> (Report, Option<Archive<R>>) {
    let mut report = Report {
        depth,
        entries: 0,
        bytes_checked: 0,
        problems: Vec::new(),
    };
    let (indexed, problems) = match read_indexed(&mut reader, &limits) {
        Ok(x) => x,
        Err(e) => {
            report.problems.push((&ArchiveError::from(e)).into());
            return (report, None);
        }
    };
    report.entries = indexed.records as u64;
    report.problems.extend(problems.iter().map(Problem::from));
    let (archive, problems) = Archive::from_parts_lenient(reader, indexed, limits);
    report.problems.extend(problems.iter().map(Problem::from));
    if archive.trailer_ignored() {
        report.problems.push(Problem {
            entry: Some("manifest-stats.json".into()),
            code: "bad_json",
            message: "manifest-stats.json is not a JSON object (the server ignores it)".into(),
        });
    }
    (report, Some(archive))
}

/// [`verify`] of a file on disk, with the deep checks spread over
/// `threads` threads (0: one per core, at most 4), each with its own file
/// handle. Problems are reported in central-directory order, whatever the
/// thread count. `progress` is called from the calling thread.
pub fn verify_path(
    path: &std::path::Path,
    limits: Limits,
    depth: Depth,
    threads: usize,
    progress: ProgressFn<'_>,
) -> Report {
    use std::sync::atomic::{AtomicU64, Ordering};
    let open = || {
        std::fs::File::open(path).map(|f| std::io::BufReader::with_capacity(super::FILE_BUFFER, f))
    };
    let first = match open() {
        Ok(f) => f,
        Err(e) => {
            return Report {
                depth,
                entries: 0,
                bytes_checked: 0,
                problems: vec![(&ArchiveError::from(ContainerError::Io(e))).into()],
            }
        }
    };
    let threads = if threads == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get().min(4))
            .unwrap_or(1)
    } else {
        threads
    };
    if depth == Depth::Fast || threads <= 1 {
        return verify_with_progress(first, limits, depth, progress);
    }
    // Fast part (and the digest coverage check) on this thread; the deep
    // checks share the archive it opened, each thread with its own handle.
    let (mut report, archive) = fast_checks(first, limits, Depth::Deep);
    let Some(archive) = archive else {
        return report;
    };
    let archive = &archive;
    let ctx = DeepCtx::of(archive);
    report.problems.extend(digest_coverage(archive));
    // Largest entries first; each thread takes the next one when it is
    // free, so the one holding the largest entry is not also handed a
    // share of the rest.
    let mut order: Vec<(std::cmp::Reverse<u64>, usize)> = archive
        .entries()
        .enumerate()
        .map(|(i, e)| (std::cmp::Reverse(e.uncompressed_size()), i))
        .collect();
    order.sort_unstable();
    let total = order.len() as u64;
    let done = AtomicU64::new(0);
    let bytes = AtomicU64::new(0);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut found: Vec<(usize, Problem)> = Vec::new();
    let mut reopen_failed: Option<std::io::Error> = None;
    let (running_tx, running_rx) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|sc| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (done, bytes, next, order, ctx) = (&done, &bytes, &next, &order, &ctx);
                let running = running_tx.clone();
                sc.spawn(move || {
                    // Dropped when this thread ends, however it ends.
                    let _running = running;
                    let mut out = Vec::new();
                    let f = match open() {
                        Ok(f) => f,
                        Err(e) => return (out, Some(e)),
                    };
                    let mut a = archive.share_with(f);
                    let mut scratch = vec![0u8; SCRATCH];
                    while let Some(&(_, i)) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
                        let Some(e) = a.entry(i).map(|e| e.to_entry()) else {
                            done.fetch_add(1, Ordering::Relaxed);
                            continue;
                        };
                        let digest = a.digest_of(i);
                        let (n, found) = check_entry(a.reader_mut(), ctx, &e, digest, &mut scratch);
                        bytes.fetch_add(n, Ordering::Relaxed);
                        out.extend(found.into_iter().map(|p| (i, p)));
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    (out, None)
                })
            })
            .collect();
        drop(running_tx);
        // Progress every 50 ms, and no waiting once the last thread ends
        // (the channel disconnects when every sender is dropped).
        while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
            running_rx.recv_timeout(std::time::Duration::from_millis(50))
        {
            progress(
                done.load(Ordering::Relaxed),
                total,
                bytes.load(Ordering::Relaxed),
            );
        }
        for h in handles {
            if let Ok((v, e)) = h.join() {
                found.extend(v);
                if reopen_failed.is_none() {
                    reopen_failed = e;
                }
            }
        }
    });
    found.sort_by_key(|(i, _)| *i);
    report.problems.extend(found.into_iter().map(|(_, p)| p));
    let checked = done.load(Ordering::Relaxed);
    if checked < total {
        // Every checking thread failed to open the file (or stopped):
        // the entries left are reported, never passed over in silence.
        let why = reopen_failed.map_or_else(
            || "a checking thread stopped".to_owned(),
            |e| format!("the archive could not be opened again: {e}"),
        );
        report.problems.push(Problem {
            entry: None,
            code: "container",
            message: format!(
                "{} of {total} entries were not checked ({why})",
                total - checked
            ),
        });
    }
    report.bytes_checked = bytes.load(Ordering::Relaxed);
    progress(total, total, report.bytes_checked);
    report
}

fn digest_coverage<R>(archive: &Archive<R>) -> Vec<Problem> {
    let mut out = Vec::new();
    let Some(l) = archive.trailer().and_then(|t| t.lvbak.as_ref()) else {
        return out;
    };
    if let Digests::InOrder(v) = &l.digests {
        // Positional: one digest for each entry but the trailer.
        let mut present = 0usize;
        for (i, e) in archive.entries().enumerate() {
            if e.is(&EntryName::Trailer) {
                continue;
            }
            present += 1;
            if archive.digest_of(i).is_none() {
                out.push(Problem {
                    entry: Some(e.path().into_owned()),
                    code: "digest_missing",
                    message:
                        "entry has no digest in the trailer's lvbak field (added after writing?)"
                            .into(),
                });
            }
        }
        if v.len() > present {
            out.push(Problem {
                entry: None,
                code: "entry_missing",
                message: format!(
                    "the trailer records {} digests for {present} entries (entries removed after writing?)",
                    v.len()
                ),
            });
        }
        return out;
    }
    if let Digests::ByName(by_name) = &l.digests {
        let listed: HashSet<&str> = by_name.iter().map(|(k, _)| k.as_str()).collect();
        let present: HashSet<String> = archive.entries().map(|e| e.path().into_owned()).collect();
        for e in archive.entries() {
            let n = e.path();
            if !e.is(&EntryName::Trailer) && !listed.contains(&*n) {
                out.push(Problem {
                    entry: Some(n.into_owned()),
                    code: "digest_missing",
                    message:
                        "entry has no digest in the trailer's lvbak field (added after writing?)"
                            .into(),
                });
            }
        }
        let mut extra: Vec<&str> = listed
            .into_iter()
            .filter(|k| !present.contains(*k))
            .collect();
        extra.sort();
        for k in extra {
            out.push(Problem {
                entry: Some(k.to_owned()),
                code: "entry_missing",
                message: "the trailer records a digest for an entry that is not in the archive"
                    .into(),
            });
        }
    }
    out
}

/// What the deep checks of one entry need besides the entry: the
/// archive's limits and line cap, and which bytes its digests cover.
#[derive(Clone, Copy)]
pub(crate) struct DeepCtx {
    line_cap: u64,
    max_json_depth: u32,
    secrets_index_cap: u64,
    covers: DigestOf,
}

impl DeepCtx {
    fn of<R>(a: &Archive<R>) -> DeepCtx {
        DeepCtx::new(a.limits(), a.line_cap(), a.digests_cover())
    }

    pub(crate) fn new(limits: &Limits, line_cap: u64, covers: DigestOf) -> DeepCtx {
        DeepCtx {
            line_cap,
            max_json_depth: limits.max_json_depth,
            secrets_index_cap: limits.max_secrets_index_bytes,
            covers,
        }
    }
}

/// The deep checks of entry `e` (whose recorded digest is `digest`) and of
/// its data descriptor, reading from `r`: the bytes checked (0 when the
/// entry fails) and the problems found, in order.
pub(crate) fn check_entry<R: Read + Seek>(
    r: &mut R,
    ctx: &DeepCtx,
    e: &super::Entry,
    digest: Option<[u8; 32]>,
    scratch: &mut [u8],
) -> (u64, Vec<Problem>) {
    let mut found = Vec::new();
    let (n, local) = match deep_entry(r, ctx, e, digest, scratch) {
        Ok(checked) => checked,
        Err(err) => {
            found.push((&err).into());
            (0, None)
        }
    };
    // Descriptor agreement (the server never looks; a lie is reported).
    found.extend(descriptor_problem(r, e, local));
    (n, found)
}

/// The problem, if any, with entry `e`'s data descriptor; `local` is where
/// its data lies when the deep check already read its local header.
fn descriptor_problem<R: Read + Seek>(
    r: &mut R,
    e: &super::Entry,
    local: Option<LocalInfo>,
) -> Option<Problem> {
    let local = match local {
        Some(l) => Ok(l),
        None => check_local(r, &e.central),
    };
    match local.and_then(|info| check_descriptor(r, &e.central, info)) {
        Err(err @ (ContainerError::DescriptorMismatch { .. } | ContainerError::Record { .. })) => {
            Some((&ArchiveError::from(err)).into())
        }
        _ => None,
    }
}

/// Checks entry `e` ([`Depth::Deep`]); returns the bytes checked and, for
/// an entry read as plain bytes, where its local header puts its data
/// (so the descriptor check need not read the header again). `scratch`
/// is a read buffer reused from entry to entry.
fn deep_entry<R: Read + Seek>(
    r: &mut R,
    ctx: &DeepCtx,
    e: &super::Entry,
    digest: Option<[u8; 32]>,
    scratch: &mut [u8],
) -> Result<(u64, Option<LocalInfo>), ArchiveError> {
    let name = &e.name;
    let size = e.central.uncompressed_size;
    if name.is_ndjson() && size > PIPELINE_FROM {
        return deep_ndjson_pipelined(r, ctx, e, digest).map(|n| (n, None));
    }
    let mut er = checked_reader(r, &e.central, digest, ctx.covers)?;
    if name.is_ndjson() {
        let entry = name.to_string();
        let mut lines = LineReader::new(
            std::io::BufReader::with_capacity(64 * 1024, er),
            ctx.line_cap,
        );
        while next_checked_line(&mut lines, &entry, ctx.max_json_depth)?.is_some() {}
        return Ok((size, None));
    }
    if *name == EntryName::SecretsIndex {
        let cap = ctx.secrets_index_cap;
        if size > cap {
            return Err(ArchiveError::EntryTooLarge {
                entry: name.to_string(),
                size,
                limit: cap,
                hint: "the cap for this entry",
            });
        }
        let mut bytes = Vec::with_capacity(size as usize);
        er.read_to_end(&mut bytes)
            .map_err(ContainerError::from_io)?;
        if let Err(e) = serde_json::from_slice::<serde_json::Value>(&bytes) {
            return Err(ArchiveError::Json {
                entry: name.to_string(),
                message: format!("not valid JSON: {e}"),
            });
        }
        return Ok((size, None));
    }
    let local = er.local_info();
    Ok((er.drain_with(scratch)?, Some(local)))
}

/// Bytes of each checking thread's read buffer for plain entries.
const SCRATCH: usize = 64 * 1024;

/// NDJSON entries larger than this are checked by two threads.
const PIPELINE_FROM: u64 = 4 << 20;
/// Measured on the 1x workload (deep verify, alternating runs). With
/// digests of the uncompressed bytes, hashed by the checking thread:
/// 64 KiB chunks 0.59-0.64 s, 128 KiB 0.60-0.63, 256 KiB 0.63-0.69, 32 KiB
/// 0.65-0.74, 16 KiB 0.72-0.76. With digests of the stored bytes (field
/// version 3) the checking thread has less to do and waits for chunks, so
/// each hand-off wakes it: 64 KiB 0.70-0.73 s, 256 KiB 0.62-0.63, 1 MiB
/// 0.61-0.63 (with 5 MiB more memory).
const CHUNK: usize = 256 * 1024;

/// Checks a large NDJSON entry on two threads: this one reads, inflates and
/// checks the size (the entry reader); a second one computes the CRC-32 and
/// the SHA-256, splits lines, and checks each as JSON. Chunks are recycled
/// and at most a few are in flight. Reports the same first problem as
/// reading the rows in order: a line problem comes from bytes delivered
/// before any failure of the reading side, and the reading side's failure
/// otherwise.
fn deep_ndjson_pipelined<R: Read + Seek>(
    reader: &mut R,
    ctx: &DeepCtx,
    e: &super::Entry,
    digest: Option<[u8; 32]>,
) -> Result<u64, ArchiveError> {
    let cap = ctx.line_cap;
    let depth = ctx.max_json_depth;
    let size = e.central.uncompressed_size;
    let entry = e.name.to_string();
    let mut r = checked_reader(reader, &e.central, digest, ctx.covers)?;
    // The checking thread computes the CRC-32 and the SHA-256 (of the
    // uncompressed bytes, or of the stored bytes, which go with the chunks
    // they inflate to; any that pile up in one read go ahead on their own,
    // in order): inflating keeps this one busy.
    let (tx, rx) = sync_channel::<Option<Chunk>>(4);
    let forward = tx.clone();
    let stored: crate::container::StoredSink<'_> = Box::new(move |bytes| {
        // (A checker that stopped has dropped the receiver: nothing to do.)
        let _ = forward.send(Some(Chunk {
            stored: bytes.to_vec(),
            ..Chunk::default()
        }));
    });
    let end = EndChecks {
        entry: entry.clone(),
        crc: r
            .take_crc_check()
            .map(|want| (crc32fast::Hasher::new(), want)),
        sha: r
            .take_sha256_check(stored)
            .map(|(of, want)| (of, Sha256::new(), want)),
    };
    std::thread::scope(|sc| {
        // The reader (and the copy of the sender its sink holds) belongs
        // to this closure: dropped however it ends, a panic included, so
        // the checker always sees the end and the scope can finish.
        let mut r = r;
        let (back_tx, back_rx) = sync_channel::<Chunk>(8);
        let checker = std::thread::Builder::new()
            .name("lvbak-verify-lines".into())
            .spawn_scoped(sc, move || {
                let src = ChunkReader {
                    rx,
                    back: back_tx,
                    cur: Chunk::default(),
                    pos: 0,
                    end: Some(end),
                };
                let mut lines = LineReader::new(src, cap);
                while next_checked_line(&mut lines, &entry, depth)?.is_some() {}
                Ok::<(), ArchiveError>(())
            });
        let checker = match checker {
            Ok(h) => h,
            Err(e) => return Err(ArchiveError::Container(ContainerError::Io(e))),
        };
        let mut upstream: Result<(), ArchiveError> = Ok(());
        loop {
            let mut chunk = back_rx.try_recv().unwrap_or_default();
            chunk.buf.resize(CHUNK, 0);
            // (A recycled chunk may have carried stored bytes.)
            chunk.stored.clear();
            let mut n = 0;
            let mut failed = None;
            while n < CHUNK {
                match r.read(&mut chunk.buf[n..]) {
                    Ok(0) => break,
                    Ok(k) => n += k,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            r.take_stored(&mut chunk.stored);
            chunk.len = n;
            // Stored bytes read on the way to the end go too, even with
            // no uncompressed byte left to send.
            let something = n > 0 || !chunk.stored.is_empty();
            if something && tx.send(Some(chunk)).is_err() {
                break; // the checker stopped at a problem
            }
            if let Some(e) = failed {
                upstream = Err(ArchiveError::Container(ContainerError::from_io(e)));
                let _ = tx.send(None);
                break;
            }
            if n < CHUNK {
                break; // end of the entry
            }
        }
        // The reader's copy of the sender goes too: the checker sees the
        // end when every sender is dropped.
        r.stop_forwarding();
        drop(tx);
        let checked = checker.join().unwrap_or_else(|_| {
            Err(ArchiveError::Container(ContainerError::Io(
                std::io::Error::other("the line-checking thread failed"),
            )))
        });
        match (checked, upstream) {
            (Err(ArchiveError::Container(ContainerError::Io(e))), Err(up))
                if e.kind() == std::io::ErrorKind::BrokenPipe =>
            {
                Err(up)
            }
            (Err(e), _) => Err(e),
            (Ok(()), Err(up)) => Err(up),
            (Ok(()), Ok(())) => Ok(size),
        }
    })
}

/// What the reading side hands the checker: `len` uncompressed bytes at
/// the start of `buf`, and the stored bytes read since the last chunk when
/// their digest is checked (or, sent by the entry reader when many pile up
/// in one read, stored bytes alone).
#[derive(Default)]
struct Chunk {
    buf: Vec<u8>,
    len: usize,
    stored: Vec<u8>,
}

/// The checks an entry reader makes at the end of the entry, taken over by
/// the checking thread: the CRC-32, then the SHA-256.
struct EndChecks {
    entry: String,
    crc: Option<(crc32fast::Hasher, u32)>,
    sha: Option<(DigestOf, Sha256, [u8; 32])>,
}

impl EndChecks {
    fn update(&mut self, chunk: &Chunk) {
        let content = chunk.buf.get(..chunk.len).unwrap_or(&[]);
        if let Some((h, _)) = &mut self.crc {
            h.update(content);
        }
        match &mut self.sha {
            Some((DigestOf::Content, h, _)) => h.update(content),
            Some((DigestOf::Stored, h, _)) => h.update(&chunk.stored),
            None => {}
        }
    }

    /// The first mismatch, as the entry reader reports it.
    fn finish(self) -> Result<(), ContainerError> {
        let sha = self.sha.map(|(_, h, want)| (h, want));
        crate::container::end_checks(&self.entry, self.crc, sha)
    }
}

/// The checker's side of the chunk channel, as a `BufRead`. `None` on the
/// channel means the reading side failed: reported as a `BrokenPipe` error
/// (replaced by the real failure), never as the end of the entry. At the
/// end of the entry it makes the end checks before it reports the end, as
/// the entry reader does, so a problem is reported at the same point.
struct ChunkReader {
    rx: Receiver<Option<Chunk>>,
    back: SyncSender<Chunk>,
    cur: Chunk,
    pos: usize,
    /// `None` once made.
    end: Option<EndChecks>,
}

impl BufRead for ChunkReader {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        while self.pos >= self.cur.len {
            match self.rx.recv() {
                Ok(Some(mut next)) => {
                    next.len = next.len.min(next.buf.len());
                    let old = std::mem::replace(&mut self.cur, next);
                    let _ = self.back.try_send(old);
                    self.pos = 0;
                    if let Some(end) = &mut self.end {
                        end.update(&self.cur);
                    }
                }
                Ok(None) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::BrokenPipe,
                        "the reading side failed",
                    ))
                }
                Err(_) => {
                    self.cur.len = 0;
                    self.pos = 0;
                    if let Some(end) = self.end.take() {
                        end.finish().map_err(ContainerError::into_io)?;
                    }
                    return Ok(&[]);
                }
            }
        }
        Ok(self.cur.buf.get(self.pos..self.cur.len).unwrap_or(&[]))
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.cur.len);
    }
}

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let b = self.fill_buf()?;
        let n = b.len().min(out.len());
        out[..n].copy_from_slice(&b[..n]);
        self.consume(n);
        Ok(n)
    }
}
