//! The accept loop: plain HTTP/1.1, or TLS with HTTP/1.1 and (by ALPN) HTTP/2, with limits that
//! keep one client from taking the daemon down, and a shutdown with a deadline. axum's own
//! `serve` has no TLS, so connections are served by hyper-util directly.
//!
//! The limits (flags in [`super::WebOptions`]):
//! - a client must send a request's headers within `--web.read-header-timeout`; on HTTP/1.1 the
//!   wait for the next request on a kept-alive connection counts too (hyper starts the clock
//!   whenever it waits for a request head);
//! - a connection on which no byte moves and no request is being handled for
//!   `--web.idle-timeout` is closed (this also covers HTTP/2 and clients that stop reading a
//!   response);
//! - at most `--web.max-connections` connections are open at once, and never more than half of
//!   the process's file-descriptor limit, so the daemon's own probes always find descriptors.
//!   At the cap, a new connection displaces the open connection that has been waiting longest
//!   without a request in flight (a half-sent request, an idle keep-alive); when every
//!   connection is busy with a request, the new one is closed at once. A flood of idle
//!   connections therefore cannot keep a scraper out.
//! - on shutdown, requests in flight get `--web.shutdown-grace`; connections still open after
//!   it are closed.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tracing::{debug, info, warn};

use super::WebSecurity;

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Share of the file-descriptor limit web connections may use; the rest is the daemon's.
const FD_SHARE_DIVISOR: u64 = 2;

/// The limits the server runs with, resolved from the flags and the process's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServeLimits {
    /// Most connections open at once.
    pub max_connections: usize,
    /// Time allowed to send a request's headers.
    pub read_header_timeout: Duration,
    /// Time a connection may sit with no traffic and no request in flight.
    pub idle_timeout: Duration,
    /// Time requests in flight get on shutdown.
    pub shutdown_grace: Duration,
}

/// Raises the soft limit on open files to the hard limit (a daemon that opens a socket per
/// probe and per scrape should not live with a default of 1024) and returns the limit now in
/// force, or `None` where it cannot be read.
#[cfg(unix)]
pub fn raise_fd_limit() -> Option<u64> {
    // SAFETY: getrlimit/setrlimit only read and write the struct passed by pointer.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return None;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
        // `rlim_t` is not u64 on every Unix.
        #[allow(clippy::useless_conversion)]
        Some(u64::try_from(lim.rlim_cur).unwrap_or(u64::MAX))
    }
}

/// Not available off Unix.
#[cfg(not(unix))]
pub fn raise_fd_limit() -> Option<u64> {
    None
}

/// The connection cap for a flag value and a file-descriptor limit: at most half the limit.
pub fn connection_cap(flag: usize, fd_limit: Option<u64>) -> usize {
    let flag = flag.max(1);
    match fd_limit {
        Some(l) => flag.min(
            usize::try_from(l / FD_SHARE_DIVISOR)
                .unwrap_or(usize::MAX)
                .max(1),
        ),
        None => flag,
    }
}

/// Serves `app` behind the guard of `sec` on `listener` until `shutdown` completes, then gives
/// requests in flight `--web.shutdown-grace` to finish. TLS or not is decided by the web config
/// at start; its certificates, client CA, versions and HTTP/2 setting are taken per connection,
/// so a reload applies to the next connection.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    sec: Arc<WebSecurity>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let app = app.layer(axum::middleware::from_fn_with_state(
        sec.clone(),
        super::auth::guard,
    ));
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let opts = sec.options();
    let fd_limit = raise_fd_limit();
    let limits = ServeLimits {
        max_connections: connection_cap(opts.max_connections, fd_limit),
        read_header_timeout: opts.read_header_timeout,
        idle_timeout: opts.idle_timeout,
        shutdown_grace: opts.shutdown_grace,
    };
    if limits.max_connections < opts.max_connections {
        warn!(
            requested = opts.max_connections,
            max_connections = limits.max_connections,
            open_files_limit = fd_limit.unwrap_or(0),
            "--web.max-connections lowered to half the open-files limit, to keep descriptors for the probes."
        );
    }
    let current = sec.current();
    info!(
        address = %addr,
        tls = current.tls_enabled(),
        http2 = current.tls_enabled() && current.http2,
        web = current.summary(),
        max_connections = limits.max_connections,
        read_header_timeout = ?limits.read_header_timeout,
        idle_timeout = ?limits.idle_timeout,
        open_files_limit = fd_limit.unwrap_or(0),
        "Serving the web endpoints."
    );
    let table = Arc::new(ConnTable::default());
    // Asks connections to finish their requests and close.
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut refused = RefusalLog::default();
    let mut next_id: u64 = 0;
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Usually out of file descriptors: wait instead of spinning.
                    warn!(error = %e, "Accepting a connection failed.");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        next_id += 1;
        let id = next_id;
        let track = Arc::new(Track::new(table.epoch));
        let kill = Arc::new(Notify::new());
        if !table.admit(id, &track, &kill, limits.max_connections) {
            // Every connection is busy with a request: this one is closed unanswered.
            drop(stream);
            refused.note();
            continue;
        }
        let conn = Conn {
            app: app.clone(),
            sec: sec.clone(),
            stop: stop_rx.clone(),
            limits,
            peer,
            track,
            kill,
        };
        let table = table.clone();
        tokio::spawn(async move {
            let _leave = Leave { table, id };
            if let Err(e) = conn.run(stream).await {
                debug!(peer = %peer, error = %e, "Connection ended with an error.");
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let open = table.len();
    if open > 0 {
        info!(connections = open, grace = ?limits.shutdown_grace, "Waiting for requests in flight.");
        let drained = tokio::time::timeout(limits.shutdown_grace, table.drained()).await;
        if drained.is_err() {
            let cut = table.kill_all();
            warn!(
                connections = cut,
                grace = ?limits.shutdown_grace,
                "Closing connections still open after the shutdown grace."
            );
        }
    }
}

/// Logs refused connections at most every 10 s, with a count.
#[derive(Default)]
struct RefusalLog {
    count: u64,
    last: Option<Instant>,
}

impl RefusalLog {
    fn note(&mut self) {
        self.count += 1;
        let now = Instant::now();
        if self
            .last
            .is_none_or(|l| now.duration_since(l) >= Duration::from_secs(10))
        {
            warn!(
                refused = self.count,
                "Connection cap reached with every connection busy; closing new connections."
            );
            self.last = Some(now);
            self.count = 0;
        }
    }
}

/// What the server knows of one open connection.
struct Entry {
    accepted: Instant,
    track: Arc<Track>,
    kill: Arc<Notify>,
}

/// The open connections.
struct ConnTable {
    epoch: Instant,
    open: Mutex<HashMap<u64, Entry>>,
    left: Notify,
}

impl Default for ConnTable {
    fn default() -> Self {
        ConnTable {
            epoch: Instant::now(),
            open: Mutex::new(HashMap::new()),
            left: Notify::new(),
        }
    }
}

impl ConnTable {
    /// Registers a new connection; at the cap, first displaces the connection that has waited
    /// longest without a request in flight. False when every connection is busy.
    fn admit(&self, id: u64, track: &Arc<Track>, kill: &Arc<Notify>, cap: usize) -> bool {
        let Ok(mut open) = self.open.lock() else {
            return false;
        };
        if open.len() >= cap {
            let victim = open
                .iter()
                .filter(|(_, e)| e.track.active.load(Ordering::Relaxed) == 0)
                .min_by_key(|(_, e)| e.accepted)
                .map(|(id, _)| *id);
            match victim {
                Some(v) => {
                    if let Some(e) = open.remove(&v) {
                        // A stored permit: the connection sees it even if not waiting yet.
                        e.kill.notify_one();
                    }
                }
                None => return false,
            }
        }
        open.insert(
            id,
            Entry {
                accepted: Instant::now(),
                track: track.clone(),
                kill: kill.clone(),
            },
        );
        true
    }

    fn remove(&self, id: u64) {
        if let Ok(mut open) = self.open.lock() {
            open.remove(&id);
        }
        self.left.notify_waiters();
    }

    fn len(&self) -> usize {
        self.open.lock().map(|o| o.len()).unwrap_or(0)
    }

    /// Resolves once no connection is open.
    async fn drained(&self) {
        loop {
            let left = self.left.notified();
            if self.len() == 0 {
                return;
            }
            // Also re-check now and then: a displaced connection leaves the table before its
            // task ends.
            let _ = tokio::time::timeout(Duration::from_millis(100), left).await;
        }
    }

    /// Closes every open connection; returns how many there were.
    fn kill_all(&self) -> usize {
        let Ok(mut open) = self.open.lock() else {
            return 0;
        };
        let n = open.len();
        for (_, e) in open.drain() {
            e.kill.notify_one();
        }
        n
    }
}

/// Removes a connection from the table when its task ends, however it ends.
struct Leave {
    table: Arc<ConnTable>,
    id: u64,
}

impl Drop for Leave {
    fn drop(&mut self) {
        self.table.remove(self.id);
    }
}

/// Activity of one connection: requests being handled, and when a byte last moved.
struct Track {
    epoch: Instant,
    active: AtomicUsize,
    last_io_ms: AtomicU64,
}

impl Track {
    fn new(epoch: Instant) -> Track {
        let t = Track {
            epoch,
            active: AtomicUsize::new(0),
            last_io_ms: AtomicU64::new(0),
        };
        t.touch();
        t
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn touch(&self) {
        self.last_io_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// Whether nothing has moved and no request has been in flight for `limit`.
    fn idle_for(&self, limit: Duration) -> bool {
        if self.active.load(Ordering::Relaxed) > 0 {
            return false;
        }
        let quiet = self
            .now_ms()
            .saturating_sub(self.last_io_ms.load(Ordering::Relaxed));
        Duration::from_millis(quiet) >= limit
    }
}

/// A socket that notes when bytes move.
struct Tracked<S> {
    inner: S,
    track: Arc<Track>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.track.touch();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.track.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.track.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The router for one connection: each request carries the client's address
/// ([`ConnectInfo`]), and counts as in flight until its handler has answered.
#[derive(Clone)]
struct ConnService {
    app: TowerToHyperService<Router>,
    peer: SocketAddr,
    track: Arc<Track>,
}

/// Counts a request in flight for as long as it lives.
struct InFlight(Arc<Track>);

impl InFlight {
    fn new(track: Arc<Track>) -> InFlight {
        track.active.fetch_add(1, Ordering::Relaxed);
        InFlight(track)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

type ServiceFuture =
    Pin<Box<dyn Future<Output = Result<axum::response::Response, Infallible>> + Send>>;

impl hyper::service::Service<hyper::Request<Incoming>> for ConnService {
    type Response = axum::response::Response;
    type Error = Infallible;
    type Future = ServiceFuture;

    fn call(&self, mut req: hyper::Request<Incoming>) -> Self::Future {
        req.extensions_mut().insert(ConnectInfo(self.peer));
        let in_flight = InFlight::new(self.track.clone());
        let fut = self.app.call(req);
        Box::pin(async move {
            let res = fut.await;
            drop(in_flight);
            res
        })
    }
}

struct Conn {
    app: Router,
    sec: Arc<WebSecurity>,
    stop: watch::Receiver<bool>,
    limits: ServeLimits,
    peer: SocketAddr,
    track: Arc<Track>,
    kill: Arc<Notify>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Conn {
    async fn run(mut self, stream: TcpStream) -> Result<(), BoxError> {
        let cfg = self.sec.current();
        let service = ConnService {
            app: TowerToHyperService::new(self.app.clone()),
            peer: self.peer,
            track: self.track.clone(),
        };
        let io = Tracked {
            inner: stream,
            track: self.track.clone(),
        };
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.read_header_timeout);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(16);
        let Some(tls) = cfg.tls.clone() else {
            // HTTP/2 needs TLS here, as in Go's net/http.
            let builder = builder.http1_only();
            let conn = builder.serve_connection(TokioIo::new(io), service);
            return self.drive(conn, |c| c.graceful_shutdown()).await;
        };
        let accept = tokio::time::timeout(
            HANDSHAKE_TIMEOUT.min(self.limits.read_header_timeout),
            tokio_rustls::TlsAcceptor::from(tls).accept(io),
        );
        let tls_stream = tokio::select! {
            r = accept => match r {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return Err(format!("TLS handshake failed: {e}").into()),
                Err(_) => return Err("TLS handshake timed out".into()),
            },
            _ = self.stop.wait_for(|stop| *stop) => return Ok(()),
            _ = self.kill.notified() => return Ok(()),
        };
        let builder = if tls_stream.get_ref().1.alpn_protocol() == Some(b"h2") {
            builder.http2_only()
        } else {
            builder.http1_only()
        };
        let conn = builder.serve_connection(TokioIo::new(tls_stream), service);
        self.drive(conn, |c| c.graceful_shutdown()).await
    }

    /// Runs a connection until it ends, is displaced or killed, or sits idle too long; on
    /// shutdown, asks it to finish its requests and close.
    async fn drive<C>(&mut self, conn: C, graceful: impl Fn(Pin<&mut C>)) -> Result<(), BoxError>
    where
        C: Future<Output = Result<(), BoxError>>,
    {
        tokio::pin!(conn);
        let tick =
            (self.limits.idle_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stopping = false;
        loop {
            tokio::select! {
                r = conn.as_mut() => return r,
                _ = self.kill.notified() => return Ok(()),
                _ = self.stop.wait_for(|stop| *stop), if !stopping => {
                    stopping = true;
                    graceful(conn.as_mut());
                }
                _ = ticker.tick() => {
                    if self.track.idle_for(self.limits.idle_timeout) {
                        debug!(peer = %self.peer, "Closing an idle connection.");
                        return Ok(());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_keeps_half_the_descriptors() {
        assert_eq!(connection_cap(512, Some(1024)), 512);
        assert_eq!(connection_cap(512, Some(600)), 300);
        assert_eq!(connection_cap(512, None), 512);
        assert_eq!(connection_cap(0, Some(1024)), 1);
        assert_eq!(connection_cap(512, Some(1)), 1);
    }

    #[test]
    fn the_longest_waiting_idle_connection_is_displaced() {
        let table = ConnTable::default();
        let mk = || (Arc::new(Track::new(table.epoch)), Arc::new(Notify::new()));
        let (t1, k1) = mk();
        let (t2, k2) = mk();
        let (t3, k3) = mk();
        assert!(table.admit(1, &t1, &k1, 2));
        std::thread::sleep(Duration::from_millis(2));
        assert!(table.admit(2, &t2, &k2, 2));
        // 1 is busy with a request: 2 goes, although 1 is older.
        t1.active.store(1, Ordering::Relaxed);
        assert!(table.admit(3, &t3, &k3, 2));
        assert_eq!(table.len(), 2);
        let open: Vec<u64> = {
            let mut v: Vec<u64> = table.open.lock().unwrap().keys().copied().collect();
            v.sort_unstable();
            v
        };
        assert_eq!(open, vec![1, 3]);
        // Every connection busy: the newcomer is refused.
        t3.active.store(1, Ordering::Relaxed);
        let (t4, k4) = mk();
        assert!(!table.admit(4, &t4, &k4, 2));
        assert_eq!(table.kill_all(), 2);
        assert_eq!(table.len(), 0);
    }

    #[test]
    fn idleness_needs_quiet_and_no_request() {
        let t = Track::new(Instant::now() - Duration::from_secs(10));
        t.last_io_ms.store(0, Ordering::Relaxed);
        assert!(t.idle_for(Duration::from_secs(5)));
        t.active.store(1, Ordering::Relaxed);
        assert!(!t.idle_for(Duration::from_secs(5)));
        t.active.store(0, Ordering::Relaxed);
        t.touch();
        assert!(!t.idle_for(Duration::from_secs(5)));
    }
}
