//! The accept loop: each TCP connection is one hyper HTTP/1.1 connection
//! (with upgrades, for WebSockets), served by the router.
//!
//! What a connection may cost before it proves anything:
//! - **Handshake timeout.** A request head (request line and headers) must
//!   arrive whole within [`Limits::handshake_timeout`] of the connection
//!   being ready for one (accepted, or idle after a response); otherwise
//!   hyper closes it. A connection that sends nothing, or dribbles half a
//!   request line, holds a descriptor only that long. An upgraded
//!   WebSocket is past this: its own limits (`hello` within 10 s, idle
//!   close) apply.
//! - **Unverified connections per IP.** From accept until one of its
//!   requests carries a verified token (a REST bearer, or a WebSocket
//!   session that signed in), a connection counts against its TCP peer's
//!   address (an IPv6 peer: its /64); past
//!   [`Limits::max_unauthenticated_per_ip`] new connections from that
//!   address are closed at once. The peer is the TCP one even
//!   with `trust_forwarded_for` (the header is not read yet at accept), so
//!   behind a proxy the cap is the proxy's: raise it or set it to 0 (off).
//!
//! HTTP/1 only, on purpose: hyper-util's `auto` builder first sniffs for
//! the HTTP/2 preface, and the HTTP/1 header timer starts only after that,
//! so a silent connection would never time out (and h2c has no header
//! timeout at all).
//!
//! [`Limits::handshake_timeout`]: crate::Limits::handshake_timeout
//! [`Limits::max_unauthenticated_per_ip`]: crate::Limits::max_unauthenticated_per_ip

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

use dashdice_service::telemetry::names;

/// How many connections from each address have not shown a verified
/// token yet.
#[derive(Debug, Default)]
pub struct Unverified {
    by_ip: Mutex<HashMap<IpAddr, usize>>,
}

impl Unverified {
    /// Counts a new connection from `ip`, or `None` when `cap` are counted
    /// already (0: no cap).
    pub fn admit(self: &Arc<Self>, ip: IpAddr, cap: usize) -> Option<ConnectionTag> {
        let ip = client_key(ip);
        let mut by_ip = self.by_ip.lock().unwrap_or_else(|e| e.into_inner());
        let count = by_ip.entry(ip).or_default();
        if cap > 0 && *count >= cap {
            return None;
        }
        *count += 1;
        Some(ConnectionTag(Arc::new(Tag {
            unverified: self.clone(),
            ip,
            counted: AtomicBool::new(true),
        })))
    }

    /// Connections from `ip` counted now.
    pub fn count(&self, ip: IpAddr) -> usize {
        let by_ip = self.by_ip.lock().unwrap_or_else(|e| e.into_inner());
        by_ip.get(&client_key(ip)).copied().unwrap_or(0)
    }

    fn release(&self, ip: IpAddr) {
        let mut by_ip = self.by_ip.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = by_ip.get_mut(&ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                by_ip.remove(&ip);
            }
        }
    }
}

/// What one client is counted by: its IPv4 address (also when mapped into
/// IPv6), or its IPv6 /64 (one host usually holds a whole /64).
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        },
    }
}

/// One connection's place in [`Unverified`], in every request's
/// extensions: it leaves the count when a request on it shows a verified
/// token ([`ConnectionTag::verified`]) or when the connection (and any
/// WebSocket session on it) ends.
#[derive(Clone, Debug)]
pub struct ConnectionTag(Arc<Tag>);

#[derive(Debug)]
struct Tag {
    unverified: Arc<Unverified>,
    ip: IpAddr,
    counted: AtomicBool,
}

impl ConnectionTag {
    /// The connection carried a verified token: it no longer counts.
    pub fn verified(&self) {
        self.0.release();
    }
}

impl Tag {
    fn release(&self) {
        if self.counted.swap(false, Ordering::AcqRel) {
            self.unverified.release(self.ip);
        }
    }
}

impl Drop for Tag {
    fn drop(&mut self) {
        self.release();
    }
}

/// What the accept loop needs to know.
pub struct Listen {
    pub handshake_timeout: Duration,
    pub max_unauthenticated_per_ip: usize,
    pub unverified: Arc<Unverified>,
}

/// Accepts until `stop` resolves, then stops accepting, asks every
/// connection to finish its request in flight and close, and waits for
/// them. (WebSocket sessions are the router's: the caller closes them.)
pub async fn accept_loop(
    listener: TcpListener,
    app: Router,
    listen: Listen,
    stop: impl Future<Output = ()> + Send,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    let timeout = Some(listen.handshake_timeout).filter(|t| !t.is_zero());
    http.timer(TokioTimer::new()).header_read_timeout(timeout);
    // Every connection task holds a receiver: they have all ended when
    // `stopping` has none left.
    let (stopping, stopped) = watch::channel(false);
    let mut stop = std::pin::pin!(stop);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let Some(tag) = listen
            .unverified
            .admit(peer.ip(), listen.max_unauthenticated_per_ip)
        else {
            metrics::counter!(names::GATEWAY_CONNECTIONS_CLOSED, "reason" => "unverified_per_ip")
                .increment(1);
            tracing::debug!(%peer, "too many unverified connections from this address");
            drop(tcp);
            continue;
        };
        // Small messages go out at once: with Nagle on, a push right after
        // another waits for the client's delayed ACK (40 ms on Linux).
        let _ = tcp.set_nodelay(true);
        let service = PerConnection {
            app: app.clone(),
            peer,
            tag,
        };
        let connection = http
            .serve_connection(TokioIo::new(tcp), service)
            .with_upgrades();
        tokio::spawn(serve_one(connection, stopped.clone()));
    }
    drop(listener);
    stopping.send_replace(true);
    drop(stopped);
    stopping.closed().await;
}

type Connection = hyper::server::conn::http1::UpgradeableConnection<
    TokioIo<tokio::net::TcpStream>,
    PerConnection,
>;

/// Drives one connection; on stop, lets it finish the request in flight.
async fn serve_one(connection: Connection, mut stopping: watch::Receiver<bool>) {
    let mut connection = std::pin::pin!(connection);
    let mut asked = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    if e.is_timeout() {
                        metrics::counter!(names::GATEWAY_CONNECTIONS_CLOSED, "reason" => "handshake_timeout")
                            .increment(1);
                    }
                    tracing::debug!(error = %e, "connection ended");
                }
                break;
            }
            changed = stopping.wait_for(|stop| *stop), if !asked => {
                asked = true;
                if changed.is_ok() {
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// A failed accept: a connection reset before it was taken is nothing; out
/// of descriptors (or the like) waits a moment instead of spinning.
async fn accept_failed(e: &std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    tracing::warn!(error = %e, "accept failed; retrying in a second");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// The router, as one connection sees it: each request carries the peer's
/// address (`ConnectInfo`) and the connection's [`ConnectionTag`].
#[derive(Clone)]
struct PerConnection {
    app: Router,
    peer: SocketAddr,
    tag: ConnectionTag,
}

impl hyper::service::Service<hyper::Request<Incoming>> for PerConnection {
    type Response = axum::response::Response;
    type Error = Infallible;
    type Future = axum::routing::future::RouteFuture<Infallible>;

    fn call(&self, mut request: hyper::Request<Incoming>) -> Self::Future {
        request.extensions_mut().insert(ConnectInfo(self.peer));
        request.extensions_mut().insert(self.tag.clone());
        tower_service::Service::call(&mut self.app.clone(), request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_counts_unverified_connections_per_address() {
        let unverified = Arc::new(Unverified::default());
        let (a, b) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]));
        let first = unverified.admit(a, 2).expect("under the cap");
        let second = unverified.admit(a, 2).expect("at the cap");
        assert!(unverified.admit(a, 2).is_none(), "over the cap");
        assert!(unverified.admit(b, 2).is_some(), "another address");
        first.verified();
        first.verified();
        assert_eq!(unverified.count(a), 1, "verified once, counted once");
        let third = unverified.admit(a, 2).expect("room again");
        drop(first);
        drop(second);
        assert_eq!(unverified.count(a), 1);
        drop(third);
        assert_eq!(unverified.count(a), 0);
        assert!(unverified.by_ip.lock().expect("lock").is_empty());
        let many: Vec<_> = (0..5).map(|_| unverified.admit(a, 0)).collect();
        assert!(many.iter().all(Option::is_some), "0 is no cap");
    }

    #[test]
    fn an_ipv6_client_counts_by_its_64_and_a_mapped_ipv4_as_itself() {
        let unverified = Arc::new(Unverified::default());
        let one: IpAddr = "2001:db8:1:2::1".parse().expect("ip");
        let same_64: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("ip");
        let other_64: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        let _first = unverified.admit(one, 1).expect("under the cap");
        assert!(unverified.admit(same_64, 1).is_none(), "same /64");
        assert!(unverified.admit(other_64, 1).is_some(), "another /64");
        let v4 = IpAddr::from([192, 0, 2, 1]);
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().expect("ip");
        let _v4 = unverified.admit(v4, 1).expect("under the cap");
        assert!(
            unverified.admit(mapped, 1).is_none(),
            "the same IPv4 client"
        );
    }
}
