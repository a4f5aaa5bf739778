//! Storage behind the engines: [`Source`] (export side) and [`Sink`]
//! (import side). A host plugs its own database in by implementing them;
//! lvbak ships an in-memory store ([`memory::MemoryStore`]) and, with the
//! `sqlite` feature, an embedded SQLite one.
//!
//! Both traits are synchronous and stream through callbacks, so no table is
//! ever held in memory by the engine. An async host adapts them by running
//! the engine on a blocking thread (`tokio::task::spawn_blocking` or
//! similar) and implementing the traits over its blocking database handle,
//! or over channels to its async tasks.

pub mod memory;

use std::fmt;
use std::io::Read;

use serde_json::{Map, Value};

use crate::domain::TableSpec;
use crate::entry_name::Bucket;
use crate::envelope::SecretSet;
use crate::manifest::EmbeddingConfig;

/// A row: an ordered JSON object of column → value.
pub type RowMap = Map<String, Value>;

/// An error from a store, with a message that says what failed.
#[derive(Debug)]
pub struct StoreError {
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl StoreError {
    /// An error with a message.
    pub fn new(message: impl Into<String>) -> StoreError {
        StoreError {
            message: message.into(),
            source: None,
        }
    }

    /// An error wrapping another.
    pub fn with_source(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> StoreError {
        StoreError {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(s) => write!(f, "{}: {s}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> StoreError {
        StoreError::with_source("I/O error", e)
    }
}

/// Where a restored or exported file lives in the store, relative to the
/// store's data directory, laid out like the Lumiverse server's
/// (FORMAT.md §13.3). Built only through [`StorePath::for_entry`] or
/// [`StorePath::databank`], which keep it inside its folder.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StorePath(String);

impl StorePath {
    /// The path for an archive file entry owned by `user`:
    /// `images/X` (images and thumbnails), `avatars/X`,
    /// `databank/{user}/X`, `theme-assets/{user}/X`,
    /// `notification-sounds/{user}/X`.
    pub fn for_entry(bucket: Bucket, user: &str, name: &str) -> Option<StorePath> {
        if !safe_relative(name) || !safe_segment(user) {
            return None;
        }
        Some(StorePath(match bucket {
            Bucket::Images | Bucket::Thumbnails => format!("images/{name}"),
            Bucket::Avatars => format!("avatars/{name}"),
            Bucket::Databank => format!("databank/{user}/{name}"),
            Bucket::ThemeAssets => format!("theme-assets/{user}/{name}"),
            Bucket::NotificationSounds => format!("notification-sounds/{user}/{name}"),
        }))
    }

    /// The path of a databank document by its row's `file_path`.
    pub fn databank(user: &str, file_path: &str) -> Option<StorePath> {
        StorePath::for_entry(Bucket::Databank, user, file_path)
    }

    /// The relative path, `/`-separated.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn safe_segment(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '\\', '\0', ':'])
}

/// A relative path with only normal segments (no `..`, `.`, empty,
/// absolute, backslash, drive or NUL).
pub fn safe_relative(p: &str) -> bool {
    !p.is_empty() && !p.starts_with('/') && p.split('/').all(safe_segment)
}

impl fmt::Display for StorePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The export side: one user's data.
pub trait Source {
    /// The exporting user's id.
    fn user_id(&self) -> &str;

    /// Called before the first read of an export: a store that can should
    /// start a read transaction here, so the whole archive is one
    /// consistent snapshot even while its server keeps writing.
    fn begin_snapshot(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Called after the last read of an export (also after a failure).
    fn end_snapshot(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Whether the table exists in this store (absent tables get no entry).
    fn has_table(&mut self, table: &str) -> Result<bool, StoreError>;

    /// Calls `f` with every row of `spec` the user owns (by `spec.owner`;
    /// extensions only with `install_scope = 'user'`; rows with a NULL owner
    /// never), in the store's column order. Stops at the first error `f`
    /// returns and passes it on. The row is lent, not given: a store may
    /// reuse one map (and its strings) for every row, which spares an
    /// allocation per column and row on large tables; `f` may change it.
    fn scan_rows(
        &mut self,
        spec: &TableSpec,
        f: &mut dyn FnMut(&mut RowMap) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;

    /// Opens a file, or `None` when it is missing.
    fn open_file(&mut self, path: &StorePath) -> Result<Option<Box<dyn Read + '_>>, StoreError>;

    /// Calls `f` with every vector row of the user in `table`
    /// (`embeddings`, `embeddings_world_books`): keys `id, source_type,
    /// source_id, owner_id, chunk_index, content, metadata_json, updated_at,
    /// vector_b64` (`vector_b64`: standard base64 of little-endian f32).
    /// The row is lent, as in [`Source::scan_rows`].
    fn scan_vectors(
        &mut self,
        table: &str,
        f: &mut dyn FnMut(&mut RowMap) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;

    /// The user's secrets in plaintext, for the envelope.
    fn secrets(&mut self) -> Result<SecretSet, StoreError>;

    /// The user's embedding configuration.
    fn embedding_config(&mut self) -> Result<EmbeddingConfig, StoreError>;
}

/// What happened to one row handed to [`Sink::insert_row`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertOutcome {
    /// Written.
    Inserted,
    /// Not written: the primary key exists (or another constraint refused it).
    Skipped,
}

/// The import side. Every write happens between [`Sink::begin`] and
/// [`Sink::commit`]; after [`Sink::rollback`] the store must be exactly as
/// before `begin` — rows, files, vectors, secrets and ticket records alike.
pub trait Sink {
    /// The importing user's id.
    fn user_id(&self) -> &str;

    /// Starts the one transaction of an import.
    fn begin(&mut self) -> Result<(), StoreError>;
    /// Makes every write since `begin` permanent (files included).
    fn commit(&mut self) -> Result<(), StoreError>;
    /// Undoes every write since `begin`.
    fn rollback(&mut self) -> Result<(), StoreError>;

    /// Whether the store has this table (rows of absent tables are reported, not written).
    fn has_table(&mut self, table: &str) -> Result<bool, StoreError>;

    /// Called before the rows of a table arrive (even when there are
    /// none), so a store that creates tables on demand can create it.
    fn prepare_table(&mut self, spec: &TableSpec) -> Result<(), StoreError> {
        let _ = spec;
        Ok(())
    }

    /// The row of `table` whose single-column primary key `pk` equals `id`.
    fn get_row(&mut self, table: &str, pk: &str, id: &Value) -> Result<Option<RowMap>, StoreError>;

    /// Whether a row with this primary key exists (composite keys allowed).
    fn row_exists(&mut self, spec: &TableSpec, row: &RowMap) -> Result<bool, StoreError>;

    /// Inserts `row` unless its primary key exists ("insert or skip"); a
    /// row that violates another constraint is also skipped.
    fn insert_row(&mut self, spec: &TableSpec, row: &RowMap) -> Result<InsertOutcome, StoreError>;

    /// Sets one column of the row whose `id` is `id`, only if that row
    /// belongs to the importing user.
    fn set_column(
        &mut self,
        table: &str,
        id: &str,
        column: &str,
        value: Value,
    ) -> Result<bool, StoreError>;

    /// The importing user's stored value of a setting.
    fn get_setting(&mut self, key: &str) -> Result<Option<String>, StoreError>;
    /// Writes a setting of the importing user (insert or replace), with `updated_at`.
    fn put_setting(&mut self, key: &str, value: &str, updated_at: i64) -> Result<(), StoreError>;

    /// Sets `column` to NULL in the importing user's rows of `spec` where it
    /// names no row of `parent` (the post-import scrub). Returns rows changed.
    fn clear_dangling(
        &mut self,
        spec: &TableSpec,
        column: &str,
        parent: &str,
    ) -> Result<u64, StoreError>;

    /// A hint given right after [`Sink::begin`] of an import that writes:
    /// about `count` files holding `bytes` bytes in all will follow through
    /// [`Sink::write_file`] (fewer when some already exist). A store may
    /// prepare for them while rows are imported; the SQLite store creates
    /// its staging files on a background thread, so the cost of creating
    /// thousands of files overlaps with inserting rows. Default: ignored.
    fn expect_files(&mut self, count: u64, bytes: u64) -> Result<(), StoreError> {
        let _ = (count, bytes);
        Ok(())
    }

    /// Whether a file exists.
    fn file_exists(&mut self, path: &StorePath) -> Result<bool, StoreError>;
    /// Creates a file exclusively (an existing file wins: returns `false`).
    /// It becomes visible at commit.
    fn write_file(&mut self, path: &StorePath, data: &mut dyn Read) -> Result<bool, StoreError>;

    /// The importing user's embedding configuration.
    fn embedding_config(&mut self) -> Result<EmbeddingConfig, StoreError>;
    /// Inserts a vector row (with `user_id` set) unless its `id` exists.
    fn insert_vector(&mut self, table: &str, row: &RowMap) -> Result<InsertOutcome, StoreError>;
    /// Marks the user's chunks for re-vectorisation (embedding config mismatch).
    fn mark_for_revectorisation(&mut self) -> Result<(), StoreError>;

    /// Stores a secret of the importing user (overwriting a same-named one).
    fn put_secret(&mut self, key: &str, value: &str) -> Result<(), StoreError>;

    /// Records that a ticket was used (instance-wide, by archive id);
    /// returns the number of uses including this one and the previous use
    /// time, if any. Single use is the host's policy to enforce.
    fn consume_ticket(
        &mut self,
        archive_id: &str,
        fingerprint: &str,
        at: i64,
    ) -> Result<(u64, Option<i64>), StoreError>;
}
