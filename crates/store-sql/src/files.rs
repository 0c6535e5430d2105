//! Uploaded files and each user's byte usage (DATA-1), and files as attachments. The quota
//! check and the increment are one conditional `UPDATE`: SQLite runs it under its single
//! writer, PostgreSQL re-checks the `WHERE` on the locked row, so parallel uploads never pass
//! the quota together. Claiming attachments is one conditional `UPDATE` the same way, so of two
//! messages claiming a file exactly one gets it. Removing files (with a message, a
//! conversation, an org, by retention or erasure) happens in the transaction of that change and
//! gives each uploader their bytes back there; the change answers the storage keys, whose blobs
//! the service deletes after commit.

use super::*;
use conclave_core::files::FilesHeld;
use std::collections::{BTreeMap, HashMap};

const FILE_COLS: &str = "id, conversation_id, uploader_id, storage_key, name, mime, size, \
                         created_at, message_id";

/// The columns [`info_from_row`] reads.
const INFO_COLS: &str = "id, size, mime, name";

/// What a `DELETE FROM files …` hands [`remove_files`].
pub(super) const REMOVED_FILE: &str = "RETURNING uploader_id, size, storage_key";

fn bytes_i64(n: u64) -> StoreResult<i64> {
    i64::try_from(n).map_err(|_| StoreError::Backend("byte count out of range".into()))
}

fn info_from_row(row: &Row) -> StoreResult<FileInfo> {
    let size: i64 = get(row, "size")?;
    Ok(FileInfo {
        id: FileId(get(row, "id")?),
        size: u64::try_from(size).unwrap_or(0),
        mime: get(row, "mime")?,
        name: FileName::from_stored(get(row, "name")?),
    })
}

fn file_from_row(row: &Row) -> StoreResult<StoredFile> {
    Ok(from_columns!(row, StoredFile {
        storage_key, created_at;
        info: info_from_row(row)?,
        conversation_id: ConversationId(get(row, "conversation_id")?),
        uploader_id: UserId(get(row, "uploader_id")?),
        message_id: get::<Option<uuid::Uuid>>(row, "message_id")?.map(MessageId),
    }))
}

/// Gives `user` back `bytes` of their usage (never below zero).
async fn release_usage<'c>(on: impl Executor<'c>, user: UserId, bytes: i64) -> StoreResult<()> {
    sqlx::query(
        "UPDATE file_usage SET used_bytes = CASE WHEN used_bytes > $2 \
         THEN used_bytes - $2 ELSE 0 END WHERE user_id = $1",
    )
    .bind(user.0)
    .bind(bytes)
    .run(on)
    .await?;
    Ok(())
}

/// The files attached to each of `messages`, filled in with one query (a deleted message has
/// none), ordered by id.
pub(super) async fn with_attachments<'c>(
    on: impl Executor<'c>,
    mut messages: Vec<Message>,
) -> StoreResult<Vec<Message>> {
    let live: Vec<uuid::Uuid> = messages
        .iter()
        .filter(|m| m.deleted_at.is_none())
        .map(|m| m.id.0)
        .collect();
    let select = |list: &str| {
        format!(
            "SELECT {INFO_COLS}, message_id FROM files WHERE message_id IN ({list}) ORDER BY id"
        )
    };
    let info = |r: &Row| Ok((MessageId(get(r, "message_id")?), info_from_row(r)?));
    let rows = select_in(on, live.into_iter(), select, info).await?;
    let mut by_message: HashMap<MessageId, Vec<FileInfo>> = HashMap::new();
    for (message, info) in rows {
        by_message.entry(message).or_default().push(info);
    }
    for m in &mut messages {
        if let Some(files) = by_message.remove(&m.id) {
            m.attachments = files;
        }
    }
    Ok(messages)
}

/// Claims `msg.attachments` for `msg`: only the author's own uploads to its conversation that
/// no message claimed yet, all in one conditional `UPDATE`. Their details ordered by id, or
/// `None` when not every one could be claimed (the caller rolls back).
pub(super) async fn claim_files(
    conn: &mut Conn,
    msg: &NewMessage,
) -> StoreResult<Option<Vec<FileInfo>>> {
    if msg.attachments.is_empty() {
        return Ok(Some(Vec::new()));
    }
    let sql = format!(
        "UPDATE files SET message_id = $1 WHERE message_id IS NULL AND uploader_id = $2 \
         AND conversation_id = $3 AND id IN ({}) RETURNING {INFO_COLS}",
        placeholders(4, msg.attachments.len())
    );
    let mut q = sqlx::query(&sql)
        .bind(msg.id.0)
        .bind(msg.author_id.0)
        .bind(msg.conversation_id.0);
    for f in &msg.attachments {
        q = q.bind(f.0);
    }
    let mut claimed = q.all(&mut *conn, info_from_row).await?;
    if claimed.len() != msg.attachments.len() {
        return Ok(None);
    }
    claimed.sort_by_key(|f| f.id);
    Ok(Some(claimed))
}

/// Deletes the row `id` of `table` (a conversation, or an org) with the files of the
/// conversations it holds (`scope`: their column that names it), in one audited transaction;
/// `NotFound` when there is no such row. Those conversations' rows are locked first, as a send
/// takes its conversation's before the files it claims: both lock in one order, so they cannot
/// deadlock. Their files' rows would go with them anyway; removed here, their bytes are given
/// back and their keys answered.
pub(super) async fn delete_with_files(
    s: &Backend,
    table: &str,
    scope: &str,
    id: uuid::Uuid,
    audit: &[AuditEntry],
) -> StoreResult<FreedBlobs> {
    let mut tx = s.writer().begin().await.map_err(db)?;
    sqlx::query(&format!(
        "UPDATE conversations SET last_seq = last_seq WHERE {scope} = $1"
    ))
    .bind(id)
    .run(&mut *tx)
    .await?;
    let files = format!(
        "DELETE FROM files WHERE conversation_id IN \
         (SELECT id FROM conversations WHERE {scope} = $1) {REMOVED_FILE}"
    );
    let freed = remove_files(&mut tx, sqlx::query(&files).bind(id)).await?;
    // The deliveries about these messages go with them (DATA-5: as a retention purge; an org's
    // own endpoints and deliveries go with the org).
    sqlx::query(&format!(
        "DELETE FROM webhook_deliveries WHERE message_id IN (SELECT m.id FROM messages m \
         JOIN conversations c ON c.id = m.conversation_id WHERE c.{scope} = $1)"
    ))
    .bind(id)
    .run(&mut *tx)
    .await?;
    sqlx::query(&format!("DELETE FROM {table} WHERE id = $1"))
        .bind(id)
        .change(&mut *tx)
        .await?;
    commit_audited(tx, s, audit).await?;
    Ok(freed)
}

/// Runs `delete` (a `DELETE FROM files … {REMOVED_FILE}`), gives each uploader back the bytes of
/// the files it removed, and answers their storage keys.
pub(super) async fn remove_files(conn: &mut Conn, delete: Query<'_>) -> StoreResult<FreedBlobs> {
    let removed = delete
        .all(&mut *conn, |r| {
            Ok((
                UserId(get(r, "uploader_id")?),
                get::<i64>(r, "size")?,
                get::<String>(r, "storage_key")?,
            ))
        })
        .await?;
    // Per uploader, in id order, so concurrent removals lock usage rows in one order.
    let mut bytes: BTreeMap<UserId, i64> = BTreeMap::new();
    let mut keys = Vec::with_capacity(removed.len());
    for (uploader, size, key) in removed {
        *bytes.entry(uploader).or_default() += size;
        keys.push(key);
    }
    for (user, n) in bytes {
        release_usage(&mut *conn, user, n).await?;
    }
    Ok(FreedBlobs(keys))
}

/// Hands the files `from` attached to messages in `org` to `to` (an erased author's messages
/// moved to the org's placeholder author), bytes included.
pub(super) async fn hand_over_files(
    conn: &mut Conn,
    from: UserId,
    to: UserId,
    org: OrgId,
) -> StoreResult<()> {
    let sizes = sqlx::query(
        "UPDATE files SET uploader_id = $2 WHERE uploader_id = $1 AND message_id IS NOT NULL \
         AND conversation_id IN (SELECT id FROM conversations WHERE org_id = $3) RETURNING size",
    )
    .bind(from.0)
    .bind(to.0)
    .bind(org.0)
    .all(&mut *conn, |r| get::<i64>(r, "size"))
    .await?;
    let total: i64 = sizes.iter().sum();
    if total == 0 {
        return Ok(());
    }
    release_usage(&mut *conn, from, total).await?;
    sqlx::query(
        "INSERT INTO file_usage (user_id, used_bytes) VALUES ($1, $2) ON CONFLICT (user_id) \
         DO UPDATE SET used_bytes = file_usage.used_bytes + excluded.used_bytes",
    )
    .bind(to.0)
    .bind(total)
    .run(&mut *conn)
    .await?;
    Ok(())
}

/// Deletes the upload leases `filter` (over `$1`, bound by `bind`) picks and gives each one's
/// bytes back to its uploader, on `conn`; answers (uploader, bytes) of each.
async fn end_leases(
    conn: &mut Conn,
    filter: &str,
    bind: impl for<'q> FnOnce(Query<'q>) -> Query<'q>,
) -> StoreResult<Vec<(UserId, u64)>> {
    let sql = format!("DELETE FROM upload_leases WHERE {filter} RETURNING user_id, bytes");
    let ended = bind(sqlx::query(&sql))
        .all(&mut *conn, |r| {
            Ok((UserId(get(r, "user_id")?), get::<i64>(r, "bytes")?))
        })
        .await?;
    for (user, bytes) in &ended {
        release_usage(&mut *conn, *user, *bytes).await?;
    }
    Ok(ended
        .into_iter()
        .map(|(user, bytes)| (user, u64::try_from(bytes).unwrap_or(0)))
        .collect())
}

#[async_trait]
impl FileStore for Backend {
    #[tracing::instrument(level = "debug", skip(self))]
    async fn reserve_file_bytes(
        &self,
        lease: &UploadLease,
        request: QuotaRequest,
        at: DateTime<Utc>,
    ) -> StoreResult<Reservation> {
        let user = lease.uploader;
        let (so_far, bytes, quota) = (
            bytes_i64(lease.reserved)?,
            bytes_i64(request.bytes)?,
            bytes_i64(request.quota)?,
        );
        let mut tx = self.writer().begin().await.map_err(db)?;
        sqlx::query(
            "INSERT INTO file_usage (user_id, used_bytes) VALUES ($1, 0) \
             ON CONFLICT (user_id) DO NOTHING",
        )
        .bind(user.0)
        .run(&mut *tx)
        .await?;
        let reserved = sqlx::query(
            "UPDATE file_usage SET used_bytes = used_bytes + $2 \
             WHERE user_id = $1 AND used_bytes + $2 <= $3",
        )
        .bind(user.0)
        .bind(bytes)
        .bind(quota)
        .run(&mut *tx)
        .await?
            == 1;
        if !reserved {
            return Ok(Reservation::OverQuota);
        }
        // The lease must still hold what this upload reserved before (an expired one was
        // deleted and its bytes given back).
        let held = if so_far == 0 {
            sqlx::query(
                "INSERT INTO upload_leases (id, user_id, bytes, renewed_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(lease.id)
            .bind(user.0)
            .bind(bytes)
            .bind(ts(at))
            .run(&mut *tx)
            .await?
        } else {
            sqlx::query(
                "UPDATE upload_leases SET bytes = bytes + $3, renewed_at = $4 \
                 WHERE id = $1 AND user_id = $2 AND bytes = $5",
            )
            .bind(lease.id)
            .bind(user.0)
            .bind(bytes)
            .bind(ts(at))
            .bind(so_far)
            .run(&mut *tx)
            .await?
        };
        if held != 1 {
            return Ok(Reservation::LeaseLost);
        }
        tx.commit().await.map_err(db)?;
        Ok(Reservation::Granted)
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn release_upload(&self, lease: uuid::Uuid) -> StoreResult<u64> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        let freed = end_leases(&mut tx, "id = $1", |q| q.bind(lease)).await?;
        tx.commit().await.map_err(db)?;
        Ok(freed.iter().map(|(_, bytes)| *bytes).sum())
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn expire_upload_leases(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        let expired = end_leases(&mut tx, "renewed_at < $1", |q| q.bind(ts(before))).await?;
        tx.commit().await.map_err(db)?;
        Ok(expired.len() as u64)
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn file_bytes_used(&self, user: UserId) -> StoreResult<u64> {
        let row = sqlx::query("SELECT used_bytes FROM file_usage WHERE user_id = $1")
            .bind(user.0)
            .fetch_optional(self.reader())
            .await
            .map_err(db)?;
        Ok(match row {
            Some(r) => u64::try_from(get::<i64>(&r, "used_bytes")?).unwrap_or(0),
            None => 0,
        })
    }

    #[tracing::instrument(level = "debug", skip_all, fields(file = %file.info.id))]
    async fn insert_file(
        &self,
        file: &StoredFile,
        lease: uuid::Uuid,
        audit: &[AuditEntry],
    ) -> StoreResult<()> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        // The lease's bytes become the file's: it must hold exactly the file's size.
        let ended =
            sqlx::query("DELETE FROM upload_leases WHERE id = $1 AND user_id = $2 AND bytes = $3")
                .bind(lease)
                .bind(file.uploader_id.0)
                .bind(bytes_i64(file.info.size)?)
                .run(&mut *tx)
                .await?;
        if ended != 1 {
            return Err(StoreError::Conflict(Conflict::UploadExpired));
        }
        sqlx::query(&format!(
            "INSERT INTO files ({FILE_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .bind(file.info.id.0)
        .bind(file.conversation_id.0)
        .bind(file.uploader_id.0)
        .bind(file.storage_key.as_str())
        .bind(file.info.name.as_str())
        .bind(file.info.mime.as_str())
        .bind(bytes_i64(file.info.size)?)
        .bind(ts(file.created_at))
        .bind(file.message_id.map(|m| m.0))
        .run(&mut *tx)
        .await?;
        commit_audited(tx, self, audit).await
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn file(&self, id: FileId) -> StoreResult<StoredFile> {
        let row = sqlx::query(&format!("SELECT {FILE_COLS} FROM files WHERE id = $1"))
            .bind(id.0)
            .fetch_optional(self.reader())
            .await
            .map_err(db)?
            .ok_or(StoreError::NotFound)?;
        file_from_row(&row)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(keys = keys.len()))]
    async fn file_keys_present(&self, keys: &[String]) -> StoreResult<Vec<String>> {
        let mut present = Vec::new();
        for chunk in keys.chunks(500) {
            let select =
                |list: &str| format!("SELECT storage_key FROM files WHERE storage_key IN ({list})");
            let keys = chunk.iter().map(String::as_str);
            let found = select_in(self.reader(), keys, select, |r| get(r, "storage_key")).await?;
            present.extend(found);
        }
        Ok(present)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(users = users.len()))]
    async fn files_held(&self, users: &[UserId]) -> StoreResult<HashMap<UserId, FilesHeld>> {
        fn count(n: i64) -> u64 {
            u64::try_from(n).unwrap_or(0)
        }
        let held_from_row = |row: &Row| {
            let files = FilesHeld {
                used_bytes: count(get(row, "used_bytes")?),
                files: count(get(row, "files")?),
            };
            Ok((UserId(get(row, "id")?), files))
        };
        let mut held = HashMap::with_capacity(users.len());
        for chunk in users.chunks(500) {
            // Both counts come from indexed lookups per user (`file_usage`'s key and
            // `files_uploader_idx`).
            let select = |list: &str| {
                format!(
                    "SELECT u.id, \
                     COALESCE((SELECT fu.used_bytes FROM file_usage fu WHERE fu.user_id = u.id), \
                     0) AS used_bytes, \
                     (SELECT COUNT(*) FROM files f WHERE f.uploader_id = u.id) AS files \
                     FROM users u WHERE u.id IN ({list})"
                )
            };
            let ids = chunk.iter().map(|u| u.0);
            held.extend(select_in(self.reader(), ids, select, held_from_row).await?);
        }
        Ok(held)
    }
}
