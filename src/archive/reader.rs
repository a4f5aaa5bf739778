//! [`Archive`]: reading a `.lvbak` over any `Read + Seek`.

use std::io::{BufReader, Read, Seek};
use std::sync::Arc;

use serde_json::{Map, Value};

use super::table::{raw_in, Entries, Entry, EntryRef, Slot, Table};
use super::ArchiveError;
use crate::container::{
    directory_problems, read_directory, CentralDirectory, CentralEntry, ContainerError, EntryReader,
};
use crate::entry_name::{Bucket, EntryName, Kind, NameError};
use crate::manifest::{in_order_slot, DigestOf, KeepDigests, Manifest, Trailer};
use crate::ndjson::{check_line, LineKind, LineReader, ReadLineError};
use crate::Limits;

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
    entries: Arc<Table>,
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
    pub(crate) entries: Table,
    by_name: NameIndex,
    /// Records in the central directory (valid or not).
    pub(crate) records: usize,
    /// The archive's length.
    pub(crate) file_len: u64,
    /// The trailer, when it was read while the directory was indexed.
    trailer: Option<Result<Option<Trailer>, ArchiveError>>,
}

/// Reads the central directory and indexes it ([`index_parsed`]): each
/// record becomes a slot of the [`Table`] as it is read, its name
/// appended to the table's one string of names.
pub(crate) fn read_indexed<R: Read + Seek>(
    r: &mut R,
    limits: &Limits,
) -> Result<(Indexed, Vec<ArchiveError>), ContainerError> {
    let mut names = String::new();
    let mut cd = read_directory(r, limits, |fields, raw| {
        Table::new_slot(&mut names, fields, raw)
    })?;
    // The names' string grew by doubling: up to half of it is unused.
    names.shrink_to_fit();
    // Names are classified once the directory is read, on two threads
    // when it is large; until then each slot holds a placeholder.
    let bad = Table::classify(&names, &mut cd.entries, PARALLEL_INDEX);
    // A large directory is indexed on a second thread while this one
    // reads the trailer (the first entry of that name is the one kept).
    let trailer = (cd.entries.len() >= PARALLEL_INDEX)
        .then(|| {
            // (Unclassified names hold the placeholder, never this kind.)
            cd.entries
                .iter()
                .find(|s| s.is_trailer())
                .map(|s| s.central(&names))
        })
        .flatten();
    let Some(trailer) = trailer else {
        return Ok(index_parsed(cd, names, bad, limits));
    };
    Ok(std::thread::scope(|s| {
        let indexing = s.spawn(|| index_parsed(cd, names, bad, limits));
        let read = read_trailer_entry(r, &trailer, limits);
        let (mut indexed, problems) = match indexing.join() {
            Ok(x) => x,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        indexed.trailer = Some(read);
        (indexed, problems)
    }))
}

/// Directories of at least this many entries are indexed on a second
/// thread while the trailer is read (below it, a thread costs more than
/// it saves, and fuzzing opens millions of tiny archives).
const PARALLEL_INDEX: usize = 4096;

/// Reads `manifest-stats.json` (described by `central`) as a stream; its
/// declared size is checked against the limit first.
pub(crate) fn read_trailer_entry<R: Read + Seek>(
    reader: &mut R,
    central: &CentralEntry,
    limits: &Limits,
) -> Result<Option<Trailer>, ArchiveError> {
    let r = trailer_reader(reader, central, limits)?;
    Ok(
        Trailer::from_sized_reader(r, limits.max_json_depth, central.uncompressed_size)
            .map_err(ContainerError::from_io)?,
    )
}

/// [`read_trailer_entry`] by the lean parse: the text of in-order digests
/// is never held, and with [`KeepDigests::Count`] neither are the digests
/// (only their number, [`Trailer::in_order_count`]).
pub(crate) fn read_trailer_lean<R: Read + Seek>(
    reader: &mut R,
    central: &CentralEntry,
    limits: &Limits,
    keep: KeepDigests,
) -> Result<Option<Trailer>, ArchiveError> {
    let r = trailer_reader(reader, central, limits)?;
    Ok(
        Trailer::from_reader_lean(r, limits.max_json_depth, central.uncompressed_size, keep)
            .map_err(ContainerError::from_io)?,
    )
}

/// The limits a directory of `text` text entries declaring `total`
/// uncompressed bytes exceeds.
pub(crate) fn limit_problems(
    text: u64,
    total: u64,
    limits: &Limits,
) -> impl Iterator<Item = ArchiveError> {
    let too_many = (text > limits.max_text_entries).then_some(ArchiveError::TooManyTextEntries {
        count: text,
        limit: limits.max_text_entries,
    });
    let too_large =
        (total > limits.max_total_uncompressed_bytes).then_some(ArchiveError::TotalTooLarge {
            declared: total,
            limit: limits.max_total_uncompressed_bytes,
        });
    too_many.into_iter().chain(too_large)
}

/// The trailer entry's reader, once its declared size is within
/// `Limits::max_trailer_bytes`.
fn trailer_reader<'r, R: Read + Seek>(
    reader: &'r mut R,
    central: &CentralEntry,
    limits: &Limits,
) -> Result<EntryReader<'r, R>, ArchiveError> {
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
    Ok(EntryReader::new(reader, central)?)
}

/// Checks the directory against names, duplicates, limits and overlap.
/// Returns the entries (those with valid names; of duplicates, the first)
/// and every problem found, in central-directory order.
#[cfg(test)]
pub(crate) fn index_entries(cd: CentralDirectory, limits: &Limits) -> (Indexed, Vec<ArchiveError>) {
    use crate::container::DirectoryEntry;
    let CentralDirectory {
        entries,
        file_len,
        cd_offset,
        cd_size,
        zip64,
    } = cd;
    let mut names = String::new();
    let mut slots: Vec<_> = entries
        .into_iter()
        .map(|c| {
            let mut s = Table::new_slot(&mut names, c.fields(), &c.name);
            s.set_space_end(c.space_end);
            s
        })
        .collect();
    let bad = Table::classify(&names, &mut slots, PARALLEL_INDEX);
    let cd = CentralDirectory {
        entries: slots,
        file_len,
        cd_offset,
        cd_size,
        zip64,
    };
    index_parsed(cd, names, bad, limits)
}

/// Checks a directory whose names are classified already against names,
/// duplicates, limits and overlap: `bad` lists the positions whose names
/// are not on the allowlist (their slots hold a placeholder and are
/// dropped here). Returns the entries (those with valid names; of
/// duplicates, the first) and every problem found, in central-directory
/// order. Duplicates and case twins are found by sorting hashes, so no
/// name is copied, and the hashes sorted for the duplicate check become
/// the lookup by name.
fn index_parsed(
    mut cd: CentralDirectory<Slot>,
    names: String,
    bad: Vec<(usize, NameError)>,
    limits: &Limits,
) -> (Indexed, Vec<ArchiveError>) {
    let overlap = directory_problems(&cd, true, |s| raw_in(&names, s).to_owned());
    let file_len = cd.file_len;
    let mut entries = Table::new(std::mem::take(&mut cd.entries), names);
    let records = entries.len();
    let mut keep = vec![true; records];
    for &(pos, _) in &bad {
        if let Some(k) = keep.get_mut(pos) {
            *k = false;
        }
    }
    let mut located: Vec<(usize, ArchiveError)> =
        bad.into_iter().map(|(pos, e)| (pos, e.into())).collect();
    let mut text = 0u64;
    let mut total = 0u64;
    for (e, &k) in entries.iter().zip(&keep) {
        total = total.saturating_add(e.uncompressed_size());
        if k && e.is_text() {
            text += 1;
        }
    }
    let hasher = std::collections::hash_map::RandomState::new();
    let (found, mut hashed) = duplicates(&entries, &mut keep, &hasher, limits.allow_case_twins);
    located.extend(found);
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
    entries.retain(&keep);
    located.sort_by_key(|(pos, _)| *pos);
    let mut problems: Vec<ArchiveError> = located.into_iter().map(|(_, p)| p).collect();
    problems.extend(limit_problems(text, total, limits));
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

/// Problems with the position in the directory of the entry each is about.
pub(crate) type Located = Vec<(usize, ArchiveError)>;

/// Duplicates and case twins among the entries of `entries` that `keep`
/// says are kept: each later duplicate is no longer kept. Returns the
/// problems with their positions in the directory, and the (hash, index)
/// of every entry kept or not before the call, sorted by hash. Names are
/// grouped by hash and compared within a group: no name is copied.
pub(crate) fn duplicates(
    entries: &Table,
    keep: &mut [bool],
    hasher: &std::collections::hash_map::RandomState,
    allow_case_twins: bool,
) -> (Located, Vec<(u64, usize)>) {
    let records = entries.len();
    let mut found = Vec::new();
    // Duplicates: names grouped by hash, compared within a group; the
    // first stays. No copy of any name is made.
    let mut hashed: Vec<(u64, usize)> = Vec::with_capacity(records);
    hashed.extend(
        (0..records)
            .filter(|&i| keep[i])
            .map(|i| (entries.hash_of(hasher, i), i)),
    );
    hashed.sort_unstable();
    for group in hashed.chunk_by(|a, b| a.0 == b.0) {
        for (k, &(_, b)) in group.iter().enumerate() {
            if group[..k]
                .iter()
                .any(|&(_, a)| keep[a] && entries.same_name(a, b))
            {
                keep[b] = false;
                let e = entries.get(b);
                found.push((
                    e.map_or(b, |e| e.position()),
                    ArchiveError::DuplicateName {
                        entry: e.map(|e| e.path().into_owned()).unwrap_or_default(),
                    },
                ));
            }
        }
    }
    // Case twins among files: names equal but for ASCII case, each reported
    // against the latest one before it; grouped by a hash of the folded
    // name, then compared in place.
    if !allow_case_twins {
        let fold_eq = |x: usize, y: usize| match (entries.file_part(x), entries.file_part(y)) {
            (Some((bx, nx)), Some((by, ny))) => bx == by && nx.eq_ignore_ascii_case(&ny),
            _ => false,
        };
        let mut files: Vec<(u64, usize)> = (0..records)
            .filter(|&i| keep[i])
            .filter_map(|i| {
                let (b, n) = entries.file_part(i)?;
                Some((folded_hash(hasher, b, &n), i))
            })
            .collect();
        files.sort_unstable();
        for group in files.chunk_by(|a, b| a.0 == b.0) {
            for (k, &(_, b)) in group.iter().enumerate() {
                if let Some(&(_, a)) = group[..k].iter().rev().find(|&&(_, a)| fold_eq(a, b)) {
                    let (ea, eb) = (entries.get(a), entries.get(b));
                    let path = |e: Option<EntryRef<'_>>| {
                        e.map(|e| e.path().into_owned()).unwrap_or_default()
                    };
                    found.push((
                        eb.map_or(b, |e| e.position()),
                        ArchiveError::CaseTwin {
                            entry: path(eb),
                            other: path(ea),
                        },
                    ));
                }
            }
        }
    }
    (found, hashed)
}

/// The hash a file's case-folded name is grouped under, for the case-twin
/// check: its bucket, then its name folded 64 bytes at a time (one `write`
/// a byte cost more than all the rest of opening a large archive's
/// directory).
pub(crate) fn folded_hash(hasher: &impl std::hash::BuildHasher, bucket: Bucket, name: &str) -> u64 {
    let mut h = hasher.build_hasher();
    std::hash::Hash::hash(&bucket, &mut h);
    let mut buf = [0u8; 64];
    for chunk in name.as_bytes().chunks(64) {
        let folded = buf.get_mut(..chunk.len()).unwrap_or_default();
        folded.copy_from_slice(chunk);
        folded.make_ascii_lowercase();
        std::hash::Hasher::write(&mut h, folded);
    }
    std::hash::Hasher::finish(&h)
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

    /// Sets the file entries aside until [`Archive::unstash_files`]: they
    /// are not listed or found meanwhile, and their slots and names are
    /// freed (with `dir`, they wait in an anonymous temporary file there,
    /// else in memory, more compactly). An import does this while it
    /// writes rows, so that a large archive's directory and the rows'
    /// working memory are not held at once.
    pub(crate) fn stash_files(
        &mut self,
        dir: Option<std::path::PathBuf>,
    ) -> Result<StashedFiles, ArchiveError> {
        let mut log = crate::spill::SpillLog::default();
        log.spill_to(dir);
        let (kept, stash) = self
            .entries
            .stash_files(log)
            .map_err(|e| ArchiveError::Container(ContainerError::Io(e)))?;
        self.set_table(kept);
        Ok(StashedFiles(stash))
    }

    /// Puts back the file entries [`Archive::stash_files`] set aside: the
    /// archive lists and finds every entry again, in its order.
    pub(crate) fn unstash_files(&mut self, stashed: StashedFiles) -> Result<(), ArchiveError> {
        let whole = self
            .entries
            .unstash(stashed.0)
            .map_err(|e| ArchiveError::Container(ContainerError::Io(e)))?;
        self.set_table(whole);
        Ok(())
    }

    /// Replaces the table and builds its lookup by name (the table's
    /// names were checked when the archive was opened).
    fn set_table(&mut self, table: Table) {
        let hasher = self.by_name.hasher.clone();
        let mut sorted: Vec<(u64, usize)> = (0..table.len())
            .map(|i| (table.hash_of(&hasher, i), i))
            .collect();
        sorted.sort_unstable();
        self.entries = Arc::new(table);
        self.by_name = Arc::new(NameIndex { hasher, sorted });
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
        let Some(central) = self.entries.get(i).map(|e| e.central()) else {
            return Ok(None);
        };
        read_trailer_entry(&mut self.reader, &central, &self.limits)
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
        let digest = self.digest_of(i);
        let Some(central) = self.entries.get(i).map(|e| e.central()) else {
            return Ok(None);
        };
        let covers = self.digests_cover();
        read_capped(
            &mut self.reader,
            name,
            &central,
            (digest, covers),
            cap,
            hint,
        )
        .map(Some)
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

    /// Every entry, in central-directory order (an `ExactSizeIterator`
    /// of views into the directory kept in memory; nothing is copied).
    ///
    /// ```no_run
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let file = std::fs::File::open("backup.lvbak")?;
    /// let archive = lvbak::Archive::open(file, lvbak::Limits::default())?;
    /// for e in archive.entries() {
    ///     if let Some((bucket, name)) = e.file() {
    ///         println!("{bucket}/{name}: {} bytes", e.uncompressed_size());
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn entries(&self) -> Entries<'_> {
        self.entries.iter()
    }

    /// Entry `index` (a position in [`Archive::entries`]), if there is one.
    pub fn entry(&self, index: usize) -> Option<EntryRef<'_>> {
        self.entries.get(index)
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
            .filter_map(|e| e.table().map(|t| t.into_owned()))
            .collect()
    }

    /// Vector table names with a `lancedb/` entry, in archive order.
    pub fn vector_tables(&self) -> Vec<String> {
        self.entries
            .iter()
            .filter_map(|e| e.vector_table().map(|t| t.into_owned()))
            .collect()
    }

    /// The index of an entry by name.
    pub fn find(&self, name: &EntryName) -> Option<usize> {
        let (kind, part) = name.kind_and_part();
        self.by_name
            .candidates(kind, part)
            .find(|&j| j < self.entries.len() && self.entries.is(j, kind, part))
    }

    /// The line cap in force for this archive's NDJSON.
    pub fn line_cap(&self) -> u64 {
        self.limits.line_cap(self.manifest.ndjson_format_version)
    }

    /// Which bytes the trailer's recorded digests are the SHA-256 of: the
    /// stored bytes (field version 3, which lvbak writes) or the
    /// uncompressed bytes (versions 1 and 2, and when there are none).
    pub fn digests_cover(&self) -> DigestOf {
        self.trailer
            .as_ref()
            .and_then(|t| t.lvbak.as_ref())
            .map_or(DigestOf::Content, |l| l.covers())
    }

    /// The recorded SHA-256 of an entry (lvbak trailer field), if any; see
    /// [`Archive::digests_cover`] for which bytes it covers.
    pub fn recorded_digest(&self, name: &EntryName) -> Option<[u8; 32]> {
        self.find(name).and_then(|i| self.digest_of(i))
    }

    /// The recorded SHA-256 of entry `index`: by name (field version 1) or
    /// by its position among the entries before the trailer, in
    /// central-directory order (versions 2 and 3).
    pub(crate) fn digest_of(&self, index: usize) -> Option<[u8; 32]> {
        let e = self.entries.get(index)?;
        self.digest_for(e.position(), &e.path())
    }

    /// The digest the trailer records for the entry at `at` in the
    /// directory, named `path`.
    fn digest_for(&self, at: usize, path: &str) -> Option<[u8; 32]> {
        let t = self.trailer.as_ref()?;
        match &t.lvbak.as_ref()?.digests {
            crate::manifest::Digests::ByName(_) => t.digest(path),
            crate::manifest::Digests::InOrder(_) => {
                let trailer_at = self
                    .find(&EntryName::Trailer)
                    .and_then(|i| self.entries.get(i))
                    .map(|t| t.position())?;
                t.digest_at(in_order_slot(at, trailer_at)?)
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
        let central = e.central();
        self.checked_reader(&central, digest)
    }

    /// A reader over the entry `central` describes, checking `digest` too
    /// when there is one.
    fn checked_reader(
        &mut self,
        central: &CentralEntry,
        digest: Option<[u8; 32]>,
    ) -> Result<EntryReader<'_, R>, ArchiveError> {
        let covers = self.digests_cover();
        checked_reader(&mut self.reader, central, digest, covers)
    }

    /// A checked reader over an entry set aside by
    /// [`Archive::stash_files`] (given by [`StashedFiles::next_entry`]).
    pub(crate) fn stashed_reader(&mut self, e: &Entry) -> Result<EntryReader<'_, R>, ArchiveError> {
        let digest = self.digest_for(e.central.index, &e.name.to_string());
        self.checked_reader(&e.central, digest)
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
        let c = e.central();
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

/// The whole of entry `name` (described by `central`), read from `r` with
/// its digest checked when `digest` has one, or an error when it declares
/// more than `cap` bytes (`hint` names the limit to raise).
pub(crate) fn read_capped<R: Read + Seek>(
    r: &mut R,
    name: &EntryName,
    central: &CentralEntry,
    (digest, covers): (Option<[u8; 32]>, DigestOf),
    cap: u64,
    hint: &'static str,
) -> Result<Vec<u8>, ArchiveError> {
    let size = central.uncompressed_size;
    if size > cap {
        return Err(ArchiveError::EntryTooLarge {
            entry: name.to_string(),
            size,
            limit: cap,
            hint,
        });
    }
    let mut out = Vec::with_capacity(size as usize);
    let mut er = checked_reader(r, central, digest, covers)?;
    er.read_to_end(&mut out).map_err(ContainerError::from_io)?;
    Ok(out)
}

/// A reader over the entry `central` describes, in `r`, checking `digest`
/// (of the bytes `covers` says) too when there is one.
pub(crate) fn checked_reader<'r, R: Read + Seek>(
    r: &'r mut R,
    central: &CentralEntry,
    digest: Option<[u8; 32]>,
    covers: DigestOf,
) -> Result<EntryReader<'r, R>, ArchiveError> {
    let mut er = EntryReader::new(r, central)?;
    match (digest, covers) {
        (Some(d), DigestOf::Stored) => er.expect_stored_sha256(d),
        (Some(d), DigestOf::Content) => er.expect_sha256(d),
        (None, _) => {}
    }
    Ok(er)
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

/// File entries an archive set aside ([`Archive::stash_files`]).
pub(crate) struct StashedFiles(super::table::Stash);

impl StashedFiles {
    /// The next file entry set aside, in directory order; `None` after the
    /// last.
    pub(crate) fn next_entry(&mut self) -> Result<Option<Entry>, ArchiveError> {
        self.0
            .next_entry()
            .map_err(|e| ArchiveError::Container(ContainerError::Io(e)))
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
    /// Positions whose name has the same hash as the name of kind `kind`
    /// with variable part `part` (see [`Table::hash_of`]).
    fn candidates(&self, kind: Kind, part: &str) -> impl Iterator<Item = usize> + '_ {
        let h = Table::name_hash(&self.hasher, kind, part);
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
    use crate::container::{CentralEntry, Fields};

    /// An archive of `files` small images (their bytes: their number),
    /// two tables and the trailer.
    fn archive_of_files(files: usize) -> Vec<u8> {
        let m = Manifest::new("00000000-0000-4000-8000-000000000000", 1_795_522_458);
        let mut w = super::super::ArchiveWriter::new(
            std::io::Cursor::new(Vec::new()),
            &m,
            super::super::WriteOptions::default(),
        )
        .unwrap();
        let mut t = w.table("chats").unwrap();
        t.write_row(r#"{"id":"c"}"#).unwrap();
        t.finish().unwrap();
        for i in 0..files {
            let name = format!("{i:08x}-0000-4000-8000-{i:012x}.png");
            w.add_file(Bucket::Images, &name, i.to_string().as_bytes())
                .unwrap();
            if i == files / 2 {
                w.table("messages").unwrap().finish().unwrap();
            }
        }
        w.finish().unwrap().0.into_inner()
    }

    #[test]
    fn file_entries_set_aside_read_back_and_return_in_place() {
        // 12,000 records of ~110 bytes: more than a chunk, so they spill.
        let bytes = archive_of_files(12_000);
        let dir = tempfile::tempdir().unwrap();
        let mut a = Archive::open(std::io::Cursor::new(bytes), Limits::default()).unwrap();
        let before: Vec<Entry> = a.entries().map(|e| e.to_entry()).collect();
        let image = EntryName::File {
            bucket: Bucket::Images,
            name: "00000007-0000-4000-8000-000000000007.png".into(),
        };
        assert!(a.find(&image).is_some());

        let mut stashed = a.stash_files(Some(dir.path().to_path_buf())).unwrap();
        assert!(stashed.0.spilled());
        let left: Vec<Entry> = a.entries().map(|e| e.to_entry()).collect();
        let others: Vec<&Entry> = before
            .iter()
            .filter(|e| !matches!(e.name, EntryName::File { .. }))
            .collect();
        assert_eq!(left.iter().collect::<Vec<_>>(), others);
        assert!(a.find(&image).is_none());
        assert!(a.find(&EntryName::Table("messages".into())).is_some());
        // Read back in order, each readable with its digest checked.
        let mut n = 0usize;
        while let Some(e) = stashed.next_entry().unwrap() {
            let want = before
                .iter()
                .filter(|e| matches!(e.name, EntryName::File { .. }))
                .nth(n)
                .unwrap();
            assert_eq!(&e, want);
            let mut body = String::new();
            a.stashed_reader(&e)
                .unwrap()
                .read_to_string(&mut body)
                .unwrap();
            assert_eq!(body, n.to_string());
            n += 1;
        }
        assert_eq!(n, 12_000);
        // The digest checked is the one recorded for the entry's position:
        // the first file's bytes under the eighth's position fail.
        let mut forged = before
            .iter()
            .find(|e| matches!(e.name, EntryName::File { .. }))
            .unwrap()
            .clone();
        forged.central.index = before
            .iter()
            .find(|e| e.name == image)
            .unwrap()
            .central
            .index;
        let mut r = a.stashed_reader(&forged).unwrap();
        assert!(std::io::copy(&mut r, &mut std::io::sink()).is_err());
        drop(r);

        a.unstash_files(stashed).unwrap();
        let after: Vec<Entry> = a.entries().map(|e| e.to_entry()).collect();
        assert_eq!(after, before);
        assert_eq!(
            a.find(&image).map(|i| a.entry(i).unwrap().to_entry().name),
            Some(image)
        );
        // The digests still line up with their entries.
        let r = crate::archive::verify::verify(
            a.reader_mut(),
            Limits::default(),
            crate::archive::verify::Depth::Deep,
        );
        assert!(r.is_ok(), "{:?}", r.problems);
    }

    #[test]
    fn fields_survive_their_scratch_encoding() {
        let f = Fields {
            index: 70_000,
            version_made_by: 0x032D,
            version_needed: 45,
            flags: 0x0808,
            method: 8,
            time: 0x1234,
            date: 0x5678,
            crc32: 0xDEAD_BEEF,
            compressed_size: 5 << 32,
            uncompressed_size: (6 << 32) + 7,
            local_offset: 8 << 33,
            external_attr: 0x81A4_0000,
            zip64: true,
            name_len: 0xFFFE,
        };
        let mut out = vec![9u8];
        f.encode(&mut out);
        assert_eq!(out.len(), 1 + Fields::ENCODED_LEN);
        assert_eq!(Fields::decode(&out[1..]), Some(f));
        assert_eq!(Fields::decode(&out[1..Fields::ENCODED_LEN]), None);
    }

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
        let names: Vec<String> = indexed
            .entries
            .iter()
            .map(|e| e.path().into_owned())
            .collect();
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
            let name = e.name();
            let (kind, part) = name.kind_and_part();
            let found: Vec<usize> = indexed
                .by_name
                .candidates(kind, part)
                .filter(|&k| indexed.entries.get(k).is_some_and(|x| x.is(&name)))
                .collect();
            assert_eq!(found, [j], "{name}");
        }
        let absent = EntryName::parse("files/avatars/zzz.png").unwrap();
        assert!(indexed
            .by_name
            .candidates(Kind::File(Bucket::Avatars), "zzz.png")
            .all(|k| indexed.entries.get(k).is_some_and(|x| !x.is(&absent))));
    }

    #[test]
    fn a_backslash_in_a_name_reads_as_a_slash_everywhere() {
        let cd = directory(&[
            "manifest.json",
            "files\\theme-assets\\b\\x.png",
            "files/theme-assets/b/x.png",
            "files/theme-assets/B/X.png",
            "files/theme-assets/b/y.png",
        ]);
        let (indexed, problems) = index_entries(cd, &Limits::default());
        let found: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert!(
            matches!(&problems[..], [
                ArchiveError::DuplicateName { entry },
                ArchiveError::CaseTwin { entry: twin, other },
            ] if entry == "files/theme-assets/b/x.png"
                && twin == "files/theme-assets/B/X.png"
                && other == "files/theme-assets/b/x.png"),
            "{found:?}"
        );
        let t = &indexed.entries;
        let e = t.get(1).unwrap();
        assert_eq!(e.raw_name(), "files\\theme-assets\\b\\x.png");
        assert_eq!(e.path(), "files/theme-assets/b/x.png");
        assert_eq!(e.file(), Some((Bucket::ThemeAssets, "b/x.png".into())));
        assert_eq!(e.central().name, "files\\theme-assets\\b\\x.png");
        let name = EntryName::File {
            bucket: Bucket::ThemeAssets,
            name: "b/x.png".into(),
        };
        assert_eq!(e.name(), name);
        assert!(e.is(&name));
        let hits = |name: &EntryName| -> Vec<usize> {
            let (kind, part) = name.kind_and_part();
            indexed
                .by_name
                .candidates(kind, part)
                .filter(|&k| t.is(k, kind, part))
                .collect()
        };
        assert_eq!(hits(&name), [1]);
        // The entry after the dropped duplicate moved down and is found there.
        let y = EntryName::File {
            bucket: Bucket::ThemeAssets,
            name: "b/y.png".into(),
        };
        assert_eq!(hits(&y), [3]);
    }
}
