//! Worker benchmark on PostgreSQL: bulk enqueue rate, no-op throughput with 1, 2 and 4 threads
//! (and with 4 behind a backlog of operations of a type the worker does not know),
//! and enqueue-to-start latency with LISTEN/NOTIFY and with polling only.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use batchframework_diesel::registry::{action_fn, ActionError, ActionGroup, Registry, RunArgs};
use batchframework_diesel::schema::batchframework_batchoperation;
use batchframework_diesel::worker::{Worker, WorkerConnection};
use batchframework_diesel::{bulk_insert, bulk_insertable, UtcDateTime};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, Pool};
use diesel::PgConnection;

use crate::AnyError;

/// Empties the queue: the operations and what batches and workflows keep beside them (one
/// statement, since those tables point at the operations).
pub(crate) const TRUNCATE_QUEUE: &str =
    "TRUNCATE batchframework_batchoperation, batchframework_batch, \
     batchframework_step, batchframework_dependency";

/// A queued operation as the bulk insert writes it.
#[bulk_insertable]
#[derive(Insertable)]
#[diesel(table_name = batchframework_batchoperation)]
pub(crate) struct QueuedOperation {
    created_datetime: UtcDateTime,
    operationtype: &'static str,
    status: &'static str,
    result: &'static str,
    queue: &'static str,
}

pub(crate) fn queued(n: usize) -> impl Iterator<Item = QueuedOperation> {
    queued_of("noop", n)
}

fn queued_of(operationtype: &'static str, n: usize) -> impl Iterator<Item = QueuedOperation> {
    let now = UtcDateTime(chrono::Utc::now());
    (0..n).map(move |_| QueuedOperation {
        created_datetime: now,
        operationtype,
        status: "unprocessed",
        result: "not-available",
        queue: "default",
    })
}

fn fresh(conn: &mut PgConnection) -> Result<(), AnyError> {
    batchframework_diesel::run_migrations(conn)?;
    conn.batch_execute(crate::workers::TRUNCATE_QUEUE)?;
    Ok(())
}

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(index).copied().unwrap_or_default()
}

/// Runs the three measurements and prints a table.
pub(crate) fn run(url: &str) -> Result<(), AnyError> {
    let mut conn = PgConnection::establish(url)?;
    let pool: Pool<ConnectionManager<PgConnection>> = Pool::builder()
        .max_size(6)
        .build(ConnectionManager::new(url))?;
    let registry: Arc<Registry<PgConnection>> = Arc::new(
        Registry::builder()
            .group(
                ActionGroup::new("noop")
                    .asynchronous()
                    .action(action_fn("noop", |_| Ok(serde_json::Value::Null))),
            )
            .build()?,
    );

    println!("| measurement | result |");
    println!("|---|---:|");

    // Bulk enqueue: one COPY.
    fresh(&mut conn)?;
    let started = Instant::now();
    let n = bulk_insert(&mut conn, queued(100_000))?;
    let took = started.elapsed();
    println!(
        "| bulk enqueue of {n} operations (COPY) | {:.0} ops/s |",
        n as f64 / took.as_secs_f64()
    );

    // One-at-a-time enqueue through the registry, against a plain insert of the same row.
    fresh(&mut conn)?;
    crate::enqueue::compare(&mut conn, &registry, 5, 1_000)?;

    // Throughput of no-op operations.
    for threads in [1, 2, 4] {
        fresh(&mut conn)?;
        bulk_insert(&mut conn, queued(20_000))?;
        let worker = Worker::new(Arc::clone(&registry), pool.clone());
        let started = Instant::now();
        let stats = worker.run_until_idle(threads)?;
        let took = started.elapsed();
        println!(
            "| no-op operations, {threads} worker thread(s), 20,000 | {:.0} ops/s |",
            stats.succeeded as f64 / took.as_secs_f64()
        );
    }

    // The same drain behind a backlog of types the worker does not know (another service's on
    // the same queue), queued ahead of its own: its claims must not read through them. Side by
    // side with the same drain without the backlog, with fresh statistics in both.
    for backlog in [0, 100_000] {
        fresh(&mut conn)?;
        bulk_insert(&mut conn, queued_of("other-service", backlog))?;
        bulk_insert(&mut conn, queued(5_000))?;
        conn.batch_execute("ANALYZE batchframework_batchoperation")?;
        let worker = Worker::new(Arc::clone(&registry), pool.clone());
        let started = Instant::now();
        let stats = worker.run_until_idle(4)?;
        let took = started.elapsed();
        println!(
            "| no-op operations, 4 worker threads, 5,000 behind {backlog} of an unknown type | {:.0} ops/s |",
            stats.succeeded as f64 / took.as_secs_f64()
        );
    }

    // Enqueue-to-start latency with a started worker: woken by LISTEN/NOTIFY (polling every
    // second as the fallback), then polling only.
    for (listen, poll_ms) in [(true, 1000), (false, 50), (false, 10)] {
        fresh(&mut conn)?;
        let mut samples = enqueue_to_start(
            &mut conn,
            &pool,
            "timed",
            listen,
            Duration::from_millis(poll_ms),
        )?;
        samples.sort();
        let how = if listen {
            format!("LISTEN/NOTIFY (polling every {poll_ms} ms)")
        } else {
            format!("polling every {poll_ms} ms, no LISTEN")
        };
        println!(
            "| enqueue-to-start latency, {how} (200 ops) | p50 {:.1} ms, p99 {:.1} ms |",
            percentile(&samples, 0.5).as_secs_f64() * 1000.0,
            percentile(&samples, 0.99).as_secs_f64() * 1000.0
        );
    }
    Ok(())
}

/// Enqueue-to-start latency: 200 operations of group `group` (a registry of that one no-op
/// group, which records how long each waited since it was created) enqueued 15 ms apart, one
/// `registry.run` each, into a started worker with 2 threads, woken by LISTEN/NOTIFY with
/// `listen`, else polling every `poll`. Fails if not all 200 started within 30 s.
pub(crate) fn enqueue_to_start<C: WorkerConnection>(
    conn: &mut C,
    pool: &Pool<ConnectionManager<C>>,
    group: &'static str,
    listen: bool,
    poll: Duration,
) -> Result<Vec<Duration>, AnyError> {
    let samples: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let seen = Arc::clone(&samples);
    let timed: Arc<Registry<C>> = Arc::new(
        Registry::builder()
            .group(ActionGroup::new(group).asynchronous().action(action_fn(
                "measure",
                move |ctx| {
                    let waited = chrono::Utc::now() - ctx.operation().created_datetime();
                    if let Ok(waited) = waited.to_std() {
                        seen.lock()
                            .map_err(|_| {
                                ActionError::with_data(serde_json::Value::Null, "poisoned")
                            })?
                            .push(waited);
                    }
                    Ok(serde_json::Value::Null)
                },
            )))
            .build()?,
    );
    let handle = Worker::new(Arc::clone(&timed), pool.clone())
        .listen(listen)
        .poll_interval(poll)
        .start(2)?;
    for _ in 0..200 {
        timed.run(conn, group, RunArgs::new())?;
        std::thread::sleep(Duration::from_millis(15));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while samples.lock().map_err(|_| "poisoned")?.len() < 200 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    handle.shutdown(Duration::from_secs(10))?;
    let samples = samples.lock().map_err(|_| "poisoned")?.clone();
    if samples.len() < 200 {
        return Err(format!("only {} of 200 operations started in time", samples.len()).into());
    }
    Ok(samples)
}
