//! The `[files]` section (DATA-1, DATA-2, SCALE-3) as written, with its defaults, and its
//! conversion to [`crate::files::FilesConfig`]. Environment: `CONCLAVE_FILES__MAX_UPLOAD_BYTES`,
//! `CONCLAVE_FILES__S3_SECRET_ACCESS_KEY` (or `…_FILE`), and so on.

use super::flex;
use crate::files::{FilesConfig, S3Config, StorageConfig};
use secrecy::SecretString;
use serde::Deserialize;
use std::path::Path;
use std::time::Duration;

/// The longest a signed download URL may be valid.
const URL_TTL_MAX_SECS: u64 = 24 * 3600;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StorageKind {
    /// A directory inside the data dir (`<data_dir>/files`).
    Local,
    /// An S3-compatible bucket (cluster mode: every node sees the same files).
    S3,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FilesSettings {
    pub storage: StorageKind,
    /// The largest upload, in bytes (413 above it); shown in the capabilities.
    #[serde(deserialize_with = "flex::u64")]
    pub max_upload_bytes: u64,
    /// What one user may hold in files at once (uploads in progress count), in bytes.
    #[serde(deserialize_with = "flex::u64")]
    pub user_quota_bytes: u64,
    /// Types (detected from the content) that may be uploaded. SVG, HTML and XML are never
    /// accepted, whatever is listed.
    #[serde(deserialize_with = "flex::list")]
    pub allowed_types: Vec<String>,
    /// Images with more pixels than this are refused from their header, never decoded.
    #[serde(deserialize_with = "flex::u64")]
    pub max_image_pixels: u64,
    /// How long a signed download URL is valid, in seconds (at most 24 h).
    #[serde(deserialize_with = "flex::u64")]
    pub url_ttl_secs: u64,
    pub s3_bucket: Option<String>,
    /// e.g. `https://s3.eu-central-1.amazonaws.com` or a MinIO/Garage URL.
    pub s3_endpoint: Option<String>,
    pub s3_region: Option<String>,
    pub s3_access_key_id: Option<String>,
    pub s3_secret_access_key: Option<SecretString>,
    /// Allows an `http://` endpoint (tests, a private network); production refuses it.
    #[serde(deserialize_with = "flex::bool")]
    pub s3_allow_http: bool,
}

impl Default for FilesSettings {
    fn default() -> Self {
        Self {
            storage: StorageKind::Local,
            max_upload_bytes: 100 * 1024 * 1024,
            user_quota_bytes: 1024 * 1024 * 1024,
            allowed_types: [
                "image/png",
                "image/jpeg",
                "image/gif",
                "image/webp",
                "application/pdf",
                "application/zip",
                "text/plain",
            ]
            .map(String::from)
            .to_vec(),
            max_image_pixels: 50_000_000,
            url_ttl_secs: 3600,
            s3_bucket: None,
            s3_endpoint: None,
            s3_region: None,
            s3_access_key_id: None,
            s3_secret_access_key: None,
            s3_allow_http: false,
        }
    }
}

/// Types never accepted: they run script when a browser opens them.
const NEVER: &[&str] = &[
    "image/svg+xml",
    "text/html",
    "text/xml",
    "application/xml",
    "application/xhtml+xml",
];

impl FilesSettings {
    /// The typed settings, or every problem found (no secret is ever named).
    pub fn parse(&self, data_dir: &Path, production: bool) -> Result<FilesConfig, Vec<String>> {
        let mut problems = Vec::new();
        if self.max_upload_bytes == 0 {
            problems.push("files.max_upload_bytes must be above 0".to_owned());
        }
        if self.url_ttl_secs == 0 || self.url_ttl_secs > URL_TTL_MAX_SECS {
            problems.push(format!(
                "files.url_ttl_secs must be between 1 and {URL_TTL_MAX_SECS}"
            ));
        }
        let allowed: Vec<String> = self
            .allowed_types
            .iter()
            .map(|t| t.trim().to_ascii_lowercase())
            .filter(|t| !t.is_empty())
            .collect();
        for t in &allowed {
            if NEVER.contains(&t.as_str()) {
                problems.push(format!(
                    "files.allowed_types may not list {t}: it runs script in a browser"
                ));
            }
        }
        let storage = match self.storage {
            StorageKind::Local => StorageConfig::Local(data_dir.join("files")),
            StorageKind::S3 => {
                let need = |v: &Option<String>, name: &str, problems: &mut Vec<String>| {
                    let v = v.as_deref().map(str::trim).unwrap_or_default();
                    if v.is_empty() {
                        problems.push(format!("files.storage = s3 needs files.{name}"));
                    }
                    v.to_owned()
                };
                let bucket = need(&self.s3_bucket, "s3_bucket", &mut problems);
                let endpoint = self.s3_endpoint.clone().filter(|e| !e.trim().is_empty());
                if production && self.s3_allow_http {
                    problems.push(
                        "files.s3_allow_http is refused in production: use an https endpoint"
                            .to_owned(),
                    );
                }
                StorageConfig::S3(S3Config {
                    bucket,
                    endpoint,
                    region: self.s3_region.clone().unwrap_or_else(|| "us-east-1".into()),
                    access_key_id: self.s3_access_key_id.clone(),
                    secret_access_key: self.s3_secret_access_key.clone(),
                    allow_http: self.s3_allow_http,
                })
            }
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(FilesConfig {
            storage,
            max_upload_bytes: self.max_upload_bytes,
            user_quota_bytes: self.user_quota_bytes,
            allowed_types: allowed,
            max_image_pixels: self.max_image_pixels,
            url_ttl: Duration::from_secs(self.url_ttl_secs),
        })
    }
}
