//! The `permissions` lists on the conversation and org objects (issue 11): for every kind of
//! caller — org owner, admin, member, viewer; conversation owner, moderator, member; a bot; an
//! API key with and without the write scopes; an impersonated session — each action listed is
//! one the matching REST call then performs, and each action left out is refused. Every action
//! is tried on a fresh conversation or org, so one try cannot spoil the next.

use crate::both_backends;
use crate::cases::{delete, get, patch, post, post_empty};
use crate::helpers::*;
use reqwest::Method;
use serde_json::{json, Value};

both_backends!(
    conversation_permissions_are_what_the_server_allows,
    org_permissions_are_what_the_server_allows,
    permissions_are_listed_wherever_the_objects_are_returned,
);

/// Every conversation action, as the API names it.
const CONVERSATION_ACTIONS: &[&str] = &[
    "see",
    "read",
    "send_messages",
    "join",
    "leave",
    "update",
    "delete",
    "add_participants",
    "remove_participants",
    "manage_owners",
    "delete_any_message",
];

/// Every org action, as the API (and the permissions matrix) names it.
const ORG_ACTIONS: &[&str] = &[
    "view_org",
    "update_org",
    "delete_org",
    "transfer_org",
    "view_members",
    "manage_members",
    "manage_owners",
    "create_invite",
    "view_teams",
    "manage_teams",
    "create_conversation",
    "join_conversation",
    "administer_conversations",
    "manage_bots",
    "set_key_tier",
    "view_audit",
    "manage_security",
    "manage_webhooks",
    "manage_agents",
    "manage_guards",
    "manage_widget_keys",
    "manage_oauth",
];

/// How a caller authenticates.
#[derive(Clone)]
enum Auth {
    Bearer(String),
    Bot(String),
}

impl TestApp {
    async fn as_caller(&self, auth: &Auth, method: Method, path: &str, body: Option<Value>) -> Res {
        let header = match auth {
            Auth::Bearer(t) => format!("Bearer {t}"),
            Auth::Bot(t) => format!("Bot {t}"),
        };
        let mut rb = self
            .client
            .request(method, self.url(path))
            .header("authorization", header);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        self.send(rb).await
    }
}

/// Who calls, in the conversation tests.
#[derive(Clone, Copy, Debug)]
enum ConvCaller {
    /// A person with this org role and (when `Some`) this conversation role.
    Person(&'static str, Option<&'static str>),
    /// A bot of the org taking part as a member.
    Bot,
    /// An API key of a conversation moderator, with all scopes or only the read ones.
    Key { write: bool },
    /// A server admin impersonating a conversation moderator (AUTH-12).
    Impersonated,
}

const READ_SCOPES: &[&str] = &["messages:read", "conversations:read", "org:read"];

fn scopes(write: bool) -> Vec<&'static str> {
    if write {
        crate::keys::ALL_SCOPES[..6].to_vec()
    } else {
        READ_SCOPES.to_vec()
    }
}

async fn make_key(app: &TestApp, owner: &User, org: &str, write: bool) -> Auth {
    let body = json!({"name": "probe", "org_id": org, "scopes": scopes(write)});
    Auth::Bearer(crate::keys::make_key(app, owner, body).await.1)
}

async fn make_bot(app: &TestApp, org: &str, by: &User) -> (String, Auth) {
    let bot = crate::bots::make_bot(app, org, by, json!({"name": "probe"})).await;
    (bot.user_id, Auth::Bot(bot.token))
}

async fn impersonate(app: &TestApp, admin: &User, target: &User) -> Auth {
    let res = app.impersonate(admin, target).await.expect(201);
    Auth::Bearer(res.string("token"))
}

/// The people every try needs: an owner who sets things up, the caller, and others to act on.
struct Cast {
    admin: User,
    owner: User,
    caller: User,
    victim: User,
    outsider: User,
}

async fn cast(app: &TestApp) -> Cast {
    Cast {
        admin: app.bootstrap().await,
        owner: app.user("owner").await,
        caller: app.user("caller").await,
        victim: app.user("victim").await,
        outsider: app.user("outsider").await,
    }
}

/// A fresh org of `cast.owner` where the victim and outsider are members and the caller has
/// `role` (when a person calls).
async fn fresh_org(app: &TestApp, cast: &Cast, role: Option<&str>) -> String {
    let org = app.org(&cast.owner, "Probe").await;
    for (who, r) in [(&cast.victim, "member"), (&cast.outsider, "member")]
        .into_iter()
        .chain(role.map(|r| (&cast.caller, r)))
    {
        app.admin_add_member(&org, who, r).await.expect(201);
    }
    org
}

/// The answer a refusal of `action` gets: 403, but 404 where the conversation is not even
/// seen, and 409 for a participant joining (when the credential lets them try).
fn refused(status: u16, action: &str, participant: bool) -> bool {
    match action {
        "see" => status == 404 || status == 403,
        "join" if participant => status == 409 || status == 403,
        _ => status == 403,
    }
}

/// The server's answer `status` to `action` agrees with the `permissions` listed to `who`: an
/// action listed succeeds, one left out is refused (`was_refused`).
fn verdict_matches(
    who: &impl std::fmt::Debug,
    action: &str,
    permissions: &[String],
    status: u16,
    was_refused: bool,
) {
    if permissions.iter().any(|p| p == action) {
        assert!(
            (200..300).contains(&status),
            "{who:?} is told it may {action}, but the server answers {status}"
        );
    } else {
        assert!(
            was_refused,
            "{who:?} is not told it may {action}, but the server answers {status}"
        );
    }
}

/// Tries `action` in conversation `c` as `auth`; answers the status.
async fn try_conversation_action(
    app: &TestApp,
    auth: &Auth,
    c: &str,
    action: &str,
    cast: &Cast,
    message: &str,
) -> u16 {
    let base = format!("/api/v1/conversations/{c}");
    let (method, path, body) = match action {
        "see" => get(base.clone()),
        "read" => get(format!("{base}/messages")),
        "send_messages" => post(format!("{base}/messages"), json!({"content": "probe"})),
        "join" => post_empty(format!("{base}/join")),
        "leave" => post_empty(format!("{base}/leave")),
        "update" => patch(base.clone(), json!({"name": "renamed"})),
        "delete" => delete(base.clone()),
        "add_participants" => post(
            format!("{base}/participants"),
            json!({"user_id": cast.outsider.id}),
        ),
        "remove_participants" => delete(format!("{base}/participants/{}", cast.victim.id)),
        "manage_owners" => post(
            format!("{base}/participants"),
            json!({"user_id": cast.outsider.id, "role": "owner"}),
        ),
        "delete_any_message" => delete(format!("/api/v1/messages/{message}")),
        other => panic!("no probe for {other}"),
    };
    app.as_caller(auth, method, &path, body)
        .await
        .status
        .as_u16()
}

/// Sets up a fresh org and group conversation for `who` and answers the caller's credential,
/// the conversation, a message of the owner's in it and whether the caller takes part.
async fn conversation_for(
    app: &TestApp,
    cast: &Cast,
    who: ConvCaller,
) -> (Auth, String, String, bool) {
    let (org_role, conv_role) = match who {
        ConvCaller::Person(org, conv) => (Some(org), conv),
        ConvCaller::Bot => (None, Some("member")),
        ConvCaller::Key { .. } | ConvCaller::Impersonated => (Some("member"), Some("moderator")),
    };
    let org = fresh_org(app, cast, org_role).await;
    let c = app
        .group(&org, &cast.owner, &[&cast.victim], json!("org"))
        .await;
    let message = app.says(&c, &cast.owner, "the owner's").await.id();
    let (auth, participant_id) = match who {
        ConvCaller::Person(..) => (Auth::Bearer(cast.caller.token.clone()), &cast.caller.id),
        ConvCaller::Bot => {
            let (user_id, auth) = make_bot(app, &org, &cast.owner).await;
            let added = app
                .post(
                    &conv_path(&c, "/participants"),
                    &cast.owner.token,
                    json!({"user_id": user_id, "role": "member"}),
                )
                .await
                .expect(201);
            assert_eq!(added.body["user"]["kind"], "bot");
            return (auth, c, message, true);
        }
        ConvCaller::Key { write } => (
            make_key(app, &cast.caller, &org, write).await,
            &cast.caller.id,
        ),
        ConvCaller::Impersonated => (
            impersonate(app, &cast.admin, &cast.caller).await,
            &cast.caller.id,
        ),
    };
    if let Some(role) = conv_role {
        app.post(
            &conv_path(&c, "/participants"),
            &cast.owner.token,
            json!({"user_id": participant_id, "role": role}),
        )
        .await
        .expect(201);
    }
    (auth, c, message, conv_role.is_some())
}

/// The `permissions` of conversation `c` as `auth` gets it.
async fn listed(app: &TestApp, auth: &Auth, path: &str) -> Vec<String> {
    let res = app
        .as_caller(auth, Method::GET, path, None)
        .await
        .expect(200);
    res.body["permissions"]
        .as_array()
        .expect("a permissions list")
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

async fn conversation_permissions_are_what_the_server_allows(app: TestApp) {
    let app = unlimited(app).await;
    let cast = cast(&app).await;
    let callers = [
        ConvCaller::Person("member", Some("owner")),
        ConvCaller::Person("member", Some("moderator")),
        ConvCaller::Person("member", Some("member")),
        ConvCaller::Person("viewer", Some("member")),
        ConvCaller::Person("admin", None),
        ConvCaller::Person("member", None),
        ConvCaller::Bot,
        ConvCaller::Key { write: true },
        ConvCaller::Key { write: false },
        ConvCaller::Impersonated,
    ];
    let mut seen = Vec::new();
    for who in callers {
        let (auth, c, _, _) = conversation_for(&app, &cast, who).await;
        let permissions = listed(&app, &auth, &conv_path(&c, "")).await;
        for action in &permissions {
            assert!(
                CONVERSATION_ACTIONS.contains(&action.as_str()),
                "{action} is an action"
            );
        }
        for action in CONVERSATION_ACTIONS {
            // A fresh conversation for each try.
            let (auth, c, message, participant) = conversation_for(&app, &cast, who).await;
            let status = try_conversation_action(&app, &auth, &c, action, &cast, &message).await;
            let was_refused = refused(status, action, participant);
            verdict_matches(&who, action, &permissions, status, was_refused);
        }
        seen.push((format!("{who:?}"), permissions));
    }
    // The lists differ where the roles do: the moderator's is the one the web client needs.
    let of = |name: &str| seen.iter().find(|(w, _)| w == name).unwrap().1.clone();
    let moderator = of("Person(\"member\", Some(\"moderator\"))");
    assert!(moderator.contains(&"remove_participants".to_owned()));
    assert!(!moderator.contains(&"manage_owners".to_owned()));
    assert!(!of("Person(\"member\", Some(\"member\"))").contains(&"remove_participants".to_owned()));
    assert_eq!(of("Key { write: false }"), ["see", "read"]);
    assert_eq!(of("Impersonated"), ["see", "read", "send_messages"]);
}

/// Who calls, in the org tests.
#[derive(Clone, Copy, Debug)]
enum OrgCaller {
    Person(&'static str),
    Bot,
    Key { write: bool },
}

/// Tries `action` in `org` as `auth`; `conv` is an org-wide conversation of the owner's.
async fn try_org_action(
    app: &TestApp,
    auth: &Auth,
    org: &str,
    conv: &str,
    action: &str,
    cast: &Cast,
) -> u16 {
    let base = format!("/api/v1/orgs/{org}");
    let victim = &cast.victim.id;
    let (method, path, body) = match action {
        "view_org" => get(base.clone()),
        "update_org" => patch(base.clone(), json!({"name": "Renamed"})),
        "delete_org" => delete(base.clone()),
        "transfer_org" => post(format!("{base}/transfer"), json!({"user_id": victim})),
        "view_members" => get(format!("{base}/members")),
        "manage_members" => patch(
            format!("{base}/members/{victim}"),
            json!({"role": "viewer"}),
        ),
        "manage_owners" => patch(format!("{base}/members/{victim}"), json!({"role": "owner"})),
        "create_invite" => post(format!("{base}/invites"), json!({})),
        "view_teams" => get(format!("{base}/teams")),
        "manage_teams" => post(format!("{base}/teams"), json!({"name": "t"})),
        "create_conversation" => post(
            format!("{base}/conversations"),
            json!({"kind": "group", "name": "new"}),
        ),
        "join_conversation" => post_empty(format!("/api/v1/conversations/{conv}/join")),
        "administer_conversations" => patch(
            format!("/api/v1/conversations/{conv}"),
            json!({"name": "administered"}),
        ),
        "manage_bots" => post(format!("{base}/bots"), json!({"name": "b"})),
        "set_key_tier" => post(
            "/api/v1/api-keys".to_owned(),
            json!({"name": "k", "org_id": org, "scopes": ["org:read"], "tier": "team"}),
        ),
        "view_audit" => get(format!("{base}/audit")),
        "manage_webhooks" => get(format!("{base}/webhooks")),
        "manage_guards" => get(format!("{base}/guards")),
        "manage_oauth" => get(format!("{base}/oauth-clients")),
        "manage_agents" => get(format!("{base}/agents")),
        "manage_widget_keys" => get(format!("{base}/widget-keys")),
        "manage_security" => patch(base.clone(), json!({"audit_retention_days": 90})),
        other => panic!("no probe for {other}"),
    };
    app.as_caller(auth, method, &path, body)
        .await
        .status
        .as_u16()
}

/// A fresh org with an org-wide conversation of the owner's, and the caller's credential.
async fn org_for(app: &TestApp, cast: &Cast, who: OrgCaller) -> (Auth, String, String) {
    let role = match who {
        OrgCaller::Person(role) => Some(role),
        OrgCaller::Bot => None,
        OrgCaller::Key { .. } => Some("admin"),
    };
    let org = fresh_org(app, cast, role).await;
    let conv = app.group(&org, &cast.owner, &[], json!("org")).await;
    let auth = match who {
        OrgCaller::Person(_) => Auth::Bearer(cast.caller.token.clone()),
        OrgCaller::Bot => make_bot(app, &org, &cast.owner).await.1,
        OrgCaller::Key { write } => make_key(app, &cast.caller, &org, write).await,
    };
    (auth, org, conv)
}

async fn org_permissions_are_what_the_server_allows(app: TestApp) {
    let app = unlimited(app).await;
    let cast = cast(&app).await;
    let callers = [
        OrgCaller::Person("owner"),
        OrgCaller::Person("admin"),
        OrgCaller::Person("member"),
        OrgCaller::Person("viewer"),
        OrgCaller::Bot,
        OrgCaller::Key { write: true },
        OrgCaller::Key { write: false },
    ];
    for who in callers {
        let (auth, org, _) = org_for(&app, &cast, who).await;
        let permissions = listed(&app, &auth, &org_path(&org, "")).await;
        for action in ORG_ACTIONS {
            let (auth, org, conv) = org_for(&app, &cast, who).await;
            let status = try_org_action(&app, &auth, &org, &conv, action, &cast).await;
            verdict_matches(&who, action, &permissions, status, status == 403);
        }
        match who {
            OrgCaller::Person("owner") => assert_eq!(permissions, ORG_ACTIONS),
            OrgCaller::Person("admin") => {
                assert!(permissions.contains(&"create_invite".to_owned()));
                assert!(!permissions.contains(&"manage_owners".to_owned()));
            }
            OrgCaller::Person("member" | "viewer") | OrgCaller::Bot => {
                assert!(!permissions.contains(&"create_invite".to_owned()));
            }
            OrgCaller::Key { write: false } => {
                assert_eq!(permissions, ["view_org", "view_members", "view_teams"]);
            }
            _ => {}
        }
    }
}

/// The lists come with the objects: the org when created, listed and changed; the conversation
/// when read, alone or listed (mine and available) — not when created or changed, since that
/// answer is also the gateway event's `d`, shared by every recipient.
async fn permissions_are_listed_wherever_the_objects_are_returned(app: TestApp) {
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let created = app.create_org(&alice, "Acme").await.expect(201);
    assert_eq!(
        created.body["permissions"].as_array().unwrap().len(),
        ORG_ACTIONS.len()
    );
    let org = created.id();
    app.admin_add_member(&org, &bob, "member").await.expect(201);
    let orgs = app.items("/api/v1/orgs", &bob.token).await;
    assert!(orgs[0]["permissions"]
        .as_array()
        .unwrap()
        .contains(&json!("create_conversation")));
    assert!(!orgs[0]["permissions"]
        .as_array()
        .unwrap()
        .contains(&json!("create_invite")));
    let patched = app
        .update_org(&org, &alice, json!({"name": "Acme 2"}))
        .await
        .expect(200);
    assert!(patched.body["permissions"].is_array());
    let conv = app
        .post(
            &org_path(&org, "/conversations"),
            &alice.token,
            json!({"kind": "group", "name": "g", "visibility": "org"}),
        )
        .await
        .expect(201);
    // A create or an update answers the object its event carries to every recipient: no one's
    // permissions; the reads do.
    assert!(conv.body.get("permissions").is_none());
    let c = conv.id();
    let one = app.get(&conv_path(&c, ""), &alice.token).await.expect(200);
    assert!(one.body["permissions"]
        .as_array()
        .unwrap()
        .contains(&json!("delete")));
    let available = app
        .items("/api/v1/conversations/available", &bob.token)
        .await;
    assert_eq!(available[0]["permissions"], json!(["see", "join"]));
    let mine = app.items("/api/v1/conversations", &alice.token).await;
    assert!(mine[0]["permissions"]
        .as_array()
        .unwrap()
        .contains(&json!("remove_participants")));
    let archived = app
        .update_conversation(&c, &alice, json!({"archived": true}))
        .await
        .expect(200);
    assert!(archived.body.get("permissions").is_none());
    // Archived: nobody sends or adds people any more, and the list says so at once.
    let again = app.get(&conv_path(&c, ""), &alice.token).await.expect(200);
    let after = again.body["permissions"].as_array().unwrap();
    assert!(!after.contains(&json!("send_messages")));
    assert!(!after.contains(&json!("add_participants")));
    assert!(after.contains(&json!("update")));
}
