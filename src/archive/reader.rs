//! [`Archive`]: reading a `.lvbak` over any `Read + Seek`.

use std::hash::BuildHasher;
use std::io::{BufReader, Read, Seek};
use std::sync::Arc;

use serde_json::{Map, Value};

use super::ArchiveError;
use crate::container::{CentralDirectory, CentralEntry, ContainerError, EntryReader};
use crate::entry_name::{Bucket, EntryName};
use crate::manifest::{Manifest, Trailer};
use crate::ndjson::{check_line, LineKind, LineReader, ReadLineError};
use crate::Limits;

/// One entry: its parsed name and what the central directory says of it.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The parsed name.
    pub name: EntryName,
    /// The central directory record.
    pub central: CentralEntry,
}

impl AsRef<CentralEntry> for Entry {
    fn as_ref(&self) -> &CentralEntry {
        &self.central
    }
}

impl AsMut<CentralEntry> for Entry {
    fn as_mut(&mut self) -> &mut CentralEntry {
        &mut self.central
    }
}

/// An open archive: central directory checked, manifest parsed, trailer
/// merged. Entry bodies are read on demand, one at a time, through
/// [`Archive::rows`], [`Archive::file`] and [`Archive::entry_reader`].
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let file = std::fs::File::open("backup.lvbak")?;
/// let mut archive = lvbak::Archive::open(file, lvbak::Limits::default())?;
/// println!("archive {}", archive.manifest().archive_id);
/// for table in archive.tables() {
///     let mut n = 0;
///     for row in archive.rows(&table)? {
///         let _row = row?;
///         n += 1;
///     }
///     println!("{table}: {n} rows");
/// }
/// # Ok(()) }
/// ```
pub struct Archive<R> {
    reader: R,
    entries: Arc<Vec<Entry>>,
    /// Lookup by name without a second copy of the names: (hash of the
    /// name, position), sorted; a lookup compares the names that share
    /// the hash.
    by_name: Arc<NameIndex>,
    manifest: Manifest,
    trailer: Option<Arc<Trailer>>,
    trailer_ignored: bool,
    limits: Limits,
    file_len: u64,
}

impl<R> std::fmt::Debug for Archive<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Archive")
            .field("archive_id", &self.manifest.archive_id)
            .field("entries", &self.entries.len())
            .finish_non_exhaustive()
    }
}

/// The entries of a checked directory with their lookup by name.
pub(crate) struct Indexed {
    pub(crate) entries: Vec<Entry>,
    by_name: NameIndex,
    /// Records in the central directory (valid or not).
    pub(crate) records: usize,
    /// The archive's length.
    pub(crate) file_len: u64,
    /// The trailer, when it was read while the directory was indexed.
    trailer: Option<Result<Option<Trailer>, ArchiveError>>,
}

/// Reads the central directory and indexes it ([`index_entries`]),
/// parsing each name as its record is read: the entries are built once,
/// not as records first and entries after.
pub(crate) fn read_indexed<R: Read + Seek>(
    r: &mut R,
    limits: &Limits,
) -> Result<(Indexed, Vec<ArchiveError>), ContainerError> {
    // Names are parsed once the directory is read, on two threads when
    // it is large; until then each entry holds a placeholder name.
    let mut cd = CentralDirectory::read_with(r, limits, |central| Entry {
        name: EntryName::Manifest,
        central,
    })?;
    let bad = parse_names(&mut cd.entries);
    // A large directory is indexed on a second thread while this one
    // reads the trailer (the first entry of that name is the one kept).
    let trailer = (cd.entries.len() >= PARALLEL_INDEX)
        .then(|| {
            // (Unparsable names hold the placeholder, never this name.)
            cd.entries
                .iter()
                .find(|e| e.name == EntryName::Trailer)
                .map(|e| e.central.clone())
        })
        .flatten();
    let Some(trailer) = trailer else {
        return Ok(index_parsed(cd, bad, limits));
    };
    Ok(std::thread::scope(|s| {
        let indexing = s.spawn(|| index_parsed(cd, bad, limits));
        let read = read_trailer_entry(r, &trailer, limits);
        let (mut indexed, problems) = match indexing.join() {
            Ok(x) => x,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        indexed.trailer = Some(read);
        (indexed, problems)
    }))
}

/// Parses every entry's name (on two threads for a large directory).
/// Returns the positions whose names did not parse, in order; their
/// entries keep the placeholder name.
fn parse_names(entries: &mut [Entry]) -> Vec<(usize, ArchiveError)> {
    fn parse(entries: &mut [Entry]) -> Vec<(usize, ArchiveError)> {
        let mut bad = Vec::new();
        for e in entries {
            match EntryName::parse(&e.central.name) {
                Ok(name) => e.name = name,
                Err(err) => bad.push((e.central.index, err.into())),
            }
        }
        bad
    }
    if entries.len() < PARALLEL_INDEX {
        return parse(entries);
    }
    let (first, second) = entries.split_at_mut(entries.len() / 2);
    std::thread::scope(|s| {
        let other = s.spawn(|| parse(second));
        let mut bad = parse(first);
        match other.join() {
            Ok(more) => bad.extend(more),
            Err(panic) => std::panic::resume_unwind(panic),
        }
        bad
    })
}

/// Directories of at least this many entries are indexed on a second
/// thread while the trailer is read (below it, a thread costs more than
/// it saves, and fuzzing opens millions of tiny archives).
const PARALLEL_INDEX: usize = 4096;

/// Reads `manifest-stats.json` (described by `central`) as a stream; its
/// declared size is checked against the limit first.
fn read_trailer_entry<R: Read + Seek>(
    reader: &mut R,
    central: &CentralEntry,
    limits: &Limits,
) -> Result<Option<Trailer>, ArchiveError> {
    let size = central.uncompressed_size;
    let cap = limits.max_trailer_bytes;
    if size > cap {
        return Err(ArchiveError::EntryTooLarge {
            entry: EntryName::Trailer.to_string(),
            size,
            limit: cap,
            hint: "Limits::max_trailer_bytes",
        });
    }
    let r = EntryReader::new(reader, central)?;
    Ok(Trailer::from_sized_reader(r, limits.max_json_depth, size)
        .map_err(ContainerError::from_io)?)
}

/// Checks the directory against names, duplicates, limits and overlap.
/// Returns the entries (those with valid names; of duplicates, the first)
/// and every problem found, in central-directory order. Takes the
/// directory's records instead of copying them; duplicates and case twins
/// are found by sorting positions, so no name is held twice, and the
/// hashes sorted for the duplicate check become the lookup by name.
#[cfg(test)]
pub(crate) fn index_entries(cd: CentralDirectory, limits: &Limits) -> (Indexed, Vec<ArchiveError>) {
    let CentralDirectory {
        entries,
        file_len,
        cd_offset,
        cd_size,
        zip64,
    } = cd;
    let mut entries: Vec<Entry> = entries
        .into_iter()
        .map(|central| Entry {
            name: EntryName::Manifest,
            central,
        })
        .collect();
    let bad = parse_names(&mut entries);
    let cd = CentralDirectory {
        entries,
        file_len,
        cd_offset,
        cd_size,
        zip64,
    };
    index_parsed(cd, bad, limits)
}

/// [`index_entries`] of a directory whose names are parsed already:
/// `bad` lists the positions whose names did not parse (their entries
/// hold a placeholder name and are dropped here).
fn index_parsed(
    mut cd: CentralDirectory<Entry>,
    bad: Vec<(usize, ArchiveError)>,
    limits: &Limits,
) -> (Indexed, Vec<ArchiveError>) {
    let overlap = cd.entry_problems();
    let mut entries = std::mem::take(&mut cd.entries);
    let (records, file_len) = (entries.len(), cd.file_len);
    let mut keep = vec![true; entries.len()];
    for &(pos, _) in &bad {
        if let Some(k) = keep.get_mut(pos) {
            *k = false;
        }
    }
    let mut located = bad;
    let mut text = 0u64;
    let mut total = 0u64;
    for (e, &k) in entries.iter().zip(&keep) {
        total = total.saturating_add(e.central.uncompressed_size);
        if k && e.name.is_text() {
            text += 1;
        }
    }
    // Duplicates: names grouped by hash, compared within a group; the
    // first stays. No copy of any name is made.
    let hasher = std::collections::hash_map::RandomState::new();
    let mut hashed: Vec<(u64, usize)> = entries
        .iter()
        .enumerate()
        .filter(|&(i, _)| keep[i])
        .map(|(i, e)| (hasher.hash_one(&e.name), i))
        .collect();
    hashed.sort_unstable();
    for group in hashed.chunk_by(|a, b| a.0 == b.0) {
        for (k, &(_, b)) in group.iter().enumerate() {
            if group[..k]
                .iter()
                .any(|&(_, a)| keep[a] && entries[a].name == entries[b].name)
            {
                keep[b] = false;
                located.push((
                    entries[b].central.index,
                    ArchiveError::DuplicateName {
                        entry: entries[b].name.to_string(),
                    },
                ));
            }
        }
    }
    // Case twins among files: names equal but for ASCII case, each reported
    // against the latest one before it; grouped by a hash of the folded
    // name, then compared in place.
    if !limits.allow_case_twins {
        fn folded(e: &Entry) -> Option<(Bucket, &str)> {
            match &e.name {
                EntryName::File { bucket, name } => Some((*bucket, name.as_str())),
                _ => None,
            }
        }
        let fold_eq = |x: &Entry, y: &Entry| match (folded(x), folded(y)) {
            (Some((bx, nx)), Some((by, ny))) => bx == by && nx.eq_ignore_ascii_case(ny),
            _ => false,
        };
        let mut files: Vec<(u64, usize)> = entries
            .iter()
            .enumerate()
            .filter(|&(i, _)| keep[i])
            .filter_map(|(i, e)| {
                let (b, n) = folded(e)?;
                let mut h = std::hash::BuildHasher::build_hasher(&hasher);
                std::hash::Hash::hash(&b, &mut h);
                // Folded 64 bytes at a time (one `write` a byte cost more
                // than all the rest of opening a large archive's directory).
                let mut buf = [0u8; 64];
                for chunk in n.as_bytes().chunks(64) {
                    let folded = buf.get_mut(..chunk.len()).unwrap_or_default();
                    folded.copy_from_slice(chunk);
                    folded.make_ascii_lowercase();
                    std::hash::Hasher::write(&mut h, folded);
                }
                Some((std::hash::Hasher::finish(&h), i))
            })
            .collect();
        files.sort_unstable();
        for group in files.chunk_by(|a, b| a.0 == b.0) {
            for (k, &(_, b)) in group.iter().enumerate() {
                if let Some(&(_, a)) = group[..k]
                    .iter()
                    .rev()
                    .find(|&&(_, a)| fold_eq(&entries[a], &entries[b]))
                {
                    located.push((
                        entries[b].central.index,
                        ArchiveError::CaseTwin {
                            entry: entries[b].name.to_string(),
                            other: entries[a].name.to_string(),
                        },
                    ));
                }
            }
        }
    }
    // The lookup by name: the sorted hashes of the entries kept, with the
    // positions they have once duplicates are gone (still sorted: new
    // positions keep the order of the old).
    let mut kept_before = 0usize;
    let new_pos: Vec<usize> = keep
        .iter()
        .map(|&k| {
            let p = kept_before;
            kept_before += usize::from(k);
            p
        })
        .collect();
    hashed.retain(|&(_, i)| keep[i]);
    for (_, i) in &mut hashed {
        *i = new_pos[*i];
    }
    drop(new_pos);
    let by_name = NameIndex {
        hasher,
        sorted: hashed,
    };
    let mut i = 0;
    entries.retain(|_| {
        i += 1;
        keep[i - 1]
    });
    located.sort_by_key(|(pos, _)| *pos);
    let mut problems: Vec<ArchiveError> = located.into_iter().map(|(_, p)| p).collect();
    if text > limits.max_text_entries {
        problems.push(ArchiveError::TooManyTextEntries {
            count: text,
            limit: limits.max_text_entries,
        });
    }
    if total > limits.max_total_uncompressed_bytes {
        problems.push(ArchiveError::TotalTooLarge {
            declared: total,
            limit: limits.max_total_uncompressed_bytes,
        });
    }
    problems.extend(overlap.into_iter().map(ArchiveError::from));
    (
        Indexed {
            entries,
            by_name,
            records,
            file_len,
            trailer: None,
        },
        problems,
    )
}

impl<R: Read + Seek> Archive<R> {
    /// Opens an archive: locates and checks the central directory, checks
    /// every name against the allowlist, refuses duplicates, overlaps,
    /// encrypted entries and unknown methods, then reads the manifest and
    /// the trailer. Cost grows with the number of entries, not their size.
    pub fn open(mut reader: R, limits: Limits) -> Result<Archive<R>, ArchiveError> {
        let (indexed, mut problems) = read_indexed(&mut reader, &limits)?;
        if !problems.is_empty() {
            return Err(problems.swap_remove(0));
        }
        Archive::from_parts(reader, indexed, limits)
    }

    pub(crate) fn from_parts(
        reader: R,
        indexed: Indexed,
        limits: Limits,
    ) -> Result<Archive<R>, ArchiveError> {
        let (a, mut problems) = Archive::from_parts_lenient(reader, indexed, limits);
        match problems.is_empty() {
            true => Ok(a),
            false => Err(problems.swap_remove(0)),
        }
    }

    /// Like `from_parts`, but a bad manifest or trailer is reported rather
    /// than fatal (the placeholder manifest is empty): for verification.
    pub(crate) fn from_parts_lenient(
        reader: R,
        indexed: Indexed,
        limits: Limits,
    ) -> (Archive<R>, Vec<ArchiveError>) {
        let file_len = indexed.file_len;
        let indexed_trailer = indexed.trailer;
        let mut a = Archive {
            reader,
            entries: Arc::new(indexed.entries),
            by_name: Arc::new(indexed.by_name),
            manifest: Manifest::new("", 0),
            trailer: None,
            trailer_ignored: false,
            limits,
            file_len,
        };
        let mut problems = Vec::new();
        match a.read_json_entry(
            &EntryName::Manifest,
            a.limits.max_manifest_bytes,
            "Limits::max_manifest_bytes",
        ) {
            Ok(Some(raw)) => match Manifest::parse(&raw, a.limits.max_json_depth) {
                Ok(m) => a.manifest = m,
                Err(e) => problems.push(e.into()),
            },
            Ok(None) => problems.push(ArchiveError::NoManifest),
            Err(e) => problems.push(e),
        }
        let trailer = match indexed_trailer {
            Some(read) => read,
            None => a.read_trailer(),
        };
        a.trailer_ignored = matches!(&trailer, Ok(None)) && a.find(&EntryName::Trailer).is_some();
        match trailer {
            Ok(Some(t)) => a.trailer = Some(Arc::new(t)),
            Ok(None) => {}
            Err(e) => problems.push(e),
        }
        (a, problems)
    }

    /// A second view of this archive over another reader of the same
    /// bytes (another handle on the same file), sharing the directory,
    /// manifest and trailer instead of parsing them again.
    pub(crate) fn share_with<R2>(&self, reader: R2) -> Archive<R2> {
        Archive {
            reader,
            entries: Arc::clone(&self.entries),
            by_name: Arc::clone(&self.by_name),
            manifest: self.manifest.clone(),
            trailer: self.trailer.clone(),
            trailer_ignored: self.trailer_ignored,
            limits: self.limits.clone(),
            file_len: self.file_len,
        }
    }

    /// Reads `manifest-stats.json`, if there is one.
    fn read_trailer(&mut self) -> Result<Option<Trailer>, ArchiveError> {
        let Some(i) = self.find(&EntryName::Trailer) else {
            return Ok(None);
        };
        let entries = Arc::clone(&self.entries);
        read_trailer_entry(&mut self.reader, &entries[i].central, &self.limits)
    }

    fn read_json_entry(
        &mut self,
        name: &EntryName,
        cap: u64,
        hint: &'static str,
    ) -> Result<Option<Vec<u8>>, ArchiveError> {
        let Some(i) = self.find(name) else {
            return Ok(None);
        };
        let size = self.entries[i].central.uncompressed_size;
        if size > cap {
            return Err(ArchiveError::EntryTooLarge {
                entry: name.to_string(),
                size,
                limit: cap,
                hint,
            });
        }
        let mut out = Vec::with_capacity(size as usize);
        let mut r = self.entry_reader(i)?;
        r.read_to_end(&mut out).map_err(ContainerError::from_io)?;
        Ok(Some(out))
    }
}

impl<R> Archive<R> {
    /// The manifest, with the trailer's `counts` and `missingFiles` merged
    /// in as the server does (see [`Archive::merged_counts`]).
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The parsed trailer, if present and valid.
    pub fn trailer(&self) -> Option<&Trailer> {
        self.trailer.as_deref()
    }

    /// True when a trailer exists but is not a JSON object (the server
    /// ignores it silently; lvbak reports it).
    pub fn trailer_ignored(&self) -> bool {
        self.trailer_ignored
    }

    /// Per-table counts: the trailer's when present, else the manifest's.
    pub fn merged_counts(&self) -> &[(String, u64)] {
        match &self.trailer {
            Some(t) if t.raw.get("counts").is_some_and(Value::is_object) => &t.counts,
            _ => &self.manifest.counts,
        }
    }

    /// Missing files: the trailer's when present, else the manifest's.
    pub fn merged_missing_files(&self) -> &[String] {
        match &self.trailer {
            Some(t) if t.raw.get("missingFiles").is_some_and(Value::is_array) => &t.missing_files,
            _ => &self.manifest.missing_files,
        }
    }

    /// Every entry, in central-directory order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Archive file size in bytes.
    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Table names with a `database/` entry, in archive order.
    pub fn tables(&self) -> Vec<String> {
        self.entries
            .iter()
            .filter_map(|e| match &e.name {
                EntryName::Table(t) => Some(t.clone()),
                _ => None,
            })
            .collect()
    }

    /// Vector table names with a `lancedb/` entry, in archive order.
    pub fn vector_tables(&self) -> Vec<String> {
        self.entries
            .iter()
            .filter_map(|e| match &e.name {
                EntryName::VectorTable(t) => Some(t.clone()),
                _ => None,
            })
            .collect()
    }

    /// The index of an entry by name.
    pub fn find(&self, name: &EntryName) -> Option<usize> {
        self.by_name
            .candidates(name)
            .find(|&j| self.entries.get(j).is_some_and(|e| e.name == *name))
    }

    /// The line cap in force for this archive's NDJSON.
    pub fn line_cap(&self) -> u64 {
        self.limits.line_cap(self.manifest.ndjson_format_version)
    }

    /// The recorded SHA-256 of an entry (lvbak trailer field), if any.
    pub fn recorded_digest(&self, name: &EntryName) -> Option<[u8; 32]> {
        self.find(name).and_then(|i| self.digest_of(i))
    }

    /// The recorded SHA-256 of entry `index`: by name (field version 1) or
    /// by its position among the entries before the trailer, in
    /// central-directory order (version 2).
    pub(crate) fn digest_of(&self, index: usize) -> Option<[u8; 32]> {
        let t = self.trailer.as_ref()?;
        let e = self.entries.get(index)?;
        match &t.lvbak.as_ref()?.digests {
            crate::manifest::Digests::ByName(_) => t.digest(&e.name.to_string()),
            crate::manifest::Digests::InOrder(_) => {
                let trailer_at = self
                    .find(&EntryName::Trailer)
                    .and_then(|i| self.entries.get(i))
                    .map(|t| t.central.index)?;
                let at = e.central.index;
                match at.cmp(&trailer_at) {
                    std::cmp::Ordering::Less => t.digest_at(at),
                    std::cmp::Ordering::Greater => t.digest_at(at - 1),
                    std::cmp::Ordering::Equal => None,
                }
            }
        }
    }
}

impl<R: Read + Seek> Archive<R> {
    /// A checked reader over entry `index` (see [`EntryReader`]); when the
    /// trailer records a digest for it, the digest is checked too.
    pub fn entry_reader(&mut self, index: usize) -> Result<EntryReader<'_, R>, ArchiveError> {
        let digest = self.digest_of(index);
        let Some(e) = self.entries.get(index) else {
            return Err(ArchiveError::NotFound {
                entry: format!("#{index}"),
            });
        };
        let mut r = EntryReader::new(&mut self.reader, &e.central)?;
        if let Some(d) = digest {
            r.expect_sha256(d);
        }
        Ok(r)
    }

    /// The rows of `database/{table}.ndjson`, one line at a time.
    pub fn rows(&mut self, table: &str) -> Result<Rows<'_, R>, ArchiveError> {
        self.ndjson(EntryName::Table(table.to_owned()))
    }

    /// The rows of `lancedb/{table}.ndjson`.
    pub fn vector_rows(&mut self, table: &str) -> Result<Rows<'_, R>, ArchiveError> {
        self.ndjson(EntryName::VectorTable(table.to_owned()))
    }

    /// Rows of any NDJSON entry (tables, vector tables, `secrets/encrypted.ndjson`).
    pub fn ndjson(&mut self, name: EntryName) -> Result<Rows<'_, R>, ArchiveError> {
        let Some(i) = self.find(&name) else {
            return Err(ArchiveError::NotFound {
                entry: name.to_string(),
            });
        };
        let cap = self.line_cap();
        let depth = self.limits.max_json_depth;
        let r = self.entry_reader(i)?;
        Ok(Rows {
            lines: LineReader::new(BufReader::with_capacity(64 * 1024, r), cap),
            entry: name.to_string(),
            depth,
            failed: false,
        })
    }

    /// A checked reader over `files/{bucket}/{name}`.
    pub fn file(&mut self, bucket: Bucket, name: &str) -> Result<EntryReader<'_, R>, ArchiveError> {
        let key = EntryName::File {
            bucket,
            name: name.to_owned(),
        };
        match self.find(&key) {
            Some(i) => self.entry_reader(i),
            None => Err(ArchiveError::NotFound {
                entry: key.to_string(),
            }),
        }
    }

    /// Reads a whole small entry (e.g. `secrets/index.json`) up to `cap` bytes.
    pub fn read_small(
        &mut self,
        name: &EntryName,
        cap: u64,
    ) -> Result<Option<Vec<u8>>, ArchiveError> {
        self.read_json_entry(name, cap, "the cap for this entry")
    }

    /// The inflated bytes of entry `index` without the size, CRC and digest
    /// checks, stopping after `max_out` bytes: only for recovery tools
    /// ([`crate::repack::repair`]). The local header is still checked.
    pub fn unchecked_reader(
        &mut self,
        index: usize,
        max_out: u64,
    ) -> Result<Box<dyn Read + '_>, ArchiveError> {
        let Some(e) = self.entries.get(index) else {
            return Err(ArchiveError::NotFound {
                entry: format!("#{index}"),
            });
        };
        let c = e.central.clone();
        let info = crate::container::check_local(&mut self.reader, &c)?;
        crate::container::seek_to_data(&mut self.reader, &info).map_err(ContainerError::Io)?;
        let raw = BufReader::with_capacity(64 * 1024, (&mut self.reader).take(c.compressed_size));
        Ok(match c.method {
            0 => Box::new(raw.take(max_out)),
            8 => Box::new(flate2::bufread::DeflateDecoder::new(raw).take(max_out)),
            method => {
                return Err(ContainerError::UnsupportedMethod {
                    entry: c.name.clone(),
                    method,
                }
                .into())
            }
        })
    }

    pub(crate) fn reader_mut(&mut self) -> &mut R {
        &mut self.reader
    }

    /// Gives back the underlying reader.
    pub fn into_inner(self) -> R {
        self.reader
    }
}

/// One row: the exact bytes of one NDJSON line (a JSON object), with its
/// line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    text: String,
    line: u64,
}

impl Row {
    /// A row from a line the caller has checked to be a JSON object.
    pub(crate) fn new(text: String, line: u64) -> Row {
        Row { text, line }
    }

    /// The line, exactly as stored (no `\n`).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The line number in its entry (1-based).
    pub fn line(&self) -> u64 {
        self.line
    }

    /// Parses the row into an ordered JSON object.
    pub fn to_object(&self) -> Result<Map<String, Value>, serde_json::Error> {
        serde_json::from_str(&self.text)
    }

    /// The line as an owned string.
    pub fn into_string(self) -> String {
        self.text
    }
}

/// A streaming iterator over the rows of one NDJSON entry. Blank lines and
/// falsy values are skipped as the server skips them; any other problem is
/// an [`ArchiveError::Line`] naming the entry and line, after which the
/// iterator ends.
pub struct Rows<'a, R: Read> {
    lines: LineReader<BufReader<EntryReader<'a, R>>>,
    entry: String,
    depth: u32,
    failed: bool,
}

impl<R: Read> Rows<'_, R> {
    /// The entry being read.
    pub fn entry(&self) -> &str {
        &self.entry
    }

    /// The next row, borrowing the line buffer (no allocation).
    pub fn next_line(&mut self) -> Result<Option<(u64, &str)>, ArchiveError> {
        if self.failed {
            return Ok(None);
        }
        match next_checked_line(&mut self.lines, &self.entry, self.depth) {
            Ok(Some(n)) => {
                // check_line verified UTF-8, so this cannot fail; map it anyway.
                let line = self.lines_buffer(n)?;
                Ok(Some((n, line)))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                self.failed = true;
                Err(e)
            }
        }
    }

    fn lines_buffer(&self, n: u64) -> Result<&str, ArchiveError> {
        std::str::from_utf8(self.lines_last()).map_err(|e| ArchiveError::Line {
            entry: self.entry.clone(),
            line: n,
            source: crate::ndjson::LineError::NotUtf8 {
                at: e.valid_up_to(),
            },
        })
    }

    fn lines_last(&self) -> &[u8] {
        self.lines.last_line()
    }
}

/// Reads lines until one that is a row: blank lines and falsy values are
/// skipped as the server skips them; returns the row's line number (the
/// line itself is `lines.last_line()`), or the first problem, naming the
/// entry and line.
pub(crate) fn next_checked_line<B: std::io::BufRead>(
    lines: &mut LineReader<B>,
    entry: &str,
    depth: u32,
) -> Result<Option<u64>, ArchiveError> {
    loop {
        let line = match lines.next_line() {
            Ok(Some(l)) => l,
            Ok(None) => return Ok(None),
            Err(ReadLineError::TooLong { line, cap }) => {
                return Err(ArchiveError::Line {
                    entry: entry.to_owned(),
                    line,
                    source: crate::ndjson::LineError::TooLong { cap },
                })
            }
            Err(ReadLineError::Io(io)) => {
                return Err(ArchiveError::Container(ContainerError::from_io(io)))
            }
        };
        match check_line(line, depth) {
            Ok(LineKind::Object) => return Ok(Some(lines.line_no())),
            Ok(LineKind::Falsy) => continue,
            Err(source) => {
                return Err(ArchiveError::Line {
                    entry: entry.to_owned(),
                    line: lines.line_no(),
                    source,
                })
            }
        }
    }
}

impl<R: Read> Iterator for Rows<'_, R> {
    type Item = Result<Row, ArchiveError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.next_line() {
            Ok(Some((n, s))) => Some(Ok(Row::new(s.to_owned(), n))),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        }
    }
}

/// Entry positions by a hash of their names, sorted: lookups compare only
/// the names sharing the hash, and no name is copied.
#[derive(Debug)]
pub(crate) struct NameIndex {
    hasher: std::collections::hash_map::RandomState,
    sorted: Vec<(u64, usize)>,
}

impl NameIndex {
    /// Positions whose name has the same hash as `name`.
    fn candidates(&self, name: &EntryName) -> impl Iterator<Item = usize> + '_ {
        let h = self.hasher.hash_one(name);
        let start = self.sorted.partition_point(|&(x, _)| x < h);
        self.sorted[start..]
            .iter()
            .take_while(move |&&(x, _)| x == h)
            .map(|&(_, i)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::CentralEntry;

    fn directory(names: &[&str]) -> CentralDirectory {
        let entries = names
            .iter()
            .enumerate()
            .map(|(i, n)| CentralEntry {
                index: i,
                name: (*n).to_owned(),
                version_made_by: 0x032D,
                version_needed: 20,
                flags: 0,
                method: 0,
                time: 0,
                date: 0x21,
                crc32: 0,
                compressed_size: 1,
                uncompressed_size: 1,
                local_offset: 100 * i as u64,
                external_attr: 0,
                zip64: false,
                space_end: 100 * i as u64 + 100,
            })
            .collect();
        CentralDirectory {
            entries,
            file_len: 100 * names.len() as u64 + 100,
            cd_offset: 100 * names.len() as u64,
            cd_size: 100,
            zip64: false,
        }
    }

    #[test]
    fn the_name_index_finds_every_kept_entry_where_it_ended_up() {
        // Dropped along the way: a bad name and two repeats, so most
        // entries move to a lower position.
        let cd = directory(&[
            "manifest.json",
            "files/avatars/a.png",
            "../evil",
            "database/chats.ndjson",
            "files/avatars/a.png",
            "files/avatars/b.png",
            "database/chats.ndjson",
            "files/avatars/c.png",
            "manifest-stats.json",
        ]);
        let (indexed, problems) = index_entries(cd, &Limits::default());
        assert_eq!(problems.len(), 3, "{problems:?}");
        let names: Vec<String> = indexed.entries.iter().map(|e| e.name.to_string()).collect();
        assert_eq!(
            names,
            [
                "manifest.json",
                "files/avatars/a.png",
                "database/chats.ndjson",
                "files/avatars/b.png",
                "files/avatars/c.png",
                "manifest-stats.json"
            ]
        );
        for (j, e) in indexed.entries.iter().enumerate() {
            let found: Vec<usize> = indexed
                .by_name
                .candidates(&e.name)
                .filter(|&k| indexed.entries.get(k).is_some_and(|x| x.name == e.name))
                .collect();
            assert_eq!(found, [j], "{}", e.name);
        }
        let absent = EntryName::parse("files/avatars/zzz.png").unwrap();
        assert!(indexed
            .by_name
            .candidates(&absent)
            .all(|k| indexed.entries[k].name != absent));
    }
}
