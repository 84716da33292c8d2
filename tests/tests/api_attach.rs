//! Sandboxes and attachments over real HTTP: register -> attach (a real
//! FUSE mount) -> files land in the bucket under the sub path -> detach,
//! bucket untouched; attach at create time, read-only, conflicts and
//! escapes, tenancy, and re-attach after a restart.

mod api_support;

use std::path::PathBuf;

use api_support::*;
use byos3::s3::Addressing;
use byos3_tests::Garage;
use serde_json::{json, Value};

fn root_of(v: &Value) -> PathBuf {
    PathBuf::from(v["root"].as_str().expect("sandbox root"))
}

#[test]
fn attach_write_detach_and_restart() {
    let g = Garage::start().unwrap();
    let rt = runtime();
    let mut s = rt.block_on(InProc::start()).unwrap();
    let _guard = MountGuard(s.state_dir().to_path_buf());
    let api = s.api.clone();

    rt.block_on(async {
        let r = api.post("/v1/disks", ALICE, &disk_body("eu-data", &g)).await;
        assert_eq!(r.status, 201, "{}", r.text());

        let r = api.post("/v1/sandboxes", ALICE, &json!({"name": "sb-one"})).await;
        let sb = r.ok(201).clone();
        for k in [
            "id",
            "status",
            "created_at",
            "vcpu",
            "mem_mib",
            "disk_mib",
            "ingress_enabled",
            "name",
            "root",
        ] {
            assert!(sb.get(k).is_some(), "SandboxView lacks {k}: {sb}");
        }
        assert!(sb["id"].as_str().unwrap().starts_with("sb_"));
        assert_eq!(sb["status"], "running");
        let id = sb["id"].as_str().unwrap().to_string();
        let root = root_of(&sb);

        let attach = json!({"disk_id": "eu-data", "mount_path": "/mnt/data", "sub_path": "team-a/"});
        let r = api.post(&format!("/v1/sandboxes/{id}/disks"), ALICE, &attach).await;
        assert_eq!(r.ok(201), &json!({"ok": true}));
        // The same attach again is idempotent.
        let r = api.post(&format!("/v1/sandboxes/{id}/disks"), ALICE, &attach).await;
        assert_eq!(r.status, 201, "{}", r.text());

        let dir = root.join("mnt/data");
        assert!(is_mounted(&dir));
        std::fs::write(dir.join("hello.txt"), b"hello").unwrap();
        std::fs::create_dir(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sub/x.bin"), vec![1u8; 300_000]).unwrap();

        let r = api.get("/v1/sandboxes/sb-one/disks", ALICE).await;
        let page = r.ok(200);
        assert_eq!(page["pagination"]["total"], 1);
        let row = &page["data"][0];
        assert_eq!(row["name"], "eu-data");
        assert_eq!(row["mount_path"], "/mnt/data");
        assert_eq!(row["sub_path"], "team-a/");
        assert_eq!(row["mount_status"], "mounted");
        assert_eq!(row["config"]["bucket"], g.bucket.as_str());
    });
    let before = keys_in(&g, &rt, "");
    assert!(
        before.contains(&"team-a/hello.txt".to_string()) && before.contains(&"team-a/sub/x.bin".to_string()),
        "{before:?}"
    );

    rt.block_on(async {
        // Conflicts, escapes and tenancy.
        let bad = [
            (
                json!({"disk_id": "eu-data", "mount_path": "/mnt/data/inner"}),
                409,
                "mount_path_in_use",
            ),
            (
                json!({"disk_id": "eu-data", "mount_path": "/mnt"}),
                409,
                "mount_path_in_use",
            ),
            (
                json!({"disk_id": "eu-data", "mount_path": "mnt/x"}),
                400,
                "invalid_mount_path",
            ),
            (
                json!({"disk_id": "eu-data", "mount_path": "/mnt/../etc"}),
                400,
                "invalid_mount_path",
            ),
            (
                json!({"disk_id": "eu-data", "mount_path": "/y", "sub_path": "/abs"}),
                400,
                "invalid_sub_path",
            ),
            (
                json!({"disk_id": "eu-data", "mount_path": "/y", "sub_path": "a/../../b"}),
                400,
                "invalid_sub_path",
            ),
            (json!({"disk_id": "nope", "mount_path": "/y"}), 404, "not_found"),
            (json!({"disk": "eu-data", "mount_path": "/y"}), 400, "unknown_field"),
        ];
        for (body, status, code) in bad {
            let r = api.post("/v1/sandboxes/sb-one/disks", ALICE, &body).await;
            assert_eq!((r.status, r.code()), (status, code), "{body}: {}", r.text());
        }
        assert_eq!(api.get("/v1/sandboxes/sb-one", BOB).await.status, 404);
        assert_eq!(api.get("/v1/sandboxes/sb-one/disks", BOB).await.status, 404);
        assert_eq!(
            api.delete("/v1/sandboxes/sb-one/disks/eu-data?mount_path=/mnt/data", BOB)
                .await
                .status,
            404
        );

        // A disk in use cannot be deleted.
        let r = api.delete("/v1/disks/eu-data", ALICE).await;
        assert_eq!((r.status, r.code()), (409, "disk_attached"), "{}", r.text());
    });

    // Restart: shutdown unmounts; the next start mounts again.
    let state = s.dir.path().to_path_buf();
    rt.block_on(s.stop());
    let sb_root = state.join("sandboxes");
    let root = std::fs::read_dir(&sb_root).unwrap().next().unwrap().unwrap().path();
    assert!(!is_mounted(&root.join("mnt/data")), "shutdown unmounts");
    let dir = std::mem::replace(&mut s.dir, tempfile::tempdir().unwrap());
    let s2 = rt.block_on(InProc::start_with(dir, |_| {})).unwrap();
    let api = s2.api.clone();
    rt.block_on(async {
        let r = api.get("/v1/sandboxes/sb-one/disks", ALICE).await;
        assert_eq!(r.ok(200)["data"][0]["mount_status"], "mounted", "{}", r.text());
        assert_eq!(std::fs::read(root.join("mnt/data/hello.txt")).unwrap(), b"hello");

        let r = api.delete("/v1/sandboxes/sb-one/disks/eu-data", ALICE).await;
        assert_eq!((r.status, r.code()), (400, "missing_query_parameter"), "{}", r.text());
        let r = api
            .delete("/v1/sandboxes/sb-one/disks/eu-data?mount_path=/mnt/data", ALICE)
            .await;
        assert_eq!(r.ok(200), &json!({"detached": true}));
        assert!(!is_mounted(&root.join("mnt/data")));
        let r = api
            .delete("/v1/sandboxes/sb-one/disks/eu-data?mount_path=/mnt/data", ALICE)
            .await;
        assert_eq!(r.status, 404, "{}", r.text());
        assert_eq!(
            api.get("/v1/sandboxes/sb-one/disks", ALICE).await.ok(200)["pagination"]["total"],
            0
        );
    });
    assert_eq!(keys_in(&g, &rt, ""), before, "detach never touches the bucket");
    let mut s2 = s2;
    rt.block_on(s2.stop());
}

#[test]
fn attach_at_create_time_read_only_and_delete_sandbox() {
    let g = Garage::start().unwrap();
    let rt = runtime();
    let mut s = rt.block_on(InProc::start()).unwrap();
    let _guard = MountGuard(s.state_dir().to_path_buf());
    let api = s.api.clone();
    rt.block_on(async {
        assert_eq!(api.post("/v1/disks", ALICE, &disk_body("shared", &g)).await.status, 201);
        let body = json!({"disks": [
            {"disk_id": "shared", "mount_path": "/ro", "sub_path": "a", "read_only": true},
            {"disk_id": "shared", "mount_path": "/rw", "sub_path": "b"},
            {"disk_id": "missing", "mount_path": "/x"},
        ]});
        let r = api.post("/v1/sandboxes", ALICE, &body).await;
        let sb = r.ok(201).clone();
        let disks = sb["disks"].as_array().unwrap();
        assert_eq!(disks[0]["mount_status"], "mounted", "{sb}");
        assert_eq!(disks[1]["mount_status"], "mounted", "{sb}");
        assert_eq!(disks[2]["mount_status"], "error", "{sb}");
        assert!(disks[2]["mount_error"].as_str().unwrap().contains("not found"), "{sb}");
        let root = root_of(&sb);

        let err = std::fs::write(root.join("ro/x"), b"x").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");
        std::fs::write(root.join("rw/only-b.txt"), b"b").unwrap();
        let names: Vec<String> = std::fs::read_dir(root.join("ro"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.is_empty(), "the read-only mount shows only prefix a/: {names:?}");

        let id = sb["id"].as_str().unwrap();
        let r = api.delete(&format!("/v1/sandboxes/{id}"), ALICE).await;
        assert_eq!(r.ok(200), &json!({"deleted": true}));
        assert!(!is_mounted(&root.join("ro")) && !is_mounted(&root.join("rw")));
        assert_eq!(api.get(&format!("/v1/sandboxes/{id}"), ALICE).await.status, 404);
        assert_eq!(
            api.delete("/v1/disks/shared", ALICE).await.status,
            200,
            "no attachment left"
        );
    });
    assert_eq!(keys_in(&g, &rt, "b/"), ["b/only-b.txt"]);
    rt.block_on(s.stop());
}

#[test]
fn the_public_client_drives_the_whole_flow() {
    use byos3::client::{AttachSpec, Client, ClientError, NewDisk, SandboxSpec};
    let g = Garage::start().unwrap();
    let rt = runtime();
    let mut s = rt.block_on(InProc::start()).unwrap();
    let _guard = MountGuard(s.state_dir().to_path_buf());
    let base = s.api.base.clone();
    rt.block_on(async {
        let api = Client::new(&base, ALICE).unwrap();
        let mut new = NewDisk::new("via-client", &g.bucket, &g.endpoint_url());
        new.use_path_style = Some(true);
        let disk = api
            .create_disk(&new, &g.access_key, &g.secret_key)
            .await
            .expect("create_disk");
        assert!(disk.id.starts_with("disk_"));
        assert_eq!(api.get_disk("via-client").await.unwrap(), disk);
        assert_eq!(api.list_disks(10, 0).await.unwrap().pagination.total, 1);

        // A wrong secret is a typed fail with the probe's code.
        let err = api
            .create_disk(
                &NewDisk::new("bad", &g.bucket, &g.endpoint_url()),
                &g.access_key,
                "wrong-secret-0000",
            )
            .await
            .unwrap_err();
        assert!(matches!(&err, ClientError::Fail { status: 422, .. }), "{err}");
        assert_eq!(err.code(), Some("signature_mismatch"));

        let sb = api
            .create_sandbox(
                &SandboxSpec::new()
                    .id("via-client-1")
                    .name("via-client")
                    .disk(AttachSpec::new("via-client", "/data").sub_path("c/")),
            )
            .await
            .unwrap();
        assert_eq!(sb.disks[0].mount_status, "mounted", "{sb:?}");
        assert_eq!(sb.id, "via-client-1");
        let root = PathBuf::from(sb.root.clone().unwrap());
        std::fs::write(root.join("data/f.txt"), b"via client").unwrap();
        api.attach(&sb.id, &AttachSpec::new(&disk.id, "/ro").sub_path("c/").read_only(true))
            .await
            .unwrap();
        assert_eq!(std::fs::read(root.join("ro/f.txt")).unwrap(), b"via client");
        let atts = api.attachments(&sb.id, 50, 0).await.unwrap();
        assert_eq!(atts.data.len(), 2);
        assert!(atts.data.iter().all(|a| a.mount_status == "mounted"));

        // Rotating credentials reaches the live mounts (same keys: the harness has one pair).
        api.rotate_credentials(&disk.id, &g.access_key, &g.secret_key)
            .await
            .unwrap();
        std::fs::write(root.join("data/after-rotation.txt"), b"x").unwrap();

        api.detach(&sb.id, "via-client", "/ro").await.unwrap();
        let err = api.detach(&sb.id, "via-client", "/ro").await.unwrap_err();
        assert_eq!(err.code(), Some("not_found"), "{err}");
        api.delete_sandbox(&sb.id).await.unwrap();
        api.delete_disk("via-client").await.unwrap();
        let err = Client::new(&base, "not-a-key")
            .unwrap()
            .list_disks(1, 0)
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Fail { status: 401, .. }), "{err}");
    });
    assert_eq!(keys_in(&g, &rt, "c/"), ["c/after-rotation.txt", "c/f.txt"]);
    rt.block_on(s.stop());
}

/// Polls `GET /v1/sandboxes/{id}/disks` until the first row satisfies
/// `want` (at most `secs` seconds); returns that row.
async fn wait_for_row(api: &Api, id: &str, secs: u64, want: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        let r = api.get(&format!("/v1/sandboxes/{id}/disks"), ALICE).await;
        let row = r.ok(200)["data"][0].clone();
        if want(&row) || std::time::Instant::now() > deadline {
            return row;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[test]
fn revoked_credentials_and_a_dead_mount_are_reported_and_metrics_count_the_traffic() {
    let g = Garage::start().unwrap();
    let rt = runtime();
    let mut s = rt.block_on(InProc::start()).unwrap();
    let _guard = MountGuard(s.state_dir().to_path_buf());
    let api = s.api.clone();
    let revoke = |verb: &str| {
        g.admin(&[
            "bucket",
            verb,
            "--read",
            "--write",
            "--owner",
            &g.bucket,
            "--key",
            &g.access_key,
        ])
        .unwrap();
    };

    rt.block_on(async {
        api.post("/v1/disks", ALICE, &disk_body("watched", &g)).await.ok(201);
        let body =
            json!({"id": "health-1", "disks": [{"disk_id": "watched", "mount_path": "/mnt/data", "sub_path": "h/"}]});
        let sb = api.post("/v1/sandboxes", ALICE, &body).await.ok(201).clone();
        assert_eq!(sb["id"], "health-1");
        assert_eq!(sb["disks"][0]["mount_status"], "mounted", "{sb}");
        let dir = root_of(&sb).join("mnt/data");
        std::fs::write(dir.join("f.txt"), b"one").unwrap();

        let disk_id = api.get("/v1/disks/watched", ALICE).await.ok(200)["id"]
            .as_str()
            .unwrap()
            .to_string();
        // Loopback listener: no key needed.
        let r = api.raw("GET", "/metrics", None, &[], Vec::new()).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let text = r.text();
        let labels = format!("sandbox=\"health-1\",disk=\"{disk_id}\",mount_path=\"/mnt/data\"");
        assert!(text.contains(&format!("byos3_attachment_up{{{labels}}} 1")), "{text}");
        assert!(
            text.contains(&format!(
                "byos3_attachment_s3_requests_total{{{labels},operation=\"PutObject\",outcome=\"2xx\"}} 1"
            )),
            "{text}"
        );
        assert!(text.contains("byos3_api_requests_total{route=\"/v1/sandboxes\",method=\"POST\",status=\"201\"} 1"));
        // Bytes the sandbox wrote through the mount ("one").
        assert!(
            text.contains(&format!("byos3_attachment_written_bytes_total{{{labels}}} 3")),
            "{text}"
        );
        // Nothing is being read: no read-ahead memory is held.
        assert!(
            text.contains(&format!("byos3_attachment_prefetch_memory_bytes{{{labels}}} 0")),
            "{text}"
        );
        // The root and the file the kernel still holds.
        assert!(
            text.contains(&format!("byos3_attachment_inodes{{{labels}}} 2")),
            "{text}"
        );
        assert!(text.contains("byos3_api_request_duration_seconds_count{route=\"/v1/disks/{id}\",method=\"GET\"} 1"));
        assert!(!text.contains(&g.secret_key) && !text.contains(&g.access_key));

        // The bucket stops accepting the key: the next write fails with an
        // errno and the attachment says why.
        revoke("deny");
        let mut refused = false;
        for i in 0..50 {
            if std::fs::write(dir.join(format!("g{i}.txt")), b"two").is_err() {
                refused = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(refused, "writes kept succeeding after the key was denied");
        let row = wait_for_row(&api, "health-1", 5, |r| r["mount_status"] == "error").await;
        assert_eq!(row["mount_status"], "error", "{row}");
        assert!(
            row["mount_error"]
                .as_str()
                .unwrap()
                .contains("refuses the disk's credentials"),
            "{row}"
        );
        let text = api.raw("GET", "/metrics", None, &[], Vec::new()).await.text();
        assert!(text.contains(&format!("byos3_attachment_up{{{labels}}} 0")), "{text}");

        // Access restored: the next successful request heals the mount.
        revoke("allow");
        let mut healed = false;
        for i in 0..50 {
            if std::fs::write(dir.join(format!("h{i}.txt")), b"three").is_ok() {
                healed = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(healed);
        let row = wait_for_row(&api, "health-1", 5, |r| r["mount_status"] == "mounted").await;
        assert_eq!(row["mount_status"], "mounted", "{row}");
        assert!(row["mount_error"].is_null(), "{row}");

        // Unmounted behind byos3's back: reported, and detach still works.
        let st = std::process::Command::new("fusermount3")
            .arg("-uz")
            .arg(&dir)
            .status()
            .unwrap();
        assert!(st.success());
        let row = wait_for_row(&api, "health-1", 10, |r| r["mount_status"] == "error").await;
        assert!(row["mount_error"].as_str().unwrap().contains("mount is gone"), "{row}");
        let r = api
            .delete("/v1/sandboxes/health-1/disks/watched?mount_path=/mnt/data", ALICE)
            .await;
        assert_eq!(r.ok(200), &json!({"detached": true}));
    });
    let keys = keys_in(&g, &rt, "h/");
    assert!(keys.contains(&"h/f.txt".to_string()), "{keys:?}");
    rt.block_on(s.stop());
}

#[test]
fn detach_over_http_with_an_open_writer_flushes_and_answers_busy_until_closed() {
    use std::io::Write;
    let g = Garage::start().unwrap();
    let rt = runtime();
    let mut s = rt.block_on(InProc::start()).unwrap();
    let _guard = MountGuard(s.state_dir().to_path_buf());
    let api = s.api.clone();
    let detach = "/v1/sandboxes/busy-1/disks/busydisk?mount_path=/mnt/w";
    let s3 = g.client(Addressing::Path);

    let root = rt.block_on(async {
        api.post("/v1/disks", ALICE, &disk_body("busydisk", &g)).await.ok(201);
        let body =
            json!({"id": "busy-1", "disks": [{"disk_id": "busydisk", "mount_path": "/mnt/w", "sub_path": "w/"}]});
        root_of(api.post("/v1/sandboxes", ALICE, &body).await.ok(201))
    });
    let mut file = std::fs::File::create(root.join("mnt/w/open.txt")).unwrap();
    file.write_all(b"written while attached").unwrap();

    rt.block_on(async {
        let r = api.delete(detach, ALICE).await;
        let f = r.fail(409);
        assert_eq!(f["code"], "mount_busy", "{}", r.text());
        assert!(f["message"].as_str().unwrap().contains("close it and detach again"));
        // Flushed before refusing, and still mounted.
        let flushed = s3.get_object_bytes("w/open.txt", None, 1024).await.unwrap();
        assert_eq!(&flushed[..], b"written while attached");
        let row = api.get("/v1/sandboxes/busy-1/disks", ALICE).await.ok(200)["data"][0].clone();
        assert_eq!(row["mount_status"], "mounted", "{row}");
    });
    file.write_all(b", and after").unwrap();
    drop(file);
    rt.block_on(async {
        assert_eq!(api.delete(detach, ALICE).await.ok(200), &json!({"detached": true}));
        let data = s3.get_object_bytes("w/open.txt", None, 1024).await.unwrap();
        assert_eq!(&data[..], b"written while attached, and after");
    });
    assert!(!is_mounted(&root.join("mnt/w")));
    rt.block_on(s.stop());
}

#[test]
fn two_sandboxes_sharing_a_disk_see_only_their_own_sub_paths() {
    let g = Garage::start().unwrap();
    let rt = runtime();
    let mut s = rt.block_on(InProc::start()).unwrap();
    let _guard = MountGuard(s.state_dir().to_path_buf());
    let api = s.api.clone();
    let roots: Vec<PathBuf> = rt.block_on(async {
        api.post("/v1/disks", ALICE, &disk_body("team", &g)).await.ok(201);
        let mut roots = Vec::new();
        for (id, sub) in [("tenant-one", "one/"), ("tenant-two", "two/")] {
            let body = json!({"id": id, "disks": [{"disk_id": "team", "mount_path": "/data", "sub_path": sub}]});
            let sb = api.post("/v1/sandboxes", ALICE, &body).await.ok(201).clone();
            assert_eq!(sb["disks"][0]["mount_status"], "mounted", "{sb}");
            roots.push(root_of(&sb).join("data"));
        }
        roots
    });
    std::fs::write(roots[0].join("mine.txt"), b"one's").unwrap();
    std::fs::write(roots[1].join("mine.txt"), b"two's").unwrap();
    std::fs::create_dir(roots[1].join("sub")).unwrap();
    for (root, want) in [(&roots[0], &b"one's"[..]), (&roots[1], &b"two's"[..])] {
        assert_eq!(std::fs::read(root.join("mine.txt")).unwrap(), want);
    }
    let names = |p: &PathBuf| {
        let mut v: Vec<String> = std::fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&roots[0]), vec!["mine.txt"]);
    assert_eq!(names(&roots[1]), vec!["mine.txt", "sub"]);
    let mut keys = keys_in(&g, &rt, "");
    keys.sort();
    assert_eq!(keys, vec!["one/mine.txt", "two/mine.txt", "two/sub/"]);
    rt.block_on(async {
        for id in ["tenant-one", "tenant-two"] {
            assert_eq!(
                api.delete(&format!("/v1/sandboxes/{id}"), ALICE).await.ok(200),
                &json!({"deleted": true})
            );
        }
    });
    assert!(roots.iter().all(|r| !is_mounted(r)));
    rt.block_on(s.stop());
}
