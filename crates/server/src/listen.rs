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

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio_io_timeout::TimeoutStream;

/// Bounds applied to every connection of a listener.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
}

/// How long shutdown waits for open requests before closing their connections.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` until `stop` changes, within `limits`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
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
        let mut timed = TimeoutStream::new(stream);
        timed.set_read_timeout(Some(limits.idle_timeout));
        timed.set_write_timeout(Some(limits.idle_timeout));
        let io = TokioIo::new(Box::pin(timed) as Pin<Box<TimeoutStream<tokio::net::TcpStream>>>);
        let service = TowerToHyperService::new(router.clone());
        let connection = builder
            .serve_connection_with_upgrades(io, service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
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
