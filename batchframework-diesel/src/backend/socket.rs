//! Blocking until a PostgreSQL connection has something to read, instead of looking every few
//! milliseconds: how a worker's keeper hears of new work as soon as it is announced, and sleeps
//! otherwise.
//!
//! Diesel keeps libpq's connection handle, and so the socket, private. The keeper finds the
//! socket from the outside ([`WaitSocket::find`]): among this process's sockets, it is the one
//! that becomes readable when another connection sends this one a notification, and stops being
//! readable when this one reads it. Several rounds, each with a fresh notification, have to
//! agree on one socket; when they cannot (another thread of the process reading the same bytes
//! at the same moment, say), the keeper does without, as on a platform without `poll(2)`: it
//! looks for notifications every few milliseconds.
//!
//! The descriptor is borrowed: libpq owns and closes it. The keeper keeps a [`WaitSocket`] only
//! as long as the connection it was found for, and a socket that `poll` reports closed or
//! invalid is given up at once ([`Woken::SocketGone`]), so that a descriptor number reused by
//! something else is never waited on for long.
//!
//! The wait also watches a [`Bell`]: the worker threads ring it when they hand over a result
//! while the keeper sleeps, so a result is written as promptly as before.
//!
//! This is the crate's one module that may use unsafe code: `poll(2)` through `libc`, on Unix
//! with the `postgres` feature. Each unsafe block says why it is sound.
#![allow(unsafe_code)]

/// What woke a [`wait`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(all(unix, feature = "postgres")), allow(dead_code))]
pub(crate) enum Woken {
    /// The connection's socket has something to read (a notification, most likely).
    Socket,
    /// The bell rang (and was silenced).
    Bell,
    /// The socket was closed or is no longer valid: forget it.
    SocketGone,
    /// Nothing happened before the timeout.
    Timeout,
}

#[cfg(all(unix, feature = "postgres"))]
pub(crate) use unix::WaitSocket;
#[cfg(all(unix, feature = "postgres"))]
pub(crate) use unix::{wait, Bell};

#[cfg(not(all(unix, feature = "postgres")))]
pub(crate) use fallback::WaitSocket;
#[cfg(not(all(unix, feature = "postgres")))]
pub(crate) use fallback::{wait, Bell};

#[cfg(all(unix, feature = "postgres"))]
mod unix {
    use std::collections::HashSet;
    use std::io::{ErrorKind, Read, Write};
    use std::os::fd::{AsRawFd, RawFd};
    use std::os::unix::fs::FileTypeExt;
    use std::os::unix::net::UnixStream;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use diesel::connection::SimpleConnection;
    use diesel::{PgConnection, QueryResult};

    use super::Woken;

    /// Rounds of the probe before the keeper gives up looking.
    const PROBE_ROUNDS: usize = 12;
    /// Rounds in a row that must single out the same socket.
    const AGREEING_ROUNDS: usize = 3;
    /// How long one round waits for its notification to arrive.
    const PROBE_WAIT: Duration = Duration::from_secs(1);

    /// Makes every probe's channel name unique in the process.
    static PROBES: AtomicU64 = AtomicU64::new(0);

    /// A listening connection's socket, borrowed from libpq, for a worker's keeper to sleep on.
    /// Public only because the workers' storage trait names it; nothing outside this crate can
    /// make or use one.
    #[derive(Debug)]
    pub struct WaitSocket {
        fd: RawFd,
    }

    impl WaitSocket {
        /// Finds the socket of `conn` with the help of `notifier`, another connection to the
        /// same database; `None` if it cannot be told apart. Notifications that arrive on
        /// `conn` meanwhile are read and dropped: the caller wakes its threads afterwards.
        pub(crate) fn find(
            conn: &mut PgConnection,
            notifier: &mut PgConnection,
        ) -> QueryResult<Option<WaitSocket>> {
            let channel = format!(
                "batchframework_probe_{}_{}",
                std::process::id(),
                PROBES.fetch_add(1, Ordering::Relaxed)
            );
            conn.batch_execute(&format!("LISTEN {channel}"))?;
            let found = probe(conn, notifier, &channel);
            conn.batch_execute(&format!("UNLISTEN {channel}"))?;
            Ok(found?.map(|fd| WaitSocket { fd }))
        }
    }

    /// The rounds of [`WaitSocket::find`]. In each, the sockets that were quiet are watched
    /// while `notifier` notifies `channel`; those readable just before `conn` reads its
    /// notification and no longer readable just after are this round's suspects. The rounds'
    /// suspects are intersected until one socket is left for [`AGREEING_ROUNDS`] rounds; an
    /// empty intersection (a round that guessed wrong) starts over.
    fn probe(
        conn: &mut PgConnection,
        notifier: &mut PgConnection,
        channel: &str,
    ) -> QueryResult<Option<RawFd>> {
        let mut suspects: Option<HashSet<RawFd>> = None;
        let mut agreeing = 0;
        for _ in 0..PROBE_ROUNDS {
            drain(conn, channel)?;
            let sockets = match &suspects {
                Some(suspects) => suspects.iter().copied().collect(),
                None => process_sockets(),
            };
            let busy = readable(&sockets, Duration::ZERO);
            let quiet: Vec<RawFd> = sockets
                .into_iter()
                .filter(|fd| !busy.contains(fd))
                .collect();
            notifier.batch_execute(&format!("NOTIFY {channel}"))?;
            let woke = readable(&quiet, PROBE_WAIT);
            if woke.is_empty() {
                continue;
            }
            let before: Vec<RawFd> = readable(&quiet, Duration::ZERO).into_iter().collect();
            if !drain(conn, channel)? {
                // Something else woke first; ours has not arrived yet.
                continue;
            }
            let after = readable(&before, Duration::ZERO);
            let round: HashSet<RawFd> = before
                .into_iter()
                .filter(|fd| !after.contains(fd))
                .collect();
            if round.is_empty() {
                continue;
            }
            let narrowed: HashSet<RawFd> = match suspects.take() {
                None => round,
                Some(previous) => previous.intersection(&round).copied().collect(),
            };
            match narrowed.len() {
                0 => agreeing = 0,
                1 => {
                    agreeing += 1;
                    if agreeing >= AGREEING_ROUNDS {
                        return Ok(narrowed.into_iter().next());
                    }
                    suspects = Some(narrowed);
                }
                _ => suspects = Some(narrowed),
            }
        }
        Ok(None)
    }

    /// Reads every notification that has arrived on `conn`; whether one was on `channel`.
    fn drain(conn: &mut PgConnection, channel: &str) -> QueryResult<bool> {
        let mut heard = false;
        for notification in conn.notifications_iter() {
            heard |= notification?.channel == channel;
        }
        Ok(heard)
    }

    /// The descriptors of this process that are sockets, from `/dev/fd` (on Linux a link to
    /// `/proc/self/fd`); none where the directory cannot be read.
    fn process_sockets() -> Vec<RawFd> {
        let Ok(entries) = std::fs::read_dir("/dev/fd") else {
            return Vec::new();
        };
        entries
            .filter_map(|entry| {
                let entry = entry.ok()?;
                let fd: RawFd = entry.file_name().to_str()?.parse().ok()?;
                // `metadata` follows the descriptor to what it is open on.
                let is_socket = std::fs::metadata(entry.path())
                    .ok()?
                    .file_type()
                    .is_socket();
                is_socket.then_some(fd)
            })
            .collect()
    }

    /// Which of `fds` are readable, after waiting up to `timeout` for one to be.
    fn readable(fds: &[RawFd], timeout: Duration) -> HashSet<RawFd> {
        let mut polled: Vec<libc::pollfd> = fds
            .iter()
            .map(|&fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        if poll(&mut polled, timeout).is_err() {
            return HashSet::new();
        }
        polled
            .iter()
            .filter(|p| p.revents & libc::POLLIN != 0)
            .map(|p| p.fd)
            .collect()
    }

    /// `poll(2)` on `fds` for up to `timeout` (rounded up to a millisecond, at most about 24
    /// days); `EINTR` counts as a timeout.
    fn poll(fds: &mut [libc::pollfd], timeout: Duration) -> std::io::Result<()> {
        let millis = timeout.as_micros().div_ceil(1000);
        let millis = libc::c_int::try_from(millis).unwrap_or(libc::c_int::MAX);
        let count = libc::nfds_t::try_from(fds.len()).unwrap_or(libc::nfds_t::MAX);
        // SAFETY: `fds` is a valid, exclusively borrowed slice of `pollfd`s and `count` is at
        // most its length, so the kernel reads and writes only within it for the duration of
        // the call. `poll` does nothing else with the descriptors: one that is closed (or was
        // never open) is reported as POLLNVAL, not used.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), count, millis) };
        if ready < 0 {
            let error = std::io::Error::last_os_error();
            if error.kind() != ErrorKind::Interrupted {
                return Err(error);
            }
        }
        Ok(())
    }

    /// Blocks until `socket` (if any) has something to read, `bell` rings, or `timeout`
    /// passes. A rung bell is silenced before this returns.
    pub(crate) fn wait(socket: Option<&WaitSocket>, bell: &Bell, timeout: Duration) -> Woken {
        let mut polled = vec![libc::pollfd {
            fd: bell.receiver.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        if let Some(socket) = socket {
            polled.push(libc::pollfd {
                fd: socket.fd,
                events: libc::POLLIN,
                revents: 0,
            });
        }
        if poll(&mut polled, timeout).is_err() {
            return Woken::SocketGone;
        }
        let rang = polled[0].revents != 0;
        if rang {
            bell.silence();
        }
        match polled.get(1).map(|p| p.revents) {
            Some(revents) if revents & (libc::POLLNVAL | libc::POLLERR | libc::POLLHUP) != 0 => {
                Woken::SocketGone
            }
            Some(revents) if revents & libc::POLLIN != 0 => Woken::Socket,
            _ if rang => Woken::Bell,
            _ => Woken::Timeout,
        }
    }

    /// A bell the worker threads ring to wake a keeper blocked in [`wait`]: a pair of connected
    /// Unix sockets, both non-blocking, so ringing never blocks (a full buffer already rings).
    #[derive(Debug)]
    pub(crate) struct Bell {
        sender: UnixStream,
        receiver: UnixStream,
    }

    impl Bell {
        /// A new bell; `None` if the sockets cannot be had (the keeper then does not sleep on
        /// its socket).
        pub(crate) fn new() -> Option<Bell> {
            let (sender, receiver) = UnixStream::pair().ok()?;
            sender.set_nonblocking(true).ok()?;
            receiver.set_nonblocking(true).ok()?;
            Some(Bell { sender, receiver })
        }

        /// Wakes the keeper's [`wait`]. Never blocks; an error (a full buffer) means it rings
        /// already.
        pub(crate) fn ring(&self) {
            let _ = (&self.sender).write(&[1]);
        }

        /// Reads every ring, so the next wait blocks again.
        fn silence(&self) {
            let mut buffer = [0u8; 64];
            let mut receiver = &self.receiver;
            while matches!(receiver.read(&mut buffer), Ok(n) if n > 0) {}
        }
    }
}

#[cfg(not(all(unix, feature = "postgres")))]
mod fallback {
    use std::time::Duration;

    use super::Woken;

    /// A listening connection's socket: never found without `poll(2)` (the keeper looks for
    /// notifications every few milliseconds instead). Public only because the workers' storage
    /// trait names it.
    #[derive(Debug)]
    pub enum WaitSocket {}

    /// No bell without a socket to wait on: the keeper waits on its condition variable.
    #[derive(Debug)]
    pub(crate) struct Bell;

    impl Bell {
        pub(crate) fn new() -> Option<Bell> {
            None
        }

        pub(crate) fn ring(&self) {}
    }

    pub(crate) fn wait(socket: Option<&WaitSocket>, bell: &Bell, timeout: Duration) -> Woken {
        let _ = (socket, bell);
        std::thread::sleep(timeout);
        Woken::Timeout
    }
}
