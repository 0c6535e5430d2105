//! AI agents: an agent is created with its bot in one transaction, listed per org and per
//! conversation it takes part in; a budget reservation is one atomic step (100 concurrent
//! reservations against a cap never hold past it), settled with what was used; the usage log
//! folds into days.

use super::*;
use conclave_core::store::agents::*;
use uuid::Uuid;

/// Makes an agent of `org` (with its bot account) whose own budget is `budget`.
async fn make_agent(store: &dyn Store, org: OrgId, creator: UserId, budget: Option<i64>) -> Agent {
    let account = NewUser {
        password_hash: None,
        kind: UserKind::Bot,
        ..new_user(&format!(
            "agent-{}",
            &Uuid::now_v7().simple().to_string()[16..]
        ))
    };
    let bot = Bot {
        id: BotId::new(),
        org_id: org,
        user_id: account.id,
        name: "Helper".to_owned(),
        conversation_ids: None,
        created_by: Some(creator),
        created_at: at(1),
        previous_token_expires_at: None,
        secrets: SecretIds::first(SessionId::new(), String::new()),
    };
    let agent = Agent {
        id: Uuid::now_v7(),
        org_id: org,
        user_id: account.id,
        bot_id: bot.id,
        name: "Helper".to_owned(),
        endpoint: "https://api.example.com/v1".to_owned(),
        model: "m".to_owned(),
        system_prompt: None,
        temperature: Some(0.5),
        max_output_tokens: 100,
        context_messages: 20,
        monthly_token_budget: budget,
        created_by: Some(creator),
        created_at: at(1),
        updated_at: at(1),
        api_key_hint: Some("abcd".to_owned()),
    };
    let key = AgentKeyRecord {
        hint: "abcd".to_owned(),
        sealed: sealed(1, 7),
        created_at: at(1),
    };
    let token_hash = [Uuid::now_v7().as_bytes().as_slice(), &[3u8; 16]].concat();
    let new = NewAgent {
        bot: NewBot {
            bot: &bot,
            account: &account,
            token_hash: &token_hash,
        },
        agent: &agent,
        api_key: Some(&key),
    };
    let member = store.create_agent(&new, &[]).await.unwrap();
    assert_eq!(member.user.id, account.id);
    assert_eq!(member.role, OrgRole::Member);
    agent
}

async fn agents_are_bots_with_a_configuration(store: Arc<dyn Store>) {
    let (alice, org) = owned_org(&*store, "alice", "acme").await;
    let agent = make_agent(&*store, org.id, alice.id, None).await;
    assert_eq!(store.agent(agent.id).await.unwrap(), agent);
    assert_eq!(store.agents(org.id).await.unwrap(), vec![agent.clone()]);
    assert_eq!(
        store.agent_of_user(agent.user_id).await.unwrap(),
        Some(agent.clone())
    );
    assert_eq!(
        store.agent_key(agent.id).await.unwrap().unwrap().hint,
        "abcd"
    );
    assert_eq!(store.user(agent.user_id).await.unwrap().kind, UserKind::Bot);
    // In a conversation once its bot takes part.
    let conv = make_group(&*store, org.id, alice.id, &[], Visibility::ORG).await;
    assert!(store
        .agents_in_conversation(conv.id)
        .await
        .unwrap()
        .is_empty());
    take_part(&*store, conv.id, agent.user_id, ConversationRole::Member, 2).await;
    assert_eq!(
        store.agents_in_conversation(conv.id).await.unwrap(),
        vec![agent.clone()]
    );
    // A patch changes what it names; the key is replaced, then removed.
    let patch = AgentPatch {
        name: Some("Helper 2".to_owned()),
        temperature: Some(None),
        monthly_token_budget: Some(Some(5)),
        api_key: Some(None),
        ..AgentPatch::default()
    };
    let changed = store
        .update_agent(agent.id, &patch, at(9), &[])
        .await
        .unwrap();
    assert_eq!(changed.name, "Helper 2");
    assert_eq!(changed.temperature, None);
    assert_eq!(changed.monthly_token_budget, Some(5));
    assert_eq!(changed.api_key_hint, None);
    assert_eq!(changed.model, "m");
    assert_eq!(changed.updated_at, at(9));
    assert_eq!(store.agent_key(agent.id).await.unwrap(), None);
    assert_eq!(
        store
            .user(agent.user_id)
            .await
            .unwrap()
            .display_name
            .as_deref(),
        Some("Helper 2")
    );
    // Deleted: gone with its bot row; its account stays, disabled.
    store.delete_agent(agent.id, &[]).await.unwrap();
    assert_not_found(store.agent(agent.id).await);
    assert_not_found(store.bot(agent.bot_id).await);
    assert!(store.user(agent.user_id).await.unwrap().disabled);
    assert_not_found(store.delete_agent(agent.id, &[]).await);
}
check!(agents_are_bots_with_a_configuration);

/// DATA-3: an agent and its key are read together (`agent_with_key`, one statement), and an
/// endpoint moved on a decision about the endpoint and key (`KeyDecidedOn`) is moved only
/// while the row still has them: checked under the row's lock, so a key stored by a change
/// that committed meanwhile is seen — raced, a key stored for the old endpoint never ends up
/// with the new one.
async fn an_endpoint_moves_only_as_it_was_decided_on(store: Arc<dyn Store>) {
    let (alice, org) = owned_org(&*store, "alice", "acme").await;
    let agent = make_agent(&*store, org.id, alice.id, None).await;
    let (read, key) = store.agent_with_key(agent.id).await.unwrap();
    assert_eq!(read, agent);
    assert_eq!(key, store.agent_key(agent.id).await.unwrap());
    assert_eq!(key.unwrap().sealed, sealed(1, 7));
    let home = agent.endpoint.clone();
    let away = "https://elsewhere.example.net/v1".to_owned();
    let keyless = AgentPatch {
        endpoint: Some(home.clone()),
        api_key: Some(None),
        ..AgentPatch::default()
    };
    store
        .update_agent(agent.id, &keyless, at(2), &[])
        .await
        .unwrap();
    assert_eq!(store.agent_with_key(agent.id).await.unwrap().1, None);
    let keyed = |byte: u8| AgentPatch {
        api_key: Some(Some(AgentKeyRecord {
            hint: "wxyz".to_owned(),
            sealed: sealed(1, byte),
            created_at: at(3),
        })),
        ..AgentPatch::default()
    };
    let decided_keyless = KeyDecidedOn {
        endpoint: home.clone(),
        has_key: false,
    };
    let moved = |decided: &KeyDecidedOn| AgentPatch {
        endpoint: Some(away.clone()),
        decided_on: Some(decided.clone()),
        ..AgentPatch::default()
    };
    // A key stored after the move was decided on the keyless agent: refused, nothing changed.
    store
        .update_agent(agent.id, &keyed(8), at(3), &[])
        .await
        .unwrap();
    let refused = store
        .update_agent(agent.id, &moved(&decided_keyless), at(4), &[])
        .await;
    assert!(
        matches!(refused, Err(StoreError::Conflict(Conflict::AgentChanged))),
        "{refused:?}"
    );
    let (now, key) = store.agent_with_key(agent.id).await.unwrap();
    assert_eq!(
        (now.endpoint.as_str(), now.updated_at),
        (home.as_str(), at(3))
    );
    assert_eq!(key.unwrap().sealed, sealed(1, 8));
    // Decided on another endpoint than the one stored: refused too.
    let elsewhere = KeyDecidedOn {
        endpoint: "https://old.example.org/v1".to_owned(),
        has_key: true,
    };
    let refused = store
        .update_agent(agent.id, &moved(&elsewhere), at(4), &[])
        .await;
    assert!(
        matches!(refused, Err(StoreError::Conflict(Conflict::AgentChanged))),
        "{refused:?}"
    );
    // Decided on what is stored: made.
    let held = KeyDecidedOn {
        endpoint: home.clone(),
        has_key: true,
    };
    let made = store
        .update_agent(agent.id, &moved(&held), at(5), &[])
        .await
        .unwrap();
    assert_eq!(made.endpoint, away);
    assert_not_found(
        store
            .update_agent(uuid::Uuid::now_v7(), &moved(&held), at(5), &[])
            .await,
    );
    // Raced: a key stored and a move decided on the keyless agent, at once, many times.
    for round in 0..50u8 {
        store
            .update_agent(agent.id, &keyless, at(6), &[])
            .await
            .unwrap();
        let (a, b) = (store.clone(), store.clone());
        let (id, decided) = (agent.id, decided_keyless.clone());
        let keying = keyed(round);
        let moving = moved(&decided);
        let key_task = tokio::spawn(async move { a.update_agent(id, &keying, at(7), &[]).await });
        let move_task = tokio::spawn(async move { b.update_agent(id, &moving, at(7), &[]).await });
        let (key_result, move_result) = (key_task.await.unwrap(), move_task.await.unwrap());
        // The key's own answer, read after it committed, shows the endpoint it was stored
        // with; stored while the agent was at home, the move must not have followed.
        let keyed_at = key_result.unwrap().endpoint;
        let (now, key) = store.agent_with_key(agent.id).await.unwrap();
        assert!(key.is_some(), "round {round}");
        match move_result {
            Ok(_) => assert_eq!(keyed_at, away, "round {round}: moved after the key"),
            Err(StoreError::Conflict(Conflict::AgentChanged)) => {
                assert_eq!(now.endpoint, home, "round {round}");
            }
            Err(e) => panic!("round {round}: {e:?}"),
        }
    }
}
check!(an_endpoint_moves_only_as_it_was_decided_on);

async fn budget_reservations_never_pass_the_cap(store: Arc<dyn Store>) {
    let (alice, org) = owned_org(&*store, "alice", "acme").await;
    let agent = make_agent(&*store, org.id, alice.id, None).await;
    let month = MonthKey::of(at(0));
    store
        .set_org_token_budget(org.id, Some(1000), at(0), &[])
        .await
        .unwrap();
    let reservation = TokenReservation {
        agent: agent.id,
        org: org.id,
        month,
        tokens: 100,
    };
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.reserve_tokens(&reservation).await.unwrap() })
        })
        .collect();
    let mut held = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => held += 1,
            Err(refusal) => assert_eq!(refusal, BudgetRefusal::Org),
        }
    }
    assert_eq!(held, 10, "exactly the cap's worth is held");
    let state = store.org_budget_state(org.id, month).await.unwrap();
    assert_eq!((state.used, state.reserved), (0, 1000));
    // Settling frees the reservation and counts the real use.
    for _ in 0..10 {
        store.settle_tokens(&reservation, 30).await.unwrap();
    }
    let state = store.org_budget_state(org.id, month).await.unwrap();
    assert_eq!((state.used, state.reserved), (300, 0));
    assert_eq!(state.monthly_token_budget, Some(1000));
    // The agent's own cap is checked too; no cap at all holds anything.
    let capped = make_agent(&*store, org.id, alice.id, Some(150)).await;
    let on_capped = TokenReservation {
        agent: capped.id,
        ..reservation
    };
    assert_eq!(store.reserve_tokens(&on_capped).await.unwrap(), Ok(()));
    assert_eq!(
        store.reserve_tokens(&on_capped).await.unwrap(),
        Err(BudgetRefusal::Agent)
    );
    store
        .set_org_token_budget(org.id, None, at(1), &[])
        .await
        .unwrap();
    assert_eq!(store.reserve_tokens(&reservation).await.unwrap(), Ok(()));
    // Another month starts empty.
    let next = MonthKey::of(at(0) + Duration::days(40));
    let state = store.org_budget_state(org.id, next).await.unwrap();
    assert_eq!(
        (state.used, state.reserved, state.monthly_token_budget),
        (0, 0, None)
    );
}
check!(budget_reservations_never_pass_the_cap);

async fn calls_fold_into_days(store: Arc<dyn Store>) {
    let (alice, org) = owned_org(&*store, "alice", "acme").await;
    let agent = make_agent(&*store, org.id, alice.id, None).await;
    let day = |d: i64| (at(0) + Duration::days(d)).date_naive();
    for (d, latency, failed) in [
        (0, 100, false),
        (0, 300, true),
        (0, 200, false),
        (2, 50, false),
    ] {
        let call = AgentCall {
            id: Uuid::now_v7(),
            agent: agent.id,
            day: day(d),
            latency_ms: latency,
            tokens_in: 10,
            tokens_out: 5,
            failed,
        };
        store.record_agent_call(&call).await.unwrap();
    }
    let days = store.agent_usage(agent.id, day(0), day(3)).await.unwrap();
    assert_eq!(days.len(), 2);
    assert_eq!(days[0].day, day(0));
    assert_eq!(
        (
            days[0].calls,
            days[0].tokens_in,
            days[0].tokens_out,
            days[0].failures
        ),
        (3, 30, 15, 1)
    );
    assert_eq!(
        (days[0].latency_p50_ms, days[0].latency_p95_ms),
        (Some(200), Some(300))
    );
    assert_eq!(days[1].day, day(2));
    let later = store.agent_usage(agent.id, day(1), day(3)).await.unwrap();
    assert_eq!(later.len(), 1);
}
check!(calls_fold_into_days);
