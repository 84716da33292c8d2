//! The conformance suite behind `byos3 plugin test`: a plugin loads and
//! describes itself, its own resolve table passes through the component,
//! and its probe classifies a live server's answers (ok, missing bucket,
//! wrong secret, nothing listening).

use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::Path;
use std::time::Instant;

use super::{DiskConfig, Limits, PluginHost, ResolvedEndpoint};
use crate::s3::{Addressing, ClientConfig, Credentials, Endpoint, S3Client};

/// The live server a plugin is tested against.
#[derive(Clone, Debug)]
pub struct Target {
    /// Endpoint URL of the server (`http(s)://host[:port]`), given to the plugin as the disk's endpoint.
    pub endpoint: String,
    /// An existing bucket the credentials can list; the "ok" probe case runs against it.
    pub bucket: String,
    /// Region given to the plugin; `None` leaves it to the plugin.
    pub region: Option<String>,
    /// Force path-style addressing (`use_path_style: true`); `false` leaves it to the plugin.
    pub path_style: bool,
    /// Valid credentials for `bucket`; the suite derives a wrong secret from them.
    pub credentials: Credentials,
}

/// One conformance case's outcome, printed as one line.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// What the case checks, in words ("a missing bucket is bucket_not_found").
    pub name: String,
    /// Whether the plugin passed the case.
    pub passed: bool,
    /// What was observed: the evidence on a pass, the failure otherwise.
    pub detail: String,
}

struct Suite {
    outcomes: Vec<Outcome>,
}

impl Suite {
    fn case(&mut self, name: &str, result: Result<String, String>) {
        let (passed, detail) = match result {
            Ok(d) => (true, d),
            Err(d) => (false, d),
        };
        self.outcomes.push(Outcome {
            name: name.to_string(),
            passed,
            detail,
        });
    }
}

fn client_for(endpoint: &Endpoint, bucket: &str, creds: Credentials) -> Result<S3Client, String> {
    let mut cfg = ClientConfig::new(endpoint.clone(), bucket, creds);
    if endpoint.host() == "localhost" {
        // Virtual-hosted requests to a local server: bucket.localhost is loopback.
        cfg.transport
            .resolve
            .insert("*.localhost", IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    S3Client::new(cfg).map_err(|e| e.to_string())
}

/// Runs the suite; one outcome per case, in order.
pub async fn run(file: &Path, target: &Target, cache_dir: Option<&Path>) -> Vec<Outcome> {
    let mut suite = Suite { outcomes: Vec::new() };
    if let Err(e) = suite_cases(&mut suite, file, target, cache_dir).await {
        suite.case("set-up", Err(e));
    }
    suite.outcomes
}

async fn suite_cases(suite: &mut Suite, file: &Path, target: &Target, cache_dir: Option<&Path>) -> Result<(), String> {
    let (endpoint, bucket, path_style) = (target.endpoint.as_str(), target.bucket.as_str(), target.path_style);
    let region = target.region.clone();
    let creds = target.credentials.clone();
    let (access, secret) = (creds.access_key_id().to_string(), creds.secret_access_key().to_string());
    let limits = Limits::default();

    // 1. Loads and describes itself.
    let host = match PluginHost::load_files(&[file.to_path_buf()], cache_dir, limits.clone()).await {
        Ok(h) => h,
        Err(e) => {
            suite.case("load and describe", Err(e.to_string()));
            return Ok(());
        }
    };
    let info = host.plugins().remove(0);
    let id = info.id.clone();
    suite.case(
        "load and describe",
        Ok(format!(
            "{} {:?} version {} (contract {}), sha256 {}",
            info.id, info.name, info.version, info.contract_version, info.sha256
        )),
    );

    // 2. Its own resolve table, through the component.
    match host.examples(&id).await {
        Err(e) => suite.case("resolve table", Err(e.to_string())),
        Ok(examples) if examples.is_empty() => {
            suite.case("resolve table", Err("the plugin declares no resolve cases".into()))
        }
        Ok(examples) => {
            for ex in examples {
                let got = host.resolve_with(&id, &ex.config).await;
                let verdict = match (&ex.expect, &got) {
                    (Ok(want), Ok(got)) if *want == got.endpoint => Ok(got.endpoint.url()),
                    (Err(field), Err(e)) if e.field() == Some(field.as_str()) => Ok(format!("config error on {field}")),
                    _ => Err(format!("expected {:?}, got {:?}", ex.expect, got.map(|r| r.endpoint))),
                };
                suite.case(&format!("resolve table: {}", ex.name), verdict);
            }
        }
    }

    // 3-5. Probes against the live server.
    let cfg = DiskConfig {
        bucket: bucket.to_string(),
        endpoint: Some(endpoint.to_string()),
        region,
        use_path_style: path_style.then_some(true),
        provider: Some(id.clone()),
        options: Vec::new(),
    };
    let resolved = match host.resolve(&cfg).await {
        Ok(r) => r,
        Err(e) => {
            suite.case("resolve the live config", Err(e.to_string()));
            return Ok(());
        }
    };
    suite.case(
        "resolve the live config",
        Ok(format!(
            "{} signed for {}",
            resolved.endpoint.url(),
            resolved.endpoint.signing_region()
        )),
    );

    let probe_case =
        |name: &'static str, want: &'static [&'static str], cfg: DiskConfig, client: Result<S3Client, String>| {
            let host = host.clone();
            let resolved = resolved.clone();
            async move {
                let client = client?;
                let t0 = Instant::now();
                let report = host.probe(&cfg, &resolved, &client).await.map_err(|e| e.to_string())?;
                let took = t0.elapsed();
                let line = format!("{} in {took:?}: {}", report.code, report.message);
                if want.contains(&report.code.as_str()) {
                    Ok(line)
                } else {
                    Err(format!("wanted {}, got {line}", want.join(" or ")))
                }
                .map_err(|e| format!("{name}: {e}"))
            }
        };
    let ok = probe_case(
        "probe",
        &["ok"],
        cfg.clone(),
        client_for(&resolved.endpoint, bucket, creds.clone()),
    )
    .await;
    suite.case("probe is ok on the bucket", ok);

    let missing = format!("byos3-missing-{:08x}", rand::random::<u32>());
    let missing_cfg = DiskConfig {
        bucket: missing.clone(),
        ..cfg.clone()
    };
    let r = probe_case(
        "missing",
        &["bucket_not_found"],
        missing_cfg,
        client_for(&resolved.endpoint, &missing, creds.clone()),
    )
    .await;
    suite.case("a missing bucket is bucket_not_found", r);

    let wrong = Credentials::new(access.clone(), format!("{secret}x"), None);
    let r = probe_case(
        "wrong secret",
        &["signature_mismatch", "invalid_access_key"],
        cfg.clone(),
        client_for(&resolved.endpoint, bucket, wrong),
    )
    .await;
    suite.case("a wrong secret is signature_mismatch or invalid_access_key", r);

    // 6. Nothing listening: the same endpoint shape on a closed loopback port.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| e.to_string())?;
    let dead = Endpoint::new(
        &format!("http://127.0.0.1:{port}"),
        resolved.endpoint.signing_region(),
        Addressing::Path,
    )
    .map_err(|e| e.to_string())?
    .with_quirks(resolved.endpoint.quirks().clone());
    let dead_resolved = ResolvedEndpoint {
        provider: id.clone(),
        endpoint: dead.clone(),
    };
    let t0 = Instant::now();
    let r = match client_for(&dead, bucket, creds.clone()) {
        Err(e) => Err(e.to_string()),
        Ok(client) => match host.probe(&cfg, &dead_resolved, &client).await {
            Err(e) => Err(e.to_string()),
            Ok(rep) if rep.code == "endpoint_unreachable" && t0.elapsed() <= limits.probe_timeout => {
                Ok(format!("{} in {:?}: {}", rep.code, t0.elapsed(), rep.message))
            }
            Ok(rep) => Err(format!(
                "wanted endpoint_unreachable within {:?}, got {} after {:?}",
                limits.probe_timeout,
                rep.code,
                t0.elapsed()
            )),
        },
    };
    suite.case("nothing listening is endpoint_unreachable within the deadline", r);

    Ok(())
}
