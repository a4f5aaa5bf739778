//! Envelope version 2: lvbak's own, authenticated end to end.
//!
//! * Keys: HKDF-SHA256 with IKM = the ticket's 32 bytes, salt = the archive
//!   id's UTF-8 bytes, and one info label per purpose
//!   ([`V2_INFO_RECORD_KEY`], [`V2_INFO_BINDING_KEY`]).
//! * Records: ChaCha20-Poly1305 with a random 12-byte nonce; the associated
//!   data binds archive id, envelope version, record position and key name.
//! * Binding: HMAC-SHA256 under the binding key over the index (archive id,
//!   version, algorithm, record count, ordered key list) and every record's
//!   position, key, nonce and ciphertext; stored in `secrets/index.json`.
//! * Commitment: the ticket's `secretsHash` is SHA-256 over the index
//!   including the binding, tying the ticket to this one export.
//!
//! All integers are big-endian; `lp(x)` is `u64(len(x)) ‖ x`. The exact
//! byte layouts are in `spec/envelope.md`.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use hkdf::hmac::{Hmac, Mac};
use hkdf::Hkdf;
use serde_json::Value;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::codec::{b64_decode_strict, b64_encode, hex, push_lp};
use super::error::{EnvelopeError, RecordProblem, SealError};
use super::index::{read_index, write_v2, Index, V2_INDEX_ALGORITHM};
use super::js::{js_cmp, push_json_string};
use super::secret::{Secret, SecretKey, SecretSet};
use super::ticket::Ticket;
use super::{EnvelopeVersion, Sealed, NONCE_LEN, TAG_LEN};

/// HKDF-SHA256 `info` of the ChaCha20-Poly1305 record key.
pub const V2_INFO_RECORD_KEY: &[u8] = b"lvbak/v2/record-key";
/// HKDF-SHA256 `info` of the HMAC-SHA256 binding key.
pub const V2_INFO_BINDING_KEY: &[u8] = b"lvbak/v2/binding-key";
/// First field of every record's associated data.
pub const V2_LABEL_RECORD_AD: &[u8] = b"lvbak/v2/record-ad";
/// First field of the binding MAC's input.
pub const V2_LABEL_BINDING: &[u8] = b"lvbak/v2/binding";
/// First field of the ticket commitment's input.
pub const V2_LABEL_COMMITMENT: &[u8] = b"lvbak/v2/secrets-hash";

/// The version number as the 4 bytes used in associated data and MACs.
const VERSION_BYTES: [u8; 4] = 2u32.to_be_bytes();

type HmacSha256 = Hmac<Sha256>;

struct Keys {
    record: Zeroizing<[u8; 32]>,
    binding: Zeroizing<[u8; 32]>,
}

fn derive_keys(secret: &SecretKey, archive_id: &str) -> Option<Keys> {
    let hk = Hkdf::<Sha256>::new(Some(archive_id.as_bytes()), secret.expose_secret());
    let mut keys = Keys {
        record: Zeroizing::new([0; 32]),
        binding: Zeroizing::new([0; 32]),
    };
    hk.expand(V2_INFO_RECORD_KEY, keys.record.as_mut_slice())
        .ok()?;
    hk.expand(V2_INFO_BINDING_KEY, keys.binding.as_mut_slice())
        .ok()?;
    Some(keys)
}

/// `lp("lvbak/v2/record-ad") ‖ lp(archiveId) ‖ u32(2) ‖ u64(position) ‖ lp(key)`
fn record_ad(archive_id: &str, position: usize, key: &str) -> Vec<u8> {
    let mut ad = Vec::with_capacity(64 + archive_id.len() + key.len());
    push_lp(&mut ad, V2_LABEL_RECORD_AD);
    push_lp(&mut ad, archive_id.as_bytes());
    ad.extend_from_slice(&VERSION_BYTES);
    ad.extend_from_slice(&(position as u64).to_be_bytes());
    push_lp(&mut ad, key.as_bytes());
    ad
}

/// `lp(label) ‖ lp(archiveId) ‖ u32(2) ‖ lp("ChaCha20-Poly1305") ‖ u64(n) ‖ lp(key_0) ‖ … ‖ lp(key_{n-1})`
fn index_header<S: AsRef<str>>(label: &[u8], archive_id: &str, keys: &[S]) -> Vec<u8> {
    let mut out = Vec::new();
    push_lp(&mut out, label);
    push_lp(&mut out, archive_id.as_bytes());
    out.extend_from_slice(&VERSION_BYTES);
    push_lp(&mut out, V2_INDEX_ALGORITHM.as_bytes());
    out.extend_from_slice(&(keys.len() as u64).to_be_bytes());
    for key in keys {
        push_lp(&mut out, key.as_ref().as_bytes());
    }
    out
}

/// A record as the binding sees it.
struct RecordBytes<'a> {
    key: &'a str,
    nonce: [u8; NONCE_LEN],
    ciphertext: Vec<u8>,
}

/// HMAC-SHA256(binding key, index_header("lvbak/v2/binding") ‖
/// for each record i: u64(i) ‖ lp(key_i) ‖ lp(nonce_i) ‖ lp(ciphertext_i)).
fn binding_mac<S: AsRef<str>>(
    binding_key: &[u8; 32],
    archive_id: &str,
    keys: &[S],
    records: &[RecordBytes<'_>],
) -> Option<HmacSha256> {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(binding_key).ok()?;
    mac.update(&index_header(V2_LABEL_BINDING, archive_id, keys));
    for (i, r) in records.iter().enumerate() {
        let mut buf = Vec::with_capacity(48 + r.key.len() + r.ciphertext.len());
        buf.extend_from_slice(&(i as u64).to_be_bytes());
        push_lp(&mut buf, r.key.as_bytes());
        push_lp(&mut buf, &r.nonce);
        push_lp(&mut buf, &r.ciphertext);
        mac.update(&buf);
    }
    Some(mac)
}

/// SHA-256(index_header("lvbak/v2/secrets-hash") ‖ lp(binding)).
fn commitment_of<S: AsRef<str>>(archive_id: &str, keys: &[S], binding: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(index_header(V2_LABEL_COMMITMENT, archive_id, keys));
    let mut tail = Vec::with_capacity(40);
    push_lp(&mut tail, binding);
    h.update(&tail);
    h.finalize().into()
}

/// The ticket commitment of a version 2 index (`None` for version 1).
pub(crate) fn commitment(index: &Index) -> Option<[u8; 32]> {
    let binding = index.binding.as_ref()?;
    Some(commitment_of(&index.archive_id, &index.keys, binding))
}

/// Seals `secrets` (already validated). Records and index keys are in
/// JavaScript sort order; nonces are drawn in that order.
pub(crate) fn seal(
    archive_id: &str,
    secrets: &SecretSet,
    issued_at: i64,
    key: &SecretKey,
    next_nonce: &mut dyn FnMut() -> Result<[u8; NONCE_LEN], SealError>,
) -> Result<Sealed, SealError> {
    let keys = derive_keys(key, archive_id).ok_or(SealError::Crypto)?;
    let aead = ChaCha20Poly1305::new(keys.record.as_ref().into());
    let mut ordered: Vec<&Secret> = secrets.iter().collect();
    ordered.sort_by(|a, b| js_cmp(&a.key, &b.key));
    let mut records = Vec::with_capacity(ordered.len());
    for (position, secret) in ordered.iter().enumerate() {
        let nonce = next_nonce()?;
        let ciphertext = aead
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: secret.value.as_bytes(),
                    aad: &record_ad(archive_id, position, &secret.key),
                },
            )
            .map_err(|_| SealError::Crypto)?;
        records.push(RecordBytes {
            key: &secret.key,
            nonce,
            ciphertext,
        });
    }
    let names: Vec<&str> = ordered.iter().map(|s| s.key.as_str()).collect();
    let binding: [u8; 32] = binding_mac(&keys.binding, archive_id, &names, &records)
        .ok_or(SealError::Crypto)?
        .finalize()
        .into_bytes()
        .into();
    let mut ndjson = Vec::new();
    for r in &records {
        ndjson.extend_from_slice(b"{\"key\":");
        push_json_string(&mut ndjson, r.key);
        ndjson.extend_from_slice(b",\"nonce\":");
        push_json_string(&mut ndjson, &b64_encode(&r.nonce));
        ndjson.extend_from_slice(b",\"ciphertext\":");
        push_json_string(&mut ndjson, &b64_encode(&r.ciphertext));
        ndjson.extend_from_slice(b"}\n");
    }
    let commitment = commitment_of(archive_id, &names, &binding);
    Ok(Sealed {
        index_json: write_v2(archive_id, &names, &binding),
        encrypted_ndjson: ndjson,
        ticket: Ticket::issue(
            EnvelopeVersion::V2,
            archive_id,
            issued_at,
            key,
            hex(&commitment),
        ),
        count: records.len(),
    })
}

/// A record line, decoded but not yet decrypted.
struct ParsedRecord {
    key: String,
    nonce: [u8; NONCE_LEN],
    ciphertext: Vec<u8>,
}

/// Why a line is not a record: the key when it could be read, and what.
type LineError = (Option<String>, RecordProblem);

/// Parses one record line: `{"key":…,"nonce":…,"ciphertext":…}`.
fn parse_record(line: &[u8]) -> Result<ParsedRecord, LineError> {
    if line.is_empty() {
        return Err((None, RecordProblem::EmptyLine));
    }
    let value: Value = serde_json::from_slice(line).map_err(|_| (None, RecordProblem::NotJson))?;
    let Value::Object(obj) = value else {
        return Err((None, RecordProblem::NotAnObject));
    };
    let key = obj.get("key").and_then(Value::as_str).map(str::to_owned);
    let with_key = |problem| (key.clone(), problem);
    if let Some(unknown) = obj
        .keys()
        .find(|k| !matches!(k.as_str(), "key" | "nonce" | "ciphertext"))
    {
        return Err(with_key(RecordProblem::UnknownField(unknown.clone())));
    }
    let Some(name) = key.clone() else {
        return Err(with_key(RecordProblem::MissingField("key")));
    };
    let field = |field: &'static str| {
        let text = obj
            .get(field)
            .and_then(Value::as_str)
            .ok_or_else(|| with_key(RecordProblem::MissingField(field)))?;
        b64_decode_strict(text).ok_or_else(|| with_key(RecordProblem::BadBase64(field)))
    };
    let nonce_bytes = field("nonce")?;
    let nonce: [u8; NONCE_LEN] = nonce_bytes
        .as_slice()
        .try_into()
        .map_err(|_| with_key(RecordProblem::BadNonceLength(nonce_bytes.len())))?;
    let ciphertext = field("ciphertext")?;
    if ciphertext.len() < TAG_LEN {
        return Err(with_key(RecordProblem::TooShort(ciphertext.len())));
    }
    Ok(ParsedRecord {
        key: name,
        nonce,
        ciphertext,
    })
}

/// Opens a version 2 envelope; any problem is an error. The ticket was
/// already checked (its commitment matches `index_json`).
pub(crate) fn open(
    key: &SecretKey,
    archive_id: &str,
    index_json: Option<&[u8]>,
    encrypted_ndjson: &[u8],
) -> Result<SecretSet, EnvelopeError> {
    let index = read_index(index_json.ok_or(EnvelopeError::MissingIndex)?)?;
    if index.version != EnvelopeVersion::V2 {
        return Err(EnvelopeError::VersionMismatch {
            ticket: 2,
            index: index.version.number(),
        });
    }
    let binding = index.binding.ok_or(EnvelopeError::BindingMac)?;
    let body = match encrypted_ndjson {
        [] => None,
        [body @ .., b'\n'] => Some(body),
        _ => return Err(EnvelopeError::Truncated),
    };
    let lines: Vec<&[u8]> = body
        .map(|b| b.split(|&c| c == b'\n').collect())
        .unwrap_or_default();
    if lines.len() != index.keys.len() {
        return Err(EnvelopeError::RecordCount {
            expected: index.keys.len(),
            found: lines.len(),
        });
    }
    let keys = derive_keys(key, archive_id).ok_or(EnvelopeError::Crypto)?;
    let aead = ChaCha20Poly1305::new(keys.record.as_ref().into());
    let mut secrets = SecretSet::new();
    let mut records = Vec::with_capacity(lines.len());
    for (position, (line, expected)) in lines.iter().zip(&index.keys).enumerate() {
        let err = |key: Option<String>, problem| EnvelopeError::Record {
            position,
            key,
            problem,
        };
        let ParsedRecord {
            key: name,
            nonce,
            ciphertext,
        } = parse_record(line).map_err(|(k, p)| err(k, p))?;
        if &name != expected {
            return Err(err(
                Some(name),
                RecordProblem::KeyMismatch {
                    expected: expected.clone(),
                },
            ));
        }
        let plain = aead
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &ciphertext,
                    aad: &record_ad(archive_id, position, &name),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| err(Some(name.clone()), RecordProblem::Authentication))?;
        let value = std::str::from_utf8(&plain)
            .map(|s| Zeroizing::new(s.to_owned()))
            .map_err(|_| err(Some(name.clone()), RecordProblem::InvalidUtf8))?;
        secrets.push(Secret { key: name, value });
        records.push(RecordBytes {
            key: expected,
            nonce,
            ciphertext,
        });
    }
    binding_mac(&keys.binding, archive_id, &index.keys, &records)
        .ok_or(EnvelopeError::Crypto)?
        .verify_slice(&binding)
        .map_err(|_| EnvelopeError::BindingMac)?;
    Ok(secrets)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECORD_KEY: &str = "e745df36789b205d1808e847a710cd6e326c0d2ec4ef034543241604959f4af4";
    const BINDING_KEY: &str = "94fe7522a66ccd4b0dba41a62a07b02d29c202b237bc98afc0d36893bbb6bae2";
    const AD_0: &str = "00000000000000126c7662616b2f76322f7265636f72642d6164000000000000002430623565376633612d396334312d346432652d386136372d3266316333643465356236610000000200000000000000000000000000000017636f6e6e656374696f6e5f376433655f6170695f6b6579";

    #[test]
    fn intermediate_vectors_match_spec() {
        let archive = "0b5e7f3a-9c41-4d2e-8a67-2f1c3d4e5b6a";
        let mut bytes = [0u8; 32];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = i as u8;
        }
        let keys = derive_keys(&SecretKey::from_bytes(bytes), archive);
        let keys = keys.as_ref();
        assert_eq!(
            keys.map(|k| hex(k.record.as_ref())).as_deref(),
            Some(RECORD_KEY)
        );
        assert_eq!(
            keys.map(|k| hex(k.binding.as_ref())).as_deref(),
            Some(BINDING_KEY)
        );
        assert_eq!(hex(&record_ad(archive, 0, "connection_7d3e_api_key")), AD_0);
        let spec_path = concat!(env!("CARGO_MANIFEST_DIR"), "/spec/envelope.md");
        let spec = std::fs::read_to_string(spec_path).unwrap_or_default();
        for v in [RECORD_KEY, BINDING_KEY, AD_0] {
            assert!(spec.contains(v), "spec/envelope.md lacks {v}");
        }
    }
}
