//! A summary of an archive's contents, shaped like the fixtures'
//! `*.expected.json` (keys `manifest`, `manifestStats`, `tables`,
//! `vectorTables`, `files`, `secrets`).

use std::io::{Read, Seek};

use serde_json::{json, Map, Value};

use crate::archive::{Archive, ArchiveError};
use crate::entry_name::{Bucket, EntryName};

/// Counts every table's rows and every bucket's files, reads the secrets
/// index (readable without a ticket), and returns one JSON object.
///
/// Rows are counted by reading every table entry in full (streaming), so
/// this also checks each row's syntax, size and CRC.
pub fn inspect<R: Read + Seek>(archive: &mut Archive<R>) -> Result<Value, ArchiveError> {
    inspect_with_progress(archive, &mut |_, _| {})
}

/// [`inspect`] with a callback after each table: (tables done, tables total).
pub fn inspect_with_progress<R: Read + Seek>(
    archive: &mut Archive<R>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Value, ArchiveError> {
    let manifest = Value::Object(archive.manifest().raw.clone());
    let stats = archive
        .trailer()
        .map(|t| t.to_value())
        .unwrap_or(Value::Null);
    let tables_list = archive.tables();
    let vectors_list = archive.vector_tables();
    let total = (tables_list.len() + vectors_list.len()) as u64;
    let mut done = 0;
    let mut tables = Map::new();
    for t in tables_list {
        let mut n = 0u64;
        let mut rows = archive.rows(&t)?;
        while rows.next_line()?.is_some() {
            n += 1;
        }
        tables.insert(t, json!(n));
        done += 1;
        progress(done, total);
    }
    let mut vectors = Map::new();
    for t in vectors_list {
        let mut n = 0u64;
        let mut rows = archive.vector_rows(&t)?;
        while rows.next_line()?.is_some() {
            n += 1;
        }
        vectors.insert(t, json!(n));
        done += 1;
        progress(done, total);
    }
    let mut files = Map::new();
    for e in archive.entries() {
        if let Some((bucket, _)) = e.file() {
            let slot = files.entry(bucket.as_str()).or_insert(json!(0));
            *slot = json!(slot.as_u64().unwrap_or(0) + 1);
        }
    }
    let secrets = secrets_summary(archive)?;
    Ok(json!({
        "manifest": manifest,
        "manifestStats": stats,
        "tables": tables,
        "vectorTables": vectors,
        "files": files,
        "secrets": secrets,
        "missingFiles": archive.merged_missing_files(),
        "entries": archive.entries().len(),
        "size": archive.file_len(),
    }))
}

/// `{"count": n, "keys": [...]}` from `secrets/index.json` (count 0 and no
/// keys when absent), plus `"envelope"` (`v1`/`v2`) when known.
pub fn secrets_summary<R: Read + Seek>(archive: &mut Archive<R>) -> Result<Value, ArchiveError> {
    let cap = archive.limits().max_secrets_index_bytes;
    let Some(bytes) = archive.read_small(&EntryName::SecretsIndex, cap)? else {
        return Ok(json!({"count": 0, "keys": []}));
    };
    let v: Value = serde_json::from_slice(&bytes).map_err(|e| ArchiveError::Json {
        entry: "secrets/index.json".into(),
        message: format!("not valid JSON: {e}"),
    })?;
    let keys: Vec<Value> = v
        .get("keys")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut out = json!({"count": keys.len(), "keys": keys});
    if let Some(ver) = v.get("version").and_then(Value::as_u64) {
        out["envelope"] = json!(format!("v{ver}"));
    }
    Ok(out)
}

/// Files per bucket, from the central directory alone.
pub fn file_counts<R>(archive: &Archive<R>) -> Vec<(Bucket, u64)> {
    let mut out: Vec<(Bucket, u64)> = Vec::new();
    for e in archive.entries() {
        if let Some((bucket, _)) = e.file() {
            match out.iter_mut().find(|(b, _)| *b == bucket) {
                Some((_, n)) => *n += 1,
                None => out.push((bucket, 1)),
            }
        }
    }
    out
}
