//! The `.lvbak` layer over the ZIP container: typed entry names, the
//! manifest and trailer, NDJSON rows, files, digests and verification.

mod ahead;
mod reader;
mod scan;
mod split;
mod table;
mod verify;
mod writer;

pub(crate) use reader::StashedFiles;
pub use reader::{Archive, Row, Rows};
pub use table::{Entries, Entry, EntryRef};
pub use verify::{verify, verify_path, verify_with_progress, Depth, Problem, ProgressFn, Report};
#[doc(hidden)]
pub use verify::{verify_digest_window, verify_holding_directory, verify_path_split_from};
pub use writer::{ArchiveWriter, FileWriter, Summary, TableWriter, WriteOptions};

/// The capacity to give a `BufReader` over an archive file (as
/// [`verify_path`] and the CLI do). Small on purpose: reading an entry
/// seeks to its local header and to its data descriptor, and every seek
/// drops a `BufReader`'s buffer, so a large buffer is refilled and mostly
/// thrown away for each of thousands of small files (a 256 KiB buffer read
/// 4.8 GB to deep-verify a 237 MB archive of 6,013 entries); the readers
/// of entry data make their own 64 KiB reads, which pass a smaller buffer
/// by.
pub const FILE_BUFFER: usize = 16 * 1024;

use crate::container::ContainerError;
use crate::entry_name::NameError;
use crate::manifest::ManifestError;
use crate::ndjson::LineError;

/// Errors of the archive layer. Each carries the entry (and line) it is about.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// A ZIP-level problem.
    #[error(transparent)]
    Container(#[from] ContainerError),
    /// A name outside the allowlist.
    #[error(transparent)]
    Name(#[from] NameError),
    /// Two entries with the same name (after reading `\` as `/`).
    #[error("entry {entry} appears more than once")]
    DuplicateName {
        /// The name.
        entry: String,
    },
    /// Two file entries of one bucket whose names differ only in case.
    #[error("entry {entry} differs from entry {other} only in letter case; on a case-insensitive disk one would replace the other (set Limits::allow_case_twins to read it anyway)")]
    CaseTwin {
        /// The later entry.
        entry: String,
        /// The earlier one.
        other: String,
    },
    /// No `manifest.json`.
    #[error("no manifest.json: not a .lvbak archive")]
    NoManifest,
    /// The manifest was refused.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// An entry larger than its cap.
    #[error("entry {entry} is {size} bytes, over the cap of {limit} bytes ({hint})")]
    EntryTooLarge {
        /// The entry.
        entry: String,
        /// Declared size.
        size: u64,
        /// The cap.
        limit: u64,
        /// Which `Limits` field to raise.
        hint: &'static str,
    },
    /// More text entries than allowed.
    #[error("archive has {count} text entries, over the limit of {limit} (raise Limits::max_text_entries)")]
    TooManyTextEntries {
        /// Count.
        count: u64,
        /// Limit.
        limit: u64,
    },
    /// The declared uncompressed total is over the limit.
    #[error("archive declares {declared} uncompressed bytes, over the limit of {limit} (raise Limits::max_total_uncompressed_bytes)")]
    TotalTooLarge {
        /// Declared total.
        declared: u64,
        /// Limit.
        limit: u64,
    },
    /// A bad NDJSON line.
    #[error("{entry} line {line}: {source}")]
    Line {
        /// The entry (`database/T.ndjson`, …).
        entry: String,
        /// 1-based line number.
        line: u64,
        /// What is wrong.
        source: LineError,
    },
    /// A JSON entry (`secrets/index.json`) that is not valid JSON.
    #[error("{entry}: {message}")]
    Json {
        /// The entry.
        entry: String,
        /// What is wrong.
        message: String,
    },
    /// The requested table or file is not in the archive.
    #[error("entry {entry} is not in the archive")]
    NotFound {
        /// The entry looked for.
        entry: String,
    },
    /// A row handed to the writer is not a one-line JSON object.
    #[error("{entry}: row {row} cannot be written: {source}")]
    BadRow {
        /// The table entry.
        entry: String,
        /// 1-based row number.
        row: u64,
        /// What is wrong.
        source: LineError,
    },
    /// The writer was used out of order.
    #[error("writer misuse: {0}")]
    Writer(String),
}

impl ArchiveError {
    /// The entry name this error is about, if any.
    pub fn entry(&self) -> Option<&str> {
        match self {
            ArchiveError::Container(c) => c.entry(),
            ArchiveError::Name(n) => Some(&n.name),
            ArchiveError::DuplicateName { entry }
            | ArchiveError::CaseTwin { entry, .. }
            | ArchiveError::EntryTooLarge { entry, .. }
            | ArchiveError::Line { entry, .. }
            | ArchiveError::Json { entry, .. }
            | ArchiveError::NotFound { entry }
            | ArchiveError::BadRow { entry, .. } => Some(entry),
            ArchiveError::NoManifest | ArchiveError::Manifest(_) => Some("manifest.json"),
            _ => None,
        }
    }

    /// A short stable code for scripts (`--json` output).
    pub fn code(&self) -> &'static str {
        match self {
            ArchiveError::Container(ContainerError::SizeMismatch { .. }) => "size_mismatch",
            ArchiveError::Container(ContainerError::CrcMismatch { .. }) => "crc_mismatch",
            ArchiveError::Container(ContainerError::DigestMismatch { .. }) => "digest_mismatch",
            ArchiveError::Container(_) => "container",
            ArchiveError::Name(_) => "bad_name",
            ArchiveError::DuplicateName { .. } => "duplicate_name",
            ArchiveError::CaseTwin { .. } => "case_twin",
            ArchiveError::NoManifest => "no_manifest",
            ArchiveError::Manifest(_) => "bad_manifest",
            ArchiveError::EntryTooLarge { .. }
            | ArchiveError::TooManyTextEntries { .. }
            | ArchiveError::TotalTooLarge { .. } => "limit",
            ArchiveError::Line {
                source: LineError::TooLong { .. },
                ..
            } => "line_too_long",
            ArchiveError::Line { .. } => "bad_line",
            ArchiveError::Json { .. } => "bad_json",
            ArchiveError::NotFound { .. } => "not_found",
            ArchiveError::BadRow { .. } => "bad_row",
            ArchiveError::Writer(_) => "writer",
        }
    }
}
