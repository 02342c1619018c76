//! `--batches`: what grouping operations into batches costs, on PostgreSQL, against the same
//! work as plain operations, side by side in one run.
//!
//! * **Drain**: 20,000 no-op operations drained by one worker of 4 threads
//!   (`run_until_idle(4)`), (a) as plain operations, enqueued in bulk as `--workers` does (one
//!   `bulk_insert`, a COPY), and (b) as the children of 20 batches of 1,000
//!   (`registry.batch(..).on_complete(..).enqueue(..)`, one COPY each). Only the drain is timed.
//!   A batch's children cost the worker more than plain operations: the keeper's group commit
//!   adds them to their batch's counts (one `UPDATE` per batch per group) and finishes each
//!   parent as its last child is written; the ratio (b)/(a) is that cost (target: ≥ 0.90).
//!   The callbacks (a no-op `on_complete` group per batch) go to a queue of their own, which the
//!   timed worker does not serve: they are not part of the timed drain. After it, the bench
//!   checks that every parent is finished and that the batches' counts add up to 20,000, then
//!   drains the 20 callbacks with an untimed worker and checks that they ran.
//! * **Enqueue**: one batch of 100,000 children, one `enqueue` call, timed from the call to its
//!   return (the parent, the children's COPY, the counts row, one transaction), in children per
//!   second (target: ≥ 100,000/s), next to a bulk enqueue of 100,000 plain operations as
//!   `--workers` does it (one `bulk_insert`).
//!
//! Every measurement starts on a fresh queue (both tables truncated; fresh statistics, with
//! `ANALYZE`, before each drain). The four measurements take turns, round after round
//! (`--repeat`, default 3; the two drains in alternating order), so a slow moment of the machine
//! falls on all of them; the table shows the median of each, and every round's figure. The ratio
//! (b)/(a) is the median of the rounds' ratios, each from two drains run back to back. Runs in
//! the database of the other modes (`bf_bench`, created and dropped, or `--url`).

use std::sync::Arc;
use std::time::Instant;

use batchframework_diesel::batch::Child;
use batchframework_diesel::registry::{action_fn, ActionGroup, Registry, RunArgs};
use batchframework_diesel::schema::batchframework_batchoperation as operations;
use batchframework_diesel::worker::Worker;
use batchframework_diesel::{bulk_insert, BatchOperation, Status};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, Pool};
use diesel::PgConnection;

use crate::workers::queued;
use crate::AnyError;

/// Operations drained per drain measurement, and how they are grouped into batches.
const DRAINED: usize = 20_000;
const BATCHES: usize = 20;
const PER_BATCH: usize = DRAINED / BATCHES;
/// Worker threads of the drains.
const THREADS: usize = 4;
/// Children of the timed batch enqueue (and plain operations of its comparison).
const ENQUEUED: usize = 100_000;

/// The no-op group of every operation and child, on the default queue.
const NOOP: &str = "noop";
/// The batches' no-op `on_complete` group, on a queue the timed worker does not serve.
const CALLBACK: &str = "batch-done";
const CALLBACK_QUEUE: &str = "callbacks";

/// One round's rates, per second: drain (a), drain (b), plain bulk enqueue, batch enqueue.
type Round = [f64; 4];

/// Runs `rounds` interleaved rounds and prints the table.
pub(crate) fn run(url: &str, rounds: usize) -> Result<(), AnyError> {
    let rounds = rounds.max(1);
    let mut conn = PgConnection::establish(url)?;
    batchframework_diesel::run_migrations(&mut conn)?;
    let pool: Pool<ConnectionManager<PgConnection>> = Pool::builder()
        .max_size(6)
        .build(ConnectionManager::new(url))?;
    let registry: Arc<Registry<PgConnection>> = Arc::new(
        Registry::builder()
            .queue(CALLBACK_QUEUE)
            .group(
                ActionGroup::new(NOOP)
                    .asynchronous()
                    .action(action_fn("noop", |_| Ok(serde_json::Value::Null))),
            )
            .group(
                ActionGroup::new(CALLBACK)
                    .asynchronous()
                    .queue(CALLBACK_QUEUE)
                    .action(action_fn("noop", |_| Ok(serde_json::Value::Null))),
            )
            .build()?,
    );

    let mut raw: Vec<Round> = Vec::new();
    for round in 1..=rounds {
        // Every other round (b) goes first, so neither drain always follows the other's.
        let (plain, batches) = if round % 2 == 1 {
            let plain = drain_plain(&mut conn, &registry, &pool)?;
            (plain, drain_batches(&mut conn, &registry, &pool)?)
        } else {
            let batches = drain_batches(&mut conn, &registry, &pool)?;
            (drain_plain(&mut conn, &registry, &pool)?, batches)
        };
        let figures = [
            plain,
            batches,
            enqueue_plain(&mut conn)?,
            enqueue_batch(&mut conn, &registry)?,
        ];
        eprintln!(
            "round {round}: drain (a) {:.0} ops/s, (b) {:.0} ops/s; enqueue plain {:.0}/s, batch {:.0}/s",
            figures[0], figures[1], figures[2], figures[3]
        );
        raw.push(figures);
    }
    fresh(&mut conn)?;

    let column = |i: usize| raw.iter().map(|r| r[i]).collect::<Vec<_>>();
    let rounds_of = listed;
    let ratios: Vec<f64> = raw.iter().map(|r| r[1] / r[0]).collect();
    let medians: Vec<f64> = (0..4).map(|i| median(column(i))).collect();
    // Each round's (a) and (b) ran back to back: the median of the rounds' ratios is steadier,
    // on a loaded machine, than the ratio of the medians (which may come from different rounds).
    let ratio = median(ratios.clone());
    let verdict = |ok: bool| if ok { "met" } else { "missed" };

    let args: Vec<String> = std::env::args().skip(1).collect();
    println!(
        "`cargo run --release -p batchframework-bench -- {}`\n",
        args.join(" ")
    );
    println!(
        "PostgreSQL; median of {rounds} interleaved rounds, each measurement on a fresh queue; \
         {} CPU(s) seen; worker: Worker::new(registry, pool of 6).queues([\"default\"])\
         .run_until_idle({THREADS}), callbacks on queue `{CALLBACK_QUEUE}`, drained afterwards, \
         untimed\n",
        std::thread::available_parallelism().map_or(0, usize::from),
    );
    println!("| measurement | median | rounds | target |");
    println!("|---|---:|---|---|");
    println!(
        "| (a) drain {DRAINED} plain no-op operations, {THREADS} threads | {:.0} ops/s | {} | |",
        medians[0],
        rounds_of(&column(0), 0)
    );
    println!(
        "| (b) drain {DRAINED} no-op children of {BATCHES} batches of {PER_BATCH} (+ `on_complete`), \
         {THREADS} threads | {:.0} ops/s | {} | |",
        medians[1],
        rounds_of(&column(1), 0)
    );
    println!(
        "| (b) / (a) | {ratio:.2} | {} | ≥ 0.90: {} |",
        rounds_of(&ratios, 2),
        verdict(ratio >= 0.90)
    );
    println!(
        "| bulk enqueue of {ENQUEUED} plain operations (`bulk_insert`, COPY) | {:.0} ops/s | {} | |",
        medians[2],
        rounds_of(&column(2), 0)
    );
    println!(
        "| enqueue of one batch of {ENQUEUED} children (`registry.batch(..).enqueue`) | {:.0} children/s | {} | ≥ 100000/s: {} |",
        medians[3],
        rounds_of(&column(3), 0),
        verdict(medians[3] >= 100_000.0)
    );
    Ok(())
}

/// Empties the queue: operations and batches' counts.
fn fresh(conn: &mut PgConnection) -> Result<(), AnyError> {
    conn.batch_execute(crate::workers::TRUNCATE_QUEUE)?;
    Ok(())
}

/// Fresh statistics, so that neither drain's plans depend on when autovacuum last ran.
fn analyze(conn: &mut PgConnection) -> Result<(), AnyError> {
    conn.batch_execute("ANALYZE batchframework_batchoperation, batchframework_batch")?;
    Ok(())
}

/// Drains the default queue with `THREADS` threads, timed; fails unless it ran `DRAINED`
/// operations, all successful. Returns operations per second.
fn timed_drain(
    registry: &Arc<Registry<PgConnection>>,
    pool: &Pool<ConnectionManager<PgConnection>>,
) -> Result<f64, AnyError> {
    let worker = Worker::new(Arc::clone(registry), pool.clone()).queues(["default"]);
    let started = Instant::now();
    let stats = worker.run_until_idle(THREADS)?;
    let took = started.elapsed();
    if stats.succeeded != DRAINED || stats.failed != 0 {
        return Err(format!(
            "the drain ran {} successfully and {} failed, not {DRAINED}",
            stats.succeeded, stats.failed
        )
        .into());
    }
    Ok(DRAINED as f64 / took.as_secs_f64())
}

/// (a): `DRAINED` plain operations, enqueued in bulk.
fn drain_plain(
    conn: &mut PgConnection,
    registry: &Arc<Registry<PgConnection>>,
    pool: &Pool<ConnectionManager<PgConnection>>,
) -> Result<f64, AnyError> {
    fresh(conn)?;
    bulk_insert(conn, queued(DRAINED))?;
    analyze(conn)?;
    timed_drain(registry, pool)
}

/// (b): the same number as the children of `BATCHES` batches, then the checks and the
/// callbacks, untimed.
fn drain_batches(
    conn: &mut PgConnection,
    registry: &Arc<Registry<PgConnection>>,
    pool: &Pool<ConnectionManager<PgConnection>>,
) -> Result<f64, AnyError> {
    fresh(conn)?;
    let mut parents = Vec::with_capacity(BATCHES);
    for _ in 0..BATCHES {
        let parent = registry
            .batch("bench-batch")
            .on_complete(CALLBACK)
            .enqueue(conn, children(PER_BATCH))?;
        parents.push(parent.id());
    }
    analyze(conn)?;
    let rate = timed_drain(registry, pool)?;

    let mut counted = 0;
    for &id in &parents {
        let parent = BatchOperation::find(conn, id)?;
        let progress = BatchOperation::batch_progress(conn, id)?;
        if parent.status() != Status::Finished || !progress.is_complete() {
            return Err(format!("batch {id} not finished after the drain: {progress:?}").into());
        }
        counted += progress.finished();
    }
    if counted != DRAINED as i64 {
        return Err(format!("the batches counted {counted} children, not {DRAINED}").into());
    }
    Worker::new(Arc::clone(registry), pool.clone())
        .queues([CALLBACK_QUEUE])
        .run_until_idle(1)?;
    let callbacks: i64 = operations::table
        .filter(operations::operationtype.eq(CALLBACK))
        .filter(operations::status.eq(Status::Finished.as_str()))
        .count()
        .get_result(conn)?;
    if callbacks != BATCHES as i64 {
        return Err(format!("{callbacks} callbacks finished, not {BATCHES}").into());
    }
    Ok(rate)
}

/// `ENQUEUED` plain operations in one `bulk_insert`, timed; operations per second.
fn enqueue_plain(conn: &mut PgConnection) -> Result<f64, AnyError> {
    fresh(conn)?;
    let started = Instant::now();
    let n = bulk_insert(conn, queued(ENQUEUED))?;
    let took = started.elapsed();
    if n != ENQUEUED {
        return Err(format!("bulk_insert wrote {n} operations, not {ENQUEUED}").into());
    }
    Ok(n as f64 / took.as_secs_f64())
}

/// One batch of `ENQUEUED` children in one `enqueue` call, timed; children per second.
fn enqueue_batch(
    conn: &mut PgConnection,
    registry: &Registry<PgConnection>,
) -> Result<f64, AnyError> {
    fresh(conn)?;
    let started = Instant::now();
    let parent = registry
        .batch("bench-batch")
        .on_complete(CALLBACK)
        .enqueue(conn, children(ENQUEUED))?;
    let took = started.elapsed();
    let total = BatchOperation::batch_progress(conn, parent.id())?.total;
    if total != ENQUEUED as i64 {
        return Err(format!("the batch has {total} children, not {ENQUEUED}").into());
    }
    Ok(ENQUEUED as f64 / took.as_secs_f64())
}

/// `n` no-op children without input.
fn children(n: usize) -> impl Iterator<Item = Child> {
    (0..n).map(|_| Child::new(NOOP, RunArgs::new()))
}

/// The median of `values` (the mean of the middle two for an even count).
pub(crate) fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 0 && mid > 0 {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values.get(mid).copied().unwrap_or(f64::NAN)
    }
}

/// `values` with `digits` decimals, comma-separated: a table's column of every round.
pub(crate) fn listed(values: &[f64], digits: usize) -> String {
    values
        .iter()
        .map(|v| format!("{v:.digits$}"))
        .collect::<Vec<_>>()
        .join(", ")
}
