//! `make demo`: what byos3 does, end to end, on an embedded default.
//!
//! Starts the local S3 server (Garage on 127.0.0.1), then writes, lists and
//! reads objects through the byos3 S3 client, printing each step and its
//! timing, and stops everything it started.

use std::io::Write;
use std::time::Instant;

use anyhow::Result;
use byos3::s3::{Addressing, Payload, PutOptions};
use byos3_tests::{pattern, Garage};
use bytes::Bytes;
use futures_util::StreamExt;

const MIB: u64 = 1024 * 1024;

fn step(name: &str) -> Instant {
    print!("  {name:<58}");
    let _ = std::io::stdout().flush();
    Instant::now()
}

fn done(t: Instant, detail: &str) {
    println!("{:>8.1} ms  {detail}", t.elapsed().as_secs_f64() * 1e3);
}

fn main() -> Result<()> {
    println!("byos3 demo: your bucket, reached through the byos3 S3 client\n");
    let t = step("start the local S3 server (Garage on 127.0.0.1)");
    let garage = Garage::start()?;
    done(t, &format!("{} bucket {:?}", garage.endpoint_url(), garage.bucket));

    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        for addressing in [Addressing::Path, Addressing::VirtualHosted] {
            let client = garage.client(addressing);
            println!("\n{addressing:?} addressing, endpoint {}", client.endpoint().url());
            let prefix = format!("demo/{addressing:?}").to_lowercase();

            let t = step("HeadBucket: the bucket exists and the keys work");
            client.head_bucket().await?;
            done(t, "ok");

            let t = step("PutObject a small file");
            let key = format!("{prefix}/hello.txt");
            client.put_object(&key, Payload::Bytes(Bytes::from_static(b"hello from byos3\n")), &PutOptions::default()).await?;
            done(t, &key);

            let size = 96 * MIB;
            let part = Bytes::from(pattern(8 * MIB as usize, 1));
            let key = format!("{prefix}/big.bin");
            let t = step(&format!("multipart upload of {} MiB (8 MiB parts)", size / MIB));
            let id = client.create_multipart_upload(&key, &PutOptions::default()).await?;
            let mut parts = Vec::new();
            for n in 1..=(size / (8 * MIB)) as u32 {
                parts.push(client.upload_part(&key, &id, n, Payload::Bytes(part.clone())).await?);
                print!("\r  {:<58}", format!("multipart upload of {} MiB: part {n}/{}", size / MIB, size / (8 * MIB)));
                let _ = std::io::stdout().flush();
            }
            client.complete_multipart_upload(&key, &id, &parts).await?;
            print!("\r  {:<58}", format!("multipart upload of {} MiB (8 MiB parts)", size / MIB));
            done(t, &format!("{:.0} MiB/s", size as f64 / MIB as f64 / t.elapsed().as_secs_f64()));

            let t = step("ListObjectsV2 under the prefix");
            let page = client.list_objects(&format!("{prefix}/"), Some("/"), None, None, None).await?;
            let listing: Vec<String> = page.objects.iter().map(|o| format!("{} ({} B)", o.key, o.size)).collect();
            done(t, &listing.join(", "));

            let t = step("streaming GET of the big object, checked byte by byte");
            let mut body = client.get_object(&key, None, None).await?.body;
            let mut off = 0usize;
            while let Some(chunk) = body.next().await {
                let chunk = chunk?;
                let mut rest = &chunk[..];
                while !rest.is_empty() {
                    let pos = off % part.len();
                    let n = rest.len().min(part.len() - pos);
                    anyhow::ensure!(rest[..n] == part[pos..pos + n], "bytes near offset {off} differ");
                    rest = &rest[n..];
                    off += n;
                }
            }
            done(t, &format!("{} MiB intact, {:.0} MiB/s", off as u64 / MIB, off as f64 / MIB as f64 / t.elapsed().as_secs_f64()));

            let t = step("ranged GET of bytes 1000..1016");
            let r = client.get_object_bytes(&key, Some(1000..1016), 64).await?;
            anyhow::ensure!(r[..] == part[1000..1016], "range differs");
            done(t, "exact");

            let stats = client.stats();
            println!("  requests sent: {}, retries: {}", stats.by_operation.iter().map(|(_, n, _)| n).sum::<u64>(), stats.retries);
        }
        anyhow::Ok(())
    })?;
    let t = step("stop the local S3 server");
    drop(garage);
    done(t, "nothing left running");
    Ok(())
}
