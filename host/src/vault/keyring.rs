//! Master keys: numbered versions, loaded from a 0600 file or the
//! environment, created on first start, rotated without downtime.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::OsRng;
use base64::Engine as _;
use zeroize::Zeroizing;

use super::{open_with, seal_with, SealContext, SealedCredentials, SecretCredentials, VaultError};

/// A 32-byte key, zeroized on drop.
pub type KeyBytes = Zeroizing<[u8; 32]>;

/// 32 fresh random bytes from the operating system.
pub fn generate_key() -> KeyBytes {
    let mut k = Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(k.as_mut());
    k
}

/// Where the master keys come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// A key file (created on first start when absent).
    File(PathBuf),
    /// `BYOS3_MASTER_KEY`: read only, cannot be rotated in place.
    Env,
}

/// How to find the master keys.
#[derive(Clone)]
pub struct MasterKeyConfig {
    /// The key file (default `<state-dir>/master.key`).
    pub file: PathBuf,
    /// The value of `BYOS3_MASTER_KEY`, when set; it wins over the file.
    pub env_value: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for MasterKeyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKeyConfig")
            .field("file", &self.file)
            .field("env_value", &self.env_value.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl MasterKeyConfig {
    /// The key file in `state_dir`, and `BYOS3_MASTER_KEY` if set.
    pub fn from_env(file: PathBuf) -> Self {
        let env_value = std::env::var("BYOS3_MASTER_KEY")
            .ok()
            .filter(|v| !v.trim().is_empty())
            .map(Zeroizing::new);
        Self { file, env_value }
    }
}

/// Key versions and their keys. The highest version seals.
#[derive(Default)]
pub struct Keyring {
    keys: BTreeMap<u32, KeyBytes>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keyring(versions {:?})", self.keys.keys().collect::<Vec<_>>())
    }
}

impl Keyring {
    /// A keyring holding only `key` as `version`.
    pub fn single(version: u32, key: KeyBytes) -> Self {
        let mut keys = BTreeMap::new();
        keys.insert(version, key);
        Self { keys }
    }

    /// The highest version and its key (the one that seals); `None` for an empty keyring.
    pub fn current(&self) -> Option<(u32, &[u8; 32])> {
        self.keys.iter().next_back().map(|(v, k)| (*v, &**k))
    }

    /// The key of `version`, if the keyring has it.
    pub fn get(&self, version: u32) -> Option<&[u8; 32]> {
        self.keys.get(&version).map(|k| &**k)
    }

    /// Every version held, ascending.
    pub fn versions(&self) -> Vec<u32> {
        self.keys.keys().copied().collect()
    }

    fn decode_key(b64: &str, what: &str) -> Result<KeyBytes, VaultError> {
        let raw = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|_| VaultError::Key(format!("{what} is not valid base64")))?,
        );
        if raw.len() != 32 {
            return Err(VaultError::Key(format!(
                "{what} must decode to 32 bytes, not {}",
                raw.len()
            )));
        }
        let mut k = Zeroizing::new([0u8; 32]);
        k.copy_from_slice(&raw);
        Ok(k)
    }

    /// Parses `BYOS3_MASTER_KEY`: `base64` (version 1) or `v:base64,v:base64`.
    pub fn parse_env(value: &str) -> Result<Self, VaultError> {
        let value = value.trim();
        if !value.contains(':') {
            return Ok(Self::single(1, Self::decode_key(value, "BYOS3_MASTER_KEY")?));
        }
        let mut ring = Self::default();
        for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (v, b64) = part
                .split_once(':')
                .ok_or_else(|| VaultError::Key("BYOS3_MASTER_KEY: expected version:base64 pairs".into()))?;
            let v: u32 = v
                .trim()
                .parse()
                .map_err(|_| VaultError::Key(format!("BYOS3_MASTER_KEY: bad key version {v:?}")))?;
            ring.keys.insert(v, Self::decode_key(b64, "BYOS3_MASTER_KEY")?);
        }
        if ring.keys.is_empty() {
            return Err(VaultError::Key("BYOS3_MASTER_KEY holds no key".into()));
        }
        Ok(ring)
    }

    /// Parses a key file: `version base64` per line, `#` comments.
    fn parse_file(text: &str, path: &Path) -> Result<Self, VaultError> {
        let bad = |reason: String| VaultError::KeyFile {
            path: path.display().to_string(),
            reason,
        };
        let mut ring = Self::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (v, b64) = line
                .split_once(char::is_whitespace)
                .ok_or_else(|| bad(format!("line {}: expected \"version base64\"", n + 1)))?;
            let v: u32 = v.parse().map_err(|_| bad(format!("line {}: bad key version", n + 1)))?;
            let key = Self::decode_key(b64, &format!("line {}", n + 1)).map_err(|e| bad(e.to_string()))?;
            ring.keys.insert(v, key);
        }
        if ring.keys.is_empty() {
            return Err(bad("holds no key".into()));
        }
        Ok(ring)
    }

    fn to_file_text(&self) -> Zeroizing<String> {
        let mut s = Zeroizing::new(String::from(
            "# byos3 master keys: \"version base64\" per line; the highest version seals.\n# Keep this file secret (mode 0600) and back it up with the database.\n",
        ));
        for (v, k) in &self.keys {
            let b64 = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(k.as_ref()));
            s.push_str(&format!("{v} {}\n", b64.as_str()));
        }
        s
    }
}

/// Writes `text` to `path` atomically with mode 0600.
fn write_private(path: &Path, text: &str) -> Result<(), VaultError> {
    let err = |reason: String| VaultError::KeyFile {
        path: path.display().to_string(),
        reason,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| err(format!("cannot create directory: {e}")))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("key"),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| err(format!("cannot create: {e}")))?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| err(format!("cannot write: {e}")))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| err(format!("cannot rename into place: {e}")))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn read_file(path: &Path) -> Result<Keyring, VaultError> {
    let err = |reason: String| VaultError::KeyFile {
        path: path.display().to_string(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(path = %path.display(), mode = format!("{:o}", meta.permissions().mode() & 0o777), "master key file is readable by group or others; chmod 600 it");
    }
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?);
    Keyring::parse_file(&text, path)
}

/// The master keys in use, with seal and open.
#[derive(Debug)]
pub struct Vault {
    source: KeySource,
    ring: RwLock<Keyring>,
}

impl Vault {
    /// A vault over an in-memory keyring (tests, embedding).
    pub fn from_keyring(ring: Keyring) -> Self {
        Self {
            source: KeySource::Env,
            ring: RwLock::new(ring),
        }
    }

    /// Loads the keys. With no environment key and no key file, creates the
    /// file with one fresh key when `create` (and says so in the log).
    pub fn load(cfg: &MasterKeyConfig, create: bool) -> Result<Self, VaultError> {
        if let Some(v) = &cfg.env_value {
            return Ok(Self {
                source: KeySource::Env,
                ring: RwLock::new(Keyring::parse_env(v)?),
            });
        }
        let path = &cfg.file;
        if !path.exists() {
            if !create {
                return Err(VaultError::KeyFile {
                    path: path.display().to_string(),
                    reason: "does not exist".into(),
                });
            }
            let ring = Keyring::single(1, generate_key());
            write_private(path, &ring.to_file_text())?;
            tracing::info!(path = %path.display(), "created a new master key (mode 0600); back it up with the database");
        }
        Ok(Self {
            source: KeySource::File(path.clone()),
            ring: RwLock::new(read_file(path)?),
        })
    }

    /// Where the keys come from (a file, which can be rotated in place, or the environment).
    pub fn source(&self) -> &KeySource {
        &self.source
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Keyring> {
        self.ring.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The version new seals use.
    pub fn current_version(&self) -> u32 {
        self.read().current().map_or(0, |(v, _)| v)
    }

    /// The key versions loaded now, ascending (the key file is not re-read).
    pub fn versions(&self) -> Vec<u32> {
        self.read().versions()
    }

    /// Re-reads the key file (a rotation by `byos3 vault rotate-key` added a
    /// version). A no-op for environment keys.
    pub fn reload(&self) -> Result<(), VaultError> {
        if let KeySource::File(path) = &self.source {
            let ring = read_file(path)?;
            *self.ring.write().unwrap_or_else(|p| p.into_inner()) = ring;
        }
        Ok(())
    }

    /// Runs `f` with the key of `version`, re-reading the key file once if
    /// the version is unknown.
    pub fn with_key<T>(&self, version: u32, f: impl FnOnce(&[u8; 32]) -> T) -> Result<T, VaultError> {
        if let Some(k) = self.read().get(version) {
            return Ok(f(k));
        }
        self.reload()?;
        let ring = self.read();
        let k = ring.get(version).ok_or(VaultError::UnknownKeyVersion(version))?;
        Ok(f(k))
    }

    /// Seals under key `version` (the store's current version, see
    /// [`crate::store::VaultState`]), re-reading the key file if needed.
    pub fn seal(
        &self,
        version: u32,
        ctx: SealContext<'_>,
        creds: &SecretCredentials,
    ) -> Result<SealedCredentials, VaultError> {
        self.with_key(version, |k| seal_with(k, version, ctx, creds))?
    }

    /// Opens a sealed record (exact plaintext, or an error; never garbage).
    pub fn open(&self, ctx: SealContext<'_>, sealed: &SealedCredentials) -> Result<SecretCredentials, VaultError> {
        self.with_key(sealed.key_version, |k| open_with(k, ctx, sealed))?
    }

    /// Adds `key` as `version` to the key file (keeping the others).
    pub fn add_key(&self, version: u32, key: KeyBytes) -> Result<(), VaultError> {
        let KeySource::File(path) = &self.source else {
            return Err(VaultError::Key(
                "the master key comes from BYOS3_MASTER_KEY; rotate by setting a new version:base64 pair there".into(),
            ));
        };
        let mut ring = self.ring.write().unwrap_or_else(|p| p.into_inner());
        *ring = read_file(path)?;
        ring.keys.insert(version, key);
        write_private(path, &ring.to_file_text())
    }

    /// Drops every key version but `keep` from the key file.
    pub fn retire_except(&self, keep: u32) -> Result<(), VaultError> {
        let KeySource::File(path) = &self.source else {
            return Ok(());
        };
        let mut ring = self.ring.write().unwrap_or_else(|p| p.into_inner());
        *ring = read_file(path)?;
        ring.keys.retain(|v, _| *v == keep);
        if ring.keys.is_empty() {
            return Err(VaultError::UnknownKeyVersion(keep));
        }
        write_private(path, &ring.to_file_text())
    }
}

/// What a key rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationReport {
    /// The version that was current before the rotation (retired now).
    pub old_version: u32,
    /// The version that seals from now on.
    pub new_version: u32,
    /// Credential records re-sealed under `new_version`.
    pub resealed: usize,
}

/// Rotates the master key: adds a new key version to the key file,
/// re-seals every credential record under it in one store transaction
/// (which also makes it the current version), then retires the old
/// versions. Readers keep working throughout: until the transaction
/// commits, every record opens with the old keys; after, with the new one,
/// which running daemons load from the file when they first meet it.
///
/// If the transaction fails (a tampered record, say) nothing changes in the
/// database and the new key stays unused in the file.
pub fn rotate_key(store: &dyn crate::store::Store, vault: &Vault) -> Result<RotationReport, anyhow::Error> {
    use anyhow::Context as _;
    if *vault.source() == KeySource::Env {
        anyhow::bail!(
            "the master key comes from BYOS3_MASTER_KEY: rotation needs a key file (unset BYOS3_MASTER_KEY and use the state directory's master.key)"
        );
    }
    vault.reload()?;
    let state = store.vault_state().context("reading the vault state")?;
    let old_version = state.map_or(vault.current_version(), |s| s.current_version);
    let new_version = old_version.max(vault.current_version()) + 1;
    let new_key = generate_key();
    let check = super::key_check(&new_key, new_version)?;
    vault
        .add_key(new_version, new_key.clone())
        .context("adding the new key version to the key file")?;
    let mut reseal =
        |tenant: &str, disk_id: &str, sealed: &SealedCredentials| -> Result<SealedCredentials, VaultError> {
            let ctx = SealContext { tenant, disk_id };
            let plain = vault.open(ctx, sealed)?;
            seal_with(&new_key, new_version, ctx, &plain)
        };
    let resealed = store
        .rotate_key(new_version, &check, &mut reseal)
        .context("re-sealing the credentials (nothing was changed)")?;
    vault
        .retire_except(new_version)
        .context("retiring the old key versions (the rotation itself is complete)")?;
    Ok(RotationReport {
        old_version,
        new_version,
        resealed,
    })
}

/// The plaintext credentials of a disk, for signing requests (attach,
/// probe). Survives a concurrent rotation: if the record's key version was
/// retired between reading and opening, the record is read once more.
/// `Ok(None)` when the tenant has no such disk.
pub fn open_credentials(
    store: &dyn crate::store::Store,
    vault: &Vault,
    tenant: &str,
    disk_id: &str,
) -> Result<Option<SecretCredentials>, anyhow::Error> {
    let ctx = SealContext { tenant, disk_id };
    for _ in 0..2 {
        let Some(sealed) = store.sealed_credentials(tenant, disk_id)? else {
            return Ok(None);
        };
        match vault.open(ctx, &sealed) {
            Err(VaultError::UnknownKeyVersion(_)) => continue,
            other => return Ok(Some(other?)),
        }
    }
    Err(VaultError::UnknownKeyVersion(0).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_is_created_0600_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = MasterKeyConfig {
            file: dir.path().join("master.key"),
            env_value: None,
        };
        assert!(Vault::load(&cfg, false).is_err());
        let v = Vault::load(&cfg, true).unwrap();
        let mode = std::fs::metadata(&cfg.file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(v.current_version(), 1);
        let again = Vault::load(&cfg, true).unwrap();
        let ctx = SealContext {
            tenant: "t",
            disk_id: "d",
        };
        let creds = SecretCredentials::new(Zeroizing::new("a".into()), Zeroizing::new("s".into()));
        let sealed = v.seal(1, ctx, &creds).unwrap();
        assert_eq!(again.open(ctx, &sealed).unwrap().secret_key(), "s");
        // A second version added by another process is found on demand.
        again.add_key(2, generate_key()).unwrap();
        let sealed2 = again.seal(2, ctx, &creds).unwrap();
        assert_eq!(sealed2.key_version, 2);
        assert_eq!(v.open(ctx, &sealed2).unwrap().access_key(), "a");
        v.retire_except(2).unwrap();
        assert!(matches!(
            Vault::load(&cfg, false).unwrap().open(ctx, &sealed),
            Err(VaultError::UnknownKeyVersion(1))
        ));
    }

    #[test]
    fn env_formats() {
        let k = base64::engine::general_purpose::STANDARD.encode([1u8; 32]);
        assert_eq!(Keyring::parse_env(&k).unwrap().versions(), vec![1]);
        let ring = Keyring::parse_env(&format!("1:{k}, 3:{k}")).unwrap();
        assert_eq!(ring.current().unwrap().0, 3);
        assert!(Keyring::parse_env("abc").is_err());
        assert!(Keyring::parse_env(&base64::engine::general_purpose::STANDARD.encode([1u8; 16])).is_err());
    }
}
