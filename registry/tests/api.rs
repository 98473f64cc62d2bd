//! The real router, driven in-process over a temporary directory: every
//! endpoint, every error code, and the bad input the spec says must be
//! refused without a 500 or any partial content becoming visible.

mod inproc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};

use inproc::*;
use wharf_registry::config::Config;

#[tokio::test]
async fn base_endpoint_answers_with_the_version_header() {
    let reg = Reg::new();
    let r = reg.get("/v2/").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("docker-distribution-api-version"), "registry/2.0");
    let r = reg.get("/v2").await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn chunked_upload_with_status_and_out_of_order_chunk() {
    let reg = Reg::new();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let r = reg.req(Method::POST, "/v2/a/b/blobs/uploads/", &[], vec![]).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(r.header("range"), "0-0");
    let loc = r.header("location").to_string();
    assert!(loc.starts_with("http://reg.test:5000/v2/a/b/blobs/uploads/"), "{loc}");
    assert!(loc.contains("_state="));
    let path = loc.trim_start_matches("http://reg.test:5000").to_string();

    let first = &data[..1_000_000];
    let r = reg
        .req(Method::PATCH, &path, &[("content-range", "0-999999"), ("content-length", "1000000")], first.to_vec())
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(r.header("range"), "0-999999");

    // A chunk that does not continue the upload is refused with 416 and the current range.
    let r = reg.req(Method::PATCH, &path, &[("content-range", "5-9")], vec![0; 5]).await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.code(), "BLOB_UPLOAD_INVALID");
    assert_eq!(r.header("range"), "0-999999");

    let r = reg.get(&path).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(r.header("range"), "0-999999");

    // A streamed PATCH (no Content-Range) appends.
    let r = reg.req(Method::PATCH, &path, &[], data[1_000_000..2_000_000].to_vec()).await;
    assert_eq!(r.header("range"), "0-1999999");

    let d = digest(&data);
    let r = reg.req(Method::PUT, &format!("{path}&digest={d}"), &[], data[2_000_000..].to_vec()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("docker-content-digest"), d);

    let r = reg.get(&format!("/v2/a/b/blobs/{d}")).await;
    assert_eq!(r.body, data);
    // The session is gone once committed.
    assert_eq!(reg.get(&path).await.code(), "BLOB_UPLOAD_UNKNOWN");
}

#[tokio::test]
async fn blob_get_head_range_etag() {
    let reg = Reg::new();
    let d = reg.push_blob("r", b"0123456789").await;
    let r = reg.req(Method::HEAD, &format!("/v2/r/blobs/{d}"), &[], vec![]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-length"), "10");
    assert_eq!(r.header("docker-content-digest"), d);
    assert!(r.body.is_empty());
    let r = reg.req(Method::GET, &format!("/v2/r/blobs/{d}"), &[("range", "bytes=2-5")], vec![]).await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.body, b"2345");
    assert_eq!(r.header("content-range"), "bytes 2-5/10");
    let r = reg.req(Method::GET, &format!("/v2/r/blobs/{d}"), &[("range", "bytes=20-")], vec![]).await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
    let etag = format!("\"{d}\"");
    let r = reg.req(Method::GET, &format!("/v2/r/blobs/{d}"), &[("if-none-match", &etag)], vec![]).await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    // Another repository does not see the blob until it is mounted.
    assert_eq!(reg.get(&format!("/v2/other/blobs/{d}")).await.code(), "BLOB_UNKNOWN");
}

#[tokio::test]
async fn cross_repository_mount_and_fallback() {
    let reg = Reg::new();
    let d = reg.push_blob("src", b"shared layer").await;
    let r = reg.req(Method::POST, &format!("/v2/dst/blobs/uploads/?mount={d}&from=src"), &[], vec![]).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(reg.get(&format!("/v2/dst/blobs/{d}")).await.body, b"shared layer");
    // Unknown source: a new session instead.
    let r = reg.req(Method::POST, &format!("/v2/dst2/blobs/uploads/?mount={d}&from=nowhere"), &[], vec![]).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert!(r.header("location").contains("/v2/dst2/blobs/uploads/"));
}

#[tokio::test]
async fn wrong_digest_and_truncated_uploads_leave_nothing_visible() {
    let reg = Reg::new();
    let wrong = digest(b"something else");
    let r = reg.req(Method::POST, &format!("/v2/r/blobs/uploads/?digest={wrong}"), &[], b"actual".to_vec()).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), "DIGEST_INVALID");
    assert_eq!(reg.get(&format!("/v2/r/blobs/{wrong}")).await.code(), "BLOB_UNKNOWN");

    // A body that ends before its Content-Length.
    let real = digest(b"0123456789");
    let stream = futures::stream::iter(vec![
        Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"01234")),
        Err(std::io::Error::other("connection reset")),
    ]);
    let req = Request::builder()
        .method(Method::POST)
        .uri(format!("/v2/r/blobs/uploads/?digest={real}"))
        .body(Body::from_stream(stream))
        .unwrap();
    let r = reg.send(req).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), "BLOB_UPLOAD_INVALID");
    assert_eq!(reg.get(&format!("/v2/r/blobs/{real}")).await.code(), "BLOB_UNKNOWN");
    assert!(reg.files().iter().all(|f| !f.contains("/blobs/sha256/")), "no blob committed: {:?}", reg.files());

    let r = reg.req(Method::PUT, "/v2/r/blobs/uploads/nope?digest=sha256:zz", &[], vec![]).await;
    assert_eq!(r.code(), "DIGEST_INVALID");
    // Without the _state the registry handed out (required, as in registry:2).
    let r = reg.req(Method::PATCH, "/v2/r/blobs/uploads/00000000-0000-0000-0000-000000000000", &[], vec![1]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), "BLOB_UPLOAD_INVALID");
    let r = reg.req(Method::DELETE, "/v2/r/blobs/uploads/..%2f..%2fx", &[], vec![]).await;
    assert_eq!(r.code(), "BLOB_UPLOAD_UNKNOWN");
}

#[tokio::test]
async fn upload_cancel_and_tampered_state() {
    let reg = Reg::new();
    let r = reg.req(Method::POST, "/v2/r/blobs/uploads/", &[], vec![]).await;
    let path = r.header("location").trim_start_matches("http://reg.test:5000").to_string();
    let id = r.header("docker-upload-uuid").to_string();
    let r = reg.get(&format!("/v2/r/blobs/uploads/{id}?_state=forged.state")).await;
    assert_eq!(r.code(), "BLOB_UPLOAD_INVALID");
    let r = reg.req(Method::DELETE, &path, &[], vec![]).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(reg.get(&path).await.status, StatusCode::NOT_FOUND);
    assert!(reg.files().iter().all(|f| !f.contains("_uploads")));
}

#[tokio::test]
async fn manifests_by_tag_and_digest_with_negotiation() {
    let reg = Reg::new();
    let (d, body) = reg.push_image("team/app", "v1", "one").await;
    assert_eq!(d, digest(&body));
    for reference in ["v1", d.as_str()] {
        let r = reg
            .req(Method::GET, &format!("/v2/team/app/manifests/{reference}"), &[("accept", OCI_MANIFEST)], vec![])
            .await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body, body);
        assert_eq!(r.header("content-type"), OCI_MANIFEST);
        assert_eq!(r.header("docker-content-digest"), d);
    }
    let r = reg.req(Method::HEAD, "/v2/team/app/manifests/v1", &[], vec![]).await;
    assert_eq!(r.header("content-length"), body.len().to_string());
    assert!(r.body.is_empty());
    // A client that accepts only Docker schema2 is not sent an OCI manifest.
    let r = reg
        .req(
            Method::GET,
            "/v2/team/app/manifests/v1",
            &[("accept", "application/vnd.docker.distribution.manifest.v2+json")],
            vec![],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.code(), "MANIFEST_UNKNOWN");
    // Put by digest must match the body.
    let r = reg
        .req(
            Method::PUT,
            &format!("/v2/team/app/manifests/{}", digest(b"x")),
            &[("content-type", OCI_MANIFEST)],
            body.clone(),
        )
        .await;
    assert_eq!(r.code(), "DIGEST_INVALID");
    assert_eq!(reg.get("/v2/team/app/manifests/nope").await.code(), "MANIFEST_UNKNOWN");
    assert_eq!(reg.get("/v2/nobody/manifests/v1").await.code(), "MANIFEST_UNKNOWN");
}

#[tokio::test]
async fn manifests_must_refer_to_existing_content() {
    let reg = Reg::new();
    let missing = digest(b"not pushed");
    let cfg = reg.push_blob("r", b"{}").await;
    let m = image_manifest(&cfg, 2, &missing, 10, None);
    let r = reg.req(Method::PUT, "/v2/r/manifests/t", &[("content-type", OCI_MANIFEST)], m).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), "MANIFEST_BLOB_UNKNOWN");
    assert_eq!(r.json()["errors"][0]["detail"]["digest"], missing);

    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": missing, "size": 10}]
    }))
    .unwrap();
    let r = reg.req(Method::PUT, "/v2/r/manifests/idx", &[("content-type", OCI_INDEX)], index).await;
    assert_eq!(r.code(), "MANIFEST_BLOB_UNKNOWN");

    for (body, ct) in [
        (b"{not json".to_vec(), OCI_MANIFEST),
        (br#"{"schemaVersion":1,"fsLayers":[]}"#.to_vec(), "application/vnd.docker.distribution.manifest.v1+prettyjws"),
        (br#"{"schemaVersion":2,"mediaType":"text/plain"}"#.to_vec(), "text/plain"),
    ] {
        let r = reg.req(Method::PUT, "/v2/r/manifests/bad", &[("content-type", ct)], body).await;
        assert_eq!(r.code(), "MANIFEST_INVALID");
    }
    assert_eq!(reg.get("/v2/r/tags/list").await.json()["tags"], serde_json::json!([]));

    let huge = vec![b' '; 4 * 1024 * 1024 + 1];
    let r = reg.req(Method::PUT, "/v2/r/manifests/huge", &[("content-type", OCI_MANIFEST)], huge).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.code(), "SIZE_INVALID");
}

#[tokio::test]
async fn index_with_existing_children() {
    let reg = Reg::new();
    let (child, body) = reg.push_image("r", "amd64", "a").await;
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": child, "size": body.len(),
                       "platform": {"architecture": "amd64", "os": "linux"}}]
    }))
    .unwrap();
    let r = reg.req(Method::PUT, "/v2/r/manifests/multi", &[("content-type", OCI_INDEX)], index).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = reg.get("/v2/r/manifests/multi").await;
    assert_eq!(r.header("content-type"), OCI_INDEX);
}

#[tokio::test]
async fn tags_and_catalog_paginate_with_link() {
    let reg = Reg::new();
    for t in ["a", "b", "c", "d", "e"] {
        reg.push_image("ns/repo", t, t).await;
    }
    reg.push_image("other", "x", "x").await;
    let r = reg.get("/v2/ns/repo/tags/list").await;
    assert_eq!(r.json(), serde_json::json!({"name": "ns/repo", "tags": ["a", "b", "c", "d", "e"]}));
    let r = reg.get("/v2/ns/repo/tags/list?n=2").await;
    assert_eq!(r.json()["tags"], serde_json::json!(["a", "b"]));
    assert_eq!(r.header("link"), "</v2/ns/repo/tags/list?n=2&last=b>; rel=\"next\"");
    let r = reg.get("/v2/ns/repo/tags/list?n=2&last=d").await;
    assert_eq!(r.json()["tags"], serde_json::json!(["e"]));
    assert_eq!(r.header("link"), "");
    assert_eq!(reg.get("/v2/ns/repo/tags/list?n=x").await.status, StatusCode::BAD_REQUEST);
    assert_eq!(reg.get("/v2/missing/tags/list").await.code(), "NAME_UNKNOWN");

    let r = reg.get("/v2/_catalog").await;
    assert_eq!(r.json(), serde_json::json!({"repositories": ["ns/repo", "other"]}));
    let r = reg.get("/v2/_catalog?n=1").await;
    assert_eq!(r.json()["repositories"], serde_json::json!(["ns/repo"]));
    assert_eq!(r.header("link"), "</v2/_catalog?n=1&last=ns%2Frepo>; rel=\"next\"");
}

#[tokio::test]
async fn referrers_with_artifact_type_filter() {
    let reg = Reg::new();
    let (subject, subject_body) = reg.push_image("r", "v1", "s").await;
    let cfg = reg.push_blob("r", b"{}").await;
    let layer = reg.push_blob("r", b"signature").await;
    let sig = image_manifest(&cfg, 2, &layer, 9, Some((&subject, subject_body.len())));
    let r = reg
        .req(Method::PUT, &format!("/v2/r/manifests/{}", digest(&sig)), &[("content-type", OCI_MANIFEST)], sig.clone())
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.header("oci-subject"), subject);

    let r = reg.get(&format!("/v2/r/referrers/{subject}")).await;
    assert_eq!(r.header("content-type"), OCI_INDEX);
    let list = r.json()["manifests"].as_array().unwrap().clone();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["digest"], digest(&sig));
    assert_eq!(list[0]["artifactType"], "application/vnd.example.sig");

    let r = reg.get(&format!("/v2/r/referrers/{subject}?artifactType=application/other")).await;
    assert_eq!(r.header("oci-filters-applied"), "artifactType");
    assert_eq!(r.json()["manifests"], serde_json::json!([]));
    assert_eq!(reg.get("/v2/r/referrers/sha256:nope").await.code(), "DIGEST_INVALID");
}

#[tokio::test]
async fn deletes_tags_manifests_and_blobs() {
    let reg = Reg::new();
    let (d, _) = reg.push_image("r", "v1", "one").await;
    let r = reg.req(Method::DELETE, &format!("/v2/r/manifests/{d}"), &[], vec![]).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(reg.get("/v2/r/manifests/v1").await.code(), "MANIFEST_UNKNOWN", "tag removed with its manifest");
    assert_eq!(reg.get("/v2/r/tags/list").await.json()["tags"], serde_json::json!([]));

    reg.push_image("r", "v2", "two").await;
    let r = reg.req(Method::DELETE, "/v2/r/manifests/v2", &[], vec![]).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(reg.get("/v2/r/manifests/v2").await.status, StatusCode::NOT_FOUND);

    let b = reg.push_blob("r", b"bye").await;
    assert_eq!(reg.req(Method::DELETE, &format!("/v2/r/blobs/{b}"), &[], vec![]).await.status, StatusCode::ACCEPTED);
    assert_eq!(reg.get(&format!("/v2/r/blobs/{b}")).await.code(), "BLOB_UNKNOWN");
    assert_eq!(reg.req(Method::DELETE, &format!("/v2/r/blobs/{b}"), &[], vec![]).await.code(), "BLOB_UNKNOWN");
}

#[tokio::test]
async fn deletes_are_refused_unless_enabled() {
    let reg = Reg::with("");
    let (d, _) = reg.push_image("r", "v1", "one").await;
    let r = reg.req(Method::DELETE, &format!("/v2/r/manifests/{d}"), &[], vec![]).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.code(), "UNSUPPORTED");
    assert_eq!(reg.get("/v2/r/manifests/v1").await.status, StatusCode::OK, "nothing was deleted");
}

#[tokio::test]
async fn read_only_mode_refuses_writes() {
    // Content and an open upload session made while writable; then the same
    // storage is served read-only (deletes enabled, so only read-only refuses).
    let writable = Reg::new();
    let (manifest_digest, manifest) = writable.push_image("r", "v1", "ro").await;
    let blob = writable.push_blob("r", b"a blob").await;
    let r = writable.req(Method::POST, "/v2/r/blobs/uploads/", &[], vec![]).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let session = r.header("location").trim_start_matches("http://reg.test:5000").to_string();
    let sep = if session.contains('?') { '&' } else { '?' };
    let config = Config::from_yaml(
        &format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}/data\n  delete:\n    enabled: true\n  maintenance:\n    readonly:\n      enabled: true\nhttp:\n  secret: test\n",
            writable.dir.path().display()
        ),
        std::iter::empty(),
    )
    .unwrap();
    let reg = Reg { router: wharf_registry::build(&config).unwrap().router, dir: tempfile::tempdir().unwrap() };
    let before = writable.files();

    let other = digest(b"other");
    /// What, method, URI, headers, body.
    type Write<'a> = (&'a str, Method, String, Vec<(&'a str, &'a str)>, Vec<u8>);
    let writes: Vec<Write> = vec![
        ("POST upload", Method::POST, "/v2/r/blobs/uploads/".into(), vec![], vec![]),
        ("POST monolithic", Method::POST, format!("/v2/r/blobs/uploads/?digest={other}"), vec![], b"other".to_vec()),
        ("POST mount", Method::POST, format!("/v2/s/blobs/uploads/?mount={blob}&from=r"), vec![], vec![]),
        ("PATCH chunk", Method::PATCH, session.clone(), vec![("content-range", "0-4")], b"other".to_vec()),
        ("PUT upload", Method::PUT, format!("{session}{sep}digest={other}"), vec![], b"other".to_vec()),
        ("PUT manifest", Method::PUT, "/v2/r/manifests/v2".into(), vec![("content-type", OCI_MANIFEST)], manifest),
        ("DELETE manifest", Method::DELETE, format!("/v2/r/manifests/{manifest_digest}"), vec![], vec![]),
        ("DELETE tag", Method::DELETE, "/v2/r/manifests/v1".into(), vec![], vec![]),
        ("DELETE blob", Method::DELETE, format!("/v2/r/blobs/{blob}"), vec![], vec![]),
        ("DELETE upload", Method::DELETE, session.clone(), vec![], vec![]),
    ];
    for (what, method, uri, headers, body) in writes {
        let r = reg.req(method, &uri, &headers, body).await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{what}: {}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.code(), "UNSUPPORTED", "{what}");
        let message = r.json()["errors"][0]["message"].as_str().unwrap_or_default().to_string();
        assert!(message.contains("read-only"), "{what}: the refusal says why: {message}");
    }
    assert_eq!(writable.files(), before, "a refused write changed the storage");
    // Reads still work.
    assert_eq!(reg.get("/v2/r/manifests/v1").await.status, StatusCode::OK);
    assert_eq!(reg.get(&format!("/v2/r/blobs/{blob}")).await.status, StatusCode::OK);
}

#[tokio::test]
async fn hostile_paths_are_refused_as_invalid_names() {
    let reg = Reg::new();
    for path in [
        "/v2/../../etc/passwd/tags/list",
        "/v2/%2e%2e/%2e%2e/tags/list",
        "/v2/a/%2E%2E/manifests/latest",
        "/v2/a/..%2f..%2fb/blobs/uploads/",
        "/v2/UPPER/tags/list",
        "/v2/a//b/tags/list",
    ] {
        let r = reg.get(path).await;
        assert_eq!(r.code(), "NAME_INVALID", "{path}");
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}");
    }
    let r = reg.get("/v2/a/blobs/sha256:../../../../etc/passwd").await;
    assert_eq!(r.code(), "DIGEST_INVALID");
    let r = reg.get("/v2/a/blobs/md5:d41d8cd98f00b204e9800998ecf8427e").await;
    assert_eq!(r.code(), "DIGEST_INVALID");
    let r = reg.get("/v2/a/unknown-endpoint").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = reg.req(Method::PATCH, "/v2/a/tags/list", &[], vec![]).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(reg.files().is_empty(), "nothing written: {:?}", reg.files());
}

#[tokio::test]
async fn an_upload_continues_on_another_replica_sharing_storage() {
    let a = Reg::new();
    // A second replica: same storage root, same http.secret, its own process state.
    let yaml = format!(
        "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}/data\n  delete:\n    enabled: true\nhttp:\n  secret: test\n",
        a.dir.path().display()
    );
    let config = wharf_registry::config::Config::from_yaml(&yaml, std::iter::empty()).unwrap();
    let b = Reg { router: wharf_registry::build(&config).unwrap().router, dir: tempfile::tempdir().unwrap() };

    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    let r = a.req(Method::POST, "/v2/r/blobs/uploads/", &[], vec![]).await;
    let path = r.header("location").trim_start_matches("http://reg.test:5000").to_string();
    let r = a.req(Method::PATCH, &path, &[("content-range", "0-99999")], data[..100_000].to_vec()).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    // Replica B sees the session, accepts the next chunk, and completes it.
    assert_eq!(b.get(&path).await.header("range"), "0-99999");
    let r = b.req(Method::PATCH, &path, &[("content-range", "100000-199999")], data[100_000..].to_vec()).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", String::from_utf8_lossy(&r.body));
    let d = digest(&data);
    let r = b.req(Method::PUT, &format!("{path}&digest={d}"), &[], vec![]).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(a.get(&format!("/v2/r/blobs/{d}")).await.body, data, "replica A serves what B committed");

    // A replica with another http.secret refuses the signed state.
    let other = yaml.replace("secret: test", "secret: other");
    let config = wharf_registry::config::Config::from_yaml(&other, std::iter::empty()).unwrap();
    let c = Reg { router: wharf_registry::build(&config).unwrap().router, dir: tempfile::tempdir().unwrap() };
    let r = a.req(Method::POST, "/v2/r/blobs/uploads/", &[], vec![]).await;
    let path = r.header("location").trim_start_matches("http://reg.test:5000").to_string();
    assert_eq!(c.get(&path).await.code(), "BLOB_UPLOAD_INVALID");
}
