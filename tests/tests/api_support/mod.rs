//! Helpers of the API tests: an HTTP client, the server in-process or as a
//! `byos3 serve` child process, request bodies for the test bucket.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use byos3::api::{ApiKeys, Server, ServerOptions};
use byos3::s3::Addressing;
use byos3_tests::{free_port, Garage};
use bytes::Bytes;
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

/// Alice's and Bob's API keys on every test server.
pub const ALICE: &str = "alice-key-0123456789";
pub const BOB: &str = "bob-key-9876543210";

/// A response, its body parsed as JSON (Null when empty or not JSON).
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub json: Value,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// `data.code` of a fail.
    pub fn code(&self) -> &str {
        self.json["data"]["code"].as_str().unwrap_or("")
    }

    /// Asserts the JSend fail shape and the status; returns `data`.
    pub fn fail(&self, status: u16) -> &Value {
        assert_eq!(self.status, status, "{}", self.text());
        assert_eq!(self.json["status"], "fail", "{}", self.text());
        let data = &self.json["data"];
        assert!(data["code"].as_str().is_some_and(|c| !c.is_empty()), "{}", self.text());
        assert!(
            data["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{}",
            self.text()
        );
        assert_eq!(self.json.as_object().unwrap().len(), 2, "{}", self.text());
        data
    }

    /// Asserts the JSend success shape and the status; returns `data`.
    pub fn ok(&self, status: u16) -> &Value {
        assert_eq!(self.status, status, "{}", self.text());
        assert_eq!(self.json["status"], "success", "{}", self.text());
        assert_eq!(self.json.as_object().unwrap().len(), 2, "{}", self.text());
        &self.json["data"]
    }

    /// Asserts the JSend error shape (5xx).
    pub fn error(&self, status: u16) -> &str {
        assert_eq!(self.status, status, "{}", self.text());
        let o = self
            .json
            .as_object()
            .unwrap_or_else(|| panic!("not an object: {}", self.text()));
        assert_eq!(o.len(), 3, "{}", self.text());
        assert_eq!(self.json["status"], "error");
        assert_eq!(self.json["code"], status);
        self.json["message"].as_str().unwrap()
    }
}

/// A plain-HTTP client of one server.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Api {
    pub fn new(base: String) -> Self {
        Self {
            base,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Resp {
        let mut req = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).unwrap())
            .uri(format!("{}{path}", self.base));
        if let Some(k) = key {
            req = req.header("x-api-key", k);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = self
            .client
            .request(req.body(Full::new(Bytes::from(body))).unwrap())
            .await
            .expect("request failed");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
        assert!(
            headers.contains_key("x-request-id"),
            "no x-request-id on {method} {path}"
        );
        Resp {
            status,
            headers,
            body,
            json,
        }
    }

    pub async fn get(&self, path: &str, key: &str) -> Resp {
        self.raw("GET", path, Some(key), &[], Vec::new()).await
    }

    pub async fn delete(&self, path: &str, key: &str) -> Resp {
        self.raw("DELETE", path, Some(key), &[], Vec::new()).await
    }

    pub async fn send(&self, method: &str, path: &str, key: &str, body: &Value) -> Resp {
        self.raw(
            method,
            path,
            Some(key),
            &[("content-type", "application/json")],
            serde_json::to_vec(body).unwrap(),
        )
        .await
    }

    pub async fn post(&self, path: &str, key: &str, body: &Value) -> Resp {
        self.send("POST", path, key, body).await
    }
}

/// A `POST /v1/disks` body for the test bucket, path style.
pub fn disk_body(name: &str, g: &Garage) -> Value {
    json!({
        "name": name,
        "kind": "s3",
        "config": {"bucket": g.bucket, "endpoint": g.endpoint_url(), "region": g.region, "use_path_style": true},
        "credentials": {"access_key": g.access_key, "secret_key": g.secret_key},
    })
}

/// The plugins built by `scripts/build-plugins`.
pub fn plugin_dir() -> PathBuf {
    let d = byos3::plugin::default_plugin_dir();
    assert!(
        d.join("s3.wasm").exists() || std::fs::read_dir(&d).map(|r| r.count() > 1).unwrap_or(false),
        "no provider plugins in {} (run scripts/build-plugins)",
        d.display()
    );
    d
}

/// The server in this process, on a free loopback port, with a temporary
/// state directory and the tenants alice and bob.
pub struct InProc {
    pub api: Api,
    pub server: Option<Server>,
    pub dir: tempfile::TempDir,
}

pub fn options(state_dir: &Path) -> ServerOptions {
    let mut opts = ServerOptions::new("127.0.0.1:0".parse().unwrap(), state_dir);
    let mut keys = ApiKeys::new();
    keys.add_env(&format!("alice={ALICE},bob={BOB}")).unwrap();
    opts.api_keys = keys;
    opts.generate_api_key = false;
    opts.gateway.plugin_dir = plugin_dir();
    opts.gateway.plugin_cache_dir = Some(byos3::plugin::default_cache_dir());
    opts.gateway.master_key.env_value = None;
    opts
}

impl InProc {
    pub async fn start() -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("byos3-api-").tempdir()?;
        Self::start_with(dir, |_| {}).await
    }

    pub async fn start_with(dir: tempfile::TempDir, edit: impl FnOnce(&mut ServerOptions)) -> Result<Self> {
        let mut opts = options(dir.path());
        edit(&mut opts);
        let server = Server::start(opts).await?;
        let api = Api::new(format!("http://{}", server.local_addr()));
        Ok(Self {
            api,
            server: Some(server),
            dir,
        })
    }

    pub fn state_dir(&self) -> &Path {
        self.dir.path()
    }

    pub async fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }
}

/// The `byos3` binary of this workspace, built if needed.
pub fn byos3_bin() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
            let status = Command::new(cargo)
                .args(["build", "--quiet", "-p", "byos3", "--bin", "byos3", "--manifest-path"])
                .arg(&manifest)
                .status()
                .expect("running cargo build");
            assert!(status.success(), "building byos3 failed");
            // target/<profile>/deps/<test binary> -> target/<profile>/byos3
            let exe = std::env::current_exe().unwrap();
            let bin = exe.parent().and_then(Path::parent).unwrap().join("byos3");
            assert!(bin.exists(), "{} missing", bin.display());
            bin
        })
        .clone()
}

/// What `byos3 serve` prints once it listens.
const READY: &str = "byos3 API listening on ";

/// `byos3 serve` as a child process; stdout and stderr go to files.
pub struct Daemon {
    pub api: Api,
    pub port: u16,
    pub state_dir: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
}

impl Daemon {
    /// Starts `byos3 serve` on a free port with `env` added.
    pub fn start(state_dir: &Path, log: &Path, env: &[(&str, &str)], extra_args: &[&str]) -> Result<Self> {
        let port = free_port();
        let starts_before = std::fs::read_to_string(log).unwrap_or_default().matches(READY).count();
        let out = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
        let mut cmd = Command::new(byos3_bin());
        cmd.arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--state-dir")
            .arg(state_dir)
            .arg("--plugin-dir")
            .arg(plugin_dir())
            .args(extra_args)
            .env_remove("BYOS3_API_KEYS")
            .env_remove("BYOS3_MASTER_KEY")
            .env("BYOS3_PLUGIN_CACHE", byos3::plugin::default_cache_dir())
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().context("starting byos3 serve")?;
        let mut d = Daemon {
            api: Api::new(format!("http://127.0.0.1:{port}")),
            port,
            state_dir: state_dir.to_path_buf(),
            log: log.to_path_buf(),
            child: Some(child),
        };
        d.wait_ready(starts_before)?;
        Ok(d)
    }

    fn wait_ready(&mut self, starts_before: usize) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait()? {
                bail!("byos3 serve exited ({status}):\n{}", self.log_text());
            }
            if self.log_text().matches(READY).count() > starts_before {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("byos3 serve did not listen within 60 s:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then waits; returns whether it exited cleanly.
    pub fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        // SAFETY: kill(2) on our own child.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// SIGKILL: a crash, nothing flushed or unmounted.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

pub use byos3_tests::runtime;

/// Whether `haystack` contains `needle` as bytes.
pub fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Checks an id is `disk_` + a 26-character Crockford base32 ULID.
pub fn assert_disk_id(id: &str) {
    let ulid = id
        .strip_prefix("disk_")
        .unwrap_or_else(|| panic!("id {id:?} lacks disk_"));
    assert_eq!(ulid.len(), 26, "{id}");
    assert!(
        ulid.bytes().all(|b| b"0123456789ABCDEFGHJKMNPQRSTVWXYZ".contains(&b)),
        "{id}"
    );
}

/// Last-resort cleanup: lazily unmounts any FUSE mount left under the
/// state directory, also when an assertion failed.
pub struct MountGuard(pub PathBuf);

impl Drop for MountGuard {
    fn drop(&mut self) {
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        let prefix = self.0.display().to_string();
        for line in mounts.lines().filter(|l| l.contains("fuse")) {
            if let Some(mp) = line.split_whitespace().nth(1).filter(|mp| mp.starts_with(&prefix)) {
                let _ = std::process::Command::new("fusermount3").args(["-uz", mp]).status();
            }
        }
    }
}

pub fn keys_in(g: &Garage, rt: &tokio::runtime::Runtime, prefix: &str) -> Vec<String> {
    let client = g.client(Addressing::Path);
    let page = rt
        .block_on(client.list_objects(prefix, None, None, None, None))
        .unwrap();
    page.objects.into_iter().map(|o| o.key).collect()
}

/// Whether `p` is a mount point now.
pub fn is_mounted(p: &Path) -> bool {
    let target = p.display().to_string();
    std::fs::read_to_string("/proc/mounts")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some(target.as_str()))
}
