//! The state a worker's threads share: the stop flag, the operations they hold, the results
//! waiting to be written, the wake-up signal for idle threads, and the counters.
//!
//! One mutex and one condition variable cover the results queue and the wake-ups, so that a
//! thread going idle and a notification arriving cannot miss each other. A keeper that sleeps
//! on its listening socket instead of the condition variable is woken by a [`Bell`], rung
//! under the same mutex.

use super::metrics::Labels;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::backend::socket::Bell;
use crate::backend::UtcDateTime;
use crate::error::Error;
use crate::status::OperationResult;

use super::outage::Outage;
use super::WorkerStats;

/// The longest a thread waiting for the keeper to write results sleeps before it looks again
/// whether the keeper is still there.
const KEEPER_CHECK: Duration = Duration::from_millis(100);

/// The final result of an operation, waiting for the keeper thread to write it.
#[derive(Debug)]
pub(super) struct Finished {
    pub(super) id: i64,
    /// The attempt claimed, which fences the write.
    pub(super) attempt: i32,
    pub(super) result: OperationResult,
    pub(super) output: String,
    pub(super) finished_at: UtcDateTime,
    /// What to count once it is written.
    pub(super) outcome: Outcome,
    /// Its queue and type, for the metrics counted once it is written.
    pub(super) labels: Labels,
    /// The batch it is a child of, counted in the same transaction.
    pub(super) parent_id: Option<i64>,
}

/// How one operation's attempt ended, as counted in [`WorkerStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    Succeeded,
    Failed,
    Retried,
    Lost,
    Fenced,
}

#[derive(Default)]
struct State {
    /// Results not yet written, oldest first.
    unwritten: Vec<Finished>,
    /// Results the keeper has taken and is writing.
    writing: usize,
    /// The keeper has returned (or panicked): nothing handed over from now on gets written.
    keeper_gone: bool,
    /// Bumped by every wake-up; an idle thread waits for it to change.
    generation: u64,
    /// Threads waiting for work right now.
    idle: usize,
    /// The keeper sleeps on its socket and the [`Bell`], not on the condition variable.
    keeper_sleeping: bool,
}

/// See the module documentation.
pub(super) struct Shared {
    /// Set by a shutdown, or by SIGINT/SIGTERM through `stop_on_signals`.
    pub(super) stop: Arc<AtomicBool>,
    /// Worker threads that have not returned yet; the keeper runs until none is left.
    pub(super) serving: AtomicUsize,
    /// Operations claimed and not yet written back, whose heartbeats the keeper refreshes, with
    /// how many claims of this worker hold each (two, briefly, when one thread took over an
    /// operation whose lease another thread of the same worker let expire).
    held: Mutex<HashMap<i64, usize>>,
    /// The first error the keeper met, reported by the shutdown or `run_until_idle`.
    pub(super) keeper_error: Mutex<Option<Error>>,
    /// Which of the worker's connections are down, and since when.
    pub(super) outage: Outage,
    /// How many results may wait unwritten before worker threads wait for the keeper.
    max_unwritten: usize,
    counters: [AtomicUsize; 5],
    /// Times the keeper or an idle thread woke up (see [`WorkerStats::wakeups`]).
    wakeups: AtomicUsize,
    /// Work the keeper's commits made due: batches completed (which enqueued their
    /// callbacks) and workflow steps released.
    made_due: AtomicUsize,
    state: Mutex<State>,
    /// Signalled when results are handed over, taken or written, and when a thread returns:
    /// what the keeper and the threads waiting on it wait for.
    changed: Condvar,
    /// Signalled by a wake-up (new work, or the worker stops): what idle threads wait for.
    work_announced: Condvar,
    /// Wakes a keeper sleeping on its socket; `None` where it cannot (it then never does).
    bell: Option<Bell>,
}

impl Shared {
    pub(super) fn new(
        threads: usize,
        max_unwritten: usize,
        give_up_after: Option<Duration>,
    ) -> Self {
        Shared {
            stop: Arc::default(),
            serving: AtomicUsize::new(threads),
            held: Mutex::default(),
            keeper_error: Mutex::default(),
            outage: Outage::new(give_up_after),
            max_unwritten: max_unwritten.max(1),
            counters: Default::default(),
            wakeups: AtomicUsize::new(0),
            made_due: AtomicUsize::new(0),
            state: Mutex::default(),
            changed: Condvar::new(),
            work_announced: Condvar::new(),
            bell: Bell::new(),
        }
    }

    pub(super) fn is_stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Stops claiming and wakes every waiting thread.
    pub(super) fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.wake_all();
    }

    pub(super) fn count(&self, outcome: Outcome) {
        self.counters[outcome as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn stats(&self) -> WorkerStats {
        let get = |o: Outcome| self.counters[o as usize].load(Ordering::Relaxed);
        WorkerStats {
            succeeded: get(Outcome::Succeeded),
            failed: get(Outcome::Failed),
            retried: get(Outcome::Retried),
            lost: get(Outcome::Lost),
            fenced: get(Outcome::Fenced),
            reconnects: self.outage.reconnects(),
            wakeups: self.wakeups.load(Ordering::Relaxed),
        }
    }

    /// Counts work the keeper's commits made due (batches completed, steps released).
    pub(super) fn made_due(&self, count: usize) {
        self.made_due.fetch_add(count, Ordering::Relaxed);
    }

    /// How much work the keeper's commits have made due so far: batches completed (which
    /// enqueued their callbacks) and workflow steps released.
    pub(super) fn made_due_so_far(&self) -> usize {
        self.made_due.load(Ordering::Relaxed)
    }

    /// Counts one wake-up of the keeper or an idle thread.
    pub(super) fn woke(&self) {
        self.wakeups.fetch_add(1, Ordering::Relaxed);
    }

    /// Waits `pause`, or less if the worker is told to stop meanwhile.
    pub(super) fn pause_unless_stopping(&self, pause: Duration) {
        let deadline = deadline_after(pause);
        let mut state = lock(&self.state);
        while !self.is_stopping() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = wait(&self.work_announced, state, left);
        }
    }

    pub(super) fn hold(&self, ids: impl IntoIterator<Item = i64>) {
        let mut held = lock(&self.held);
        for id in ids {
            *held.entry(id).or_default() += 1;
        }
    }

    /// One claim of `id` is over (written, released or given up).
    pub(super) fn release(&self, id: i64) {
        let mut held = lock(&self.held);
        if let Some(claims) = held.get_mut(&id) {
            *claims -= 1;
            if *claims == 0 {
                held.remove(&id);
            }
        }
    }

    pub(super) fn held_ids(&self) -> Vec<i64> {
        lock(&self.held).keys().copied().collect()
    }

    /// The current wake-up generation: take it *before* a claim and pass it to
    /// [`wait_for_work`](Self::wait_for_work), so a notification that arrives between an empty
    /// claim and the wait is not missed.
    pub(super) fn generation(&self) -> u64 {
        lock(&self.state).generation
    }

    /// Waits until woken after `since`, stopped, or `timeout` passes.
    pub(super) fn wait_for_work(&self, since: u64, timeout: Duration) {
        let deadline = deadline_after(timeout);
        let mut state = lock(&self.state);
        state.idle += 1;
        while state.generation == since && !self.is_stopping() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = wait(&self.work_announced, state, left);
            self.woke();
        }
        state.idle -= 1;
    }

    /// Wakes every thread waiting for work (new work was announced, or the worker stops).
    pub(super) fn wake_all(&self) {
        lock(&self.state).generation += 1;
        self.work_announced.notify_all();
    }

    /// How many worker threads are waiting for work right now.
    pub(super) fn idle_threads(&self) -> usize {
        lock(&self.state).idle
    }

    /// Hands a result to the keeper; waits while too many are unwritten. Should the keeper be
    /// gone, the result cannot be written: the operation is let go, to be taken over by
    /// another worker once its lease expires.
    pub(super) fn push_result(&self, finished: Finished) {
        let mut state = lock(&self.state);
        while state.unwritten.len() >= self.max_unwritten && !state.keeper_gone {
            state = wait(&self.changed, state, KEEPER_CHECK);
        }
        if state.keeper_gone {
            drop(state);
            self.release(finished.id);
            return;
        }
        state.unwritten.push(finished);
        self.ring_keeper(&mut state);
        drop(state);
        self.changed.notify_all();
    }

    /// A worker thread has returned; it will push no more results.
    pub(super) fn serving_ended(&self) {
        self.serving.fetch_sub(1, Ordering::SeqCst);
        let mut state = lock(&self.state);
        self.ring_keeper(&mut state);
        self.changed.notify_all();
    }

    /// The bell a keeper may sleep on (with its listening socket) instead of
    /// [`take_results`](Self::take_results)' condition variable.
    pub(super) fn bell(&self) -> Option<&Bell> {
        self.bell.as_ref()
    }

    /// The keeper is about to sleep on the [`Bell`]: whether it may (nothing is waiting to be
    /// written, and a thread still serves). From now until [`keeper_woke`](Self::keeper_woke),
    /// a result handed over or a thread returning rings the bell.
    pub(super) fn keeper_sleeps(&self) -> bool {
        let mut state = lock(&self.state);
        let idle = state.unwritten.is_empty() && self.serving.load(Ordering::SeqCst) > 0;
        state.keeper_sleeping = idle && self.bell.is_some();
        state.keeper_sleeping
    }

    /// The keeper is awake again.
    pub(super) fn keeper_woke(&self) {
        lock(&self.state).keeper_sleeping = false;
        self.woke();
    }

    fn ring_keeper(&self, state: &mut State) {
        if state.keeper_sleeping {
            state.keeper_sleeping = false;
            if let Some(bell) = &self.bell {
                bell.ring();
            }
        }
    }

    /// The results waiting to be written, after waiting up to `timeout` for some; `None` once
    /// every worker thread has returned and every result has been written. Call
    /// [`written`](Self::written) once the returned results are written.
    pub(super) fn take_results(&self, timeout: Duration) -> Option<Vec<Finished>> {
        let deadline = deadline_after(timeout);
        let mut state = lock(&self.state);
        loop {
            if !state.unwritten.is_empty() {
                let taken = std::mem::take(&mut state.unwritten);
                state.writing = taken.len();
                drop(state);
                self.changed.notify_all();
                return Some(taken);
            }
            if self.serving.load(Ordering::SeqCst) == 0 {
                return None;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Some(Vec::new());
            }
            state = wait(&self.changed, state, left);
            self.woke();
        }
    }

    /// Puts results the keeper could not write (the database was unreachable) back at the
    /// front of the queue, to be written when it answers again.
    pub(super) fn put_back_results(&self, mut results: Vec<Finished>) {
        let mut state = lock(&self.state);
        results.append(&mut state.unwritten);
        state.unwritten = results;
        state.writing = 0;
        drop(state);
        self.changed.notify_all();
    }

    /// The results last taken are written (or given up).
    pub(super) fn written(&self) {
        lock(&self.state).writing = 0;
        self.changed.notify_all();
    }

    /// The keeper has returned: wake whoever waits on it.
    pub(super) fn keeper_ended(&self) {
        let mut state = lock(&self.state);
        state.keeper_gone = true;
        state.writing = 0;
        let lost: Vec<i64> = state.unwritten.drain(..).map(|f| f.id).collect();
        drop(state);
        for id in lost {
            self.release(id);
        }
        self.changed.notify_all();
    }

    /// Waits until every result handed over so far is written, the keeper is gone, or
    /// `deadline` passes; whether everything was written.
    pub(super) fn wait_until_written(&self, deadline: Instant) -> bool {
        let mut state = lock(&self.state);
        loop {
            if state.unwritten.is_empty() && state.writing == 0 {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if state.keeper_gone || left.is_zero() {
                return false;
            }
            state = wait(&self.changed, state, left);
        }
    }

    /// Results handed over and not written yet.
    pub(super) fn unwritten(&self) -> usize {
        let state = lock(&self.state);
        state.unwritten.len() + state.writing
    }

    /// Keeps the keeper's first error.
    pub(super) fn keeper_failed(&self, error: Error) {
        lock(&self.keeper_error).get_or_insert(error);
    }
}

/// Decrements [`Shared::serving`] when a worker thread returns, also by a panic.
pub(super) struct ServingGuard<'a>(pub(super) &'a Shared);

impl Drop for ServingGuard<'_> {
    fn drop(&mut self) {
        self.0.serving_ended();
    }
}

/// `timeout` from now, or a century from now for a timeout too large to add to an `Instant`.
pub(super) fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 24 * 3600)))
        .unwrap_or(now)
}

/// Locks, ignoring poisoning: the guarded data stays consistent across a panicking holder.
pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn wait<'a, T>(
    changed: &Condvar,
    guard: MutexGuard<'a, T>,
    timeout: Duration,
) -> MutexGuard<'a, T> {
    match changed.wait_timeout(guard, timeout) {
        Ok((guard, _)) => guard,
        Err(poisoned) => poisoned.into_inner().0,
    }
}
