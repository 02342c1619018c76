//! Wake-ups (PostgreSQL): the keeper's connection LISTENs for the new-work notifications the
//! migrations' triggers send, and the keeper wakes the idle worker threads when one names a
//! queue of theirs, so new work starts within milliseconds instead of at the next poll.

use std::time::{Duration, Instant};

use crate::backend::WorkerConnection;

use super::super::shared::Shared;
use super::Keeper;

/// How long a keeper that lost its listening connection waits before it tries again.
const RELISTEN_AFTER: Duration = Duration::from_secs(1);

impl<C> Keeper<C>
where
    C: WorkerConnection,
{
    /// Wakes the idle worker threads if new work was announced on one of their queues. A lost
    /// connection is replaced (listening again) and everyone is woken, in case a notification
    /// was lost with it; if no connection can be had, returns when to try again (polling goes
    /// on meanwhile).
    pub(super) fn read_notifications(&mut self, shared: &Shared) -> Option<Instant> {
        let read = self
            .conn
            .connect()
            .and_then(|(conn, _)| Ok(conn.work_notifications()?));
        match read {
            Ok(queues) => {
                // A connection that started listening again may have missed some.
                let relistened = self.conn.take_relistened();
                if relistened || queues.iter().any(|queue| self.queues.contains(queue)) {
                    shared.wake_all();
                }
                None
            }
            Err(error) => {
                if self.conn.is_lost(&error) {
                    self.connection.failed(&shared.outage, &error, "keeper");
                } else {
                    tracing::warn!(%error, "could not read notifications; listening again");
                }
                self.conn.discard();
                if self.conn.connect().is_ok() {
                    // Listening again: whatever was announced meanwhile is found by a claim.
                    self.connection.worked(&shared.outage);
                    shared.wake_all();
                    None
                } else {
                    Some(Instant::now() + RELISTEN_AFTER)
                }
            }
        }
    }
}
