//! Provider plugins loaded by the real host: every bundled plugin, its own
//! resolve table through the component, provider selection, the compiled
//! cache, refusals, and the frozen 0.1 contract.

mod plugins_support;

use std::collections::BTreeSet;

use byos3::plugin::{DiskConfig, Limits, PluginError, PluginHost, PluginStatus, ResolveError};
use byos3::s3::Addressing;
use plugins_support::{bundled, dist, fixture, runtime};
use sha2::{Digest, Sha256};

const BUNDLED: &[&str] = &[
    "aws",
    "b2",
    "ceph",
    "digitalocean",
    "garage",
    "gcs",
    "minio",
    "r2",
    "s3",
    "tigris",
    "wasabi",
];

fn cfg(bucket: &str, endpoint: Option<&str>) -> DiskConfig {
    DiskConfig {
        bucket: bucket.into(),
        endpoint: endpoint.map(str::to_string),
        ..Default::default()
    }
}

#[test]
fn every_bundled_plugin_loads_and_describes_itself() {
    runtime().block_on(async {
        let host = bundled().await;
        let plugins = host.plugins();
        let ids: BTreeSet<&str> = plugins.iter().map(|p| p.id.as_str()).collect();
        for id in BUNDLED {
            assert!(ids.contains(id), "plugin {id} not loaded; loaded: {ids:?}");
        }
        for p in &plugins {
            assert_eq!(p.contract_version, "0.1.0", "{}", p.id);
            assert_eq!(p.sha256.len(), 64);
            assert_eq!(p.status, PluginStatus::Ok);
            assert!(!p.name.is_empty() && !p.version.is_empty(), "{p:?}");
            let bytes = std::fs::read(&p.file).unwrap();
            assert_eq!(hex(&Sha256::digest(&bytes)), p.sha256);
        }
    });
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Each plugin's own table (the one its native unit tests run), through
/// the built component and the host's conversion to an S3 endpoint.
#[test]
fn every_resolve_table_passes_through_the_components() {
    runtime().block_on(async {
        let host = bundled().await;
        let mut failures = Vec::new();
        let mut total = 0;
        for p in host.plugins() {
            let examples = host.examples(&p.id).await.unwrap();
            assert!(!examples.is_empty(), "plugin {} declares no resolve cases", p.id);
            for ex in examples {
                total += 1;
                let got = host.resolve_with(&p.id, &ex.config).await;
                let pass = match (&ex.expect, &got) {
                    (Ok(want), Ok(got)) => *want == got.endpoint && got.provider == p.id,
                    (Err(field), Err(ResolveError::Config { field: f, message, .. })) => {
                        field == f && !message.is_empty()
                    }
                    _ => false,
                };
                if !pass {
                    failures.push(format!(
                        "{} / {}: expected {:?}, got {:?}",
                        p.id, ex.name, ex.expect, got
                    ));
                }
            }
        }
        assert!(total >= 50, "only {total} resolve cases");
        assert!(
            failures.is_empty(),
            "{} failures:\n{}",
            failures.len(),
            failures.join("\n")
        );
    });
}

#[test]
fn provider_selection_named_then_matched_then_generic() {
    runtime().block_on(async {
        let host = bundled().await;
        // Named.
        let mut c = cfg("b", Some("http://127.0.0.1:9000"));
        c.provider = Some("minio".into());
        let r = host.resolve(&c).await.unwrap();
        assert_eq!(r.provider, "minio");
        assert_eq!(r.endpoint.addressing(), Addressing::Path);
        // Matched by endpoint.
        let r = host
            .resolve(&cfg(
                "data",
                Some("https://0123456789abcdef0123456789abcdef.r2.cloudflarestorage.com"),
            ))
            .await
            .unwrap();
        assert_eq!((r.provider.as_str(), r.endpoint.signing_region()), ("r2", "auto"));
        assert!(!r.endpoint.quirks().checksum_headers && r.endpoint.quirks().uniform_part_size);
        let mut c = cfg("data", Some("https://s3.amazonaws.com"));
        c.region = Some("eu-central-1".into());
        let r = host.resolve(&c).await.unwrap();
        assert_eq!(
            (r.provider.as_str(), r.endpoint.url().as_str()),
            ("aws", "https://s3.eu-central-1.amazonaws.com")
        );
        // Nothing matches: the generic plugin, settings exactly as given.
        let mut c = cfg("b", Some("http://10.1.2.3:7480"));
        c.use_path_style = Some(true);
        c.region = Some("zone-a".into());
        let r = host.resolve(&c).await.unwrap();
        assert_eq!((r.provider.as_str(), r.endpoint.signing_region()), ("s3", "zone-a"));
        // Unknown provider: a config error on `provider`.
        let mut c = cfg("b", Some("http://127.0.0.1:9000"));
        c.provider = Some("nope".into());
        let e = host.resolve(&c).await.unwrap_err();
        assert_eq!(e.field(), Some("provider"), "{e}");
        // A config error names the field and the provider.
        let e = host.resolve(&cfg("b", None)).await.unwrap_err();
        match e {
            ResolveError::Config { provider, field, .. } => {
                assert_eq!((provider.as_deref(), field.as_str()), (Some("s3"), "endpoint"))
            }
            other => panic!("expected a config error, got {other:?}"),
        }
    });
}

#[test]
fn a_restart_with_unchanged_plugins_does_not_recompile() {
    runtime().block_on(async {
        let cache = tempfile::tempdir().unwrap();
        let first = PluginHost::load_dir(&dist(), Some(cache.path()), Limits::default())
            .await
            .unwrap();
        let n = first.plugins().len();
        assert_eq!((first.load_report().compiled, first.load_report().cached), (n, 0));
        drop(first);
        let second = PluginHost::load_dir(&dist(), Some(cache.path()), Limits::default())
            .await
            .unwrap();
        assert_eq!((second.load_report().compiled, second.load_report().cached), (0, n));
        // The cached plugins work.
        let r = second.resolve(&cfg("b", Some("http://127.0.0.1:1"))).await.unwrap();
        assert_eq!(r.provider, "s3");
        // A damaged entry is recompiled, not trusted.
        for entry in std::fs::read_dir(cache.path()).unwrap() {
            let path = entry.unwrap().path();
            let mut bytes = std::fs::read(&path).unwrap();
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0xff;
            std::fs::write(&path, bytes).unwrap();
        }
        let third = PluginHost::load_dir(&dist(), Some(cache.path()), Limits::default())
            .await
            .unwrap();
        assert_eq!((third.load_report().compiled, third.load_report().cached), (n, 0));
    });
}

#[test]
fn duplicates_and_non_plugins_are_refused_naming_the_file() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(dist().join("s3.wasm"), dir.path().join("a.wasm")).unwrap();
        std::fs::copy(dist().join("s3.wasm"), dir.path().join("b.wasm")).unwrap();
        let err = PluginHost::load_dir(dir.path(), None, Limits::default())
            .await
            .err()
            .expect("duplicate refused");
        match &err {
            PluginError::Duplicate { id, file, first } => {
                assert_eq!(id, "s3");
                assert!(file.ends_with("b.wasm") && first.ends_with("a.wasm"), "{err}");
            }
            other => panic!("expected Duplicate, got {other}"),
        }
        assert!(err.to_string().contains("b.wasm"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("junk.wasm"), b"not wasm at all").unwrap();
        let err = PluginHost::load_dir(dir.path(), None, Limits::default())
            .await
            .err()
            .expect("junk refused");
        assert!(matches!(err, PluginError::NotAPlugin { .. }), "{err}");
        assert!(err.to_string().contains("junk.wasm"), "{err}");

        // A valid component that implements some other world.
        let dir = tempfile::tempdir().unwrap();
        let empty_component = b"\0asm\x0d\0\x01\0";
        std::fs::write(dir.path().join("other.wasm"), empty_component).unwrap();
        let err = PluginHost::load_dir(dir.path(), None, Limits::default())
            .await
            .err()
            .expect("other world refused");
        assert!(matches!(err, PluginError::NotAPlugin { .. }), "{err}");
        assert!(
            err.to_string().contains("other.wasm") && err.to_string().contains("byos3:provider/plugin@"),
            "{err}"
        );
    });
}

/// A plugin built with plain wit-bindgen against the frozen snapshot
/// `wit/snapshots/0.1.0` loads and works: the host keeps serving 0.1.
#[test]
fn a_plugin_built_against_the_frozen_0_1_snapshot_loads() {
    runtime().block_on(async {
        let host = PluginHost::load_files(
            &[fixture("frozen-0-1")],
            Some(&plugins_support::cache()),
            Limits::default(),
        )
        .await
        .unwrap();
        let info = &host.plugins()[0];
        assert_eq!(
            (info.id.as_str(), info.contract_version.as_str()),
            ("frozen-0-1", "0.1.0")
        );
        let examples = host.examples("frozen-0-1").await.unwrap();
        assert_eq!(examples.len(), 2);
        for ex in examples {
            let got = host.resolve_with("frozen-0-1", &ex.config).await;
            match (&ex.expect, &got) {
                (Ok(want), Ok(got)) => {
                    assert_eq!(*want, got.endpoint);
                    assert_eq!(got.endpoint.quirks().max_parts, 1000);
                }
                (Err(field), Err(e)) => assert_eq!(e.field(), Some(field.as_str())),
                _ => panic!("{}: expected {:?}, got {got:?}", ex.name, ex.expect),
            }
        }
    });
}

/// Released contracts never change: the snapshot's bytes are pinned, and
/// while the working contract is still 0.1.0 it must equal the snapshot.
#[test]
fn the_0_1_snapshot_is_frozen() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let snapshot = std::fs::read(format!("{root}/wit/snapshots/0.1.0/provider.wit")).unwrap();
    assert_eq!(
        hex(&Sha256::digest(&snapshot)),
        SNAPSHOT_0_1_SHA256,
        "wit/snapshots/0.1.0 changed: released contracts are frozen; put changes in a new version (see wit/README.md)"
    );
    let current = std::fs::read_to_string(format!("{root}/wit/provider.wit")).unwrap();
    if current.contains("package byos3:provider@0.1.0;") {
        assert_eq!(
            current.as_bytes(),
            snapshot.as_slice(),
            "wit/provider.wit still says 0.1.0 but differs from its frozen snapshot"
        );
    }
}

const SNAPSHOT_0_1_SHA256: &str = "8b668ca5e098c35cc2f71b453e82d1c02513ead4067eb0fc87b345bf83b0d37f";

/// A loopback server that accepts connections and then either says nothing
/// (`silent`) or answers in plain text (to a TLS client: a failed handshake).
/// Serves at most 16 connections; the thread ends with the test process.
fn fake_server(silent: bool) -> u16 {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().take(16) {
            let Ok(mut conn) = conn else { continue };
            if !silent {
                let _ = conn.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n");
            }
            held.push(conn);
        }
    });
    port
}

#[test]
fn probe_says_which_step_of_reaching_the_endpoint_failed() {
    use byos3::s3::{ClientConfig, Credentials, RetryPolicy, S3Client};
    runtime().block_on(async {
        let limits = Limits {
            request_timeout: std::time::Duration::from_millis(300),
            ..Limits::default()
        };
        let host = PluginHost::load_dir(&dist(), Some(&plugins_support::cache()), limits)
            .await
            .unwrap();
        let probe = |url: String| {
            let host = host.clone();
            async move {
                let mut c = cfg("b", Some(&url));
                c.use_path_style = Some(true);
                let r = host.resolve(&c).await.unwrap();
                let mut cc = ClientConfig::new(r.endpoint.clone(), "b", Credentials::new("AKID", "secret", None));
                cc.retry = RetryPolicy::none();
                host.probe(&c, &r, &S3Client::new(cc).unwrap()).await.unwrap()
            }
        };
        let silent = probe(format!("http://127.0.0.1:{}", fake_server(true))).await;
        assert_eq!(silent.code, "endpoint_unreachable", "{silent:?}");
        assert!(silent.message.contains("did not answer in time"), "{silent:?}");

        let plain = probe(format!("https://127.0.0.1:{}", fake_server(false))).await;
        assert_eq!(plain.code, "endpoint_unreachable", "{plain:?}");
        assert!(plain.message.contains("TLS"), "{plain:?}");

        // The whole probe is bounded too, whatever the plugin does.
        let tight = Limits {
            request_timeout: std::time::Duration::from_secs(5),
            probe_timeout: std::time::Duration::from_millis(200),
            ..Limits::default()
        };
        let host = PluginHost::load_dir(&dist(), Some(&plugins_support::cache()), tight)
            .await
            .unwrap();
        let url = format!("http://127.0.0.1:{}", fake_server(true));
        let mut c = cfg("b", Some(&url));
        c.use_path_style = Some(true);
        let r = host.resolve(&c).await.unwrap();
        let client = S3Client::new(ClientConfig::new(
            r.endpoint.clone(),
            "b",
            Credentials::new("AKID", "secret", None),
        ))
        .unwrap();
        let err = host.probe(&c, &r, &client).await.unwrap_err();
        assert!(matches!(err, PluginError::ProbeTimeout { .. }), "{err}");
    });
}
