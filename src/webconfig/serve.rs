//! The accept loop: plain HTTP/1.1, or TLS with HTTP/1.1 and (by ALPN) HTTP/2, with graceful
//! shutdown. axum's own `serve` has no TLS, so connections are served by hyper-util directly.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::WebSecurity;

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `app` behind the guard of `sec` on `listener` until `shutdown` completes, then lets
/// requests in flight finish. TLS or not is decided by the web config at start; its
/// certificates, client CA, versions and HTTP/2 setting are taken per connection, so a reload
/// applies to the next connection.
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
    let current = sec.current();
    info!(address = %addr, tls = current.tls_enabled(), http2 = current.tls_enabled() && current.http2, web = current.summary(), "Serving the web endpoints.");
    let graceful = GracefulShutdown::new();
    // Stops TLS handshakes still running when shutdown starts.
    let (stop_tx, stop_rx) = watch::channel(false);
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
        let conn = Conn {
            app: app.clone(),
            sec: sec.clone(),
            watcher: graceful.watcher(),
            stop: stop_rx.clone(),
        };
        tokio::spawn(async move {
            if let Err(e) = conn.run(stream).await {
                debug!(peer = %peer, error = %e, "Connection ended with an error.");
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    graceful.shutdown().await;
}

struct Conn {
    app: Router,
    sec: Arc<WebSecurity>,
    watcher: Watcher,
    stop: watch::Receiver<bool>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Conn {
    async fn run(mut self, stream: TcpStream) -> Result<(), BoxError> {
        let cfg = self.sec.current();
        let service = TowerToHyperService::new(self.app);
        let mut builder = auto::Builder::new(TokioExecutor::new());
        let Some(tls) = cfg.tls.clone() else {
            // HTTP/2 needs TLS here, as in Go's net/http.
            builder = builder.http1_only();
            return self
                .watcher
                .watch(builder.serve_connection(TokioIo::new(stream), service))
                .await;
        };
        let accept = tokio::time::timeout(
            HANDSHAKE_TIMEOUT,
            tokio_rustls::TlsAcceptor::from(tls).accept(stream),
        );
        let tls_stream = tokio::select! {
            r = accept => match r {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return Err(format!("TLS handshake failed: {e}").into()),
                Err(_) => return Err("TLS handshake timed out".into()),
            },
            _ = self.stop.wait_for(|stop| *stop) => return Ok(()),
        };
        builder = if tls_stream.get_ref().1.alpn_protocol() == Some(b"h2") {
            builder.http2_only()
        } else {
            builder.http1_only()
        };
        self.watcher
            .watch(builder.serve_connection(TokioIo::new(tls_stream), service))
            .await
    }
}
