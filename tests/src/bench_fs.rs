//! `bench-fs`: the filesystem benchmark, side by side on one Garage
//! server and the same objects: byos3's mount, the raw S3 client (the
//! ceiling), and the peer mounts installed here (s3fs, rclone).
//!
//! Usage: `bench-fs --byos3 PATH/TO/byos3 [--size-mib 1024] [--files 1000] [--only byos3,s3fs,...]
//! [--phases read1,read4,rand4k,rand256k,write,small,ls,smallread] [--rounds 1]` (`--phases` runs a
//! subset, for profiling one; `--rounds N` runs the whole set N times, the
//! mounts in alternating order, and reports the median of each figure with
//! the per-round ratios, since runs on a shared two-core machine swing by ±20 %).

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use byos3::s3::{Addressing, Payload, S3Client};
use byos3_tests::{pattern, Garage};
use rand::{Rng, SeedableRng};

const MIB: u64 = 1024 * 1024;
/// Random reads: (read size, count, which column).
const RANDOM_READS: [(u64, usize, u8); 2] = [(4096, 2000, 0), (256 * 1024, 400, 1)];

struct Args {
    byos3: PathBuf,
    size_mib: u64,
    files: usize,
    only: Option<Vec<String>>,
    phases: Option<Vec<String>>,
    rounds: usize,
}

impl Args {
    fn runs(&self, phase: &str) -> bool {
        self.phases.as_ref().is_none_or(|p| p.iter().any(|x| x == phase))
    }
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        byos3: PathBuf::from("target/release/byos3"),
        size_mib: 1024,
        files: 1000,
        only: None,
        phases: None,
        rounds: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut val = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--byos3" => a.byos3 = PathBuf::from(val()?),
            "--size-mib" => a.size_mib = val()?.parse()?,
            "--files" => a.files = val()?.parse()?,
            "--only" => a.only = Some(val()?.split(',').map(str::to_string).collect()),
            "--phases" => a.phases = Some(val()?.split(',').map(str::to_string).collect()),
            "--rounds" => a.rounds = val()?.parse::<usize>()?.clamp(1, 20),
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(a)
}

#[derive(Default, Clone)]
struct Row {
    name: String,
    seq_read_1: Option<f64>,
    seq_read_4: Option<f64>,
    seq_write: Option<f64>,
    rand_4k: Option<f64>,
    rand_256k: Option<f64>,
    small_files: Option<f64>,
    small_read: Option<f64>,
    small_reread: Option<f64>,
    ls_l: Option<f64>,
    peak_rss_mib: Option<f64>,
    /// Peak RSS (the mount's VmHWM, reset between phases) and CPU seconds
    /// of the mount process in each phase: CPU time is far less
    /// sensitive than throughput to a busy machine.
    phases: Vec<(&'static str, f64, f64)>,
    /// MiB the server sent during each read phase: what reading cost
    /// the bucket, beside what the reader asked for.
    served: Vec<(&'static str, f64)>,
    served_mark: u64,
    note: String,
}

impl Row {
    /// The figures, in table order (read through the one list below).
    fn figures(&self) -> [Option<f64>; 10] {
        self.clone().figures_mut().map(|f| *f)
    }

    /// The figures to set, in table order.
    fn figures_mut(&mut self) -> [&mut Option<f64>; 10] {
        [
            &mut self.seq_read_1,
            &mut self.seq_read_4,
            &mut self.seq_write,
            &mut self.rand_4k,
            &mut self.rand_256k,
            &mut self.small_files,
            &mut self.small_read,
            &mut self.small_reread,
            &mut self.ls_l,
            &mut self.peak_rss_mib,
        ]
    }
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => None,
        n if n % 2 == 1 => Some(v[n / 2]),
        n => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// One row whose figures are the medians of the rounds' (the per-phase
/// details and notes are the last round's).
fn median_row(rounds: Vec<Row>) -> Row {
    let mut out = rounds.last().cloned().unwrap_or_default();
    let figures: Vec<_> = rounds.iter().map(Row::figures).collect();
    let cols: Vec<Vec<f64>> = (0..10).map(|i| figures.iter().filter_map(|f| f[i]).collect()).collect();
    for (slot, col) in out.figures_mut().into_iter().zip(cols) {
        *slot = median(col);
    }
    out
}

fn mbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / MIB as f64 / d.as_secs_f64()
}

fn drop_caches() {
    let _ = std::fs::write("/proc/sys/vm/drop_caches", "3");
}

fn is_mounted(p: &Path) -> bool {
    let want = p.to_string_lossy().to_string();
    std::fs::read_to_string("/proc/self/mountinfo").is_ok_and(|s| s.lines().any(|l| l.split(' ').nth(4) == Some(&want)))
}

fn peak_rss(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = s
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// Starts a new peak-RSS measurement of `pid` (writing 5 to clear_refs
/// resets VmHWM to the current RSS).
fn reset_peak_rss(pid: u32) {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

/// User plus system CPU seconds `pid` has used.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces): utime and
    // stime are the 12th and 13th.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some(ticks / hz)
}

/// Records peak RSS and CPU time of the phase just finished and starts the next.
fn end_phase(row: &mut Row, pid: u32, g: &Garage, phase: &'static str) {
    if let Some(p) = peak_rss(pid) {
        let cpu_before: f64 = row.phases.iter().map(|x| x.2).sum();
        let cpu = cpu_seconds(pid).map_or(0.0, |c| c - cpu_before);
        row.phases.push((phase, p, cpu));
        row.peak_rss_mib = Some(row.peak_rss_mib.map_or(p, |q: f64| q.max(p)));
    }
    reset_peak_rss(pid);
    let sent = g.pid().and_then(bytes_written).unwrap_or(0);
    if phase.starts_with("read") || phase.starts_with("rand") {
        row.served
            .push((phase, sent.saturating_sub(row.served_mark) as f64 / MIB as f64));
    }
    row.served_mark = sent;
}

/// Bytes a process has passed to write(2) and friends, sockets included
/// (`wchar` of /proc/PID/io): in a read phase, what the server sent.
fn bytes_written(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    s.lines().find_map(|l| l.strip_prefix("wchar: ")?.trim().parse().ok())
}

/// A mount process; unmounted and reaped on drop.
struct MountProc {
    child: Child,
    dir: PathBuf,
}

impl Drop for MountProc {
    fn drop(&mut self) {
        // SAFETY: kill(2) of our own child.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if is_mounted(&self.dir) {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_mounted(m: &mut MountProc) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !is_mounted(&m.dir) {
        if let Some(st) = m.child.try_wait()? {
            bail!("mount process exited: {st}");
        }
        if Instant::now() > deadline {
            bail!("not mounted after 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn start_mount(kind: &str, args: &Args, g: &Garage, dir: &Path, work: &Path) -> Result<MountProc> {
    let url = g.endpoint_url();
    let mut cmd = match kind {
        "byos3" => {
            let mut c = Command::new(&args.byos3);
            c.arg("mount").arg(format!("{}/bench", g.bucket)).arg(dir).args([
                "--endpoint",
                &url,
                "--path-style",
                "--region",
                &g.region,
            ]);
            c.env("AWS_ACCESS_KEY_ID", &g.access_key)
                .env("AWS_SECRET_ACCESS_KEY", &g.secret_key)
                .env("BYOS3_LOG", "warn");
            c
        }
        "s3fs" => {
            let pw = work.join("s3fs.passwd");
            std::fs::write(&pw, format!("{}:{}\n", g.access_key, g.secret_key))?;
            Command::new("chmod").arg("600").arg(&pw).status()?;
            let mut c = Command::new("s3fs");
            c.arg(format!("{}:/bench", g.bucket)).arg(dir).arg("-f").args([
                "-o",
                &format!("url={url}"),
                "-o",
                "use_path_request_style",
                "-o",
                &format!("passwd_file={}", pw.display()),
                "-o",
                &format!("endpoint={}", g.region),
            ]);
            c
        }
        k if k.starts_with("rclone") => {
            let mode = if k.ends_with("writes") { "writes" } else { "off" };
            let mut c = Command::new("rclone");
            c.env_remove("AWS_CA_BUNDLE");
            c.arg("mount").arg(format!(":s3:{}/bench", g.bucket)).arg(dir).args([
                "--s3-provider",
                "Other",
                "--s3-endpoint",
                &url,
                "--s3-access-key-id",
                &g.access_key,
                "--s3-secret-access-key",
                &g.secret_key,
                "--s3-region",
                &g.region,
                "--s3-force-path-style",
                "--vfs-cache-mode",
                mode,
                "--vfs-write-back",
                "0s",
                "--cache-dir",
                &work.join("rclone-cache").to_string_lossy(),
            ]);
            c
        }
        other => bail!("unknown mount kind {other}"),
    };
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::inherit());
    let child = cmd.spawn().with_context(|| format!("starting {kind}"))?;
    let mut m = MountProc {
        child,
        dir: dir.to_path_buf(),
    };
    wait_mounted(&mut m)?;
    Ok(m)
}

fn read_seq(path: &Path, range: std::ops::Range<u64>) -> Result<u64> {
    let mut f = std::fs::File::open(path)?;
    f.seek(SeekFrom::Start(range.start))?;
    let mut buf = vec![0u8; MIB as usize];
    let mut left = range.end - range.start;
    while left > 0 {
        let n = f.read(&mut buf[..left.min(MIB) as usize])?;
        if n == 0 {
            bail!("short read");
        }
        left -= n as u64;
    }
    Ok(range.end - range.start)
}

fn run_mount(kind: &str, args: &Args, g: &Garage, client: &S3Client, rt: &tokio::runtime::Runtime) -> Result<Row> {
    let work = tempfile::tempdir()?;
    let dir = work.path().join("mnt");
    std::fs::create_dir(&dir)?;
    let size = args.size_mib * MIB;
    let mut row = Row {
        name: kind.to_string(),
        ..Row::default()
    };
    drop_caches();
    let m = start_mount(kind, args, g, &dir, work.path())?;
    let obj = dir.join("seq.bin");
    let pid = m.child.id();
    end_phase(&mut row, pid, g, "start");

    if args.runs("read1") {
        let t = Instant::now();
        read_seq(&obj, 0..size)?;
        row.seq_read_1 = Some(mbps(size, t.elapsed()));
        end_phase(&mut row, pid, g, "read1");
        drop_caches();
    }

    if args.runs("read4") {
        let t = Instant::now();
        std::thread::scope(|s| -> Result<()> {
            let hs: Vec<_> = (0..4)
                .map(|i| {
                    s.spawn({
                        let obj = obj.clone();
                        move || read_seq(&obj, i * size / 4..(i + 1) * size / 4)
                    })
                })
                .collect();
            for h in hs {
                h.join().expect("reader thread")?;
            }
            Ok(())
        })?;
        row.seq_read_4 = Some(mbps(size, t.elapsed()));
        end_phase(&mut row, pid, g, "read4");
        drop_caches();
    }

    for (bs, n, slot) in RANDOM_READS {
        if !args.runs(if slot == 0 { "rand4k" } else { "rand256k" }) {
            continue;
        }
        let mut f = std::fs::File::open(&obj)?;
        let mut rng = rand::rngs::StdRng::seed_from_u64(bs);
        let mut buf = vec![0u8; bs as usize];
        let t = Instant::now();
        for _ in 0..n {
            let off = rng.gen_range(0..size - bs);
            f.seek(SeekFrom::Start(off))?;
            f.read_exact(&mut buf)?;
        }
        let ops = n as f64 / t.elapsed().as_secs_f64();
        if slot == 0 {
            row.rand_4k = Some(ops);
            end_phase(&mut row, pid, g, "rand4k");
        } else {
            row.rand_256k = Some(ops);
            end_phase(&mut row, pid, g, "rand256k");
        }
        drop_caches();
    }

    if args.runs("write") {
        let data = pattern(MIB as usize, 9);
        let t = Instant::now();
        {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .open(dir.join("written.bin"))?;
            for _ in 0..args.size_mib {
                f.write_all(&data)?;
            }
            f.sync_all()?;
        }
        let elapsed = t.elapsed();
        let stored = rt
            .block_on(client.head_object("bench/written.bin"))
            .map(|m| m.size)
            .unwrap_or(0);
        row.seq_write = Some(mbps(size, elapsed));
        end_phase(&mut row, pid, g, "write");
        if stored != size {
            row.note
                .push_str(&format!("write: object has {stored} bytes after fsync+close; "));
        }
    }

    if args.runs("small") {
        let small = dir.join(format!("small-{kind}"));
        std::fs::create_dir(&small)?;
        let body = pattern(4096, 3);
        let t = Instant::now();
        for i in 0..args.files {
            let mut f = std::fs::File::create(small.join(format!("f{i:05}")))?;
            f.write_all(&body)?;
        }
        row.small_files = Some(args.files as f64 / t.elapsed().as_secs_f64());
        end_phase(&mut row, pid, g, "small");
    }

    // ls -l of the prepared directory (fresh mount state for it).
    if args.runs("ls") {
        let t = Instant::now();
        let out = Command::new("ls").arg("-l").arg(dir.join("listing")).output()?;
        if !out.status.success() {
            row.note.push_str("ls -l failed; ");
        }
        let lines = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with('-'))
            .count();
        if lines != args.files {
            row.note.push_str(&format!("ls -l saw {lines} files; "));
        }
        row.ls_l = Some(t.elapsed().as_secs_f64());
        end_phase(&mut row, pid, g, "ls");
    }

    // Reading the listed files back: one small GET each.
    if args.runs("smallread") {
        // Files per second reading every listed file once.
        let read_all = || -> Result<f64> {
            let t = Instant::now();
            for i in 0..args.files {
                let n = std::fs::read(dir.join(format!("listing/f{i:05}")))?.len();
                if n != 4096 {
                    bail!("listing/f{i:05} read {n} bytes, not 4096");
                }
            }
            Ok(args.files as f64 / t.elapsed().as_secs_f64())
        };
        drop_caches();
        row.small_read = Some(read_all()?);
        end_phase(&mut row, pid, g, "smallread");
        // The same files again, unchanged, page cache not dropped: what a
        // mount that can tell they did not change saves.
        row.small_reread = Some(read_all()?);
        end_phase(&mut row, pid, g, "smallreread");
    }
    drop(m);
    // Leave the bucket as it was for the next mount.
    rt.block_on(async {
        let _ = client.delete_object("bench/written.bin").await;
        let prefix = format!("bench/small-{kind}/");
        use futures_util::TryStreamExt;
        let pages: Vec<_> = client
            .list_pages(prefix.clone(), None, Some(1000))
            .try_collect()
            .await
            .unwrap_or_default();
        let keys: Vec<String> = pages.into_iter().flat_map(|p| p.objects).map(|o| o.key).collect();
        let _ = delete_keys(client, &keys).await;
        let _ = client.delete_object(&prefix).await;
    });
    Ok(row)
}

fn ceiling(args: &Args, client: &S3Client, rt: &tokio::runtime::Runtime) -> Result<Row> {
    let size = args.size_mib * MIB;
    let mut row = Row {
        name: "S3 client (ceiling)".into(),
        ..Row::default()
    };
    rt.block_on(async {
        use futures_util::TryStreamExt;
        // One stream.
        let t = Instant::now();
        let mut body = client.get_object("bench/seq.bin", None, None).await?.body;
        let mut n = 0u64;
        while let Some(c) = body.try_next().await? {
            n += c.len() as u64;
        }
        row.seq_read_1 = Some(mbps(n, t.elapsed()));
        // 16 ranged GETs of 8 MiB at once: the best the server gives.
        let t = Instant::now();
        let parts: Vec<_> = (0..size.div_ceil(8 * MIB)).collect();
        let mut tasks = tokio::task::JoinSet::new();
        for p in parts {
            while tasks.len() >= 16 {
                tasks.join_next().await.expect("task")??;
            }
            let c = client.clone();
            tasks.spawn(async move {
                let r = p * 8 * MIB..((p + 1) * 8 * MIB).min(size);
                c.get_object_bytes("bench/seq.bin", Some(r), 16 * MIB as usize)
                    .await
                    .map(drop)
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.expect("task")?;
        }
        row.seq_read_4 = Some(mbps(size, t.elapsed()));
        // Random reads: one ranged GET of exactly the read, one after the
        // other, at the offsets the mounts read.
        for (bs, n, slot) in RANDOM_READS {
            let mut rng = rand::rngs::StdRng::seed_from_u64(bs);
            let t = Instant::now();
            for _ in 0..n {
                let off = rng.gen_range(0..size - bs);
                client
                    .get_object_bytes("bench/seq.bin", Some(off..off + bs), bs as usize)
                    .await?;
            }
            let ops = Some(n as f64 / t.elapsed().as_secs_f64());
            if slot == 0 {
                row.rand_4k = ops;
            } else {
                row.rand_256k = ops;
            }
        }
        // Multipart upload, 8 parts of 8 MiB in flight.
        let part = bytes::Bytes::from(pattern(8 * MIB as usize, 5));
        let t = Instant::now();
        let id = client
            .create_multipart_upload("bench/ceiling-w", &Default::default())
            .await?;
        let mut tasks = tokio::task::JoinSet::new();
        let mut done = Vec::new();
        for n in 1..=(size / (8 * MIB)) as u32 {
            while tasks.len() >= 8 {
                done.push(tasks.join_next().await.expect("task")??);
            }
            let (c, id, part) = (client.clone(), id.clone(), part.clone());
            tasks.spawn(async move { c.upload_part("bench/ceiling-w", &id, n, Payload::Bytes(part)).await });
        }
        while let Some(r) = tasks.join_next().await {
            done.push(r.expect("task")?);
        }
        done.sort_by_key(|p| p.part_number);
        client.complete_multipart_upload("bench/ceiling-w", &id, &done).await?;
        row.seq_write = Some(mbps(size, t.elapsed()));
        client.delete_object("bench/ceiling-w").await?;
        // Small files: one PutObject of 4 KiB after the other, the least a
        // mount that reports upload errors on close can do per file.
        let body = bytes::Bytes::from(pattern(4096, 3));
        let t = Instant::now();
        for i in 0..args.files {
            let key = format!("bench/ceiling-small/f{i:05}");
            client
                .put_object(&key, Payload::Bytes(body.clone()), &Default::default())
                .await?;
        }
        row.small_files = Some(args.files as f64 / t.elapsed().as_secs_f64());
        let t = Instant::now();
        for i in 0..args.files {
            client
                .get_object_bytes(&format!("bench/listing/f{i:05}"), None, 4096)
                .await?;
        }
        row.small_read = Some(args.files as f64 / t.elapsed().as_secs_f64());
        let keys: Vec<String> = (0..args.files)
            .map(|i| format!("bench/ceiling-small/f{i:05}"))
            .collect();
        delete_keys(client, &keys).await?;
        Ok::<_, anyhow::Error>(())
    })?;
    row.note = "read 1 = one GET; read 4 = 16 ranged GETs at once; random = one ranged GET per read; small files = sequential PUTs, read back = sequential GETs".into();
    Ok(row)
}

/// Deletes `keys`, a DeleteObjects of at most 1,000 at a time.
async fn delete_keys(client: &S3Client, keys: &[String]) -> Result<()> {
    for chunk in keys.chunks(1000) {
        client.delete_objects(chunk).await?;
    }
    Ok(())
}

fn fmt(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.digits$}"))
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let g = Garage::start()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let client = g.client(Addressing::Path);
    let size = args.size_mib * MIB;
    eprintln!(
        "preparing a {} MiB object and {} small files...",
        args.size_mib, args.files
    );
    rt.block_on(async {
        let id = client
            .create_multipart_upload("bench/seq.bin", &Default::default())
            .await?;
        let mut parts = Vec::new();
        for n in 0..size.div_ceil(8 * MIB) {
            let len = (size - n * 8 * MIB).min(8 * MIB);
            let body = bytes::Bytes::from(pattern(len as usize, n));
            parts.push(
                client
                    .upload_part("bench/seq.bin", &id, n as u32 + 1, Payload::Bytes(body))
                    .await?,
            );
        }
        client.complete_multipart_upload("bench/seq.bin", &id, &parts).await?;
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..args.files {
            while tasks.len() >= 32 {
                tasks.join_next().await.expect("task")??;
            }
            let c = client.clone();
            tasks.spawn(async move {
                c.put_object(
                    &format!("bench/listing/f{i:05}"),
                    Payload::Bytes(vec![7u8; 4096].into()),
                    &Default::default(),
                )
                .await
                .map(drop)
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.expect("task")?;
        }
        Ok::<_, anyhow::Error>(())
    })?;

    let have = |bin: &str| {
        Command::new(bin)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    };
    let mut kinds = vec!["byos3"];
    if have("s3fs") {
        kinds.push("s3fs");
    }
    if have("rclone") {
        kinds.extend(["rclone-off", "rclone-writes"]);
    }
    kinds.retain(|kind| args.only.as_ref().is_none_or(|o| o.iter().any(|x| x == kind)));
    // rounds[i][j]: round i of the ceiling (j = 0) and of each mount.
    let mut rounds: Vec<Vec<Row>> = Vec::new();
    for round in 0..args.rounds {
        let mut this = vec![ceiling(&args, &client, &rt)?];
        // Every other round runs the mounts in reverse order, so no mount
        // always runs just after the same neighbour.
        let order: Vec<&str> = if round % 2 == 0 {
            kinds.clone()
        } else {
            kinds.iter().rev().copied().collect()
        };
        for kind in order {
            eprintln!("round {}/{}: benchmarking {kind}...", round + 1, args.rounds);
            this.push(match run_mount(kind, &args, &g, &client, &rt) {
                Ok(r) => r,
                Err(e) => Row {
                    name: kind.into(),
                    note: format!("failed: {e:#}"),
                    ..Row::default()
                },
            });
        }
        rounds.push(this);
    }
    let mut names = vec!["S3 client (ceiling)".to_string()];
    names.extend(kinds.iter().map(|k| k.to_string()));
    let per_name = |name: &str| -> Vec<Row> {
        rounds
            .iter()
            .filter_map(|r| r.iter().find(|x| x.name == name).cloned())
            .collect()
    };
    let rows: Vec<Row> = names.iter().map(|n| median_row(per_name(n))).collect();

    println!(
        "\nbyos3 filesystem benchmark: Garage on 127.0.0.1, {} MiB object, {} small files of 4 KiB{}",
        args.size_mib,
        args.files,
        if args.rounds > 1 {
            format!(", median of {} rounds", args.rounds)
        } else {
            String::new()
        }
    );
    println!(
        "| mount | seq read 1 MiB/s | seq read 4 MiB/s | seq write MiB/s | rand 4K ops/s | rand 256K ops/s | small files/s | small read/s | small re-read/s | ls -l s | peak RSS MiB | notes |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.name,
            fmt(r.seq_read_1, 0),
            fmt(r.seq_read_4, 0),
            fmt(r.seq_write, 0),
            fmt(r.rand_4k, 0),
            fmt(r.rand_256k, 0),
            fmt(r.small_files, 0),
            fmt(r.small_read, 0),
            fmt(r.small_reread, 0),
            fmt(r.ls_l, 2),
            fmt(r.peak_rss_mib, 0),
            r.note
        );
    }
    let which = if args.rounds > 1 { " (last round)" } else { "" };
    println!(
        "\nMiB the server sent per read phase{which} (the readers asked for read1 {size_mib}, read4 {size_mib}, rand4k {:.1}, rand256k {:.0}):",
        (RANDOM_READS[0].0 * RANDOM_READS[0].1 as u64) as f64 / MIB as f64,
        (RANDOM_READS[1].0 * RANDOM_READS[1].1 as u64) as f64 / MIB as f64,
        size_mib = args.size_mib,
    );
    for r in rows.iter().filter(|r| !r.served.is_empty()) {
        let served: Vec<String> = r.served.iter().map(|(p, mib)| format!("{p} {mib:.0}")).collect();
        println!("  {:<20} {}", r.name, served.join("  "));
    }
    println!("\nper phase{which}: peak RSS MiB / CPU seconds of the mount process:");
    for r in rows.iter().filter(|r| !r.phases.is_empty()) {
        let phases: Vec<String> = r
            .phases
            .iter()
            .map(|(p, rss, cpu)| format!("{p} {rss:.0}/{cpu:.2}"))
            .collect();
        println!("  {:<20} {}", r.name, phases.join("  "));
    }
    let ours = rows.iter().find(|r| r.name == "byos3").cloned();
    if let Some(b) = ours {
        let ratio = |a: Option<f64>, c: Option<f64>| match (a, c) {
            (Some(a), Some(c)) if c > 0.0 => format!("{:.2}", a / c),
            _ => "-".into(),
        };
        println!("\nratios (byos3 / other; for ls -l, other / byos3, higher is better for byos3):");
        for r in rows.iter().filter(|r| r.name != "byos3") {
            println!(
                "  vs {:<20} seq read 1 {}  seq read 4 {}  write {}  rand 4K {}  rand 256K {}  small files {}  small read {}  re-read {}  ls -l {}",
                r.name,
                ratio(b.seq_read_1, r.seq_read_1),
                ratio(b.seq_read_4, r.seq_read_4),
                ratio(b.seq_write, r.seq_write),
                ratio(b.rand_4k, r.rand_4k),
                ratio(b.rand_256k, r.rand_256k),
                ratio(b.small_files, r.small_files),
                ratio(b.small_read, r.small_read),
                ratio(b.small_reread, r.small_reread),
                ratio(r.ls_l, b.ls_l),
            );
        }
    }
    if args.rounds > 1 {
        // byos3 / ceiling measured minutes apart in the same round: the
        // spread shows how much of a ratio is the machine.
        let figures = |name| per_name(name).iter().map(Row::figures).collect::<Vec<_>>();
        let (ours, ceil) = (figures("byos3"), figures("S3 client (ceiling)"));
        println!("\nbyos3 / ceiling per round (then the median):");
        let labels = [
            "seq read 1",
            "seq read 4",
            "write",
            "rand 4K",
            "rand 256K",
            "small files",
            "small read",
        ];
        for (i, label) in labels.iter().enumerate() {
            let mut per: Vec<f64> = Vec::new();
            for (o, c) in ours.iter().zip(&ceil) {
                if let (Some(a), Some(b)) = (o[i], c[i]) {
                    if b > 0.0 {
                        per.push(a / b);
                    }
                }
            }
            let shown: Vec<String> = per.iter().map(|r| format!("{r:.2}")).collect();
            println!("  {label:<12} {}  -> {}", shown.join(" "), fmt(median(per), 2));
        }
    }
    Ok(())
}
