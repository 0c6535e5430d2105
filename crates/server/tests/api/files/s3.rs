//! SCALE-3: files in S3-compatible storage, shared by two nodes: uploaded through node A,
//! downloaded through node B (one database — PostgreSQL, or SQLite's file — one master key, one bucket). The
//! S3 server is `moto` in server mode (`python3 -m pip install 'moto[server]'`); without it the
//! test is skipped, except under `CI=true`, where it fails.

use super::*;
use conclave_server::config::{Config, StorageKind};
use secrecy::SecretString;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `moto_server`, stopped on drop.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn skip(reason: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("the S3 test needs moto under CI=true: {reason}");
    }
    eprintln!("SKIPPED files::s3: {reason}");
}

async fn start_moto() -> Option<Moto> {
    let port = free_port();
    let child = Command::new("python3")
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let child = match child {
        Ok(c) => c,
        Err(e) => {
            skip(&format!("cannot run python3: {e}"));
            return None;
        }
    };
    let moto = Moto {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
    };
    let started = Instant::now();
    let client = reqwest::Client::new();
    loop {
        if client.get(&moto.endpoint).send().await.is_ok() {
            return Some(moto);
        }
        if started.elapsed() > Duration::from_secs(30) {
            skip("moto did not start (python3 -m pip install 'moto[server]')");
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn s3_settings(c: &mut Config, endpoint: &str, master_key: &str) {
    c.files.storage = StorageKind::S3;
    c.files.s3_bucket = Some("conclave-files".into());
    c.files.s3_endpoint = Some(endpoint.to_owned());
    c.files.s3_region = Some("us-east-1".into());
    c.files.s3_access_key_id = Some("testing".into());
    c.files.s3_secret_access_key = Some(SecretString::from("testing-secret"));
    c.files.s3_allow_http = true;
    c.master_key = Some(SecretString::from(master_key.to_owned()));
}

pub(crate) async fn uploaded_on_one_node_downloaded_through_another(backend: Backend) {
    let Some(moto) = start_moto().await else {
        return;
    };
    reqwest::Client::new()
        .put(format!("{}/conclave-files", moto.endpoint))
        .send()
        .await
        .expect("create the bucket")
        .error_for_status()
        .expect("bucket created");
    let master = conclave_core::keys::MasterKey::generate().to_base64();
    let Some(a) = spawn_app_with(backend, |c| s3_settings(c, &moto.endpoint, &master)).await else {
        return;
    };
    // One database: PostgreSQL's, or node A's SQLite file.
    let shared_db = a.database_url.clone().or_else(|| {
        Some(format!(
            "sqlite://{}",
            a.data_dir.join("conclave.db").display()
        ))
    });
    let b = spawn_app_with(backend, |c| {
        s3_settings(c, &moto.endpoint, &master);
        c.database_url = shared_db;
    })
    .await
    .expect("node B starts");
    let (acme, conv) = a.acme_private().await;
    let image = png(8, 8, 6 * 1024 * 1024);
    let id = a.alice_uploads(&acme, &conv, "big.png", &image).await;
    assert_eq!(a.blob_count(), 0, "nothing is stored on node A's disk");
    // Node B signs and serves what node A stored; a URL signed by A works on B too.
    let url = b
        .file_url(&acme.bob.token, &id)
        .await
        .expect(200)
        .string("url");
    assert!(url.starts_with(&b.base));
    let (status, h, bytes) = b.fetch(&url).await;
    assert_eq!(status, 200);
    assert_eq!(h["content-type"], "image/png");
    assert!(
        bytes == image,
        "the bytes come back unchanged through node B"
    );
    let from_a = a
        .file_url(&acme.alice.token, &id)
        .await
        .expect(200)
        .string("url");
    let on_b = from_a.replacen(&a.base, &b.base, 1);
    assert_eq!(b.fetch(&on_b).await.0, 200);
    // Refusals leave nothing in the bucket either: a refused upload is not listed.
    a.upload(As::Bearer(&acme.alice.token), &conv, "x.svg", b"<svg/>")
        .await
        .expect_error(415, "file_type_not_allowed");
}
