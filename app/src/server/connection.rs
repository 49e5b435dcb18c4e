//! One client connection: HTTP/1.1 on hyper, with the time limits a proxy
//! would apply. Each connection is in one of three phases:
//!
//! - **head**: bytes of a request have arrived (or the connection is new)
//!   and its headers are not complete: they must be within
//!   `server.header_timeout_ms` of the first byte (slow-header clients);
//! - **busy**: a request is being served; its body has its own limits
//!   (`middleware::read_body`), the handler its deadline;
//! - **idle**: a keep-alive connection between requests, closed after
//!   `server.idle_timeout_ms`.
//!
//! In every phase a client that takes no response bytes for
//! `server.write_timeout_ms` is cut off. On shutdown, idle and head-phase
//! connections close at once and busy ones after their response; a client
//! that then takes no response bytes for a second is cut off.

use std::{
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll, Waker},
    time::Duration,
};

use http_body_util::BodyExt;
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use poem::{
    Addr, Endpoint,
    http::uri::Scheme,
    web::{LocalAddr, RemoteAddr},
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
    time::{Instant, Sleep},
};

use crate::config::ServerConfig;
use crate::drain::Draining;

/// The time limits of a connection.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    header: Duration,
    idle: Duration,
    write: Duration,
}

impl From<&ServerConfig> for Limits {
    fn from(c: &ServerConfig) -> Self {
        Self {
            header: Duration::from_millis(c.header_timeout_ms),
            idle: Duration::from_millis(c.idle_timeout_ms),
            write: Duration::from_millis(c.write_timeout_ms),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Head,
    Busy,
    Idle,
}

/// The phase of a connection and since when it is in it, shared between
/// the socket (which sees bytes) and the service (which sees requests).
#[derive(Debug)]
struct Activity(Mutex<State>);

#[derive(Debug)]
struct State {
    phase: Phase,
    since: Instant,
    in_flight: usize,
    /// A read waiting without a deadline (while busy), to be woken when
    /// the connection turns idle and its idle deadline starts.
    reader: Option<Waker>,
}

impl Activity {
    fn new() -> Self {
        Self(Mutex::new(State { phase: Phase::Head, since: Instant::now(), in_flight: 0, reader: None }))
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut state = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut state)
    }

    fn bytes_arrived(&self) {
        self.with(|s| {
            if s.phase == Phase::Idle {
                s.phase = Phase::Head;
                s.since = Instant::now();
            }
        });
    }

    fn request_started(&self) {
        self.with(|s| {
            s.phase = Phase::Busy;
            s.in_flight += 1;
        });
    }

    fn response_finished(&self) {
        let reader = self.with(|s| {
            s.in_flight = s.in_flight.saturating_sub(1);
            if s.in_flight > 0 {
                return None;
            }
            s.phase = Phase::Idle;
            s.since = Instant::now();
            s.reader.take()
        });
        if let Some(reader) = reader {
            reader.wake();
        }
    }

    fn is_busy(&self) -> bool {
        self.with(|s| s.phase == Phase::Busy)
    }

    fn in_head(&self) -> bool {
        self.with(|s| s.phase == Phase::Head)
    }

    /// When a pending read must end, if it must; otherwise the read is
    /// remembered, to be woken when a deadline starts.
    fn read_deadline(&self, limits: &Limits, cx: &Context<'_>) -> Option<(Instant, &'static str)> {
        self.with(|s| match s.phase {
            Phase::Head => Some((s.since + limits.header, "request headers not complete in time")),
            Phase::Idle => Some((s.since + limits.idle, "idle keep-alive connection")),
            Phase::Busy => {
                s.reader = Some(cx.waker().clone());
                None
            }
        })
    }
}

/// The socket, with the phase deadlines applied to its reads and writes.
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
    limits: Limits,
    draining: Draining,
    read_timer: Pin<Box<Sleep>>,
    write_timer: Pin<Box<Sleep>>,
    write_blocked_since: Option<Instant>,
}

impl Watched {
    fn new(stream: TcpStream, activity: Arc<Activity>, limits: Limits, draining: Draining) -> Self {
        let now = Instant::now();
        Self {
            stream,
            activity,
            limits,
            draining,
            read_timer: Box::pin(tokio::time::sleep_until(now)),
            write_timer: Box::pin(tokio::time::sleep_until(now)),
            write_blocked_since: None,
        }
    }

    /// A pending write: fails once the client has taken nothing for too
    /// long (a second, once shutdown has begun: the connection is polled
    /// again then, so the shorter limit applies at once).
    fn write_pending<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let since = *self.write_blocked_since.get_or_insert_with(Instant::now);
        self.write_timer.as_mut().reset(since + self.draining.stall_limit(self.limits.write));
        match self.write_timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "client stopped reading")))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn wrote<T>(&mut self, result: Poll<io::Result<T>>, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match result {
            Poll::Pending => self.write_pending(cx),
            done => {
                self.write_blocked_since = None;
                done
            }
        }
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.activity.bytes_arrived();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                let Some((deadline, why)) = this.activity.read_deadline(&this.limits, cx) else {
                    return Poll::Pending;
                };
                this.read_timer.as_mut().reset(deadline);
                match this.read_timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, why))),
                    Poll::Pending => Poll::Pending,
                }
            }
            failed => failed,
        }
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.wrote(result, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.wrote(result, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.stream).poll_flush(cx);
        self.wrote(result, cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Marks the response finished when hyper is done with its body.
struct Finished(Arc<Activity>);

impl Drop for Finished {
    fn drop(&mut self) {
        self.0.response_finished();
    }
}

/// Serves one connection until the client leaves, a limit cuts it off,
/// or shutdown closes it.
pub async fn serve<E: Endpoint + 'static>(
    stream: TcpStream,
    local: SocketAddr,
    peer: SocketAddr,
    app: Arc<E>,
    limits: Limits,
    mut draining: Draining,
) {
    drop(stream.set_nodelay(true));
    let activity = Arc::new(Activity::new());
    let service = {
        let activity = activity.clone();
        service_fn(move |req: hyper::Request<Incoming>| {
            let app = app.clone();
            let activity = activity.clone();
            activity.request_started();
            let finished = Finished(activity);
            async move {
                let req = poem::Request::from((
                    req,
                    LocalAddr(Addr::SocketAddr(local)),
                    RemoteAddr(Addr::SocketAddr(peer)),
                    Scheme::HTTP,
                ));
                let resp: hyper::Response<_> = app.get_response(req).await.into();
                let body = resp.map(|body| {
                    body.map_frame(move |frame| {
                        let _ = &finished;
                        frame
                    })
                    .boxed()
                });
                Ok::<_, std::convert::Infallible>(body)
            }
        })
    };
    let io = TokioIo::new(Watched::new(stream, activity.clone(), limits, draining.clone()));
    // No hyper timer: its header timeout would also end idle keep-alive
    // connections; the phases above keep the two apart.
    let connection = http1::Builder::new().serve_connection(io, service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => Some(result),
        () = draining.started() => None,
    };
    if result.is_none() && activity.in_head() {
        // Shutting down while a request may be arriving (a new connection,
        // or headers under way): it gets a moment to become a request.
        let grace = Instant::now() + HEAD_GRACE;
        while activity.in_head() && Instant::now() < grace {
            tokio::select! {
                done = connection.as_mut() => {
                    log_end(peer, done);
                    return;
                }
                () = tokio::time::sleep(Duration::from_millis(10)) => {}
            }
        }
    }
    match result {
        Some(done) => log_end(peer, done),
        // Shutting down: only a request in flight keeps its connection,
        // until its response is out.
        None if activity.is_busy() => {
            connection.as_mut().graceful_shutdown();
            drop(connection.await);
        }
        None => {}
    }
}

/// While shutting down, how long a connection whose request has not
/// arrived whole may take to deliver its headers.
const HEAD_GRACE: Duration = Duration::from_secs(1);

fn log_end(peer: SocketAddr, done: hyper::Result<()>) {
    if let Err(e) = done {
        tracing::debug!(%peer, error = %e, "connection closed");
    }
}
