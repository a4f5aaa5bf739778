//! Export: a [`Source`] into an archive through the [`ArchiveWriter`].

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::{Read, Write};

use serde_json::Value;

use super::{store, CancelToken, EngineError, Progress, ProgressFn};
use crate::archive::{ArchiveError, ArchiveWriter, Summary, WriteOptions};
use crate::container::ContainerError;
use crate::domain::{self, DomainId};
use crate::entry_name::{Bucket, EntryName};
use crate::envelope::{EnvelopeVersion, Ticket};
use crate::manifest::Manifest;
use crate::spill::SpillLog;
use crate::store::{RowMap, Source, StorePath};

/// What to export.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// Domains to export (`None`: all). Vectors and secrets are governed by
    /// the two fields below as well.
    pub domains: Option<BTreeSet<DomainId>>,
    /// Include vector embeddings.
    pub include_vectors: bool,
    /// Include secrets in this envelope (`None`: no secrets).
    pub secrets: Option<EnvelopeVersion>,
    /// How to write.
    pub write: WriteOptions,
    /// Archive id (default: a fresh UUID v4).
    pub archive_id: Option<String>,
    /// Export time (default: now).
    pub exported_at: Option<i64>,
    /// Allow rows over the 4 MiB line cap by writing a legacy manifest
    /// (no `ndjsonFormatVersion`), which readers — the Lumiverse server
    /// included — read with the 64 MiB legacy cap.
    pub large_rows: bool,
}

/// What an export produced.
#[derive(Debug)]
pub struct ExportResult {
    /// The archive id.
    pub archive_id: String,
    /// Entries, bytes, counts.
    pub summary: Summary,
    /// The decryption ticket, when secrets were included.
    pub ticket: Option<Ticket>,
    /// Files referenced by rows but absent (also listed in the trailer).
    pub missing_files: Vec<String>,
}

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn basename(s: &str) -> &str {
    s.rsplit(['/', '\\']).next().unwrap_or(s)
}

/// The files rows reference, in the order met, until the rows are
/// written. Tens of thousands of them wait, so they are records in a
/// [`SpillLog`] (in the writer's spill folder when it has one), not
/// allocations: the bucket's position in [`Bucket::ALL`] (1 byte), the
/// name's length (4 bytes, little-endian) and the name, then the length and
/// text of the name the store path is made from when it is not the entry
/// name (databank documents: the row's `file_path`; 0 otherwise).
struct FileRefs {
    log: SpillLog,
}

/// One decoded [`FileRefs`] record.
struct FileRef<'a> {
    bucket: Bucket,
    name: &'a str,
    /// What [`StorePath::for_entry`] takes for the store path.
    path_name: &'a str,
}

impl FileRefs {
    fn new(spill_dir: Option<std::path::PathBuf>) -> FileRefs {
        let mut log = SpillLog::default();
        log.spill_to(spill_dir);
        FileRefs { log }
    }

    fn push(&mut self, bucket: Bucket, name: &str, path_name: &str) -> std::io::Result<()> {
        let path_name = if path_name == name { "" } else { path_name };
        let (Ok(n), Ok(p)) = (u32::try_from(name.len()), u32::try_from(path_name.len())) else {
            return Err(std::io::Error::other("a file name of 4 GiB or more"));
        };
        let b = Bucket::ALL.iter().position(|x| *x == bucket).unwrap_or(0) as u8;
        self.log
            .append_with(9 + name.len() + path_name.len(), |out| {
                out.push(b);
                out.extend_from_slice(&n.to_le_bytes());
                out.extend_from_slice(name.as_bytes());
                out.extend_from_slice(&p.to_le_bytes());
                out.extend_from_slice(path_name.as_bytes());
            })
    }

    /// Decodes the records of one chunk, in order.
    fn each_in(
        chunk: &[u8],
        f: &mut dyn FnMut(FileRef<'_>) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let bad = || {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "a damaged file list record",
            )
        };
        let mut at = 0;
        while at < chunk.len() {
            let b = chunk.get(at).copied().ok_or_else(bad)?;
            let bucket = *Bucket::ALL.get(usize::from(b)).ok_or_else(bad)?;
            at += 1;
            let name = str_at(chunk, &mut at).ok_or_else(bad)?;
            let path_name = str_at(chunk, &mut at).ok_or_else(bad)?;
            f(FileRef {
                bucket,
                name,
                path_name: if path_name.is_empty() {
                    name
                } else {
                    path_name
                },
            })?;
        }
        Ok(())
    }
}

/// The length-prefixed text at `*at`, moving past it.
fn str_at<'a>(b: &'a [u8], at: &mut usize) -> Option<&'a str> {
    let len: [u8; 4] = b.get(*at..at.checked_add(4)?)?.try_into().ok()?;
    let start = *at + 4;
    let end = start.checked_add(u32::from_le_bytes(len) as usize)?;
    let t = std::str::from_utf8(b.get(start..end)?).ok()?;
    *at = end;
    Some(t)
}

fn str_of<'a>(row: &'a RowMap, k: &str) -> Option<&'a str> {
    row.get(k).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// File references a row carries (FORMAT.md §8, §13.3).
fn file_refs(table: &str, row: &RowMap, out: &mut FileRefs) -> std::io::Result<()> {
    match table {
        "images" => {
            if let Some(f) = str_of(row, "filename") {
                let b = basename(f);
                out.push(Bucket::Images, b, b)?;
            }
            if let Some(id) = str_of(row, "id") {
                for size in ["sm", "lg"] {
                    let n = format!("{id}_thumb_{size}_v2.webp");
                    out.push(Bucket::Thumbnails, &n, &n)?;
                }
            }
        }
        "personas" | "characters" => {
            if let Some(a) = str_of(row, "avatar_path") {
                let b = basename(a);
                out.push(Bucket::Avatars, b, b)?;
            }
        }
        "theme_assets" if str_of(row, "storage_type") == Some("file") => {
            if let (Some(bundle), Some(file)) = (str_of(row, "bundle_id"), str_of(row, "file_name"))
            {
                let n = format!("{bundle}/{file}");
                out.push(Bucket::ThemeAssets, &n, &n)?;
            }
        }
        "databank_documents" => {
            if let (Some(id), Some(fp)) = (str_of(row, "id"), str_of(row, "file_path")) {
                let n = format!("{id}__{}", fp.replace(['/', '\\'], "_"));
                // The store path is StorePath::databank(user, fp).
                out.push(Bucket::Databank, &n, fp)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Applies the export codec of a table to a row: `false` drops the row.
fn export_row(table: &str, row: &mut RowMap) -> bool {
    match table {
        "settings" => domain::setting_key(row).is_some(),
        "connection_profiles" | "image_gen_connections" | "tts_connections" | "stt_connections" => {
            if row.contains_key("has_api_key") {
                row.insert("has_api_key".into(), Value::from(0));
            }
            true
        }
        _ => true,
    }
}

/// Exports `source` into an archive written to `out`.
///
/// Order: manifest; one `database/T.ndjson` per table the source has (in
/// the server's export order, then lvbak's `weaver_people`); every file the
/// rows reference (missing ones listed in the trailer); the notification
/// sound; vectors; secrets; the trailer.
pub fn export<S: Source + ?Sized, W: Write>(
    source: &mut S,
    out: W,
    opts: &ExportOptions,
    progress: ProgressFn<'_>,
    cancel: &CancelToken,
) -> Result<(W, ExportResult), EngineError> {
    source
        .begin_snapshot()
        .map_err(store("starting a consistent read"))?;
    let result = export_snapshot(source, out, opts, progress, cancel);
    let end = source.end_snapshot().map_err(store("ending the read"));
    let r = result?;
    end?;
    Ok(r)
}

fn export_snapshot<S: Source + ?Sized, W: Write>(
    source: &mut S,
    out: W,
    opts: &ExportOptions,
    progress: ProgressFn<'_>,
    cancel: &CancelToken,
) -> Result<(W, ExportResult), EngineError> {
    let all: BTreeSet<DomainId> = DomainId::ALL.into_iter().collect();
    let selected = opts.domains.clone().unwrap_or(all);
    let user = source.user_id().to_owned();
    let archive_id = opts
        .archive_id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let exported_at = opts.exported_at.unwrap_or_else(now);
    let include_vectors = opts.include_vectors && selected.contains(&DomainId::Vectors);

    let mut manifest = Manifest::new(&archive_id, exported_at);
    manifest.producer_version = Some(format!("lvbak {}", env!("CARGO_PKG_VERSION")));
    manifest.include_vectors = include_vectors;
    if opts.large_rows {
        manifest.ndjson_format_version = None;
    }
    manifest.embedding_config = source
        .embedding_config()
        .map_err(store("reading the embedding configuration"))?;
    let sealed = match opts.secrets {
        Some(version) if selected.contains(&DomainId::Secrets) => {
            let set = source.secrets().map_err(store("reading secrets"))?;
            if set.is_empty() {
                None
            } else {
                let s = crate::secrets::seal(version, &archive_id, &set, exported_at)?;
                manifest.has_encrypted_secrets = true;
                manifest.secrets_count = s.count as u64;
                Some((version, s))
            }
        }
        _ => None,
    };
    manifest.sync_raw();
    if let Some((version, _)) = &sealed {
        manifest.raw.insert(
            "lvbak".into(),
            serde_json::json!({"envelope": version.to_string()}),
        );
    }

    let mut w = ArchiveWriter::new(out, &manifest, opts.write.clone())?;
    let mut p = Progress {
        phase: "tables",
        ..Progress::default()
    };
    let mut refs = FileRefs::new(opts.write.spill_dir.clone());
    for spec in domain::TABLES {
        if !selected.contains(&spec.domain) {
            continue;
        }
        if !source
            .has_table(spec.name)
            .map_err(store(format!("checking table {}", spec.name)))?
        {
            continue;
        }
        cancel.check()?;
        p.table = Some(spec.name.to_owned());
        progress(&p);
        let mut tw = w.table(spec.name)?;
        let mut failure: Option<EngineError> = None;
        let scan = source.scan_rows(spec, &mut |row| {
            if !export_row(spec.name, row) {
                return Ok(());
            }
            if let Err(e) = file_refs(spec.name, row, &mut refs) {
                failure = Some(ArchiveError::from(ContainerError::Io(e)).into());
                return Err(crate::store::StoreError::new(
                    "stopped: the list of files to copy failed",
                ));
            }
            if let Err(e) = tw.write_object(row) {
                failure = Some(e.into());
                return Err(crate::store::StoreError::new(
                    "stopped: the archive writer failed",
                ));
            }
            p.rows_done += 1;
            if p.rows_done % 4096 == 0 {
                if cancel.is_cancelled() {
                    failure = Some(EngineError::Cancelled);
                    return Err(crate::store::StoreError::new("cancelled"));
                }
                progress(&p);
            }
            Ok(())
        });
        if let Some(f) = failure {
            return Err(f);
        }
        scan.map_err(store(format!("reading table {}", spec.name)))?;
        tw.finish()?;
        p.entries_done += 1;
    }

    // Files referenced by rows, first copy wins; then the notification sound.
    p.phase = "files";
    p.table = None;
    if selected.contains(&DomainId::NotificationSound) {
        let mut found = false;
        for ext in ["mp3", "wav", "ogg", "aac", "m4a"] {
            let n = format!("completion.{ext}");
            let path = StorePath::for_entry(Bucket::NotificationSounds, &user, &n);
            if let Some(path) = &path {
                if !found
                    && copy_file(source, &mut w, Bucket::NotificationSounds, &n, path, &mut p)?
                {
                    found = true;
                }
            }
        }
    }
    // First reference wins: a later one to a file already written (the
    // writer knows its entries) or already found missing is skipped.
    let mut missing = Vec::new();
    // Files found missing (or not allowed), by bucket: looked up for every
    // reference without allocating.
    let mut failed: HashMap<Bucket, HashSet<Box<str>>> = HashMap::new();
    let mut failure: Option<EngineError> = None;
    let mut each = |r: FileRef<'_>| -> Result<(), EngineError> {
        if !domain::bucket_domains(r.bucket)
            .iter()
            .any(|d| selected.contains(d))
            || failed.get(&r.bucket).is_some_and(|f| f.contains(r.name))
        {
            return Ok(());
        }
        cancel.check()?;
        let path = StorePath::for_entry(r.bucket, &user, r.path_name);
        let shown = path
            .as_ref()
            .map(|p| p.to_string())
            .unwrap_or_else(|| format!("{}/{}", r.bucket, r.name));
        let Ok(entry) = EntryName::file(r.bucket, r.name) else {
            missing.push(format!("{shown} (name not allowed in an archive)"));
            failed.entry(r.bucket).or_default().insert(r.name.into());
            return Ok(());
        };
        if w.contains(&entry)? {
            return Ok(());
        }
        let Some(path) = path else {
            missing.push(format!("{shown} (unsafe path)"));
            failed.entry(r.bucket).or_default().insert(r.name.into());
            return Ok(());
        };
        if !copy_file(source, &mut w, r.bucket, r.name, &path, &mut p)? {
            missing.push(shown);
            failed.entry(r.bucket).or_default().insert(r.name.into());
        }
        progress(&p);
        Ok(())
    };
    let listed = refs.log.for_each_chunk(&mut |chunk| {
        FileRefs::each_in(chunk, &mut |r| {
            each(r).map_err(|e| {
                failure = Some(e);
                std::io::Error::other("stopped")
            })
        })
    });
    if let Some(f) = failure {
        return Err(f);
    }
    listed.map_err(|e| EngineError::from(ArchiveError::from(ContainerError::Io(e))))?;
    for m in &missing {
        w.add_missing_file(m.clone());
    }

    if include_vectors {
        p.phase = "vectors";
        for t in domain::VECTOR_TABLES {
            cancel.check()?;
            let mut tw = w.vector_table(t)?;
            let mut failure = None;
            let scan = source.scan_vectors(t, &mut |row| {
                if let Err(e) = tw.write_object(row) {
                    failure = Some(e);
                    return Err(crate::store::StoreError::new(
                        "stopped: the archive writer failed",
                    ));
                }
                Ok(())
            });
            if let Some(f) = failure {
                return Err(f.into());
            }
            scan.map_err(store(format!("reading vectors {t}")))?;
            tw.finish()?;
        }
    }
    let ticket = match sealed {
        Some((_, s)) => {
            p.phase = "secrets";
            progress(&p);
            w.add_secrets(&s.index_json, &s.encrypted_ndjson)?;
            Some(s.ticket)
        }
        None => None,
    };
    let (out, summary) = w.finish()?;
    p.phase = "done";
    progress(&p);
    Ok((
        out,
        ExportResult {
            archive_id,
            summary,
            ticket,
            missing_files: missing,
        },
    ))
}

fn copy_file<S: Source + ?Sized, W: Write>(
    source: &mut S,
    w: &mut ArchiveWriter<W>,
    bucket: Bucket,
    name: &str,
    path: &StorePath,
    p: &mut Progress,
) -> Result<bool, EngineError> {
    let Some(mut r) = source
        .open_file(path)
        .map_err(store(format!("opening {path}")))?
    else {
        return Ok(false);
    };
    let mut fw = w.file(bucket, name)?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(EngineError::Store {
                    context: format!("reading {path}"),
                    source: e.into(),
                })
            }
        };
        fw.write_bytes(&buf[..n])?;
        p.bytes_done += n as u64;
    }
    fw.finish()?;
    p.entries_done += 1;
    Ok(true)
}
