//! `conclave`: the server binary. Thin: parse the command line, load config, build, run.

use clap::{Parser, Subcommand};
use conclave_core::{Clock, SystemClock};
use conclave_server::config::{Config, Environment};
use conclave_server::keyring::{run_keys_command, KeysCommand};
use conclave_server::Application;
use secrecy::ExposeSecret;
use std::path::PathBuf;
use std::sync::Arc;

/// mimalloc instead of glibc's malloc: a profile of the send path found glibc's allocator
/// (`_int_malloc`, `unlink_chunk`, `_int_free`, `malloc_consolidate`…) at about 14 % of the
/// server's CPU (BENCHMARKS.md). The server binary only; tests keep the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "conclave",
    version,
    about = "Conclave: a self-hosted, secure, real-time chat server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (defaults: 127.0.0.1:8080, SQLite in ./conclave-data).
    Serve {
        /// A TOML configuration file; CONCLAVE_* environment variables override it.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// The audit log (DATA-4).
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Accounts: `reset-password <username>` prints a one-time link (an hour) that sets the
    /// account's password, and ends every session of the account.
    Users {
        /// A TOML configuration file; CONCLAVE_* environment variables override it.
        #[arg(long, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        action: UsersAction,
    },
    /// The key ring that seals secrets at rest (TOTP secrets): list, rotate, retire keys.
    /// Uses the same configuration as `serve`; safe while servers run.
    Keys {
        /// A TOML configuration file; CONCLAVE_* environment variables override it.
        #[arg(long, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        action: KeysAction,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Verify every audit chain; exits 0 when intact, 1 when a row was altered, inserted or
    /// removed (the first bad row is printed), 2 on a usage or configuration error.
    Verify {
        #[arg(long)]
        config: Option<PathBuf>,
        /// A row hash recorded elsewhere (hex, e.g. a signed head from the logs): also fail
        /// unless that row is still in a chain, which shows a truncated tail.
        #[arg(long)]
        expect_head: Option<String>,
    },
}

/// `conclave audit verify`: prints the report as JSON on stdout.
async fn audit_verify(
    config: Option<PathBuf>,
    expect_head: Option<String>,
) -> std::process::ExitCode {
    let config = match load_config(config.as_deref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let services = match conclave_server::startup::offline_services(&config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("conclave: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    match services.verify_audit(expect_head.as_deref()).await {
        Ok(report) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&report).unwrap_or_default()
            );
            if report.ok {
                eprintln!(
                    "audit log intact: {} rows in {} chains",
                    report.checked,
                    report.chains.len()
                );
                std::process::ExitCode::SUCCESS
            } else {
                eprintln!(
                    "AUDIT LOG TAMPERED: {:?} at row {}",
                    report.problem,
                    report
                        .first_bad
                        .map_or_else(|| "(none named)".to_owned(), |id| id.to_string())
                );
                std::process::ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("conclave: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

#[derive(Subcommand)]
enum UsersAction {
    /// Print a one-time link (an hour) to set the password of account `username`; its
    /// sessions end (a running server's sockets and caches notice within a minute).
    ResetPassword { username: String },
}

/// `conclave users reset-password <username>`: the link on stdout, what happened on stderr.
async fn users_command(config: Option<PathBuf>, action: UsersAction) -> std::process::ExitCode {
    let config = match load_config(config.as_deref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let UsersAction::ResetPassword { username } = action;
    let Ok(username) = conclave_core::types::Username::parse(&username) else {
        eprintln!("conclave: {username:?} is not a username");
        return std::process::ExitCode::from(2);
    };
    let services = match conclave_server::startup::offline_services(&config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("conclave: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let operator =
        conclave_core::service::ServerAdmin::command_line("conclave users reset-password");
    match services.admin_reset_password_of(&operator, &username).await {
        Ok(link) => {
            println!(
                "{}",
                conclave_server::http::admin::reset_url(&config.public_url(), &link)
            );
            eprintln!(
                "password reset link for {username} (valid until {}); their sessions have ended",
                link.expires_at.to_rfc3339()
            );
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("conclave: {e}");
            std::process::ExitCode::from(1)
        }
    }
}

#[derive(Subcommand)]
enum KeysAction {
    /// Every key: id, created, retired, whether current, how many secrets it seals.
    List,
    /// Add a new current key and re-encrypt every stored secret under it (safe to re-run).
    Rotate,
    /// Retire a key: refused while it is current or any secret still uses it.
    Retire {
        /// The key id (see `conclave keys list`).
        id: i32,
    },
}

fn load_config(path: Option<&std::path::Path>) -> Result<Config, std::process::ExitCode> {
    Config::load_from_env(path).map_err(|e| {
        eprintln!("conclave: {e}");
        std::process::ExitCode::from(2)
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = term => {} }
    tracing::info!("shutting down: no new connections, draining in-flight requests");
}

fn init_tracing(env: Environment) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,sqlx=warn".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if env == Environment::Production {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Audit {
            command:
                AuditCommand::Verify {
                    config,
                    expect_head,
                },
        } => audit_verify(config, expect_head).await,
        Command::Users { config, action } => users_command(config, action).await,
        Command::Keys { config, action } => {
            let config = match load_config(config.as_deref()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            init_tracing(config.env);
            let command = match action {
                KeysAction::List => KeysCommand::List,
                KeysAction::Rotate => KeysCommand::Rotate,
                KeysAction::Retire { id } => KeysCommand::Retire { id },
            };
            match run_keys_command(&config, command, SystemClock.now()).await {
                Ok(out) => {
                    print!("{out}");
                    std::process::ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("conclave: {e}");
                    std::process::ExitCode::from(1)
                }
            }
        }
        Command::Serve { config } => {
            let config = match load_config(config.as_deref()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            init_tracing(config.env);
            let app = match Application::build(config, Arc::new(SystemClock)).await {
                Ok(app) => app,
                Err(e) => {
                    eprintln!("conclave: {e}");
                    return std::process::ExitCode::from(1);
                }
            };
            if let Some(link) = app.bootstrap_link() {
                // Straight to stderr, never through the log pipeline.
                eprintln!(
                    "\nNo server admin exists yet. Open this link once to create one:\n\n    {}\n",
                    link.expose_secret()
                );
            }
            tracing::info!(port = app.port(), "conclave is listening");
            if let Err(e) = app.run_until(shutdown_signal()).await {
                eprintln!("conclave: {e}");
                return std::process::ExitCode::from(1);
            }
            std::process::ExitCode::SUCCESS
        }
    }
}
