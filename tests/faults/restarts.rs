//! The database server itself restarted under running workers: a private PostgreSQL cluster
//! (`support/cluster.rs`; the shared test server is never restarted) holds 2,000 operations,
//! two worker processes of three threads each drain them as services do (started, not
//! `run_until_idle`), and the cluster is restarted three times during the drain: `pg_ctl
//! restart -m fast` (clients disconnected, a clean shutdown), `-m immediate` (a crash, then
//! recovery from the WAL) and `-m fast` again. The workers must ride through all three: never
//! exit on their own, finish every operation exactly once (at most one operation's run repeated
//! per interrupted attempt, never a third), and stop normally on SIGTERM, reporting their
//! reconnects.
//!
//! The worker processes are this test binary, re-run on the ignored test `faults::child_worker`;
//! each exits when its standard input closes, so none outlives a test that fails.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use batchframework_diesel::worker::Worker;
use batchframework_tests::cluster::{Cluster, StopMode};
use batchframework_tests::Postgres;
use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};

use super::common::{
    check_every_operation_finished_once, pool, reconnects, registry, wait_for, FaultBackend,
    EXECUTIONS, FINISHED, PAUSE,
};

const OPERATIONS: usize = 2_000;
const CHILD_THREADS: usize = 3;
const CHILD_READY: &str = "faults child worker ready";
const CHILD_STATS: &str = "faults child worker stats:";

/// A child worker process, and the lines it printed.
struct ChildWorker {
    child: Child,
    /// Its standard input, held open until the test stops it (`Child::wait` would close it).
    stdin: Option<std::process::ChildStdin>,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl ChildWorker {
    fn spawn(url: &str) -> ChildWorker {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "faults::child_worker",
                "--ignored",
                "--nocapture",
            ])
            .env("BF_FAULTS_CHILD_URL", url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let mut worker = ChildWorker {
            child,
            stdin,
            lines,
            seen: Vec::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !worker.seen.iter().any(|line| line.contains(CHILD_READY)) {
            let left = deadline.saturating_duration_since(Instant::now());
            match worker.lines.recv_timeout(left) {
                Ok(line) => worker.seen.push(line),
                Err(_) => panic!(
                    "the child worker was not ready: {:?}, printed {:?}",
                    worker.child.try_wait(),
                    worker.seen
                ),
            }
        }
        worker
    }

    /// Panics if the process has exited (on its own: only the test stops it).
    fn assert_alive(&mut self, when: &str) {
        if let Some(status) = self.child.try_wait().unwrap() {
            self.seen.extend(self.lines.try_iter());
            panic!(
                "a worker process exited on its own {when}: {status}; it printed {:#?}",
                self.seen
            );
        }
    }

    /// SIGTERM; it must exit 0. Returns its reconnects and its stats line.
    fn stop(mut self) -> (usize, String) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM failed");
        let exit = self.child.wait().unwrap();
        drop(self.stdin.take());
        // The reader thread ends with the output.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        assert!(
            exit.success(),
            "a worker process did not exit normally on SIGTERM: {exit}; it printed {:#?}",
            self.seen
        );
        let stats = self
            .seen
            .iter()
            .find_map(|line| {
                line.split_once(CHILD_STATS)
                    .map(|(_, rest)| rest.trim().to_owned())
            })
            .unwrap_or_else(|| panic!("no stats line in {:#?}", self.seen));
        let reconnects = stats
            .split_whitespace()
            .find_map(|word| word.strip_prefix("reconnects="))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no reconnects in {stats}"));
        (reconnects, stats)
    }
}

/// A connection to the cluster that comes back after a restart: a failed query (the server
/// went away under it) reads as `None`, and the next call connects again.
struct Watcher {
    url: String,
    conn: Option<PgConnection>,
}

impl Watcher {
    fn count(&mut self, sql: &str) -> Option<i64> {
        if self.conn.is_none() {
            self.conn = PgConnection::establish(&self.url).ok();
        }
        let conn = self.conn.as_mut()?;
        match Postgres::try_i64s(conn, sql) {
            Ok(values) => Some(values.first().copied().flatten().unwrap_or(0)),
            Err(_) => {
                self.conn = None;
                None
            }
        }
    }
}

pub(crate) fn three_restarts_during_a_drain() {
    let started = Instant::now();
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let url = cluster.url("postgres");
    let mut conn = PgConnection::establish(&url).unwrap();
    batchframework_diesel::run_migrations(&mut conn).unwrap();
    conn.batch_execute("CREATE TABLE executions (operation_id BIGINT NOT NULL)")
        .unwrap();
    let registry = registry::<Postgres>(PAUSE, None);
    crate::worker::queue_many::<Postgres>(&mut conn, &registry, "record", OPERATIONS);
    drop(conn);
    let set_up = started.elapsed();

    let mut children = [ChildWorker::spawn(&url), ChildWorker::spawn(&url)];
    let mut watcher = Watcher {
        url: url.clone(),
        conn: None,
    };
    let mut restarts = Vec::new();
    for (threshold, mode) in [
        (500, StopMode::Fast),
        (1_000, StopMode::Immediate),
        (1_500, StopMode::Fast),
    ] {
        wait_for(
            &format!("{threshold} runs"),
            Duration::from_secs(30),
            || {
                for child in &mut children {
                    child.assert_alive(&format!("before the restart at {threshold} runs"));
                }
                watcher
                    .count(EXECUTIONS)
                    .is_some_and(|runs| runs >= threshold)
            },
        );
        let finished = watcher.count(FINISHED).unwrap_or(0);
        assert!(
            finished < OPERATIONS as i64,
            "the drain ended before the restart at {threshold} runs"
        );
        let took = Instant::now();
        cluster.restart(mode);
        restarts.push(format!(
            "-m {mode:?} at {finished} finished took {:?}",
            took.elapsed()
        ));
    }
    let drained = wait_for(
        "every operation to finish after the restarts",
        Duration::from_secs(60),
        || {
            for child in &mut children {
                child.assert_alive("during the drain");
            }
            watcher.count(FINISHED) == Some(OPERATIONS as i64)
        },
    );
    let stopped: Vec<(usize, String)> = children.into_iter().map(ChildWorker::stop).collect();

    let mut conn = PgConnection::establish(&url).unwrap();
    let tally = check_every_operation_finished_once::<Postgres>(&mut conn, OPERATIONS);
    println!(
        "restarts: {restarts:?}; drained {drained:?} after the last; children: {stopped:#?}; \
         {} runs, {} operations ran twice; set-up {set_up:?}, {:?} in all",
        tally.executions,
        tally.twice,
        started.elapsed()
    );
    for (reconnects, stats) in &stopped {
        assert!(
            *reconnects >= 3,
            "a worker process reconnected fewer times than restarts: {stats}"
        );
    }
}

/// The worker process of [`three_restarts_during_a_drain`]: a started worker on
/// `BF_FAULTS_CHILD_URL` until SIGTERM, then its stats on one line.
pub(crate) fn child_worker() {
    let url = std::env::var("BF_FAULTS_CHILD_URL").expect("BF_FAULTS_CHILD_URL");
    // Exits when the test that started it is gone (its end of the pipe closes).
    std::thread::spawn(|| {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        eprintln!("faults child worker: the test is gone; exiting");
        std::process::exit(3);
    });
    let handle = Worker::new(
        registry::<Postgres>(PAUSE, None),
        pool::<Postgres>(&url, CHILD_THREADS as u32 + 1),
    )
    .lease(Duration::from_secs(5))
    .batch_size(2)
    .poll_interval(Duration::from_millis(200))
    .start(CHILD_THREADS)
    .unwrap();
    handle.stop_on_signals().unwrap();
    println!("{CHILD_READY}");
    while !handle.is_stopping() {
        std::thread::sleep(Duration::from_millis(10));
    }
    let stats = handle.shutdown(Duration::from_secs(20)).unwrap();
    println!(
        "{CHILD_STATS} reconnects={} succeeded={} failed={} retried={} lost={} fenced={}",
        reconnects(&stats),
        stats.succeeded,
        stats.failed,
        stats.retried,
        stats.lost,
        stats.fenced
    );
}
