//! DATA-1, DATA-2: uploads (streamed, typed from content, limited, quota held under parallel
//! uploads, hostile files and names refused leaving nothing behind), signed downloads
//! (participants only, served so nothing runs, altered or expired URLs refused) and files
//! attached to messages (MSG-2).

use crate::both_backends;
use crate::fixtures::Acme;
use crate::helpers::*;
use reqwest::Method;
use serde_json::{json, Value};

mod access;
mod attach;
mod hostile;
mod roundtrip;
mod s3;
mod usage;

use access::*;
use attach::*;
use hostile::*;
use roundtrip::*;
use usage::*;

both_backends!(
    upload_and_download_round_trip,
    signed_urls_are_bound_and_expire,
    only_participants_reach_files,
    keys_and_bots_need_scope_and_reach,
    hostile_files_are_refused_and_leave_nothing,
    an_endless_id_field_is_refused_without_reading_it,
    orphan_blobs_are_swept,
    admins_see_each_users_file_usage,
    attachments_ride_on_messages,
    attachment_refusals_name_the_field,
    only_senders_attach_their_own,
    erasure_frees_or_hands_over_files_by_policy,
);

/// Attachments on a server with small limits and no rate limits.
mod attachments {
    use super::*;

    crate::both_backends!(
        with crate::files::limited_app;
        a_file_is_claimed_by_one_of_a_hundred_sends,
        deletions_free_rows_blobs_and_quota,
        retention_frees_files,
        a_dead_nodes_upload_gives_its_quota_back,
    );
}

/// Two nodes sharing a database and an S3 bucket.
mod s3_storage {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        s3::uploaded_on_one_node_downloaded_through_another(Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        s3::uploaded_on_one_node_downloaded_through_another(Backend::Postgres).await;
    }
}

/// The limits test runs on a server with small limits.
mod limits {
    use super::*;

    mod sqlite {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn size_and_quota_hold_under_parallel_uploads() {
            if let Some(app) = super::limited_app(super::Backend::Sqlite).await {
                super::size_and_quota_hold_under_parallel_uploads(app).await;
            }
        }
    }

    mod postgres {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn size_and_quota_hold_under_parallel_uploads() {
            if let Some(app) = super::limited_app(super::Backend::Postgres).await {
                super::size_and_quota_hold_under_parallel_uploads(app).await;
            }
        }
    }
}

const BOUNDARY: &str = "conclave-test-boundary-7d1f0c";

/// One multipart part: field name, file name (for a file), content.
pub(crate) struct Part<'a> {
    pub name: &'a str,
    pub file_name: Option<&'a str>,
    pub content: &'a [u8],
}

pub(crate) fn conv_part(conv: &str) -> Part<'_> {
    Part {
        name: "conversation_id",
        file_name: None,
        content: conv.as_bytes(),
    }
}

pub(crate) fn file_part<'a>(file_name: &'a str, content: &'a [u8]) -> Part<'a> {
    Part {
        name: "file",
        file_name: Some(file_name),
        content,
    }
}

/// A `multipart/form-data` body of `parts`, closed properly.
pub(crate) fn form(parts: &[Part<'_>]) -> Vec<u8> {
    let mut body = Vec::new();
    for p in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        match p.file_name {
            Some(f) => body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{}\"; filename=\"{f}\"\r\n\
                     Content-Type: image/png\r\n\r\n",
                    p.name
                )
                .as_bytes(),
            ),
            None => body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{}\"\r\n\r\n",
                    p.name
                )
                .as_bytes(),
            ),
        }
        body.extend_from_slice(p.content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// A PNG signature and IHDR of `w` × `h`, then `extra` bytes of filler.
pub(crate) fn png(w: u32, h: u32, extra: usize) -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR".to_vec();
    v.extend_from_slice(&w.to_be_bytes());
    v.extend_from_slice(&h.to_be_bytes());
    v.extend_from_slice(&[8, 6, 0, 0, 0, 0, 0, 0, 0]);
    v.extend((0..extra).map(|i| (i % 7) as u8));
    v
}

/// How the request authenticates.
#[derive(Clone, Copy)]
pub(crate) enum As<'a> {
    Bearer(&'a str),
    Bot(&'a str),
}

impl TestApp {
    /// Acme, owned by Alice, with Bob, Carol and Dan (members) and Vera (a viewer), registered
    /// in that order; then Mallory, who owns "Evil".
    pub(crate) async fn acme_and_mallory(
        &self,
    ) -> (crate::fixtures::Team<4>, crate::helpers::User) {
        let t = self
            .team(
                "alice",
                "Acme",
                [
                    ("bob", "member"),
                    ("carol", "member"),
                    ("vera", "viewer"),
                    ("dan", "member"),
                ],
            )
            .await;
        let (mallory, _) = self.mallory().await;
        (t, mallory)
    }

    /// Sends a raw multipart `body` to `POST /api/v1/files`.
    /// The clock moves 3 s first: the per-user upload limit (20 a minute) refills meanwhile.
    pub(crate) async fn upload_raw(&self, who: As<'_>, body: Vec<u8>) -> Res {
        self.clock.advance(chrono::Duration::seconds(3));
        let rb = self
            .client
            .request(Method::POST, self.url("/api/v1/files"))
            .header(
                "content-type",
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(body);
        let rb = match who {
            As::Bearer(t) => rb.bearer_auth(t),
            As::Bot(t) => rb.header("authorization", format!("Bot {t}")),
        };
        self.send(rb).await
    }

    /// Acme and a private conversation of alice and bob, where most file tests upload.
    pub(crate) async fn acme_private(&self) -> (Acme, String) {
        let acme = self.acme().await;
        let conv = self
            .group(&acme.org, &acme.alice, &[&acme.bob], json!("private"))
            .await;
        (acme, conv)
    }

    /// Alice uploads `name` with `content` to `conv`: the new file's id.
    pub(crate) async fn alice_uploads(
        &self,
        acme: &Acme,
        conv: &str,
        name: &str,
        content: &[u8],
    ) -> String {
        self.uploaded(As::Bearer(&acme.alice.token), conv, name, content)
            .await
    }

    /// Uploads `content` named `name` into `conv` as `who`.
    pub(crate) async fn upload(&self, who: As<'_>, conv: &str, name: &str, content: &[u8]) -> Res {
        self.upload_raw(who, form(&[conv_part(conv), file_part(name, content)]))
            .await
    }

    /// [`upload`](Self::upload), which must be accepted: the new file's id.
    pub(crate) async fn uploaded(
        &self,
        who: As<'_>,
        conv: &str,
        name: &str,
        content: &[u8],
    ) -> String {
        self.upload(who, conv, name, content).await.expect(201).id()
    }

    /// `GET /api/v1/files/{id}/url` as `token`.
    pub(crate) async fn file_url(&self, token: &str, id: &str) -> Res {
        self.get(&format!("/api/v1/files/{id}/url"), token).await
    }

    /// Fetches a media URL without credentials: status, headers and the raw bytes.
    pub(crate) async fn fetch(&self, url: &str) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
        let res = self.client.get(url).send().await.expect("request sent");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let bytes = res.bytes().await.expect("body").to_vec();
        (status, headers, bytes)
    }

    /// How many blobs the local storage holds.
    pub(crate) fn blob_count(&self) -> usize {
        fn walk(dir: &std::path::Path) -> usize {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return 0;
            };
            entries
                .flatten()
                .map(|e| {
                    let p = e.path();
                    if p.is_dir() {
                        walk(&p)
                    } else {
                        1
                    }
                })
                .sum()
        }
        walk(&self.data_dir.join("files"))
    }
}

/// The JSON body of an error, for messages.
pub(crate) fn show(v: &Value) -> String {
    v.to_string()
}
