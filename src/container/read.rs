//! Reading: the central directory (the authority), local-header checks, and
//! a checked `Read` over one entry.

use std::io::{self, BufReader, Read, Seek, SeekFrom, Take};

use sha2::{Digest, Sha256};

use super::records::{self, *};
use super::ContainerError;
use crate::Limits;

/// Largest tail the EOCD search reads: 65,535 comment bytes plus the record.
const MAX_TAIL: u64 = 65_535 + EOCD_LEN as u64;

/// One entry as the central directory describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CentralEntry {
    /// Position in the central directory.
    pub index: usize,
    /// Name, decoded as UTF-8 (whatever bit 11 says, like the server).
    pub name: String,
    /// Version made by.
    pub version_made_by: u16,
    /// Version needed to extract.
    pub version_needed: u16,
    /// General purpose flags.
    pub flags: u16,
    /// Compression method.
    pub method: u16,
    /// DOS time.
    pub time: u16,
    /// DOS date.
    pub date: u16,
    /// CRC-32 of the uncompressed bytes.
    pub crc32: u32,
    /// Compressed size (ZIP64 value when present).
    pub compressed_size: u64,
    /// Uncompressed size (ZIP64 value when present).
    pub uncompressed_size: u64,
    /// Offset of the local header (ZIP64 value when present).
    pub local_offset: u64,
    /// External attributes.
    pub external_attr: u32,
    /// Whether sizes or offset came from a ZIP64 extra.
    pub zip64: bool,
    /// Where this entry's space ends: the next local header in offset
    /// order, or the start of the central directory.
    pub space_end: u64,
}

impl CentralEntry {
    /// True when a data descriptor follows the data.
    pub fn has_descriptor(&self) -> bool {
        self.flags & FLAG_DESCRIPTOR != 0
    }
}

/// A central record without its name: what a directory reader keeps of
/// each record when it stores names its own way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fields {
    pub(crate) index: usize,
    pub(crate) version_made_by: u16,
    pub(crate) version_needed: u16,
    pub(crate) flags: u16,
    pub(crate) method: u16,
    pub(crate) time: u16,
    pub(crate) date: u16,
    pub(crate) crc32: u32,
    pub(crate) compressed_size: u64,
    pub(crate) uncompressed_size: u64,
    pub(crate) local_offset: u64,
    pub(crate) external_attr: u32,
    pub(crate) zip64: bool,
    pub(crate) name_len: u16,
}

impl Fields {
    /// The whole record, with its name and where its space ends.
    pub(crate) fn with_name(self, name: String, space_end: u64) -> CentralEntry {
        CentralEntry {
            index: self.index,
            name,
            version_made_by: self.version_made_by,
            version_needed: self.version_needed,
            flags: self.flags,
            method: self.method,
            time: self.time,
            date: self.date,
            crc32: self.crc32,
            compressed_size: self.compressed_size,
            uncompressed_size: self.uncompressed_size,
            local_offset: self.local_offset,
            external_attr: self.external_attr,
            zip64: self.zip64,
            space_end,
        }
    }

    /// The smallest number of bytes the entry occupies from its local header.
    pub(crate) fn min_span(&self) -> u64 {
        LOCAL_LEN as u64 + u64::from(self.name_len) + self.compressed_size
    }

    /// Where the entry's smallest span ends (`None` past `u64::MAX`).
    pub(crate) fn end(&self) -> Option<u64> {
        self.local_offset.checked_add(self.min_span())
    }

    /// Bytes of [`Fields::encode`]'s output.
    pub(crate) const ENCODED_LEN: usize = 55;

    /// Appends the fields to `out` in a fixed little-endian layout of
    /// [`Fields::ENCODED_LEN`] bytes, for a process's own scratch records
    /// (never a format: [`Fields::decode`] reads it back).
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.index as u64).to_le_bytes());
        for v in [
            self.version_made_by,
            self.version_needed,
            self.flags,
            self.method,
            self.time,
            self.date,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&self.crc32.to_le_bytes());
        for v in [
            self.compressed_size,
            self.uncompressed_size,
            self.local_offset,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&self.external_attr.to_le_bytes());
        out.push(u8::from(self.zip64));
        out.extend_from_slice(&self.name_len.to_le_bytes());
    }

    /// The fields [`Fields::encode`] wrote at the start of `b`, or `None`
    /// when `b` is too short.
    pub(crate) fn decode(b: &[u8]) -> Option<Fields> {
        let b = b.get(..Self::ENCODED_LEN)?;
        let u16_at = |i: usize| Some(u16::from_le_bytes(b.get(i..i + 2)?.try_into().ok()?));
        let u32_at = |i: usize| Some(u32::from_le_bytes(b.get(i..i + 4)?.try_into().ok()?));
        let u64_at = |i: usize| Some(u64::from_le_bytes(b.get(i..i + 8)?.try_into().ok()?));
        Some(Fields {
            index: usize::try_from(u64_at(0)?).ok()?,
            version_made_by: u16_at(8)?,
            version_needed: u16_at(10)?,
            flags: u16_at(12)?,
            method: u16_at(14)?,
            time: u16_at(16)?,
            date: u16_at(18)?,
            crc32: u32_at(20)?,
            compressed_size: u64_at(24)?,
            uncompressed_size: u64_at(32)?,
            local_offset: u64_at(40)?,
            external_attr: u32_at(48)?,
            zip64: *b.get(52)? != 0,
            name_len: u16_at(53)?,
        })
    }
}

/// What the directory reader needs of the entries it keeps: their
/// record's fields, and a place for where each one's space ends.
pub(crate) trait DirectoryEntry {
    /// The record's fields.
    fn fields(&self) -> Fields;
    /// Records where the entry's space ends.
    fn set_space_end(&mut self, end: u64);
    /// Where the entry's space ends, as last set.
    fn space_end(&self) -> u64;
}

impl DirectoryEntry for CentralEntry {
    fn fields(&self) -> Fields {
        Fields {
            index: self.index,
            version_made_by: self.version_made_by,
            version_needed: self.version_needed,
            flags: self.flags,
            method: self.method,
            time: self.time,
            date: self.date,
            crc32: self.crc32,
            compressed_size: self.compressed_size,
            uncompressed_size: self.uncompressed_size,
            local_offset: self.local_offset,
            external_attr: self.external_attr,
            zip64: self.zip64,
            name_len: u16::try_from(self.name.len()).unwrap_or(u16::MAX),
        }
    }

    fn set_space_end(&mut self, end: u64) {
        self.space_end = end;
    }

    fn space_end(&self) -> u64 {
        self.space_end
    }
}

/// The located and parsed central directory of an archive. Its entries
/// are [`CentralEntry`] records (inside the crate, whatever the reader of
/// the directory made of each record as it was read).
#[derive(Debug, Clone)]
pub struct CentralDirectory<E = CentralEntry> {
    /// Entries in central-directory order.
    pub entries: Vec<E>,
    /// Archive file length.
    pub file_len: u64,
    /// Offset of the central directory.
    pub cd_offset: u64,
    /// Size of the central directory.
    pub cd_size: u64,
    /// Whether the archive uses the ZIP64 end records.
    pub zip64: bool,
}

fn rec(context: &str) -> impl FnOnce(RecordError) -> ContainerError + '_ {
    move |source| ContainerError::Record {
        context: context.to_owned(),
        source,
    }
}

fn read_exact_at<R: Read + Seek>(r: &mut R, at: u64, buf: &mut [u8]) -> Result<(), ContainerError> {
    r.seek(SeekFrom::Start(at))?;
    r.read_exact(buf)?;
    Ok(())
}

impl CentralDirectory {
    /// Locates the end records the way the server does (FORMAT.md §1.4),
    /// then reads and parses every central header, within `limits`.
    ///
    /// Structural problems (no end record, bounds, counts) are errors here;
    /// per-entry problems (method, encryption, overlap) are left to
    /// [`CentralDirectory::entry_problems`] so a verifier can list them all.
    pub fn read<R: Read + Seek>(
        r: &mut R,
        limits: &Limits,
    ) -> Result<CentralDirectory, ContainerError> {
        read_directory(r, limits, |f, name| f.with_name(name.to_owned(), 0))
    }
}

/// Where an archive's central directory lies, as its end records say,
/// checked against the file's length and the limits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Located {
    /// The archive's length.
    pub(crate) file_len: u64,
    /// Offset of the central directory.
    pub(crate) cd_offset: u64,
    /// Size of the central directory.
    pub(crate) cd_size: u64,
    /// Records the end records declare.
    pub(crate) entries: u64,
    /// Whether the ZIP64 end records are used.
    pub(crate) zip64: bool,
}

/// Locates the end records the way the server does (FORMAT.md §1.4) and
/// checks what they declare against the file and `limits`.
pub(crate) fn locate_directory<R: Read + Seek>(
    r: &mut R,
    limits: &Limits,
) -> Result<Located, ContainerError> {
    let file_len = r.seek(SeekFrom::End(0))?;
    if file_len > limits.max_archive_bytes {
        return Err(ContainerError::ArchiveTooLarge {
            size: file_len,
            limit: limits.max_archive_bytes,
        });
    }
    let mut magic = [0u8; 4];
    if file_len < 4 {
        return Err(ContainerError::NotZip);
    }
    read_exact_at(r, 0, &mut magic)?;
    if u32::from_le_bytes(magic) != LOCAL_SIG {
        return Err(ContainerError::NotZip);
    }
    let tail_len = file_len.min(MAX_TAIL);
    let tail_start = file_len - tail_len;
    let mut tail = vec![0u8; tail_len as usize];
    read_exact_at(r, tail_start, &mut tail)?;
    let candidates = eocd_candidates(&tail);
    let pos_in_tail = match candidates.as_slice() {
        [] => return Err(ContainerError::NoEocd),
        [one] => *one,
        many => return Err(ContainerError::AmbiguousEocd { count: many.len() }),
    };
    let eocd_pos = tail_start + pos_in_tail as u64;
    let eocd = parse_eocd(&tail[pos_in_tail..]).map_err(rec("end of central directory"))?;

    let (entries, cd_size, cd_offset, records_start, zip64) = if eocd.wants_zip64() {
        if eocd_pos < LOCATOR_LEN as u64 {
            return Err(ContainerError::Record {
                context: "ZIP64 locator".into(),
                source: RecordError::Truncated {
                    record: "ZIP64 locator",
                    needed: LOCATOR_LEN,
                    available: eocd_pos as usize,
                },
            });
        }
        let loc_pos = eocd_pos - LOCATOR_LEN as u64;
        let mut lb = [0u8; LOCATOR_LEN];
        read_exact_at(r, loc_pos, &mut lb)?;
        let loc = parse_zip64_locator(&lb).map_err(rec("ZIP64 locator"))?;
        let rec_end = loc.record_offset.checked_add(ZIP64_EOCD_LEN as u64);
        if rec_end.is_none_or(|end| end > loc_pos) {
            return Err(ContainerError::Record {
                context: "ZIP64 end of central directory".into(),
                source: RecordError::Truncated {
                    record: "ZIP64 end of central directory (offset points outside the archive)",
                    needed: ZIP64_EOCD_LEN,
                    available: 0,
                },
            });
        }
        let mut zb = [0u8; ZIP64_EOCD_LEN];
        read_exact_at(r, loc.record_offset, &mut zb)?;
        let z = parse_zip64_eocd(&zb).map_err(rec("ZIP64 end of central directory"))?;
        let checks = [
            (
                "entry count",
                z.entries,
                u64::from(eocd.entries),
                eocd.entries != SENTINEL16,
            ),
            (
                "directory size",
                z.cd_size,
                u64::from(eocd.cd_size),
                eocd.cd_size != SENTINEL32,
            ),
            (
                "directory offset",
                z.cd_offset,
                u64::from(eocd.cd_offset),
                eocd.cd_offset != SENTINEL32,
            ),
        ];
        for (field, zip64, classic, applies) in checks {
            if applies && zip64 != classic {
                return Err(ContainerError::Zip64Mismatch {
                    field,
                    zip64,
                    classic,
                });
            }
        }
        (z.entries, z.cd_size, z.cd_offset, loc.record_offset, true)
    } else {
        (
            u64::from(eocd.entries),
            u64::from(eocd.cd_size),
            u64::from(eocd.cd_offset),
            eocd_pos,
            false,
        )
    };

    if entries > limits.max_entries {
        return Err(ContainerError::TooManyEntries {
            declared: entries,
            limit: limits.max_entries,
        });
    }
    if cd_size > limits.max_central_directory_bytes {
        return Err(ContainerError::CentralDirectoryTooLarge {
            size: cd_size,
            limit: limits.max_central_directory_bytes,
        });
    }
    match cd_offset.checked_add(cd_size) {
        Some(end) if end <= records_start => {}
        _ => {
            return Err(ContainerError::CentralDirectoryOutOfBounds {
                offset: cd_offset,
                size: cd_size,
            })
        }
    }
    if entries.saturating_mul(CENTRAL_LEN as u64) > cd_size {
        return Err(ContainerError::CentralDirectoryMismatch {
            declared: entries,
            size: cd_size,
        });
    }

    Ok(Located {
        file_len,
        cd_offset,
        cd_size,
        entries,
        zip64,
    })
}

/// The records of a located central directory, one at a time, in order,
/// read through a buffer (nothing of a record is kept once the next one
/// is read).
pub(crate) struct Records<'r, R> {
    cd: BufReader<Take<&'r mut R>>,
    at: Located,
    index: u64,
    consumed: u64,
    var: Vec<u8>,
}

impl<'r, R: Read + Seek> Records<'r, R> {
    /// The records of the directory `at` locates in `r`.
    pub(crate) fn new(r: &'r mut R, at: Located) -> Result<Records<'r, R>, ContainerError> {
        Records::resume(r, at, (0, 0), 256 * 1024)
    }

    /// The records from the one at `(index, consumed)` (a
    /// [`Records::position`]), read through a buffer of `buffer` bytes.
    pub(crate) fn resume(
        r: &'r mut R,
        at: Located,
        (index, consumed): (u64, u64),
        buffer: usize,
    ) -> Result<Records<'r, R>, ContainerError> {
        r.seek(SeekFrom::Start(at.cd_offset.saturating_add(consumed)))?;
        Ok(Records {
            cd: BufReader::with_capacity(buffer, r.take(at.cd_size.saturating_sub(consumed))),
            at,
            index,
            consumed,
            var: Vec::new(),
        })
    }
}

impl<R: Read> Records<'_, R> {
    fn mismatch(&self) -> ContainerError {
        ContainerError::CentralDirectoryMismatch {
            declared: self.at.entries,
            size: self.at.cd_size,
        }
    }

    /// Where the next record starts: its position in the directory and
    /// the directory's bytes before it.
    pub(crate) fn position(&self) -> (u64, u64) {
        (self.index, self.consumed)
    }

    /// The next record's fields and name; `None` after the last, once the
    /// records are found to fill the directory exactly.
    pub(crate) fn next_record(&mut self) -> Result<Option<(Fields, &str)>, ContainerError> {
        if self.index >= self.at.entries {
            if self.consumed != self.at.cd_size {
                return Err(self.mismatch());
            }
            return Ok(None);
        }
        let index = usize::try_from(self.index).map_err(|_| self.mismatch())?;
        let mut fixed = [0u8; CENTRAL_LEN];
        if let Err(e) = self.cd.read_exact(&mut fixed) {
            return Err(if e.kind() == io::ErrorKind::UnexpectedEof {
                self.mismatch()
            } else {
                e.into()
            });
        }
        let h = parse_central_fixed(&fixed).map_err(|source| ContainerError::Record {
            context: format!("central directory header #{index}"),
            source,
        })?;
        self.var.resize(h.total_len() - CENTRAL_LEN, 0);
        if self.cd.read_exact(&mut self.var).is_err() {
            return Err(self.mismatch());
        }
        self.consumed += h.total_len() as u64;
        self.index += 1;
        let nl = usize::from(h.name_len);
        let name_bytes = &self.var[..nl];
        let extra = &self.var[nl..nl + usize::from(h.extra_len)];
        let name = match std::str::from_utf8(name_bytes) {
            Ok(s) => s,
            Err(_) => {
                return Err(ContainerError::NameNotUtf8 {
                    index,
                    lossy: String::from_utf8_lossy(name_bytes).into_owned(),
                })
            }
        };
        let wants = (
            h.uncompressed_size == SENTINEL32,
            h.compressed_size == SENTINEL32,
            h.local_offset == SENTINEL32,
        );
        // Like the server: the extra is consulted only when it exists and
        // a field holds the sentinel. Unlike the server, a sentinel with
        // no ZIP64 block is an error rather than a 4 GiB size.
        let z = if wants.0 || wants.1 || wants.2 {
            parse_zip64_extra(extra, wants.0, wants.1, wants.2).map_err(|source| {
                ContainerError::Record {
                    context: format!("entry {name}"),
                    source,
                }
            })?
        } else {
            Zip64Values::default()
        };
        let fields = Fields {
            index,
            version_made_by: h.version_made_by,
            version_needed: h.version_needed,
            flags: h.flags,
            method: h.method,
            time: h.time,
            date: h.date,
            crc32: h.crc32,
            compressed_size: z.compressed.unwrap_or(u64::from(h.compressed_size)),
            uncompressed_size: z.uncompressed.unwrap_or(u64::from(h.uncompressed_size)),
            local_offset: z.offset.unwrap_or(u64::from(h.local_offset)),
            external_attr: h.external_attr,
            zip64: z != Zip64Values::default(),
            name_len: h.name_len,
        };
        Ok(Some((fields, name)))
    }
}

/// [`CentralDirectory::read`], handing each record's fields and name to
/// `make` as soon as they are parsed and keeping what it returns (each
/// entry's space end is set at the end).
pub(crate) fn read_directory<E: DirectoryEntry, R: Read + Seek>(
    r: &mut R,
    limits: &Limits,
    mut make: impl FnMut(Fields, &str) -> E,
) -> Result<CentralDirectory<E>, ContainerError> {
    let at = locate_directory(r, limits)?;
    let Located {
        file_len,
        cd_offset,
        cd_size,
        entries,
        zip64,
    } = at;
    // Sized once (the count is bounded by the directory's size and the
    // limits above; a count that lies costs address space, not memory).
    let mut out: Vec<E> = Vec::with_capacity(entries.min(1 << 20) as usize);
    let mut records = Records::new(r, at)?;
    while let Some((fields, name)) = records.next_record()? {
        out.push(make(fields, name));
    }
    // Each entry's space ends where the next local header (by offset)
    // begins; the last one's, where the directory begins. Writers list
    // entries in the order they wrote them, so the directory is usually
    // in offset order already and needs no sorted copy.
    let in_order = out
        .windows(2)
        .all(|w| w[0].fields().local_offset <= w[1].fields().local_offset);
    if in_order {
        for i in 1..out.len() {
            let next = out[i].fields().local_offset;
            out[i - 1].set_space_end(next);
        }
        if let Some(last) = out.last_mut() {
            last.set_space_end(cd_offset);
        }
    } else {
        let order = by_offset(&out);
        for w in order.windows(2) {
            out[w[0].1].set_space_end(w[1].0);
        }
        if let Some(&(_, last)) = order.last() {
            out[last].set_space_end(cd_offset);
        }
    }
    Ok(CentralDirectory {
        entries: out,
        file_len,
        cd_offset,
        cd_size,
        zip64,
    })
}

/// [`CentralDirectory::entry_problems`] of any directory, naming each
/// entry with `name_of`. `spaces_set`: the entries' space ends are the
/// ones [`read_directory`] set.
pub(crate) fn directory_problems<E: DirectoryEntry>(
    cd: &CentralDirectory<E>,
    spaces_set: bool,
    name_of: impl Fn(&E) -> String,
) -> Vec<ContainerError> {
    let mut problems = Vec::new();
    for e in &cd.entries {
        record_problems(&e.fields(), cd.cd_offset, || name_of(e), &mut problems);
    }
    // When the space ends are the ones `read_directory` set (each entry's
    // is the next one's offset in this same order), an entry that fits in
    // its space overlaps nothing: the sort is needed only when one does
    // not (or, for a directory built by hand, always).
    let fits = |e: &E| {
        let f = e.fields();
        f.local_offset.saturating_add(f.min_span()) <= e.space_end()
    };
    if spaces_set && cd.entries.iter().all(fits) {
        return problems;
    }
    let order = by_offset(&cd.entries);
    for w in order.windows(2) {
        let (a, b) = (&cd.entries[w[0].1], &cd.entries[w[1].1]);
        let (fa, fb) = (a.fields(), b.fields());
        let a_end = fa.local_offset.saturating_add(fa.min_span());
        if fa.local_offset == fb.local_offset || a_end > fb.local_offset {
            problems.push(ContainerError::Overlap {
                entry: name_of(b),
                other: name_of(a),
            });
        }
    }
    problems
}

/// The problems one record shows alone, appended to `out`: the encrypted
/// flag, a method other than stored or deflated, and data that does not
/// fit before the central directory (at `cd_offset`). `name` names it.
pub(crate) fn record_problems(
    f: &Fields,
    cd_offset: u64,
    name: impl Fn() -> String,
    out: &mut Vec<ContainerError>,
) {
    if f.flags & FLAG_ENCRYPTED != 0 {
        out.push(ContainerError::Encrypted { entry: name() });
    }
    if f.method != METHOD_STORED && f.method != METHOD_DEFLATED {
        out.push(ContainerError::UnsupportedMethod {
            entry: name(),
            method: f.method,
        });
    }
    if f.end().is_none_or(|end| end > cd_offset) {
        out.push(ContainerError::OutOfBounds {
            entry: name(),
            limit: cd_offset,
        });
    }
}

/// Positions of `entries` with their local offsets, in offset order
/// (ties in directory order).
fn by_offset<E: DirectoryEntry>(entries: &[E]) -> Vec<(u64, usize)> {
    let mut order: Vec<(u64, usize)> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| (e.fields().local_offset, i))
        .collect();
    order.sort_unstable();
    order
}

impl CentralDirectory {
    /// Per-entry problems visible from the central directory alone: the
    /// encrypted flag, unsupported methods, data outside the archive and
    /// overlapping entries. Every problem is listed.
    pub fn entry_problems(&self) -> Vec<ContainerError> {
        directory_problems(self, false, |e| e.name.clone())
    }
}

/// What the local header says, once checked against the central entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalInfo {
    /// Offset of the first data byte.
    pub data_start: u64,
    /// Offset one past the last data byte.
    pub data_end: u64,
}

/// Positions `r` at the data of the entry whose local header
/// [`check_local`] just read. That read ends where the data starts, so
/// usually nothing moves: seeking anyway would make a `BufReader` drop
/// its buffer and read it again for every entry (for thousands of small
/// files, many times the archive's size).
pub fn seek_to_data<R: Seek>(r: &mut R, info: &LocalInfo) -> io::Result<()> {
    if r.stream_position()? != info.data_start {
        r.seek(SeekFrom::Start(info.data_start))?;
    }
    Ok(())
}

/// Reads and checks the local header of `e`: signature, name, method,
/// flags, and (without a descriptor) CRC and sizes; then that the data fits
/// in the entry's space.
pub fn check_local<R: Read + Seek>(
    r: &mut R,
    e: &CentralEntry,
) -> Result<LocalInfo, ContainerError> {
    let mut fixed = [0u8; LOCAL_LEN];
    r.seek(SeekFrom::Start(e.local_offset))?;
    r.read_exact(&mut fixed)
        .map_err(|_| ContainerError::OutOfBounds {
            entry: e.name.clone(),
            limit: e.space_end,
        })?;
    let l = parse_local_fixed(&fixed).map_err(|source| ContainerError::Record {
        context: format!("entry {}", e.name),
        source,
    })?;
    let mut var = vec![0u8; usize::from(l.name_len) + usize::from(l.extra_len)];
    r.read_exact(&mut var)
        .map_err(|_| ContainerError::OutOfBounds {
            entry: e.name.clone(),
            limit: e.space_end,
        })?;
    let (lname, lextra) = var.split_at(usize::from(l.name_len));
    let mismatch =
        |field: &'static str, central: String, local: String| ContainerError::LocalMismatch {
            entry: e.name.clone(),
            field,
            central,
            local,
        };
    if lname != e.name.as_bytes() {
        return Err(mismatch(
            "name",
            e.name.clone(),
            String::from_utf8_lossy(lname).into_owned(),
        ));
    }
    if l.method != e.method {
        return Err(mismatch(
            "method",
            e.method.to_string(),
            l.method.to_string(),
        ));
    }
    if l.flags != e.flags {
        return Err(mismatch(
            "flags",
            format!("{:#06x}", e.flags),
            format!("{:#06x}", l.flags),
        ));
    }
    if e.flags & FLAG_DESCRIPTOR == 0 {
        if l.crc32 != e.crc32 {
            return Err(mismatch(
                "CRC-32",
                format!("{:#010x}", e.crc32),
                format!("{:#010x}", l.crc32),
            ));
        }
        let z = parse_zip64_extra(
            lextra,
            l.uncompressed_size == SENTINEL32,
            l.compressed_size == SENTINEL32,
            false,
        )
        .map_err(|source| ContainerError::Record {
            context: format!("entry {} (local header)", e.name),
            source,
        })?;
        let lc = z.compressed.unwrap_or(u64::from(l.compressed_size));
        let lu = z.uncompressed.unwrap_or(u64::from(l.uncompressed_size));
        if lc != e.compressed_size {
            return Err(mismatch(
                "compressed size",
                e.compressed_size.to_string(),
                lc.to_string(),
            ));
        }
        if lu != e.uncompressed_size {
            return Err(mismatch(
                "uncompressed size",
                e.uncompressed_size.to_string(),
                lu.to_string(),
            ));
        }
    }
    let data_start = e.local_offset + LOCAL_LEN as u64 + var.len() as u64;
    let data_end = data_start.checked_add(e.compressed_size);
    match data_end {
        Some(end) if end <= e.space_end => Ok(LocalInfo {
            data_start,
            data_end: end,
        }),
        _ => Err(ContainerError::OutOfBounds {
            entry: e.name.clone(),
            limit: e.space_end,
        }),
    }
}

/// Reads the data descriptor after an entry's data and compares it with the
/// central directory. The server never looks at descriptors; lvbak's deep
/// verify does.
pub fn check_descriptor<R: Read + Seek>(
    r: &mut R,
    e: &CentralEntry,
    info: LocalInfo,
) -> Result<(), ContainerError> {
    if !e.has_descriptor() {
        return Ok(());
    }
    let zip64 =
        e.compressed_size > u64::from(u32::MAX) || e.uncompressed_size > u64::from(u32::MAX);
    let want = if zip64 { 24 } else { 16 };
    let room = e.space_end.saturating_sub(info.data_end).min(want);
    let mut b = vec![0u8; room as usize];
    r.seek(SeekFrom::Start(info.data_end))?;
    r.read_exact(&mut b)?;
    let d = records::parse_descriptor(&b, zip64).map_err(|source| ContainerError::Record {
        context: format!("entry {} (data descriptor)", e.name),
        source,
    })?;
    let bad = |field| ContainerError::DescriptorMismatch {
        entry: e.name.clone(),
        field,
    };
    if d.crc32 != e.crc32 {
        return Err(bad("CRC-32"));
    }
    if d.compressed_size != e.compressed_size {
        return Err(bad("compressed size"));
    }
    if d.uncompressed_size != e.uncompressed_size {
        return Err(bad("uncompressed size"));
    }
    Ok(())
}

/// Which bytes of an entry a recorded digest is the SHA-256 of
/// (FORMAT.md §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestOf {
    /// The entry's uncompressed bytes (field versions 1 and 2 of lvbak's
    /// trailer field).
    Content,
    /// The entry's stored bytes: its data as it lies in the archive,
    /// compressed or not, between the local header and the data
    /// descriptor (field version 3, which lvbak writes).
    Stored,
}

/// An entry's stored bytes as they are read from the archive, hashed on
/// the way when a digest of them is expected, or kept aside for a caller
/// that hashes them elsewhere ([`EntryReader::take_sha256_check`]).
struct Raw<'a, R: Read> {
    inner: Take<&'a mut R>,
    sha: Option<Sha256>,
    tee: Option<Box<Tee<'a>>>,
}

/// Stored bytes kept aside: taken by the caller after each read
/// ([`EntryReader::take_stored`]), or handed to `sink` whenever
/// [`TEE_LIMIT`] of them pile up within one read (a deflate stream of much
/// input and little output), so they never take more memory than that.
struct Tee<'a> {
    buf: Vec<u8>,
    sink: StoredSink<'a>,
}

/// See [`Tee`].
const TEE_LIMIT: usize = 256 * 1024;

/// Where [`EntryReader::take_sha256_check`] sends an entry's stored bytes.
pub(crate) type StoredSink<'a> = Box<dyn FnMut(&[u8]) + Send + 'a>;

impl<R: Read> Read for Raw<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(read) = buf.get(..n) {
            if let Some(h) = &mut self.sha {
                h.update(read);
            }
            if let Some(t) = &mut self.tee {
                t.buf.extend_from_slice(read);
                if t.buf.len() >= TEE_LIMIT {
                    (t.sink)(&t.buf);
                    t.buf.clear();
                }
            }
        }
        Ok(n)
    }
}

/// The checks made once an entry is read to its end, in the order every
/// reader makes them (the entry reader, and deep verify's checking thread):
/// the CRC-32 against the declared one, then the SHA-256 against the
/// recorded digest.
pub(crate) fn end_checks(
    entry: &str,
    crc: Option<(crc32fast::Hasher, u32)>,
    sha: Option<(Sha256, [u8; 32])>,
) -> Result<(), ContainerError> {
    if let Some((h, declared)) = crc {
        let computed = h.finalize();
        if computed != declared {
            return Err(ContainerError::CrcMismatch {
                entry: entry.to_owned(),
                declared,
                computed,
            });
        }
    }
    if let Some((h, want)) = sha {
        let got: [u8; 32] = h.finalize().into();
        if !bool::from(subtle::ConstantTimeEq::ct_eq(&got[..], &want[..])) {
            return Err(ContainerError::DigestMismatch {
                entry: entry.to_owned(),
            });
        }
    }
    Ok(())
}

enum Body<'a, R: Read> {
    Stored(BufReader<Raw<'a, R>>),
    Deflated(Box<flate2::bufread::DeflateDecoder<BufReader<Raw<'a, R>>>>),
}

impl<'a, R: Read> Body<'a, R> {
    fn raw(&mut self) -> &mut BufReader<Raw<'a, R>> {
        match self {
            Body::Stored(s) => s,
            Body::Deflated(d) => d.get_mut(),
        }
    }
}

/// The SHA-256 an [`EntryReader`] checks at the end, and over which bytes.
enum Expected {
    /// The uncompressed bytes, hashed here as they are produced.
    Content(Sha256, [u8; 32]),
    /// The stored bytes, hashed by [`Raw`] as they are read.
    Stored([u8; 32]),
}

/// A `Read` over one entry's uncompressed bytes that checks, as it goes,
/// that no more than the declared size comes out, and at the end that the
/// size, the CRC-32 and (when known) the SHA-256 match. A mismatch is an
/// `io::Error` of kind `InvalidData` carrying a [`ContainerError`]
/// (recover it with [`ContainerError::from_io`]).
pub struct EntryReader<'a, R: Read> {
    body: Body<'a, R>,
    name: String,
    declared_size: u64,
    declared_crc: u32,
    produced: u64,
    /// The CRC-32 of the bytes produced so far, unless it is not checked.
    crc: Option<crc32fast::Hasher>,
    sha: Option<Expected>,
    done: bool,
    local: LocalInfo,
}

impl<'a, R: Read + Seek> EntryReader<'a, R> {
    /// Checks the local header of `e` and positions a reader on its data.
    pub fn new(r: &'a mut R, e: &CentralEntry) -> Result<EntryReader<'a, R>, ContainerError> {
        if e.flags & FLAG_ENCRYPTED != 0 {
            return Err(ContainerError::Encrypted {
                entry: e.name.clone(),
            });
        }
        let info = check_local(r, e)?;
        seek_to_data(r, &info)?;
        let cap = e.compressed_size.clamp(1, 64 * 1024) as usize;
        let raw = BufReader::with_capacity(
            cap,
            Raw {
                inner: r.take(e.compressed_size),
                sha: None,
                tee: None,
            },
        );
        let body = match e.method {
            METHOD_STORED => Body::Stored(raw),
            METHOD_DEFLATED => Body::Deflated(Box::new(flate2::bufread::DeflateDecoder::new(raw))),
            method => {
                return Err(ContainerError::UnsupportedMethod {
                    entry: e.name.clone(),
                    method,
                })
            }
        };
        Ok(EntryReader {
            body,
            name: e.name.clone(),
            declared_size: e.uncompressed_size,
            declared_crc: e.crc32,
            produced: 0,
            crc: Some(crc32fast::Hasher::new()),
            sha: None,
            done: false,
            local: info,
        })
    }
}

impl<'a, R: Read> EntryReader<'a, R> {
    /// Also checks the SHA-256 of the uncompressed bytes at the end
    /// (digests of field versions 1 and 2). Call it before the first read.
    pub fn expect_sha256(&mut self, digest: [u8; 32]) {
        self.body.raw().get_mut().sha = None;
        self.sha = Some(Expected::Content(Sha256::new(), digest));
    }

    /// Also checks, at the end, the SHA-256 of the entry's stored bytes
    /// (compressed or not, as they lie in the archive: digests of field
    /// version 3). Call it before the first read.
    pub fn expect_stored_sha256(&mut self, digest: [u8; 32]) {
        self.body.raw().get_mut().sha = Some(Sha256::new());
        self.sha = Some(Expected::Stored(digest));
    }

    /// Takes the SHA-256 check away from this reader, returning which
    /// bytes it covers and the expected digest: the caller hashes the bytes
    /// itself (deep verify does it on another thread) and must compare at
    /// the end. For a digest of the stored bytes, this reader keeps them
    /// aside as it reads them: take them with [`EntryReader::take_stored`]
    /// after each read; any that pile up within one read go to `stored`
    /// first, in order (until [`EntryReader::stop_forwarding`]).
    pub(crate) fn take_sha256_check(
        &mut self,
        stored: StoredSink<'a>,
    ) -> Option<(DigestOf, [u8; 32])> {
        match self.sha.take()? {
            Expected::Content(_, want) => Some((DigestOf::Content, want)),
            Expected::Stored(want) => {
                let raw = self.body.raw().get_mut();
                raw.sha = None;
                raw.tee = Some(Box::new(Tee {
                    buf: Vec::new(),
                    sink: stored,
                }));
                Some((DigestOf::Stored, want))
            }
        }
    }

    /// Drops the sink [`EntryReader::take_sha256_check`] was given (and
    /// whatever it holds, such as a channel's sender).
    pub(crate) fn stop_forwarding(&mut self) {
        self.body.raw().get_mut().tee = None;
    }

    /// Moves the stored bytes kept aside since the last call (see
    /// [`EntryReader::take_sha256_check`]) to the end of `out`.
    pub(crate) fn take_stored(&mut self, out: &mut Vec<u8>) {
        if let Some(t) = &mut self.body.raw().get_mut().tee {
            if out.is_empty() {
                std::mem::swap(out, &mut t.buf);
            } else {
                out.append(&mut t.buf);
            }
        }
    }

    /// Takes the CRC-32 check away from this reader, returning the declared
    /// CRC-32 (`None` when it was not to be checked): the caller computes
    /// it over the uncompressed bytes and must compare at the end, before
    /// the SHA-256.
    pub(crate) fn take_crc_check(&mut self) -> Option<u32> {
        self.crc.take().map(|_| self.declared_crc)
    }

    /// Skips the CRC-32 check (the server never checks CRCs; `repair` needs this).
    pub fn skip_crc_check(&mut self) {
        self.crc = None;
    }

    /// The declared uncompressed size.
    pub fn declared_size(&self) -> u64 {
        self.declared_size
    }

    /// Where the entry's local header says its data starts and ends.
    pub fn local_info(&self) -> LocalInfo {
        self.local
    }

    /// Reads to the end, discarding the bytes, and returns the byte count.
    pub fn drain(&mut self) -> Result<u64, ContainerError> {
        self.drain_with(&mut vec![0u8; 64 * 1024])
    }

    /// [`EntryReader::drain`] through the caller's buffer (reused across
    /// entries, it is not allocated and cleared for each one).
    pub fn drain_with(&mut self, buf: &mut [u8]) -> Result<u64, ContainerError> {
        if buf.is_empty() {
            return self.drain();
        }
        loop {
            match self.read(buf) {
                Ok(0) => return Ok(self.produced),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ContainerError::from_io(e)),
            }
        }
    }

    fn fail(&mut self, e: ContainerError) -> io::Error {
        self.done = true;
        e.into_io()
    }

    fn finish(&mut self) -> io::Result<()> {
        self.done = true;
        if self.produced != self.declared_size {
            return Err(ContainerError::SizeMismatch {
                entry: self.name.clone(),
                declared: self.declared_size,
                found: self.produced.to_string(),
            }
            .into_io());
        }
        // Compressed bytes the decoder did not use mean a lying compressed size.
        let leftover = match &mut self.body {
            Body::Stored(_) => 0,
            Body::Deflated(d) => {
                let inner = d.get_mut();
                let buffered = inner.buffer().len() as u64;
                buffered + inner.get_ref().inner.limit()
            }
        };
        if leftover != 0 {
            return Err(ContainerError::Deflate {
                entry: self.name.clone(),
                message: format!(
                    "{leftover} compressed bytes left after the end of the deflate stream"
                ),
            }
            .into_io());
        }
        let crc = self.crc.take().map(|h| (h, self.declared_crc));
        let sha = match self.sha.take() {
            None => None,
            Some(Expected::Content(h, want)) => Some((h, want)),
            Some(Expected::Stored(want)) => {
                let h = self.body.raw().get_mut().sha.take();
                Some((h.unwrap_or_default(), want))
            }
        };
        end_checks(&self.name, crc, sha).map_err(ContainerError::into_io)
    }
}

impl<R: Read> Read for EntryReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        // Never produce more than declared + 1 bytes: the +1 detects a lie
        // without inflating a bomb. Up to the declared size first, then
        // that one byte, so the bytes delivered before a size problem are
        // the declared ones whatever the caller's buffer (a read crossing
        // the declared size fails whole).
        let room = match self.declared_size.saturating_sub(self.produced) {
            0 => 1,
            left => left,
        };
        let want = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let res = match &mut self.body {
            Body::Stored(s) => s.read(&mut buf[..want]),
            Body::Deflated(d) => d.read(&mut buf[..want]),
        };
        let n = match res {
            Ok(n) => n,
            Err(e) => {
                let name = self.name.clone();
                let err = if e.kind() == io::ErrorKind::InvalidData
                    && e.get_ref().is_some_and(|i| i.is::<ContainerError>())
                {
                    ContainerError::from_io(e)
                } else if matches!(self.body, Body::Deflated(_)) {
                    ContainerError::Deflate {
                        entry: name,
                        message: e.to_string(),
                    }
                } else {
                    ContainerError::Io(e)
                };
                return Err(self.fail(err));
            }
        };
        if n == 0 {
            if matches!(self.body, Body::Stored(_)) && self.produced < self.declared_size {
                let e = ContainerError::SizeMismatch {
                    entry: self.name.clone(),
                    declared: self.declared_size,
                    found: self.produced.to_string(),
                };
                return Err(self.fail(e));
            }
            self.finish()?;
            return Ok(0);
        }
        self.produced += n as u64;
        if self.produced > self.declared_size {
            let e = ContainerError::SizeMismatch {
                entry: self.name.clone(),
                declared: self.declared_size,
                found: format!("more than {}", self.declared_size),
            };
            return Err(self.fail(e));
        }
        if let Some(h) = &mut self.crc {
            h.update(&buf[..n]);
        }
        if let Some(Expected::Content(h, _)) = &mut self.sha {
            h.update(&buf[..n]);
        }
        Ok(n)
    }
}
