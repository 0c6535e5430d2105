//! The OAuth authorization server's rows (MCP-2). A code is consumed and a refresh token
//! rotated by one conditional `UPDATE … WHERE used = false RETURNING` in the transaction that
//! issues the new tokens: of many concurrent redemptions exactly one changes the row (on
//! PostgreSQL the others wait for its row lock and then find it used; SQLite has one writer).

use super::*;
use conclave_core::credential::Scope;
use conclave_core::oauth::*;
use conclave_core::store::oauth::{CodeCheck, RefreshCheck};

fn json_strings(list: &[String]) -> StoreResult<String> {
    serde_json::to_string(list).map_err(|e| StoreError::Backend(format!("encoding a list: {e}")))
}

fn strings(row: &Row, col: &str) -> StoreResult<Vec<String>> {
    let text: String = get(row, col)?;
    serde_json::from_str(&text).map_err(|e| StoreError::Backend(format!("column {col}: {e}")))
}

fn scopes_text(scopes: &[Scope]) -> StoreResult<String> {
    let names: Vec<String> = scopes.iter().map(|s| s.as_str().to_owned()).collect();
    json_strings(&names)
}

fn scopes(row: &Row) -> StoreResult<Vec<Scope>> {
    strings(row, "scopes")?
        .iter()
        .map(|s| {
            Scope::parse(s)
                .map_err(|_| StoreError::Backend(format!("column scopes: unknown value {s:?}")))
        })
        .collect()
}

fn client_ref(row: &Row) -> StoreResult<ClientRef> {
    Ok(ClientRef {
        client_id: get(row, "client_id")?,
        registered: get::<Option<uuid::Uuid>>(row, "registered_client")?.map(OAuthClientId),
        name: get(row, "client_name")?,
    })
}

const CLIENT_COLS: &str =
    "id, org_id, name, redirect_uris, public, secret_hash, secret_hint, created_by, created_at";

const CLIENTS: Records<OAuthClient> = Records::new("oauth_clients", CLIENT_COLS, client_from_row);

fn client_from_row(row: &Row) -> StoreResult<OAuthClient> {
    Ok(from_columns!(row, OAuthClient {
        name, public, secret_hash, secret_hint, created_at;
        id: OAuthClientId(get(row, "id")?),
        org_id: OrgId(get(row, "org_id")?),
        redirect_uris: strings(row, "redirect_uris")?,
        created_by: get::<Option<uuid::Uuid>>(row, "created_by")?.map(UserId),
    }))
}

const REQUEST_COLS: &str = "id, client_id, registered_client, client_name, redirect_uri, \
     scopes, state, code_challenge, resource, created_at, expires_at";

const REQUESTS: Records<AuthorizationRequest> =
    Records::new("oauth_requests", REQUEST_COLS, request_from_row);

fn request_from_row(row: &Row) -> StoreResult<AuthorizationRequest> {
    Ok(from_columns!(row, AuthorizationRequest {
        redirect_uri, state, code_challenge, resource, created_at, expires_at;
        id: OAuthRequestId(get(row, "id")?),
        client: client_ref(row)?,
        scopes: scopes(row)?,
    }))
}

const CODE_COLS: &str = "id, client_id, registered_client, client_name, user_id, org_id, \
     scopes, redirect_uri, code_challenge, resource, created_at, expires_at";

fn code_from_row(row: &Row) -> StoreResult<AuthorizationCode> {
    Ok(from_columns!(row, AuthorizationCode {
        id, redirect_uri, code_challenge, resource, created_at, expires_at;
        client: client_ref(row)?,
        user_id: UserId(get(row, "user_id")?),
        org_id: OrgId(get(row, "org_id")?),
        scopes: scopes(row)?,
    }))
}

const GRANT_COLS: &str = "g.id, g.user_id, g.org_id, g.client_id, g.registered_client, \
     g.client_name, g.scopes, g.resource, g.created_at, g.revoked_at";

/// [`GRANT_COLS`] unqualified, for `RETURNING`.
const GRANT_RETURNING: &str = "id, user_id, org_id, client_id, registered_client, \
     client_name, scopes, resource, created_at, revoked_at";

const GRANTS: Records<Grant> = Records::new("oauth_grants g", GRANT_COLS, grant_from_row);

fn grant_from_row(row: &Row) -> StoreResult<Grant> {
    Ok(from_columns!(row, Grant {
        client_id, client_name, resource, created_at, revoked_at;
        id: GrantId(get(row, "id")?),
        user_id: UserId(get(row, "user_id")?),
        org_id: OrgId(get(row, "org_id")?),
        scopes: scopes(row)?,
        registered_client: get::<Option<uuid::Uuid>>(row, "registered_client")?.map(OAuthClientId),
    }))
}

/// Stores the access and refresh token of `grant` inside `conn`'s transaction, and deletes
/// the grant's tokens that have expired: a grant keeps only the rows that can still be used
/// (or, for refresh tokens used already, still betray a replay), however often it is renewed.
async fn insert_tokens(
    conn: &mut Conn,
    grant: GrantId,
    tokens: &NewTokens,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    for (table, t) in [
        ("oauth_access_tokens", &tokens.access),
        ("oauth_refresh_tokens", &tokens.refresh),
    ] {
        sqlx::query(&format!(
            "DELETE FROM {table} WHERE grant_id = $1 AND expires_at <= $2"
        ))
        .bind(grant.0)
        .bind(ts(now))
        .run(&mut *conn)
        .await?;
        sqlx::query(&format!(
            "INSERT INTO {table} (id, grant_id, token_hash, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)"
        ))
        .bind(t.id)
        .bind(grant.0)
        .bind(&t.hash[..])
        .bind(ts(now))
        .bind(ts(t.expires_at))
        .run(&mut *conn)
        .await?;
    }
    Ok(())
}

async fn insert_grant(conn: &mut Conn, g: &Grant) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO oauth_grants (id, user_id, org_id, client_id, registered_client, \
         client_name, scopes, resource, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(g.id.0)
    .bind(g.user_id.0)
    .bind(g.org_id.0)
    .bind(g.client_id.as_str())
    .bind(g.registered_client.map(|c| c.0))
    .bind(g.client_name.as_str())
    .bind(scopes_text(&g.scopes)?)
    .bind(g.resource.as_str())
    .bind(ts(g.created_at))
    .run(&mut *conn)
    .await?;
    Ok(())
}

/// The live (not revoked) grant `id`, read inside `conn`'s transaction.
async fn live_grant(conn: &mut Conn, id: uuid::Uuid) -> StoreResult<Option<Grant>> {
    let rest = "WHERE g.id = $1 AND g.revoked_at IS NULL";
    GRANTS.opt(&mut *conn, rest, id).await
}

/// The live grants whose `col` (`user_id` or `org_id`) is `id`, oldest first.
async fn live_grants_of(s: &Backend, col: &str, id: uuid::Uuid) -> StoreResult<Vec<Grant>> {
    let rest = format!("WHERE g.{col} = $1 AND g.revoked_at IS NULL ORDER BY g.id");
    GRANTS.all(s.reader(), &rest, id).await
}

#[async_trait]
impl OAuthStore for Backend {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn create_oauth_client(&self, c: &OAuthClient, audit: &[AuditEntry]) -> StoreResult<()> {
        sqlx::query(&format!(
            "INSERT INTO oauth_clients ({CLIENT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .bind(c.id.0)
        .bind(c.org_id.0)
        .bind(c.name.as_str())
        .bind(json_strings(&c.redirect_uris)?)
        .bind(c.public)
        .bind(c.secret_hash.as_deref())
        .bind(c.secret_hint.as_deref())
        .bind(c.created_by.map(|u| u.0))
        .bind(ts(c.created_at))
        .change_audited(self, audit)
        .await
    }

    async fn oauth_client(&self, id: OAuthClientId) -> StoreResult<OAuthClient> {
        CLIENTS.one(self.reader(), "WHERE id = $1", id.0).await
    }

    async fn oauth_clients(&self, org: OrgId) -> StoreResult<Vec<OAuthClient>> {
        let rest = "WHERE org_id = $1 ORDER BY id";
        CLIENTS.all(self.reader(), rest, org.0).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn delete_oauth_client(
        &self,
        org: OrgId,
        id: OAuthClientId,
        audit: &[AuditEntry],
    ) -> StoreResult<()> {
        delete_keyed(
            self,
            "oauth_clients",
            [("id", id.0), ("org_id", org.0)],
            audit,
        )
        .await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn create_oauth_request(&self, r: &AuthorizationRequest) -> StoreResult<()> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        for table in ["oauth_requests", "oauth_codes"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE expires_at < $1"))
                .bind(ts(r.created_at))
                .run(&mut *tx)
                .await?;
        }
        sqlx::query(&format!(
            "INSERT INTO oauth_requests ({REQUEST_COLS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ))
        .bind(r.id.0)
        .bind(r.client.client_id.as_str())
        .bind(r.client.registered.map(|c| c.0))
        .bind(r.client.name.as_str())
        .bind(r.redirect_uri.as_str())
        .bind(scopes_text(&r.scopes)?)
        .bind(r.state.as_deref())
        .bind(r.code_challenge.as_str())
        .bind(r.resource.as_str())
        .bind(ts(r.created_at))
        .bind(ts(r.expires_at))
        .run(&mut *tx)
        .await?;
        tx.commit().await.map_err(db)
    }

    async fn oauth_request(&self, id: OAuthRequestId) -> StoreResult<AuthorizationRequest> {
        REQUESTS.one(self.reader(), "WHERE id = $1", id.0).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn take_oauth_request(
        &self,
        id: OAuthRequestId,
        now: DateTime<Utc>,
    ) -> StoreResult<AuthorizationRequest> {
        sqlx::query(&format!(
            "DELETE FROM oauth_requests WHERE id = $1 AND expires_at > $2 RETURNING {REQUEST_COLS}"
        ))
        .bind(id.0)
        .bind(ts(now))
        .one(self.writer(), request_from_row)
        .await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn create_oauth_code(&self, c: &AuthorizationCode, hash: &[u8]) -> StoreResult<()> {
        sqlx::query(&format!(
            "INSERT INTO oauth_codes ({CODE_COLS}, code_hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        ))
        .bind(c.id)
        .bind(c.client.client_id.as_str())
        .bind(c.client.registered.map(|r| r.0))
        .bind(c.client.name.as_str())
        .bind(c.user_id.0)
        .bind(c.org_id.0)
        .bind(scopes_text(&c.scopes)?)
        .bind(c.redirect_uri.as_str())
        .bind(c.code_challenge.as_str())
        .bind(c.resource.as_str())
        .bind(ts(c.created_at))
        .bind(ts(c.expires_at))
        .bind(hash)
        .run(self.writer())
        .await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn exchange_oauth_code(
        &self,
        hash: &[u8],
        now: DateTime<Utc>,
        check: CodeCheck<'_>,
        tokens: &NewTokens,
    ) -> StoreResult<CodeExchange> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        let consumed = sqlx::query(&format!(
            "UPDATE oauth_codes SET used = true WHERE code_hash = $1 AND used = false \
             RETURNING {CODE_COLS}"
        ))
        .bind(hash)
        .opt(&mut *tx, code_from_row)
        .await?;
        let Some(code) = consumed else {
            let earlier: Option<Option<uuid::Uuid>> =
                sqlx::query("SELECT grant_id FROM oauth_codes WHERE code_hash = $1")
                    .bind(hash)
                    .opt(&mut *tx, |row| get(row, "grant_id"))
                    .await?;
            tx.commit().await.map_err(db)?;
            return Ok(match earlier {
                Some(grant) => CodeExchange::Replayed(grant.map(GrantId)),
                None => CodeExchange::Invalid,
            });
        };
        let grant = if code.expires_at > now {
            check(&code)
        } else {
            None
        };
        let Some((grant, audit)) = grant else {
            tx.commit().await.map_err(db)?;
            return Ok(CodeExchange::Invalid);
        };
        insert_grant(&mut tx, &grant).await?;
        insert_tokens(&mut tx, grant.id, tokens, now).await?;
        sqlx::query("UPDATE oauth_codes SET grant_id = $2 WHERE id = $1")
            .bind(code.id)
            .bind(grant.id.0)
            .change(&mut *tx)
            .await?;
        commit_audited(tx, self, &audit).await?;
        Ok(CodeExchange::Issued(grant))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn rotate_oauth_refresh(
        &self,
        hash: &[u8],
        now: DateTime<Utc>,
        check: RefreshCheck<'_>,
        tokens: &NewTokens,
    ) -> StoreResult<RefreshRotation> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        let consumed: Option<(uuid::Uuid, DateTime<Utc>)> = sqlx::query(
            "UPDATE oauth_refresh_tokens SET used = true WHERE token_hash = $1 AND used = false \
             RETURNING grant_id, expires_at",
        )
        .bind(hash)
        .opt(&mut *tx, |row| {
            Ok((get(row, "grant_id")?, get(row, "expires_at")?))
        })
        .await?;
        let Some((grant_id, expires_at)) = consumed else {
            let earlier: Option<uuid::Uuid> =
                sqlx::query("SELECT grant_id FROM oauth_refresh_tokens WHERE token_hash = $1")
                    .bind(hash)
                    .opt(&mut *tx, |row| get(row, "grant_id"))
                    .await?;
            tx.commit().await.map_err(db)?;
            return Ok(earlier.map_or(RefreshRotation::Invalid, |g| {
                RefreshRotation::Reused(GrantId(g))
            }));
        };
        let grant = live_grant(&mut tx, grant_id).await?;
        let Some(grant) = grant.filter(|g| expires_at > now && check(g)) else {
            tx.commit().await.map_err(db)?;
            return Ok(RefreshRotation::Invalid);
        };
        insert_tokens(&mut tx, grant.id, tokens, now).await?;
        tx.commit().await.map_err(db)?;
        Ok(RefreshRotation::Rotated(grant))
    }

    async fn oauth_access_token(
        &self,
        hash: &[u8],
    ) -> StoreResult<Option<(Grant, uuid::Uuid, DateTime<Utc>)>> {
        sqlx::query(&format!(
            "SELECT {GRANT_COLS}, t.id AS token_id, t.expires_at AS token_expires_at \
             FROM oauth_access_tokens t JOIN oauth_grants g ON g.id = t.grant_id \
             WHERE t.token_hash = $1 AND g.revoked_at IS NULL"
        ))
        .bind(hash)
        .opt(self.reader(), |row| {
            Ok((
                grant_from_row(row)?,
                get(row, "token_id")?,
                get(row, "token_expires_at")?,
            ))
        })
        .await
    }

    async fn oauth_refresh_grant(&self, hash: &[u8]) -> StoreResult<Option<Grant>> {
        let rest = "JOIN oauth_refresh_tokens t ON t.grant_id = g.id \
                    WHERE t.token_hash = $1 AND g.revoked_at IS NULL";
        GRANTS.opt(self.reader(), rest, hash).await
    }

    async fn delete_oauth_access_token(&self, hash: &[u8]) -> StoreResult<bool> {
        let n = sqlx::query("DELETE FROM oauth_access_tokens WHERE token_hash = $1")
            .bind(hash)
            .run(self.writer())
            .await?;
        Ok(n > 0)
    }

    async fn oauth_grant(&self, id: GrantId) -> StoreResult<Grant> {
        GRANTS.one(self.reader(), "WHERE g.id = $1", id.0).await
    }

    async fn user_grants(&self, user: UserId) -> StoreResult<Vec<Grant>> {
        live_grants_of(self, "user_id", user.0).await
    }

    async fn org_grants(&self, org: OrgId) -> StoreResult<Vec<Grant>> {
        live_grants_of(self, "org_id", org.0).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn revoke_oauth_grant(
        &self,
        id: GrantId,
        at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> StoreResult<Grant> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        let grant = sqlx::query(&format!(
            "UPDATE oauth_grants SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL \
             RETURNING {GRANT_RETURNING}"
        ))
        .bind(id.0)
        .bind(ts(at))
        .one(&mut *tx, grant_from_row)
        .await?;
        for table in ["oauth_access_tokens", "oauth_refresh_tokens"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE grant_id = $1"))
                .bind(id.0)
                .run(&mut *tx)
                .await?;
        }
        commit_audited(tx, self, audit).await?;
        Ok(grant)
    }
}
