use super::*;
use crate::ids::{BotId, SessionId};
use crate::model::SecretIds;
use crate::types::{OrgRole, UserKind, VisibilityScope};
use chrono::TimeZone;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap()
}

fn ms(n: i64) -> chrono::Duration {
    chrono::Duration::milliseconds(n)
}

fn cache(ttl_ms: u64, max_entries: usize) -> Cache {
    Cache::new(CacheSettings {
        ttl: Duration::from_millis(ttl_ms),
        max_entries,
    })
}

fn user(id: UserId) -> User {
    User {
        id,
        username: "alice".into(),
        display_name: None,
        email: None,
        email_verified: false,
        kind: UserKind::User,
        server_admin: false,
        disabled: false,
        require_2fa: false,
        created_at: t0(),
    }
}

fn session_of(user_id: UserId) -> Identity {
    Identity::Session {
        session: Session {
            id: SessionId::new(),
            user_id,
            device: None,
            ip: None,
            created_at: t0(),
            last_seen_at: t0(),
            expires_at: t0() + chrono::Duration::days(1),
            cookie: false,
            impersonator: None,
        },
        user: user(user_id),
    }
}

fn bot_of(user_id: UserId, org: OrgId, previous: Option<SessionId>) -> Identity {
    Identity::Bot {
        bot: Bot {
            id: BotId::new(),
            org_id: org,
            user_id,
            name: "b".into(),
            conversation_ids: None,
            created_by: None,
            created_at: t0(),
            previous_token_expires_at: None,
            secrets: SecretIds {
                current: SessionId::new(),
                hint: "abcd".into(),
                previous,
            },
        },
        slot: SecretSlot::Current,
        user: user(user_id),
        member: true,
    }
}

fn facts(id: ConversationId, org: OrgId) -> ConversationFacts {
    ConversationFacts {
        id,
        org_id: org,
        kind: ConversationKind::Group,
        visibility: Visibility::Scope(VisibilityScope::Org),
        archived: false,
    }
}

fn standing() -> Option<OrgStanding> {
    Some(OrgStanding {
        role: OrgRole::Member,
        org_requires_2fa: false,
        user_has_2fa: false,
    })
}

/// The ids of one entry of every kind, for one user, conversation and org.
#[derive(Clone, Copy)]
struct World {
    user: UserId,
    conv: ConversationId,
    org: OrgId,
    hash: [u8; 32],
    session: SessionId,
}

fn fill(c: &Cache) -> World {
    let w = World {
        user: UserId::new(),
        conv: ConversationId::new(),
        org: OrgId::new(),
        hash: [7; 32],
        session: SessionId::new(),
    };
    fill_as(c, &w)
}

/// A ticket taken before `scope` is invalidated: the load it stands for raced the invalidation.
fn ticket_before_forgetting(c: &Cache, scope: Cached) -> Ticket {
    let before = c.ticket(t0());
    c.forget(&[scope]);
    before
}

/// Which kinds still serve: credential, 2FA, standing, conversation, participation, teams.
fn served(c: &Cache, w: &World, at: DateTime<Utc>) -> [bool; 6] {
    [
        c.get::<Credentials>(&w.hash, at).is_some(),
        c.get::<SecondFactor>(&w.user, at).is_some(),
        c.get::<Standings>(&(w.org, w.user), at).is_some(),
        c.get::<Conversations>(&w.conv, at).is_some(),
        c.get::<Participants>(&(w.conv, w.user), at).is_some(),
        c.get::<Teams>(&(w.org, w.user), at).is_some(),
    ]
}

#[test]
fn a_fresh_copy_is_served_as_it_was_put() {
    let c = cache(60_000, 100);
    let w = fill(&c);
    assert_eq!(served(&c, &w, t0()), [true; 6]);
    assert_eq!(c.len(), 6);
    assert_eq!(c.get::<SecondFactor>(&w.user, t0()), Some(true));
    assert!(c.get::<SecondFactor>(&UserId::new(), t0()).is_none());
    assert_eq!(
        c.get::<Participants>(&(w.conv, w.user), t0()),
        Some(Some(ConversationRole::Member))
    );
}

#[test]
fn copies_expire_after_the_ttl_on_the_services_clock() {
    let c = cache(5_000, 100);
    let w = fill(&c);
    assert_eq!(served(&c, &w, t0() + ms(4_999)), [true; 6]);
    assert_eq!(served(&c, &w, t0() + ms(5_000)), [false; 6]);
    assert!(c.is_empty(), "expired copies are dropped when met");
    // A clock that went back does not make a copy younger.
    let w = fill(&c);
    assert_eq!(served(&c, &w, t0() - ms(1)), [false; 6]);
}

#[test]
fn copies_expire_after_the_ttl_on_the_monotonic_clock_too() {
    let c = cache(30, 100);
    let w = fill(&c);
    std::thread::sleep(Duration::from_millis(40));
    assert_eq!(
        served(&c, &w, t0()),
        [false; 6],
        "a frozen services clock does not keep a copy past the TTL"
    );
}

#[test]
fn each_scope_voids_exactly_what_depends_on_it() {
    let c = cache(60_000, 100);
    let other_user = |w: &World| Cached::User(UserId::from(w.conv.0));
    for (scope, want) in [
        (
            (|w: &World| Cached::User(w.user)) as fn(&World) -> Cached,
            [false, false, false, true, false, false],
        ),
        (
            |w: &World| Cached::Credential(w.session),
            [false, true, true, true, true, true],
        ),
        (
            |w: &World| Cached::Conversation(w.conv),
            [true, true, true, false, false, true],
        ),
        (
            |w: &World| Cached::Org(w.org),
            [true, true, false, false, true, false],
        ),
        (other_user, [true; 6]),
    ] {
        c.flush();
        let w = fill(&c);
        c.forget(&[scope(&w)]);
        assert_eq!(served(&c, &w, t0()), want, "{:?}", scope(&w));
    }
}

#[test]
fn bot_and_key_copies_depend_on_both_secrets_their_account_and_org() {
    let c = cache(60_000, 100);
    let (user, org, previous) = (UserId::new(), OrgId::new(), SessionId::new());
    let identity = bot_of(user, org, Some(previous));
    let Identity::Bot { bot, .. } = &identity else {
        unreachable!()
    };
    let current = bot.secrets.current;
    for scope in [
        Cached::Credential(current),
        Cached::Credential(previous),
        Cached::User(user),
        Cached::Org(org),
    ] {
        c.put::<Credentials>(c.ticket(t0()), [1; 32], identity.clone());
        assert!(c.get::<Credentials>(&[1; 32], t0()).is_some());
        c.forget(&[scope]);
        assert!(c.get::<Credentials>(&[1; 32], t0()).is_none(), "{scope:?}");
    }
}

#[test]
fn a_load_that_raced_an_invalidation_is_never_served() {
    let c = cache(60_000, 100);
    let user = UserId::new();
    // The ticket is taken, the store read; meanwhile the user is revoked.
    let before = ticket_before_forgetting(&c, Cached::User(user));
    c.put::<SecondFactor>(before, user, true);
    assert!(c.get::<SecondFactor>(&user, t0()).is_none());
    // Another user's invalidation does not void it.
    let before = ticket_before_forgetting(&c, Cached::User(UserId::new()));
    c.put::<SecondFactor>(before, user, true);
    assert_eq!(c.get::<SecondFactor>(&user, t0()), Some(true));
    // Put before the invalidation, read after: void too.
    c.forget(&[Cached::User(user)]);
    assert!(c.get::<SecondFactor>(&user, t0()).is_none());
    // A load that began after the invalidation is served.
    c.put::<SecondFactor>(c.ticket(t0()), user, false);
    assert_eq!(c.get::<SecondFactor>(&user, t0()), Some(false));
}

#[test]
fn every_control_invalidates_what_it_names() {
    let c = cache(60_000, 100);
    let w = fill(&c);
    let controls = [
        Control::RevokeSession { session: w.session },
        Control::RevokeUser {
            user: w.user,
            except: Some(w.session),
        },
        Control::RequireSecondFactor { user: w.user },
        Control::OrgAccess {
            user: w.user,
            org: w.org,
            restored: true,
        },
        Control::Subscribe {
            user: w.user,
            conversation: w.conv,
            org: w.org,
            locked: false,
        },
        Control::Unsubscribe {
            user: w.user,
            conversation: w.conv,
        },
        Control::Drop {
            conversation: w.conv,
        },
        Control::Stale {
            cached: vec![Cached::Org(w.org)],
        },
    ];
    for control in controls {
        c.flush();
        let w = fill_as(&c, &w);
        c.invalidate(&control);
        assert!(
            served(&c, &w, t0()).contains(&false),
            "{control:?} voids something"
        );
    }
    // Presence changes nothing cached.
    c.flush();
    let w = fill_as(&c, &w);
    c.invalidate(&Control::Presence {
        user: w.user,
        node: "n".into(),
        status: crate::event::PresenceStatus::Online,
        conversations: vec![w.conv],
    });
    assert_eq!(served(&c, &w, t0()), [true; 6]);
}

/// `fill` for the ids of `w` (the session keeps its id).
fn fill_as(c: &Cache, w: &World) -> World {
    let tk = c.ticket(t0());
    let mut identity = session_of(w.user);
    if let Identity::Session { session, .. } = &mut identity {
        session.id = w.session;
    }
    c.put::<Credentials>(tk, w.hash, identity);
    c.put::<SecondFactor>(tk, w.user, true);
    c.put::<Standings>(tk, (w.org, w.user), standing());
    c.put::<Conversations>(tk, w.conv, facts(w.conv, w.org));
    c.put::<Participants>(tk, (w.conv, w.user), Some(ConversationRole::Member));
    c.put::<Teams>(tk, (w.org, w.user), vec![]);
    *w
}

#[test]
fn each_kind_is_capped_and_the_newest_entry_is_kept() {
    let c = cache(60_000, 8);
    let users: Vec<UserId> = (0..50).map(|_| UserId::new()).collect();
    for u in &users {
        c.put::<SecondFactor>(c.ticket(t0()), *u, true);
        assert!(c.len() <= 8);
        assert!(c.get::<SecondFactor>(u, t0()).is_some(), "the newest stays");
    }
    // Another kind has its own cap.
    for _ in 0..8 {
        c.put::<Teams>(c.ticket(t0()), (OrgId::new(), UserId::new()), vec![]);
    }
    assert!(c.len() <= 16);
    // At the cap, stale entries go first.
    let c = cache(60_000, 4);
    let old: Vec<UserId> = (0..4).map(|_| UserId::new()).collect();
    for u in &old {
        c.put::<SecondFactor>(c.ticket(t0()), *u, true);
    }
    c.forget(&[Cached::User(old[0])]);
    let new = UserId::new();
    c.put::<SecondFactor>(c.ticket(t0()), new, true);
    assert!(c.get::<SecondFactor>(&new, t0()).is_some());
    let kept = old[1..]
        .iter()
        .filter(|u| c.get::<SecondFactor>(u, t0()).is_some())
        .count();
    assert_eq!(kept, 3, "only the stale one made room");
}

#[test]
fn too_many_marks_forget_everything() {
    let c = cache(60_000, 10);
    let w = fill(&c);
    let before = c.ticket(t0());
    for _ in 0..=PRUNE_MARKS_AT {
        c.forget(&[Cached::User(UserId::new())]);
    }
    assert!(c.is_empty(), "flushed");
    assert!(c.lock().marks.marks.is_empty());
    c.put::<SecondFactor>(before, w.user, true);
    assert!(
        c.get::<SecondFactor>(&w.user, t0()).is_none(),
        "a load begun before the flush is not kept"
    );
    c.put::<SecondFactor>(c.ticket(t0()), w.user, true);
    assert!(c.get::<SecondFactor>(&w.user, t0()).is_some());
}

#[test]
fn old_marks_are_pruned_without_reviving_anything() {
    let c = cache(20, 100_000);
    let user = UserId::new();
    let before = ticket_before_forgetting(&c, Cached::User(user));
    std::thread::sleep(Duration::from_millis(25));
    for _ in 0..PRUNE_MARKS_AT {
        c.forget(&[Cached::Org(OrgId::new())]);
    }
    assert!(
        !c.lock().marks.marks.contains_key(&Cached::User(user)),
        "the old mark was pruned"
    );
    c.put::<SecondFactor>(before, user, true);
    assert!(
        c.get::<SecondFactor>(&user, t0()).is_none(),
        "its mark is gone, but a copy that old has expired"
    );
}

#[test]
fn updates_change_the_copy_and_removal_drops_it() {
    let c = cache(60_000, 100);
    let w = fill(&c);
    c.update::<SecondFactor>(&w.user, |v| *v = false);
    assert_eq!(c.get::<SecondFactor>(&w.user, t0()), Some(false));
    c.remove::<Credentials>(&w.hash);
    assert!(c.get::<Credentials>(&w.hash, t0()).is_none());
    c.forget(&[Cached::User(w.user)]);
    c.update::<SecondFactor>(&w.user, |v| *v = true);
    assert!(
        c.get::<SecondFactor>(&w.user, t0()).is_none(),
        "an update does not revive a voided copy"
    );
}

#[test]
fn a_zero_ttl_turns_the_cache_off() {
    let c = cache(0, 100);
    let w = fill(&c);
    assert_eq!(served(&c, &w, t0()), [false; 6]);
    assert!(c.is_empty());
}

#[test]
fn stale_controls_travel_as_json() {
    let control = Control::Stale {
        cached: vec![
            Cached::User(UserId::new()),
            Cached::Credential(SessionId::new()),
            Cached::Conversation(ConversationId::new()),
            Cached::Org(OrgId::new()),
        ],
    };
    let text = serde_json::to_string(&control).unwrap();
    assert!(
        text.starts_with(r#"{"kind":"stale","cached":[{"user":"#),
        "{text}"
    );
    assert_eq!(serde_json::from_str::<Control>(&text).unwrap(), control);
}
