//! Limited credentials (bots, API keys and their scopes) and org lockouts.

use super::*;
use conclave_core::credential::Scope;
use conclave_core::event::Audience;
use conclave_core::types::KeyTier;
use conclave_core::{ApiKeyId, BotId};

/// A bot limited to `org` (and `conversations` when listed).
fn bot(org: OrgId, conversations: Option<Vec<ConversationId>>) -> Credential {
    Credential::Bot {
        bot: BotId::new(),
        org,
        conversations,
    }
}

/// An API key of `org` with `scopes`.
fn api_key(org: OrgId, scopes: &[Scope]) -> Credential {
    Credential::ApiKey {
        key: ApiKeyId::new(),
        org,
        scopes: scopes.to_vec(),
        conversations: None,
        tier: KeyTier::Free,
    }
}

/// Registers a connection, optionally limited, with its start standing, and activates it.
fn connect_as(
    h: &mut Hub,
    id: ConnId,
    user: UserId,
    limit: Option<Credential>,
    convs: &[(ConversationId, OrgId)],
    locked: &[OrgId],
) -> Client {
    let rx = register(h, id, user, 64);
    if let Some(credential) = limit {
        h.command(Command::Restrict {
            conn: id,
            credential,
        });
    }
    h.command(Command::Standing {
        conn: id,
        orgs: convs.iter().copied().collect(),
        locked: locked.iter().copied().collect(),
    });
    let start = Checkpoint {
        s: 0,
        position: h.position,
        conversations: convs.iter().map(|(c, _)| *c).collect(),
    };
    assert_eq!(h.activate(id, start, None, None), Some(0));
    rx
}

fn names(rx: &mut Client) -> Vec<String> {
    frames(rx)
        .iter()
        .map(|f| {
            f["t"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| f.to_string())
        })
        .collect()
}

fn created(
    p: u64,
    user: UserId,
    conversation: ConversationId,
    org: OrgId,
    locked: bool,
) -> Delivered {
    delivered(
        p,
        Event::user(
            "CONVERSATION_CREATE",
            user,
            serde_json::json!({"id": conversation, "org_id": org}),
        )
        .with_control(Control::Subscribe {
            user,
            conversation,
            org,
            locked,
        }),
    )
}

#[test]
fn limited_connections_stay_within_their_org_and_list() {
    let (mut h, _) = hub(64);
    let user = UserId::new();
    let org = OrgId::new();
    let (listed, unlisted) = (ConversationId::new(), ConversationId::new());
    let limit = bot(org, Some(vec![listed]));
    let mut limited = connect_as(&mut h, 1, user, Some(limit), &[], &[]);
    // The same user's login session sees everything.
    let mut full = connect(&mut h, 2, user, &[], 64);
    h.dispatch(&created(1, user, unlisted, org, false));
    h.dispatch(&created(2, user, listed, OrgId::new(), false));
    h.dispatch(&created(3, user, listed, org, false));
    h.dispatch(&delivered(
        4,
        Event::conversation("MESSAGE_CREATE", unlisted, 4),
    ));
    h.dispatch(&delivered(
        5,
        Event::conversation("MESSAGE_CREATE", listed, 5),
    ));
    h.dispatch(&delivered(
        6,
        Event::reader(
            "READ_MARKER_UPDATE",
            user,
            unlisted,
            serde_json::json!({"conversation_id": unlisted}),
        ),
    ));
    assert_eq!(
        names(&mut limited),
        vec!["CONVERSATION_CREATE", "MESSAGE_CREATE"],
        "only the listed conversation of its org"
    );
    assert_eq!(names(&mut full).len(), 6);
}

#[test]
fn a_key_receives_only_the_event_types_its_scopes_read() {
    let (mut h, _) = hub(64);
    let (user, peer) = (UserId::new(), UserId::new());
    let org = OrgId::new();
    let conv = ConversationId::new();
    let key = |scopes: &[Scope]| api_key(org, scopes);
    let mut messages = connect_as(
        &mut h,
        1,
        user,
        Some(key(&[Scope::MessagesRead])),
        &[(conv, org)],
        &[],
    );
    let mut both = connect_as(
        &mut h,
        2,
        user,
        Some(key(&[Scope::MessagesRead, Scope::ConversationsRead])),
        &[(conv, org)],
        &[],
    );
    let _peer = connect_as(&mut h, 3, peer, None, &[(conv, org)], &[]);
    frames(&mut messages);
    frames(&mut both);
    let new = ConversationId::new();
    h.dispatch(&created(1, user, new, org, false));
    let d = |t: &str| serde_json::json!({"conversation_id": conv, "t": t});
    for (p, t) in [
        (2, "MESSAGE_CREATE"),
        (3, "TYPING_START"),
        (4, "PARTICIPANT_ADD"),
        (5, "CONVERSATION_UPDATE"),
        (6, "MESSAGE_STREAM"),
    ] {
        h.dispatch(&delivered(p, Event::conversation(t, conv, d(t))));
    }
    h.dispatch(&delivered(
        7,
        Event::reader("READ_MARKER_UPDATE", user, conv, d("READ_MARKER_UPDATE")),
    ));
    h.dispatch(&delivered(8, Event::conversation("MESSAGE_CREATE", new, 8)));
    // A peer's presence needs conversations:read as well.
    h.dispatch(&delivered(
        9,
        Event::new(
            "PRESENCE_UPDATE",
            Audience::Peers {
                user: peer,
                conversations: vec![conv],
            },
            serde_json::json!({"user_id": peer, "status": "idle"}),
        ),
    ));
    assert_eq!(
        names(&mut messages),
        vec![
            "MESSAGE_CREATE",
            "TYPING_START",
            "MESSAGE_STREAM",
            "READ_MARKER_UPDATE",
            "MESSAGE_CREATE"
        ],
        "messages:read alone: no conversation, participant or presence events, but the \
         new conversation's messages"
    );
    assert_eq!(names(&mut both).len(), 9);
}

#[test]
fn an_org_lockout_holds_back_that_org_only_until_restored() {
    let (mut h, _) = hub(64);
    let (user, peer) = (UserId::new(), UserId::new());
    let (locked_org, other_org) = (OrgId::new(), OrgId::new());
    let (a, b) = (ConversationId::new(), ConversationId::new());
    let mut session = connect_as(
        &mut h,
        1,
        user,
        None,
        &[(a, locked_org), (b, other_org)],
        &[],
    );
    let key = api_key(locked_org, &[Scope::MessagesRead]);
    let mut keyed = connect_as(&mut h, 2, user, Some(key), &[(a, locked_org)], &[]);
    let other_key = api_key(other_org, &[Scope::MessagesRead]);
    let mut elsewhere = connect_as(&mut h, 3, user, Some(other_key), &[(b, other_org)], &[]);
    let mut peer_rx = connect_as(&mut h, 4, peer, None, &[(a, locked_org)], &[]);
    for rx in [&mut session, &mut keyed, &mut elsewhere, &mut peer_rx] {
        frames(rx);
    }
    h.dispatch(&delivered(
        1,
        Event::org_access_lost(user, locked_org, "mfa_setup_required"),
    ));
    let c = ConversationId::new();
    h.dispatch(&created(2, user, c, locked_org, true));
    for (p, conv) in [(3, a), (4, b), (5, c)] {
        h.dispatch(&delivered(
            p,
            Event::conversation("MESSAGE_CREATE", conv, p),
        ));
    }
    h.dispatch(&delivered(
        6,
        Event::reader("READ_MARKER_UPDATE", user, a, serde_json::json!({})),
    ));
    assert_eq!(
        names(&mut session),
        vec!["ORG_ACCESS_LOST", "MESSAGE_CREATE"],
        "only the other org's message"
    );
    assert_eq!(names(&mut keyed), vec!["ORG_ACCESS_LOST"]);
    assert_eq!(
        names(&mut elsewhere),
        vec!["MESSAGE_CREATE"],
        "a key of the other org is not told"
    );
    assert_eq!(names(&mut peer_rx), vec!["MESSAGE_CREATE"]);
    assert!(
        h.conns.contains_key(&1) && h.conns.contains_key(&2),
        "sockets stay open"
    );
    h.dispatch(&delivered(7, Event::org_access_restored(user, locked_org)));
    for (p, conv) in [(8, a), (9, c)] {
        h.dispatch(&delivered(
            p,
            Event::conversation("MESSAGE_CREATE", conv, p),
        ));
    }
    assert_eq!(
        names(&mut session),
        vec!["ORG_ACCESS_RESTORED", "MESSAGE_CREATE", "MESSAGE_CREATE"],
        "the conversation set is back, the one created meanwhile included"
    );
    assert_eq!(
        names(&mut keyed),
        vec!["ORG_ACCESS_RESTORED", "MESSAGE_CREATE", "MESSAGE_CREATE"]
    );
    // A session that starts locked out holds the org back from the start.
    let mut late = connect_as(&mut h, 5, user, None, &[(a, locked_org)], &[locked_org]);
    h.dispatch(&delivered(10, Event::conversation("MESSAGE_CREATE", a, 10)));
    assert!(names(&mut late).is_empty());
    // The per-user requirement closes every socket of the user with 4014, no one else's.
    h.dispatch(&delivered(
        11,
        Event::control(Control::RequireSecondFactor { user }),
    ));
    for rx in [&mut session, &mut keyed, &mut elsewhere, &mut late] {
        assert_eq!(frames(rx).last().unwrap()["close"], 4014);
    }
    assert!(h.conns.contains_key(&4) && h.conns.len() == 1);
}

#[test]
fn an_event_is_judged_by_its_own_org_when_it_names_one() {
    let (mut h, _) = hub(64);
    let user = UserId::new();
    let (org, conv) = (OrgId::new(), ConversationId::new());
    // Subscribed, but the connection never learned the conversation's org.
    let mut rx = connect(&mut h, 1, user, &[conv], 64);
    h.dispatch(&delivered(
        1,
        Event::org_access_lost(user, org, "mfa_setup_required"),
    ));
    let update = |p: u64| Event::conversation("CONVERSATION_UPDATE", conv, p);
    h.dispatch(&delivered(2, update(2).in_org(org)));
    h.dispatch(&delivered(3, update(3)));
    let got = frames(&mut rx);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0]["t"], "ORG_ACCESS_LOST");
    assert_eq!(
        got[1]["d"], 3,
        "the update of the locked org is held back; one naming no org goes by the subscription"
    );
}
