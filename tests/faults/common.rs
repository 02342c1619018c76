//! What the fault tests share: the `record` action, the worker's pool (a short
//! `connection_timeout`, so that `pool.get()` fails fast during an outage), the backend-specific
//! SQL for finding and killing the worker's sessions, bounded waits, and the final checks.

// Most of this serves the server backends' tests only.
#![cfg_attr(not(any(feature = "postgres", feature = "mysql")), allow(dead_code))]

use std::collections::HashSet;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use batchframework_diesel::registry::{
    action_fn, ActionContext, ActionError, ActionGroup, Registry,
};
use batchframework_diesel::worker::{WorkerHandle, WorkerStats};
use batchframework_diesel::{OperationFilter, OperationResult, Status};
use batchframework_tests::TestBackend;
use diesel::connection::SimpleConnection;
use diesel::r2d2::{ConnectionManager, Pool};
use serde_json::json;

/// How long `pool.get()` waits for a connection: short, so that a worker thread asking for
/// one during an outage hears "no" quickly and backs off.
pub(crate) const CONNECTION_TIMEOUT: Duration = Duration::from_secs(2);

/// How long each run of `record` lasts after its insert: enough for a drain of a few thousand
/// operations to last seconds, so that faults land in the middle of it, and a window in which a
/// connection can die between an action's write and its result.
pub(crate) const PAUSE: Duration = Duration::from_millis(4);

/// `stats.reconnects`: the one place the suite reads the field the worker's outage handling
/// added to [`WorkerStats`].
pub(crate) fn reconnects(stats: &WorkerStats) -> usize {
    stats.reconnects
}

/// What the fault tests need of a backend beyond [`TestBackend`]: fallible queries (the
/// database may be gone), and its sessions.
pub(crate) trait FaultBackend: TestBackend {
    /// Whether a started worker LISTENs for new work (and may poll rarely).
    const LISTENS: bool;
    /// The port when the URL names none.
    const DEFAULT_PORT: u16;
    /// The statement that returns this session's id as `v`.
    const SESSION_ID: &'static str;

    /// Runs a query whose single column is a nullable BIGINT named `v`.
    fn try_i64s(conn: &mut Self::Connection, sql: &str) -> diesel::QueryResult<Vec<Option<i64>>>;

    /// The URL the worker's pool uses, marked with `tag` where the backend can show it in its
    /// session list (PostgreSQL's `application_name`).
    fn tagged(url: &str, tag: &str) -> String {
        let _ = tag;
        url.to_owned()
    }

    /// `url` without TLS, so that a forwarder's reply trap can read the statements.
    fn plaintext(url: &str) -> String {
        url.to_owned()
    }

    /// The sessions of the worker whose pool uses `tagged(url, tag)`, other than the caller's.
    fn sessions_sql(url: &str, tag: &str) -> String;

    /// Ends session `id` from another session, as an administrator (or a failover) would.
    fn kill(conn: &mut Self::Connection, id: i64);
}

#[derive(diesel::QueryableByName)]
struct Row {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
    v: Option<i64>,
}

fn values(rows: Vec<Row>) -> Vec<Option<i64>> {
    rows.into_iter().map(|row| row.v).collect()
}

#[cfg(feature = "postgres")]
impl FaultBackend for batchframework_tests::Postgres {
    const LISTENS: bool = true;
    const DEFAULT_PORT: u16 = 5432;
    const SESSION_ID: &'static str = "SELECT pg_backend_pid()::bigint AS v";

    fn try_i64s(conn: &mut Self::Connection, sql: &str) -> diesel::QueryResult<Vec<Option<i64>>> {
        use diesel::RunQueryDsl;
        diesel::sql_query(sql).load::<Row>(conn).map(values)
    }

    fn tagged(url: &str, tag: &str) -> String {
        let separator = if url.contains('?') { '&' } else { '?' };
        format!("{url}{separator}application_name={tag}")
    }

    fn plaintext(url: &str) -> String {
        let separator = if url.contains('?') { '&' } else { '?' };
        format!("{url}{separator}sslmode=disable")
    }

    fn sessions_sql(_url: &str, tag: &str) -> String {
        format!(
            "SELECT pid::bigint AS v FROM pg_stat_activity \
             WHERE application_name = '{tag}' AND pid <> pg_backend_pid()"
        )
    }

    fn kill(conn: &mut Self::Connection, id: i64) {
        Self::try_i64s(
            conn,
            &format!(
                "SELECT (CASE WHEN pg_terminate_backend({id}) THEN 1 ELSE 0 END)::bigint AS v"
            ),
        )
        .unwrap_or_else(|e| panic!("pg_terminate_backend({id}): {e}"));
    }
}

#[cfg(feature = "mysql")]
impl FaultBackend for batchframework_tests::Mysql {
    const LISTENS: bool = false;
    const DEFAULT_PORT: u16 = 3306;
    const SESSION_ID: &'static str = "SELECT CAST(CONNECTION_ID() AS SIGNED) AS v";

    fn try_i64s(conn: &mut Self::Connection, sql: &str) -> diesel::QueryResult<Vec<Option<i64>>> {
        use diesel::RunQueryDsl;
        diesel::sql_query(sql).load::<Row>(conn).map(values)
    }

    /// Every session on the test's own database is the worker's, but the caller's.
    fn sessions_sql(url: &str, _tag: &str) -> String {
        let path = url.split("://").nth(1).unwrap_or(url);
        let database = path
            .split_once('/')
            .map_or("", |(_, rest)| rest.split('?').next().unwrap_or(rest));
        format!(
            "SELECT CAST(ID AS SIGNED) AS v FROM information_schema.PROCESSLIST \
             WHERE DB = '{database}' AND ID <> CONNECTION_ID() AND COMMAND <> 'Killed'"
        )
    }

    fn kill(conn: &mut Self::Connection, id: i64) {
        // The session may have ended on its own meanwhile: "Unknown thread id" is fine.
        let _ = conn.batch_execute(&format!("KILL {id}"));
    }
}

#[cfg(feature = "sqlite")]
impl FaultBackend for batchframework_tests::Sqlite {
    const LISTENS: bool = false;
    const DEFAULT_PORT: u16 = 0;
    const SESSION_ID: &'static str = "SELECT 0 AS v";

    fn try_i64s(conn: &mut Self::Connection, sql: &str) -> diesel::QueryResult<Vec<Option<i64>>> {
        use diesel::RunQueryDsl;
        diesel::sql_query(sql).load::<Row>(conn).map(values)
    }

    fn sessions_sql(_url: &str, _tag: &str) -> String {
        panic!("SQLite has no server sessions")
    }

    fn kill(_conn: &mut Self::Connection, _id: i64) {
        panic!("SQLite has no server sessions")
    }
}

/// One number from a query that must work (the test's own connection, never cut).
pub(crate) fn count<B: FaultBackend>(conn: &mut B::Connection, sql: &str) -> i64 {
    B::try_i64s(conn, sql)
        .unwrap_or_else(|e| panic!("`{sql}` failed: {e}"))
        .first()
        .copied()
        .flatten()
        .unwrap_or(0)
}

/// Rows in `executions`: one per run of `record`.
pub(crate) const EXECUTIONS: &str = "SELECT COUNT(*) AS v FROM executions";

/// Operations finished (successful or not).
pub(crate) const FINISHED: &str =
    "SELECT COUNT(*) AS v FROM batchframework_batchoperation WHERE status = 'finished'";

/// The worker thread each run of `record` ran on, and the database session it ran on there,
/// latest first seen per thread: how the tests tell the worker threads' sessions from the
/// keeper's.
#[derive(Debug, Default)]
pub(crate) struct Sessions(Mutex<Vec<(ThreadId, i64)>>);

impl Sessions {
    fn record(&self, session: i64) {
        let thread = std::thread::current().id();
        let mut seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match seen.iter_mut().find(|(t, _)| *t == thread) {
            Some(entry) => entry.1 = session,
            None => seen.push((thread, session)),
        }
    }

    /// Each worker thread's latest session, in the order the threads first ran an action.
    pub(crate) fn threads(&self) -> Vec<i64> {
        let seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        seen.iter().map(|(_, session)| *session).collect()
    }
}

/// The `record` group: each run inserts its operation's id into `executions`, notes its
/// session in `sessions` (if given), and then waits `pause`.
pub(crate) fn registry<B: FaultBackend>(
    pause: Duration,
    sessions: Option<Arc<Sessions>>,
) -> Arc<Registry<B::Connection>> {
    let record = move |ctx: &mut ActionContext<'_, B::Connection>| {
        let id = ctx.operation().id();
        ctx.conn()
            .batch_execute(&format!(
                "INSERT INTO executions (operation_id) VALUES ({id})"
            ))
            .map_err(ActionError::from)?;
        if let Some(sessions) = &sessions {
            let session = B::try_i64s(ctx.conn(), B::SESSION_ID).map_err(ActionError::from)?;
            sessions.record(session.first().copied().flatten().unwrap_or(0));
        }
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
        Ok(json!(id))
    };
    Arc::new(
        Registry::builder()
            .group(
                ActionGroup::new("record")
                    .asynchronous()
                    .action(action_fn("record", record)),
            )
            .build()
            .unwrap(),
    )
}

/// The worker's pool: `size` connections to `url`, and a `pool.get()` that gives up after
/// [`CONNECTION_TIMEOUT`]. Built without waiting for its connections (the database may be
/// down).
pub(crate) fn pool<B: TestBackend>(url: &str, size: u32) -> Pool<ConnectionManager<B::Connection>> {
    Pool::builder()
        .max_size(size)
        .connection_timeout(CONNECTION_TIMEOUT)
        .build_unchecked(ConnectionManager::new(url))
}

/// A name for this test's sessions that no other test uses.
pub(crate) fn unique_tag() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("bf_faults_{}_{nanos}", std::process::id())
}

/// Waits until `done` holds, polling every 10 ms; panics with `what` after `timeout`.
/// Returns how long it took.
pub(crate) fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    started.elapsed()
}

/// Waits until `expected` operations are finished; after `timeout`, panics with what is not
/// finished and what the worker says of itself.
pub(crate) fn wait_for_finished<B: FaultBackend>(
    conn: &mut B::Connection,
    handle: &WorkerHandle,
    expected: usize,
    timeout: Duration,
) -> Duration {
    let started = Instant::now();
    while count::<B>(conn, FINISHED) != expected as i64 {
        if started.elapsed() > timeout {
            let now = chrono::Utc::now();
            let unfinished: Vec<String> = OperationFilter::new()
                .load(conn)
                .unwrap()
                .iter()
                .filter(|op| op.status() != Status::Finished)
                .map(|op| {
                    format!(
                        "#{} {:?} attempts {} locked_by {:?} claimed {:?} ago, heartbeat {:?} ago",
                        op.id(),
                        op.status(),
                        op.attempts(),
                        op.locked_by(),
                        op.started_running_datetime().map(|t| now - t),
                        op.heartbeat_datetime().map(|t| now - t)
                    )
                })
                .collect();
            panic!(
                "timed out after {timeout:?} waiting for {expected} operations to finish; \
                 worker: stopping {}, {} threads idle, {:?}; not finished: {unfinished:#?}",
                handle.is_stopping(),
                handle.idle_threads(),
                handle.stats()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    started.elapsed()
}

/// `url` with its host and port replaced by `through`, and the address it named, resolved
/// (the forwarder's target).
pub(crate) fn redirect(url: &str, through: SocketAddr, default_port: u16) -> (String, SocketAddr) {
    let start = url.find("://").map_or(0, |i| i + 3);
    let end = url[start..]
        .find(['/', '?'])
        .map_or(url.len(), |i| start + i);
    let authority = &url[start..end];
    let host_start = authority.rfind('@').map_or(0, |i| i + 1);
    let host_port = &authority[host_start..];
    let (host, port) = match host_port.rsplit_once(':') {
        Some((host, port)) => (host, port.parse().expect("a port number")),
        None => (host_port, default_port),
    };
    let target = (host, port)
        .to_socket_addrs()
        .unwrap_or_else(|e| panic!("cannot resolve {host}: {e}"))
        .find(|address| address.is_ipv4())
        .unwrap_or_else(|| panic!("{host} has no IPv4 address"));
    let redirected = format!(
        "{}{}{through}{}",
        &url[..start],
        &authority[..host_start],
        &url[end..]
    );
    (redirected, target)
}

/// What the final check found.
#[derive(Debug)]
pub(crate) struct Tally {
    /// Runs of `record` in all.
    pub(crate) executions: i64,
    /// Operations that ran twice.
    pub(crate) twice: i64,
}

/// Every one of the `expected` operations is `finished` and `successful` (none `running` or
/// `unprocessed`), ran at least once and at most twice; no run is of an operation that no
/// longer exists.
pub(crate) fn check_every_operation_finished_once<B: FaultBackend>(
    conn: &mut B::Connection,
    expected: usize,
) -> Tally {
    let all = OperationFilter::new().load(conn).unwrap();
    assert_eq!(all.len(), expected, "operations in the table");
    let wrong: Vec<String> = all
        .iter()
        .filter(|op| (op.status(), op.result()) != (Status::Finished, OperationResult::Successful))
        .map(|op| {
            format!(
                "#{} {:?}/{:?} attempts {} locked_by {:?} output {}",
                op.id(),
                op.status(),
                op.result(),
                op.attempts(),
                op.locked_by(),
                op.output_data_json()
            )
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {expected} operations are not finished successful; the first: {:#?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
    let never = count::<B>(
        conn,
        "SELECT COUNT(*) AS v FROM batchframework_batchoperation o \
         WHERE NOT EXISTS (SELECT 1 FROM executions e WHERE e.operation_id = o.id)",
    );
    assert_eq!(never, 0, "operations finished without a run");
    let thrice = count::<B>(
        conn,
        "SELECT COUNT(*) AS v FROM (SELECT operation_id FROM executions \
         GROUP BY operation_id HAVING COUNT(*) > 2) t",
    );
    assert_eq!(thrice, 0, "operations that ran more than twice");
    let twice = count::<B>(
        conn,
        "SELECT COUNT(*) AS v FROM (SELECT operation_id FROM executions \
         GROUP BY operation_id HAVING COUNT(*) = 2) t",
    );
    let strays = count::<B>(
        conn,
        "SELECT COUNT(*) AS v FROM executions e WHERE NOT EXISTS \
         (SELECT 1 FROM batchframework_batchoperation o WHERE o.id = e.operation_id)",
    );
    assert_eq!(strays, 0, "runs of operations that are not in the table");
    Tally {
        executions: count::<B>(conn, EXECUTIONS),
        twice,
    }
}

/// The worker's sessions other than the test's own, and other than `gone` (killed; MariaDB may
/// list a killed session for a moment).
pub(crate) fn worker_sessions<B: FaultBackend>(
    conn: &mut B::Connection,
    url: &str,
    tag: &str,
    gone: &HashSet<i64>,
) -> Vec<i64> {
    B::try_i64s(conn, &B::sessions_sql(url, tag))
        .unwrap_or_else(|e| panic!("list the worker's sessions: {e}"))
        .into_iter()
        .flatten()
        .filter(|id| !gone.contains(id))
        .collect()
}
