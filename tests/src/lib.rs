//! The shared test harness: a real S3 server (Garage) on 127.0.0.1, and a
//! fault-injecting, request-counting proxy to put in front of it.
//!
//! Used by the end-to-end tests, the benchmarks and the demo.

pub mod bench_api;
pub mod bench_attach;
pub mod bench_plugins;
pub mod bench_s3;
pub mod proxy;
pub mod tls;

use std::net::{IpAddr, Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use byos3::s3::{Addressing, ClientConfig, Credentials, Endpoint, ResolveOverrides, S3Client};

/// The S3 region the test server signs for.
pub const REGION: &str = "us-east-1";

/// Where set-up caches slow, reusable things (Garage, the cargo target dir).
pub fn cache_dir() -> PathBuf {
    if let Ok(d) = std::env::var("BYOS3_CACHE") {
        return PathBuf::from(d);
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    PathBuf::from(home).join(".cache/byos3")
}

/// The runtime of a test: two workers (the machines have two cores), every
/// driver on. Garage and FUSE mounts run outside it.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Options of an in-process API server on 127.0.0.1 (a free port) for the
/// benchmarks and the demo: one tenant holding `key`, a fresh master key
/// made in `state_dir`, the shared compiled-plugin cache.
pub fn local_server_options(state_dir: &std::path::Path, tenant: &str, key: &str) -> Result<byos3::api::ServerOptions> {
    let mut opts = byos3::api::ServerOptions::new("127.0.0.1:0".parse()?, state_dir);
    let mut keys = byos3::api::ApiKeys::new();
    keys.add_key(tenant, key).map_err(anyhow::Error::msg)?;
    opts.api_keys = keys;
    opts.generate_api_key = false;
    opts.gateway.master_key.env_value = None;
    opts.gateway.plugin_cache_dir = Some(byos3::plugin::default_cache_dir());
    Ok(opts)
}

/// The Garage binary: `BYOS3_GARAGE`, else the one `scripts/setup` built.
pub fn garage_binary() -> PathBuf {
    std::env::var("BYOS3_GARAGE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| cache_dir().join("garage-2.5.0/bin/garage"))
}

/// `N` distinct free TCP ports on 127.0.0.1 (held open together while
/// chosen, so they differ from each other; free when returned).
pub fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("no free port on 127.0.0.1"))
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().expect("bound listener").port())
}

/// A free TCP port on 127.0.0.1 (free when asked; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on 127.0.0.1")
}

/// A Garage server with one key and one bucket, on loopback, with its own
/// data directory. Killed on drop (also when a test panics).
pub struct Garage {
    pub port: u16,
    pub access_key: String,
    pub secret_key: String,
    pub bucket: String,
    pub region: String,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl Garage {
    /// Starts a server signing for [`REGION`].
    pub fn start() -> Result<Self> {
        Self::start_with_region(REGION)
    }

    /// Starts a server whose S3 API signs for `region`. A port taken
    /// between choosing it and Garage binding it (tests start servers in
    /// parallel) is retried with fresh ports, a bounded number of times.
    pub fn start_with_region(region: &str) -> Result<Self> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Self::try_start(region) {
                Err(e) if attempt < 5 && format!("{e:#}").contains("Address already in use") => continue,
                other => return other,
            }
        }
    }

    fn try_start(region: &str) -> Result<Self> {
        let bin = garage_binary();
        if !bin.exists() {
            bail!("Garage is not installed at {} (run scripts/setup)", bin.display());
        }
        let dir = tempfile::Builder::new().prefix("byos3-garage-").tempdir()?;
        let [port, rpc, admin] = free_ports::<3>();
        let secret: String = (0..32).map(|_| format!("{:02x}", rand::random::<u8>())).collect();
        let toml = format!(
            r#"metadata_dir = "{d}/meta"
data_dir = "{d}/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc}"
rpc_public_addr = "127.0.0.1:{rpc}"
rpc_secret = "{secret}"

[s3_api]
s3_region = "{region}"
api_bind_addr = "127.0.0.1:{port}"
root_domain = ".localhost"

[admin]
api_bind_addr = "127.0.0.1:{admin}"
"#,
            d = dir.path().display()
        );
        let conf = dir.path().join("garage.toml");
        std::fs::write(&conf, toml)?;
        let access_key = format!("GK{}", hex_string(12));
        let secret_key = hex_string(32);
        let bucket = "byos3-test".to_string();
        let log = std::fs::File::create(dir.path().join("garage.log"))?;
        let child = Command::new(&bin)
            .arg("-c")
            .arg(&conf)
            .args(["server", "--single-node", "--default-bucket"])
            .env("GARAGE_DEFAULT_ACCESS_KEY", &access_key)
            .env("GARAGE_DEFAULT_SECRET_KEY", &secret_key)
            .env("GARAGE_DEFAULT_BUCKET", &bucket)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut g = Garage {
            port,
            access_key,
            secret_key,
            bucket,
            region: region.to_string(),
            child: Some(child),
            dir,
        };
        g.wait_ready()?;
        Ok(g)
    }

    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let client = self.client(Addressing::Path);
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    bail!("Garage exited during start-up ({status}); log:\n{}", self.log());
                }
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() && rt.block_on(client.head_bucket()).is_ok() {
                return Ok(());
            }
            if self.log().contains("Address already in use") {
                bail!("Garage could not bind its ports (Address already in use)");
            }
            if Instant::now() > deadline {
                bail!("Garage did not answer within 30 s; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs a `garage` administration command against this server (e.g.
    /// `bucket deny` to revoke the test key's access); returns its output.
    pub fn admin(&self, args: &[&str]) -> Result<String> {
        let out = Command::new(garage_binary())
            .arg("-c")
            .arg(self.dir.path().join("garage.toml"))
            .args(args)
            .output()
            .context("running garage")?;
        if !out.status.success() {
            bail!(
                "garage {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("garage.log")).unwrap_or_default()
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `http://localhost:PORT`: the host to use for virtual-hosted requests
    /// (`bucket.localhost` is resolved to 127.0.0.1 by [`Garage::overrides`]).
    pub fn vhost_endpoint_url(&self) -> String {
        format!("http://localhost:{}", self.port)
    }

    pub fn credentials(&self) -> Credentials {
        Credentials::new(self.access_key.clone(), self.secret_key.clone(), None)
    }

    /// Resolve overrides mapping `*.localhost` to 127.0.0.1.
    pub fn overrides() -> ResolveOverrides {
        let mut o = ResolveOverrides::new();
        o.insert("*.localhost", IpAddr::V4(Ipv4Addr::LOCALHOST));
        o.insert("localhost", IpAddr::V4(Ipv4Addr::LOCALHOST));
        o
    }

    /// The endpoint for `addressing`.
    pub fn endpoint(&self, addressing: Addressing) -> Endpoint {
        let url = match addressing {
            Addressing::Path => self.endpoint_url(),
            Addressing::VirtualHosted => self.vhost_endpoint_url(),
        };
        Endpoint::new(&url, &self.region, addressing).expect("valid endpoint")
    }

    /// A client configuration for the test bucket.
    pub fn client_config(&self, addressing: Addressing) -> ClientConfig {
        let mut cfg = ClientConfig::new(self.endpoint(addressing), self.bucket.clone(), self.credentials());
        cfg.transport.resolve = Self::overrides();
        cfg
    }

    pub fn client(&self, addressing: Addressing) -> S3Client {
        S3Client::new(self.client_config(addressing)).expect("client for the test server")
    }

    /// Stops the server (SIGTERM, then SIGKILL after 1 s: its data is
    /// disposable, and a slow graceful stop would add up over many tests).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: plain kill(2) on a child we spawned and have not reaped.
            unsafe {
                libc::kill(child.id() as i32, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(1);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the server process is running.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `n` random bytes as lowercase hex.
pub fn hex_string(n: usize) -> String {
    (0..n).map(|_| format!("{:02x}", rand::random::<u8>())).collect()
}

/// Deterministic pseudo-random bytes (xorshift), for byte-exact round trips.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let bytes = x.to_le_bytes();
        let take = (len - out.len()).min(8);
        out.extend_from_slice(&bytes[..take]);
    }
    out
}

/// Peak resident set size of this process (`VmHWM`), in bytes.
pub fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}
