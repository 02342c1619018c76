//! `--workflows`: what running operations as workflow steps costs, on PostgreSQL, against the
//! same work as plain operations or a batch, side by side in one run.
//!
//! * **Fan-out and fan-in**: a root step, 10,000 no-op steps after it, and one step after all
//!   of them, against a batch of 10,000 no-op children: each run by a started worker of 4
//!   threads (`Worker::start(4)`), timed from the start until its parent has finished
//!   (`BatchOperation::wait`). Besides what a batch costs, the workflow's steps are released
//!   (the root's commit makes 10,000 rows due: one more write of each), and each group commit
//!   counts its finished steps into their one dependent (the join's row, locked for the
//!   commit); the ratio is that cost.
//! * **A chain**: 200 steps, each after the one before, on a started worker of one thread: a
//!   step can only start once the commit that finished the one before it has released it, so
//!   the time per step is the handoff (the group commit, the release, the wake-up on
//!   PostgreSQL's notification, the claim) plus the no-op run.
//! * **Enqueue**: a workflow of 10,000 steps after one root (its steps' rows, one COPY of the
//!   operations, the dependencies), against a batch of 10,000 children (`registry.batch`).
//!
//! Every measurement starts on a fresh queue; the measurements take turns, round after round
//! (`--repeat`, default 3), and the table shows the median of each and every round's figure.

use std::sync::Arc;
use std::time::{Duration, Instant};

use batchframework_diesel::batch::Child;
use batchframework_diesel::registry::{action_fn, ActionGroup, Registry, RunArgs};
use batchframework_diesel::worker::Worker;
use batchframework_diesel::workflow::{Step, WorkflowBuilder};
use batchframework_diesel::{BatchOperation, OperationResult};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, Pool};
use diesel::PgConnection;

use crate::batches::{listed, median};
use crate::workers::TRUNCATE_QUEUE;
use crate::AnyError;

/// Steps between the root and the join, and plain operations of the comparison.
const WIDE: usize = 10_000;
/// Steps of the chain.
const CHAIN: usize = 200;
/// Worker threads of the wide drains.
const THREADS: usize = 4;
/// The no-op group of every step and operation.
const NOOP: &str = "noop";

/// One round's figures: drain of the batch (children/s), of the wide workflow (steps/s), the
/// chain (ms per step), enqueue batch (children/s), enqueue workflow (steps/s).
type Round = [f64; 5];

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
            .group(
                ActionGroup::new(NOOP)
                    .asynchronous()
                    .action(action_fn("noop", |_| Ok(serde_json::Value::Null))),
            )
            .build()?,
    );

    let mut raw: Vec<Round> = Vec::new();
    for round in 1..=rounds {
        let (plain, wide) = if round % 2 == 1 {
            let plain = drain_batch(&mut conn, &registry, &pool)?;
            (plain, drain_wide(&mut conn, &registry, &pool)?)
        } else {
            let wide = drain_wide(&mut conn, &registry, &pool)?;
            (drain_batch(&mut conn, &registry, &pool)?, wide)
        };
        let figures = [
            plain,
            wide,
            chain(&mut conn, &registry, &pool)?,
            enqueue_batch(&mut conn, &registry)?,
            enqueue_workflow(&mut conn, &registry)?,
        ];
        eprintln!(
            "round {round}: drain batch {:.0}/s, workflow {:.0}/s; chain {:.2} ms/step; \
             enqueue batch {:.0}/s, workflow {:.0}/s",
            figures[0], figures[1], figures[2], figures[3], figures[4]
        );
        raw.push(figures);
    }
    conn.batch_execute(TRUNCATE_QUEUE)?;

    let column = |i: usize| raw.iter().map(|r| r[i]).collect::<Vec<_>>();
    let drain_ratios: Vec<f64> = raw.iter().map(|r| r[1] / r[0]).collect();
    let enqueue_ratios: Vec<f64> = raw.iter().map(|r| r[4] / r[3]).collect();
    let medians: Vec<f64> = (0..5).map(|i| median(column(i))).collect();

    let args: Vec<String> = std::env::args().skip(1).collect();
    println!(
        "`cargo run --release -p batchframework-bench -- {}`\n",
        args.join(" ")
    );
    println!(
        "PostgreSQL; median of {rounds} interleaved rounds, each measurement on a fresh queue; \
         {} CPU(s) seen; Worker::new(registry, pool of 6).start(threads), timed until the \
         parent has finished\n",
        std::thread::available_parallelism().map_or(0, usize::from),
    );
    println!("| measurement | median | rounds |");
    println!("|---|---:|---|");
    println!(
        "| (a) run a batch of {WIDE} no-op children, {THREADS} threads | {:.0} children/s | {} |",
        medians[0],
        listed(&column(0), 0)
    );
    println!(
        "| (b) run a workflow: a root, {WIDE} no-op steps after it, a join after all, {THREADS} threads | {:.0} steps/s | {} |",
        medians[1],
        listed(&column(1), 0)
    );
    println!(
        "| (b) / (a) | {:.2} | {} |",
        median(drain_ratios.clone()),
        listed(&drain_ratios, 2)
    );
    println!(
        "| a chain of {CHAIN} steps, each after the one before, 1 thread | {:.2} ms a step | {} |",
        medians[2],
        listed(&column(2), 2)
    );
    println!(
        "| (c) enqueue a batch of {WIDE} children | {:.0} children/s | {} |",
        medians[3],
        listed(&column(3), 0)
    );
    println!(
        "| (d) enqueue a workflow of {WIDE} steps after one root | {:.0} steps/s | {} |",
        medians[4],
        listed(&column(4), 0)
    );
    println!(
        "| (d) / (c) | {:.2} | {} |",
        median(enqueue_ratios.clone()),
        listed(&enqueue_ratios, 2)
    );
    Ok(())
}

fn fresh(conn: &mut PgConnection) -> Result<(), AnyError> {
    conn.batch_execute(TRUNCATE_QUEUE)?;
    Ok(())
}

fn analyze(conn: &mut PgConnection) -> Result<(), AnyError> {
    conn.batch_execute(
        "ANALYZE batchframework_batchoperation, batchframework_batch, batchframework_step, \
         batchframework_dependency",
    )?;
    Ok(())
}

/// Runs what is queued on a started worker of `threads` threads until the operation `parent`
/// has finished, timed; fails unless it finished `successful`. Returns the seconds it took.
fn timed_run(
    registry: &Arc<Registry<PgConnection>>,
    pool: &Pool<ConnectionManager<PgConnection>>,
    threads: usize,
    parent: i64,
) -> Result<f64, AnyError> {
    let started = Instant::now();
    let worker = Worker::new(Arc::clone(registry), pool.clone()).start(threads)?;
    let done = BatchOperation::wait(pool, parent, Duration::from_secs(600));
    let took = started.elapsed().as_secs_f64();
    worker.shutdown(Duration::from_secs(60))?;
    let done = done?;
    if done.result() != OperationResult::Successful {
        return Err(format!("operation {parent} did not succeed: {done:?}").into());
    }
    Ok(took)
}

/// (a): a batch of `WIDE` children; children per second.
fn drain_batch(
    conn: &mut PgConnection,
    registry: &Arc<Registry<PgConnection>>,
    pool: &Pool<ConnectionManager<PgConnection>>,
) -> Result<f64, AnyError> {
    fresh(conn)?;
    let children = (0..WIDE).map(|_| Child::new(NOOP, RunArgs::new()));
    let parent = registry.batch("bench-batch").enqueue(conn, children)?;
    analyze(conn)?;
    Ok(WIDE as f64 / timed_run(registry, pool, THREADS, parent.id())?)
}

/// A workflow of a root, `WIDE` steps after it and a join after those.
fn wide(registry: &Registry<PgConnection>) -> WorkflowBuilder<'_, PgConnection> {
    let names: Vec<String> = (0..WIDE).map(|i| format!("step-{i}")).collect();
    let mut builder = registry
        .workflow("bench-wide")
        .step(Step::new("root", NOOP, RunArgs::new()));
    for name in &names {
        builder = builder.step(Step::new(name.as_str(), NOOP, RunArgs::new()).after(["root"]));
    }
    builder.step(Step::new("join", NOOP, RunArgs::new()).after(names))
}

/// (b): the wide workflow, drained; steps per second (the root and the join included).
fn drain_wide(
    conn: &mut PgConnection,
    registry: &Arc<Registry<PgConnection>>,
    pool: &Pool<ConnectionManager<PgConnection>>,
) -> Result<f64, AnyError> {
    fresh(conn)?;
    let workflow = wide(registry).enqueue(conn)?;
    analyze(conn)?;
    let took = timed_run(registry, pool, THREADS, workflow.id())?;
    Ok((WIDE + 2) as f64 / took)
}

/// A chain of `CHAIN` steps drained by one thread; milliseconds per step.
fn chain(
    conn: &mut PgConnection,
    registry: &Arc<Registry<PgConnection>>,
    pool: &Pool<ConnectionManager<PgConnection>>,
) -> Result<f64, AnyError> {
    fresh(conn)?;
    let mut builder = registry.workflow("bench-chain");
    for i in 0..CHAIN {
        let step = Step::new(format!("step-{i}"), NOOP, RunArgs::new());
        builder = builder.step(match i {
            0 => step,
            _ => step.after([format!("step-{}", i - 1)]),
        });
    }
    let workflow = builder.enqueue(conn)?;
    analyze(conn)?;
    let took = timed_run(registry, pool, 1, workflow.id())?;
    Ok(took * 1000.0 / CHAIN as f64)
}

/// (c): a batch of `WIDE` children, one `enqueue`; children per second.
fn enqueue_batch(
    conn: &mut PgConnection,
    registry: &Registry<PgConnection>,
) -> Result<f64, AnyError> {
    fresh(conn)?;
    let children = (0..WIDE).map(|_| Child::new(NOOP, RunArgs::new()));
    let started = Instant::now();
    registry.batch("bench-batch").enqueue(conn, children)?;
    Ok(WIDE as f64 / started.elapsed().as_secs_f64())
}

/// (d): the wide workflow without its join, one `enqueue`; steps per second.
fn enqueue_workflow(
    conn: &mut PgConnection,
    registry: &Registry<PgConnection>,
) -> Result<f64, AnyError> {
    fresh(conn)?;
    let mut builder =
        registry
            .workflow("bench-enqueue")
            .step(Step::new("root", NOOP, RunArgs::new()));
    for i in 1..WIDE {
        builder =
            builder.step(Step::new(format!("step-{i}"), NOOP, RunArgs::new()).after(["root"]));
    }
    let started = Instant::now();
    let workflow = builder.enqueue(conn)?;
    let took = started.elapsed().as_secs_f64();
    if workflow.steps().count() != WIDE {
        return Err("the workflow lost steps".into());
    }
    Ok(WIDE as f64 / took)
}
