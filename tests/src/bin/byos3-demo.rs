//! `make demo`: what byos3 does, end to end, on an embedded default.
//!
//! Starts the local S3 server (Garage on 127.0.0.1) and the byos3 API
//! server (in this process, on a loopback port, with a fresh state
//! directory), then over HTTP: registers the bucket as a disk (probed),
//! creates a sandbox, attaches the disk at /mnt/data with a sub path (a
//! real FUSE mount), writes files through the mount, shows them in the
//! bucket under the prefix through the S3 API, detaches, shows the bucket
//! still holds them, and stops everything it started. Each step prints its
//! timing.

use std::io::{IsTerminal, Read, Write};
use std::time::Instant;

use anyhow::{Context, Result};
use byos3::api::Server;
use byos3::client::{AttachSpec, Client, NewDisk, SandboxSpec};
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
    objects
        .iter()
        .map(|(k, s)| format!("{k} ({s} B)"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn main() -> Result<()> {
    println!("byos3 demo: register your bucket, attach it to a sandbox, write, detach\n");
    let t = step("start the local S3 server (Garage on 127.0.0.1)");
    let garage = Garage::start()?;
    done(t, &format!("{} bucket {:?}", garage.endpoint_url(), garage.bucket));

    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let client = garage.client(Addressing::Path);
    let t = step("HeadBucket through the byos3 S3 client");
    rt.block_on(client.head_bucket())?;
    done(t, "the bucket exists and the keys work");

    let state = tempfile::Builder::new().prefix("byos3-demo-").tempdir()?;
    let t = step("start the byos3 API server (127.0.0.1, fresh state dir)");
    let key = byos3_tests::hex_string(16);
    let opts = byos3_tests::local_server_options(&state.path().join("state"), "demo", &key)?;
    let server = rt.block_on(Server::start(opts))?;
    let url = format!("http://{}", server.local_addr());
    done(t, &url);
    let api = Client::new(&url, &key)?;

    let t = step("POST /v1/disks: register the bucket (probed first)");
    let mut disk = NewDisk::new("eu-data", &garage.bucket, &garage.endpoint_url());
    disk.use_path_style = Some(true);
    let disk = rt.block_on(api.create_disk(&disk, &garage.access_key, &garage.secret_key))?;
    done(
        t,
        &format!("{} via plugin {}", disk.id, disk.provider.as_deref().unwrap_or("?")),
    );

    let t = step("POST /v1/sandboxes");
    let sandbox = rt.block_on(api.create_sandbox(&SandboxSpec::new().name("sb-demo")))?;
    let root = std::path::PathBuf::from(sandbox.root.clone().unwrap_or_default());
    done(t, &format!("{} root {}", sandbox.id, root.display()));

    let t = step("POST /v1/sandboxes/{id}/disks: /mnt/data, sub_path team-a/");
    rt.block_on(api.attach(
        &sandbox.id,
        &AttachSpec::new("eu-data", "/mnt/data").sub_path("team-a/"),
    ))?;
    done(t, "mounted (attach latency, API call to usable mount)");

    let result = write_through_the_mount(&rt, &client, &root);
    let t = step("DELETE .../disks/eu-data?mount_path=/mnt/data");
    let detached = rt.block_on(api.detach(&sandbox.id, "eu-data", "/mnt/data"));
    done(
        t,
        if detached.is_ok() {
            "flushed and unmounted"
        } else {
            "FAILED"
        },
    );
    result?;
    detached?;

    let t = step("list the bucket again after detach");
    let after = list(&rt, &client, "team-a/")?;
    done(t, &show(&after));
    anyhow::ensure!(after.len() == 2, "the bucket should still hold both files");

    let t = step("delete the sandbox, stop the API server");
    rt.block_on(api.delete_sandbox(&sandbox.id))?;
    rt.block_on(server.shutdown());
    done(t, "no mount left");

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
    done(
        t,
        &format!(
            "{:.0} MiB/s through FUSE, multipart upload",
            BIG_MIB as f64 / t.elapsed().as_secs_f64()
        ),
    );

    let t = step("list the bucket under team-a/ (S3 API)");
    let objects = list(rt, client, "team-a/")?;
    done(t, &show(&objects));
    anyhow::ensure!(
        objects
            .iter()
            .any(|(k, s)| k == "team-a/big.bin" && *s == BIG_MIB * MIB),
        "big.bin is in the bucket"
    );

    let t = step("read big.bin back through the mount and compare");
    let mut f = std::fs::File::open(dir.join("big.bin"))?;
    let mut buf = vec![0u8; MIB as usize];
    for i in 0..BIG_MIB {
        f.read_exact(&mut buf)?;
        anyhow::ensure!(buf == block, "MiB {i} differs");
    }
    done(
        t,
        &format!("{:.0} MiB/s, byte-exact", BIG_MIB as f64 / t.elapsed().as_secs_f64()),
    );
    Ok(())
}
