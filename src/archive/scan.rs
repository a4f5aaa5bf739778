//! The central directory read as a stream, for verification: the checks
//! [`Archive::open`](super::Archive::open) makes of the directory, made
//! while its records pass by, keeping a hash of each name (8 bytes an
//! entry) instead of the records and their names; then, for deep checks,
//! the records read again in order, a batch at a time.
//!
//! The checks and the order of their problems are those of
//! `read_indexed`: names off the allowlist, duplicates and case twins (by
//! position), the entry-count and total-size limits, then each record's
//! own problems and the overlaps. Duplicates and case twins are found by
//! sorting the hashes; the names that share a hash with another are read
//! again, and only those are compared, with the same code as the reader
//! that holds the directory. Overlaps are found by comparing each record
//! with the one before it, which holds only when the directory lists the
//! entries in the order of their local headers, as every writer does: a
//! directory in another order is left to the reader that holds it
//! ([`scan_directory`] gives `None`).

use std::collections::hash_map::RandomState;
use std::collections::HashSet;
use std::io::{Read, Seek};

use super::reader::{duplicates, folded_hash, limit_problems, Located as LocatedProblems};
use super::table::{Entry, Table};
use super::ArchiveError;
use crate::container::{
    locate_directory, record_problems, CentralEntry, ContainerError, Located, Records,
};
use crate::entry_name::{classify, Kind, NameError, Shape};
use crate::Limits;

/// What one pass over the central directory found.
pub(crate) struct Scanned {
    /// Where the directory lies.
    pub(crate) at: Located,
    /// Records in the directory.
    pub(crate) records: usize,
    /// Every problem, in the order `read_indexed` reports them.
    pub(crate) problems: Vec<ArchiveError>,
    /// Positions of the records not kept (names off the allowlist and
    /// later duplicates), sorted.
    pub(crate) dropped: Vec<usize>,
    /// The first record named `manifest.json`.
    pub(crate) manifest: Option<CentralEntry>,
    /// The first record named `manifest-stats.json`.
    pub(crate) trailer: Option<CentralEntry>,
}

/// The hash two names share when they may be duplicates or (for files,
/// unless `limits` allows them) case twins: that of the folded name for
/// files, of the name for the rest.
struct SuspectHash {
    hasher: RandomState,
    fold_files: bool,
}

impl SuspectHash {
    fn of(&self, shape: &Shape, raw: &str) -> u64 {
        let part = shape.part(raw);
        match shape.kind {
            Kind::File(bucket) if self.fold_files => folded_hash(&self.hasher, bucket, &part),
            kind => Table::name_hash(&self.hasher, kind, &part),
        }
    }
}

/// The first record of a name, kept with where its space ends: the next
/// record's offset, set when that record is read.
#[derive(Default)]
struct First {
    entry: Option<CentralEntry>,
    open: bool,
}

impl First {
    fn offer(&mut self, e: impl FnOnce() -> CentralEntry) {
        if self.entry.is_none() {
            self.entry = Some(e());
            self.open = true;
        }
    }

    fn close(&mut self, space_end: u64) {
        if std::mem::take(&mut self.open) {
            if let Some(e) = &mut self.entry {
                e.space_end = space_end;
            }
        }
    }
}

/// Reads the central directory of `r` once (twice when two names share a
/// hash) and makes the checks `read_indexed` makes. `Ok(None)` when the
/// records are not in the order of their local headers; `Err` when the
/// directory itself cannot be read (as `read_indexed`).
pub(crate) fn scan_directory<R: Read + Seek>(
    r: &mut R,
    limits: &Limits,
) -> Result<Option<Scanned>, ContainerError> {
    let at = locate_directory(r, limits)?;
    let suspect = SuspectHash {
        hasher: RandomState::new(),
        fold_files: !limits.allow_case_twins,
    };
    let mut hashes: Vec<u64> = Vec::with_capacity(at.entries.min(1 << 20) as usize);
    let mut located: LocatedProblems = Vec::new();
    let mut dropped: Vec<usize> = Vec::new();
    let mut own: Vec<ContainerError> = Vec::new();
    let mut overlaps: Vec<ContainerError> = Vec::new();
    let mut prev: Option<(u64, u64)> = None;
    let mut prev_name = String::new();
    let (mut text, mut total, mut records) = (0u64, 0u64, 0usize);
    let (mut manifest, mut trailer) = (First::default(), First::default());
    {
        let mut recs = Records::new(r, at)?;
        while let Some((f, raw)) = recs.next_record()? {
            records += 1;
            total = total.saturating_add(f.uncompressed_size);
            manifest.close(f.local_offset);
            trailer.close(f.local_offset);
            record_problems(&f, at.cd_offset, || raw.to_owned(), &mut own);
            if let Some((offset, end)) = prev {
                if f.local_offset < offset {
                    return Ok(None);
                }
                if offset == f.local_offset || end > f.local_offset {
                    overlaps.push(ContainerError::Overlap {
                        entry: raw.to_owned(),
                        other: prev_name.clone(),
                    });
                }
            }
            prev = Some((f.local_offset, f.local_offset.saturating_add(f.min_span())));
            prev_name.clear();
            prev_name.push_str(raw);
            let shape = match classify(raw) {
                Ok(shape) => shape,
                Err(rule) => {
                    let name = raw.to_owned();
                    located.push((f.index, NameError { name, rule }.into()));
                    dropped.push(f.index);
                    continue;
                }
            };
            if !matches!(shape.kind, Kind::File(_)) {
                text += 1;
            }
            hashes.push(suspect.of(&shape, raw));
            let entry = || f.with_name(raw.to_owned(), 0);
            match shape.kind {
                Kind::Manifest => manifest.offer(entry),
                Kind::Trailer => trailer.offer(entry),
                _ => {}
            }
        }
    }
    manifest.close(at.cd_offset);
    trailer.close(at.cd_offset);
    hashes.sort_unstable();
    let shared: HashSet<u64> = hashes
        .chunk_by(|a, b| a == b)
        .filter(|g| g.len() > 1)
        .map(|g| g[0])
        .collect();
    drop(hashes);
    if !shared.is_empty() {
        let (found, twice) = resolve(r, at, &suspect, &shared, limits)?;
        located.extend(found);
        dropped.extend(twice);
    }
    dropped.sort_unstable();
    located.sort_by_key(|(pos, _)| *pos);
    let mut problems: Vec<ArchiveError> = located.into_iter().map(|(_, p)| p).collect();
    problems.extend(limit_problems(text, total, limits));
    problems.extend(own.into_iter().map(ArchiveError::from));
    problems.extend(overlaps.into_iter().map(ArchiveError::from));
    Ok(Some(Scanned {
        at,
        records,
        problems,
        dropped,
        manifest: manifest.entry,
        trailer: trailer.entry,
    }))
}

/// Reads the directory again for the records whose names hash to one of
/// `shared` and checks them for duplicates and case twins. Returns the
/// problems with their positions and the positions of the duplicates.
fn resolve<R: Read + Seek>(
    r: &mut R,
    at: Located,
    suspect: &SuspectHash,
    shared: &HashSet<u64>,
    limits: &Limits,
) -> Result<(LocatedProblems, Vec<usize>), ContainerError> {
    let mut names = String::new();
    let mut slots = Vec::new();
    let mut recs = Records::new(r, at)?;
    while let Some((f, raw)) = recs.next_record()? {
        if let Ok(shape) = classify(raw) {
            if shared.contains(&suspect.of(&shape, raw)) {
                slots.push(Table::new_slot(&mut names, f, raw));
            }
        }
    }
    // Every name here was classified once already: none is refused.
    let _ = Table::classify(&names, &mut slots, usize::MAX);
    let table = Table::new(slots, names);
    let mut keep = vec![true; table.len()];
    let (found, _) = duplicates(&table, &mut keep, &suspect.hasher, limits.allow_case_twins);
    let twice = keep
        .iter()
        .enumerate()
        .filter(|(_, &k)| !k)
        .filter_map(|(i, _)| table.get(i).map(|e| e.position()))
        .collect();
    Ok((found, twice))
}

/// The kept records of a scanned directory, read again in order, a batch
/// at a time, each with where its space ends (the next record's offset).
pub(crate) struct Cursor {
    at: Located,
    /// Where the next record starts: its position and the directory's
    /// bytes before it.
    next: (u64, u64),
    dropped: Vec<usize>,
    /// The last record read, waiting for the next one's offset.
    held: Option<Entry>,
    done: bool,
}

impl Cursor {
    /// A cursor over the records `scanned` kept.
    pub(crate) fn new(scanned: &Scanned) -> Cursor {
        Cursor {
            at: scanned.at,
            next: (0, 0),
            dropped: scanned.dropped.clone(),
            held: None,
            done: false,
        }
    }

    /// Up to `max` more entries (at least one unless the records are
    /// done), read from `r`.
    pub(crate) fn next_batch<R: Read + Seek>(
        &mut self,
        r: &mut R,
        max: usize,
    ) -> Result<Vec<Entry>, ContainerError> {
        let mut out = Vec::new();
        if self.done {
            return Ok(out);
        }
        let mut recs = Records::resume(r, self.at, self.next, 32 * 1024)?;
        while out.len() < max {
            let Some((f, raw)) = recs.next_record()? else {
                self.done = true;
                if let Some(mut last) = self.held.take() {
                    last.central.space_end = self.at.cd_offset;
                    out.push(last);
                }
                break;
            };
            if let Some(mut e) = self.held.take() {
                e.central.space_end = f.local_offset;
                out.push(e);
            }
            if self.dropped.binary_search(&f.index).is_ok() {
                continue;
            }
            // (Names that fail here failed the scan too: they are dropped.)
            if let Ok(shape) = classify(raw) {
                self.held = Some(Entry {
                    name: shape.name(raw),
                    central: f.with_name(raw.to_owned(), 0),
                });
            }
        }
        self.next = recs.position();
        Ok(out)
    }
}
