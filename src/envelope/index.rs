//! `secrets/index.json`: the clear-text list of secret names, readable
//! without the ticket.

use serde_json::{Map, Value};

use super::codec::{hex, unhex32};
use super::error::{describe, IndexError};
use super::js::{js_cmp, push_json_string};
use super::EnvelopeVersion;

/// The `algorithm` a version 2 index names.
pub const V2_INDEX_ALGORITHM: &str = "ChaCha20-Poly1305";

/// The contents of `secrets/index.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    /// Envelope version (`version` field).
    pub version: EnvelopeVersion,
    /// The archive id the index was written for (`archiveId`).
    pub archive_id: String,
    /// The secret names (`keys`), in file order: JavaScript sort order in
    /// every index Lumiverse or lvbak writes.
    pub keys: Vec<String>,
    /// Version 2: the HMAC-SHA256 binding over index and records
    /// (`binding`); `None` in version 1.
    pub binding: Option<[u8; 32]>,
}

impl Index {
    /// Number of secrets the index lists.
    pub fn count(&self) -> usize {
        self.keys.len()
    }
}

fn parse_error(e: &serde_json::Error) -> IndexError {
    IndexError::NotJson {
        line: e.line(),
        column: e.column(),
    }
}

fn string_list(value: Option<&Value>) -> Option<Vec<String>> {
    let Some(Value::Array(items)) = value else {
        return None;
    };
    items
        .iter()
        .map(|v| v.as_str().map(str::to_owned))
        .collect()
}

/// Reads `secrets/index.json` (either version) without the ticket: the
/// version, the archive id and the key names, for example to show what an
/// archive holds.
///
/// Version 1 is read as Lumiverse writes it (`version` the number 1, a
/// string `archiveId`, `keys` an array of strings; other fields are
/// ignored). Version 2 is read strictly: exactly the fields `version`,
/// `archiveId`, `algorithm`, `keys` and `binding`, keys unique and in
/// JavaScript sort order, `binding` 64 lowercase hex digits.
pub fn read_index(index_json: &[u8]) -> Result<Index, IndexError> {
    let value: Value = serde_json::from_slice(index_json).map_err(|e| parse_error(&e))?;
    let Value::Object(obj) = value else {
        return Err(IndexError::NotAnObject);
    };
    let version = match obj.get("version") {
        Some(Value::Number(n)) if n.as_u64() == Some(1) => EnvelopeVersion::V1,
        Some(Value::Number(n)) if n.as_u64() == Some(2) => EnvelopeVersion::V2,
        other => {
            return Err(IndexError::UnsupportedVersion {
                found: describe(other),
            })
        }
    };
    let archive_id = obj
        .get("archiveId")
        .and_then(Value::as_str)
        .ok_or(IndexError::Field("archiveId"))?
        .to_owned();
    let keys = string_list(obj.get("keys")).ok_or(IndexError::Field("keys"))?;
    match version {
        EnvelopeVersion::V1 => Ok(Index {
            version,
            archive_id,
            keys,
            binding: None,
        }),
        EnvelopeVersion::V2 => read_v2_rest(&obj, archive_id, keys),
    }
}

fn read_v2_rest(
    obj: &Map<String, Value>,
    archive_id: String,
    keys: Vec<String>,
) -> Result<Index, IndexError> {
    if let Some(unknown) = obj.keys().find(|k| {
        !matches!(
            k.as_str(),
            "version" | "archiveId" | "algorithm" | "keys" | "binding"
        )
    }) {
        return Err(IndexError::UnknownField(unknown.clone()));
    }
    match obj.get("algorithm") {
        Some(Value::String(s)) if s == V2_INDEX_ALGORITHM => {}
        other => {
            return Err(IndexError::Algorithm {
                found: describe(other),
            })
        }
    }
    let binding = obj
        .get("binding")
        .and_then(Value::as_str)
        .and_then(unhex32)
        .ok_or(IndexError::Field("binding"))?;
    for (position, pair) in keys.windows(2).enumerate() {
        if let [a, b] = pair {
            match js_cmp(a, b) {
                std::cmp::Ordering::Less => {}
                std::cmp::Ordering::Equal => {
                    return Err(IndexError::DuplicateKey { key: b.clone() })
                }
                std::cmp::Ordering::Greater => {
                    return Err(IndexError::NotSorted {
                        position: position + 1,
                    })
                }
            }
        }
    }
    Ok(Index {
        version: EnvelopeVersion::V2,
        archive_id,
        keys,
        binding: Some(binding),
    })
}

/// The version 1 server's view of the index for the binding check: the
/// `keys` array of strings, or no keys at all when the index is absent,
/// not JSON (after lossy UTF-8 decoding, as the server's `TextDecoder`
/// does), not an object, or has no `keys` array of strings.
pub(crate) fn lenient_v1_keys(index_json: Option<&[u8]>) -> Vec<String> {
    let Some(bytes) = index_json else {
        return Vec::new();
    };
    let text = String::from_utf8_lossy(bytes);
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(&text);
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(obj)) => string_list(obj.get("keys")).unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// Writes a version 1 index: `{"version":1,"archiveId":…,"keys":[…]}` and
/// a line feed, keys in the order given (the caller sorts).
pub(crate) fn write_v1(archive_id: &str, sorted_keys: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(b"{\"version\":1,\"archiveId\":");
    push_json_string(&mut out, archive_id);
    out.extend_from_slice(b",\"keys\":");
    push_key_array(&mut out, sorted_keys);
    out.extend_from_slice(b"}\n");
    out
}

/// Writes a version 2 index:
/// `{"version":2,"archiveId":…,"algorithm":"ChaCha20-Poly1305","keys":[…],"binding":"…"}`
/// and a line feed.
pub(crate) fn write_v2(archive_id: &str, sorted_keys: &[&str], binding: &[u8; 32]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(b"{\"version\":2,\"archiveId\":");
    push_json_string(&mut out, archive_id);
    out.extend_from_slice(b",\"algorithm\":");
    push_json_string(&mut out, V2_INDEX_ALGORITHM);
    out.extend_from_slice(b",\"keys\":");
    push_key_array(&mut out, sorted_keys);
    out.extend_from_slice(b",\"binding\":");
    push_json_string(&mut out, &hex(binding));
    out.extend_from_slice(b"}\n");
    out
}

fn push_key_array(out: &mut Vec<u8>, keys: &[&str]) {
    crate::ndjson::write_array(out, keys, |out, key| push_json_string(out, key));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_round_trip_and_lenient_keys() {
        let bytes = write_v1("arch", &["a", "b\n\"c"]);
        let idx = read_index(&bytes);
        assert_eq!(
            idx,
            Ok(Index {
                version: EnvelopeVersion::V1,
                archive_id: "arch".into(),
                keys: vec!["a".into(), "b\n\"c".into()],
                binding: None,
            })
        );
        assert_eq!(lenient_v1_keys(Some(&bytes)), ["a", "b\n\"c"]);
        assert!(lenient_v1_keys(None).is_empty());
        assert!(lenient_v1_keys(Some(b"{")).is_empty());
        assert!(lenient_v1_keys(Some(b"{\"keys\":[1]}")).is_empty());
    }

    #[test]
    fn v2_is_strict() {
        let ok = write_v2("arch", &["a", "b"], &[7; 32]);
        assert!(read_index(&ok).is_ok());
        let unsorted = write_v2("arch", &["b", "a"], &[7; 32]);
        assert_eq!(
            read_index(&unsorted),
            Err(IndexError::NotSorted { position: 1 })
        );
        let dup = write_v2("arch", &["a", "a"], &[7; 32]);
        assert!(matches!(
            read_index(&dup),
            Err(IndexError::DuplicateKey { .. })
        ));
        let extra = br#"{"version":2,"archiveId":"a","algorithm":"ChaCha20-Poly1305","keys":[],"binding":"0000000000000000000000000000000000000000000000000000000000000000","x":1}"#;
        assert!(matches!(
            read_index(extra),
            Err(IndexError::UnknownField(_))
        ));
        assert!(matches!(
            read_index(br#"{"version":3,"archiveId":"a","keys":[]}"#),
            Err(IndexError::UnsupportedVersion { .. })
        ));
    }
}
