//! RATE-5, slow-client protection: the accept loop that serves the router over HTTP/1.1.
//!
//! - **Connection cap**: a semaphore permit is taken before each accept and travels with the
//!   socket (through a WebSocket upgrade too), so at the cap further clients wait in the
//!   kernel's accept backlog until a connection closes.
//! - **Header-read timeout**: once the first byte of a request arrives, its headers must be
//!   complete within `header_read_timeout` (a new connection's first request: counted from the
//!   accept, so a client that connects and says nothing is dropped just as fast).
//! - **Idle timeout**: a keep-alive connection that waits `idle_timeout` for its next request is
//!   closed. A request in flight is never cut.
//! - **Body timeout** (`http::limits::body_deadline`, a router layer): once a request's head has arrived, its
//!   whole body must arrive within `body_timeout`; past it the request is answered 408 with the
//!   JSON error shape and the connection closed, so a trickled body cannot hold a connection.
//!   A handler that has its body may take as long as it needs.
//! - **Per-IP cap**: at most `max_connections_per_ip` open connections from one address (an
//!   IPv6 client: its /64, as the rate limits key it); a further one is answered 429
//!   `too_many_connections` and closed at once. Trusted proxies are exempt: their connections
//!   carry many clients, and the overall cap still holds.
//! - **No Nagle**: every accepted socket gets `TCP_NODELAY` (`accept`), so a small gateway
//!   frame never waits for the ACK of the previous one (a delayed ACK holds it up to 40 ms).
//!
//! Both timeouts are hyper's header-read timer, driven by a timer that knows whether the
//! connection is between requests (something was already answered and no byte of the next
//! request has arrived) — hyper alone would close idle keep-alive connections after the header
//! timeout. Cleartext HTTP/2 is not served: TLS is terminated by a proxy that speaks HTTP/1.1
//! to us. Shutdown matches `axum::serve`: stop accepting, let every connection finish its
//! request and close, and wait for them (upgraded WebSockets are the gateway's to close).
//!
//! A response sent before its request body was read to the end (413, or a handler that
//! refused early) says `Connection: close`: the connection cannot carry another request, and
//! a client told so will not reuse it and lose its next request to the closing socket.

use crate::config::ConnectionLimits;
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderValue, Request, StatusCode};
use axum::Router;
use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::rt::{Sleep, Timer};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt;

/// Open connections per client address, for the per-IP cap.
#[derive(Debug, Default)]
struct PerIp(Mutex<HashMap<String, usize>>);

/// One counted connection; uncounted when dropped (with the connection).
struct IpSlot {
    table: Arc<PerIp>,
    key: String,
}

impl PerIp {
    /// A slot for one more connection from `key`, or `None` at the cap.
    fn take(self: &Arc<Self>, key: String, cap: usize) -> Option<IpSlot> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let open = map.entry(key.clone()).or_insert(0);
        if *open >= cap {
            return None;
        }
        *open += 1;
        Some(IpSlot {
            table: self.clone(),
            key,
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut map = self.table.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(open) = map.get_mut(&self.key) {
            *open -= 1;
            if *open == 0 {
                map.remove(&self.key);
            }
        }
    }
}

/// Answers a connection over the per-IP cap and closes it (bounded: a peer that does not
/// read its answer is dropped after a second).
async fn refuse_connection(mut stream: TcpStream) {
    use tokio::io::AsyncWriteExt;
    let id = uuid::Uuid::now_v7().to_string();
    let body = serde_json::json!({"error": {
        "code": "too_many_connections",
        "message": "too many open connections from this address",
        "field": null,
        "request_id": id,
    }})
    .to_string();
    // The headers the middleware gives every other answer (it never sees this one).
    let mut headers = format!(
        "Content-Security-Policy: {}\r\nCache-Control: no-store\r\n",
        crate::headers::DEFAULT_CSP
    );
    for (name, value) in crate::headers::FIXED_SECURITY_HEADERS {
        headers.push_str(&format!("{name}: {value}\r\n"));
    }
    let answer = format!(
        "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nContent-Length: {}\r\nRetry-After: 1\r\nX-Request-Id: {id}\r\n{headers}Connection: close\r\n\r\n{body}",
        body.len()
    );
    let write = async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
}

/// Serves `router` on `listener` until `shutdown` resolves, then drains (see the module docs).
/// Handlers see the peer as `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let per_ip = Arc::new(PerIp::default());
    // Dropping `signal_tx` tells connections to finish; `close_tx` resolves once all have.
    let (signal_tx, signal_rx) = watch::channel(());
    let (close_tx, close_rx) = watch::channel(());
    let mut shutdown = pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = accept(&listener) => match accepted {
                Ok(conn) => conn,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // Out of descriptors or similar: back off instead of spinning.
                    tracing::error!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
        };
        let ip = peer.ip().to_canonical();
        let slot = if limits.trusted_proxies.iter().any(|net| net.contains(&ip)) {
            None
        } else {
            match per_ip.take(super::ip_key(ip), limits.max_connections_per_ip) {
                Some(slot) => Some(slot),
                None => {
                    drop(permit);
                    tokio::spawn(refuse_connection(stream));
                    continue;
                }
            }
        };
        tokio::spawn(serve_connection(
            stream,
            peer,
            (permit, slot),
            router.clone(),
            limits.clone(),
            signal_rx.clone(),
            close_rx.clone(),
        ));
    }
    drop(listener);
    drop(signal_rx);
    drop(close_rx);
    drop(signal_tx);
    close_tx.closed().await;
    Ok(())
}

/// Accepts the next connection and sets its socket up: `TCP_NODELAY`, so that a small write (a
/// gateway frame, a short response) leaves at once instead of waiting, under Nagle's algorithm,
/// for the peer to acknowledge the previous one — with the peer's delayed ACK that is a stall
/// of up to 40 ms on a push channel. Frames queued together still leave in one write (the
/// gateway flushes once per batch).
async fn accept(listener: &TcpListener) -> std::io::Result<(TcpStream, SocketAddr)> {
    let (stream, peer) = listener.accept().await?;
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(%peer, error = %e, "could not set TCP_NODELAY");
    }
    Ok((stream, peer))
}

fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    permit: (OwnedSemaphorePermit, Option<IpSlot>),
    router: Router,
    limits: ConnectionLimits,
    mut signal: watch::Receiver<()>,
    close: watch::Receiver<()>,
) {
    let activity = Arc::new(Activity::default());
    let (permit, slot) = permit;
    let io = TokioIo::new(TrackedStream {
        inner: stream,
        activity: activity.clone(),
        hold: Hold {
            _permit: permit,
            _slot: slot,
        },
    });
    let service = TowerToHyperService::new(tower::service_fn(move |req: Request<Incoming>| {
        let router = router.clone();
        async move {
            let (mut parts, body) = req.into_parts();
            parts.extensions.insert(ConnectInfo(peer));
            let (body, read) = TrackedBody::new(body);
            let mut res = router.oneshot(Request::from_parts(parts, body)).await?;
            let upgrade = res.status() == StatusCode::SWITCHING_PROTOCOLS;
            if !upgrade && !read.load(Ordering::Relaxed) {
                res.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Ok::<_, std::convert::Infallible>(res)
        }
    }));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(HeadTimer {
            activity,
            header: limits.header_read_timeout,
            idle: limits.idle_timeout,
        })
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let mut conn = pin!(builder.serve_connection(io, service).with_upgrades());
    let mut draining = false;
    loop {
        tokio::select! {
            served = conn.as_mut() => {
                if let Err(e) = served {
                    tracing::debug!(%peer, error = %e, "connection ended");
                }
                break;
            }
            _ = signal.changed(), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
    drop(close);
}

/// A request body that notes when it has been read to the end (by the router, for
/// `Connection: close`; by `http::limits::body_deadline`, to stop its clock).
pub struct TrackedBody<B> {
    inner: B,
    read: Arc<AtomicBool>,
}

impl<B: Body> TrackedBody<B> {
    /// Wraps `inner`; the flag turns `true` once it has been read to the end.
    pub fn new(inner: B) -> (Self, Arc<AtomicBool>) {
        let read = Arc::new(AtomicBool::new(inner.is_end_stream()));
        let tracked = Self {
            inner,
            read: read.clone(),
        };
        (tracked, read)
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for TrackedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.read.store(true, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Bytes moved on one connection, for `HeadTimer`.
#[derive(Debug, Default)]
struct Activity {
    read: AtomicU64,
    written: AtomicU64,
}

/// The socket, counting bytes and holding the connection's permit and per-IP slot until it
/// closes (through a WebSocket upgrade too).
pub(crate) struct TrackedStream {
    inner: TcpStream,
    activity: Arc<Activity>,
    hold: Hold,
}

/// What keeps a connection counted: its permit under the connection cap and its per-IP slot,
/// released when dropped.
pub(crate) struct Hold {
    _permit: OwnedSemaphorePermit,
    _slot: Option<IpSlot>,
}

impl TrackedStream {
    /// The socket and what keeps it counted, for a protocol that takes the socket over after an
    /// upgrade (the gateway); the byte counts only serve HTTP's timeouts.
    pub(crate) fn into_socket(self) -> (TcpStream, Hold) {
        (self.inner, self.hold)
    }
}

impl AsyncRead for TrackedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.activity.read.fetch_add(n as u64, Ordering::Relaxed);
        }
        polled
    }
}

impl AsyncWrite for TrackedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            self.activity.written.fetch_add(n as u64, Ordering::Relaxed);
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = polled {
            self.activity.written.fetch_add(n as u64, Ordering::Relaxed);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Hyper's timer for one connection. Hyper starts it whenever it waits for a request head.
/// Before anything was answered that is the first request: the header deadline counts from
/// now. Afterwards the connection is idle until a byte of the next request arrives: the idle
/// deadline applies, then the header deadline from that byte.
#[derive(Clone)]
struct HeadTimer {
    activity: Arc<Activity>,
    header: Duration,
    idle: Duration,
}

impl HeadTimer {
    fn head_deadline(&self, header_deadline: Instant) -> HeadDeadline {
        let idle = self.activity.written.load(Ordering::Relaxed) > 0;
        let deadline = if idle {
            Instant::now() + self.idle
        } else {
            header_deadline
        };
        HeadDeadline {
            activity: self.activity.clone(),
            header: self.header,
            read_while_idle: idle.then(|| self.activity.read.load(Ordering::Relaxed)),
            sleep: Box::pin(tokio::time::sleep_until(deadline.into())),
        }
    }
}

impl Timer for HeadTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        Box::pin(self.head_deadline(Instant::now() + duration))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        Box::pin(self.head_deadline(deadline))
    }
}

struct HeadDeadline {
    activity: Arc<Activity>,
    header: Duration,
    /// While idle: the bytes read when idling began; `None` once the head started.
    read_while_idle: Option<u64>,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl Future for HeadDeadline {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        if let Some(before) = this.read_while_idle {
            if this.activity.read.load(Ordering::Relaxed) > before {
                this.read_while_idle = None;
                let deadline = tokio::time::Instant::now() + this.header;
                this.sleep.as_mut().reset(deadline);
            }
        }
        this.sleep.as_mut().poll(cx)
    }
}

impl Sleep for HeadDeadline {}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepted_sockets_have_nagle_off() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = TcpStream::connect(addr).await.unwrap();
        let (server_side, peer) = accept(&listener).await.unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        assert!(
            server_side.nodelay().unwrap(),
            "TCP_NODELAY must be set on every accepted socket"
        );
        // A fresh socket has Nagle on: the flag above is the accept path's doing.
        assert!(!client.nodelay().unwrap());
    }
}
