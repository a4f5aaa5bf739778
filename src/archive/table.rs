//! The reader's table of entries: one fixed-size slot per entry and every
//! name in one string, so a directory of 100,000 entries costs two
//! allocations instead of 200,000 (the names and the slots), and about 80
//! bytes an entry besides its name. [`EntryRef`] is the public view of
//! one slot; [`Entry`] an owned copy.

use std::borrow::Cow;
use std::hash::BuildHasher;

use crate::container::{CentralEntry, DirectoryEntry, Fields};
use crate::entry_name::{slashed, Bucket, EntryName, Kind, Shape};
use crate::spill::SpillLog;

/// One entry: its parsed name and what the central directory says of it
/// (an owned copy; [`EntryRef`] reads the same without copying).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The parsed name.
    pub name: EntryName,
    /// The central directory record.
    pub central: CentralEntry,
}

/// One entry of the table.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Slot {
    fields: Fields,
    space_end: u64,
    /// Where the raw name starts in [`Table::names`].
    name_at: usize,
    /// What the name names (a placeholder until the name is classified).
    shape: Shape,
}

impl Slot {
    /// The central directory record of this slot, whose name is in `names`.
    pub(crate) fn central(&self, names: &str) -> CentralEntry {
        self.fields
            .with_name(raw_in(names, self).to_owned(), self.space_end)
    }

    /// True when the name was classified as the trailer.
    pub(crate) fn is_trailer(&self) -> bool {
        self.shape.kind == Kind::Trailer
    }
}

impl DirectoryEntry for Slot {
    fn fields(&self) -> Fields {
        self.fields
    }

    fn set_space_end(&mut self, end: u64) {
        self.space_end = end;
    }

    fn space_end(&self) -> u64 {
        self.space_end
    }
}

/// The placeholder shape of a name not classified (yet, or ever).
const UNCLASSIFIED: Shape = Shape {
    kind: Kind::Manifest,
    start: 0,
    end: 0,
};

/// File entries set aside by [`Table::stash_files`].
pub(crate) struct Stash {
    log: SpillLog,
    /// Slots moved.
    moved: usize,
    /// Bytes of names of the whole table.
    names_len: usize,
    /// Where [`Stash::next_entry`] reads next in `log`.
    cursor: u64,
}

/// Bytes of a stash record before its name: the fields, then where the
/// entry's space ends.
const STASH_HEAD: usize = Fields::ENCODED_LEN + 8;

/// The fields and space end at the start of a stash record.
fn decode_head(b: &[u8]) -> Option<(Fields, u64)> {
    let fields = Fields::decode(b)?;
    let end = b.get(Fields::ENCODED_LEN..STASH_HEAD)?.try_into().ok()?;
    Some((fields, u64::from_le_bytes(end)))
}

/// `slot` with its raw name `raw` appended to `names`, the names of a
/// table being built.
fn placed(names: &mut String, slot: Slot, raw: &str) -> Slot {
    let name_at = names.len();
    names.push_str(raw);
    Slot { name_at, ..slot }
}

/// The name of a stash record, from its bytes, and its shape.
fn decode_name(b: &[u8]) -> std::io::Result<(&str, Shape)> {
    let raw = std::str::from_utf8(b).map_err(|_| damaged("name"))?;
    let shape = crate::entry_name::classify(raw).map_err(|_| damaged("name"))?;
    Ok((raw, shape))
}

fn damaged(what: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("a set-aside directory record is damaged ({what})"),
    )
}

impl Stash {
    /// Whether the records went to a temporary file.
    #[cfg(test)]
    pub(crate) fn spilled(&self) -> bool {
        self.log.spilled()
    }

    /// The next entry set aside, in directory order, as an owned copy;
    /// `None` after the last. Each call reads one record of the log (from
    /// its temporary file when it spilled).
    pub(crate) fn next_entry(&mut self) -> std::io::Result<Option<Entry>> {
        if self.cursor >= self.log.len() {
            return Ok(None);
        }
        let head = self.log.read_at(self.cursor, STASH_HEAD)?;
        let (fields, space_end) = decode_head(&head).ok_or_else(|| damaged("too short"))?;
        let name_at = self.cursor + STASH_HEAD as u64;
        let name = self.log.read_at(name_at, usize::from(fields.name_len))?;
        let (raw, shape) = decode_name(&name)?;
        self.cursor = name_at + u64::from(fields.name_len);
        Ok(Some(Entry {
            name: shape.name(raw),
            central: fields.with_name(raw.to_owned(), space_end),
        }))
    }
}

/// Every entry's slot, and every raw name one after the other.
#[derive(Default)]
pub(crate) struct Table {
    slots: Vec<Slot>,
    names: String,
}

impl Table {
    /// The table of `slots` whose names are in `names`.
    pub(crate) fn new(slots: Vec<Slot>, names: String) -> Table {
        Table { slots, names }
    }

    /// Appends the name of a record just read to `names` and returns the
    /// record's slot (the directory reader keeps it).
    pub(crate) fn new_slot(names: &mut String, fields: Fields, raw: &str) -> Slot {
        let slot = Slot {
            fields,
            space_end: 0,
            name_at: 0,
            shape: UNCLASSIFIED,
        };
        placed(names, slot, raw)
    }

    /// Classifies the names of `slots` (which must be this table's), on
    /// two threads when there are at least `parallel_from`. Returns the
    /// positions, in order, whose names are not on the allowlist, with the
    /// rule each broke; those keep the placeholder shape.
    pub(crate) fn classify(
        names: &str,
        slots: &mut [Slot],
        parallel_from: usize,
    ) -> Vec<(usize, crate::entry_name::NameError)> {
        fn run(names: &str, slots: &mut [Slot]) -> Vec<(usize, crate::entry_name::NameError)> {
            let mut bad = Vec::new();
            for s in slots {
                let raw = raw_in(names, s);
                match crate::entry_name::classify(raw) {
                    Ok(shape) => s.shape = shape,
                    Err(rule) => bad.push((
                        s.fields.index,
                        crate::entry_name::NameError {
                            name: raw.to_owned(),
                            rule,
                        },
                    )),
                }
            }
            bad
        }
        if slots.len() < parallel_from {
            return run(names, slots);
        }
        let (first, second) = slots.split_at_mut(slots.len() / 2);
        std::thread::scope(|s| {
            let other = s.spawn(|| run(names, second));
            let mut bad = run(names, first);
            match other.join() {
                Ok(more) => bad.extend(more),
                Err(panic) => std::panic::resume_unwind(panic),
            }
            bad
        })
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Every entry, in order.
    pub(crate) fn iter(&self) -> Entries<'_> {
        Entries::new(self)
    }

    /// Entry `i`, if there is one.
    pub(crate) fn get(&self, i: usize) -> Option<EntryRef<'_>> {
        (i < self.slots.len()).then_some(EntryRef { table: self, at: i })
    }

    fn slot(&self, i: usize) -> &Slot {
        &self.slots[i]
    }

    /// The hash the lookup by name files entry `i` under.
    pub(crate) fn hash_of(&self, hasher: &impl BuildHasher, i: usize) -> u64 {
        let s = self.slot(i);
        Table::name_hash(hasher, s.shape.kind, &self.part(s))
    }

    /// The hash of the name of kind `kind` with variable part `part`, for
    /// the lookup by name.
    pub(crate) fn name_hash(hasher: &impl BuildHasher, kind: Kind, part: &str) -> u64 {
        hasher.hash_one((kind, part))
    }

    /// True when entry `i` is `kind` with variable part `part`.
    pub(crate) fn is(&self, i: usize, kind: Kind, part: &str) -> bool {
        let s = self.slot(i);
        s.shape.kind == kind && *self.part(s) == *part
    }

    /// True when entries `a` and `b` have the same name.
    pub(crate) fn same_name(&self, a: usize, b: usize) -> bool {
        let sa = self.slot(a);
        self.is(b, sa.shape.kind, &self.part(sa))
    }

    /// The bucket and variable part of a file entry.
    pub(crate) fn file_part(&self, i: usize) -> Option<(Bucket, Cow<'_, str>)> {
        let s = self.slot(i);
        match s.shape.kind {
            Kind::File(b) => Some((b, self.part(s))),
            _ => None,
        }
    }

    /// Keeps the slots for which `keep` says true (in order).
    pub(crate) fn retain(&mut self, keep: &[bool]) {
        let mut i = 0;
        self.slots.retain(|_| {
            i += 1;
            keep.get(i - 1).copied().unwrap_or(false)
        });
    }

    /// Moves the file entries' slots into records of `log` (each its
    /// fields, where its space ends and its raw name) and returns the
    /// table of the other entries, with names of its own, and the stash
    /// [`Table::unstash`] needs. Once `self` is dropped the memory of the
    /// moved slots and names is free; with `log` spilling to a folder, the
    /// records wait on disk.
    pub(crate) fn stash_files(&self, mut log: SpillLog) -> std::io::Result<(Table, Stash)> {
        let mut slots = Vec::new();
        let mut names = String::new();
        let mut moved = 0usize;
        for s in &self.slots {
            let raw = self.raw(s);
            if matches!(s.shape.kind, Kind::File(_)) {
                log.append_with(STASH_HEAD + raw.len(), |out| {
                    s.fields.encode(out);
                    out.extend_from_slice(&s.space_end.to_le_bytes());
                    out.extend_from_slice(raw.as_bytes());
                })?;
                moved += 1;
            } else {
                slots.push(placed(&mut names, *s, raw));
            }
        }
        slots.shrink_to_fit();
        names.shrink_to_fit();
        let stash = Stash {
            log,
            moved,
            names_len: self.names.len(),
            cursor: 0,
        };
        Ok((Table::new(slots, names), stash))
    }

    /// The table [`Table::stash_files`] split: this one's slots and the
    /// stashed ones, back in their order (by position in the directory),
    /// the stashed names classified again.
    pub(crate) fn unstash(&self, mut stash: Stash) -> std::io::Result<Table> {
        let expected = self.slots.len() + stash.moved;
        let mut slots: Vec<Slot> = Vec::with_capacity(expected);
        let mut names = String::with_capacity(stash.names_len);
        let mut kept = self.slots.iter().peekable();
        stash.log.for_each_chunk(&mut |chunk| {
            let mut rest = chunk;
            while !rest.is_empty() {
                let (fields, space_end) = decode_head(rest).ok_or_else(|| damaged("too short"))?;
                let end = STASH_HEAD + usize::from(fields.name_len);
                let (raw, shape) =
                    decode_name(rest.get(STASH_HEAD..end).ok_or_else(|| damaged("name"))?)?;
                while let Some(s) = kept.next_if(|s| s.fields.index < fields.index) {
                    slots.push(placed(&mut names, *s, self.raw(s)));
                }
                let slot = Slot {
                    fields,
                    space_end,
                    name_at: 0,
                    shape,
                };
                slots.push(placed(&mut names, slot, raw));
                rest = rest.get(end..).unwrap_or_default();
            }
            Ok(())
        })?;
        for s in kept {
            slots.push(placed(&mut names, *s, self.raw(s)));
        }
        if slots.len() != expected {
            return Err(damaged("count"));
        }
        Ok(Table::new(slots, names))
    }

    fn raw(&self, s: &Slot) -> &str {
        raw_in(&self.names, s)
    }

    /// The variable part (table or file name), with `/` for `\`.
    fn part(&self, s: &Slot) -> Cow<'_, str> {
        s.shape.part(self.raw(s))
    }
}

/// The raw name of slot `s`, whose name is in `names`.
pub(crate) fn raw_in<'a>(names: &'a str, s: &Slot) -> &'a str {
    names
        .get(s.name_at..s.name_at + usize::from(s.fields.name_len))
        .unwrap_or_default()
}

/// One entry of an open archive, read in place: its name and what the
/// central directory says of it. [`EntryRef::to_entry`] makes an owned
/// [`Entry`].
#[derive(Clone, Copy)]
pub struct EntryRef<'a> {
    table: &'a Table,
    at: usize,
}

impl std::fmt::Debug for EntryRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntryRef")
            .field("name", &self.path())
            .field("position", &self.position())
            .finish_non_exhaustive()
    }
}

impl<'a> EntryRef<'a> {
    fn slot(&self) -> &'a Slot {
        &self.table.slots[self.at]
    }

    /// The parsed name (a copy; see [`EntryRef::path`] for the text).
    pub fn name(&self) -> EntryName {
        let s = self.slot();
        s.shape.name(self.table.raw(s))
    }

    /// The name as text, with `/` for any `\` of the raw name: what
    /// [`EntryName`]'s `Display` gives.
    pub fn path(&self) -> Cow<'a, str> {
        slashed(self.raw_name())
    }

    /// The name exactly as the central directory spells it.
    pub fn raw_name(&self) -> &'a str {
        self.table.raw(self.slot())
    }

    /// For a `files/` entry, its bucket and its name inside the bucket.
    pub fn file(&self) -> Option<(Bucket, Cow<'a, str>)> {
        self.table.file_part(self.at)
    }

    /// For a `database/` entry, its table name.
    pub fn table(&self) -> Option<Cow<'a, str>> {
        let s = self.slot();
        (s.shape.kind == Kind::Table).then(|| self.table.part(s))
    }

    /// For a `lancedb/` entry, its table name.
    pub fn vector_table(&self) -> Option<Cow<'a, str>> {
        let s = self.slot();
        (s.shape.kind == Kind::VectorTable).then(|| self.table.part(s))
    }

    /// True when this entry is `name`.
    pub fn is(&self, name: &EntryName) -> bool {
        let (kind, part) = name.kind_and_part();
        self.table.is(self.at, kind, part)
    }

    /// True for everything but `files/` (see [`EntryName::is_text`]).
    pub fn is_text(&self) -> bool {
        !matches!(self.slot().shape.kind, Kind::File(_))
    }

    /// True for entries whose body is NDJSON (see [`EntryName::is_ndjson`]).
    pub fn is_ndjson(&self) -> bool {
        matches!(
            self.slot().shape.kind,
            Kind::Table | Kind::VectorTable | Kind::SecretsEnvelope
        )
    }

    /// Position of this entry's record in the central directory.
    pub fn position(&self) -> usize {
        self.slot().fields.index
    }

    /// Size of the entry's bytes once inflated, as declared.
    pub fn uncompressed_size(&self) -> u64 {
        self.slot().fields.uncompressed_size
    }

    /// Size of the entry's stored bytes, as declared.
    pub fn compressed_size(&self) -> u64 {
        self.slot().fields.compressed_size
    }

    /// The declared CRC-32.
    pub fn crc32(&self) -> u32 {
        self.slot().fields.crc32
    }

    /// The compression method (0 stored, 8 deflated).
    pub fn method(&self) -> u16 {
        self.slot().fields.method
    }

    /// The whole central directory record (a copy).
    pub fn central(&self) -> CentralEntry {
        self.slot().central(&self.table.names)
    }

    /// An owned copy of this entry.
    pub fn to_entry(&self) -> Entry {
        Entry {
            name: self.name(),
            central: self.central(),
        }
    }
}

/// The entries of an archive, in central-directory order (see
/// [`crate::Archive::entries`]).
#[derive(Debug, Clone)]
pub struct Entries<'a> {
    table: &'a Table,
    next: usize,
    end: usize,
}

impl<'a> Entries<'a> {
    pub(crate) fn new(table: &'a Table) -> Entries<'a> {
        Entries {
            table,
            next: 0,
            end: table.len(),
        }
    }
}

impl<'a> Iterator for Entries<'a> {
    type Item = EntryRef<'a>;

    fn next(&mut self) -> Option<EntryRef<'a>> {
        if self.next >= self.end {
            return None;
        }
        self.next += 1;
        self.table.get(self.next - 1)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.end - self.next;
        (n, Some(n))
    }

    fn nth(&mut self, n: usize) -> Option<EntryRef<'a>> {
        self.next = self.next.saturating_add(n).min(self.end);
        self.next()
    }
}

impl DoubleEndedIterator for Entries<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.next >= self.end {
            return None;
        }
        self.end -= 1;
        self.table.get(self.end)
    }
}

impl ExactSizeIterator for Entries<'_> {}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("entries", &self.slots.len())
            .finish_non_exhaustive()
    }
}
