//! The filesystem when things go wrong: the server goes away mid-write,
//! the staging area fills up, a daemon dies and leaves a stale mount.

mod fs_support;

use std::io::Write;
use std::os::fd::IntoRawFd;
use std::time::Duration;

use byos3::fs::MountOptions;
use byos3::s3::{Addressing, ClientConfig, Endpoint, RetryPolicy, S3Client};
use byos3_tests::pattern;
use byos3_tests::proxy::{Fault, FaultProxy};
use fs_support::{opts, Env, TakeHandle, MIB};

/// close(2) that reports its error (std's File drop swallows it).
fn close(f: std::fs::File) -> std::io::Result<()> {
    // SAFETY: we own the descriptor and close it exactly once.
    let rc = unsafe { libc::close(f.into_raw_fd()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[test]
fn server_gone_mid_write_fails_the_writer_and_leaves_no_object() {
    let env = Env::start();
    let proxy = env.rt.block_on(FaultProxy::start(env.garage.port)).unwrap();
    let endpoint = Endpoint::new(&proxy.url(), &env.garage.region, Addressing::Path).unwrap();
    let mut cfg = ClientConfig::new(endpoint, env.garage.bucket.clone(), env.garage.credentials());
    cfg.retry = RetryPolicy {
        max_attempts: 2,
        max_elapsed: Duration::from_secs(5),
        ..RetryPolicy::default()
    };
    let m = env.mount_with(S3Client::new(cfg).unwrap(), "flt", opts());

    let mut f = std::fs::File::create(m.p("big")).unwrap();
    f.write_all(&pattern(12 * MIB, 1)).unwrap(); // two parts sent, one buffered
                                                 // From here on the server is unreachable: every connection is reset.
    proxy.inject(Fault::Reset, u32::MAX);
    let wrote = f.write_all(&pattern(12 * MIB, 2));
    let synced = f.sync_all();
    let closed = close(f);
    assert!(
        synced.is_err() || wrote.is_err(),
        "the writer is told: write {wrote:?}, fsync {synced:?}"
    );
    assert!(closed.is_err(), "close reports the lost data too");
    proxy.inject(Fault::Reset, 0);

    // Nothing half-written became visible.
    assert_eq!(env.get("flt/big"), None);
    assert!(!m.p("big").exists());
    // The upload was aborted, or is listed for cleanup and aborted once the server is back.
    let listed = m.handle().pending_cleanup();
    m.handle().flush().unwrap();
    let left = env.rt.block_on(env.s3.list_multipart_uploads("flt/", None)).unwrap();
    assert!(
        left.uploads.is_empty(),
        "uploads left behind: {:?} (listed for cleanup: {listed:?})",
        left.uploads
    );
    assert!(m.handle().pending_cleanup().is_empty());

    // The mount works again afterwards.
    std::fs::write(m.p("after"), b"ok").unwrap();
    assert_eq!(env.get("flt/after").unwrap(), b"ok");
}

#[test]
fn staging_cap_gives_enospc_not_silent_loss() {
    let env = Env::start();
    env.put("cap/f", &pattern(2 * MIB, 1));
    let m = env.mount(
        "cap",
        MountOptions {
            staging_cap: MIB as u64,
            ..opts()
        },
    );
    let mut f = std::fs::OpenOptions::new().write(true).open(m.p("f")).unwrap();
    let err = f.write_all(&pattern(3 * MIB, 2)).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC));
    drop(f);
    // The object is untouched or whole, never torn.
    assert!(env.get("cap/f").is_some());
}

/// A daemon that died leaves its mount point failing with ENOTCONN; the
/// next mount there cleans it up instead of failing.
#[test]
fn stale_mount_point_is_cleaned_before_mounting() {
    let env = Env::start();
    env.put("stale/f", b"still here");
    let conns = std::path::Path::new("/sys/fs/fuse/connections");
    if std::fs::read_dir(conns).map(|mut d| d.next().is_none()).unwrap_or(true) {
        // SAFETY: plain mount(2) of the FUSE control filesystem with static strings.
        unsafe {
            libc::mount(
                c"fusectl".as_ptr(),
                c"/sys/fs/fuse/connections".as_ptr(),
                c"fusectl".as_ptr(),
                0,
                std::ptr::null(),
            );
        }
    }
    let dir = tempfile::Builder::new().prefix("byos3-stale-").tempdir().unwrap();
    let handle = byos3::fs::mount(env.mount_client(), "stale", dir.path(), opts()).unwrap();
    assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"still here");
    // A user still inside the mount. It also keeps this process's FUSE
    // session, which unmounts on its way out once the connection is gone,
    // from removing the stale mount before it is looked at: that unmount
    // is not lazy and fails on a busy mount.
    let inside = std::fs::File::open(dir.path()).unwrap();
    // Kill the connection as a crash would, and lose the handle with it.
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(dir.path()).unwrap().dev();
    let minor = libc::minor(dev);
    let abort = conns.join(minor.to_string()).join("abort");
    if std::fs::write(&abort, "1").is_err() {
        eprintln!("cannot abort FUSE connections here ({}); skipping", abort.display());
        drop(handle);
        return;
    }
    // The aborted session's thread tries a (non-lazy) unmount of the path
    // on its way out. A dead daemon cannot, so wait for that attempt to be
    // over (it fails: `inside` keeps the old mount busy) rather than let it
    // race the new mount below and unmount that one instead.
    for _ in 0..500 {
        if !handle.is_alive() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(!handle.is_alive(), "the FUSE session outlived its aborted connection");
    std::mem::forget(handle);
    // (stat may be answered from the kernel's cache; listing asks the daemon.)
    let err = std::fs::read_dir(dir.path()).map(drop).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOTCONN));

    let again = byos3::fs::mount(env.mount_client(), "stale", dir.path(), opts()).expect("stale mount is cleaned up");
    assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"still here");
    drop(inside);
    again.unmount().map_err(|e| e.error).unwrap();
}

#[test]
fn busy_mount_refuses_to_unmount_then_detaches_lazily() {
    let env = Env::start();
    env.put("busy/f", b"x");
    let mut m = env.mount("busy", opts());
    let f = std::fs::File::open(m.p("f")).unwrap();
    let mut handle = m.handle.take_handle_for_test();
    let err = handle.try_unmount(false).unwrap_err();
    assert!(matches!(err, byos3::fs::FsError::Busy { .. }), "{err}");
    assert!(err.to_string().contains("busy"));
    // Still mounted and working.
    assert_eq!(std::fs::read(m.p("f")).unwrap(), b"x");
    handle.try_unmount(true).unwrap();
    drop(f);
}
