//! Benchmarks, run through `scripts/bench`. Each prints figures and ratios
//! against a baseline measured in the same run; nothing here asserts times.

use anyhow::{bail, Result};

fn main() -> Result<()> {
    let what = std::env::args().nth(1).unwrap_or_else(|| "s3".into());
    let mib = |env: &str, default: u64| std::env::var(env).ok().and_then(|v| v.parse().ok()).unwrap_or(default) << 20;
    match what.as_str() {
        "s3" => byos3_tests::bench_s3::run(&byos3_tests::bench_s3::S3BenchConfig {
            size: mib("BENCH_SIZE_MIB", 256),
            par_size: mib("BENCH_PAR_SIZE_MIB", 64),
        }),
        "attach" => byos3_tests::bench_attach::run(),
        "plugins" => byos3_tests::bench_plugins::run(),
        "api" => byos3_tests::bench_api::run(&byos3_tests::bench_api::ApiBenchConfig::default()),
        other => {
            bail!("unknown benchmark {other:?} (known: s3, plugins, api, attach; fs runs through scripts/bench-fs)")
        }
    }
}
