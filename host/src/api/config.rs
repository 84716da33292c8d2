//! The server's configuration file (JSON, strictly parsed like request
//! bodies). Every key is optional; command-line flags win over it.
//! Relative paths are relative to the file's directory.
//!
//! ```json
//! {
//!   "listen": "127.0.0.1:8787",
//!   "state_dir": "/var/lib/byos3",
//!   "plugin_dir": "/usr/lib/byos3/plugins",
//!   "plugin_cache_dir": "/var/cache/byos3/plugins",
//!   "tls": {"cert_file": "cert.pem", "key_file": "key.pem"},
//!   "api_keys": [{"tenant": "alice", "key": "k1"},
//!                {"tenant": "bob", "key_sha256": "<hex of sha256(\"byos3 api key v1\\0\" + key)>"}],
//!   "master_key_file": "/etc/byos3/master.key",
//!   "endpoint_policy": {"allow": ["169.254.10.0/24"], "deny": ["private"]},
//!   "probe_timeout_secs": 10
//! }
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, Context as _};

use super::auth::ApiKeys;
use super::json::{parse_object, Obj};
use super::server::TlsFiles;

const TOP: &[&str] = &[
    "listen",
    "state_dir",
    "plugin_dir",
    "plugin_cache_dir",
    "tls",
    "api_keys",
    "master_key_file",
    "endpoint_policy",
    "probe_timeout_secs",
];

/// A parsed configuration file.
#[derive(Debug, Default)]
pub struct FileConfig {
    /// `listen`: address and port the API binds to.
    pub listen: Option<SocketAddr>,
    /// `state_dir`: the daemon's database, keys, plugin cache, sandboxes and staging.
    pub state_dir: Option<PathBuf>,
    /// `plugin_dir`: where the provider plugins (`*.wasm`) are loaded from.
    pub plugin_dir: Option<PathBuf>,
    /// `plugin_cache_dir`: the compiled plugin cache (`None`: `<state_dir>/plugin-cache`).
    pub plugin_cache_dir: Option<PathBuf>,
    /// `tls`: serve HTTPS with this certificate and key; `None` serves plain HTTP.
    pub tls: Option<TlsFiles>,
    /// `api_keys`: tenants and their keys (plain or as a hash); empty when the file gives none.
    pub api_keys: ApiKeys,
    /// `master_key_file`: the vault's key file (`None`: `<state_dir>/master.key`).
    pub master_key_file: Option<PathBuf>,
    /// `endpoint_policy.allow`: endpoints allowed despite the default deny rules (CIDRs, IPs, host
    /// names or keywords; see [`EndpointPolicy`](crate::api::EndpointPolicy)).
    pub policy_allow: Vec<String>,
    /// `endpoint_policy.deny`: endpoints refused besides the default deny rules (same syntax as `allow`).
    pub policy_deny: Vec<String>,
    /// `probe_timeout_secs`: wall-clock bound of a provider probe, 1 to 120 seconds.
    pub probe_timeout: Option<Duration>,
}

impl FileConfig {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::parse(&text, &base).with_context(|| format!("config file {}", path.display()))
    }

    /// Parses the JSON text; relative paths are joined to `base`.
    pub fn parse(text: &[u8], base: &Path) -> anyhow::Result<Self> {
        let err = |e: super::envelope::ApiError| anyhow!("{}", e.message);
        let mut o = parse_object(text).map_err(err)?;
        o.deny_unknown(TOP).map_err(err)?;
        let path = |o: &mut Obj, k: &str| -> anyhow::Result<Option<PathBuf>> {
            Ok(o.opt_str(k).map_err(err)?.map(|p| base.join(p)))
        };
        let mut cfg = FileConfig {
            listen: match o.opt_str("listen").map_err(err)? {
                Some(l) => Some(
                    l.parse()
                        .map_err(|_| anyhow!("listen must be ADDR:PORT, e.g. 127.0.0.1:8787"))?,
                ),
                None => None,
            },
            state_dir: path(&mut o, "state_dir")?,
            plugin_dir: path(&mut o, "plugin_dir")?,
            plugin_cache_dir: path(&mut o, "plugin_cache_dir")?,
            master_key_file: path(&mut o, "master_key_file")?,
            probe_timeout: o.opt_u64("probe_timeout_secs").map_err(err)?.map(Duration::from_secs),
            ..Default::default()
        };
        if cfg
            .probe_timeout
            .is_some_and(|t| t.is_zero() || t > Duration::from_secs(120))
        {
            anyhow::bail!("probe_timeout_secs must be 1 to 120");
        }
        if let Some(mut t) = o.opt_obj("tls").map_err(err)? {
            t.deny_unknown(&["cert_file", "key_file"]).map_err(err)?;
            let cert = base.join(t.req_str("cert_file").map_err(err)?);
            let key = base.join(t.req_str("key_file").map_err(err)?);
            cfg.tls = Some(TlsFiles { cert, key });
        }
        for mut k in o.opt_obj_list("api_keys").map_err(err)?.unwrap_or_default() {
            k.deny_unknown(&["tenant", "key", "key_sha256"]).map_err(err)?;
            let tenant = k.req_str("tenant").map_err(err)?;
            match (k.opt_str("key").map_err(err)?, k.opt_str("key_sha256").map_err(err)?) {
                (Some(key), None) => cfg.api_keys.add_key(&tenant, &key).map_err(anyhow::Error::msg)?,
                (None, Some(h)) => {
                    let hash: [u8; 32] = hex::decode(h.trim())
                        .ok()
                        .and_then(|v| v.try_into().ok())
                        .ok_or_else(|| anyhow!("api_keys: key_sha256 of tenant {tenant:?} must be 64 hex digits"))?;
                    cfg.api_keys.add_hash(&tenant, hash).map_err(anyhow::Error::msg)?;
                }
                _ => anyhow::bail!("api_keys: tenant {tenant:?} needs exactly one of key or key_sha256"),
            }
        }
        if let Some(mut p) = o.opt_obj("endpoint_policy").map_err(err)? {
            p.deny_unknown(&["allow", "deny"]).map_err(err)?;
            cfg.policy_allow = p.opt_str_list("allow").map_err(err)?.unwrap_or_default();
            cfg.policy_deny = p.opt_str_list("deny").map_err(err)?.unwrap_or_default();
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses_typos() {
        let c = FileConfig::parse(
            br#"{"listen":"127.0.0.1:9","state_dir":"s","tls":{"cert_file":"c.pem","key_file":"k.pem"},
                "api_keys":[{"tenant":"alice","key":"k1"}],"endpoint_policy":{"deny":["private"]}}"#,
            Path::new("/etc/byos3"),
        )
        .unwrap();
        assert_eq!(c.state_dir.unwrap(), PathBuf::from("/etc/byos3/s"));
        assert_eq!(c.api_keys.authenticate(b"k1"), Some("alice"));
        assert_eq!(c.policy_deny, vec!["private".to_string()]);
        let e = FileConfig::parse(br#"{"state-dir":"x"}"#, Path::new("/"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("did you mean \"state_dir\""), "{e}");
    }
}
