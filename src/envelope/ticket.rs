//! The decryption ticket: the small JSON file that carries an archive's
//! secret key out of band.

use std::fmt;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::codec::{b64_decode_lenient, b64_decode_strict, hex, unhex32};
use super::error::{describe, MalformedTicket, TicketError};
use super::index::{lenient_v1_keys, read_index};
use super::js::{js_number, push_json_string};
use super::secret::{ct_eq_bytes, Redacted, SecretKey};
use super::{v1, v2, EnvelopeVersion};

/// The ticket's `kind`, in both versions.
pub const TICKET_KIND: &str = "lumiverse-decryption-ticket";
/// The ticket `algorithm` of version 1.
pub const V1_ALGORITHM: &str = "AES-256-GCM";
/// The ticket `algorithm` of version 2.
pub const V2_ALGORITHM: &str = "ChaCha20-Poly1305+HKDF-SHA256";
/// The `issuer` the Lumiverse server writes (version 1).
pub const V1_ISSUER: &str = "lumiverse";
/// The `issuer` lvbak writes in version 2 tickets.
pub const V2_ISSUER: &str = "lvbak";
/// Domain-separation label of [`Ticket::fingerprint`].
pub const FINGERPRINT_LABEL: &[u8] = b"lvbak/ticket-fingerprint";

/// A parsed decryption ticket.
///
/// [`Ticket::parse`] runs the server's structural checks;
/// [`Ticket::check_archive`] runs the checks that need the archive. The key
/// is wiped on drop and never shown by `Debug` or `Display`.
#[derive(Clone)]
pub struct Ticket {
    version: EnvelopeVersion,
    archive_id: String,
    issuer: String,
    issuer_instance: Option<String>,
    issued_at: i64,
    key_b64: Zeroizing<String>,
    key: Result<SecretKey, MalformedTicket>,
    secrets_hash: Option<String>,
    fingerprint: String,
}

fn fingerprint_of(key_bytes: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(FINGERPRINT_LABEL);
    h.update([0u8]);
    h.update(key_bytes);
    hex(&h.finalize())
}

impl Ticket {
    /// Makes the ticket for a freshly sealed envelope.
    pub(crate) fn issue(
        version: EnvelopeVersion,
        archive_id: &str,
        issued_at: i64,
        key: &SecretKey,
        secrets_hash: String,
    ) -> Ticket {
        Ticket {
            version,
            archive_id: archive_id.to_owned(),
            issuer: match version {
                EnvelopeVersion::V1 => V1_ISSUER,
                EnvelopeVersion::V2 => V2_ISSUER,
            }
            .to_owned(),
            issuer_instance: None,
            issued_at,
            key_b64: key.to_base64(),
            key: Ok(key.clone()),
            secrets_hash: Some(secrets_hash),
            fingerprint: fingerprint_of(key.expose_secret()),
        }
    }

    /// Parses a ticket and runs the Lumiverse server's structural checks,
    /// in its order:
    ///
    /// 1. not JSON → `invalid_json`;
    /// 2. not an object → `malformed` (a JSON array, which JavaScript
    ///    counts as an object, falls through to `wrong_kind` as on the
    ///    server);
    /// 3. `kind` ≠ `lumiverse-decryption-ticket` → `wrong_kind`;
    /// 4. `Number(version)` (JavaScript coercion: `"1"`, `1.0`, `true` and
    ///    `[1]` all mean 1) neither 1 nor 2 → `unsupported_version`;
    /// 5. `algorithm` not the version's, `archiveId` not a non-empty
    ///    string, `keyB64` not a string, or (version 2 only) `secretsHash`
    ///    not 64 lowercase hex digits → `malformed`.
    ///
    /// The bytes are decoded as UTF-8 with invalid sequences replaced and a
    /// leading byte order mark dropped, as a JavaScript host reading the
    /// upload would. The key length is checked later, by
    /// [`Ticket::check_archive`], because the server checks it after the
    /// archive id.
    pub fn parse(bytes: &[u8]) -> Result<Ticket, TicketError> {
        let text = Zeroizing::new(String::from_utf8_lossy(bytes).into_owned());
        let body = text.strip_prefix('\u{FEFF}').unwrap_or(&text);
        let value: Value = serde_json::from_str(body).map_err(|e| TicketError::InvalidJson {
            line: e.line(),
            column: e.column(),
        })?;
        let mut obj = match value {
            Value::Object(obj) => obj,
            // `[].kind` is undefined in JavaScript.
            Value::Array(_) => Map::new(),
            _ => return Err(TicketError::Malformed(MalformedTicket::NotAnObject)),
        };
        // Move the key string out of the JSON tree at once so that it is
        // wiped when we are done, whatever the outcome.
        let key_field: Option<Result<Zeroizing<String>, ()>> =
            obj.remove("keyB64").map(|v| match v {
                Value::String(s) => Ok(Zeroizing::new(s)),
                _ => Err(()),
            });
        Self::from_object(&obj, key_field)
    }

    fn from_object(
        obj: &Map<String, Value>,
        key_field: Option<Result<Zeroizing<String>, ()>>,
    ) -> Result<Ticket, TicketError> {
        match obj.get("kind") {
            Some(Value::String(s)) if s == TICKET_KIND => {}
            other => {
                return Err(TicketError::WrongKind {
                    found: describe(other),
                })
            }
        }
        let n = js_number(obj.get("version"));
        let version = if n == 1.0 {
            EnvelopeVersion::V1
        } else if n == 2.0 {
            EnvelopeVersion::V2
        } else {
            return Err(TicketError::UnsupportedVersion {
                found: describe(obj.get("version")),
            });
        };
        let malformed = |m| Err(TicketError::Malformed(m));
        let expected = version.ticket_algorithm();
        match obj.get("algorithm") {
            Some(Value::String(s)) if s == expected => {}
            other => {
                return malformed(MalformedTicket::Algorithm {
                    found: describe(other),
                    expected,
                })
            }
        }
        let archive_id = match obj.get("archiveId") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => return malformed(MalformedTicket::ArchiveId),
        };
        let Some(Ok(key_b64)) = key_field else {
            return malformed(MalformedTicket::KeyMissing);
        };
        let secrets_hash = match (version, obj.get("secretsHash")) {
            (EnvelopeVersion::V1, Some(Value::String(s))) => Some(s.clone()),
            (EnvelopeVersion::V1, _) => None,
            (EnvelopeVersion::V2, Some(Value::String(s))) if unhex32(s).is_some() => {
                Some(s.clone())
            }
            (EnvelopeVersion::V2, _) => return malformed(MalformedTicket::SecretsHash),
        };
        let lenient = b64_decode_lenient(&key_b64);
        let fingerprint = fingerprint_of(&lenient);
        let key = match version {
            EnvelopeVersion::V1 => SecretKey::from_slice(&lenient)
                .ok_or(MalformedTicket::KeyLength { len: lenient.len() }),
            EnvelopeVersion::V2 => match b64_decode_strict(&key_b64).map(Zeroizing::new) {
                None => Err(MalformedTicket::KeyEncoding),
                Some(bytes) => SecretKey::from_slice(&bytes)
                    .ok_or(MalformedTicket::KeyLength { len: bytes.len() }),
            },
        };
        let issued_at = match obj.get("issuedAt") {
            Some(Value::Number(n)) if n.is_i64() => n.as_i64().unwrap_or(0),
            other => {
                // The server keeps `Number(issuedAt) || 0`.
                let f = js_number(other);
                if f.is_finite() {
                    f.trunc() as i64
                } else {
                    0
                }
            }
        };
        Ok(Ticket {
            version,
            archive_id,
            issuer: obj
                .get("issuer")
                .and_then(Value::as_str)
                .unwrap_or(match version {
                    EnvelopeVersion::V1 => V1_ISSUER,
                    EnvelopeVersion::V2 => V2_ISSUER,
                })
                .to_owned(),
            issuer_instance: obj
                .get("issuerInstance")
                .and_then(Value::as_str)
                .map(str::to_owned),
            issued_at,
            key_b64,
            key,
            secrets_hash,
            fingerprint,
        })
    }

    /// Runs the checks that need the archive, in the server's order:
    ///
    /// 1. the ticket's `archiveId` differs from `archive_id` (the
    ///    manifest's) → `archive_mismatch`;
    /// 2. the key does not decode to 32 bytes (version 1: lenient base64 as
    ///    Node/Bun decode it; version 2: canonical padded base64) →
    ///    `malformed`;
    /// 3. version 1: when the ticket has a string `secretsHash`, it differs
    ///    from [`super::secrets_hash_v1`] over the keys of `index_json`
    ///    (absent or unreadable index = no keys) → `binding_mismatch`; when
    ///    it has none the check is skipped, like the server does.
    ///    Version 2: `index_json` must be a valid version 2 index for
    ///    `archive_id` whose commitment equals `secretsHash` →
    ///    `binding_mismatch` otherwise.
    pub fn check_archive(
        &self,
        archive_id: &str,
        index_json: Option<&[u8]>,
    ) -> Result<(), TicketError> {
        self.checked_key(archive_id, index_json).map(|_| ())
    }

    /// [`Ticket::check_archive`], returning the key it vouched for.
    pub(crate) fn checked_key(
        &self,
        archive_id: &str,
        index_json: Option<&[u8]>,
    ) -> Result<&SecretKey, TicketError> {
        if self.archive_id != archive_id {
            return Err(TicketError::ArchiveMismatch {
                ticket: self.archive_id.clone(),
                archive: archive_id.to_owned(),
            });
        }
        let key = self
            .key
            .as_ref()
            .map_err(|m| TicketError::Malformed(m.clone()))?;
        match self.version {
            EnvelopeVersion::V1 => {
                if let Some(claimed) = &self.secrets_hash {
                    let keys = lenient_v1_keys(index_json);
                    let expected = v1::secrets_hash_v1(archive_id, &keys);
                    if !ct_eq_bytes(claimed.as_bytes(), expected.as_bytes()) {
                        return Err(TicketError::BindingMismatch);
                    }
                }
                Ok(key)
            }
            EnvelopeVersion::V2 => {
                let index = index_json.and_then(|b| read_index(b).ok());
                let commitment = index
                    .filter(|i| i.version == EnvelopeVersion::V2 && i.archive_id == archive_id)
                    .and_then(|i| v2::commitment(&i));
                let claimed = self.secrets_hash.as_deref().and_then(unhex32);
                match (commitment, claimed) {
                    (Some(c), Some(t)) if ct_eq_bytes(&c, &t) => Ok(key),
                    _ => Err(TicketError::BindingMismatch),
                }
            }
        }
    }

    /// Writes the ticket file.
    ///
    /// Version 1 uses the Lumiverse server's exact layout (JavaScript's
    /// `JSON.stringify(ticket, null, 2)`, no final line feed) with the
    /// fields `kind`, `version`, `archiveId`, `issuer`, `issuerInstance`,
    /// `issuedAt`, `algorithm`, `keyB64`, `secretsHash` (left out when a
    /// parsed ticket had none). Version 2 uses the same layout with
    /// `kind`, `version`, `archiveId`, `issuer`, `issuedAt`, `algorithm`,
    /// `keyB64`, `secretsHash`. The `keyB64` written is the one parsed
    /// (or issued), so a parsed Lumiverse ticket is reproduced byte for
    /// byte.
    ///
    /// The result holds the key and is wiped on drop.
    pub fn to_json(&self) -> Zeroizing<Vec<u8>> {
        enum Field<'a> {
            Str(&'a str),
            Int(i64),
            Null,
        }
        let mut fields: Vec<(&str, Field<'_>)> = vec![
            ("kind", Field::Str(TICKET_KIND)),
            ("version", Field::Int(i64::from(self.version.number()))),
            ("archiveId", Field::Str(&self.archive_id)),
            ("issuer", Field::Str(&self.issuer)),
        ];
        if self.version == EnvelopeVersion::V1 {
            fields.push((
                "issuerInstance",
                self.issuer_instance
                    .as_deref()
                    .map_or(Field::Null, Field::Str),
            ));
        }
        fields.push(("issuedAt", Field::Int(self.issued_at)));
        fields.push(("algorithm", Field::Str(self.version.ticket_algorithm())));
        fields.push(("keyB64", Field::Str(&self.key_b64)));
        if let Some(h) = &self.secrets_hash {
            fields.push(("secretsHash", Field::Str(h)));
        }
        let mut out = Zeroizing::new(Vec::with_capacity(400));
        out.extend_from_slice(b"{");
        for (i, (name, value)) in fields.iter().enumerate() {
            out.extend_from_slice(if i == 0 { b"\n  " } else { b",\n  " });
            push_json_string(&mut out, name);
            out.extend_from_slice(b": ");
            match value {
                Field::Str(s) => push_json_string(&mut out, s),
                Field::Int(n) => out.extend_from_slice(n.to_string().as_bytes()),
                Field::Null => out.extend_from_slice(b"null"),
            }
        }
        out.extend_from_slice(b"\n}");
        out
    }

    /// The envelope version the ticket opens.
    pub fn version(&self) -> EnvelopeVersion {
        self.version
    }

    /// The archive id the ticket is bound to (`archiveId`).
    pub fn archive_id(&self) -> &str {
        &self.archive_id
    }

    /// `issuer` (`lumiverse` or `lvbak`; not checked by the server).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Version 1 `issuerInstance` (the server always writes `null`).
    pub fn issuer_instance(&self) -> Option<&str> {
        self.issuer_instance.as_deref()
    }

    /// `issuedAt`, Unix seconds (0 when absent or not numeric, like the
    /// server's `Number(issuedAt) || 0`).
    pub fn issued_at(&self) -> i64 {
        self.issued_at
    }

    /// The ticket `algorithm` of its version.
    pub fn algorithm(&self) -> &'static str {
        self.version.ticket_algorithm()
    }

    /// `secretsHash` as written in the ticket (lowercase hex), if any.
    pub fn secrets_hash(&self) -> Option<&str> {
        self.secrets_hash.as_deref()
    }

    /// The decoded 32-byte key, or `None` when `keyB64` does not decode to
    /// one ([`Ticket::check_archive`] then fails with `malformed`).
    pub fn key(&self) -> Option<&SecretKey> {
        self.key.as_ref().ok()
    }

    /// A non-secret identifier of the ticket's key, for hosts that record
    /// which tickets were consumed: lowercase hex of
    /// SHA-256(`lvbak/ticket-fingerprint` ‖ 0x00 ‖ key bytes), over the
    /// leniently decoded `keyB64` bytes.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

impl fmt::Debug for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticket")
            .field("version", &self.version)
            .field("archive_id", &self.archive_id)
            .field("issuer", &self.issuer)
            .field("issuer_instance", &self.issuer_instance)
            .field("issued_at", &self.issued_at)
            .field("algorithm", &self.algorithm())
            .field("key", &Redacted)
            .field("secrets_hash", &self.secrets_hash)
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

impl fmt::Display for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "decryption ticket {} for archive {} ({}, issued at {} by {}, key fingerprint {})",
            self.version,
            self.archive_id,
            self.algorithm(),
            self.issued_at,
            self.issuer,
            self.fingerprint
        )
    }
}
