//! The ZIP layer: locating and reading the central directory, checking
//! local headers against it, reading one entry's bytes with size and CRC
//! checks, and writing the ZIP profile the Lumiverse 1.1 server writes.
//!
//! Record parsing lives in [`records`] (byte slices, no I/O); this module
//! and [`write`](mod@write) feed those parsers from `Read + Seek` and to `Write`.

mod directory;
mod read;
pub mod records;
pub mod write;

pub use read::{
    check_descriptor, check_local, seek_to_data, CentralDirectory, CentralEntry, DigestOf,
    EntryReader, LocalInfo,
};
pub(crate) use read::{
    directory_problems, end_checks, locate_directory, read_directory, record_problems,
    DirectoryEntry, Fields, Located, Records, StoredSink,
};

use std::io;

use records::RecordError;

/// Errors of the ZIP layer. Each names the entry it is about when there is one.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// An I/O error from the underlying reader or writer.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// The file does not start with a local header (`PK\x03\x04`).
    #[error("not a ZIP archive: the file does not start with PK\\x03\\x04")]
    NotZip,
    /// No end-of-central-directory record whose comment ends at end of file.
    #[error("no end-of-central-directory record in the last 65,557 bytes: the archive is truncated or not a ZIP file")]
    NoEocd,
    /// More than one record satisfies the EOCD rule (one hidden in a comment).
    #[error("{count} end-of-central-directory records fit the end of the file (one is hidden in a comment); refusing an ambiguous archive")]
    AmbiguousEocd {
        /// How many candidates were found.
        count: usize,
    },
    /// A ZIP record could not be parsed.
    #[error("{context}: {source}")]
    Record {
        /// Where: a record kind or an entry name.
        context: String,
        /// What was wrong.
        source: RecordError,
    },
    /// The ZIP64 record disagrees with a non-sentinel classic EOCD field.
    #[error("ZIP64 end record disagrees with the classic one on {field}: {zip64} vs {classic}")]
    Zip64Mismatch {
        /// Which field.
        field: &'static str,
        /// Value in the ZIP64 record.
        zip64: u64,
        /// Value in the classic record.
        classic: u64,
    },
    /// The archive file is larger than the limit.
    #[error("archive is {size} bytes, over the limit of {limit} (raise Limits::max_archive_bytes to read it)")]
    ArchiveTooLarge {
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The central directory lies outside the file or overlaps the end records.
    #[error("central directory (offset {offset}, size {size}) lies outside the archive")]
    CentralDirectoryOutOfBounds {
        /// Declared offset.
        offset: u64,
        /// Declared size.
        size: u64,
    },
    /// More entries than allowed.
    #[error("archive declares {declared} entries, over the limit of {limit} (raise Limits::max_entries)")]
    TooManyEntries {
        /// Declared count.
        declared: u64,
        /// The limit.
        limit: u64,
    },
    /// A central directory larger than allowed.
    #[error("central directory is {size} bytes, over the limit of {limit} (raise Limits::max_central_directory_bytes)")]
    CentralDirectoryTooLarge {
        /// Declared size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// Declared entry count and directory size disagree with what was found.
    #[error("central directory declares {declared} entries in {size} bytes but that does not match its records")]
    CentralDirectoryMismatch {
        /// Declared count.
        declared: u64,
        /// Declared size.
        size: u64,
    },
    /// A name that is not UTF-8.
    #[error("entry #{index} has a name that is not UTF-8 ({lossy:?})")]
    NameNotUtf8 {
        /// Position in the central directory.
        index: usize,
        /// The name with bad bytes replaced.
        lossy: String,
    },
    /// The encrypted flag is set.
    #[error("entry {entry}: encrypted entries are not supported")]
    Encrypted {
        /// The entry.
        entry: String,
    },
    /// A method other than stored (0) or deflated (8).
    #[error("entry {entry}: unsupported compression method {method} (only 0 and 8)")]
    UnsupportedMethod {
        /// The entry.
        entry: String,
        /// The method.
        method: u16,
    },
    /// The local header disagrees with the central directory.
    #[error("entry {entry}: local header disagrees with the central directory on {field} (central {central}, local {local})")]
    LocalMismatch {
        /// The entry.
        entry: String,
        /// Which field.
        field: &'static str,
        /// Central value.
        central: String,
        /// Local value.
        local: String,
    },
    /// Entry data runs past its space (end of file, the next entry or the directory).
    #[error("entry {entry}: data runs past the end of its space at offset {limit}")]
    OutOfBounds {
        /// The entry.
        entry: String,
        /// Where its space ends.
        limit: u64,
    },
    /// Two entries share bytes.
    #[error("entry {entry} overlaps entry {other}")]
    Overlap {
        /// The entry.
        entry: String,
        /// The entry it overlaps.
        other: String,
    },
    /// Decompressed size differs from the central directory's.
    #[error("entry size disagrees with central directory ({entry}): declared {declared} bytes, found {found}")]
    SizeMismatch {
        /// The entry.
        entry: String,
        /// Declared size.
        declared: u64,
        /// What was found ("more than N" when reading stopped early).
        found: String,
    },
    /// CRC-32 differs.
    #[error(
        "entry {entry}: CRC-32 mismatch (declared {declared:#010x}, computed {computed:#010x})"
    )]
    CrcMismatch {
        /// The entry.
        entry: String,
        /// Declared CRC.
        declared: u32,
        /// Computed CRC.
        computed: u32,
    },
    /// SHA-256 differs from the digest recorded in the trailer.
    #[error("entry {entry}: SHA-256 differs from the digest recorded in the trailer")]
    DigestMismatch {
        /// The entry.
        entry: String,
    },
    /// The deflate stream is corrupt, truncated, or leaves compressed bytes unused.
    #[error("entry {entry}: bad deflate data: {message}")]
    Deflate {
        /// The entry.
        entry: String,
        /// What went wrong.
        message: String,
    },
    /// The data descriptor disagrees with the central directory.
    #[error("entry {entry}: data descriptor disagrees with the central directory on {field}")]
    DescriptorMismatch {
        /// The entry.
        entry: String,
        /// Which field.
        field: &'static str,
    },
    /// The writer was given a name twice.
    #[error("entry {entry} was written twice")]
    DuplicateWrite {
        /// The entry.
        entry: String,
    },
    /// The writer was used out of order (an entry left open, or none open).
    #[error("writer misuse: {0}")]
    WriterState(&'static str),
}

impl ContainerError {
    /// Recovers a `ContainerError` carried inside an `io::Error` by an
    /// [`EntryReader`], or wraps a plain I/O error.
    pub fn from_io(e: io::Error) -> ContainerError {
        if e.get_ref()
            .map(|i| i.is::<ContainerError>())
            .unwrap_or(false)
        {
            match e.into_inner().map(|b| b.downcast::<ContainerError>()) {
                Some(Ok(inner)) => *inner,
                Some(Err(other)) => ContainerError::Io(io::Error::other(other)),
                None => ContainerError::Io(io::Error::other("unknown I/O error")),
            }
        } else {
            ContainerError::Io(e)
        }
    }

    /// The entry this error is about, if any.
    pub fn entry(&self) -> Option<&str> {
        use ContainerError::*;
        match self {
            Encrypted { entry }
            | UnsupportedMethod { entry, .. }
            | LocalMismatch { entry, .. }
            | OutOfBounds { entry, .. }
            | Overlap { entry, .. }
            | SizeMismatch { entry, .. }
            | CrcMismatch { entry, .. }
            | DigestMismatch { entry }
            | Deflate { entry, .. }
            | DescriptorMismatch { entry, .. }
            | DuplicateWrite { entry } => Some(entry),
            _ => None,
        }
    }

    pub(crate) fn into_io(self) -> io::Error {
        match self {
            ContainerError::Io(e) => e,
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        }
    }
}

/// Converts Unix seconds (UTC) to a DOS (time, date) pair, clamped to the
/// DOS range 1980–2107.
pub fn dos_datetime(unix: i64) -> (u16, u16) {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Civil-from-days (proleptic Gregorian), Howard Hinnant's algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    if year < 1980 {
        return (0, (1 << 5) | 1);
    }
    if year > 2107 {
        return ((23 << 11) | (59 << 5) | 29, (127 << 9) | (12 << 5) | 31);
    }
    let time = ((secs / 3600) << 11) | (((secs % 3600) / 60) << 5) | ((secs % 60) / 2);
    let date = ((year - 1980) << 9) | (month << 5) | day;
    (time as u16, date as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dos_datetime_matches_known_values() {
        // 2026-11-24 12:14:18 UTC, as in the fixtures' headers (date 23928, time 25033).
        assert_eq!(dos_datetime(1_795_522_458), (25033, 23928));
        assert_eq!(dos_datetime(0), (0, 33));
        assert_eq!(dos_datetime(315_532_800), (0, 33)); // 1980-01-01
    }
}
