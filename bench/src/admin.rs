//! Admin benchmark: are the operators' reads and the history prune fast enough on a table with a
//! long history? An admin page or `batchframework status` must answer in well under a second
//! however much history the table holds, and a prune must never hold its locks long enough to
//! stall the workers.
//!
//! A fresh, migrated database (`bf_scale` on the local servers, as `--scale` uses, or a temporary
//! SQLite file) is filled in SQL on the server with 1,000,000 finished operations (created over
//! the 30 days up to a minute ago, each ran a second, every 101st failed: 9,900, just under 1%)
//! and 10,000 pending ones due now (created over the hour up to a minute ago, half immediate,
//! half delayed until 30 s after their creation), all spread evenly over 3 queues and 5 types,
//! then analyzed. Then, in this order:
//!
//! * `admin::queue_overview(conn, 1000)` (what `batchframework status` shows): median and max
//!   of 5 runs, the first one cold;
//! * the first page of a list, `OperationFilter::new().limit(50)` (newest first), and the first
//!   page filtered by type, by failure (`status(Finished).result(Failed)`), by queue and by
//!   creation in the last hour: median of 5 runs each;
//! * `Prune::finished_before(now + 1s).run(conn)` with the default batch size, deleting all
//!   1,000,000 finished operations: rows per second over the whole call, and the longest single
//!   `DELETE` statement, timed from Diesel's `StartQuery` to its `FinishQuery` instrumentation
//!   event (that is how long one batch holds its row locks).
//!
//! Targets: the overview and the first page under 50 ms each (the filtered pages are held to
//! the same), the longest prune statement under 1 s. The machine is shared: compare within a
//! run, and rerun before believing a single slow figure.
//!
//! ```text
//! cargo run --release -p batchframework-bench -- --admin                     # PostgreSQL
//! cargo run --release -p batchframework-bench -- --admin --backend mysql
//! cargo run --release -p batchframework-bench -- --admin --backend sqlite
//! cargo run --release -p batchframework-bench -- --admin --admin-explain     # and the plans
//! ```
//!
//! `--admin-explain` also prints every statement one `queue_overview` sends, with its time, and
//! the plans of the statements behind it for one queue (`__private::query_plans`): on
//! PostgreSQL its `EXPLAIN (ANALYZE, FORMAT JSON)` rendered as the text format's tree, on
//! MySQL/MariaDB `EXPLAIN FORMAT=JSON`, on SQLite `EXPLAIN QUERY PLAN`, as returned.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use batchframework_diesel::admin::queue_overview;
use batchframework_diesel::{OperationFilter, OperationResult, Prune, Status};
use diesel::connection::{Instrumentation, InstrumentationEvent};
use diesel::sql_types::Text;
use diesel::{MysqlConnection, PgConnection, QueryResult, RunQueryDsl, SqliteConnection};

use crate::scale::{median_ms, Fresh, Target, DAY_US, FILL_CHUNK, HOUR_US, MINUTE_US};
use crate::{AnyError, Backend};

/// Finished operations in the history.
const FINISHED: u64 = 1_000_000;
/// Pending operations, all due.
const PENDING: u64 = 10_000;
/// Runs per read; the median is reported (and, for the overview, the max).
const RUNS: usize = 5;
/// The limit passed to `queue_overview`, as `batchframework status` passes it.
const OVERVIEW_LIMIT: u64 = 1_000;
/// The targets, in milliseconds.
const READ_TARGET_MS: f64 = 50.0;
const PRUNE_STATEMENT_TARGET_MS: f64 = 1_000.0;

/// The queues and types the rows are spread over: row `g` is on `QUEUES[g % 3]` and of type
/// `TYPES[g % 5]` (3 and 5 are coprime, so every pair gets the same share), and a finished row
/// failed when `g % 101 = 0` (101 is coprime with both, so failures are spread over every pair
/// rather than falling on one type).
const QUEUES: [&str; 3] = ["default", "emails", "reports"];
const TYPES: [&str; 5] = ["import", "export", "send-email", "thumbnail", "report"];
/// The queue and type the filtered pages use (and the type the plans use).
const QUEUE: &str = "reports";
const TYPE: &str = "report";

/// `CASE g % n WHEN 0 THEN 'a' ... ELSE 'z' END`: the value of row `g` in `values`.
fn pick(values: &[&str]) -> String {
    let mut sql = format!("CASE g % {}", values.len());
    for (index, value) in values.iter().enumerate() {
        if index + 1 == values.len() {
            let _ = write!(sql, " ELSE '{value}' END");
        } else {
            let _ = write!(sql, " WHEN {index} THEN '{value}'");
        }
    }
    sql
}

/// Which rows a fill statement writes, in `--scale`'s columns (`scale::FILL_COLUMNS`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Rows {
    Finished,
    Pending,
}

impl Rows {
    fn count(self) -> u64 {
        match self {
            Rows::Finished => FINISHED,
            Rows::Pending => PENDING,
        }
    }

    /// The SELECT list for row `g`, with `ts(expr_us)` turning microseconds from now into the
    /// backend's timestamp.
    fn select(self, ts: impl Fn(String) -> String) -> String {
        let n = self.count() as i64;
        let second = 1_000_000;
        let (queue, operation_type) = (pick(&QUEUES), pick(&TYPES));
        match self {
            Rows::Finished => {
                let created = format!("{} + g * {}", -MINUTE_US - 30 * DAY_US, 30 * DAY_US / n);
                format!(
                    "{}, {}, {}, {operation_type}, 'finished', \
                     CASE WHEN g % 101 = 0 THEN 'failed' ELSE 'successful' END, \
                     {queue}, 0, NULL, 1, 1",
                    ts(created.clone()),
                    ts(format!("{created} + {second}")),
                    ts(format!("{created} + {}", 2 * second)),
                )
            }
            Rows::Pending => {
                let created = format!("{} + g * {}", -MINUTE_US - HOUR_US, HOUR_US / n);
                format!(
                    "{}, NULL, NULL, {operation_type}, 'unprocessed', 'not-available', \
                     {queue}, 0, CASE WHEN g % 2 = 0 THEN NULL ELSE {} END, 0, 1",
                    ts(created.clone()),
                    ts(format!("{created} + {}", 30 * second)),
                )
            }
        }
    }
}

/// What differs per backend, beyond what `--scale` already knows.
trait Admin: Target {
    /// The database server and its version, for the table's heading.
    fn server(conn: &mut Self) -> QueryResult<String>;
    /// The library's plans of its cheap-at-scale statements for `operation_type` on `queue`.
    fn library_plans(
        conn: &mut Self,
        queue: &str,
        operation_type: &str,
    ) -> QueryResult<Vec<(&'static str, String)>>;
    /// Whether the plans are PostgreSQL's JSON, to be rendered as its text format.
    const PG_JSON_PLANS: bool = false;
    /// What the server says, having run it, of the overview's step past the first queue to the
    /// next queue with finished work (sent as the library sends it: a prepared statement with
    /// the queue and the limit bound), where the backend can say more than its plan.
    fn step_past_queue(conn: &mut Self, queue: &str) -> QueryResult<Option<String>> {
        let _ = (conn, queue);
        Ok(None)
    }
}

/// The overview's step from `queue` to the next queue with finished work, as the library
/// writes it on MySQL/MariaDB.
const STEP_PAST_QUEUE_MYSQL: &str = "SELECT min(`batchframework_batchoperation`.`queue`) \
     FROM `batchframework_batchoperation` WHERE (`status` = 'finished' AND `queue` > ?)";

/// A row of `ANALYZE FORMAT=JSON` (MariaDB).
#[derive(diesel::QueryableByName)]
struct Analyzed {
    #[diesel(sql_type = Text, column_name = "ANALYZE")]
    plan: String,
}

/// A row of `SHOW SESSION STATUS`.
#[derive(diesel::QueryableByName)]
struct StatusRow {
    #[diesel(sql_type = Text, column_name = "Variable_name")]
    name: String,
    #[diesel(sql_type = Text, column_name = "Value")]
    value: String,
}

/// One text column of one row.
fn text(sql: &str) -> diesel::dsl::select<diesel::expression::SqlLiteral<Text>> {
    diesel::select(diesel::dsl::sql::<Text>(sql))
}

impl Admin for PgConnection {
    const PG_JSON_PLANS: bool = true;

    fn server(conn: &mut Self) -> QueryResult<String> {
        Ok(format!(
            "PostgreSQL {}",
            text("current_setting('server_version')").get_result::<String>(conn)?
        ))
    }

    fn library_plans(
        conn: &mut Self,
        queue: &str,
        operation_type: &str,
    ) -> QueryResult<Vec<(&'static str, String)>> {
        batchframework_diesel::__private::query_plans::<diesel::pg::Pg>(
            conn,
            queue,
            operation_type,
            chrono::Utc::now(),
        )
    }
}

impl Admin for MysqlConnection {
    fn server(conn: &mut Self) -> QueryResult<String> {
        let version: String = text("VERSION()").get_result(conn)?;
        let name = if version.contains("MariaDB") {
            "MariaDB"
        } else {
            "MySQL"
        };
        Ok(format!("{name} {version}"))
    }

    fn library_plans(
        conn: &mut Self,
        queue: &str,
        operation_type: &str,
    ) -> QueryResult<Vec<(&'static str, String)>> {
        batchframework_diesel::__private::query_plans::<diesel::mysql::Mysql>(
            conn,
            queue,
            operation_type,
            chrono::Utc::now(),
        )
    }

    /// Its time and row reads as a prepared statement, and MariaDB's `ANALYZE FORMAT=JSON`
    /// (MySQL has no such statement: then the time and reads alone).
    fn step_past_queue(conn: &mut Self, queue: &str) -> QueryResult<Option<String>> {
        let step = || diesel::sql_query(STEP_PAST_QUEUE_MYSQL).bind::<Text, _>(queue.to_owned());
        let before = handler_reads(conn)?;
        let started = Instant::now();
        step().execute(conn)?;
        let took = started.elapsed();
        let after = handler_reads(conn)?;
        let mut out = format!(
            "{STEP_PAST_QUEUE_MYSQL}\n-- binds: [{queue:?}]; {:.3} ms; handler reads:",
            took.as_secs_f64() * 1000.0
        );
        for ((name, was), (_, is)) in before.iter().zip(&after) {
            if is != was {
                let _ = write!(out, " {name} {}", is - was);
            }
        }
        let analyzed: QueryResult<Vec<Analyzed>> =
            diesel::sql_query(format!("ANALYZE FORMAT=JSON {STEP_PAST_QUEUE_MYSQL}"))
                .bind::<Text, _>(queue.to_owned())
                .load(conn);
        if let Ok(analyzed) = analyzed {
            for row in analyzed {
                let _ = write!(out, "\n{}", row.plan);
            }
        }
        Ok(Some(out))
    }
}

/// The session's `Handler_read_*` counters (MySQL/MariaDB).
fn handler_reads(conn: &mut MysqlConnection) -> QueryResult<Vec<(String, i64)>> {
    let rows: Vec<StatusRow> =
        diesel::sql_query("SHOW SESSION STATUS LIKE 'Handler_read%'").load(conn)?;
    Ok(rows
        .into_iter()
        .map(|row| (row.name, row.value.parse().unwrap_or(0)))
        .collect())
}

impl Admin for SqliteConnection {
    fn server(conn: &mut Self) -> QueryResult<String> {
        Ok(format!(
            "SQLite {}",
            text("sqlite_version()").get_result::<String>(conn)?
        ))
    }

    fn library_plans(
        conn: &mut Self,
        queue: &str,
        operation_type: &str,
    ) -> QueryResult<Vec<(&'static str, String)>> {
        batchframework_diesel::__private::query_plans::<diesel::sqlite::Sqlite>(
            conn,
            queue,
            operation_type,
            chrono::Utc::now(),
        )
    }
}

/// One statement as the connection's instrumentation saw it: the start of its text (SQL, then
/// binds) and the time from `StartQuery` to `FinishQuery`.
struct Statement {
    sql: String,
    took: Duration,
}

impl Statement {
    /// Whether it deletes (the prune's batches; a prune's other statements only read).
    fn deletes(&self) -> bool {
        let sql = self.sql.trim_start().to_ascii_uppercase();
        sql.starts_with("DELETE") || (sql.starts_with("WITH") && sql.contains("DELETE"))
    }
}

#[derive(Default)]
struct Recording {
    on: bool,
    started: Option<(String, Instant)>,
    statements: Vec<Statement>,
}

/// Times each statement a connection sends while on; does nothing while off, so the timed reads
/// pay only for an uncontended lock.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Recording>>);

/// How much of a statement's text is kept: enough to tell the statements apart, little enough
/// that a `DELETE` with 10,000 bound ids is not printed whole for each batch.
const KEPT_CHARS: usize = 400;

/// A `fmt::Write` that keeps the first `KEPT_CHARS` characters and then fails, which stops the
/// formatting of the rest.
struct Prefix(String);

impl std::fmt::Write for Prefix {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let room = KEPT_CHARS.saturating_sub(self.0.chars().count());
        if s.chars().count() <= room {
            self.0.push_str(s);
            Ok(())
        } else {
            self.0.extend(s.chars().take(room));
            Err(std::fmt::Error)
        }
    }
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
                    let mut sql = Prefix(String::new());
                    let _ = write!(sql, "{query}");
                    // Taken after the text is formatted: the statement's own time only.
                    recording.started = Some((sql.0, Instant::now()));
                }
                InstrumentationEvent::FinishQuery { .. } => {
                    if let Some((sql, at)) = recording.started.take() {
                        let took = at.elapsed();
                        recording.statements.push(Statement { sql, took });
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

    fn stop(&self) -> Vec<Statement> {
        self.0
            .lock()
            .map(|mut recording| {
                recording.on = false;
                std::mem::take(&mut recording.statements)
            })
            .unwrap_or_default()
    }
}

/// Times `RUNS` runs of `f`.
fn times<C, T>(
    conn: &mut C,
    mut f: impl FnMut(&mut C) -> batchframework_diesel::Result<T>,
) -> Result<Vec<Duration>, AnyError> {
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let started = Instant::now();
        f(conn)?;
        times.push(started.elapsed());
    }
    Ok(times)
}

/// The list pages measured, by label.
fn pages(now: chrono::DateTime<chrono::Utc>) -> Vec<(String, OperationFilter)> {
    let page = OperationFilter::new().limit(50);
    vec![
        ("first page: `limit(50)`".to_owned(), page.clone()),
        (
            format!("`operation_type(\"{TYPE}\")`"),
            page.clone().operation_type(TYPE),
        ),
        (
            "`status(Finished).result(Failed)`".to_owned(),
            page.clone()
                .status(Status::Finished)
                .result(OperationResult::Failed),
        ),
        (format!("`queue(\"{QUEUE}\")`"), page.clone().queue(QUEUE)),
        (
            "`created_after(now - 1 h)`".to_owned(),
            page.created_after(now - chrono::Duration::hours(1)),
        ),
    ]
}

/// Everything measured on one backend.
struct Measured {
    server: String,
    fill: Duration,
    analyze: Duration,
    overview_median_ms: f64,
    overview_max_ms: f64,
    overview_statements: usize,
    again_median_ms: f64,
    again_max_ms: f64,
    overview_queues: usize,
    pages_ms: Vec<(String, f64)>,
    pruned: u64,
    prune: Duration,
    prune_deletes: usize,
    prune_statements: usize,
    longest_delete: Duration,
    longest_statement: Duration,
}

/// Fills the database at `url` and measures it.
fn measure<C: Admin>(url: &str, explain: bool) -> Result<Measured, AnyError> {
    let mut conn = C::establish(url)?;
    if !C::SETUP.is_empty() {
        conn.batch_execute(C::SETUP)?;
    }
    let recorder = Recorder::default();
    conn.set_instrumentation(recorder.instrumentation());
    batchframework_diesel::run_migrations(&mut conn)?;
    let server = C::server(&mut conn)?;

    let now_us = chrono::Utc::now().timestamp_micros();
    let started = Instant::now();
    for rows in [Rows::Finished, Rows::Pending] {
        let mut lo = 1;
        while lo <= rows.count() {
            let hi = (lo + FILL_CHUNK - 1).min(rows.count());
            let select = rows.select(|us| C::timestamp_sql(&us, now_us));
            conn.batch_execute(&C::insert_numbered_sql(&select, lo, hi))?;
            lo = hi + 1;
        }
    }
    let fill = started.elapsed();
    let total = OperationFilter::new().count(&mut conn)?;
    let failed = OperationFilter::new()
        .result(OperationResult::Failed)
        .count(&mut conn)?;
    if total != (FINISHED + PENDING) as i64 || failed != (FINISHED / 101) as i64 {
        return Err(format!("filled {total} rows ({failed} failed)").into());
    }
    let started = Instant::now();
    conn.batch_execute(C::ANALYZE)?;
    let analyze = started.elapsed();

    // 1. The overview; then once more, recorded, to count (and with --admin-explain show) the
    // statements it sends.
    let mut overview = times(&mut conn, |conn| queue_overview(conn, OVERVIEW_LIMIT))?;
    let overview_max_ms = overview
        .iter()
        .max()
        .map_or(f64::NAN, |max| max.as_secs_f64() * 1000.0);
    overview.sort();
    let overview_median_ms = median_ms(overview);
    recorder.start();
    let queues = queue_overview(&mut conn, OVERVIEW_LIMIT)?;
    let statements = recorder.stop();
    let overview_statements = statements.len();
    if queues.len() != QUEUES.len() {
        return Err(format!("the overview shows {} queues, not 3", queues.len()).into());
    }
    if explain {
        println!("\n{server}: the statements of one `queue_overview({OVERVIEW_LIMIT})`:\n");
        for statement in &statements {
            println!(
                "{:8.3} ms  {}",
                statement.took.as_secs_f64() * 1000.0,
                one_line(&statement.sql)
            );
        }
        println!("\nthe overview itself:\n");
        for queue in &queues {
            println!("{queue:?}");
        }
    }

    // 2. The list pages.
    let mut pages_ms = Vec::new();
    for (label, filter) in pages(chrono::Utc::now()) {
        let rows = filter.load(&mut conn)?;
        if rows.len() != 50 {
            return Err(format!("{label}: {} rows, not 50", rows.len()).into());
        }
        pages_ms.push((
            label,
            median_ms(times(&mut conn, |conn| filter.load(conn))?),
        ));
    }

    // 1b. The overview again, seconds later: whether its figure depends on how soon after the
    // bulk fill it runs.
    let mut again = times(&mut conn, |conn| queue_overview(conn, OVERVIEW_LIMIT))?;
    let again_max_ms = again
        .iter()
        .max()
        .map_or(f64::NAN, |max| max.as_secs_f64() * 1000.0);
    again.sort();
    let again_median_ms = median_ms(again);

    if explain {
        print_plans(&mut conn, &server, &recorder)?;
    }

    // 3. The prune of the whole history, every statement timed.
    recorder.start();
    let started = Instant::now();
    let pruned =
        Prune::finished_before(chrono::Utc::now() + chrono::Duration::seconds(1)).run(&mut conn)?;
    let prune = started.elapsed();
    let statements = recorder.stop();
    if pruned != FINISHED {
        return Err(format!("the prune deleted {pruned} operations, not {FINISHED}").into());
    }
    let left = OperationFilter::new().count(&mut conn)?;
    if left != PENDING as i64 {
        return Err(format!("{left} operations left after the prune, not {PENDING}").into());
    }
    let deletes: Vec<&Statement> = statements.iter().filter(|s| s.deletes()).collect();
    let longest = |statements: &mut dyn Iterator<Item = &Statement>| {
        statements.map(|s| s.took).max().unwrap_or(Duration::ZERO)
    };
    Ok(Measured {
        server,
        fill,
        analyze,
        overview_median_ms,
        overview_max_ms,
        overview_statements,
        again_median_ms,
        again_max_ms,
        overview_queues: queues.len(),
        pages_ms,
        pruned,
        prune,
        prune_deletes: deletes.len(),
        prune_statements: statements.len(),
        longest_delete: longest(&mut deletes.iter().copied()),
        longest_statement: longest(&mut statements.iter()),
    })
}

/// A statement on one line, whitespace collapsed.
fn one_line(sql: &str) -> String {
    sql.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The plans behind `queue_overview` for one queue, then those behind the list pages.
fn print_plans<C: Admin>(conn: &mut C, server: &str, recorder: &Recorder) -> Result<(), AnyError> {
    const OVERVIEW: [&str; 10] = [
        "next pending queue",
        "next running queue",
        "next finished queue",
        "count immediate",
        "count due delayed",
        "count not yet due",
        "count running",
        "oldest immediate",
        "oldest delayed",
        "recent successes",
    ];
    const LISTS: [&str; 2] = ["newest of a type", "created in the last hour"];
    // The first queue: the step past it to the next queue is the one that must not read its
    // operations (a third of the history) to find where the next queue starts.
    let queue = QUEUES[0];
    if let Some(step) = C::step_past_queue(conn, queue)? {
        println!("\n{server}: the step past queue `{queue}` to the next with finished work:\n");
        println!("{step}");
        // The same step inside the library's overview again, now: whether a slow step there
        // is the statement as the overview sends it, or the moment it ran.
        recorder.start();
        queue_overview(conn, OVERVIEW_LIMIT)?;
        println!("\nthe overview again, its statements over 1 ms:\n");
        for statement in recorder.stop().iter().filter(|s| s.took.as_millis() >= 1) {
            println!(
                "{:8.3} ms  {}",
                statement.took.as_secs_f64() * 1000.0,
                one_line(&statement.sql)
            );
        }
    }
    let plans = C::library_plans(conn, queue, TYPE)?;
    for (heading, names) in [
        ("behind `queue_overview`", &OVERVIEW[..]),
        ("behind the list pages", &LISTS[..]),
    ] {
        println!("\n{server}: plans {heading}, queue `{queue}`, type `{TYPE}`:\n");
        for (name, plan) in plans.iter().filter(|(name, _)| names.contains(name)) {
            let plan = if C::PG_JSON_PLANS {
                pg_text_plan(plan).unwrap_or_else(|| plan.clone())
            } else {
                plan.clone()
            };
            println!("-- {name}\n{}\n", plan.trim_end());
        }
    }
    Ok(())
}

/// PostgreSQL's `EXPLAIN (ANALYZE, FORMAT JSON)` as its text format shows it (the node lines,
/// their conditions and row counts, planning and execution time); `None` if it is not such a
/// plan.
fn pg_text_plan(json: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(json).ok()?;
    let top = value.as_array()?.first()?;
    let mut out = String::new();
    pg_node(top.get("Plan")?, 0, true, &mut out);
    for key in ["Planning Time", "Execution Time"] {
        if let Some(ms) = top.get(key).and_then(serde_json::Value::as_f64) {
            let _ = writeln!(out, "{key}: {ms:.3} ms");
        }
    }
    Some(out)
}

fn pg_node(node: &serde_json::Value, indent: usize, root: bool, out: &mut String) {
    let field = |key: &str| node.get(key).and_then(serde_json::Value::as_str);
    let number = |key: &str| node.get(key).and_then(serde_json::Value::as_f64);
    let mut head = field("Node Type").unwrap_or("?").to_owned();
    match (head.as_str(), field("Strategy"), field("Join Type")) {
        ("Aggregate", Some("Sorted"), _) => head = "GroupAggregate".to_owned(),
        ("Aggregate", Some("Hashed"), _) => head = "HashAggregate".to_owned(),
        ("Hash Join" | "Merge Join" | "Nested Loop", _, Some(join)) if join != "Inner" => {
            head = format!("{} {join} Join", head.trim_end_matches(" Join"));
        }
        ("ModifyTable", _, _) => head = field("Operation").unwrap_or("ModifyTable").to_owned(),
        _ => {}
    }
    if field("Scan Direction") == Some("Backward") {
        head.push_str(" Backward");
    }
    if let Some(index) = field("Index Name") {
        let _ = write!(head, " using {index}");
    }
    if let Some(relation) = field("Relation Name") {
        let _ = write!(head, " on {relation}");
        if let Some(alias) = field("Alias").filter(|alias| *alias != relation) {
            let _ = write!(head, " {alias}");
        }
    } else if let Some(alias) = field("Alias") {
        let _ = write!(head, " on {alias}");
    }
    let _ = write!(
        head,
        "  (cost={:.2}..{:.2} rows={} width={})",
        number("Startup Cost").unwrap_or(0.0),
        number("Total Cost").unwrap_or(0.0),
        number("Plan Rows").unwrap_or(0.0),
        number("Plan Width").unwrap_or(0.0),
    );
    if number("Actual Loops") == Some(0.0) {
        head.push_str(" (never executed)");
    } else if let Some(rows) = number("Actual Rows") {
        let _ = write!(
            head,
            " (actual time={:.3}..{:.3} rows={rows} loops={})",
            number("Actual Startup Time").unwrap_or(0.0),
            number("Actual Total Time").unwrap_or(0.0),
            number("Actual Loops").unwrap_or(0.0),
        );
    }
    let details = if root { 2 } else { indent + 6 };
    if root {
        let _ = writeln!(out, "{head}");
    } else {
        let _ = writeln!(out, "{:indent$}->  {head}", "");
    }
    for key in [
        "Index Cond",
        "Recheck Cond",
        "Hash Cond",
        "Merge Cond",
        "Join Filter",
        "Filter",
        "Rows Removed by Index Recheck",
        "Rows Removed by Filter",
        "Rows Removed by Join Filter",
        "Sort Key",
        "Group Key",
        "Sort Method",
        "Heap Fetches",
    ] {
        let Some(value) = node.get(key) else { continue };
        // As the text format: the counts of removed rows only where some were.
        if key.starts_with("Rows Removed") && value.as_f64() == Some(0.0) {
            continue;
        }
        let value = match value {
            serde_json::Value::String(text) => text.clone(),
            serde_json::Value::Array(items) => items
                .iter()
                .map(|item| item.as_str().map_or(item.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join(", "),
            other => other.to_string(),
        };
        let _ = writeln!(out, "{:details$}{key}: {value}", "");
    }
    for child in node
        .get("Plans")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
    {
        match child
            .get("Subplan Name")
            .and_then(serde_json::Value::as_str)
        {
            Some(name) => {
                let _ = writeln!(out, "{:details$}{name}", "");
                pg_node(child, details + 2, false, out);
            }
            None => pg_node(child, details, false, out),
        }
    }
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

/// Measures `backend` and prints its table.
pub(crate) fn run(backend: Backend, explain: bool) -> Result<(), AnyError> {
    eprintln!("{backend:?}: filling {FINISHED} finished and {PENDING} pending operations ...");
    let fresh = Fresh::new(backend)?;
    let m = match backend {
        Backend::Postgres => measure::<PgConnection>(&fresh.url, explain)?,
        Backend::Mysql => measure::<MysqlConnection>(&fresh.url, explain)?,
        Backend::Sqlite => measure::<SqliteConnection>(&fresh.url, explain)?,
    };
    drop(fresh);

    println!(
        "\n### {}: {}\n\n{} finished operations ({} failed) over 30 days and {PENDING} due \
         pending ones, on {} queues × {} types; filled in {:.1} s, analyzed in {:.2} s. Reads: \
         median of {RUNS} runs.\n",
        m.server,
        machine(),
        FINISHED,
        FINISHED / 101,
        QUEUES.len(),
        TYPES.len(),
        m.fill.as_secs_f64(),
        m.analyze.as_secs_f64(),
    );
    println!("| measured | figure | target | |");
    println!("|---|---:|---:|---|");
    println!(
        "| `queue_overview({OVERVIEW_LIMIT})`, {} queues, {} statements: median / max | {:.1} / {:.1} ms | < {READ_TARGET_MS:.0} ms | {} |",
        m.overview_queues,
        m.overview_statements,
        m.overview_median_ms,
        m.overview_max_ms,
        verdict(m.overview_median_ms, READ_TARGET_MS),
    );
    println!(
        "| the same, again after the list pages: median / max | {:.1} / {:.1} ms | < {READ_TARGET_MS:.0} ms | {} |",
        m.again_median_ms,
        m.again_max_ms,
        verdict(m.again_median_ms, READ_TARGET_MS),
    );
    for (label, ms) in &m.pages_ms {
        println!(
            "| list, {label} | {ms:.1} ms | < {READ_TARGET_MS:.0} ms | {} |",
            verdict(*ms, READ_TARGET_MS)
        );
    }
    println!(
        "| prune of {} finished ({} statements, {} of them DELETE) | {:.0} rows/s ({:.1} s) | | |",
        m.pruned,
        m.prune_statements,
        m.prune_deletes,
        m.pruned as f64 / m.prune.as_secs_f64(),
        m.prune.as_secs_f64(),
    );
    let longest_ms = m.longest_delete.as_secs_f64() * 1000.0;
    println!(
        "| longest prune DELETE (longest statement of any kind: {:.1} ms) | {longest_ms:.1} ms | < {PRUNE_STATEMENT_TARGET_MS:.0} ms | {} |",
        m.longest_statement.as_secs_f64() * 1000.0,
        verdict(longest_ms, PRUNE_STATEMENT_TARGET_MS),
    );
    Ok(())
}
