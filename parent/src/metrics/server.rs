//! The `/metrics` and `/healthz` listener: HTTP/1 over TCP, bounded.
//!
//! At most [`ServerLimits::max_connections`] connections are open at once (the listener stops
//! accepting until one ends); a client has [`ServerLimits::header_read_timeout`] to send each
//! request's headers, idle keep-alive included; a connection is closed gracefully after
//! [`ServerLimits::max_connection_age`]. An accept error pauses the loop instead of spinning. On
//! shutdown the listener closes, and every connection finishes its request in flight (at most
//! [`ServerLimits::shutdown_grace`]) before [`MetricsServer::wait`] returns.

use super::{CONTENT_TYPE, MetricsSources};
use crate::ParentError;
use bytes::Bytes;
use http::header::{ALLOW, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

/// Bounds of the metrics listener.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// Connections open at once.
    pub max_connections: usize,
    /// Time a client has to send a request's headers, from connecting or from its previous
    /// response (so it also closes idle keep-alive connections).
    pub header_read_timeout: Duration,
    /// A connection is closed (after its request in flight) once it is this old.
    pub max_connection_age: Duration,
    /// Pause after an accept error (out of file descriptors, say) before accepting again.
    pub accept_error_pause: Duration,
    /// Time a connection has to finish its request in flight on shutdown or at its maximum age.
    pub shutdown_grace: Duration,
}

impl ServerLimits {
    /// The daemon's limits. A scrape is one small request every few seconds from a handful of
    /// Prometheus servers.
    pub const DAEMON: ServerLimits = ServerLimits {
        max_connections: 64,
        header_read_timeout: Duration::from_secs(10),
        max_connection_age: Duration::from_secs(300),
        accept_error_pause: Duration::from_millis(100),
        shutdown_grace: Duration::from_secs(5),
    };
}

/// A running metrics listener.
#[derive(Debug)]
pub struct MetricsServer {
    local_addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl MetricsServer {
    /// The address it listens on (the port is the real one when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The task that ends when the listener and every connection have stopped.
    pub fn into_task(self) -> tokio::task::JoinHandle<()> {
        self.task
    }

    /// Waits until the listener and every connection have stopped (after `shutdown`).
    pub async fn wait(self) {
        if let Err(e) = self.task.await {
            warn!(error = %e, "the metrics listener task failed");
        }
    }
}

/// Binds `addr` and serves `GET /metrics` and `GET /healthz` from `sources` until `shutdown` is
/// cancelled.
pub async fn start(
    addr: SocketAddr,
    sources: MetricsSources,
    limits: ServerLimits,
    shutdown: CancellationToken,
) -> Result<MetricsServer, ParentError> {
    start_on(bind(addr).await?, sources, limits, shutdown)
}

/// Binds the metrics listener (the daemon does this first, with its other sockets, so that a
/// taken port stops it before anything runs).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ParentError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ParentError::MetricsBind { addr, source })
}

/// Serves `/metrics` and `/healthz` on a bound `listener` in the background.
pub fn start_on(
    listener: TcpListener,
    sources: MetricsSources,
    limits: ServerLimits,
    shutdown: CancellationToken,
) -> Result<MetricsServer, ParentError> {
    let local_addr = listener
        .local_addr()
        .map_err(|source| ParentError::MetricsBind {
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            source,
        })?;
    info!(addr = %local_addr, "metrics on /metrics, health on /healthz");
    let task = tokio::spawn(run(listener, Arc::new(sources), limits, shutdown));
    Ok(MetricsServer { local_addr, task })
}

/// Accepts connections on `listener` until `shutdown`, then waits for the open ones.
async fn run(
    listener: TcpListener,
    sources: Arc<MetricsSources>,
    limits: ServerLimits,
    shutdown: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let connections = TaskTracker::new();
    loop {
        // A permit first: at the limit, new connections wait in the kernel's backlog.
        let permit = tokio::select! {
            () = shutdown.cancelled() => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                // The semaphore is never closed.
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    warn!(error = %e, pause = ?limits.accept_error_pause, "metrics: accept failed");
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(limits.accept_error_pause) => continue,
                    }
                }
            },
        };
        connections.spawn(connection(
            stream,
            sources.clone(),
            limits,
            shutdown.clone(),
            permit,
        ));
    }
    drop(listener);
    connections.close();
    connections.wait().await;
    info!("metrics listener stopped");
}

/// Serves one connection, holding `_permit` until it ends.
async fn connection(
    stream: TcpStream,
    sources: Arc<MetricsSources>,
    limits: ServerLimits,
    shutdown: CancellationToken,
    _permit: OwnedSemaphorePermit,
) {
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let sources = sources.clone();
        async move { Ok::<_, Infallible>(respond(&req, &sources).await) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let ended = tokio::select! {
        ended = conn.as_mut() => Some(ended),
        () = shutdown.cancelled() => None,
        () = tokio::time::sleep(limits.max_connection_age) => None,
    };
    let ended = match ended {
        Some(ended) => ended,
        None => {
            // Closes at once if idle; otherwise after the response in flight.
            conn.as_mut().graceful_shutdown();
            match tokio::time::timeout(limits.shutdown_grace, conn.as_mut()).await {
                Ok(ended) => ended,
                Err(_) => {
                    debug!("metrics: connection dropped after the grace period");
                    return;
                }
            }
        }
    };
    if let Err(e) = ended {
        debug!(error = %e, "metrics: connection ended with an error");
    }
}

/// Answers one request.
async fn respond(req: &Request<Incoming>, sources: &MetricsSources) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    if path != "/metrics" && path != "/healthz" {
        return plain(StatusCode::NOT_FOUND, "not found\n");
    }
    if req.method() != Method::GET {
        let mut resp = plain(StatusCode::METHOD_NOT_ALLOWED, "only GET\n");
        resp.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET"));
        return resp;
    }
    if path == "/healthz" {
        return match sources.health().await {
            Ok(()) => plain(StatusCode::OK, "ok\n"),
            Err(reason) => {
                debug!(%reason, "healthz: unhealthy");
                text(StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n"))
            }
        };
    }
    match sources.render().await {
        Ok(text) => {
            let mut resp = Response::new(Full::new(Bytes::from(text)));
            resp.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static(CONTENT_TYPE),
            );
            resp
        }
        Err(e) => {
            warn!(error = %e, "metrics: cannot encode");
            plain(StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n")
        }
    }
}

/// A short plain-text response.
fn plain(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    text(status, body.to_owned())
}

/// A plain-text response.
fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}
