//! The engines: [`export`] (a [`Source`](crate::store::Source) into an
//! archive) and [`import`] (an archive into a [`Sink`](crate::store::Sink),
//! planned first, applied atomically), with progress and cancellation.

mod export;
mod import;

pub use export::{export, ExportOptions, ExportResult};
pub use import::{
    import, import_owned, FileCounts, ImportOptions, ImportReport, SecretsReport, TableReport,
    VectorsReport,
};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::archive::ArchiveError;
use crate::domain::DomainId;
use crate::secrets::SecretsError;
use crate::store::StoreError;

/// Errors of the engines.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Reading or writing the archive failed.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// The store failed.
    #[error("store: {context}: {source}")]
    Store {
        /// What the engine was doing.
        context: String,
        /// The store's error.
        source: StoreError,
    },
    /// The ticket or the envelope was refused (policy `cancel`).
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    /// Sealing secrets failed.
    #[error("sealing secrets: {0}")]
    Seal(#[from] crate::envelope::SealError),
    /// A row that is not a JSON object the store can take.
    #[error("{table} line {line}: {message}")]
    Row {
        /// The table.
        table: String,
        /// Line in its entry.
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// The selection needs domains that were not selected, and pulling
    /// dependencies in was not allowed.
    #[error(
        "restoring {selected} needs {missing} too; select them, or allow pulling dependencies in"
    )]
    MissingDependencies {
        /// The selection.
        selected: String,
        /// What it lacks.
        missing: String,
    },
    /// Cancelled through the [`CancelToken`].
    #[error("cancelled")]
    Cancelled,
}

pub(crate) fn store(context: impl Into<String>) -> impl FnOnce(StoreError) -> EngineError {
    let context = context.into();
    move |source| EngineError::Store { context, source }
}

/// A cancellation flag shared with the engine; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A token not yet cancelled.
    pub fn new() -> CancelToken {
        CancelToken::default()
    }
    /// Requests cancellation; the engine stops at its next check and (on
    /// import) rolls everything back.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    /// Whether cancellation was requested.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
    pub(crate) fn check(&self) -> Result<(), EngineError> {
        if self.is_cancelled() {
            Err(EngineError::Cancelled)
        } else {
            Ok(())
        }
    }
}

/// Where a long operation is, for progress bars.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// `tables`, `files`, `vectors`, `secrets`, `commit`, `done`.
    pub phase: &'static str,
    /// The table being worked on.
    pub table: Option<String>,
    /// Rows done so far.
    pub rows_done: u64,
    /// Rows expected (from the trailer on import; 0 when unknown).
    pub rows_total: u64,
    /// Entries done.
    pub entries_done: u64,
    /// Entries expected (0 when unknown).
    pub entries_total: u64,
    /// Uncompressed bytes done.
    pub bytes_done: u64,
    /// Uncompressed bytes expected (0 when unknown).
    pub bytes_total: u64,
}

/// A progress callback.
pub type ProgressFn<'a> = &'a mut dyn FnMut(&Progress);

/// Names of domains, comma-separated.
pub(crate) fn names(d: impl IntoIterator<Item = DomainId>) -> String {
    d.into_iter()
        .map(|x| x.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
