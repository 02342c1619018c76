//! `--soak`: a reliability run, not a speed measurement. No-op operations (each run inserts one
//! row into `executions`, so repeated side effects can be counted) are drained for
//! `--soak-minutes` (default 10) by three worker processes (this binary re-run with the hidden
//! `--soak-child`, each a started `Worker` of 3, 2 and 4 threads) on a private PostgreSQL
//! cluster (`batchframework_tests::cluster::Cluster`: the shared server is never touched), while:
//!
//! * every 30 s one of the workers #1 and #2 (in turn) is killed with SIGKILL and started again,
//!   as soon as it holds operations (within 2 s); worker #0 is never killed, and its RSS is
//!   sampled every 10 s;
//! * every 60 s (at 45 s, 105 s, ...) the cluster is restarted, `pg_ctl restart -m fast`, every
//!   third one `-m immediate` (a crash and WAL recovery).
//!
//! Operations are enqueued as they drain, on a thread of their own, by bulk `COPY`s paced to
//! 100,000 per minute of the run (1,000,000 in 10 minutes; 20,000 ahead of the pace) and held
//! back while 20,000 are due: a machine slower than the pace runs fewer, and the output says
//! so. When the time is up the faults stop, the queue is drained (3-minute deadline), the
//! workers are stopped with SIGTERM, and the table is checked: every operation finished, how
//! often its action ran (each run past the first must follow a kill of the worker that held it,
//! or an attempt a restart cut short and gave back, which runs again under the same attempt
//! number), why any failed, and how long the operations of killed workers waited past their
//! lease before another worker took them. Faults are printed as `FAULT: ...` and make the run
//! exit non-zero.
//!
//! The wait past the lease: 300 ms after each kill, the operations still `running` under the
//! killed worker's name (its last group of results may have been committed as it died) are
//! copied (id, attempt, last heartbeat) into `soak_orphans`; the killed process cannot beat
//! again, so that heartbeat is its last. Each action run records the claim time of its attempt
//! (the operation's `started_running_datetime`, on the database's clock as the worker reads it)
//! in `executions`; the re-claim of an orphan is the first run of attempt + 1 (or, if that
//! attempt was not run, such as a "worker lost" finish, the row's own start time at that
//! attempt). Wait past lease = re-claim − (last heartbeat + lease).
//!
//! ```text
//! cargo run --release -p batchframework-bench -- --soak                   # 10 minutes
//! cargo run --release -p batchframework-bench -- --soak --soak-minutes 2  # a short run
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use batchframework_diesel::registry::{ActionContext, ActionError, ActionGroup, Registry};
use batchframework_diesel::schema::batchframework_batchoperation;
use batchframework_diesel::worker::Worker;
use batchframework_diesel::{bulk_insert, bulk_insertable, UtcDateTime};
use batchframework_tests::cluster::{Cluster, StopMode};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, Pool};
use diesel::sql_types::{BigInt, Double, Nullable, Text};
use diesel::PgConnection;

use crate::AnyError;

/// The operation type, and its action group.
const GROUP: &str = "soak";
/// Starts an operation may have: a kill mid-run costs one, so it does not fail.
const MAX_ATTEMPTS: u16 = 3;
/// Worker threads of workers #0, #1 and #2; #0 is never killed.
const THREADS: [usize; 3] = [3, 2, 4];
/// The lease (the library's default, set explicitly).
const LEASE: Duration = Duration::from_secs(30);
/// How long a worker's `pool.get()` waits: short, so that a thread asking during an outage
/// hears "no" quickly and backs off, as the fault suite's workers do.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(2);
/// Operations per minute of the run: 1,000,000 in 10 minutes.
const PER_MINUTE: u64 = 100_000;
/// One bulk enqueue, and the due operations below which the next one is made.
const CHUNK: u64 = 20_000;
const LOW_WATER: i64 = 20_000;
const KILL_EVERY: Duration = Duration::from_secs(30);
const FIRST_RESTART: Duration = Duration::from_secs(45);
const RESTART_EVERY: Duration = Duration::from_secs(60);
const RSS_EVERY: Duration = Duration::from_secs(10);
const PROGRESS_EVERY: Duration = Duration::from_secs(30);
/// How long the queue may take to drain once the faults stop.
const DRAIN_LIMIT: Duration = Duration::from_secs(180);
/// How long a worker may take to exit after SIGTERM (its shutdown waits up to 20 s, plus the
/// results' grace).
const STOP_LIMIT: Duration = Duration::from_secs(60);
/// How often a child prints its statistics.
const STATS_EVERY: Duration = Duration::from_secs(1);

const READY: &str = "soak-child ready";
const STATS: &str = "soak-child stats";
const FINAL: &str = "soak-child final";
const FAILED: &str = "soak-child error";

/// A queued operation as the bulk insert writes it: up to [`MAX_ATTEMPTS`] starts, as the
/// group's `max_attempts` gives operations queued through the registry.
#[bulk_insertable]
#[derive(Insertable)]
#[diesel(table_name = batchframework_batchoperation)]
struct QueuedOperation {
    created_datetime: UtcDateTime,
    operationtype: &'static str,
    status: &'static str,
    result: &'static str,
    queue: &'static str,
    max_attempts: i32,
}

fn queued(n: u64) -> impl Iterator<Item = QueuedOperation> {
    let now = UtcDateTime(chrono::Utc::now());
    (0..n).map(move |_| QueuedOperation {
        created_datetime: now,
        operationtype: GROUP,
        status: "unprocessed",
        result: "not-available",
        queue: "default",
        max_attempts: i32::from(MAX_ATTEMPTS),
    })
}

/// The group the children run: one row in `executions` per run, with the attempt, the process
/// and the attempt's claim time.
fn registry() -> Result<Arc<Registry<PgConnection>>, AnyError> {
    let pid = std::process::id();
    let record = move |ctx: &mut ActionContext<'_, PgConnection>| {
        let operation = ctx.operation();
        let claimed = operation
            .started_running_datetime()
            .map_or("NULL".to_owned(), |t| format!("'{}'", t.to_rfc3339()));
        let sql = format!(
            "INSERT INTO executions (operation_id, attempt, pid, claimed_at) \
             VALUES ({}, {}, {pid}, {claimed})",
            operation.id(),
            operation.attempts()
        );
        ctx.conn().batch_execute(&sql).map_err(ActionError::from)?;
        Ok(serde_json::Value::Null)
    };
    Ok(Arc::new(
        Registry::builder()
            .group(
                ActionGroup::<PgConnection>::new(GROUP)
                    .asynchronous()
                    .max_attempts(MAX_ATTEMPTS)
                    .action_fn("record", record),
            )
            .build()?,
    ))
}

/// What a worker process counts.
#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    reconnects: usize,
    succeeded: usize,
    failed: usize,
    retried: usize,
    lost: usize,
    fenced: usize,
}

impl Stats {
    fn line(stats: &batchframework_diesel::worker::WorkerStats) -> String {
        format!(
            "reconnects={} succeeded={} failed={} retried={} lost={} fenced={}",
            stats.reconnects,
            stats.succeeded,
            stats.failed,
            stats.retried,
            stats.lost,
            stats.fenced
        )
    }

    fn parse(line: &str) -> Stats {
        let mut stats = Stats::default();
        for word in line.split_whitespace() {
            let Some((key, value)) = word.split_once('=') else {
                continue;
            };
            let value = value.parse().unwrap_or(0);
            match key {
                "reconnects" => stats.reconnects = value,
                "succeeded" => stats.succeeded = value,
                "failed" => stats.failed = value,
                "retried" => stats.retried = value,
                "lost" => stats.lost = value,
                "fenced" => stats.fenced = value,
                _ => {}
            }
        }
        stats
    }
}

/// The worker process (`--soak-child`): a started worker until SIGTERM, printing its
/// statistics every second; exits when the parent is gone (its standard input closes).
pub(crate) fn child(url: &str, threads: usize, name: &str) -> Result<(), AnyError> {
    std::thread::spawn(|| {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        eprintln!("the soak run is gone; exiting");
        std::process::exit(3);
    });
    let pool = Pool::builder()
        .max_size(u32::try_from(threads)? + 1)
        .connection_timeout(CONNECTION_TIMEOUT)
        .build_unchecked(ConnectionManager::<PgConnection>::new(url));
    let handle = Worker::new(registry()?, pool)
        .name(name)
        .lease(LEASE)
        .start(threads)?;
    handle.stop_on_signals()?;
    println!("{READY} pid={}", std::process::id());
    let mut printed = Instant::now();
    while !handle.is_stopping() {
        std::thread::sleep(Duration::from_millis(20));
        if printed.elapsed() >= STATS_EVERY {
            println!("{STATS} {}", Stats::line(&handle.stats()));
            printed = Instant::now();
        }
    }
    match handle.shutdown(Duration::from_secs(20)) {
        Ok(stats) => {
            println!("{FINAL} {}", Stats::line(&stats));
            Ok(())
        }
        Err(error) => {
            println!("{FAILED} {error}");
            Err(error.into())
        }
    }
}

/// What the parent has read from one worker process.
#[derive(Debug, Default)]
struct Seen {
    ready: bool,
    stats: Option<Stats>,
    final_stats: Option<Stats>,
    error: Option<String>,
    /// Its last lines of standard error.
    stderr: Vec<String>,
}

fn lock(seen: &Mutex<Seen>) -> MutexGuard<'_, Seen> {
    seen.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One worker process: slot `slot`, its `number`th start.
struct Incarnation {
    slot: usize,
    number: usize,
    name: String,
    child: Child,
    /// Held open: the child exits when it closes.
    stdin: Option<ChildStdin>,
    seen: Arc<Mutex<Seen>>,
    /// Restarts of the database while it was alive.
    restarts_lived: usize,
}

impl Incarnation {
    fn spawn(url: &str, slot: usize, number: usize) -> Result<Incarnation, AnyError> {
        let name = format!("soak-{slot}.{number}");
        let mut child = Command::new(std::env::current_exe()?)
            .args(["--soak-child", "--url", url, "--soak-name", &name])
            .args(["--soak-threads", &THREADS[slot].to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let stdin = child.stdin.take();
        let seen: Arc<Mutex<Seen>> = Arc::default();
        if let Some(stdout) = child.stdout.take() {
            let seen = Arc::clone(&seen);
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    let mut seen = lock(&seen);
                    if line.starts_with(READY) {
                        seen.ready = true;
                    } else if let Some(rest) = line.strip_prefix(STATS) {
                        seen.stats = Some(Stats::parse(rest));
                    } else if let Some(rest) = line.strip_prefix(FINAL) {
                        seen.final_stats = Some(Stats::parse(rest));
                    } else if let Some(rest) = line.strip_prefix(FAILED) {
                        seen.error = Some(rest.trim().to_owned());
                    }
                }
            });
        }
        if let Some(stderr) = child.stderr.take() {
            let seen = Arc::clone(&seen);
            let tag = name.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    eprintln!("[{tag}] {line}");
                    let mut seen = lock(&seen);
                    seen.stderr.push(line);
                    if seen.stderr.len() > 40 {
                        seen.stderr.remove(0);
                    }
                }
            });
        }
        Ok(Incarnation {
            slot,
            number,
            name,
            child,
            stdin,
            seen,
            restarts_lived: 0,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn ready(&self) -> bool {
        lock(&self.seen).ready
    }
}

/// How an incarnation ended.
#[derive(Debug)]
enum End {
    Killed,
    Stopped(ExitStatus),
    OnItsOwn(ExitStatus),
    /// Did not exit within [`STOP_LIMIT`] of SIGTERM: killed.
    Hung,
}

/// An incarnation that ended, for the report.
struct Ended {
    slot: usize,
    number: usize,
    end: End,
    stats: Option<Stats>,
    restarts_lived: usize,
    error: Option<String>,
    stderr: Vec<String>,
}

/// The three worker slots; every process still running is killed when this is dropped.
struct Fleet {
    url: String,
    live: Vec<Incarnation>,
    ended: Vec<Ended>,
    starts: [usize; 3],
}

impl Fleet {
    fn start(url: &str) -> Result<Fleet, AnyError> {
        let mut fleet = Fleet {
            url: url.to_owned(),
            live: Vec::new(),
            ended: Vec::new(),
            starts: [0; 3],
        };
        for slot in 0..THREADS.len() {
            fleet.spawn(slot)?;
        }
        fleet.wait_ready(Duration::from_secs(60))?;
        Ok(fleet)
    }

    fn spawn(&mut self, slot: usize) -> Result<(), AnyError> {
        self.starts[slot] += 1;
        let incarnation = Incarnation::spawn(&self.url, slot, self.starts[slot])?;
        self.live.push(incarnation);
        self.live.sort_by_key(|i| i.slot);
        Ok(())
    }

    fn wait_ready(&mut self, limit: Duration) -> Result<(), AnyError> {
        let deadline = Instant::now() + limit;
        while !self.live.iter().all(Incarnation::ready) {
            if Instant::now() > deadline {
                return Err("the worker processes were not ready within a minute".into());
            }
            self.check_alive()?;
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    fn get(&self, slot: usize) -> Option<&Incarnation> {
        self.live.iter().find(|i| i.slot == slot)
    }

    fn take(&mut self, slot: usize) -> Option<Incarnation> {
        let index = self.live.iter().position(|i| i.slot == slot)?;
        Some(self.live.remove(index))
    }

    fn retire(&mut self, incarnation: Incarnation, end: End) {
        // The reader threads end with the process's output.
        std::thread::sleep(Duration::from_millis(50));
        let seen = lock(&incarnation.seen);
        self.ended.push(Ended {
            slot: incarnation.slot,
            number: incarnation.number,
            end,
            stats: seen.final_stats.or(seen.stats),
            restarts_lived: incarnation.restarts_lived,
            error: seen.error.clone(),
            stderr: seen.stderr.clone(),
        });
    }

    /// A worker that exited on its own is a fault: recorded, and started again.
    fn check_alive(&mut self) -> Result<usize, AnyError> {
        let mut exited = Vec::new();
        for incarnation in &mut self.live {
            if let Some(status) = incarnation.child.try_wait()? {
                exited.push((incarnation.slot, status));
            }
        }
        for (slot, status) in &exited {
            if let Some(incarnation) = self.take(*slot) {
                println!(
                    "FAULT: worker {} exited on its own: {status}",
                    incarnation.name
                );
                self.retire(incarnation, End::OnItsOwn(*status));
                self.spawn(*slot)?;
            }
        }
        Ok(exited.len())
    }

    /// SIGKILL, and its replacement started. Returns the killed worker's name.
    fn kill(&mut self, slot: usize) -> Result<String, AnyError> {
        let mut incarnation = self.take(slot).ok_or("no worker in that slot")?;
        incarnation.child.kill()?;
        incarnation.child.wait()?;
        let name = incarnation.name.clone();
        self.retire(incarnation, End::Killed);
        self.spawn(slot)?;
        Ok(name)
    }

    fn database_restarted(&mut self) {
        for incarnation in &mut self.live {
            incarnation.restarts_lived += 1;
        }
    }

    /// SIGTERM to every worker; each must exit 0 within [`STOP_LIMIT`].
    fn stop(&mut self) -> Result<Duration, AnyError> {
        let started = Instant::now();
        for incarnation in &self.live {
            Command::new("kill")
                .args(["-TERM", &incarnation.pid().to_string()])
                .status()?;
        }
        let deadline = started + STOP_LIMIT;
        while let Some(mut incarnation) = self.live.pop() {
            let end = loop {
                if let Some(status) = incarnation.child.try_wait()? {
                    break End::Stopped(status);
                }
                if Instant::now() > deadline {
                    incarnation.child.kill()?;
                    incarnation.child.wait()?;
                    break End::Hung;
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            drop(incarnation.stdin.take());
            self.retire(incarnation, end);
        }
        Ok(started.elapsed())
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for incarnation in &mut self.live {
            let _ = incarnation.child.kill();
            let _ = incarnation.child.wait();
        }
    }
}

/// The machine's load averages (1, 5, 15 minutes): the machine is shared.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// VmRSS of a process, in MiB.
fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    v: i64,
}

fn count(conn: &mut PgConnection, sql: &str) -> QueryResult<i64> {
    diesel::sql_query(sql)
        .get_result::<Count>(conn)
        .map(|c| c.v)
}

/// A connection to the cluster that comes back after a restart: a failed statement (the
/// server went away under it) reads as `None`, and the next call connects again.
struct Watcher {
    url: String,
    conn: Option<PgConnection>,
}

impl Watcher {
    fn with<T>(&mut self, f: impl FnOnce(&mut PgConnection) -> QueryResult<T>) -> Option<T> {
        if self.conn.is_none() {
            self.conn = PgConnection::establish(&self.url).ok();
        }
        let conn = self.conn.as_mut()?;
        match f(conn) {
            Ok(value) => Some(value),
            Err(error) => {
                eprintln!("soak: a statement of the run failed (reconnecting): {error}");
                self.conn = None;
                None
            }
        }
    }

    fn count(&mut self, sql: &str) -> Option<i64> {
        self.with(|conn| count(conn, sql))
    }
}

const ACTIVE: &str = "SELECT COUNT(*) AS v FROM batchframework_batchoperation \
                      WHERE status IN ('unprocessed', 'running')";
const DUE: &str =
    "SELECT COUNT(*) AS v FROM batchframework_batchoperation WHERE status = 'unprocessed'";
const ALL: &str = "SELECT COUNT(*) AS v FROM batchframework_batchoperation";

/// Keeps the queue fed: paced to reach `target` operations at the end of the window (a
/// [`CHUNK`] ahead of the pace), and never more than [`LOW_WATER`] + [`CHUNK`] due at once, so
/// that a machine slower than the pace runs fewer operations instead of a growing backlog.
struct Feeder {
    target: u64,
    enqueued: u64,
    /// A bulk insert failed: its commit may have happened unheard of; count the table.
    recount: bool,
}

impl Feeder {
    /// Enqueues what the pace allows at `progress` (0 to 1) of the window.
    fn top_up(&mut self, watcher: &mut Watcher, progress: f64) {
        if !self.settle(watcher) {
            return;
        }
        let paced = CHUNK + (self.target as f64 * progress.clamp(0.0, 1.0)) as u64;
        let allowed = paced.min(self.target);
        if self.enqueued >= allowed {
            return;
        }
        let Some(due) = watcher.count(DUE) else {
            return;
        };
        if due >= LOW_WATER {
            return;
        }
        let n = CHUNK.min(allowed - self.enqueued);
        match watcher.with(|conn| {
            bulk_insert(conn, queued(n)).map_err(|e| {
                diesel::result::Error::QueryBuilderError(format!("bulk insert: {e}").into())
            })
        }) {
            Some(_) => self.enqueued += n,
            None => self.recount = true,
        }
    }

    /// After a failed insert, counts the table; whether the count is known.
    fn settle(&mut self, watcher: &mut Watcher) -> bool {
        if self.recount {
            let Some(all) = watcher.count(ALL) else {
                return false;
            };
            self.enqueued = u64::try_from(all).unwrap_or(0);
            self.recount = false;
        }
        true
    }

    /// Feeds the queue every 100 ms, on a connection of its own, until `feeding` turns false;
    /// returns how many operations it enqueued.
    fn run(
        mut self,
        url: String,
        started: Instant,
        window: Duration,
        feeding: &AtomicBool,
        enqueued: &AtomicU64,
    ) -> u64 {
        let mut watcher = Watcher { url, conn: None };
        while feeding.load(Ordering::Relaxed) {
            self.top_up(
                &mut watcher,
                started.elapsed().as_secs_f64() / window.as_secs_f64(),
            );
            enqueued.store(self.enqueued, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(100));
        }
        for _ in 0..120 {
            if self.settle(&mut watcher) {
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        self.enqueued
    }
}

/// A fault the run saw, for the report.
fn fault(faults: &mut Vec<String>, text: String) {
    println!("FAULT: {text}");
    faults.push(text);
}

/// Runs the soak for `minutes` and prints what it found.
pub(crate) fn run(minutes: f64) -> Result<(), AnyError> {
    if minutes.is_nan() || minutes <= 0.0 {
        return Err("--soak-minutes must be positive".into());
    }
    let command = format!(
        "cargo run --release -p batchframework-bench -- --soak{}",
        if (minutes - 10.0).abs() < f64::EPSILON {
            String::new()
        } else {
            format!(" --soak-minutes {minutes}")
        }
    );
    println!("$ {command}");
    let Some(cluster) = Cluster::start() else {
        return Err("--soak needs the PostgreSQL server binaries (initdb, pg_ctl)".into());
    };
    let url = cluster.url("postgres");
    println!(
        "private PostgreSQL cluster on port {}; {} cores",
        cluster.port(),
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    let window = Duration::from_secs_f64(minutes * 60.0);
    let target = (PER_MINUTE as f64 * minutes).round() as u64;

    let mut conn = PgConnection::establish(&url)?;
    batchframework_diesel::run_migrations(&mut conn)?;
    conn.batch_execute(
        "CREATE TABLE executions (operation_id BIGINT NOT NULL, attempt INTEGER NOT NULL, \
         pid INTEGER NOT NULL, claimed_at TIMESTAMPTZ); \
         CREATE TABLE soak_orphans (operation_id BIGINT NOT NULL, attempts INTEGER NOT NULL, \
         heartbeat TIMESTAMPTZ, kill INTEGER NOT NULL)",
    )?;
    let mut feeder = Feeder {
        target,
        enqueued: 0,
        recount: false,
    };
    let mut watcher = Watcher {
        url: url.clone(),
        conn: Some(conn),
    };
    feeder.top_up(&mut watcher, 0.0);
    println!(
        "target: {target} operations in {minutes} min, enqueued as they drain: paced to \
         {:.0}/s ({CHUNK} ahead), at most {CHUNK} at a time while fewer than {LOW_WATER} are due",
        target as f64 / window.as_secs_f64()
    );

    let mut faults = Vec::new();
    let mut fleet = Fleet::start(&url)?;
    let long_lived = fleet.get(0).map(Incarnation::pid).ok_or("no worker #0")?;
    let started = Instant::now();
    println!(
        "3 worker processes ({} threads), lease {} s; worker #0 (pid {long_lived}) is never killed",
        THREADS.map(|t| t.to_string()).join(", "),
        LEASE.as_secs()
    );

    let mut rss: Vec<f64> = Vec::new();
    let mut next_rss = started;
    let mut next_kill = started + KILL_EVERY;
    let mut next_restart = started + FIRST_RESTART;
    let mut next_progress = started + PROGRESS_EVERY;
    let feeding = Arc::new(AtomicBool::new(true));
    let enqueued = Arc::new(AtomicU64::new(feeder.enqueued));
    let feeder = {
        let (feeding, enqueued, url) = (Arc::clone(&feeding), Arc::clone(&enqueued), url.clone());
        std::thread::spawn(move || feeder.run(url, started, window, &feeding, &enqueued))
    };
    let mut kills = 0usize;
    let mut restarts: Vec<(StopMode, Duration)> = Vec::new();
    let mut orphans_recorded = 0i64;

    // Worker #0's RSS, while it is the process it was at the start.
    let mut loads: Vec<f64> = Vec::new();
    let sample = |rss: &mut Vec<f64>, fleet: &Fleet| {
        if fleet.get(0).map(Incarnation::pid) == Some(long_lived) {
            if let Some(mib) = rss_mib(long_lived) {
                rss.push(mib);
            }
        }
    };

    // The faults, while operations are enqueued.
    let (enqueued, finished_at_window) = loop {
        let now = Instant::now();
        if now >= started + window {
            feeding.store(false, Ordering::Relaxed);
            let enqueued = feeder.join().map_err(|_| "the feeding thread panicked")?;
            // The database may be coming back from a restart: ask for a few seconds.
            let active = (0..40).find_map(|_| {
                watcher.count(ACTIVE).or_else(|| {
                    std::thread::sleep(Duration::from_millis(250));
                    None
                })
            });
            let finished =
                enqueued.saturating_sub(active.and_then(|a| u64::try_from(a).ok()).unwrap_or(0));
            break (enqueued, finished);
        }
        fleet.check_alive()?;
        if now >= next_rss {
            sample(&mut rss, &fleet);
            if let Some(load) = load_average()
                .split(' ')
                .next()
                .and_then(|l| l.parse().ok())
            {
                loads.push(load);
            }
            next_rss += RSS_EVERY;
        }
        if now >= next_kill {
            kills += 1;
            let slot = 1 + (kills - 1) % 2;
            // Mid-run: when it holds operations (for up to 2 s; it may be idle).
            if let Some(name) = fleet.get(slot).map(|i| i.name.clone()) {
                let holding = format!(
                    "SELECT COUNT(*) AS v FROM batchframework_batchoperation \
                     WHERE status = 'running' AND locked_by = '{name}'"
                );
                let waited = Instant::now();
                while watcher.count(&holding).unwrap_or(0) == 0
                    && waited.elapsed() < Duration::from_secs(2)
                {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
            let name = fleet.kill(slot)?;
            // Let the server notice the closed sockets, then note what the killed worker held.
            std::thread::sleep(Duration::from_millis(300));
            let sql = format!(
                "INSERT INTO soak_orphans (operation_id, attempts, heartbeat, kill) \
                 SELECT id, attempts, heartbeat_datetime, {kills} \
                 FROM batchframework_batchoperation \
                 WHERE status = 'running' AND locked_by = '{name}'"
            );
            let mut noted = None;
            for _ in 0..20 {
                noted = watcher.with(|conn| diesel::sql_query(&sql).execute(conn));
                if noted.is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(250));
            }
            match noted {
                Some(n) => orphans_recorded += i64::try_from(n).unwrap_or(0),
                None => fault(
                    &mut faults,
                    format!("could not note what killed worker {name} held (database down)"),
                ),
            }
            next_kill += KILL_EVERY;
        }
        if now >= next_restart {
            let mode = if (restarts.len() + 1) % 3 == 0 {
                StopMode::Immediate
            } else {
                StopMode::Fast
            };
            let took = Instant::now();
            cluster.restart(mode);
            restarts.push((mode, took.elapsed()));
            fleet.database_restarted();
            watcher.conn = None;
            next_restart += RESTART_EVERY;
        }
        if now >= next_progress {
            if let Some(active) = watcher.count(ACTIVE) {
                let enqueued = enqueued.load(Ordering::Relaxed);
                let finished = enqueued.saturating_sub(u64::try_from(active).unwrap_or(0));
                println!(
                    "[{:>4.0} s] finished {finished} ({:.0}/s), enqueued {}, {} kills, {} restarts, RSS #0 {:.1} MiB, load {}",
                    started.elapsed().as_secs_f64(),
                    finished as f64 / started.elapsed().as_secs_f64(),
                    enqueued,
                    kills,
                    restarts.len(),
                    rss.last().copied().unwrap_or(f64::NAN),
                    load_average()
                );
            }
            next_progress += PROGRESS_EVERY;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let window_took = started.elapsed();
    println!(
        "time is up after {:.0} s: {finished_at_window} finished; no more faults, draining",
        window_took.as_secs_f64()
    );

    // The drain: every operation finished, the workers untouched.
    let drain_started = Instant::now();
    let mut drained = false;
    while drain_started.elapsed() < DRAIN_LIMIT {
        fleet.check_alive()?;
        if Instant::now() >= next_rss {
            sample(&mut rss, &fleet);
            next_rss += RSS_EVERY;
        }
        if watcher.count(ACTIVE) == Some(0) {
            drained = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let drain_took = drain_started.elapsed();
    sample(&mut rss, &fleet);
    if !drained {
        fault(
            &mut faults,
            format!(
                "the queue did not drain within {} s of the last fault",
                DRAIN_LIMIT.as_secs()
            ),
        );
    }
    let stop_took = fleet.stop()?;

    // The checks.
    let mut conn = PgConnection::establish(&url)?;
    let report = Report::read(&mut conn)?;
    let total = u64::try_from(report.total).unwrap_or(0);
    if total != enqueued {
        fault(
            &mut faults,
            format!("{} operations in the table, {} enqueued", total, enqueued),
        );
    }
    for ended in &fleet.ended {
        match &ended.end {
            End::Killed => {}
            End::Stopped(status) if status.success() => {}
            End::Stopped(status) => fault(
                &mut faults,
                format!(
                    "worker soak-{}.{} did not exit 0 on SIGTERM: {status}; error {:?}; stderr {:?}",
                    ended.slot, ended.number, ended.error, ended.stderr
                ),
            ),
            End::OnItsOwn(status) => fault(
                &mut faults,
                format!(
                    "worker soak-{}.{} exited on its own: {status}; error {:?}; stderr {:?}",
                    ended.slot, ended.number, ended.error, ended.stderr
                ),
            ),
            End::Hung => fault(
                &mut faults,
                format!(
                    "worker soak-{}.{} did not exit within {} s of SIGTERM (killed)",
                    ended.slot,
                    ended.number,
                    STOP_LIMIT.as_secs()
                ),
            ),
        }
    }
    report.faults(&mut faults);

    println!();
    println!("server log: {}", server_log_summary(&cluster.log()));
    println!(
        "per kill: operations held / of them ran more than once / longest wait past the lease:{}",
        (1..=kills)
            .map(|kill| {
                match report
                    .per_kill
                    .iter()
                    .find(|k| usize::try_from(k.kill) == Ok(kill))
                {
                    Some(k) => format!(
                        " #{kill} {}/{}/{}",
                        k.orphans,
                        k.ran_twice,
                        k.max_s.map_or("–".to_owned(), |s| format!("{s:.2}s"))
                    ),
                    None => format!(" #{kill} 0"),
                }
            })
            .collect::<String>()
    );
    for many in &report.many_runs {
        println!(
            "ran 3+ times: #{} {}; runs (attempt@pid) {}; held at kills {}",
            many.id,
            many.status,
            many.runs,
            many.kills.as_deref().unwrap_or("none")
        );
    }
    println!(
        "RSS samples of worker #0, MiB: {}",
        rss.iter()
            .map(|m| format!("{m:.1}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!();
    print_summary(&Summary {
        minutes,
        target,
        total,
        window_took,
        finished_at_window,
        drain_took,
        stop_took,
        kills,
        restarts: &restarts,
        orphans_recorded,
        report: &report,
        fleet: &fleet,
        rss: &rss,
        loads: &loads,
        faults: &faults,
    });
    drop(fleet);
    drop(cluster);
    if faults.is_empty() {
        Ok(())
    } else {
        Err(format!("{} fault(s), listed above", faults.len()).into())
    }
}

#[derive(QueryableByName)]
struct Tally {
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Text)]
    result: String,
    #[diesel(sql_type = BigInt)]
    runs: i64,
    /// How many runs were of an attempt already run (an interrupted attempt given back).
    #[diesel(sql_type = BigInt)]
    repeated: i64,
    /// Kills it was held by the killed worker at.
    #[diesel(sql_type = BigInt)]
    orphanings: i64,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct Reason {
    #[diesel(sql_type = Text)]
    reason: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct Waits {
    #[diesel(sql_type = BigInt)]
    orphans: i64,
    #[diesel(sql_type = BigInt)]
    reclaimed: i64,
    #[diesel(sql_type = Nullable<Double>)]
    max_s: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    median_s: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    min_s: Option<f64>,
}

#[derive(QueryableByName)]
struct KillWaits {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    kill: i32,
    #[diesel(sql_type = BigInt)]
    orphans: i64,
    #[diesel(sql_type = BigInt)]
    ran_twice: i64,
    #[diesel(sql_type = Nullable<Double>)]
    max_s: Option<f64>,
}

/// Enqueue to finish, seconds.
#[derive(QueryableByName)]
struct Latency {
    #[diesel(sql_type = Nullable<Double>)]
    p50: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    p99: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    max: Option<f64>,
}

/// An operation whose action ran 3 times or more: its runs (attempt@pid, in order) and the
/// kills it was held at.
#[derive(QueryableByName)]
struct ManyRuns {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    runs: String,
    #[diesel(sql_type = Nullable<Text>)]
    kills: Option<String>,
    #[diesel(sql_type = Text)]
    status: String,
}

#[derive(QueryableByName)]
struct Unfinished {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Nullable<Text>)]
    locked_by: Option<String>,
    #[diesel(sql_type = BigInt)]
    attempts: i64,
    #[diesel(sql_type = Nullable<Double>)]
    heartbeat_age_s: Option<f64>,
}

/// What the table says at the end.
struct Report {
    total: i64,
    tallies: Vec<Tally>,
    failed: Vec<Reason>,
    strays: i64,
    waits: Waits,
    per_kill: Vec<KillWaits>,
    latency: Latency,
    many_runs: Vec<ManyRuns>,
    unfinished: Vec<Unfinished>,
}

impl Report {
    fn read(conn: &mut PgConnection) -> Result<Report, AnyError> {
        conn.batch_execute(
            "CREATE INDEX ON executions (operation_id); ANALYZE executions; \
             ANALYZE batchframework_batchoperation",
        )?;
        let total = count(conn, ALL)?;
        let tallies = diesel::sql_query(
            "WITH runs AS (SELECT operation_id, COUNT(*) AS runs, \
                 COUNT(*) - COUNT(DISTINCT attempt) AS repeated \
               FROM executions GROUP BY operation_id), \
             orphaned AS (SELECT operation_id, COUNT(*) AS orphanings FROM soak_orphans \
               GROUP BY operation_id) \
             SELECT o.status::text AS status, o.result::text AS result, \
               COALESCE(r.runs, 0) AS runs, COALESCE(r.repeated, 0) AS repeated, \
               COALESCE(d.orphanings, 0) AS orphanings, COUNT(*) AS n \
             FROM batchframework_batchoperation o \
             LEFT JOIN runs r ON r.operation_id = o.id \
             LEFT JOIN orphaned d ON d.operation_id = o.id \
             GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5",
        )
        .load::<Tally>(conn)?;
        let failed = diesel::sql_query(
            "SELECT COALESCE((output_data_json::jsonb)->>'error', \
               'other: ' || LEFT(output_data_json, 200)) AS reason, COUNT(*) AS n \
             FROM batchframework_batchoperation WHERE result = 'failed' \
             GROUP BY 1 ORDER BY 2 DESC",
        )
        .load::<Reason>(conn)?;
        let strays = count(
            conn,
            "SELECT COUNT(*) AS v FROM executions e WHERE NOT EXISTS \
             (SELECT 1 FROM batchframework_batchoperation o WHERE o.id = e.operation_id)",
        )?;
        let lease = LEASE.as_secs();
        let reclaims = format!(
            "WITH re AS ( \
               SELECT s.kill, s.operation_id, s.heartbeat, COALESCE( \
                 (SELECT MIN(e.claimed_at) FROM executions e \
                  WHERE e.operation_id = s.operation_id AND e.attempt = s.attempts + 1), \
                 (SELECT o.started_running_datetime FROM batchframework_batchoperation o \
                  WHERE o.id = s.operation_id AND o.attempts = s.attempts + 1)) AS reclaimed \
               FROM soak_orphans s), \
             w AS (SELECT kill, operation_id, \
                     EXTRACT(EPOCH FROM reclaimed - (heartbeat + interval '{lease} seconds'))::float8 AS s \
                   FROM re WHERE reclaimed IS NOT NULL) "
        );
        let waits = diesel::sql_query(format!(
            "{reclaims} SELECT (SELECT COUNT(*) FROM soak_orphans) AS orphans, \
               (SELECT COUNT(*) FROM w) AS reclaimed, \
               (SELECT MAX(s) FROM w) AS max_s, \
               (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY s) FROM w) AS median_s, \
               (SELECT MIN(s) FROM w) AS min_s"
        ))
        .get_result::<Waits>(conn)?;
        let per_kill = diesel::sql_query(format!(
            "{reclaims} SELECT s.kill, COUNT(*) AS orphans, \
               COUNT(*) FILTER (WHERE (SELECT COUNT(*) FROM executions e \
                 WHERE e.operation_id = s.operation_id) > 1) AS ran_twice, \
               MAX(w.s) AS max_s \
             FROM soak_orphans s LEFT JOIN w ON w.kill = s.kill AND w.operation_id = s.operation_id \
             GROUP BY s.kill ORDER BY s.kill"
        ))
        .load::<KillWaits>(conn)?;
        let latency = diesel::sql_query(
            "WITH l AS (SELECT EXTRACT(EPOCH FROM finished_datetime - created_datetime)::float8 AS s \
               FROM batchframework_batchoperation WHERE status = 'finished') \
             SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY s) AS p50, \
               percentile_cont(0.99) WITHIN GROUP (ORDER BY s) AS p99, MAX(s) AS max FROM l",
        )
        .get_result::<Latency>(conn)?;
        let many_runs = diesel::sql_query(
            "SELECT e.operation_id AS id, \
               string_agg(e.attempt || '@' || e.pid, ' ' ORDER BY e.claimed_at) AS runs, \
               (SELECT string_agg(s.kill::text, ',' ORDER BY s.kill) FROM soak_orphans s \
                WHERE s.operation_id = e.operation_id) AS kills, \
               (SELECT o.status || '/' || o.result FROM batchframework_batchoperation o \
                WHERE o.id = e.operation_id) AS status \
             FROM executions e GROUP BY e.operation_id HAVING COUNT(*) > 2 \
             ORDER BY e.operation_id LIMIT 10",
        )
        .load::<ManyRuns>(conn)?;
        let unfinished = diesel::sql_query(
            "SELECT id, status::text AS status, locked_by::text AS locked_by, \
               attempts::bigint AS attempts, \
               EXTRACT(EPOCH FROM now() - heartbeat_datetime)::float8 AS heartbeat_age_s \
             FROM batchframework_batchoperation WHERE status <> 'finished' ORDER BY id LIMIT 20",
        )
        .load::<Unfinished>(conn)?;
        Ok(Report {
            total,
            tallies,
            failed,
            strays,
            waits,
            per_kill,
            latency,
            many_runs,
            unfinished,
        })
    }

    fn sum(&self, keep: impl Fn(&Tally) -> bool) -> i64 {
        self.tallies.iter().filter(|t| keep(t)).map(|t| t.n).sum()
    }

    fn successful(t: &Tally) -> bool {
        t.status == "finished" && t.result == "successful"
    }

    /// Every run past the first follows a kill of the worker that held it, or an attempt cut
    /// short by a restart and given back (an attempt number run twice).
    fn explained(t: &Tally) -> bool {
        t.runs - 1 <= t.orphanings + t.repeated
    }

    fn faults(&self, faults: &mut Vec<String>) {
        let none = self.sum(|t| Self::successful(t) && t.runs == 0);
        if none > 0 {
            fault(
                faults,
                format!("{none} operations finished successful without a run of their action"),
            );
        }
        let unexplained = self.sum(|t| t.runs > 1 && !Self::explained(t));
        if unexplained > 0 {
            fault(
                faults,
                format!(
                    "{unexplained} operations ran more often than the kills of their workers and \
                     interrupted attempts explain (a live worker's lease taken over?)"
                ),
            );
        }
        let other_failures: i64 = self
            .failed
            .iter()
            .filter(|r| r.reason != "worker lost")
            .map(|r| r.n)
            .sum();
        if other_failures > 0 {
            fault(
                faults,
                format!(
                    "{other_failures} operations failed for another reason than \"worker lost\""
                ),
            );
        }
        if self.strays > 0 {
            fault(
                faults,
                format!(
                    "{} runs of operations that are not in the table",
                    self.strays
                ),
            );
        }
        if !self.unfinished.is_empty() {
            let listed: Vec<String> = self
                .unfinished
                .iter()
                .map(|u| {
                    format!(
                        "#{} {} locked_by {:?} attempts {} heartbeat {:.1} s ago",
                        u.id,
                        u.status,
                        u.locked_by,
                        u.attempts,
                        u.heartbeat_age_s.unwrap_or(f64::NAN)
                    )
                })
                .collect();
            fault(
                faults,
                format!("operations left unfinished (the first 20): {listed:#?}"),
            );
        }
    }
}

/// The server log's ERROR, FATAL and PANIC lines, by message.
fn server_log_summary(log: &str) -> String {
    let mut messages: BTreeMap<String, usize> = BTreeMap::new();
    for line in log.lines() {
        for level in ["ERROR:", "FATAL:", "PANIC:"] {
            if let Some((_, message)) = line.split_once(level) {
                *messages
                    .entry(format!("{level} {}", message.trim()))
                    .or_default() += 1;
            }
        }
    }
    if messages.is_empty() {
        return "no ERROR, FATAL or PANIC lines".to_owned();
    }
    let mut sorted: Vec<(String, usize)> = messages.into_iter().collect();
    sorted.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    let mut out = String::new();
    for (message, n) in sorted.iter().take(12) {
        let _ = write!(out, "\n  {n:>6} × {message}");
    }
    out
}

struct Summary<'a> {
    minutes: f64,
    target: u64,
    total: u64,
    window_took: Duration,
    finished_at_window: u64,
    drain_took: Duration,
    stop_took: Duration,
    kills: usize,
    restarts: &'a [(StopMode, Duration)],
    orphans_recorded: i64,
    report: &'a Report,
    fleet: &'a Fleet,
    rss: &'a [f64],
    /// The 1-minute load average, every 10 s of the window.
    loads: &'a [f64],
    faults: &'a [String],
}

fn thousands(n: impl Into<i128>) -> String {
    let digits = n.into().to_string();
    let (sign, digits) = digits
        .strip_prefix('-')
        .map_or(("", digits.as_str()), |d| ("-", d));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}

fn print_summary(s: &Summary<'_>) {
    let report = s.report;
    let rate = s.finished_at_window as f64 / s.window_took.as_secs_f64();
    let needed = s.target as f64 / (s.minutes * 60.0);
    println!(
        "{} operations ({}), {:.1} min with faults, then drained in {:.1} s",
        thousands(s.total),
        if s.total >= s.target {
            format!("the target, {} per 10 minutes", thousands(PER_MINUTE * 10))
        } else {
            format!(
                "scaled down from {}: this machine ran {rate:.0} ops/s under the faults, \
                 {needed:.0}/s were needed",
                thousands(s.target)
            )
        },
        s.window_took.as_secs_f64() / 60.0,
        s.drain_took.as_secs_f64()
    );
    println!();
    println!("| measure | result |");
    println!("|---|---:|");
    println!(
        "| operations (enqueued as they drained) | {} |",
        thousands(s.total)
    );
    println!("| throughput under the faults | {rate:.0} ops/s |");
    let l = &report.latency;
    let opt = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{v:.2}"));
    println!(
        "| enqueue to finish: p50 / p99 / max | {} / {} / {} s |",
        opt(l.p50),
        opt(l.p99),
        opt(l.max)
    );
    let fast = s
        .restarts
        .iter()
        .filter(|(m, _)| *m == StopMode::Fast)
        .count();
    let longest_restart = s
        .restarts
        .iter()
        .map(|(_, d)| d.as_secs_f64())
        .fold(0.0, f64::max);
    println!(
        "| worker processes killed (SIGKILL) and started again | {} |",
        s.kills
    );
    println!(
        "| database restarts: `-m fast` / `-m immediate` (longest) | {fast} / {} ({longest_restart:.1} s) |",
        s.restarts.len() - fast
    );
    let ok = |t: &Tally| Report::successful(t);
    println!(
        "| finished successful, action ran exactly once | {} |",
        thousands(report.sum(|t| ok(t) && t.runs == 1))
    );
    let after_kills = |t: &Tally| t.repeated == 0 && t.runs - 1 <= t.orphanings;
    println!(
        "| finished successful, action ran twice: its worker was killed mid-run | {} |",
        thousands(report.sum(|t| ok(t) && t.runs == 2 && after_kills(t)))
    );
    println!(
        "| finished successful, action ran 3 times: its workers were killed mid-run twice | {} |",
        thousands(report.sum(|t| ok(t) && t.runs >= 3 && after_kills(t)))
    );
    println!(
        "| finished successful, ran again after a restart cut its run | {} |",
        thousands(report.sum(|t| ok(t) && t.repeated > 0 && Report::explained(t)))
    );
    println!(
        "| action ran more often than kills and restarts explain | {} |",
        thousands(report.sum(|t| t.runs > 1 && !Report::explained(t)))
    );
    println!(
        "| finished successful without a run (a bug) | {} |",
        thousands(report.sum(|t| ok(t) && t.runs == 0))
    );
    let failed = if report.failed.is_empty() {
        "0".to_owned()
    } else {
        report
            .failed
            .iter()
            .map(|r| format!("{} \"{}\"", thousands(r.n), r.reason))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!("| finished failed (why) | {failed} |");
    println!(
        "| left unprocessed / running | {} / {} |",
        thousands(report.sum(|t| t.status == "unprocessed")),
        thousands(report.sum(|t| t.status == "running"))
    );
    let w = &report.waits;
    let secs = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{v:.2} s"));
    println!(
        "| operations held by killed workers / taken over by another (recorded {}) | {} / {} |",
        s.orphans_recorded,
        thousands(w.orphans),
        thousands(w.reclaimed)
    );
    println!(
        "| their wait past the {} s lease: max / median / min | {} / {} / {} |",
        LEASE.as_secs(),
        secs(w.max_s),
        secs(w.median_s),
        secs(w.min_s)
    );
    for (slot, threads) in THREADS.iter().enumerate() {
        let lives: Vec<&Ended> = s.fleet.ended.iter().filter(|e| e.slot == slot).collect();
        let reconnects: Vec<String> = lives
            .iter()
            .map(|e| {
                format!(
                    "{}/{}",
                    e.stats
                        .map_or("?".to_owned(), |st| st.reconnects.to_string()),
                    e.restarts_lived
                )
            })
            .collect();
        let fenced: usize = lives
            .iter()
            .filter_map(|e| e.stats)
            .map(|st| st.fenced)
            .sum();
        let lost: usize = lives.iter().filter_map(|e| e.stats).map(|st| st.lost).sum();
        println!(
            "| worker #{slot} ({threads} threads): processes; reconnects/restarts lived, each; fenced; lost | {}; {}; {fenced}; {lost} |",
            lives.len(),
            reconnects.join(" ")
        );
    }
    let on_its_own = s
        .fleet
        .ended
        .iter()
        .filter(|e| matches!(e.end, End::OnItsOwn(_)))
        .count();
    println!("| worker processes that exited on their own | {on_its_own} |");
    let stopped_ok = s
        .fleet
        .ended
        .iter()
        .filter(|e| matches!(&e.end, End::Stopped(status) if status.success()))
        .count();
    println!(
        "| stopped by SIGTERM, exit 0 | {stopped_ok} of 3 in {:.1} s |",
        s.stop_took.as_secs_f64()
    );
    let first = s.rss.first().copied().unwrap_or(f64::NAN);
    let max = s.rss.iter().copied().fold(f64::NAN, f64::max);
    let last = s.rss.last().copied().unwrap_or(f64::NAN);
    println!(
        "| RSS of worker #0, never killed ({} samples, 10 s apart): first / max / last | {first:.1} / {max:.1} / {last:.1} MiB |",
        s.rss.len()
    );
    let mean_load = s.loads.iter().sum::<f64>() / s.loads.len().max(1) as f64;
    let max_load = s.loads.iter().copied().fold(f64::NAN, f64::max);
    println!("| machine's 1-minute load average: mean / max | {mean_load:.1} / {max_load:.1} |");
    println!("| faults | {} |", s.faults.len());
}
