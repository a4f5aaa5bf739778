//! Export: a [`Source`] into an archive through the [`ArchiveWriter`].

use std::collections::BTreeSet;
use std::io::{Read, Write};

use serde_json::Value;

use super::{store, CancelToken, EngineError, Progress, ProgressFn};
use crate::archive::{ArchiveWriter, Summary, WriteOptions};
use crate::domain::{self, DomainId};
use crate::entry_name::{Bucket, EntryName};
use crate::envelope::{EnvelopeVersion, Ticket};
use crate::manifest::Manifest;
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

/// A file a row references. Tens of thousands of them wait until the rows
/// are written, so each is kept small: the store path is derived from
/// bucket, user and name again when needed, except where the row gave it.
struct FileRef {
    bucket: Bucket,
    name: Box<str>,
    path: RefPath,
}

enum RefPath {
    /// `StorePath::for_entry(bucket, user, name)`.
    Derived,
    /// From the row (databank documents); `None` when unsafe.
    Given(Option<StorePath>),
}

impl FileRef {
    fn path(&self, user: &str) -> Option<StorePath> {
        match &self.path {
            RefPath::Derived => StorePath::for_entry(self.bucket, user, &self.name),
            RefPath::Given(p) => p.clone(),
        }
    }
}

fn str_of<'a>(row: &'a RowMap, k: &str) -> Option<&'a str> {
    row.get(k).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// File references a row carries (FORMAT.md §8, §13.3).
fn file_refs(table: &str, row: &RowMap, user: &str, out: &mut Vec<FileRef>) {
    let mut push = |bucket: Bucket, name: String, path: Option<StorePath>| {
        let derived = StorePath::for_entry(bucket, user, &name);
        let path = if path == derived {
            RefPath::Derived
        } else {
            RefPath::Given(path)
        };
        out.push(FileRef {
            bucket,
            name: name.into_boxed_str(),
            path,
        })
    };
    match table {
        "images" => {
            if let Some(f) = str_of(row, "filename") {
                let b = basename(f).to_owned();
                push(
                    Bucket::Images,
                    b.clone(),
                    StorePath::for_entry(Bucket::Images, user, &b),
                );
            }
            if let Some(id) = str_of(row, "id") {
                for size in ["sm", "lg"] {
                    let n = format!("{id}_thumb_{size}_v2.webp");
                    push(
                        Bucket::Thumbnails,
                        n.clone(),
                        StorePath::for_entry(Bucket::Thumbnails, user, &n),
                    );
                }
            }
        }
        "personas" | "characters" => {
            if let Some(a) = str_of(row, "avatar_path") {
                let b = basename(a).to_owned();
                push(
                    Bucket::Avatars,
                    b.clone(),
                    StorePath::for_entry(Bucket::Avatars, user, &b),
                );
            }
        }
        "theme_assets" if str_of(row, "storage_type") == Some("file") => {
            if let (Some(bundle), Some(file)) = (str_of(row, "bundle_id"), str_of(row, "file_name"))
            {
                let n = format!("{bundle}/{file}");
                push(
                    Bucket::ThemeAssets,
                    n.clone(),
                    StorePath::for_entry(Bucket::ThemeAssets, user, &n),
                );
            }
        }
        "databank_documents" => {
            if let (Some(id), Some(fp)) = (str_of(row, "id"), str_of(row, "file_path")) {
                let n = format!("{id}__{}", fp.replace(['/', '\\'], "_"));
                push(Bucket::Databank, n, StorePath::databank(user, fp));
            }
        }
        _ => {}
    }
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
    let mut refs: Vec<FileRef> = Vec::new();
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
            file_refs(spec.name, row, &user, &mut refs);
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
    // First reference wins: later ones to the same file are skipped
    // (found by sorting positions, without a set of copied names).
    let mut order: Vec<usize> = (0..refs.len()).collect();
    order.sort_by(|&a, &b| {
        (refs[a].bucket, &refs[a].name)
            .cmp(&(refs[b].bucket, &refs[b].name))
            .then(a.cmp(&b))
    });
    let mut repeated = vec![false; refs.len()];
    for w in order.windows(2) {
        if let [a, b] = *w {
            if refs[a].bucket == refs[b].bucket && refs[a].name == refs[b].name {
                repeated[b] = true;
            }
        }
    }
    drop(order);
    let mut missing = Vec::new();
    for (r, repeated) in refs.into_iter().zip(repeated) {
        if repeated
            || !domain::bucket_domains(r.bucket)
                .iter()
                .any(|d| selected.contains(d))
        {
            continue;
        }
        cancel.check()?;
        let path = r.path(&user);
        let shown = path
            .as_ref()
            .map(|p| p.to_string())
            .unwrap_or_else(|| format!("{}/{}", r.bucket, r.name));
        if EntryName::file(r.bucket, &r.name).is_err() {
            missing.push(format!("{shown} (name not allowed in an archive)"));
            continue;
        }
        let Some(path) = path else {
            missing.push(format!("{shown} (unsafe path)"));
            continue;
        };
        if !copy_file(source, &mut w, r.bucket, &r.name, &path, &mut p)? {
            missing.push(shown);
        }
        progress(&p);
    }
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
