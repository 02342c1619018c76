//! Heartbeats: the keeper refreshes `heartbeat_datetime` of every operation its worker holds,
//! every third of the lease, so other workers do not take them over while they run (or while
//! their results wait to be written).

use crate::backend::WorkerConnection;

use super::super::shared::Shared;
use super::Keeper;

impl<C> Keeper<C>
where
    C: WorkerConnection,
{
    /// Refreshes the heartbeat of every held operation. A failed beat is tried again at the
    /// next one; the lease covers a few misses.
    pub(super) fn beat(&mut self, shared: &Shared) {
        let were_stale = shared.outage.take_stale_heartbeats();
        let ids = shared.held_ids();
        if ids.is_empty() {
            return;
        }
        let name = &self.name;
        let beaten = self
            .conn
            .connect()
            .and_then(|(conn, _)| Ok(conn.heartbeat(name, &ids, self.clock.now())?));
        match beaten {
            Ok(_) => self.connection.worked(&shared.outage),
            Err(error) if self.conn.is_lost(&error) => {
                // Logged once per outage; the next beat tries again (and marks them stale).
                self.connection.failed(&shared.outage, &error, "keeper");
                self.conn.discard();
            }
            Err(error) => {
                tracing::warn!(%error, "heartbeat failed; retrying at the next one");
                if were_stale {
                    shared.outage.mark_heartbeats_stale();
                }
                self.conn.discard();
            }
        }
    }
}
