//! Verification: fast (end records, central directory, names, manifest:
//! cost independent of entry sizes) and deep (every entry inflated and
//! checked), listing every problem rather than stopping at the first.

use std::collections::HashSet;
use std::io::{Read, Seek};

use super::reader::index_entries;
use super::{Archive, ArchiveError};
use crate::container::{check_descriptor, check_local, CentralDirectory, ContainerError};
use crate::entry_name::EntryName;
use crate::Limits;

/// How far to verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// End records, central directory, names, overlap, manifest, trailer.
    Fast,
    /// Everything in `Fast`, plus every entry: local header, inflate, size,
    /// CRC-32, data descriptor, SHA-256 digest, NDJSON and JSON parse.
    Deep,
}

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The entry it is about, if any.
    pub entry: Option<String>,
    /// A stable code (see [`ArchiveError::code`]).
    pub code: &'static str,
    /// A readable message.
    pub message: String,
}

impl From<&ArchiveError> for Problem {
    fn from(e: &ArchiveError) -> Problem {
        Problem {
            entry: e.entry().map(str::to_owned),
            code: e.code(),
            message: e.to_string(),
        }
    }
}

/// What verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// How far it went.
    pub depth: Depth,
    /// Entries in the central directory.
    pub entries: u64,
    /// Uncompressed bytes checked (deep only).
    pub bytes_checked: u64,
    /// Every problem, in the order found.
    pub problems: Vec<Problem>,
}

impl Report {
    /// True when no problem was found.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Progress callback: (entries done, entries total, bytes done).
pub type ProgressFn<'a> = &'a mut dyn FnMut(u64, u64, u64);

/// Verifies an archive. Never panics and never stops at the first problem
/// (except when the central directory itself cannot be read).
pub fn verify<R: Read + Seek>(reader: R, limits: Limits, depth: Depth) -> Report {
    verify_with_progress(reader, limits, depth, &mut |_, _, _| {})
}

/// [`verify`] with a progress callback, called after each entry in deep mode.
pub fn verify_with_progress<R: Read + Seek>(
    mut reader: R,
    limits: Limits,
    depth: Depth,
    progress: ProgressFn<'_>,
) -> Report {
    let mut report = Report {
        depth,
        entries: 0,
        bytes_checked: 0,
        problems: Vec::new(),
    };
    let cd = match CentralDirectory::read(&mut reader, &limits) {
        Ok(cd) => cd,
        Err(e) => {
            report.problems.push((&ArchiveError::from(e)).into());
            return report;
        }
    };
    report.entries = cd.entries.len() as u64;
    let (entries, problems) = index_entries(&cd, &limits);
    report.problems.extend(problems.iter().map(Problem::from));
    let file_len = cd.file_len;
    let (mut archive, problems) =
        Archive::from_parts_lenient(&mut reader, file_len, entries, limits);
    report.problems.extend(problems.iter().map(Problem::from));
    if archive.trailer_ignored() {
        report.problems.push(Problem {
            entry: Some("manifest-stats.json".into()),
            code: "bad_json",
            message: "manifest-stats.json is not a JSON object (the server ignores it)".into(),
        });
    }
    if depth == Depth::Fast {
        return report;
    }
    // Digest coverage: with an lvbak field, every entry but the trailer must be listed.
    if let Some(l) = archive.trailer().and_then(|t| t.lvbak.as_ref()) {
        let listed: HashSet<&str> = l.sha256.iter().map(|(k, _)| k.as_str()).collect();
        let present: HashSet<String> = archive
            .entries()
            .iter()
            .map(|e| e.name.to_string())
            .collect();
        for e in archive.entries() {
            let n = e.name.to_string();
            if e.name != EntryName::Trailer && !listed.contains(n.as_str()) {
                report.problems.push(Problem {
                    entry: Some(n),
                    code: "digest_missing",
                    message:
                        "entry has no digest in the trailer's lvbak field (added after writing?)"
                            .into(),
                });
            }
        }
        for k in listed {
            if !present.contains(k) {
                report.problems.push(Problem {
                    entry: Some(k.to_owned()),
                    code: "entry_missing",
                    message: "the trailer records a digest for an entry that is not in the archive"
                        .into(),
                });
            }
        }
    }
    let total = archive.entries().len() as u64;
    for i in 0..archive.entries().len() {
        let e = archive.entries()[i].clone();
        match deep_entry(&mut archive, i, &e.name) {
            Ok(n) => report.bytes_checked += n,
            Err(err) => report.problems.push((&err).into()),
        }
        // Descriptor agreement (the server never looks; a lie is reported).
        let desc = {
            let r = archive.reader_mut();
            check_local(r, &e.central).and_then(|info| check_descriptor(r, &e.central, info))
        };
        if let Err(err) = desc {
            if matches!(
                err,
                ContainerError::DescriptorMismatch { .. } | ContainerError::Record { .. }
            ) {
                report.problems.push((&ArchiveError::from(err)).into());
            }
        }
        progress(i as u64 + 1, total, report.bytes_checked);
    }
    report
}

fn deep_entry<R: Read + Seek>(
    a: &mut Archive<R>,
    i: usize,
    name: &EntryName,
) -> Result<u64, ArchiveError> {
    if name.is_ndjson() {
        let mut rows = a.ndjson(name.clone())?;
        while rows.next_line()?.is_some() {}
        drop(rows);
        return Ok(a.entries()[i].central.uncompressed_size);
    }
    if *name == EntryName::SecretsIndex {
        let cap = a.limits().max_secrets_index_bytes;
        if let Some(bytes) = a.read_small(name, cap)? {
            if let Err(e) = serde_json::from_slice::<serde_json::Value>(&bytes) {
                return Err(ArchiveError::Json {
                    entry: name.to_string(),
                    message: format!("not valid JSON: {e}"),
                });
            }
        }
        return Ok(a.entries()[i].central.uncompressed_size);
    }
    let mut r = a.entry_reader(i)?;
    Ok(r.drain()?)
}
