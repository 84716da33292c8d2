//! Credential sealing with AES-256-GCM.
//!
//! Every sealed blob is `nonce (12 bytes) || ciphertext || tag (16 bytes)`,
//! with a fresh random 96-bit nonce per seal and associated data that binds
//! the blob to its tenant, its disk id and the key version that sealed it:
//! a blob copied onto another row, or relabelled with another version, fails
//! to open. Opening never yields garbage: it succeeds with the exact
//! plaintext or fails with [`VaultError::Tampered`].
//!
//! The master keys form a [`Keyring`] of numbered versions; the highest one
//! seals. They come from a file (created with mode 0600 on first start) or
//! from `BYOS3_MASTER_KEY` (base64 of 32 bytes, or `version:base64` pairs
//! separated by commas). Key rotation (see [`rotate_key`]) adds a version,
//! re-seals every record in one store transaction, then retires the old
//! versions; a running daemon picks up the new version from the file the
//! first time it meets it.
//!
//! Plaintext credentials live in [`SecretCredentials`] (zeroized on drop,
//! redacted in `Debug`) and only while a request is signed.

mod keyring;

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::{AeadCore, Aes256Gcm, Key, Nonce};
use zeroize::{Zeroize, Zeroizing};

pub use keyring::{
    generate_key, open_credentials, rotate_key, KeySource, Keyring, MasterKeyConfig, RotationReport, Vault,
};

/// The length of a nonce.
pub const NONCE_LEN: usize = 12;
/// The length of a GCM tag.
pub const TAG_LEN: usize = 16;
/// Associated data of the key check value sealed under every key version.
const CHECK_DOMAIN: &[u8] = b"byos3 master key check v1";
/// Plaintext of the key check value.
const CHECK_PLAINTEXT: &[u8] = b"byos3";

/// An S3 access key pair in plaintext. Zeroized on drop; `Debug` shows
/// nothing secret.
#[derive(Clone)]
pub struct SecretCredentials {
    access_key: Zeroizing<String>,
    secret_key: Zeroizing<String>,
}

impl SecretCredentials {
    /// Wraps an access key id and secret key; each must be at most 65535 bytes to be sealed.
    pub fn new(access_key: Zeroizing<String>, secret_key: Zeroizing<String>) -> Self {
        Self { access_key, secret_key }
    }

    /// The access key id.
    pub fn access_key(&self) -> &str {
        &self.access_key
    }

    /// The secret key. Never log or return it.
    pub fn secret_key(&self) -> &str {
        &self.secret_key
    }

    /// Credentials for the S3 client (which zeroizes its own copy on drop).
    pub fn to_s3(&self) -> crate::s3::Credentials {
        crate::s3::Credentials::new(self.access_key.as_str(), self.secret_key.as_str(), None)
    }

    /// `u16 len || access key || u16 len || secret key`, in a buffer that
    /// is zeroized on drop and never reallocated.
    fn encode(&self) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let (a, s) = (self.access_key.as_bytes(), self.secret_key.as_bytes());
        if a.len() > u16::MAX as usize || s.len() > u16::MAX as usize {
            return Err(VaultError::Invalid("credentials longer than 65535 bytes".into()));
        }
        let mut out = Zeroizing::new(Vec::with_capacity(4 + a.len() + s.len()));
        out.extend_from_slice(&(a.len() as u16).to_be_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(&(s.len() as u16).to_be_bytes());
        out.extend_from_slice(s);
        Ok(out)
    }

    fn decode(buf: &[u8]) -> Option<Self> {
        let take = |rest: &[u8]| -> Option<(Zeroizing<String>, usize)> {
            let len = u16::from_be_bytes(rest.get(..2)?.try_into().ok()?) as usize;
            let bytes = rest.get(2..2 + len)?;
            let s = std::str::from_utf8(bytes).ok()?;
            let mut owned = Zeroizing::new(String::with_capacity(len));
            owned.push_str(s);
            Some((owned, 2 + len))
        };
        let (access_key, used) = take(buf)?;
        let (secret_key, used2) = take(&buf[used..])?;
        (used + used2 == buf.len()).then_some(Self { access_key, secret_key })
    }
}

impl fmt::Debug for SecretCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretCredentials(<redacted>)")
    }
}

/// A sealed credential record as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedCredentials {
    /// The master key version that sealed the blob; part of the associated data, so it cannot be
    /// relabelled.
    pub key_version: u32,
    /// `nonce || ciphertext || tag`
    pub blob: Vec<u8>,
}

impl fmt::Debug for SealedCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealedCredentials(v{}, {} bytes)", self.key_version, self.blob.len())
    }
}

/// What a sealed blob is bound to.
#[derive(Clone, Copy, Debug)]
pub struct SealContext<'a> {
    /// Tenant that owns the disk.
    pub tenant: &'a str,
    /// Id of the disk the credentials belong to.
    pub disk_id: &'a str,
}

/// Vault failures. None of them carries key material or plaintext.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// A sealed blob did not open: altered, moved from another record or version, or sealed under another key.
    #[error("sealed credentials of disk {disk_id} failed authentication (tampered with, moved from another record, or sealed under another master key)")]
    Tampered {
        /// The disk whose credentials did not open.
        disk_id: String,
    },
    /// The keyring has no key of this version, even after re-reading the key file.
    #[error("master key version {0} is not available")]
    UnknownKeyVersion(u32),
    /// The key of this version does not open the key check value stored with the data.
    #[error("master key version {version} does not match the key check stored with the data (wrong master key)")]
    WrongKey {
        /// The key version whose check failed.
        version: u32,
    },
    /// A master key is malformed (not base64 of 32 bytes, a bad `BYOS3_MASTER_KEY`), or the operation is not
    /// possible with environment keys.
    #[error("master key: {0}")]
    Key(String),
    /// The key file cannot be read, written or parsed.
    #[error("master key file {path}: {reason}")]
    KeyFile {
        /// The key file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Credentials that cannot be sealed (e.g. a key longer than 65535 bytes).
    #[error("invalid credentials: {0}")]
    Invalid(String),
    /// AES-GCM refused to encrypt.
    #[error("encryption failed")]
    Encrypt,
}

/// Associated data: a domain tag, then tenant, disk id and key version,
/// each length-prefixed so no two contexts share an encoding.
fn associated_data(ctx: SealContext<'_>, version: u32) -> Vec<u8> {
    let mut aad = Vec::with_capacity(64 + ctx.tenant.len() + ctx.disk_id.len());
    aad.extend_from_slice(b"byos3 credentials v1");
    for part in [ctx.tenant.as_bytes(), ctx.disk_id.as_bytes()] {
        aad.extend_from_slice(&(part.len() as u32).to_be_bytes());
        aad.extend_from_slice(part);
    }
    aad.extend_from_slice(&version.to_be_bytes());
    aad
}

fn cipher(key: &[u8; 32]) -> Aes256Gcm {
    Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key))
}

fn seal_raw(key: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, VaultError> {
    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    let ct = cipher(key)
        .encrypt(&nonce, Payload { msg: plaintext, aad })
        .map_err(|_| VaultError::Encrypt)?;
    let mut blob = Vec::with_capacity(NONCE_LEN + ct.len());
    blob.extend_from_slice(&nonce);
    blob.extend_from_slice(&ct);
    Ok(blob)
}

fn open_raw(key: &[u8; 32], aad: &[u8], blob: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if blob.len() < NONCE_LEN + TAG_LEN {
        return None;
    }
    let (nonce, ct) = blob.split_at(NONCE_LEN);
    cipher(key)
        .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
        .ok()
        .map(Zeroizing::new)
}

/// Seals `creds` under `key` (version `version`) for `ctx`.
pub fn seal_with(
    key: &[u8; 32],
    version: u32,
    ctx: SealContext<'_>,
    creds: &SecretCredentials,
) -> Result<SealedCredentials, VaultError> {
    let plain = creds.encode()?;
    let blob = seal_raw(key, &associated_data(ctx, version), &plain)?;
    Ok(SealedCredentials {
        key_version: version,
        blob,
    })
}

/// Opens `sealed` with `key`, which must be the key of `sealed.key_version`.
pub fn open_with(
    key: &[u8; 32],
    ctx: SealContext<'_>,
    sealed: &SealedCredentials,
) -> Result<SecretCredentials, VaultError> {
    let tampered = || VaultError::Tampered {
        disk_id: ctx.disk_id.to_string(),
    };
    let mut plain = open_raw(key, &associated_data(ctx, sealed.key_version), &sealed.blob).ok_or_else(tampered)?;
    let out = SecretCredentials::decode(&plain).ok_or_else(tampered);
    plain.zeroize();
    out
}

/// The key check value of a key version: proves at start-up that the
/// configured key is the one the data was sealed with.
pub fn key_check(key: &[u8; 32], version: u32) -> Result<Vec<u8>, VaultError> {
    let mut aad = CHECK_DOMAIN.to_vec();
    aad.extend_from_slice(&version.to_be_bytes());
    seal_raw(key, &aad, CHECK_PLAINTEXT)
}

/// Whether `check` was made by [`key_check`] with this key and version.
pub fn verify_key_check(key: &[u8; 32], version: u32, check: &[u8]) -> bool {
    let mut aad = CHECK_DOMAIN.to_vec();
    aad.extend_from_slice(&version.to_be_bytes());
    open_raw(key, &aad, check).is_some_and(|p| p.as_slice() == CHECK_PLAINTEXT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> SecretCredentials {
        SecretCredentials::new(
            Zeroizing::new("AKIDEXAMPLE".into()),
            Zeroizing::new("wJalrXUtnFEMI/K7MDENG".into()),
        )
    }

    const A: SealContext<'static> = SealContext {
        tenant: "alice",
        disk_id: "disk_01A",
    };

    #[test]
    fn round_trip_with_fresh_nonces() {
        let key = [7u8; 32];
        let s1 = seal_with(&key, 1, A, &creds()).unwrap();
        let s2 = seal_with(&key, 1, A, &creds()).unwrap();
        assert_ne!(s1.blob[..NONCE_LEN], s2.blob[..NONCE_LEN], "nonce reused");
        let c = open_with(&key, A, &s1).unwrap();
        assert_eq!(
            (c.access_key(), c.secret_key()),
            ("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG")
        );
        assert!(!s1.blob.windows(6).any(|w| w == b"wJalrX"), "plaintext visible in blob");
    }

    #[test]
    fn tampered_blob_fails_closed() {
        let key = [7u8; 32];
        let sealed = seal_with(&key, 1, A, &creds()).unwrap();
        for i in 0..sealed.blob.len() {
            let mut t = sealed.clone();
            t.blob[i] ^= 0x01;
            assert!(
                matches!(open_with(&key, A, &t), Err(VaultError::Tampered { .. })),
                "byte {i}"
            );
        }
        let mut short = sealed.clone();
        short.blob.truncate(10);
        assert!(matches!(open_with(&key, A, &short), Err(VaultError::Tampered { .. })));
    }

    #[test]
    fn swapped_rows_and_versions_fail() {
        let key = [7u8; 32];
        let sealed = seal_with(&key, 1, A, &creds()).unwrap();
        let other_disk = SealContext {
            tenant: "alice",
            disk_id: "disk_01B",
        };
        let other_tenant = SealContext {
            tenant: "bob",
            disk_id: "disk_01A",
        };
        assert!(open_with(&key, other_disk, &sealed).is_err());
        assert!(open_with(&key, other_tenant, &sealed).is_err());
        let relabelled = SealedCredentials {
            key_version: 2,
            blob: sealed.blob.clone(),
        };
        assert!(open_with(&key, A, &relabelled).is_err());
    }

    #[test]
    fn wrong_key_fails_and_key_check_detects_it() {
        let sealed = seal_with(&[7u8; 32], 1, A, &creds()).unwrap();
        let err = open_with(&[8u8; 32], A, &sealed).unwrap_err();
        assert!(err.to_string().contains("failed authentication"), "{err}");
        let check = key_check(&[7u8; 32], 1).unwrap();
        assert!(verify_key_check(&[7u8; 32], 1, &check));
        assert!(!verify_key_check(&[8u8; 32], 1, &check));
        assert!(!verify_key_check(&[7u8; 32], 2, &check));
    }

    #[test]
    fn debug_reveals_nothing() {
        let c = creds();
        let s = format!("{c:?} {:?}", seal_with(&[1u8; 32], 3, A, &c).unwrap());
        assert!(!s.contains("AKID") && !s.contains("wJalr"), "{s}");
    }
}
