//! API keys: each key is one tenant. Keys are kept only as SHA-256 hashes
//! and compared in constant time (every configured key is compared, so the
//! time taken does not depend on which one matched).

use std::fmt;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};
use zeroize::Zeroizing;

/// A tenant name: `[A-Za-z0-9_.-]{1,64}`.
pub fn valid_tenant(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 64
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// The hash a key is stored and compared as.
pub fn hash_key(key: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"byos3 api key v1\0");
    h.update(key);
    h.finalize().into()
}

/// The configured API keys.
#[derive(Clone, Default)]
pub struct ApiKeys {
    entries: Vec<(String, [u8; 32])>,
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tenants: Vec<&str> = self.entries.iter().map(|(t, _)| t.as_str()).collect();
        write!(f, "ApiKeys(tenants {tenants:?})")
    }
}

impl ApiKeys {
    /// No keys: nobody can authenticate.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether no key is configured (the server refuses to start without one).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The tenants that have at least one key, sorted, each once.
    pub fn tenants(&self) -> Vec<String> {
        let mut t: Vec<String> = self.entries.iter().map(|(t, _)| t.clone()).collect();
        t.sort();
        t.dedup();
        t
    }

    /// Adds a plaintext `key` for `tenant` (only its hash is kept). Fails on a key shorter than 2 bytes,
    /// an invalid tenant name, or a key already configured (for any tenant).
    pub fn add_key(&mut self, tenant: &str, key: &str) -> Result<(), String> {
        if key.len() < 2 {
            return Err(format!("the API key of tenant {tenant:?} is empty or too short"));
        }
        self.add_hash(tenant, hash_key(key.as_bytes()))
    }

    /// Adds a key for `tenant` by its [`hash_key`] hash. Fails on an invalid tenant name or a hash already
    /// configured (for any tenant).
    pub fn add_hash(&mut self, tenant: &str, hash: [u8; 32]) -> Result<(), String> {
        if !valid_tenant(tenant) {
            return Err(format!("tenant name {tenant:?} must match [A-Za-z0-9_.-]{{1,64}}"));
        }
        if self.entries.iter().any(|(_, h)| bool::from(h.ct_eq(&hash))) {
            return Err(format!(
                "an API key of tenant {tenant:?} is configured twice (or for two tenants)"
            ));
        }
        self.entries.push((tenant.to_string(), hash));
        Ok(())
    }

    /// Adds the pairs of `BYOS3_API_KEYS`: `tenant=key,tenant=key`.
    pub fn add_env(&mut self, value: &str) -> Result<(), String> {
        for pair in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (tenant, key) = pair.split_once('=').ok_or_else(|| {
                "BYOS3_API_KEYS must be comma-separated tenant=key pairs (e.g. alice=k1,bob=k2)".to_string()
            })?;
            self.add_key(tenant.trim(), key.trim())?;
        }
        Ok(())
    }

    /// Adds the hashes of a key file: `tenant sha256hex` per line.
    pub fn add_file(&mut self, path: &Path) -> Result<(), String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = || format!("{} line {}: expected \"tenant sha256-hex\"", path.display(), n + 1);
            let (tenant, hex_hash) = line.split_once(char::is_whitespace).ok_or_else(bad)?;
            let hash: [u8; 32] = hex::decode(hex_hash.trim())
                .ok()
                .and_then(|v| v.try_into().ok())
                .ok_or_else(bad)?;
            self.add_hash(tenant, hash)?;
        }
        Ok(())
    }

    /// The tenant owning `key`, comparing against every key in constant time.
    pub fn authenticate(&self, key: &[u8]) -> Option<&str> {
        let h = hash_key(key);
        let mut found = subtle::Choice::from(0);
        let mut index = 0u32;
        for (i, (_, stored)) in self.entries.iter().enumerate() {
            let eq = stored.ct_eq(&h);
            index.conditional_assign(&(i as u32), eq);
            found |= eq;
        }
        bool::from(found).then(|| self.entries[index as usize].0.as_str())
    }
}

/// Creates a fresh key for `tenant`, stores its hash in `path` (mode 0600)
/// and returns the key, to be shown once.
pub fn create_key_file(path: &Path, tenant: &str) -> std::io::Result<Zeroizing<String>> {
    let mut raw = Zeroizing::new([0u8; 24]);
    rand::Rng::fill(&mut rand::rngs::OsRng, &mut raw[..]);
    let key = Zeroizing::new(format!("byos3_{}", hex::encode(&raw[..])));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    writeln!(
        f,
        "# byos3 API keys: \"tenant sha256-hex\" per line (the keys themselves are not stored)"
    )?;
    writeln!(f, "{tenant} {}", hex::encode(hash_key(key.as_bytes())))?;
    f.sync_all()?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_keys_and_lookup() {
        let mut k = ApiKeys::new();
        k.add_env("alice=k1, bob=k2").unwrap();
        assert_eq!(k.authenticate(b"k1"), Some("alice"));
        assert_eq!(k.authenticate(b"k2"), Some("bob"));
        assert_eq!(k.authenticate(b"k3"), None);
        assert_eq!(k.authenticate(b""), None);
        assert!(k.add_env("carol").is_err());
        assert!(k.add_env("bad tenant=k9").is_err());
        assert!(k.add_env("carol=k1").is_err(), "duplicate key");
        assert!(!format!("{k:?}").contains("k1"));
    }

    #[test]
    fn key_file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("api-keys");
        let key = create_key_file(&p, "default").unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(!text.contains(key.as_str()));
        let mut k = ApiKeys::new();
        k.add_file(&p).unwrap();
        assert_eq!(k.authenticate(key.as_bytes()), Some("default"));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
