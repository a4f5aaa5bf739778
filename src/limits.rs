//! Resource caps applied while reading an archive.
//!
//! Every count or size an archive declares is checked against a [`Limits`]
//! value before lvbak acts on it. The defaults are the caps the Lumiverse
//! 1.1 server enforces on import (FORMAT.md §11), so an archive lvbak reads
//! with the defaults is one the server would also take, size-wise. A caller
//! who knowingly wants to read more (for example an archive the server
//! refused because one row is over the line cap) raises the relevant field.

/// One mebibyte.
pub const MIB: u64 = 1024 * 1024;
/// One gibibyte.
pub const GIB: u64 = 1024 * MIB;

/// Caps on what an archive may declare or contain.
///
/// Build one with [`Limits::default`] (the server's caps) and change fields
/// as needed:
///
/// ```
/// let mut limits = lvbak::Limits::default();
/// limits.ndjson_line_bytes = 64 * lvbak::limits::MIB; // read an over-long row anyway
/// assert_eq!(limits.max_entries, 500_000);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest archive file accepted, in bytes (server: 5 GiB).
    pub max_archive_bytes: u64,
    /// Largest sum of declared uncompressed sizes (server: 20 GiB).
    pub max_total_uncompressed_bytes: u64,
    /// Largest number of central-directory entries (server: 500,000).
    pub max_entries: u64,
    /// Largest number of text entries: manifest, trailer, tables, vector
    /// tables and secrets (server: 1,024).
    pub max_text_entries: u64,
    /// Largest central directory, in bytes. The server has no explicit cap;
    /// lvbak's default (128 MiB) is well above what 500,000 entries with
    /// realistic names need.
    pub max_central_directory_bytes: u64,
    /// Largest `manifest.json`, decompressed (server: 16 MiB).
    pub max_manifest_bytes: u64,
    /// Largest `manifest-stats.json`, decompressed (server: 16 MiB).
    pub max_trailer_bytes: u64,
    /// Largest `secrets/index.json`, decompressed (server: 16 MiB).
    pub max_secrets_index_bytes: u64,
    /// Longest NDJSON line (without its `\n`) in archives that declare an
    /// `ndjsonFormatVersion` ≥ 1 (server: 4 MiB = 4,194,304 bytes).
    pub ndjson_line_bytes: u64,
    /// Longest NDJSON line in legacy archives without `ndjsonFormatVersion`
    /// (server: 64 MiB).
    pub legacy_ndjson_line_bytes: u64,
    /// Deepest nesting of arrays and objects accepted in any JSON value
    /// lvbak parses (manifest, trailer, rows). The server has none (its JSON
    /// parser is recursive); 128 keeps every real row and stops stack bombs.
    pub max_json_depth: u32,
    /// Accept two `files/` entries of one bucket whose names differ only in
    /// ASCII case (`a.png`, `A.png`). Off by default: restored onto a
    /// case-insensitive file system, one would silently replace the other.
    pub allow_case_twins: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_archive_bytes: 5 * GIB,
            max_total_uncompressed_bytes: 20 * GIB,
            max_entries: 500_000,
            max_text_entries: 1_024,
            max_central_directory_bytes: 128 * MIB,
            max_manifest_bytes: 16 * MIB,
            max_trailer_bytes: 16 * MIB,
            max_secrets_index_bytes: 16 * MIB,
            ndjson_line_bytes: 4 * MIB,
            legacy_ndjson_line_bytes: 64 * MIB,
            max_json_depth: 128,
            allow_case_twins: false,
        }
    }
}

impl Limits {
    /// Limits with every cap at its largest value: for tools that must look
    /// at a damaged or oversized archive and accept the cost.
    pub fn unlimited() -> Self {
        Limits {
            max_archive_bytes: u64::MAX,
            max_total_uncompressed_bytes: u64::MAX,
            max_entries: u64::MAX,
            max_text_entries: u64::MAX,
            max_central_directory_bytes: u64::MAX,
            max_manifest_bytes: u64::MAX,
            max_trailer_bytes: u64::MAX,
            max_secrets_index_bytes: u64::MAX,
            ndjson_line_bytes: u64::MAX,
            legacy_ndjson_line_bytes: u64::MAX,
            max_json_depth: 1_024,
            allow_case_twins: true,
        }
    }

    /// The NDJSON line cap for an archive whose manifest declares `version`
    /// as its `ndjsonFormatVersion` (`None` for a legacy archive).
    pub fn line_cap(&self, ndjson_format_version: Option<u64>) -> u64 {
        match ndjson_format_version {
            Some(v) if v >= 1 => self.ndjson_line_bytes,
            _ => self.legacy_ndjson_line_bytes,
        }
    }
}
