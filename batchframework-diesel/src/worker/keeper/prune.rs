//! Pruning (with [`Worker::prune_finished_after`](super::super::Worker::prune_finished_after)):
//! the keeper deletes finished operations older than the worker's age, one batch of
//! [`PRUNE_BATCH`] per turn of its loop, so results wait at most one batch for it. A round
//! starts when the worker starts and then every [`PRUNE_EVERY`], if this keeper gets the
//! pruning lock (another worker's round in progress keeps it); it ends with a batch short of
//! its size, or when the keeper's connection fails (the lock goes with it).

use std::time::{Duration, Instant};

use crate::backend::WorkerConnection;
use crate::prune::Prune;

use super::super::{PRUNE_BATCH, PRUNE_EVERY};
use super::Keeper;

/// The keeper's pruning: how old finished operations may get, and the round in progress.
pub(super) struct Pruning {
    age: Duration,
    next_round: Instant,
    round: Option<Round>,
}

/// A round of pruning: what it deletes, where its next batch starts, how many it deleted.
struct Round {
    prune: Prune,
    after: Option<i64>,
    deleted: u64,
}

impl Pruning {
    /// Pruning operations finished more than `age` ago, a first round at once.
    pub(super) fn new(age: Duration) -> Self {
        Pruning {
            age,
            next_round: Instant::now(),
            round: None,
        }
    }

    /// How soon the next step is due: at once while a round is in progress.
    pub(super) fn due_in(&self) -> Duration {
        match self.round {
            Some(_) => Duration::ZERO,
            None => self.next_round.saturating_duration_since(Instant::now()),
        }
    }
}

impl<C> Keeper<C>
where
    C: WorkerConnection,
{
    /// One step of pruning, if it is on and due: the start of a round (taking the lock), or
    /// its next batch.
    pub(super) fn prune_step(&mut self) {
        let Some(pruning) = self.pruning.as_mut() else {
            return;
        };
        if pruning.round.is_none() {
            if Instant::now() < pruning.next_round {
                return;
            }
            pruning.next_round = Instant::now() + PRUNE_EVERY;
            match self.conn.lock_pruning() {
                Ok(true) => {}
                Ok(false) => return,
                Err(error) => {
                    tracing::warn!(%error, "could not take the pruning lock; trying next round");
                    self.conn.discard();
                    return;
                }
            }
            // An age longer than time can go back keeps everything.
            let cutoff = chrono::Duration::from_std(pruning.age)
                .ok()
                .and_then(|age| self.clock.now().checked_sub_signed(age))
                .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
            pruning.round = Some(Round {
                prune: Prune::finished_before(cutoff).batch_size(PRUNE_BATCH),
                after: None,
                deleted: 0,
            });
        }
        let Some(round) = pruning.round.as_mut() else {
            return;
        };
        if !self.conn.holds_pruning_lock() {
            // The connection was replaced after a failure, and the lock went with it.
            pruning.round = None;
            return;
        }
        let batch = self
            .conn
            .connect()
            .and_then(|(conn, _)| round.prune.run_batch(conn, round.after));
        match batch {
            Ok(batch) => {
                round.deleted += batch.deleted;
                round.after = batch.next_after;
                if batch.next_after.is_none() {
                    tracing::info!(deleted = round.deleted, "pruned finished operations");
                    pruning.round = None;
                    self.conn.unlock_pruning();
                }
            }
            Err(error) => {
                tracing::warn!(%error, "pruning failed; trying next round");
                pruning.round = None;
                self.conn.discard();
            }
        }
    }
}
