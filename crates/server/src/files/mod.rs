//! Where uploaded bytes live (DATA-1, SCALE-3): one `object_store` handle — a directory in the
//! data dir (`LocalFileSystem`) or an S3-compatible bucket (`AmazonS3`) — so both take the same
//! code path. Keys are `files/<UUIDv7>`, made here, never from anything a client sent.
//! `upload` streams a request body into it chunk by chunk; `detect` decides what the bytes are;
//! services remove the blobs of files whose rows a change removed (`Blobs`); `sweep` removes
//! whatever blob no row names.

pub mod detect;
pub mod sweep;
pub mod upload;

use conclave_core::files::Blobs;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::ObjectStore;
use secrecy::{ExposeSecret, SecretString};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The parsed `[files]` settings.
#[derive(Debug, Clone)]
pub struct FilesConfig {
    pub storage: StorageConfig,
    pub max_upload_bytes: u64,
    pub user_quota_bytes: u64,
    /// Lower-case MIME types detected content may have.
    pub allowed_types: Vec<String>,
    pub max_image_pixels: u64,
    pub url_ttl: Duration,
}

#[derive(Debug, Clone)]
pub enum StorageConfig {
    Local(PathBuf),
    S3(S3Config),
}

/// An S3-compatible bucket. `Debug` never shows the secret key.
#[derive(Clone)]
pub struct S3Config {
    pub bucket: String,
    pub endpoint: Option<String>,
    pub region: String,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<SecretString>,
    pub allow_http: bool,
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field(
                "access_key_id",
                &self.access_key_id.as_ref().map(|_| "<set>"),
            )
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

/// The storage and the limits uploads are held to.
pub struct Files {
    store: Arc<dyn ObjectStore>,
    pub config: FilesConfig,
}

impl fmt::Debug for Files {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Files")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Why storage could not be opened; the text names no secret.
#[derive(Debug, thiserror::Error)]
#[error("file storage: {0}")]
pub struct StorageError(String);

impl Files {
    /// Opens the configured storage (creating the local directory, private, when missing).
    pub fn open(config: FilesConfig) -> Result<Self, StorageError> {
        let store: Arc<dyn ObjectStore> = match &config.storage {
            StorageConfig::Local(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| StorageError(format!("cannot create {}: {e}", dir.display())))?;
                Arc::new(
                    object_store::local::LocalFileSystem::new_with_prefix(dir)
                        .map_err(|e| StorageError(e.to_string()))?,
                )
            }
            StorageConfig::S3(s3) => {
                let mut b = object_store::aws::AmazonS3Builder::new()
                    .with_bucket_name(&s3.bucket)
                    .with_region(&s3.region)
                    .with_allow_http(s3.allow_http);
                if let Some(endpoint) = &s3.endpoint {
                    b = b.with_endpoint(endpoint);
                }
                if let Some(id) = &s3.access_key_id {
                    b = b.with_access_key_id(id);
                }
                if let Some(secret) = &s3.secret_access_key {
                    b = b.with_secret_access_key(secret.expose_secret());
                }
                // The builder's error can quote configuration; say only what failed.
                Arc::new(b.build().map_err(|_| {
                    StorageError("the S3 settings are incomplete or invalid".into())
                })?)
            }
        };
        Ok(Self { store, config })
    }

    /// A fresh storage key (`files/<UUIDv7>`).
    #[must_use]
    pub fn new_key() -> String {
        format!("files/{}", uuid::Uuid::now_v7())
    }

    fn path(key: &str) -> ObjectPath {
        ObjectPath::from(key)
    }

    /// Whether the storage answers (readiness, CORE-7): a metadata read of a key that is never
    /// written, within two seconds — "not found" is an answer; a refusal, a timeout or no
    /// connection is not.
    pub async fn reachable(&self) -> bool {
        let key = Self::path("health/probe");
        let probe = self.store.head(&key);
        matches!(
            tokio::time::timeout(std::time::Duration::from_secs(2), probe).await,
            Ok(Ok(_) | Err(object_store::Error::NotFound { .. }))
        )
    }

    /// The bytes stored under `key`, as a stream of chunks.
    pub async fn read(
        &self,
        key: &str,
    ) -> object_store::Result<BoxStream<'static, object_store::Result<bytes::Bytes>>> {
        Ok(self.store.get(&Self::path(key)).await?.into_stream())
    }

    /// Deletes a blob; a missing one is already gone.
    pub async fn delete(&self, key: &str) -> object_store::Result<()> {
        match self.store.delete(&Self::path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Deletes blobs after the rows naming them were removed, in batches where the storage
    /// has them (S3 `DeleteObjects`); a missing one is already gone, any other failure is logged
    /// and the sweep retries it.
    pub async fn delete_all(&self, keys: &[String]) {
        let paths = futures::stream::iter(keys.iter().map(|k| Ok(Self::path(k)))).boxed();
        let mut deleted = self.store.delete_stream(paths);
        while let Some(result) = deleted.next().await {
            match result {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "could not delete a file blob; the sweep will retry");
                }
            }
        }
    }

    pub(crate) fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }
}

#[async_trait::async_trait]
impl Blobs for Files {
    async fn remove(&self, keys: &[String]) {
        self.delete_all(keys).await;
    }
}
