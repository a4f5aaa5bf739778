//! Writing the ZIP profile of the Lumiverse 1.1 server (FORMAT.md §1.1) in
//! one pass over any `Write`, seekable or not.
//!
//! Every entry with data gets a data descriptor (CRC and sizes zero in the
//! local header); a zero-byte entry gets neither flag nor descriptor;
//! archive-level ZIP64 end records are always written with sentinels in the
//! classic record; an entry past 4 GiB (size or offset) gets the 28-byte
//! ZIP64 extra in its central record only.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compress, Compression, FlushCompress, Status};
use sha2::{Digest, Sha256};

use super::directory::{is_large, CentralRecord, Directory};
use super::records::*;
use super::ContainerError;
use crate::spill::LoggedNames;

/// Version made by: Unix, spec 4.5 (what the 1.1 server writes).
pub const VERSION_MADE_BY: u16 = 0x032D;
/// Regular file, mode 0644, plus the DOS archive bit.
pub const DEFAULT_EXTERNAL_ATTR: u32 = (0o100644 << 16) | 0x20;
/// The deflate level the Lumiverse 1.1 server uses.
pub const SERVER_LEVEL: u32 = 3;
/// lvbak's default deflate level for text entries: 2. On the benchmark
/// account (300,000 messages with their swipes) it exported 4–12 % faster
/// than the server's level 3 for 4.1 % larger archives (level 1: 13–15 %
/// faster, 27 % larger). Any level is read; the bytes compressed do not
/// change what is restored.
pub const DEFAULT_LEVEL: u32 = 2;

/// How an entry's bytes are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Method 0.
    Stored,
    /// Method 8 at the given level (0–9).
    Deflated(u32),
}

/// Per-entry options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryOptions {
    /// Storage method.
    pub method: Method,
    /// DOS (time, date).
    pub dos_time: (u16, u16),
    /// External attributes.
    pub external_attr: u32,
}

/// What was written for one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrittenEntry {
    /// CRC-32 of the uncompressed bytes.
    pub crc32: u32,
    /// SHA-256 of the stored bytes (the entry's data as written, after
    /// compression), when digests are on ([`ZipWriter::set_digests`]).
    pub sha256: Option<[u8; 32]>,
    /// Compressed size.
    pub compressed_size: u64,
    /// Uncompressed size.
    pub uncompressed_size: u64,
}

struct Open {
    name: String,
    opts: EntryOptions,
    offset: u64,
    header_written: bool,
    crc: crc32fast::Hasher,
    /// The SHA-256 of the stored bytes written so far, when digests are on.
    hash: Option<Sha256>,
    uncompressed: u64,
    compressed: u64,
}

struct Counting<W> {
    inner: W,
    pos: u64,
    /// The last bytes written, at least [`EOCD_SEARCH`] of them once that
    /// many were (at most twice that): where a reader looks for the end
    /// record, so `finish` can make sure it finds only the real one.
    tail: Vec<u8>,
}

/// How far from the end readers look for the end record: the record and
/// the longest comment.
const EOCD_SEARCH: usize = EOCD_LEN + u16::MAX as usize;

impl<W: Write> Counting<W> {
    fn new(inner: W) -> Counting<W> {
        Counting {
            inner,
            pos: 0,
            tail: Vec::new(),
        }
    }

    fn put(&mut self, b: &[u8]) -> io::Result<()> {
        self.inner.write_all(b)?;
        self.pos += b.len() as u64;
        if b.len() >= EOCD_SEARCH {
            self.tail.clear();
            self.tail
                .extend_from_slice(b.get(b.len() - EOCD_SEARCH..).unwrap_or(b));
        } else {
            if self.tail.len() + b.len() > 2 * EOCD_SEARCH {
                let keep = EOCD_SEARCH - b.len();
                self.tail.drain(..self.tail.len() - keep);
            }
            self.tail.extend_from_slice(b);
        }
        Ok(())
    }
}

/// How many comment bytes (spaces) the end record `end`, written after
/// `tail`, needs so that a reader finds it and no other: the fewest that
/// leave exactly one end record whose comment reaches the end of the file.
/// Stored data near the end can hold bytes that look like an end record
/// whose comment length reaches exactly there (lvbak's reader, like the
/// server's, then refuses the archive as ambiguous); a comment moves the
/// end of the file past it. `end` holds no comment yet; at most
/// [`u16::MAX`] bytes are tried, more than there can be false records.
fn eocd_comment_len(tail: &[u8], end: &[u8]) -> u16 {
    let mut buf = Vec::with_capacity(tail.len() + end.len() + 64);
    for c in 0..=u16::MAX {
        buf.clear();
        buf.extend_from_slice(tail);
        buf.extend_from_slice(end);
        let n = buf.len();
        if let Some(len) = buf.get_mut(n - 2..) {
            len.copy_from_slice(&c.to_le_bytes());
        }
        buf.resize(n + usize::from(c), b' ');
        let from = buf.len().saturating_sub(EOCD_SEARCH);
        if eocd_candidates(buf.get(from..).unwrap_or(&buf)).len() == 1 {
            return c;
        }
    }
    0
}

/// Input bytes per independently compressed deflate segment.
pub const CHUNK: usize = 1 << 20;

/// Compresses one segment of a deflate stream: a full flush (byte-aligned,
/// not final) unless it is the last segment. Segments compressed this way
/// concatenate into one valid raw deflate stream, so they can be made in
/// parallel; the result depends only on the bytes, never on the threads.
pub fn deflate_segment(level: u32, data: &[u8], last: bool) -> Vec<u8> {
    let mut c = Compress::new(Compression::new(level.min(9)), false);
    let mut out = Vec::with_capacity(data.len() + data.len() / 8 + 1024);
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Full
    };
    let mut input = data;
    loop {
        let before = c.total_in();
        let status = c.compress_vec(input, &mut out, flush);
        input = &input[(c.total_in() - before) as usize..];
        let done = match status {
            Ok(Status::StreamEnd) => true,
            Ok(_) => !last && input.is_empty() && out.len() < out.capacity(),
            Err(_) => true, // cannot happen with a valid level; ends the loop
        };
        if done {
            return out;
        }
        out.reserve(out.capacity().max(64 * 1024));
    }
}

struct Job {
    seq: u64,
    level: u32,
    data: Vec<u8>,
    last: bool,
}

/// Worker threads compressing segments.
struct Pool {
    jobs: Option<Sender<Job>>,
    results: Receiver<(u64, Vec<u8>)>,
    workers: Vec<JoinHandle<()>>,
    size: usize,
}

impl Pool {
    fn new(size: usize) -> Pool {
        let (jtx, jrx) = mpsc::channel::<Job>();
        let (rtx, rrx) = mpsc::channel();
        let shared = Arc::new(Mutex::new(jrx));
        let workers: Vec<JoinHandle<()>> = (0..size)
            .map(|_| {
                let rx = Arc::clone(&shared);
                let tx = rtx.clone();
                std::thread::spawn(move || loop {
                    let job = match rx.lock() {
                        Ok(guard) => guard.recv(),
                        Err(_) => return,
                    };
                    let Ok(job) = job else { return };
                    let out = deflate_segment(job.level, &job.data, job.last);
                    if tx.send((job.seq, out)).is_err() {
                        return;
                    }
                })
            })
            .collect();
        Pool {
            jobs: Some(jtx),
            results: rrx,
            workers,
            size,
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.jobs.take();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// In-order assembly of compressed segments for the open entry.
#[derive(Default)]
struct Segments {
    next_submit: u64,
    next_write: u64,
    ready: BTreeMap<u64, Vec<u8>>,
}

/// A one-pass ZIP writer over any `Write`.
pub struct ZipWriter<W: Write> {
    out: Counting<W>,
    directory: Directory,
    /// The names written so far (each kept in its central record), for
    /// refusing a repeated one.
    names: LoggedNames,
    open: Option<Open>,
    pending: Vec<u8>,
    segments: Segments,
    pool: Option<Pool>,
    threads: usize,
    digests: bool,
    poisoned: bool,
}

impl<W: Write> ZipWriter<W> {
    /// A writer that starts at offset 0 of `out`.
    pub fn new(out: W) -> ZipWriter<W> {
        ZipWriter {
            out: Counting::new(out),
            directory: Directory::default(),
            names: LoggedNames::default(),
            open: None,
            pending: Vec::new(),
            segments: Segments::default(),
            pool: None,
            threads: std::thread::available_parallelism()
                .map(|n| n.get().min(4))
                .unwrap_or(1),
            digests: false,
            poisoned: false,
        }
    }

    /// Sets how many threads compress deflated entries (1: on the calling
    /// thread). The output bytes do not depend on it.
    pub fn set_threads(&mut self, n: usize) {
        self.threads = n.max(1);
    }

    /// Computes the SHA-256 of each entry's stored bytes (as written,
    /// after compression) from the next entry on
    /// ([`WrittenEntry::sha256`]), on the writing thread as the bytes go
    /// out: for text, a fraction of the uncompressed bytes.
    pub fn set_digests(&mut self, on: bool) {
        self.digests = on;
    }

    /// Whether an entry of that name was written or started.
    fn lookup(&mut self, name: &str) -> Result<bool, ContainerError> {
        let (open, directory) = (&self.open, &mut self.directory);
        // The record at `at` is finished, or it is the open entry's, the
        // next one the directory takes.
        let found = self.names.contains(name, |at| match open {
            Some(o) if at == directory.len() => Ok(o.name == name),
            _ => directory.name_at(at).map(|held| held == name.as_bytes()),
        });
        self.check(found)
    }

    /// Records `name` for the entry about to start; `false` when an entry
    /// of that name was written (or started) before.
    fn insert_name(&mut self, name: &str) -> Result<bool, ContainerError> {
        if self.lookup(name)? {
            return Ok(false);
        }
        // (An entry is started only when none is open: its record is the
        // next one the directory takes.)
        let at = self.directory.len();
        self.names.insert(name, at);
        Ok(true)
    }

    /// Whether an entry named `name` was written (or is open).
    pub fn contains(&mut self, name: &str) -> Result<bool, ContainerError> {
        self.guard()?;
        self.lookup(name)
    }

    /// Keeps the central directory of a large archive (past its first MiB
    /// of records, about ten thousand entries) in an anonymous temporary
    /// file in `dir` instead of in memory, so that memory stays flat
    /// however many entries are written; the file is removed when the
    /// writer finishes or is dropped. When it cannot be created there, the
    /// directory stays in memory. `None` (the default) keeps it in memory.
    /// The archive written is the same either way.
    pub fn set_spill_dir(&mut self, dir: Option<std::path::PathBuf>) {
        self.directory.spill_to(dir);
    }

    /// Bytes written so far.
    pub fn position(&self) -> u64 {
        self.out.pos
    }

    /// Number of entries finished so far.
    pub fn entry_count(&self) -> usize {
        usize::try_from(self.directory.count()).unwrap_or(usize::MAX)
    }

    fn guard(&self) -> Result<(), ContainerError> {
        if self.poisoned {
            Err(ContainerError::WriterState(
                "an earlier write failed; the archive is incomplete",
            ))
        } else {
            Ok(())
        }
    }

    /// Starts an entry. Names must be unique.
    pub fn start_entry(&mut self, name: &str, opts: EntryOptions) -> Result<(), ContainerError> {
        self.guard()?;
        if self.open.is_some() {
            return Err(ContainerError::WriterState(
                "start_entry while another entry is open",
            ));
        }
        if name.is_empty() || name.len() > usize::from(u16::MAX) {
            return Err(ContainerError::WriterState(
                "entry names must be 1..=65535 bytes",
            ));
        }
        if !self.insert_name(name)? {
            return Err(ContainerError::DuplicateWrite {
                entry: name.to_owned(),
            });
        }
        self.open = Some(Open {
            name: name.to_owned(),
            opts,
            offset: self.out.pos,
            header_written: false,
            crc: crc32fast::Hasher::new(),
            hash: self.digests.then(Sha256::new),
            uncompressed: 0,
            compressed: 0,
        });
        if let Method::Deflated(_) = opts.method {
            self.pending.clear();
            self.segments = Segments::default();
            // Deflated entries always carry a descriptor, even when empty.
            self.write_local_header(true)?;
        }
        Ok(())
    }

    fn write_local_header(&mut self, descriptor: bool) -> Result<(), ContainerError> {
        let Some(open) = self.open.as_mut() else {
            return Err(ContainerError::WriterState("no entry is open"));
        };
        let mut h = Vec::with_capacity(LOCAL_LEN + open.name.len());
        put32(&mut h, LOCAL_SIG);
        put16(&mut h, if descriptor { 20 } else { 10 });
        put16(&mut h, if descriptor { FLAG_DESCRIPTOR } else { 0 });
        put16(&mut h, method_code(open.opts.method));
        put16(&mut h, open.opts.dos_time.0);
        put16(&mut h, open.opts.dos_time.1);
        put32(&mut h, 0);
        put32(&mut h, 0);
        put32(&mut h, 0);
        put16(&mut h, open.name.len() as u16);
        put16(&mut h, 0);
        h.extend_from_slice(open.name.as_bytes());
        open.header_written = true;
        let r = self.out.put(&h);
        self.check(r)
    }

    fn check<T>(&mut self, r: io::Result<T>) -> Result<T, ContainerError> {
        r.map_err(|e| {
            self.poisoned = true;
            ContainerError::Io(e)
        })
    }

    /// Appends bytes to the open entry.
    pub fn write_data(&mut self, data: &[u8]) -> Result<(), ContainerError> {
        self.guard()?;
        if data.is_empty() {
            return Ok(());
        }
        let needs_header = match &self.open {
            Some(o) => !o.header_written,
            None => return Err(ContainerError::WriterState("write_data with no entry open")),
        };
        if needs_header {
            self.write_local_header(true)?;
        }
        let Some(open) = self.open.as_mut() else {
            return Err(ContainerError::WriterState("no entry is open"));
        };
        open.crc.update(data);
        open.uncompressed += data.len() as u64;
        match open.opts.method {
            Method::Stored => {
                open.compressed += data.len() as u64;
                if let Some(sha) = &mut open.hash {
                    sha.update(data);
                }
                let r = self.out.put(data);
                self.check(r)
            }
            Method::Deflated(_) => self.deflate(data, false),
        }
    }

    fn deflate(&mut self, mut input: &[u8], finish: bool) -> Result<(), ContainerError> {
        let level = match self.open.as_ref().map(|o| o.opts.method) {
            Some(Method::Deflated(l)) => l,
            _ => return Err(ContainerError::WriterState("no deflated entry is open")),
        };
        while !input.is_empty() {
            let room = CHUNK - self.pending.len();
            let take = room.min(input.len());
            self.pending.extend_from_slice(&input[..take]);
            input = &input[take..];
            if self.pending.len() == CHUNK {
                let data = std::mem::replace(&mut self.pending, Vec::with_capacity(CHUNK));
                self.submit(level, data, false)?;
            }
        }
        if finish {
            let data = std::mem::take(&mut self.pending);
            self.submit(level, data, true)?;
            self.drain(0)?;
        }
        Ok(())
    }

    /// Compresses a segment (on a worker when there are several threads and
    /// the entry spans more than one segment) and writes what is ready.
    fn submit(&mut self, level: u32, data: Vec<u8>, last: bool) -> Result<(), ContainerError> {
        let seq = self.segments.next_submit;
        self.segments.next_submit += 1;
        let inline = self.threads <= 1 || (last && seq == 0);
        if !inline && self.pool.is_none() {
            self.pool = Some(Pool::new(self.threads));
        }
        if inline {
            let out = deflate_segment(level, &data, last);
            self.segments.ready.insert(seq, out);
        } else {
            let Some(pool) = self.pool.as_ref() else {
                return Err(ContainerError::WriterState("no compression pool"));
            };
            let sent = pool.jobs.as_ref().map(|tx| {
                tx.send(Job {
                    seq,
                    level,
                    data,
                    last,
                })
            });
            if !matches!(sent, Some(Ok(()))) {
                return Err(ContainerError::WriterState("compression worker stopped"));
            }
        }
        let limit = self.pool.as_ref().map(|p| 2 * p.size).unwrap_or(0) as u64;
        self.drain(limit)
    }

    /// Writes ready segments in order until at most `in_flight` remain unwritten.
    fn drain(&mut self, in_flight: u64) -> Result<(), ContainerError> {
        loop {
            while let Some(out) = self.segments.ready.remove(&self.segments.next_write) {
                self.segments.next_write += 1;
                if let Some(o) = self.open.as_mut() {
                    o.compressed += out.len() as u64;
                    if let Some(sha) = &mut o.hash {
                        sha.update(&out);
                    }
                }
                let r = self.out.put(&out);
                self.check(r)?;
            }
            if self.segments.next_submit - self.segments.next_write <= in_flight {
                return Ok(());
            }
            let Some(pool) = self.pool.as_ref() else {
                return Err(ContainerError::WriterState("segments missing with no pool"));
            };
            match pool.results.recv() {
                Ok((seq, out)) => {
                    self.segments.ready.insert(seq, out);
                }
                Err(_) => {
                    self.poisoned = true;
                    return Err(ContainerError::WriterState("compression worker stopped"));
                }
            }
        }
    }

    /// Finishes the open entry: flushes the compressor and writes the data
    /// descriptor (none for a zero-byte stored entry).
    pub fn finish_entry(&mut self) -> Result<WrittenEntry, ContainerError> {
        self.guard()?;
        let (method, header_written) = match &self.open {
            Some(o) => (o.opts.method, o.header_written),
            None => {
                return Err(ContainerError::WriterState(
                    "finish_entry with no entry open",
                ))
            }
        };
        if matches!(method, Method::Deflated(_)) {
            self.deflate(&[], true)?;
        }
        if !header_written {
            self.write_local_header(false)?;
        }
        let Some(open) = self.open.take() else {
            return Err(ContainerError::WriterState("no entry is open"));
        };
        let sha256 = open.hash.map(|sha| sha.finalize().into());
        let written = WrittenEntry {
            crc32: open.crc.finalize(),
            sha256,
            compressed_size: open.compressed,
            uncompressed_size: open.uncompressed,
        };
        let descriptor = header_written || matches!(method, Method::Deflated(_));
        if descriptor {
            let mut d = Vec::with_capacity(24);
            put32(&mut d, DESCRIPTOR_SIG);
            put32(&mut d, written.crc32);
            if is_large(written.compressed_size, written.uncompressed_size) {
                put64(&mut d, written.compressed_size);
                put64(&mut d, written.uncompressed_size);
            } else {
                put32(&mut d, written.compressed_size as u32);
                put32(&mut d, written.uncompressed_size as u32);
            }
            let r = self.out.put(&d);
            self.check(r)?;
        }
        let pushed = self.directory.push(&CentralRecord {
            name: &open.name,
            opts: open.opts,
            flags: if descriptor { FLAG_DESCRIPTOR } else { 0 },
            crc32: written.crc32,
            compressed_size: written.compressed_size,
            uncompressed_size: written.uncompressed_size,
            offset: open.offset,
        });
        self.check(pushed)?;
        Ok(written)
    }

    /// Writes a whole entry from a slice.
    pub fn add_entry(
        &mut self,
        name: &str,
        opts: EntryOptions,
        data: &[u8],
    ) -> Result<WrittenEntry, ContainerError> {
        self.start_entry(name, opts)?;
        self.write_data(data)?;
        self.finish_entry()
    }

    /// Writes the central directory and the end records, flushes, and
    /// returns the inner writer and the archive's total size. Fails when
    /// no entry was written: a ZIP of no entries does not start with a
    /// local header, and readers that check for one (lvbak's among them)
    /// refuse it.
    pub fn finish(mut self) -> Result<(W, u64), ContainerError> {
        self.guard()?;
        if self.open.is_some() {
            return Err(ContainerError::WriterState("finish while an entry is open"));
        }
        if self.directory.count() == 0 {
            return Err(ContainerError::WriterState(
                "finish with no entry written (an archive holds at least one)",
            ));
        }
        let cd_offset = self.out.pos;
        let entries = self.directory.count();
        let directory = std::mem::take(&mut self.directory);
        let out = &mut self.out;
        let r = directory.write_to(&mut |b| out.put(b));
        self.check(r)?;
        let cd_size = self.out.pos - cd_offset;
        let zip64_offset = self.out.pos;
        let mut end = Vec::with_capacity(ZIP64_EOCD_LEN + LOCATOR_LEN + EOCD_LEN);
        put32(&mut end, ZIP64_EOCD_SIG);
        put64(&mut end, 44);
        put16(&mut end, 45);
        put16(&mut end, 45);
        put32(&mut end, 0);
        put32(&mut end, 0);
        put64(&mut end, entries);
        put64(&mut end, entries);
        put64(&mut end, cd_size);
        put64(&mut end, cd_offset);
        put32(&mut end, ZIP64_LOCATOR_SIG);
        put32(&mut end, 0);
        put64(&mut end, zip64_offset);
        put32(&mut end, 1);
        put32(&mut end, EOCD_SIG);
        put16(&mut end, 0);
        put16(&mut end, 0);
        put16(&mut end, SENTINEL16);
        put16(&mut end, SENTINEL16);
        put32(&mut end, SENTINEL32);
        put32(&mut end, SENTINEL32);
        put16(&mut end, 0);
        // The comment is empty unless bytes near the end would make a
        // second, false end record (see `eocd_comment_len`).
        let comment = eocd_comment_len(&self.out.tail, &end);
        if comment > 0 {
            let n = end.len();
            end[n - 2..].copy_from_slice(&comment.to_le_bytes());
            end.resize(n + usize::from(comment), b' ');
        }
        let r = self.out.put(&end);
        self.check(r)?;
        let r = self.out.inner.flush();
        self.check(r)?;
        Ok((self.out.inner, self.out.pos))
    }
}

/// The ZIP method number of `m`.
pub(super) fn method_code(m: Method) -> u16 {
    match m {
        Method::Stored => METHOD_STORED,
        Method::Deflated(_) => METHOD_DEFLATED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spill::CHUNK as DIRECTORY_CHUNK;

    /// The central directory of an archive written in a test.
    fn read_back(bytes: &[u8]) -> crate::container::CentralDirectory {
        crate::container::CentralDirectory::read(
            &mut std::io::Cursor::new(bytes),
            &crate::limits::Limits::default(),
        )
        .unwrap()
    }

    fn data(len: usize, seed: u32) -> Vec<u8> {
        // Text-like and varied, so segments differ.
        (0..len)
            .map(|i| {
                b"lorem ipsum dolor sit amet\n"[(i + seed as usize * 7) % 27] ^ (i / 4096) as u8
            })
            .collect()
    }

    fn opts(method: Method) -> EntryOptions {
        EntryOptions {
            method,
            dos_time: (0, 0x21),
            external_attr: DEFAULT_EXTERNAL_ATTR,
        }
    }

    #[test]
    fn a_repeated_name_is_refused_even_when_hashes_collide() {
        for all_collide in [false, true] {
            let mut z = ZipWriter::new(Vec::new());
            z.names.all_collide = all_collide;
            let stored = opts(Method::Stored);
            for name in ["a", "b", "c"] {
                z.add_entry(name, stored, name.as_bytes()).unwrap();
            }
            for name in ["a", "b", "c"] {
                let e = z.add_entry(name, stored, b"again").unwrap_err();
                assert!(
                    matches!(&e, ContainerError::DuplicateWrite { entry } if entry == name),
                    "{name} ({all_collide}): {e}"
                );
            }
            // A refused name leaves the writer usable.
            z.start_entry("d", stored).unwrap();
            assert!(z.contains("d").unwrap() && z.contains("a").unwrap());
            assert!(!z.contains("e").unwrap());
            z.write_data(b"d").unwrap();
            z.finish_entry().unwrap();
            assert!(z.contains("d").unwrap() && !z.contains("e").unwrap());
            let (bytes, _) = z.finish().unwrap();
            let cd = read_back(&bytes);
            let names: Vec<&str> = cd.entries.iter().map(|e| e.name.as_str()).collect();
            assert_eq!(names, ["a", "b", "c", "d"], "{all_collide}");
        }
    }

    #[test]
    fn a_large_directory_is_the_same_in_memory_or_in_its_temporary_file() {
        // About three chunks of records: names from the first, a middle and
        // the last chunk are written again and must be refused, whether the
        // name is read back from memory or from the temporary file, and
        // when the folder is given only halfway (the first chunks stay in
        // memory, the file starts partway through the directory).
        let n = 25_000usize;
        let name = |i: usize| format!("files/images/{i:08}-0000-4000-8000-{i:012}.png");
        let stored = opts(Method::Stored);
        let mut outputs = Vec::new();
        for (spill, late) in [(false, false), (true, false), (true, true)] {
            for all_collide in [false, true] {
                let dir = tempfile::tempdir().unwrap();
                let mut z = ZipWriter::new(Vec::new());
                z.names.all_collide = all_collide;
                let folder = spill.then(|| dir.path().to_path_buf());
                if !late {
                    z.set_spill_dir(folder.clone());
                }
                for i in 0..n {
                    if late && i == n / 2 {
                        z.set_spill_dir(folder.clone());
                    }
                    z.add_entry(&name(i), stored, &[i as u8]).unwrap();
                }
                assert_eq!(z.directory.spilled(), spill);
                assert!(z.directory.len() > 2 * DIRECTORY_CHUNK as u64);
                assert!(!z.contains("files/images/absent.png").unwrap());
                for i in [0, 5, n / 2, n - 2, n - 1] {
                    assert!(z.contains(&name(i)).unwrap(), "{i}");
                    let e = z.add_entry(&name(i), stored, b"again").unwrap_err();
                    assert!(
                        matches!(&e, ContainerError::DuplicateWrite { entry } if *entry == name(i)),
                        "{i} (spill {spill}, late {late}, collide {all_collide}): {e}"
                    );
                }
                z.add_entry("last", stored, b"x").unwrap();
                // The temporary file has no name left in the folder.
                assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
                let (bytes, _) = z.finish().unwrap();
                let cd = read_back(&bytes);
                assert_eq!(cd.entries.len(), n + 1);
                assert!(cd.entries[..n]
                    .iter()
                    .enumerate()
                    .all(|(i, e)| e.name == name(i)));
                outputs.push(bytes);
            }
        }
        assert!(outputs.windows(2).all(|w| w[0] == w[1]));
    }

    #[test]
    fn a_directory_whose_folder_is_missing_stays_in_memory() {
        let mut z = ZipWriter::new(Vec::new());
        z.set_spill_dir(Some("/nonexistent/lvbak-test".into()));
        for i in 0..20_000 {
            z.add_entry(
                &format!("files/images/{i:060}.png"),
                opts(Method::Stored),
                b"x",
            )
            .unwrap();
        }
        assert!(!z.directory.spilled());
        let (bytes, _) = z.finish().unwrap();
        let cd = read_back(&bytes);
        assert_eq!(cd.entries.len(), 20_000);
    }

    #[test]
    fn digests_are_the_sha256_of_each_entrys_stored_bytes_whatever_the_threads() {
        let sizes = [0, 10, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + CHUNK / 2];
        for threads in [1, 2, 3] {
            let mut z = ZipWriter::new(Vec::new());
            z.set_threads(threads);
            z.set_digests(true);
            let mut digests = Vec::new();
            for (i, &len) in sizes.iter().enumerate() {
                for method in [Method::Deflated(DEFAULT_LEVEL), Method::Stored] {
                    let body = data(len, i as u32);
                    let name = format!("{i}-{method:?}");
                    z.start_entry(&name, opts(method)).unwrap();
                    // Uneven pieces, as rows arrive.
                    for piece in body.chunks(77_777) {
                        z.write_data(piece).unwrap();
                    }
                    let w = z.finish_entry().unwrap();
                    assert_eq!(w.crc32, crc32fast::hash(&body));
                    digests.push((name, w.sha256));
                }
            }
            // Threads changed mid-entry: the digest still covers every
            // compressed segment in order.
            let body = data(4 * CHUNK, 5);
            for (name, before, after) in [("raised", 1, threads), ("lowered", threads, 1)] {
                z.set_threads(before);
                z.start_entry(name, opts(Method::Deflated(1))).unwrap();
                z.write_data(&body[..2 * CHUNK + 5]).unwrap();
                z.set_threads(after);
                z.write_data(&body[2 * CHUNK + 5..]).unwrap();
                digests.push((name.to_owned(), z.finish_entry().unwrap().sha256));
            }
            z.set_digests(false);
            let w = z
                .add_entry("off", opts(Method::Deflated(1)), &data(2 * CHUNK, 9))
                .unwrap();
            assert_eq!(w.sha256, None);
            let (bytes, _) = z.finish().unwrap();
            // The digest of each entry is the SHA-256 of its data as it
            // lies in the archive, found through its local header.
            let cd = read_back(&bytes);
            let mut cursor = std::io::Cursor::new(&bytes[..]);
            for (name, digest) in digests {
                let e = cd.entries.iter().find(|e| e.name == name).unwrap();
                let at = crate::container::check_local(&mut cursor, e).unwrap();
                let stored = &bytes[at.data_start as usize..at.data_end as usize];
                let want: [u8; 32] = Sha256::digest(stored).into();
                assert_eq!(digest, Some(want), "{threads} threads, {name}");
            }
        }
    }

    #[test]
    fn an_archive_of_no_entries_is_refused_and_one_entry_reads_back() {
        // A ZIP of no entries would start with an end record, which the
        // reader refuses as not a ZIP archive.
        let e = ZipWriter::new(Vec::new()).finish().unwrap_err();
        assert!(matches!(e, ContainerError::WriterState(_)), "{e}");
        let mut z = ZipWriter::new(Vec::new());
        z.add_entry("a", opts(Method::Stored), b"").unwrap();
        let (bytes, _) = z.finish().unwrap();
        let cd = read_back(&bytes);
        assert_eq!(cd.entries.len(), 1);
    }

    #[test]
    fn stored_bytes_that_look_like_an_end_record_get_a_comment_that_moves_past_them() {
        // After the data: the descriptor (16), the central record of "a"
        // (47), the ZIP64 end record (56), its locator (20) and the end
        // record (22).
        const AFTER: u16 = 16 + 47 + 56 + 20 + 22;
        let false_record = |comment_len: u16| {
            let mut r = Vec::new();
            put32(&mut r, EOCD_SIG);
            r.extend_from_slice(&[0; 16]);
            put16(&mut r, comment_len);
            r
        };
        // One false record reaching the end as written (no comment), then
        // two: the second (22 bytes later) also reaching it with a 1-byte
        // comment.
        for (records, want) in [(vec![AFTER], 1usize), (vec![22 + AFTER, AFTER + 1], 2)] {
            let mut body = b"image bytes".to_vec();
            for &l in &records {
                body.extend(false_record(l));
            }
            let mut z = ZipWriter::new(Vec::new());
            z.add_entry("a", opts(Method::Stored), &body).unwrap();
            let (bytes, _) = z.finish().unwrap();
            let cd = read_back(&bytes);
            assert_eq!(cd.entries.len(), 1);
            assert_eq!(cd.entries[0].uncompressed_size, body.len() as u64);
            // The comment is the fewest spaces that leave one end record.
            assert!(bytes.ends_with(&vec![b' '; want]), "{records:?}");
            assert!(!bytes[..bytes.len() - want].ends_with(b" "));
        }
        // Without false records, no comment: the end record ends the file.
        let mut z = ZipWriter::new(Vec::new());
        z.add_entry("a", opts(Method::Stored), b"image bytes")
            .unwrap();
        let (bytes, _) = z.finish().unwrap();
        assert_eq!(
            bytes[bytes.len() - 22..bytes.len() - 18],
            EOCD_SIG.to_le_bytes()
        );
        assert_eq!(bytes[bytes.len() - 2..], [0, 0]);
    }

    #[test]
    fn the_kept_tail_is_the_last_bytes_written_whatever_the_pieces() {
        let mut c = Counting::new(Vec::new());
        let mut all = Vec::new();
        for (i, len) in [
            10,
            EOCD_SEARCH - 3,
            7,
            2 * EOCD_SEARCH + 5,
            1,
            EOCD_SEARCH,
            3,
        ]
        .into_iter()
        .enumerate()
        {
            let piece: Vec<u8> = (0..len).map(|j| (i * 31 + j) as u8).collect();
            c.put(&piece).unwrap();
            all.extend_from_slice(&piece);
            let keep = all.len().min(EOCD_SEARCH);
            assert!(c.tail.ends_with(&all[all.len() - keep..]), "piece {i}");
            assert!(c.tail.len() <= 2 * EOCD_SEARCH);
        }
    }
}
