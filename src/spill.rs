//! An append-only log of byte records that grows with an archive's entries
//! (the central directory being written, the files an export still has to
//! copy) without growing memory: records are kept in chunks of whole
//! records, in memory, or, once a folder is given and the first chunk is
//! full, in an anonymous temporary file there. [`LoggedNames`] finds a
//! name kept in such a log again without a second copy of it.

use std::collections::hash_map::{Entry, RandomState};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::hash::BuildHasher;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Bytes of records a chunk holds before the next one starts (a larger
/// record gets a chunk of its own).
pub(crate) const CHUNK: usize = 1 << 20;

/// The temporary file full chunks go to. Its name is removed as soon as it
/// is created where the system allows it (the open file lives on), else
/// when it is dropped.
struct SpillFile {
    file: File,
    /// Where in the log the file's first byte is: chunks filled before the
    /// file was made (before `spill_to`, or while it could not be created)
    /// stay in memory.
    start: u64,
    /// Still to remove on drop (the removal at creation failed).
    path: Option<PathBuf>,
    /// Length of each chunk written, in order.
    chunks: Vec<u64>,
}

impl SpillFile {
    fn create(dir: &Path, start: u64) -> io::Result<SpillFile> {
        let path = dir.join(format!(".lvbak-spill-{}.tmp", uuid::Uuid::new_v4()));
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        let path = std::fs::remove_file(&path).err().map(|_| path);
        Ok(SpillFile {
            file,
            start,
            path,
            chunks: Vec::new(),
        })
    }
}

impl Drop for SpillFile {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Records appended in order, each whole within one chunk.
#[derive(Default)]
pub(crate) struct SpillLog {
    /// Full chunks kept in memory, with the offset each starts at.
    chunks: Vec<(u64, Vec<u8>)>,
    /// The chunk being filled; it starts at `before`.
    current: Vec<u8>,
    before: u64,
    /// Where full chunks go when it is set.
    dir: Option<PathBuf>,
    file: Option<SpillFile>,
    /// A chunk could not be written to the file: its records are lost, so
    /// every later call fails instead of answering from a log with a hole.
    broken: bool,
}

impl SpillLog {
    /// From the next full chunk on, keep chunks in an anonymous temporary
    /// file in `dir` (created when a chunk is first full); `None` keeps
    /// them in memory. When the file cannot be created, chunks stay in
    /// memory.
    pub fn spill_to(&mut self, dir: Option<PathBuf>) {
        self.dir = dir;
    }

    /// Whether chunks went to a temporary file.
    #[cfg(test)]
    pub fn spilled(&self) -> bool {
        self.file.is_some()
    }

    /// Total bytes appended: the offset the next record starts at.
    pub fn len(&self) -> u64 {
        self.before + self.current.len() as u64
    }

    /// Appends one record of at most `max_len` bytes, written by `write`
    /// at the end of the buffer it is given.
    pub fn append_with(
        &mut self,
        max_len: usize,
        write: impl FnOnce(&mut Vec<u8>),
    ) -> io::Result<()> {
        self.usable()?;
        if !self.current.is_empty() && self.current.len() + max_len > CHUNK {
            self.flush_chunk()?;
        }
        // Grown as needed (a small archive's log stays small), doubling
        // but never past a chunk, unless one record is larger than that.
        let need = self.current.len() + max_len;
        if need > self.current.capacity() {
            let grown = (2 * self.current.capacity()).min(CHUNK).max(need);
            self.current.reserve_exact(grown - self.current.len());
        }
        write(&mut self.current);
        Ok(())
    }

    /// An error once a chunk was lost (see `broken`).
    fn usable(&self) -> io::Result<()> {
        if self.broken {
            return Err(io::Error::other(
                "a chunk of a temporary log could not be written to its file earlier",
            ));
        }
        Ok(())
    }

    fn flush_chunk(&mut self) -> io::Result<()> {
        if self.file.is_none() {
            if let Some(dir) = &self.dir {
                self.file = SpillFile::create(dir, self.before).ok();
            }
        }
        let full = std::mem::take(&mut self.current);
        let start = self.before;
        self.before += full.len() as u64;
        match &mut self.file {
            Some(s) => {
                let written = s
                    .file
                    .seek(SeekFrom::End(0))
                    .and_then(|_| s.file.write_all(&full));
                if let Err(e) = written {
                    self.broken = true;
                    return Err(e);
                }
                s.chunks.push(full.len() as u64);
                // The buffer is reused for the next chunk.
                self.current = full;
                self.current.clear();
            }
            None => self.chunks.push((start, full)),
        }
        Ok(())
    }

    /// The `len` bytes at `offset`, all inside one record (a record starts
    /// at the value [`SpillLog::len`] had before it was appended).
    pub fn read_at(&mut self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        self.usable()?;
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "no record there");
        let slice = |chunk: &[u8], at: u64| {
            let at = usize::try_from(at).ok()?;
            chunk.get(at..at.checked_add(len)?).map(<[u8]>::to_vec)
        };
        if offset >= self.before {
            return slice(&self.current, offset - self.before).ok_or_else(bad);
        }
        if let Some(s) = self.file.as_mut().filter(|s| offset >= s.start) {
            let mut out = vec![0u8; len];
            s.file.seek(SeekFrom::Start(offset - s.start))?;
            s.file.read_exact(&mut out)?;
            return Ok(out);
        }
        let i = self.chunks.partition_point(|(start, _)| *start <= offset);
        let (start, chunk) = self.chunks.get(i.wrapping_sub(1)).ok_or_else(bad)?;
        slice(chunk, offset - start).ok_or_else(bad)
    }

    /// Hands every chunk to `f`, in order; each holds whole records. The
    /// log is left as it was (it can be walked again).
    pub fn for_each_chunk(&mut self, f: &mut dyn FnMut(&[u8]) -> io::Result<()>) -> io::Result<()> {
        self.usable()?;
        for (_, chunk) in &self.chunks {
            f(chunk)?;
        }
        if let Some(s) = &mut self.file {
            s.file.seek(SeekFrom::Start(0))?;
            let mut buf = Vec::new();
            for &n in &s.chunks {
                buf.resize(usize::try_from(n).map_err(io::Error::other)?, 0);
                s.file.read_exact(&mut buf)?;
                f(&buf)?;
            }
        }
        f(&self.current)
    }
}

/// Names whose bytes are kept elsewhere (in records of a [`SpillLog`]),
/// found again without a second copy of every name: a keyed 64-bit hash
/// of each name → where the first name with that hash is kept, and the
/// rare names whose hash an earlier name already holds, kept whole.
#[derive(Default)]
pub(crate) struct LoggedNames {
    keys: RandomState,
    first: HashMap<u64, u64>,
    collided: HashSet<Box<str>>,
    /// Tests: every name hashes alike, so that every name after the first
    /// takes the collision path.
    #[cfg(test)]
    pub(crate) all_collide: bool,
}

impl LoggedNames {
    fn hash(&self, name: &str) -> u64 {
        #[cfg(test)]
        if self.all_collide {
            return 0;
        }
        self.keys.hash_one(name)
    }

    /// Whether `name` was recorded. `is_at(at)` says whether the name kept
    /// at `at` (read back from where it is kept) is `name`.
    pub(crate) fn contains<E>(
        &self,
        name: &str,
        is_at: impl FnOnce(u64) -> Result<bool, E>,
    ) -> Result<bool, E> {
        let Some(&at) = self.first.get(&self.hash(name)) else {
            return Ok(false);
        };
        Ok(is_at(at)? || self.collided.contains(name))
    }

    /// Records `name`, which is not recorded yet, as kept at `at`.
    pub(crate) fn insert(&mut self, name: &str, at: u64) {
        let h = self.hash(name);
        match self.first.entry(h) {
            Entry::Vacant(v) => {
                v.insert(at);
            }
            Entry::Occupied(_) => {
                self.collided.insert(name.into());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(i: usize) -> Vec<u8> {
        // Varied lengths, a few larger than a chunk.
        let len = if i % 997 == 0 { CHUNK + 3 } else { i % 300 };
        let mut r = (i as u32).to_le_bytes().to_vec();
        r.extend((0..len).map(|j| (i + j) as u8));
        r
    }

    #[test]
    fn records_come_back_whole_and_in_order_from_memory_or_the_file() {
        // `late`: the folder is given halfway, so the first chunks stay in
        // memory and the file starts partway through the log (as when the
        // file could be created only after an earlier attempt failed).
        for (spill, late) in [(false, false), (true, false), (true, true)] {
            let dir = tempfile::tempdir().unwrap();
            let mut log = SpillLog::default();
            let folder = spill.then(|| dir.path().to_path_buf());
            if !late {
                log.spill_to(folder.clone());
            }
            let n = 12_000;
            let mut offsets = Vec::new();
            for i in 0..n {
                if late && i == n / 2 {
                    log.spill_to(folder.clone());
                }
                let r = record(i);
                offsets.push(log.len());
                log.append_with(r.len(), |b| b.extend_from_slice(&r))
                    .unwrap();
            }
            assert_eq!(log.spilled(), spill);
            assert_eq!(!log.chunks.is_empty(), !spill || late);
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
            for i in (0..n).step_by(7).chain([996, 997, 998, n / 2, n - 1]) {
                let r = record(i);
                assert_eq!(
                    log.read_at(offsets[i], r.len()).unwrap(),
                    r,
                    "{i} {spill} {late}"
                );
            }
            // Past the end of what was written: an error, not a panic.
            assert!(log.read_at(offsets[n - 1], CHUNK * 3).is_err());
            let mut got = Vec::new();
            log.for_each_chunk(&mut |c| {
                got.extend_from_slice(c);
                Ok(())
            })
            .unwrap();
            let want: Vec<u8> = (0..n).flat_map(record).collect();
            assert!(got == want, "{spill} {late}");
        }
    }

    #[test]
    fn a_chunk_that_cannot_be_written_makes_every_later_call_fail() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = SpillLog::default();
        log.spill_to(Some(dir.path().to_path_buf()));
        let mut i = 0;
        while !log.spilled() {
            let r = record(i);
            log.append_with(r.len(), |b| b.extend_from_slice(&r))
                .unwrap();
            i += 1;
        }
        // The file can no longer be written (a full disk, say) ...
        let ro = dir.path().join("read-only");
        std::fs::write(&ro, b"").unwrap();
        let file = &mut log.file.as_mut().unwrap().file;
        let good = std::mem::replace(file, File::open(&ro).unwrap());
        loop {
            let r = record(i);
            i += 1;
            if log
                .append_with(r.len(), |b| b.extend_from_slice(&r))
                .is_err()
            {
                break;
            }
        }
        // ... then can again: the log, which lost a chunk, still refuses
        // rather than answer with another record's bytes.
        log.file.as_mut().unwrap().file = good;
        assert!(log.append_with(1, |b| b.push(0)).is_err());
        assert!(log.read_at(0, 4).is_err());
        assert!(log.for_each_chunk(&mut |_| Ok(())).is_err());
    }
}
