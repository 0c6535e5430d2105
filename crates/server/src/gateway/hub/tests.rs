//! The hub alone, driven by commands and a hand-made event stream: slow clients, removal and
//! replay, revocation, presence, limited credentials and org lockouts.

use super::*;
use crate::fanout::WireEvent;
use crate::gateway::outbox::Outbox;
use crate::gateway::protocol;
use conclave_core::credential::Scope;
use conclave_core::event::{Audience, Control, Event};
use conclave_core::types::KeyTier;
use conclave_core::{ApiKeyId, BotId};
use serde_json::json;
use serde_json::value::RawValue;

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

fn hub(queue: usize) -> (Hub, Arc<std::sync::Mutex<Vec<Event>>>) {
    let published = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = published.clone();
    let limits = HubLimits {
        max_connections_per_user: 10,
        queue_frames: queue,
        max_unacked: 1000,
        max_buffered: 1000,
    };
    let hub = Hub::new(
        "n1".into(),
        limits,
        Arc::new(move |e| sink.lock().unwrap().push(e)),
    );
    (hub, published)
}

fn delivered(position: u64, event: Event) -> Delivered {
    Delivered {
        position,
        event: Arc::new(WireEvent::from_event(&event)),
    }
}

/// A connection as the hub sees it: an outbox with no socket, whose frames the test reads.
struct Client {
    out: Arc<Outbox>,
    /// Whether the hub's close was already reported.
    closed: bool,
}

/// Registers connection `id` of `user` with a queue of `queue` frames.
fn register(h: &mut Hub, id: ConnId, user: UserId, queue: usize) -> Client {
    register_after(h, id, user, 0, queue).0
}

/// Registers connection `id` of `user` (a new session) whose snapshot stands at `after`: the
/// outbox its frames go to, and the hub's answer.
fn register_after(
    h: &mut Hub,
    id: ConnId,
    user: UserId,
    after: u64,
    queue: usize,
) -> (Client, oneshot::Receiver<Result<u64, ()>>) {
    let out = Arc::new(Outbox::detached(queue));
    let (reply, answer) = oneshot::channel();
    h.command(Command::Register {
        conn: id,
        user,
        session: SessionId::new(),
        out: out.clone(),
        after,
        reply,
    });
    (Client { out, closed: false }, answer)
}

/// A hub that has dispatched nothing yet (it lags behind what was published), with connection
/// 1 of a new user registered, whose snapshot stands at `after`.
fn lagging(after: u64) -> (Hub, Client, UserId) {
    let (mut h, _) = hub(64);
    let user = UserId::new();
    let (rx, mut answer) = register_after(&mut h, 1, user, after, 64);
    assert_eq!(
        answer.try_recv().unwrap(),
        Ok(after),
        "the snapshot stands at {after}"
    );
    (h, rx, user)
}

fn connect(
    h: &mut Hub,
    id: ConnId,
    user: UserId,
    convs: &[ConversationId],
    queue: usize,
) -> Client {
    let rx = register(h, id, user, queue);
    let start = Checkpoint {
        s: 0,
        position: h.position,
        conversations: convs.iter().copied().collect(),
    };
    assert_eq!(h.activate(id, start, None, None), Some(0));
    rx
}

/// The frames queued since the last call (as if the client read them), then the hub's close
/// the first time it is seen.
fn frames(rx: &mut Client) -> Vec<serde_json::Value> {
    let (queued, close) = rx.out.take();
    let mut out: Vec<serde_json::Value> = queued
        .iter()
        .map(|f| serde_json::from_str(f).unwrap())
        .collect();
    if let (Some((code, _)), false) = (close, rx.closed) {
        rx.closed = true;
        out.push(serde_json::json!({"close": code}));
    }
    out
}

#[test]
fn a_slow_client_is_dropped_without_slowing_others() {
    let (mut h, _) = hub(4);
    let conv = ConversationId::new();
    let mut slow = connect(&mut h, 1, UserId::new(), &[conv], 4);
    let mut fast = connect(&mut h, 2, UserId::new(), &[conv], 64);
    for p in 1..=10 {
        h.dispatch(&delivered(
            p,
            Event::conversation("MESSAGE_CREATE", conv, p),
        ));
        frames(&mut fast);
    }
    assert!(!h.conns.contains_key(&1), "the slow client is gone");
    assert!(h.conns.contains_key(&2));
    assert!(
        h.orphans.contains_key(&1),
        "its checkpoint waits to be saved"
    );
    let got = frames(&mut slow);
    assert_eq!(got.len(), 5, "its queue stayed bounded: {got:?}");
    assert_eq!(got[4]["close"], 4000, "then it is told why");
    h.dispatch(&delivered(
        11,
        Event::conversation("MESSAGE_CREATE", conv, 11),
    ));
    assert_eq!(frames(&mut fast)[0]["s"], 11);
}

#[test]
fn removal_is_the_last_event_and_replay_from_a_checkpoint_is_identical() {
    let (mut h, _) = hub(64);
    let conv = ConversationId::new();
    let user = UserId::new();
    let mut rx = connect(&mut h, 1, user, &[conv], 64);
    let events = [
        delivered(1, Event::conversation("MESSAGE_CREATE", conv, 1)),
        delivered(2, Event::conversation("MESSAGE_CREATE", conv, 2)),
        delivered(
            3,
            Event::conversation("PARTICIPANT_REMOVE", conv, 3).with_control(Control::Unsubscribe {
                user,
                conversation: conv,
            }),
        ),
        delivered(4, Event::conversation("MESSAGE_CREATE", conv, 4)),
    ];
    h.dispatch(&events[0]);
    h.command(Command::Ack { conn: 1, s: 1 });
    for e in &events[1..] {
        h.dispatch(e);
    }
    let live: Vec<String> = frames(&mut rx)
        .iter()
        .map(|f| f["t"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        live,
        vec!["MESSAGE_CREATE", "MESSAGE_CREATE", "PARTICIPANT_REMOVE"]
    );
    let (reply, mut answer) = oneshot::channel();
    h.command(Command::Unregister { conn: 1, reply });
    let cp = answer.try_recv().unwrap().unwrap();
    assert_eq!((cp.s, cp.position), (1, 1));
    assert!(cp.conversations.contains(&conv));
    // Rebuild from the checkpoint: the client saw s=2 already, so only the removal comes.
    let mut rx2 = register(&mut h, 2, user, 64);
    let replay = Replay {
        events: events[1..].to_vec(),
        client_seq: 2,
    };
    assert_eq!(h.activate(2, cp, Some(replay), None), Some(1));
    let again = frames(&mut rx2);
    assert_eq!(again[0]["t"], "PARTICIPANT_REMOVE");
    assert_eq!(again[0]["s"], 3);
    assert_eq!(again[1]["t"], "RESUMED");
    assert_eq!(again.len(), 2);
}

#[test]
fn revocation_closes_only_the_named_sessions() {
    let (mut h, _) = hub(64);
    let user = UserId::new();
    let mut a = connect(&mut h, 1, user, &[], 64);
    let mut b = connect(&mut h, 2, user, &[], 64);
    let keep = h.conns[&2].session;
    h.dispatch(&delivered(
        1,
        Event::control(Control::RevokeUser {
            user,
            except: Some(keep),
        }),
    ));
    assert_eq!(frames(&mut a).last().unwrap()["close"], 4004);
    assert!(frames(&mut b).iter().all(|f| f.get("close").is_none()));
    assert!(h.conns.contains_key(&2) && !h.conns.contains_key(&1));
}

#[test]
fn presence_is_published_on_change_only() {
    let (mut h, published) = hub(64);
    let user = UserId::new();
    let _a = connect(&mut h, 1, user, &[ConversationId::new()], 64);
    let _b = connect(&mut h, 2, user, &[], 64);
    assert_eq!(
        published.lock().unwrap().len(),
        1,
        "online once, not per connection"
    );
    h.command(Command::Presence {
        conn: 1,
        status: PresenceStatus::Idle,
    });
    assert_eq!(
        published.lock().unwrap().len(),
        1,
        "still online through the other connection"
    );
    let (reply, _) = oneshot::channel();
    h.command(Command::Unregister { conn: 2, reply });
    let last = published.lock().unwrap().last().unwrap().d.clone();
    assert_eq!(last["status"], "idle");
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

#[test]
fn events_published_before_the_snapshot_do_not_follow_ready() {
    // The hub lags: events 1 and 2 were published (and are in the store snapshot READY is
    // built from) but not yet dispatched when the connection registers with `after: 2`.
    let (mut h, mut rx, user) = lagging(2);
    let conv = ConversationId::new();
    h.dispatch(&delivered(
        1,
        Event::conversation("MESSAGE_CREATE", conv, 1),
    ));
    // A control published before the snapshot still applies: revoking another user's
    // sessions reaches nobody here, but it is not dropped on the way.
    h.dispatch(&delivered(
        2,
        Event::control(Control::RevokeUser {
            user: UserId::new(),
            except: None,
        }),
    ));
    h.dispatch(&delivered(
        3,
        Event::conversation("MESSAGE_CREATE", conv, 3),
    ));
    let start = Checkpoint {
        s: 0,
        position: 2,
        conversations: [conv].into_iter().collect(),
    };
    assert_eq!(h.activate(1, start, None, None), Some(0));
    let got = frames(&mut rx);
    assert_eq!(got.len(), 1, "only what came after the snapshot: {got:?}");
    assert_eq!(got[0]["d"], 3);
    // A revocation published before the snapshot still closes the socket.
    let (mut rx, _) = register_after(&mut h, 2, user, 4, 64);
    h.dispatch(&delivered(
        4,
        Event::control(Control::RevokeUser { user, except: None }),
    ));
    let start = Checkpoint {
        s: 0,
        position: 4,
        conversations: HashSet::new(),
    };
    h.activate(2, start, None, None);
    assert_eq!(frames(&mut rx).last().unwrap()["close"], 4004);
}

/// `CONVERSATION_CREATE` for `user` of `conv` in `org`, subscribing their sockets.
fn joined(user: UserId, conv: ConversationId, org: OrgId) -> Event {
    Event::user("CONVERSATION_CREATE", user, conv).with_control(Control::Subscribe {
        user,
        conversation: conv,
        org,
        locked: false,
    })
}

#[test]
fn a_conversation_joined_before_the_snapshot_is_not_announced_after_ready() {
    // Bob was added to two conversations (positions 1 and 2) before his snapshot was read,
    // so READY lists both; the hub lags and dispatches the first while he starts and the
    // second only after his READY went out. Neither announcement may follow READY, but both
    // subscriptions hold: what comes later in either conversation reaches him.
    let (mut h, mut rx, bob) = lagging(2);
    let (org, first, second) = (OrgId::new(), ConversationId::new(), ConversationId::new());
    h.dispatch(&delivered(1, joined(bob, first, org)));
    let start = Checkpoint {
        s: 0,
        position: 2,
        conversations: [first, second].into_iter().collect(),
    };
    let ready = RawValue::from_string("{}".into()).unwrap();
    h.activate(
        1,
        start,
        None,
        Some(protocol::dispatch(None, "READY", &ready)),
    );
    h.dispatch(&delivered(2, joined(bob, second, org)));
    h.dispatch(&delivered(
        3,
        Event::conversation("MESSAGE_CREATE", first, 3),
    ));
    h.dispatch(&delivered(
        4,
        Event::conversation("MESSAGE_CREATE", second, 4),
    ));
    let got: Vec<_> = frames(&mut rx).iter().map(|f| f["t"].clone()).collect();
    assert_eq!(got, ["READY", "MESSAGE_CREATE", "MESSAGE_CREATE"]);
}

#[test]
fn a_resumed_session_gets_each_replayed_event_once() {
    // The session stood at position 1; events 2 and 3 are replayed. The hub lags and
    // dispatches 3 again after activation: it is not sent twice. Event 4 is new.
    let (mut h, mut rx, _) = lagging(3);
    let conv = ConversationId::new();
    let events: Vec<Delivered> = (2..=3)
        .map(|p| delivered(p, Event::conversation("MESSAGE_CREATE", conv, p)))
        .collect();
    let start = Checkpoint {
        s: 1,
        position: 1,
        conversations: [conv].into_iter().collect(),
    };
    let replay = Replay {
        events: events.clone(),
        client_seq: 1,
    };
    assert_eq!(h.activate(1, start, Some(replay), None), Some(2));
    h.dispatch(&events[1]);
    h.dispatch(&delivered(
        4,
        Event::conversation("MESSAGE_CREATE", conv, 4),
    ));
    let got: Vec<_> = frames(&mut rx)
        .iter()
        .map(|f| (f["t"].clone(), f["d"].clone()))
        .collect();
    assert_eq!(
        got,
        [
            (json!("MESSAGE_CREATE"), json!(2)),
            (json!("MESSAGE_CREATE"), json!(3)),
            (json!("RESUMED"), json!({"replayed": 2})),
            (json!("MESSAGE_CREATE"), json!(4)),
        ]
    );
}

/// Writing must keep up with routing: the hub, run for real with its writer tasks, sends 2,000
/// events in one go to clients that take every write at once and are allowed 256 unread frames.
/// Were the hub to route burst after burst ahead of the writers, frames would pile up in the
/// outboxes and these clients would be dropped as too slow; with the hub at most one burst
/// ahead, no more than two bursts' frames ever wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_clients_keep_up_with_a_flood_through_the_writers() {
    const EVENTS: u64 = 2_000;
    const CLIENTS: u64 = 20;
    let (h, _) = hub(256);
    let (commands, command_rx) = mpsc::channel(16);
    let (events, event_rx) = mpsc::unbounded_channel();
    let hub = tokio::spawn(h.run(command_rx, event_rx));
    let conv = ConversationId::new();
    let mut outs = Vec::new();
    for id in 1..=CLIENTS {
        let out = Arc::new(Outbox::sink(256));
        let (reply, answer) = oneshot::channel();
        let (user, session) = (UserId::new(), SessionId::new());
        let register = Command::Register {
            conn: id,
            user,
            session,
            out: out.clone(),
            after: 0,
            reply,
        };
        commands.send(register).await.unwrap();
        let position = answer.await.unwrap().unwrap();
        let conversations = [conv].into();
        let start = Checkpoint {
            s: 0,
            position,
            conversations,
        };
        let (reply, answer) = oneshot::channel();
        let activate = Command::Activate {
            conn: id,
            start,
            replay: None,
            marker: None,
            reply,
        };
        commands.send(activate).await.unwrap();
        assert_eq!(answer.await.unwrap(), Some(0));
        outs.push(out);
    }
    for p in 1..=EVENTS {
        let ev = delivered(p, Event::conversation("MESSAGE_CREATE", conv, p));
        events.send(ev).unwrap();
    }
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    for (i, out) in outs.iter().enumerate() {
        let (frames, close) = loop {
            let (frames, close) = out.written();
            if close.is_some() || frames.len() as u64 == EVENTS {
                break (frames, close);
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "client {i} got {} frames",
                frames.len()
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        };
        assert_eq!(
            close,
            None,
            "client {i} was dropped after {} frames",
            frames.len()
        );
        let last: serde_json::Value = serde_json::from_str(frames.last().unwrap()).unwrap();
        assert_eq!(last["s"], EVENTS, "in order, the last one last");
    }
    drop((commands, events));
    hub.await.unwrap();
}
