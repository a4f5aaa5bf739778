//! The embedded SQLite [`Source`] and [`Sink`] (feature `sqlite`).
//!
//! Works against a real Lumiverse database (tables and columns discovered
//! with `PRAGMA table_info`; archive columns the schema lacks are dropped,
//! as the server does) and against a new or empty file (tables created from
//! lvbak's table list and primary keys, with the columns the archive's rows
//! carry). Files live in a data directory laid out like the server's
//! (FORMAT.md §13.3); secrets are encrypted at rest with the instance's
//! identity file, like the server's.
//!
//! An import is one transaction (`BEGIN IMMEDIATE`); files are written to a
//! staging folder inside the data directory and moved into place only at
//! commit, so a failed or cancelled import leaves database and files as
//! they were.

pub mod identity;
mod staged;

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{params_from_iter, Connection, OptionalExtension};
use serde_json::{Number, Value};

use crate::domain::{self, Owner, TableSpec};
use crate::envelope::{Secret, SecretSet};
use crate::manifest::EmbeddingConfig;
use crate::store::{InsertOutcome, RowMap, Sink, Source, StoreError, StorePath};
use identity::Identity;
use staged::Staged;

fn sql(context: &str) -> impl FnOnce(rusqlite::Error) -> StoreError + '_ {
    move |e| StoreError::with_source(context.to_owned(), e)
}

fn q(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// The journal mode of every database lvbak opens (a new one's first
/// import runs with a rollback journal, then returns to this).
const WAL: &str = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;";

/// Page size of a database lvbak creates: 8 KiB. On the benchmark account
/// (messages of ~2.3 KB with their swipe) the database took 836 MB instead
/// of 1,248 MB at 4 KiB, and the import 5.7–6.3 s instead of 7.5–9.6 s.
pub const DEFAULT_NEW_PAGE_SIZE: u32 = 8192;

/// Names of the plain tables lvbak keeps vectors in (LanceDB is not
/// reachable from here; a Lumiverse instance keeps its vectors there).
pub fn vector_table_name(t: &str) -> String {
    format!("lvbak_vectors_{t}")
}

/// A SQLite database plus its data directory, acting for one user.
pub struct SqliteStore {
    conn: Connection,
    data_dir: PathBuf,
    user: String,
    identity: Option<Identity>,
    columns: HashMap<String, Arc<[String]>>,
    /// How rows are inserted into each table, for as long as they keep
    /// the column list of the row the plan was made for.
    plans: HashMap<String, InsertPlan>,
    live: bool,
    staging: Option<PathBuf>,
    /// Whether this import runs with a rollback journal (a new database).
    rollback_journal: bool,
    /// Page size given to a new, empty database at its first import.
    new_page_size: Option<u32>,
    staging_thread: Option<StagingThread>,
    /// Files written in this transaction, numbered (the staging file is
    /// `staging/N`, the destination derives from the store path: nothing
    /// else is kept per file).
    staged: Staged,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("data_dir", &self.data_dir)
            .field("user", &self.user)
            .field("live", &self.live)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (or creates) `db`, with files under `data_dir`, acting for `user`.
    /// The identity file is read from `data_dir` when present (and created
    /// there, like the server does, when secrets are first written).
    pub fn open(db: &Path, data_dir: &Path, user: &str) -> Result<SqliteStore, StoreError> {
        if !crate::store::safe_relative(user) || user.contains('/') {
            return Err(StoreError::new(format!(
                "user id {user:?} is not usable as a folder name"
            )));
        }
        fs::create_dir_all(data_dir)?;
        let conn = Connection::open(db).map_err(sql("opening the database"))?;
        conn.busy_timeout(std::time::Duration::from_millis(5000))
            .map_err(sql("setting busy_timeout"))?;
        conn.set_prepared_statement_cache_capacity(128);
        let live: bool = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='_migrations'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map_err(sql("reading the schema"))?
            > 0;
        if !live {
            conn.execute_batch(WAL).map_err(sql("setting pragmas"))?;
        }
        let identity = match fs::read(data_dir.join(identity::IDENTITY_FILE)) {
            Ok(b) => Some(
                Identity::parse(&b)
                    .map_err(|e| StoreError::with_source("reading the identity file", e))?,
            ),
            Err(_) => None,
        };
        Ok(SqliteStore {
            conn,
            data_dir: data_dir.to_owned(),
            user: user.to_owned(),
            identity,
            columns: HashMap::new(),
            plans: HashMap::new(),
            live,
            staging: None,
            rollback_journal: false,
            new_page_size: Some(DEFAULT_NEW_PAGE_SIZE),
            staging_thread: None,
            staged: Staged::default(),
        })
    }

    /// The page size a new, empty database gets at its first import
    /// ([`DEFAULT_NEW_PAGE_SIZE`] by default; `None` keeps SQLite's 4096,
    /// which the Lumiverse server's database uses). Rows of chat messages
    /// often run past 2 KiB with their swipes: two do not fit a 4 KiB
    /// page, so most of each page stays empty.
    pub fn set_new_database_page_size(&mut self, bytes: Option<u32>) {
        self.new_page_size = bytes.filter(|b| b.is_power_of_two() && (512..=65536).contains(b));
    }

    /// Whether this looks like a Lumiverse server database (has `_migrations`).
    pub fn is_lumiverse_database(&self) -> bool {
        self.live
    }

    /// The underlying connection (for hosts and tests).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    fn table_columns(&mut self, table: &str) -> Result<Arc<[String]>, StoreError> {
        if let Some(c) = self.columns.get(table) {
            return Ok(Arc::clone(c));
        }
        let mut stmt = self
            .conn
            .prepare(&format!("PRAGMA table_info({})", q(table)))
            .map_err(sql("reading table_info"))?;
        let cols: Vec<String> = stmt
            .query_map([], |r| r.get::<_, String>(1))
            .map_err(sql("reading table_info"))?
            .collect::<Result<_, _>>()
            .map_err(sql("reading table_info"))?;
        drop(stmt);
        let cols: Arc<[String]> = cols.into();
        if !cols.is_empty() {
            self.columns.insert(table.to_owned(), Arc::clone(&cols));
        }
        Ok(cols)
    }

    fn ensure_table(
        &mut self,
        table: &str,
        pk: &[&str],
        row: &RowMap,
    ) -> Result<Arc<[String]>, StoreError> {
        let mut cols = self.table_columns(table)?;
        if cols.is_empty() {
            let mut defs: Vec<String> = Vec::new();
            for c in pk {
                defs.push(q(c));
            }
            for k in row.keys() {
                if !pk.contains(&k.as_str()) {
                    defs.push(q(k));
                }
            }
            let sql_text = format!(
                "CREATE TABLE {} ({}, PRIMARY KEY ({}))",
                q(table),
                defs.join(", "),
                pk.iter().map(|c| q(c)).collect::<Vec<_>>().join(", ")
            );
            self.conn
                .execute(&sql_text, [])
                .map_err(sql("creating a table"))?;
            self.columns.remove(table);
            self.plans.remove(table);
            cols = self.table_columns(table)?;
        } else if !self.live && row.keys().any(|k| !cols.contains(k)) {
            let missing: Vec<String> = row.keys().filter(|k| !cols.contains(k)).cloned().collect();
            for k in missing {
                self.conn
                    .execute(
                        &format!("ALTER TABLE {} ADD COLUMN {}", q(table), q(&k)),
                        [],
                    )
                    .map_err(sql("adding a column"))?;
            }
            self.columns.remove(table);
            self.plans.remove(table);
            cols = self.table_columns(table)?;
        }
        Ok(cols)
    }

    fn owner_filter(&self, spec: &TableSpec) -> String {
        match spec.owner {
            Owner::User => "user_id = ?1".to_owned(),
            Owner::Installer => "installed_by_user_id = ?1 AND install_scope = 'user'".to_owned(),
            Owner::Via { column, parent } => format!(
                "{} IN (SELECT id FROM {} WHERE user_id = ?1)",
                q(column),
                q(parent)
            ),
        }
    }

    fn path(&self, p: &StorePath) -> PathBuf {
        self.path_of(p.as_str())
    }

    /// The file of a store path (already checked: `StorePath` or one of
    /// the staged, which were).
    fn path_of(&self, p: &str) -> PathBuf {
        let mut out = self.data_dir.clone();
        for seg in p.split('/') {
            out.push(seg);
        }
        out
    }

    fn ensure_meta(&mut self) -> Result<(), StoreError> {
        self.conn
            .execute_batch(
                "CREATE TABLE IF NOT EXISTS import_consumed_tickets (archive_id TEXT PRIMARY KEY, consumed_at INTEGER NOT NULL, user_id TEXT, uses INTEGER NOT NULL DEFAULT 1);
                 CREATE TABLE IF NOT EXISTS secrets (key TEXT NOT NULL, encrypted_value TEXT NOT NULL, iv TEXT NOT NULL, tag TEXT NOT NULL, updated_at INTEGER, user_id TEXT NOT NULL, PRIMARY KEY (key, user_id));",
            )
            .map_err(sql("creating lvbak's tables"))
    }

    fn identity(&mut self) -> Result<&Identity, StoreError> {
        if self.identity.is_none() {
            let id = Identity::load_or_create(&self.data_dir)
                .map_err(|e| StoreError::with_source("loading the identity file", e))?;
            self.identity = Some(id);
        }
        self.identity
            .as_ref()
            .ok_or_else(|| StoreError::new("no identity"))
    }
}

/// Moves the staged file `tmp` to `dest` unless something is at `dest` (a
/// file, a folder, a link, even one to nothing): true when it was placed.
/// Nothing at `dest` is ever replaced, even when it appears while the
/// import commits: the file is hard-linked there (refused when the name is
/// taken, in the same step), then its staged name removed. Where no hard
/// link can be made (a bucket folder on another file system, or a file
/// system without them) it is copied into a file created only if the name
/// is free.
fn place_new(tmp: &Path, dest: &Path) -> std::io::Result<bool> {
    use std::io::ErrorKind::AlreadyExists;
    match fs::hard_link(tmp, dest) {
        Ok(()) => {
            // (Left over, it goes with the staging folder.)
            let _ = fs::remove_file(tmp);
            return Ok(true);
        }
        Err(e) if e.kind() == AlreadyExists => return Ok(false),
        Err(_) => {}
    }
    let mut out = match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dest)
    {
        Ok(f) => f,
        Err(e) if e.kind() == AlreadyExists => return Ok(false),
        Err(e) => return Err(e),
    };
    let copied = fs::File::open(tmp).and_then(|mut f| std::io::copy(&mut f, &mut out));
    drop(out);
    match copied {
        Ok(_) => {
            let _ = fs::remove_file(tmp);
            Ok(true)
        }
        Err(e) => {
            let _ = fs::remove_file(dest);
            Err(e)
        }
    }
}

fn to_json(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::from(i),
        ValueRef::Real(f) => {
            if f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 {
                Value::from(f as i64)
            } else {
                Number::from_f64(f)
                    .map(Value::Number)
                    .unwrap_or(Value::Null)
            }
        }
        ValueRef::Text(t) => Value::String(match std::str::from_utf8(t) {
            Ok(s) => s.to_owned(),
            Err(_) => String::from_utf8_lossy(t).into_owned(),
        }),
        ValueRef::Blob(b) => Value::String(base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            b,
        )),
    }
}

/// Whether `row` has exactly `keys`, in that order.
fn same_keys(row: &RowMap, keys: &[String]) -> bool {
    row.len() == keys.len() && row.keys().zip(keys).all(|(a, b)| a == b)
}

/// Sets `v` to the JSON form of an SQL value, as [`to_json`] makes it,
/// reusing the string `v` holds for text.
fn set_json(v: &mut Value, from: ValueRef<'_>) {
    match (v, from) {
        (Value::String(s), ValueRef::Text(t)) => match std::str::from_utf8(t) {
            Ok(text) => {
                s.clear();
                s.push_str(text);
            }
            Err(_) => *s = String::from_utf8_lossy(t).into_owned(),
        },
        (v, from) => *v = to_json(from),
    }
}

fn to_sql(v: &Value) -> SqlValue {
    match v {
        Value::Null => SqlValue::Null,
        Value::Bool(b) => SqlValue::Integer(i64::from(*b)),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => SqlValue::Integer(i),
            (None, Some(f)) => SqlValue::Real(f),
            _ => SqlValue::Text(n.to_string()),
        },
        Value::String(s) => SqlValue::Text(s.clone()),
        other => SqlValue::Text(other.to_string()),
    }
}

impl SqliteStore {
    fn scan_query(
        &mut self,
        query: &str,
        params: &[&dyn rusqlite::ToSql],
        f: &mut dyn FnMut(&mut RowMap) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(query)
            .map_err(sql("preparing a read"))?;
        let names: Vec<String> = stmt.column_names().into_iter().map(str::to_owned).collect();
        let mut rows = stmt.query(params).map_err(sql("reading rows"))?;
        // One map for every row: while the callback leaves its keys as they
        // were, each row overwrites the values in place, reusing strings.
        let mut m = RowMap::with_capacity(names.len());
        while let Some(r) = rows.next().map_err(sql("reading rows"))? {
            if same_keys(&m, &names) {
                for (i, v) in m.values_mut().enumerate() {
                    set_json(v, r.get_ref(i).map_err(sql("reading a value"))?);
                }
            } else {
                m.clear();
                for (i, n) in names.iter().enumerate() {
                    m.insert(
                        n.clone(),
                        to_json(r.get_ref(i).map_err(sql("reading a value"))?),
                    );
                }
            }
            f(&mut m)?;
        }
        Ok(())
    }
}

impl SqliteStore {
    /// `INSERT OR IGNORE` of a row's columns that the table has (creating
    /// the table or adding columns first for a database of lvbak's own),
    /// through a cached statement. Values are bound by reference (no copy
    /// of a row's text). Rows with the column list of the row before them,
    /// nearly all, reuse its plan without looking at the schema again.
    fn insert_or_ignore(
        &mut self,
        table: &str,
        pk: &[&str],
        row: &RowMap,
    ) -> Result<InsertOutcome, StoreError> {
        let fits = self
            .plans
            .get(table)
            .is_some_and(|p| same_keys(row, &p.row_keys));
        if !fits {
            let cols = self.ensure_table(table, pk, row)?;
            // Columns the schema lacks are dropped, as the server does.
            let used: Vec<bool> = row.keys().map(|k| cols.contains(k)).collect();
            let names: Vec<String> = row
                .keys()
                .zip(&used)
                .filter(|(_, u)| **u)
                .map(|(k, _)| q(k))
                .collect();
            let text = (!names.is_empty()).then(|| {
                format!(
                    "INSERT OR IGNORE INTO {} ({}) VALUES ({})",
                    q(table),
                    names.join(", "),
                    (1..=names.len())
                        .map(|i| format!("?{i}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            });
            let plan = InsertPlan {
                row_keys: row.keys().cloned().collect(),
                used,
                sql: text,
            };
            self.plans.insert(table.to_owned(), plan);
        }
        let Some(plan) = self.plans.get(table) else {
            return Ok(InsertOutcome::Skipped);
        };
        let Some(text) = plan.sql.as_deref() else {
            return Ok(InsertOutcome::Skipped);
        };
        let mut stmt = self
            .conn
            .prepare_cached(text)
            .map_err(sql("preparing an insert"))?;
        let values = row
            .values()
            .zip(&plan.used)
            .filter(|(_, u)| **u)
            .map(|(v, _)| Bind(v));
        let n = stmt
            .execute(params_from_iter(values))
            .map_err(|e| StoreError::with_source(format!("inserting into {table}"), e))?;
        Ok(if n == 1 {
            InsertOutcome::Inserted
        } else {
            InsertOutcome::Skipped
        })
    }
}

/// How the rows of one table are inserted while they keep one column list.
struct InsertPlan {
    /// The keys, in order, of the row the plan was made for.
    row_keys: Vec<String>,
    /// Which of them the table has.
    used: Vec<bool>,
    /// The statement; `None` when the table has none of the columns.
    sql: Option<String>,
}

/// A JSON value bound as an SQL parameter without copying its text.
struct Bind<'a>(&'a Value);

impl rusqlite::ToSql for Bind<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::ToSqlOutput;
        Ok(match self.0 {
            Value::String(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            other => ToSqlOutput::Owned(to_sql(other)),
        })
    }
}

impl Source for SqliteStore {
    fn user_id(&self) -> &str {
        &self.user
    }

    fn begin_snapshot(&mut self) -> Result<(), StoreError> {
        // A deferred transaction whose first read fixes the WAL snapshot.
        self.conn
            .execute_batch("BEGIN DEFERRED; SELECT count(*) FROM sqlite_master;")
            .map_err(sql("starting the read snapshot"))
    }

    fn end_snapshot(&mut self) -> Result<(), StoreError> {
        if self.conn.is_autocommit() {
            return Ok(());
        }
        self.conn
            .execute_batch("COMMIT")
            .map_err(sql("ending the read snapshot"))
    }

    fn has_table(&mut self, table: &str) -> Result<bool, StoreError> {
        Ok(!self.table_columns(table)?.is_empty())
    }

    fn scan_rows(
        &mut self,
        spec: &TableSpec,
        f: &mut dyn FnMut(&mut RowMap) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let query = format!(
            "SELECT * FROM {} WHERE {}",
            q(spec.name),
            self.owner_filter(spec)
        );
        let user = self.user.clone();
        self.scan_query(&query, &[&user], f)
    }

    fn open_file(&mut self, path: &StorePath) -> Result<Option<Box<dyn Read + '_>>, StoreError> {
        match fs::File::open(self.path(path)) {
            Ok(f) if f.metadata().map(|m| m.is_file()).unwrap_or(false) => Ok(Some(Box::new(
                std::io::BufReader::with_capacity(256 * 1024, f),
            ))),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn scan_vectors(
        &mut self,
        table: &str,
        f: &mut dyn FnMut(&mut RowMap) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let t = vector_table_name(table);
        if self.table_columns(&t)?.is_empty() {
            return Ok(());
        }
        let query = format!(
            "SELECT id, source_type, source_id, owner_id, chunk_index, content, metadata_json, updated_at, vector_b64 FROM {} WHERE user_id = ?1 ORDER BY id",
            q(&t)
        );
        let user = self.user.clone();
        self.scan_query(&query, &[&user], f)
    }

    fn secrets(&mut self) -> Result<SecretSet, StoreError> {
        if self.table_columns("secrets")?.is_empty() {
            return Ok(SecretSet::new());
        }
        let mut rows: Vec<(String, String, String, String)> = Vec::new();
        {
            let mut stmt = self
                .conn
                .prepare("SELECT key, encrypted_value, iv, tag FROM secrets WHERE user_id = ?1 ORDER BY key")
                .map_err(sql("reading secrets"))?;
            let it = stmt
                .query_map([&self.user], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .map_err(sql("reading secrets"))?;
            for r in it {
                rows.push(r.map_err(sql("reading secrets"))?);
            }
        }
        if rows.is_empty() {
            return Ok(SecretSet::new());
        }
        let Some(id) = self.identity.as_ref() else {
            return Err(StoreError::new(format!(
                "the user has {} stored secrets but {} is missing: secrets cannot be decrypted without the instance identity",
                rows.len(),
                self.data_dir.join(identity::IDENTITY_FILE).display()
            )));
        };
        let mut set = SecretSet::new();
        for (k, v, iv, tag) in rows {
            let value = id
                .decrypt(&k, &v, &iv, &tag)
                .map_err(|e| StoreError::with_source("decrypting a secret", e))?;
            set.push(Secret::new(k, value.to_string()));
        }
        Ok(set)
    }

    fn embedding_config(&mut self) -> Result<EmbeddingConfig, StoreError> {
        let v = Sink::get_setting(self, "embeddingConfig")?;
        let Some(v) = v.and_then(|t| serde_json::from_str::<Value>(&t).ok()) else {
            return Ok(EmbeddingConfig {
                provider: Some("openai-compatible".into()),
                model: None,
                dimension: None,
            });
        };
        Ok(EmbeddingConfig {
            provider: v
                .get("provider")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .or(Some("openai-compatible".into())),
            model: v.get("model").and_then(Value::as_str).map(str::to_owned),
            dimension: v.get("dimensions").and_then(Value::as_u64),
        })
    }
}

impl Sink for SqliteStore {
    fn user_id(&self) -> &str {
        &self.user
    }

    fn begin(&mut self) -> Result<(), StoreError> {
        if self.staging.is_some() {
            return Err(StoreError::new("a transaction is already open"));
        }
        // A new, empty database file of lvbak's own: a rollback journal
        // during the import writes each new page once (WAL would write it
        // twice, to the log and again at the checkpoint), and pages appended
        // to the file need no journal entry. WAL again after the import. A
        // database holding anything keeps its mode, so that a failed import
        // leaves its file byte for byte as it was.
        self.rollback_journal = !self.live
            && self
                .conn
                .query_row("SELECT count(*) FROM sqlite_master", [], |r| {
                    r.get::<_, i64>(0)
                })
                .map_err(sql("reading the schema"))?
                == 0;
        if self.rollback_journal {
            let _ = self.conn.execute_batch("PRAGMA journal_mode=DELETE;");
            if let Some(bytes) = self.new_page_size {
                // Only an empty database takes a new page size (VACUUM
                // applies it; nothing to copy yet).
                let _ = self
                    .conn
                    .execute_batch(&format!("PRAGMA page_size={bytes}; VACUUM;"));
            }
        }
        // The staging folder: a new name of this import's own, made before
        // the transaction starts (a folder of that name that exists is an
        // error, never emptied: it is not ours).
        let staging = self
            .data_dir
            .join(format!(".lvbak-staging-{}", uuid::Uuid::new_v4()));
        let made = fs::create_dir_all(&self.data_dir).and_then(|()| fs::create_dir(&staging));
        if let Err(e) = made {
            self.back_to_wal();
            return Err(e.into());
        }
        // Like the server, references are not enforced while rows arrive in
        // an order that may put a child before its parent. lvbak's own
        // tables are made inside the transaction, so a failed import leaves
        // the schema as it was.
        let started = self
            .conn
            .execute_batch("PRAGMA foreign_keys=OFF; BEGIN IMMEDIATE;")
            .map_err(sql("starting the transaction"))
            .and_then(|()| self.ensure_meta());
        if let Err(e) = started {
            let _ = self.roll_back_rows();
            self.back_to_wal();
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
        self.staged = Staged::in_folder(&staging);
        self.staging = Some(staging);
        Ok(())
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        let Some(staging) = self.staging.take() else {
            return Err(StoreError::new("commit without begin"));
        };
        // Every staged file written (or the first error), then move them
        // into place (exclusively), then commit the rows.
        let mut failure: Option<StoreError> = self.stop_staging_thread().err();
        let mut staged = std::mem::take(&mut self.staged);
        // Which staged files were moved into place (a flag each, not their
        // paths: the paths are walked again to undo a failed commit).
        let mut placed = vec![false; staged.len()];
        let mut made_dir: Option<PathBuf> = None;
        // Folders this commit created, parents first (removed again, when
        // empty, if it fails).
        let mut new_dirs: Vec<PathBuf> = Vec::new();
        let walked = staged.for_each(&mut |n, path| {
            if failure.is_some() {
                return Ok(());
            }
            let tmp = staging.join(format!("{n}"));
            let dest = self.path_of(path);
            if let Some(parent) = dest.parent() {
                if made_dir.as_deref() != Some(parent) {
                    let missing = parent
                        .ancestors()
                        .take_while(|d| fs::symlink_metadata(d).is_err())
                        .map(Path::to_path_buf)
                        .collect::<Vec<_>>();
                    new_dirs.extend(missing.into_iter().rev());
                    if let Err(e) = fs::create_dir_all(parent) {
                        failure = Some(e.into());
                        return Ok(());
                    }
                    made_dir = Some(parent.to_owned());
                }
            }
            // An existing file wins.
            match place_new(&tmp, &dest) {
                Ok(true) => {
                    if let Some(p) = placed.get_mut(n) {
                        *p = true;
                    }
                }
                Ok(false) => {}
                Err(e) => failure = Some(e.into()),
            }
            Ok(())
        });
        if let Err(e) = walked {
            failure.get_or_insert(e.into());
        }
        if failure.is_none() {
            if let Err(e) = self.conn.execute_batch("COMMIT; PRAGMA foreign_keys=ON;") {
                failure = Some(StoreError::with_source("committing", e));
            } else {
                self.back_to_wal();
            }
        }
        if failure.is_some() {
            let _ = staged.for_each(&mut |n, path| {
                if placed.get(n).copied().unwrap_or(false) {
                    let _ = fs::remove_file(self.path_of(path));
                }
                Ok(())
            });
            // Deepest first; a folder something else wrote into stays.
            for d in new_dirs.iter().rev() {
                let _ = fs::remove_dir(d);
            }
        }
        // (The log's file, if any, is in the staging folder.)
        drop(staged);
        let _ = fs::remove_dir_all(&staging);
        if let Some(f) = failure {
            let _ = self.roll_back_rows();
            return Err(f);
        }
        Ok(())
    }

    fn rollback(&mut self) -> Result<(), StoreError> {
        let staging = self.staging.take();
        let _ = self.stop_staging_thread();
        self.staged = Staged::default();
        let r = self.roll_back_rows();
        if let Some(s) = staging {
            let _ = fs::remove_dir_all(s);
        }
        r.map_err(sql("rolling back"))
    }

    fn has_table(&mut self, table: &str) -> Result<bool, StoreError> {
        // A new database takes every table; a Lumiverse one only those it has.
        Ok(!self.live || !self.table_columns(table)?.is_empty())
    }

    fn prepare_table(&mut self, spec: &TableSpec) -> Result<(), StoreError> {
        if self.live || !self.table_columns(spec.name)?.is_empty() {
            return Ok(());
        }
        let mut row = RowMap::new();
        for c in spec.pk {
            row.insert((*c).to_owned(), Value::Null);
        }
        if let Some(c) = spec.owner_column() {
            row.insert(c.to_owned(), Value::Null);
        }
        if spec.owner == Owner::Installer {
            row.insert("install_scope".into(), Value::Null);
        }
        if spec.name == "settings" {
            row.insert("value".into(), Value::Null);
            row.insert("updated_at".into(), Value::Null);
        }
        self.ensure_table(spec.name, spec.pk, &row).map(|_| ())
    }

    fn get_row(&mut self, table: &str, pk: &str, id: &Value) -> Result<Option<RowMap>, StoreError> {
        let cols = self.table_columns(table)?;
        if cols.is_empty() || !cols.iter().any(|c| c == pk) {
            return Ok(None);
        }
        let query = format!("SELECT * FROM {} WHERE {} = ?1", q(table), q(pk));
        let mut out = None;
        self.scan_query(&query, &[&to_sql(id)], &mut |r| {
            out = Some(std::mem::take(r));
            Ok(())
        })?;
        Ok(out)
    }

    fn row_exists(&mut self, spec: &TableSpec, row: &RowMap) -> Result<bool, StoreError> {
        let cols = self.table_columns(spec.name)?;
        if cols.is_empty() {
            return Ok(false);
        }
        let cond: Vec<String> = spec
            .pk
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{} IS ?{}", q(c), i + 1))
            .collect();
        let query = format!(
            "SELECT 1 FROM {} WHERE {}",
            q(spec.name),
            cond.join(" AND ")
        );
        let params: Vec<SqlValue> = spec
            .pk
            .iter()
            .map(|c| row.get(*c).map(to_sql).unwrap_or(SqlValue::Null))
            .collect();
        let mut stmt = self
            .conn
            .prepare_cached(&query)
            .map_err(sql("checking a row"))?;
        let found = stmt
            .query_row(params_from_iter(params), |_| Ok(()))
            .optional()
            .map_err(sql("checking a row"))?;
        Ok(found.is_some())
    }

    fn insert_row(&mut self, spec: &TableSpec, row: &RowMap) -> Result<InsertOutcome, StoreError> {
        self.insert_or_ignore(spec.name, spec.pk, row)
    }

    fn set_column(
        &mut self,
        table: &str,
        id: &str,
        column: &str,
        value: Value,
    ) -> Result<bool, StoreError> {
        let Some(spec) = domain::table(table) else {
            return Ok(false);
        };
        let cols = self.table_columns(table)?;
        if !cols.iter().any(|c| c == column) {
            return Ok(false);
        }
        let query = format!(
            "UPDATE {} SET {} = ?2 WHERE id = ?3 AND {}",
            q(table),
            q(column),
            self.owner_filter(spec)
        );
        let n = self
            .conn
            .execute(&query, rusqlite::params![self.user, to_sql(&value), id])
            .map_err(sql("updating a column"))?;
        Ok(n > 0)
    }

    fn get_setting(&mut self, key: &str) -> Result<Option<String>, StoreError> {
        if self.table_columns("settings")?.is_empty() {
            return Ok(None);
        }
        self.conn
            .query_row(
                "SELECT value FROM settings WHERE key = ?1 AND user_id = ?2",
                [key, &self.user],
                |r| Ok(to_json(r.get_ref(0)?)),
            )
            .optional()
            .map(|v| v.map(|v| domain::setting_text(&v)))
            .map_err(sql("reading a setting"))
    }

    fn put_setting(&mut self, key: &str, value: &str, updated_at: i64) -> Result<(), StoreError> {
        let mut row = RowMap::new();
        row.insert("key".into(), key.into());
        row.insert("value".into(), value.into());
        row.insert("updated_at".into(), updated_at.into());
        row.insert("user_id".into(), self.user.clone().into());
        self.ensure_table("settings", &["key", "user_id"], &row)?;
        self.conn
            .execute(
                "INSERT INTO settings (key, value, updated_at, user_id) VALUES (?1, ?2, ?3, ?4) ON CONFLICT(key, user_id) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                rusqlite::params![key, value, updated_at, self.user],
            )
            .map_err(sql("writing a setting"))?;
        Ok(())
    }

    fn clear_dangling(
        &mut self,
        spec: &TableSpec,
        column: &str,
        parent: &str,
    ) -> Result<u64, StoreError> {
        let cols = self.table_columns(spec.name)?;
        if !cols.iter().any(|c| c == column) {
            return Ok(0);
        }
        let parent_exists = !self.table_columns(parent)?.is_empty();
        let missing = if parent_exists {
            format!("NOT IN (SELECT id FROM {})", q(parent))
        } else {
            "IS NOT NULL".into()
        };
        let query = format!(
            "UPDATE {} SET {c} = NULL WHERE {c} IS NOT NULL AND {c} {missing} AND {}",
            q(spec.name),
            self.owner_filter(spec),
            c = q(column)
        );
        let n = self
            .conn
            .execute(&query, [&self.user])
            .map_err(sql("clearing dangling references"))?;
        Ok(n as u64)
    }

    fn expect_files(&mut self, count: u64, _bytes: u64) -> Result<(), StoreError> {
        let Some(staging) = self.staging.clone() else {
            return Err(StoreError::new("expect_files outside a transaction"));
        };
        self.stop_staging_thread()?;
        let first = self.staged.len();
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        self.staging_thread = Some(StagingThread::start(staging, first, count));
        Ok(())
    }

    fn file_exists(&mut self, path: &StorePath) -> Result<bool, StoreError> {
        // Anything at the name counts, a link to nothing included.
        Ok(self.staged.contains(path.as_str())? || fs::symlink_metadata(self.path(path)).is_ok())
    }

    fn write_file(&mut self, path: &StorePath, data: &mut dyn Read) -> Result<bool, StoreError> {
        if self.file_exists(path)? {
            return Ok(false);
        }
        let Some(staging) = self.staging.clone() else {
            return Err(StoreError::new("write_file outside a transaction"));
        };
        let index = self.staged.len();
        let dest = self.path(path);
        if !dest.starts_with(&self.data_dir) {
            return Err(StoreError::new(format!(
                "{path} would leave the data directory"
            )));
        }
        let tmp = staging.join(format!("{index}"));
        let mut head = Vec::new();
        if let Some(p) = self.staging_thread.as_ref().filter(|p| p.covers(index)) {
            // A small file goes to the staging thread whole (read and
            // checked here); a larger one is written below.
            data.take(HANDOFF_MAX as u64 + 1).read_to_end(&mut head)?;
            if head.len() <= HANDOFF_MAX {
                match p.hand_over(index, head) {
                    Ok(()) => {
                        self.staged.insert(path.as_str())?;
                        return Ok(true);
                    }
                    Err(back) => head = back,
                }
            }
        }
        let mut f = match &self.staging_thread {
            // Created empty by the staging thread (or it stopped creating
            // and nothing else writes this name in our staging folder).
            Some(p) if p.wait_for(index) => fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)?,
            _ => fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)?,
        };
        std::io::Write::write_all(&mut f, &head)?;
        std::io::copy(data, &mut f)?;
        self.staged.insert(path.as_str())?;
        Ok(true)
    }

    fn embedding_config(&mut self) -> Result<EmbeddingConfig, StoreError> {
        Source::embedding_config(self)
    }

    fn insert_vector(&mut self, table: &str, row: &RowMap) -> Result<InsertOutcome, StoreError> {
        let t = vector_table_name(table);
        let mut full = RowMap::new();
        for k in [
            "id",
            "user_id",
            "source_type",
            "source_id",
            "owner_id",
            "chunk_index",
            "content",
            "metadata_json",
            "updated_at",
            "vector_b64",
        ] {
            full.insert(k.into(), row.get(k).cloned().unwrap_or(Value::Null));
        }
        self.insert_or_ignore(&t, &["id"], &full)
    }

    fn mark_for_revectorisation(&mut self) -> Result<(), StoreError> {
        for &(table, resets) in domain::REVECTORISE {
            let Some(spec) = domain::table(table) else {
                continue;
            };
            let cols = self.table_columns(table)?;
            if cols.is_empty() || !resets.iter().all(|(c, _)| cols.iter().any(|x| x == c)) {
                continue;
            }
            let set: Vec<String> = resets
                .iter()
                .enumerate()
                .map(|(i, (c, _))| format!("{} = ?{}", q(c), i + 2))
                .collect();
            let query = format!(
                "UPDATE {} SET {} WHERE {}",
                q(table),
                set.join(", "),
                self.owner_filter(spec)
            );
            let mut params: Vec<SqlValue> = vec![SqlValue::Text(self.user.clone())];
            params.extend(resets.iter().map(|(_, v)| to_sql(&v.to_value())));
            self.conn
                .execute(&query, params_from_iter(params))
                .map_err(sql("marking chunks for re-vectorisation"))?;
        }
        Ok(())
    }

    fn put_secret(&mut self, key: &str, value: &str) -> Result<(), StoreError> {
        let (v, iv, tag) = self
            .identity()?
            .encrypt(value)
            .map_err(|e| StoreError::with_source("encrypting a secret", e))?;
        self.conn
            .execute(
                "INSERT INTO secrets (key, encrypted_value, iv, tag, updated_at, user_id) VALUES (?1, ?2, ?3, ?4, unixepoch(), ?5)
                 ON CONFLICT(key, user_id) DO UPDATE SET encrypted_value = excluded.encrypted_value, iv = excluded.iv, tag = excluded.tag, updated_at = excluded.updated_at",
                rusqlite::params![key, v, iv, tag, self.user],
            )
            .map_err(sql("storing a secret"))?;
        Ok(())
    }

    fn consume_ticket(
        &mut self,
        archive_id: &str,
        _fingerprint: &str,
        at: i64,
    ) -> Result<(u64, Option<i64>), StoreError> {
        let prev: Option<(i64, i64)> = self
            .conn
            .query_row(
                "SELECT uses, consumed_at FROM import_consumed_tickets WHERE archive_id = ?1",
                [archive_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(sql("reading ticket uses"))?;
        self.conn
            .execute(
                "INSERT INTO import_consumed_tickets (archive_id, consumed_at, user_id, uses) VALUES (?1, ?2, ?3, 1)
                 ON CONFLICT(archive_id) DO UPDATE SET consumed_at = excluded.consumed_at, user_id = excluded.user_id, uses = uses + 1",
                rusqlite::params![archive_id, at, self.user],
            )
            .map_err(sql("recording the ticket"))?;
        Ok(match prev {
            Some((uses, when)) => (uses as u64 + 1, Some(when)),
            None => (1, None),
        })
    }
}

impl SqliteStore {
    /// The journal mode again after an import that ran with a rollback
    /// journal (a new database); nothing otherwise.
    fn back_to_wal(&mut self) {
        if std::mem::take(&mut self.rollback_journal) {
            let _ = self.conn.execute_batch(WAL);
        }
    }

    /// Rolls the transaction back, with what the store learnt of the schema
    /// in it (columns, insert plans: tables and columns it added are gone).
    /// A transaction SQLite already rolled back itself (it does on a full
    /// disk, for one) is not rolled back again: that would fail with "no
    /// transaction is active" and hide the error that ended it.
    fn roll_back_rows(&mut self) -> rusqlite::Result<()> {
        let r = if self.conn.is_autocommit() {
            self.conn.execute_batch("PRAGMA foreign_keys=ON;")
        } else {
            self.conn.execute_batch("ROLLBACK; PRAGMA foreign_keys=ON;")
        };
        self.back_to_wal();
        self.columns.clear();
        self.plans.clear();
        r
    }

    /// Stops the staging thread; its first write error, if any.
    fn stop_staging_thread(&mut self) -> Result<(), StoreError> {
        match self.staging_thread.take() {
            Some(p) => p
                .stop()
                .map_err(|e| StoreError::with_source("writing a staged file", e)),
            None => Ok(()),
        }
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        let _ = self.stop_staging_thread();
    }
}

/// The staging thread: creates the empty staging files
/// `first..first + count` ahead (creating thousands of files is costly on
/// some file systems, and this overlaps it with inserting rows), and
/// writes the small files `write_file` hands it, so the importing thread
/// only reads and checks them. Files over [`HANDOFF_MAX`] are written by
/// the importing thread, which waits for their staging file.
struct StagingThread {
    shared: Arc<(Mutex<StagingState>, Condvar)>,
    stop: Arc<AtomicBool>,
    jobs: Option<std::sync::mpsc::SyncSender<(usize, Vec<u8>)>>,
    handle: Option<std::thread::JoinHandle<()>>,
    first: usize,
    count: usize,
}

/// Largest file handed to the staging thread (at most [`HANDOFF_QUEUE`]
/// of them wait at once: 16 MiB in flight at most).
const HANDOFF_MAX: usize = 1 << 20;
const HANDOFF_QUEUE: usize = 16;

#[derive(Default)]
struct StagingState {
    made: usize,
    finished: bool,
    error: Option<std::io::Error>,
}

impl StagingThread {
    fn start(staging: PathBuf, first: usize, count: usize) -> StagingThread {
        let shared = Arc::new((Mutex::new(StagingState::default()), Condvar::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::sync_channel::<(usize, Vec<u8>)>(HANDOFF_QUEUE);
        let (s2, stop2) = (Arc::clone(&shared), Arc::clone(&stop));
        let handle = std::thread::Builder::new()
            .name("lvbak-staging".into())
            .spawn(move || {
                let fail = |e: std::io::Error| {
                    if let Ok(mut st) = s2.0.lock() {
                        st.error.get_or_insert(e);
                    }
                };
                let write = |index: usize, data: Vec<u8>| {
                    let r = fs::OpenOptions::new()
                        .write(true)
                        .create(true)
                        .truncate(true)
                        .open(staging.join(format!("{index}")))
                        .and_then(|mut f| std::io::Write::write_all(&mut f, &data));
                    if let Err(e) = r {
                        fail(e);
                    }
                };
                let mut next = 0usize;
                let mut creating = true;
                loop {
                    // Files handed over come first; creation fills the gaps.
                    match rx.try_recv() {
                        Ok((index, data)) => {
                            write(index, data);
                            continue;
                        }
                        Err(std::sync::mpsc::TryRecvError::Disconnected) => break,
                        Err(std::sync::mpsc::TryRecvError::Empty) => {}
                    }
                    if creating && (next >= count || stop2.load(Ordering::Relaxed)) {
                        creating = false;
                        if let Ok(mut st) = s2.0.lock() {
                            st.finished = true;
                        }
                        s2.1.notify_all();
                    }
                    if creating {
                        let made = fs::OpenOptions::new()
                            .write(true)
                            .create_new(true)
                            .open(staging.join(format!("{}", first + next)));
                        match made {
                            Ok(_) => {}
                            // Already written from a hand-over: fine.
                            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                            Err(_) => next = count, // stop creating; writes still work
                        }
                        next = next.saturating_add(1).min(count);
                        if let Ok(mut st) = s2.0.lock() {
                            st.made = next;
                        }
                        s2.1.notify_all();
                        continue;
                    }
                    match rx.recv() {
                        Ok((index, data)) => write(index, data),
                        Err(_) => break,
                    }
                }
                if let Ok(mut st) = s2.0.lock() {
                    st.finished = true;
                }
                s2.1.notify_all();
            })
            .ok();
        if handle.is_none() {
            if let Ok(mut st) = shared.0.lock() {
                st.finished = true;
            }
        }
        StagingThread {
            shared,
            stop,
            jobs: handle.as_ref().map(|_| tx),
            handle,
            first,
            count,
        }
    }

    fn covers(&self, index: usize) -> bool {
        index >= self.first && index - self.first < self.count
    }

    /// Hands a small file to the staging thread; gives it back when the
    /// thread is gone (the caller then writes it itself).
    fn hand_over(&self, index: usize, data: Vec<u8>) -> Result<(), Vec<u8>> {
        match &self.jobs {
            Some(tx) => tx.send((index, data)).map_err(|e| e.0 .1),
            None => Err(data),
        }
    }

    /// Waits until staging file `index` exists or the thread has stopped
    /// creating; `true` when the file is the caller's to open (created, or
    /// never to be created by the thread), `false` when `index` is outside
    /// its range.
    fn wait_for(&self, index: usize) -> bool {
        if !self.covers(index) {
            return false;
        }
        let want = index - self.first;
        let (lock, cv) = &*self.shared;
        let Ok(mut st) = lock.lock() else {
            return false;
        };
        while st.made <= want && !st.finished {
            st = match cv.wait(st) {
                Ok(g) => g,
                Err(_) => return false,
            };
        }
        true
    }

    /// Stops creating, lets the thread finish the files handed over, and
    /// returns the first write error, if any.
    fn stop(mut self) -> Result<(), std::io::Error> {
        self.stop.store(true, Ordering::Relaxed);
        drop(self.jobs.take());
        if let Some(h) = self.handle.take() {
            if h.join().is_err() {
                return Err(std::io::Error::other("the staging thread failed"));
            }
        }
        match self.shared.0.lock() {
            Ok(mut st) => st.error.take().map_or(Ok(()), Err),
            Err(_) => Err(std::io::Error::other("the staging thread failed")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry_name::Bucket;

    fn tree(dir: &Path) -> Vec<String> {
        fn walk(base: &Path, d: &Path, out: &mut Vec<String>) {
            for e in fs::read_dir(d).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(base, &p, out);
                } else if let Ok(rel) = p.strip_prefix(base) {
                    out.push(rel.to_string_lossy().into_owned());
                }
            }
        }
        let mut out = Vec::new();
        walk(dir, dir, &mut out);
        out.sort();
        out
    }

    fn store(dir: &Path) -> SqliteStore {
        SqliteStore::open(&dir.join("db.sqlite"), &dir.join("data"), "u1").expect("open")
    }

    fn put(s: &mut SqliteStore, name: &str, body: &[u8]) -> bool {
        let p = StorePath::for_entry(Bucket::Images, "u1", name).expect("path");
        s.write_file(&p, &mut &body[..]).expect("write")
    }

    #[test]
    fn precreated_staging_files_hold_what_is_written_and_extras_vanish_at_commit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = store(dir.path());
        s.begin().expect("begin");
        // More files announced than written: the extra empty ones must go.
        s.expect_files(5, 30).expect("expect");
        assert!(put(&mut s, "a.png", b"alpha"));
        assert!(put(&mut s, "b.png", b"beta"));
        assert!(!put(&mut s, "a.png", b"again"), "a staged file wins");
        s.commit().expect("commit");
        let mode: String = s
            .connection()
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .expect("journal_mode");
        assert_eq!(mode, "wal", "a new database is left in WAL mode");
        let data = dir.path().join("data");
        let files = tree(&data);
        assert_eq!(files.len(), 2, "{files:?}");
        let a = files.iter().find(|f| f.ends_with("a.png")).expect("a.png");
        let b = files.iter().find(|f| f.ends_with("b.png")).expect("b.png");
        assert_eq!(fs::read(data.join(a)).expect("read a"), b"alpha");
        assert_eq!(fs::read(data.join(b)).expect("read b"), b"beta");
    }

    #[test]
    fn writing_more_files_than_announced_and_rolling_back_leave_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = store(dir.path());
        s.begin().expect("begin");
        s.expect_files(1, 1).expect("expect");
        assert!(put(&mut s, "a.png", b"1"));
        assert!(put(&mut s, "b.png", b"22"));
        assert!(put(&mut s, "c.png", b"333"));
        s.rollback().expect("rollback");
        assert!(tree(&dir.path().join("data")).is_empty());

        // The same store imports again afterwards, announced count exact.
        s.begin().expect("begin");
        s.expect_files(2, 3).expect("expect");
        assert!(put(&mut s, "a.png", b"1"));
        assert!(put(&mut s, "c.png", b"333"));
        s.commit().expect("commit");
        assert_eq!(tree(&dir.path().join("data")).len(), 2);
    }

    #[test]
    fn large_files_are_written_here_small_ones_by_the_staging_thread() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = store(dir.path());
        s.begin().expect("begin");
        s.expect_files(4, 0).expect("expect");
        let big: Vec<u8> = (0..(3 * HANDOFF_MAX + 7))
            .map(|i| (i % 251) as u8)
            .collect();
        let edge = vec![7u8; HANDOFF_MAX];
        assert!(put(&mut s, "small.png", b"tiny"));
        assert!(put(&mut s, "big.png", &big));
        assert!(put(&mut s, "edge.png", &edge));
        assert!(put(&mut s, "empty.png", b""));
        s.commit().expect("commit");
        let data = dir.path().join("data");
        let files = tree(&data);
        let read = |name: &str| {
            let f = files.iter().find(|f| f.ends_with(name)).expect(name);
            fs::read(data.join(f)).expect("read")
        };
        assert_eq!(read("small.png"), b"tiny");
        assert_eq!(read("big.png"), big);
        assert_eq!(read("edge.png"), edge);
        assert_eq!(read("empty.png"), b"");
        assert_eq!(files.len(), 4, "{files:?}");
    }

    #[test]
    fn a_commit_that_fails_midway_takes_back_the_files_it_placed_and_only_those() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = store(dir.path());
        let avatar = StorePath::for_entry(Bucket::Avatars, "u1", "z.png").expect("path");
        let theirs = StorePath::for_entry(Bucket::Images, "u1", "d.png").expect("path");
        s.begin().expect("begin");
        assert!(put(&mut s, "a.png", b"ours"));
        assert!(put(&mut s, "d.png", b"ours too"));
        assert!(s
            .write_file(&avatar, &mut &b"never placed"[..])
            .expect("write"));
        // Before the commit, someone else writes d.png, and a plain file
        // takes the place of the avatars folder, so the third move fails
        // after the first was made.
        let d = s.path(&theirs);
        fs::create_dir_all(d.parent().expect("parent")).expect("mkdir");
        fs::write(&d, b"theirs").expect("write theirs");
        let folder = s.path(&avatar).parent().expect("parent").to_owned();
        fs::create_dir_all(folder.parent().expect("parent")).expect("mkdir");
        fs::write(&folder, b"not a folder").expect("block");
        assert!(s.commit().is_err());
        let a = s.path(&StorePath::for_entry(Bucket::Images, "u1", "a.png").expect("path"));
        assert!(!a.exists(), "the file the commit placed is taken back");
        assert_eq!(fs::read(&d).expect("read d"), b"theirs", "theirs stays");
        let mut left = tree(&dir.path().join("data"));
        left.sort();
        assert_eq!(left.len(), 2, "{left:?}");
    }

    #[test]
    fn a_failed_write_on_the_staging_thread_fails_the_commit_and_places_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = store(dir.path());
        s.begin().expect("begin");
        s.expect_files(2, 0).expect("expect");
        // Take the staging folder away under the thread's feet.
        let staging = s.staging.clone().expect("a staging folder");
        if let Some(p) = s.staging_thread.take() {
            p.stop().expect("stopped cleanly");
        }
        s.staging_thread = Some(StagingThread::start(staging.join("gone"), 0, 2));
        assert!(put(&mut s, "a.png", b"1"));
        assert!(s.commit().is_err(), "the write error reaches commit");
        assert!(tree(&dir.path().join("data")).is_empty());
    }

    #[test]
    fn a_transaction_sqlite_ended_itself_rolls_back_cleanly() {
        // SQLite rolls a transaction back on its own after some errors (a
        // full disk): the store's rollback then succeeds, so the import
        // reports the error that ended it, and the staged file is gone.
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = store(dir.path());
        s.begin().expect("begin");
        s.expect_files(1, 0).expect("expect");
        assert!(put(&mut s, "a.png", b"1"));
        s.conn
            .execute_batch("ROLLBACK")
            .expect("SQLite's own rollback");
        s.rollback()
            .expect("nothing left to roll back is not an error");
        assert!(tree(&dir.path().join("data")).is_empty());
        // The store is usable again.
        s.begin().expect("begin again");
        s.commit().expect("commit");
    }

    #[test]
    fn a_new_database_gets_its_page_size_and_a_used_one_keeps_its_own() {
        let dir = tempfile::tempdir().expect("tempdir");
        let page = |s: &SqliteStore| -> i64 {
            s.connection()
                .query_row("PRAGMA page_size", [], |r| r.get(0))
                .expect("page_size")
        };
        let mut s = store(dir.path());
        s.begin().expect("begin");
        s.commit().expect("commit");
        assert_eq!(page(&s), i64::from(DEFAULT_NEW_PAGE_SIZE));
        // Not empty any more: a second import changes nothing.
        s.set_new_database_page_size(Some(16384));
        s.begin().expect("begin");
        s.commit().expect("commit");
        assert_eq!(page(&s), i64::from(DEFAULT_NEW_PAGE_SIZE));
        let other = tempfile::tempdir().expect("tempdir");
        let mut t = store(other.path());
        t.set_new_database_page_size(None);
        t.begin().expect("begin");
        t.commit().expect("commit");
        assert_eq!(page(&t), 4096);
    }

    #[test]
    fn expect_files_needs_a_transaction() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = store(dir.path());
        assert!(s.expect_files(3, 3).is_err());
    }
}
