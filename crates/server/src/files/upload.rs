//! Streams one upload into storage (DATA-1): the first [`HEAD_BYTES`] decide the type (nothing
//! is stored before that), then the body goes chunk by chunk into a multipart upload of at most
//! [`PART_BYTES`] buffered at a time — the whole file is never in memory. Bytes are reserved
//! against the uploader's quota before they are written (one atomic statement per
//! [`RESERVE_BATCH`]), so parallel uploads cannot pass it. Any failure — a refused type, the
//! size limit, the quota, a truncated body, a client that goes away — aborts the multipart
//! upload and gives the reservation back: no row, no blob.

use super::detect::{detect, Refusal, HEAD_BYTES};
use super::Files;
use bytes::Bytes;
use conclave_core::files::{FileInfo, FileName, Reservation, UploadLease};
use conclave_core::service::{Actor, Services, UploadGrant, Uploaded};
use conclave_core::ServiceError;
use futures::{Stream, StreamExt};
use object_store::path::Path as ObjectPath;
use object_store::WriteMultipart;
use std::sync::Arc;

/// Size of each part sent to storage (S3's smallest part size).
pub const PART_BYTES: usize = 5 * 1024 * 1024;
/// Bytes received between two quota reservations.
pub const RESERVE_BATCH: usize = 1024 * 1024;
/// Parts in flight to storage at once.
const PARTS_IN_FLIGHT: usize = 1;

/// Why an upload failed.
#[derive(Debug)]
pub enum UploadError {
    Empty,
    TooLarge {
        limit: u64,
    },
    QuotaExceeded {
        quota: u64,
    },
    /// The upload's lease was expired (it stalled for longer than any upload may).
    Expired,
    Refused(Refusal),
    /// The request body broke off or is not valid multipart.
    Body(String),
    Storage(object_store::Error),
    Service(ServiceError),
}

impl From<ServiceError> for UploadError {
    fn from(e: ServiceError) -> Self {
        Self::Service(e)
    }
}

/// What was stored, before its row exists, and the lease holding its bytes.
struct Received {
    key: String,
    mime: String,
    size: u64,
    lease: UploadLease,
}

/// An upload in progress: the writer and the lease holding the bytes reserved. Dropped while
/// armed (the request was cancelled), it aborts the upload and gives the bytes back in the
/// background.
struct InFlight {
    services: Services,
    quota: u64,
    writer: Option<WriteMultipart>,
    lease: UploadLease,
    armed: bool,
}

impl InFlight {
    async fn reserve(&mut self, bytes: usize) -> Result<(), UploadError> {
        let bytes = bytes as u64;
        if bytes == 0 {
            return Ok(());
        }
        match self
            .services
            .reserve_upload_bytes(&mut self.lease, bytes, self.quota)
            .await?
        {
            Reservation::Granted => Ok(()),
            Reservation::OverQuota => Err(UploadError::QuotaExceeded { quota: self.quota }),
            Reservation::LeaseLost => Err(UploadError::Expired),
        }
    }

    /// Writes `chunks` (already reserved) and waits while too many parts are in flight.
    async fn write(&mut self, chunks: &mut Vec<Bytes>) -> Result<(), UploadError> {
        let Some(writer) = self.writer.as_mut() else {
            return Ok(());
        };
        for chunk in chunks.drain(..) {
            writer.put(chunk);
        }
        writer
            .wait_for_capacity(PARTS_IN_FLIGHT)
            .await
            .map_err(UploadError::Storage)
    }

    /// Aborts and gives the reservation back, now.
    async fn cleanup(&mut self) {
        self.armed = false;
        if let Some(writer) = self.writer.take() {
            if let Err(e) = writer.abort().await {
                tracing::warn!(error = %e, "aborting a failed upload");
            }
        }
        if self.lease.reserved > 0 {
            if let Err(e) = self.services.release_upload(&self.lease).await {
                tracing::error!(error = %e, "giving back the quota of a failed upload");
            }
            self.lease.reserved = 0;
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut rest = InFlight {
            services: self.services.clone(),
            quota: self.quota,
            writer: self.writer.take(),
            lease: self.lease,
            armed: false,
        };
        self.lease.reserved = 0;
        rt.spawn(async move { rest.cleanup().await });
    }
}

/// Receives `body` for `grant` and records it as a file named `name`. Nothing stays behind
/// when it fails. Once the bytes are stored, recording them runs as its own task, so a client
/// that goes away then cannot leave a blob without a row or a reservation without a file.
pub async fn store_upload<S, E>(
    files: &Arc<Files>,
    services: &Services,
    actor: &Actor,
    grant: &UploadGrant,
    name: FileName,
    body: S,
) -> Result<FileInfo, UploadError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let received = receive(files, services, grant, body).await?;
    let (files, services, actor, grant) = (
        files.clone(),
        services.clone(),
        actor.clone(),
        grant.clone(),
    );
    let record = tokio::spawn(async move {
        let up = Uploaded {
            storage_key: received.key.clone(),
            name,
            mime: received.mime,
            size: received.size,
        };
        let recorded = services
            .record_upload(&actor, &grant, &received.lease, up)
            .await;
        if recorded.is_err() {
            files.delete_all(std::slice::from_ref(&received.key)).await;
            if let Err(r) = services.release_upload(&received.lease).await {
                tracing::error!(error = %r, "giving back the quota of an unrecorded upload");
            }
        }
        recorded
    });
    match record.await {
        Ok(recorded) => Ok(recorded?),
        Err(_) => Err(UploadError::Service(ServiceError::Internal(
            "recording the upload failed".into(),
        ))),
    }
}

async fn receive<S, E>(
    files: &Files,
    services: &Services,
    grant: &UploadGrant,
    mut body: S,
) -> Result<Received, UploadError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let cfg = &files.config;
    let max = cfg.max_upload_bytes;
    let too_large = || UploadError::TooLarge { limit: max };
    let mut head: Vec<u8> = Vec::new();
    let mut ended = false;
    while head.len() < HEAD_BYTES {
        match body.next().await {
            Some(Ok(chunk)) => {
                head.extend_from_slice(&chunk);
                if head.len() as u64 > max {
                    return Err(too_large());
                }
            }
            Some(Err(e)) => return Err(UploadError::Body(e.to_string())),
            None => {
                ended = true;
                break;
            }
        }
    }
    if head.is_empty() {
        return Err(UploadError::Empty);
    }
    let mime = detect(&head, ended, &cfg.allowed_types, cfg.max_image_pixels)
        .map_err(UploadError::Refused)?;
    let key = Files::new_key();
    let mut flight = InFlight {
        services: services.clone(),
        quota: cfg.user_quota_bytes,
        writer: None,
        lease: grant.lease(),
        armed: true,
    };
    let result = async {
        flight.reserve(head.len()).await?;
        let upload = files
            .object_store()
            .put_multipart(&ObjectPath::from(key.as_str()))
            .await
            .map_err(UploadError::Storage)?;
        flight.writer = Some(WriteMultipart::new_with_chunk_size(upload, PART_BYTES));
        let mut size = head.len() as u64;
        let mut pending = vec![Bytes::from(head)];
        flight.write(&mut pending).await?;
        let mut pending_len = 0usize;
        loop {
            let chunk = match body.next().await {
                Some(Ok(chunk)) => chunk,
                Some(Err(e)) => return Err(UploadError::Body(e.to_string())),
                None => break,
            };
            size += chunk.len() as u64;
            if size > max {
                return Err(too_large());
            }
            pending_len += chunk.len();
            pending.push(chunk);
            if pending_len >= RESERVE_BATCH {
                flight.reserve(pending_len).await?;
                flight.write(&mut pending).await?;
                pending_len = 0;
            }
        }
        flight.reserve(pending_len).await?;
        flight.write(&mut pending).await?;
        if let Some(writer) = flight.writer.take() {
            writer.finish().await.map_err(UploadError::Storage)?;
        }
        Ok(size)
    }
    .await;
    match result {
        Ok(size) => {
            flight.armed = false;
            Ok(Received {
                key,
                mime,
                size,
                lease: flight.lease,
            })
        }
        Err(e) => {
            flight.cleanup().await;
            Err(e)
        }
    }
}
