//! A connection's outbound side: the WebSocket frames it is owed, in order, as bytes, and the
//! socket they go to. Whoever queues frames writes them, without waiting: the hub after each
//! burst of events (every frame a connection got from the burst in one write, and no task woken
//! for it), the connection task for its own frames. Only when the socket would block does the
//! connection task take over, waiting for the socket to drain what is left.
//!
//! A client that reads too slowly is found here: frames queued since the buffer was last empty
//! are counted, and past the limit the hub drops the connection ("too slow", 4000). A drained
//! buffer is released, so an idle connection holds no outbound memory.

use bytes::BytesMut;
use futures::task::AtomicWaker;
use std::io;
use std::pin::Pin;
#[cfg(test)]
use std::sync::Arc;
use std::sync::Mutex;
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use tokio::net::tcp::OwnedWriteHalf;

/// The client has not read `max_queued` frames: it is too slow to keep.
#[derive(Debug, PartialEq, Eq)]
pub struct Full;

/// What the connection task must act on.
#[derive(Debug, PartialEq, Eq)]
pub enum Signal {
    /// The hub dropped the connection: close with this code.
    Close(u16, &'static str),
    /// Writing failed: the client is gone.
    Gone,
}

pub struct Outbox {
    inner: Mutex<Inner>,
    /// The connection task: woken when the socket would block, failed, or the hub closed it.
    task: AtomicWaker,
}

struct Inner {
    /// `None` for a detached outbox (tests): bytes stay queued for the test to read.
    socket: Option<OwnedWriteHalf>,
    bytes: BytesMut,
    /// Frames counted against the limit since `bytes` was last empty.
    queued: usize,
    max_queued: usize,
    /// The socket would block: the connection task waits for it, nobody else writes.
    blocked: bool,
    /// A write failed: nothing more is written.
    broken: bool,
    /// Set by the hub when it drops the connection.
    close: Option<(u16, &'static str)>,
    /// Tests: a detached outbox that writes into this instead, taking everything at once.
    #[cfg(test)]
    sink: Option<BytesMut>,
    /// Tests: how many writes the sink took.
    #[cfg(test)]
    sink_writes: usize,
}

impl Inner {
    fn queue(&mut self, frame: impl FnOnce(&mut BytesMut), counted: bool) -> Result<bool, Full> {
        if counted {
            if self.queued >= self.max_queued {
                return Err(Full);
            }
            self.queued += 1;
        }
        if self.broken {
            return Ok(false);
        }
        let first = self.bytes.is_empty();
        frame(&mut self.bytes);
        Ok(first && !self.blocked)
    }

    /// Writes what the socket takes now. `true` when the task has to be woken (the socket
    /// would block, or failed).
    fn write_now(&mut self) -> bool {
        if self.blocked || self.broken || self.bytes.is_empty() {
            return false;
        }
        let Some(socket) = &self.socket else {
            #[cfg(test)]
            if let Some(sink) = &mut self.sink {
                sink.extend_from_slice(&self.bytes);
                self.sink_writes += 1;
                self.drained();
            }
            return false;
        };
        loop {
            match socket.try_write(&self.bytes) {
                Ok(n) if n == self.bytes.len() => {
                    self.drained();
                    return false;
                }
                Ok(0) => {
                    self.fail();
                    return true;
                }
                Ok(n) => {
                    let _ = self.bytes.split_to(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.blocked = true;
                    return true;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.fail();
                    return true;
                }
            }
        }
    }

    /// Writes until the buffer is empty; `Pending` (the caller woken later) while the socket
    /// would block.
    fn poll_write_all(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.broken {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        let Some(socket) = self.socket.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        while !self.bytes.is_empty() {
            match Pin::new(&mut *socket).poll_write(cx, &self.bytes) {
                Poll::Ready(Ok(0)) => {
                    self.fail();
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                Poll::Ready(Ok(n)) => {
                    let _ = self.bytes.split_to(n);
                }
                Poll::Ready(Err(e)) => {
                    self.fail();
                    return Poll::Ready(Err(e));
                }
                Poll::Pending => {
                    self.blocked = true;
                    return Poll::Pending;
                }
            }
        }
        self.drained();
        Poll::Ready(Ok(()))
    }

    fn drained(&mut self) {
        // Released, not kept: an idle connection holds no outbound buffer.
        self.bytes = BytesMut::new();
        self.queued = 0;
        self.blocked = false;
    }

    fn fail(&mut self) {
        self.broken = true;
        self.bytes = BytesMut::new();
    }
}

impl Outbox {
    /// The outbound side of `socket`; the hub drops the client once `max_queued` of its
    /// frames wait.
    #[must_use]
    pub fn new(socket: OwnedWriteHalf, max_queued: usize) -> Self {
        Self::with_socket(Some(socket), max_queued)
    }

    /// An outbox with no socket: frames stay queued (tests read them with `take`).
    #[cfg(test)]
    #[must_use]
    pub fn detached(max_queued: usize) -> Self {
        Self::with_socket(None, max_queued)
    }

    /// An outbox with no socket whose writes always take everything (tests read what was
    /// written with `written`): a client that reads as fast as frames come.
    #[cfg(test)]
    #[must_use]
    pub fn sink(max_queued: usize) -> Self {
        let out = Self::with_socket(None, max_queued);
        out.lock().sink = Some(BytesMut::new());
        out
    }

    fn with_socket(socket: Option<OwnedWriteHalf>, max_queued: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                socket,
                bytes: BytesMut::new(),
                queued: 0,
                max_queued,
                blocked: false,
                broken: false,
                close: None,
                #[cfg(test)]
                sink: None,
                #[cfg(test)]
                sink_writes: 0,
            }),
            task: AtomicWaker::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a frame the hub sends (counted against the limit) without writing it: `Ok(true)`
    /// when the caller should `flush` this outbox once its burst is queued.
    pub fn queue(&self, frame: impl FnOnce(&mut BytesMut)) -> Result<bool, Full> {
        self.lock().queue(frame, true)
    }

    /// Writes what the socket takes now, without waiting; what it does not take is left to the
    /// connection task.
    pub fn flush(&self) {
        if self.lock().write_now() {
            self.task.wake();
        }
    }

    /// Queues and writes one of the connection's own frames (not counted against the limit);
    /// `false` once the socket has failed.
    pub fn send(&self, frame: impl FnOnce(&mut BytesMut)) -> bool {
        let mut inner = self.lock();
        let _ = inner.queue(frame, false);
        inner.write_now();
        !inner.broken
    }

    /// The hub dropped the connection: the task closes it with `code`.
    pub fn close(&self, code: u16, why: &'static str) {
        self.lock().close.get_or_insert((code, why));
        self.task.wake();
    }

    /// For the connection task: drains a blocked buffer as the socket allows, and resolves
    /// when the hub closed the connection or the socket failed.
    pub fn poll_signal(&self, cx: &mut Context<'_>) -> Poll<Signal> {
        self.task.register(cx.waker());
        let mut inner = self.lock();
        if let Some((code, why)) = inner.close {
            return Poll::Ready(Signal::Close(code, why));
        }
        if inner.blocked {
            // Pending registers the task with the socket; an error marks it broken.
            let _ = inner.poll_write_all(cx);
        }
        if inner.broken {
            return Poll::Ready(Signal::Gone);
        }
        Poll::Pending
    }

    /// Appends bytes the WebSocket codec wrote (whole frames: control answers, the close
    /// frame) and writes what the socket takes now.
    pub fn write_raw(&self, buf: &[u8]) -> io::Result<usize> {
        let mut inner = self.lock();
        if inner.broken {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        let _ = inner.queue(|b| b.extend_from_slice(buf), false);
        if inner.write_now() {
            drop(inner);
            self.task.wake();
        }
        Ok(buf.len())
    }

    /// Writes everything queued, waiting for the socket as needed.
    pub fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.lock().poll_write_all(cx)
    }

    /// Writes everything queued, then shuts the socket's sending side.
    pub fn poll_shutdown(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut inner = self.lock();
        match inner.poll_write_all(cx) {
            Poll::Ready(Ok(())) => {}
            other => return other,
        }
        match inner.socket.as_mut() {
            Some(socket) => Pin::new(socket).poll_shutdown(cx),
            None => Poll::Ready(Ok(())),
        }
    }

    /// The frames queued so far (detached outboxes), which empties the buffer as a write
    /// would; the hub's close, if any, comes last.
    #[cfg(test)]
    pub fn take(&self) -> (Vec<String>, Option<(u16, &'static str)>) {
        let mut inner = self.lock();
        let frames = text_frames(&inner.bytes);
        inner.drained();
        (frames, inner.close)
    }

    /// What a sink outbox wrote so far, and the hub's close, if any.
    #[cfg(test)]
    pub fn written(&self) -> (Vec<String>, Option<(u16, &'static str)>) {
        let inner = self.lock();
        (
            text_frames(inner.sink.as_deref().unwrap_or_default()),
            inner.close,
        )
    }

    /// How many writes a sink outbox took so far.
    #[cfg(test)]
    pub fn sink_writes(&self) -> usize {
        self.lock().sink_writes
    }

    /// Bytes waiting and the buffer's capacity.
    #[cfg(test)]
    fn held(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.bytes.len(), inner.bytes.capacity())
    }
}

/// The payloads of the unmasked final text frames in `bytes`.
#[cfg(test)]
fn text_frames(bytes: &[u8]) -> Vec<String> {
    let mut frames = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let (len, header) = match rest[1] {
            126 => (usize::from(u16::from_be_bytes([rest[2], rest[3]])), 4),
            127 => {
                let mut n = [0; 8];
                n.copy_from_slice(&rest[2..10]);
                (
                    usize::try_from(u64::from_be_bytes(n)).unwrap_or(usize::MAX),
                    10,
                )
            }
            n => (usize::from(n), 2),
        };
        assert_eq!(rest[0], 0x81, "a final text frame");
        frames.push(String::from_utf8(rest[header..header + len].to_vec()).unwrap());
        rest = &rest[header + len..];
    }
    frames
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::protocol::put_text_frame;
    use futures::StreamExt;
    use std::future::poll_fn;
    use std::time::Duration;
    use tokio::net::{TcpListener, TcpStream};
    use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::WebSocketStream;

    /// A server-side outbox on a loopback socket, and the client end read as WebSocket frames.
    async fn pair(max_queued: usize) -> (Arc<Outbox>, WebSocketStream<TcpStream>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let (_read, write) = server.into_split();
        let config = WebSocketConfig::default().max_message_size(None);
        let ws = WebSocketStream::from_raw_socket(client, Role::Client, Some(config)).await;
        (Arc::new(Outbox::new(write, max_queued)), ws)
    }

    async fn text(ws: &mut WebSocketStream<TcpStream>) -> String {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => t.as_str().to_owned(),
            other => panic!("a text frame, got {other:?}"),
        }
    }

    /// Polls once: what `poll_signal` says now.
    async fn signal(out: &Outbox) -> Poll<Signal> {
        poll_fn(|cx| Poll::Ready(out.poll_signal(cx))).await
    }

    #[tokio::test]
    async fn a_burst_leaves_in_order_in_one_write_and_the_buffer_is_released() {
        let (out, mut ws) = pair(8).await;
        let frame = |n: usize| move |b: &mut BytesMut| put_text_frame(b, &[&format!("frame {n}")]);
        assert_eq!(
            out.queue(frame(1)),
            Ok(true),
            "the first frame asks for a write"
        );
        assert_eq!(out.queue(frame(2)), Ok(false), "the next ones ride along");
        assert!(
            out.send(frame(3)),
            "the connection's own frame writes them all"
        );
        assert_eq!(out.held(), (0, 0), "a drained outbox holds no buffer");
        assert_eq!(out.queue(frame(4)), Ok(true));
        out.flush();
        for n in 1..=4 {
            assert_eq!(text(&mut ws).await, format!("frame {n}"));
        }
        assert!(signal(&out).await.is_pending(), "nothing for the task");
    }

    #[tokio::test]
    async fn a_client_that_stops_reading_is_found_slow_and_the_task_drains_the_rest() {
        let (out, mut ws) = pair(16).await;
        let big = "x".repeat(64 * 1024);
        let mut queued = 0;
        while out.queue(|b| put_text_frame(b, &[&big])).is_ok() {
            out.flush();
            queued += 1;
            assert!(queued < 10_000, "the socket never filled up");
        }
        // The socket would block: the last 16 frames wait, and only the task writes now.
        assert!(out.held().0 > 15 * big.len());
        assert!(signal(&out).await.is_pending());
        let reader = tokio::spawn(async move {
            for _ in 0..queued {
                assert_eq!(text(&mut ws).await.len(), big.len());
            }
            ws
        });
        tokio::time::timeout(
            Duration::from_secs(10),
            poll_fn(|cx| match out.poll_signal(cx) {
                Poll::Ready(s) => panic!("no signal expected: {s:?}"),
                Poll::Pending if out.held().0 == 0 => Poll::Ready(()),
                Poll::Pending => Poll::Pending,
            }),
        )
        .await
        .expect("the task drains the outbox once the client reads");
        let _ws = reader.await.unwrap();
        assert_eq!(out.held(), (0, 0));
        assert_eq!(
            out.queue(|b| put_text_frame(b, &["again"])),
            Ok(true),
            "the count restarted"
        );
    }

    #[tokio::test]
    async fn the_task_hears_of_the_hubs_close_and_of_a_lost_client() {
        let (out, ws) = pair(8).await;
        out.close(4000, "too slow");
        out.close(4004, "later closes do not replace the first");
        assert_eq!(
            signal(&out).await,
            Poll::Ready(Signal::Close(4000, "too slow"))
        );

        let (out, ws2) = pair(8).await;
        drop((ws, ws2));
        let gone = tokio::time::timeout(Duration::from_secs(10), async {
            while out.send(|b| put_text_frame(b, &["anyone?"])) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert!(gone.is_ok(), "writes to a closed peer fail");
        assert_eq!(signal(&out).await, Poll::Ready(Signal::Gone));
        assert!(out.write_raw(b"x").is_err());
    }
}
