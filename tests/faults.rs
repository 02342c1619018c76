//! The fault suite: started workers whose database goes away under them, in every way the
//! tests can make it go away on this machine, must ride it through. They keep running
//! (`is_stopping()` stays false), reconnect (`stats().reconnects` counts it), and finish every
//! operation once the database answers again: each `finished` and `successful`, none left
//! `running` or `unprocessed`, each run at least once and at most twice (an attempt cut short
//! by the outage may run again; never a third time). Only `give_up_after` stops them.
//!
//! * `restarts`: a private PostgreSQL cluster restarted three times (`-m fast`, `-m immediate`)
//!   under two worker processes draining 2,000 operations;
//! * `kills`: each of a worker's connections (its threads', its keeper's) killed in turn by the
//!   server (`pg_terminate_backend`, MariaDB's `KILL`);
//! * `proxy`: connections cut mid-stream at a TCP forwarder, a long outage, `give_up_after`, a
//!   shutdown during an outage, and commits whose reply is lost;
//! * `cancel`: `remove_pending` racing a running worker's claim 200 times, on every backend,
//!   without a single error.
//!
//! Why: a worker is a long-running service, and databases restart, fail over and sit behind
//! proxies. A worker that stops on the first lost connection needs a supervisor to restart it,
//! and loses its operations to the lease meanwhile. Every wait here is for a condition, with a
//! deadline; the faults are injected when the drain has reached a given point, never after a
//! guessed sleep.

mod cancel;
mod common;
#[cfg(any(feature = "postgres", feature = "mysql"))]
mod kills;
#[cfg(any(feature = "postgres", feature = "mysql"))]
mod proxy;
#[cfg(feature = "postgres")]
mod restarts;

/// Not a test of its own: the worker process `postgres::a_worker_rides_through_three_restarts_of_its_cluster`
/// starts (this test binary, run again on this test).
#[cfg(feature = "postgres")]
#[test]
#[ignore = "run as a child process by the cluster restart test"]
fn child_worker() {
    restarts::child_worker();
}

/// The tests that need a server the test can reach sessions of: PostgreSQL and MariaDB.
#[cfg(any(feature = "postgres", feature = "mysql"))]
macro_rules! server_tests {
    ($backend:ty) => {
        #[test]
        fn killing_each_worker_connection_in_turn() {
            super::kills::killing_each_connection_in_turn::<$backend>();
        }

        #[test]
        fn cutting_every_connection_at_a_proxy() {
            super::proxy::cutting_every_connection_at_a_proxy::<$backend>();
        }

        #[test]
        fn a_long_outage_is_ridden_through() {
            super::proxy::a_long_outage_is_ridden_through::<$backend>();
        }

        #[test]
        fn give_up_after_stops_a_worker_left_without_a_database() {
            super::proxy::give_up_after_stops_a_worker_left_without_a_database::<$backend>();
        }

        #[test]
        fn shutdown_during_an_outage_returns_in_time() {
            super::proxy::shutdown_during_an_outage_returns_in_time::<$backend>();
        }

        #[test]
        fn a_claim_whose_commit_reply_is_lost_still_runs() {
            super::proxy::a_claim_whose_commit_reply_is_lost_still_runs::<$backend>();
        }

        #[test]
        fn a_result_whose_commit_reply_is_lost_is_counted_once() {
            super::proxy::a_result_whose_commit_reply_is_lost_is_counted_once::<$backend>();
        }

        #[test]
        fn cancel_racing_a_claim_200_times_never_errs() {
            super::cancel::cancel_racing_a_claim_200_times::<$backend>();
        }
    };
}

#[cfg(feature = "postgres")]
mod postgres {
    server_tests!(batchframework_tests::Postgres);

    #[test]
    fn a_worker_rides_through_three_restarts_of_its_cluster() {
        super::restarts::three_restarts_during_a_drain();
    }
}

#[cfg(feature = "mysql")]
mod mysql {
    server_tests!(batchframework_tests::Mysql);
}

#[cfg(feature = "sqlite")]
mod sqlite {
    #[test]
    fn cancel_racing_a_claim_200_times_never_errs() {
        super::cancel::cancel_racing_a_claim_200_times::<batchframework_tests::Sqlite>();
    }
}
