//! MSG-6: search per conversation and per org — only what the caller may list, keys and bots
//! within their limits, query text that is never syntax, escaped snippets, both orders paged.

use crate::both_backends;
use crate::bots::make_bot;
use crate::fixtures::{Rivals, Team};
use crate::helpers::*;
use crate::keys::make_key;
use reqwest::Method;
use serde_json::{json, Value};

both_backends!(
    only_readable_conversations_are_searched,
    keys_bots_and_impersonation_keep_their_limits,
    query_text_is_plain_and_snippets_are_escaped,
    pages_in_both_orders_without_repeats,
    cursors_are_sealed_and_say_nothing_of_other_orgs,
    a_hundred_parallel_searches_and_sends,
);

/// `q` percent-encoded for a query string.
fn enc(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn org_search(org: &str, q: &str) -> String {
    org_path(org, &format!("/search?q={}", enc(q)))
}

fn conv_search(conv: &str, q: &str) -> String {
    conv_path(conv, &format!("/search?q={}", enc(q)))
}

/// The message ids of a search answer, in order.
fn hit_ids(res: &Res) -> Vec<String> {
    res.items()
        .iter()
        .map(|h| {
            h["message"]["id"]
                .as_str()
                .expect("a message id")
                .to_owned()
        })
        .collect()
}

/// The ids `token` finds at `path` (200 expected), sorted.
async fn found(app: &TestApp, path: &str, token: &str) -> Vec<String> {
    let mut ids = hit_ids(&app.get(path, token).await.expect(200));
    ids.sort();
    ids
}

/// Each (path, user, status, code): the user's search there is refused so.
async fn refused(app: &TestApp, cases: &[(String, &User, u16, &str)]) {
    for (path, who, status, code) in cases {
        app.get(path, &who.token).await.expect_error(*status, code);
    }
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

async fn only_readable_conversations_are_searched(app: TestApp) {
    let Team(owner, [member, viewer, removed, loner], org) = app
        .team(
            "owner",
            "Acme",
            [
                ("member", "member"),
                ("viewer", "viewer"),
                ("removed", "member"),
                ("loner", "member"),
            ],
        )
        .await;
    let (mallory, evil) = app.mallory().await;
    let shared = app
        .group(
            &org,
            &owner,
            &[&member, &viewer, &removed],
            json!("private"),
        )
        .await;
    let private = app.group(&org, &owner, &[], json!("private")).await;
    let open = app.group(&org, &owner, &[], json!("org")).await;
    let in_shared = app.says(&shared, &owner, "quarterly budget").await.id();
    let in_private = app.says(&private, &owner, "secret budget").await.id();
    let in_open = app.says(&open, &owner, "open budget").await.id();
    let theirs = app.group(&evil, &mallory, &[], json!("org")).await;
    app.says(&theirs, &mallory, "evil budget").await;

    // The owner takes part in all three; the member, the Viewer and (for now) the removed
    // one only in the shared conversation.
    let all = found(&app, &org_search(&org, "budget"), &owner.token).await;
    assert_eq!(all, sorted(vec![in_shared.clone(), in_private, in_open]));
    for who in [&member, &viewer, &removed] {
        let mine = found(&app, &org_search(&org, "budget"), &who.token).await;
        assert_eq!(mine, vec![in_shared.clone()], "{}", who.name);
        let here = found(&app, &conv_search(&shared, "budget"), &who.token).await;
        assert_eq!(here, vec![in_shared.clone()]);
    }
    // Not a participant: nothing from the private conversation (not even that it exists) nor
    // from the org-visible one not joined (which they may see, not read).
    assert!(found(&app, &org_search(&org, "budget"), &loner.token)
        .await
        .is_empty());
    // Another org's user: neither the org nor its conversations exist for them.
    refused(
        &app,
        &[
            (conv_search(&private, "budget"), &loner, 404, "not_found"),
            (conv_search(&open, "budget"), &loner, 403, "forbidden"),
            (org_search(&org, "budget"), &mallory, 404, "not_found"),
            (conv_search(&shared, "budget"), &mallory, 404, "not_found"),
        ],
    )
    .await;
    assert_eq!(
        found(&app, &org_search(&evil, "budget"), &mallory.token)
            .await
            .len(),
        1
    );

    // Removed: nothing from that conversation any more, old or new.
    let path = conv_path(&shared, &format!("/participants/{}", removed.id));
    app.delete(&path, &owner.token).await.expect(204);
    app.says(&shared, &owner, "budget after the removal").await;
    assert!(found(&app, &org_search(&org, "budget"), &removed.token)
        .await
        .is_empty());
    refused(
        &app,
        &[(conv_search(&shared, "budget"), &removed, 404, "not_found")],
    )
    .await;
    assert_eq!(
        found(&app, &org_search(&org, "budget"), &member.token)
            .await
            .len(),
        2
    );

    // A disabled account searches nothing at all.
    app.set_disabled(ADMIN_TOKEN, &member, true).await;
    app.get(&org_search(&org, "budget"), &member.token)
        .await
        .expect(401);
    app.get(&conv_search(&shared, "budget"), &member.token)
        .await
        .expect(401);
}

/// A request with `Authorization: Bearer <token>` (sessions and keys alike).
async fn get_as(app: &TestApp, path: &str, token: &str) -> Res {
    app.call(Method::GET, path, Some(token), None).await
}

async fn keys_bots_and_impersonation_keep_their_limits(app: TestApp) {
    let admin = app.bootstrap().await;
    let Rivals(alice, mallory, org, evil) = app.rivals().await;
    let one = app.group(&org, &alice, &[], json!("private")).await;
    let two = app.group(&org, &alice, &[], json!("private")).await;
    let in_one = app.says(&one, &alice, "release notes").await.id();
    let in_two = app.says(&two, &alice, "release plan").await.id();
    let theirs = app.group(&evil, &mallory, &[], json!("private")).await;
    app.says(&theirs, &mallory, "release party").await;

    // A key without `messages:read` may not search at all.
    let body =
        json!({"name": "no read", "org_id": org, "scopes": ["conversations:read", "org:read"]});
    let (_, unread) = make_key(&app, &alice, body).await;
    for path in [org_search(&org, "release"), conv_search(&one, "release")] {
        get_as(&app, &path, &unread)
            .await
            .expect_error(403, "insufficient_scope");
    }
    // With it, everything its owner reads; limited to `one`, only that.
    let body = json!({"name": "reader", "org_id": org, "scopes": ["messages:read"]});
    let (_, reader) = make_key(&app, &alice, body).await;
    let all = found(&app, &org_search(&org, "release"), &reader).await;
    assert_eq!(all, sorted(vec![in_one.clone(), in_two.clone()]));
    let body = json!({"name": "one", "org_id": org, "scopes": ["messages:read"], "conversation_ids": [one]});
    let (_, limited) = make_key(&app, &alice, body).await;
    let mine = found(&app, &org_search(&org, "release"), &limited).await;
    assert_eq!(mine, vec![in_one.clone()]);
    assert_eq!(
        found(&app, &conv_search(&one, "release"), &limited).await,
        vec![in_one.clone()]
    );
    get_as(&app, &conv_search(&two, "release"), &limited)
        .await
        .expect_error(403, "insufficient_scope");
    // A key of this org reaches no other org.
    get_as(&app, &org_search(&evil, "release"), &reader)
        .await
        .expect(404);

    // A bot reads where it takes part, and searches only there.
    let bot = make_bot(&app, &org, &alice, json!({"name": "Helper"})).await;
    app.add_participant(&two, &alice, &bot.user_id).await;
    let res = app
        .as_bot(Method::GET, &org_search(&org, "release"), &bot.token, None)
        .await
        .expect(200);
    assert_eq!(hit_ids(&res), vec![in_two.clone()]);
    app.as_bot(Method::GET, &conv_search(&one, "release"), &bot.token, None)
        .await
        .expect_error(404, "not_found");

    // An impersonated session reads what the user reads.
    let token = app.impersonation(&admin, &alice).await;
    assert_eq!(
        found(&app, &org_search(&org, "release"), &token).await,
        sorted(vec![in_one, in_two])
    );
    get_as(&app, &org_search(&evil, "release"), &token)
        .await
        .expect_error(404, "not_found");
}

async fn query_text_is_plain_and_snippets_are_escaped(app: TestApp) {
    let doc = crate::meta::openapi(&app).await;
    let (alice, org, conv) = app.alice_private().await;
    let tricky = app
        .says(
            &conv,
            &alice,
            r#"<script>alert("x")</script> say "hello" OR near(me) -minus a:b star*"#,
        )
        .await
        .id();
    let res = app
        .get(&conv_search(&conv, "alert hello"), &alice.token)
        .await
        .expect(200);
    crate::meta::check(
        &doc,
        "get",
        "/api/v1/conversations/{c}/search",
        200,
        &res.body,
    );
    let snippet = res.items()[0]["snippet"].as_str().unwrap().to_owned();
    assert_eq!(
        snippet,
        "&lt;script&gt;<mark>alert</mark>(&quot;x&quot;)&lt;/script&gt; say \
         &quot;<mark>hello</mark>&quot; OR near(me) -minus a:b star*"
    );
    // Operators of either engine are text: no error, and they find the message.
    for q in [
        r#""hello""#,
        r#"hello""#,
        "OR hello",
        "NEAR(me",
        "-minus",
        "a:b",
        "star*",
        "hello & !",
        "(hello)",
    ] {
        let ids = found(&app, &org_search(&org, q), &alice.token).await;
        assert_eq!(ids, vec![tricky.clone()], "{q}");
    }
    for q in ["\"", "*", "-", ":", "NEAR(", "^"] {
        let res = app
            .get(&org_search(&org, q), &alice.token)
            .await
            .expect(200);
        assert!(
            res.items().is_empty() || hit_ids(&res) == vec![tricky.clone()],
            "{q}"
        );
    }
    assert!(
        found(&app, &org_search(&org, "hello OR absent"), &alice.token)
            .await
            .is_empty()
    );
    // HTML messages are snipped from their text.
    let body =
        json!({"content": "<p>see <a href=\"https://x.test/\">the docs</a></p>", "format": "html"});
    app.post(&conv_path(&conv, "/messages"), &alice.token, body)
        .await
        .expect(201);
    let res = app
        .get(&conv_search(&conv, "docs"), &alice.token)
        .await
        .expect(200);
    assert_eq!(res.items()[0]["snippet"], "see the <mark>docs</mark>");
    // Deleted messages never match.
    app.delete(&format!("/api/v1/messages/{tricky}"), &alice.token)
        .await
        .expect(204);
    assert!(found(&app, &conv_search(&conv, "hello"), &alice.token)
        .await
        .is_empty());

    // Bad parameters: 422 naming the parameter.
    let base = conv_path(&conv, "/search");
    let long = "a".repeat(257);
    for (query, field) in [
        (String::new(), "q"),
        ("?q=".to_owned(), "q"),
        ("?q=%20%20".to_owned(), "q"),
        (format!("?q={long}"), "q"),
        ("?q=x&sort=oldest".to_owned(), "sort"),
        ("?q=x&limit=0".to_owned(), "limit"),
        ("?q=x&limit=101".to_owned(), "limit"),
        ("?q=x&limit=ten".to_owned(), "limit"),
        ("?q=x&before=nope".to_owned(), "before"),
    ] {
        let res = app
            .get(&format!("{base}{query}"), &alice.token)
            .await
            .expect(422);
        assert_eq!(res.field(), Some(field), "{query}");
        crate::meta::check(
            &doc,
            "get",
            "/api/v1/conversations/{c}/search",
            422,
            &res.body,
        );
    }
    let ok = format!("?q={}", "a".repeat(256));
    app.get(&format!("{base}{ok}"), &alice.token)
        .await
        .expect(200);
}

async fn pages_in_both_orders_without_repeats(app: TestApp) {
    let doc = crate::meta::openapi(&app).await;
    let (alice, org, conv) = app.alice_private().await;
    let capabilities = app.get_anon("/api/v1/capabilities").await.expect(200);
    assert_eq!(capabilities.body["features"]["search"], true);
    let mut sent = Vec::new();
    for i in 0..7 {
        let text = format!("{} item{i}", "apple ".repeat(1 + i % 3));
        sent.push(app.says(&conv, &alice, &text).await.id());
    }
    app.says(&conv, &alice, "no fruit").await;
    for (sort, path) in [
        ("newest", org_search(&org, "apple")),
        ("relevance", conv_search(&conv, "apple")),
    ] {
        let first = format!("{path}&sort={sort}&limit=3");
        let mut res = app.get(&first, &alice.token).await.expect(200);
        let schema_path = if path.contains("/orgs/") {
            "/api/v1/orgs/{org}/search"
        } else {
            "/api/v1/conversations/{c}/search"
        };
        crate::meta::check(&doc, "get", schema_path, 200, &res.body);
        let mut ids = hit_ids(&res);
        let mut pages = 1;
        while res.body["next"].is_string() {
            res = app.next_page(&first, &res, &alice.token).await;
            ids.extend(hit_ids(&res));
            pages += 1;
        }
        assert_eq!(pages, 3, "{sort}: 3 + 3 + 1");
        assert_eq!(
            sorted(ids.clone()),
            sorted(sent.clone()),
            "{sort}: each once"
        );
        if sort == "newest" {
            let mut newest = sent.clone();
            newest.reverse();
            assert_eq!(ids, newest);
        } else {
            let best: Value = app.get(&format!("{path}&limit=1"), &alice.token).await.body;
            let text = best["items"][0]["message"]["content"].as_str().unwrap();
            assert!(text.starts_with("apple apple apple"), "{text}");
            assert_eq!(ids[0], best["items"][0]["message"]["id"].as_str().unwrap());
        }
    }
    // A cursor opens only for the next page of its own search: one of the other order, or
    // made up, is refused as an invalid cursor.
    let newest = app
        .get(
            &format!("{}&sort=newest&limit=1", org_search(&org, "apple")),
            &alice.token,
        )
        .await
        .expect(200);
    for before in [newest.string("next"), "A".repeat(70), "_".repeat(32)] {
        let path = format!(
            "{}&sort=relevance&before={before}",
            org_search(&org, "apple")
        );
        let res = app.get(&path, &alice.token).await;
        let res = res.expect_error(422, "invalid_cursor");
        assert_eq!(res.field(), Some("before"));
        crate::meta::check(&doc, "get", "/api/v1/orgs/{org}/search", 422, &res.body);
    }
}

/// The score a message has in a search for `word` as the backend computes it (FTS5's `bm25`
/// reads the whole index: every org's messages).
async fn score_of(app: &TestApp, message: &str, word: &str) -> f64 {
    let db = crate::db::Db::of(app).await;
    let id = uuid::Uuid::parse_str(message).unwrap();
    match &db {
        crate::db::Db::Sqlite(p) => sqlx::query_scalar(
            "SELECT bm25(message_search) FROM message_search \
             WHERE message_search MATCH ? AND message_id = ?",
        )
        .bind(format!("\"{word}\""))
        .bind(id)
        .fetch_one(p)
        .await
        .unwrap(),
        crate::db::Db::Pg(p) => sqlx::query_scalar(
            "SELECT (-ts_rank(search, plainto_tsquery('simple', $1)))::float8 \
             FROM messages WHERE id = $2",
        )
        .bind(word)
        .bind(id)
        .fetch_one(p)
        .await
        .unwrap(),
    }
}

/// R80 (AZ-1): a search cursor is sealed. A one-hit page's cursor once carried the hit's score
/// readably — on SQLite a function of every org's messages (how many there are, how long, how
/// many hold the word), so decoding it told how often any word is written server-wide — and
/// any 32 characters were accepted as a position, so scores could be probed. Now the cursor
/// holds neither the score's bytes nor the id's, differs each time it is made, and one
/// tampered with, made up, or of another search or caller is refused.
async fn cursors_are_sealed_and_say_nothing_of_other_orgs(app: TestApp) {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (alice, org, conv) = app.alice_private().await;
    let mine = app.says(&conv, &alice, "a zebra crossing").await.id();
    let first = format!("{}&limit=1", org_search(&org, "zebra"));
    let cursor = |res: &Res| res.string("next");
    let at_first = [
        cursor(&app.get(&first, &alice.token).await.expect(200)),
        cursor(&app.get(&first, &alice.token).await.expect(200)),
    ];
    let score_first = score_of(&app, &mine, "zebra").await;
    // Another org writes the word twenty times.
    let bob = app.user("bob").await;
    let elsewhere = app.org(&bob, "Elsewhere").await;
    let theirs = app.group(&elsewhere, &bob, &[], json!("private")).await;
    for i in 0..20 {
        // A second between sends keeps Bob within his write budget.
        app.clock.advance(chrono::Duration::seconds(1));
        app.says(&theirs, &bob, &format!("zebra zebra zebra {i}"))
            .await;
    }
    let then = cursor(&app.get(&first, &alice.token).await.expect(200));
    let score_then = score_of(&app, &mine, "zebra").await;
    if matches!(app.backend, Backend::Sqlite) {
        assert_ne!(score_first, score_then, "bm25 reads every org's messages");
    }
    assert_ne!(
        at_first[0], at_first[1],
        "a cursor is sealed afresh each time"
    );
    let id = uuid::Uuid::parse_str(&mine).unwrap();
    for (c, score) in [
        (&at_first[0], score_first),
        (&at_first[1], score_first),
        (&then, score_then),
    ] {
        let raw = b64.decode(c).expect("base64url");
        let bits = score.to_bits().to_be_bytes();
        assert!(!raw.windows(8).any(|w| w == bits), "the score shows in {c}");
        assert!(
            !raw.windows(16).any(|w| w == id.as_bytes()),
            "the id shows in {c}"
        );
    }
    // The cursor still continues its own search (Alice has one hit: the next page is empty)…
    let next = app
        .get(&format!("{first}&before={}", at_first[0]), &alice.token)
        .await
        .expect(200);
    assert!(next.items().is_empty());
    // …and nothing else: tampered with, another search, another caller.
    let mut tampered = b64.decode(&then).unwrap();
    tampered[0] ^= 1;
    let tampered = b64.encode(tampered);
    let bobs = org_search(&elsewhere, "zebra");
    for (path, token) in [
        (format!("{first}&before={tampered}"), &alice.token),
        (
            format!("{}&limit=1&before={then}", org_search(&org, "crossing")),
            &alice.token,
        ),
        (
            format!("{}&limit=1&before={then}", conv_search(&conv, "zebra")),
            &alice.token,
        ),
        (format!("{bobs}&limit=1&before={then}"), &bob.token),
    ] {
        let res = app
            .get(&path, token)
            .await
            .expect_error(422, "invalid_cursor");
        assert_eq!(res.field(), Some("before"), "{path}");
    }
}

/// 100 requests at once — 50 searches beside 50 sends — each answered as it should be (a
/// result, or 429 where a per-user limit is reached; never a 5xx or a busy database), and
/// afterwards every message stored is found.
async fn a_hundred_parallel_searches_and_sends(app: TestApp) {
    let (alice, org, conv) = app.alice_private().await;
    app.says(&conv, &alice, "parallel seed").await;
    let path = org_search(&org, "parallel");
    let searches = (0..50).map(|_| app.get(&path, &alice.token));
    let texts: Vec<String> = (0..50).map(|i| format!("parallel send{i}")).collect();
    let sends = texts.iter().map(|t| app.send_message(&conv, &alice, t));
    let (searched, sent) = futures::join!(
        futures::future::join_all(searches),
        futures::future::join_all(sends)
    );
    let answered = only(searched, 200, (429, "rate_limited"));
    assert!(!answered.is_empty(), "some searches were answered");
    for res in &answered {
        assert!(!res.items().is_empty(), "the seed is always there");
    }
    let stored = 1 + only(sent, 201, (429, "rate_limited")).len();
    let all = format!("{path}&sort=newest&limit=100");
    let res = app.get(&all, &alice.token).await.expect(200);
    assert_eq!(hit_ids(&res).len(), stored);
}

/// A node runs two searches at once; a third waits for a slot, then is answered 503 `busy`
/// with `Retry-After`, while every other request is served. PostgreSQL only: a side
/// connection's table lock holds the first two searches in the database (on SQLite, WAL
/// readers cannot be held back so).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn searches_beyond_the_nodes_slots_wait_then_are_told_busy() {
    use sqlx::Connection;
    let Some(app) = spawn_app(Backend::Postgres).await else {
        return;
    };
    let url = app
        .database_url
        .clone()
        .expect("a PostgreSQL app has its URL");
    let (alice, org, conv) = app.alice_private().await;
    app.says(&conv, &alice, "held back").await;
    let mut holder = sqlx::PgConnection::connect(&url).await.unwrap();
    let mut watcher = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut holder).await.unwrap();
    sqlx::query("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
        .execute(&mut holder)
        .await
        .unwrap();
    let path = org_search(&org, "held");
    let held = futures::future::join_all((0..2).map(|_| app.get(&path, &alice.token)));
    let control = async {
        // Both held searches wait on the lock: they hold the node's two slots.
        let waiting = "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
                       WHERE NOT l.granted AND c.relname = 'messages'";
        for _ in 0..200 {
            let n: i64 = sqlx::query_scalar(waiting)
                .fetch_one(&mut watcher)
                .await
                .unwrap();
            if n >= 2 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let third = app.get(&path, &alice.token);
        let others = async {
            // Reads that are not searches are not held back by the searches' slots.
            app.get("/api/v1/users/@me", &alice.token).await.expect(200);
            app.get("/api/v1/orgs", &alice.token).await.expect(200);
        };
        let third = async {
            // Without the slots it would wait on the lock like the others, for good.
            tokio::time::timeout(std::time::Duration::from_secs(30), third)
                .await
                .expect("the third search is answered while the lock is held")
        };
        let (third, ()) = tokio::join!(third, others);
        sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
        third
    };
    let (held, third) = tokio::join!(held, control);
    let third = third.expect_error(503, "busy");
    assert_eq!(third.headers["retry-after"], "1");
    for search in held {
        search.expect(200);
    }
    app.get(&path, &alice.token).await.expect(200);
}

/// The messages of the scale test, written straight into `messages` (the index follows, as
/// for a send): `(id order k, conversation, content, deleted)`, inserted in `rows`' order.
async fn write_messages(
    app: &TestApp,
    author: &str,
    rows: &[(u128, String, Option<String>, bool)],
) {
    let db = crate::db::Db::of(app).await;
    let author = uuid::Uuid::parse_str(author).unwrap();
    let now = chrono::Utc::now();
    crate::with_pool!(&db, p => {
        for chunk in rows.chunks(500) {
            let mut insert = sqlx::QueryBuilder::new(
                "INSERT INTO messages (id, conversation_id, seq, author_id, content, format, \
                 created_at, deleted_at) ",
            );
            insert.push_values(chunk, |mut b, (id, conv, content, deleted)| {
                let seq = 1_000_000 + i64::try_from(*id & 0xffff_ffff).unwrap();
                b.push_bind(uuid::Uuid::from_u128(*id))
                    .push_bind(uuid::Uuid::parse_str(conv).unwrap())
                    .push_bind(seq)
                    .push_bind(author)
                    .push_bind(content.clone())
                    .push_bind("text")
                    .push_bind(now)
                    .push_bind(deleted.then_some(now));
            });
            insert.build().execute(p).await.unwrap();
        }
    });
    db.close().await;
}

/// Every page of `first` as `token`: the ids in order (each page's items, then the next).
async fn all_pages(app: &TestApp, first: &str, token: &str) -> Vec<String> {
    let mut res = app.get(first, token).await.expect(200);
    let mut ids = hit_ids(&res);
    while res.body["next"].is_string() {
        res = app.next_page(first, &res, token).await;
        ids.extend(hit_ids(&res));
    }
    ids
}

/// A word in thousands of messages, as a very common word is (the newest walk and the
/// relevance window): `newest` pages through every readable match exactly once, newest first
/// by id — not by the order rows were written — skipping deleted and content-less ones, and
/// nothing of a conversation the caller is not in although its matches are the newest (the
/// first windows of the walk hold only those: the caller's page comes from below them);
/// `relevance` ranks the newest 5,000 readable matches, so an older better match is found by
/// `newest` only.
pub(crate) async fn a_common_word_pages_exactly_and_ranks_the_newest_window(app: TestApp) {
    let Team(owner, [alice], org) = app.team("owner", "Acme", [("alice", "member")]).await;
    let mine = app.group(&org, &owner, &[&alice], json!("private")).await;
    let theirs = app.group(&org, &owner, &[], json!("private")).await;
    // k orders the ids (the larger the newer). Alice's conversation: 5,001 readable matches,
    // k = 0 the best match of all and the oldest; then one deleted and one content-less; then
    // 1,500 newer in the conversation Alice is not in.
    let base = uuid::Uuid::now_v7().as_u128();
    let mut rows = vec![(
        base,
        mine.clone(),
        Some("pear pear pear pear pear".into()),
        false,
    )];
    let mut later = Vec::new();
    for k in 1..5_001u128 {
        later.push((
            base + k,
            mine.clone(),
            Some(format!("pear filler{k}")),
            false,
        ));
    }
    later.push((
        base + 5_001,
        mine.clone(),
        Some("pear deleted".into()),
        true,
    ));
    later.push((base + 5_002, mine.clone(), None, false));
    for k in 5_003..6_503u128 {
        later.push((
            base + k,
            theirs.clone(),
            Some(format!("pear theirs{k}")),
            false,
        ));
    }
    // Written in another order than the ids' (each run of 100 backwards).
    for run in later.chunks(100) {
        rows.extend(run.iter().rev().cloned());
    }
    write_messages(&app, &owner.id, &rows).await;
    let id = |k: u128| uuid::Uuid::from_u128(base + k).to_string();
    let readable: Vec<String> = (0..5_001).rev().map(id).collect();

    let newest = format!("{}&sort=newest&limit=100", org_search(&org, "pear"));
    assert_eq!(all_pages(&app, &newest, &alice.token).await, readable);
    // One hit asked for: every window of the walk holds Alice's nothing; the rest is read.
    let one = format!("{}&sort=newest&limit=1", org_search(&org, "pear"));
    let res = app.get(&one, &alice.token).await.expect(200);
    assert_eq!(hit_ids(&res), vec![id(5_000)]);
    let here = format!("{}&sort=newest&limit=100", conv_search(&mine, "pear"));
    let res = app.get(&here, &alice.token).await.expect(200);
    assert_eq!(hit_ids(&res), readable[..100].to_vec());
    // The owner takes part in both: their newest are the other conversation's.
    let res = app.get(&newest, &owner.token).await.expect(200);
    let theirs_newest: Vec<String> = (6_403..6_503).rev().map(id).collect();
    assert_eq!(hit_ids(&res), theirs_newest);

    for first in [
        format!("{}&limit=100", org_search(&org, "pear")),
        format!("{}&limit=100", conv_search(&mine, "pear")),
    ] {
        let ranked = all_pages(&app, &first, &alice.token).await;
        assert_eq!(ranked.len(), 5_000, "the window, each once");
        assert_eq!(sorted(ranked), sorted(readable[..5_000].to_vec()));
    }
}

/// Thousands of messages on an app without rate limits (its own `both_backends!`).
mod at_scale {
    use super::a_common_word_pages_exactly_and_ranks_the_newest_window;
    crate::both_backends!(with crate::helpers::spawn_app_unlimited; a_common_word_pages_exactly_and_ranks_the_newest_window);
}
