//! Secret values, sets of them, and the 32-byte ticket key.
//!
//! Every type here keeps its secret material out of `Debug` and `Display`
//! output and wipes it from memory when dropped.

use std::fmt;

use subtle::{Choice, ConstantTimeEq};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::codec::b64_encode;

/// Length in bytes of a ticket key (both envelope versions).
pub const SECRET_KEY_LEN: usize = 32;

/// What `Debug` and `Display` print in place of secret material.
pub const REDACTED: &str = "[redacted]";

/// Stands in for secret material in `Debug` output.
pub(crate) struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// One secret: the name it has in Lumiverse's secrets table (for example
/// `connection_<uuid>_api_key`) and its plaintext value.
///
/// The value is wiped from memory on drop. `Debug` and `Display` show the
/// key name only. Equality compares values in constant time for equal
/// lengths.
#[derive(Clone)]
pub struct Secret {
    /// The secret's name. Not secret: it is listed in clear in
    /// `secrets/index.json`.
    pub key: String,
    /// The plaintext value.
    pub value: Zeroizing<String>,
}

impl Secret {
    /// Makes a secret from a key name and a plaintext value.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Secret {
            key: key.into(),
            value: Zeroizing::new(value.into()),
        }
    }

    /// The plaintext value. Keep it out of logs.
    pub fn expose_value(&self) -> &str {
        &self.value
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key && bool::from(self.value.as_bytes().ct_eq(other.value.as_bytes()))
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secret")
            .field("key", &self.key)
            .field("value", &Redacted)
            .finish()
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} = {REDACTED}", self.key)
    }
}

/// An ordered list of secrets.
///
/// Sealing rejects a set in which a key name occurs twice; a set returned by
/// a lenient version 1 open can hold duplicates, in the order the server
/// would apply them (so the last one wins there).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretSet {
    items: Vec<Secret>,
}

impl SecretSet {
    /// An empty set.
    pub fn new() -> Self {
        SecretSet::default()
    }

    /// Appends a secret.
    pub fn push(&mut self, secret: Secret) {
        self.items.push(secret);
    }

    /// Appends a secret made from a key name and a value.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.items.push(Secret::new(key, value));
    }

    /// Number of secrets.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there is no secret.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The secrets in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Secret> {
        self.items.iter()
    }

    /// The secrets in order, as a slice.
    pub fn as_slice(&self) -> &[Secret] {
        &self.items
    }

    /// The last secret named `key` (the one a server applying the set in
    /// order would keep), if any.
    pub fn get(&self, key: &str) -> Option<&Secret> {
        self.items.iter().rev().find(|s| s.key == key)
    }

    /// The key names in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> + '_ {
        self.items.iter().map(|s| s.key.as_str())
    }

    /// The secrets as a vector.
    pub fn into_vec(self) -> Vec<Secret> {
        self.items
    }
}

impl fmt::Debug for SecretSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.items.iter().map(|s| (&s.key, Redacted)))
            .finish()
    }
}

impl FromIterator<Secret> for SecretSet {
    fn from_iter<I: IntoIterator<Item = Secret>>(iter: I) -> Self {
        SecretSet {
            items: iter.into_iter().collect(),
        }
    }
}

impl Extend<Secret> for SecretSet {
    fn extend<I: IntoIterator<Item = Secret>>(&mut self, iter: I) {
        self.items.extend(iter);
    }
}

impl IntoIterator for SecretSet {
    type Item = Secret;
    type IntoIter = std::vec::IntoIter<Secret>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter()
    }
}

impl<'a> IntoIterator for &'a SecretSet {
    type Item = &'a Secret;
    type IntoIter = std::slice::Iter<'a, Secret>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.iter()
    }
}

impl From<Vec<Secret>> for SecretSet {
    fn from(items: Vec<Secret>) -> Self {
        SecretSet { items }
    }
}

/// The 32-byte key a ticket carries (`keyB64`).
///
/// Version 1 uses it directly as the AES-256-GCM key; version 2 derives its
/// record and binding keys from it with HKDF-SHA256. Wiped on drop;
/// `Debug`/`Display` print `[redacted]`; equality is constant-time.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SecretKey {
    bytes: [u8; SECRET_KEY_LEN],
}

impl SecretKey {
    /// Wraps 32 key bytes. The caller's copy is not wiped.
    pub fn from_bytes(bytes: [u8; SECRET_KEY_LEN]) -> Self {
        SecretKey { bytes }
    }

    /// Copies a key from a slice; `None` unless it is exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        let mut key = SecretKey {
            bytes: [0; SECRET_KEY_LEN],
        };
        if bytes.len() != SECRET_KEY_LEN {
            return None;
        }
        key.bytes.copy_from_slice(bytes);
        Some(key)
    }

    /// Fills a new key from a random source (see [`super::os_random`]).
    pub fn generate(rng: &mut impl FnMut(&mut [u8])) -> Self {
        let mut key = SecretKey {
            bytes: [0; SECRET_KEY_LEN],
        };
        rng(&mut key.bytes);
        key
    }

    /// The raw key bytes. Keep them out of logs.
    pub fn expose_secret(&self) -> &[u8; SECRET_KEY_LEN] {
        &self.bytes
    }

    /// The key as standard padded base64, the ticket's `keyB64` form.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(b64_encode(&self.bytes))
    }
}

impl ConstantTimeEq for SecretKey {
    fn ct_eq(&self, other: &Self) -> Choice {
        self.bytes.ct_eq(&other.bytes)
    }
}

impl PartialEq for SecretKey {
    fn eq(&self, other: &Self) -> bool {
        bool::from(self.ct_eq(other))
    }
}

impl Eq for SecretKey {}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({REDACTED})")
    }
}

impl fmt::Display for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// Constant-time equality of two byte strings (lengths are not hidden).
pub(crate) fn ct_eq_bytes(a: &[u8], b: &[u8]) -> bool {
    bool::from(a.ct_eq(b))
}
