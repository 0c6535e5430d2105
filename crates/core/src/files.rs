//! Uploaded files (DATA-1, DATA-2): the stored record, the display name a client gave (kept for
//! display and `Content-Disposition` only, never for storage) and what an upload is refused for.
//! The bytes themselves live in object storage under a server-made UUIDv7 key (`server::files`);
//! core reaches them only to remove them ([`Blobs`]) once the rows naming them are gone.
//! A message claims files as its attachments ([`AttachmentIds`]) in its insert transaction.

use crate::ids::{ConversationId, FileId, MessageId, UserId};
use crate::types::Rejection;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use utoipa::ToSchema;

/// The longest display name kept, in Unicode scalar values.
pub const FILE_NAME_MAX_CHARS: usize = 255;

/// A display name with path separators, control characters (NUL included), bidi controls and
/// leading dots removed and its length capped; never empty (`file` when nothing is left).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(transparent)]
pub struct FileName(String);

/// Characters that reorder or hide text (bidi embeddings, overrides, isolates and marks, and
/// zero-width characters): a name like `gnp.exe` shown as `exe.png` is refused this way, and a
/// client's name on the OAuth consent page loses them (`oauth::parse_client_document`).
pub(crate) fn is_invisible_control(c: char) -> bool {
    matches!(
        c,
        '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2066}'..='\u{2069}'
            | '\u{061C}'
            | '\u{FEFF}'
    )
}

impl FileName {
    /// Cleans what a client sent; the result is always usable.
    #[must_use]
    pub fn sanitize(raw: &str) -> Self {
        let cleaned: String = raw
            .chars()
            .filter(|&c| {
                !c.is_control() && !is_invisible_control(c) && !matches!(c, '/' | '\\' | ':')
            })
            .collect();
        let trimmed = cleaned.trim().trim_start_matches('.').trim();
        let capped: String = trimmed.chars().take(FILE_NAME_MAX_CHARS).collect();
        let capped = capped.trim_end();
        if capped.is_empty() {
            Self("file".to_owned())
        } else {
            Self(capped.to_owned())
        }
    }

    /// A name read back from the store (it was sanitised before it was stored).
    #[must_use]
    pub fn from_stored(name: String) -> Self {
        Self(name)
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A stored file: what the row says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFile {
    /// What its uploader and readers see of it.
    pub info: FileInfo,
    pub conversation_id: ConversationId,
    pub uploader_id: UserId,
    /// The object storage key (a UUIDv7 the server made).
    pub storage_key: String,
    pub created_at: DateTime<Utc>,
    /// The message that claimed it as an attachment, once one did.
    pub message_id: Option<MessageId>,
}

/// What an upload answers and a message's `attachments` lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FileInfo {
    pub id: FileId,
    pub size: u64,
    /// Detected from the content.
    pub mime: String,
    pub name: FileName,
}

/// What one user's files take: the bytes counted against their quota (uploads in progress
/// included) and the files stored under their name. The server admin's users listing shows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FilesHeld {
    pub used_bytes: u64,
    pub files: u64,
}

impl From<&StoredFile> for FileInfo {
    fn from(f: &StoredFile) -> Self {
        f.info.clone()
    }
}

/// The most files one message carries.
pub const ATTACHMENTS_MAX: usize = 10;

/// The files a message is sent with: at most [`ATTACHMENTS_MAX`], none named twice, in the
/// order given. Whether each is the sender's own unattached upload to the conversation is the
/// store's to decide, atomically with the insert.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Vec<FileId>")]
pub struct AttachmentIds(Vec<FileId>);

impl AttachmentIds {
    pub fn parse(ids: Vec<FileId>) -> Result<Self, Rejection> {
        if ids.len() > ATTACHMENTS_MAX {
            return Err(Rejection::new(
                "too_many",
                format!("at most {ATTACHMENTS_MAX} files per message"),
            ));
        }
        let mut seen = std::collections::HashSet::with_capacity(ids.len());
        if !ids.iter().all(|id| seen.insert(*id)) {
            return Err(Rejection::new("duplicate", "a file is named twice"));
        }
        Ok(Self(ids))
    }

    #[must_use]
    pub fn as_slice(&self) -> &[FileId] {
        &self.0
    }

    #[must_use]
    pub fn into_vec(self) -> Vec<FileId> {
        self.0
    }
}

impl TryFrom<Vec<FileId>> for AttachmentIds {
    type Error = Rejection;
    fn try_from(ids: Vec<FileId>) -> Result<Self, Rejection> {
        Self::parse(ids)
    }
}

crate::types::schema!(AttachmentIds, {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaFormat, Type};
    ArrayBuilder::new()
        .description(Some(
            "Files you uploaded to this conversation (POST /files) and have not attached yet; \
             at most 10, each once",
        ))
        .items(ObjectBuilder::new().schema_type(Type::String).format(Some(
            SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Uuid),
        )))
        .max_items(Some(ATTACHMENTS_MAX))
        .unique_items(true)
        .into()
});

/// An upload in progress as the store holds it: its id, its uploader and the bytes it has
/// reserved so far. The reservation is held under a lease, renewed by every reservation; a node
/// that dies mid-upload leaves its lease behind, and once the lease is older than any upload
/// can stall it is expired and its bytes go back to the uploader
/// (`FileStore::expire_upload_leases`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadLease {
    pub id: uuid::Uuid,
    pub uploader: UserId,
    pub reserved: u64,
}

impl UploadLease {
    /// A new upload by `uploader`, nothing reserved yet.
    #[must_use]
    pub fn new(uploader: UserId) -> Self {
        Self {
            id: uuid::Uuid::now_v7(),
            uploader,
            reserved: 0,
        }
    }
}

/// What an upload asks of its uploader's quota: `bytes` more, the total to stay within `quota`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaRequest {
    pub bytes: u64,
    pub quota: u64,
}

/// What asking for more bytes of the quota gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    Granted,
    /// The total would pass the quota; nothing changed.
    OverQuota,
    /// The lease was expired (its bytes already given back): the upload cannot go on.
    LeaseLost,
}

/// Storage keys of files whose rows a change removed (in its transaction): their bytes are to
/// go once it has committed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FreedBlobs(pub Vec<String>);

/// Where the bytes of files live, as far as core needs to know: services remove them after the
/// commit that removed their rows. A failure is the implementation's to log; the orphan sweep
/// (`server::files::sweep`) removes whatever a row no longer names, so nothing leaks for good.
#[async_trait]
pub trait Blobs: Send + Sync + 'static {
    async fn remove(&self, keys: &[String]);
}

/// The signature of a download URL: HMAC-SHA256 over the method, the path and the expiry (Unix
/// seconds), base64url without padding. A URL is good for that one path until `exp`.
#[must_use]
pub fn media_signature(key: &[u8; 32], path: &str, exp: i64) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(media_mac(key, path, exp).finalize().into_bytes())
}

fn media_mac(key: &[u8; 32], path: &str, exp: i64) -> Hmac<Sha256> {
    // A 32-byte key is always a valid HMAC key.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(b"GET\n");
    mac.update(path.as_bytes());
    mac.update(b"\n");
    mac.update(exp.to_string().as_bytes());
    mac
}

/// Whether `sig` is the signature of (`GET`, `path`, `exp`), compared in constant time.
/// Expiry is the caller's check (it owns the clock).
#[must_use]
pub fn media_signature_valid(key: &[u8; 32], path: &str, exp: i64, sig: &str) -> bool {
    use base64::Engine;
    let Ok(raw) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(sig) else {
        return false;
    };
    media_mac(key, path, exp).verify_slice(&raw).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hostile_names_are_cleaned() {
        let cases = [
            ("../../etc/passwd", "etcpasswd"),
            ("..\\..\\windows\\system32", "windowssystem32"),
            ("a\0b.png", "ab.png"),
            ("invoice\u{202E}gnp.exe", "invoicegnp.exe"),
            ("\u{2066}x\u{2069}.txt", "x.txt"),
            ("line\nbreak\r.txt", "linebreak.txt"),
            ("   ", "file"),
            ("...", "file"),
            ("", "file"),
            (".hidden", "hidden"),
            ("C:evil.txt", "Cevil.txt"),
            ("photo.png", "photo.png"),
            ("résumé 2026.pdf", "résumé 2026.pdf"),
        ];
        for (raw, want) in cases {
            assert_eq!(FileName::sanitize(raw).as_str(), want, "{raw:?}");
        }
        let long = "a".repeat(5000);
        assert_eq!(
            FileName::sanitize(&long).as_str().chars().count(),
            FILE_NAME_MAX_CHARS
        );
    }

    #[test]
    fn media_signatures_bind_path_and_expiry() {
        let key = [9u8; 32];
        let sig = media_signature(&key, "/media/abc", 100);
        assert!(media_signature_valid(&key, "/media/abc", 100, &sig));
        assert!(!media_signature_valid(&key, "/media/abd", 100, &sig));
        assert!(!media_signature_valid(&key, "/media/abc", 101, &sig));
        assert!(!media_signature_valid(&[8u8; 32], "/media/abc", 100, &sig));
        assert!(!media_signature_valid(
            &key,
            "/media/abc",
            100,
            "not-base64!"
        ));
        let mut altered = sig.clone().into_bytes();
        altered[0] = if altered[0] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(altered).unwrap();
        assert!(!media_signature_valid(&key, "/media/abc", 100, &altered));
    }

    proptest! {
        #[test]
        fn any_name_comes_out_safe(raw in any::<String>()) {
            let name = FileName::sanitize(&raw);
            let s = name.as_str();
            prop_assert!(!s.is_empty());
            prop_assert!(s.chars().count() <= FILE_NAME_MAX_CHARS);
            prop_assert!(!s.starts_with('.'));
            prop_assert!(s.chars().all(|c| !c.is_control()
                && !is_invisible_control(c)
                && !matches!(c, '/' | '\\' | ':')));
        }
    }
}
