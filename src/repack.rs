//! Re-writing an archive: `repack` (read everything, write it again with
//! lvbak's writer: digests, optional deterministic mode, optional new
//! secrets) and `repair` (the same, but recovering table entries damaged by
//! the Lumiverse 1.0.x fflate writer's duplicated-chunk bug).

use std::io::{BufRead, BufReader, Read, Seek, Write};

use sha2::{Digest, Sha256};

use crate::archive::{Archive, ArchiveError, ArchiveWriter, Summary, WriteOptions};
use crate::container::ContainerError;
use crate::entry_name::EntryName;
use crate::manifest::Manifest;

/// What to do with the secrets envelope when repacking.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SecretsAction {
    /// Copy `secrets/index.json` and `secrets/encrypted.ndjson` unchanged.
    #[default]
    Keep,
    /// Leave them out (and clear `hasEncryptedSecrets`/`secretsCount`).
    Drop,
    /// Write these bytes instead (index, encrypted NDJSON, count), e.g. after re-encryption.
    Replace {
        /// `secrets/index.json` bytes.
        index_json: Vec<u8>,
        /// `secrets/encrypted.ndjson` bytes.
        encrypted_ndjson: Vec<u8>,
        /// Number of secrets (manifest `secretsCount`).
        count: u64,
        /// Manifest fields to set (e.g. the envelope version).
        manifest_fields: serde_json::Map<String, serde_json::Value>,
    },
}

/// Options for [`repack`] and [`repair`].
#[derive(Debug, Clone, Default)]
pub struct RepackOptions {
    /// How to write.
    pub write: WriteOptions,
    /// What to do with secrets.
    pub secrets: SecretsAction,
}

/// One entry `repair` fixed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repaired {
    /// The entry.
    pub entry: String,
    /// Bytes of the duplicated copy that were dropped.
    pub dropped_bytes: u64,
    /// First dropped line (1-based) and number of lines dropped.
    pub dropped_lines: (u64, u64),
}

fn manifest_for(archive_manifest: &Manifest, secrets: &SecretsAction) -> Manifest {
    let mut m = archive_manifest.clone();
    match secrets {
        SecretsAction::Keep => {}
        SecretsAction::Drop => {
            m.raw.insert("hasEncryptedSecrets".into(), false.into());
            m.raw.insert("secretsCount".into(), 0.into());
            m.has_encrypted_secrets = false;
            m.secrets_count = 0;
        }
        SecretsAction::Replace {
            count,
            manifest_fields,
            ..
        } => {
            m.raw.insert("hasEncryptedSecrets".into(), true.into());
            m.raw.insert("secretsCount".into(), (*count).into());
            m.has_encrypted_secrets = true;
            m.secrets_count = *count;
            for (k, v) in manifest_fields {
                m.raw.insert(k.clone(), v.clone());
            }
        }
    }
    m
}

/// Reads every entry of `archive` and writes it again to `out`: the same
/// rows (byte for byte), the same files, the secrets per `opts.secrets`,
/// the manifest as stored, and a fresh trailer with counts and digests.
pub fn repack<R: Read + Seek, W: Write>(
    archive: &mut Archive<R>,
    out: W,
    opts: &RepackOptions,
) -> Result<(W, Summary), ArchiveError> {
    rewrite(archive, out, opts, false).map(|(w, s, _)| (w, s))
}

/// Like [`repack`], but a table entry whose body holds a duplicated run of
/// lines (the 1.0.x fflate bug: sizes and CRC describe one copy, the body
/// holds it twice) is recovered by dropping the second copy, provided the
/// result matches the declared size and CRC-32 exactly. Anything else that
/// is wrong stays an error.
pub fn repair<R: Read + Seek, W: Write>(
    archive: &mut Archive<R>,
    out: W,
    opts: &RepackOptions,
) -> Result<(W, Summary, Vec<Repaired>), ArchiveError> {
    rewrite(archive, out, opts, true)
}

fn rewrite<R: Read + Seek, W: Write>(
    archive: &mut Archive<R>,
    out: W,
    opts: &RepackOptions,
    fix: bool,
) -> Result<(W, Summary, Vec<Repaired>), ArchiveError> {
    let manifest = manifest_for(archive.manifest(), &opts.secrets);
    let mut w = ArchiveWriter::new(out, &manifest, opts.write.clone())?;
    let mut repaired = Vec::new();
    for table in archive.tables() {
        let name = EntryName::Table(table.clone());
        let plan = if fix { plan_fix(archive, &name)? } else { None };
        let mut tw = w.table(&table)?;
        match plan {
            None => {
                let mut rows = archive.rows(&table)?;
                while let Some((_, line)) = rows.next_line()? {
                    tw.write_row(line)?;
                }
            }
            Some(p) => {
                copy_skipping(archive, &name, &p, |line| tw.write_row(line))?;
                repaired.push(Repaired {
                    entry: name.to_string(),
                    dropped_bytes: p.skip_bytes,
                    dropped_lines: (p.skip_from + 1, p.skip_count),
                });
            }
        }
        tw.finish()?;
    }
    for i in 0..archive.entries().len() {
        let file = archive
            .entry(i)
            .and_then(|e| e.file().map(|(b, n)| (b, n.into_owned())));
        if let Some((bucket, file)) = file {
            let mut fw = w.file(bucket, &file)?;
            let mut r = archive.entry_reader(i)?;
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = r.read(&mut buf).map_err(ContainerError::from_io)?;
                if n == 0 {
                    break;
                }
                fw.write_bytes(&buf[..n])?;
            }
            fw.finish()?;
        }
    }
    for table in archive.vector_tables() {
        let mut tw = w.vector_table(&table)?;
        let mut rows = archive.vector_rows(&table)?;
        while let Some((_, line)) = rows.next_line()? {
            tw.write_row(line)?;
        }
        tw.finish()?;
    }
    match &opts.secrets {
        SecretsAction::Keep => {
            let cap = archive.limits().max_secrets_index_bytes;
            let index = archive.read_small(&EntryName::SecretsIndex, cap)?;
            let enc = archive.read_small(
                &EntryName::SecretsEnvelope,
                archive.limits().max_total_uncompressed_bytes,
            )?;
            if let (Some(index), Some(enc)) = (index, enc) {
                w.add_secrets(&index, &enc)?;
            }
        }
        SecretsAction::Drop => {}
        SecretsAction::Replace {
            index_json,
            encrypted_ndjson,
            ..
        } => w.add_secrets(index_json, encrypted_ndjson)?,
    }
    for m in archive.merged_missing_files().to_vec() {
        w.add_missing_file(m);
    }
    let (out, summary) = w.finish()?;
    Ok((out, summary, repaired))
}

struct FixPlan {
    /// Index of the first line to skip (0-based, over all lines incl. blank).
    skip_from: u64,
    skip_count: u64,
    skip_bytes: u64,
}

/// Decides whether a table entry needs the duplicate fix, and where.
fn plan_fix<R: Read + Seek>(
    archive: &mut Archive<R>,
    name: &EntryName,
) -> Result<Option<FixPlan>, ArchiveError> {
    let Some(i) = archive.find(name) else {
        return Ok(None);
    };
    let Some((declared, declared_crc)) =
        archive.entry(i).map(|e| (e.uncompressed_size(), e.crc32()))
    else {
        return Ok(None);
    };
    let check = {
        let mut r = archive.entry_reader(i)?;
        r.drain()
    };
    match check {
        Ok(_) => return Ok(None),
        Err(ContainerError::SizeMismatch { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    // Pass 1: every line's length and a hash, over the raw inflated body.
    let cap = archive.limits().max_total_uncompressed_bytes;
    let mut lines: Vec<(u64, [u8; 16])> = Vec::new();
    let mut total = 0u64;
    {
        let raw = archive.unchecked_reader(i, cap)?;
        for_each_line(raw, |line| {
            let mut h = [0u8; 16];
            h.copy_from_slice(&Sha256::digest(line)[..16]);
            lines.push((line.len() as u64, h));
            total += line.len() as u64;
        })?;
    }
    let excess = match total.checked_sub(declared) {
        Some(e) if e > 0 => e,
        _ => return Err(unfixable(name, declared, total)),
    };
    // Candidates: a run of lines [a, b) of `excess` bytes repeated right after itself.
    for a in 0..lines.len() {
        let mut len = 0u64;
        let mut b = a;
        while b < lines.len() && len < excess {
            len += lines[b].0;
            b += 1;
        }
        if len != excess {
            continue;
        }
        let n = b - a;
        if b + n > lines.len() || lines[a..b] != lines[b..b + n] {
            continue;
        }
        let plan = FixPlan {
            skip_from: b as u64,
            skip_count: n as u64,
            skip_bytes: excess,
        };
        // Pass 2: the result must match the declared size and CRC exactly.
        let mut crc = crc32fast::Hasher::new();
        let mut size = 0u64;
        copy_skipping(archive, name, &plan, |line| {
            crc.update(line.as_bytes());
            crc.update(b"\n");
            size += line.len() as u64 + 1;
            Ok(())
        })?;
        if size == declared && crc.finalize() == declared_crc {
            return Ok(Some(plan));
        }
    }
    Err(unfixable(name, declared, total))
}

fn unfixable(name: &EntryName, declared: u64, total: u64) -> ArchiveError {
    ArchiveError::Container(ContainerError::SizeMismatch {
        entry: name.to_string(),
        declared,
        found: format!(
            "{total} (no duplicated run of lines explains the difference; not repairable)"
        ),
    })
}

/// Calls `f` with every line including its `\n` (the last may lack one).
fn for_each_line(r: impl Read, mut f: impl FnMut(&[u8])) -> Result<(), ArchiveError> {
    let mut br = BufReader::with_capacity(256 * 1024, r);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = br
            .read_until(b'\n', &mut buf)
            .map_err(ContainerError::from_io)?;
        if n == 0 {
            return Ok(());
        }
        f(&buf);
    }
}

fn copy_skipping<R: Read + Seek>(
    archive: &mut Archive<R>,
    name: &EntryName,
    plan: &FixPlan,
    mut emit: impl FnMut(&str) -> Result<(), ArchiveError>,
) -> Result<(), ArchiveError> {
    let Some(i) = archive.find(name) else {
        return Err(ArchiveError::NotFound {
            entry: name.to_string(),
        });
    };
    let cap = archive.limits().max_total_uncompressed_bytes;
    let line_cap = archive.line_cap();
    let depth = archive.limits().max_json_depth;
    let raw = archive.unchecked_reader(i, cap)?;
    let mut idx = 0u64;
    let mut result = Ok(());
    for_each_line(raw, |line| {
        let skip = idx >= plan.skip_from && idx < plan.skip_from + plan.skip_count;
        idx += 1;
        if skip || result.is_err() {
            return;
        }
        let body = line.strip_suffix(b"\n").unwrap_or(line);
        if crate::ndjson::is_blank(body) {
            return;
        }
        let checked = if body.len() as u64 > line_cap {
            Err(crate::ndjson::LineError::TooLong { cap: line_cap })
        } else {
            crate::ndjson::check_line(body, depth)
        };
        result = match checked {
            Ok(crate::ndjson::LineKind::Object) => match std::str::from_utf8(body) {
                Ok(s) => emit(s),
                Err(_) => Ok(()),
            },
            Ok(crate::ndjson::LineKind::Falsy) => Ok(()),
            Err(source) => Err(ArchiveError::Line {
                entry: name.to_string(),
                line: idx,
                source,
            }),
        };
    })?;
    result
}
