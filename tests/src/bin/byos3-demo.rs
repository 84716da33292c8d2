//! `make demo`: what byos3 does, end to end, on an embedded default.
//!
//! Starts the local S3 server (Garage on 127.0.0.1), checks the bucket
//! through the byos3 S3 client, attaches it to a sandbox at /mnt/data with
//! a sub path (a real FUSE mount), writes files through the mount, shows
//! them in the bucket under the prefix, detaches, shows the bucket still
//! holds them, and stops everything it started. Each step prints its timing.

use std::io::{IsTerminal, Read, Write};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use byos3::fs::MountOptions;
use byos3::mount::{AttachRequest, DirectoryResolver, MountManager, MountPath, SubPath};
use byos3::s3::{Addressing, S3Client};
use byos3_tests::{pattern, Garage};

const MIB: u64 = 1024 * 1024;
const BIG_MIB: u64 = 256;

fn step(name: &str) -> Instant {
    print!("  {name:<56}");
    let _ = std::io::stdout().flush();
    Instant::now()
}

fn done(t: Instant, detail: &str) {
    println!("{:>9.1} ms  {detail}", t.elapsed().as_secs_f64() * 1e3);
}

fn list(rt: &tokio::runtime::Runtime, client: &S3Client, prefix: &str) -> Result<Vec<(String, u64)>> {
    let page = rt.block_on(client.list_objects(prefix, None, None, None, None))?;
    Ok(page.objects.into_iter().map(|o| (o.key, o.size)).collect())
}

fn show(objects: &[(String, u64)]) -> String {
    objects.iter().map(|(k, s)| format!("{k} ({s} B)")).collect::<Vec<_>>().join(", ")
}

fn main() -> Result<()> {
    println!("byos3 demo: your bucket, mounted into a sandbox\n");
    let t = step("start the local S3 server (Garage on 127.0.0.1)");
    let garage = Garage::start()?;
    done(t, &format!("{} bucket {:?}", garage.endpoint_url(), garage.bucket));

    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let client = garage.client(Addressing::Path);
    let t = step("HeadBucket through the byos3 S3 client");
    rt.block_on(client.head_bucket())?;
    done(t, "the bucket exists and the keys work");

    let state = tempfile::Builder::new().prefix("byos3-demo-").tempdir()?;
    let resolver = Arc::new(DirectoryResolver::new(state.path().join("sandboxes")));
    let opts = MountOptions { staging_dir: state.path().join("staging"), ..MountOptions::default() };
    let manager = MountManager::new(resolver, opts);
    let t = step("create sandbox sb-demo (a directory root)");
    let root = manager.resolver().create("sb-demo")?.root;
    done(t, &root.display().to_string());

    let request = AttachRequest {
        sandbox_id: "sb-demo".into(),
        disk_id: "eu-data".into(),
        mount_path: MountPath::parse("/mnt/data")?,
        sub_path: SubPath::parse("team-a/")?,
        read_only: false,
    };
    let t = step("attach the bucket at /mnt/data, sub_path team-a/");
    rt.block_on(manager.attach(request.clone(), client.clone()))?;
    done(t, "FUSE mount ready (attach latency)");

    let result = write_through_the_mount(&rt, &client, &root);
    let t = step("detach (flush, unmount; the bucket is not touched)");
    let detached = rt.block_on(manager.detach("sb-demo", "eu-data", &request.mount_path));
    done(t, if detached.is_ok() { "unmounted" } else { "FAILED" });
    result?;
    detached?;

    let t = step("list the bucket again after detach");
    let after = list(&rt, &client, "team-a/")?;
    done(t, &show(&after));
    anyhow::ensure!(after.len() == 2, "the bucket should still hold both files");

    let t = step("stop the local S3 server");
    drop(garage);
    done(t, "nothing left running");
    println!("\nFiles written at /mnt/data in the sandbox landed in the bucket under team-a/,\nand stayed there after the mount was dropped.");
    Ok(())
}

fn write_through_the_mount(rt: &tokio::runtime::Runtime, client: &S3Client, root: &std::path::Path) -> Result<()> {
    let dir = root.join("mnt/data");
    let t = step("write /mnt/data/hello.txt");
    std::fs::write(dir.join("hello.txt"), b"hello from a sandbox\n")?;
    done(t, "closed: uploaded");

    let block = pattern(MIB as usize, 9);
    let t = step(&format!("write /mnt/data/big.bin ({BIG_MIB} MiB)"));
    let mut f = std::fs::File::create(dir.join("big.bin"))?;
    for i in 1..=BIG_MIB {
        f.write_all(&block)?;
        if i % 16 == 0 && std::io::stdout().is_terminal() {
            print!("\r  {:<56}", format!("write /mnt/data/big.bin: {i}/{BIG_MIB} MiB"));
            let _ = std::io::stdout().flush();
        }
    }
    f.sync_all().context("fsync of big.bin")?;
    drop(f);
    if std::io::stdout().is_terminal() {
        print!("\r  {:<56}", format!("write /mnt/data/big.bin ({BIG_MIB} MiB)"));
    }
    done(t, &format!("{:.0} MiB/s through FUSE, multipart upload", BIG_MIB as f64 / t.elapsed().as_secs_f64()));

    let t = step("list the bucket under team-a/ (S3 API)");
    let objects = list(rt, client, "team-a/")?;
    done(t, &show(&objects));
    anyhow::ensure!(objects.iter().any(|(k, s)| k == "team-a/big.bin" && *s == BIG_MIB * MIB), "big.bin is in the bucket");

    let t = step("read big.bin back through the mount and compare");
    let mut f = std::fs::File::open(dir.join("big.bin"))?;
    let mut buf = vec![0u8; MIB as usize];
    for i in 0..BIG_MIB {
        f.read_exact(&mut buf)?;
        anyhow::ensure!(buf == block, "MiB {i} differs");
    }
    done(t, &format!("{:.0} MiB/s, byte-exact", BIG_MIB as f64 / t.elapsed().as_secs_f64()));
    Ok(())
}
