//! A fault-injecting TCP proxy for tests: put it between a client (the sync) and a server
//! (Postgres) on 127.0.0.1 and break the path on demand.
//!
//! - [`FaultProxy::cut_all`]: close every open connection now (both sockets);
//! - [`FaultProxy::on_client_bytes`]: arm a one-shot rule on a byte pattern the client sends (a
//!   query's text, the `COMMIT` message), fired on the connection that sends it:
//!   - [`Fault::CutBefore`]: close the connection without forwarding the chunk that holds it;
//!   - [`Fault::CutAfterReply`]: forward it, then close the connection when the server's reply
//!     arrives, without passing the reply on (the server did the work, the client never hears);
//!   - [`Fault::CutReplyAfter`]: forward it, pass on only the first N bytes of what the server
//!     sends back, then close the connection (a response cut mid-body);
//!   - [`Fault::Pause`]: hold the chunk (this connection only, both ways) until [`FaultProxy::resume`];
//!   - [`Fault::FreezeAll`]: hold the chunk and freeze every connection, new ones included (nothing
//!     forwarded either way, sockets kept open: a blackhole) until [`FaultProxy::thaw`].
//!
//! [`FaultProxy::wait_fired`] waits until the armed rule fired, so a test knows the fault happened.
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What an armed rule does to the connection whose client sent the pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    CutBefore,
    CutAfterReply,
    CutReplyAfter(usize),
    Pause,
    FreezeAll,
}

struct Rule {
    pattern: Vec<u8>,
    fault: Fault,
    /// Fires on every match (not only the first).
    every: bool,
}

struct Shared {
    upstream: SocketAddr,
    /// Bumped to cut every connection.
    cut: watch::Sender<u64>,
    /// True while every connection is frozen.
    frozen: watch::Sender<bool>,
    /// Bumped to resume paused connections.
    resumed: watch::Sender<u64>,
    rule: Mutex<Option<Rule>>,
    /// How many rules fired.
    fired: watch::Sender<u32>,
}

/// The proxy; dropping it cuts every connection and stops listening.
pub struct FaultProxy {
    pub port: u16,
    shared: Arc<Shared>,
    accept: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on a free 127.0.0.1 port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("cannot bind the fault proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let shared = Arc::new(Shared {
            upstream,
            cut: watch::channel(0).0,
            frozen: watch::channel(false).0,
            resumed: watch::channel(0).0,
            rule: Mutex::new(None),
            fired: watch::channel(0).0,
        });
        let accepting = shared.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(serve(client, accepting.clone()));
            }
        });
        FaultProxy {
            port,
            shared,
            accept,
        }
    }

    /// A proxy in front of the Postgres of `database_url`; returns it and the same URL through it.
    pub async fn for_postgres(database_url: &str) -> (FaultProxy, String) {
        let mut url = url::Url::parse(database_url).expect("a postgres:// URL");
        let host = url
            .host_str()
            .expect("a host in the database URL")
            .to_string();
        let port = url.port().unwrap_or(5432);
        let upstream = tokio::net::lookup_host((host.as_str(), port))
            .await
            .expect("resolve the database host")
            .next()
            .expect("an address for the database host");
        let proxy = FaultProxy::start(upstream).await;
        url.set_host(Some("127.0.0.1")).expect("set host");
        url.set_port(Some(proxy.port)).expect("set port");
        (proxy, url.to_string())
    }

    /// Closes every open connection now.
    pub fn cut_all(&self) {
        self.shared.cut.send_modify(|n| *n += 1);
    }

    /// Arms a one-shot rule: `fault` when a client next sends `pattern`.
    pub fn on_client_bytes(&self, pattern: &[u8], fault: Fault) {
        *self.shared.rule.lock().unwrap_or_else(|e| e.into_inner()) = Some(Rule {
            pattern: pattern.to_vec(),
            fault,
            every: false,
        });
    }

    /// Like [`FaultProxy::on_client_bytes`], but the rule fires on every match until
    /// [`FaultProxy::disarm`] (every retry of a request meets the same fault).
    pub fn on_every_client_bytes(&self, pattern: &[u8], fault: Fault) {
        *self.shared.rule.lock().unwrap_or_else(|e| e.into_inner()) = Some(Rule {
            pattern: pattern.to_vec(),
            fault,
            every: true,
        });
    }

    /// Removes the armed rule.
    pub fn disarm(&self) {
        *self.shared.rule.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Waits until `n` rules have fired in all, or panics after `timeout`.
    pub async fn wait_fired(&self, n: u32, timeout: Duration) {
        let mut fired = self.shared.fired.subscribe();
        tokio::time::timeout(timeout, fired.wait_for(|f| *f >= n))
            .await
            .unwrap_or_else(|_| panic!("the proxy's fault did not fire within {timeout:?}"))
            .expect("proxy state");
    }

    /// How many rules fired.
    pub fn fired(&self) -> u32 {
        *self.shared.fired.borrow()
    }

    /// Releases the paused connections (their held chunk is forwarded).
    pub fn resume(&self) {
        self.shared.resumed.send_modify(|n| *n += 1);
    }

    /// Ends the freeze: every connection forwards again, held chunks first.
    pub fn thaw(&self) {
        self.shared.frozen.send_replace(false);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut_all();
    }
}

/// The rule's fault when `window` (the connection's recent client bytes) holds its pattern.
fn take_match(shared: &Shared, window: &[u8]) -> Option<Fault> {
    let mut rule = shared.rule.lock().unwrap_or_else(|e| e.into_inner());
    let hit = rule.as_ref().is_some_and(|r| {
        !r.pattern.is_empty() && window.windows(r.pattern.len()).any(|w| w == r.pattern)
    });
    if !hit {
        return None;
    }
    let fault = if rule.as_ref().is_some_and(|r| r.every) {
        rule.as_ref().map(|r| r.fault)
    } else {
        rule.take().map(|r| r.fault)
    };
    shared.fired.send_modify(|n| *n += 1);
    fault
}

/// How a wait on the proxy's state ended.
enum Wake {
    Go,
    Cut,
}

async fn until_thawed(frozen: &mut watch::Receiver<bool>, cut: &mut watch::Receiver<u64>) -> Wake {
    tokio::select! {
        r = frozen.wait_for(|f| !*f) => if r.is_ok() { Wake::Go } else { Wake::Cut },
        _ = cut.changed() => Wake::Cut,
    }
}

async fn serve(client: TcpStream, shared: Arc<Shared>) {
    let mut cut = shared.cut.subscribe();
    cut.mark_unchanged();
    let mut frozen = shared.frozen.subscribe();
    let mut resumed = shared.resumed.subscribe();
    // A frozen path does not even connect on.
    if let Wake::Cut = until_thawed(&mut frozen, &mut cut).await {
        return;
    }
    let Ok(server) = TcpStream::connect(shared.upstream).await else {
        return;
    };
    let (mut client_rx, mut client_tx) = client.into_split();
    let (mut server_rx, mut server_tx) = server.into_split();
    let mut from_client = vec![0u8; 64 * 1024];
    let mut from_server = vec![0u8; 64 * 1024];
    // The client's last bytes, so a pattern split across reads is still seen.
    let mut window: Vec<u8> = Vec::new();
    let mut drop_reply = false;
    // Bytes of the server's reply still passed on before the connection is cut.
    let mut reply_budget: Option<usize> = None;
    loop {
        let is_frozen = *frozen.borrow_and_update();
        if is_frozen && let Wake::Cut = until_thawed(&mut frozen, &mut cut).await {
            return;
        }
        tokio::select! {
            _ = cut.changed() => return,
            _ = frozen.changed() => continue,
            n = client_rx.read(&mut from_client) => {
                let n = match n { Ok(0) | Err(_) => return, Ok(n) => n };
                let chunk = &from_client[..n];
                let keep = window.len().saturating_sub(256);
                window.drain(..keep);
                window.extend_from_slice(chunk);
                let fault = take_match(&shared, &window);
                if fault.is_some() {
                    window.clear();
                }
                match fault {
                    None => {}
                    Some(Fault::CutBefore) => return,
                    Some(Fault::CutAfterReply) => drop_reply = true,
                    Some(Fault::CutReplyAfter(n)) => reply_budget = Some(n),
                    Some(Fault::Pause) => {
                        resumed.mark_unchanged();
                        tokio::select! {
                            _ = resumed.changed() => {}
                            _ = cut.changed() => return,
                        }
                    }
                    Some(Fault::FreezeAll) => {
                        shared.frozen.send_replace(true);
                        frozen.mark_unchanged();
                        if let Wake::Cut = until_thawed(&mut frozen, &mut cut).await {
                            return;
                        }
                    }
                }
                if server_tx.write_all(chunk).await.is_err() {
                    return;
                }
            }
            n = server_rx.read(&mut from_server) => {
                let n = match n { Ok(0) | Err(_) => return, Ok(n) => n };
                if drop_reply {
                    return;
                }
                if let Some(budget) = reply_budget.as_mut() {
                    let pass = n.min(*budget);
                    *budget -= pass;
                    let _ = client_tx.write_all(&from_server[..pass]).await;
                    if pass < n || *budget == 0 {
                        let _ = client_tx.flush().await;
                        return;
                    }
                    continue;
                }
                if client_tx.write_all(&from_server[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}
