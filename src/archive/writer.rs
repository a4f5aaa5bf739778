//! [`ArchiveWriter`]: writing a `.lvbak` in one pass over any `Write`.

use std::io::{self, Read, Write};

use super::ArchiveError;
use crate::container::write::{
    EntryOptions, Method, ZipWriter, DEFAULT_EXTERNAL_ATTR, DEFAULT_LEVEL,
};
use crate::container::{dos_datetime, ContainerError};
use crate::entry_name::{Bucket, EntryName};
use crate::manifest::{LvbakTrailer, Manifest, Trailer};
use crate::ndjson::{check_line, LineError, LineKind};
use crate::Limits;

/// How to write an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteOptions {
    /// Deterministic mode: every entry's timestamp is the manifest's
    /// `exportedAt`, so the same logical content gives the same bytes.
    pub deterministic: bool,
    /// Deflate level for text entries, 0–9 ([`DEFAULT_LEVEL`], 2, by
    /// default; the server uses 3).
    pub level: u32,
    /// Record the SHA-256 of every entry's stored bytes in the trailer's
    /// `lvbak` field (version 3, FORMAT.md §5.1).
    pub digests: bool,
    /// Threads compressing text entries in parallel, by 1 MiB segments
    /// (0: one per core, at most 4). The bytes written do not depend on it.
    pub threads: usize,
    /// Caps rows are checked against (line cap by the manifest's
    /// `ndjsonFormatVersion`, JSON depth), so lvbak never writes an archive
    /// the server would refuse for an over-long line.
    pub limits: Limits,
    /// A folder where a large archive's central directory may wait, in an
    /// anonymous temporary file, until the end instead of in memory
    /// ([`ZipWriter::set_spill_dir`]): memory then stays flat however many
    /// entries are written. `None` (the default) keeps it in memory (about
    /// 100 bytes an entry). The archive is the same either way.
    pub spill_dir: Option<std::path::PathBuf>,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            deterministic: false,
            level: DEFAULT_LEVEL,
            digests: true,
            threads: 0,
            limits: Limits::default(),
            spill_dir: None,
        }
    }
}

/// What a finished archive holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Summary {
    /// Entries written (manifest and trailer included).
    pub entries: u64,
    /// Archive size in bytes.
    pub bytes: u64,
    /// Rows per table (and `lancedb:T` per vector table), in written order.
    pub counts: Vec<(String, u64)>,
    /// Files written per bucket.
    pub files: Vec<(Bucket, u64)>,
    /// Uncompressed bytes of all entries.
    pub uncompressed_bytes: u64,
}

/// Writes one archive: `manifest.json` first (at construction), then
/// tables, files, vectors and secrets in any order, and the trailer last
/// (at [`ArchiveWriter::finish`]). Works over a `Write` that cannot seek.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use lvbak::{ArchiveWriter, Manifest, WriteOptions};
/// let manifest = Manifest::new("6f1c2a9e-0000-4000-8000-000000000001", 1_700_000_000);
/// let mut w = ArchiveWriter::new(Vec::new(), &manifest, WriteOptions::default())?;
/// let mut t = w.table("chats")?;
/// t.write_row(r#"{"id":"c1","name":"Hello"}"#)?;
/// t.finish()?;
/// w.add_file(lvbak::Bucket::Avatars, "me.png", &b"\x89PNG"[..])?;
/// let (bytes, summary) = w.finish()?;
/// assert_eq!(summary.counts, vec![("chats".to_string(), 1)]);
/// let archive = lvbak::Archive::open(std::io::Cursor::new(bytes), lvbak::Limits::default())?;
/// assert_eq!(archive.tables(), vec!["chats".to_string()]);
/// # Ok(()) }
/// ```
pub struct ArchiveWriter<W: Write> {
    zip: ZipWriter<W>,
    opts: WriteOptions,
    time: (u16, u16),
    line_cap: u64,
    table_counts: Vec<(String, u64)>,
    vector_counts: Vec<(String, u64)>,
    files: Vec<(Bucket, u64)>,
    missing: Vec<String>,
    digests: Vec<[u8; 32]>,
    uncompressed: u64,
}

impl<W: Write> std::fmt::Debug for ArchiveWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveWriter")
            .field("position", &self.zip.position())
            .finish_non_exhaustive()
    }
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl<W: Write> ArchiveWriter<W> {
    /// Starts an archive and writes `manifest.json` (from `manifest.raw`,
    /// so unknown fields are kept).
    pub fn new(
        out: W,
        manifest: &Manifest,
        opts: WriteOptions,
    ) -> Result<ArchiveWriter<W>, ArchiveError> {
        let t = if opts.deterministic {
            manifest.exported_at
        } else {
            now_unix()
        };
        let mut zip = ZipWriter::new(out);
        if opts.threads > 0 {
            zip.set_threads(opts.threads);
        }
        zip.set_digests(opts.digests);
        zip.set_spill_dir(opts.spill_dir.clone());
        let mut w = ArchiveWriter {
            zip,
            time: dos_datetime(t),
            line_cap: opts.limits.line_cap(manifest.ndjson_format_version),
            opts,
            table_counts: Vec::new(),
            vector_counts: Vec::new(),
            files: Vec::new(),
            missing: Vec::new(),
            digests: Vec::new(),
            uncompressed: 0,
        };
        w.add_text(&EntryName::Manifest, &manifest.to_json())?;
        Ok(w)
    }

    fn entry_opts(&self, name: &EntryName) -> EntryOptions {
        EntryOptions {
            method: if name.is_text() {
                Method::Deflated(self.opts.level)
            } else {
                Method::Stored
            },
            dos_time: self.time,
            external_attr: DEFAULT_EXTERNAL_ATTR,
        }
    }

    fn begin(&mut self, name: &EntryName) -> Result<(), ArchiveError> {
        let opts = self.entry_opts(name);
        self.zip.start_entry(&name.to_string(), opts)?;
        Ok(())
    }

    fn end(&mut self) -> Result<u64, ArchiveError> {
        let w = self.zip.finish_entry()?;
        self.uncompressed += w.uncompressed_size;
        if self.opts.digests {
            let Some(d) = w.sha256 else {
                return Err(ArchiveError::Writer(
                    "the container computed no digest for an entry".into(),
                ));
            };
            self.digests.push(d);
        }
        Ok(w.uncompressed_size)
    }

    fn add_text(&mut self, name: &EntryName, bytes: &[u8]) -> Result<(), ArchiveError> {
        self.begin(name)?;
        self.zip.write_data(bytes)?;
        self.end()?;
        Ok(())
    }

    /// Starts `database/{table}.ndjson`.
    pub fn table(&mut self, table: &str) -> Result<TableWriter<'_, W>, ArchiveError> {
        self.table_entry(EntryName::table(table)?)
    }

    /// Starts `lancedb/{table}.ndjson`.
    pub fn vector_table(&mut self, table: &str) -> Result<TableWriter<'_, W>, ArchiveError> {
        self.table_entry(EntryName::vector_table(table)?)
    }

    fn table_entry(&mut self, name: EntryName) -> Result<TableWriter<'_, W>, ArchiveError> {
        self.begin(&name)?;
        Ok(TableWriter {
            w: self,
            name,
            rows: 0,
            line: Vec::new(),
        })
    }

    /// Starts `files/{bucket}/{name}` (stored, not compressed).
    pub fn file(&mut self, bucket: Bucket, name: &str) -> Result<FileWriter<'_, W>, ArchiveError> {
        let name = EntryName::file(bucket, name)?;
        self.begin(&name)?;
        Ok(FileWriter { w: self, bucket })
    }

    /// Whether an entry of this name was written (or is being written).
    pub fn contains(&mut self, name: &EntryName) -> Result<bool, ArchiveError> {
        Ok(self.zip.contains(&name.to_string())?)
    }

    /// Writes a whole file from a reader; returns its size.
    pub fn add_file(
        &mut self,
        bucket: Bucket,
        name: &str,
        mut data: impl Read,
    ) -> Result<u64, ArchiveError> {
        let mut f = self.file(bucket, name)?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match data.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ContainerError::Io(e).into()),
            };
            f.write_bytes(&buf[..n])?;
        }
        f.finish()
    }

    /// Records a file the source could not supply (listed in the trailer).
    pub fn add_missing_file(&mut self, path: impl Into<String>) {
        self.missing.push(path.into());
    }

    /// Writes the secrets envelope: `secrets/index.json` then
    /// `secrets/encrypted.ndjson`, as produced by [`crate::envelope`].
    pub fn add_secrets(
        &mut self,
        index_json: &[u8],
        encrypted_ndjson: &[u8],
    ) -> Result<(), ArchiveError> {
        self.add_text(&EntryName::SecretsIndex, index_json)?;
        self.add_text(&EntryName::SecretsEnvelope, encrypted_ndjson)
    }

    /// Writes the trailer and the central directory; returns the inner
    /// writer and a summary.
    pub fn finish(mut self) -> Result<(W, Summary), ArchiveError> {
        let mut counts = std::mem::take(&mut self.table_counts);
        counts.extend(
            self.vector_counts
                .iter()
                .map(|(t, n)| (format!("lancedb:{t}"), *n)),
        );
        let lvbak = self
            .opts
            .digests
            .then(|| LvbakTrailer::in_order(std::mem::take(&mut self.digests)));
        let trailer = Trailer::new(counts.clone(), std::mem::take(&mut self.missing), lvbak);
        // Streamed into the entry: at 96,000 entries the digests alone are
        // 4.2 MB of base64, which would otherwise be held twice.
        let opts = self.entry_opts(&EntryName::Trailer);
        self.zip.start_entry("manifest-stats.json", opts)?;
        let mut into = IntoEntry {
            zip: &mut self.zip,
            failed: None,
        };
        if let Err(e) = trailer.write_json(&mut into) {
            return Err(match into.failed.take() {
                Some(c) => c.into(),
                None => ContainerError::from_io(e).into(),
            });
        }
        self.uncompressed += self.zip.finish_entry()?.uncompressed_size;
        drop(trailer);
        let entries = self.zip.entry_count() as u64;
        let files = std::mem::take(&mut self.files);
        let uncompressed_bytes = self.uncompressed;
        let (out, bytes) = self.zip.finish()?;
        Ok((
            out,
            Summary {
                entries,
                bytes,
                counts,
                files,
                uncompressed_bytes,
            },
        ))
    }
}

/// `io::Write` into the open entry of a [`ZipWriter`], keeping the
/// container's own error.
struct IntoEntry<'a, W: Write> {
    zip: &'a mut ZipWriter<W>,
    failed: Option<ContainerError>,
}

impl<W: Write> Write for IntoEntry<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.zip.write_data(buf) {
            Ok(()) => Ok(buf.len()),
            Err(e) => {
                let io = std::io::Error::other(e.to_string());
                self.failed = Some(e);
                Err(io)
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes the rows of one table entry. Call [`TableWriter::finish`]; a
/// writer dropped unfinished leaves the archive unusable (the next call on
/// the [`ArchiveWriter`] fails).
pub struct TableWriter<'a, W: Write> {
    w: &'a mut ArchiveWriter<W>,
    name: EntryName,
    rows: u64,
    /// The serialised row, reused from row to row.
    line: Vec<u8>,
}

impl<W: Write> TableWriter<'_, W> {
    /// Appends one row: a JSON object on one line (no `\n`), written as is.
    pub fn write_row(&mut self, line: &str) -> Result<(), ArchiveError> {
        let row = self.rows + 1;
        let bad = |source| ArchiveError::BadRow {
            entry: self.name.to_string(),
            row,
            source,
        };
        if line.len() as u64 > self.w.line_cap {
            return Err(bad(LineError::TooLong {
                cap: self.w.line_cap,
            }));
        }
        if line.contains('\n') {
            return Err(bad(LineError::Syntax {
                reason: "no newline inside a row",
                at: line.find('\n').unwrap_or(0),
            }));
        }
        match check_line(line.as_bytes(), self.w.opts.limits.max_json_depth) {
            Ok(LineKind::Object) => {}
            Ok(LineKind::Falsy) => {
                return Err(bad(LineError::NotAnObject {
                    found: "falsy value",
                }))
            }
            Err(e) => return Err(bad(e)),
        }
        self.append(line.as_bytes())
    }

    /// Appends one row from a JSON object, serialised compactly (as
    /// JavaScript's `JSON.stringify` does for strings and integers).
    pub fn write_object(
        &mut self,
        row: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), ArchiveError> {
        let mut line = std::mem::take(&mut self.line);
        line.clear();
        crate::ndjson::write_object(&mut line, row);
        // The compact output of a map is one valid JSON object line: only
        // the cap needs checking.
        if line.len() as u64 > self.w.line_cap {
            return Err(ArchiveError::BadRow {
                entry: self.name.to_string(),
                row: self.rows + 1,
                source: LineError::TooLong {
                    cap: self.w.line_cap,
                },
            });
        }
        let r = self.append(&line);
        self.line = line;
        r
    }

    fn append(&mut self, line: &[u8]) -> Result<(), ArchiveError> {
        self.w.zip.write_data(line)?;
        self.w.zip.write_data(b"\n")?;
        self.rows += 1;
        Ok(())
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Finishes the entry and returns its row count.
    pub fn finish(self) -> Result<u64, ArchiveError> {
        self.w.end()?;
        match &self.name {
            EntryName::VectorTable(t) => self.w.vector_counts.push((t.clone(), self.rows)),
            EntryName::Table(t) => self.w.table_counts.push((t.clone(), self.rows)),
            _ => {}
        }
        Ok(self.rows)
    }
}

/// Writes the bytes of one file entry; implements [`Write`]. Call
/// [`FileWriter::finish`].
pub struct FileWriter<'a, W: Write> {
    w: &'a mut ArchiveWriter<W>,
    bucket: Bucket,
}

impl<W: Write> FileWriter<'_, W> {
    /// Appends bytes.
    pub fn write_bytes(&mut self, data: &[u8]) -> Result<(), ArchiveError> {
        self.w.zip.write_data(data)?;
        Ok(())
    }

    /// Finishes the entry and returns its size.
    pub fn finish(self) -> Result<u64, ArchiveError> {
        let n = self.w.end()?;
        match self.w.files.iter_mut().find(|(b, _)| *b == self.bucket) {
            Some((_, c)) => *c += 1,
            None => self.w.files.push((self.bucket, 1)),
        }
        Ok(n)
    }
}

impl<W: Write> Write for FileWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_bytes(buf).map_err(|e| match e {
            ArchiveError::Container(c) => c.into_io(),
            other => io::Error::other(other.to_string()),
        })?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
