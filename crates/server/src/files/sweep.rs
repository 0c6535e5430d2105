//! The orphan sweep: deletes blobs whose rows are gone. Rows are removed in the transaction of
//! the change (message deleted, retention, erasure, conversation deleted) and their blobs right
//! after commit; a crash between the two, or an upload cut off before its row was written,
//! leaves a blob no row names. The sweep lists storage and deletes those, once they are older
//! than any upload in progress can be, so nothing leaks for good.

use super::Files;
use chrono::{DateTime, Utc};
use conclave_core::service::Services;
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;

/// Blobs younger than this are left alone (an upload in progress has no row yet); upload leases
/// not renewed for this long are expired (their uploads stalled for good or their node died)
/// and their bytes given back.
pub const SWEEP_GRACE: chrono::Duration = chrono::Duration::hours(6);

/// Keys checked against the store at once.
const BATCH: usize = 500;

/// Deletes every blob under `files/` older than `grace` at `now` that no row names; the number
/// deleted.
pub async fn sweep(
    files: &Files,
    services: &Services,
    now: DateTime<Utc>,
    grace: chrono::Duration,
) -> Result<usize, String> {
    let prefix = ObjectPath::from("files");
    let mut listing = files.object_store().list(Some(&prefix));
    let mut batch = Vec::with_capacity(BATCH);
    let mut deleted = 0;
    while let Some(meta) = listing.try_next().await.map_err(|e| e.to_string())? {
        if meta.last_modified > now - grace {
            continue;
        }
        batch.push(meta.location.to_string());
        if batch.len() == BATCH {
            deleted += sweep_batch(files, services, &mut batch).await?;
        }
    }
    deleted += sweep_batch(files, services, &mut batch).await?;
    Ok(deleted)
}

async fn sweep_batch(
    files: &Files,
    services: &Services,
    batch: &mut Vec<String>,
) -> Result<usize, String> {
    if batch.is_empty() {
        return Ok(0);
    }
    let present = services
        .file_keys_present(batch)
        .await
        .map_err(|e| e.to_string())?;
    let orphans: Vec<String> = batch.drain(..).filter(|k| !present.contains(k)).collect();
    for key in &orphans {
        files.delete(key).await.map_err(|e| e.to_string())?;
        tracing::info!(key, "deleted a file blob no row names");
    }
    Ok(orphans.len())
}
