//! `manifest.json` and `manifest-stats.json` (the trailer): typed,
//! versioned, with unknown fields kept (FORMAT.md §3).
//!
//! Parsing works on byte slices. Writing reproduces the server's layout
//! (`JSON.stringify(value, null, 2)`: two-space indent, no trailing newline).

use std::io::{Read, Write};

use serde_json::{Map, Number, Value};

mod lean;
pub(crate) use lean::KeepDigests;

/// The manifest schema versions this build reads.
pub const SUPPORTED_SCHEMA_VERSIONS: std::ops::RangeInclusive<u64> = 1..=1;
/// The `producer` every manifest must carry.
pub const PRODUCER: &str = "lumiverse";
/// The NDJSON format version lvbak writes.
pub const NDJSON_FORMAT_VERSION: u64 = 1;

/// Why a manifest or trailer was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// Not JSON.
    #[error("manifest.json is not valid JSON: {0}")]
    NotJson(String),
    /// JSON, but not an object.
    #[error("manifest.json is not a JSON object")]
    NotObject,
    /// `producer` is not `"lumiverse"`.
    #[error("manifest.json has producer {found}, expected \"lumiverse\": not a Lumiverse archive")]
    WrongProducer {
        /// What was found (as JSON).
        found: String,
    },
    /// `schemaVersion` missing, not a number, or out of range.
    #[error("manifest.json has schemaVersion {found}; this build of lvbak reads schema versions {min} to {max} (upgrade lvbak for newer archives)")]
    UnsupportedSchema {
        /// What was found (as JSON).
        found: String,
        /// Lowest supported.
        min: u64,
        /// Highest supported.
        max: u64,
    },
    /// Nested too deep.
    #[error("manifest JSON is nested deeper than {0}")]
    TooDeep(u32),
}

/// The embedding configuration recorded at export.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EmbeddingConfig {
    /// Provider, e.g. `openai-compatible`.
    pub provider: Option<String>,
    /// Model name.
    pub model: Option<String>,
    /// Vector dimension.
    pub dimension: Option<u64>,
}

/// A parsed `manifest.json`.
///
/// Fields follow FORMAT.md §3; values are read with the server's
/// coercions. `raw` keeps the object exactly as stored (key order, unknown
/// fields, odd types), so a repack can write it back unchanged.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// `schemaVersion` (always 1 today).
    pub schema_version: u64,
    /// `exportedAt`, Unix seconds (0 when not a number).
    pub exported_at: i64,
    /// `archiveId` (binds the ticket).
    pub archive_id: String,
    /// `producerVersion` (null in 1.1.0; lvbak writes its own version).
    pub producer_version: Option<String>,
    /// `ndjsonFormatVersion` when it is a JSON integer ≥ 1, else `None` (legacy).
    pub ndjson_format_version: Option<u64>,
    /// `includeVectors`, by truthiness.
    pub include_vectors: bool,
    /// `embeddingConfig`.
    pub embedding_config: EmbeddingConfig,
    /// `counts` (object, else empty), in stored order.
    pub counts: Vec<(String, u64)>,
    /// `missingFiles` (array, else empty).
    pub missing_files: Vec<String>,
    /// `hasEncryptedSecrets`, by truthiness.
    pub has_encrypted_secrets: bool,
    /// `secretsCount` (number, else 0).
    pub secrets_count: u64,
    /// The object as stored, including fields lvbak does not know.
    pub raw: Map<String, Value>,
}

fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0 && !f.is_nan()),
        Some(Value::String(s)) => !s.is_empty(),
        Some(_) => true,
    }
}

/// JavaScript's `Number(v)` for the JSON values a manifest can hold.
fn js_number(v: Option<&Value>) -> f64 {
    match v {
        None => f64::NAN,
        Some(Value::Null) => 0.0,
        Some(Value::Bool(b)) => f64::from(u8::from(*b)),
        Some(Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
        Some(Value::String(s)) => {
            let t = s.trim();
            if t.is_empty() {
                0.0
            } else {
                t.parse::<f64>().unwrap_or(f64::NAN)
            }
        }
        Some(_) => f64::NAN,
    }
}

fn counts_of(v: Option<&Value>) -> Vec<(String, u64)> {
    match v {
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
            .collect(),
        _ => Vec::new(),
    }
}

fn missing_of(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| match x {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Depth of the deepest nesting in `v`, iteratively.
/// Nesting depth of JSON text, fed in pieces.
#[derive(Default)]
struct DepthScan {
    depth: u32,
    in_str: bool,
    esc: bool,
}

impl DepthScan {
    /// Feeds bytes; `false` as soon as nesting exceeds `max`. Inside a
    /// string it jumps to the next quote or backslash (`memchr2`), so the
    /// megabytes of a trailer's digests are not looked at byte by byte.
    fn feed(&mut self, bytes: &[u8], max: u32) -> bool {
        let mut i = 0;
        while let Some(&c) = bytes.get(i) {
            i += 1;
            if self.in_str {
                if self.esc {
                    self.esc = false;
                    continue;
                }
                let special = match c {
                    b'\\' | b'"' => c,
                    _ => match bytes.get(i..).and_then(|r| memchr::memchr2(b'"', b'\\', r)) {
                        Some(k) => {
                            i += k + 1;
                            bytes.get(i - 1).copied().unwrap_or(b'"')
                        }
                        None => return true, // the rest is inside the string
                    },
                };
                if special == b'\\' {
                    self.esc = true;
                } else {
                    self.in_str = false;
                }
                continue;
            }
            match c {
                b'"' => self.in_str = true,
                b'{' | b'[' => {
                    self.depth += 1;
                    if self.depth > max {
                        return false;
                    }
                }
                b'}' | b']' => self.depth = self.depth.saturating_sub(1),
                _ => {}
            }
        }
        true
    }
}

fn depth_ok(bytes: &[u8], max: u32) -> bool {
    DepthScan::default().feed(bytes, max)
}

/// Parses JSON bytes into an object map, refusing nesting beyond `max_depth`.
pub(crate) fn parse_object(
    bytes: &[u8],
    max_depth: u32,
) -> Result<Map<String, Value>, ManifestError> {
    if !depth_ok(bytes, max_depth) {
        return Err(ManifestError::TooDeep(max_depth));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ManifestError::NotObject),
        Err(e) => Err(ManifestError::NotJson(e.to_string())),
    }
}

impl Manifest {
    /// Parses and checks `manifest.json` bytes as the server does:
    /// `producer` must be `"lumiverse"`, `schemaVersion` (coerced to a
    /// number) must be a supported version.
    pub fn parse(bytes: &[u8], max_depth: u32) -> Result<Manifest, ManifestError> {
        let raw = parse_object(bytes, max_depth)?;
        Manifest::from_map(raw)
    }

    /// Builds a manifest from an already parsed object.
    pub fn from_map(raw: Map<String, Value>) -> Result<Manifest, ManifestError> {
        let sv = js_number(raw.get("schemaVersion"));
        let (min, max) = (
            *SUPPORTED_SCHEMA_VERSIONS.start(),
            *SUPPORTED_SCHEMA_VERSIONS.end(),
        );
        if !(sv.is_finite() && sv >= min as f64 && sv <= max as f64) {
            return Err(ManifestError::UnsupportedSchema {
                found: raw
                    .get("schemaVersion")
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "(missing)".into()),
                min,
                max,
            });
        }
        match raw.get("producer") {
            Some(Value::String(s)) if s == PRODUCER => {}
            other => {
                return Err(ManifestError::WrongProducer {
                    found: other
                        .map(|v| v.to_string())
                        .unwrap_or_else(|| "(missing)".into()),
                })
            }
        }
        let exported_at = match raw.get("exportedAt") {
            Some(Value::Number(n)) => n
                .as_i64()
                .or_else(|| n.as_f64().map(|f| f as i64))
                .unwrap_or(0),
            _ => 0,
        };
        let archive_id = match raw.get("archiveId") {
            Some(Value::String(s)) => s.clone(),
            Some(v) if truthy(Some(v)) => v.to_string(),
            _ => String::new(),
        };
        let producer_version = raw
            .get("producerVersion")
            .and_then(|v| v.as_str())
            .map(str::to_owned);
        let ndjson_format_version = raw
            .get("ndjsonFormatVersion")
            .and_then(|v| v.as_u64())
            .filter(|v| *v >= 1);
        let embedding_config = match raw.get("embeddingConfig") {
            Some(Value::Object(m)) => EmbeddingConfig {
                provider: m
                    .get("provider")
                    .and_then(|v| v.as_str())
                    .map(str::to_owned),
                model: m.get("model").and_then(|v| v.as_str()).map(str::to_owned),
                dimension: m.get("dimension").and_then(|v| v.as_u64()),
            },
            _ => EmbeddingConfig::default(),
        };
        let secrets_count = match raw.get("secretsCount") {
            Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
            _ => 0,
        };
        Ok(Manifest {
            schema_version: sv as u64,
            exported_at,
            archive_id,
            producer_version,
            ndjson_format_version,
            include_vectors: truthy(raw.get("includeVectors")),
            embedding_config,
            counts: counts_of(raw.get("counts")),
            missing_files: missing_of(raw.get("missingFiles")),
            has_encrypted_secrets: truthy(raw.get("hasEncryptedSecrets")),
            secrets_count,
            raw,
        })
    }

    /// A new manifest as lvbak writes it, fields in the server's order.
    /// `extra` fields (lvbak's own, e.g. `lvbak`) follow the known ones.
    pub fn new(archive_id: &str, exported_at: i64) -> Manifest {
        let mut m = Manifest {
            schema_version: 1,
            exported_at,
            archive_id: archive_id.to_owned(),
            producer_version: None,
            ndjson_format_version: Some(NDJSON_FORMAT_VERSION),
            include_vectors: false,
            embedding_config: EmbeddingConfig::default(),
            counts: Vec::new(),
            missing_files: Vec::new(),
            has_encrypted_secrets: false,
            secrets_count: 0,
            raw: Map::new(),
        };
        m.sync_raw();
        m
    }

    /// Rewrites `raw` from the typed fields, keeping unknown fields (after
    /// the known ones, in their order). Call after changing typed fields.
    pub fn sync_raw(&mut self) {
        let known = [
            "schemaVersion",
            "producer",
            "exportedAt",
            "archiveId",
            "producerVersion",
            "ndjsonFormatVersion",
            "includeVectors",
            "embeddingConfig",
            "counts",
            "missingFiles",
            "hasEncryptedSecrets",
            "secretsCount",
        ];
        let mut out = Map::new();
        out.insert("schemaVersion".into(), Value::from(self.schema_version));
        out.insert("producer".into(), Value::from(PRODUCER));
        out.insert("exportedAt".into(), Value::from(self.exported_at));
        out.insert("archiveId".into(), Value::from(self.archive_id.clone()));
        out.insert(
            "producerVersion".into(),
            self.producer_version
                .clone()
                .map(Value::from)
                .unwrap_or(Value::Null),
        );
        if let Some(v) = self.ndjson_format_version {
            out.insert("ndjsonFormatVersion".into(), Value::from(v));
        }
        out.insert("includeVectors".into(), Value::Bool(self.include_vectors));
        let mut ec = Map::new();
        let opt = |s: &Option<String>| s.clone().map(Value::from).unwrap_or(Value::Null);
        ec.insert("provider".into(), opt(&self.embedding_config.provider));
        ec.insert("model".into(), opt(&self.embedding_config.model));
        ec.insert(
            "dimension".into(),
            self.embedding_config
                .dimension
                .map(|d| Value::Number(Number::from(d)))
                .unwrap_or(Value::Null),
        );
        out.insert("embeddingConfig".into(), Value::Object(ec));
        out.insert("counts".into(), counts_value(&self.counts));
        out.insert(
            "missingFiles".into(),
            Value::Array(
                self.missing_files
                    .iter()
                    .cloned()
                    .map(Value::from)
                    .collect(),
            ),
        );
        out.insert(
            "hasEncryptedSecrets".into(),
            Value::Bool(self.has_encrypted_secrets),
        );
        out.insert("secretsCount".into(), Value::from(self.secrets_count));
        for (k, v) in &self.raw {
            if !known.contains(&k.as_str()) {
                out.insert(k.clone(), v.clone());
            }
        }
        self.raw = out;
    }

    /// The bytes of `manifest.json` as the server lays it out (from `raw`).
    pub fn to_json(&self) -> Vec<u8> {
        to_js_pretty(&Value::Object(self.raw.clone()))
    }

    /// An unknown (extension) field.
    pub fn extra(&self, key: &str) -> Option<&Value> {
        self.raw.get(key)
    }
}

fn counts_value(counts: &[(String, u64)]) -> Value {
    Value::Object(
        counts
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(*v)))
            .collect(),
    )
}

/// `JSON.stringify(value, null, 2)` for values without non-integer numbers.
pub fn to_js_pretty(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"  ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    // Serialising a Value into a Vec cannot fail.
    let _ = serde::Serialize::serialize(v, &mut ser);
    out
}

/// A parsed `manifest-stats.json`.
#[derive(Debug, Clone)]
pub struct Trailer {
    /// `counts`: table (or `lancedb:T`) → rows written, in export order.
    pub counts: Vec<(String, u64)>,
    /// `missingFiles`.
    pub missing_files: Vec<String>,
    /// lvbak's integrity field, when present and well-formed.
    pub lvbak: Option<LvbakTrailer>,
    /// The object as stored, except lvbak's per-entry digests when they
    /// parsed (those are in [`Trailer::lvbak`] only, so that tens of
    /// thousands of names are not held twice); [`Trailer::to_value`] gives
    /// the whole object back.
    pub raw: Map<String, Value>,
    /// Digest positions sorted by entry name (binary search, no copy).
    index: Vec<u32>,
    /// Number of in-order digests the `lvbak` field records (versions 2
    /// and 3), also when a lean parse kept only their number; see
    /// [`Trailer::in_order_count`].
    in_order: Option<usize>,
}

impl PartialEq for Trailer {
    fn eq(&self, other: &Trailer) -> bool {
        self.counts == other.counts
            && self.missing_files == other.missing_files
            && self.lvbak == other.lvbak
            && self.raw == other.raw
    }
}

/// The number of in-order digests of a field that holds them all.
fn in_order_len(l: &Option<LvbakTrailer>) -> Option<usize> {
    match l {
        Some(LvbakTrailer {
            digests: Digests::InOrder(v),
            ..
        }) => Some(v.len()),
        _ => None,
    }
}

fn digest_index(l: &Option<LvbakTrailer>) -> Vec<u32> {
    let Some(LvbakTrailer {
        digests: Digests::ByName(v),
        ..
    }) = l
    else {
        return Vec::new();
    };
    let mut idx: Vec<u32> = (0..v.len()).filter_map(|i| u32::try_from(i).ok()).collect();
    idx.sort_by(|&a, &b| v[a as usize].0.cmp(&v[b as usize].0));
    idx
}

/// lvbak's field in the trailer: per-entry SHA-256 digests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LvbakTrailer {
    /// Version of this field's layout: 3 (written), 2 and 1 (read).
    pub version: u64,
    /// The digests, in the layout of `version`.
    pub digests: Digests,
}

pub use crate::container::DigestOf;

/// The field version lvbak writes.
pub const LVBAK_FIELD_VERSION: u64 = 3;

/// The digests of lvbak's trailer field (FORMAT.md §5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Digests {
    /// Version 1: entry name → SHA-256, a JSON object.
    ByName(Vec<(String, [u8; 32])>),
    /// Versions 2 and 3: the SHA-256 of every entry written before the
    /// trailer, in central-directory order, as one base64 string (44 bytes
    /// an entry instead of ~140, and no name held twice).
    InOrder(Vec<[u8; 32]>),
}

impl Digests {
    /// Number of digests.
    pub fn len(&self) -> usize {
        match self {
            Digests::ByName(v) => v.len(),
            Digests::InOrder(v) => v.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl LvbakTrailer {
    /// The field lvbak writes (version 3): the SHA-256 of each entry's
    /// stored bytes, in written order.
    pub fn in_order(digests: Vec<[u8; 32]>) -> LvbakTrailer {
        LvbakTrailer {
            version: LVBAK_FIELD_VERSION,
            digests: Digests::InOrder(digests),
        }
    }

    /// Which bytes the digests cover: the stored bytes for version 3,
    /// the uncompressed bytes for versions 1 and 2.
    pub fn covers(&self) -> DigestOf {
        match (&self.digests, self.version) {
            (Digests::InOrder(_), 3) => DigestOf::Stored,
            _ => DigestOf::Content,
        }
    }

    /// The digest recorded for `entry` by name (version 1; a linear scan,
    /// see [`Trailer::digest`] for the indexed lookup).
    pub fn find(&self, entry: &str) -> Option<[u8; 32]> {
        match &self.digests {
            Digests::ByName(v) => v.iter().find(|(k, _)| k == entry).map(|(_, d)| *d),
            Digests::InOrder(_) => None,
        }
    }
}

/// Key of lvbak's field in the trailer.
pub const LVBAK_FIELD: &str = "lvbak";

impl Trailer {
    /// Parses trailer bytes. `None` when the server would ignore it (not a
    /// JSON object); the caller reports that. The same parser as
    /// [`Trailer::from_reader`] (reading bytes cannot fail).
    pub fn parse(bytes: &[u8], max_depth: u32) -> Option<Trailer> {
        Trailer::from_reader(bytes, max_depth).ok().flatten()
    }

    /// A trailer as lvbak writes it.
    pub fn new(
        counts: Vec<(String, u64)>,
        missing_files: Vec<String>,
        lvbak: Option<LvbakTrailer>,
    ) -> Trailer {
        let mut raw = Map::new();
        raw.insert("counts".into(), counts_value(&counts));
        raw.insert(
            "missingFiles".into(),
            Value::Array(missing_files.iter().cloned().map(Value::from).collect()),
        );
        if let Some(l) = &lvbak {
            let mut m = Map::new();
            m.insert("version".into(), Value::from(l.version));
            if let Digests::InOrder(v) = &l.digests {
                m.insert("entries".into(), Value::from(v.len() as u64));
            }
            raw.insert(LVBAK_FIELD.into(), Value::Object(m));
        }
        Trailer {
            counts,
            missing_files,
            index: digest_index(&lvbak),
            in_order: in_order_len(&lvbak),
            lvbak,
            raw,
        }
    }

    /// The whole object, digests included.
    pub fn to_value(&self) -> Value {
        let mut raw = self.raw.clone();
        if let (Some(l), Some(Value::Object(m))) = (&self.lvbak, raw.get_mut(LVBAK_FIELD)) {
            m.insert("sha256".into(), digests_value(&l.digests));
        }
        Value::Object(raw)
    }

    /// The bytes of `manifest-stats.json` (server layout:
    /// `JSON.stringify(value, null, 2)`). Version-1 digests are written as
    /// text straight from [`Trailer::lvbak`], never built as a JSON map.
    pub fn to_json(&self) -> Vec<u8> {
        let Some(l) = &self.lvbak else {
            return to_js_pretty(&Value::Object(self.raw.clone()));
        };
        let by_name = match &l.digests {
            Digests::ByName(v) => v,
            Digests::InOrder(_) => return to_js_pretty(&self.to_value()),
        };
        let Some((text, at, end)) = self.text_around_digests() else {
            return to_js_pretty(&self.to_value());
        };
        let mut out = Vec::with_capacity(text.len() + by_name.len() * 100);
        out.extend_from_slice(&text[..at]);
        if by_name.is_empty() {
            out.extend_from_slice(b"{}");
        } else {
            out.extend_from_slice(b"{");
            for (i, (k, d)) in by_name.iter().enumerate() {
                out.extend_from_slice(if i == 0 { b"\n      " } else { b",\n      " });
                crate::ndjson::write_json_string(&mut out, k);
                out.extend_from_slice(b": \"");
                out.extend_from_slice(hex(d).as_bytes());
                out.extend_from_slice(b"\"");
            }
            out.extend_from_slice(b"\n    }");
        }
        out.extend_from_slice(&text[end..]);
        out
    }

    /// Writes the bytes of [`Trailer::to_json`] to `w` without building
    /// them whole: version-2 digests (4.2 MB of base64 for 96,000 entries)
    /// are encoded and written 4 KiB at a time.
    pub fn write_json<W: Write>(&self, w: &mut W) -> std::io::Result<()> {
        let Some(LvbakTrailer {
            digests: Digests::InOrder(v),
            ..
        }) = &self.lvbak
        else {
            return w.write_all(&self.to_json());
        };
        let Some((text, at, end)) = self.text_around_digests() else {
            return w.write_all(&self.to_json());
        };
        w.write_all(&text[..at])?;
        w.write_all(b"\"")?;
        // Whole groups of 3 bytes encode alone to what they encode to
        // within the whole (padding only at the very end).
        let mut chunk = String::with_capacity(4096);
        for part in v.as_flattened().chunks(3 * 1024) {
            chunk.clear();
            base64::Engine::encode_string(
                &base64::engine::general_purpose::STANDARD,
                part,
                &mut chunk,
            );
            w.write_all(chunk.as_bytes())?;
        }
        w.write_all(b"\"")?;
        w.write_all(&text[end..])
    }

    /// The trailer's text with a placeholder where the digests go, and the
    /// placeholder's span (quotes included); `None` without an `lvbak`
    /// object.
    fn text_around_digests(&self) -> Option<(Vec<u8>, usize, usize)> {
        let mut raw = self.raw.clone();
        let Some(Value::Object(m)) = raw.get_mut(LVBAK_FIELD) else {
            return None;
        };
        // A placeholder no stored string can equal (a control character
        // and a fresh random id), replaced by the digests' text.
        let marker = format!("\u{1}lvbak-digests-{}", uuid::Uuid::new_v4());
        m.insert("sha256".into(), Value::String(marker.clone()));
        let text = to_js_pretty(&Value::Object(raw));
        let quoted = serde_json::to_string(&marker).ok()?.into_bytes();
        let at = text
            .windows(quoted.len())
            .position(|w| w == quoted.as_slice())?;
        Some((text, at, at + quoted.len()))
    }

    /// The digest recorded for an entry by name (version 1 only; versions 2
    /// and 3 record digests by position, see [`Trailer::digest_at`]).
    pub fn digest(&self, entry: &str) -> Option<[u8; 32]> {
        let Some(LvbakTrailer {
            digests: Digests::ByName(v),
            ..
        }) = &self.lvbak
        else {
            return None;
        };
        let k = self
            .index
            .binary_search_by(|&i| {
                v.get(i as usize)
                    .map_or(std::cmp::Ordering::Less, |(k, _)| k.as_str().cmp(entry))
            })
            .ok()?;
        let i = *self.index.get(k)? as usize;
        v.get(i).map(|(_, d)| *d)
    }

    /// The digest recorded for the entry at `position` among the entries
    /// written before the trailer, in central-directory order (versions 2
    /// and 3).
    pub fn digest_at(&self, position: usize) -> Option<[u8; 32]> {
        match &self.lvbak.as_ref()?.digests {
            Digests::InOrder(v) => v.get(position).copied(),
            Digests::ByName(_) => None,
        }
    }
}

/// Which of the in-order digests (versions 2 and 3) is that of the entry
/// at central-directory position `at`, the trailer being at `trailer_at`:
/// digest `at` before the trailer, `at - 1` after it, none for the trailer
/// itself (FORMAT.md §5.1).
pub(crate) fn in_order_slot(at: usize, trailer_at: usize) -> Option<usize> {
    match at.cmp(&trailer_at) {
        std::cmp::Ordering::Less => Some(at),
        std::cmp::Ordering::Greater => Some(at - 1),
        std::cmp::Ordering::Equal => None,
    }
}

fn digests_value(d: &Digests) -> Value {
    match d {
        Digests::ByName(v) => Value::Object(
            v.iter()
                .map(|(k, d)| (k.clone(), Value::from(hex(d))))
                .collect(),
        ),
        Digests::InOrder(v) => Value::String(base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            v.as_flattened(),
        )),
    }
}

/// The version-2 digests: `entries` × 32 bytes, standard base64, decoded
/// straight into the digest list (its size is checked against the text's
/// length first, so a lying `entries` allocates nothing).
/// The reference reading of version-2 digests the parser is checked
/// against: the text must have the length of `entries` digests encoded.
#[cfg(test)]
fn in_order_digests(b64: &str, entries: u64) -> Option<Vec<[u8; 32]>> {
    let bytes = usize::try_from(entries).ok()?.checked_mul(32)?;
    if b64.len() != bytes.div_ceil(3).checked_mul(4)? {
        return None;
    }
    let mut digests = vec![[0u8; 32]; bytes / 32];
    let n = base64::Engine::decode_slice(
        &base64::engine::general_purpose::STANDARD,
        b64,
        digests.as_flattened_mut(),
    )
    .ok()?;
    (n == bytes).then_some(digests)
}

/// `lvbak.sha256` when it is not an object of hex digests.
#[derive(Debug)]
enum NotByName {
    /// A string that is the standard base64 of whole digests, decoded as
    /// it was parsed (its text is not kept: the decoding is canonical, so
    /// encoding the digests gives it back).
    Base64(Vec<[u8; 32]>),
    /// A string read by a lean parse (its text was never held): the
    /// digests it decodes to (`Some`, their number and, when kept, the
    /// digests), or `None` when it is not the base64 of whole digests.
    Tapped(Option<lean::Tapped>),
    /// Any other value, as stored.
    Value(Value),
}

impl NotByName {
    fn from_str(b64: &str) -> NotByName {
        let b = b64.as_bytes();
        let pad = b.iter().rev().take(2).take_while(|&&c| c == b'=').count();
        let bytes = (b.len() / 4 * 3).saturating_sub(pad);
        if b.len() % 4 != 0 || bytes % 32 != 0 {
            return NotByName::Value(Value::String(b64.to_owned()));
        }
        let mut digests = vec![[0u8; 32]; bytes / 32];
        match base64::Engine::decode_slice(
            &base64::engine::general_purpose::STANDARD,
            b64,
            digests.as_flattened_mut(),
        ) {
            Ok(n) if n == bytes => NotByName::Base64(digests),
            _ => NotByName::Value(Value::String(b64.to_owned())),
        }
    }

    /// The value as stored.
    fn into_value(self) -> Value {
        match self {
            NotByName::Base64(d) => Value::String(base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                d.as_flattened(),
            )),
            // Its text is gone; a lean parse documents `null` here.
            NotByName::Tapped(_) => Value::Null,
            NotByName::Value(v) => v,
        }
    }
}

/// Trailers up to this size are read whole and parsed from memory (several
/// times faster than parsing from a reader); larger ones are streamed.
/// lvbak's own trailer for 96,000 entries is 4.2 MB.
const TRAILER_IN_MEMORY: usize = 32 * 1024 * 1024;

impl Trailer {
    /// Parses a trailer from a reader, as [`Trailer::parse`] does from
    /// bytes, without building a JSON map of its digests (tens of
    /// thousands of entries make a trailer of megabytes). A trailer of up
    /// to 32 MiB is read into memory and parsed there; a larger one
    /// (possible only with raised [`crate::Limits`]) is parsed as it
    /// streams, its text never held.
    /// `Ok(None)` when the server would ignore it (not JSON, not an object,
    /// nested deeper than `max_depth`); `Err` only for the reader's errors
    /// (a failed size, CRC-32 or digest check of the entry, say).
    pub fn from_reader<R: Read>(r: R, max_depth: u32) -> std::io::Result<Option<Trailer>> {
        Trailer::from_reader_within(r, max_depth, TRAILER_IN_MEMORY, 0)
    }

    /// [`Trailer::from_reader`] of an entry that says it holds `size`
    /// bytes: the text's buffer is sized once (a text read whole would
    /// otherwise be copied as its buffer doubles).
    pub(crate) fn from_sized_reader<R: Read>(
        r: R,
        max_depth: u32,
        size: u64,
    ) -> std::io::Result<Option<Trailer>> {
        Trailer::from_reader_within(r, max_depth, TRAILER_IN_MEMORY, size)
    }

    fn from_reader_within<R: Read>(
        mut r: R,
        max_depth: u32,
        in_memory: usize,
        size: u64,
    ) -> std::io::Result<Option<Trailer>> {
        let mut text = Vec::with_capacity(usize::try_from(size).unwrap_or(0).min(in_memory));
        let limit = u64::try_from(in_memory).unwrap_or(u64::MAX);
        r.by_ref()
            .take(limit.saturating_add(1))
            .read_to_end(&mut text)?;
        if text.len() > in_memory {
            return Trailer::streamed(std::io::Cursor::new(text).chain(r), max_depth);
        }
        if !DepthScan::default().feed(&text, max_depth) {
            return Ok(None);
        }
        let mut de = serde_json::Deserializer::from_slice(&text);
        let parsed = serde::de::DeserializeSeed::deserialize(TrailerSeed { lean: None }, &mut de)
            .and_then(|t| de.end().map(|()| t));
        Ok(parsed.ok().flatten().map(Trailer::from_parts))
    }

    fn from_parts(p: TrailerParts) -> Trailer {
        let TrailerParts {
            raw,
            lvbak,
            in_order,
        } = p;
        Trailer {
            counts: counts_of(raw.get("counts")),
            missing_files: missing_of(raw.get("missingFiles")),
            index: digest_index(&lvbak),
            in_order,
            lvbak,
            raw,
        }
    }

    fn streamed<R: Read>(r: R, max_depth: u32) -> std::io::Result<Option<Trailer>> {
        Trailer::guarded(r, max_depth, |text| {
            let mut de = serde_json::Deserializer::from_reader(text);
            serde::de::DeserializeSeed::deserialize(TrailerSeed { lean: None }, &mut de)
                .and_then(|t| de.end().map(|()| t))
        })
    }

    /// Parses the bytes of `r` with `parse`, given them through a depth
    /// guard and a 64 KiB buffer, then reads `r` to its end (the entry's
    /// size, CRC-32 and digest checks run there). `Err` with the reader's
    /// own error, `Ok(None)` when too deep or when `parse` failed.
    fn guarded<R: Read>(
        r: R,
        max_depth: u32,
        parse: impl FnOnce(
            std::io::BufReader<&mut DepthGuard<R>>,
        ) -> serde_json::Result<Option<TrailerParts>>,
    ) -> std::io::Result<Option<Trailer>> {
        let mut guard = DepthGuard {
            inner: r,
            scan: DepthScan::default(),
            max: max_depth,
            too_deep: false,
            failure: None,
        };
        let parsed = parse(std::io::BufReader::with_capacity(64 * 1024, &mut guard));
        if let Some(e) = guard.failure.take() {
            return Err(e);
        }
        // Read to the end (the size, CRC-32 and digest checks run there).
        let DepthGuard {
            mut inner,
            too_deep,
            ..
        } = guard;
        std::io::copy(&mut inner, &mut std::io::sink())?;
        if too_deep {
            return Ok(None);
        }
        Ok(parsed.ok().flatten().map(Trailer::from_parts))
    }
}

/// Passes bytes through, tracking JSON nesting (stops, with an error, past
/// the limit) and keeping the inner reader's own error.
struct DepthGuard<R> {
    inner: R,
    scan: DepthScan,
    max: u32,
    too_deep: bool,
    failure: Option<std::io::Error>,
}

impl<R: Read> Read for DepthGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.too_deep {
            return Err(std::io::Error::other("nested too deeply"));
        }
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(e) => {
                let kind = e.kind();
                let msg = e.to_string();
                if kind != std::io::ErrorKind::Interrupted {
                    self.failure = Some(e);
                }
                return Err(std::io::Error::new(kind, msg));
            }
        };
        if !self.scan.feed(&buf[..n], self.max) {
            self.too_deep = true;
            return Err(std::io::Error::other("nested too deeply"));
        }
        Ok(n)
    }
}

/// What the trailer's parse gives: the object as stored (minus parsed
/// digests), lvbak's field, and the number of its in-order digests.
struct TrailerParts {
    raw: Map<String, Value>,
    lvbak: Option<LvbakTrailer>,
    in_order: Option<usize>,
}

/// Deserializes the trailer object; `None` when it is not an object.
/// `lean`: the state a lean parse shares with its tap (`None` otherwise).
struct TrailerSeed<'a> {
    lean: Option<&'a lean::Lean>,
}

impl<'de> serde::de::DeserializeSeed<'de> for TrailerSeed<'_> {
    type Value = Option<TrailerParts>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(TrailerVisitor { lean: self.lean })
    }
}

struct TrailerVisitor<'a> {
    lean: Option<&'a lean::Lean>,
}

impl<'de> serde::de::Visitor<'de> for TrailerVisitor<'_> {
    type Value = Option<TrailerParts>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
        let mut raw = Map::new();
        let mut lvbak = None;
        let mut in_order = None;
        while let Some(k) = m.next_key::<String>()? {
            if k == LVBAK_FIELD {
                // The last one wins, as in JSON.parse; an earlier one's
                // digests are let go before the next are read.
                drop(lvbak.take());
                let f = m.next_value_seed(LvbakSeed { lean: self.lean })?;
                raw.insert(k, f.value);
                lvbak = f.lvbak;
                in_order = f.in_order;
            } else {
                let v: Value = m.next_value()?;
                raw.insert(k, v);
            }
        }
        Ok(Some(TrailerParts {
            raw,
            lvbak,
            in_order,
        }))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut s: A) -> Result<Self::Value, A::Error> {
        while s.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// The `lvbak` field as parsed: its value as stored, minus the digests
/// when they parse (then in `lvbak`), and the number of in-order digests.
struct LvbakField {
    value: Value,
    lvbak: Option<LvbakTrailer>,
    in_order: Option<usize>,
}

/// The `lvbak` field: its value as stored, minus the digests when they
/// parse (then returned as the typed field).
struct LvbakSeed<'a> {
    lean: Option<&'a lean::Lean>,
}

impl<'de> serde::de::DeserializeSeed<'de> for LvbakSeed<'_> {
    type Value = LvbakField;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(LvbakVisitor { lean: self.lean })
    }
}

struct LvbakVisitor<'a> {
    lean: Option<&'a lean::Lean>,
}

impl LvbakVisitor<'_> {
    fn plain(v: Value) -> LvbakField {
        LvbakField {
            value: v,
            lvbak: None,
            in_order: None,
        }
    }

    /// The field with in-order digests: `sha256` leaves the stored object.
    fn in_order(
        mut obj: Map<String, Value>,
        version: u64,
        count: usize,
        digests: Vec<[u8; 32]>,
    ) -> LvbakField {
        obj.shift_remove("sha256");
        LvbakField {
            value: Value::Object(obj),
            lvbak: Some(LvbakTrailer {
                version,
                digests: Digests::InOrder(digests),
            }),
            in_order: Some(count),
        }
    }
}

impl<'de> serde::de::Visitor<'de> for LvbakVisitor<'_> {
    type Value = LvbakField;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
        let mut obj = Map::new();
        let mut digests: Option<ParsedDigests> = None;
        while let Some(k) = m.next_key::<String>()? {
            if k == "sha256" {
                // A repeated key: the last one wins; the earlier digests
                // are let go before the next are read.
                drop(digests.take());
                if let Some(lean) = self.lean {
                    // serde_json has read up to the key's closing quote
                    // and no further: the tap sees the value from its
                    // first byte.
                    lean.arm(obj.get("entries").and_then(Value::as_u64));
                }
                digests = Some(m.next_value_seed(DigestsSeed { lean: self.lean })?);
                // Keeps the key's place; the value is set below.
                obj.insert(k, Value::Null);
            } else {
                let v: Value = m.next_value()?;
                obj.insert(k, v);
            }
        }
        let version = obj.get("version").and_then(Value::as_u64);
        let entries = obj.get("entries").and_then(Value::as_u64);
        match (version, digests) {
            // The by-name layout is that of versions 1 and 2; any later
            // version with it is one this reader does not know.
            (Some(version), Some(Ok(by_name))) if version < 3 => {
                obj.shift_remove("sha256");
                Ok(LvbakField {
                    value: Value::Object(obj),
                    lvbak: Some(LvbakTrailer {
                        version,
                        digests: Digests::ByName(by_name),
                    }),
                    in_order: None,
                })
            }
            (Some(version @ (2 | 3)), Some(Err(NotByName::Base64(d))))
                if entries == Some(d.len() as u64) =>
            {
                Ok(Self::in_order(obj, version, d.len(), d))
            }
            (Some(version @ (2 | 3)), Some(Err(NotByName::Tapped(Some(t)))))
                if entries == Some(t.count as u64) =>
            {
                Ok(Self::in_order(obj, version, t.count, t.digests))
            }
            (_, Some(Ok(sha256))) => {
                let m: Map<String, Value> = sha256
                    .into_iter()
                    .map(|(k, d)| (k, Value::from(hex(&d))))
                    .collect();
                obj.insert("sha256".into(), Value::Object(m));
                Ok(Self::plain(Value::Object(obj)))
            }
            (_, Some(Err(v))) => {
                obj.insert("sha256".into(), v.into_value());
                Ok(Self::plain(Value::Object(obj)))
            }
            (_, None) => Ok(Self::plain(Value::Object(obj))),
        }
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut s: A) -> Result<Self::Value, A::Error> {
        let mut v = Vec::new();
        while let Some(x) = s.next_element::<Value>()? {
            v.push(x);
        }
        Ok(Self::plain(Value::Array(v)))
    }
    fn visit_bool<E>(self, b: bool) -> Result<Self::Value, E> {
        Ok(Self::plain(Value::Bool(b)))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Self::Value, E> {
        Ok(Self::plain(Value::from(n)))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Self::Value, E> {
        Ok(Self::plain(Value::from(n)))
    }
    fn visit_f64<E>(self, n: f64) -> Result<Self::Value, E> {
        Ok(Self::plain(
            Number::from_f64(n).map_or(Value::Null, Value::Number),
        ))
    }
    fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
        Ok(Self::plain(Value::String(s.to_owned())))
    }
    fn visit_string<E>(self, s: String) -> Result<Self::Value, E> {
        Ok(Self::plain(Value::String(s)))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Self::plain(Value::Null))
    }
}

/// `lvbak.sha256`: `Ok` with the digests when it is an object of 64-digit
/// hex strings, else `Err` with the value as stored.
type ParsedDigests = Result<Vec<(String, [u8; 32])>, NotByName>;

/// Deserializes `lvbak.sha256` into [`ParsedDigests`].
struct DigestsSeed<'a> {
    lean: Option<&'a lean::Lean>,
}

impl<'de> serde::de::DeserializeSeed<'de> for DigestsSeed<'_> {
    type Value = ParsedDigests;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(DigestsVisitor { lean: self.lean })
    }
}

struct DigestsVisitor<'a> {
    lean: Option<&'a lean::Lean>,
}

impl<'de> serde::de::Visitor<'de> for DigestsVisitor<'_> {
    type Value = ParsedDigests;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
        let mut good: Vec<(String, [u8; 32])> = Vec::new();
        let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        let mut bad: Option<Map<String, Value>> = None;
        while let Some(k) = m.next_key::<String>()? {
            let v: Value = m.next_value()?;
            if let Some(map) = &mut bad {
                map.insert(k, v);
                continue;
            }
            match v.as_str().and_then(unhex32) {
                Some(d) => match seen.get(&k) {
                    // A repeated key: the last value wins, in the first place.
                    Some(&i) => good[i].1 = d,
                    None => {
                        seen.insert(k.clone(), good.len());
                        good.push((k, d));
                    }
                },
                None => {
                    let mut map: Map<String, Value> = std::mem::take(&mut good)
                        .into_iter()
                        .map(|(k, d)| (k, Value::from(hex(&d))))
                        .collect();
                    map.insert(k, v);
                    bad = Some(map);
                }
            }
        }
        Ok(match bad {
            Some(map) => Err(NotByName::Value(Value::Object(map))),
            None => Ok(good),
        })
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut s: A) -> Result<Self::Value, A::Error> {
        let mut v = Vec::new();
        while let Some(x) = s.next_element::<Value>()? {
            v.push(x);
        }
        Ok(Err(NotByName::Value(Value::Array(v))))
    }
    fn visit_bool<E>(self, b: bool) -> Result<Self::Value, E> {
        Ok(Err(NotByName::Value(Value::Bool(b))))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Self::Value, E> {
        Ok(Err(NotByName::Value(Value::from(n))))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Self::Value, E> {
        Ok(Err(NotByName::Value(Value::from(n))))
    }
    fn visit_f64<E>(self, n: f64) -> Result<Self::Value, E> {
        Ok(Err(NotByName::Value(
            Number::from_f64(n).map_or(Value::Null, Value::Number),
        )))
    }
    fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
        // A lean parse: the tap decoded the string as it streamed, and
        // `s` is only its placeholder.
        if let Some(tapped) = self.lean.and_then(lean::Lean::take) {
            return Ok(Err(NotByName::Tapped(tapped)));
        }
        // Decoded here, so the text of tens of thousands of digests is
        // never copied out of the trailer's bytes.
        Ok(Err(NotByName::from_str(s)))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Err(NotByName::Value(Value::Null)))
    }
}

/// Lowercase hex.
pub fn hex(b: &[u8]) -> String {
    crate::envelope::codec::hex(b)
}

fn unhex32(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        let h = (b[2 * i] as char).to_digit(16)?;
        let l = (b[2 * i + 1] as char).to_digit(16)?;
        *o = (h * 16 + l) as u8;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The byte-by-byte depth scan `DepthScan::feed` replaced, as the
    /// reference: (depth, in string, escaped) after the bytes, or `None`
    /// once nesting exceeds `max`.
    fn reference_scan(chunks: &[&[u8]], max: u32) -> Option<(u32, bool, bool)> {
        let (mut depth, mut in_str, mut esc) = (0u32, false, false);
        for &c in chunks.iter().flat_map(|c| c.iter()) {
            if in_str {
                if esc {
                    esc = false;
                } else if c == b'\\' {
                    esc = true;
                } else if c == b'"' {
                    in_str = false;
                }
                continue;
            }
            match c {
                b'"' => in_str = true,
                b'{' | b'[' => {
                    depth += 1;
                    if depth > max {
                        return None;
                    }
                }
                b'}' | b']' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        Some((depth, in_str, esc))
    }

    #[test]
    fn in_order_digests_decode_any_count_and_refuse_a_lying_one() {
        for entries in 0u8..7 {
            let digests: Vec<[u8; 32]> = (0..entries).map(|i| [i.wrapping_mul(37); 32]).collect();
            let b64 = base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                digests.as_flattened(),
            );
            assert_eq!(
                in_order_digests(&b64, u64::from(entries)),
                Some(digests),
                "{entries}"
            );
            assert_eq!(in_order_digests(&b64, u64::from(entries) + 1), None);
            if entries > 0 {
                assert_eq!(in_order_digests(&b64, u64::from(entries) - 1), None);
                // Right length, one character outside the alphabet.
                let bad = format!("*{}", &b64[1..]);
                assert_eq!(in_order_digests(&bad, u64::from(entries)), None);
            }
        }
        // Right length, but padded for one byte fewer than 32 × entries.
        let one = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [7u8; 32]);
        let short = format!("{}AA==", &one[..one.len() - 4]);
        assert_eq!(short.len(), one.len());
        assert_eq!(in_order_digests(&short, 1), None);
        assert_eq!(in_order_digests("", u64::MAX), None);
    }

    proptest::proptest! {
        #[test]
        fn depth_scan_matches_the_bytewise_reference_in_any_chunking(
            text in proptest::collection::vec(
                proptest::sample::select(b"{}[]\\\"ab:,".to_vec()), 0..200),
            cuts in proptest::collection::vec(0usize..200, 0..6),
            max in 0u32..6,
        ) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(text.len())).collect();
            cuts.sort_unstable();
            let mut chunks = Vec::new();
            let mut from = 0;
            for c in cuts.into_iter().chain([text.len()]) {
                chunks.push(&text[from..c]);
                from = c;
            }
            let mut scan = DepthScan::default();
            let ours = chunks
                .iter()
                .all(|c| scan.feed(c, max))
                .then_some((scan.depth, scan.in_str, scan.esc));
            proptest::prop_assert_eq!(ours, reference_scan(&chunks, max));
        }
    }

    #[test]
    fn server_checks() {
        assert!(matches!(
            Manifest::parse(b"nope", 8),
            Err(ManifestError::NotJson(_))
        ));
        assert_eq!(Manifest::parse(b"[]", 8), Err(ManifestError::NotObject));
        assert!(matches!(
            Manifest::parse(br#"{"schemaVersion":1,"producer":"other"}"#, 8),
            Err(ManifestError::WrongProducer { .. })
        ));
        assert!(matches!(
            Manifest::parse(br#"{"schemaVersion":2,"producer":"lumiverse"}"#, 8),
            Err(ManifestError::UnsupportedSchema { max: 1, .. })
        ));
        assert!(matches!(
            Manifest::parse(br#"{"producer":"lumiverse"}"#, 8),
            Err(ManifestError::UnsupportedSchema { .. })
        ));
        let m = Manifest::parse(
            br#"{"schemaVersion":"1","producer":"lumiverse","ndjsonFormatVersion":1.5,"x":[1]}"#,
            8,
        )
        .unwrap();
        assert_eq!(m.schema_version, 1);
        assert_eq!(m.ndjson_format_version, None);
        assert_eq!(m.extra("x"), Some(&serde_json::json!([1])));
        assert_eq!(
            Manifest::parse(
                format!("{}{}", "[".repeat(50), "]".repeat(50)).as_bytes(),
                8
            ),
            Err(ManifestError::TooDeep(8))
        );
    }

    #[test]
    fn new_manifest_has_the_server_layout() {
        let m = Manifest::new("a", 5);
        let s = String::from_utf8(m.to_json()).unwrap();
        assert!(s.starts_with(
            "{\n  \"schemaVersion\": 1,\n  \"producer\": \"lumiverse\",\n  \"exportedAt\": 5,"
        ));
        assert!(s.contains("\"counts\": {},\n  \"missingFiles\": [],"));
        assert!(!s.ends_with('\n'));
    }

    #[test]
    fn a_trailer_survives_its_own_text() {
        // Found by the fuzz target `manifest`: a number serde_json's
        // default float parsing read one unit off (3.9999999999999996e92,
        // where JSON.parse reads 4e92) came back different from its text.
        let text = format!(
            r#"{{"cots":{{}},"lvbak":{{"zersion":3{},"entries":3,"sha257":"h8gISIjJCUm=="}}}}"#,
            "9".repeat(92)
        );
        let t = Trailer::parse(text.as_bytes(), 128).unwrap();
        assert_eq!(t.raw["lvbak"]["zersion"].as_f64(), Some(4e92));
        assert_eq!(Trailer::parse(&t.to_json(), 128).as_ref(), Some(&t));
    }

    #[test]
    fn trailer_digests_round_trip() {
        let t = Trailer::new(
            vec![("chats".into(), 3)],
            vec![],
            Some(LvbakTrailer {
                version: 1,
                digests: Digests::ByName(vec![("manifest.json".into(), [7; 32])]),
            }),
        );
        let back = Trailer::parse(&t.to_json(), 8).unwrap();
        assert_eq!(back.digest("manifest.json"), Some([7; 32]));
        assert_eq!(back.counts, vec![("chats".to_string(), 3)]);
    }

    /// An independent reading of trailer bytes through `serde_json::Value`
    /// (what `Trailer::parse` did before it shared the streaming parser),
    /// as the reference the streaming parser is checked against.
    fn reference_parse(bytes: &[u8], max_depth: u32) -> Option<Trailer> {
        let mut raw = parse_object(bytes, max_depth).ok()?;
        let lvbak = raw.get(LVBAK_FIELD).and_then(parse_lvbak_field);
        if lvbak.is_some() {
            if let Some(Value::Object(m)) = raw.get_mut(LVBAK_FIELD) {
                m.shift_remove("sha256");
            }
        }
        Some(Trailer {
            counts: counts_of(raw.get("counts")),
            missing_files: missing_of(raw.get("missingFiles")),
            index: digest_index(&lvbak),
            in_order: in_order_len(&lvbak),
            lvbak,
            raw,
        })
    }

    fn parse_lvbak_field(v: &Value) -> Option<LvbakTrailer> {
        let m = v.as_object()?;
        let version = m.get("version")?.as_u64()?;
        match m.get("sha256")? {
            Value::Object(digests) if version < 3 => {
                let mut by_name = Vec::with_capacity(digests.len());
                for (k, v) in digests {
                    by_name.push((k.clone(), unhex32(v.as_str()?)?));
                }
                Some(LvbakTrailer {
                    version,
                    digests: Digests::ByName(by_name),
                })
            }
            Value::String(b64) if version == 2 || version == 3 => {
                let entries = m.get("entries")?.as_u64()?;
                Some(LvbakTrailer {
                    version,
                    digests: Digests::InOrder(in_order_digests(b64, entries)?),
                })
            }
            _ => None,
        }
    }

    #[test]
    fn reading_a_trailer_as_a_stream_gives_what_parsing_its_bytes_gives() {
        let d = |c: char| c.to_string().repeat(64);
        let b64 = |bytes: &[u8]| {
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, bytes)
        };
        let b2 = b64(&[[3u8; 32], [200u8; 32]].concat());
        let b1 = b64(&[0xfbu8; 32]);
        let cases: Vec<String> = vec![
            format!(
                r#"{{"counts":{{"chats":2}},"missingFiles":["a"],"lvbak":{{"version":1,"sha256":{{"manifest.json":"{}","x":"{}"}}}}}}"#,
                d('a'),
                d('b')
            ),
            // Invalid hex, a missing version, sha256 not an object, duplicates.
            format!(
                r#"{{"lvbak":{{"version":1,"sha256":{{"a":"{}","b":"zz"}}}}}}"#,
                d('c')
            ),
            format!(
                r#"{{"lvbak":{{"sha256":{{"a":"{}"}},"extra":[1,2]}}}}"#,
                d('d')
            ),
            r#"{"lvbak":{"version":1,"sha256":"nope"}}"#.to_string(),
            r#"{"lvbak":[1,{"a":null}],"counts":7}"#.to_string(),
            format!(
                r#"{{"lvbak":{{"version":1,"sha256":{{"a":"{}","a":"{}"}}}},"lvbak":{{"version":2,"sha256":{{}}}}}}"#,
                d('e'),
                d('f')
            ),
            format!(
                r#"{{"lvbak":{{"version":1,"sha256":{{"a":"{}","b":"{}","a":"{}"}}}}}}"#,
                d('1'),
                d('2'),
                d('3')
            ),
            r#"{"lvbak":{"version":1.5,"sha256":{}},"n":-3,"f":2.5,"t":true,"z":null}"#.to_string(),
            // Ignored by the server: not an object, not JSON, too deep.
            "[1,2]".to_string(),
            "\"text\"".to_string(),
            // Version-2 digests: right and wrong counts, not whole digests,
            // bad padding or alphabet, escapes, another version.
            format!(r#"{{"lvbak":{{"version":2,"entries":2,"sha256":"{b2}"}}}}"#),
            // Version 3 (digests of the stored bytes, the same layout), and
            // versions this reader does not know, by position or by name.
            format!(r#"{{"lvbak":{{"version":3,"entries":2,"sha256":"{b2}"}}}}"#),
            format!(r#"{{"lvbak":{{"version":3,"entries":3,"sha256":"{b2}"}}}}"#),
            format!(r#"{{"lvbak":{{"version":4,"entries":2,"sha256":"{b2}"}}}}"#),
            format!(
                r#"{{"lvbak":{{"version":3,"sha256":{{"manifest.json":"{}"}}}}}}"#,
                d('a')
            ),
            format!(
                r#"{{"lvbak":{{"version":7,"sha256":{{"manifest.json":"{}"}}}}}}"#,
                d('a')
            ),
            format!(r#"{{"lvbak":{{"sha256":"{b2}","entries":2,"version":2}}}}"#),
            format!(r#"{{"lvbak":{{"version":2,"entries":3,"sha256":"{b2}"}}}}"#),
            format!(r#"{{"lvbak":{{"version":2,"sha256":"{b2}"}}}}"#),
            format!(r#"{{"lvbak":{{"version":1,"entries":2,"sha256":"{b2}"}}}}"#),
            format!(r#"{{"lvbak":{{"version":2,"entries":1,"sha256":"{b1}"}}}}"#),
            format!(
                r#"{{"lvbak":{{"version":2,"entries":1,"sha256":"{}=="}}}}"#,
                &b1[..b1.len() - 1]
            ),
            format!(
                r#"{{"lvbak":{{"version":2,"entries":1,"sha256":"{}AA=="}}}}"#,
                &b1[..b1.len() - 4]
            ),
            format!(
                r#"{{"lvbak":{{"version":2,"entries":1,"sha256":"*{}"}}}}"#,
                &b1[1..]
            ),
            format!(
                r#"{{"lvbak":{{"version":2,"entries":1,"sha256":"\u0041{}"}}}}"#,
                &b1[1..]
            ),
            format!(r#"{{"lvbak":{{"version":2,"entries":0,"sha256":""}}}}"#),
            format!(
                r#"{{"lvbak":{{"version":2,"entries":1,"sha256":"{}"}}}}"#,
                &b1[..40]
            ),
            "{\"a\":1} trailing".to_string(),
            "{\"a\":".to_string(),
            format!("{{\"a\":{}1{}}}", "[".repeat(20), "]".repeat(20)),
            "{\"s\":\"[[[[[[[[[[[[[[[[[[[[[[\\\"\"}".to_string(),
        ];
        for text in cases {
            let bytes = text.as_bytes();
            let parsed = reference_parse(bytes, 8);
            let streamed = Trailer::from_reader(bytes, 8).expect("no I/O error");
            assert_eq!(streamed, parsed, "{text}");
            // The streaming path, for trailers too large to read whole,
            // at every split between what was read and what streams.
            for within in [0, 1, bytes.len() / 2, bytes.len().saturating_sub(1)] {
                let s = Trailer::from_reader_within(bytes, 8, within, bytes.len() as u64)
                    .expect("no I/O error");
                assert_eq!(s, parsed, "{text} streamed past {within} bytes");
            }
            if let (Some(a), Some(b)) = (&streamed, &parsed) {
                assert_eq!(a.to_json(), b.to_json(), "{text}");
                assert_eq!(a.to_value(), b.to_value(), "{text}");
            }
        }
        // The reader's own failure is an error, not an ignored trailer.
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("CRC-32 mismatch"))
            }
        }
        assert!(Trailer::from_reader(Failing, 8).is_err());
    }

    #[test]
    fn written_trailer_is_its_text() {
        // Around the 96-digest (3 KiB) chunks the base64 is written in.
        for n in [0usize, 1, 2, 3, 4, 95, 96, 97, 191, 192, 193, 1000] {
            let digests: Vec<[u8; 32]> = (0..n)
                .map(|i| {
                    let mut d = [0u8; 32];
                    for (j, b) in d.iter_mut().enumerate() {
                        *b = (i * 31 + j * 7) as u8;
                    }
                    d
                })
                .collect();
            let t = Trailer::new(
                vec![("chats".into(), 2), ("messages".into(), n as u64)],
                vec!["files/avatars/a \"b\".png".into()],
                Some(LvbakTrailer::in_order(digests)),
            );
            let mut written = Vec::new();
            t.write_json(&mut written).unwrap();
            assert_eq!(written, t.to_json(), "{n} digests");
            assert_eq!(
                Trailer::parse(&written, 64).and_then(|p| p.lvbak),
                t.lvbak.clone(),
                "{n} digests"
            );
        }
        // Version 1 and no digests: the same bytes as well.
        for lvbak in [
            None,
            Some(LvbakTrailer {
                version: 1,
                digests: Digests::ByName(vec![("manifest.json".into(), [9u8; 32])]),
            }),
        ] {
            let t = Trailer::new(vec![("chats".into(), 1)], vec![], lvbak);
            let mut written = Vec::new();
            t.write_json(&mut written).unwrap();
            assert_eq!(written, t.to_json());
        }
    }

    #[test]
    fn trailer_text_is_what_the_whole_object_pretty_prints_to() {
        for digests in [
            vec![],
            vec![("manifest.json".to_string(), [1u8; 32])],
            vec![
                ("database/b.ndjson".to_string(), [2u8; 32]),
                (
                    "files/images/\"q\"\\é\u{1}\u{2028}.png".to_string(),
                    [3u8; 32],
                ),
                ("database/a.ndjson".to_string(), [4u8; 32]),
            ],
        ] {
            let t = Trailer::new(
                vec![("chats".into(), 3)],
                vec!["files/x".into()],
                Some(LvbakTrailer {
                    version: 1,
                    digests: Digests::ByName(digests.clone()),
                }),
            );
            let text = t.to_json();
            assert_eq!(text, to_js_pretty(&t.to_value()), "{digests:?}");
            let back = Trailer::parse(&text, 8).unwrap();
            for (k, d) in &digests {
                assert_eq!(back.digest(k), Some(*d), "{k}");
            }
            assert_eq!(back.digest("absent"), None);
            assert_eq!(back.to_json(), text, "parse then write is byte-identical");
            assert!(!back.raw[LVBAK_FIELD]
                .as_object()
                .unwrap()
                .contains_key("sha256"));
        }
    }
}

/// Tests added from mutation testing (cargo-mutants): each pins a rule
/// whose mutation no other test noticed.
#[cfg(test)]
mod mutation_tests {
    use super::*;

    fn parse(extra: &str) -> Manifest {
        let text = format!(r#"{{"schemaVersion":1,"producer":"lumiverse"{extra}}}"#);
        Manifest::parse(text.as_bytes(), 128).unwrap()
    }

    #[test]
    fn truthiness_follows_javascript() {
        for (v, want) in [
            ("1", true),
            ("-0.5", true),
            ("0", false),
            ("0.0", false),
            ("\"\"", false),
            ("\"0\"", true),
            ("null", false),
            ("false", false),
            ("true", true),
            ("[]", true),
            ("{}", true),
        ] {
            let m = parse(&format!(
                r#","includeVectors":{v},"hasEncryptedSecrets":{v}"#
            ));
            assert_eq!(m.include_vectors, want, "{v}");
            assert_eq!(m.has_encrypted_secrets, want, "{v}");
        }
        assert!(!parse("").include_vectors);
    }

    #[test]
    fn archive_id_and_secrets_count_are_coerced_like_the_server() {
        assert_eq!(parse(r#","archiveId":"abc""#).archive_id, "abc");
        assert_eq!(parse(r#","archiveId":123"#).archive_id, "123");
        assert_eq!(parse(r#","archiveId":true"#).archive_id, "true");
        for falsy in ["0", "false", "null", "\"\""] {
            assert_eq!(
                parse(&format!(r#","archiveId":{falsy}"#)).archive_id,
                "",
                "{falsy}"
            );
        }
        assert_eq!(parse(r#","secretsCount":3"#).secrets_count, 3);
        assert_eq!(parse(r#","secretsCount":"3""#).secrets_count, 0);
        assert_eq!(parse("").secrets_count, 0);
    }

    #[test]
    fn missing_files_are_read_from_an_array_only() {
        let m = parse(r#","missingFiles":["/a/b.png",7,null]"#);
        assert_eq!(m.missing_files, vec!["/a/b.png", "7", "null"]);
        assert!(parse(r#","missingFiles":"x""#).missing_files.is_empty());
    }

    #[test]
    fn depth_check_counts_only_real_nesting() {
        // Brackets inside strings, escaped quotes, and siblings.
        assert!(depth_ok(br#"{"a":"[[[[[[[[["}"#, 1));
        assert!(depth_ok(br#"{"a":"\"[[[[[[[[["}"#, 1));
        assert!(depth_ok(br#"{"a":"\\","b":1}"#, 1));
        assert!(!depth_ok(br#"{"a":"\\","b":[1]}"#, 1));
        assert!(depth_ok(br#"{"a":[[1]],"b":[[2]],"c":[[3]]}"#, 3));
        assert!(!depth_ok(br#"{"a":[[[1]]]}"#, 3));
        assert!(depth_ok(b"[]", 1));
        assert!(!depth_ok(b"[[]]", 1));
        // End to end: a manifest with deep strings but shallow structure parses.
        let m = parse(r#","note":"[[[[[[[[[[[[[[[[[[[[","siblings":[[1],[2],[3],[4]]"#);
        assert!(m.raw.contains_key("note"));
        assert!(Manifest::parse(
            br#"{"schemaVersion":1,"producer":"lumiverse","x":[[[1]]]}"#,
            4
        )
        .is_ok());
        assert_eq!(
            Manifest::parse(
                br#"{"schemaVersion":1,"producer":"lumiverse","x":[[[1]]]}"#,
                3
            ),
            Err(ManifestError::TooDeep(3))
        );
    }
}
