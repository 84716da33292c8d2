//! The memory budget bounds the mount: streaming a large file in and
//! reading it back with four readers at once grows this process's peak
//! resident set by less than the configured budget plus a margin. Alone
//! in its own test binary so no other test's allocations count.

mod fs_support;

use std::io::{Read, Seek, SeekFrom, Write};

use byos3::fs::MountOptions;
use byos3_tests::{pattern, peak_rss_bytes};
use fs_support::{Env, MIB};

/// The file repeats this many bytes of pattern, so checking it needs no
/// copy of the whole file in memory.
const PERIOD: usize = 8 * MIB;

fn check_range(f: &mut std::fs::File, expected: &[u8], range: std::ops::Range<usize>) {
    f.seek(SeekFrom::Start(range.start as u64)).unwrap();
    let mut buf = vec![0u8; MIB];
    let mut pos = range.start;
    while pos < range.end {
        let n = (range.end - pos).min(MIB);
        f.read_exact(&mut buf[..n]).unwrap();
        let at = pos % PERIOD;
        // MIB divides PERIOD and every range starts on a MIB boundary.
        assert!(buf[..n] == expected[at..at + n], "content differs at byte {pos}");
        pos += n;
    }
}

#[test]
fn streaming_through_the_mount_stays_within_the_memory_budget() {
    let env = Env::start();
    let budget = 48 * MIB as u64;
    let m = env.mount(
        "mem",
        MountOptions {
            memory_budget: budget,
            ..MountOptions::default()
        },
    );
    let expected = pattern(PERIOD, 11);
    let size = 24 * PERIOD;
    let before = peak_rss_bytes();

    // Streamed write: parts in flight and the part being filled all
    // come out of the budget.
    {
        let mut f = std::fs::File::create(m.p("big")).unwrap();
        for off in (0..size).step_by(MIB) {
            let at = off % PERIOD;
            f.write_all(&expected[at..at + MIB]).unwrap();
        }
    }
    // Four sequential readers at once, each wanting the largest window.
    std::thread::scope(|s| {
        for i in 0..4 {
            let (path, expected) = (m.p("big"), &expected);
            s.spawn(move || {
                let mut f = std::fs::File::open(path).unwrap();
                check_range(&mut f, expected, i * size / 4..(i + 1) * size / 4);
            });
        }
    });
    let peak = peak_rss_bytes();
    let grown = peak.saturating_sub(before);
    println!(
        "peak RSS before {} MiB, after {} MiB, grown {} MiB (budget {} MiB)",
        before / MIB as u64,
        peak / MIB as u64,
        grown / MIB as u64,
        budget / MIB as u64
    );
    // Generous: the budget itself bounds the mount, the margin absorbs
    // allocator and kernel-buffer noise. Unaccounted part buffers or
    // unbounded prefetching grow past it by far.
    let margin = 32 * MIB as u64;
    assert!(
        grown < budget + margin,
        "peak RSS grew {} MiB, more than the {} MiB budget + {} MiB",
        grown / MIB as u64,
        budget / MIB as u64,
        margin / MIB as u64
    );
    m.unmount();
}
