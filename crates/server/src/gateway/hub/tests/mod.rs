//! The hub alone, driven by commands and a hand-made event stream: slow clients, removal and
//! replay, revocation, presence and a flood through the writers; limited credentials and org
//! lockouts (`limited`); the start of a session against its snapshot (`snapshot`).

mod limited;
mod snapshot;

use super::*;
use crate::fanout::WireEvent;
use crate::gateway::outbox::Outbox;
use conclave_core::event::{Control, Event};

fn hub(queue: usize) -> (Hub, Arc<std::sync::Mutex<Vec<Event>>>) {
    let published = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = published.clone();
    let limits = HubLimits {
        max_connections_per_user: 10,
        queue_frames: queue,
        max_unacked: 1000,
        max_buffered: 1000,
        coalesce: std::time::Duration::ZERO,
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
    let last = published.lock().unwrap().last().unwrap().d.value();
    assert_eq!(last["status"], "idle");
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
    let outs = join_running(&commands, conv, CLIENTS, 256).await;
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

/// Connects `n` clients of one conversation to a running hub: sink outboxes that take every
/// write at once, allowed `queue` unread frames.
async fn join_running(
    commands: &mpsc::Sender<Command>,
    conv: ConversationId,
    n: u64,
    queue: usize,
) -> Vec<Arc<Outbox>> {
    let mut outs = Vec::new();
    for id in 1..=n {
        let out = Arc::new(Outbox::sink(queue));
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
    outs
}

/// Three events for `clients` sockets of one conversation, 1 ms apart on a paused clock
/// after a quiet while, through a running hub whose coalescing window is `window`: for each
/// socket, the writes it took by 3 ms after the first event, and the writes and frames by 10 ms.
async fn three_events_1ms_apart(
    clients: u64,
    window: std::time::Duration,
) -> Vec<(usize, usize, usize)> {
    let ms = std::time::Duration::from_millis;
    let (mut h, _) = hub(64);
    h.limits.coalesce = window;
    let (commands, command_rx) = mpsc::channel(16);
    let (events, event_rx) = mpsc::unbounded_channel();
    let hub = tokio::spawn(h.run(command_rx, event_rx));
    let conv = ConversationId::new();
    let outs = join_running(&commands, conv, clients, 64).await;
    tokio::time::sleep(ms(50)).await;
    for p in 1..=3 {
        events
            .send(delivered(p, Event::conversation("MESSAGE_CREATE", conv, p)))
            .unwrap();
        tokio::time::sleep(ms(1)).await;
    }
    let early: Vec<usize> = outs.iter().map(|o| o.sink_writes()).collect();
    tokio::time::sleep(ms(7)).await;
    let seen = outs
        .iter()
        .zip(early)
        .map(|(o, early)| (early, o.sink_writes(), o.written().0.len()))
        .collect();
    drop((commands, events));
    hub.await.unwrap();
    seen
}

/// For a large audience (at least `COALESCE_SOCKETS` sockets) the first event after a quiet
/// while is written at once, and the events that follow within the window wait for its end
/// and share one write per socket.
#[tokio::test(start_paused = true)]
async fn events_for_a_large_audience_share_one_write_per_window() {
    let n = COALESCE_SOCKETS as u64 + 10;
    let seen = three_events_1ms_apart(n, std::time::Duration::from_millis(4)).await;
    assert_eq!(seen.len() as u64, n);
    for socket in seen {
        assert_eq!(
            socket,
            (1, 2, 3),
            "the first at once, the next two held and written together"
        );
    }
    // Without a window each event takes a write.
    for socket in three_events_1ms_apart(n, std::time::Duration::ZERO).await {
        assert_eq!(socket, (3, 3, 3));
    }
}

/// A small audience is written at once, whatever the window.
#[tokio::test(start_paused = true)]
async fn events_for_a_small_audience_are_not_held() {
    for socket in three_events_1ms_apart(10, std::time::Duration::from_millis(4)).await {
        assert_eq!(socket, (3, 3, 3));
    }
}

/// MSG-4, AZ-3: a resumed session keeps only the conversations the store lists for the user
/// now. One whose removal never reached this hub (an event lost, or skipped by a node that fell
/// behind) is dropped after the replay — its events stop, and the next checkpoint leaves it out —
/// while one the replay itself added stays.
#[test]
fn a_resumed_session_keeps_only_what_the_user_still_takes_part_in() {
    let (mut h, _) = hub(64);
    let user = UserId::new();
    let org = OrgId::new();
    let [kept, left, joined] = [(); 3].map(|()| ConversationId::new());
    let mut rx = register(&mut h, 1, user, 64);
    // The store, read after registering: still in `kept`, since in `joined`; no longer in
    // `left`, whose removal this hub never saw.
    h.command(Command::Standing {
        conn: 1,
        orgs: [(kept, org), (joined, org)].into_iter().collect(),
        locked: HashSet::new(),
    });
    let saved = Checkpoint {
        s: 0,
        position: 0,
        conversations: [kept, left].into_iter().collect(),
    };
    let events = vec![delivered(
        1,
        Event::conversation("CONVERSATION_CREATE", joined, 1).with_control(Control::Subscribe {
            user,
            conversation: joined,
            org,
            locked: false,
        }),
    )];
    let replay = Replay {
        events,
        client_seq: 0,
    };
    assert_eq!(h.activate(1, saved, Some(replay), None), Some(1));
    frames(&mut rx);
    for (p, conv) in [(2, kept), (3, left), (4, joined)] {
        h.dispatch(&delivered(
            p,
            Event::conversation("MESSAGE_CREATE", conv, p),
        ));
    }
    let got: Vec<u64> = frames(&mut rx)
        .iter()
        .map(|f| f["d"].as_u64().unwrap())
        .collect();
    assert_eq!(got, vec![2, 4], "nothing more of the conversation left");
    h.command(Command::Ack { conn: 1, s: 3 });
    let (reply, mut answer) = oneshot::channel();
    h.command(Command::Unregister { conn: 1, reply });
    let cp = answer.try_recv().unwrap().unwrap();
    let mut resumable: Vec<_> = cp.conversations.into_iter().collect();
    resumable.sort();
    let mut expected = vec![kept, joined];
    expected.sort();
    assert_eq!(resumable, expected);
}

/// MSG-4, AZ-3: every few heartbeats a live session is held against the conversations the store
/// lists for the user: a subscription whose removal never arrived ends — but not while a
/// subscription dispatched after the list was read may be newer than it.
#[test]
fn a_live_session_is_reconciled_with_what_the_user_takes_part_in() {
    let (mut h, _) = hub(64);
    let user = UserId::new();
    let org = OrgId::new();
    let [kept, lost, joined] = [(); 3].map(|()| ConversationId::new());
    let mut rx = connect(&mut h, 1, user, &[kept, lost], 64);
    let said = |h: &mut Hub, rx: &mut Client, p: u64| -> Vec<u64> {
        for conv in [kept, lost, joined] {
            h.dispatch(&delivered(
                p,
                Event::conversation("MESSAGE_CREATE", conv, p),
            ));
        }
        frames(rx)
            .iter()
            .map(|f| f["d"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(said(&mut h, &mut rx, 1), vec![1, 1]);
    // The user's removal from `lost` was never dispatched here; the store no longer lists it.
    let since = h.position;
    h.command(Command::Reconcile {
        conn: 1,
        since,
        conversations: vec![kept],
        locked: HashSet::new(),
    });
    assert_eq!(said(&mut h, &mut rx, 2), vec![2], "only `kept` now");
    // A subscription dispatched after the list was read may be newer than the list: kept.
    h.dispatch(&delivered(
        3,
        Event::conversation("CONVERSATION_CREATE", joined, 3).with_control(Control::Subscribe {
            user,
            conversation: joined,
            org,
            locked: false,
        }),
    ));
    frames(&mut rx);
    h.command(Command::Reconcile {
        conn: 1,
        since: 2,
        conversations: vec![kept],
        locked: HashSet::new(),
    });
    assert_eq!(said(&mut h, &mut rx, 4), vec![4, 4], "`joined` stays");
    // A list read after it decides.
    h.command(Command::Reconcile {
        conn: 1,
        since: 4,
        conversations: vec![kept],
        locked: HashSet::new(),
    });
    assert_eq!(said(&mut h, &mut rx, 5), vec![5]);
    // AUTH-4a: an org the user may no longer read (its `ORG_ACCESS_LOST` never came) is locked:
    // its conversations stay subscribed, but nothing of them is sent.
    h.command(Command::Reconcile {
        conn: 1,
        since: 5,
        conversations: vec![kept],
        locked: [org].into_iter().collect(),
    });
    h.dispatch(&delivered(
        6,
        Event::conversation("MESSAGE_CREATE", kept, 6).in_org(org),
    ));
    assert!(frames(&mut rx).is_empty(), "held back");
    let (reply, mut answer) = oneshot::channel();
    h.command(Command::Unregister { conn: 1, reply });
    let cp = answer.try_recv().unwrap().unwrap();
    assert!(!cp.conversations.contains(&lost) && !cp.conversations.contains(&joined));
    assert!(cp.conversations.contains(&kept));
}
