//! The Lumiverse instance identity file (`lumiverse.identity`) and the
//! at-rest encryption of the `secrets` table (FORMAT.md §13.2).

use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hkdf::hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// File name of the identity in the data directory.
pub const IDENTITY_FILE: &str = "lumiverse.identity";
const MAGIC: [u8; 4] = [0x89, 0x4C, 0x4D, 0x56];
const LABEL: &[u8] = b"lumiverse-identity-derivation";

/// Why an identity file was refused.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// Reading or writing failed.
    #[error("identity file: {0}")]
    Io(#[from] std::io::Error),
    /// Not 104 bytes, bad magic or version, or the HMAC does not verify.
    #[error("identity file is invalid: {0}")]
    Invalid(&'static str),
    /// A stored secret could not be decrypted with this identity.
    #[error("secret {0} cannot be decrypted with this instance's identity")]
    Decrypt(String),
}

/// The instance's 32-byte secrets key.
pub struct Identity {
    key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Identity([redacted])")
    }
}

fn mask(salt: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(LABEL);
    h.finalize().into()
}

impl Identity {
    /// Parses the 104-byte identity file.
    pub fn parse(b: &[u8]) -> Result<Identity, IdentityError> {
        if b.len() != 104 {
            return Err(IdentityError::Invalid("size is not 104 bytes"));
        }
        if b[..4] != MAGIC {
            return Err(IdentityError::Invalid("bad magic"));
        }
        if b[4] != 1 {
            return Err(IdentityError::Invalid("unsupported version"));
        }
        let salt = &b[8..40];
        let m = mask(salt);
        let mut key = Zeroizing::new([0u8; 32]);
        for i in 0..32 {
            key[i] = b[40 + i] ^ m[i];
        }
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(salt)
            .map_err(|_| IdentityError::Invalid("salt"))?;
        mac.update(&key[..]);
        mac.verify_slice(&b[72..104])
            .map_err(|_| IdentityError::Invalid("HMAC does not verify"))?;
        Ok(Identity { key })
    }

    /// Serialises an identity (fresh random bytes 5–7 and salt).
    pub fn to_bytes(&self) -> Result<Vec<u8>, IdentityError> {
        let mut b = vec![0u8; 104];
        b[..4].copy_from_slice(&MAGIC);
        b[4] = 1;
        getrandom::getrandom(&mut b[5..40]).map_err(|_| IdentityError::Invalid("no randomness"))?;
        let salt = b[8..40].to_vec();
        let m = mask(&salt);
        for i in 0..32 {
            b[40 + i] = self.key[i] ^ m[i];
        }
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&salt)
            .map_err(|_| IdentityError::Invalid("salt"))?;
        mac.update(&self.key[..]);
        b[72..104].copy_from_slice(&mac.finalize().into_bytes());
        Ok(b)
    }

    /// A fresh random identity.
    pub fn generate() -> Result<Identity, IdentityError> {
        let mut key = Zeroizing::new([0u8; 32]);
        getrandom::getrandom(&mut key[..]).map_err(|_| IdentityError::Invalid("no randomness"))?;
        Ok(Identity { key })
    }

    /// Loads `dir/lumiverse.identity`, creating it (mode 0600) when absent,
    /// as the server does at start.
    pub fn load_or_create(dir: &Path) -> Result<Identity, IdentityError> {
        let p = dir.join(IDENTITY_FILE);
        match std::fs::read(&p) {
            Ok(b) => Identity::parse(&b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let id = Identity::generate()?;
                let mut o = std::fs::OpenOptions::new();
                o.write(true).create_new(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    o.mode(0o600);
                }
                use std::io::Write;
                o.open(&p)?.write_all(&id.to_bytes()?)?;
                Ok(id)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Encrypts a value: (encrypted_value, iv, tag), standard base64.
    pub fn encrypt(&self, plaintext: &str) -> Result<(String, String, String), IdentityError> {
        let cipher =
            Aes256Gcm::new_from_slice(&self.key[..]).map_err(|_| IdentityError::Invalid("key"))?;
        let mut iv = [0u8; 12];
        getrandom::getrandom(&mut iv).map_err(|_| IdentityError::Invalid("no randomness"))?;
        let ct = cipher
            .encrypt(Nonce::from_slice(&iv), plaintext.as_bytes())
            .map_err(|_| IdentityError::Invalid("encryption failed"))?;
        let (body, tag) = ct.split_at(ct.len() - 16);
        Ok((
            STANDARD.encode(body),
            STANDARD.encode(iv),
            STANDARD.encode(tag),
        ))
    }

    /// Decrypts a stored secret.
    pub fn decrypt(
        &self,
        key_name: &str,
        encrypted_value: &str,
        iv: &str,
        tag: &str,
    ) -> Result<Zeroizing<String>, IdentityError> {
        let bad = || IdentityError::Decrypt(key_name.to_owned());
        let dec = |s: &str| STANDARD.decode(s.trim()).map_err(|_| bad());
        let (mut ct, iv, tag) = (dec(encrypted_value)?, dec(iv)?, dec(tag)?);
        if iv.len() != 12 || tag.len() != 16 {
            return Err(bad());
        }
        ct.extend_from_slice(&tag);
        let cipher = Aes256Gcm::new_from_slice(&self.key[..]).map_err(|_| bad())?;
        let pt = Zeroizing::new(
            cipher
                .decrypt(Nonce::from_slice(&iv), ct.as_slice())
                .map_err(|_| bad())?,
        );
        Ok(Zeroizing::new(String::from_utf8_lossy(&pt).into_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_round_trips_and_checks_its_hmac() {
        let id = Identity::generate().unwrap();
        let b = id.to_bytes().unwrap();
        let back = Identity::parse(&b).unwrap();
        assert_eq!(&back.key[..], &id.key[..]);
        let mut bad = b.clone();
        bad[50] ^= 1;
        assert!(Identity::parse(&bad).is_err());
        assert!(Identity::parse(&b[..100]).is_err());
        let (v, iv, tag) = id.encrypt("sk-test").unwrap();
        assert_eq!(&*back.decrypt("k", &v, &iv, &tag).unwrap(), "sk-test");
        let other = Identity::generate().unwrap();
        assert!(other.decrypt("k", &v, &iv, &tag).is_err());
        assert!(!format!("{id:?}").contains(&format!("{:?}", &id.key[..4])));
    }
}
