//! The gateway's WebSocket transport: the RFC 6455 handshake on the upgrade request, then the
//! TCP socket split in two — read through the WebSocket codec (tungstenite: frames, masking,
//! pings, the close handshake) by the connection task, written through the connection's
//! [`Outbox`], which the hub writes to directly. The codec's own writes (pongs, close frames) go
//! through the same outbox, so every frame leaves whole and in order.

use super::outbox::Outbox;
use crate::ratelimit::connections::{Hold, TrackedStream};
use axum::body::Body;
use axum::http::{header, request, HeaderValue, Method, StatusCode};
use axum::response::Response;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::tcp::OwnedReadHalf;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

/// What the codec reads into at first. Clients send small frames (heartbeats, IDENTIFY); a
/// larger one grows the buffer for itself.
const READ_BUFFER: usize = 512;

/// A WebSocket upgrade request, checked (RFC 6455 §4.2.1) and holding hyper's handle on the
/// connection.
pub struct Handshake {
    key: HeaderValue,
    on_upgrade: OnUpgrade,
}

/// How an accepted socket is set up.
#[derive(Debug, Clone, Copy)]
pub struct SocketLimits {
    /// Inbound frames and messages past this are refused by the codec.
    pub frame_max_bytes: usize,
    /// Frames that may wait for a slow client before the hub drops it.
    pub queue_frames: usize,
}

impl Handshake {
    /// The handshake of a WebSocket upgrade request: `GET`, `Connection: upgrade`,
    /// `Upgrade: websocket`, `Sec-WebSocket-Version: 13` and a key; `None` for any other request.
    pub fn of(parts: &mut request::Parts) -> Option<Self> {
        let header = |name: header::HeaderName| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
        };
        let upgrade = parts.method == Method::GET
            && header(header::CONNECTION)
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            && header(header::UPGRADE).eq_ignore_ascii_case("websocket")
            && header(header::SEC_WEBSOCKET_VERSION) == "13";
        let key = parts.headers.get(header::SEC_WEBSOCKET_KEY)?.clone();
        if !upgrade {
            return None;
        }
        let on_upgrade = parts.extensions.remove::<OnUpgrade>()?;
        Some(Self { key, on_upgrade })
    }

    /// Answers `101 Switching Protocols`; once hyper hands the connection over, runs `serve`
    /// on its socket, in a task of its own. The socket comes boxed: handed down through the
    /// connection's futures, it is not copied into each one's state.
    pub fn accept<F, Fut>(self, limits: SocketLimits, serve: F) -> Response
    where
        F: FnOnce(Box<Socket>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let accept = derive_accept_key(self.key.as_bytes());
        let on_upgrade = self.on_upgrade;
        tokio::spawn(async move {
            let Ok(upgraded) = on_upgrade.await else {
                return;
            };
            match Socket::open(upgraded, limits).await {
                Some(socket) => serve(socket).await,
                None => tracing::error!("an upgraded gateway connection was not a TCP socket"),
            }
        });
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        if let Ok(value) = HeaderValue::from_str(&accept) {
            headers.insert(header::SEC_WEBSOCKET_ACCEPT, value);
        }
        response
    }
}

/// An upgraded gateway socket: frames in through `ws`, out through `out`.
pub struct Socket {
    pub ws: WebSocketStream<GatewayIo>,
    pub out: Arc<Outbox>,
}

impl Socket {
    /// Takes the TCP socket back from hyper (every connection is served by
    /// `ratelimit::connections`, so it is a `TrackedStream`) with the bytes hyper read past the
    /// request, if any.
    async fn open(upgraded: hyper::upgrade::Upgraded, limits: SocketLimits) -> Option<Box<Self>> {
        let parts = upgraded.downcast::<TokioIo<TrackedStream>>().ok()?;
        let (stream, hold) = parts.io.into_inner().into_socket();
        let (read, write) = stream.into_split();
        let out = Arc::new(Outbox::new(write, limits.queue_frames));
        let io = GatewayIo {
            read,
            out: out.clone(),
            _hold: hold,
        };
        let config = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER)
            .write_buffer_size(0)
            .max_message_size(Some(limits.frame_max_bytes))
            .max_frame_size(Some(limits.frame_max_bytes));
        let ws = if parts.read_buf.is_empty() {
            WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await
        } else {
            let early = parts.read_buf.to_vec();
            WebSocketStream::from_partially_read(io, early, Role::Server, Some(config)).await
        };
        Some(Box::new(Self { ws, out }))
    }
}

/// The socket as the codec sees it: reads from the TCP socket, writes into the outbox.
pub struct GatewayIo {
    read: OwnedReadHalf,
    out: Arc<Outbox>,
    /// Keeps the connection counted (cap and per-address slot) until the socket closes.
    _hold: Hold,
}

impl AsyncRead for GatewayIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.read).poll_read(cx, buf)
    }
}

impl AsyncWrite for GatewayIo {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(self.out.write_raw(buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.out.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.out.poll_shutdown(cx)
    }
}
