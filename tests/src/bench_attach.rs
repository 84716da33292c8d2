//! `scripts/bench attach`: attach latency (request to usable mount) and
//! detach latency over 20 cycles through the library's `MountManager`,
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
    println!("attach/detach latency over {CYCLES} cycles (attach = mount + first file written)");
    println!("{:<10} {:>10} {:>10} {:>10}", "", "p50 ms", "p90 ms", "max ms");
    for (name, v) in [("attach", &attach), ("detach", &detach)] {
        println!(
            "{:<10} {:>10.1} {:>10.1} {:>10.1}",
            name,
            ms(percentile(v, 0.5)),
            ms(percentile(v, 0.9)),
            ms(v[v.len() - 1])
        );
    }
    println!(
        "goal: attach p50 < 100 ms (product page: ~1 s); p50/goal = {:.2}",
        ms(percentile(&attach, 0.5)) / 100.0
    );
    Ok(())
}
