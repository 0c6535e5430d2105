//! A session's start against its snapshot while the hub lags: what was published before the
//! snapshot does not follow READY, and a resumed session gets each replayed event once.

use super::*;
use crate::gateway::protocol;
use serde_json::json;
use serde_json::value::RawValue;

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
