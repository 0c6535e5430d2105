//! The layering (defaults → file → env), the checks of `TryFrom<Config> for RuntimeConfig`
//! and the typed values it produces.

use super::{Config, ConfigError, OnOff, ProxyHeader, RuntimeConfig};
use conclave_core::types::RegistrationMode;
use ipnet::IpNet;
use secrecy::ExposeSecret;
use std::time::Duration;

/// A file `name` holding `contents`, in a directory of its own.
fn temp_file(name: &str, contents: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("conclave-cfg-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(name);
    std::fs::write(&file, contents).unwrap();
    file
}

/// Loads a configuration file holding `toml`, under the environment `env`.
fn from_file(toml: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    Config::load(Some(&temp_file("c.toml", toml)), vars(env))
}

fn vars(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

/// Validates a production configuration that is safe apart from `extra`.
fn production(extra: &[(&str, &str)]) -> Result<(), ConfigError> {
    let mut v = vec![
        ("CONCLAVE_ENV", "production"),
        (
            "CONCLAVE_MASTER_KEY",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        ),
        ("CONCLAVE_PUBLIC_URL", "https://chat.example"),
        ("CONCLAVE_TRUST_PROXY_TLS", "true"),
    ];
    v.extend_from_slice(extra);
    Config::load(None, vars(&v)).unwrap().validate()
}

#[test]
fn defaults_are_embedded() {
    let c = Config::load(None, vec![]).unwrap();
    assert_eq!(c.listen, "127.0.0.1:8080");
    assert!(c.database_url().starts_with("sqlite://"));
    assert_eq!(c.public_url(), "http://127.0.0.1:8080");
    c.validate().unwrap();
}

#[test]
fn env_wins_over_file_and_nests() {
    let c = from_file(
        "listen = \"0.0.0.0:1\"\nregistration = \"open\"\n[session]\nidle_hours = 5\n",
        &[
            ("CONCLAVE_LISTEN", "127.0.0.1:9"),
            ("CONCLAVE_SESSION__ABSOLUTE_DAYS", "2"),
            (
                "CONCLAVE_CORS_ORIGINS",
                "https://a.example, https://b.example",
            ),
            ("CONCLAVE_TEST_POSTGRES_URL", "ignored"),
            ("PATH", "/bin"),
        ],
    )
    .unwrap();
    assert_eq!(c.listen, "127.0.0.1:9");
    assert_eq!(c.registration, RegistrationMode::Open);
    assert_eq!(c.session.idle_hours, 5);
    assert_eq!(c.session.absolute_days, 2);
    assert_eq!(
        c.cors_origins,
        vec!["https://a.example", "https://b.example"]
    );
}

#[test]
fn unknown_keys_are_errors() {
    assert!(Config::load(None, vars(&[("CONCLAVE_LISTN", "x")])).is_err());
    assert!(from_file("colour = 1\n", &[]).is_err());
}

#[test]
fn secrets_from_files() {
    let file = temp_file("token", "s3cret-admin-token\n");
    let c = Config::load(
        None,
        vars(&[("CONCLAVE_ADMIN_TOKEN_FILE", file.to_str().unwrap())]),
    )
    .unwrap();
    assert_eq!(c.admin_token.unwrap().expose_secret(), "s3cret-admin-token");
}

#[test]
fn rate_limit_section_from_file_and_env() {
    let r = Config::load(None, vec![]).unwrap().rate_limit;
    for (name, value, default) in [
        ("user_reads_per_min", r.user_reads_per_min, 300),
        ("user_reads_burst", r.user_reads_burst, 100),
        ("user_writes_per_min", r.user_writes_per_min, 60),
        ("user_writes_burst", r.user_writes_burst, 20),
        ("auth_per_min", r.auth_per_min, 20),
        ("tier_pro_per_sec", r.tier_pro_per_sec, 100),
        ("tier_team_per_sec", r.tier_team_per_sec, 1_000),
        ("tier_enterprise_per_sec", r.tier_enterprise_per_sec, 0),
        ("header_read_timeout_secs", r.header_read_timeout_secs, 10),
        ("idle_timeout_secs", r.idle_timeout_secs, 60),
        ("body_timeout_secs", r.body_timeout_secs, 30),
        ("max_connections_per_ip", r.max_connections_per_ip, 256),
    ] {
        assert_eq!(value, default, "{name}");
    }
    assert!(
        Config::load(
            None,
            vars(&[("CONCLAVE_RATE_LIMIT__TIER_FREE_PER_SEC", "10")])
        )
        .is_err(),
        "free keys have no rate of their own: they share their owner's per-user limits"
    );
    let c = from_file(
        "rate_limits = \"off\"\n[rate_limit]\nuser_reads_per_min = 30\nmax_connections = 7\n",
        &[
            ("CONCLAVE_RATE_LIMIT__USER_READS_PER_MIN", "42"),
            ("CONCLAVE_RATE_LIMIT__IDLE_TIMEOUT_SECS", "5"),
        ],
    )
    .unwrap();
    assert_eq!(c.rate_limits, OnOff::Off);
    assert_eq!(c.rate_limit.user_reads_per_min, 42, "env wins");
    assert_eq!(c.rate_limit.idle_timeout_secs, 5);
    assert_eq!(c.rate_limit.max_connections, 7);
    assert_eq!(
        c.rate_limit.user_writes_per_min, 60,
        "the rest keeps defaults"
    );
    assert!(Config::load(None, vars(&[("CONCLAVE_RATE_LIMIT__READS", "1")])).is_err());
    let bad = Config::load(
        None,
        vars(&[
            ("CONCLAVE_RATE_LIMIT__AUTH_BURST", "0"),
            ("CONCLAVE_RATE_LIMIT__HEADER_READ_TIMEOUT_SECS", "0"),
            ("CONCLAVE_RATE_LIMIT__BODY_TIMEOUT_SECS", "0"),
            ("CONCLAVE_RATE_LIMIT__MAX_CONNECTIONS_PER_IP", "0"),
        ]),
    )
    .unwrap();
    let err = bad.validate().unwrap_err().to_string();
    assert!(err.contains("rate_limit.auth_burst"), "{err}");
    assert!(err.contains("rate_limit.header_read_timeout_secs"), "{err}");
    assert!(err.contains("rate_limit.body_timeout_secs"), "{err}");
    assert!(err.contains("rate_limit.max_connections_per_ip"), "{err}");
}

/// CORE-3a: in every mode an empty or blank secret is an error, never "no check".
#[test]
fn empty_secrets_are_errors_in_every_mode() {
    for env in ["development", "production"] {
        for name in [
            "CONCLAVE_ADMIN_TOKEN",
            "CONCLAVE_ACCESS_TOKEN",
            "CONCLAVE_BOOTSTRAP_TOKEN",
            "CONCLAVE_MASTER_KEY",
        ] {
            for value in ["", "   ", "\t"] {
                let c = Config::load(None, vars(&[("CONCLAVE_ENV", env), (name, value)])).unwrap();
                let err = c.validate().unwrap_err().to_string();
                assert!(
                    err.contains("set but empty"),
                    "{env} {name}={value:?}: {err}"
                );
            }
        }
    }
    let file = temp_file("token", "\n");
    let c = Config::load(
        None,
        vars(&[("CONCLAVE_ADMIN_TOKEN_FILE", file.to_str().unwrap())]),
    )
    .unwrap();
    assert!(c.validate().is_err(), "an empty secret file too");
}

/// CORE-3a: a preset bootstrap token has at least 32 characters.
#[test]
fn preset_bootstrap_tokens_are_long() {
    let short = Config::load(None, vars(&[("CONCLAVE_BOOTSTRAP_TOKEN", "12345")])).unwrap();
    let err = short.validate().unwrap_err().to_string();
    assert!(err.contains("at least 32 characters"), "{err}");
    assert!(!err.contains("12345"), "secrets never appear in errors");
    let almost = "x".repeat(31);
    let c = Config::load(None, vars(&[("CONCLAVE_BOOTSTRAP_TOKEN", &almost)])).unwrap();
    assert!(c.validate().is_err());
    let long = "x".repeat(32);
    let c = Config::load(None, vars(&[("CONCLAVE_BOOTSTRAP_TOKEN", &long)])).unwrap();
    c.validate().unwrap();
}

#[test]
fn sqlite_synchronous_is_normal_or_full() {
    let c = Config::load(None, vec![]).unwrap();
    assert_eq!(c.sqlite_synchronous, super::SqliteSynchronous::Normal);
    let full = vars(&[("CONCLAVE_SQLITE_SYNCHRONOUS", "full")]);
    let c = Config::load(None, full).unwrap();
    assert_eq!(c.sqlite_synchronous, super::SqliteSynchronous::Full);
    let r = super::RuntimeConfig::try_from(c).unwrap();
    assert_eq!(
        r.sqlite_synchronous,
        conclave_store_sqlite::Synchronous::Full
    );
    for bad in ["off", "extra", ""] {
        let v = vars(&[("CONCLAVE_SQLITE_SYNCHRONOUS", bad)]);
        assert!(Config::load(None, v).is_err(), "{bad:?}");
    }
}

#[test]
fn one_proxy_header_is_configured() {
    let c = Config::load(None, vec![]).unwrap();
    assert_eq!(c.proxy_header, ProxyHeader::XForwardedFor);
    let c = Config::load(None, vars(&[("CONCLAVE_PROXY_HEADER", "forwarded")])).unwrap();
    assert_eq!(c.proxy_header, ProxyHeader::Forwarded);
    let c = Config::load(None, vars(&[("CONCLAVE_PROXY_HEADER", "x-forwarded-for")])).unwrap();
    assert_eq!(c.proxy_header, ProxyHeader::XForwardedFor);
    for bad in ["both", "x-real-ip", ""] {
        assert!(
            Config::load(None, vars(&[("CONCLAVE_PROXY_HEADER", bad)])).is_err(),
            "{bad:?}"
        );
    }
}

#[test]
fn production_refuses_unsafe_settings() {
    let c = Config::load(
        None,
        vars(&[
            ("CONCLAVE_ENV", "production"),
            ("CONCLAVE_CORS_ORIGINS", "*"),
            ("CONCLAVE_ADMIN_TOKEN", "short"),
        ]),
    )
    .unwrap();
    let err = c.validate().unwrap_err().to_string();
    assert!(err.contains("wildcard CORS"));
    assert!(err.contains("32 characters"));
    assert!(err.contains("MASTER_KEY"));
    assert!(err.contains("plain HTTP"));
    assert!(!err.contains("short"), "secrets never appear in errors");
    production(&[]).unwrap();
}

#[test]
fn production_refuses_an_unauthenticated_nats_url_unless_acknowledged() {
    let err = production(&[("CONCLAVE_NATS_URL", "nats://nats.internal:4222")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("NATS URL without credentials"), "{err}");
    production(&[
        ("CONCLAVE_NATS_URL", "nats://nats.internal:4222"),
        ("CONCLAVE_NATS_ALLOW_UNAUTHENTICATED", "true"),
    ])
    .unwrap();
    production(&[(
        "CONCLAVE_NATS_URL",
        "nats://conclave:s3cret@nats.internal:4222",
    )])
    .unwrap();
    production(&[("CONCLAVE_NATS_URL", "nats://s3cret-token@nats.internal")]).unwrap();
    // Development accepts it; a URL that is not a NATS URL is refused everywhere.
    let dev = Config::load(
        None,
        vars(&[("CONCLAVE_NATS_URL", "nats://127.0.0.1:4222")]),
    )
    .unwrap();
    dev.validate().unwrap();
    let err = production(&[("CONCLAVE_NATS_URL", "http://user:s3cret@nats.internal")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a NATS URL"), "{err}");
    assert!(
        !err.contains("s3cret"),
        "secrets never appear in errors: {err}"
    );
}

#[test]
fn webhook_allowlist_loads_and_production_needs_it_acknowledged() {
    let allow = ("CONCLAVE_WEBHOOK_ALLOW_CIDRS", "10.0.0.0/8, 127.0.0.1");
    let err = production(&[allow]).unwrap_err().to_string();
    assert!(err.contains("webhook_allow_cidrs_acknowledged"), "{err}");
    production(&[allow, ("CONCLAVE_WEBHOOK_ALLOW_CIDRS_ACKNOWLEDGED", "true")]).unwrap();
    production(&[]).unwrap();
    let dev = Config::load(
        None,
        vars(&[allow, ("CONCLAVE_WEBHOOK_ALLOW_PORTS", "8080, 9443")]),
    )
    .unwrap();
    dev.validate().unwrap();
    assert_eq!(
        dev.webhook_allow_cidrs,
        vec![
            "10.0.0.0/8".parse::<IpNet>().unwrap(),
            "127.0.0.1/32".parse().unwrap()
        ]
    );
    assert_eq!(dev.webhook_allow_ports, vec![8080, 9443]);
    let loaded = from_file(
        "webhook_allow_cidrs = [\"fd00::/8\"]\nwebhook_allow_cidrs_acknowledged = true\nwebhook_allow_ports = [8443]\n",
        &[],
    )
    .unwrap();
    assert_eq!(
        loaded.webhook_allow_cidrs,
        vec!["fd00::/8".parse::<IpNet>().unwrap()]
    );
    assert!(loaded.webhook_allow_cidrs_acknowledged);
    assert_eq!(loaded.webhook_allow_ports, vec![8443]);
    for bad in [
        ("CONCLAVE_WEBHOOK_ALLOW_CIDRS", "10.0.0.0/33"),
        ("CONCLAVE_WEBHOOK_ALLOW_PORTS", "70000"),
    ] {
        assert!(Config::load(None, vars(&[bad])).is_err(), "{bad:?}");
    }
}

#[test]
fn the_agents_have_their_own_allowlist_and_limits() {
    let defaults = RuntimeConfig::try_from(Config::default()).unwrap().agents;
    assert!(defaults.outbound.allow_cidrs.is_empty() && defaults.outbound.extra_ports.is_empty());
    assert_eq!(
        (
            defaults.request_timeout,
            defaults.max_answer,
            defaults.max_concurrent
        ),
        (Duration::from_secs(30), Duration::from_secs(120), 64)
    );
    let c = Config::load(
        None,
        vars(&[
            ("CONCLAVE_AGENT_ALLOW_CIDRS", "127.0.0.1, 10.1.0.0/16"),
            ("CONCLAVE_AGENT_ALLOW_PORTS", "11434"),
            ("CONCLAVE_AGENT_REQUEST_TIMEOUT_SECS", "5"),
            ("CONCLAVE_AGENT_MAX_ANSWER_SECS", "0"),
            ("CONCLAVE_AGENT_MAX_CONCURRENT", "8"),
        ]),
    )
    .unwrap();
    let runtime = RuntimeConfig::try_from(c).unwrap();
    let agents = runtime.agents;
    assert_eq!(
        agents.outbound.allow_cidrs,
        vec![
            "127.0.0.1/32".parse::<IpNet>().unwrap(),
            "10.1.0.0/16".parse().unwrap()
        ]
    );
    assert_eq!(agents.outbound.extra_ports, vec![11434]);
    // Zero is clamped to the least that works.
    assert_eq!(
        (
            agents.request_timeout,
            agents.max_answer,
            agents.max_concurrent
        ),
        (Duration::from_secs(5), Duration::from_secs(1), 8)
    );
    // Each allowlist stays with its own guard.
    assert!(runtime.outbound.allow_cidrs.is_empty() && runtime.outbound.extra_ports.is_empty());
    for bad in [
        ("CONCLAVE_AGENT_ALLOW_CIDRS", "10.0.0.0/33"),
        ("CONCLAVE_AGENT_ALLOW_PORTS", "70000"),
        ("CONCLAVE_AGENT_MAX_CONCURRENT", "many"),
    ] {
        assert!(Config::load(None, vars(&[bad])).is_err(), "{bad:?}");
    }
}

/// Parsed once: durations, caps, versions, the master key and the backend come out typed, with
/// the clamps applied here and nowhere else.
#[test]
fn the_runtime_configuration_is_typed() {
    use super::{DatabaseUrl, RuntimeConfig};
    use std::time::Duration;
    let c = RuntimeConfig::try_from(
        Config::load(
            None,
            vars(&[
                ("CONCLAVE_MIN_CLIENT_VERSION", "1.2.0"),
                (
                    "CONCLAVE_MASTER_KEY",
                    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
                ),
                ("CONCLAVE_DATABASE_URL", "postgres://u:pw@db/conclave"),
                ("CONCLAVE_PUBLIC_URL", "https://chat.example/"),
                ("CONCLAVE_SESSION__IDLE_HOURS", "2"),
                ("CONCLAVE_GATEWAY__HEARTBEAT_INTERVAL_MS", "10"),
                ("CONCLAVE_RETENTION__INTERVAL_SECS", "0"),
                ("CONCLAVE_RATE_LIMITS", "off"),
                ("CONCLAVE_CACHE__TTL_MS", "250"),
                ("CONCLAVE_CACHE__MAX_ENTRIES", "1000"),
                ("CONCLAVE_GATEWAY__WRITE_COALESCE_US", "0"),
            ]),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(c.min_client_version, Some(semver::Version::new(1, 2, 0)));
    assert!(c.secrets.master_key.is_some());
    assert_eq!(
        c.database,
        DatabaseUrl::Postgres("postgres://u:pw@db/conclave".into())
    );
    assert!(
        !format!("{:?}", c.database).contains("pw"),
        "no password in logs"
    );
    assert_eq!(c.public_url.as_deref(), Some("https://chat.example"));
    assert_eq!(c.auth.session_idle, chrono::Duration::hours(2));
    assert_eq!(c.auth.session_absolute, chrono::Duration::days(30));
    assert_eq!(c.gateway.heartbeat_interval, Duration::from_secs(1));
    assert_eq!(c.gateway.resume_window, Duration::from_secs(300));
    assert_eq!(c.retention.interval, Duration::from_secs(1));
    assert_eq!(c.retention.audit_retention_floor_days, 30);
    assert_eq!(c.body_timeout, Duration::from_secs(30));
    assert_eq!(c.connections.header_read_timeout, Duration::from_secs(10));
    assert_eq!(c.connections.max_connections_per_ip, usize::MAX, "lifted");
    assert!(!c.rate_limits_on && !c.gateway.limits_on);
    assert_eq!(c.cache.ttl, Duration::from_millis(250));
    assert_eq!(c.cache.max_entries, 1000);
    assert_eq!(c.gateway.write_coalesce, Duration::ZERO, "writes at once");

    let defaults = RuntimeConfig::try_from(Config::default()).unwrap();
    assert!(matches!(defaults.database, DatabaseUrl::Sqlite(_)));
    assert_eq!(
        defaults.public_url, None,
        "the bound address, known at start"
    );
    assert_eq!(defaults.connections.max_connections_per_ip, 256);
    assert_eq!(
        defaults.cache,
        conclave_core::cache::CacheSettings::default()
    );
    assert_eq!(defaults.cache.ttl, Duration::from_secs(5));
    assert_eq!(defaults.gateway.write_coalesce, Duration::from_millis(4));
    // The runtime default is made from the section's defaults: written once.
    let (built, plain) = (&defaults.gateway, super::GatewayConfig::default());
    assert_eq!(format!("{built:?}"), format!("{plain:?}"));
    assert_eq!(plain.heartbeat_interval, Duration::from_secs(30));
    assert_eq!(plain.resume_window, Duration::from_secs(300));
    assert_eq!(
        (plain.max_connections_per_user, plain.max_connections_per_ip),
        (10, 200)
    );
    assert_eq!(
        (plain.frames_per_minute, plain.frame_max_bytes),
        (120, 65_536)
    );
    for (name, value, problem) in [
        (
            "CONCLAVE_DATABASE_URL",
            "mysql://db",
            "database_url must start with",
        ),
        (
            "CONCLAVE_MASTER_KEY",
            "not base64!",
            "the master key must be base64",
        ),
        ("CONCLAVE_MIN_CLIENT_VERSION", "one", "min_client_version"),
    ] {
        let err = Config::load(None, vars(&[(name, value)]))
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.contains(problem), "{name}: {err}");
    }
    assert!(
        Config::load(None, vars(&[("CONCLAVE_METRICS_LISTEN", "127.0.0.1:9000")])).is_err(),
        "metrics_listen was never served and is gone"
    );
}

#[test]
fn file_settings_are_checked() {
    // Script-running types cannot be allowed, whatever is listed.
    let c = Config::load(
        None,
        vars(&[("CONCLAVE_FILES__ALLOWED_TYPES", "image/png,image/svg+xml")]),
    )
    .unwrap();
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("image/svg+xml"), "{e}");
    // S3 needs a bucket; its secret is never quoted.
    let c = Config::load(
        None,
        vars(&[
            ("CONCLAVE_FILES__STORAGE", "s3"),
            ("CONCLAVE_FILES__S3_SECRET_ACCESS_KEY", "very-secret-s3-key"),
        ]),
    )
    .unwrap();
    let e = c.validate().unwrap_err().to_string();
    assert!(
        e.contains("files.s3_bucket") && !e.contains("very-secret-s3-key"),
        "{e}"
    );
    // A signed URL lives at most a day; production refuses a plain-HTTP S3 endpoint.
    let c = Config::load(None, vars(&[("CONCLAVE_FILES__URL_TTL_SECS", "90000")])).unwrap();
    assert!(c
        .validate()
        .unwrap_err()
        .to_string()
        .contains("url_ttl_secs"));
    let s3 = [
        ("CONCLAVE_FILES__STORAGE", "s3"),
        ("CONCLAVE_FILES__S3_BUCKET", "b"),
        ("CONCLAVE_FILES__S3_ALLOW_HTTP", "true"),
    ];
    let e = production(&s3).unwrap_err().to_string();
    assert!(e.contains("s3_allow_http"), "{e}");
    assert!(production(&s3[..2]).is_ok());
    // The defaults: 100 MiB, 1 h URLs.
    let c = Config::load(None, vars(&[])).unwrap();
    assert_eq!(c.files.max_upload_bytes, 100 * 1024 * 1024);
    assert_eq!(c.files.url_ttl_secs, 3600);
}

#[test]
fn sso_sections_refuse_what_cannot_be_safe() {
    let problems = |toml: &str, env: &[(&str, &str)]| {
        from_file(toml, env)
            .and_then(|c| c.validate())
            .map_err(|e| e.to_string())
            .err()
            .unwrap_or_default()
    };
    let host = |extra: &str| {
        format!(
            "[[host_jwt]]\nid = \"acme\"\nissuer = \"https://acme.example\"\naudience = \"chat\"\n{extra}\n"
        )
    };
    let secret = "secret = \"a host secret of thirty-two bytes or more\"";
    assert_eq!(
        problems(&host(&format!("algorithms = [\"HS256\"]\n{secret}")), &[]),
        ""
    );
    let confused = problems(&host(&format!("algorithms = [\"RS256\"]\n{secret}")), &[]);
    assert!(confused.contains("HS256/384/512 only"), "{confused}");
    let hmac_by_key = problems(
        &host("algorithms = [\"HS256\"]\npublic_key = \"-----BEGIN PUBLIC KEY-----\""),
        &[],
    );
    assert!(hmac_by_key.contains("algorithm confusion"), "{hmac_by_key}");
    let none = problems(&host(&format!("algorithms = [\"none\"]\n{secret}")), &[]);
    assert!(none.contains("is not accepted"), "{none}");
    let short = problems(&host("algorithms = [\"HS256\"]\nsecret = \"short\""), &[]);
    assert!(
        short.contains("at least 32 bytes") && !short.contains("\"short\""),
        "{short}"
    );
    let two = problems(
        &host(&format!(
            "algorithms = [\"HS256\"]\n{secret}\njwks_url = \"https://a.example/j\""
        )),
        &[],
    );
    assert!(two.contains("exactly one of"), "{two}");
    let mixed = problems(
        &host("algorithms = [\"RS256\", \"ES256\"]\njwks_url = \"https://a.example/j\""),
        &[],
    );
    assert!(mixed.contains("all be of one kind"), "{mixed}");
    let oidc = "[[oidc.providers]]\nid = \"corp\"\nissuer = \"http://sso.corp.example\"\nclient_id = \"c\"\n";
    assert!(problems(oidc, &[]).contains("must be an https URL"));
    let insecure = format!("{oidc}allow_insecure_http = true\n");
    assert_eq!(problems(&insecure, &[]), "");
    assert!(problems(&insecure, &[("CONCLAVE_ENV", "production")])
        .contains("production refuses allow_insecure_http"));
    let owner = format!(
        "{insecure}roles = [{{ claim = \"g\", value = \"x\", org = \"{}\", role = \"owner\" }}]\n",
        uuid::Uuid::nil()
    );
    assert!(problems(&owner, &[]).contains("cannot make owners"));
    let entra = "[[oidc.providers]]\nid = \"entra\"\npreset = \"microsoft\"\nissuer = \"https://login.microsoftonline.com/common/v2.0\"\nclient_id = \"c\"\n";
    assert!(problems(entra, &[]).contains("one tenant's issuer"));
}

/// AUTH-10 presets: Google fills in its issuer and name; Microsoft Entra takes one tenant's
/// issuer and is named "Microsoft"; a generic provider is named by its id and needs an issuer.
#[test]
fn oidc_presets_fill_in_issuers_and_names() {
    let c = from_file(
        "[[oidc.providers]]\nid = \"google\"\npreset = \"google\"\nclient_id = \"g\"\n\
         [[oidc.providers]]\nid = \"entra\"\npreset = \"microsoft\"\n\
         issuer = \"https://login.microsoftonline.com/72f988bf-0000-0000-0000-2d7cd011db47/v2.0\"\nclient_id = \"m\"\n\
         [[oidc.providers]]\nid = \"corp\"\nissuer = \"https://sso.corp.example/realms/main\"\nclient_id = \"c\"\n",
        &[],
    )
    .unwrap();
    let oidc = RuntimeConfig::try_from(c).unwrap().oidc;
    let seen: Vec<(&str, &str, &str)> = oidc
        .iter()
        .map(|p| (p.id.as_str(), p.name.as_str(), p.issuer.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            ("google", "Google", "https://accounts.google.com"),
            (
                "entra",
                "Microsoft",
                "https://login.microsoftonline.com/72f988bf-0000-0000-0000-2d7cd011db47/v2.0"
            ),
            ("corp", "corp", "https://sso.corp.example/realms/main"),
        ]
    );
    assert!(oidc
        .iter()
        .all(|p| p.scopes == ["openid", "email", "profile"]
            && !p.link_existing
            && !p.create_users));
    let missing = from_file(
        "[[oidc.providers]]\nid = \"entra\"\npreset = \"microsoft\"\nclient_id = \"m\"\n",
        &[],
    )
    .and_then(|c| c.validate())
    .unwrap_err()
    .to_string();
    assert!(missing.contains("issuer is required"), "{missing}");
}
