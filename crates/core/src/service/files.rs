//! Files (DATA-1, DATA-2): who may upload into a conversation and fetch from it, the per-user
//! quota, and the rows. The bytes are the server's (`server::files` streams them to object
//! storage); this module decides and records. An upload is three steps: [`Services::authorize_upload`]
//! hands out an [`UploadGrant`] (only a permitted caller gets one), bytes are reserved against
//! the quota as they arrive, and [`Services::record_upload`] writes the row and its audit entry.

use super::{Actor, Result, Services};
use crate::error::ServiceError;
use crate::files::{FileInfo, FileName, QuotaRequest, Reservation, StoredFile, UploadLease};
use crate::ids::*;
use crate::policy::files::{may_fetch_file, may_upload_file, FileDecision};
use crate::store::StoreError;
use chrono::{DateTime, Utc};

/// Proof that the caller may upload into a conversation now; made only by
/// [`Services::authorize_upload`].
#[derive(Debug, Clone)]
pub struct UploadGrant {
    conversation: ConversationId,
    org: OrgId,
    uploader: UserId,
}

impl UploadGrant {
    /// The lease of a new upload under this grant (nothing reserved yet).
    #[must_use]
    pub fn lease(&self) -> UploadLease {
        UploadLease::new(self.uploader)
    }

    #[must_use]
    pub const fn conversation(&self) -> ConversationId {
        self.conversation
    }
}

/// What the server learned while streaming an upload.
#[derive(Debug, Clone)]
pub struct Uploaded {
    pub storage_key: String,
    pub name: FileName,
    pub mime: String,
    pub size: u64,
}

fn decide(d: FileDecision) -> Result<()> {
    match d {
        FileDecision::Allow => Ok(()),
        FileDecision::Forbidden => Err(ServiceError::forbidden(
            "forbidden",
            "you are not allowed to do this in this conversation",
        )),
        FileDecision::Hidden => Err(ServiceError::NotFound("conversation")),
    }
}

impl Services {
    /// Whether `actor` may upload into `conv`: participants who may send (404 for anyone else,
    /// 403 for a Viewer), within the credential's org and conversation limits.
    pub async fn authorize_upload(
        &self,
        actor: &Actor,
        conv: ConversationId,
    ) -> Result<UploadGrant> {
        let conversation = self.store.conversation(conv).await.map_err(|e| match e {
            StoreError::NotFound => ServiceError::NotFound("conversation"),
            other => other.into(),
        })?;
        let access = self.access(actor, &(&conversation).into()).await?;
        decide(may_upload_file(&access))?;
        Ok(UploadGrant {
            conversation: conv,
            org: conversation.org_id,
            uploader: actor.user.id,
        })
    }

    /// Reserves `bytes` more of the uploader's `quota` for the upload `lease` (counting them
    /// in it on success).
    pub async fn reserve_upload_bytes(
        &self,
        lease: &mut UploadLease,
        bytes: u64,
        quota: u64,
    ) -> Result<Reservation> {
        let now = self.clock.now();
        let answer = self
            .store
            .reserve_file_bytes(lease, QuotaRequest { bytes, quota }, now)
            .await?;
        if answer == Reservation::Granted {
            lease.reserved += bytes;
        }
        Ok(answer)
    }

    /// Ends an upload that kept nothing, giving back what its lease held (nothing twice).
    pub async fn release_upload(&self, lease: &UploadLease) -> Result<()> {
        self.store.release_upload(lease.id).await?;
        Ok(())
    }

    /// Gives back the bytes of uploads whose lease was last renewed before `before` (their
    /// node died mid-upload); how many.
    pub async fn expire_upload_leases(&self, before: DateTime<Utc>) -> Result<u64> {
        Ok(self.store.expire_upload_leases(before).await?)
    }

    /// Bytes a user holds or is uploading now.
    pub async fn file_bytes_used(&self, user: UserId) -> Result<u64> {
        Ok(self.store.file_bytes_used(user).await?)
    }

    /// Records a stored upload (its bytes reserved under `lease`, which it ends) with its audit
    /// entry. 409 `upload_expired` when the lease was expired meanwhile.
    pub async fn record_upload(
        &self,
        actor: &Actor,
        grant: &UploadGrant,
        lease: &UploadLease,
        up: Uploaded,
    ) -> Result<FileInfo> {
        let file = StoredFile {
            info: FileInfo {
                id: FileId::new(),
                size: up.size,
                mime: up.mime,
                name: up.name,
            },
            conversation_id: grant.conversation,
            uploader_id: grant.uploader,
            storage_key: up.storage_key,
            created_at: self.clock.now(),
            message_id: None,
        };
        let audit = self
            .audit(actor, "file.uploaded")
            .org(grant.org)
            .resource("file", file.info.id)
            .detail(serde_json::json!({
                "conversation_id": grant.conversation,
                "size": file.info.size,
                "mime": file.info.mime,
            }));
        self.store.insert_file(&file, lease.id, &[audit]).await?;
        Ok(file.info)
    }

    /// A file `actor` may download: participants of its conversation only (404 otherwise,
    /// whether or not the file exists).
    pub async fn file_for_download(&self, actor: &Actor, id: FileId) -> Result<StoredFile> {
        let hidden = || ServiceError::NotFound("file");
        let file = self.store.file(id).await.map_err(|e| match e {
            StoreError::NotFound => hidden(),
            other => other.into(),
        })?;
        let conversation = self
            .store
            .conversation(file.conversation_id)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => hidden(),
                other => other.into(),
            })?;
        let access = self
            .access(actor, &(&conversation).into())
            .await
            .map_err(|e| match e {
                ServiceError::NotFound(_) | ServiceError::Forbidden { .. } => hidden(),
                other => other,
            })?;
        decide(may_fetch_file(&access)).map_err(|_| hidden())?;
        Ok(file)
    }

    /// The file a signed media URL names. The caller checked the URL's signature, which is the
    /// only authority this request carries.
    pub async fn file_for_signed_url(&self, id: FileId) -> Result<StoredFile> {
        self.store.file(id).await.map_err(|e| match e {
            StoreError::NotFound => ServiceError::NotFound("file"),
            other => other.into(),
        })
    }

    /// Which of these storage keys still have a row (the orphan sweep keeps those).
    pub async fn file_keys_present(&self, keys: &[String]) -> Result<Vec<String>> {
        Ok(self.store.file_keys_present(keys).await?)
    }
}
