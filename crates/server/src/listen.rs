//! Every listener's accept loop: a connection limit, a deadline for request headers and an
//! idle timeout, then HTTP/1 or HTTP/2 (gRPC) served by hyper for an axum router.
//!
//! `axum::serve` and tonic's server accept without bound and never time a client out: 400
//! connections sending headers one byte a minute stayed open for as long as their senders
//! wished. Here each listener holds at most `server.max_connections` connections (past it,
//! accepting waits for one to close, so the kernel's backlog pushes back); HTTP/1 headers must
//! arrive within `server.header_read_timeout`; a connection on which nothing is read or written
//! for `server.idle_timeout` is closed (HTTP/2 peers are also pinged, so a dead peer is found
//! even while a stream waits). Shutdown stops accepting and lets open requests finish.
//!
//! With TLS (`tls.rs`) each accepted connection first completes its handshake, within
//! `server.header_read_timeout`, on its own task, so a slow handshake never holds up accepting;
//! then hyper serves the decrypted stream exactly as it serves a plain one. A client that
//! speaks plain HTTP to a TLS port is answered `400` in plain text instead of a reset.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::Watcher;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio_io_timeout::TimeoutStream;
use tokio_rustls::TlsAcceptor;

/// Bounds applied to every connection of a listener.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
}

/// How long shutdown waits for open requests before closing their connections.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The first byte of every TLS connection: a handshake record.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// What a plain-HTTP client on a TLS port reads instead of a reset.
const PLAIN_HTTP_ON_TLS_PORT: &[u8] = b"HTTP/1.0 400 Bad Request\r\n\
Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n\
client sent an HTTP request to an HTTPS server\n";

type TimedStream = Pin<Box<TimeoutStream<TcpStream>>>;

/// Serves `router` on `listener` until `stop` changes, within `limits`; over TLS when `tls` is
/// set.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    tls: Option<TlsAcceptor>,
    mut stop: watch::Receiver<bool>,
    what: &'static str,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.idle_timeout / 2)
        .keep_alive_timeout(limits.header_read_timeout)
        .max_frame_size(1 << 20);
    let builder = Arc::new(builder);
    let mut full_logged = false;
    loop {
        let permit = tokio::select! {
            _ = stop.changed() => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        if permits.available_permits() == 0 && !full_logged {
            tracing::warn!(
                listener = what,
                limit = limits.max_connections,
                "connection limit reached (`server.max_connections`); new connections wait"
            );
            full_logged = true;
        } else if permits.available_permits() > 0 {
            full_logged = false;
        }
        let (stream, peer) = tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: pause instead of spinning.
                    tracing::warn!(listener = what, %error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            let result = match tls {
                None => serve_connection(&builder, watcher, timed(stream, limits), router).await,
                Some(acceptor) => match handshake(acceptor, stream, limits).await {
                    Ok(Some(decrypted)) => {
                        serve_connection(&builder, watcher, decrypted, router).await
                    }
                    Ok(None) => Ok(()),
                    Err(error) => {
                        tracing::debug!(%peer, listener = what, %error, "TLS handshake failed");
                        Ok(())
                    }
                },
            };
            if let Err(error) = result {
                tracing::debug!(%peer, %error, "connection closed with an error");
            }
            drop(permit);
        });
    }
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            listener = what,
            "open connections did not finish within the drain timeout"
        );
    }
}

/// The accepted stream with the idle timeout on every read and write.
fn timed(stream: TcpStream, limits: ConnectionLimits) -> TimedStream {
    let mut timed = TimeoutStream::new(stream);
    timed.set_read_timeout(Some(limits.idle_timeout));
    timed.set_write_timeout(Some(limits.idle_timeout));
    Box::pin(timed)
}

/// The TLS handshake, within `header_read_timeout`; `None` when the client spoke plain HTTP and
/// was told so.
async fn handshake(
    acceptor: TlsAcceptor,
    stream: TcpStream,
    limits: ConnectionLimits,
) -> std::io::Result<Option<tokio_rustls::server::TlsStream<TimedStream>>> {
    let attempt = async {
        let mut first = [0u8; 1];
        let peeked = stream.peek(&mut first).await?;
        if peeked == 1 && first[0] != TLS_HANDSHAKE_RECORD && first[0].is_ascii_uppercase() {
            let mut stream = stream;
            stream.write_all(PLAIN_HTTP_ON_TLS_PORT).await?;
            stream.shutdown().await?;
            // Closing with the request unread would reset the connection, and the client could
            // lose the answer: read what it sent until it closes (briefly, and boundedly).
            let mut unread = (&mut stream).take(1 << 16);
            let mut sink = tokio::io::sink();
            let drain = tokio::io::copy(&mut unread, &mut sink);
            let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
            return Ok(None);
        }
        acceptor.accept(timed(stream, limits)).await.map(Some)
    };
    tokio::time::timeout(limits.header_read_timeout, attempt)
        .await
        .map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no TLS handshake within `server.header_read_timeout`",
            )
        })?
}

/// HTTP/1 or HTTP/2 on one connection until it closes or shutdown drains it.
async fn serve_connection<I>(
    builder: &Builder<TokioExecutor>,
    watcher: Watcher,
    io: I,
    router: Router,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(router);
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    watcher.watch(connection.into_owned()).await
}
