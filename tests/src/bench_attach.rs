//! `scripts/bench attach`: attach latency (request to usable mount) and
//! detach latency over 20 cycles, twice side by side: through the
//! library's `MountManager` (the baseline: mounting alone) and through the
//! HTTP API (`POST`/`DELETE /v1/sandboxes/{id}/disks`, what users see:
//! plus registry, credential unsealing, plugin resolve and policy checks),
//! against the local Garage server. The product page promises about a
//! second; the goal is a p50 under 100 ms.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use byos3::fs::MountOptions;
use byos3::mount::{AttachRequest, DirectoryResolver, MountManager, MountPath, SubPath};
use byos3::s3::Addressing;

use crate::Garage;

const CYCLES: usize = 20;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Runs the benchmark and prints its table.
pub fn run() -> Result<()> {
    let garage = Garage::start()?;
    let (lib_attach, lib_detach) = through_library(&garage)?;
    let (api_attach, api_detach) = through_api(&garage)?;
    println!("attach/detach latency over {CYCLES} cycles (attach = request until a file is written through the mount)");
    println!(
        "{:<16} {:>10} {:>10} {:>10} {:>14}",
        "", "p50 ms", "p90 ms", "max ms", "p50 vs library"
    );
    let base = [ms(percentile(&lib_attach, 0.5)), ms(percentile(&lib_detach, 0.5))];
    for (name, v, b) in [
        ("attach library", &lib_attach, base[0]),
        ("attach HTTP API", &api_attach, base[0]),
        ("detach library", &lib_detach, base[1]),
        ("detach HTTP API", &api_detach, base[1]),
    ] {
        println!(
            "{:<16} {:>10.1} {:>10.1} {:>10.1} {:>13.2}x",
            name,
            ms(percentile(v, 0.5)),
            ms(percentile(v, 0.9)),
            ms(v[v.len() - 1]),
            ms(percentile(v, 0.5)) / b
        );
    }
    println!(
        "goal: attach p50 < 100 ms through the API (product page: ~1 s); p50/goal = {:.2}",
        ms(percentile(&api_attach, 0.5)) / 100.0
    );
    Ok(())
}

/// `(attach, detach)` latencies, sorted, through `byos3 serve`'s API
/// in-process: a real HTTP round trip per call.
fn through_api(garage: &Garage) -> Result<(Vec<Duration>, Vec<Duration>)> {
    use byos3::api::Server;
    use byos3::client::{AttachSpec, Client, NewDisk, SandboxSpec};
    const KEY: &str = "bench-attach-key-0123456789";
    let state = tempfile::tempdir()?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        let server = Server::start(crate::local_server_options(state.path(), "bench", KEY)?).await?;
        let api = Client::new(&format!("http://{}", server.local_addr()), KEY)?;
        let disk = api
            .create_disk(
                &NewDisk {
                    region: Some(garage.region.clone()),
                    use_path_style: Some(true),
                    ..NewDisk::new("bench", &garage.bucket, &garage.endpoint_url())
                },
                &garage.access_key,
                &garage.secret_key,
            )
            .await?;
        let sb = api.create_sandbox(&SandboxSpec::new().id("bench-api")).await?;
        let root = std::path::PathBuf::from(sb.root.clone().unwrap_or_default());
        let spec = AttachSpec::new(&disk.id, "/mnt/data").sub_path("bench-api/");
        let (mut attach, mut detach) = (Vec::new(), Vec::new());
        for i in 0..CYCLES {
            let t = Instant::now();
            api.attach(&sb.id, &spec).await?;
            std::fs::write(root.join(format!("mnt/data/f{i}")), b"x")?;
            attach.push(t.elapsed());
            let t = Instant::now();
            api.detach(&sb.id, &disk.id, "/mnt/data").await?;
            detach.push(t.elapsed());
        }
        api.delete_sandbox(&sb.id).await?;
        server.shutdown().await;
        attach.sort();
        detach.sort();
        Ok((attach, detach))
    })
}

/// `(attach, detach)` latencies, sorted, through the `MountManager` alone.
fn through_library(garage: &Garage) -> Result<(Vec<Duration>, Vec<Duration>)> {
    let state = tempfile::tempdir()?;
    let resolver = Arc::new(DirectoryResolver::new(state.path().join("sandboxes")));
    let opts = MountOptions {
        staging_dir: state.path().join("staging"),
        ..MountOptions::default()
    };
    let manager = MountManager::new(resolver, opts);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let root = manager.resolver().create("bench")?.root;
    let request = AttachRequest {
        sandbox_id: "bench".into(),
        disk_id: "disk_bench".into(),
        mount_path: MountPath::parse("/mnt/data")?,
        sub_path: SubPath::parse("bench/")?,
        read_only: false,
    };
    let (mut attach, mut detach) = (Vec::new(), Vec::new());
    for i in 0..CYCLES {
        let t = Instant::now();
        rt.block_on(manager.attach(request.clone(), garage.client(Addressing::Path)))?;
        // Usable means a file can be written and listed through it.
        std::fs::write(root.join(format!("mnt/data/f{i}")), b"x")?;
        attach.push(t.elapsed());
        let t = Instant::now();
        rt.block_on(manager.detach("bench", "disk_bench", &request.mount_path))?;
        detach.push(t.elapsed());
    }
    attach.sort();
    detach.sort();
    Ok((attach, detach))
}
