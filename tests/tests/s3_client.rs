//! The S3 client against a real S3 server (Garage on 127.0.0.1): every
//! operation in both addressing styles, typed errors, ranges, awkward keys
//! and retries through a fault-injecting proxy.

use byos3::s3::{
    Addressing, ClientConfig, Credentials, Endpoint, Operation, Payload, PutOptions, RawRequest, RetryPolicy, S3Client,
};
use byos3_tests::proxy::{Fault, FaultProxy};
use byos3_tests::{pattern, runtime as rt, Garage};
use bytes::Bytes;
use futures_util::TryStreamExt;

const MIB: usize = 1024 * 1024;

async fn exercise_every_operation(client: &S3Client) {
    client.head_bucket().await.expect("HeadBucket");

    // Put, head, get.
    let data = Bytes::from(pattern(100_000, 1));
    let opts = PutOptions {
        content_type: Some("application/x-test".into()),
        metadata: vec![("mode".into(), "644".into())],
        ..Default::default()
    };
    let etag = client
        .put_object("ops/a.bin", Payload::Bytes(data.clone()), &opts)
        .await
        .expect("PutObject");
    assert!(etag.is_some());
    let meta = client.head_object("ops/a.bin").await.expect("HeadObject");
    assert_eq!(meta.size, 100_000);
    assert_eq!(meta.etag, etag);
    assert_eq!(meta.content_type.as_deref(), Some("application/x-test"));
    assert_eq!(meta.metadata, vec![("mode".to_string(), "644".to_string())]);
    assert!(meta.last_modified.is_some());
    assert_eq!(client.get_object_bytes("ops/a.bin", None, 1 << 20).await.unwrap(), data);

    // Streaming PutObject.
    let chunks: Vec<std::io::Result<Bytes>> = (0..4).map(|i| Ok(Bytes::from(pattern(1000, i)))).collect();
    let stream = futures_util::StreamExt::boxed(futures_util::stream::iter(chunks));
    client
        .put_object(
            "ops/streamed",
            Payload::Stream { len: 4000, stream },
            &PutOptions::default(),
        )
        .await
        .expect("streamed put");
    let got = client.get_object_bytes("ops/streamed", None, 1 << 20).await.unwrap();
    let want: Vec<u8> = (0..4).flat_map(|i| pattern(1000, i)).collect();
    assert_eq!(&got[..], &want[..]);

    // Copy.
    client
        .copy_object("ops/a.bin", "ops/copy.bin", None)
        .await
        .expect("CopyObject");
    assert_eq!(
        client.get_object_bytes("ops/copy.bin", None, 1 << 20).await.unwrap(),
        data
    );

    // Listing: delimiter, prefixes, paging with continuation.
    for i in 0..5 {
        client
            .put_object(
                &format!("ops/dir/f{i}"),
                Payload::Bytes(Bytes::from_static(b"x")),
                &PutOptions::default(),
            )
            .await
            .unwrap();
    }
    let page = client
        .list_objects("ops/", Some("/"), None, None, None)
        .await
        .expect("ListObjectsV2");
    let keys: Vec<_> = page.objects.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, ["ops/a.bin", "ops/copy.bin", "ops/streamed"]);
    assert_eq!(page.prefixes, ["ops/dir/"]);
    assert_eq!(page.objects[0].size, 100_000);
    let pages: Vec<_> = client
        .list_pages("ops/dir/".into(), None, Some(2))
        .try_collect()
        .await
        .expect("paged listing");
    assert_eq!(pages.len(), 3, "5 keys in pages of 2");
    let all: Vec<_> = pages
        .iter()
        .flat_map(|p| p.objects.iter().map(|o| o.key.clone()))
        .collect();
    assert_eq!(all, (0..5).map(|i| format!("ops/dir/f{i}")).collect::<Vec<_>>());
    let after = client
        .list_objects("ops/dir/", None, None, None, Some("ops/dir/f2"))
        .await
        .unwrap();
    assert_eq!(after.objects.len(), 2, "start-after skips f0..f2");

    // Delete one, delete many.
    client.delete_object("ops/copy.bin").await.expect("DeleteObject");
    assert!(client.head_object("ops/copy.bin").await.unwrap_err().is_not_found());
    let many: Vec<String> = (0..5).map(|i| format!("ops/dir/f{i}")).collect();
    assert!(client.delete_objects(&many).await.expect("DeleteObjects").is_empty());
    assert!(client
        .list_objects("ops/dir/", None, None, None, None)
        .await
        .unwrap()
        .objects
        .is_empty());

    // Multipart: 3 x 5 MiB round-trips byte-exact.
    let parts_data: Vec<Bytes> = (0..3).map(|i| Bytes::from(pattern(5 * MIB, 10 + i))).collect();
    let id = client
        .create_multipart_upload("ops/mp.bin", &PutOptions::default())
        .await
        .expect("CreateMultipartUpload");
    let listed = client
        .list_multipart_uploads("ops/", None)
        .await
        .expect("ListMultipartUploads");
    assert!(listed
        .uploads
        .iter()
        .any(|u| u.upload_id == id && u.key == "ops/mp.bin"));
    let mut parts = Vec::new();
    for (i, d) in parts_data.iter().enumerate() {
        parts.push(
            client
                .upload_part("ops/mp.bin", &id, i as u32 + 1, Payload::Bytes(d.clone()))
                .await
                .expect("UploadPart"),
        );
    }
    client
        .complete_multipart_upload("ops/mp.bin", &id, &parts)
        .await
        .expect("CompleteMultipartUpload");
    let got = client.get_object_bytes("ops/mp.bin", None, 16 * MIB).await.unwrap();
    assert_eq!(got.len(), 15 * MIB);
    assert!(
        got.chunks(5 * MIB).zip(&parts_data).all(|(a, b)| a == &b[..]),
        "multipart content differs"
    );

    // UploadPartCopy: a new object from two ranges of the old one.
    let id2 = client
        .create_multipart_upload("ops/mp-copy.bin", &PutOptions::default())
        .await
        .unwrap();
    let p1 = client
        .upload_part_copy("ops/mp-copy.bin", &id2, 1, "ops/mp.bin", 0..(5 * MIB as u64))
        .await
        .expect("UploadPartCopy");
    let p2 = client
        .upload_part("ops/mp-copy.bin", &id2, 2, Payload::Bytes(Bytes::from_static(b"tail")))
        .await
        .unwrap();
    client
        .complete_multipart_upload("ops/mp-copy.bin", &id2, &[p1, p2])
        .await
        .unwrap();
    let got = client
        .get_object_bytes("ops/mp-copy.bin", None, 16 * MIB)
        .await
        .unwrap();
    assert_eq!(&got[..5 * MIB], &parts_data[0][..]);
    assert_eq!(&got[5 * MIB..], b"tail");

    // Abort leaves no upload behind.
    let id3 = client
        .create_multipart_upload("ops/aborted", &PutOptions::default())
        .await
        .unwrap();
    client
        .upload_part("ops/aborted", &id3, 1, Payload::Bytes(Bytes::from_static(b"x")))
        .await
        .unwrap();
    client
        .abort_multipart_upload("ops/aborted", &id3)
        .await
        .expect("AbortMultipartUpload");
    let listed = client.list_multipart_uploads("ops/", None).await.unwrap();
    assert!(
        !listed.uploads.iter().any(|u| u.upload_id == id3),
        "aborted upload still listed"
    );
    assert!(client.head_object("ops/aborted").await.unwrap_err().is_not_found());
}

#[test]
fn every_operation_path_style() {
    let garage = Garage::start().unwrap();
    rt().block_on(exercise_every_operation(&garage.client(Addressing::Path)));
}

#[test]
fn every_operation_virtual_hosted() {
    let garage = Garage::start().unwrap();
    let client = garage.client(Addressing::VirtualHosted);
    assert!(client.endpoint().request_host("byos3-test").starts_with("byos3-test."));
    rt().block_on(exercise_every_operation(&client));
}

#[test]
fn wrong_secret_unknown_key_and_missing_bucket_are_typed() {
    let garage = Garage::start().unwrap();
    rt().block_on(async {
        let mut cfg = garage.client_config(Addressing::Path);
        cfg.credentials = Credentials::new(garage.access_key.clone(), "not-the-secret-0000000000", None);
        let err = S3Client::new(cfg).unwrap().head_bucket().await.unwrap_err();
        assert!(err.is_auth(), "wrong secret: {err}");
        let err = S3Client::new({
            let mut c = garage.client_config(Addressing::Path);
            c.credentials = Credentials::new(garage.access_key.clone(), "not-the-secret-0000000000", None);
            c
        })
        .unwrap()
        .get_object("k", None, None)
        .await
        .err()
        .unwrap();
        let code = &err.service().unwrap().code;
        assert!(
            code == "SignatureDoesNotMatch" || code == "AccessDenied",
            "GET with wrong secret: {err}"
        );

        let mut cfg = garage.client_config(Addressing::Path);
        cfg.credentials = Credentials::new("GK000000000000000000000000", garage.secret_key.clone(), None);
        let err = S3Client::new(cfg)
            .unwrap()
            .list_objects("", None, None, None, None)
            .await
            .unwrap_err();
        assert!(err.is_auth(), "unknown key: {err}");

        let mut cfg = garage.client_config(Addressing::Path);
        cfg.bucket = "no-such-bucket".into();
        let client = S3Client::new(cfg).unwrap();
        let err = client.list_objects("", None, None, None, None).await.unwrap_err();
        assert!(
            err.is_not_found() && err.service().unwrap().is_no_such_bucket(),
            "missing bucket: {err}"
        );
        assert!(client.head_bucket().await.unwrap_err().is_not_found());
    });
}

#[test]
fn wrong_signing_region_is_refused_with_the_right_region() {
    let garage = Garage::start().unwrap();
    rt().block_on(async {
        let mut cfg = garage.client_config(Addressing::Path);
        cfg.endpoint = Endpoint::new(&garage.endpoint_url(), "eu-west-9", Addressing::Path).unwrap();
        let err = S3Client::new(cfg)
            .unwrap()
            .list_objects("", None, None, None, None)
            .await
            .unwrap_err();
        let svc = err.service().expect("a service error");
        assert!(svc.is_wrong_region(), "{err}");
        assert!(
            err.to_string().contains(byos3_tests::REGION),
            "the error names the expected region: {err}"
        );
    });
}

#[test]
fn ranged_gets_return_exactly_the_range() {
    let garage = Garage::start().unwrap();
    rt().block_on(async {
        let client = garage.client(Addressing::Path);
        let data = pattern(1000, 7);
        client
            .put_object("r", Payload::Bytes(data.clone().into()), &PutOptions::default())
            .await
            .unwrap();
        for range in [0..1, 999..1000, 100..600, 0..1000, 500..5000] {
            let out = client.get_object("r", Some(range.clone()), None).await.unwrap();
            let end = range.end.min(1000);
            assert_eq!(out.meta.size, 1000, "total size from Content-Range");
            assert_eq!(out.range, Some(range.start..end));
            let body = out.body.collect(1 << 20, "test").await.unwrap();
            assert_eq!(&body[..], &data[range.start as usize..end as usize], "range {range:?}");
        }
        let err = client
            .get_object("r", Some(1000..1010), None)
            .await
            .err()
            .expect("past the end");
        assert!(err.is_invalid_range(), "{err}");
        let etag = client.head_object("r").await.unwrap().etag.unwrap();
        assert!(client.get_object("r", None, Some(&etag)).await.is_ok());
        let err = client.get_object("r", None, Some("\"0000\"")).await.err().unwrap();
        assert!(err.is_precondition_failed(), "{err}");
    });
}

#[test]
fn awkward_keys_round_trip() {
    let garage = Garage::start().unwrap();
    rt().block_on(async {
        for addressing in [Addressing::Path, Addressing::VirtualHosted] {
            let client = garage.client(addressing);
            let keys = [
                "a b+c.txt",
                "x%2Fy",
                "dir//double",
                "q?u#e=r&y;",
                "unicodé/日本語/😀",
                "tilde~star*paren(1)",
                "dir/",
                " leading and trailing ",
                "quote\"apos'lt<gt>amp&",
            ];
            for (i, key) in keys.iter().enumerate() {
                let body = Bytes::from(format!("{i}:{key}"));
                client
                    .put_object(key, Payload::Bytes(body.clone()), &PutOptions::default())
                    .await
                    .unwrap_or_else(|e| panic!("put {key:?}: {e}"));
                assert_eq!(
                    client.get_object_bytes(key, None, 1 << 16).await.unwrap(),
                    body,
                    "get {key:?}"
                );
                assert_eq!(client.head_object(key).await.unwrap().size, body.len() as u64);
                let page = client.list_objects(key, None, None, None, None).await.unwrap();
                assert_eq!(
                    page.objects.first().map(|o| o.key.as_str()),
                    Some(*key),
                    "listed {key:?}"
                );
            }
            let all: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
            assert!(client.delete_objects(&all).await.unwrap().is_empty());
            let left = client.list_objects("", None, None, None, None).await.unwrap();
            assert!(left.objects.is_empty(), "{:?}", left.objects);
        }
    });
}

fn proxied_client(garage: &Garage, proxy: &FaultProxy, retry: RetryPolicy) -> S3Client {
    let mut cfg: ClientConfig = garage.client_config(Addressing::Path);
    cfg.endpoint = Endpoint::new(&proxy.url(), &garage.region, Addressing::Path).unwrap();
    cfg.retry = retry;
    S3Client::new(cfg).unwrap()
}

#[test]
fn retries_recover_from_503_and_resets() {
    let garage = Garage::start().unwrap();
    rt().block_on(async {
        let proxy = FaultProxy::start(garage.port).await.unwrap();
        let client = proxied_client(&garage, &proxy, RetryPolicy::default());
        client
            .put_object("k", Payload::Bytes(Bytes::from_static(b"v")), &PutOptions::default())
            .await
            .unwrap();

        proxy.clear();
        proxy.inject(Fault::SlowDown, 2);
        assert_eq!(&client.get_object_bytes("k", None, 16).await.unwrap()[..], b"v");
        let seen = proxy.seen();
        assert_eq!(
            seen.iter().map(|s| s.status).collect::<Vec<_>>(),
            [Some(503), Some(503), Some(200)]
        );

        proxy.clear();
        proxy.inject(Fault::Reset, 2);
        client
            .put_object("k2", Payload::Bytes(Bytes::from_static(b"w")), &PutOptions::default())
            .await
            .expect("PUT retried after resets");
        assert_eq!(proxy.seen().len(), 3);
        assert!(client.stats().retries >= 4);

        // Bounded: more failures than attempts gives the typed error.
        proxy.inject(Fault::SlowDown, 100);
        let err = client.head_object("k").await.unwrap_err();
        assert_eq!(err.service().map(|s| s.status), Some(503), "{err}");
        proxy.inject(Fault::SlowDown, 0);
    });
}

#[test]
fn non_idempotent_request_is_not_retried_after_a_reset() {
    let garage = Garage::start().unwrap();
    rt().block_on(async {
        let proxy = FaultProxy::start(garage.port).await.unwrap();
        let client = proxied_client(&garage, &proxy, RetryPolicy::default());
        proxy.inject(Fault::Reset, 1);
        let err = client
            .create_multipart_upload("mp", &PutOptions::default())
            .await
            .unwrap_err();
        assert!(
            !err.is_unreachable(),
            "a reset after sending is not a connect failure: {err}"
        );
        assert_eq!(
            proxy.seen().len(),
            1,
            "CreateMultipartUpload must not be re-sent blindly"
        );
        assert_eq!(client.stats().requests(Operation::CreateMultipartUpload), 1);
        // An explicit 503 means the server did not act: safe to retry.
        proxy.inject(Fault::SlowDown, 1);
        let id = client
            .create_multipart_upload("mp", &PutOptions::default())
            .await
            .expect("retried after 503");
        client.abort_multipart_upload("mp", &id).await.unwrap();
    });
}

#[test]
fn nothing_listening_is_a_connect_error() {
    let port = byos3_tests::free_port();
    rt().block_on(async {
        let ep = Endpoint::new(&format!("http://127.0.0.1:{port}"), "us-east-1", Addressing::Path).unwrap();
        let mut cfg = ClientConfig::new(ep, "b", Credentials::new("a", "b", None));
        cfg.retry = RetryPolicy {
            max_attempts: 2,
            ..RetryPolicy::default()
        };
        let err = S3Client::new(cfg).unwrap().head_bucket().await.unwrap_err();
        assert!(err.is_unreachable(), "{err}");
        assert!(err.to_string().contains("127.0.0.1"), "{err}");
    });
}

#[test]
fn raw_requests_are_read_only_and_cannot_redirect() {
    let garage = Garage::start().unwrap();
    rt().block_on(async {
        let client = garage.client(Addressing::Path);
        let head = RawRequest {
            method: "HEAD".into(),
            ..Default::default()
        };
        assert_eq!(client.send_raw(&head, 1024).await.unwrap().status, 200);
        let list = RawRequest {
            method: "GET".into(),
            query: vec![("list-type".into(), "2".into()), ("max-keys".into(), "1".into())],
            ..Default::default()
        };
        let resp = client.send_raw(&list, 1 << 16).await.unwrap();
        assert_eq!(resp.status, 200);
        assert!(String::from_utf8_lossy(&resp.body).contains("ListBucketResult"));
        let put = RawRequest {
            method: "PUT".into(),
            key: Some("x".into()),
            ..Default::default()
        };
        assert!(client.send_raw(&put, 1024).await.is_err());
        let hosted = RawRequest {
            method: "GET".into(),
            headers: vec![("Host".into(), "169.254.169.254".into())],
            ..Default::default()
        };
        assert!(client.send_raw(&hosted, 1024).await.is_err());
        let missing = RawRequest {
            method: "GET".into(),
            key: Some("nope".into()),
            ..Default::default()
        };
        assert_eq!(client.send_raw(&missing, 1 << 16).await.unwrap().status, 404);
    });
}

#[test]
fn credentials_can_be_rotated_on_a_live_client() {
    let garage = Garage::start().unwrap();
    rt().block_on(async {
        let mut cfg = garage.client_config(Addressing::Path);
        cfg.credentials = Credentials::new(garage.access_key.clone(), "wrong-wrong-wrong-wrong", None);
        let client = S3Client::new(cfg).unwrap();
        assert!(client.head_bucket().await.is_err());
        client.set_credentials(garage.credentials());
        client.head_bucket().await.expect("new credentials used");
    });
}

#[test]
fn https_endpoint_with_a_private_ca() {
    let garage = Garage::start().unwrap();
    rt().block_on(async {
        let front = byos3_tests::tls::TlsFront::start(garage.port, &["localhost"])
            .await
            .unwrap();
        let url = format!("https://localhost:{}", front.port);
        let mut cfg = garage.client_config(Addressing::Path);
        cfg.endpoint = Endpoint::new(&url, &garage.region, Addressing::Path).unwrap();
        cfg.retry = RetryPolicy::none();

        // Without the CA the server's certificate is refused.
        let err = S3Client::new(cfg.clone()).unwrap().head_bucket().await.unwrap_err();
        assert!(
            err.is_unreachable() && err.to_string().to_lowercase().contains("certificate"),
            "{err}"
        );

        // With it, requests go through TLS to the real server.
        cfg.transport.extra_ca_file = Some(front.ca_file.clone());
        let client = S3Client::new(cfg.clone()).unwrap();
        client.head_bucket().await.expect("HeadBucket over TLS");
        client
            .put_object(
                "tls/k",
                Payload::Bytes(Bytes::from_static(b"over tls")),
                &PutOptions::default(),
            )
            .await
            .unwrap();
        assert_eq!(
            &client.get_object_bytes("tls/k", None, 64).await.unwrap()[..],
            b"over tls"
        );

        // A CA file that holds no certificate is a clear build error.
        let empty = tempfile::NamedTempFile::new().unwrap();
        cfg.transport.extra_ca_file = Some(empty.path().to_path_buf());
        let err = S3Client::new(cfg).unwrap_err();
        assert!(err.to_string().contains("no usable certificate"), "{err}");
    });
}

/// Plain HTTP bodies carry their SHA-256 in the signature; over TLS,
/// which protects them already, they go unsigned.
#[test]
fn payloads_are_signed_over_http_and_sent_unsigned_over_tls() {
    let garage = Garage::start().unwrap();
    rt().block_on(async {
        let proxy = FaultProxy::start(garage.port).await.unwrap();
        let front = byos3_tests::tls::TlsFront::start(proxy.addr.port(), &["localhost"])
            .await
            .unwrap();
        let body = Bytes::from_static(b"integrity");
        let content_sha256 = |seen: &[byos3_tests::proxy::Seen]| {
            let put = seen.iter().find(|s| s.method == "PUT").expect("a PUT went through");
            put.headers
                .iter()
                .find(|(k, _)| k == "x-amz-content-sha256")
                .map(|(_, v)| v.clone())
                .expect("x-amz-content-sha256 sent")
        };

        let mut cfg = garage.client_config(Addressing::Path);
        cfg.endpoint = Endpoint::new(&proxy.url(), &garage.region, Addressing::Path).unwrap();
        let plain = S3Client::new(cfg.clone()).unwrap();
        plain
            .put_object("sig/plain", Payload::Bytes(body.clone()), &PutOptions::default())
            .await
            .unwrap();
        let expected: String = {
            use sha2::Digest;
            sha2::Sha256::digest(&body).iter().map(|b| format!("{b:02x}")).collect()
        };
        assert_eq!(content_sha256(&proxy.seen()), expected, "signed over http");
        proxy.clear();

        cfg.endpoint = Endpoint::new(
            &format!("https://localhost:{}", front.port),
            &garage.region,
            Addressing::Path,
        )
        .unwrap();
        cfg.transport.extra_ca_file = Some(front.ca_file.clone());
        let tls = S3Client::new(cfg).unwrap();
        tls.put_object("sig/tls", Payload::Bytes(body.clone()), &PutOptions::default())
            .await
            .unwrap();
        assert_eq!(content_sha256(&proxy.seen()), "UNSIGNED-PAYLOAD", "unsigned over tls");
        assert_eq!(
            &tls.get_object_bytes("sig/tls", None, 64).await.unwrap()[..],
            b"integrity"
        );
    });
}

#[test]
fn checksum_headers_are_sent_only_when_the_quirk_asks() {
    let garage = Garage::start().unwrap();
    rt().block_on(async {
        let proxy = FaultProxy::start(garage.port).await.unwrap();
        let mut cfg: ClientConfig = garage.client_config(Addressing::Path);
        let quirks = byos3::s3::Quirks {
            checksum_headers: true,
            ..Default::default()
        };
        cfg.endpoint = Endpoint::new(&proxy.url(), &garage.region, Addressing::Path)
            .unwrap()
            .with_quirks(quirks);
        let client = S3Client::new(cfg).unwrap();
        client
            .put_object(
                "sum/k",
                Payload::Bytes(Bytes::from_static(b"checked")),
                &PutOptions::default(),
            )
            .await
            .expect("the store accepts a correct CRC32");
        assert_eq!(
            &client.get_object_bytes("sum/k", None, 64).await.unwrap()[..],
            b"checked"
        );
        let seen = proxy.seen();
        assert!(
            seen[0]
                .headers
                .iter()
                .any(|(k, v)| k == "x-amz-checksum-crc32" && v == "rQO6gw=="),
            "{:?}",
            seen[0].headers
        );

        // The default (no quirk) sends none.
        proxy.clear();
        let plain = garage.client(Addressing::Path);
        let mut cfg = garage.client_config(Addressing::Path);
        cfg.endpoint = Endpoint::new(&proxy.url(), &garage.region, Addressing::Path).unwrap();
        S3Client::new(cfg)
            .unwrap()
            .put_object(
                "sum/k2",
                Payload::Bytes(Bytes::from_static(b"x")),
                &PutOptions::default(),
            )
            .await
            .unwrap();
        assert!(proxy.seen()[0]
            .headers
            .iter()
            .all(|(k, _)| !k.starts_with("x-amz-checksum") && k != "x-amz-sdk-checksum-algorithm"));
        assert!(plain.head_object("sum/k2").await.is_ok());
    });
}
