//! Probes against the real S3 server (Garage): classification of every
//! answer the issue names, the `byos3 plugin test` conformance suite for the
//! plugins that can talk to a local server, and the hostile plugins that
//! need a server (huge response, another host).

mod plugins_support;

use byos3::plugin::conformance::{self, Target};
use byos3::plugin::{DiskConfig, Limits, PluginError, PluginHost, ResolvedEndpoint};
use byos3::s3::{Addressing, ClientConfig, Credentials, Endpoint, Payload, PutOptions, S3Client};
use byos3_tests::{free_port, Garage};
use plugins_support::{dist, files_with, runtime};

fn disk(g: &Garage, provider: &str) -> DiskConfig {
    DiskConfig {
        bucket: g.bucket.clone(),
        endpoint: Some(g.endpoint_url()),
        region: Some(g.region.clone()),
        use_path_style: Some(true),
        provider: Some(provider.into()),
        options: vec![],
    }
}

fn client(endpoint: &Endpoint, bucket: &str, creds: Credentials) -> S3Client {
    S3Client::new(ClientConfig::new(endpoint.clone(), bucket, creds)).unwrap()
}

#[test]
fn probe_classifies_what_the_server_answers() {
    let g = Garage::start().unwrap();
    runtime().block_on(async {
        let host = PluginHost::load_dir(&dist(), Some(&plugins_support::cache()), Limits::default())
            .await
            .unwrap();
        for provider in ["s3", "minio"] {
            let cfg = disk(&g, provider);
            let r = host.resolve(&cfg).await.unwrap();
            let probe = |cfg: DiskConfig, r: ResolvedEndpoint, c: S3Client| {
                let host = host.clone();
                async move { host.probe(&cfg, &r, &c).await.unwrap() }
            };
            let ok = probe(cfg.clone(), r.clone(), client(&r.endpoint, &g.bucket, g.credentials())).await;
            assert!(ok.ok && ok.code == "ok", "{provider}: {ok:?}");

            // Under a sub_path prefix too.
            let mut sub = cfg.clone();
            sub.options.push(("sub_path".into(), "team-a/".into()));
            let rep = probe(sub, r.clone(), client(&r.endpoint, &g.bucket, g.credentials())).await;
            assert_eq!(rep.code, "ok", "{provider}: {rep:?}");

            let missing = DiskConfig {
                bucket: "no-such-bucket".into(),
                ..cfg.clone()
            };
            let rep = probe(
                missing,
                r.clone(),
                client(&r.endpoint, "no-such-bucket", g.credentials()),
            )
            .await;
            assert_eq!(rep.code, "bucket_not_found", "{provider}: {rep:?}");
            assert!(!rep.ok && rep.hint.is_some());

            // Garage answers 403 AccessDenied "Forbidden: Invalid signature".
            let wrong_secret = Credentials::new(g.access_key.clone(), format!("{}x", g.secret_key), None);
            let rep = probe(cfg.clone(), r.clone(), client(&r.endpoint, &g.bucket, wrong_secret)).await;
            assert_eq!(rep.code, "signature_mismatch", "{provider}: {rep:?}");

            // Garage answers 403 AccessDenied "Forbidden: No such key: GK...".
            let unknown_key = Credentials::new("GK000000000000000000000000", g.secret_key.clone(), None);
            let rep = probe(cfg.clone(), r.clone(), client(&r.endpoint, &g.bucket, unknown_key)).await;
            assert_eq!(rep.code, "invalid_access_key", "{provider}: {rep:?}");

            let dead = Endpoint::new(
                &format!("http://127.0.0.1:{}", free_port()),
                &g.region,
                Addressing::Path,
            )
            .unwrap();
            let dead_r = ResolvedEndpoint {
                provider: provider.into(),
                endpoint: dead.clone(),
            };
            let rep = probe(cfg.clone(), dead_r, client(&dead, &g.bucket, g.credentials())).await;
            assert_eq!(rep.code, "endpoint_unreachable", "{provider}: {rep:?}");
            assert!(rep.message.contains("no connection"), "says which step failed: {rep:?}");
        }
        // Signed for the wrong region: Garage names the right one.
        let mut cfg = disk(&g, "s3");
        cfg.region = Some("eu-west-9".into());
        let r = host.resolve(&cfg).await.unwrap();
        let rep = host
            .probe(&cfg, &r, &client(&r.endpoint, &g.bucket, g.credentials()))
            .await
            .unwrap();
        assert_eq!(rep.code, "wrong_region", "{rep:?}");
        assert_eq!(rep.region.as_deref(), Some(g.region.as_str()), "{rep:?}");
    });
}

/// What `byos3 plugin test FILE --endpoint URL --bucket B --path-style`
/// runs, for every bundled plugin that can talk to a local server.
#[test]
fn conformance_suite_passes_for_minio_and_s3() {
    let g = Garage::start().unwrap();
    runtime().block_on(async {
        let target = Target {
            endpoint: g.endpoint_url(),
            bucket: g.bucket.clone(),
            region: Some(g.region.clone()),
            path_style: true,
            credentials: g.credentials(),
        };
        for plugin in ["minio", "s3"] {
            let outcomes = conformance::run(
                &dist().join(format!("{plugin}.wasm")),
                &target,
                Some(&plugins_support::cache()),
            )
            .await;
            let failed: Vec<_> = outcomes.iter().filter(|o| !o.passed).collect();
            assert!(failed.is_empty(), "{plugin}: {failed:#?}");
            for needed in [
                "load and describe",
                "probe is ok",
                "bucket_not_found",
                "signature_mismatch",
                "endpoint_unreachable",
            ] {
                assert!(
                    outcomes.iter().any(|o| o.name.contains(needed)),
                    "{plugin}: no case {needed:?}"
                );
            }
            assert!(outcomes.iter().filter(|o| o.name.starts_with("resolve table:")).count() >= 4);
        }
    });
}

/// Garage signing for region "garage": the garage plugin's default.
#[test]
fn garage_plugin_defaults_match_a_garage_server() {
    let g = Garage::start_with_region("garage").unwrap();
    runtime().block_on(async {
        let host = PluginHost::load_dir(&dist(), Some(&plugins_support::cache()), Limits::default())
            .await
            .unwrap();
        let cfg = DiskConfig {
            region: None,
            use_path_style: None,
            ..disk(&g, "garage")
        };
        let r = host.resolve(&cfg).await.unwrap();
        assert_eq!(r.endpoint.signing_region(), "garage");
        let rep = host
            .probe(&cfg, &r, &client(&r.endpoint, &g.bucket, g.credentials()))
            .await
            .unwrap();
        assert_eq!(rep.code, "ok", "{rep:?}");
    });
}

#[test]
fn hostile_probes_are_stopped_with_typed_errors() {
    let g = Garage::start().unwrap();
    runtime().block_on(async {
        let host = PluginHost::load_files(
            &files_with(&["huge", "otherhost"]),
            Some(&plugins_support::cache()),
            Limits::default(),
        )
        .await
        .unwrap();
        let gc = g.client(Addressing::Path);
        let big = vec![7u8; 3 * 1024 * 1024];
        gc.put_object("huge.bin", Payload::Bytes(big.into()), &PutOptions::default())
            .await
            .unwrap();

        // A probe pulling more than the byte cap through the import.
        let cfg = disk(&g, "hostile-huge");
        let r = host.resolve(&cfg).await.unwrap();
        let c = client(&r.endpoint, &g.bucket, g.credentials());
        let err = host.probe(&cfg, &r, &c).await.unwrap_err();
        assert!(
            matches!(err, PluginError::ProbeBytesLimit { limit, .. } if limit == Limits::default().probe_bytes),
            "{err}"
        );

        // Small answers: the request cap stops it instead.
        let mut small = cfg.clone();
        small.options.push(("key".into(), "absent".into()));
        let err = host.probe(&small, &r, &c).await.unwrap_err();
        assert!(matches!(err, PluginError::ProbeRequestLimit { .. }), "{err}");

        // The import has no host parameter; setting a Host header is refused
        // and ends the call before anything is sent (the client, the only
        // way out, talks to the resolved endpoint alone).
        let cfg = disk(&g, "hostile-otherhost");
        let r = host.resolve(&cfg).await.unwrap();
        let c = client(&r.endpoint, &g.bucket, g.credentials());
        let err = host.probe(&cfg, &r, &c).await.unwrap_err();
        match &err {
            PluginError::Forbidden { reason, .. } => assert!(reason.contains("Host"), "{err}"),
            other => panic!("expected Forbidden, got {other}"),
        }
        assert_eq!(
            c.stats().by_operation.iter().map(|(_, n, _)| n).sum::<u64>(),
            0,
            "no request was sent"
        );

        // The host keeps serving: a well-behaved plugin probes fine after.
        let cfg = disk(&g, "s3");
        let r = host.resolve(&cfg).await.unwrap();
        let rep = host
            .probe(&cfg, &r, &client(&r.endpoint, &g.bucket, g.credentials()))
            .await
            .unwrap();
        assert_eq!(rep.code, "ok");
        let statuses: Vec<_> = host
            .plugins()
            .into_iter()
            .filter(|p| p.id.starts_with("hostile-"))
            .map(|p| p.status)
            .collect();
        assert!(
            statuses
                .iter()
                .all(|s| matches!(s, byos3::plugin::PluginStatus::Misbehaving { .. })),
            "{statuses:?}"
        );
    });
}
