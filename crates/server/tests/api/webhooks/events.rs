//! HOOK-1: every webhook event name fires, end to end. After the REST action, an endpoint
//! subscribed to the name gets exactly one delivery whose `data` is the REST object; one
//! subscribed to every other name gets none of it; an endpoint scoped to a conversation gets
//! that conversation's events only, never a member's; another org's endpoint gets nothing.
//! Member events come from every way into and out of an org, and no gateway socket sees them.

use super::receiver::Received;
use super::*;
use crate::ws::Ws;
use chrono::Duration;
use conclave_core::service::webhooks::WEBHOOK_EVENTS as NAMES;
use std::sync::Mutex;

crate::both_backends!(
    with crate::webhooks::hooked;
    each_event_name_fires_once_for_its_subscribers_only,
    every_way_into_and_out_of_an_org_is_a_member_event,
    org_endpoints_hear_only_of_conversations_every_member_may_read,
    an_endpoint_is_steered_only_by_who_could_make_it,
);

/// An endpoint of `org` on `url` for `events`, limited to `conversation` when given.
async fn endpoint(
    app: &TestApp,
    org: &str,
    by: &User,
    url: &str,
    events: &[&str],
    conversation: Option<&str>,
) -> String {
    let mut body = json!({"url": url, "events": events});
    if let Some(c) = conversation {
        body["conversation_id"] = json!(c);
    }
    app.post(&hooks(org), &by.token, body)
        .await
        .expect(201)
        .id()
}

/// What an endpoint tagged `tag` (its URL's query) received, in order: (type, data).
fn got(rx: &super::receiver::Receiver, tag: &str) -> Vec<(String, Value)> {
    let query = format!("?{tag}");
    rx.received()
        .iter()
        .filter(|r| r.uri.ends_with(&query))
        .map(|r: &Received| {
            let body = r.json();
            (
                body["type"].as_str().unwrap().to_owned(),
                body["data"].clone(),
            )
        })
        .collect()
}

fn types(list: &[(String, Value)]) -> Vec<&str> {
    list.iter().map(|(t, _)| t.as_str()).collect()
}

/// The conversation a delivery is about, read off its data (`None`: the org's own, a member's).
fn conversation_of(event: &str, data: &Value) -> Option<String> {
    let field = if event.starts_with("conversation.") {
        "id"
    } else {
        "conversation_id"
    };
    data[field].as_str().map(str::to_owned)
}

/// The world of the first test: Alice owns Acme; Bob is in conversation `main` with her; Dave
/// is a member in no conversation; Carol is not a member yet. Endpoints that must stay quiet
/// or hear only their conversation: one scoped to `main`, one scoped to `side`, Mallory's of
/// Evil; each listens to every name.
struct World {
    alice: User,
    bob: User,
    dave: User,
    carol: User,
    org: String,
    main: String,
    /// The names a case has checked.
    covered: Mutex<Vec<&'static str>>,
}

impl World {
    async fn new(h: &Hooked) -> Self {
        let app = &h.app;
        let (alice, org, _) = h.acme().await;
        let bob = app.user("bob").await;
        let dave = app.user("dave").await;
        let carol = app.user("carol").await;
        app.add_member(&org, &alice, &bob, "member").await;
        app.add_member(&org, &alice, &dave, "member").await;
        let main = app.group(&org, &alice, &[&bob], json!("org")).await;
        let side = app.group(&org, &alice, &[], json!("private")).await;
        // What happened so far is queued before the endpoints exist.
        run_worker(app, Duration::seconds(1)).await;
        let url = h.rx[0].url();
        for (tag, conv) in [("scoped=main", &main), ("scoped=side", &side)] {
            let url = format!("{url}?{tag}");
            endpoint(app, &org, &alice, &url, NAMES, Some(conv)).await;
        }
        let (mallory, evil) = app.mallory().await;
        let url = format!("{url}?evil");
        endpoint(app, &evil, &mallory, &url, NAMES, None).await;
        World {
            alice,
            bob,
            dave,
            carol,
            org,
            main,
            covered: Mutex::new(Vec::new()),
        }
    }
}

/// The two endpoints of one case: `only` listens to its name, `others` to every other name.
struct Probe {
    name: &'static str,
    hooks: [String; 2],
    /// What the endpoint scoped to `main` had received when the case began.
    scoped_before: usize,
}

impl Probe {
    async fn start(h: &Hooked, w: &World, name: &'static str) -> Self {
        let (app, url) = (&h.app, h.rx[0].url());
        // Events made before the case are queued before its endpoints exist.
        run_worker(app, Duration::seconds(1)).await;
        let others: Vec<&str> = NAMES.iter().copied().filter(|n| *n != name).collect();
        let only = format!("{url}?case={name}&h=only");
        let rest = format!("{url}?case={name}&h=others");
        let hooks = [
            endpoint(app, &w.org, &w.alice, &only, &[name], None).await,
            endpoint(app, &w.org, &w.alice, &rest, &others, None).await,
        ];
        let scoped_before = got(&h.rx[0], "scoped=main").len();
        w.covered.lock().unwrap().push(name);
        Probe {
            name,
            hooks,
            scoped_before,
        }
    }

    /// Checks the case after its action: `data` is the REST object the name's delivery must
    /// carry; `also` the other names the action fires (with their data), in order.
    async fn check(self, h: &Hooked, w: &World, data: Value, also: &[(&str, Value)]) {
        let (app, rx) = (&h.app, &h.rx[0]);
        run_worker(app, Duration::seconds(1)).await;
        let name = self.name;
        let only = got(rx, &format!("case={name}&h=only"));
        assert_eq!(
            only,
            vec![(name.to_owned(), data.clone())],
            "{name}: one delivery, the REST object"
        );
        let others = got(rx, &format!("case={name}&h=others"));
        let expected: Vec<(String, Value)> = also
            .iter()
            .map(|(t, d)| ((*t).to_owned(), d.clone()))
            .collect();
        assert_eq!(others, expected, "{name}: the other names' endpoint");
        // The endpoint scoped to `main` hears exactly what happened in `main`; the one scoped
        // to `side` nothing; neither a member event.
        let in_main: Vec<(String, Value)> = only
            .iter()
            .chain(&others)
            .filter(|(t, d)| conversation_of(t, d).as_deref() == Some(w.main.as_str()))
            .cloned()
            .collect();
        let main = got(rx, "scoped=main")[self.scoped_before..].to_vec();
        assert_eq!(main, in_main, "{name}: the endpoint scoped to main");
        assert!(types(&main).iter().all(|t| !t.starts_with("member.")));
        assert!(
            got(rx, "scoped=side").is_empty(),
            "{name}: nothing happens in side"
        );
        assert!(got(rx, "evil").is_empty(), "{name}: another org's endpoint");
        for hook in &self.hooks {
            let path = format!("{}/{hook}", hooks(&w.org));
            app.delete(&path, &w.alice.token).await.expect(204);
        }
    }
}

/// Member `user` of `org` as `GET /orgs/{org}/members` lists it.
async fn listed_member(app: &TestApp, org: &str, by: &User, user: &str) -> Value {
    let members = app
        .items(&org_path(org, "/members?limit=100"), &by.token)
        .await;
    let found = members.into_iter().find(|m| m["user"]["id"] == user);
    found.unwrap_or_else(|| panic!("{user} is a member of {org}"))
}

/// Participant `user` of `conv` as `GET /conversations/{c}/participants` lists it.
async fn listed_participant(app: &TestApp, conv: &str, by: &User, user: &str) -> Value {
    let path = conv_path(conv, "/participants?limit=100");
    let found = app
        .items(&path, &by.token)
        .await
        .into_iter()
        .find(|p| p["user"]["id"] == user);
    found.unwrap_or_else(|| panic!("{user} participates in {conv}"))
}

async fn each_event_name_fires_once_for_its_subscribers_only(h: Hooked) {
    let app = &h.app;
    let w = World::new(&h).await;
    let (alice, main) = (&w.alice, w.main.as_str());

    let probe = Probe::start(&h, &w, "message.created").await;
    let sent = app.says(main, alice, "hello hooks").await;
    let message = sent.id();
    probe.check(&h, &w, sent.body, &[]).await;

    let probe = Probe::start(&h, &w, "message.updated").await;
    let path = format!("/api/v1/messages/{message}");
    let edited = app
        .patch(&path, &alice.token, json!({"content": "edited"}))
        .await
        .expect(200);
    probe.check(&h, &w, edited.body, &[]).await;

    let probe = Probe::start(&h, &w, "message.deleted").await;
    app.delete(&path, &alice.token).await.expect(204);
    let listed = app.items(&conv_path(main, "/messages"), &alice.token).await;
    let tombstone = listed.into_iter().find(|m| m["id"] == message).unwrap();
    assert!(tombstone["content"].is_null() && tombstone["deleted_at"].is_string());
    probe.check(&h, &w, tombstone, &[]).await;

    // Announced to each of its three participants on the gateway; one webhook event.
    let probe = Probe::start(&h, &w, "conversation.created").await;
    let created = app
        .post(
            &org_path(&w.org, "/conversations"),
            &alice.token,
            json!({"kind": "group", "name": "Launch", "visibility": "org",
                   "participant_ids": [w.bob.id, w.dave.id]}),
        )
        .await
        .expect(201);
    let launch = created.id();
    probe.check(&h, &w, created.body, &[]).await;

    let probe = Probe::start(&h, &w, "conversation.updated").await;
    let renamed = app
        .patch(
            &conv_path(main, ""),
            &alice.token,
            json!({"name": "Renamed"}),
        )
        .await
        .expect(200);
    probe.check(&h, &w, renamed.body, &[]).await;

    // Dave's own CONVERSATION_CREATE of main is no second `conversation.created`.
    let probe = Probe::start(&h, &w, "participant.added").await;
    let parts = conv_path(main, "/participants");
    let added = app
        .post(&parts, &alice.token, json!({"user_id": w.dave.id}))
        .await
        .expect(201);
    assert_eq!(added.body["user"]["id"], w.dave.id.as_str());
    probe.check(&h, &w, added.body, &[]).await;

    let probe = Probe::start(&h, &w, "participant.removed").await;
    let dave_in_main = listed_participant(app, main, alice, &w.dave.id).await;
    let path = format!("{parts}/{}", w.dave.id);
    app.delete(&path, &alice.token).await.expect(204);
    probe.check(&h, &w, dave_in_main, &[]).await;

    let probe = Probe::start(&h, &w, "member.added").await;
    let code = app
        .invite(&w.org, alice, json!({"role": "member"}))
        .await
        .expect(201)
        .string("code");
    app.join(&w.carol, &code).await.expect(200);
    let carol = listed_member(app, &w.org, alice, &w.carol.id).await;
    assert_eq!(carol["role"], "member");
    probe.check(&h, &w, carol, &[]).await;

    let probe = Probe::start(&h, &w, "member.role_changed").await;
    let changed = app
        .set_role(&w.org, alice, &w.carol, "admin")
        .await
        .expect(200);
    assert_eq!(changed.body["role"], "admin");
    probe.check(&h, &w, changed.body, &[]).await;

    // Carol leaves main with the org: `participant.removed` first (main's scoped endpoint
    // hears it), then `member.removed` (it does not).
    app.post(&parts, &alice.token, json!({"user_id": w.carol.id}))
        .await
        .expect(201);
    run_worker(app, Duration::seconds(1)).await;
    let probe = Probe::start(&h, &w, "member.removed").await;
    let carol = listed_member(app, &w.org, alice, &w.carol.id).await;
    let carol_in_main = listed_participant(app, main, alice, &w.carol.id).await;
    app.remove_member(&w.org, alice, &w.carol.id).await;
    let also = [("participant.removed", carol_in_main)];
    probe.check(&h, &w, carol, &also).await;

    let probe = Probe::start(&h, &w, "conversation.deleted").await;
    let path = conv_path(&launch, "");
    let mut gone = app.get(&path, &alice.token).await.expect(200);
    let view = gone.body.as_object_mut().unwrap();
    assert!(
        view.remove("permissions").is_some(),
        "the caller's, not the object's"
    );
    app.delete(&path, &alice.token).await.expect(204);
    probe.check(&h, &w, gone.body, &[]).await;

    // An endpoint scoped to a conversation goes with it (so it never hears of the deletion;
    // the org's endpoints do).
    let before = app.items(&hooks(&w.org), &alice.token).await.len();
    app.delete(&conv_path(main, ""), &alice.token)
        .await
        .expect(204);
    let after = app.items(&hooks(&w.org), &alice.token).await;
    assert_eq!(after.len(), before - 1);
    assert!(after.iter().all(|hook| hook["conversation_id"] != main));

    // Every name of API.md had its case.
    let mut covered = w.covered.lock().unwrap().clone();
    covered.sort_unstable();
    let mut names = NAMES.to_vec();
    names.sort_unstable();
    assert_eq!((covered, names.len()), (names, 11));
}

/// Alice's Acme with endpoints for member events: `all` of the org, one scoped to a
/// conversation, Mallory's in Evil. Every path that adds, changes or removes a member is taken
/// in turn; `all` receives each, in order, with the member object; Alice's open socket
/// receives none of them.
async fn every_way_into_and_out_of_an_org_is_a_member_event(h: Hooked) {
    let (app, rx) = (&h.app, &h.rx[0]);
    let root = app.bootstrap().await;
    let (alice, org, conv) = h.acme().await;
    let members = ["member.added", "member.removed", "member.role_changed"];
    let url = rx.url();
    endpoint(app, &org, &alice, &format!("{url}?all"), &members, None).await;
    endpoint(
        app,
        &org,
        &alice,
        &format!("{url}?scoped"),
        &members,
        Some(&conv),
    )
    .await;
    let (mallory, evil) = app.mallory().await;
    endpoint(app, &evil, &mallory, &format!("{url}?evil"), &members, None).await;
    // Mallory's own org changes: only Evil's endpoint hears of them, never Acme's.
    let code = app
        .invite(&evil, &mallory, json!({"role": "member"}))
        .await
        .expect(201)
        .string("code");
    let ivan = app.user("ivan").await;
    app.join(&ivan, &code).await.expect(200);
    let ivan_in_evil = listed_member(app, &evil, &mallory, &ivan.id).await;
    let (mut socket, _) = Ws::identify(app, &alice.token).await;
    let mut expected: Vec<(String, Value)> = Vec::new();
    let mut expect = |t: &str, d: Value| expected.push((t.to_owned(), d));

    // By code.
    let carol = app.user("carol").await;
    let code = app
        .invite(&org, &alice, json!({"role": "viewer"}))
        .await
        .expect(201)
        .string("code");
    app.join(&carol, &code).await.expect(200);
    expect(
        "member.added",
        listed_member(app, &org, &alice, &carol.id).await,
    );
    // By a named invite, accepted.
    let erin = app.user("erin").await;
    app.invite(&org, &alice, json!({"username": "erin"}))
        .await
        .expect(201);
    let pending = app.items("/api/v1/users/@me/invites", &erin.token).await;
    let accept = format!(
        "/api/v1/orgs/invites/{}/accept",
        pending[0]["id"].as_str().unwrap()
    );
    app.post(&accept, &erin.token, json!({})).await.expect(200);
    expect(
        "member.added",
        listed_member(app, &org, &alice, &erin.id).await,
    );
    // By registering with a code.
    let code = app
        .invite(&org, &alice, json!({"role": "member"}))
        .await
        .expect(201)
        .string("code");
    let frank = app
        .post_anon(
            "/api/v1/auth/register",
            json!({"username": "frank", "password": PASSWORD, "invite_code": code}),
        )
        .await
        .expect(201);
    let frank = User {
        name: "frank".into(),
        id: frank.body["user"]["id"].as_str().unwrap().to_owned(),
        token: app
            .login("frank", PASSWORD)
            .await
            .expect(200)
            .string("token"),
    };
    // (Not heard: frank's `member.added` is still on its way to the queue — the worker runs
    // at the end — when he erases his account below, and it names him as he was: DATA-6.)
    listed_member(app, &org, &alice, &frank.id).await;
    // Directly, by the management token and by a server admin.
    let gina = app.user("gina").await;
    let direct = app
        .admin_add_member(&org, &gina, "member")
        .await
        .expect(201);
    expect("member.added", direct.body);
    let hank = app.user("hank").await;
    let by_admin = app
        .post(
            &org_path(&org, "/members"),
            &root.token,
            json!({"user_id": hank.id, "role": "viewer"}),
        )
        .await
        .expect(201);
    expect("member.added", by_admin.body);
    // A bot is a member of its org.
    let bot = app
        .post(
            &org_path(&org, "/bots"),
            &alice.token,
            json!({"name": "Helper"}),
        )
        .await
        .expect(201);
    let bot_member = listed_member(app, &org, &alice, &bot.string("user_id")).await;
    assert_eq!(bot_member["user"]["kind"], "bot");
    expect("member.added", bot_member);

    // A role set many times at once changes once; setting it again changes nothing.
    let path = format!("/api/v1/orgs/{org}/members/{}", carol.id);
    let body = json!({"role": "admin"});
    let asks = (0..50).map(|_| app.patch(&path, &alice.token, body.clone()));
    for res in futures::future::join_all(asks).await {
        res.expect(200);
    }
    expect(
        "member.role_changed",
        listed_member(app, &org, &alice, &carol.id).await,
    );
    app.set_role(&org, &alice, &carol, "admin")
        .await
        .expect(200);
    // A transfer changes two roles: the new owner's, then the old one's.
    app.post(
        &org_path(&org, "/transfer"),
        &alice.token,
        json!({"user_id": carol.id}),
    )
    .await
    .expect(204);
    let now_owner = listed_member(app, &org, &carol, &carol.id).await;
    assert_eq!(now_owner["role"], "owner");
    expect("member.role_changed", now_owner);
    let now_admin = listed_member(app, &org, &carol, &alice.id).await;
    assert_eq!(now_admin["role"], "admin");
    expect("member.role_changed", now_admin);

    // Out: leaving, being removed, erasing one's account (under the erased name only).
    let erin_member = listed_member(app, &org, &carol, &erin.id).await;
    app.remove_member(&org, &erin, &erin.id).await;
    expect("member.removed", erin_member);
    let gina_member = listed_member(app, &org, &carol, &gina.id).await;
    app.remove_member(&org, &carol, &gina.id).await;
    expect("member.removed", gina_member);
    let mut frank_member = listed_member(app, &org, &carol, &frank.id).await;
    crate::privacy::erase(app, &frank.token, json!({"password": PASSWORD}))
        .await
        .expect(204);
    frank_member["user"]["username"] =
        json!(format!("deleted-{}", &frank.id.replace('-', "")[20..]));
    frank_member["user"]["display_name"] = Value::Null;
    expect("member.removed", frank_member);

    run_worker(app, Duration::seconds(1)).await;
    let all = got(rx, "all");
    assert_eq!(
        types(&all),
        types(&expected),
        "every change, once, in order"
    );
    assert_eq!(all, expected, "each with the member object");
    assert!(got(rx, "scoped").is_empty(), "a conversation's endpoint");
    assert_eq!(
        got(rx, "evil"),
        vec![("member.added".to_owned(), ivan_in_evil)],
        "another org's endpoint hears its own org only"
    );
    // No socket receives a member event: Alice's next event is the marker.
    let marker = app.says(&conv, &alice, "marker").await.id();
    assert_eq!(socket.expect("MESSAGE_CREATE").await["id"], marker.as_str());
}

/// AZ-3 through webhooks: an endpoint of the whole org hears of a conversation only when every
/// member may read it (visibility `org`): not of a private group, a direct conversation or a
/// team's conversation — an admin managing webhooks is no participant — and not of one made
/// private later. An endpoint scoped to one conversation is made only by someone who may read
/// it (anyone else is told there is no such conversation), and hears of it.
async fn org_endpoints_hear_only_of_conversations_every_member_may_read(h: Hooked) {
    let (app, rx) = (&h.app, &h.rx[0]);
    let crate::fixtures::Team(owner, [ann, bob, _vic, _dee], org) = &app.acme_staff().await;
    let open = app.group(org, owner, &[bob], json!("org")).await;
    let private = app.group(org, owner, &[bob], json!("private")).await;
    let direct = app
        .post(
            &org_path(org, "/conversations"),
            &owner.token,
            json!({"kind": "direct", "participant_ids": [bob.id]}),
        )
        .await
        .expect(201)
        .id();
    let team = app
        .post(
            &org_path(org, "/teams"),
            &owner.token,
            json!({"name": "Ops"}),
        )
        .await
        .expect(201)
        .id();
    let teams = app
        .group(org, owner, &[bob], json!({"teams": [team]}))
        .await;
    let later = app.group(org, owner, &[bob], json!("org")).await;
    let names = [
        "message.created",
        "conversation.updated",
        "participant.added",
    ];
    let url = rx.url();
    endpoint(app, org, ann, &format!("{url}?org-wide"), &names, None).await;
    // Ann, an admin but no participant, cannot scope an endpoint to the private group; its
    // owner can.
    let res = app
        .post(
            &hooks(org),
            &ann.token,
            json!({"url": format!("{url}?ann-private"), "events": names, "conversation_id": private}),
        )
        .await
        .expect_error(422, "not_found");
    assert_eq!(res.field(), Some("/conversation_id"));
    endpoint(
        app,
        org,
        owner,
        &format!("{url}?scoped-private"),
        &names,
        Some(&private),
    )
    .await;
    app.patch(
        &conv_path(&later, ""),
        &owner.token,
        json!({"visibility": "private"}),
    )
    .await
    .expect(200);
    run_worker(app, Duration::seconds(1)).await;
    let before = got(rx, "org-wide").len();
    for conv in [&open, &private, &direct, &teams, &later] {
        app.says(conv, owner, &format!("said in {conv}")).await;
    }
    run_worker(app, Duration::seconds(1)).await;
    let heard: Vec<String> = got(rx, "org-wide")[before..]
        .iter()
        .map(|(t, d)| format!("{t} {}", d["content"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(heard, vec![format!("message.created said in {open}")]);
    let scoped: Vec<String> = got(rx, "scoped-private")
        .iter()
        .map(|(t, d)| format!("{t} {}", d["content"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(scoped, vec![format!("message.created said in {private}")]);
}

/// AZ-3, AZ-5: changing where an endpoint sends (its URL, enabling it, its secret), testing it
/// and sending a delivery again take what making it takes: an admin who is no participant of
/// an endpoint's private conversation, or a key without the scope that reads its events, is
/// refused — before, either pointed another's endpoint at herself and redelivered its stored
/// messages there. An endpoint whose maker leaves its conversation, or the org, is disabled
/// (`maker_left`), and only someone who may read the conversation enables it again.
async fn an_endpoint_is_steered_only_by_who_could_make_it(h: Hooked) {
    let (app, rx) = (&h.app, &h.rx[0]);
    let crate::fixtures::Team(owner, [ann, bob, _vic, dee], org) = &app.acme_staff().await;
    let private = app.group(org, owner, &[bob, dee], json!("private")).await;
    let open = app.group(org, owner, &[bob], json!("org")).await;
    let url = rx.url();
    let names = ["message.created"];
    let scoped = endpoint(
        app,
        org,
        owner,
        &format!("{url}?scoped"),
        &names,
        Some(&private),
    )
    .await;
    let wide = endpoint(app, org, ann, &format!("{url}?wide"), &names, None).await;
    app.says(&private, owner, "the secret plan").await;
    app.says(&open, owner, "for everyone").await;
    run_worker(app, Duration::seconds(1)).await;
    assert_eq!(got(rx, "scoped").len(), 1);
    let delivery = deliveries(app, org, &scoped, owner).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let wide_delivery = deliveries(app, org, &wide, ann).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let at = |hook: &str, rest: &str| format!("{}/{hook}{rest}", hooks(org));
    let steer = |hook: &str, delivery: &str| {
        vec![
            (
                Method::PATCH,
                at(hook, ""),
                Some(json!({"url": format!("{url}?stolen")})),
            ),
            (Method::PATCH, at(hook, ""), Some(json!({"enabled": true}))),
            (Method::POST, at(hook, "/secret"), Some(json!({}))),
            (Method::POST, at(hook, "/test"), Some(json!({}))),
            (
                Method::POST,
                at(hook, &format!("/deliveries/{delivery}/redeliver")),
                Some(json!({})),
            ),
        ]
    };
    // Ann, an admin who is no participant of the private group.
    for (method, path, body) in steer(&scoped, &delivery) {
        app.call(method, &path, Some(&ann.token), body)
            .await
            .expect_error(403, "forbidden");
    }
    // A key of hers that may manage webhooks but not read messages, on her own org-wide one.
    let spec = json!({"name": "hooks", "org_id": org, "scopes": ["webhooks:admin"]});
    let (_, key) = crate::keys::make_key(app, ann, spec).await;
    for (method, path, body) in steer(&wide, &wide_delivery) {
        app.call(method, &path, Some(&key), body)
            .await
            .expect_error(403, "insufficient_scope");
    }
    run_worker(app, Duration::seconds(1)).await;
    assert!(got(rx, "stolen").is_empty(), "nothing reached the new URL");
    assert_eq!(got(rx, "scoped").len(), 1, "nothing was sent again");
    // Its maker, who reads it, still may; so may Dee, a participant and an admin.
    app.post(&at(&scoped, "/test"), &owner.token, json!({}))
        .await
        .expect(202);
    let mine = endpoint(app, org, dee, &format!("{url}?dee"), &names, Some(&private)).await;
    // Dee leaves the group: her endpoint of it stops; Ann (no participant) cannot restart it,
    // the owner can.
    app.delete(
        &conv_path(&private, &format!("/participants/{}", dee.id)),
        &dee.token,
    )
    .await
    .expect(204);
    let shown = app.items(&hooks(org), &owner.token).await;
    let of = |id: &str| shown.iter().find(|w| w["id"] == id).unwrap().clone();
    assert_eq!(of(&mine)["enabled"], false);
    assert_eq!(of(&mine)["disabled_reason"], "maker_left");
    // DATA-4: in the org's log, in the leaving's own transaction, by who left.
    let rows = app
        .items(
            &org_path(org, "/audit?event=webhook.disabled"),
            &owner.token,
        )
        .await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["resource"]["id"], mine.as_str(), "{rows:?}");
    assert_eq!(rows[0]["detail"]["reason"], "maker_left");
    assert_eq!(rows[0]["actor"]["id"], dee.id.as_str());
    assert_eq!(of(&scoped)["enabled"], true, "the owner's stays");
    app.says(&private, owner, "after dee left").await;
    run_worker(app, Duration::seconds(1)).await;
    assert!(got(rx, "dee").is_empty());
    app.patch(&at(&mine, ""), &ann.token, json!({"enabled": true}))
        .await
        .expect_error(403, "forbidden");
    app.patch(&at(&mine, ""), &owner.token, json!({"enabled": true}))
        .await
        .expect(200);
    // Ann is removed from the org: her org-wide endpoint stops too.
    app.delete(
        &org_path(org, &format!("/members/{}", ann.id)),
        &owner.token,
    )
    .await
    .expect(204);
    let shown = app.items(&hooks(org), &owner.token).await;
    let wide_now = shown.iter().find(|w| w["id"] == wide.as_str()).unwrap();
    assert_eq!(wide_now["disabled_reason"], "maker_left");
    app.says(&open, owner, "after ann left").await;
    run_worker(app, Duration::seconds(1)).await;
    assert_eq!(
        got(rx, "wide").len(),
        1,
        "only what was said before she left"
    );
}
