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
