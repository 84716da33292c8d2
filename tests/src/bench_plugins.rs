//! `scripts/bench plugins`: the provider plugin host. Loading the bundled
//! plugin directory cold (compiling every component) and warm (from the
//! compiled cache), instantiating a plugin, and a `resolve` call (fresh
//! instance + call), in microseconds.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use byos3::plugin::{default_plugin_dir, DiskConfig, Limits, PluginHost};

fn us(d: Duration) -> u128 {
    d.as_micros()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Runs the benchmark and prints its table.
pub fn run() -> Result<()> {
    let dir = default_plugin_dir();
    if !dir.join("s3.wasm").is_file() {
        bail!("no bundled plugins in {}: run scripts/build-plugins", dir.display());
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        let files = std::fs::read_dir(&dir)?
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "wasm"))
            })
            .count();

        let mut cold = Vec::new();
        for _ in 0..3 {
            let cache = tempfile::tempdir()?;
            let t0 = Instant::now();
            let host = PluginHost::load_dir(&dir, Some(cache.path()), Limits::default()).await?;
            cold.push(t0.elapsed());
            assert_eq!(host.load_report().compiled, files);
        }
        let cache = tempfile::tempdir()?;
        PluginHost::load_dir(&dir, Some(cache.path()), Limits::default()).await?;
        let mut warm = Vec::new();
        let mut host = None;
        for _ in 0..5 {
            let t0 = Instant::now();
            let h = PluginHost::load_dir(&dir, Some(cache.path()), Limits::default()).await?;
            warm.push(t0.elapsed());
            if h.load_report().compiled != 0 {
                bail!("warm load recompiled {} plugins", h.load_report().compiled);
            }
            host = Some(h);
        }
        let host = host.context("loaded")?;

        const N: usize = 300;
        let mut inst = Vec::with_capacity(N);
        for _ in 0..N {
            let t0 = Instant::now();
            host.instantiate("s3").await?;
            inst.push(t0.elapsed());
        }
        let cfg = DiskConfig {
            bucket: "bench".into(),
            endpoint: Some("http://127.0.0.1:9000".into()),
            use_path_style: Some(true),
            provider: Some("s3".into()),
            ..Default::default()
        };
        let mut resolve = Vec::with_capacity(N);
        for _ in 0..N {
            let t0 = Instant::now();
            host.resolve(&cfg).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            resolve.push(t0.elapsed());
        }
        let auto = DiskConfig {
            provider: None,
            endpoint: Some("https://s3.example.test".into()),
            ..cfg.clone()
        };
        let mut select = Vec::with_capacity(50);
        for _ in 0..50 {
            let t0 = Instant::now();
            host.resolve(&auto).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            select.push(t0.elapsed());
        }

        println!("plugin host ({files} bundled plugins in {}; median)", dir.display());
        println!("  {:<52} {:>10}", "step", "µs");
        println!(
            "  {:<52} {:>10}",
            "load dir, cold (compile all, 3 runs)",
            us(median(cold))
        );
        println!(
            "  {:<52} {:>10}",
            "load dir, warm (compiled cache, 5 runs)",
            us(median(warm))
        );
        println!(
            "  {:<52} {:>10}",
            format!("instantiate one plugin ({N} runs)"),
            us(median(inst))
        );
        println!(
            "  {:<52} {:>10}",
            format!("resolve, provider named (instance + call, {N} runs)"),
            us(median(resolve))
        );
        println!(
            "  {:<52} {:>10}",
            "resolve, auto-detected (every matches + resolve, 50)",
            us(median(select))
        );
        Ok(())
    })
}
