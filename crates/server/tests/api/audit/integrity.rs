//! The chain's integrity: `verify` over the API and the CLI catching rows altered, inserted or
//! removed in the database, retention pruning behind a signed checkpoint, a backdated row refused.

use super::*;
use crate::helpers::org_path;

/// Runs `conclave audit verify` against the app's data; answers the exit code and the report.
pub(super) async fn cli_verify(config: &Config, expect_head: Option<&str>) -> (i32, Value) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_conclave"));
    cmd.args(["audit", "verify"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CONCLAVE_DATA_DIR", &config.data_dir)
        .env("CONCLAVE_DATABASE_URL", config.database_url());
    if let Some(h) = expect_head {
        cmd.args(["--expect-head", h]);
    }
    let out = cmd.output().await.expect("conclave runs");
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), report)
}

pub(super) async fn verify_catches_rows_altered_inserted_or_removed(app: TestApp) {
    let (app, config) = app_and_config(app).await;
    // An empty log verifies.
    let empty = verify(&app, "").await;
    assert_eq!(empty["ok"], true);
    assert_eq!(empty["checked"], 0);
    assert_eq!(empty["first_bad"], Value::Null);
    for name in ["alice", "bob", "carol", "dave", "erin", "frank"] {
        app.user(name).await;
    }
    let intact = verify(&app, "").await;
    assert_eq!(intact["ok"], true, "{intact}");
    // Each user: registered, then signed in.
    assert_eq!(intact["checked"], 12);
    let last = 12;
    let (code, report) = cli_verify(&config, None).await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["ok"], true);
    // Rows of the server chain, by seq.
    let rows = audit(&app, "?limit=100").await;
    let by_seq = |seq: i64| {
        rows.iter()
            .find(|r| r["chain"] == "server" && r["seq"] == seq)
            .unwrap()
            .clone()
    };
    let db = Db::open(&config).await;

    // Altered: a row's event changed by hand.
    assert_eq!(
        db.exec("UPDATE audit_log SET event = 'user.nothing' WHERE chain = 'server' AND seq = 3")
            .await,
        1
    );
    let bad = verify(&app, "").await;
    assert_eq!(bad["ok"], false);
    assert_eq!(bad["first_bad"], by_seq(3)["id"]);
    assert_eq!(bad["problem"], "altered");
    let (code, report) = cli_verify(&config, None).await;
    assert_eq!(code, 1);
    assert_eq!(report["first_bad"], by_seq(3)["id"]);
    db.exec("UPDATE audit_log SET event = 'user.registered' WHERE chain = 'server' AND seq = 3")
        .await;
    assert_eq!(verify(&app, "").await["ok"], true, "restored, it verifies");

    // Removed: a row in the middle deleted.
    let saved = by_seq(4);
    db.exec(
        "CREATE TABLE audit_saved AS SELECT * FROM audit_log WHERE chain = 'server' AND seq = 4",
    )
    .await;
    db.exec("DELETE FROM audit_log WHERE chain = 'server' AND seq = 4")
        .await;
    let bad = verify(&app, "").await;
    assert_eq!(bad["ok"], false);
    assert_eq!(bad["first_bad"], by_seq(5)["id"], "the row after the gap");
    assert_eq!(bad["problem"], "gap");
    db.exec("INSERT INTO audit_log SELECT * FROM audit_saved")
        .await;
    assert_eq!(verify(&app, "").await["ok"], true);
    assert!(saved["id"].is_string());

    // Inserted: rows from 3 on moved up one, and a forged row put in at 3.
    db.exec("UPDATE audit_log SET seq = seq + 100000 WHERE chain = 'server' AND seq >= 3")
        .await;
    db.exec("UPDATE audit_log SET seq = seq - 99999 WHERE chain = 'server' AND seq >= 100000")
        .await;
    let forged = format!(
        "INSERT INTO audit_log (id, chain, seq, at, event, actor_id, actor_type, \
         impersonator_id, resource_type, resource_id, org_id, ip, user_agent, request_id, \
         outcome, detail, prev_hash, hash) SELECT {}, chain, 3, at, 'admin.user_created', \
         actor_id, 'management', NULL, resource_type, resource_id, org_id, ip, user_agent, \
         request_id, outcome, detail, prev_hash, hash FROM audit_log \
         WHERE chain = 'server' AND seq = 4",
        db.new_id()
    );
    assert_eq!(db.exec(&forged).await, 1);
    let bad = verify(&app, "").await;
    assert_eq!(bad["ok"], false);
    assert_ne!(bad["first_bad"], Value::Null);
    assert_ne!(bad["first_bad"], by_seq(3)["id"], "the forged row is named");
    assert_eq!(bad["problem"], "altered");
    db.exec("DELETE FROM audit_log WHERE chain = 'server' AND seq = 3")
        .await;
    db.exec("UPDATE audit_log SET seq = seq + 100000 WHERE chain = 'server' AND seq >= 4")
        .await;
    db.exec("UPDATE audit_log SET seq = seq - 100001 WHERE chain = 'server' AND seq >= 100000")
        .await;
    assert_eq!(
        verify(&app, "").await["ok"],
        true,
        "{}",
        verify(&app, "").await
    );

    // Unreadable: a column changed to a value the server never writes. It is named as altered
    // (the read does not fail), and put back it verifies again.
    db.exec("UPDATE audit_log SET actor_type = 'x' WHERE chain = 'server' AND seq = 5")
        .await;
    let bad = verify(&app, "").await;
    assert_eq!(bad["ok"], false, "{bad}");
    assert_eq!(bad["problem"], "altered");
    assert_eq!(bad["first_bad"], by_seq(5)["id"]);
    let (code, _) = cli_verify(&config, None).await;
    assert_eq!(code, 1);
    let listed = audit(&app, "?limit=100").await;
    assert!(
        listed.iter().any(|r| r["event"] == "unreadable"),
        "still listed"
    );
    db.exec(&format!(
        "UPDATE audit_log SET actor_type = '{}' WHERE chain = 'server' AND seq = 5",
        by_seq(5)["actor"]["type"].as_str().unwrap()
    ))
    .await;
    assert_eq!(verify(&app, "").await["ok"], true);

    // Filed before the first: a row numbered 0 or below in the server chain, or the only row
    // of a chain of its own, is out of place though no walk from 1 reads it.
    for (chain, seq) in [("server", 0), ("server", -7), ("forged", 0)] {
        let forged = format!(
            "INSERT INTO audit_log (id, chain, seq, at, event, actor_id, actor_type, \
             impersonator_id, resource_type, resource_id, org_id, ip, user_agent, request_id, \
             outcome, detail, prev_hash, hash) SELECT {}, '{chain}', {seq}, at, \
             'impersonation.started', actor_id, 'management', NULL, resource_type, \
             resource_id, org_id, ip, user_agent, request_id, outcome, detail, prev_hash, hash \
             FROM audit_log WHERE chain = 'server' AND seq = 4",
            db.new_id()
        );
        assert_eq!(db.exec(&forged).await, 1);
        let bad = verify(&app, "").await;
        assert_eq!(bad["ok"], false, "{chain} {seq}: {bad}");
        assert_eq!(bad["problem"], "gap");
        let named = bad["chains"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["chain"] == chain)
            .unwrap();
        assert_eq!(named["first_bad_seq"], seq, "{bad}");
        let (code, _) = cli_verify(&config, None).await;
        assert_eq!(code, 1);
        db.exec("DELETE FROM audit_log WHERE seq <= 0").await;
        assert_eq!(verify(&app, "").await["ok"], true);
    }

    // Truncated: the newest row removed. Against the head table it shows; with the head table
    // rewritten too, a head recorded elsewhere (`--expect-head`) still shows it.
    let head_hash = by_seq(last)["hash"].as_str().unwrap().to_owned();
    db.exec(&format!(
        "DELETE FROM audit_log WHERE chain = 'server' AND seq = {last}"
    ))
    .await;
    let bad = verify(&app, "").await;
    assert_eq!(bad["ok"], false);
    assert_eq!(bad["problem"], "head_mismatch");
    let prev_hash = by_seq(last - 1)["hash"].as_str().unwrap().to_owned();
    let set_head = match &db {
        Db::Sqlite(_) => format!("UPDATE audit_heads SET seq = {}, hash = X'{prev_hash}' WHERE chain = 'server'", last - 1),
        Db::Pg(_) => format!("UPDATE audit_heads SET seq = {}, hash = '\\x{prev_hash}'::bytea WHERE chain = 'server'", last - 1),
    };
    db.exec(&set_head).await;
    assert_eq!(verify(&app, "").await["ok"], true, "the cut is clean...");
    let bad = verify(&app, &format!("?expect_head={head_hash}")).await;
    assert_eq!(bad["ok"], false, "...but not against the recorded head");
    assert_eq!(bad["problem"], "expected_head_missing");
    let (code, _) = cli_verify(&config, Some(&head_hash)).await;
    assert_eq!(code, 1);
    assert_eq!(
        verify(&app, &format!("?expect_head={prev_hash}")).await["ok"],
        true
    );
    let res = app
        .get("/api/v1/admin/audit/verify?expect_head=xyz", ADMIN_TOKEN)
        .await
        .expect(422);
    assert_eq!(res.field(), Some("expect_head"));
}

pub(super) async fn retention_prunes_and_the_rest_still_verifies(app: TestApp) {
    let (app, _) = app_and_config(app).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let org = app.org(&alice, "Acme").await;
    let kept = app.org(&alice, "Kept").await;
    app.add_member(&org, &alice, &bob, "member").await;
    let conv = app.group(&org, &alice, &[&bob], json!("org")).await;
    let kept_conv = app.group(&kept, &alice, &[], json!("org")).await;
    for i in 0..3 {
        app.send_message(&conv, &alice, &format!("old {i}"))
            .await
            .expect(201);
    }
    app.says(&kept_conv, &alice, "kept forever").await;
    // Bad settings are refused and change nothing.
    let res = app
        .update_org(&org, &alice, json!({ "message_retention_days": -1 }))
        .await
        .expect(422);
    assert_eq!(res.field(), Some("/message_retention_days"));
    app.update_org(
        &org,
        &alice,
        json!({ "message_retention_days": 1, "audit_retention_days": 30 }),
    )
    .await
    .expect(200);
    // A month later the job (driven by the clock) prunes the org, and only that org.
    app.clock.advance(chrono::Duration::days(31));
    app.clock.settled().await;
    let alice = app.sign_in_again("alice", alice).await;
    app.says(&conv, &alice, "new").await;
    let rows = app
        .get(&org_path(&org, "/audit?event=audit.pruned"), &alice.token)
        .await
        .expect(200);
    let pruned = !rows.body["items"].as_array().unwrap().is_empty()
        && app.message_count(&conv, &alice).await == 1;
    assert!(pruned, "the retention job ran");
    assert_eq!(app.message_count(&kept_conv, &alice).await, 1);
    let org_rows = app
        .items(&org_path(&org, "/audit?limit=100"), &alice.token)
        .await;
    let names = events(&org_rows);
    assert!(names.contains(&"messages.pruned"));
    assert!(
        !names.contains(&"member.joined"),
        "rows older than the retention are gone: {names:?}"
    );
    let report = verify(&app, "").await;
    assert_eq!(
        report["ok"], true,
        "the pruned chain verifies from its checkpoint: {report}"
    );
    // Pruned to its newest rows, again and again: still verifiable, nothing else lost.
    app.clock.advance(chrono::Duration::days(31));
    app.clock.settled().await;
    let report = verify(&app, "").await;
    assert_eq!(report["ok"], true, "{report}");
    assert!(
        audit(&app, "?event=user.registered").await.len() >= 2,
        "other chains keep theirs"
    );
}

/// `GET /health/ready`: the status and the `audit` check.
pub(super) async fn readiness(app: &TestApp) -> (u16, Value) {
    let res = app.get_anon("/health/ready").await;
    (res.status.as_u16(), res.body["checks"]["audit"].clone())
}

pub(super) async fn pruning_refuses_a_backdated_row_and_raises_the_alarm(app: TestApp) {
    let (app, config) = app_and_config(app).await;
    app.bootstrap().await;
    let Acme { alice, bob, org } = app.acme().await;
    app.group(&org, &alice, &[&bob], json!("org")).await;
    let body = json!({ "audit_retention_days": 30 });
    app.update_org(&org, &alice, body).await.expect(200);
    assert_eq!(readiness(&app).await, (200, json!("ok")));
    let org_rows = || async {
        app.items(&org_path(&org, "/audit?limit=100"), &alice.token)
            .await
            .len()
    };
    let before = org_rows().await;
    assert!(before >= 4, "{before} rows");
    // A database writer without the master key backdates a recent row so that the retention
    // job (every second of the clock here) would delete it — and every row before it.
    let db = Db::open(&config).await;
    db.exec(&format!(
        "CREATE TABLE audit_saved AS SELECT * FROM audit_log WHERE chain = '{org}' AND seq = 2"
    ))
    .await;
    let old = match &db {
        Db::Sqlite(_) => "'2001-01-01T00:00:00.000000Z'",
        Db::Pg(_) => "'2001-01-01T00:00:00Z'::timestamptz",
    };
    assert_eq!(
        db.exec(&format!(
            "UPDATE audit_log SET at = {old} WHERE chain = '{org}' AND seq = 2"
        ))
        .await,
        1
    );
    // The job verifies before it prunes: it removes nothing and raises the alarm.
    app.clock.advance(chrono::Duration::seconds(1));
    app.clock.settled().await;
    let alarm = readiness(&app).await == (503, json!("chain_mismatch"));
    assert!(alarm, "readiness reports the mismatch");
    let refused = audit(&app, "?event=audit.prune_refused").await;
    assert!(!refused.is_empty());
    assert_eq!(refused[0]["chain"], "server");
    assert_eq!(refused[0]["detail"]["chain"], json!(org));
    assert_eq!(refused[0]["detail"]["problem"], "altered");
    assert_eq!(org_rows().await, before, "nothing was removed");
    assert!(audit(&app, "?event=audit.pruned").await.is_empty());
    // Verification still shows the tampering, and a failed one leaves the alarm on.
    let report = verify(&app, "").await;
    assert_eq!(report["ok"], false);
    assert_eq!(report["problem"], "altered");
    let (code, _) = cli_verify(&config, None).await;
    assert_eq!(code, 1);
    assert_eq!(readiness(&app).await, (503, json!("chain_mismatch")));
    // Once the row is put right, the alarm stays until an admin verifies (on every node: it is
    // kept in the database); a clean verification clears it.
    db.exec(&format!(
        "UPDATE audit_log SET at = (SELECT at FROM audit_saved) WHERE chain = '{org}' AND seq = 2"
    ))
    .await;
    assert_eq!(readiness(&app).await.0, 503);
    assert_eq!(verify(&app, "").await["ok"], true);
    assert_eq!(readiness(&app).await, (200, json!("ok")));
    assert_eq!(org_rows().await, before, "nothing was old enough to go");
    // A row filed before the first of a chain never pruned (numbered 0), old enough to go:
    // the job refuses it too, rather than pruning it away behind a checkpoint.
    let forged = format!(
        "INSERT INTO audit_log (id, chain, seq, at, event, actor_id, actor_type, \
         impersonator_id, resource_type, resource_id, org_id, ip, user_agent, request_id, \
         outcome, detail, prev_hash, hash) SELECT {}, chain, 0, {old}, event, actor_id, \
         actor_type, impersonator_id, resource_type, resource_id, org_id, ip, user_agent, \
         request_id, outcome, detail, prev_hash, hash FROM audit_saved",
        db.new_id()
    );
    assert_eq!(db.exec(&forged).await, 1);
    app.clock.advance(chrono::Duration::seconds(1));
    app.clock.settled().await;
    assert_eq!(readiness(&app).await, (503, json!("chain_mismatch")));
    let refused = audit(&app, "?event=audit.prune_refused").await;
    assert_eq!(refused[0]["detail"]["problem"], "gap", "{refused:?}");
    assert_eq!(refused[0]["detail"]["first_bad_seq"], 0, "{refused:?}");
    db.exec("DELETE FROM audit_log WHERE seq = 0").await;
    assert_eq!(verify(&app, "").await["ok"], true);
    // An old row the server cannot read (an actor type it never writes): refused as altered,
    // the alarm raised — the job does not fail on it.
    db.exec(&format!(
        "UPDATE audit_log SET actor_type = 'x', at = {old} WHERE chain = '{org}' AND seq = 2"
    ))
    .await;
    app.clock.advance(chrono::Duration::seconds(1));
    app.clock.settled().await;
    assert_eq!(readiness(&app).await, (503, json!("chain_mismatch")));
    let refused = audit(&app, "?event=audit.prune_refused").await;
    assert_eq!(refused[0]["detail"]["problem"], "altered", "{refused:?}");
    assert_eq!(refused[0]["detail"]["first_bad_seq"], 2, "{refused:?}");
    assert_eq!(org_rows().await, before, "nothing was removed");
}
