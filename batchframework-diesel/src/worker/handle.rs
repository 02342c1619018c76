//! [`WorkerHandle`]: what a caller holds of a worker started with
//! [`Worker::start`](super::Worker::start): its statistics, the stop on signals, and the
//! shutdown, which stops claiming, joins the threads by a deadline and waits for the keeper to
//! write the results handed over.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

use super::shared::{deadline_after, lock, Shared};
use super::WorkerStats;

/// Controls a worker started with [`Worker::start`](super::Worker::start).
pub struct WorkerHandle {
    pub(super) shared: Arc<Shared>,
    pub(super) threads: Vec<JoinHandle<Result<()>>>,
    pub(super) keeper: JoinHandle<Result<()>>,
    /// The signal threads of [`stop_on_signals`](Self::stop_on_signals), ended by the
    /// shutdown.
    pub(super) signals: Mutex<Vec<signal_hook::iterator::Handle>>,
}

impl fmt::Debug for WorkerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerHandle")
            .field("threads", &self.threads.len())
            .field("stats", &self.stats())
            .finish()
    }
}

impl WorkerHandle {
    /// What the worker has done so far (results are counted once written).
    pub fn stats(&self) -> WorkerStats {
        self.shared.stats()
    }

    /// How many worker threads are waiting for work right now (a claim came back empty). Not a
    /// sign that everything is done: results may still be on their way to the database, and
    /// [`stats`](Self::stats) counts them once written.
    pub fn idle_threads(&self) -> usize {
        self.shared.idle_threads()
    }

    /// Makes SIGINT and SIGTERM stop claiming new work, as [`shutdown`](Self::shutdown) does;
    /// then call `shutdown` (for example once [`is_stopping`](Self::is_stopping) turns true) to
    /// wait for the running actions.
    ///
    /// A small thread waits for the signals and wakes the worker's waiting threads at once; it
    /// ends with the handle's [`shutdown`](Self::shutdown).
    pub fn stop_on_signals(&self) -> Result<()> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        for signal in [SIGINT, SIGTERM] {
            // The flag is set in the handler itself, so a stop is never missed.
            signal_hook::flag::register(signal, Arc::clone(&self.shared.stop))
                .map_err(Error::Signal)?;
        }
        let mut signals =
            signal_hook::iterator::Signals::new([SIGINT, SIGTERM]).map_err(Error::Signal)?;
        let shared = Arc::downgrade(&self.shared);
        lock(&self.signals).push(signals.handle());
        std::thread::Builder::new()
            .name("batchframework-signals".into())
            .spawn(move || {
                for _ in signals.forever() {
                    match shared.upgrade() {
                        Some(shared) => shared.request_stop(),
                        None => break,
                    }
                }
            })
            .map_err(Error::Signal)?;
        Ok(())
    }

    /// Whether the worker has been told to stop (by [`shutdown`](Self::shutdown), a signal
    /// after [`stop_on_signals`](Self::stop_on_signals), or a database error in one of its
    /// threads, which [`shutdown`](Self::shutdown) then returns).
    pub fn is_stopping(&self) -> bool {
        self.shared.is_stopping()
    }

    /// Stops claiming, lets running actions finish for up to `timeout`, releases operations
    /// claimed but not started, waits for the results to be written, and returns what the
    /// worker did.
    ///
    /// Results already handed to the keeper get [`RESULT_GRACE`] past `timeout` to be written.
    /// Threads still running an action after `timeout` are left to finish on their own, the
    /// keeper still beating their heartbeats and writing their results; should the process
    /// exit first, their operations are recovered by other workers after the lease.
    ///
    /// # Errors
    ///
    /// The error that stopped the worker, if one did (a database error, or
    /// [`Worker::give_up_after`](super::Worker::give_up_after) elapsed in an outage); else
    /// [`Error::ResultsNotWritten`] when results handed over could not be written by then (the
    /// database did not answer).
    pub fn shutdown(self, timeout: Duration) -> Result<WorkerStats> {
        self.shared.request_stop();
        for signals in lock(&self.signals).drain(..) {
            signals.close();
        }
        let deadline = deadline_after(timeout);
        let mut first_error = None;
        for thread in self.threads {
            if let Some(result) = join_by(thread, deadline) {
                if let (Err(error), None) = (result, &first_error) {
                    first_error = Some(error);
                }
            }
        }
        let written_by = deadline.max(deadline_after(RESULT_GRACE));
        if !self.shared.wait_until_written(written_by) {
            let results = self.shared.unwritten();
            if results > 0 {
                first_error.get_or_insert(Error::ResultsNotWritten { results });
            }
        }
        // The keeper returns once every thread has and every result is written; with a thread
        // still running, it stays to keep that thread's operation and write its result.
        if self.shared.serving.load(Ordering::SeqCst) == 0 {
            if let Some(Err(error)) = join_by(self.keeper, written_by) {
                first_error.get_or_insert(error);
            }
        }
        if let Some(error) = first_error.or_else(|| lock(&self.shared.keeper_error).take()) {
            return Err(error);
        }
        Ok(self.shared.stats())
    }
}

/// How long past a shutdown's timeout the results already handed to the keeper may take to be
/// written.
pub const RESULT_GRACE: Duration = Duration::from_secs(10);

/// Joins `thread` if it ends before `deadline`; `None` if it is still running then.
fn join_by<T>(thread: JoinHandle<Result<T>>, deadline: Instant) -> Option<Result<T>>
where
    T: Send + 'static,
{
    while !thread.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    thread
        .is_finished()
        .then(|| thread.join().unwrap_or(Err(Error::WorkerPanicked)))
}
