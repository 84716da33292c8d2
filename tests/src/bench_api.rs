//! `scripts/bench api`: requests/s and p50/p99 latency of `GET /v1/disks`
//! and `POST /v1/disks` (the bucket probe included) with 16 concurrent
//! keep-alive clients on loopback, for a bounded time each. The server runs
//! in this process with the bundled plugins, against the local Garage.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use byos3::api::Server;
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::json;

use crate::Garage;

/// What to run.
pub struct ApiBenchConfig {
    /// Concurrent clients (each one keep-alive connection).
    pub clients: usize,
    /// How long each route is driven.
    pub duration: Duration,
    /// Disks registered before the GET run (the page returned holds up to 50).
    pub disks: usize,
}

impl Default for ApiBenchConfig {
    /// 16 clients, 5 s per route, 20 disks; `BENCH_API_CLIENTS`,
    /// `BENCH_API_SECS` and `BENCH_API_DISKS` override.
    fn default() -> Self {
        let env = |k: &str, d: u64| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
        Self {
            clients: env("BENCH_API_CLIENTS", 16) as usize,
            duration: Duration::from_secs(env("BENCH_API_SECS", 5)),
            disks: env("BENCH_API_DISKS", 20) as usize,
        }
    }
}

const KEY: &str = "bench-key-0123456789";

struct Outcome {
    latencies: Vec<Duration>,
    errors: u64,
    first_error: Option<String>,
    elapsed: Duration,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Builds request number `n` for a base URL.
type MakeRequest = Arc<dyn Fn(&str, u64) -> Request<Full<Bytes>> + Send + Sync>;

/// Drives `make` from `clients` tasks for `duration`.
async fn drive(base: &str, clients: usize, duration: Duration, expect: u16, make: MakeRequest) -> Outcome {
    let counter = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(1)
            .build_http::<Full<Bytes>>();
        let (make, counter, errors, base) = (make.clone(), counter.clone(), errors.clone(), base.to_string());
        let first_error = first_error.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(4096);
            while Instant::now() < deadline {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let t = Instant::now();
                let failure = match client.request(make(&base, n)).await {
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        match resp.into_body().collect().await {
                            Ok(_) if status == expect => None,
                            Ok(body) => Some(format!(
                                "HTTP {status}: {}",
                                String::from_utf8_lossy(&body.to_bytes()).trim()
                            )),
                            Err(e) => Some(format!("reading the body: {e}")),
                        }
                    }
                    Err(e) => Some(format!("request failed: {e}")),
                };
                lat.push(t.elapsed());
                if let Some(f) = failure {
                    errors.fetch_add(1, Ordering::Relaxed);
                    first_error.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(f);
                }
            }
            lat
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.unwrap_or_default());
    }
    let elapsed = start.elapsed();
    latencies.sort();
    let first_error = first_error.lock().unwrap_or_else(|p| p.into_inner()).take();
    Outcome {
        latencies,
        errors: errors.load(Ordering::Relaxed),
        first_error,
        elapsed,
    }
}

fn disk_body(g: &Garage, name: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "name": name,
        "kind": "s3",
        "config": {"bucket": g.bucket, "endpoint": g.endpoint_url(), "region": g.region, "use_path_style": true},
        "credentials": {"access_key": g.access_key, "secret_key": g.secret_key},
    }))
    .expect("json")
}

fn print_row(route: &str, o: &Outcome) {
    let n = o.latencies.len();
    let rps = n as f64 / o.elapsed.as_secs_f64();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{route:<28} {n:>8} {rps:>10.0} {:>9.2} {:>9.2} {:>9.2} {:>7}",
        ms(percentile(&o.latencies, 0.50)),
        ms(percentile(&o.latencies, 0.99)),
        ms(o.latencies.last().copied().unwrap_or_default()),
        o.errors
    );
    if let Some(e) = &o.first_error {
        println!("  first error: {e}");
    }
}

/// Runs the benchmark and prints its table.
pub fn run(cfg: &ApiBenchConfig) -> Result<()> {
    let garage = Garage::start()?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        let dir = tempfile::Builder::new().prefix("byos3-bench-api-").tempdir()?;
        let opts = crate::local_server_options(dir.path(), "bench", KEY)?;
        let server = Server::start(opts).await.context("starting the API server")?;
        if let Some(why) = server.disks_unavailable() {
            anyhow::bail!("the disks API is unavailable: {why}");
        }
        let base = format!("http://{}", server.local_addr());
        let g = Arc::new(garage);

        // Seed the GET run.
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        for i in 0..cfg.disks {
            let req = Request::post(format!("{base}/v1/disks"))
                .header("x-api-key", KEY)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(disk_body(&g, &format!("seed-{i}")))))?;
            let resp = client.request(req).await?;
            anyhow::ensure!(
                resp.status().as_u16() == 201,
                "seeding disk {i}: HTTP {}",
                resp.status()
            );
        }

        println!(
            "byos3 API on loopback: {} clients, {:?} per route, {} disks listed per GET",
            cfg.clients, cfg.duration, cfg.disks
        );
        println!(
            "{:<28} {:>8} {:>10} {:>9} {:>9} {:>9} {:>7}",
            "route", "requests", "req/s", "p50 ms", "p99 ms", "max ms", "errors"
        );
        let get = drive(
            &base,
            cfg.clients,
            cfg.duration,
            200,
            Arc::new(|base: &str, _| {
                Request::get(format!("{base}/v1/disks"))
                    .header("x-api-key", KEY)
                    .body(Full::new(Bytes::new()))
                    .expect("request")
            }),
        )
        .await;
        print_row("GET /v1/disks", &get);
        let post = drive(&base, cfg.clients, cfg.duration, 201, {
            let g = g.clone();
            Arc::new(move |base: &str, n: u64| {
                Request::post(format!("{base}/v1/disks"))
                    .header("x-api-key", KEY)
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(disk_body(&g, &format!("bench-{n}")))))
                    .expect("request")
            })
        })
        .await;
        print_row("POST /v1/disks (probe incl.)", &post);
        server.shutdown().await;
        Ok(())
    })
}
