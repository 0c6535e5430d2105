//! Files (DATA-1, DATA-2): `POST /files` streams a multipart upload into storage
//! (`files::upload`), `GET /files/{id}/url` hands a participant a signed, time-bounded URL, and
//! `GET /media/{id}?exp=&sig=` serves the bytes to whoever holds a valid one — as a download
//! unless the file is an allowlisted raster image, never sniffed, never able to run script.

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::Caller;
use crate::files::detect::{Refusal, INLINE_TYPES};
use crate::files::upload::{store_upload, UploadError};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use conclave_core::files::{media_signature, media_signature_valid, FileInfo, FileName};
use conclave_core::{ConversationId, FileId};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    use super::credentials::{declare, RouteAccess};
    use conclave_core::credential::Scope;
    // The upload enforces its own limit while streaming, so the default body cap is lifted;
    // what comes before the file's bytes has a small cap of its own (`preamble_cap`).
    let upload = declare(
        OpenApiRouter::new().routes(routes!(upload_file)),
        RouteAccess::always(Scope::FilesWrite),
    )
    .route_layer(DefaultBodyLimit::disable())
    .route_layer(axum::middleware::from_fn(preamble_cap));
    let url = declare(
        OpenApiRouter::new().routes(routes!(file_url)),
        RouteAccess::always(Scope::MessagesRead),
    );
    upload.merge(url)
}

/// The most bytes of an upload's body read before its `file` field's bytes begin: the
/// preamble, the `conversation_id` field, both fields' headers — and the first of the file's
/// bytes that came in the same chunks (a chunk is at most the HTTP reader's buffer, about
/// 400 KiB). Past it the body fails (400 `multipart_invalid`): the multipart reader holds
/// whatever it has not yet found a boundary or a header's end in, so a body with neither would
/// be held whole (CORE-6, RATE-5).
const PREAMBLE_MAX: usize = 1 << 20;

/// Set by the handler once the `file` field's bytes begin: from then on the file's own limit
/// is enforced as it streams.
#[derive(Clone, Default)]
struct FileStarted(std::sync::Arc<std::sync::atomic::AtomicBool>);

/// Counts an upload's body until its file begins, and fails it past [`PREAMBLE_MAX`].
async fn preamble_cap(mut req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    use futures::StreamExt;
    use std::sync::atomic::Ordering;
    let started = FileStarted::default();
    req.extensions_mut().insert(started.clone());
    let mut read = 0usize;
    let body = std::mem::take(req.body_mut())
        .into_data_stream()
        .map(move |chunk| {
            let chunk = chunk?;
            if !started.0.load(Ordering::Acquire) {
                read = read.saturating_add(chunk.len());
                if read > PREAMBLE_MAX {
                    return Err(axum::Error::new(std::io::Error::other(
                        "the multipart body's preamble and headers are too long",
                    )));
                }
            }
            Ok(chunk)
        });
    *req.body_mut() = Body::from_stream(body);
    next.run(req).await
}

/// The form `POST /files` takes: `conversation_id` first, then `file`.
#[derive(ToSchema)]
#[allow(
    dead_code,
    reason = "describes the multipart form for the OpenAPI document"
)]
pub struct UploadForm {
    #[schema(format = Uuid)]
    conversation_id: String,
    #[schema(format = Binary)]
    file: String,
}

fn upload_error(e: UploadError, max: u64) -> ApiError {
    let field = "file";
    match e {
        UploadError::Empty => ApiError::invalid("file_empty", "the file is empty", field),
        UploadError::TooLarge { limit } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "file_too_large",
            format!("the file is larger than {limit} bytes"),
        )
        .with_field(field),
        UploadError::QuotaExceeded { quota } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "quota_exceeded",
            format!("this upload would take your files past your quota of {quota} bytes"),
        )
        .with_field(field),
        UploadError::Expired => {
            let c = conclave_core::store::Conflict::UploadExpired;
            ApiError::new(StatusCode::CONFLICT, c.code(), c.message()).with_field(field)
        }
        UploadError::Refused(Refusal::TypeNotAllowed(mime)) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "file_type_not_allowed",
            match mime {
                Some(m) => format!("files of type {m} are not accepted here"),
                None => "this type of file is not accepted here".to_owned(),
            },
        )
        .with_field(field),
        UploadError::Refused(Refusal::Polyglot(what)) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "file_polyglot",
            format!("the file hides another format inside it ({what})"),
        )
        .with_field(field),
        UploadError::Refused(Refusal::TooManyPixels { width, height }) => ApiError::invalid(
            "image_too_large",
            format!("the image is {width} × {height} pixels, more than this server accepts"),
            field,
        ),
        UploadError::Refused(Refusal::Corrupt(why)) => {
            ApiError::invalid("file_corrupt", why, field)
        }
        UploadError::Body(detail) => {
            tracing::debug!(detail, max, "upload body broke off");
            ApiError::bad_request(
                "multipart_invalid",
                "the multipart body is malformed or was cut off",
                field,
            )
        }
        UploadError::Storage(e) => {
            tracing::error!(error = %e, "file storage failed");
            ApiError::internal()
        }
        UploadError::Service(e) => e.into(),
    }
}

fn multipart_invalid(message: &str) -> ApiError {
    ApiError::bad_request("multipart_invalid", message.to_owned(), "file")
}

/// The most bytes `conversation_id` is read to: an id, with room for whitespace. The upload's
/// body has no overall cap (the file's own limit is enforced while it streams), so this field
/// is read chunk by chunk and refused past the cap instead of being held whole in memory.
const ID_FIELD_MAX: usize = 128;

/// The `conversation_id` field's id; an id that is too long, not text or not an id is refused
/// naming the field, as soon as it is known to be one.
async fn id_field(mut field: axum::extract::multipart::Field<'_>) -> ApiResult<ConversationId> {
    let bad = || {
        ApiError::bad_request(
            "invalid_id",
            "`conversation_id` is not a valid id",
            "conversation_id",
        )
    };
    let mut raw = Vec::new();
    while let Some(chunk) = field
        .chunk()
        .await
        .map_err(|_| multipart_invalid("the multipart body is malformed or was cut off"))?
    {
        if raw.len() + chunk.len() > ID_FIELD_MAX {
            return Err(bad());
        }
        raw.extend_from_slice(&chunk);
    }
    let text = std::str::from_utf8(&raw).map_err(|_| bad())?;
    Uuid::try_parse(text.trim())
        .map(ConversationId)
        .map_err(|_| bad())
}

/// Upload a file into a conversation (participants who may send there). The type is detected
/// from the content; the name is only for display.
#[utoipa::path(post, path = "/files", tag = "files",
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses((status = 201, body = FileInfo), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn upload_file(
    State(state): State<AppState>,
    caller: Caller,
    axum::Extension(started): axum::Extension<FileStarted>,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<(StatusCode, Json<FileInfo>)> {
    let mut mp = multipart.map_err(|_| {
        ApiError::bad_request(
            "multipart_invalid",
            "send multipart/form-data with the fields conversation_id and file",
            "file",
        )
    })?;
    let max = state.files.config.max_upload_bytes;
    let mut grant = None;
    let mut info = None;
    loop {
        let field = match mp.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(_) => {
                return Err(multipart_invalid(
                    "the multipart body is malformed or was cut off",
                ))
            }
        };
        match field.name() {
            Some("conversation_id") if grant.is_none() && info.is_none() => {
                let conv = id_field(field).await?;
                grant = Some(state.services.authorize_upload(&caller.actor, conv).await?);
            }
            Some("file") if info.is_none() => {
                let Some(grant) = grant.as_ref() else {
                    return Err(ApiError::invalid(
                        "required",
                        "send conversation_id before file",
                        "conversation_id",
                    ));
                };
                let name = FileName::sanitize(field.file_name().unwrap_or_default());
                // Its headers are read: its bytes are the file's, under the file's own limit.
                started.0.store(true, std::sync::atomic::Ordering::Release);
                let stored = store_upload(
                    &state.files,
                    &state.services,
                    &caller.actor,
                    grant,
                    name,
                    field,
                )
                .await
                .map_err(|e| upload_error(e, max))?;
                info = Some(stored);
                // The file is stored: whatever follows it is not read.
                break;
            }
            Some(other @ ("conversation_id" | "file")) => {
                return Err(ApiError::invalid(
                    "duplicate_field",
                    format!("`{other}` was sent twice"),
                    other.to_owned(),
                ))
            }
            other => {
                return Err(ApiError::invalid(
                    "unknown_field",
                    "only conversation_id and file are accepted",
                    other.unwrap_or_default().to_owned(),
                ))
            }
        }
    }
    match (grant, info) {
        (_, Some(info)) => Ok((StatusCode::CREATED, Json(info))),
        (None, None) => Err(ApiError::invalid(
            "required",
            "conversation_id is required",
            "conversation_id",
        )),
        (Some(_), None) => Err(ApiError::invalid("required", "file is required", "file")),
    }
}

#[derive(Serialize, ToSchema)]
pub struct SignedUrl {
    /// `<public URL>/media/{id}?exp=&sig=`: works without other credentials until it expires.
    url: String,
    expires_at: DateTime<Utc>,
}

fn media_path(id: FileId) -> String {
    format!("/media/{id}")
}

/// A signed, time-bounded download URL (participants of the file's conversation only).
#[utoipa::path(get, path = "/files/{id}/url", tag = "files", params(("id" = String, Path, format = Uuid)),
    responses((status = 200, body = SignedUrl), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn file_url(me: Caller<FileId>) -> ApiResult<Json<SignedUrl>> {
    let state = me.state();
    let file = state.services.file_for_download(&me.actor, me.at).await?;
    let ttl = chrono::Duration::from_std(state.files.config.url_ttl)
        .unwrap_or(chrono::Duration::hours(1));
    let expires_at = chrono::SubsecRound::trunc_subsecs(state.services.clock.now() + ttl, 0);
    let exp = expires_at.timestamp();
    let path = media_path(file.info.id);
    let sig = media_signature(state.services.keys.media_url.expose_secret(), &path, exp);
    Ok(Json(SignedUrl {
        url: format!("{}{path}?exp={exp}&sig={sig}", state.public_url),
        expires_at,
    }))
}

#[derive(Deserialize)]
struct MediaQuery {
    exp: i64,
    sig: String,
}

fn url_refused() -> ApiError {
    ApiError::forbidden(
        "url_invalid",
        "this download link is invalid or has expired; ask for a new one",
    )
}

/// RFC 6266 / RFC 8187: an ASCII fallback `filename` and the exact name as `filename*`.
fn content_disposition(name: &FileName, inline: bool) -> HeaderValue {
    let fallback: String = name
        .as_str()
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded = utf8_percent_encode(name.as_str(), NON_ALPHANUMERIC);
    let kind = if inline { "inline" } else { "attachment" };
    HeaderValue::from_str(&format!(
        "{kind}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

/// Serves a file to the holder of a valid signed URL; 403 when it is altered or expired.
pub async fn media(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    match serve_media(&state, &raw_id, query.as_deref().unwrap_or_default()).await {
        Ok(res) => res,
        Err(e) => e.into_response(),
    }
}

async fn serve_media(state: &AppState, raw_id: &str, query: &str) -> ApiResult<Response> {
    let id = Uuid::try_parse(raw_id)
        .map(FileId)
        .map_err(|_| url_refused())?;
    let q: MediaQuery = serde_urlencoded::from_str(query).map_err(|_| url_refused())?;
    let key = state.services.keys.media_url.expose_secret();
    if !media_signature_valid(key, &media_path(id), q.exp, &q.sig) {
        return Err(url_refused());
    }
    if q.exp <= state.services.clock.now().timestamp() {
        return Err(url_refused());
    }
    let file = state.services.file_for_signed_url(id).await?;
    let stream = state.files.read(&file.storage_key).await.map_err(|e| {
        tracing::error!(error = %e, file = %file.info.id, "reading a stored file");
        ApiError::internal()
    })?;
    let inline = INLINE_TYPES.contains(&file.info.mime.as_str());
    let content_type = if file.info.mime == "text/plain" {
        "text/plain; charset=utf-8".to_owned()
    } else {
        file.info.mime.clone()
    };
    let mut res = Response::new(Body::from_stream(stream));
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&content_type)
            .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream")),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(file.info.size));
    h.insert(
        header::CONTENT_DISPOSITION,
        content_disposition(&file.info.name, inline),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disposition_has_both_forms() {
        let name = FileName::sanitize("résumé \"final\".pdf");
        let v = content_disposition(&name, false);
        let v = v.to_str().unwrap();
        assert!(v.starts_with("attachment; filename=\"r_sum_ _final_.pdf\"; filename*=UTF-8''"));
        assert!(v.contains("r%C3%A9sum%C3%A9%20%22final%22%2Epdf"));
        let v = content_disposition(&FileName::sanitize("a.png"), true);
        assert!(v.to_str().unwrap().starts_with("inline;"));
    }
}
