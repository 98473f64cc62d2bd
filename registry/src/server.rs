//! Serving: `serve(listener, router, limits, shutdown)` accepts connections
//! until `shutdown` resolves, then lets in-flight requests finish for up to
//! `limits.drain` (`http.draintimeout`).
//!
//! Slow or idle clients cannot hold connections for ever: the request head
//! must arrive within `http.readheadertimeout` (also until the first request
//! of a connection, TLS included), the TLS handshake within
//! `http.tlshandshaketimeout`, and a connection with no traffic for
//! `http.idletimeout` is closed (gracefully: a request in flight finishes).
//! At most `http.maxconnections` are open; further clients wait in the
//! kernel's backlog. Accept errors (EMFILE) back off instead of spinning.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;

/// Encrypted bytes gathered before a send on a TLS connection.
const TLS_WRITE_BUFFER: usize = 64 * 1024;

/// Loads a PEM certificate chain and key into a rustls server config that
/// follows the files when they change (see `crate::tls`).
pub fn tls_config(cert_path: &str, key_path: &str) -> anyhow::Result<Arc<ServerConfig>> {
    crate::tls::CertificateFiles::load(cert_path, key_path)?.server_config()
}

/// How connections are served; defaults suit an Internet-facing registry.
#[derive(Clone)]
pub struct Limits {
    pub tls: Option<Arc<ServerConfig>>,
    /// `http.draintimeout`: how long in-flight requests may finish at shutdown.
    pub drain: Duration,
    /// `http.readheadertimeout`: the whole request head must arrive within it.
    pub read_header: Duration,
    /// `http.idletimeout`: a connection with no traffic this long is closed.
    pub idle: Duration,
    /// `http.tlshandshaketimeout`.
    pub tls_handshake: Duration,
    /// `http.maxconnections`.
    pub max_connections: u32,
    /// Not `http.http2.disabled`: HTTP/2 is offered (h2 by ALPN, h2c by prior knowledge).
    pub http2: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            tls: None,
            drain: Duration::from_secs(25),
            read_header: Duration::from_secs(30),
            idle: Duration::from_secs(120),
            tls_handshake: Duration::from_secs(10),
            max_connections: 4096,
            http2: true,
        }
    }
}

impl Limits {
    /// The `http` section's values, over the defaults (TLS not loaded here).
    pub fn from_config(http: &crate::config::Http) -> Limits {
        let d = Limits::default();
        Limits {
            tls: None,
            drain: http.draintimeout.map_or(d.drain, |t| t.0),
            read_header: http.readheadertimeout.map_or(d.read_header, |t| t.0),
            idle: http.idletimeout.map_or(d.idle, |t| t.0),
            tls_handshake: http.tlshandshaketimeout.map_or(d.tls_handshake, |t| t.0),
            max_connections: http.maxconnections.unwrap_or(d.max_connections).max(1),
            http2: !http.http2.as_ref().is_some_and(|h| h.disabled),
        }
    }
}

/// HTTP/1.1 first: clients that offer both (crane, curl)
/// then pull blobs at about half the server CPU per byte of HTTP/2, whose
/// 16 KiB frames each cost a TLS record, a send and the client's window
/// updates (docs/benchmarks.md, TLS). h2 stays for clients that offer only it.
fn with_alpn(tls: Arc<ServerConfig>, http2: bool) -> Arc<ServerConfig> {
    let mut config = Arc::unwrap_or_clone(tls);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    if http2 {
        config.alpn_protocols.push(b"h2".to_vec());
    }
    Arc::new(config)
}

/// Delays after failed `accept()`s: 5 ms doubling to 1 s, as Go's net/http.
#[derive(Default)]
struct Backoff(Option<Duration>);

impl Backoff {
    fn next(&mut self) -> Duration {
        let d = self.0.map_or(Duration::from_millis(5), |d| (d * 2).min(Duration::from_secs(1)));
        self.0 = Some(d);
        d
    }
}

pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections as usize));
    let (stop_tx, stop_rx) = watch::channel(false);
    let acceptor = limits.tls.clone().map(|tls| TlsAcceptor::from(with_alpn(tls, limits.http2)));
    let mut backoff = Backoff::default();
    tokio::pin!(shutdown);
    loop {
        // A free slot first: over the limit, clients wait in the backlog.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => {
                    backoff = Backoff::default();
                    conn
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait, then keep serving.
                    let delay = backoff.next();
                    tracing::warn!(error = %e, retry_ms = delay.as_millis() as u64, "accept failed");
                    tokio::select! {
                        () = tokio::time::sleep(delay) => continue,
                        () = &mut shutdown => break,
                    }
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let with_peer = tower::ServiceExt::map_request(
            router.clone(),
            move |mut req: axum::http::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(crate::api::PeerAddr(peer));
                req
            },
        );
        let service = TowerToHyperService::new(with_peer);
        let (acceptor, limits, stop) = (acceptor.clone(), limits.clone(), stop_rx.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let activity = Arc::new(AtomicU64::new(0));
            let result = match acceptor {
                None => connection(Tracked::new(stream, started, &activity), service, &limits, activity, stop).await,
                Some(acceptor) => {
                    // rustls writes its records out as it makes them; a buffer below it
                    // gathers them into one send per flush of hyper's (on HTTP/1.1, several
                    // 16 KiB records per send).
                    let stream = tokio::io::BufWriter::with_capacity(TLS_WRITE_BUFFER, stream);
                    let handshake = tokio::time::timeout(limits.tls_handshake, acceptor.accept(stream)).await;
                    match handshake {
                        Ok(Ok(tls)) => {
                            connection(Tracked::new(tls, started, &activity), service, &limits, activity, stop).await
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            Ok(())
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            Ok(())
                        }
                    }
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    tokio::select! {
        _ = slots.acquire_many(limits.max_connections) => tracing::info!("all connections drained"),
        () = tokio::time::sleep(limits.drain) => tracing::warn!(drain_secs = limits.drain.as_secs_f64(), "drain timeout reached; closing remaining connections"),
    }
    Ok(())
}

/// Serves one connection until it ends, is idle for `limits.idle`, sends no
/// complete first request head within `limits.read_header`, or the server stops.
async fn connection<I, S>(
    io: Tracked<I>,
    service: S,
    limits: &Limits,
    activity: Arc<AtomicU64>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<
            axum::http::Request<hyper::body::Incoming>,
            Response = axum::http::Response<axum::body::Body>,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let started = io.started;
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.read_header);
    builder.http2().timer(TokioTimer::new());
    if !limits.http2 {
        builder = builder.http1_only();
    }
    let first_request = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = first_request.clone();
    let service = hyper::service::service_fn(move |req| {
        seen.store(true, Ordering::Relaxed);
        service.call(req)
    });
    let conn = builder.serve_connection(TokioIo::new(io), service).into_owned();
    tokio::pin!(conn);
    let first_deadline = tokio::time::Instant::from_std(started + limits.read_header);
    let mut closing = false;
    loop {
        let last = started + Duration::from_millis(activity.load(Ordering::Relaxed));
        let idle_deadline = tokio::time::Instant::from_std(last + limits.idle);
        tokio::select! {
            result = conn.as_mut() => return result,
            () = tokio::time::sleep_until(first_deadline), if !first_request.load(Ordering::Relaxed) => {
                // The guard was read when this select began: a request that
                // arrived since may still be running (a long push or pull),
                // and must not be cut. Loop, which disarms this branch.
                if first_request.load(Ordering::Relaxed) {
                    continue;
                }
                // No complete request head since the connection opened (this
                // covers the HTTP version sniffing, which hyper's timer does not).
                return Ok(());
            }
            () = tokio::time::sleep_until(idle_deadline), if !closing => {
                let last = started + Duration::from_millis(activity.load(Ordering::Relaxed));
                if last.elapsed() >= limits.idle {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
            _ = stop.wait_for(|stop| *stop), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// An IO stream that records when it last moved bytes (milliseconds since
/// the connection started), for the idle timeout.
struct Tracked<T> {
    inner: T,
    started: Instant,
    activity: Arc<AtomicU64>,
}

impl<T> Tracked<T> {
    fn new(inner: T, started: Instant, activity: &Arc<AtomicU64>) -> Self {
        activity.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
        Tracked { inner, started, activity: activity.clone() }
    }

    fn touch(&self) {
        self.activity.store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.touch();
        }
        poll
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        poll
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        poll
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_errors_back_off_up_to_a_second() {
        let mut b = Backoff::default();
        let delays: Vec<u64> = (0..12).map(|_| b.next().as_millis() as u64).collect();
        assert_eq!(&delays[..4], &[5, 10, 20, 40]);
        assert_eq!(*delays.last().unwrap(), 1000);
    }
}
