//! `scripts/bench s3`: single-stream and 8-way GET/PUT throughput of the
//! byos3 S3 client against the local Garage server, side by side with
//! boto3 on the same server in the same run, and the server's own GET
//! ceiling measured with curl of a presigned URL; then small objects
//! (4 KiB PUT and GET one after the other), where latency, not bandwidth,
//! decides.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use byos3::s3::{Addressing, Payload, PutOptions, S3Client};
use bytes::Bytes;
use futures_util::StreamExt;

use crate::{cache_dir, pattern, Garage};

const MB: f64 = 1_000_000.0;
const BLOCK: usize = 8 * 1024 * 1024;
/// Small objects moved one after the other, and their size.
const SMALL_COUNT: usize = 300;
const SMALL_SIZE: usize = 4096;

/// Sizes of the objects moved.
pub struct S3BenchConfig {
    /// The single-stream object.
    pub size: u64,
    /// Each of the 8 objects of the concurrent runs.
    pub par_size: u64,
}

fn stream_payload(block: &Bytes, len: u64) -> Payload {
    let block = block.clone();
    let chunks = (0..len.div_ceil(BLOCK as u64)).map(move |i| {
        let n = (len - i * BLOCK as u64).min(BLOCK as u64) as usize;
        Ok(block.slice(..n))
    });
    Payload::Stream {
        len,
        stream: futures_util::stream::iter(chunks).boxed(),
    }
}

async fn drain(client: &S3Client, key: &str) -> Result<u64> {
    let mut body = client.get_object(key, None, None).await?.body;
    let mut n = 0u64;
    while let Some(chunk) = body.next().await {
        n += chunk?.len() as u64;
    }
    Ok(n)
}

fn mbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / MB / d.as_secs_f64()
}

/// Runs the benchmark and prints its table.
pub fn run(cfg: &S3BenchConfig) -> Result<()> {
    let garage = Garage::start()?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let client = garage.client(Addressing::Path);
    let block = Bytes::from(pattern(BLOCK, 42));
    let ours = rt.block_on(async {
        let t = Instant::now();
        client
            .put_object(
                "bench/byos3-1",
                stream_payload(&block, cfg.size),
                &PutOptions::default(),
            )
            .await?;
        let put_1 = mbps(cfg.size, t.elapsed());
        let t = Instant::now();
        let n = drain(&client, "bench/byos3-1").await?;
        let get_1 = mbps(n, t.elapsed());
        let t = Instant::now();
        let puts = (0..8).map(|i| {
            let c = client.clone();
            let p = stream_payload(&block, cfg.par_size);
            tokio::spawn(async move {
                c.put_object(&format!("bench/byos3-8-{i}"), p, &PutOptions::default())
                    .await
            })
        });
        for h in futures_util::future::join_all(puts).await {
            h??;
        }
        let put_8 = mbps(8 * cfg.par_size, t.elapsed());
        let t = Instant::now();
        let gets = (0..8).map(|i| {
            let c = client.clone();
            tokio::spawn(async move { drain(&c, &format!("bench/byos3-8-{i}")).await })
        });
        let mut total = 0;
        for h in futures_util::future::join_all(gets).await {
            total += h??;
        }
        let get_8 = mbps(total, t.elapsed());
        let small = Bytes::from(pattern(SMALL_SIZE, 7));
        let t = Instant::now();
        for i in 0..SMALL_COUNT {
            client
                .put_object(
                    &format!("bench/byos3-s/{i}"),
                    Payload::Bytes(small.clone()),
                    &PutOptions::default(),
                )
                .await?;
        }
        let put_small = SMALL_COUNT as f64 / t.elapsed().as_secs_f64();
        let t = Instant::now();
        for i in 0..SMALL_COUNT {
            client
                .get_object_bytes(&format!("bench/byos3-s/{i}"), None, SMALL_SIZE)
                .await?;
        }
        let get_small = SMALL_COUNT as f64 / t.elapsed().as_secs_f64();
        anyhow::Ok([put_1, get_1, put_8, get_8, put_small, get_small])
    })?;

    let python = cache_dir().join("venv/bin/python");
    let peer: Option<serde_json::Value> = if python.exists() {
        let out = Command::new(&python)
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/bench_boto3.py"))
            .env("BENCH_ENDPOINT", garage.endpoint_url())
            .env("BENCH_BUCKET", &garage.bucket)
            .env("BENCH_REGION", &garage.region)
            .env("AWS_ACCESS_KEY_ID", &garage.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &garage.secret_key)
            .env("BENCH_SIZE", cfg.size.to_string())
            .env("BENCH_PAR_SIZE", cfg.par_size.to_string())
            .env("BENCH_SMALL_COUNT", SMALL_COUNT.to_string())
            .env("BENCH_SMALL_SIZE", SMALL_SIZE.to_string())
            .output()
            .context("running the boto3 side")?;
        if !out.status.success() {
            anyhow::bail!("boto3 side failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Some(serde_json::from_slice(&out.stdout)?)
    } else {
        eprintln!("boto3 not installed (scripts/setup --bench): peer column left empty");
        None
    };

    let ceiling = client
        .presign_get("bench/byos3-1", Duration::from_secs(600))
        .ok()
        .and_then(|url| {
            let out = Command::new("curl")
                .args(["-s", "-o", "/dev/null", "-w", "%{speed_download}", &url])
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).trim().parse::<f64>().ok())
                .flatten()
        });

    println!("S3 client throughput against local Garage (MB/s, 1 MB = 10^6 bytes)");
    println!(
        "single-stream object {} MiB, 8-way objects {} MiB each",
        cfg.size >> 20,
        cfg.par_size >> 20
    );
    println!(
        "{:<22} {:>10} {:>10} {:>14}",
        "transfer", "byos3", "boto3", "byos3/boto3"
    );
    for (i, (name, key)) in [
        ("PUT 1 stream", "put_1"),
        ("GET 1 stream", "get_1"),
        ("PUT 8 streams", "put_8"),
        ("GET 8 streams", "get_8"),
    ]
    .iter()
    .enumerate()
    {
        let p = peer.as_ref().and_then(|v| v[*key].as_f64());
        let ratio = p.map_or("-".to_string(), |p| format!("{:.2}", ours[i] / p));
        let ps = p.map_or("-".to_string(), |p| format!("{p:.0}"));
        println!("{:<22} {:>10.0} {:>10} {:>14}", name, ours[i], ps, ratio);
    }
    println!(
        "\n{SMALL_COUNT} objects of {} KiB, one after the other (objects/s)",
        SMALL_SIZE / 1024
    );
    for (i, (name, key)) in [("PUT small", "put_small"), ("GET small", "get_small")]
        .iter()
        .enumerate()
    {
        let ours = ours[4 + i];
        let p = peer.as_ref().and_then(|v| v[*key].as_f64());
        let ratio = p.map_or("-".to_string(), |p| format!("{:.2}", ours / p));
        let ps = p.map_or("-".to_string(), |p| format!("{p:.0}"));
        println!("{:<22} {:>10.0} {:>10} {:>14}", name, ours, ps, ratio);
    }
    match ceiling {
        Some(c) => println!(
            "server GET ceiling (curl, presigned URL, 1 stream): {:.0} MB/s; byos3 single GET = {:.2} of it",
            c / MB,
            ours[1] / (c / MB)
        ),
        None => println!("server GET ceiling: curl not available"),
    }
    Ok(())
}
