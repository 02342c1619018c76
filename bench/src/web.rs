//! Web benchmark: does the dashboard (`batchframework_web::router`) answer fast on a table with a
//! day's history, and while workers drain a backlog?
//!
//! A fresh, migrated database (`bf_web` on the local servers, a temporary SQLite file) is filled
//! in SQL on the server (`--scale`'s `insert_numbered_sql`) with:
//!
//! * 1,000,000 finished operations, created over the last day up to a minute ago and finished 1
//!   to 5 s after their creation (about 41,700 of them in the last hour), every 47th `failed`
//!   (21,276, 2.1%, with an action's error as output), over 6 types on 3 queues: `send-email`
//!   (40%) and `webhook` (10%) on `emails`, `import` (15%), `export` (10%) and `sync` (15%) on
//!   `default`, `report` (10%) on `reports`;
//! * 10,000 operations due now, the same mix, created over the last 10 minutes;
//!
//! then vacuumed and analyzed (PostgreSQL; `ANALYZE` elsewhere). The router, with
//! `Options::default()` and a pool of its own, is served on `127.0.0.1:0` by a tokio runtime
//! inside the bench process, and a blocking HTTP client (`ureq`, one keep-alive connection) on
//! the bench's main thread measures:
//!
//! * (a) with nothing else running: 20 requests each of `GET /` (the overview), `GET /operations`
//!   (the first page of the list), `GET /operations/{id}` (a failed operation) and
//!   `GET /metrics`, after one request each that is reported apart (the first, cold); and, for
//!   comparison, the library calls behind the overview and the list page timed directly on a
//!   connection (median of 5);
//! * (b) for 10 s, `GET /` and `GET /operations` in turn while a `Worker` with 4 threads (a pool
//!   of its own) runs a no-op action group for each type on the due operations: p50 and p99 of
//!   each, over the whole 10 s and apart for the requests started while due work was left and
//!   after, how many operations the workers finished meanwhile, and when the backlog was gone.
//!
//! Targets: the overview and the first list page each under 100 ms median at 1M finished + 10k
//! due on PostgreSQL; under 250 ms at p99 while the four worker threads drain. The machine is
//! shared (2 cores: the database server, the workers, the server and the client all on it):
//! compare within a run, and rerun before believing a single slow figure.
//!
//! ```text
//! cargo run --release -p batchframework-bench -- --web                     # PostgreSQL
//! cargo run --release -p batchframework-bench -- --web --backend mysql
//! cargo run --release -p batchframework-bench -- --web --backend sqlite
//! cargo run --release -p batchframework-bench -- --web --web-explain --web-keep
//! ```
//!
//! `--web-explain` also prints the statements of one overview's reads (those of 1 ms or more,
//! slowest first, as Diesel sent them, with their binds), timed between (a) and (b).
//! `--web-keep` leaves the database in place (its URL or file is printed) for `EXPLAIN` by
//! hand; drop it afterwards (`DROP DATABASE bf_web`, or delete the file's directory).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use batchframework_diesel::admin::{finishes_per_minute, queue_overview};
use batchframework_diesel::registry::{action_fn, ActionGroup, Registry, RegistryBuilder};
use batchframework_diesel::worker::Worker;
use batchframework_diesel::{BatchOperation, OperationFilter, OperationResult};
use diesel::connection::{Instrumentation, InstrumentationEvent, SimpleConnection};
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool};
use diesel::sql_types::Text;
use diesel::{
    Connection, MysqlConnection, PgConnection, QueryResult, RunQueryDsl, SqliteConnection,
};

use crate::scale::{Target, DAY_US, FILL_CHUNK, MINUTE_US};
use crate::workers::percentile;
use crate::{AnyError, Backend};

/// Finished operations in the history.
const FINISHED: u64 = 1_000_000;
/// Operations due now.
const DUE: u64 = 10_000;
/// A finished row failed when `g % FAIL_EVERY = 0` (47 is prime: failures fall on every type).
const FAIL_EVERY: u64 = 47;
/// Requests per route in (a).
const REQUESTS: usize = 20;
/// Runs of each direct library call.
const DIRECT_RUNS: usize = 5;
/// How long (b) lasts.
const DRAIN: Duration = Duration::from_secs(10);
/// Worker threads in (b).
const WORKER_THREADS: usize = 4;
/// The targets, in milliseconds.
const MEDIAN_TARGET_MS: f64 = 100.0;
const P99_TARGET_MS: f64 = 250.0;
/// What the overview passes as its chart's limit and its count limit (the router's defaults).
const CHART_LIMIT: u64 = 20_000;
const COUNT_LIMIT: u64 = 1_000;

/// The operation types: name, queue, and share of the rows in twentieths (row `g` takes the
/// type whose cumulative share first exceeds `g % 20`).
const TYPES: [(&str, &str, u64); 6] = [
    ("send-email", "emails", 8),
    ("webhook", "emails", 2),
    ("import", "default", 3),
    ("export", "default", 2),
    ("sync", "default", 3),
    ("report", "reports", 2),
];
const QUEUES: [&str; 3] = ["default", "emails", "reports"];

/// What a failed row's output holds: one failed action, as a worker records it.
const FAILED_OUTPUT: &str = r#"{"actiongroup_name":"send-email","results":[{"action_name":"deliver","failed":true,"errordata":{"data":"smtp: 451 4.7.1 try again later","traceback":"Error: smtp: 451 4.7.1 try again later, at deliver (mailer.rs:88)"},"success_output_data":null}]}"#;

/// `CASE` on `g % 20` choosing the type's name (`column = 0`) or its queue (`column = 1`).
fn by_type(column: usize) -> String {
    let mut sql = "CASE".to_owned();
    let mut upto = 0;
    for (name, queue, share) in TYPES {
        upto += share;
        let value = if column == 0 { name } else { queue };
        sql.push_str(&format!(" WHEN g % 20 < {upto} THEN '{value}'"));
    }
    sql.push_str(" END");
    sql
}

/// The SELECT list (in `--scale`'s fill columns) of finished row `g` of `FINISHED`, with
/// `ts(expr_us)` turning microseconds from now into the backend's timestamp.
fn finished_select(ts: impl Fn(String) -> String) -> String {
    let created = format!(
        "({} + g * {})",
        -DAY_US - MINUTE_US,
        DAY_US / FINISHED as i64
    );
    format!(
        "{}, {}, {}, {}, 'finished', \
         CASE WHEN g % {FAIL_EVERY} = 0 THEN 'failed' ELSE 'successful' END, {}, 0, NULL, 1, 1",
        ts(created.clone()),
        ts(format!("{created} + 500000")),
        ts(format!("{created} + (1 + g % 5) * 1000000")),
        by_type(0),
        by_type(1),
    )
}

/// The SELECT list of due row `g` of `DUE`.
fn due_select(ts: impl Fn(String) -> String) -> String {
    let created = format!(
        "({} + g * {})",
        -10 * MINUTE_US,
        10 * MINUTE_US / DUE as i64
    );
    format!(
        "{}, NULL, NULL, {}, 'unprocessed', 'not-available', {}, 0, NULL, 0, 1",
        ts(created),
        by_type(0),
        by_type(1),
    )
}

/// What differs per backend, beyond what `--scale` knows.
trait Web: Target {
    /// After the fill: what brings the table to the state a long-lived one is in.
    const SETTLE: &'static str;
    /// The database server and its version.
    fn server(conn: &mut Self) -> QueryResult<String>;
}

/// One text column of one row.
fn text(sql: &str) -> diesel::dsl::select<diesel::expression::SqlLiteral<Text>> {
    diesel::select(diesel::dsl::sql::<Text>(sql))
}

impl Web for PgConnection {
    /// VACUUM too: a table filled over a day has been vacuumed by autovacuum on the way, and
    /// index-only scans read the heap for every row of a never-vacuumed one.
    const SETTLE: &'static str = "VACUUM ANALYZE batchframework_batchoperation";

    fn server(conn: &mut Self) -> QueryResult<String> {
        Ok(format!(
            "PostgreSQL {}",
            text("current_setting('server_version')").get_result::<String>(conn)?
        ))
    }
}

impl Web for MysqlConnection {
    const SETTLE: &'static str = "ANALYZE TABLE batchframework_batchoperation";

    fn server(conn: &mut Self) -> QueryResult<String> {
        let version: String = text("VERSION()").get_result(conn)?;
        let name = if version.contains("MariaDB") {
            "MariaDB"
        } else {
            "MySQL"
        };
        Ok(format!("{name} {version}"))
    }
}

impl Web for SqliteConnection {
    const SETTLE: &'static str = "ANALYZE";

    fn server(conn: &mut Self) -> QueryResult<String> {
        Ok(format!(
            "SQLite {}",
            text("sqlite_version()").get_result::<String>(conn)?
        ))
    }
}

/// A database of its own for the run (`bf_web`, or a temporary SQLite file), dropped at the end.
struct Database {
    backend: Backend,
    url: String,
    admin: Option<&'static str>,
    _dir: Option<tempfile::TempDir>,
}

const DATABASE: &str = "bf_web";

impl Database {
    fn new(backend: Backend) -> Result<Self, AnyError> {
        let (admin, url) = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir()?;
                let url = dir.path().join("web.sqlite3").display().to_string();
                return Ok(Database {
                    backend,
                    url,
                    admin: None,
                    _dir: Some(dir),
                });
            }
            Backend::Postgres => (
                "postgres://postgres@127.0.0.1:5432/postgres",
                format!("postgres://postgres@127.0.0.1:5432/{DATABASE}"),
            ),
            Backend::Mysql => (
                "mysql://root@127.0.0.1:3306/test",
                format!("mysql://root@127.0.0.1:3306/{DATABASE}"),
            ),
        };
        let database = Database {
            backend,
            url,
            admin: Some(admin),
            _dir: None,
        };
        database.admin_execute(&format!("DROP DATABASE IF EXISTS {DATABASE}"))?;
        database.admin_execute(&format!("CREATE DATABASE {DATABASE}"))?;
        Ok(database)
    }

    /// One statement on the server's admin database.
    fn admin_execute(&self, sql: &str) -> Result<(), AnyError> {
        let Some(admin) = self.admin else {
            return Ok(());
        };
        match self.backend {
            Backend::Postgres => PgConnection::establish(admin)?.batch_execute(sql)?,
            Backend::Mysql => MysqlConnection::establish(admin)?.batch_execute(sql)?,
            Backend::Sqlite => {}
        }
        Ok(())
    }
}

impl Database {
    /// Leaves the database in place (for EXPLAIN by hand); returns where it is.
    fn keep(mut self) -> String {
        self.admin = None;
        if let Some(dir) = self._dir.take() {
            let _ = dir.keep();
        }
        self.url.clone()
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = self.admin_execute(&format!("DROP DATABASE IF EXISTS {DATABASE}"));
    }
}

/// Runs `setup` on each new connection of a pool (SQLite's busy timeout).
#[derive(Debug)]
struct Setup(&'static str);

impl<C: Connection> CustomizeConnection<C, diesel::r2d2::Error> for Setup {
    fn on_acquire(&self, conn: &mut C) -> Result<(), diesel::r2d2::Error> {
        if self.0.is_empty() {
            return Ok(());
        }
        conn.batch_execute(self.0)
            .map_err(diesel::r2d2::Error::QueryError)
    }
}

fn pool<C: Web>(url: &str, size: u32) -> Result<Pool<ConnectionManager<C>>, AnyError> {
    Ok(Pool::builder()
        .max_size(size)
        .connection_customizer(Box::new(Setup(C::SETUP)))
        .build(ConnectionManager::new(url))?)
}

/// Latencies of one kind of request, sorted.
struct Latencies {
    label: String,
    first: Option<Duration>,
    times: Vec<Duration>,
}

impl Latencies {
    fn new(label: impl Into<String>, first: Option<Duration>, mut times: Vec<Duration>) -> Self {
        times.sort();
        Latencies {
            label: label.into(),
            first,
            times,
        }
    }

    fn ms(&self, p: f64) -> f64 {
        percentile(&self.times, p).as_secs_f64() * 1000.0
    }
}

/// The client: one agent, so one keep-alive connection.
struct Client {
    agent: ureq::Agent,
    base: String,
}

impl Client {
    fn new(addr: SocketAddr) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        Client {
            agent,
            base: format!("http://{addr}"),
        }
    }

    /// One GET: its time (to the last byte of the body) and the body; an error unless `200`
    /// and the body holds `expect`.
    fn get(&self, path: &str, expect: &str) -> Result<(Duration, String), AnyError> {
        let started = Instant::now();
        let mut response = self.agent.get(&format!("{}{path}", self.base)).call()?;
        let status = response.status();
        let body = response
            .body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_string()?;
        let took = started.elapsed();
        if status != 200 {
            return Err(format!(
                "GET {path}: {status}: {}",
                body.chars().take(500).collect::<String>()
            )
            .into());
        }
        if !body.contains(expect) {
            return Err(format!("GET {path}: the answer has no {expect:?}").into());
        }
        Ok((took, body))
    }

    /// A first request (kept apart), then `n` more.
    fn measure(
        &self,
        label: &str,
        path: &str,
        expect: &str,
        n: usize,
    ) -> Result<Latencies, AnyError> {
        let (first, _) = self.get(path, expect)?;
        let mut times = Vec::with_capacity(n);
        for _ in 0..n {
            times.push(self.get(path, expect)?.0);
        }
        Ok(Latencies::new(label, Some(first), times))
    }
}

/// Times `DIRECT_RUNS` runs of `f` on `conn`; the median in milliseconds.
fn direct_ms<C, T>(
    conn: &mut C,
    mut f: impl FnMut(&mut C) -> batchframework_diesel::Result<T>,
) -> Result<f64, AnyError> {
    let mut times = Vec::with_capacity(DIRECT_RUNS);
    for _ in 0..DIRECT_RUNS {
        let started = Instant::now();
        f(conn)?;
        times.push(started.elapsed());
    }
    times.sort();
    Ok(percentile(&times, 0.5).as_secs_f64() * 1000.0)
}

/// The statements a connection sends while recording, each with its time from Diesel's
/// `StartQuery` to its `FinishQuery` event.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Recording>>);

#[derive(Default)]
struct Recording {
    on: bool,
    started: Option<(String, Instant)>,
    statements: Vec<(String, Duration)>,
}

impl Recorder {
    fn instrumentation(&self) -> impl Instrumentation {
        let recording = Arc::clone(&self.0);
        move |event: InstrumentationEvent<'_>| {
            let Ok(mut recording) = recording.lock() else {
                return;
            };
            if !recording.on {
                return;
            }
            match event {
                InstrumentationEvent::StartQuery { query, .. } => {
                    let sql = query.to_string();
                    recording.started = Some((sql, Instant::now()));
                }
                InstrumentationEvent::FinishQuery { .. } => {
                    if let Some((sql, at)) = recording.started.take() {
                        recording.statements.push((sql, at.elapsed()));
                    }
                }
                _ => {}
            }
        }
    }

    fn start(&self) {
        if let Ok(mut recording) = self.0.lock() {
            *recording = Recording {
                on: true,
                ..Recording::default()
            };
        }
    }

    fn stop(&self) -> Vec<(String, Duration)> {
        self.0
            .lock()
            .map(|mut recording| {
                recording.on = false;
                std::mem::take(&mut recording.statements)
            })
            .unwrap_or_default()
    }
}

/// The overview's reads, as its handler makes them (`pages/overview.rs`), one after the other.
fn overview_reads<C: Web>(conn: &mut C) -> batchframework_diesel::Result<()> {
    queue_overview(conn, COUNT_LIMIT)?;
    finishes_per_minute(conn, 60, CHART_LIMIT)?;
    OperationFilter::new()
        .result(OperationResult::Failed)
        .limit(10)
        .load(conn)?;
    Ok(())
}

/// A no-op action group for each type, on its queue.
fn registry<C: Web>() -> Result<Registry<C>, AnyError> {
    let mut builder: RegistryBuilder<C> = Registry::builder();
    for queue in QUEUES {
        builder = builder.queue(queue);
    }
    for (name, queue, _) in TYPES {
        builder = builder.group(
            ActionGroup::new(name)
                .asynchronous()
                .queue(queue)
                .action(action_fn("noop", |_| Ok(serde_json::Value::Null))),
        );
    }
    Ok(builder.build()?)
}

/// Everything measured on one backend.
struct Measured {
    server: String,
    fill: Duration,
    settle: Duration,
    failed: i64,
    idle: Vec<Latencies>,
    direct: Vec<(&'static str, f64)>,
    overview_statements: usize,
    busy: Vec<Latencies>,
    busy_for: Duration,
    finished: usize,
    drained_after: Option<Duration>,
}

/// Fills the database at `url`, serves the router and measures it.
fn measure<C: Web>(url: &str, explain: bool) -> Result<Measured, AnyError> {
    let mut conn = C::establish(url)?;
    if !C::SETUP.is_empty() {
        conn.batch_execute(C::SETUP)?;
    }
    let recorder = Recorder::default();
    conn.set_instrumentation(recorder.instrumentation());
    batchframework_diesel::run_migrations(&mut conn)?;
    let server = C::server(&mut conn)?;

    // The fill, in chunks of a million rows, each committed.
    let now_us = chrono::Utc::now().timestamp_micros();
    let started = Instant::now();
    for (count, select) in [
        (
            FINISHED,
            finished_select(|us| C::timestamp_sql(&us, now_us)),
        ),
        (DUE, due_select(|us| C::timestamp_sql(&us, now_us))),
    ] {
        let mut lo = 1;
        while lo <= count {
            let hi = (lo + FILL_CHUNK - 1).min(count);
            conn.batch_execute(&C::insert_numbered_sql(&select, lo, hi))?;
            lo = hi + 1;
        }
    }
    conn.batch_execute(&format!(
        "UPDATE batchframework_batchoperation SET output_data_json = '{FAILED_OUTPUT}' \
         WHERE result = 'failed'"
    ))?;
    let fill = started.elapsed();
    let total = OperationFilter::new().count(&mut conn)?;
    let failed = OperationFilter::new()
        .result(OperationResult::Failed)
        .count(&mut conn)?;
    if total != (FINISHED + DUE) as i64 || failed != (FINISHED / FAIL_EVERY) as i64 {
        return Err(format!("filled {total} rows ({failed} failed)").into());
    }
    let started = Instant::now();
    conn.batch_execute(C::SETTLE)?;
    let settle = started.elapsed();
    let failed_id = OperationFilter::new()
        .result(OperationResult::Failed)
        .limit(1)
        .load(&mut conn)?
        .first()
        .map(BatchOperation::id)
        .ok_or("no failed operation")?;

    // The server: the router on a pool of its own, in a tokio runtime of the bench process.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let router =
        batchframework_web::router(pool::<C>(url, 4)?, batchframework_web::Options::default());
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = runtime.spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    let client = Client::new(addr);
    let overview_marker = "data-queue=\"emails\"";
    let list_marker = "<table id=\"operations\"";

    // (a) Nothing else running.
    let idle = vec![
        client.measure("`GET /` (overview)", "/", overview_marker, REQUESTS)?,
        client.measure(
            "`GET /operations` (first page)",
            "/operations",
            list_marker,
            REQUESTS,
        )?,
        client.measure(
            "`GET /operations/{id}` (a failed one)",
            &format!("/operations/{failed_id}"),
            "smtp: 451",
            REQUESTS,
        )?,
        client.measure(
            "`GET /metrics`",
            "/metrics",
            "batchframework_queue_depth{queue=\"emails\",state=\"due\"}",
            REQUESTS,
        )?,
    ];
    let direct = vec![
        (
            "`queue_overview(conn, 1000)`",
            direct_ms(&mut conn, |conn| queue_overview(conn, COUNT_LIMIT))?,
        ),
        (
            "`finishes_per_minute(conn, 60, 20000)` (the chart)",
            direct_ms(&mut conn, |conn| finishes_per_minute(conn, 60, CHART_LIMIT))?,
        ),
        (
            "`latest_failures(conn, 10)`",
            direct_ms(&mut conn, |conn| {
                batchframework_diesel::admin::latest_failures(conn, 10)
            })?,
        ),
        (
            "first list page: `limit(50)`",
            direct_ms(&mut conn, |conn| {
                OperationFilter::new().limit(50).load(conn)
            })?,
        ),
        (
            "`BatchOperation::find`",
            direct_ms(&mut conn, |conn| BatchOperation::find(conn, failed_id))?,
        ),
    ];

    // The overview's statements, slowest first.
    recorder.start();
    overview_reads(&mut conn)?;
    let mut statements = recorder.stop();
    let overview_statements = statements.len();
    statements.sort_by_key(|(_, took)| std::cmp::Reverse(*took));
    if explain {
        println!(
            "\n{server}: the overview's {overview_statements} statements, slowest first \
             (those of 1 ms or more):\n"
        );
        for (sql, took) in statements
            .iter()
            .filter(|(_, took)| took.as_micros() >= 1000)
        {
            println!(
                "{:8.3} ms  {}",
                took.as_secs_f64() * 1000.0,
                sql.split_whitespace().collect::<Vec<_>>().join(" ")
            );
        }
    }

    // (b) The same pages while four worker threads drain the due operations.
    let worker = Worker::new(
        Arc::new(registry::<C>()?),
        pool::<C>(url, WORKER_THREADS as u32 + 1)?,
    )
    .start(WORKER_THREADS)?;
    let started = Instant::now();
    // Each request's time, by page and by whether the backlog was still there when it started.
    let mut times: [[Vec<Duration>; 2]; 2] = Default::default();
    let mut drained_after = None;
    while started.elapsed() < DRAIN {
        let after = usize::from(drained_after.is_some());
        times[0][after].push(client.get("/", overview_marker)?.0);
        let after = usize::from(drained_after.is_some());
        times[1][after].push(client.get("/operations", list_marker)?.0);
        if drained_after.is_none() && worker.stats().succeeded as u64 >= DUE {
            drained_after = Some(started.elapsed());
        }
    }
    let busy_for = started.elapsed();
    let stats = worker.shutdown(Duration::from_secs(30))?;
    let [[overview_draining, overview_after], [list_draining, list_after]] = times;
    let mut overview_all = overview_draining.clone();
    overview_all.extend(&overview_after);
    let mut list_all = list_draining.clone();
    list_all.extend(&list_after);
    let busy = vec![
        Latencies::new("`GET /` (overview), the whole 10 s", None, overview_all),
        Latencies::new("`GET /` while the backlog drains", None, overview_draining),
        Latencies::new("`GET /` once it is drained", None, overview_after),
        Latencies::new(
            "`GET /operations` (first page), the whole 10 s",
            None,
            list_all,
        ),
        Latencies::new(
            "`GET /operations` while the backlog drains",
            None,
            list_draining,
        ),
        Latencies::new("`GET /operations` once it is drained", None, list_after),
    ];

    let _ = stop.send(());
    runtime.block_on(serving)??;
    Ok(Measured {
        server,
        fill,
        settle,
        failed,
        idle,
        direct,
        overview_statements,
        busy,
        busy_for,
        finished: stats.succeeded + stats.failed,
        drained_after,
    })
}

/// The machine: processors (and their model, when /proc says).
fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        });
    match model {
        Some(model) => format!("nproc {cpus} ({model})"),
        None => format!("nproc {cpus}"),
    }
}

/// Within the target, or by how much over.
fn verdict(ms: f64, target_ms: f64) -> String {
    if ms < target_ms {
        "within".to_owned()
    } else {
        format!("**over** ({:.1}×)", ms / target_ms)
    }
}

/// Measures `backend` and prints its tables.
pub(crate) fn run(backend: Backend, explain: bool, keep: bool) -> Result<(), AnyError> {
    eprintln!("{backend:?}: filling {FINISHED} finished and {DUE} due operations ...");
    let database = Database::new(backend)?;
    let m = match backend {
        Backend::Postgres => measure::<PgConnection>(&database.url, explain)?,
        Backend::Mysql => measure::<MysqlConnection>(&database.url, explain)?,
        Backend::Sqlite => measure::<SqliteConnection>(&database.url, explain)?,
    };
    if keep {
        eprintln!("kept: {} (drop it by hand)", database.keep());
    }

    println!(
        "\n### `--web`, {}: {}\n\n{FINISHED} finished operations ({} failed) over the last day and \
         {DUE} due, on {} queues × {} types; filled in {:.1} s, settled (`{}`) in {:.1} s. \
         Dashboard: `router(pool of 4, Options::default())` on 127.0.0.1, client `ureq` on one \
         keep-alive connection.\n",
        m.server,
        machine(),
        m.failed,
        QUEUES.len(),
        TYPES.len(),
        m.fill.as_secs_f64(),
        match backend {
            Backend::Postgres => PgConnection::SETTLE,
            Backend::Mysql => MysqlConnection::SETTLE,
            Backend::Sqlite => SqliteConnection::SETTLE,
        },
        m.settle.as_secs_f64(),
    );
    println!("(a) nothing else running: {REQUESTS} requests each, after a first one\n");
    println!("| request | first ms | median ms | p99 ms | target | |");
    println!("|---|---:|---:|---:|---:|---|");
    for (index, l) in m.idle.iter().enumerate() {
        let (target, verdict) = if index < 2 {
            (
                format!("median < {MEDIAN_TARGET_MS:.0} ms"),
                verdict(l.ms(0.5), MEDIAN_TARGET_MS),
            )
        } else {
            (String::new(), String::new())
        };
        println!(
            "| {} | {:.1} | {:.1} | {:.1} | {target} | {verdict} |",
            l.label,
            l.first.map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0),
            l.ms(0.5),
            l.ms(0.99),
        );
    }
    println!(
        "\nthe library calls behind them, on a connection of their own (median of \
         {DIRECT_RUNS}; the overview makes the first three, {} statements in all):\n",
        m.overview_statements
    );
    println!("| call | median ms |");
    println!("|---|---:|");
    for (label, ms) in &m.direct {
        println!("| {label} | {ms:.1} |");
    }
    println!(
        "\n(b) for {:.1} s, the overview and the first page in turn while a worker with \
         {WORKER_THREADS} threads drains the {DUE} due operations (no-op actions): it finished \
         {} operations{}\n",
        m.busy_for.as_secs_f64(),
        m.finished,
        match m.drained_after {
            Some(after) => format!(", the backlog gone after {:.1} s", after.as_secs_f64()),
            None => ", and the backlog was not gone by then".to_owned(),
        },
    );
    println!("| request | n | p50 ms | p99 ms | max ms | target | |");
    println!("|---|---:|---:|---:|---:|---:|---|");
    for l in m.busy.iter().filter(|l| !l.times.is_empty()) {
        println!(
            "| {} | {} | {:.1} | {:.1} | {:.1} | p99 < {P99_TARGET_MS:.0} ms | {} |",
            l.label,
            l.times.len(),
            l.ms(0.5),
            l.ms(0.99),
            l.ms(1.0),
            verdict(l.ms(0.99), P99_TARGET_MS),
        );
    }
    Ok(())
}
