//! CORE-1 bootstrap: the first admin once, disarmed for good by any server admin (across a
//! restart), and a preset bootstrap token expiring a day after the first start.

use super::*;

pub(super) async fn bootstrap_works_once(app: TestApp) {
    let wrong = app
        .post_anon(
            "/api/v1/auth/bootstrap",
            json!({"bootstrap_token": "nope", "username": "first", "password": PASSWORD}),
        )
        .await;
    wrong.expect_error(401, "invalid_bootstrap_token");
    let admin = app.bootstrap().await;
    let me = app.get("/api/v1/users/@me", &admin.token).await.expect(200);
    assert_eq!(me.body["server_admin"], true);
    let again = app
        .post_anon(
            "/api/v1/auth/bootstrap",
            json!({"bootstrap_token": BOOTSTRAP_TOKEN, "username": "second", "password": PASSWORD}),
        )
        .await;
    again.expect_error(410, "bootstrap_used");
    // Nothing was written by the refused attempts.
    app.login("second", PASSWORD)
        .await
        .expect_error(401, "invalid_credentials");
}

/// The configuration `app` was started with, to start it again on the same data (a restart).
pub(super) fn restart_config(data_dir: &std::path::Path, database_url: &str) -> Config {
    Config {
        listen: "127.0.0.1:0".into(),
        data_dir: data_dir.to_owned(),
        database_url: Some(database_url.to_owned()),
        admin_token: Some(SecretString::from(ADMIN_TOKEN)),
        bootstrap_token: Some(SecretString::from(BOOTSTRAP_TOKEN)),
        registration: conclave_core::types::RegistrationMode::Open,
        ..Config::default()
    }
}

/// Spawns `app`'s server again on the same data, sharing its clock: the restarted node, and
/// the bootstrap link it would print.
pub(super) async fn restart(app: &TestApp, config: Config) -> (TestApp, Option<String>) {
    use secrecy::ExposeSecret;
    let built = Application::build(config, app.clock.clone())
        .await
        .expect("the app restarts");
    let link = built.bootstrap_link().map(|l| l.expose_secret().to_owned());
    let base = format!("http://127.0.0.1:{}", built.port());
    let services = built.state().services.clone();
    tokio::spawn(built.run_until(std::future::pending()));
    let again = TestApp {
        base,
        client: app.client.clone(),
        clock: app.clock.clone(),
        backend: app.backend,
        data_dir: app.data_dir.clone(),
        database_url: app.database_url.clone(),
        services,
        // The data belongs to `app`, which removes it.
        _data: TempDir(
            std::env::temp_dir().join(format!("conclave-none-{}", uuid::Uuid::now_v7())),
        ),
    };
    (again, link)
}

/// `spawn_app` that also answers where its data lives, for `restart`.
pub(super) async fn restartable(app: TestApp) -> (TestApp, std::path::PathBuf, String) {
    let (mut dir, mut url) = (std::path::PathBuf::new(), String::new());
    let app = spawn_app_with(app.backend, |c| {
        dir = c.data_dir.clone();
        url = c.database_url();
    })
    .await
    .expect("the app starts");
    (app, dir, url)
}

/// Tries to make `first` the first admin with the preset bootstrap token.
pub(super) async fn try_bootstrap(node: &TestApp) -> Res {
    node.post_anon("/api/v1/auth/bootstrap", bootstrap_body("first"))
        .await
}

/// How a bootstrap that is over answers once the server restarts: `why` it has no link, the
/// error a try gets, and no first admin made by it.
struct Disarmed {
    why: &'static str,
    status: u16,
    code: &'static str,
}

impl Disarmed {
    async fn after_restart(&self, app: &TestApp, dir: &std::path::Path, url: &str) {
        let (restarted, link) = restart(app, restart_config(dir, url)).await;
        assert!(link.is_none(), "{}", self.why);
        try_bootstrap(&restarted)
            .await
            .expect_error(self.status, self.code);
        app.login("first", PASSWORD)
            .await
            .expect_error(401, "invalid_credentials");
    }
}

pub(super) fn bootstrap_body(username: &str) -> serde_json::Value {
    json!({"bootstrap_token": BOOTSTRAP_TOKEN, "username": username, "password": PASSWORD})
}

/// CORE-3a: a server admin made through the admin API ends the bootstrap — on this node at
/// once, after a restart, and even once that admin is demoted again.
pub(super) async fn any_server_admin_disarms_the_bootstrap_for_good(app: TestApp) {
    let (app, dir, url) = restartable(app).await;
    let body = json!({"username": "made-admin", "password": PASSWORD, "server_admin": true});
    let made = app
        .post("/api/v1/admin/users", ADMIN_TOKEN, body)
        .await
        .expect(201);
    try_bootstrap(&app)
        .await
        .expect_error(410, "bootstrap_used");
    let body = json!({"server_admin": false});
    app.patch(
        &format!("/api/v1/admin/users/{}", made.id()),
        ADMIN_TOKEN,
        body,
    )
    .await
    .expect(200);
    let disarmed = Disarmed {
        why: "a restart does not re-arm the bootstrap",
        status: 410,
        code: "bootstrap_used",
    };
    disarmed.after_restart(&app, &dir, &url).await;
}

/// CORE-3a: a preset bootstrap token works for 24 hours after the server's first start, which
/// is kept in the database, so restarting does not give it another day.
pub(super) async fn a_preset_bootstrap_token_expires_a_day_after_the_first_start(app: TestApp) {
    let (app, dir, url) = restartable(app).await;
    app.clock.advance(chrono::Duration::hours(23));
    let (later, link) = restart(&app, restart_config(&dir, &url)).await;
    assert!(
        link.is_some_and(|l| l.ends_with(&format!("#bootstrap={BOOTSTRAP_TOKEN}"))),
        "still armed within the day"
    );
    app.clock.advance(chrono::Duration::minutes(61));
    for node in [&app, &later] {
        try_bootstrap(node)
            .await
            .expect_error(410, "bootstrap_expired");
    }
    let disarmed = Disarmed {
        why: "an expired preset token stays expired",
        status: 401,
        code: "invalid_bootstrap_token",
    };
    disarmed.after_restart(&app, &dir, &url).await;
    // The first admin then comes from the management token.
    let body = json!({"username": "first", "password": PASSWORD, "server_admin": true});
    app.post("/api/v1/admin/users", ADMIN_TOKEN, body)
        .await
        .expect(201);
}
