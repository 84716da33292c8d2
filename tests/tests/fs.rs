//! The FUSE filesystem against a real S3 server (Garage on 127.0.0.1),
//! through real mounts.

mod fs_support;

use std::io::{Read, Seek, SeekFrom, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use byos3::fs::MountOptions;
use byos3::s3::Operation;
use byos3_tests::pattern;
use fs_support::{opts, Env, MIB};
use rand::{Rng, SeedableRng};

#[test]
fn files_round_trip_byte_exact() {
    let env = Env::start();
    let m = env.mount("rt", opts());
    // A file being written is listed, with its size so far, before close.
    {
        let mut f = std::fs::File::create(m.p("growing")).unwrap();
        f.write_all(&pattern(3 * MIB, 5)).unwrap();
        let names: Vec<_> = std::fs::read_dir(m.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(names.iter().any(|n| n == "growing"), "{names:?}");
        assert_eq!(std::fs::metadata(m.p("growing")).unwrap().len(), 3 * MIB as u64);
        assert_eq!(env.get("rt/growing"), None, "not in the bucket before close");
    }
    assert_eq!(env.get("rt/growing").unwrap().len(), 3 * MIB);
    let sizes = [0usize, 1, 5 * MIB + 1, 200 * MIB];
    for (i, &size) in sizes.iter().enumerate() {
        let data = pattern(size, i as u64 + 1);
        let name = format!("f{size}");
        std::fs::write(m.p(&name), &data).unwrap();
        assert_eq!(std::fs::metadata(m.p(&name)).unwrap().len(), size as u64);
        let back = std::fs::read(m.p(&name)).unwrap();
        assert!(back == data, "read back {name} through the mount");
        let stored = env.get(&format!("rt/{name}")).expect("object exists");
        assert!(stored == data, "object {name} in the bucket");
    }
    // Streamed writes used multipart, small files a single PUT.
    let stats = m.handle().stats();
    assert!(stats.requests(Operation::UploadPart) >= 40 + 2, "{stats:?}");
    assert!(stats.requests(Operation::PutObject) >= 2);
    m.unmount();
}

#[test]
fn random_offset_reads_match_the_source() {
    let env = Env::start();
    let data = pattern(24 * MIB + 12345, 7);
    env.put("rnd/obj", &data);
    let m = env.mount("rnd", opts());
    let mut f = std::fs::File::open(m.p("obj")).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    for _ in 0..200 {
        let off = rng.gen_range(0..data.len());
        let len = rng.gen_range(1..=256 * 1024).min(data.len() - off);
        let mut buf = vec![0u8; len];
        f.seek(SeekFrom::Start(off as u64)).unwrap();
        f.read_exact(&mut buf).unwrap();
        assert!(buf == data[off..off + len], "bytes at {off}+{len}");
    }
    // Past the end reads nothing.
    f.seek(SeekFrom::Start(data.len() as u64 + 10)).unwrap();
    let mut rest = Vec::new();
    assert_eq!(f.read_to_end(&mut rest).unwrap(), 0);
    // A whole sequential read, then every prefetch buffer is given back.
    f.seek(SeekFrom::Start(0)).unwrap();
    let mut all = Vec::new();
    f.read_to_end(&mut all).unwrap();
    assert!(all == data);
    drop(f);
    let budget = m.handle().buffer_budget();
    assert!(budget < opts().memory_budget, "buffers get part of the budget");
    let mut free = 0;
    for _ in 0..100 {
        free = m.handle().memory_available();
        if free == budget {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(free, budget, "memory budget fully released after close");
}

/// The kernel sends several readahead requests at once and FUSE threads
/// answer them in any order, so a read can land just behind the window.
/// Such a straggler is fetched on its own: the window keeps what it
/// prefetched (re-starting it used to fetch up to a tenth of a large file
/// twice).
#[test]
fn a_read_just_behind_the_prefetch_window_does_not_restart_it() {
    use std::os::unix::fs::FileExt;
    use std::os::unix::io::AsRawFd;
    let env = Env::start();
    let data = pattern(64 * MIB, 11);
    env.put("straggler/obj", &data);
    let m = env.mount("straggler", opts());
    let f = std::fs::File::open(m.p("obj")).unwrap();
    let mut buf = vec![0u8; MIB];
    for i in 0..40 {
        f.read_exact_at(&mut buf, (i * MIB) as u64).unwrap();
        assert!(buf == data[i * MIB..(i + 1) * MIB], "MiB {i}");
    }
    // Let the window's GETs finish, so a refetch would show in the count.
    let last = m.settled_bytes_received();
    assert!(last > 44 * MIB as u64, "the window ran ahead of the reader: {last}");
    // Drop the cached pages of what was read, so the kernel asks again.
    // SAFETY: fadvise on a descriptor we own; only advice.
    let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 40 * MIB as i64, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(rc, 0);
    let mut small = vec![0u8; 4096];
    let behind = 30 * MIB + 4096;
    f.read_exact_at(&mut small, behind as u64).unwrap();
    assert!(small == data[behind..behind + 4096], "the straggler's bytes");
    for i in 40..64 {
        f.read_exact_at(&mut buf, (i * MIB) as u64).unwrap();
        assert!(buf == data[i * MIB..(i + 1) * MIB], "MiB {i}");
    }
    // The straggler may cost one FUSE read (up to 1 MiB), not the window.
    let total = m.handle().stats().bytes_received;
    assert!(
        total <= 66 * MIB as u64,
        "{total} bytes received for a 64 MiB file read once plus a straggler: the window was fetched again"
    );
}

/// Readers that split a file between them stop at each other's start:
/// no window fetches the next reader's share for nothing.
#[test]
fn readers_splitting_a_file_do_not_prefetch_each_others_shares() {
    use std::os::unix::fs::FileExt;
    let env = Env::start();
    let data = pattern(96 * MIB, 12);
    env.put("shares/obj", &data);
    let m = env.mount("shares", opts());
    let share = 24 * MIB;
    // Every reader has begun before any goes on: one that started late
    // would find the others' windows already in its share.
    let started = std::sync::Barrier::new(4);
    std::thread::scope(|s| {
        for i in 0..4 {
            let (path, data, started) = (m.p("obj"), &data, &started);
            s.spawn(move || {
                let f = std::fs::File::open(path).unwrap();
                let mut buf = vec![0u8; MIB];
                for j in 0..share / MIB {
                    if j == 2 {
                        started.wait();
                    }
                    let at = i * share + j * MIB;
                    f.read_exact_at(&mut buf, at as u64).unwrap();
                    assert!(buf == data[at..at + MIB], "reader {i}, MiB {j}");
                }
            });
        }
    });
    // A little of the kernel's readahead past a share may be fetched too;
    // windows still fetching count once they are done.
    let received = m.settled_bytes_received();
    assert!(
        received <= 110 * MIB as u64,
        "{received} bytes received for 96 MiB read once by four readers"
    );
}

/// A file read before and unchanged since is served from the kernel's
/// page cache on the next open, after one HEAD; a changed one is fetched
/// again, whatever the metadata TTL says.
#[test]
fn reopening_an_unchanged_file_reuses_the_page_cache_and_a_changed_one_is_fetched_again() {
    let env = Env::start();
    let one = pattern(8 * MIB, 21);
    env.put("reopen/f", &one);
    let m = env.mount(
        "reopen",
        MountOptions {
            metadata_ttl: Duration::from_secs(60),
            ..opts()
        },
    );
    let stats = || m.handle().stats();
    assert!(std::fs::read(m.p("f")).unwrap() == one);
    let first = stats();
    assert!(first.bytes_received >= 8 * MIB as u64);

    assert!(std::fs::read(m.p("f")).unwrap() == one, "second read");
    let second = stats();
    assert_eq!(second.bytes_received, first.bytes_received, "no byte fetched again");
    assert_eq!(
        second.requests(Operation::HeadObject),
        first.requests(Operation::HeadObject) + 1,
        "one HEAD checked the version"
    );

    // Replaced behind the mount's back (same length, inside the TTL).
    let two = pattern(8 * MIB, 22);
    env.put("reopen/f", &two);
    assert!(
        std::fs::read(m.p("f")).unwrap() == two,
        "the new version, not cached pages"
    );
    assert!(stats().bytes_received >= second.bytes_received + 8 * MIB as u64);

    // Written through the mount: the next reader gets the bytes as uploaded.
    let three = pattern(3 * MIB, 23);
    std::fs::write(m.p("f"), &three).unwrap();
    assert!(std::fs::read(m.p("f")).unwrap() == three);
    assert!(env.get("reopen/f").unwrap() == three);
}

/// The page cache is kept only for the version it holds: a reader that
/// followed a newer version than its open saw (cached metadata) must not
/// let a later open keep those pages when the first version comes back
/// (same bytes, same ETag).
#[test]
fn pages_of_a_version_followed_after_open_are_not_kept_for_another() {
    let env = Env::start();
    let a = pattern(MIB, 31);
    let b = pattern(MIB, 32);
    env.put("aba/f", &a);
    let m = env.mount(
        "aba",
        MountOptions {
            metadata_ttl: Duration::from_secs(60),
            ..opts()
        },
    );
    assert_eq!(
        std::fs::metadata(m.p("f")).unwrap().len(),
        MIB as u64,
        "metadata of A cached"
    );
    env.put("aba/f", &b);
    assert!(
        std::fs::read(m.p("f")).unwrap() == b,
        "the open pinned A, the reader followed B"
    );
    env.put("aba/f", &a);
    assert!(std::fs::read(m.p("f")).unwrap() == a, "A again, not B's cached pages");
}

#[test]
fn overwrite_truncate_and_append() {
    let env = Env::start();
    let small = pattern(100_000, 1);
    let big = pattern(23 * MIB, 2);
    env.put("ota/small", &small);
    env.put("ota/big", &big);
    let m = env.mount("ota", opts());

    // Overwrite in the middle of a small file.
    let mut model = small.clone();
    {
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(m.p("small"))
            .unwrap();
        f.seek(SeekFrom::Start(5000)).unwrap();
        f.write_all(b"hello world").unwrap();
        model[5000..5011].copy_from_slice(b"hello world");
        // Read-your-writes on the same handle.
        f.seek(SeekFrom::Start(4990)).unwrap();
        let mut buf = [0u8; 30];
        f.read_exact(&mut buf).unwrap();
        assert_eq!(&buf[..], &model[4990..5020]);
    }
    assert_eq!(env.get("ota/small").unwrap(), model);

    // Truncate shorter, then longer (zeros).
    std::fs::OpenOptions::new()
        .write(true)
        .open(m.p("small"))
        .unwrap()
        .set_len(7000)
        .unwrap();
    model.truncate(7000);
    assert_eq!(std::fs::read(m.p("small")).unwrap(), model);
    {
        let f = std::fs::OpenOptions::new().write(true).open(m.p("small")).unwrap();
        f.set_len(9000).unwrap();
    }
    model.resize(9000, 0);
    assert_eq!(env.get("ota/small").unwrap(), model);

    // Append.
    {
        let mut f = std::fs::OpenOptions::new().append(true).open(m.p("small")).unwrap();
        f.write_all(b"appended").unwrap();
    }
    model.extend_from_slice(b"appended");
    assert_eq!(std::fs::read(m.p("small")).unwrap(), model);
    assert_eq!(env.get("ota/small").unwrap(), model);

    // O_TRUNC rewrite.
    std::fs::write(m.p("small"), b"new").unwrap();
    assert_eq!(env.get("ota/small").unwrap(), b"new");

    // One byte changed in a large file: unchanged parts are copied
    // server-side, not uploaded again.
    let before = m.handle().stats();
    let mut big_model = big.clone();
    {
        let mut f = std::fs::OpenOptions::new().write(true).open(m.p("big")).unwrap();
        f.seek(SeekFrom::Start(12 * MIB as u64 + 3)).unwrap();
        f.write_all(b"X").unwrap();
        f.sync_all().unwrap();
    }
    big_model[12 * MIB + 3] = b'X';
    let after = m.handle().stats();
    assert!(
        after.requests(Operation::UploadPartCopy) > before.requests(Operation::UploadPartCopy),
        "{after:?}"
    );
    assert_eq!(
        after.requests(Operation::UploadPart) - before.requests(Operation::UploadPart),
        1
    );
    assert!(env.get("ota/big").unwrap() == big_model);
    // truncate(2) on a path without an open handle.
    let f = std::fs::OpenOptions::new().write(true).open(m.p("big")).unwrap();
    f.set_len(6 * MIB as u64 + 1).unwrap();
    drop(f);
    big_model.truncate(6 * MIB + 1);
    assert!(std::fs::read(m.p("big")).unwrap() == big_model);
    assert_eq!(m.handle().staged_bytes(), 0, "staging is emptied once uploaded");
}

#[test]
fn rename_files_and_directories() {
    let env = Env::start();
    env.put("rn/a.txt", b"A");
    env.put("rn/d/x", b"X");
    env.put("rn/d/sub/y", b"Y");
    env.put("rn/staged", &pattern(11 * MIB, 4));
    let m = env.mount("rn", opts());
    std::fs::rename(m.p("a.txt"), m.p("b.txt")).unwrap();
    assert!(!m.p("a.txt").exists());
    assert_eq!(std::fs::read(m.p("b.txt")).unwrap(), b"A");
    assert_eq!(env.get("rn/a.txt"), None);
    assert_eq!(env.get("rn/b.txt").unwrap(), b"A");

    // Over an existing file.
    std::fs::write(m.p("c.txt"), b"C").unwrap();
    std::fs::rename(m.p("b.txt"), m.p("c.txt")).unwrap();
    assert_eq!(std::fs::read(m.p("c.txt")).unwrap(), b"A");

    // Into a directory, then a whole directory.
    std::fs::rename(m.p("c.txt"), m.p("d/c.txt")).unwrap();
    std::fs::rename(m.p("d"), m.p("e")).unwrap();
    assert!(!m.p("d").exists());
    assert_eq!(std::fs::read(m.p("e/x")).unwrap(), b"X");
    assert_eq!(std::fs::read(m.p("e/sub/y")).unwrap(), b"Y");
    assert_eq!(std::fs::read(m.p("e/c.txt")).unwrap(), b"A");
    let mut keys = env.keys("rn/");
    keys.sort();
    assert_eq!(keys, ["rn/e/c.txt", "rn/e/sub/y", "rn/e/x", "rn/staged"]);

    // An existing file being rewritten in place, renamed before close.
    {
        let mut f = std::fs::OpenOptions::new().write(true).open(m.p("staged")).unwrap();
        f.seek(SeekFrom::Start(MIB as u64)).unwrap();
        f.write_all(b"changed").unwrap();
        std::fs::rename(m.p("staged"), m.p("staged2")).unwrap();
        f.sync_all().unwrap();
    }
    let mut want = pattern(11 * MIB, 4);
    want[MIB..MIB + 7].copy_from_slice(b"changed");
    assert!(env.get("rn/staged2").unwrap() == want);
    assert_eq!(env.get("rn/staged"), None);

    // A file being written, renamed before close, lands at its new name.
    {
        let mut f = std::fs::File::create(m.p("inflight")).unwrap();
        f.write_all(&pattern(7 * MIB, 9)).unwrap();
        std::fs::rename(m.p("inflight"), m.p("landed")).unwrap();
        f.write_all(b"tail").unwrap();
    }
    let mut want = pattern(7 * MIB, 9);
    want.extend_from_slice(b"tail");
    assert!(env.get("rn/landed").unwrap() == want);
    assert_eq!(env.get("rn/inflight"), None);
}

/// Renaming over a file written a moment before must leave the source's
/// bytes at the destination: a server that orders versions by a
/// millisecond clock can let the earlier write win a tie with the copy,
/// and the source is deleted after the copy. Many tries, since a tie
/// needs both in the same millisecond (about one rename in 25 here).
#[test]
fn renaming_over_a_file_just_written_leaves_the_source_bytes() {
    let env = Env::start();
    let m = env.mount("tie", opts());
    for i in 0..100 {
        let (src, dst) = (format!("src{i}"), format!("dst{i}"));
        std::fs::write(m.p(&src), b"source").unwrap();
        std::fs::write(m.p(&dst), b"old").unwrap();
        std::fs::rename(m.p(&src), m.p(&dst)).unwrap();
        assert_eq!(
            env.get(&format!("tie/{dst}")).unwrap(),
            b"source",
            "try {i}: the bucket"
        );
        assert_eq!(env.get(&format!("tie/{src}")), None, "try {i}: source removed");
        assert_eq!(std::fs::read(m.p(&dst)).unwrap(), b"source", "try {i}: the mount");
    }
}

/// The object's stored time (`x-amz-meta-mtime`), as its metadata says.
fn stored_mtime(m: &byos3::s3::ObjectMeta) -> Option<&str> {
    m.metadata.iter().find(|(k, _)| k == "mtime").map(|(_, v)| v.as_str())
}

fn mtime_of(p: &std::path::Path) -> SystemTime {
    std::fs::metadata(p).unwrap().modified().unwrap()
}

#[test]
fn modification_times_are_kept_as_object_metadata() {
    let env = Env::start();
    env.put("mt/old", b"old bytes");
    let m = env.mount("mt", opts());
    let t1 = UNIX_EPOCH + Duration::new(981_173_106, 500_000_000);

    // A file in the bucket, not open for writing (utimensat through a
    // read-only descriptor): copied onto itself with the time stored.
    std::fs::File::open(m.p("old")).unwrap().set_modified(t1).unwrap();
    assert_eq!(mtime_of(&m.p("old")), t1);
    let head = env.head("mt/old");
    assert_eq!(stored_mtime(&head), Some("981173106.500000000"));
    assert_eq!(env.get("mt/old").unwrap(), b"old bytes", "bytes unchanged");
    // A listing cannot carry the time; the mount keeps the one it knows.
    std::thread::sleep(Duration::from_millis(1200));
    // (A DirEntry keeps its directory open: none outlives the check.)
    let listed: Vec<SystemTime> = std::fs::read_dir(m.path())
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().modified().unwrap())
        .collect();
    assert_eq!(listed, [t1], "ls -l after the TTL");
    assert_eq!(mtime_of(&m.p("old")), t1, "stat after the TTL");
    // Another mount reads it from the object.
    {
        let other = env.mount("mt", opts());
        assert_eq!(mtime_of(&other.p("old")), t1);
    }

    // `cp -p`: the time set before close goes up with the single PUT.
    let t2 = UNIX_EPOCH + Duration::from_secs(1_234_567_890);
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("src");
    std::fs::write(&src, b"copied with its time").unwrap();
    std::fs::File::open(&src).unwrap().set_modified(t2).unwrap();
    let before = m.handle().stats();
    let st = std::process::Command::new("cp")
        .arg("-p")
        .arg(&src)
        .arg(m.p("copied"))
        .status()
        .unwrap();
    assert!(st.success(), "cp -p: {st}");
    let after = m.handle().stats();
    assert_eq!(
        after.requests(Operation::PutObject) - before.requests(Operation::PutObject),
        1
    );
    assert_eq!(
        after.requests(Operation::CopyObject),
        before.requests(Operation::CopyObject)
    );
    assert_eq!(stored_mtime(&env.head("mt/copied")), Some("1234567890"));
    assert_eq!(mtime_of(&m.p("copied")), t2);
    assert_eq!(env.get("mt/copied").unwrap(), b"copied with its time");

    // A rename keeps the time (CopyObject copies the metadata).
    std::fs::rename(m.p("copied"), m.p("moved")).unwrap();
    assert_eq!(stored_mtime(&env.head("mt/moved")), Some("1234567890"));
    assert_eq!(mtime_of(&m.p("moved")), t2);

    // `touch` without a date on an existing file (opened for writing,
    // nothing written): the object is copied onto itself and its own
    // Last-Modified, now, is the time.
    let st = std::process::Command::new("touch").arg(m.p("old")).status().unwrap();
    assert!(st.success(), "touch: {st}");
    let head = env.head("mt/old");
    assert_eq!(stored_mtime(&head), None, "{head:?}");
    let now = mtime_of(&m.p("old"));
    assert!(now > UNIX_EPOCH + Duration::from_secs(1_700_000_000), "{now:?}");
    assert_eq!(env.get("mt/old").unwrap(), b"old bytes");

    // A write after a time was set moves the time again: none stored.
    std::fs::File::open(m.p("moved")).unwrap().set_modified(t1).unwrap();
    assert!(stored_mtime(&env.head("mt/moved")).is_some());
    std::fs::OpenOptions::new()
        .append(true)
        .open(m.p("moved"))
        .unwrap()
        .write_all(b"!")
        .unwrap();
    assert_eq!(stored_mtime(&env.head("mt/moved")), None);
    assert!(mtime_of(&m.p("moved")) > t1);
    assert_eq!(env.get("mt/moved").unwrap(), b"copied with its time!");
    m.unmount();
}

#[test]
fn mkdir_rmdir_and_listing_of_2500_entries() {
    let env = Env::start();
    // Objects made directly in the bucket: three list pages.
    env.rt.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..2500 {
            let s3 = env.s3.clone();
            tasks.spawn(async move {
                s3.put_object(
                    &format!("big/dir/f{i:05}"),
                    byos3::s3::Payload::Bytes(vec![1u8; i % 7].into()),
                    &Default::default(),
                )
                .await
                .unwrap();
            });
            while tasks.len() >= 32 {
                tasks.join_next().await;
            }
        }
        while tasks.join_next().await.is_some() {}
    });
    let m = env.mount("big", opts());
    let mut names: Vec<String> = std::fs::read_dir(m.p("dir"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), 2500);
    assert_eq!(names[0], "f00000");
    assert_eq!(names[2499], "f02499");
    assert_eq!(std::fs::metadata(m.p("dir/f00006")).unwrap().len(), 6);

    std::fs::create_dir(m.p("newdir")).unwrap();
    assert!(m.p("newdir").is_dir());
    assert_eq!(env.get("big/newdir/").unwrap(), b"");
    assert_eq!(
        std::fs::create_dir(m.p("newdir")).unwrap_err().kind(),
        std::io::ErrorKind::AlreadyExists
    );
    std::fs::write(m.p("newdir/f"), b"x").unwrap();
    let err = std::fs::remove_dir(m.p("newdir")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOTEMPTY));
    std::fs::remove_file(m.p("newdir/f")).unwrap();
    std::fs::remove_dir(m.p("newdir")).unwrap();
    assert!(!m.p("newdir").exists());
    assert!(env.keys("big/newdir").is_empty());
    let err = std::fs::remove_dir(m.p("dir")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOTEMPTY));
}

#[test]
fn ls_l_of_1000_files_sends_no_head_object() {
    let env = Env::start();
    env.put_numbered("lsl/", 1000, |i| vec![0u8; i]);
    let m = env.mount(
        "lsl",
        MountOptions {
            metadata_ttl: Duration::from_secs(30),
            listing_ttl: Duration::from_secs(30),
            ..opts()
        },
    );
    let before = m.handle().stats();
    let out = std::process::Command::new("ls")
        .arg("-l")
        .arg(m.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with('-')).collect();
    assert_eq!(lines.len(), 1000);
    assert!(
        lines.iter().any(|l| l.contains(" 999 ") && l.ends_with("f0999")),
        "sizes come from the listing"
    );
    let after = m.handle().stats();
    assert_eq!(
        after.requests(Operation::HeadObject),
        before.requests(Operation::HeadObject),
        "no HeadObject per entry"
    );
    assert!(after.requests(Operation::ListObjects) - before.requests(Operation::ListObjects) <= 3);
}

/// Once a large directory's listing has expired, a reader walking it
/// name by name gets it re-listed after a few lookups instead of a
/// HeadObject per name.
#[test]
fn walking_a_large_directory_after_its_listing_expired_relists_it_instead_of_a_head_per_name() {
    let env = Env::start();
    env.put_numbered("walk/", 1500, |i| vec![0u8; i % 7]);
    let ttl = Duration::from_millis(300);
    let m = env.mount(
        "walk",
        MountOptions {
            metadata_ttl: ttl,
            negative_ttl: ttl,
            listing_ttl: ttl,
            ..opts()
        },
    );
    assert_eq!(std::fs::read_dir(m.path()).unwrap().count(), 1500);
    std::thread::sleep(ttl * 2);
    let before = m.handle().stats();
    for i in 0..1500 {
        let md = std::fs::metadata(m.p(&format!("f{i:04}"))).unwrap();
        assert_eq!(md.len(), (i % 7) as u64, "f{i:04}");
    }
    let after = m.handle().stats();
    let heads = after.requests(Operation::HeadObject) - before.requests(Operation::HeadObject);
    assert!(heads < 150, "{heads} HeadObject for 1,500 names: one per name");
}

/// Files opened by name in a directory the mount never listed (a reader
/// with its own list of names): after a few HeadObjects the directory is
/// listed, a page, then more as lookups go on, not a HEAD per name.
#[test]
fn looking_up_names_in_a_directory_never_listed_lists_it_instead_of_a_head_per_name() {
    let env = Env::start();
    env.put_numbered("named/", 2500, |i| vec![0u8; i % 7]);
    let m = env.mount("named", opts());
    for i in 0..300 {
        let md = std::fs::metadata(m.p(&format!("f{i:04}"))).unwrap();
        assert_eq!(md.len(), (i % 7) as u64, "f{i:04}");
    }
    let err = std::fs::metadata(m.p("f9999")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
    let st = m.handle().stats();
    let (heads, lists) = (st.requests(Operation::HeadObject), st.requests(Operation::ListObjects));
    // 31 names asked on their own (a one-page try at 8 and a two-page try
    // at 16 find more than they may list; four pages at 32 list it all).
    assert!(heads < 40, "{heads} HeadObject for 300 names: one per name");
    assert!(lists < 45, "{lists} ListObjects");
    m.unmount();
}

#[test]
fn sub_path_isolation() {
    let env = Env::start();
    env.put("outside.txt", b"no");
    env.put("tenant-b/secret", b"no");
    env.put("tenant-a/mine", b"yes");
    let m = env.mount("tenant-a", opts());
    let names: Vec<String> = std::fs::read_dir(m.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["mine"]);
    assert!(!m.p("../outside.txt").starts_with(m.path()) || std::fs::read(m.p("outside.txt")).is_err());
    assert!(std::fs::read(m.p("tenant-b/secret")).is_err());
    std::fs::write(m.p("new"), b"1").unwrap();
    std::fs::create_dir(m.p("sub")).unwrap();
    let mut keys = env.keys("");
    keys.sort();
    assert_eq!(
        keys,
        [
            "outside.txt",
            "tenant-a/mine",
            "tenant-a/new",
            "tenant-a/sub/",
            "tenant-b/secret"
        ]
    );
}

#[test]
fn read_only_mount_refuses_writes_with_erofs() {
    let env = Env::start();
    env.put("ro/f", b"data");
    let m = env.mount(
        "ro",
        MountOptions {
            read_only: true,
            ..opts()
        },
    );
    assert_eq!(std::fs::read(m.p("f")).unwrap(), b"data");
    let erofs = |r: std::io::Result<()>| assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::EROFS));
    erofs(std::fs::write(m.p("g"), b"x"));
    erofs(std::fs::OpenOptions::new().write(true).open(m.p("f")).map(drop));
    erofs(std::fs::create_dir(m.p("d")));
    erofs(std::fs::remove_file(m.p("f")));
    erofs(std::fs::rename(m.p("f"), m.p("h")));
    erofs(std::fs::File::open(m.p("f")).and_then(|f| f.set_modified(std::time::UNIX_EPOCH)));
    assert_eq!(env.get("ro/f").unwrap(), b"data");
}

#[test]
fn eight_concurrent_writers_and_readers() {
    let env = Env::start();
    for i in 0..8 {
        env.put(&format!("cc/r{i}"), &pattern(3 * MIB + i, 100 + i as u64));
    }
    let m = env.mount("cc", opts());
    std::thread::scope(|s| {
        for i in 0..8usize {
            let m = &m;
            s.spawn(move || {
                let data = pattern(6 * MIB + i * 1000, i as u64);
                std::fs::write(m.p(&format!("w{i}")), &data).unwrap();
                assert!(std::fs::read(m.p(&format!("w{i}"))).unwrap() == data);
            });
            s.spawn(move || {
                let got = std::fs::read(m.p(&format!("r{i}"))).unwrap();
                assert!(got == pattern(3 * MIB + i, 100 + i as u64));
            });
        }
    });
    for i in 0..8usize {
        assert!(env.get(&format!("cc/w{i}")).unwrap() == pattern(6 * MIB + i * 1000, i as u64));
    }
}

#[test]
fn changes_behind_the_mounts_back_are_seen_after_the_ttl() {
    let env = Env::start();
    env.put("ttl/f", b"version one");
    let ttl = Duration::from_millis(500);
    let m = env.mount(
        "ttl",
        MountOptions {
            metadata_ttl: ttl,
            negative_ttl: ttl,
            listing_ttl: ttl,
            ..opts()
        },
    );
    assert_eq!(std::fs::read(m.p("f")).unwrap(), b"version one");
    assert!(!m.p("g").exists());
    env.put("ttl/f", b"version two, longer");
    env.put("ttl/g", b"new");
    std::thread::sleep(ttl * 3);
    assert_eq!(std::fs::read(m.p("f")).unwrap(), b"version two, longer");
    assert_eq!(std::fs::read(m.p("g")).unwrap(), b"new");
    let _ = env.rt.block_on(env.s3.delete_object("ttl/g"));
    std::thread::sleep(ttl * 3);
    assert!(!m.p("g").exists());
}

#[test]
fn a_file_replaced_while_its_metadata_is_cached_reads_as_the_new_version() {
    // With a long TTL the open uses the cached ETag of the first version;
    // the conditional GET then fails and the reader, having served
    // nothing yet, must follow the new version instead of failing with EIO.
    // Same length, so the kernel's cached size does not hide the change.
    let env = Env::start();
    env.put("pin/f", b"version one");
    let m = env.mount(
        "pin",
        MountOptions {
            metadata_ttl: Duration::from_secs(60),
            ..opts()
        },
    );
    assert_eq!(std::fs::read(m.p("f")).unwrap(), b"version one");
    env.put("pin/f", b"version TWO");
    assert_eq!(std::fs::read(m.p("f")).unwrap(), b"version TWO");
}

#[test]
fn randomized_operations_match_a_local_directory() {
    let env = Env::start();
    let m = env.mount("rand", opts());
    let reference = tempfile::tempdir().unwrap();
    let roots = [m.path().to_path_buf(), reference.path().to_path_buf()];
    for r in &roots {
        std::fs::create_dir(r.join("sub")).unwrap();
    }
    let names = ["a", "b", "c", "sub/d", "sub/e"];
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    for step in 0..120 {
        let op = rng.gen_range(0..6);
        let name = names[rng.gen_range(0..names.len())];
        let other = names[rng.gen_range(0..names.len())];
        let off = rng.gen_range(0..300_000u64);
        let len = rng.gen_range(0..200_000usize);
        let data = pattern(len, step);
        let new_len = rng.gen_range(0..400_000u64);
        let results: Vec<String> = roots
            .iter()
            .map(|r| {
                let p = r.join(name);
                let res: std::io::Result<()> = match op {
                    0 | 1 => (|| {
                        let mut f = std::fs::OpenOptions::new()
                            .create(true)
                            .write(true)
                            .truncate(false)
                            .open(&p)?;
                        f.seek(SeekFrom::Start(off))?;
                        f.write_all(&data)
                    })(),
                    2 => std::fs::OpenOptions::new()
                        .write(true)
                        .open(&p)
                        .and_then(|f| f.set_len(new_len)),
                    3 => std::fs::rename(&p, r.join(other)),
                    4 => std::fs::remove_file(&p),
                    _ => std::fs::read(&p).map(drop),
                };
                match res {
                    Ok(()) => "ok".to_string(),
                    Err(e) => format!("{:?}", e.kind()),
                }
            })
            .collect();
        assert_eq!(results[0], results[1], "step {step}: op {op} on {name} (other {other})");
        for dir in ["", "sub"] {
            let list = |r: &std::path::Path| {
                let mut v: Vec<(String, u64)> = std::fs::read_dir(r.join(dir))
                    .unwrap()
                    .map(|e| {
                        let e = e.unwrap();
                        (
                            e.file_name().into_string().unwrap(),
                            if e.file_type().unwrap().is_dir() {
                                0
                            } else {
                                e.metadata().unwrap().len()
                            },
                        )
                    })
                    .collect();
                v.sort();
                v
            };
            assert_eq!(list(&roots[0]), list(&roots[1]), "step {step}: listing of {dir:?}");
        }
        for n in names {
            let a = std::fs::read(roots[0].join(n)).ok();
            let b = std::fs::read(roots[1].join(n)).ok();
            assert!(a == b, "step {step}: content of {n} (op {op} on {name})");
        }
    }
}

#[test]
fn a_child_process_closing_an_inherited_descriptor_does_not_publish_a_half_written_file() {
    // Spawning any process copies the descriptor table; the child's exec
    // closes its copy of the open file, and the kernel sends a flush for
    // that close. Only the writer's own close may upload.
    use std::io::Write;
    let env = Env::start();
    let m = env.mount("fork", opts());
    let mut f = std::fs::File::create(m.p("half.bin")).unwrap();
    f.write_all(&pattern(MIB, 1)).unwrap();
    let st = std::process::Command::new("true").status().unwrap();
    assert!(st.success());
    assert!(env.get("fork/half.bin").is_none(), "published by a child's close");
    f.write_all(&pattern(MIB, 2)).unwrap();
    drop(f);
    let mut want = pattern(MIB, 1);
    want.extend(pattern(MIB, 2));
    assert!(env.get("fork/half.bin").unwrap() == want);
}

#[test]
fn renaming_an_object_above_the_single_copy_limit_copies_it_in_parts() {
    // AWS copies at most 5 GiB per CopyObject; the same path runs here on
    // a store whose limit is set to 8 MiB, with a 20 MiB file.
    use byos3::s3::{Addressing, Operation, Quirks, S3Client};
    let env = Env::start();
    let mut cfg = env.garage.client_config(Addressing::Path);
    let quirks = Quirks {
        max_copy_object_size: 8 * MIB as u64,
        ..cfg.endpoint.quirks().clone()
    };
    cfg.endpoint = cfg.endpoint.with_quirks(quirks);
    let client = S3Client::new(cfg).unwrap();
    let data = pattern(20 * MIB + 7, 3);
    env.put("mpc/big.bin", &data);
    let m = env.mount_with(client.clone(), "mpc", opts());
    // Setting its time copies it onto itself, in parts too.
    let t = UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    std::fs::File::open(m.p("big.bin")).unwrap().set_modified(t).unwrap();
    assert_eq!(client.stats().requests(Operation::UploadPartCopy), 3, "8 + 8 + 4 MiB");
    std::fs::rename(m.p("big.bin"), m.p("moved.bin")).unwrap();
    assert!(env.get("mpc/moved.bin").unwrap() == data);
    assert!(env.get("mpc/big.bin").is_none());
    let st = client.stats();
    assert_eq!(st.requests(Operation::UploadPartCopy), 6);
    assert_eq!(st.requests(Operation::CopyObject), 0);
    // A multipart copy starts with no metadata: the source's is carried over.
    assert_eq!(stored_mtime(&env.head("mpc/moved.bin")), Some("1000000000"));
    assert_eq!(mtime_of(&m.p("moved.bin")), t);
    assert_eq!(std::fs::read(m.p("moved.bin")).unwrap().len(), data.len());
}
