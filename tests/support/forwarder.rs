//! A TCP forwarder on the loopback interface, between a worker's connection pool and its
//! database server, that the fault tests use as a network that fails on command: it can cut
//! every open connection mid-stream (both sockets shut down, as a proxy restart or a dropped
//! route does) while still accepting new ones, refuse every new connection for as long as an
//! outage lasts, and swallow the server's reply to one chosen statement (the commit of a
//! transaction: the server did it, the client never hears so) before cutting that connection.
//!
//! It knows nothing of the database protocols: it copies bytes, and the reply trap looks for
//! plain substrings (the SQL text) in what the client sends. Only loopback addresses are
//! forwarded to.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// See the module documentation. Stops accepting and cuts everything when dropped.
pub struct Forwarder {
    address: SocketAddr,
    state: Arc<State>,
    acceptor: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct State {
    stop: AtomicBool,
    refusing: AtomicBool,
    /// Connections accepted and forwarded.
    accepted: AtomicUsize,
    /// Connections accepted and closed at once while refusing.
    refused: AtomicUsize,
    /// Connections the trap cut after swallowing a reply.
    trapped: AtomicUsize,
    next_id: AtomicU64,
    links: Mutex<Vec<Link>>,
    trap: Mutex<Option<Trap>>,
}

/// One forwarded connection: clones of both sockets, to shut them down from outside.
struct Link {
    id: u64,
    client: TcpStream,
    server: TcpStream,
    /// Set once the trap fired on this link: the server's replies are dropped from then on.
    swallow: Arc<AtomicBool>,
}

/// Swallows the reply to the first statement containing `fire` that a connection sends after
/// one containing `arm`, then cuts that connection.
struct Trap {
    arm: Vec<u8>,
    fire: Vec<u8>,
    /// The link armed so far, if any (the first connection to send `arm`).
    armed: Option<u64>,
}

impl Forwarder {
    /// Forwards a new port on 127.0.0.1 to `target`, which must be a loopback address.
    pub fn start(target: SocketAddr) -> Forwarder {
        assert!(
            target.ip().is_loopback(),
            "the forwarder only forwards to loopback addresses, not {target}"
        );
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the forwarder's port");
        let address = listener.local_addr().expect("the forwarder's address");
        let state = Arc::new(State::default());
        let acceptor = {
            let state = Arc::clone(&state);
            std::thread::spawn(move || accept(&listener, target, &state))
        };
        Forwarder {
            address,
            state,
            acceptor: Some(acceptor),
        }
    }

    /// The address clients connect to.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Shuts down both sockets of every open connection, mid-stream; new connections are
    /// still accepted. Returns how many were cut.
    pub fn cut(&self) -> usize {
        let links: Vec<Link> = std::mem::take(&mut *lock(&self.state.links));
        for link in &links {
            link.shut();
        }
        links.len()
    }

    /// While `refusing`, every new connection is accepted and closed at once (the client sees
    /// the server go away during its handshake), as during an outage.
    pub fn refuse(&self, refusing: bool) {
        self.state.refusing.store(refusing, Ordering::SeqCst);
    }

    /// Connections forwarded so far.
    pub fn accepted(&self) -> usize {
        self.state.accepted.load(Ordering::SeqCst)
    }

    /// Connections refused so far.
    pub fn refused(&self) -> usize {
        self.state.refused.load(Ordering::SeqCst)
    }

    /// Connections open right now.
    pub fn open(&self) -> usize {
        lock(&self.state.links).len()
    }

    /// Sets the reply trap: the first connection that sends `arm` gets the reply
    /// to its next `fire` dropped, and is cut once that reply has arrived from the server.
    pub fn trap_reply(&self, arm: &[u8], fire: &[u8]) {
        *lock(&self.state.trap) = Some(Trap {
            arm: arm.to_vec(),
            fire: fire.to_vec(),
            armed: None,
        });
    }

    /// How many connections the trap has cut (0 or 1).
    pub fn trapped(&self) -> usize {
        self.state.trapped.load(Ordering::SeqCst)
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        // Wakes the acceptor, blocked in accept().
        let _ = TcpStream::connect_timeout(&self.address, Duration::from_secs(1));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        self.cut();
    }
}

impl Link {
    fn shut(&self) {
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.server.shutdown(Shutdown::Both);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn accept(listener: &TcpListener, target: SocketAddr, state: &Arc<State>) {
    for client in listener.incoming() {
        if state.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        if state.refusing.load(Ordering::SeqCst) {
            state.refused.fetch_add(1, Ordering::SeqCst);
            let _ = client.shutdown(Shutdown::Both);
            continue;
        }
        let Ok(server) = TcpStream::connect_timeout(&target, Duration::from_secs(2)) else {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let id = state.next_id.fetch_add(1, Ordering::SeqCst);
        let swallow = Arc::new(AtomicBool::new(false));
        let clones = (
            client.try_clone(),
            server.try_clone(),
            client.try_clone(),
            server.try_clone(),
        );
        let (Ok(client_out), Ok(server_in), Ok(client_keep), Ok(server_keep)) = clones else {
            continue;
        };
        lock(&state.links).push(Link {
            id,
            client: client_keep,
            server: server_keep,
            swallow: Arc::clone(&swallow),
        });
        state.accepted.fetch_add(1, Ordering::SeqCst);
        {
            let state = Arc::clone(state);
            std::thread::spawn(move || upstream(client, server, id, &state));
        }
        {
            let state = Arc::clone(state);
            std::thread::spawn(move || downstream(server_in, client_out, id, &swallow, &state));
        }
    }
}

/// Client to server, watching for the trap's statements.
fn upstream(mut from: TcpStream, mut to: TcpStream, id: u64, state: &State) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &buffer[..n];
        let fire = {
            let mut trap = lock(&state.trap);
            match trap.as_mut() {
                Some(trap) if trap.armed == Some(id) && contains(chunk, &trap.fire) => true,
                Some(trap) if trap.armed.is_none() && contains(chunk, &trap.arm) => {
                    trap.armed = Some(id);
                    false
                }
                _ => false,
            }
        };
        if fire {
            *lock(&state.trap) = None;
            if let Some(link) = lock(&state.links).iter().find(|link| link.id == id) {
                link.swallow.store(true, Ordering::SeqCst);
            }
        }
        if to.write_all(chunk).is_err() {
            break;
        }
    }
    end(id, state);
}

/// Server to client; once the trap fired on this link, the reply is dropped and the link cut.
fn downstream(
    mut from: TcpStream,
    mut to: TcpStream,
    id: u64,
    swallow: &AtomicBool,
    state: &State,
) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if swallow.load(Ordering::SeqCst) {
            // The server has answered the trapped statement: it was done. The client never
            // hears of it.
            state.trapped.fetch_add(1, Ordering::SeqCst);
            break;
        }
        if to.write_all(&buffer[..n]).is_err() {
            break;
        }
    }
    end(id, state);
}

/// Closes both sockets of link `id` and forgets it.
fn end(id: u64, state: &State) {
    let mut links = lock(&state.links);
    if let Some(at) = links.iter().position(|link| link.id == id) {
        links.remove(at).shut();
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && haystack
            .windows(needle.len())
            .any(|window| window == needle)
}
