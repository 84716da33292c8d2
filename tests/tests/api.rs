//! The Disks API over real HTTP against the server in this process, with
//! the real provider plugins and a real S3 server (Garage).

mod api_support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use api_support::*;
use byos3::store::{SqliteStore, Store};
use byos3::vault::{MasterKeyConfig, Vault};
use byos3_tests::{free_port, Garage};
use serde_json::{json, Value};

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The credentials stored for a disk, opened with the state directory's key.
fn stored_credentials(state_dir: &std::path::Path, tenant: &str, disk_id: &str) -> (String, String) {
    let store = SqliteStore::open(&state_dir.join(byos3::api::DB_FILE)).unwrap();
    let vault = Vault::load(
        &MasterKeyConfig {
            file: state_dir.join("master.key"),
            env_value: None,
        },
        false,
    )
    .unwrap();
    let c = byos3::vault::open_credentials(&store, &vault, tenant, disk_id)
        .unwrap()
        .expect("sealed credentials");
    (c.access_key().to_string(), c.secret_key().to_string())
}

#[test]
fn register_show_list_idempotent_conflict_delete() {
    let g = Garage::start().unwrap();
    runtime().block_on(async {
        let s = InProc::start().await.unwrap();
        let api = &s.api;

        let r = api.post("/v1/disks", ALICE, &disk_body("eu-data", &g)).await;
        let d = r.ok(201).clone();
        assert_eq!(
            keys(&d),
            set(&["id", "name", "kind", "config", "created_at", "provider", "region"]),
            "{d}"
        );
        assert_eq!(
            keys(&d["config"]),
            set(&["bucket", "endpoint", "region", "use_path_style"]),
            "{d}"
        );
        let id = d["id"].as_str().unwrap().to_string();
        assert_disk_id(&id);
        assert_eq!(d["name"], "eu-data");
        assert_eq!(d["kind"], "s3");
        assert_eq!(d["config"]["bucket"], g.bucket.as_str());
        assert_eq!(d["config"]["endpoint"], g.endpoint_url().as_str());
        assert_eq!(d["config"]["region"], "us-east-1");
        assert_eq!(d["config"]["use_path_style"], true);
        assert_eq!(d["region"], "us-east-1");
        assert!(d["provider"].as_str().is_some_and(|p| !p.is_empty()));
        let created = d["created_at"].as_str().unwrap();
        assert!(
            created.len() == 20 && created.ends_with('Z') && created.as_bytes()[10] == b'T',
            "{created}"
        );
        assert!(r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"));

        // By id and by name.
        assert_eq!(api.get(&format!("/v1/disks/{id}"), ALICE).await.ok(200), &d);
        assert_eq!(api.get("/v1/disks/eu-data", ALICE).await.ok(200), &d);
        let l = api.get("/v1/disks", ALICE).await;
        let page = l.ok(200);
        assert_eq!(page["data"], json!([d.clone()]));
        assert_eq!(
            page["pagination"],
            json!({"total": 1, "limit": 50, "offset": 0, "count": 1})
        );

        // Idempotent repeat: 200, same disk; stating a default explicitly or
        // a trailing slash is the same config.
        assert_eq!(
            api.post("/v1/disks", ALICE, &disk_body("eu-data", &g)).await.ok(200),
            &d
        );
        let mut same = disk_body("eu-data", &g);
        same["config"]["endpoint"] = json!(format!("{}/", g.endpoint_url()));
        assert_eq!(api.post("/v1/disks", ALICE, &same).await.ok(200), &d);
        // Same name, different config: 409 naming the difference.
        let mut other = disk_body("eu-data", &g);
        other["config"]["bucket"] = json!("another-bucket");
        let r = api.post("/v1/disks", ALICE, &other).await;
        let f = r.fail(409);
        assert_eq!(f["code"], "name_conflict");
        assert_eq!(f["field"], "config.bucket");

        // Delete, by name; then it is gone everywhere.
        let r = api.delete("/v1/disks/eu-data", ALICE).await;
        assert_eq!(r.ok(200), &json!({"deleted": true}));
        assert_eq!(
            api.get(&format!("/v1/disks/{id}"), ALICE).await.fail(404)["code"],
            "not_found"
        );
        assert_eq!(
            api.delete(&format!("/v1/disks/{id}"), ALICE).await.fail(404)["code"],
            "not_found"
        );
        assert_eq!(api.get("/v1/disks", ALICE).await.ok(200)["pagination"]["total"], 0);
        // The bucket is untouched.
        g.client(byos3::s3::Addressing::Path).head_bucket().await.unwrap();
    });
}

#[test]
fn probe_failures_are_classified_and_store_nothing() {
    let g = Garage::start().unwrap();
    runtime().block_on(async {
        let s = InProc::start().await.unwrap();
        let api = &s.api;

        let mut b = disk_body("wrong-secret", &g);
        b["credentials"]["secret_key"] = json!("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
        let r = api.post("/v1/disks", ALICE, &b).await;
        let f = r.fail(422);
        assert_eq!(f["code"], "signature_mismatch", "{f}");
        assert!(f["hint"].as_str().is_some_and(|h| !h.is_empty()), "{f}");

        let mut b = disk_body("unknown-key", &g);
        b["credentials"]["access_key"] = json!("GK000000000000000000000000");
        let r = api.post("/v1/disks", ALICE, &b).await;
        let f = r.fail(422);
        assert!(
            ["invalid_access_key", "access_denied"].contains(&f["code"].as_str().unwrap()),
            "{f}"
        );

        let mut b = disk_body("no-bucket", &g);
        b["config"]["bucket"] = json!("no-such-bucket-here");
        let f = api.post("/v1/disks", ALICE, &b).await.fail(422).clone();
        assert_eq!(f["code"], "bucket_not_found", "{f}");

        let mut b = disk_body("wrong-region", &g);
        b["config"]["region"] = json!("eu-west-1");
        let f = api.post("/v1/disks", ALICE, &b).await.fail(422).clone();
        assert_eq!(f["code"], "wrong_region", "{f}");
        assert_eq!(f["expected_region"], "us-east-1", "{f}");

        // Nothing listening: 502 well within the probe deadline.
        let mut b = disk_body("nobody-home", &g);
        b["config"]["endpoint"] = json!(format!("http://127.0.0.1:{}", free_port()));
        let t = Instant::now();
        let r = api.post("/v1/disks", ALICE, &b).await;
        let msg = r.error(502);
        assert!(msg.starts_with("endpoint_unreachable"), "{msg}");
        assert!(t.elapsed() < Duration::from_secs(12), "{:?}", t.elapsed());

        // A server that accepts and never answers: 502 by the deadline.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = silent.local_addr().unwrap().port();
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((c, _)) = silent.accept().await {
                held.push(c);
            }
        });
        let mut b = disk_body("silent", &g);
        b["config"]["endpoint"] = json!(format!("http://127.0.0.1:{port}"));
        let t = Instant::now();
        let r = api.post("/v1/disks", ALICE, &b).await;
        r.error(502);
        assert!(t.elapsed() < Duration::from_secs(13), "{:?}", t.elapsed());
        hold.abort();

        // None of the failures stored anything.
        assert_eq!(api.get("/v1/disks", ALICE).await.ok(200)["pagination"]["total"], 0);
    });
}

#[test]
fn pagination_limit_offset_total() {
    let g = Garage::start().unwrap();
    runtime().block_on(async {
        let s = InProc::start().await.unwrap();
        let api = &s.api;
        let mut ids = Vec::new();
        for i in 0..7 {
            let r = api.post("/v1/disks", ALICE, &disk_body(&format!("d{i}"), &g)).await;
            ids.push(r.ok(201)["id"].as_str().unwrap().to_string());
        }
        let r = api.get("/v1/disks?limit=3&offset=0", ALICE).await;
        let p = r.ok(200);
        assert_eq!(
            p["pagination"],
            json!({"total": 7, "limit": 3, "offset": 0, "count": 3})
        );
        let got: Vec<&str> = p["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].as_str().unwrap())
            .collect();
        assert_eq!(
            got,
            ids[..3].iter().map(String::as_str).collect::<Vec<_>>(),
            "oldest first"
        );
        let r = api.get("/v1/disks?offset=6&limit=3", ALICE).await;
        let p = r.ok(200);
        assert_eq!(
            p["pagination"],
            json!({"total": 7, "limit": 3, "offset": 6, "count": 1})
        );
        assert_eq!(p["data"][0]["id"], ids[6].as_str());
        let r = api.get("/v1/disks?offset=100", ALICE).await;
        assert_eq!(
            r.ok(200)["pagination"],
            json!({"total": 7, "limit": 50, "offset": 100, "count": 0})
        );
        assert_eq!(
            api.get("/v1/disks?limit=500", ALICE).await.ok(200)["pagination"]["count"],
            7
        );
        for bad in [
            "limit=0",
            "limit=501",
            "limit=-1",
            "limit=abc",
            "offset=-5",
            "limit=2&limit=3",
        ] {
            let r = api.get(&format!("/v1/disks?{bad}"), ALICE).await;
            assert_eq!(r.fail(400)["code"], "invalid_query", "{bad}");
        }
        let r = api.get("/v1/disks?limt=5", ALICE).await;
        let f = r.fail(400);
        assert_eq!(f["code"], "unknown_query_parameter");
        assert!(f["message"].as_str().unwrap().contains("did you mean \"limit\""), "{f}");
        // Bob sees none of them.
        assert_eq!(api.get("/v1/disks", BOB).await.ok(200)["pagination"]["total"], 0);
    });
}

#[test]
fn rotate_credentials_probes_first() {
    let g = Garage::start().unwrap();
    runtime().block_on(async {
        let s = InProc::start().await.unwrap();
        let api = &s.api;
        let d = api
            .post("/v1/disks", ALICE, &disk_body("rot", &g))
            .await
            .ok(201)
            .clone();
        let id = d["id"].as_str().unwrap().to_string();
        let store_path = s.state_dir().join(byos3::api::DB_FILE);
        let sealed = |id: &str| {
            SqliteStore::open(&store_path)
                .unwrap()
                .sealed_credentials("alice", id)
                .unwrap()
                .unwrap()
        };
        let before = sealed(&id);

        // Bad new credentials: 422, and the old ones stay.
        let r = api
            .send(
                "PATCH",
                "/v1/disks/rot",
                ALICE,
                &json!({"credentials": {"access_key": g.access_key, "secret_key": "not-the-secret-0123456789"}}),
            )
            .await;
        assert_eq!(r.fail(422)["code"], "signature_mismatch");
        assert_eq!(sealed(&id), before);
        assert_eq!(
            stored_credentials(s.state_dir(), "alice", &id),
            (g.access_key.clone(), g.secret_key.clone())
        );

        // Empty keys, unknown fields, missing credentials: 400, nothing changes.
        for (body, code) in [
            (
                json!({"credentials": {"access_key": "", "secret_key": "x"}}),
                "invalid_field",
            ),
            (
                json!({"credentials": {"access_key": "a", "secret_key": ""}}),
                "invalid_field",
            ),
            (json!({"credentials": {"access_key": "a"}}), "missing_field"),
            (
                json!({"credentials": {"access_key": "a", "secret_key": "b", "token": "c"}}),
                "unknown_field",
            ),
            (json!({"name": "x"}), "unknown_field"),
            (json!({}), "missing_field"),
        ] {
            let r = api.send("PATCH", &format!("/v1/disks/{id}"), ALICE, &body).await;
            assert_eq!(r.fail(400)["code"], code, "{body}");
        }
        assert_eq!(sealed(&id), before);

        // Valid credentials: 200 with the DiskView, freshly sealed.
        let r = api
            .send(
                "PATCH",
                &format!("/v1/disks/{id}"),
                ALICE,
                &json!({"credentials": {"access_key": g.access_key, "secret_key": g.secret_key}}),
            )
            .await;
        assert_eq!(r.ok(200), &d);
        let after = sealed(&id);
        assert_ne!(after.blob, before.blob, "re-sealed with a fresh nonce");
        assert_eq!(
            stored_credentials(s.state_dir(), "alice", &id),
            (g.access_key.clone(), g.secret_key.clone())
        );
        assert_eq!(
            api.send("PATCH", "/v1/disks/nope", ALICE, &json!({})).await.fail(404)["code"],
            "not_found"
        );
    });
}

#[test]
fn tenants_are_isolated_on_every_route() {
    let g = Garage::start().unwrap();
    runtime().block_on(async {
        let s = InProc::start().await.unwrap();
        let api = &s.api;
        let d = api
            .post("/v1/disks", ALICE, &disk_body("shared-name", &g))
            .await
            .ok(201)
            .clone();
        let id = d["id"].as_str().unwrap();
        let creds = json!({"credentials": {"access_key": g.access_key, "secret_key": g.secret_key}});
        for target in [id, "shared-name"] {
            let p = format!("/v1/disks/{target}");
            let absent = api.get("/v1/disks/no-such-disk", BOB).await;
            for r in [
                api.get(&p, BOB).await,
                api.send("PATCH", &p, BOB, &creds).await,
                api.delete(&p, BOB).await,
            ] {
                assert_eq!(r.fail(404)["code"], "not_found");
                // Exactly as if absent (only the id in the message differs).
                assert_eq!(keys(&r.json["data"]), keys(&absent.json["data"]));
            }
        }
        assert_eq!(api.get("/v1/disks", BOB).await.ok(200)["pagination"]["total"], 0);
        // Names are per tenant: Bob may use the same name.
        let b = api
            .post("/v1/disks", BOB, &disk_body("shared-name", &g))
            .await
            .ok(201)
            .clone();
        assert_ne!(b["id"], d["id"]);
        // Alice's disk is untouched by all of Bob's attempts.
        assert_eq!(api.get(&format!("/v1/disks/{id}"), ALICE).await.ok(200), &d);
        // Unknown and missing keys: 401.
        assert_eq!(api.get("/v1/disks", "nope").await.fail(401)["code"], "unauthorized");
        let r = api.raw("GET", "/v1/disks", None, &[], Vec::new()).await;
        assert_eq!(r.fail(401)["code"], "unauthorized");
        let r = api.raw("GET", "/v1/disks/shared-name", None, &[], Vec::new()).await;
        r.fail(401);
    });
}

#[test]
fn malformed_bodies_get_precise_4xx_never_5xx() {
    let g = Garage::start().unwrap();
    runtime().block_on(async {
        let s = InProc::start().await.unwrap();
        let api = &s.api;
        let good = disk_body("m", &g);
        let good_text = serde_json::to_string(&good).unwrap();
        let with = |f: &dyn Fn(&mut Value)| {
            let mut b = good.clone();
            f(&mut b);
            serde_json::to_vec(&b).unwrap()
        };
        let json_ct = [("content-type", "application/json")];
        // (what, body, status, data.code, data.field)
        type Case<'a> = (&'a str, Vec<u8>, u16, &'a str, Option<&'a str>);
        let cases: Vec<Case> = vec![
            (
                "truncated",
                good_text.as_bytes()[..good_text.len() / 2].to_vec(),
                400,
                "invalid_json",
                None,
            ),
            ("empty", Vec::new(), 400, "invalid_json", None),
            ("not an object", b"[1,2]".to_vec(), 400, "invalid_json", None),
            (
                "trailing garbage",
                format!("{good_text} x").into_bytes(),
                400,
                "invalid_json",
                None,
            ),
            (
                "duplicate key",
                br#"{"name":"a","name":"b"}"#.to_vec(),
                400,
                "invalid_json",
                None,
            ),
            ("not utf-8", vec![b'{', 0xff, b'}'], 400, "invalid_json", None),
            (
                "name wrong type",
                with(&|b| b["name"] = json!(42)),
                400,
                "invalid_type",
                Some("name"),
            ),
            (
                "bucket wrong type",
                with(&|b| b["config"]["bucket"] = json!(["x"])),
                400,
                "invalid_type",
                Some("config.bucket"),
            ),
            (
                "path style wrong type",
                with(&|b| b["config"]["use_path_style"] = json!("true")),
                400,
                "invalid_type",
                Some("config.use_path_style"),
            ),
            (
                "config not object",
                with(&|b| b["config"] = json!("x")),
                400,
                "invalid_type",
                Some("config"),
            ),
            (
                "missing bucket",
                with(&|b| {
                    b["config"].as_object_mut().unwrap().remove("bucket");
                }),
                400,
                "missing_field",
                Some("config.bucket"),
            ),
            (
                "missing endpoint",
                with(&|b| {
                    b["config"].as_object_mut().unwrap().remove("endpoint");
                }),
                400,
                "missing_field",
                Some("config.endpoint"),
            ),
            (
                "missing credentials",
                with(&|b| {
                    b.as_object_mut().unwrap().remove("credentials");
                }),
                400,
                "missing_field",
                Some("credentials"),
            ),
            (
                "unknown top field",
                with(&|b| {
                    let c = b["credentials"].take();
                    b.as_object_mut().unwrap().remove("credentials");
                    b["credential"] = c;
                }),
                400,
                "unknown_field",
                Some("credential"),
            ),
            (
                "unknown config field",
                with(&|b| b["config"]["bukcet"] = json!("x")),
                400,
                "unknown_field",
                Some("config.bukcet"),
            ),
            (
                "bad name",
                with(&|b| b["name"] = json!("Eu_Data")),
                400,
                "invalid_field",
                Some("name"),
            ),
            (
                "bad kind",
                with(&|b| b["kind"] = json!("gcs")),
                400,
                "invalid_field",
                Some("kind"),
            ),
            (
                "bad bucket",
                with(&|b| b["config"]["bucket"] = json!("a")),
                400,
                "invalid_field",
                Some("config.bucket"),
            ),
            (
                "bad endpoint",
                with(&|b| b["config"]["endpoint"] = json!("ftp://x")),
                400,
                "invalid_field",
                Some("config.endpoint"),
            ),
            (
                "relative endpoint",
                with(&|b| b["config"]["endpoint"] = json!("s3.amazonaws.com")),
                400,
                "invalid_field",
                Some("config.endpoint"),
            ),
            (
                "empty secret",
                with(&|b| b["credentials"]["secret_key"] = json!("")),
                400,
                "invalid_field",
                Some("credentials.secret_key"),
            ),
            (
                "unknown provider",
                with(&|b| b["config"]["provider"] = json!("no-such-provider")),
                400,
                "invalid_config",
                Some("config.provider"),
            ),
            (
                "metadata ip",
                with(&|b| b["config"]["endpoint"] = json!("http://169.254.169.254")),
                400,
                "endpoint_not_allowed",
                Some("config.endpoint"),
            ),
            (
                "metadata v6",
                with(&|b| b["config"]["endpoint"] = json!("http://[fe80::1]:80")),
                400,
                "endpoint_not_allowed",
                Some("config.endpoint"),
            ),
            (
                "metadata name",
                with(&|b| b["config"]["endpoint"] = json!("http://metadata.google.internal")),
                400,
                "endpoint_not_allowed",
                Some("config.endpoint"),
            ),
            ("large body", vec![b' '; 65 * 1024], 413, "body_too_large", None),
            ("huge body", vec![b' '; 3 << 19], 413, "body_too_large", None),
        ];
        for (what, body, status, code, field) in cases {
            let r = api.raw("POST", "/v1/disks", Some(ALICE), &json_ct, body).await;
            let f = r.fail(status);
            assert_eq!(f["code"], code, "{what}: {}", r.text());
            if let Some(field) = field {
                assert_eq!(f["field"], field, "{what}: {}", r.text());
            }
        }
        // The messages name the field as documented.
        let r = api
            .raw(
                "POST",
                "/v1/disks",
                Some(ALICE),
                &json_ct,
                with(&|b| {
                    b["config"].as_object_mut().unwrap().remove("bucket");
                }),
            )
            .await;
        assert_eq!(r.json["data"]["message"], "config.bucket is required");
        let r = api
            .raw(
                "POST",
                "/v1/disks",
                Some(ALICE),
                &json_ct,
                with(&|b| {
                    let c = b["credentials"].take();
                    b.as_object_mut().unwrap().remove("credentials");
                    b["credential"] = c;
                }),
            )
            .await;
        assert_eq!(
            r.json["data"]["message"],
            "unknown field \"credential\" (did you mean \"credentials\"?)"
        );
        // A huge body without Content-Length (chunked) is refused too.
        let r = api
            .raw(
                "POST",
                "/v1/disks",
                Some(ALICE),
                &[("content-type", "application/json"), ("transfer-encoding", "chunked")],
                vec![b'{'; 200_000],
            )
            .await;
        assert_eq!(r.fail(413)["code"], "body_too_large");
        // Wrong media type.
        let r = api
            .raw(
                "POST",
                "/v1/disks",
                Some(ALICE),
                &[("content-type", "text/plain")],
                good_text.clone().into_bytes(),
            )
            .await;
        assert_eq!(r.fail(415)["code"], "unsupported_media_type");
        // Wrong methods and routes.
        let r = api.raw("PUT", "/v1/disks", Some(ALICE), &[], Vec::new()).await;
        assert_eq!(r.fail(405)["code"], "method_not_allowed");
        assert_eq!(r.headers["allow"], "GET, POST");
        assert_eq!(api.get("/v1/nothing", ALICE).await.fail(404)["code"], "not_found");
        assert_eq!(
            api.get("/v1/disks/Not_A_Name", ALICE).await.fail(404)["code"],
            "not_found"
        );
        // A client request id is echoed; otherwise one is made.
        let r = api
            .raw("GET", "/healthz", None, &[("x-request-id", "abc-123")], Vec::new())
            .await;
        assert_eq!(r.headers["x-request-id"], "abc-123");
        assert_eq!(r.ok(200), &json!({"ok": true}));
        // Nothing was stored by any of it.
        assert_eq!(api.get("/v1/disks", ALICE).await.ok(200)["pagination"]["total"], 0);
    });
}

#[test]
fn openapi_document_and_routes_agree() {
    runtime().block_on(async {
        let s = InProc::start().await.unwrap();
        let api = &s.api;
        let r = api.get("/v1/openapi.json", ALICE).await;
        assert_eq!(r.status, 200);
        let doc = &r.json;
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        // The served document is the one in the repository.
        let in_repo: Value = serde_json::from_str(byos3::api::OPENAPI_JSON).unwrap();
        assert_eq!(doc, &in_repo);
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item
                .as_object()
                .unwrap()
                .keys()
                .filter(|m| ["get", "post", "patch", "delete", "put"].contains(&m.as_str()))
            {
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
        let served: BTreeSet<(String, String)> = byos3::api::ROUTES
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        assert_eq!(documented, served);
        // Every documented route is answered (not "no route", not 405), and
        // every documented status of the route is a valid code.
        for (method, path) in &documented {
            let concrete = path.replace("{id}", "no-such-disk");
            let body = if method == "POST" || method == "PATCH" {
                b"{}".to_vec()
            } else {
                Vec::new()
            };
            let r = api
                .raw(
                    method,
                    &concrete,
                    Some(ALICE),
                    &[("content-type", "application/json")],
                    body,
                )
                .await;
            assert_ne!(r.status, 405, "{method} {path}");
            assert!(!r.text().contains("no route"), "{method} {path}: {}", r.text());
            let documented_statuses: Vec<String> = doc["paths"][path][method.to_lowercase()]["responses"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect();
            assert!(
                documented_statuses.contains(&r.status.to_string()),
                "{method} {path} answered {} (documented {documented_statuses:?})",
                r.status
            );
        }
        // And an undocumented one is not.
        assert!(api.get("/v1/disks/a/b", ALICE).await.text().contains("no route"));
    });
}

#[test]
fn same_name_registered_concurrently_yields_one_disk() {
    let g = Garage::start().unwrap();
    runtime().block_on(async {
        let s = InProc::start().await.unwrap();
        let mut tasks = Vec::new();
        for _ in 0..6 {
            let api = s.api.clone();
            let body = disk_body("race", &g);
            tasks.push(tokio::spawn(async move { api.post("/v1/disks", ALICE, &body).await }));
        }
        let mut ids = BTreeSet::new();
        let mut created = 0;
        for t in tasks {
            let r = t.await.unwrap();
            assert!(r.status == 201 || r.status == 200, "{}", r.text());
            created += usize::from(r.status == 201);
            ids.insert(r.json["data"]["id"].as_str().unwrap().to_string());
        }
        assert_eq!((created, ids.len()), (1, 1));
    });
}
