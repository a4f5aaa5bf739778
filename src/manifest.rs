//! `manifest.json` and `manifest-stats.json` (the trailer): typed,
//! versioned, with unknown fields kept (FORMAT.md §3).
//!
//! Parsing works on byte slices. Writing reproduces the server's layout
//! (`JSON.stringify(value, null, 2)`: two-space indent, no trailing newline).

use serde_json::{Map, Number, Value};

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
fn depth_ok(bytes: &[u8], max: u32) -> bool {
    let mut depth = 0u32;
    let mut in_str = false;
    let mut esc = false;
    for &c in bytes {
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
                    return false;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    true
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
}

impl PartialEq for Trailer {
    fn eq(&self, other: &Trailer) -> bool {
        self.counts == other.counts
            && self.missing_files == other.missing_files
            && self.lvbak == other.lvbak
            && self.raw == other.raw
    }
}

fn digest_index(l: &Option<LvbakTrailer>) -> Vec<u32> {
    let Some(l) = l else { return Vec::new() };
    let mut idx: Vec<u32> = (0..l.sha256.len())
        .filter_map(|i| u32::try_from(i).ok())
        .collect();
    idx.sort_by(|&a, &b| l.sha256[a as usize].0.cmp(&l.sha256[b as usize].0));
    idx
}

/// lvbak's field in the trailer: per-entry SHA-256 digests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LvbakTrailer {
    /// Version of this field's layout (1).
    pub version: u64,
    /// Entry name → SHA-256 of its uncompressed bytes.
    pub sha256: Vec<(String, [u8; 32])>,
}

impl LvbakTrailer {
    /// The digest recorded for `entry` (a linear scan; see [`Trailer::digest`]
    /// for the indexed lookup).
    pub fn find(&self, entry: &str) -> Option<[u8; 32]> {
        self.sha256
            .iter()
            .find(|(k, _)| k == entry)
            .map(|(_, d)| *d)
    }
}

/// Key of lvbak's field in the trailer.
pub const LVBAK_FIELD: &str = "lvbak";

impl Trailer {
    /// Parses trailer bytes. `None` when the server would ignore it (not a
    /// JSON object); the caller reports that.
    pub fn parse(bytes: &[u8], max_depth: u32) -> Option<Trailer> {
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
            lvbak,
            raw,
        })
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
            raw.insert(LVBAK_FIELD.into(), Value::Object(m));
        }
        Trailer {
            counts,
            missing_files,
            index: digest_index(&lvbak),
            lvbak,
            raw,
        }
    }

    /// The whole object, digests included.
    pub fn to_value(&self) -> Value {
        let mut raw = self.raw.clone();
        if let (Some(l), Some(Value::Object(m))) = (&self.lvbak, raw.get_mut(LVBAK_FIELD)) {
            m.insert(
                "sha256".into(),
                Value::Object(
                    l.sha256
                        .iter()
                        .map(|(k, d)| (k.clone(), Value::from(hex(d))))
                        .collect(),
                ),
            );
        }
        Value::Object(raw)
    }

    /// The bytes of `manifest-stats.json` (server layout:
    /// `JSON.stringify(value, null, 2)`). The digests are written as text
    /// straight from [`Trailer::lvbak`], never built as a JSON map.
    pub fn to_json(&self) -> Vec<u8> {
        let mut raw = self.raw.clone();
        let (Some(l), Some(Value::Object(m))) = (&self.lvbak, raw.get_mut(LVBAK_FIELD)) else {
            return to_js_pretty(&Value::Object(raw));
        };
        // A placeholder no stored string can equal (a control character
        // and a fresh random id), replaced by the digests' text.
        let marker = format!("\u{1}lvbak-digests-{}", uuid::Uuid::new_v4());
        m.insert("sha256".into(), Value::String(marker.clone()));
        let text = to_js_pretty(&Value::Object(raw));
        let quoted = serde_json::to_string(&marker)
            .unwrap_or_default()
            .into_bytes();
        let Some(at) = text
            .windows(quoted.len())
            .position(|w| w == quoted.as_slice())
        else {
            return self.to_value_json();
        };
        let mut out = Vec::with_capacity(text.len() + l.sha256.len() * 100);
        out.extend_from_slice(&text[..at]);
        if l.sha256.is_empty() {
            out.extend_from_slice(b"{}");
        } else {
            out.extend_from_slice(b"{");
            for (i, (k, d)) in l.sha256.iter().enumerate() {
                out.extend_from_slice(if i == 0 { b"\n      " } else { b",\n      " });
                out.extend_from_slice(serde_json::to_string(k).unwrap_or_default().as_bytes());
                out.extend_from_slice(b": \"");
                out.extend_from_slice(hex(d).as_bytes());
                out.extend_from_slice(b"\"");
            }
            out.extend_from_slice(b"\n    }");
        }
        out.extend_from_slice(&text[at + quoted.len()..]);
        out
    }

    fn to_value_json(&self) -> Vec<u8> {
        to_js_pretty(&self.to_value())
    }

    /// The recorded digest of an entry.
    pub fn digest(&self, entry: &str) -> Option<[u8; 32]> {
        let l = self.lvbak.as_ref()?;
        let k = self
            .index
            .binary_search_by(|&i| {
                l.sha256
                    .get(i as usize)
                    .map_or(std::cmp::Ordering::Less, |(k, _)| k.as_str().cmp(entry))
            })
            .ok()?;
        let i = *self.index.get(k)? as usize;
        l.sha256.get(i).map(|(_, d)| *d)
    }
}

fn parse_lvbak_field(v: &Value) -> Option<LvbakTrailer> {
    let m = v.as_object()?;
    let version = m.get("version")?.as_u64()?;
    let digests = m.get("sha256")?.as_object()?;
    let mut sha256 = Vec::with_capacity(digests.len());
    for (k, v) in digests {
        sha256.push((k.clone(), unhex32(v.as_str()?)?));
    }
    Some(LvbakTrailer { version, sha256 })
}

/// Lowercase hex.
pub fn hex(b: &[u8]) -> String {
    const D: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        s.push(D[usize::from(x >> 4)] as char);
        s.push(D[usize::from(x & 15)] as char);
    }
    s
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
    fn trailer_digests_round_trip() {
        let t = Trailer::new(
            vec![("chats".into(), 3)],
            vec![],
            Some(LvbakTrailer {
                version: 1,
                sha256: vec![("manifest.json".into(), [7; 32])],
            }),
        );
        let back = Trailer::parse(&t.to_json(), 8).unwrap();
        assert_eq!(back.digest("manifest.json"), Some([7; 32]));
        assert_eq!(back.counts, vec![("chats".to_string(), 3)]);
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
                    sha256: digests.clone(),
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
