//! Envelope version 1: what the Lumiverse 1.1 server writes and reads,
//! byte for byte.
//!
//! AES-256-GCM keyed directly with the ticket's 32 bytes, a random 12-byte
//! IV per record, no associated data. See `spec/envelope.md` for the known
//! weaknesses this inherits (records can be swapped, renamed, dropped,
//! duplicated or reordered without the cryptography noticing).

use std::collections::HashSet;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use serde_json::Value;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::codec::{b64_decode_lenient, b64_encode, hex};
use super::error::{OpenNote, RecordFailure, RecordProblem, SealError};
use super::index::{lenient_v1_keys, read_index, write_v1};
use super::js::{js_sort, push_json_string};
use super::secret::{Secret, SecretKey, SecretSet};
use super::ticket::{Ticket, V1_ALGORITHM};
use super::{EnvelopeVersion, Opened, Sealed, NONCE_LEN, TAG_LEN};

/// The version 1 `secretsHash`: lowercase hex SHA-256 of the UTF-8 string
/// `archiveId + "|" + "AES-256-GCM" + "|" + keys.join("\n")`, the keys
/// first sorted in JavaScript order ([`super::js_sort`]). With no keys
/// nothing follows the second `|`.
pub fn secrets_hash_v1<S: AsRef<str>>(archive_id: &str, keys: &[S]) -> String {
    let mut sorted: Vec<&str> = keys.iter().map(AsRef::as_ref).collect();
    js_sort(&mut sorted);
    let mut h = Sha256::new();
    h.update(archive_id.as_bytes());
    h.update(b"|");
    h.update(V1_ALGORITHM.as_bytes());
    h.update(b"|");
    for (i, key) in sorted.iter().enumerate() {
        if i > 0 {
            h.update(b"\n");
        }
        h.update(key.as_bytes());
    }
    hex(&h.finalize())
}

fn cipher(key: &SecretKey) -> Aes256Gcm {
    Aes256Gcm::new(key.expose_secret().into())
}

/// Seals `secrets` (already validated: unique keys, non-empty archive id).
/// Nonces are drawn in record order, i.e. byte order of the key names.
pub(crate) fn seal(
    archive_id: &str,
    secrets: &SecretSet,
    issued_at: i64,
    key: &SecretKey,
    next_nonce: &mut dyn FnMut() -> Result<[u8; NONCE_LEN], SealError>,
) -> Result<Sealed, SealError> {
    let aead = cipher(key);
    // Records in database order: SQLite's BINARY collation, i.e. UTF-8
    // byte order, which is Rust's `str` order.
    let mut records: Vec<&Secret> = secrets.iter().collect();
    records.sort_by(|a, b| a.key.cmp(&b.key));
    let mut ndjson = Vec::new();
    for secret in &records {
        let iv = next_nonce()?;
        let sealed = aead
            .encrypt(
                Nonce::from_slice(&iv),
                Payload {
                    msg: secret.value.as_bytes(),
                    aad: b"",
                },
            )
            .map_err(|_| SealError::Crypto)?;
        let split = sealed.len().checked_sub(TAG_LEN).ok_or(SealError::Crypto)?;
        let (ciphertext, tag) = sealed.split_at(split);
        ndjson.extend_from_slice(b"{\"key\":");
        push_json_string(&mut ndjson, &secret.key);
        ndjson.extend_from_slice(b",\"iv\":");
        push_json_string(&mut ndjson, &b64_encode(&iv));
        ndjson.extend_from_slice(b",\"tag\":");
        push_json_string(&mut ndjson, &b64_encode(tag));
        ndjson.extend_from_slice(b",\"ciphertext\":");
        push_json_string(&mut ndjson, &b64_encode(ciphertext));
        ndjson.extend_from_slice(b"}\n");
    }
    let mut keys: Vec<&str> = secrets.keys().collect();
    js_sort(&mut keys);
    let index_json = write_v1(archive_id, &keys);
    let hash = secrets_hash_v1(archive_id, &keys);
    Ok(Sealed {
        index_json,
        encrypted_ndjson: ndjson,
        ticket: Ticket::issue(EnvelopeVersion::V1, archive_id, issued_at, key, hash),
        count: records.len(),
    })
}

/// One record's outcome: the secret, or why not.
fn open_record(
    aead: &Aes256Gcm,
    line_no: usize,
    text: &str,
    notes: &mut Vec<OpenNote>,
) -> Result<Secret, RecordFailure> {
    let fail = |key: Option<&str>, problem| RecordFailure {
        line: line_no,
        key: key.map(str::to_owned),
        problem,
    };
    let value: Value =
        serde_json::from_str(text).map_err(|_| fail(None, RecordProblem::NotJson))?;
    let Value::Object(obj) = value else {
        return Err(fail(None, RecordProblem::NotAnObject));
    };
    let Some(key) = obj.get("key").and_then(Value::as_str) else {
        return Err(fail(None, RecordProblem::MissingField("key")));
    };
    let field = |name: &'static str| {
        obj.get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| fail(Some(key), RecordProblem::MissingField(name)))
    };
    let iv = field("iv")?;
    let tag = field("tag")?;
    let ciphertext = field("ciphertext")?;
    let iv = b64_decode_lenient(iv);
    if iv.len() != NONCE_LEN {
        return Err(fail(
            Some(key),
            RecordProblem::UnsupportedIvLength(iv.len()),
        ));
    }
    // The server concatenates ciphertext and tag; only the last 16 bytes
    // of the concatenation act as the tag.
    let mut sealed = b64_decode_lenient(ciphertext);
    sealed.extend_from_slice(&b64_decode_lenient(tag));
    if sealed.len() < TAG_LEN {
        return Err(fail(Some(key), RecordProblem::TooShort(sealed.len())));
    }
    let plain = aead
        .decrypt(
            Nonce::from_slice(&iv),
            Payload {
                msg: &sealed,
                aad: b"",
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| fail(Some(key), RecordProblem::Authentication))?;
    // The server decodes with `new TextDecoder().decode(plain)`: a leading
    // byte order mark is dropped and invalid UTF-8 becomes U+FFFD.
    let body = match plain.strip_prefix(b"\xEF\xBB\xBF".as_slice()) {
        Some(rest) => {
            notes.push(OpenNote::LeadingBomStripped {
                key: key.to_owned(),
                line: line_no,
            });
            rest
        }
        None => plain.as_slice(),
    };
    let value = match std::str::from_utf8(body) {
        Ok(s) => Zeroizing::new(s.to_owned()),
        Err(_) => {
            notes.push(OpenNote::InvalidUtf8Replaced {
                key: key.to_owned(),
                line: line_no,
            });
            Zeroizing::new(String::from_utf8_lossy(body).into_owned())
        }
    };
    Ok(Secret {
        key: key.to_owned(),
        value,
    })
}

/// Opens a version 1 envelope like the server does, reporting what the
/// server would skip silently. The ticket was already checked.
pub(crate) fn open(
    ticket: &Ticket,
    key: &SecretKey,
    archive_id: &str,
    index_json: Option<&[u8]>,
    encrypted_ndjson: &[u8],
) -> Opened {
    let mut notes = Vec::new();
    if ticket.secrets_hash().is_none() {
        notes.push(OpenNote::BindingCheckSkipped);
    }
    match index_json.map(read_index) {
        None => notes.push(OpenNote::IndexMissing),
        Some(Err(_)) => notes.push(OpenNote::IndexUnreadable),
        Some(Ok(index)) if index.version != EnvelopeVersion::V1 => {
            notes.push(OpenNote::IndexVersionMismatch {
                index: index.version.number(),
            })
        }
        Some(Ok(index)) if index.archive_id != archive_id => {
            notes.push(OpenNote::IndexArchiveMismatch {
                index_archive_id: index.archive_id,
            })
        }
        Some(Ok(_)) => {}
    }
    let listed = lenient_v1_keys(index_json);
    let listed_set: HashSet<&str> = listed.iter().map(String::as_str).collect();
    let aead = cipher(key);
    let mut secrets = SecretSet::new();
    let mut failures = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    for (i, raw) in encrypted_ndjson.split(|&b| b == b'\n').enumerate() {
        let line_no = i + 1;
        let text = String::from_utf8_lossy(raw);
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        match open_record(&aead, line_no, text, &mut notes) {
            Ok(secret) => {
                if !listed_set.contains(secret.key.as_str()) {
                    notes.push(OpenNote::UnlistedRecord {
                        key: secret.key.clone(),
                        line: line_no,
                    });
                }
                if !seen.insert(secret.key.clone()) {
                    notes.push(OpenNote::DuplicateRecord {
                        key: secret.key.clone(),
                        line: line_no,
                    });
                }
                secrets.push(secret);
            }
            Err(failure) => {
                if let Some(k) = &failure.key {
                    seen.insert(k.clone());
                }
                failures.push(failure);
            }
        }
    }
    for key in &listed {
        if !seen.contains(key) {
            notes.push(OpenNote::MissingRecord { key: key.clone() });
        }
    }
    Opened {
        version: EnvelopeVersion::V1,
        secrets,
        failures,
        notes,
    }
}
