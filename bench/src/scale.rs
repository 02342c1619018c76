//! Scale benchmark: does a large background in `batchframework_batchoperation` (a long finished
//! history, a backlog of delayed work, retries in backoff) slow the workers or the operators'
//! queries? Each case starts from a fresh, migrated database (`bf_scale` on the local servers, a
//! temporary file on SQLite), fills it with B background rows in SQL on the server (all of type
//! `noop` on queue `default`, the type the workers run), runs `ANALYZE` (except in the first
//! case, "B = 0, just migrated", which keeps the statistics of a just-migrated table), and
//! measures:
//!
//! * ops/s: 20,000 no-op operations bulk-inserted, then drained by `run_until_idle` with 4
//!   threads (claims of 20), as in `--workers`; median of `--repeat` runs (default 3);
//! * enqueue-to-start latency, p50 and p99: 200 operations (of type `noop` too, one
//!   `registry.run` each) enqueued 15 ms apart into a started worker with 2 threads, woken by
//!   LISTEN/NOTIFY on PostgreSQL (polling every second as the fallback), polling every 10 ms on
//!   MySQL/MariaDB and SQLite; medians of `--repeat` runs;
//! * the claim's due read (`__private::due_sql`, limit 10, `FOR UPDATE SKIP LOCKED` in a
//!   transaction rolled back on PostgreSQL and MySQL/MariaDB, no lock on SQLite) and the idle
//!   poll's (limit 1, no lock), for type `noop` on queue `default`: median of 200 executions of
//!   the statement alone (the transaction's BEGIN and ROLLBACK are not timed);
//! * the operators' queries, median of 20 executions each: `overview::queue_counts` (limit
//!   1,000),
//!   `overview::oldest_due("default")`, failures finished in the last hour (count), the 50
//!   newest operations of type `noop`, the 50 newest created in the last hour.
//!
//! The measurements run in that order: the reads first, on the background alone; the
//! benchmark's own operations are deleted after each run of ops/s and latency, so every run
//! starts with exactly B rows. "No ANALYZE" means none from the benchmark: the server's own
//! statistics (PostgreSQL's autovacuum, if on; InnoDB's automatic recalculation) still run.
//!
//! The background: `finished` rows were created over the 30 days up to a minute ago, ran a
//! second, 1% of them `failed`; `delayed` rows are due one to two days ahead; `backoff` rows
//! are retries (attempt 1 of 5) due 10 to 60 minutes ahead. The cases: 0 (just migrated), 0
//! (analyzed), then for `--scale-sizes` N,M,...: N finished, M finished, ..., and the first
//! size delayed and (PostgreSQL) in backoff. A size written `kind:N` (`finished:`, `delayed:`,
//! `backoff:`) makes the list the cases themselves. The machine is shared: compare each row with
//! the "B = 0 analyzed" row of the same run, not figures across runs.
//!
//! ```text
//! cargo run --release -p batchframework-bench -- --scale                    # PostgreSQL: 1M, 10M
//! cargo run --release -p batchframework-bench -- --scale --backend mysql    # 1M
//! cargo run --release -p batchframework-bench -- --scale --backend sqlite   # 1M
//! cargo run --release -p batchframework-bench -- --scale --scale-sizes 100000   # a quick run
//! cargo run --release -p batchframework-bench -- --scale --scale-sizes finished:10000000 --repeat 1
//! ```
//!
//! `--scale-explain` also prints, for each case, every measured statement as Diesel sent it
//! (SQL and binds, captured with the connection's instrumentation) and the plans from
//! `__private::query_plans` (PostgreSQL `EXPLAIN (ANALYZE, FORMAT JSON)`, MySQL/MariaDB
//! `EXPLAIN FORMAT=JSON`, SQLite `EXPLAIN QUERY PLAN`). `--scale-keep` leaves the last case's
//! database in place (its URL or file is printed) for `EXPLAIN (ANALYZE, BUFFERS)` and the like
//! by hand; drop it afterwards (`DROP DATABASE bf_scale`, or delete the file's directory).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use batchframework_diesel::diesel::backend::Backend as DieselBackend;
use batchframework_diesel::overview::{oldest_due, queue_counts};
use batchframework_diesel::registry::{action_fn, ActionGroup, Registry};
use batchframework_diesel::worker::{Worker, WorkerConnection};
use batchframework_diesel::{
    bulk_insert, BulkInsertable, Dialect, OperationFilter, OperationOrder, OperationResult,
    UtcDateTime, UtcTimestamp,
};
use diesel::connection::{Instrumentation, InstrumentationEvent, LoadConnection, SimpleConnection};
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::query_dsl::LoadQuery;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool};
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, HasSqlType, Integer, Text};
use diesel::{Connection, MysqlConnection, PgConnection, QueryResult, SqliteConnection};

use crate::workers::{percentile, queued, QueuedOperation};
use crate::{AnyError, Backend};

/// What fills the table before a case is measured.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kind {
    Finished,
    Delayed,
    Backoff,
}

/// One row of the table: a background of `size` rows of `kind`, analyzed or not.
#[derive(Clone, Copy, Debug)]
struct Case {
    kind: Kind,
    size: u64,
    analyze: bool,
}

impl Case {
    fn label(&self) -> String {
        if self.size == 0 {
            let how = if self.analyze {
                "analyzed"
            } else {
                "just migrated"
            };
            return format!("B = 0, {how}");
        }
        let kind = match self.kind {
            Kind::Finished => "finished",
            Kind::Delayed => "delayed",
            Kind::Backoff => "backoff",
        };
        format!("B = {} {kind}", human(self.size))
    }
}

/// 1000000 as 1M, 100000 as 100k.
fn human(n: u64) -> String {
    if n >= 1_000_000 && n % 1_000_000 == 0 {
        format!("{}M", n / 1_000_000)
    } else if n >= 1_000 && n % 1_000 == 0 {
        format!("{}k", n / 1_000)
    } else {
        n.to_string()
    }
}

/// The cases for `backend` from `--scale-sizes` (see the module's docs).
fn cases(backend: Backend, sizes: Option<&[String]>) -> Result<Vec<Case>, AnyError> {
    let default: &[&str] = match backend {
        Backend::Postgres => &["1000000", "10000000"],
        Backend::Mysql | Backend::Sqlite => &["1000000"],
    };
    let sizes: Vec<String> = match sizes {
        Some(sizes) => sizes.to_vec(),
        None => default.iter().map(|s| (*s).to_owned()).collect(),
    };
    let mut cases = vec![
        Case {
            kind: Kind::Finished,
            size: 0,
            analyze: false,
        },
        Case {
            kind: Kind::Finished,
            size: 0,
            analyze: true,
        },
    ];
    let explicit = sizes.iter().any(|s| s.contains(':'));
    let mut parsed = Vec::new();
    for size in &sizes {
        let (kind, n) = match size.split_once(':') {
            Some(("finished", n)) => (Kind::Finished, n),
            Some(("delayed", n)) => (Kind::Delayed, n),
            Some(("backoff", n)) => (Kind::Backoff, n),
            Some((other, _)) => {
                return Err(format!("--scale-sizes: unknown kind {other:?}").into());
            }
            None if explicit => return Err("--scale-sizes: give every size a kind, or none".into()),
            None => (Kind::Finished, size.as_str()),
        };
        let size: u64 = n.trim().parse()?;
        parsed.push(Case {
            kind,
            size,
            analyze: true,
        });
    }
    if !explicit {
        if let Some(&first) = parsed.first() {
            parsed.push(Case {
                kind: Kind::Delayed,
                ..first
            });
            if backend == Backend::Postgres {
                parsed.push(Case {
                    kind: Kind::Backoff,
                    ..first
                });
            }
        }
    }
    cases.extend(parsed);
    Ok(cases)
}

/// Microseconds in a minute, an hour, a day.
pub(crate) const MINUTE_US: i64 = 60_000_000;
pub(crate) const HOUR_US: i64 = 60 * MINUTE_US;
pub(crate) const DAY_US: i64 = 24 * HOUR_US;

/// Rows per fill statement: each chunk commits on its own.
pub(crate) const FILL_CHUNK: u64 = 1_000_000;

/// How the rows of a kind are spread in time: for row g of n (1-based), microseconds from now
/// (negative: in the past) of its creation and of its `run_after` (if any), as SQL expressions
/// in `g`. `per` is the step between rows.
struct Spread {
    /// created = now + created_base + g * created_per
    created_base: i64,
    created_per: i64,
    /// run_after = now + run_after_base + g * run_after_per
    run_after_base: i64,
    run_after_per: i64,
}

fn spread(kind: Kind, n: u64) -> Spread {
    let n = n.max(1) as i64;
    match kind {
        // Created over the 30 days up to a minute ago, oldest first (ids in creation order).
        Kind::Finished => Spread {
            created_base: -MINUTE_US - 30 * DAY_US,
            created_per: 30 * DAY_US / n,
            run_after_base: 0,
            run_after_per: 0,
        },
        // Scheduled over the last day, due one to two days ahead.
        Kind::Delayed => Spread {
            created_base: -DAY_US,
            created_per: DAY_US / n,
            run_after_base: DAY_US,
            run_after_per: DAY_US / n,
        },
        // Created in the last hour, failed once, due again 10 to 60 minutes ahead.
        Kind::Backoff => Spread {
            created_base: -HOUR_US,
            created_per: HOUR_US / n,
            run_after_base: 10 * MINUTE_US,
            run_after_per: 50 * MINUTE_US / n,
        },
    }
}

/// The columns every fill writes, in this order.
const FILL_COLUMNS: &str = "created_datetime, started_running_datetime, finished_datetime, \
     operationtype, status, result, queue, priority, run_after, attempts, max_attempts";

/// The SELECT list of a fill, with `ts(expr_us)` turning microseconds from now into the
/// backend's timestamp and `g` the row number.
fn fill_select(kind: Kind, n: u64, ts: impl Fn(String) -> String) -> String {
    let s = spread(kind, n);
    let created = format!("{} + g * {}", s.created_base, s.created_per);
    let run_after = format!("{} + g * {}", s.run_after_base, s.run_after_per);
    let second = 1_000_000;
    match kind {
        Kind::Finished => format!(
            "{}, {}, {}, 'noop', 'finished', \
             CASE WHEN g % 100 = 0 THEN 'failed' ELSE 'successful' END, \
             'default', 0, NULL, 1, 1",
            ts(created.clone()),
            ts(format!("{created} + {second}")),
            ts(format!("{created} + {}", 2 * second)),
        ),
        Kind::Delayed => format!(
            "{}, NULL, NULL, 'noop', 'unprocessed', 'not-available', 'default', 0, {}, 0, 1",
            ts(created),
            ts(run_after),
        ),
        Kind::Backoff => format!(
            "{}, {}, NULL, 'noop', 'unprocessed', 'not-available', 'default', 0, {}, 1, 5",
            ts(created.clone()),
            ts(format!("{created} + {second}")),
            ts(run_after),
        ),
    }
}

/// What differs per backend.
pub(crate) trait Target: WorkerConnection + LoadConnection<Backend = Self::DB> {
    type DB: DieselBackend + HasSqlType<Text> + HasSqlType<UtcTimestamp>;
    const DIALECT: Dialect;
    /// Whether the claim's read locks its rows (in a transaction).
    const ROW_LOCKS: bool;
    /// Whether started workers are woken by LISTEN/NOTIFY (else they poll every 10 ms).
    const LISTEN: bool;
    const ANALYZE: &'static str;
    /// The instant `us` microseconds (an SQL expression) from now, in the column's type;
    /// `now_us` is now in microseconds since the epoch, for a backend without a clock of its own
    /// that precise.
    fn timestamp_sql(us: &str, now_us: i64) -> String;
    /// `INSERT` of [`FILL_COLUMNS`] as `select` for each row number `g` in `lo..=hi`.
    fn insert_numbered_sql(select: &str, lo: u64, hi: u64) -> String;
    /// Statements run on each new connection of the pool.
    const SETUP: &'static str = "";
    /// The claim's read runs in this transaction.
    fn claim_transaction<T>(
        conn: &mut Self,
        body: impl FnOnce(&mut Self) -> QueryResult<T>,
    ) -> QueryResult<T> {
        conn.transaction(body)
    }
    /// The library's plans of the measured statements.
    fn plans(conn: &mut Self) -> QueryResult<Vec<(&'static str, String)>>;
}

impl Target for PgConnection {
    type DB = diesel::pg::Pg;
    const DIALECT: Dialect = Dialect::Postgres;
    const ROW_LOCKS: bool = true;
    const LISTEN: bool = true;
    const ANALYZE: &'static str = "ANALYZE batchframework_batchoperation";

    fn timestamp_sql(us: &str, _now_us: i64) -> String {
        format!("now() + ({us}) * interval '1 microsecond'")
    }

    fn insert_numbered_sql(select: &str, lo: u64, hi: u64) -> String {
        format!(
            "INSERT INTO batchframework_batchoperation ({FILL_COLUMNS}) \
             SELECT {select} FROM generate_series({lo}::bigint, {hi}::bigint) AS g"
        )
    }

    fn plans(conn: &mut Self) -> QueryResult<Vec<(&'static str, String)>> {
        batchframework_diesel::__private::query_plans::<diesel::pg::Pg>(
            conn,
            "default",
            "noop",
            chrono::Utc::now(),
        )
    }
}

impl Target for MysqlConnection {
    type DB = diesel::mysql::Mysql;
    const DIALECT: Dialect = Dialect::Mysql;
    const ROW_LOCKS: bool = true;
    const LISTEN: bool = false;
    const ANALYZE: &'static str = "ANALYZE TABLE batchframework_batchoperation";

    /// Row numbers from a recursive CTE of 1,000 rows crossed with itself (1,000 recursions
    /// stay under MySQL's `cte_max_recursion_depth` and MariaDB's `max_recursive_iterations`
    /// defaults), so a chunk holds at most 1,000,000 rows.
    fn timestamp_sql(us: &str, _now_us: i64) -> String {
        format!("TIMESTAMPADD(MICROSECOND, {us}, UTC_TIMESTAMP(6))")
    }

    fn insert_numbered_sql(select: &str, lo: u64, hi: u64) -> String {
        format!(
            "INSERT INTO batchframework_batchoperation ({FILL_COLUMNS}) \
             WITH RECURSIVE d (n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM d WHERE n < 999) \
             SELECT {select} FROM (SELECT {lo} + a.n * 1000 + b.n AS g \
             FROM d AS a CROSS JOIN d AS b WHERE a.n * 1000 + b.n <= {}) AS numbers",
            hi - lo
        )
    }

    /// As the library's claim: READ COMMITTED, which locks only the rows it takes.
    fn claim_transaction<T>(
        conn: &mut Self,
        body: impl FnOnce(&mut Self) -> QueryResult<T>,
    ) -> QueryResult<T> {
        conn.batch_execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")?;
        conn.transaction(body)
    }

    fn plans(conn: &mut Self) -> QueryResult<Vec<(&'static str, String)>> {
        batchframework_diesel::__private::query_plans::<diesel::mysql::Mysql>(
            conn,
            "default",
            "noop",
            chrono::Utc::now(),
        )
    }
}

impl Target for SqliteConnection {
    type DB = diesel::sqlite::Sqlite;
    const DIALECT: Dialect = Dialect::Sqlite;
    const ROW_LOCKS: bool = false;
    const LISTEN: bool = false;
    const ANALYZE: &'static str = "ANALYZE";
    const SETUP: &'static str = "PRAGMA busy_timeout = 10000";

    /// As the library writes them: fixed-width UTC text with microseconds.
    fn timestamp_sql(us: &str, now_us: i64) -> String {
        let at = format!("({now_us} + {us})");
        format!(
            "strftime('%Y-%m-%d %H:%M:%S', {at} / 1000000, 'unixepoch') \
             || printf('.%06d', {at} % 1000000)"
        )
    }

    fn insert_numbered_sql(select: &str, lo: u64, hi: u64) -> String {
        format!(
            "WITH RECURSIVE numbers (g) AS (SELECT {lo} UNION ALL SELECT g + 1 FROM numbers \
             WHERE g < {hi}) \
             INSERT INTO batchframework_batchoperation ({FILL_COLUMNS}) \
             SELECT {select} FROM numbers"
        )
    }

    fn plans(conn: &mut Self) -> QueryResult<Vec<(&'static str, String)>> {
        batchframework_diesel::__private::query_plans::<diesel::sqlite::Sqlite>(
            conn,
            "default",
            "noop",
            chrono::Utc::now(),
        )
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

/// A row the due read returns.
#[derive(diesel::QueryableByName)]
#[allow(dead_code)]
struct Due {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Integer)]
    priority: i32,
}

/// One execution of the claim's due read (`limit`, `lock`) for type `noop` on queue `default`,
/// its binds in the statement's order; the time of the statement alone.
fn due_read<C: Target>(conn: &mut C, limit: i64, lock: bool) -> QueryResult<Duration>
where
    str: ToSql<Text, C::DB>,
    UtcDateTime: ToSql<UtcTimestamp, C::DB>,
    for<'a> BoxedSqlQuery<'a, C::DB, SqlQuery>: LoadQuery<'a, C, Due>,
{
    let sql = batchframework_diesel::__private::due_sql(C::DIALECT, 1, 1, limit, lock);
    let query = diesel::sql_query(sql)
        .into_boxed::<C::DB>()
        .bind::<Text, _>("noop")
        .bind::<Text, _>("default")
        .bind::<Text, _>("noop")
        .bind::<Text, _>("default")
        .bind::<UtcTimestamp, _>(UtcDateTime(chrono::Utc::now()));
    let timed = |conn: &mut C| {
        let started = Instant::now();
        let rows: Vec<Due> = diesel::RunQueryDsl::load(query, conn)?;
        let took = started.elapsed();
        // The background is never due: a row here means the benchmark measures the wrong thing.
        if !rows.is_empty() {
            return Err(diesel::result::Error::QueryBuilderError(
                format!("the due read found {} rows", rows.len()).into(),
            ));
        }
        Ok(took)
    };
    if !lock {
        return timed(conn);
    }
    let mut took = Duration::ZERO;
    let ran = C::claim_transaction(conn, |conn| {
        took = timed(conn)?;
        Err::<(), _>(diesel::result::Error::RollbackTransaction)
    });
    match ran {
        Ok(()) | Err(diesel::result::Error::RollbackTransaction) => Ok(took),
        Err(error) => Err(error),
    }
}

/// The median of `times` in milliseconds.
pub(crate) fn median_ms(mut times: Vec<Duration>) -> f64 {
    times.sort();
    percentile(&times, 0.5).as_secs_f64() * 1000.0
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Times `n` runs of `f`; the median in milliseconds.
fn time_ms<C, T>(
    conn: &mut C,
    n: usize,
    mut f: impl FnMut(&mut C) -> Result<T, AnyError>,
) -> Result<f64, AnyError> {
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        f(conn)?;
        times.push(started.elapsed());
    }
    Ok(median_ms(times))
}

/// The operators' queries, by column name.
const OPERATOR_QUERIES: [&str; 5] = [
    "queue_counts(1000)",
    "oldest_due",
    "failed, last hour (count)",
    "newest 50 of type",
    "newest 50 created, last hour",
];

/// Runs operator query `index` once.
fn operator_query<C: Target>(conn: &mut C, index: usize) -> Result<(), AnyError> {
    let now = chrono::Utc::now();
    match index {
        0 => {
            queue_counts(conn, 1_000)?;
        }
        1 => {
            oldest_due(conn, "default")?;
        }
        2 => {
            OperationFilter::new()
                .result(OperationResult::Failed)
                .finished_after(now - chrono::Duration::hours(1))
                .count(conn)?;
        }
        3 => {
            OperationFilter::new()
                .operation_type("noop")
                .limit(50)
                .load(conn)?;
        }
        _ => {
            OperationFilter::new()
                .created_after(now - chrono::Duration::hours(1))
                .order_by(OperationOrder::CreatedDescending)
                .limit(50)
                .load(conn)?;
        }
    }
    Ok(())
}

/// One row of results.
struct Measured {
    case: Case,
    fill: Duration,
    analyze: Option<Duration>,
    ops_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    due_ms: f64,
    idle_ms: f64,
    operators_ms: Vec<f64>,
}

/// The statements a connection sends, as Diesel prints them (SQL and binds).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Option<Vec<String>>>>);

impl Captured {
    fn instrumentation(&self) -> impl Instrumentation {
        let seen = Arc::clone(&self.0);
        move |event: InstrumentationEvent<'_>| {
            if let InstrumentationEvent::StartQuery { query, .. } = event {
                if let Ok(mut seen) = seen.lock() {
                    if let Some(seen) = seen.as_mut() {
                        seen.push(query.to_string());
                    }
                }
            }
        }
    }

    fn start(&self) {
        if let Ok(mut seen) = self.0.lock() {
            *seen = Some(Vec::new());
        }
    }

    fn take(&self) -> Vec<String> {
        self.0
            .lock()
            .ok()
            .and_then(|mut seen| seen.take())
            .unwrap_or_default()
    }
}

/// Measures one case on the database at `url` (fresh, nothing in it yet).
fn measure<C: Target>(
    url: &str,
    case: Case,
    repeat: usize,
    explain: bool,
) -> Result<Measured, AnyError>
where
    QueuedOperation: BulkInsertable<C>,
    str: ToSql<Text, C::DB>,
    UtcDateTime: ToSql<UtcTimestamp, C::DB>,
    for<'a> BoxedSqlQuery<'a, C::DB, SqlQuery>: LoadQuery<'a, C, Due>,
{
    let mut conn = C::establish(url)?;
    if !C::SETUP.is_empty() {
        conn.batch_execute(C::SETUP)?;
    }
    let captured = Captured::default();
    conn.set_instrumentation(captured.instrumentation());
    batchframework_diesel::run_migrations(&mut conn)?;

    // 1. The background, in chunks of a million rows, each committed.
    let now_us = chrono::Utc::now().timestamp_micros();
    let started = Instant::now();
    let mut lo = 1;
    while lo <= case.size {
        let hi = (lo + FILL_CHUNK - 1).min(case.size);
        let select = fill_select(case.kind, case.size, |us| C::timestamp_sql(&us, now_us));
        conn.batch_execute(&C::insert_numbered_sql(&select, lo, hi))?;
        lo = hi + 1;
    }
    let fill = started.elapsed();
    let background = OperationFilter::new().count(&mut conn)?;
    if background != case.size as i64 {
        return Err(format!("filled {background} rows, not {}", case.size).into());
    }
    let last_background: i64 = OperationFilter::new()
        .limit(1)
        .load(&mut conn)?
        .first()
        .map_or(0, |operation| operation.id());

    // 2. Statistics.
    let analyze = if case.analyze {
        let started = Instant::now();
        conn.batch_execute(C::ANALYZE)?;
        Some(started.elapsed())
    } else {
        None
    };

    // 3. The reads, on the background alone.
    let due_ms = median_ms(
        (0..200)
            .map(|_| due_read(&mut conn, 10, C::ROW_LOCKS))
            .collect::<QueryResult<Vec<_>>>()?,
    );
    let idle_ms = median_ms(
        (0..200)
            .map(|_| due_read(&mut conn, 1, false))
            .collect::<QueryResult<Vec<_>>>()?,
    );
    let mut operators_ms = Vec::new();
    for index in 0..OPERATOR_QUERIES.len() {
        operators_ms.push(time_ms(&mut conn, 20, |conn| operator_query(conn, index))?);
    }
    if explain {
        explain_case(&mut conn, &captured)?;
    }

    // Throughput and latency; the benchmark's own rows are removed after each run.
    let pool: Pool<ConnectionManager<C>> = Pool::builder()
        .max_size(6)
        .connection_customizer(Box::new(Setup(C::SETUP)))
        .build(ConnectionManager::new(url))?;
    let cleanup = format!("DELETE FROM batchframework_batchoperation WHERE id > {last_background}");
    let registry: Arc<Registry<C>> = Arc::new(
        Registry::builder()
            .group(
                ActionGroup::new("noop")
                    .asynchronous()
                    .action(action_fn("noop", |_| Ok(serde_json::Value::Null))),
            )
            .build()?,
    );
    let mut throughput = Vec::new();
    for _ in 0..repeat {
        bulk_insert(&mut conn, queued(20_000))?;
        let worker = Worker::new(Arc::clone(&registry), pool.clone()).batch_size(20);
        let started = Instant::now();
        let stats = worker.run_until_idle(4)?;
        let took = started.elapsed();
        if stats.succeeded != 20_000 {
            return Err(format!("drained {stats:?}, not 20,000 successes").into());
        }
        throughput.push(stats.succeeded as f64 / took.as_secs_f64());
        conn.batch_execute(&cleanup)?;
    }

    let (mut p50s, mut p99s) = (Vec::new(), Vec::new());
    for _ in 0..repeat {
        let mut samples = latency(&mut conn, &pool)?;
        samples.sort();
        p50s.push(percentile(&samples, 0.5).as_secs_f64() * 1000.0);
        p99s.push(percentile(&samples, 0.99).as_secs_f64() * 1000.0);
        conn.batch_execute(&cleanup)?;
    }

    Ok(Measured {
        case,
        fill,
        analyze,
        ops_per_s: median(throughput),
        p50_ms: median(p50s),
        p99_ms: median(p99s),
        due_ms,
        idle_ms,
        operators_ms,
    })
}

/// Enqueue-to-start latency of 200 operations of type `noop` (so that the workers step past
/// the background) enqueued 15 ms apart into a started worker with 2 threads.
fn latency<C: Target>(
    conn: &mut C,
    pool: &Pool<ConnectionManager<C>>,
) -> Result<Vec<Duration>, AnyError> {
    let poll = if C::LISTEN {
        Duration::from_secs(1)
    } else {
        Duration::from_millis(10)
    };
    crate::workers::enqueue_to_start(conn, pool, "noop", C::LISTEN, poll)
}

/// Prints the measured statements as sent and the library's plans of them.
fn explain_case<C: Target>(conn: &mut C, captured: &Captured) -> Result<(), AnyError>
where
    str: ToSql<Text, C::DB>,
    UtcDateTime: ToSql<UtcTimestamp, C::DB>,
    for<'a> BoxedSqlQuery<'a, C::DB, SqlQuery>: LoadQuery<'a, C, Due>,
{
    println!("\nstatements as sent:\n");
    for (name, lock, limit) in [
        ("claim's due read", C::ROW_LOCKS, 10),
        ("idle poll", false, 1),
    ] {
        captured.start();
        due_read(conn, limit, lock)?;
        print_statements(name, &captured.take());
    }
    for (index, name) in OPERATOR_QUERIES.iter().enumerate() {
        captured.start();
        operator_query(conn, index)?;
        print_statements(name, &captured.take());
    }
    println!("\nplans (`__private::query_plans`):\n");
    for (name, plan) in C::plans(conn)? {
        println!("-- {name}\n{plan}\n");
    }
    Ok(())
}

fn print_statements(name: &str, statements: &[String]) {
    println!("-- {name}");
    for statement in statements {
        println!("{statement}");
    }
    println!();
}

/// A fresh database for one case (`bf_scale` on the server, or a new SQLite file), dropped
/// when this is.
pub(crate) struct Fresh {
    backend: Backend,
    pub(crate) url: String,
    admin: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

const DATABASE: &str = "bf_scale";

impl Fresh {
    pub(crate) fn new(backend: Backend) -> Result<Self, AnyError> {
        let (admin, url) = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir()?;
                let url = dir.path().join("scale.sqlite3").display().to_string();
                return Ok(Fresh {
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
        let fresh = Fresh {
            backend,
            url,
            admin: Some(admin.to_owned()),
            _dir: None,
        };
        fresh.admin_execute(&format!("DROP DATABASE IF EXISTS {DATABASE}"))?;
        fresh.admin_execute(&format!("CREATE DATABASE {DATABASE}"))?;
        Ok(fresh)
    }

    /// One statement on the server's admin database (PostgreSQL runs a multi-statement string
    /// as a transaction, where DROP DATABASE cannot run).
    fn admin_execute(&self, sql: &str) -> Result<(), AnyError> {
        let Some(admin) = &self.admin else {
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

impl Fresh {
    /// Leaves the database in place (for EXPLAIN by hand); returns where it is.
    fn keep(mut self) -> String {
        self.admin = None;
        if let Some(dir) = self._dir.take() {
            let _ = dir.keep();
        }
        self.url.clone()
    }
}

impl Drop for Fresh {
    fn drop(&mut self) {
        let _ = self.admin_execute(&format!("DROP DATABASE IF EXISTS {DATABASE}"));
    }
}

/// Runs the cases on `backend` and prints the table.
pub(crate) fn run(
    backend: Backend,
    sizes: Option<&[String]>,
    repeat: usize,
    explain: bool,
    keep: bool,
) -> Result<(), AnyError> {
    let cases = cases(backend, sizes)?;
    let last = cases.len() - 1;
    let repeat = repeat.max(1);
    println!(
        "backend: {backend:?}; background of type `noop` on queue `default`; ops/s and latency: \
         median of {repeat} runs; reads: median of 200 (due read, idle poll) and 20 (operators' \
         queries) executions\n"
    );
    let mut rows = Vec::new();
    for (index, case) in cases.into_iter().enumerate() {
        eprintln!("{}: filling and measuring ...", case.label());
        let fresh = Fresh::new(backend)?;
        if explain {
            println!("\n### {}", case.label());
        }
        let measured = match backend {
            Backend::Postgres => measure::<PgConnection>(&fresh.url, case, repeat, explain)?,
            Backend::Mysql => measure::<MysqlConnection>(&fresh.url, case, repeat, explain)?,
            Backend::Sqlite => measure::<SqliteConnection>(&fresh.url, case, repeat, explain)?,
        };
        eprintln!(
            "{}: fill {:.1} s, {:.0} ops/s",
            case.label(),
            measured.fill.as_secs_f64(),
            measured.ops_per_s
        );
        rows.push(measured);
        if keep && index == last {
            eprintln!("kept: {} (drop it by hand)", fresh.keep());
        }
    }
    print_table(&rows);
    Ok(())
}

fn print_table(rows: &[Measured]) {
    let base = rows
        .iter()
        .find(|row| row.case.size == 0 && row.case.analyze)
        .map(|row| row.ops_per_s);
    print!("| B | fill s | ANALYZE s | ops/s | × B = 0 analyzed | latency p50 / p99 ms | due read ms | idle poll ms |");
    for name in OPERATOR_QUERIES {
        print!(" {name} ms |");
    }
    println!();
    print!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for _ in OPERATOR_QUERIES {
        print!("---:|");
    }
    println!();
    for row in rows {
        let ratio = base.map_or("–".to_owned(), |base| {
            format!("{:.2}", row.ops_per_s / base)
        });
        let analyze = row.analyze.map_or("–".to_owned(), |took| {
            format!("{:.2}", took.as_secs_f64())
        });
        print!(
            "| {} | {:.1} | {analyze} | {:.0} | {ratio} | {:.1} / {:.1} | {:.3} | {:.3} |",
            row.case.label(),
            row.fill.as_secs_f64(),
            row.ops_per_s,
            row.p50_ms,
            row.p99_ms,
            row.due_ms,
            row.idle_ms,
        );
        for ms in &row.operators_ms {
            print!(" {ms:.3} |");
        }
        println!();
    }
}
