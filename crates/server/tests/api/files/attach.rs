//! MSG-2 with DATA-1/2: files ride on messages. A send claims the sender's own unattached
//! uploads to that conversation (every other file is one 422 naming `attachment_ids`, whatever
//! the reason); every message object and event carries them; a deleted message, retention,
//! erasure and a deleted conversation or org take them away — rows, blobs and quota.

use super::*;
use crate::cases::Caller;
use crate::ws::Ws;

/// A send body with `ids` attached.
fn attaching(ids: Value) -> Value {
    json!({"content": "see attached", "attachment_ids": ids})
}

impl TestApp {
    /// `token` sends a message with `ids` attached to `conv`.
    pub(crate) async fn attach(&self, conv: &str, token: &str, ids: Value) -> Res {
        self.post(&conv_path(conv, "/messages"), token, attaching(ids))
            .await
    }

    /// Whether a participant (`token`) can still get a URL for file `id`.
    async fn file_exists(&self, token: &str, id: &str) -> bool {
        let res = self.file_url(token, id).await;
        match res.status.as_u16() {
            200 => true,
            _ => {
                res.expect_error(404, "not_found");
                false
            }
        }
    }
}

pub(crate) async fn attachments_ride_on_messages(app: TestApp) {
    let (acme, conv) = app.acme_private().await;
    let (alice, bob) = (&acme.alice, &acme.bob);
    let (mut ws, _) = Ws::identify(&app, &bob.token).await;
    let image = png(2, 2, 100);
    let pic = app
        .upload(As::Bearer(&alice.token), &conv, "pic.png", &image)
        .await
        .expect(201)
        .body;
    let note = app
        .upload(As::Bearer(&alice.token), &conv, "note.txt", b"a note\n")
        .await
        .expect(201)
        .body;
    let (pic_id, note_id) = (pic["id"].as_str().unwrap(), note["id"].as_str().unwrap());
    // Attached in any order, listed by id (upload order), each as POST /files answered it.
    let sent = app
        .attach(&conv, &alice.token, json!([note_id, pic_id]))
        .await
        .expect(201);
    let files = json!([pic, note]);
    assert_eq!(sent.body["attachments"], files, "{}", show(&sent.body));
    let doc = crate::meta::openapi(&app).await;
    let send_path = "/api/v1/conversations/{c}/messages";
    crate::meta::check(&doc, "post", send_path, 201, &sent.body);
    assert_eq!(ws.expect("MESSAGE_CREATE").await, sent.body);
    let listed = app.items(&conv_path(&conv, "/messages"), &bob.token).await;
    assert_eq!(listed[0]["attachments"], files);
    let url = app.file_url(&bob.token, pic_id).await.expect(200);
    let (status, _, bytes) = app.fetch(&url.string("url")).await;
    assert_eq!((status, bytes), (200, image));

    // An edit keeps them.
    let path = format!("/api/v1/messages/{}", sent.id());
    let edited = app
        .patch(&path, &alice.token, json!({"content": "edited"}))
        .await
        .expect(200);
    assert_eq!(edited.body["attachments"], files);
    assert_eq!(ws.expect("MESSAGE_UPDATE").await["attachments"], files);

    // A replay answers the original, files and all; other files under the key are a conflict.
    let third = app.alice_uploads(&acme, &conv, "3.txt", b"three\n").await;
    let fourth = app.alice_uploads(&acme, &conv, "4.txt", b"four\n").await;
    let keyed =
        |ids: Value| json!({"content": "once", "attachment_ids": ids, "idempotency_key": "k-1"});
    let messages = conv_path(&conv, "/messages");
    let answers = app
        .expect_all([
            alice.post(&messages, keyed(json!([third]))).is(201),
            alice.post(&messages, keyed(json!([third]))).is(200),
            alice
                .post(&messages, keyed(json!([fourth])))
                .err(409, "idempotency_conflict"),
            alice
                .post(&messages, keyed(json!([])))
                .err(409, "idempotency_conflict"),
        ])
        .await;
    assert_eq!(answers[0].body, answers[1].body);
    assert_eq!(answers[1].body["attachments"][0]["id"], third.as_str());
    ws.expect("MESSAGE_CREATE").await;

    // Deleted: a tombstone without files, and the files are gone.
    let blobs = app.blob_count();
    app.delete(&path, &alice.token).await.expect(204);
    let tombstone = ws.expect("MESSAGE_DELETE").await;
    assert_eq!(tombstone["attachments"], json!([]));
    assert!(tombstone["content"].is_null());
    let listed = app.items(&conv_path(&conv, "/messages"), &bob.token).await;
    let gone = listed.iter().find(|m| m["id"] == sent.id().as_str());
    assert_eq!(gone.unwrap()["attachments"], json!([]));
    for id in [pic_id, note_id] {
        assert!(!app.file_exists(&alice.token, id).await, "{id} is gone");
    }
    assert_eq!(app.blob_count(), blobs - 2, "their blobs went with them");
    assert!(app.file_exists(&bob.token, &fourth).await, "others stay");
}

pub(crate) async fn attachment_refusals_name_the_field(app: TestApp) {
    let (acme, conv) = app.acme_private().await;
    let (alice, bob) = (&acme.alice, &acme.bob);
    let other = app.group(&acme.org, alice, &[], json!("private")).await;
    let mine = app.alice_uploads(&acme, &conv, "mine.txt", b"mine\n").await;
    let his = app
        .uploaded(As::Bearer(&bob.token), &conv, "his.txt", b"his\n")
        .await;
    let there = app
        .alice_uploads(&acme, &other, "there.txt", b"there\n")
        .await;
    let used = app.alice_uploads(&acme, &conv, "used.txt", b"used\n").await;
    app.attach(&conv, &alice.token, json!([used]))
        .await
        .expect(201);
    let unknown = uuid::Uuid::now_v7().to_string();
    let messages = conv_path(&conv, "/messages");
    let eleven: Vec<String> = (0..11).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    // Alice sends a message attaching `ids`; refused 422 with `code`.
    let refused = |ids: Value, code| alice.post(&messages, attaching(ids)).err(422, code);
    let (unavailable, invalid) = ("attachment_unavailable", "invalid_value");
    let answers = app
        .expect_all([
            // Another user's, another conversation's, attached already, unknown, or a good one
            // beside a bad one: the same answer.
            refused(json!([his]), unavailable),
            refused(json!([there]), unavailable),
            refused(json!([used]), unavailable),
            refused(json!([unknown]), unavailable),
            refused(json!([mine, his]), unavailable),
            // Malformed, too many, twice the same.
            refused(json!(["not-a-uuid"]), invalid),
            refused(json!(eleven), invalid),
            refused(json!([mine, mine]), invalid),
            refused(json!(mine), invalid),
        ])
        .await;
    for refused in &answers[..5] {
        assert_eq!(refused.field(), Some("/attachment_ids"));
        assert_eq!(
            refused.message(),
            answers[0].message(),
            "nothing is told apart"
        );
    }
    let fields: Vec<_> = answers[5..].iter().map(|r| r.field()).collect();
    let list = Some("/attachment_ids");
    assert_eq!(fields, [Some("/attachment_ids/0"), list, list, list]);
    // Nothing was written or claimed: the one good file still attaches, an empty list is none.
    assert_eq!(app.message_count(&conv, alice).await, 1);
    let sent = app
        .attach(&conv, &alice.token, json!([mine]))
        .await
        .expect(201);
    assert_eq!(sent.body["attachments"][0]["id"], mine.as_str());
    let none = app.attach(&conv, &alice.token, json!([])).await.expect(201);
    assert_eq!(none.body["attachments"], json!([]));
    // Bob attaches his own.
    app.attach(&conv, &bob.token, json!([his]))
        .await
        .expect(201);
}

pub(crate) async fn only_senders_attach_their_own(app: TestApp) {
    let admin = app.bootstrap().await;
    let (t, mallory) = app.acme_and_mallory().await;
    let crate::fixtures::Team(alice, [bob, carol, vera, dan], org) = &t;
    let conv = app
        .group(org, alice, &[bob, vera, dan], json!("private"))
        .await;
    let other = app.group(org, alice, &[], json!("private")).await;
    let up = |who: &User, name: &'static str| {
        let (app, conv, token) = (&app, conv.clone(), who.token.clone());
        async move {
            app.uploaded(As::Bearer(&token), &conv, name, b"bytes\n")
                .await
        }
    };
    let alices = up(alice, "a.txt").await;
    let dans = up(dan, "d.txt").await;
    let bobs = up(bob, "b.txt").await;
    app.delete(
        &format!("/api/v1/conversations/{conv}/participants/{}", dan.id),
        &alice.token,
    )
    .await
    .expect(204);
    let messages = conv_path(&conv, "/messages");
    app.expect_all([
        // A Viewer may not send; a non-participant, another org's user and a removed
        // participant do not see the conversation.
        vera.post(&messages, attaching(json!([alices])))
            .err(403, "forbidden"),
        carol
            .post(&messages, attaching(json!([alices])))
            .err(404, "not_found"),
        mallory
            .post(&messages, attaching(json!([alices])))
            .err(404, "not_found"),
        dan.post(&messages, attaching(json!([dans])))
            .err(404, "not_found"),
    ])
    .await;
    app.set_disabled(ADMIN_TOKEN, bob, true).await;
    app.attach(&conv, &bob.token, json!([bobs]))
        .await
        .expect(401);
    // None of that claimed anything.
    app.attach(&conv, &alice.token, json!([alices]))
        .await
        .expect(201);
    assert_eq!(app.message_count(&conv, alice).await, 1);

    // Keys: sending needs messages:write within the key's conversations; uploading needed
    // files:write.
    let key = |scopes: Value, convs: Value| {
        let (app, alice, org) = (&app, alice, org.clone());
        async move {
            let spec =
                json!({"name": "k", "org_id": org, "scopes": scopes, "conversation_ids": convs});
            crate::keys::make_key(app, alice, spec).await.1
        }
    };
    let full = key(json!(["files:write", "messages:write"]), json!([conv])).await;
    let uploader = key(json!(["files:write"]), json!([conv])).await;
    let elsewhere = key(json!(["messages:write"]), json!([other])).await;
    let by_key = app
        .uploaded(As::Bearer(&full), &conv, "k.txt", b"key\n")
        .await;
    let by_uploader = app
        .uploaded(As::Bearer(&uploader), &conv, "u.txt", b"key\n")
        .await;
    app.attach(&conv, &uploader, json!([by_uploader]))
        .await
        .expect_error(403, "insufficient_scope");
    app.attach(&conv, &elsewhere, json!([by_key]))
        .await
        .expect_error(403, "insufficient_scope");
    let sent = app.attach(&conv, &full, json!([by_key, by_uploader])).await;
    assert_eq!(
        sent.expect(201).body["attachments"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // A bot attaches its own uploads, not someone else's.
    let bot = crate::bots::make_bot(&app, org, alice, json!({"name": "Filer"})).await;
    app.add_participant(&conv, alice, &bot.user_id).await;
    let bots = app
        .uploaded(As::Bot(&bot.token), &conv, "bot.txt", b"bot\n")
        .await;
    let alices = up(alice, "a2.txt").await;
    let as_bot = |ids: Value| {
        app.as_bot(
            reqwest::Method::POST,
            &messages,
            &bot.token,
            Some(attaching(ids)),
        )
    };
    as_bot(json!([alices]))
        .await
        .expect_error(422, "attachment_unavailable");
    let sent = as_bot(json!([bots])).await.expect(201);
    assert_eq!(sent.body["author"]["kind"], "bot");
    assert_eq!(sent.body["attachments"][0]["id"], bots.as_str());

    // An impersonated session sends as the user does, attachments included, audited with both
    // identities.
    let token = app
        .impersonate(&admin, alice)
        .await
        .expect(201)
        .string("token");
    app.upload(As::Bearer(&token), &conv, "i.txt", b"imp\n")
        .await
        .expect_error(403, "impersonation_forbidden");
    let sent = app.attach(&conv, &token, json!([alices])).await.expect(201);
    assert_eq!(sent.body["author"]["id"], alice.id.as_str());
    let rows = app.audit_of("message.sent").await.items();
    let row = rows
        .iter()
        .find(|r| r["resource"]["id"] == sent.id().as_str());
    assert_eq!(
        row.expect("audited")["actor"]["impersonator"],
        admin.id.as_str()
    );
}

/// A hundred sends claim one file at once: exactly one is created.
pub(crate) async fn a_file_is_claimed_by_one_of_a_hundred_sends(app: TestApp) {
    let (acme, conv) = app.acme_private().await;
    let file = app.alice_uploads(&acme, &conv, "once.txt", b"once\n").await;
    let sends = (0..100).map(|_| app.attach(&conv, &acme.alice.token, json!([file])));
    let answers = futures::future::join_all(sends).await;
    let mut created = 0;
    for res in answers {
        if res.status.as_u16() == 201 {
            created += 1;
        } else {
            res.expect_error(422, "attachment_unavailable");
        }
    }
    assert_eq!(created, 1, "exactly one send gets the file");
    assert_eq!(app.message_count(&conv, &acme.alice).await, 1);
}

/// Alice uploads a 300,000-byte file to `conv` (three fit her 1,024,000-byte quota).
async fn big(app: &TestApp, acme: &crate::fixtures::Acme, conv: &str) -> Res {
    let body = vec![b'z'; 300_000];
    app.upload(As::Bearer(&acme.alice.token), conv, "big.txt", &body)
        .await
}

pub(crate) async fn deletions_free_rows_blobs_and_quota(app: TestApp) {
    let (acme, conv) = app.acme_private().await;
    let alice = &acme.alice;
    let x = big(&app, &acme, &conv).await.expect(201).id();
    let y = big(&app, &acme, &conv).await.expect(201).id();
    let z = big(&app, &acme, &conv).await.expect(201).id();
    big(&app, &acme, &conv)
        .await
        .expect_error(413, "quota_exceeded");
    let sent = app
        .attach(&conv, &alice.token, json!([x, y]))
        .await
        .expect(201);
    // A message deleted by a moderator (the owner deletes Bob's) works the same; here the
    // author deletes: its two files go, with their bytes.
    app.delete(&format!("/api/v1/messages/{}", sent.id()), &alice.token)
        .await
        .expect(204);
    assert_eq!(app.blob_count(), 1);
    assert!(!app.file_exists(&acme.bob.token, &x).await);
    assert!(app.file_exists(&acme.bob.token, &z).await);
    let w = big(&app, &acme, &conv).await.expect(201).id();
    big(&app, &acme, &conv).await.expect(201);
    // A moderator's deletion of Bob's message frees Bob's file.
    let his = app
        .uploaded(As::Bearer(&acme.bob.token), &conv, "b.txt", b"bob\n")
        .await;
    let bobs = app
        .attach(&conv, &acme.bob.token, json!([his]))
        .await
        .expect(201);
    app.delete(&format!("/api/v1/messages/{}", bobs.id()), &alice.token)
        .await
        .expect(204);
    assert!(!app.file_exists(&acme.bob.token, &his).await);
    assert_eq!(app.blob_count(), 3);

    // A deleted conversation takes its files, attached or not.
    app.attach(&conv, &alice.token, json!([w]))
        .await
        .expect(201);
    app.delete(&conv_path(&conv, ""), &alice.token)
        .await
        .expect(204);
    assert_eq!(app.blob_count(), 0);
    // So does a deleted org.
    let other = app.group(&acme.org, alice, &[], json!("private")).await;
    for _ in 0..3 {
        big(&app, &acme, &other).await.expect(201);
    }
    app.delete(&org_path(&acme.org, ""), &alice.token)
        .await
        .expect(204);
    assert_eq!(app.blob_count(), 0);
    // Every byte came back.
    let fresh = app.org(alice, "Fresh").await;
    let conv = app.group(&fresh, alice, &[], json!("private")).await;
    for _ in 0..3 {
        big(&app, &acme, &conv).await.expect(201);
    }
}

pub(crate) async fn retention_frees_files(app: TestApp) {
    let (acme, conv) = app.acme_private().await;
    let alice = &acme.alice;
    app.update_org(&acme.org, alice, json!({ "message_retention_days": 1 }))
        .await
        .expect(200);
    let old = big(&app, &acme, &conv).await.expect(201).id();
    let unsent = big(&app, &acme, &conv).await.expect(201).id();
    app.attach(&conv, &alice.token, json!([old]))
        .await
        .expect(201);
    // Two days on the job has removed the message, its file and the upload never sent.
    app.clock.advance(chrono::Duration::days(2));
    app.clock.settled().await;
    let alice = app.sign_in_again("alice", alice.clone()).await;
    assert_eq!(app.message_count(&conv, &alice).await, 0, "the job ran");
    for id in [&old, &unsent] {
        assert!(!app.file_exists(&alice.token, id).await);
    }
    assert_eq!(app.blob_count(), 0);
    let acme = crate::fixtures::Acme { alice, ..acme };
    for _ in 0..3 {
        big(&app, &acme, &conv).await.expect(201);
    }
}

pub(crate) async fn erasure_frees_or_hands_over_files_by_policy(app: TestApp) {
    let crate::fixtures::ErasureOrgs(owner, alice, tomb, anon) = app.erasure_orgs().await;
    let mut convs = Vec::new();
    let mut files = Vec::new();
    for org in [&tomb, &anon] {
        let conv = app.group(org, &owner, &[&alice], json!("private")).await;
        let id = app
            .uploaded(As::Bearer(&alice.token), &conv, "hers.txt", b"hers\n")
            .await;
        app.attach(&conv, &alice.token, json!([id]))
            .await
            .expect(201);
        convs.push(conv);
        files.push(id);
    }
    let unsent = app
        .uploaded(As::Bearer(&alice.token), &convs[1], "u.txt", b"unsent\n")
        .await;
    assert_eq!(app.blob_count(), 3);
    let body = json!({ "password": PASSWORD });
    app.call(
        Method::DELETE,
        "/api/v1/users/@me",
        Some(&alice.token),
        Some(body),
    )
    .await
    .expect(204);
    // Tombstoned with its message; never sent: gone.
    assert!(!app.file_exists(&owner.token, &files[0]).await);
    assert!(!app.file_exists(&owner.token, &unsent).await);
    // Anonymised: the message keeps its file under the placeholder author.
    let kept = app
        .items(&conv_path(&convs[1], "/messages"), &owner.token)
        .await;
    assert_ne!(kept[0]["author"]["id"], alice.id.as_str());
    assert_eq!(kept[0]["attachments"][0]["id"], files[1].as_str());
    assert!(app.file_exists(&owner.token, &files[1]).await);
    assert_eq!(app.blob_count(), 1);
}

/// A node that died mid-upload leaves its reservation behind, as the database shows it: the
/// bytes counted in the uploader's usage and held by a lease nobody renews.
async fn leave_a_dead_upload(app: &TestApp, user: &str, bytes: i64) {
    use conclave_core::clock::Clock;
    let url = app
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", app.data_dir.join("conclave.db").display()));
    let db = crate::db::Db::connect(&url).await;
    let user = uuid::Uuid::parse_str(user).unwrap();
    let now = app.clock.now();
    crate::with_pool!(&db, p => {
        sqlx::query(
            "INSERT INTO upload_leases (id, user_id, bytes, renewed_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(uuid::Uuid::now_v7())
        .bind(user)
        .bind(bytes)
        .bind(now)
        .execute(p)
        .await
        .unwrap();
        sqlx::query("UPDATE file_usage SET used_bytes = used_bytes + $2 WHERE user_id = $1")
            .bind(user)
            .bind(bytes)
            .execute(p)
            .await
            .unwrap();
    });
    db.close().await;
}

/// `hours` later (the jobs have run), with Alice signed in again.
async fn hours_later(
    app: &TestApp,
    acme: crate::fixtures::Acme,
    hours: i64,
) -> crate::fixtures::Acme {
    app.clock.advance(chrono::Duration::hours(hours));
    app.clock.settled().await;
    let alice = app.sign_in_again("alice", acme.alice.clone()).await;
    crate::fixtures::Acme { alice, ..acme }
}

pub(crate) async fn a_dead_nodes_upload_gives_its_quota_back(app: TestApp) {
    let (acme, conv) = app.acme_private().await;
    big(&app, &acme, &conv).await.expect(201);
    leave_a_dead_upload(&app, &acme.alice.id, 700_000).await;
    big(&app, &acme, &conv)
        .await
        .expect_error(413, "quota_exceeded");
    // An hour on, the lease may still be an upload that stalls: nothing comes back yet.
    let acme = hours_later(&app, acme, 1).await;
    big(&app, &acme, &conv)
        .await
        .expect_error(413, "quota_exceeded");
    // Past the longest an upload may stall, the file sweep expires the lease and gives its
    // 700,000 bytes back: two more uploads of 300,000 fit beside the first.
    let acme = hours_later(&app, acme, 6).await;
    big(&app, &acme, &conv).await.expect(201);
    big(&app, &acme, &conv).await.expect(201);
    big(&app, &acme, &conv)
        .await
        .expect_error(413, "quota_exceeded");
}
