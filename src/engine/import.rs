//! Import: an archive into a [`Sink`], planned (dry run) or applied inside
//! one transaction, with the server's policies and lvbak's corrections
//! (spec/FORMAT.md §11).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{Read, Seek};
use std::sync::Arc;

use serde_json::Value;

use super::{names, store, CancelToken, EngineError, Progress, ProgressFn};
use crate::archive::{Archive, StashedFiles};
use crate::domain::{self, DomainId, Owner, SettingMerge, TableSpec};
use crate::entry_name::{Bucket, EntryName};
use crate::envelope::{SecretSet, Ticket};
use crate::secrets::{self, SecretsOutcome, TicketPolicy};
use crate::store::{InsertOutcome, RowMap, Sink, StorePath};

/// What to import and how.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Domains to restore (`None`: all).
    pub domains: Option<BTreeSet<DomainId>>,
    /// Pull in the domains the selection depends on (`false`: refuse).
    pub pull_dependencies: bool,
    /// The decryption ticket, if any.
    pub ticket: Option<Ticket>,
    /// What to do when the ticket does not fit.
    pub ticket_policy: TicketPolicy,
    /// Plan only: read everything, write nothing.
    pub dry_run: bool,
    /// The import time stamped on settings (default: now).
    pub now: Option<i64>,
    /// A folder where the archive's file entries wait, in an anonymous
    /// temporary file, while the rows are written (they are restored
    /// after them): memory then stays flat however many files the archive
    /// holds. `None` (the default) keeps them in memory, about 120 bytes a
    /// file. The archive lists every entry again once the import returns.
    pub spill_dir: Option<std::path::PathBuf>,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            domains: None,
            pull_dependencies: true,
            ticket: None,
            ticket_policy: TicketPolicy::Cancel,
            dry_run: false,
            now: None,
            spill_dir: None,
        }
    }
}

/// Per-table outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableReport {
    /// Table name.
    pub table: String,
    /// Rows in the archive.
    pub rows: u64,
    /// Rows inserted (or, in a plan, to insert).
    pub inserted: u64,
    /// Rows skipped because their key exists (or another constraint).
    pub skipped_existing: u64,
    /// Rows skipped because they would hang under another user's data.
    pub skipped_foreign: u64,
    /// Settings merged into an existing value.
    pub merged: u64,
    /// Settings left as they were (already equal, or the target wins).
    pub unchanged: u64,
    /// Settings rows ignored (no key, or a secret-looking key).
    pub ignored: u64,
}

/// Per-bucket file outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileCounts {
    /// Files written (or to write).
    pub written: u64,
    /// Files that already existed (an existing file wins).
    pub existing: u64,
    /// Files refused (not a sound file, unsafe path).
    pub refused: u64,
    /// Bytes written (or to write).
    pub bytes: u64,
}

/// Vector outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VectorsReport {
    /// Whether the embedding configuration matched, so vectors were restored.
    pub restored: bool,
    /// Whether the user's chunks were marked for re-vectorisation instead.
    pub revectorise: bool,
    /// Vectors inserted.
    pub inserted: u64,
    /// Vectors skipped (id exists, or no vector value).
    pub skipped: u64,
}

/// Secrets outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretsReport {
    /// Key names listed in the archive's index.
    pub in_archive: Vec<String>,
    /// Secrets restored (or to restore).
    pub restored: Vec<String>,
    /// Why secrets were skipped, if they were.
    pub skipped: Option<String>,
    /// v1 records that failed to open, by key name.
    pub failures: Vec<String>,
    /// Fingerprint of the ticket used.
    pub ticket_fingerprint: Option<String>,
    /// Uses of this archive's ticket including this one (apply only).
    pub ticket_uses: Option<u64>,
    /// When the ticket was used before, if it was.
    pub previously_used_at: Option<i64>,
    /// Connection flags set to match restored keys (`table.column` of id).
    pub flags_set: u64,
}

/// What an import did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// A plan only.
    pub dry_run: bool,
    /// Domains restored (selection plus closure).
    pub domains: BTreeSet<DomainId>,
    /// Domains added because the selection depends on them.
    pub closure_added: BTreeSet<DomainId>,
    /// Per table, in import order.
    pub tables: Vec<TableReport>,
    /// Per bucket.
    pub files: BTreeMap<Bucket, FileCounts>,
    /// Vectors.
    pub vectors: VectorsReport,
    /// Secrets.
    pub secrets: SecretsReport,
    /// Tables in the archive that were not imported, with the reason.
    pub ignored_tables: Vec<(String, String)>,
    /// Dangling references cleared after the insert.
    pub dangling_cleared: u64,
    /// Nullable references to another user's rows cleared.
    pub foreign_refs_cleared: u64,
    /// Things worth telling the user.
    pub notes: Vec<String>,
}

impl ImportReport {
    /// Rows inserted per table (non-zero only), like the server's report.
    pub fn inserted(&self) -> BTreeMap<String, u64> {
        self.tables
            .iter()
            .filter(|t| t.inserted > 0)
            .map(|t| (t.table.clone(), t.inserted))
            .collect()
    }
}

/// Owners of parent rows looked up during one import, and of the rows it
/// inserted (bounded by clearing when large).
struct OwnerCache {
    /// The importing user, shared by the entries of the rows it owns.
    user: Arc<str>,
    /// Table → string id → owner.
    by_text: HashMap<&'static str, HashMap<Box<str>, Owned>>,
    /// Table → JSON text of any other id → owner.
    by_json: HashMap<&'static str, HashMap<Box<str>, Owned>>,
    len: usize,
}

/// The owner of a row (`None`: not in the sink, or no owner).
type Owned = Option<Arc<str>>;

impl OwnerCache {
    fn new(user: &str) -> OwnerCache {
        OwnerCache {
            user: user.into(),
            by_text: HashMap::new(),
            by_json: HashMap::new(),
            len: 0,
        }
    }

    fn owner<K: Sink + ?Sized>(
        &mut self,
        sink: &mut K,
        table: &'static str,
        id: &Value,
    ) -> Result<Owned, EngineError> {
        let (map, key) = self.slot(table, id);
        if let Some(o) = map.get(&*key) {
            return Ok(o.clone());
        }
        let o: Owned = owner_in_sink(sink, table, id, 0)?.map(Arc::from);
        self.remember(table, id, o.clone());
        Ok(o)
    }

    /// Records the owner of a row: looked up, or inserted by this import,
    /// so that a later row referring to it (a message's
    /// `parent_message_id` names the message before it) needs no look-up.
    fn remember(&mut self, table: &'static str, id: &Value, owner: Owned) {
        if self.len >= 65_536 {
            self.by_text.clear();
            self.by_json.clear();
            self.len = 0;
        }
        let (map, key) = self.slot(table, id);
        if map.insert(key.into(), owner).is_none() {
            self.len += 1;
        }
    }

    /// The map that holds `table`'s rows with ids like `id`, and `id`'s key
    /// there: a string id is keyed by its text, any other by its JSON.
    fn slot<'v>(
        &mut self,
        table: &'static str,
        id: &'v Value,
    ) -> (&mut HashMap<Box<str>, Owned>, std::borrow::Cow<'v, str>) {
        let (maps, key) = match id {
            Value::String(s) => (&mut self.by_text, s.as_str().into()),
            other => (&mut self.by_json, other.to_string().into()),
        };
        (maps.entry(table).or_default(), key)
    }
}

/// Owner of a row already in the sink, following `Via` chains.
fn owner_in_sink<K: Sink + ?Sized>(
    sink: &mut K,
    table: &str,
    id: &Value,
    depth: u8,
) -> Result<Option<String>, EngineError> {
    let Some(spec) = domain::table(table) else {
        return Ok(None);
    };
    let pk = spec.pk.first().copied().unwrap_or("id");
    let Some(row) = sink
        .get_row(table, pk, id)
        .map_err(store(format!("looking up {table}")))?
    else {
        return Ok(None);
    };
    Ok(match spec.owner {
        Owner::User => row
            .get("user_id")
            .and_then(Value::as_str)
            .map(str::to_owned),
        Owner::Installer => row
            .get("installed_by_user_id")
            .and_then(Value::as_str)
            .map(str::to_owned),
        Owner::Via { column, parent } if depth < 4 => match row.get(column) {
            Some(pid) if !pid.is_null() => owner_in_sink(sink, parent, pid, depth + 1)?,
            _ => None,
        },
        Owner::Via { .. } => None,
    })
}

/// Sound signatures the server accepts (FORMAT.md §8).
pub(crate) fn is_sound(head: &[u8]) -> bool {
    let mut b = [0u8; 16];
    let n = head.len().min(16);
    b[..n].copy_from_slice(&head[..n]);
    b.starts_with(b"ID3")
        || (b[0] == 0xFF && b[1] & 0xE0 == 0xE0 && (b[1] >> 3) & 3 != 1 && (b[1] >> 1) & 3 != 0)
        || (b[0] == 0xFF && (b[1] == 0xF1 || b[1] == 0xF9))
        || (b.starts_with(b"RIFF") && &b[8..12] == b"WAVE")
        || b.starts_with(b"OggS")
        || (&b[4..8] == b"ftyp"
            && [&b"M4A "[..], b"M4B ", b"mp42", b"mp41", b"isom", b"dash"].contains(&&b[8..12]))
}

fn rewrite_vector_id(id: &str, user: &str) -> String {
    match id.split_once(':') {
        Some((_, rest)) if rest.matches(':').count() >= 2 => format!("{user}:{rest}"),
        _ => id.to_owned(),
    }
}

/// Imports `archive` into `sink`.
///
/// Without `dry_run`, everything happens inside one sink transaction: on
/// any error or cancellation the sink is rolled back and left exactly as
/// it was. A ticket error with policy `cancel` stops before anything is
/// written. With `dry_run`, nothing is written and the report is the plan.
///
/// While the rows are written, the archive's file entries are set aside
/// (see [`ImportOptions::spill_dir`]); the files are then read from there
/// and the archive lists them again before this returns, failed or not,
/// which costs the memory of its whole directory once more at the end.
/// (Only if the temporary file they waited in cannot be read back does
/// the archive stay without them; the import then fails, with that error
/// or an earlier one.)
/// When the archive is not needed afterwards, [`import_owned`] skips the
/// restoring.
pub fn import<R: Read + Seek + Send, K: Sink + ?Sized>(
    archive: &mut Archive<R>,
    sink: &mut K,
    opts: &ImportOptions,
    progress: ProgressFn<'_>,
    cancel: &CancelToken,
) -> Result<ImportReport, EngineError> {
    import_with(archive, sink, opts, progress, cancel, true)
}

/// [`import`] of an archive the caller is done with: its file entries,
/// set aside while the rows are written, are never put back, so a large
/// archive's directory and the rows' working memory are never held at
/// once (with [`ImportOptions::spill_dir`] set, peak memory hardly grows
/// with the number of files). The same import otherwise.
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use lvbak::engine::{import_owned, CancelToken, ImportOptions};
/// use lvbak::store::memory::MemoryStore;
/// use lvbak::{Archive, Limits};
///
/// let archive = Archive::open(std::fs::File::open("backup.lvbak")?, Limits::default())?;
/// let mut store = MemoryStore::new("new-user");
/// let opts = ImportOptions {
///     spill_dir: Some(std::env::temp_dir()),
///     ..Default::default()
/// };
/// let report = import_owned(archive, &mut store, &opts, &mut |_| {}, &CancelToken::new())?;
/// println!("{} tables restored", report.tables.len());
/// # Ok(())
/// # }
/// ```
pub fn import_owned<R: Read + Seek + Send, K: Sink + ?Sized>(
    mut archive: Archive<R>,
    sink: &mut K,
    opts: &ImportOptions,
    progress: ProgressFn<'_>,
    cancel: &CancelToken,
) -> Result<ImportReport, EngineError> {
    import_with(&mut archive, sink, opts, progress, cancel, false)
}

fn import_with<R: Read + Seek + Send, K: Sink + ?Sized>(
    archive: &mut Archive<R>,
    sink: &mut K,
    opts: &ImportOptions,
    progress: ProgressFn<'_>,
    cancel: &CancelToken,
    restore: bool,
) -> Result<ImportReport, EngineError> {
    let all: BTreeSet<DomainId> = DomainId::ALL.into_iter().collect();
    let selected = opts.domains.clone().unwrap_or_else(|| all.clone());
    let (domains, added) = domain::closure(&selected);
    if !added.is_empty() && !opts.pull_dependencies {
        return Err(EngineError::MissingDependencies {
            selected: names(selected.iter().copied()),
            missing: names(added.iter().copied()),
        });
    }
    let mut report = ImportReport {
        dry_run: opts.dry_run,
        domains: domains.clone(),
        closure_added: added,
        ..ImportReport::default()
    };

    // Secrets first, before any write (the server waits for the ticket
    // before touching the database).
    let mut opened: Option<SecretSet> = None;
    if domains.contains(&DomainId::Secrets) {
        if let Some(info) = secrets::info(archive)? {
            report.secrets.in_archive = info.keys;
        }
        report.secrets.ticket_fingerprint =
            opts.ticket.as_ref().map(|t| t.fingerprint().to_owned());
        match secrets::open_with_policy(archive, opts.ticket.as_ref(), opts.ticket_policy)? {
            SecretsOutcome::None => {}
            SecretsOutcome::Skipped(why) => report.secrets.skipped = Some(why),
            SecretsOutcome::Opened(o) => {
                report.secrets.failures = o.failures.iter().map(|f| f.to_string()).collect();
                opened = Some(o.secrets);
            }
        }
    }

    if opts.dry_run {
        run(
            archive,
            sink,
            opts,
            &domains,
            opened.as_ref(),
            &mut report,
            progress,
            cancel,
            restore,
        )?;
        return Ok(report);
    }
    sink.begin().map_err(store("starting the transaction"))?;
    let result = run(
        archive,
        sink,
        opts,
        &domains,
        opened.as_ref(),
        &mut report,
        progress,
        cancel,
        restore,
    )
    // (The last chance to stop: a commit is never cut in half.)
    .and_then(|()| cancel.check())
    .and_then(|()| sink.commit().map_err(store("committing")));
    match result {
        Ok(()) => Ok(report),
        Err(e) => {
            if let Err(r) = sink.rollback() {
                return Err(EngineError::Store {
                    context: format!("rolling back after: {e}"),
                    source: r,
                });
            }
            Err(e)
        }
    }
}

/// What the phases of one import share: the sink, the choices, the report
/// being filled and the progress being reported.
struct Phases<'a, 'p, K: ?Sized> {
    sink: &'a mut K,
    domains: &'a BTreeSet<DomainId>,
    dry: bool,
    user: String,
    now: i64,
    report: &'a mut ImportReport,
    p: Progress,
    progress: ProgressFn<'p>,
    cancel: &'a CancelToken,
}

#[allow(clippy::too_many_arguments)]
fn run<R: Read + Seek + Send, K: Sink + ?Sized>(
    archive: &mut Archive<R>,
    sink: &mut K,
    opts: &ImportOptions,
    domains: &BTreeSet<DomainId>,
    secrets: Option<&SecretSet>,
    report: &mut ImportReport,
    progress: ProgressFn<'_>,
    cancel: &CancelToken,
    restore: bool,
) -> Result<(), EngineError> {
    let counts: HashMap<String, u64> = archive.merged_counts().iter().cloned().collect();
    let mut ph = Phases {
        dry: opts.dry_run,
        user: sink.user_id().to_owned(),
        now: opts.now.unwrap_or_else(super::export::now),
        sink,
        domains,
        report,
        p: Progress {
            phase: "tables",
            rows_total: archive
                .tables()
                .iter()
                .map(|t| counts.get(t).copied().unwrap_or(0))
                .sum(),
            entries_total: archive.entries().len() as u64,
            bytes_total: archive.entries().map(|e| e.uncompressed_size()).sum(),
            ..Progress::default()
        },
        progress,
        cancel,
    };
    let archive_tables: BTreeSet<String> = archive.tables().into_iter().collect();
    ph.note_ignored_tables(&archive_tables);

    // The file entries of the selected domains: counted and announced to
    // the sink now, restored after the rows.
    let (count, bytes) = archive
        .entries()
        .filter(|e| e.file().is_some_and(|(b, _)| ph.selected_bucket(b)))
        .fold((0u64, 0u64), |(n, b), e| {
            (n + 1, b.saturating_add(e.uncompressed_size()))
        });
    if !ph.dry && count > 0 {
        ph.sink
            .expect_files(count, bytes)
            .map_err(store("preparing for the files"))?;
    }

    // While rows are written, the file entries wait on the side (in a
    // temporary file with `spill_dir`): a large archive's directory and
    // the rows' working memory are not held at once. The files are then
    // read from there, and the entries put back (for `import`) whatever
    // happened.
    let mut stashed = archive.stash_files(opts.spill_dir.clone())?;
    let files = ph
        .rows(archive, &archive_tables)
        .and_then(|databank_paths| ph.files(archive, &mut stashed, &databank_paths));
    // The caller's archive lists its files again (not needed when the
    // archive was handed over, see `import_owned`).
    let restored = if restore {
        archive.unstash_files(stashed)
    } else {
        Ok(())
    };
    files?;
    restored?;

    ph.vectors(archive)?;
    if let Some(set) = secrets {
        ph.secrets(archive, set)?;
    }
    ph.p.phase = "commit";
    (ph.progress)(&ph.p);
    Ok(())
}

impl<K: Sink + ?Sized> Phases<'_, '_, K> {
    /// Whether the files of `bucket` belong to a selected domain.
    fn selected_bucket(&self, bucket: Bucket) -> bool {
        domain::bucket_domains(bucket)
            .iter()
            .any(|d| self.domains.contains(d))
    }

    /// Reports each table of the archive that is not imported, and why.
    fn note_ignored_tables(&mut self, archive_tables: &BTreeSet<String>) {
        for t in archive_tables {
            let why = match domain::table(t) {
                None if domain::NEVER.contains(&t.as_str()) => {
                    "never imported (not user data lvbak restores)".to_owned()
                }
                None => "not a table of any lvbak domain".to_owned(),
                Some(spec) if !self.domains.contains(&spec.domain) => {
                    format!("domain {} not selected", spec.domain)
                }
                Some(_) => continue,
            };
            self.report.ignored_tables.push((t.clone(), why));
        }
    }

    /// The rows of every selected table, then the dangling references
    /// cleared; returns where each databank document's row puts its file.
    fn rows<R: Read + Seek + Send>(
        &mut self,
        archive: &mut Archive<R>,
        archive_tables: &BTreeSet<String>,
    ) -> Result<HashMap<String, String>, EngineError> {
        let Phases {
            sink,
            domains,
            dry,
            user,
            now,
            report,
            p,
            progress,
            cancel,
        } = self;
        let (dry, now) = (*dry, *now);
        let mut databank_paths: HashMap<String, String> = HashMap::new();
        let mut owners = OwnerCache::new(user);
        for spec in domain::TABLES {
            if !domains.contains(&spec.domain) || !archive_tables.contains(spec.name) {
                continue;
            }
            if !sink
                .has_table(spec.name)
                .map_err(store(format!("checking table {}", spec.name)))?
            {
                report
                    .ignored_tables
                    .push((spec.name.to_owned(), "the target has no such table".into()));
                continue;
            }
            cancel.check()?;
            p.table = Some(spec.name.to_owned());
            progress(p);
            let mut tr = TableReport {
                table: spec.name.to_owned(),
                ..TableReport::default()
            };
            if !dry {
                sink.prepare_table(spec)
                    .map_err(store(format!("preparing table {}", spec.name)))?;
            }
            let mut consume = |line: u64, row: &mut RowMap| -> Result<(), EngineError> {
                tr.rows += 1;
                p.rows_done += 1;
                if p.rows_done % 1024 == 0 {
                    cancel.check()?;
                    progress(p);
                }
                if let Some((k, _)) = row.iter().find(|(_, v)| v.is_object() || v.is_array()) {
                    if spec.name != "settings" || k != "value" {
                        return Err(EngineError::Row {
                        table: spec.name.to_owned(),
                        line,
                        message: format!("column {k} holds a JSON object or array; the format stores JSON as text"),
                    });
                    }
                }
                if spec.name == "settings" {
                    return import_setting(*sink, row, dry, now, &mut tr);
                }
                import_row(*sink, spec, row, user, dry, &mut tr, report, &mut owners)?;
                if spec.name == "databank_documents" {
                    if let (Some(id), Some(fp)) = (
                        row.get("id").and_then(Value::as_str),
                        row.get("file_path").and_then(Value::as_str),
                    ) {
                        databank_paths.insert(id.to_owned(), fp.to_owned());
                    }
                }
                Ok(())
            };
            read_rows_pipelined(archive, spec.name, &mut consume)?;
            p.entries_done += 1;
            report.tables.push(tr);
        }

        // Dangling references (nullable, ON DELETE SET NULL) in the user's rows.
        if !dry {
            for spec in domain::TABLES {
                if !domains.contains(&spec.domain) || !archive_tables.contains(spec.name) {
                    continue;
                }
                for (col, parent) in spec.nullable_refs {
                    report.dangling_cleared += sink
                        .clear_dangling(spec, col, parent)
                        .map_err(store(format!("clearing {}.{col}", spec.name)))?;
                }
            }
        }
        Ok(databank_paths)
    }

    /// The files of the selected domains, read from where they were set
    /// aside (after the rows: a databank document goes where its row
    /// points, `databank_paths`).
    fn files<R: Read + Seek + Send>(
        &mut self,
        archive: &mut Archive<R>,
        stashed: &mut StashedFiles,
        databank_paths: &HashMap<String, String>,
    ) -> Result<(), EngineError> {
        let dry = self.dry;
        self.p.phase = "files";
        self.p.table = None;
        while let Some(e) = stashed.next_entry()? {
            let EntryName::File { bucket, name } = &e.name else {
                continue;
            };
            let (bucket, name, size) = (*bucket, name.as_str(), e.central.uncompressed_size);
            if !self.selected_bucket(bucket) {
                continue;
            }
            self.cancel.check()?;
            let counts = self.report.files.entry(bucket).or_default();
            let path = match bucket {
                Bucket::Databank => {
                    // lvbak restores the document where its row points (the server
                    // restores it under the archive name, which no row references).
                    let by_row = name
                        .split_once("__")
                        .and_then(|(id, _)| databank_paths.get(id))
                        .and_then(|fp| StorePath::databank(&self.user, fp));
                    by_row.or_else(|| StorePath::for_entry(bucket, &self.user, name))
                }
                _ => StorePath::for_entry(bucket, &self.user, name),
            };
            let Some(path) = path else {
                counts.refused += 1;
                self.report
                    .notes
                    .push(format!("files/{bucket}/{name}: unsafe path, not restored"));
                continue;
            };
            if self
                .sink
                .file_exists(&path)
                .map_err(store(format!("checking {path}")))?
            {
                counts.existing += 1;
                continue;
            }
            let mut r = archive.stashed_reader(&e)?;
            if bucket == Bucket::NotificationSounds {
                let mut head = [0u8; 16];
                let n = read_up_to(&mut r, &mut head).map_err(|e| {
                    EngineError::Archive(crate::container::ContainerError::from_io(e).into())
                })?;
                if !is_sound(&head[..n]) {
                    counts.refused += 1;
                    self.report.notes.push(format!(
                        "files/{bucket}/{name}: not a recognised sound file, not restored"
                    ));
                    continue;
                }
                if dry {
                    counts.written += 1;
                    counts.bytes += size;
                    continue;
                }
                let mut chained = (&head[..n]).chain(&mut r);
                if self
                    .sink
                    .write_file(&path, &mut chained)
                    .map_err(store(format!("writing {path}")))?
                {
                    counts.written += 1;
                    counts.bytes += size;
                } else {
                    counts.existing += 1;
                }
                continue;
            }
            if dry {
                counts.written += 1;
                counts.bytes += size;
                continue;
            }
            let mut checked = IoCheck {
                inner: &mut r,
                failure: None,
            };
            let wrote = match self.sink.write_file(&path, &mut checked) {
                Ok(w) => w,
                Err(e) => {
                    // An integrity failure of the archive is the archive's error, not the store's.
                    return Err(match checked.failure.take() {
                        Some(c) => EngineError::Archive(c.into()),
                        None => EngineError::Store {
                            context: format!("writing {path}"),
                            source: e,
                        },
                    });
                }
            };
            if wrote {
                counts.written += 1;
                counts.bytes += size;
            } else {
                counts.existing += 1;
            }
            self.p.bytes_done += size;
            self.p.entries_done += 1;
            (self.progress)(&self.p);
        }
        Ok(())
    }
    /// The vector rows, when the archive has them and the target's
    /// embedding configuration matches; otherwise the chunks are marked for
    /// re-vectorisation.
    fn vectors<R: Read + Seek + Send>(
        &mut self,
        archive: &mut Archive<R>,
    ) -> Result<(), EngineError> {
        let Phases {
            sink,
            domains,
            dry,
            user,
            report,
            p,
            progress,
            cancel,
            ..
        } = self;
        let (dry, user): (bool, &str) = (*dry, user);
        if archive.manifest().include_vectors && domains.contains(&DomainId::Vectors) {
            p.phase = "vectors";
            progress(p);
            let mine = sink
                .embedding_config()
                .map_err(store("reading the embedding configuration"))?;
            let theirs = &archive.manifest().embedding_config;
            let matches = mine.dimension.is_some()
                && mine.dimension == theirs.dimension
                && mine.provider == theirs.provider
                && mine.model == theirs.model;
            if matches {
                report.vectors.restored = true;
                for t in archive.vector_tables() {
                    if !domain::VECTOR_TABLES.contains(&t.as_str()) {
                        report.ignored_tables.push((
                            format!("lancedb:{t}"),
                            "not a vector table lvbak knows".into(),
                        ));
                        continue;
                    }
                    let mut rows = archive.vector_rows(&t)?;
                    while let Some((line, text)) = rows.next_line()? {
                        cancel.check()?;
                        let mut row: RowMap =
                            serde_json::from_str(text).map_err(|e| EngineError::Row {
                                table: format!("lancedb/{t}"),
                                line,
                                message: e.to_string(),
                            })?;
                        if row.get("vector_b64").is_none_or(Value::is_null) {
                            report.vectors.skipped += 1;
                            continue;
                        }
                        if let Some(id) = row
                            .get("id")
                            .and_then(Value::as_str)
                            .map(|s| rewrite_vector_id(s, user))
                        {
                            row.insert("id".into(), id.into());
                        }
                        row.insert("user_id".into(), user.into());
                        if dry {
                            report.vectors.inserted += 1;
                            continue;
                        }
                        match sink
                            .insert_vector(&t, &row)
                            .map_err(store(format!("inserting a vector into {t}")))?
                        {
                            InsertOutcome::Inserted => report.vectors.inserted += 1,
                            InsertOutcome::Skipped => report.vectors.skipped += 1,
                        }
                    }
                }
            } else {
                report.vectors.revectorise = true;
                if !dry {
                    sink.mark_for_revectorisation()
                        .map_err(store("marking chunks for re-vectorisation"))?;
                }
            }
        }
        Ok(())
    }

    /// The secrets opened from the envelope, last; the ticket's use is
    /// recorded first.
    fn secrets<R: Read + Seek + Send>(
        &mut self,
        archive: &mut Archive<R>,
        set: &SecretSet,
    ) -> Result<(), EngineError> {
        let Phases {
            sink,
            dry,
            now,
            report,
            p,
            progress,
            ..
        } = self;
        let (dry, now) = (*dry, *now);
        p.phase = "secrets";
        progress(p);
        if !dry {
            let id = archive.manifest().archive_id.clone();
            let fp = report
                .secrets
                .ticket_fingerprint
                .clone()
                .unwrap_or_default();
            let (uses, prev) = sink
                .consume_ticket(&id, &fp, now)
                .map_err(store("recording the ticket"))?;
            report.secrets.ticket_uses = Some(uses);
            report.secrets.previously_used_at = prev;
        }
        for s in set.iter() {
            if !dry {
                sink.put_secret(&s.key, s.expose_value())
                    .map_err(store(format!("storing secret {}", s.key)))?;
                if let Some((table, column, id)) = domain::secret_flag_target(&s.key) {
                    if sink
                        .set_column(table, id, column, Value::from(1))
                        .map_err(store(format!("setting {table}.{column}")))?
                    {
                        report.secrets.flags_set += 1;
                    }
                }
            }
            report.secrets.restored.push(s.key.clone());
        }
        Ok(())
    }
}

/// Reads, inflates, checks and parses a table's rows on a second thread
/// while the caller's thread writes them to the sink: the two halves of an
/// import overlap on two cores. Batches are bounded (256 rows or 1 MiB of
/// text) and at most four are in flight, so memory stays flat. Consumed
/// batches go back to the reading thread, which parses the next rows into
/// the rows they hold (`ndjson::parse_row_into`: a row of the same shape
/// reuses the keys and strings of the one before instead of allocating and
/// freeing them), and frees what it does not reuse on the thread that
/// allocated it (avoiding contention inside the system allocator).
fn read_rows_pipelined<R: Read + Seek + Send>(
    archive: &mut Archive<R>,
    table: &str,
    consume: &mut dyn FnMut(u64, &mut RowMap) -> Result<(), EngineError>,
) -> Result<(), EngineError> {
    type Batch = Result<Vec<(u64, RowMap)>, EngineError>;
    std::thread::scope(|sc| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Batch>(4);
        let (back_tx, back_rx) = std::sync::mpsc::sync_channel::<Vec<(u64, RowMap)>>(8);
        let producer = sc.spawn(move || {
            // A batch back from the consumer keeps its rows: the next rows
            // are parsed into them, reusing their allocations
            // (`parse_row_into`).
            let fresh = |back: &std::sync::mpsc::Receiver<Vec<(u64, RowMap)>>| {
                let mut spare = None;
                while let Ok(old) = back.try_recv() {
                    spare = Some(old);
                }
                spare.unwrap_or_else(|| Vec::with_capacity(256))
            };
            let mut rows = match archive.rows(table) {
                Ok(r) => r,
                Err(e) => {
                    let _ = tx.send(Err(e.into()));
                    return;
                }
            };
            let mut batch: Vec<(u64, RowMap)> = Vec::with_capacity(256);
            let mut used = 0usize;
            let mut bytes = 0usize;
            loop {
                match rows.next_line() {
                    Ok(Some((line, text))) => {
                        bytes += text.len();
                        let parsed = match batch.get_mut(used) {
                            Some(slot) => {
                                slot.0 = line;
                                crate::ndjson::parse_row_into(text, &mut slot.1)
                            }
                            None => serde_json::from_str::<RowMap>(text)
                                .map(|row| batch.push((line, row))),
                        };
                        if let Err(e) = parsed {
                            let _ = tx.send(Err(EngineError::Row {
                                table: table.to_owned(),
                                line,
                                message: format!("not a JSON object lvbak can read: {e}"),
                            }));
                            return;
                        }
                        used += 1;
                        if used >= 256 || bytes >= 1 << 20 {
                            bytes = 0;
                            batch.truncate(used);
                            used = 0;
                            let next = fresh(&back_rx);
                            if tx.send(Ok(std::mem::replace(&mut batch, next))).is_err() {
                                return;
                            }
                        }
                    }
                    Ok(None) => {
                        batch.truncate(used);
                        if !batch.is_empty() {
                            let _ = tx.send(Ok(batch));
                        }
                        return;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e.into()));
                        return;
                    }
                }
            }
        });
        let mut result = Ok(());
        'outer: for msg in rx.iter() {
            match msg {
                Ok(mut batch) => {
                    for (line, row) in batch.iter_mut() {
                        if let Err(e) = consume(*line, row) {
                            result = Err(e);
                            break 'outer;
                        }
                    }
                    // Back to the reader to free; if it has finished, here.
                    let _ = back_tx.try_send(batch);
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        drop(rx);
        if producer.join().is_err() && result.is_ok() {
            result = Err(EngineError::Row {
                table: table.to_owned(),
                line: 0,
                message: "the reading thread failed".into(),
            });
        }
        result
    })
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Passes reads through to the sink, keeping the archive's integrity
/// error (size, CRC, digest) so the engine can report it as such.
struct IoCheck<'a, R: Read> {
    inner: &'a mut R,
    failure: Option<crate::container::ContainerError>,
}

impl<R: Read> Read for IoCheck<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => Ok(n),
            Err(e) => {
                let c = crate::container::ContainerError::from_io(e);
                let msg = c.to_string();
                self.failure = Some(c);
                Err(std::io::Error::new(std::io::ErrorKind::InvalidData, msg))
            }
        }
    }
}

fn import_setting<K: Sink + ?Sized>(
    sink: &mut K,
    row: &RowMap,
    dry: bool,
    now: i64,
    tr: &mut TableReport,
) -> Result<(), EngineError> {
    let Some(key) = domain::setting_key(row) else {
        tr.ignored += 1;
        return Ok(());
    };
    let value = row.get("value").cloned().unwrap_or(Value::Null);
    let current = sink
        .get_setting(key)
        .map_err(store(format!("reading setting {key}")))?;
    match domain::merge_setting(current.as_deref(), &value) {
        SettingMerge::Insert(v) => {
            if !dry {
                sink.put_setting(key, &v, now)
                    .map_err(store(format!("writing setting {key}")))?;
            }
            tr.inserted += 1;
        }
        SettingMerge::Update(v) => {
            if !dry {
                sink.put_setting(key, &v, now)
                    .map_err(store(format!("writing setting {key}")))?;
            }
            tr.merged += 1;
        }
        SettingMerge::Keep => tr.unchanged += 1,
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn import_row<K: Sink + ?Sized>(
    sink: &mut K,
    spec: &TableSpec,
    row: &mut RowMap,
    user: &str,
    dry: bool,
    tr: &mut TableReport,
    report: &mut ImportReport,
    owners: &mut OwnerCache,
) -> Result<(), EngineError> {
    // Ownership is always the importing user's; the owner column is set
    // even when the archive row lacks it (never a NULL owner).
    for col in ["user_id", "installed_by_user_id"] {
        if row.contains_key(col) || spec.owner_column() == Some(col) {
            row.insert(col.into(), user.into());
        }
    }
    // Flags that mirror secrets start at 0; restored secrets set them to 1.
    for col in ["has_api_key", "has_headers"] {
        if row.contains_key(col) {
            row.insert(col.into(), Value::from(0));
        }
    }
    // Never hang a row under another user's data.
    let via = match spec.owner {
        Owner::Via { column, parent } => Some((column, parent)),
        Owner::User | Owner::Installer => None,
    };
    // The owner the sink will report for this row once inserted: the
    // importing user for rows with an owner column, the parent's owner for
    // rows owned through a parent.
    let mut row_owner = match via {
        Some(_) => None,
        None => Some(Arc::clone(&owners.user)),
    };
    for (col, parent) in spec.refs.iter().copied().chain(via) {
        if let Some(id) = row.get(col).filter(|v| !v.is_null()) {
            let found = owners.owner(sink, parent, id)?;
            if found.as_deref().is_some_and(|o| o != user) {
                tr.skipped_foreign += 1;
                return Ok(());
            }
            if via.is_some_and(|(column, _)| column == col) {
                row_owner = found;
            }
        }
    }
    for (col, parent) in spec.nullable_refs {
        let foreign = match row.get(*col).filter(|v| !v.is_null()) {
            Some(id) => owners.owner(sink, parent, id)?.is_some_and(|o| &*o != user),
            None => false,
        };
        if foreign {
            row.insert((*col).to_owned(), Value::Null);
            report.foreign_refs_cleared += 1;
        }
    }
    if dry {
        if sink
            .row_exists(spec, row)
            .map_err(store(format!("checking a row of {}", spec.name)))?
        {
            tr.skipped_existing += 1;
        } else {
            tr.inserted += 1;
        }
        return Ok(());
    }
    match sink
        .insert_row(spec, row)
        .map_err(store(format!("inserting into {}", spec.name)))?
    {
        InsertOutcome::Inserted => {
            tr.inserted += 1;
            // Owner look-ups go by the first key column (`owner_in_sink`).
            if let [pk] = spec.pk {
                if let Some(id) = row.get(*pk).filter(|v| !v.is_null()) {
                    owners.remember(spec.name, id, row_owner);
                }
            }
        }
        InsertOutcome::Skipped => tr.skipped_existing += 1,
    }
    Ok(())
}
