//! Memory-mapped files on a mount: programs that `mmap` their inputs
//! (databases, linkers, image tools) read the bucket's bytes, and shared
//! writable mappings reach the bucket once synced and closed.

mod fs_support;

use std::os::fd::AsRawFd;

use byos3_tests::pattern;
use fs_support::*;

/// Maps `len` bytes of `file`; unmapped on drop.
struct Map {
    ptr: *mut libc::c_void,
    len: usize,
}

impl Map {
    fn new(file: &std::fs::File, len: usize, writable: bool) -> Map {
        let prot = if writable {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_READ
        };
        // SAFETY: a fresh shared mapping of an open file; checked below.
        let ptr = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, libc::MAP_SHARED, file.as_raw_fd(), 0) };
        assert_ne!(ptr, libc::MAP_FAILED, "mmap: {}", std::io::Error::last_os_error());
        Map { ptr, len }
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: the mapping is `len` readable bytes while `self` lives.
        unsafe { std::slice::from_raw_parts(self.ptr as *const u8, self.len) }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: mapped writable by the caller that asks for this.
        unsafe { std::slice::from_raw_parts_mut(self.ptr as *mut u8, self.len) }
    }

    fn sync(&self) {
        // SAFETY: msync of our own mapping.
        let rc = unsafe { libc::msync(self.ptr, self.len, libc::MS_SYNC) };
        assert_eq!(rc, 0, "msync: {}", std::io::Error::last_os_error());
    }
}

impl Drop for Map {
    fn drop(&mut self) {
        // SAFETY: unmapping what `new` mapped.
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}

#[test]
fn mapped_reads_see_the_objects_bytes() {
    let env = Env::start();
    let data = pattern(5 * MIB + 123, 42);
    env.put("mm/in.bin", &data);
    let m = env.mount("mm", opts());
    let f = std::fs::File::open(m.p("in.bin")).unwrap();
    let map = Map::new(&f, data.len(), false);
    // Touch pages out of order, then all of it.
    for off in [4 * MIB, 17, 2 * MIB + 4095, data.len() - 1] {
        assert_eq!(map.bytes()[off], data[off], "byte {off}");
    }
    assert!(map.bytes() == &data[..]);
}

#[test]
fn a_shared_writable_mapping_reaches_the_bucket_after_msync_and_close() {
    let env = Env::start();
    let data = pattern(3 * MIB, 7);
    env.put("mw/f.bin", &data);
    let m = env.mount("mw", opts());
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(m.p("f.bin"))
        .unwrap();
    let mut map = Map::new(&f, data.len(), true);
    let mut expected = data.clone();
    for off in [0, MIB + 5, data.len() - 3] {
        map.bytes_mut()[off..off + 3].copy_from_slice(b"abc");
        expected[off..off + 3].copy_from_slice(b"abc");
    }
    map.sync();
    drop(map);
    drop(f);
    // close() uploads; read back through the bucket, not the page cache.
    assert!(env.get("mw/f.bin").unwrap() == expected);
}
