//! `--peers`: this library's workers and graphile_worker (a PostgreSQL job queue for Rust, a port
//! of Node's Graphile Worker) side by side, interleaved in one run on the same PostgreSQL server.
//!
//! * **Throughput**: for concurrency 1, 2 and 4, each side drains a fresh queue of 20,000 no-op
//!   jobs, enqueued in bulk before the clock starts (ours: one `bulk_insert`, a COPY; theirs:
//!   one `add_jobs` call). The clock runs from starting the worker until the database holds no
//!   unfinished job. Both sides detect that the same way: every handler counts itself on a
//!   shared counter, and once the counter reaches 20,000 the database is asked every 10 ms how
//!   many jobs are left (ours: rows not `finished`; theirs: rows of `_private_jobs`, which a
//!   completion deletes), so the polling costs nothing while the workers drain, and the time
//!   includes writing the last results.
//! * **Start latency**: a running worker on each side (2 threads / concurrency 2), 200 no-op jobs
//!   enqueued one at a time, 15 ms apart; a job's latency is the start of its handler minus the
//!   moment just before its enqueue call, both read from this process's `Instant` clock (the
//!   handler records its start under the job number its payload carries).
//!
//! Each side runs in its best documented configuration (printed with the results), with
//! LISTEN/NOTIFY on: ours claims up to 100 at a time; theirs is the throughput-oriented worker of
//! its docs (a local queue of 100, completions batched for 5 ms), without the local queue for the
//! latency measurement. Rounds alternate ours, theirs, ours, theirs, ...; the table shows each
//! side's median over the rounds, and every round's figures are printed under it.
//!
//! Everything runs in a database of its own, `bf_peers`, created at the start and dropped at the
//! end: graphile_worker installs its schema there, and ours runs its migrations.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use batchframework_diesel::bulk_insert;
use batchframework_diesel::registry::{action_fn, ActionError, ActionGroup, Registry, RunArgs};
use batchframework_diesel::worker::Worker as OurWorker;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, Pool};
use diesel::sql_types::BigInt;
use diesel::PgConnection;
use graphile_worker::{
    IntoTaskHandlerResult, JobSpec, LocalQueueConfig, TaskHandler, WorkerContext, WorkerOptions,
};
use serde::{Deserialize, Serialize};

use crate::workers::{percentile, queued};
use crate::AnyError;

const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// Both sides over plain TCP: graphile_worker is built here without TLS (it falls back to
/// plaintext), while libpq, under this library, would negotiate TLS with a server that offers it
/// (Debian's does, with its snakeoil certificate) and pay for encryption the other side does not.
const URL: &str = "postgres://postgres@127.0.0.1:5432/bf_peers?sslmode=disable";

/// Jobs drained per throughput measurement.
const JOBS: usize = 20_000;
/// Worker threads (ours) / concurrency (theirs) of the throughput measurements.
const CONCURRENCY: [usize; 3] = [1, 2, 4];
/// Jobs enqueued one at a time for the latency measurement, and the pause after each.
const TIMED: u64 = 200;
const TIMED_GAP: Duration = Duration::from_millis(15);
/// Worker threads / concurrency of the latency measurement.
const TIMED_CONCURRENCY: usize = 2;
/// How often the database is asked whether the drain is done (once every handler ran).
const DONE_POLL: Duration = Duration::from_millis(10);
/// What a worker gets to settle (its LISTEN in place) before the first timed job.
const SETTLE: Duration = Duration::from_millis(500);

/// Our largest claim: as many as their local queue fetches at once, and the builder's default
/// (each thread sizes its claims to the work, up to this). Named here so the comparison keeps
/// it if the default changes. (With fixed claims of 20, before claims were sized to the work,
/// c=1 drained at about half the rate in trial runs.)
const OUR_BATCH_SIZE: u16 = 100;

/// graphile_worker's "Throughput-oriented worker" (docs/src/configuration/worker-options.md of
/// the crate): local queue of 100 jobs with a 60 s TTL, completions and failures batched for
/// 5 ms, polling every 500 ms (NOTIFY wakes it before that).
const THEIR_LOCAL_QUEUE_SIZE: usize = 100;
const THEIR_LOCAL_QUEUE_TTL: Duration = Duration::from_secs(60);
const THEIR_BATCH_DELAY: Duration = Duration::from_millis(5);
const THEIR_POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Handlers that ran (throughput), on both sides.
static RAN: AtomicUsize = AtomicUsize::new(0);
/// When each timed job's handler started, by job number (latency), on both sides.
static STARTED: LazyLock<Mutex<HashMap<u64, Instant>>> = LazyLock::new(Mutex::default);

fn record_start(number: u64, at: Instant) -> Result<(), String> {
    STARTED
        .lock()
        .map_err(|_| "poisoned".to_owned())?
        .insert(number, at);
    Ok(())
}

fn started_count() -> Result<usize, AnyError> {
    Ok(STARTED.lock().map_err(|_| "poisoned")?.len())
}

/// The no-op job of the throughput measurement, on their side.
#[derive(Clone, Serialize, Deserialize)]
struct Noop {}

impl TaskHandler for Noop {
    const IDENTIFIER: &'static str = "noop";

    async fn run(self, _ctx: WorkerContext) -> impl IntoTaskHandlerResult {
        RAN.fetch_add(1, Ordering::Relaxed);
        Ok::<(), String>(())
    }
}

/// The job of the latency measurement: its number, on both sides (their payload, our input).
#[derive(Clone, Serialize, Deserialize)]
struct Timed {
    n: u64,
}

impl TaskHandler for Timed {
    const IDENTIFIER: &'static str = "peer_timed";

    async fn run(self, _ctx: WorkerContext) -> impl IntoTaskHandlerResult {
        record_start(self.n, Instant::now())
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Ours,
    Theirs,
}

/// One round's figures of one side: jobs/s per concurrency, then latency p50 and p99 in ms.
#[derive(Clone, Copy, Default)]
struct Figures {
    throughput: [f64; 3],
    p50_ms: f64,
    p99_ms: f64,
}

/// The `bf_peers` database, dropped (with whatever is still connected) when this goes.
struct Scratch;

impl Scratch {
    fn create() -> Result<Self, AnyError> {
        let mut admin = PgConnection::establish(ADMIN_URL)?;
        // One statement each: PostgreSQL runs a multi-statement string as a transaction.
        admin.batch_execute("DROP DATABASE IF EXISTS bf_peers WITH (FORCE)")?;
        admin.batch_execute("CREATE DATABASE bf_peers")?;
        Ok(Scratch)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Ok(mut admin) = PgConnection::establish(ADMIN_URL) {
            let _ = admin.batch_execute("DROP DATABASE IF EXISTS bf_peers WITH (FORCE)");
        }
    }
}

/// Our side: a pool for the workers, a connection to enqueue and count on, and one registry per
/// measurement (one type each, as theirs).
struct Ours {
    conn: PgConnection,
    pool: Pool<ConnectionManager<PgConnection>>,
    noop: Arc<Registry<PgConnection>>,
    timed: Arc<Registry<PgConnection>>,
}

impl Ours {
    fn new() -> Result<Self, AnyError> {
        let mut conn = PgConnection::establish(URL)?;
        batchframework_diesel::run_migrations(&mut conn)?;
        let pool = Pool::builder()
            .max_size(6)
            .build(ConnectionManager::new(URL))?;
        let noop = Registry::builder()
            .group(
                ActionGroup::new("noop")
                    .asynchronous()
                    .action(action_fn("noop", |_| {
                        RAN.fetch_add(1, Ordering::Relaxed);
                        Ok(serde_json::Value::Null)
                    })),
            )
            .build()?;
        let timed = Registry::builder()
            .group(
                ActionGroup::new("peer_timed")
                    .asynchronous()
                    .action(action_fn("measure", |ctx| {
                        let now = Instant::now();
                        let Some(Timed { n }) = ctx.input::<Timed>()? else {
                            return Err(ActionError::msg("no job number"));
                        };
                        record_start(n, now).map_err(ActionError::msg)?;
                        Ok(serde_json::Value::Null)
                    })),
            )
            .build()?;
        Ok(Ours {
            conn,
            pool,
            noop: Arc::new(noop),
            timed: Arc::new(timed),
        })
    }

    fn worker(&self, registry: &Arc<Registry<PgConnection>>) -> OurWorker<PgConnection> {
        OurWorker::new(Arc::clone(registry), self.pool.clone()).batch_size(OUR_BATCH_SIZE)
    }

    fn fresh(&mut self) -> Result<(), AnyError> {
        self.conn.batch_execute(crate::workers::TRUNCATE_QUEUE)?;
        Ok(())
    }

    fn throughput(&mut self, threads: usize) -> Result<f64, AnyError> {
        self.fresh()?;
        bulk_insert(&mut self.conn, queued(JOBS))?;
        self.conn
            .batch_execute("ANALYZE batchframework_batchoperation")?;
        RAN.store(0, Ordering::SeqCst);
        let worker = self.worker(&self.noop);
        let started = Instant::now();
        let handle = worker.start(threads)?;
        wait_drained(
            &mut self.conn,
            "SELECT count(*) FROM batchframework_batchoperation WHERE status <> 'finished'",
        )?;
        let took = started.elapsed();
        handle.shutdown(Duration::from_secs(30))?;
        Ok(JOBS as f64 / took.as_secs_f64())
    }

    fn latency(&mut self) -> Result<Vec<Duration>, AnyError> {
        self.fresh()?;
        STARTED.lock().map_err(|_| "poisoned")?.clear();
        let handle = self.worker(&self.timed).start(TIMED_CONCURRENCY)?;
        std::thread::sleep(SETTLE);
        let mut before = Vec::with_capacity(TIMED as usize);
        for n in 0..TIMED {
            before.push(Instant::now());
            self.timed.run(
                &mut self.conn,
                "peer_timed",
                RunArgs::new().input(&Timed { n }),
            )?;
            std::thread::sleep(TIMED_GAP);
        }
        wait_started()?;
        handle.shutdown(Duration::from_secs(10))?;
        latencies(&before)
    }
}

/// Their side: a Tokio runtime (default: a worker thread per core) and a connection to count
/// and truncate on.
struct Theirs {
    conn: PgConnection,
    runtime: tokio::runtime::Runtime,
}

impl Theirs {
    fn new() -> Result<Self, AnyError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let theirs = Theirs {
            conn: PgConnection::establish(URL)?,
            runtime,
        };
        // Installs their schema (init runs their migrations).
        drop(theirs.runtime.block_on(theirs.options(1, true).init())?);
        Ok(theirs)
    }

    /// The documented throughput-oriented configuration, with concurrency `concurrency`; with
    /// `local_queue` false, their default direct fetch instead of the local queue.
    fn options(&self, concurrency: usize, local_queue: bool) -> WorkerOptions {
        let options = WorkerOptions::default()
            .database_url(URL)
            .concurrency(concurrency)
            .poll_interval(THEIR_POLL_INTERVAL)
            .use_notification_delivery(true)
            .complete_job_batch_delay(THEIR_BATCH_DELAY)
            .fail_job_batch_delay(THEIR_BATCH_DELAY)
            .listen_os_shutdown_signals(false);
        if local_queue {
            options.local_queue(
                LocalQueueConfig::default()
                    .with_size(THEIR_LOCAL_QUEUE_SIZE)
                    .with_ttl(THEIR_LOCAL_QUEUE_TTL),
            )
        } else {
            options
        }
    }

    fn fresh(&mut self) -> Result<(), AnyError> {
        // CASCADE: with the tables that reference the jobs (`_private_job_retirements`).
        self.conn.batch_execute(
            "TRUNCATE graphile_worker._private_jobs, graphile_worker._private_job_queues CASCADE",
        )?;
        Ok(())
    }

    fn throughput(&mut self, concurrency: usize) -> Result<f64, AnyError> {
        self.fresh()?;
        let worker = Arc::new(
            self.runtime
                .block_on(self.options(concurrency, true).define_job::<Noop>().init())?,
        );
        let spec = JobSpec::default();
        let jobs: Vec<(Noop, &JobSpec)> = (0..JOBS).map(|_| (Noop {}, &spec)).collect();
        let utils = worker.create_utils();
        let added = self.runtime.block_on(utils.add_jobs(&jobs))?.len();
        if added != JOBS {
            return Err(format!("graphile_worker added {added} of {JOBS} jobs").into());
        }
        self.conn
            .batch_execute("ANALYZE graphile_worker._private_jobs")?;
        RAN.store(0, Ordering::SeqCst);
        let started = Instant::now();
        let running = self.runtime.spawn({
            let worker = Arc::clone(&worker);
            async move { worker.run().await }
        });
        wait_drained(
            &mut self.conn,
            "SELECT count(*) FROM graphile_worker._private_jobs",
        )?;
        let took = started.elapsed();
        worker.request_shutdown();
        self.runtime.block_on(running)??;
        Ok(JOBS as f64 / took.as_secs_f64())
    }

    fn latency(&mut self, local_queue: bool) -> Result<Vec<Duration>, AnyError> {
        self.fresh()?;
        STARTED.lock().map_err(|_| "poisoned")?.clear();
        let worker = Arc::new(
            self.runtime.block_on(
                self.options(TIMED_CONCURRENCY, local_queue)
                    .define_job::<Timed>()
                    .init(),
            )?,
        );
        let utils = worker.create_utils();
        let running = self.runtime.spawn({
            let worker = Arc::clone(&worker);
            async move { worker.run().await }
        });
        std::thread::sleep(SETTLE);
        let mut before = Vec::with_capacity(TIMED as usize);
        for n in 0..TIMED {
            before.push(Instant::now());
            self.runtime
                .block_on(utils.add_job(Timed { n }, JobSpec::default()))?;
            std::thread::sleep(TIMED_GAP);
        }
        wait_started()?;
        worker.request_shutdown();
        self.runtime.block_on(running)??;
        latencies(&before)
    }
}

/// Waits until every handler ran (the shared counter, no query), then asks the database every
/// `DONE_POLL` until `left` counts no job. Fails after five minutes.
fn wait_drained(conn: &mut PgConnection, left: &str) -> Result<(), AnyError> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if RAN.load(Ordering::SeqCst) >= JOBS {
            let count: i64 = diesel::select(diesel::dsl::sql::<BigInt>(&format!("({left})")))
                .get_result(conn)?;
            if count == 0 {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err(format!(
                "not drained in 5 minutes: {} of {JOBS} handlers ran",
                RAN.load(Ordering::SeqCst)
            )
            .into());
        }
        std::thread::sleep(DONE_POLL);
    }
}

/// Waits until all timed jobs started; fails after 30 s.
fn wait_started() -> Result<(), AnyError> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while started_count()? < TIMED as usize {
        if Instant::now() > deadline {
            return Err(
                format!("only {} of {TIMED} jobs started in time", started_count()?).into(),
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Each timed job's start minus the moment before its enqueue, sorted.
fn latencies(before: &[Instant]) -> Result<Vec<Duration>, AnyError> {
    let started = STARTED.lock().map_err(|_| "poisoned")?;
    let mut samples = before
        .iter()
        .enumerate()
        .map(|(n, at)| {
            started
                .get(&(n as u64))
                .map(|start| start.saturating_duration_since(*at))
                .ok_or_else(|| format!("job {n} did not start"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    samples.sort();
    Ok(samples)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 0 && mid > 0 {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values.get(mid).copied().unwrap_or(f64::NAN)
    }
}

/// Runs `rounds` rounds of both sides, interleaved, and prints the table and the raw rounds.
pub(crate) fn run(rounds: usize) -> Result<(), AnyError> {
    let rounds = rounds.max(1);
    let scratch = Scratch::create()?;
    let result = compare(rounds);
    drop(scratch);
    result
}

fn compare(rounds: usize) -> Result<(), AnyError> {
    let mut ours = Ours::new()?;
    let mut theirs = Theirs::new()?;

    println!(
        "this library (batchframework-diesel {}) vs graphile_worker {}, PostgreSQL on 127.0.0.1, \
         {rounds} rounds interleaved (ours, theirs, ...), {} CPU(s), both sides without TLS",
        env!("CARGO_PKG_VERSION"),
        GRAPHILE_WORKER_VERSION,
        std::thread::available_parallelism().map_or(0, usize::from),
    );
    println!(
        "ours: Worker::new(registry, pool).batch_size({OUR_BATCH_SIZE}).start(threads) (claims \
         sized to the work, up to {OUR_BATCH_SIZE}), LISTEN/NOTIFY on, poll_interval 1 s \
         (default), r2d2 pool of 6"
    );
    println!(
        "theirs: WorkerOptions .database_url(..) (tokio-postgres driver, pool of 20: default) \
         .concurrency(c).poll_interval({} ms).use_notification_delivery(true) \
         .complete_job_batch_delay({} ms).fail_job_batch_delay({} ms) \
         .local_queue(size {THEIR_LOCAL_QUEUE_SIZE}, ttl {} s) (their documented \
         throughput-oriented worker; for latency the same without the local queue, their default \
         direct fetch, which their docs suggest for rare jobs and which started jobs sooner), on a \
         multi-thread Tokio runtime ({} threads)",
        THEIR_POLL_INTERVAL.as_millis(),
        THEIR_BATCH_DELAY.as_millis(),
        THEIR_BATCH_DELAY.as_millis(),
        THEIR_LOCAL_QUEUE_TTL.as_secs(),
        theirs.runtime.metrics().num_workers(),
    );
    println!(
        "throughput: {JOBS} no-op jobs enqueued in bulk before the clock; clock from starting the \
         worker until the database holds no unfinished job (handlers count on a shared counter; \
         once all ran, one count query every {} ms). latency: {TIMED} jobs enqueued one at a \
         time {} ms apart into a running worker of {TIMED_CONCURRENCY}; handler start − just \
         before the enqueue call, one Instant clock.\n",
        DONE_POLL.as_millis(),
        TIMED_GAP.as_millis(),
    );

    let mut raw: Vec<(Side, usize, Figures)> = Vec::new();
    for round in 1..=rounds {
        let mut figures = [Figures::default(); 2];
        for (i, &c) in CONCURRENCY.iter().enumerate() {
            figures[0].throughput[i] = ours.throughput(c)?;
            figures[1].throughput[i] = theirs.throughput(c)?;
        }
        let samples = ours.latency()?;
        figures[0].p50_ms = ms(percentile(&samples, 0.5));
        figures[0].p99_ms = ms(percentile(&samples, 0.99));
        let samples = theirs.latency(THEIR_LATENCY_LOCAL_QUEUE)?;
        figures[1].p50_ms = ms(percentile(&samples, 0.5));
        figures[1].p99_ms = ms(percentile(&samples, 0.99));
        for (side, f) in [Side::Ours, Side::Theirs].into_iter().zip(figures) {
            eprintln!(
                "round {round} {}: {:.0} / {:.0} / {:.0} jobs/s, p50 {:.1} ms, p99 {:.1} ms",
                name(side),
                f.throughput[0],
                f.throughput[1],
                f.throughput[2],
                f.p50_ms,
                f.p99_ms
            );
            raw.push((side, round, f));
        }
    }

    let side = |s: Side| raw.iter().filter(move |(side, _, _)| *side == s);
    let med = |s: Side, pick: &dyn Fn(&Figures) -> f64| {
        median(side(s).map(|(_, _, f)| pick(f)).collect())
    };
    println!(
        "Ratio: throughput ours / theirs, latency theirs / ours: above 1 means this library is \
         better.\n"
    );
    println!("| measurement | this library (median) | graphile_worker (median) | ratio |");
    println!("|---|---:|---:|---:|");
    for (i, &c) in CONCURRENCY.iter().enumerate() {
        let (a, b) = (
            med(Side::Ours, &|f| f.throughput[i]),
            med(Side::Theirs, &|f| f.throughput[i]),
        );
        println!(
            "| no-op throughput, c={c} (jobs/s) | {a:.0} | {b:.0} | {:.2} |",
            a / b
        );
    }
    for (label, pick) in [
        (
            "start latency p50 (ms)",
            &(|f: &Figures| f.p50_ms) as &dyn Fn(&Figures) -> f64,
        ),
        ("start latency p99 (ms)", &|f: &Figures| f.p99_ms),
    ] {
        let (a, b) = (med(Side::Ours, pick), med(Side::Theirs, pick));
        println!("| {label} | {a:.1} | {b:.1} | {:.2} |", b / a);
    }

    println!("\nRounds:\n");
    println!("| round | side | c=1 jobs/s | c=2 jobs/s | c=4 jobs/s | p50 ms | p99 ms |");
    println!("|---:|---|---:|---:|---:|---:|---:|");
    for (s, round, f) in &raw {
        println!(
            "| {round} | {} | {:.0} | {:.0} | {:.0} | {:.1} | {:.1} |",
            name(*s),
            f.throughput[0],
            f.throughput[1],
            f.throughput[2],
            f.p50_ms,
            f.p99_ms
        );
    }
    Ok(())
}

/// Whether their latency worker uses the local queue: no. Their docs recommend it for many small
/// jobs and the direct fetch for rare ones; in trial runs the direct fetch started these jobs as
/// early at the median and earlier at p99 (the local queue's p99 was 24 to 170 ms, the direct
/// fetch's 6 to 35 ms).
const THEIR_LATENCY_LOCAL_QUEUE: bool = false;

/// The graphile_worker release in Cargo.lock, for the header (kept by hand with bench/Cargo.toml).
const GRAPHILE_WORKER_VERSION: &str = "0.14.1";

fn name(side: Side) -> &'static str {
    match side {
        Side::Ours => "this library",
        Side::Theirs => "graphile_worker",
    }
}
