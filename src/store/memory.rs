//! An in-memory [`Source`] and [`Sink`], for hosts' tests and lvbak's own.
//!
//! It holds several users' data, so ownership rules can be exercised, and
//! can inject a failure after N writes to test atomicity.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use serde_json::Value;

use super::{InsertOutcome, RowMap, Sink, Source, StoreError, StorePath};
use crate::domain::{self, Owner, TableSpec};
use crate::envelope::{Secret, SecretSet};
use crate::manifest::EmbeddingConfig;

/// Everything a [`MemoryStore`] holds. Comparable, so a test can assert
/// that an import changed nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MemoryData {
    /// Table → primary-key string → row.
    pub tables: BTreeMap<String, BTreeMap<String, RowMap>>,
    /// Store path → bytes.
    pub files: BTreeMap<String, Vec<u8>>,
    /// Vector table → id → row (with `user_id`).
    pub vectors: BTreeMap<String, BTreeMap<String, RowMap>>,
    /// (user, key) → value.
    pub secrets: BTreeMap<(String, String), String>,
    /// User → embedding configuration.
    pub embedding: BTreeMap<String, EmbeddingConfig>,
    /// Archive id → (uses, last use).
    pub consumed_tickets: BTreeMap<String, (u64, i64)>,
    /// Tables that do not exist in this store.
    pub absent_tables: BTreeSet<String>,
}

/// An in-memory store acting for one user at a time.
#[derive(Debug, Clone)]
pub struct MemoryStore {
    /// The data.
    pub data: MemoryData,
    user: String,
    snapshot: Option<MemoryData>,
    /// Fail the write after this many successful writes (for tests).
    pub fail_after: Option<usize>,
    writes: usize,
    /// How many rows have been looked up by key ([`Sink::get_row`]); tests
    /// use it to check that an import does not query the store row by row.
    pub row_lookups: usize,
}

/// The key of a row in [`MemoryData::tables`].
pub fn pk_key(spec: &TableSpec, row: &RowMap) -> String {
    spec.pk
        .iter()
        .map(|c| {
            row.get(*c)
                .map(Value::to_string)
                .unwrap_or_else(|| "null".into())
        })
        .collect::<Vec<_>>()
        .join("\u{1f}")
}

impl MemoryStore {
    /// An empty store acting for `user`, with every table present.
    pub fn new(user: &str) -> MemoryStore {
        MemoryStore {
            data: MemoryData::default(),
            user: user.to_owned(),
            snapshot: None,
            fail_after: None,
            writes: 0,
            row_lookups: 0,
        }
    }

    /// Acts for another user from now on.
    pub fn set_user(&mut self, user: &str) {
        self.user = user.to_owned();
    }

    /// Adds a row directly (test set-up), keyed by the table's primary key.
    pub fn put(&mut self, table: &str, row: Value) {
        let Some(spec) = domain::table(table) else {
            return;
        };
        if let Value::Object(m) = row {
            let k = pk_key(spec, &m);
            self.data
                .tables
                .entry(table.to_owned())
                .or_default()
                .insert(k, m);
        }
    }

    /// Rows of a table.
    pub fn rows(&self, table: &str) -> Vec<&RowMap> {
        self.data
            .tables
            .get(table)
            .map(|t| t.values().collect())
            .unwrap_or_default()
    }

    fn write(&mut self, what: &str) -> Result<(), StoreError> {
        if let Some(n) = self.fail_after {
            if self.writes >= n {
                return Err(StoreError::new(format!(
                    "injected failure at write #{} ({what})",
                    self.writes + 1
                )));
            }
        }
        self.writes += 1;
        Ok(())
    }

    fn owner_of(&self, spec: &TableSpec, row: &RowMap, depth: u8) -> Option<String> {
        match spec.owner {
            Owner::User => row
                .get("user_id")
                .and_then(Value::as_str)
                .map(str::to_owned),
            Owner::Installer => {
                if row.get("install_scope").and_then(Value::as_str) != Some("user") {
                    return None;
                }
                row.get("installed_by_user_id")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            }
            Owner::Via { column, parent } => {
                let pspec = domain::table(parent)?;
                let id = row.get(column)?;
                let prow = self.find(parent, id)?;
                if depth > 4 {
                    return None;
                }
                self.owner_of(pspec, prow, depth + 1)
            }
        }
    }

    fn find(&self, table: &str, id: &Value) -> Option<&RowMap> {
        let t = self.data.tables.get(table)?;
        t.get(&id.to_string())
    }

    fn owns(&self, spec: &TableSpec, row: &RowMap) -> bool {
        self.owner_of(spec, row, 0).as_deref() == Some(self.user.as_str())
    }
}

impl Source for MemoryStore {
    fn user_id(&self) -> &str {
        &self.user
    }

    fn has_table(&mut self, table: &str) -> Result<bool, StoreError> {
        Ok(!self.data.absent_tables.contains(table))
    }

    fn scan_rows(
        &mut self,
        spec: &TableSpec,
        f: &mut dyn FnMut(&mut RowMap) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let rows: Vec<RowMap> = self
            .data
            .tables
            .get(spec.name)
            .map(|t| t.values().filter(|r| self.owns(spec, r)).cloned().collect())
            .unwrap_or_default();
        for mut r in rows {
            f(&mut r)?;
        }
        Ok(())
    }

    fn open_file(&mut self, path: &StorePath) -> Result<Option<Box<dyn Read + '_>>, StoreError> {
        Ok(self
            .data
            .files
            .get(path.as_str())
            .map(|b| Box::new(&b[..]) as Box<dyn Read + '_>))
    }

    fn scan_vectors(
        &mut self,
        table: &str,
        f: &mut dyn FnMut(&mut RowMap) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let rows: Vec<RowMap> = self
            .data
            .vectors
            .get(table)
            .map(|t| {
                t.values()
                    .filter(|r| {
                        r.get("user_id").and_then(Value::as_str) == Some(self.user.as_str())
                    })
                    .map(|r| {
                        let mut r = r.clone();
                        r.remove("user_id");
                        r
                    })
                    .collect()
            })
            .unwrap_or_default();
        for mut r in rows {
            f(&mut r)?;
        }
        Ok(())
    }

    fn secrets(&mut self) -> Result<SecretSet, StoreError> {
        Ok(self
            .data
            .secrets
            .iter()
            .filter(|((u, _), _)| *u == self.user)
            .map(|((_, k), v)| Secret::new(k.clone(), v.clone()))
            .collect())
    }

    fn embedding_config(&mut self) -> Result<EmbeddingConfig, StoreError> {
        Ok(self
            .data
            .embedding
            .get(&self.user)
            .cloned()
            .unwrap_or_default())
    }
}

impl Sink for MemoryStore {
    fn user_id(&self) -> &str {
        &self.user
    }

    fn begin(&mut self) -> Result<(), StoreError> {
        if self.snapshot.is_some() {
            return Err(StoreError::new("a transaction is already open"));
        }
        self.snapshot = Some(self.data.clone());
        self.writes = 0;
        Ok(())
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        self.write("commit")?;
        match self.snapshot.take() {
            Some(_) => Ok(()),
            None => Err(StoreError::new("commit without begin")),
        }
    }

    fn rollback(&mut self) -> Result<(), StoreError> {
        match self.snapshot.take() {
            Some(s) => {
                self.data = s;
                Ok(())
            }
            None => Err(StoreError::new("rollback without begin")),
        }
    }

    fn has_table(&mut self, table: &str) -> Result<bool, StoreError> {
        Ok(!self.data.absent_tables.contains(table))
    }

    fn get_row(
        &mut self,
        table: &str,
        _pk: &str,
        id: &Value,
    ) -> Result<Option<RowMap>, StoreError> {
        self.row_lookups += 1;
        Ok(self.find(table, id).cloned())
    }

    fn row_exists(&mut self, spec: &TableSpec, row: &RowMap) -> Result<bool, StoreError> {
        let k = pk_key(spec, row);
        Ok(self
            .data
            .tables
            .get(spec.name)
            .is_some_and(|t| t.contains_key(&k)))
    }

    fn insert_row(&mut self, spec: &TableSpec, row: &RowMap) -> Result<InsertOutcome, StoreError> {
        let k = pk_key(spec, row);
        if self
            .data
            .tables
            .get(spec.name)
            .is_some_and(|t| t.contains_key(&k))
        {
            return Ok(InsertOutcome::Skipped);
        }
        self.write(spec.name)?;
        self.data
            .tables
            .entry(spec.name.to_owned())
            .or_default()
            .insert(k, row.clone());
        Ok(InsertOutcome::Inserted)
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
        let key = Value::from(id).to_string();
        let owned = self
            .data
            .tables
            .get(table)
            .and_then(|t| t.get(&key))
            .is_some_and(|r| self.owns(spec, r));
        if !owned {
            return Ok(false);
        }
        self.write("set_column")?;
        if let Some(r) = self
            .data
            .tables
            .get_mut(table)
            .and_then(|t| t.get_mut(&key))
        {
            r.insert(column.to_owned(), value);
        }
        Ok(true)
    }

    fn get_setting(&mut self, key: &str) -> Result<Option<String>, StoreError> {
        let k = format!(
            "{}\u{1f}{}",
            Value::from(key),
            Value::from(self.user.as_str())
        );
        Ok(self
            .data
            .tables
            .get("settings")
            .and_then(|t| t.get(&k))
            .and_then(|r| r.get("value"))
            .map(crate::domain::setting_text))
    }

    fn put_setting(&mut self, key: &str, value: &str, updated_at: i64) -> Result<(), StoreError> {
        self.write("settings")?;
        let mut row = RowMap::new();
        row.insert("key".into(), key.into());
        row.insert("value".into(), value.into());
        row.insert("updated_at".into(), updated_at.into());
        row.insert("user_id".into(), self.user.clone().into());
        let k = format!(
            "{}\u{1f}{}",
            Value::from(key),
            Value::from(self.user.as_str())
        );
        self.data
            .tables
            .entry("settings".into())
            .or_default()
            .insert(k, row);
        Ok(())
    }

    fn clear_dangling(
        &mut self,
        spec: &TableSpec,
        column: &str,
        parent: &str,
    ) -> Result<u64, StoreError> {
        let parent_ids: BTreeSet<String> = self
            .data
            .tables
            .get(parent)
            .map(|t| t.keys().cloned().collect())
            .unwrap_or_default();
        let keys: Vec<String> = self
            .data
            .tables
            .get(spec.name)
            .map(|t| {
                t.iter()
                    .filter(|(_, r)| self.owns(spec, r))
                    .filter(|(_, r)| {
                        r.get(column)
                            .is_some_and(|v| !v.is_null() && !parent_ids.contains(&v.to_string()))
                    })
                    .map(|(k, _)| k.clone())
                    .collect()
            })
            .unwrap_or_default();
        if keys.is_empty() {
            return Ok(0);
        }
        self.write("clear_dangling")?;
        if let Some(t) = self.data.tables.get_mut(spec.name) {
            for k in &keys {
                if let Some(r) = t.get_mut(k) {
                    r.insert(column.to_owned(), Value::Null);
                }
            }
        }
        Ok(keys.len() as u64)
    }

    fn file_exists(&mut self, path: &StorePath) -> Result<bool, StoreError> {
        Ok(self.data.files.contains_key(path.as_str()))
    }

    fn write_file(&mut self, path: &StorePath, data: &mut dyn Read) -> Result<bool, StoreError> {
        if self.data.files.contains_key(path.as_str()) {
            return Ok(false);
        }
        self.write("file")?;
        let mut b = Vec::new();
        data.read_to_end(&mut b)?;
        self.data.files.insert(path.as_str().to_owned(), b);
        Ok(true)
    }

    fn embedding_config(&mut self) -> Result<EmbeddingConfig, StoreError> {
        Ok(self
            .data
            .embedding
            .get(&self.user)
            .cloned()
            .unwrap_or_default())
    }

    fn insert_vector(&mut self, table: &str, row: &RowMap) -> Result<InsertOutcome, StoreError> {
        let id = row.get("id").map(Value::to_string).unwrap_or_default();
        if self
            .data
            .vectors
            .get(table)
            .is_some_and(|t| t.contains_key(&id))
        {
            return Ok(InsertOutcome::Skipped);
        }
        self.write("vector")?;
        self.data
            .vectors
            .entry(table.to_owned())
            .or_default()
            .insert(id, row.clone());
        Ok(InsertOutcome::Inserted)
    }

    fn mark_for_revectorisation(&mut self) -> Result<(), StoreError> {
        self.write("revectorise")?;
        let user = self.user.clone();
        for &(table, cols) in domain::REVECTORISE {
            let Some(spec) = domain::table(table) else {
                continue;
            };
            let keys: Vec<String> = self
                .data
                .tables
                .get(table)
                .map(|t| {
                    t.iter()
                        .filter(|(_, r)| {
                            self.owner_of(spec, r, 0).as_deref() == Some(user.as_str())
                        })
                        .map(|(k, _)| k.clone())
                        .collect()
                })
                .unwrap_or_default();
            if let Some(t) = self.data.tables.get_mut(table) {
                for k in keys {
                    if let Some(r) = t.get_mut(&k) {
                        for (c, v) in cols.iter() {
                            if r.contains_key(*c) {
                                r.insert((*c).to_owned(), v.to_value());
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn put_secret(&mut self, key: &str, value: &str) -> Result<(), StoreError> {
        self.write("secret")?;
        self.data
            .secrets
            .insert((self.user.clone(), key.to_owned()), value.to_owned());
        Ok(())
    }

    fn consume_ticket(
        &mut self,
        archive_id: &str,
        _fingerprint: &str,
        at: i64,
    ) -> Result<(u64, Option<i64>), StoreError> {
        self.write("ticket")?;
        let e = self
            .data
            .consumed_tickets
            .entry(archive_id.to_owned())
            .or_insert((0, at));
        let previous = (e.0 > 0).then_some(e.1);
        e.0 += 1;
        e.1 = at;
        Ok((e.0, previous))
    }
}
