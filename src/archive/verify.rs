//! Verification: fast (end records, central directory, names, manifest:
//! cost independent of entry sizes) and deep (every entry inflated and
//! checked), listing every problem rather than stopping at the first.

use std::collections::HashSet;
use std::io::{BufRead, Read, Seek};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use sha2::{Digest, Sha256};

use super::ahead::read_ahead;
use super::reader::{
    checked_reader, next_checked_line, read_capped, read_indexed, read_trailer_lean,
};
use super::scan::{scan_directory, Cursor, Scanned};
use super::split::{check_in_parts, Plan};
use super::{Archive, ArchiveError};
use crate::container::{
    check_descriptor, check_local, CentralEntry, ContainerError, DigestOf, LocalInfo,
};
use crate::entry_name::EntryName;
use crate::manifest::{in_order_slot, Digests, KeepDigests, Manifest, Trailer};
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
///
/// The central directory is read as a stream and not held: memory does not
/// grow with the number of entries beyond 8 bytes an entry. In deep mode
/// the trailer's 32-byte digests are held 16,384 at a time (the trailer is
/// parsed again for each such window). A directory that does not list
/// the entries in the order of their local headers (no writer known to
/// lvbak makes one), or a trailer with version-1 digests by name, is
/// verified by the reader that holds the directory instead: same checks,
/// same report.
pub fn verify_with_progress<R: Read + Seek>(
    reader: R,
    limits: Limits,
    depth: Depth,
    progress: ProgressFn<'_>,
) -> Report {
    streamed_with_progress(reader, limits, depth, DIGEST_WINDOW, progress)
}

/// [`verify`] in deep mode holding at most `window` of the trailer's
/// digests at a time instead of 16,384: for differential tests and fuzzing
/// of the windows (the report is the same for any `window`).
#[doc(hidden)]
pub fn verify_digest_window<R: Read + Seek>(
    reader: R,
    limits: Limits,
    depth: Depth,
    window: usize,
) -> Report {
    streamed_with_progress(reader, limits, depth, window, &mut |_, _, _| {})
}

fn streamed_with_progress<R: Read + Seek>(
    mut reader: R,
    limits: Limits,
    depth: Depth,
    window: usize,
    progress: ProgressFn<'_>,
) -> Report {
    match fast_streamed(&mut reader, &limits, depth, window, &mut |_| None) {
        None => held_with_progress(reader, limits, depth, progress),
        Some((report, None)) => report,
        Some((mut report, Some(deep))) => {
            deep_sequential(&mut reader, deep, &mut report, progress);
            report
        }
    }
}

/// The report of the reader that holds the whole directory (what
/// [`verify_with_progress`] gives, made the way lvbak 0.1 made it): for
/// differential tests and fuzzing of the streamed checks.
#[doc(hidden)]
pub fn verify_holding_directory<R: Read + Seek>(reader: R, limits: Limits, depth: Depth) -> Report {
    held_with_progress(reader, limits, depth, &mut |_, _, _| {})
}

fn held_with_progress<R: Read + Seek>(
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
        let (n, found) = check_entry(archive.reader_mut(), &ctx, &e, digest, &mut scratch, None);
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
        report.problems.push(trailer_ignored());
    }
    (report, Some(archive))
}

/// [`verify`] of a file on disk, with the deep checks spread over
/// `threads` threads (0: one per core, at most 4), each with its own file
/// handle. A deflated NDJSON entry of 8 MiB or more stored (an account's
/// message table) is inflated in parts, one per thread, from the points
/// lvbak's writer leaves between its 1 MiB segments, each proved before it
/// is used; an entry without such points (the server's) is inflated in
/// one pass. Problems are reported in central-directory order, and the
/// same, whatever the thread count. `progress` is called from the calling
/// thread.
pub fn verify_path(
    path: &std::path::Path,
    limits: Limits,
    depth: Depth,
    threads: usize,
    progress: ProgressFn<'_>,
) -> Report {
    verify_path_split_from(path, limits, depth, threads, SPLIT_FROM, progress)
}

/// [`verify_path`], checking in parts the deflated NDJSON entries of at
/// least `split_from` stored bytes (for tests: the default is 8 MiB).
#[doc(hidden)]
pub fn verify_path_split_from(
    path: &std::path::Path,
    limits: Limits,
    depth: Depth,
    threads: usize,
    split_from: u64,
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
    if threads <= 1 {
        return verify_with_progress(first, limits, depth, progress);
    }
    let mut first = first;
    // The trailer is read on a second thread while this one scans the
    // directory (a third of a fast verify's work at 96,000 entries).
    let streamed = std::thread::scope(|sc| {
        let limits = &limits;
        let keep = keep_digests(depth, DIGEST_WINDOW);
        let reading = sc.spawn(move || read_ahead(&mut open().ok()?, limits, keep));
        let mut reading = Some(reading);
        let mut ready = |c: &CentralEntry| {
            let ahead = reading.take()?.join().ok()??;
            // Only what the record the scan found gives, read without error.
            (ahead.record == *c && ahead.trailer.is_ok()).then_some(ahead.trailer)
        };
        fast_streamed(&mut first, limits, depth, DIGEST_WINDOW, &mut ready)
    });
    match streamed {
        None if depth == Depth::Fast => return held_with_progress(first, limits, depth, progress),
        None => {} // verified below by the reader that holds the directory
        Some((report, None)) => return report,
        Some((mut report, Some(deep))) => {
            deep_parallel(
                first,
                &open,
                threads,
                split_from,
                deep,
                &mut report,
                progress,
            );
            return report;
        }
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
                        let (n, found) =
                            check_entry(a.reader_mut(), ctx, &e, digest, &mut scratch, None);
                        bytes.fetch_add(n, Ordering::Relaxed);
                        out.extend(found.into_iter().map(|p| (i, p)));
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    (out, None)
                })
            })
            .collect();
        drop(running_tx);
        reopen_failed = gather(handles, &running_rx, &mut found, &mut || {
            progress(
                done.load(Ordering::Relaxed),
                total,
                bytes.load(Ordering::Relaxed),
            )
        });
    });
    found.sort_by_key(|(i, _)| *i);
    report.problems.extend(found.into_iter().map(|(_, p)| p));
    let checked = done.load(Ordering::Relaxed);
    if checked < total {
        // Every checking thread failed to open the file (or stopped):
        // the entries left are reported, never passed over in silence.
        report
            .problems
            .push(not_checked(total - checked, total, reopen_failed));
    }
    report.bytes_checked = bytes.load(Ordering::Relaxed);
    progress(total, total, report.bytes_checked);
    report
}

/// Problems found by a checking thread, and why it could not start.
type Checked = (Vec<(usize, Problem)>, Option<std::io::Error>);

/// Reports progress every 50 ms until every checking thread has ended
/// (`running` disconnects when the last one drops its sender; no waiting
/// after that), then gathers their problems into `found`. Returns the
/// first reason a thread could not start.
fn gather(
    handles: Vec<std::thread::ScopedJoinHandle<'_, Checked>>,
    running: &std::sync::mpsc::Receiver<()>,
    found: &mut Vec<(usize, Problem)>,
    progress: &mut dyn FnMut(),
) -> Option<std::io::Error> {
    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
        running.recv_timeout(std::time::Duration::from_millis(50))
    {
        progress();
    }
    let mut reopen_failed = None;
    for h in handles {
        if let Ok((v, e)) = h.join() {
            found.extend(v);
            if reopen_failed.is_none() {
                reopen_failed = e;
            }
        }
    }
    reopen_failed
}

/// What the streamed fast checks leave for the deep ones.
struct Streamed {
    scanned: Scanned,
    ctx: DeepCtx,
    /// The trailer's in-order digests (none when it has none).
    digests: Option<DigestWindow>,
    coverage: Option<Coverage>,
}

/// Digests the deep checks hold at a time: 16,384 (512 KiB). The 16×
/// benchmark archive's 96,013 digests (3 MiB) are read in six windows,
/// the trailer parsed again for each (its 4 MiB of base64 decoded but not
/// kept).
const DIGEST_WINDOW: usize = 16_384;

/// The trailer's in-order digests, held one window at a time: the deep
/// checks ask for them in directory order, and the trailer is parsed
/// again (keeping only the next window) when they pass the one held.
struct DigestWindow {
    /// The trailer's record, to read it again.
    trailer: CentralEntry,
    limits: Limits,
    /// Digests the trailer records.
    count: usize,
    /// Position of the first digest held.
    from: usize,
    held: Vec<[u8; 32]>,
    /// Most digests held at a time.
    window: usize,
}

/// The digest of the entry at `pos` from `digests` (none without them),
/// a problem reading them again pushed to `found`.
fn lookup<R: Read + Seek>(
    digests: &mut Option<DigestWindow>,
    r: &mut R,
    pos: usize,
    found: &mut Vec<Problem>,
) -> Option<[u8; 32]> {
    match digests.as_mut()?.digest_of(r, pos) {
        Ok(d) => d,
        Err(p) => {
            found.push(p);
            None
        }
    }
}

impl DigestWindow {
    /// The digest recorded for the entry at `pos` in the directory,
    /// reading the trailer again from `r` when it is past the window
    /// held. An error (the trailer read differently the second time)
    /// is reported once; every digest after it is then `None`.
    fn digest_of<R: Read + Seek>(
        &mut self,
        r: &mut R,
        pos: usize,
    ) -> Result<Option<[u8; 32]>, Problem> {
        let Some(p) = in_order_slot(pos, self.trailer.index) else {
            return Ok(None);
        };
        if p >= self.count {
            return Ok(None);
        }
        if let Some(d) = p.checked_sub(self.from).and_then(|i| self.held.get(i)) {
            return Ok(Some(*d));
        }
        let keep = KeepDigests::Window {
            from: p,
            len: self.window.max(1),
        };
        let again = read_trailer_lean(r, &self.trailer, &self.limits, keep);
        let count = self.count;
        self.count = 0; // until the window is read as it was the first time
        self.held = Vec::new();
        let trailer = again.map_err(|e| Problem::from(&e))?;
        let held = trailer
            .filter(|t| t.in_order_count() == Some(count))
            .and_then(|t| t.lvbak)
            .and_then(|l| match l.digests {
                Digests::InOrder(v) => (!v.is_empty()).then_some(v),
                Digests::ByName(_) => None,
            });
        match held {
            Some(v) => {
                self.count = count;
                self.from = p;
                self.held = v;
                Ok(self.held.first().copied())
            }
            None => Err(Problem {
                entry: Some(EntryName::Trailer.to_string()),
                code: "container",
                message: "manifest-stats.json read differently the second time \
                          (was the archive changed while it was verified?); \
                          digests after this point were not checked"
                    .into(),
            }),
        }
    }
}

/// The digest-coverage check of in-order digests, fed the kept entries
/// in directory order.
struct Coverage {
    count: usize,
    trailer_at: usize,
    present: usize,
    found: Vec<Problem>,
}

impl Coverage {
    fn see(&mut self, e: &super::Entry) {
        if e.name == EntryName::Trailer {
            return;
        }
        self.present += 1;
        let recorded =
            in_order_slot(e.central.index, self.trailer_at).is_some_and(|p| p < self.count);
        if !recorded {
            self.found.push(digest_missing(e.name.to_string()));
        }
    }

    fn finish(mut self) -> Vec<Problem> {
        self.found
            .extend(too_many_digests(self.count, self.present));
        self.found
    }
}

/// The fast checks without holding the directory ([`scan_directory`]),
/// with, for `Depth::Deep`, what the deep checks need; `None` when the
/// reader that holds the directory must verify instead (a directory out
/// of offset order; in deep mode, version-1 digests by name).
fn fast_streamed<R: Read + Seek>(
    r: &mut R,
    limits: &Limits,
    depth: Depth,
    window: usize,
    ahead: ReadyTrailer<'_>,
) -> Option<(Report, Option<Streamed>)> {
    let mut report = Report {
        depth,
        entries: 0,
        bytes_checked: 0,
        problems: Vec::new(),
    };
    let scanned = match scan_directory(r, limits) {
        Ok(Some(s)) => s,
        Ok(None) => return None,
        Err(e) => {
            report.problems.push((&ArchiveError::from(e)).into());
            return Some((report, None));
        }
    };
    report.entries = scanned.records as u64;
    report
        .problems
        .extend(scanned.problems.iter().map(Problem::from));
    let mut manifest = None;
    match &scanned.manifest {
        Some(c) => match read_capped(
            r,
            &EntryName::Manifest,
            c,
            (None, DigestOf::Content),
            limits.max_manifest_bytes,
            "Limits::max_manifest_bytes",
        ) {
            Ok(raw) => match Manifest::parse(&raw, limits.max_json_depth) {
                Ok(m) => manifest = Some(m),
                Err(e) => report.problems.push((&ArchiveError::from(e)).into()),
            },
            Err(e) => report.problems.push((&e).into()),
        },
        None => report.problems.push((&ArchiveError::NoManifest).into()),
    }
    let trailer = match &scanned.trailer {
        // Fast checks need only whether it parses: its digests are not
        // kept; deep checks keep the first window of them, never the text
        // they are written in.
        Some(c) => match ahead(c) {
            Some(read) => read,
            None => read_trailer_lean(r, c, limits, keep_digests(depth, window)),
        },
        None => Ok(None),
    };
    let ignored = matches!(trailer, Ok(None)) && scanned.trailer.is_some();
    let trailer = match trailer {
        Ok(t) => t,
        Err(e) => {
            report.problems.push((&e).into());
            None
        }
    };
    if ignored {
        report.problems.push(trailer_ignored());
    }
    if depth == Depth::Fast {
        return Some((report, None));
    }
    let count = trailer.as_ref().and_then(Trailer::in_order_count);
    let lvbak = trailer.and_then(|t| t.lvbak);
    let covers = lvbak.as_ref().map_or(DigestOf::Content, |l| l.covers());
    let (digests, coverage) = match (lvbak.map(|l| l.digests), &scanned.trailer) {
        (Some(Digests::ByName(_)), _) => return None,
        (Some(Digests::InOrder(v)), Some(t)) => {
            let count = count.unwrap_or(v.len());
            let coverage = Coverage {
                count,
                trailer_at: t.index,
                present: 0,
                found: Vec::new(),
            };
            let digests = DigestWindow {
                trailer: t.clone(),
                limits: limits.clone(),
                count,
                from: 0,
                held: v,
                window,
            };
            (Some(digests), Some(coverage))
        }
        _ => (None, None),
    };
    let version = manifest.as_ref().and_then(|m| m.ndjson_format_version);
    let ctx = DeepCtx::new(limits, limits.line_cap(version), covers);
    Some((
        report,
        Some(Streamed {
            scanned,
            ctx,
            digests,
            coverage,
        }),
    ))
}

/// What the trailer's parse keeps of its digests, for `depth` and digests
/// held `window` at a time.
fn keep_digests(depth: Depth, window: usize) -> KeepDigests {
    match depth {
        Depth::Fast => KeepDigests::Count,
        Depth::Deep => KeepDigests::Window {
            from: 0,
            len: window,
        },
    }
}

/// The trailer already read from this record (by [`read_ahead`], on
/// another thread), if it was.
type ReadyTrailer<'a> =
    &'a mut dyn FnMut(&CentralEntry) -> Option<Result<Option<Trailer>, ArchiveError>>;

/// Entries the deep checks take from the directory at a time.
const BATCH: usize = 64;

/// The deep checks of the entries `deep` leaves, in directory order, on
/// this thread, reading the directory a batch at a time from `r` too.
fn deep_sequential<R: Read + Seek>(
    r: &mut R,
    mut deep: Streamed,
    report: &mut Report,
    progress: ProgressFn<'_>,
) {
    let total = (deep.scanned.records - deep.scanned.dropped.len()) as u64;
    let mut cursor = Cursor::new(&deep.scanned);
    let mut coverage = deep.coverage.take();
    let mut found = Vec::new();
    let mut scratch = vec![0u8; SCRATCH];
    let mut done = 0u64;
    loop {
        let batch = match cursor.next_batch(r, BATCH) {
            Ok(b) if b.is_empty() => break,
            Ok(b) => b,
            Err(e) => {
                found.push((&ArchiveError::from(e)).into());
                break;
            }
        };
        for e in batch {
            if let Some(c) = &mut coverage {
                c.see(&e);
            }
            let digest = lookup(&mut deep.digests, r, e.central.index, &mut found);
            let (n, problems) = check_entry(r, &deep.ctx, &e, digest, &mut scratch, None);
            report.bytes_checked += n;
            found.extend(problems);
            done += 1;
            progress(done, total, report.bytes_checked);
        }
    }
    report
        .problems
        .extend(coverage.map(Coverage::finish).unwrap_or_default());
    report.problems.extend(found);
}

/// [`deep_sequential`] on `threads` threads, each with its own handle
/// from `open`; `first` reads the directory. Problems are reported in
/// directory order.
fn deep_parallel<R: Read + Seek + Send>(
    first: R,
    open: &(dyn Fn() -> std::io::Result<R> + Sync),
    threads: usize,
    split_from: u64,
    mut deep: Streamed,
    report: &mut Report,
    progress: ProgressFn<'_>,
) {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Mutex;
    struct Shared<R> {
        cursor: Cursor,
        reader: R,
        coverage: Option<Coverage>,
        digests: Option<DigestWindow>,
        failed: Option<Problem>,
    }
    let total = (deep.scanned.records - deep.scanned.dropped.len()) as u64;
    let shared = Mutex::new(Shared {
        cursor: Cursor::new(&deep.scanned),
        reader: first,
        coverage: deep.coverage.take(),
        digests: deep.digests.take(),
        failed: None,
    });
    let deep = &deep;
    // An entry checked in parts takes as many threads as there are
    // workers; the other workers' entries share the cores with them.
    let check = |r: &mut R, plan: &Plan| check_in_parts(r, open, plan, threads);
    let splitting = Splitting {
        check: &check,
        from: split_from,
    };
    let split = Some(&splitting);
    let done = AtomicU64::new(0);
    let bytes = AtomicU64::new(0);
    let mut found: Vec<(usize, Problem)> = Vec::new();
    let mut reopen_failed: Option<std::io::Error> = None;
    let (running_tx, running_rx) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|sc| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (done, bytes, shared) = (&done, &bytes, &shared);
                let running = running_tx.clone();
                sc.spawn(move || {
                    // Dropped when this thread ends, however it ends.
                    let _running = running;
                    let mut out = Vec::new();
                    let mut f = match open() {
                        Ok(f) => f,
                        Err(e) => return (out, Some(e)),
                    };
                    let mut scratch = vec![0u8; SCRATCH];
                    loop {
                        let batch = {
                            let mut s = shared.lock().unwrap_or_else(|p| p.into_inner());
                            if s.failed.is_some() {
                                break;
                            }
                            let Shared {
                                cursor,
                                reader,
                                coverage,
                                digests,
                                failed,
                            } = &mut *s;
                            match cursor.next_batch(reader, BATCH) {
                                Ok(b) => {
                                    if let Some(c) = coverage {
                                        b.iter().for_each(|e| c.see(e));
                                    }
                                    // The batch's digests, read here in
                                    // directory order (a problem reading
                                    // them goes with its entry).
                                    b.into_iter()
                                        .map(|e| {
                                            let mut p = Vec::new();
                                            let d =
                                                lookup(digests, reader, e.central.index, &mut p);
                                            (e, d, p)
                                        })
                                        .collect::<Vec<_>>()
                                }
                                Err(e) => {
                                    *failed = Some((&ArchiveError::from(e)).into());
                                    break;
                                }
                            }
                        };
                        if batch.is_empty() {
                            break;
                        }
                        for (e, digest, reread) in batch {
                            let i = e.central.index;
                            out.extend(reread.into_iter().map(|p| (i, p)));
                            let (n, problems) =
                                check_entry(&mut f, &deep.ctx, &e, digest, &mut scratch, split);
                            bytes.fetch_add(n, Ordering::Relaxed);
                            out.extend(problems.into_iter().map(|p| (i, p)));
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    (out, None)
                })
            })
            .collect();
        drop(running_tx);
        reopen_failed = gather(handles, &running_rx, &mut found, &mut || {
            progress(
                done.load(Ordering::Relaxed),
                total,
                bytes.load(Ordering::Relaxed),
            )
        });
    });
    let shared = shared.into_inner().unwrap_or_else(|p| p.into_inner());
    report
        .problems
        .extend(shared.coverage.map(Coverage::finish).unwrap_or_default());
    found.sort_by_key(|(i, _)| *i);
    report.problems.extend(found.into_iter().map(|(_, p)| p));
    let checked = done.load(Ordering::Relaxed);
    if let Some(p) = shared.failed {
        report.problems.push(p);
    } else if checked < total {
        report
            .problems
            .push(not_checked(total - checked, total, reopen_failed));
    }
    report.bytes_checked = bytes.load(Ordering::Relaxed);
    progress(total, total, report.bytes_checked);
}

/// The trailer is not a JSON object.
fn trailer_ignored() -> Problem {
    Problem {
        entry: Some("manifest-stats.json".into()),
        code: "bad_json",
        message: "manifest-stats.json is not a JSON object (the server ignores it)".into(),
    }
}

/// An entry without a digest in the trailer's in-order digests.
fn digest_missing(entry: String) -> Problem {
    Problem {
        entry: Some(entry),
        code: "digest_missing",
        message: "entry has no digest in the trailer's lvbak field (added after writing?)".into(),
    }
}

/// More in-order digests (`count`) than entries they could be of (`present`).
fn too_many_digests(count: usize, present: usize) -> Option<Problem> {
    (count > present).then(|| Problem {
        entry: None,
        code: "entry_missing",
        message: format!(
            "the trailer records {count} digests for {present} entries (entries removed after writing?)"
        ),
    })
}

/// `missed` of `total` entries left unchecked because the checking
/// threads stopped (`reopen`: they could not open the file again).
fn not_checked(missed: u64, total: u64, reopen: Option<std::io::Error>) -> Problem {
    let why = reopen.map_or_else(
        || "a checking thread stopped".to_owned(),
        |e| format!("the archive could not be opened again: {e}"),
    );
    Problem {
        entry: None,
        code: "container",
        message: format!("{missed} of {total} entries were not checked ({why})"),
    }
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
                out.push(digest_missing(e.path().into_owned()));
            }
        }
        out.extend(too_many_digests(v.len(), present));
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
    split: Option<&Splitting<'_, R>>,
) -> (u64, Vec<Problem>) {
    let mut found = Vec::new();
    let (n, local) = match deep_entry(r, ctx, e, digest, scratch, split) {
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
    split: Option<&Splitting<'_, R>>,
) -> Result<(u64, Option<LocalInfo>), ArchiveError> {
    let name = &e.name;
    let size = e.central.uncompressed_size;
    if let Some(s) = split.filter(|s| name.is_ndjson() && e.central.compressed_size >= s.from) {
        if let Some(local) = in_parts(r, s, ctx, e, digest) {
            return Ok((size, Some(local)));
        }
    }
    if name.is_ndjson() && size > PIPELINE_FROM {
        return deep_ndjson_pipelined(r, ctx, e, digest).map(|n| (n, None));
    }
    if *name == EntryName::SecretsIndex {
        let cap = ctx.secrets_index_cap;
        let bytes = read_capped(
            r,
            name,
            &e.central,
            (digest, ctx.covers),
            cap,
            "the cap for this entry",
        )?;
        if let Err(e) = serde_json::from_slice::<serde_json::Value>(&bytes) {
            return Err(ArchiveError::Json {
                entry: name.to_string(),
                message: format!("not valid JSON: {e}"),
            });
        }
        return Ok((size, None));
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
    let local = er.local_info();
    Ok((er.drain_with(scratch)?, Some(local)))
}

/// Deep checks of a large deflated NDJSON entry in parts on several
/// threads (see [`super::split`]), when it can be split. The check is a
/// closure made where the reader type is known to be `Send` (parts read
/// on threads of their own), so the one-pass callers of [`check_entry`]
/// need not be.
pub(crate) struct Splitting<'a, R> {
    /// Checks the entry a [`Plan`] describes in parts, reading part 0
    /// through the reader given.
    check: &'a (dyn Fn(&mut R, &Plan) -> bool + Sync),
    /// Entries with fewer stored bytes are checked in one pass.
    from: u64,
}

/// Stored bytes from which a deflated NDJSON entry is checked in parts
/// (when [`verify_path`] has more than one thread).
const SPLIT_FROM: u64 = 8 << 20;

/// Entry `e` checked by [`Splitting`]: where its local header puts its
/// data when every check passed, `None` when it could not be split or
/// anything failed (the caller then checks it in one pass, which reports
/// the problems).
fn in_parts<R: Read + Seek>(
    r: &mut R,
    s: &Splitting<'_, R>,
    ctx: &DeepCtx,
    e: &super::Entry,
    digest: Option<[u8; 32]>,
) -> Option<LocalInfo> {
    use crate::container::records::{FLAG_ENCRYPTED, METHOD_DEFLATED};
    // (What the entry reader refuses before reading, refused here too.)
    if e.central.method != METHOD_DEFLATED
        || e.central.flags & FLAG_ENCRYPTED != 0
        || (digest.is_some() && ctx.covers != DigestOf::Stored)
    {
        return None;
    }
    let local = check_local(r, &e.central).ok()?;
    let plan = Plan {
        data_start: local.data_start,
        data_end: local.data_end,
        size: e.central.uncompressed_size,
        crc: e.central.crc32,
        stored_sha256: digest,
        line_cap: ctx.line_cap,
        max_depth: ctx.max_json_depth,
    };
    (s.check)(r, &plan).then_some(local)
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

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;
    use crate::{ArchiveWriter, Bucket, WriteOptions};

    /// An archive of `files` small files and a table, with digests.
    fn archive(files: usize) -> Vec<u8> {
        let m = Manifest::new("11111111-2222-4333-8444-555555555555", 1_700_000_000);
        let opts = WriteOptions {
            deterministic: true,
            ..WriteOptions::default()
        };
        let mut w = ArchiveWriter::new(Vec::new(), &m, opts).unwrap();
        let mut t = w.table("chats").unwrap();
        t.write_row(r#"{"id":"c1","name":"one"}"#).unwrap();
        t.finish().unwrap();
        for i in 0..files {
            let body = format!("file {i} body, long enough to find: {i:08}");
            w.add_file(Bucket::Avatars, &format!("{i}.png"), body.as_bytes())
                .unwrap();
        }
        w.finish().unwrap().0
    }

    /// An archive whose `messages` table spans several of the writer's
    /// 1 MiB segments.
    fn big_table() -> Vec<u8> {
        let m = Manifest::new("11111111-2222-4333-8444-555555555555", 1_700_000_000);
        let opts = WriteOptions {
            deterministic: true,
            ..WriteOptions::default()
        };
        let mut w = ArchiveWriter::new(Vec::new(), &m, opts).unwrap();
        let mut t = w.table("messages").unwrap();
        for i in 0..30_000 {
            let text = "words of a message ".repeat(i % 17);
            t.write_row(&format!(
                r#"{{"id":"m{i}","chat_id":"c{}","content":"{text}"}}"#,
                i % 50
            ))
            .unwrap();
        }
        t.finish().unwrap();
        w.finish().unwrap().0
    }

    #[test]
    fn the_writers_table_is_checked_in_parts() {
        let b = big_table();
        let archive = Archive::open(Cursor::new(&b[..]), Limits::default()).unwrap();
        let i = archive.find(&EntryName::Table("messages".into())).unwrap();
        let e = archive.entry(i).unwrap().to_entry();
        assert!(e.central.uncompressed_size > 3 * crate::container::write::CHUNK as u64);
        let digest = archive.digest_of(i);
        assert!(digest.is_some());
        let ctx = DeepCtx::of(&archive);
        let open = || Ok(Cursor::new(b.clone()));
        for parts in [2, 3] {
            let check =
                |r: &mut Cursor<Vec<u8>>, plan: &Plan| check_in_parts(r, &open, plan, parts);
            let s = Splitting {
                check: &check,
                from: 0,
            };
            let local = in_parts(&mut Cursor::new(b.clone()), &s, &ctx, &e, digest);
            assert!(local.is_some(), "{parts} parts");
            // A wrong digest is not taken.
            let wrong = in_parts(&mut Cursor::new(b.clone()), &s, &ctx, &e, Some([0; 32]));
            assert!(wrong.is_none());
        }
    }

    /// The deep checks on two threads with `window` digests held at a
    /// time, as `verify_path` runs them on a file.
    fn parallel(b: &[u8], window: usize) -> Report {
        let limits = Limits::default();
        let mut first = Cursor::new(b);
        let open = || Ok(Cursor::new(b));
        match fast_streamed(&mut first, &limits, Depth::Deep, window, &mut |_| None) {
            None => panic!("the streamed checks gave up"),
            Some((report, None)) => report,
            Some((mut report, Some(deep))) => {
                deep_parallel(first, &open, 2, 0, deep, &mut report, &mut |_, _, _| {});
                report
            }
        }
    }

    #[test]
    fn parallel_deep_checks_read_digests_in_windows_and_report_as_the_held_reader() {
        let good = archive(40);
        let held = verify_holding_directory(Cursor::new(&good[..]), Limits::default(), Depth::Deep);
        assert!(held.is_ok(), "{:?}", held.problems);
        assert_eq!(held.entries, 43); // manifest, table, 40 files, trailer
        for window in [1, 2, 7, DIGEST_WINDOW] {
            assert_eq!(parallel(&good, window), held, "window {window}");
        }
        // One byte of three files changed (stored: the digest and the
        // CRC-32 disagree with it): each is reported, and in order.
        let mut bad = good.clone();
        for i in [3, 17, 38] {
            let needle = format!("{i:08}");
            let at = bad.windows(8).position(|w| w == needle.as_bytes()).unwrap();
            bad[at] ^= 1;
        }
        let held = verify_holding_directory(Cursor::new(&bad[..]), Limits::default(), Depth::Deep);
        let named: Vec<_> = held
            .problems
            .iter()
            .filter_map(|p| p.entry.clone())
            .collect();
        for i in [3, 17, 38] {
            assert!(
                named.contains(&format!("files/avatars/{i}.png")),
                "{i}: {:?}",
                held.problems
            );
        }
        for window in [1, 2, 7, DIGEST_WINDOW] {
            assert_eq!(parallel(&bad, window), held, "window {window}");
        }
    }
}
