//! Hostile plugins (endless loop, memory growth, trap) get a typed error
//! within the deadline while the host keeps serving other plugins' calls.
//! The hostile probes that need a server are in plugins_live.rs.

mod plugins_support;

use byos3::plugin::{CallKind, DiskConfig, Limits, PluginError, PluginHost, PluginStatus};
use plugins_support::{files_with, runtime};

fn cfg(provider: &str) -> DiskConfig {
    DiskConfig {
        bucket: "b".into(),
        endpoint: Some("http://127.0.0.1:9000".into()),
        provider: Some(provider.into()),
        use_path_style: Some(true),
        ..Default::default()
    }
}

async fn host() -> PluginHost {
    PluginHost::load_files(
        &files_with(&["spin", "membomb", "trap"]),
        Some(&plugins_support::cache()),
        Limits::default(),
    )
    .await
    .unwrap()
}

fn plugin_error(e: byos3::plugin::ResolveError) -> PluginError {
    match e {
        byos3::plugin::ResolveError::Plugin(p) => p,
        other => panic!("expected a plugin failure, got {other}"),
    }
}

#[test]
fn endless_loop_hits_the_deadline() {
    runtime().block_on(async {
        let host = host().await;
        let err = plugin_error(host.resolve(&cfg("hostile-spin")).await.unwrap_err());
        assert!(
            matches!(&err, PluginError::Timeout { call: CallKind::Resolve, limit, .. } if *limit == Limits::default().call_timeout),
            "{err}"
        );
    });
}

#[test]
fn memory_growth_hits_the_cap() {
    runtime().block_on(async {
        let host = host().await;
        let err = plugin_error(host.resolve(&cfg("hostile-membomb")).await.unwrap_err());
        assert!(
            matches!(
                &err,
                PluginError::MemoryLimit {
                    call: CallKind::Resolve,
                    ..
                }
            ),
            "{err}"
        );
    });
}

#[test]
fn a_trap_is_a_typed_error() {
    runtime().block_on(async {
        let host = host().await;
        let err = plugin_error(host.resolve(&cfg("hostile-trap")).await.unwrap_err());
        assert!(
            matches!(
                &err,
                PluginError::Trap {
                    call: CallKind::Resolve,
                    ..
                }
            ),
            "{err}"
        );
    });
}

#[test]
fn the_host_keeps_serving_while_and_after_plugins_misbehave() {
    runtime().block_on(async {
        let host = host().await;
        // A hostile call and good calls at the same time.
        let spin = tokio::spawn({
            let host = host.clone();
            async move { host.resolve(&cfg("hostile-spin")).await }
        });
        let mut good = Vec::new();
        for _ in 0..20 {
            good.push(
                host.resolve(&cfg("minio"))
                    .await
                    .expect("minio resolves while another plugin spins"),
            );
        }
        assert!(spin.await.unwrap().is_err());
        for hostile in ["hostile-membomb", "hostile-trap", "hostile-spin"] {
            assert!(host.resolve(&cfg(hostile)).await.is_err());
            // After every failure, others still work.
            assert_eq!(host.resolve(&cfg("s3")).await.unwrap().provider, "s3");
        }
        // Auto-detection skips plugins whose `matches` traps or spins.
        let auto = DiskConfig {
            provider: None,
            ..cfg("x")
        };
        let r = host
            .resolve(&DiskConfig {
                endpoint: Some("https://s3.eu-west-1.amazonaws.com".into()),
                ..auto
            })
            .await
            .unwrap();
        assert_eq!(r.provider, "aws");
        // Misbehaviour is reported in the plugin list.
        for p in host.plugins() {
            if p.id.starts_with("hostile-") {
                match &p.status {
                    PluginStatus::Misbehaving { failures, last_error } => {
                        assert!(*failures >= 1 && !last_error.is_empty())
                    }
                    PluginStatus::Ok => panic!("{} not reported as misbehaving", p.id),
                }
            } else {
                assert_eq!(p.status, PluginStatus::Ok, "{}", p.id);
            }
        }
    });
}
