//! Upload, signed URL, download: the answer shapes, the headers that keep a download from
//! running anything, and URLs that stop working when altered or expired.

use super::*;
use conclave_core::Clock;

pub(crate) async fn upload_and_download_round_trip(app: TestApp) {
    let (acme, conv) = app.acme_private().await;
    let caps = app.get_anon("/api/v1/capabilities").await.expect(200);
    assert_eq!(caps.body["limits"]["upload_max_bytes"], 100 * 1024 * 1024);
    assert_eq!(caps.body["features"]["files"], true);

    // A raster image: typed from its bytes (the part said image/png for everything), the name
    // cleaned, served inline.
    let image = png(4, 3, 70_000);
    let res = app
        .upload(
            As::Bearer(&acme.alice.token),
            &conv,
            "../../holiday\u{202E}gnp.exe",
            &image,
        )
        .await
        .expect(201);
    let id = res.id();
    assert_eq!(res.body["mime"], "image/png");
    assert_eq!(res.body["size"], image.len());
    assert_eq!(res.body["name"], "holidaygnp.exe");
    assert_eq!(
        res.body.as_object().map(|o| o.len()),
        Some(4),
        "{{id,size,mime,name}}: {}",
        show(&res.body)
    );
    let doc = crate::meta::openapi(&app).await;
    crate::meta::check(&doc, "post", "/api/v1/files", 201, &res.body);

    let link = app.file_url(&acme.bob.token, &id).await.expect(200);
    crate::meta::check(&doc, "get", "/api/v1/files/{id}/url", 200, &link.body);
    let url = link.string("url");
    assert!(
        url.starts_with(&format!("{}/media/{id}?exp=", app.base)),
        "{url}"
    );
    let expires_at = chrono::DateTime::parse_from_rfc3339(&link.string("expires_at")).unwrap();
    let ttl = expires_at.with_timezone(&chrono::Utc) - app.clock.now();
    assert!(ttl <= chrono::Duration::hours(1) && ttl > chrono::Duration::minutes(59));

    let (status, h, bytes) = app.fetch(&url).await;
    assert_eq!(status, 200);
    assert_eq!(bytes, image, "the bytes come back unchanged");
    assert_eq!(h["content-type"], "image/png");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["cache-control"], "private");
    assert_eq!(h["content-security-policy"], "default-src 'none'; sandbox");
    assert_eq!(
        h["content-disposition"],
        "inline; filename=\"holidaygnp.exe\"; filename*=UTF-8''holidaygnp%2Eexe"
    );

    // Anything but an allowlisted raster image is a download; UTF-8 names keep both forms.
    let res = app
        .upload(
            As::Bearer(&acme.bob.token),
            &conv,
            "résumé v2.txt",
            b"plain words\n",
        )
        .await
        .expect(201);
    assert_eq!(res.body["mime"], "text/plain");
    let url = app
        .file_url(&acme.alice.token, &res.id())
        .await
        .expect(200)
        .string("url");
    let (status, h, bytes) = app.fetch(&url).await;
    assert_eq!(status, 200);
    assert_eq!(bytes, b"plain words\n");
    assert_eq!(h["content-type"], "text/plain; charset=utf-8");
    let disposition = h["content-disposition"].to_str().unwrap();
    assert!(
        disposition
            == "attachment; filename=\"r_sum_ v2.txt\"; filename*=UTF-8''r%C3%A9sum%C3%A9%20v2%2Etxt",
        "{disposition}"
    );

    // Names: separators, bidi controls and length are dealt with; the name never reaches storage.
    let long = "n".repeat(600);
    for (raw, want) in [
        ("..\\..\\windows\\win.ini", "windowswin.ini"),
        ("/etc/passwd", "etcpasswd"),
        (".htaccess", "htaccess"),
        ("\u{2066}x\u{2069}.txt", "x.txt"),
        (long.as_str(), &long[..255]),
    ] {
        let res = app
            .upload(As::Bearer(&acme.alice.token), &conv, raw, b"text\n")
            .await
            .expect(201);
        assert_eq!(res.body["name"], want, "{raw:?}");
    }
    assert_eq!(app.blob_count(), 7, "one blob per upload, nothing else");
}

pub(crate) async fn signed_urls_are_bound_and_expire(app: TestApp) {
    let (acme, conv) = app.acme_private().await;
    let a = app.alice_uploads(&acme, &conv, "a.txt", b"file a\n").await;
    let b = app.alice_uploads(&acme, &conv, "b.txt", b"file b\n").await;
    let url = app
        .file_url(&acme.alice.token, &a)
        .await
        .expect(200)
        .string("url");
    let (path, query) = url.split_once('?').unwrap();
    let params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let exp: i64 = params
        .iter()
        .find(|(k, _)| k == "exp")
        .unwrap()
        .1
        .parse()
        .unwrap();
    let sig = params.iter().find(|(k, _)| k == "sig").unwrap().1.clone();
    let mut flipped = sig.clone().into_bytes();
    flipped[3] = if flipped[3] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    let other_path = path.replace(&a, &b);
    for bad in [
        format!("{path}?exp={}&sig={sig}", exp + 3600),
        format!("{path}?exp={exp}&sig={flipped}"),
        format!("{other_path}?exp={exp}&sig={sig}"),
        format!("{path}?exp={exp}"),
        format!("{path}?exp=soon&sig={sig}"),
        path.to_string(),
        format!("{}/media/not-a-uuid?exp={exp}&sig={sig}", app.base),
    ] {
        let (status, h, body) = app.fetch(&bad).await;
        assert_eq!(status, 403, "{bad}");
        let err: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(err["error"]["code"], "url_invalid", "{bad}");
        assert!(h.get("content-disposition").is_none());
    }
    assert_eq!(app.fetch(&url).await.0, 200);
    // Valid until its expiry, then refused.
    app.clock.advance(chrono::Duration::minutes(59));
    assert_eq!(app.fetch(&url).await.0, 200);
    app.clock.advance(chrono::Duration::minutes(2));
    let (status, _, _) = app.fetch(&url).await;
    assert_eq!(status, 403, "an expired URL is refused");
    // A fresh one works again.
    let url = app
        .file_url(&acme.bob.token, &a)
        .await
        .expect(200)
        .string("url");
    assert_eq!(app.fetch(&url).await.0, 200);
}

pub(crate) async fn orphan_blobs_are_swept(app: TestApp) {
    let (acme, conv) = app.acme_private().await;
    let id = app.alice_uploads(&acme, &conv, "kept.txt", b"kept\n").await;
    // A blob no row names (as a crash between commit and blob deletion leaves).
    let stray = app
        .data_dir
        .join("files/files")
        .join(uuid::Uuid::now_v7().to_string());
    std::fs::write(&stray, b"stray").unwrap();
    assert_eq!(app.blob_count(), 2);
    // Once it is older than any upload in progress can be, the periodic job removes it.
    app.clock.advance(chrono::Duration::hours(7));
    app.clock.settled().await;
    assert!(!stray.exists(), "the orphan was swept");
    assert_eq!(app.blob_count(), 1);
    let url = app
        .file_url(&acme.bob.token, &id)
        .await
        .expect(200)
        .string("url");
    let (status, _, bytes) = app.fetch(&url).await;
    assert_eq!((status, bytes), (200, b"kept\n".to_vec()));
}
