//! The mount's inode table follows the kernel's inode cache: names the
//! kernel gives back when it reclaims memory leave the table, so a
//! long-lived mount that walks a large bucket does not keep every name it
//! has ever seen. Alone in its own test binary: it makes the kernel drop
//! its dentry and inode caches, which would disturb tests that count on
//! the page cache.

mod fs_support;

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use fs_support::{opts, Env};

fn ls_l(dir: &std::path::Path) -> usize {
    let out = std::process::Command::new("ls").arg("-l").arg(dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with('-'))
        .count()
}

#[test]
fn names_the_kernel_forgets_leave_the_inode_table() {
    let env = Env::start();
    env.put_numbered("walk/", 3000, |i| vec![b'x'; i % 5]);
    env.put("walk/sub/inner", b"inner");
    let m = env.mount("walk", opts());
    assert_eq!(std::fs::read(m.p("sub/inner")).unwrap(), b"inner");
    // (Listed again if the kernel happened to reclaim some of the names
    // at once: this is the state before reclaim.)
    let mut held = 0;
    for _ in 0..3 {
        assert_eq!(ls_l(m.path()), 3000);
        held = m.handle().inodes();
        if held > 3000 {
            break;
        }
    }
    assert!(held > 3000, "{held} inodes after listing 3,001 names");

    // Kernel memory reclaim, as under pressure: dentries and inodes nobody
    // uses are dropped, and the kernel sends FORGET for each.
    if std::fs::write("/proc/sys/vm/drop_caches", "2").is_err() {
        eprintln!("cannot drop the kernel's caches here (not root?); skipping");
        return;
    }
    let mut left = m.handle().inodes();
    for _ in 0..200 {
        if left < 10 {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
        left = m.handle().inodes();
    }
    assert!(left < 10, "{left} of {held} inodes kept after the kernel forgot them");

    // Everything still works, under fresh numbers that hold while used.
    assert_eq!(ls_l(m.path()), 3000);
    let f = m.p("f0042");
    assert_eq!(std::fs::read(&f).unwrap(), b"xx");
    let a = std::fs::metadata(&f).unwrap().ino();
    let open = std::fs::File::open(&f).unwrap();
    assert_eq!(open.metadata().unwrap().ino(), a);
    assert_eq!(
        std::fs::metadata(&f).unwrap().ino(),
        a,
        "stable while the kernel holds it"
    );
    assert_eq!(std::fs::read(m.p("sub/inner")).unwrap(), b"inner");
    drop(open);
    m.unmount();
}
