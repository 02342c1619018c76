//! Benchmark: N players with one card each, five ways, side by side in one run.
//!
//! * (a) naive: one INSERT per player (reading its id back) and one per card (10k only);
//! * (b) Diesel's batch insert, `insert_into(..).values(&chunk).returning(id)`, chunked by the
//!   bind-parameter limit, cards built from the returned ids;
//! * (c) this library's 5-query pattern (`bulk_insert_tracked`, select-back, `bulk_insert`);
//! * (d) a floor on PostgreSQL: the same rows, same foreign keys, loaded by `psql \copy`;
//! * (e) the strict floor on PostgreSQL: the same rows with ids the bench chooses, one binary
//!   `COPY` per table over the open connection, and the same select-back as (c)
//!   (`copy_floor.rs`).
//!
//! Each run starts from freshly created tables. The variants take turns (b, c, d, e, b, c, ...)
//! for `--repeat` rounds (default 3), so a change in the machine's load reaches all of them, and
//! the median of each is reported. Ratios, not absolute times, are the result: the machine is
//! shared. Peak RSS of (c) is measured in a child process running (c) alone, at the largest N
//! or at each of `--rss-sizes`.
//!
//! ```text
//! cargo run --release -p batchframework-bench -- --backend postgres --sizes 10000,100000,1000000
//! cargo run --release -p batchframework-bench -- --workers      # the worker benchmark
//! cargo run --release -p batchframework-bench -- --batches      # batches vs plain operations (batches.rs)
//! cargo run --release -p batchframework-bench -- --workflows    # workflow steps vs plain operations (workflows.rs)
//! cargo run --release -p batchframework-bench -- --scale        # cost at scale (see scale.rs)
//! cargo run --release -p batchframework-bench -- --admin        # operators' reads, prune (admin.rs)
//! cargo run --release -p batchframework-bench -- --web          # the dashboard over HTTP (web.rs)
//! cargo run --release -p batchframework-bench -- --soak         # a reliability run (soak.rs)
//! ```

mod admin;
mod batches;
mod copy_floor;
mod enqueue;
mod models;
#[cfg(feature = "peers")]
mod peers;
mod scale;
mod soak;
mod web;
mod workers;
mod workflows;

use std::process::Command;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use diesel::Connection;

type AnyError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Debug)]
enum Backend {
    Postgres,
    Mysql,
    Sqlite,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Debug)]
enum Variant {
    Naive,
    Diesel,
    Pattern,
    Floor,
    StrictFloor,
}

#[derive(Parser)]
struct Args {
    #[arg(long, value_enum, default_value = "postgres")]
    backend: Backend,
    /// Player counts, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "10000,100000,1000000")]
    sizes: Vec<usize>,
    /// Database URL (PostgreSQL/MySQL); defaults to the local test servers' `bf_bench` database,
    /// which is created and dropped.
    #[arg(long)]
    url: Option<String>,
    /// Rounds per size, the variants taking turns in each; the median is reported.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Player counts at which the peak RSS of (c) is measured, each in a process of its own,
    /// comma separated; default: the largest of `--sizes`.
    #[arg(long, value_delimiter = ',')]
    rss_sizes: Option<Vec<usize>>,
    /// Benchmark the workers (PostgreSQL) instead of the bulk insert.
    #[arg(long)]
    workers: bool,
    /// Measure workers and operators' queries behind a large background (any backend; its own
    /// `bf_scale` databases or SQLite files, created and dropped per case).
    #[arg(long, conflicts_with_all = ["workers", "url", "only"])]
    scale: bool,
    /// Background sizes for `--scale`, comma separated: finished history at each size, delayed
    /// work (and, on PostgreSQL, retries in backoff) at the first; or `kind:N` cases
    /// (`finished:`, `delayed:`, `backoff:`). Default: 1000000,10000000 on PostgreSQL,
    /// 1000000 elsewhere.
    #[arg(long, value_delimiter = ',', requires = "scale")]
    scale_sizes: Option<Vec<String>>,
    /// With `--scale`: print each measured statement as sent and its plan.
    #[arg(long, requires = "scale")]
    scale_explain: bool,
    /// With `--scale`: keep the last case's database for inspection (drop it by hand).
    #[arg(long, requires = "scale")]
    scale_keep: bool,
    /// Measure the operators' reads (`queue_overview`, list pages) and the prune on a million
    /// finished operations (any backend; its own `bf_scale` database or SQLite file, dropped
    /// afterwards).
    #[arg(long, conflicts_with_all = ["workers", "url", "only", "scale"])]
    admin: bool,
    /// With `--admin`: print the statements of one `queue_overview` and the plans behind it.
    #[arg(long, requires = "admin")]
    admin_explain: bool,
    /// Measure the dashboard (`batchframework_web::router`) over HTTP on a million finished and
    /// ten thousand due operations, idle and while four worker threads drain the due ones (any
    /// backend; its own `bf_web` database or SQLite file, dropped afterwards).
    #[arg(long, conflicts_with_all = ["workers", "url", "only", "scale", "admin"])]
    web: bool,
    /// With `--web`: print the statements of one overview (the slowest first) with their times.
    #[arg(long, requires = "web")]
    web_explain: bool,
    /// With `--web`: keep its database for inspection (drop it by hand).
    #[arg(long, requires = "web")]
    web_keep: bool,
    /// A reliability run (PostgreSQL, a private cluster it starts): no-op operations drained by
    /// three worker processes for `--soak-minutes` while one is killed every 30 s and the
    /// database restarted every minute; then checks every operation ran and finished once.
    #[arg(long, conflicts_with_all = ["workers", "url", "only", "scale", "admin", "web"])]
    soak: bool,
    /// This library's workers against graphile_worker side by side (PostgreSQL; its own `bf_peers`
    /// database, dropped afterwards): no-op throughput at concurrency 1, 2, 4 and start latency.
    /// Needs the `peers` feature (on by default).
    #[arg(long, conflicts_with_all = ["workers", "url", "only", "scale", "admin", "web", "soak"])]
    peers: bool,
    /// With `--peers`: rounds per side (interleaved); the median is reported.
    #[arg(long, default_value_t = 3, requires = "peers")]
    peers_rounds: usize,
    /// Batches against plain operations (PostgreSQL): 20,000 no-op operations drained by four
    /// worker threads, plain and as the children of 20 batches of 1,000, and the enqueue of one
    /// batch of 100,000 children next to a bulk enqueue; `--repeat` interleaved rounds, medians.
    #[arg(long, conflicts_with_all = ["workers", "only", "scale", "admin", "web", "soak", "peers"])]
    batches: bool,
    /// Workflows against plain operations and batches (PostgreSQL): a root, 10,000 steps after
    /// it and a join drained by four threads next to 10,000 plain operations, a chain of 200
    /// steps on one thread, and the enqueue of a workflow of 10,000 steps next to a batch's;
    /// `--repeat` interleaved rounds, medians.
    #[arg(long, conflicts_with_all = ["workers", "only", "scale", "admin", "web", "soak", "peers", "batches"])]
    workflows: bool,
    /// With `--soak`: how long the faults go on, in minutes (100,000 operations a minute at
    /// most).
    #[arg(long, default_value_t = 10.0, requires = "soak")]
    soak_minutes: f64,
    /// Internal: one worker process of `--soak`, on `--url`.
    #[arg(long, hide = true, requires = "url")]
    soak_child: bool,
    /// Internal: the worker threads of a `--soak-child`.
    #[arg(long, hide = true, default_value_t = 3)]
    soak_threads: usize,
    /// Internal: the worker name of a `--soak-child`.
    #[arg(long, hide = true, default_value = "soak-worker")]
    soak_name: String,
    /// Internal: run one variant once and print its peak RSS (used for the RSS child process).
    #[arg(long, value_enum, hide = true)]
    only: Option<Variant>,
}

/// `insert_returning_ids` for backends with `RETURNING` (PostgreSQL, SQLite).
macro_rules! insert_returning_ids_with_returning {
    () => {
        /// INSERT ... RETURNING id.
        pub(crate) fn insert_returning_ids(
            conn: &mut Conn,
            rows: &[crate::models::PlainPlayer],
        ) -> diesel::QueryResult<Vec<i64>> {
            use diesel::prelude::*;
            diesel::insert_into(crate::models::players::table)
                .values(rows)
                .returning(crate::models::players::id)
                .get_results(conn)
        }
    };
}

/// The game_cards example's schema for one backend (its migration's up and down SQL).
macro_rules! game_cards_schema {
    ($backend:literal) => {
        pub(crate) const SCHEMA: &str = include_str!(concat!(
            "../../examples/game_cards/migrations/",
            $backend,
            "/2026-11-27-100000_create_game_cards/up.sql"
        ));
        pub(crate) const DROP: &str = include_str!(concat!(
            "../../examples/game_cards/migrations/",
            $backend,
            "/2026-11-27-100000_create_game_cards/down.sql"
        ));
    };
}

mod postgres {
    pub(crate) type Conn = diesel::PgConnection;
    pub(crate) type Loading = diesel::pg::PgRowByRowLoadingMode;
    /// The wire protocol counts a statement's parameters in 16 bits.
    pub(crate) const MAX_BINDS: usize = 65_535;
    game_cards_schema!("postgres");
    insert_returning_ids_with_returning!();
    include!("variants.rs");
}

mod sqlite {
    pub(crate) type Conn = diesel::SqliteConnection;
    pub(crate) type Loading = diesel::connection::DefaultLoadingMode;
    /// SQLite's default limit on bind parameters per statement (`SQLITE_MAX_VARIABLE_NUMBER`);
    /// it mirrors the limit the library's bulk inserts use, which it does not export.
    pub(crate) const MAX_BINDS: usize = 32_766;
    game_cards_schema!("sqlite");
    insert_returning_ids_with_returning!();
    include!("variants.rs");
}

mod mysql {
    pub(crate) type Conn = diesel::MysqlConnection;
    pub(crate) type Loading = diesel::connection::DefaultLoadingMode;
    /// MySQL's and MariaDB's limit on placeholders per prepared statement; it mirrors the limit
    /// the library's bulk inserts use, which it does not export.
    pub(crate) const MAX_BINDS: usize = 65_535;
    game_cards_schema!("mysql");

    /// MySQL has no RETURNING: INSERT, then the ids from LAST_INSERT_ID() on (consecutive for
    /// one multi-row INSERT with innodb_autoinc_lock_mode 1 or 2 and no concurrent inserts).
    pub(crate) fn insert_returning_ids(
        conn: &mut Conn,
        rows: &[crate::models::PlainPlayer],
    ) -> diesel::QueryResult<Vec<i64>> {
        use diesel::prelude::*;
        diesel::insert_into(crate::models::players::table)
            .values(rows)
            .execute(conn)?;
        let first: i64 = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
            "CAST(LAST_INSERT_ID() AS SIGNED)",
        ))
        .get_result(conn)?;
        Ok((first..first + rows.len() as i64).collect())
    }

    include!("variants.rs");
}

/// Peak resident set size of this process, from /proc (Linux).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Runs one variant on fresh tables; returns its wall time.
fn run(backend: Backend, url: &str, variant: Variant, n: usize) -> Result<Duration, AnyError> {
    match backend {
        Backend::Postgres => {
            let mut conn = diesel::PgConnection::establish(url)?;
            postgres::run(&mut conn, url, variant, n)
        }
        Backend::Mysql => {
            let mut conn = diesel::MysqlConnection::establish(url)?;
            mysql::run(&mut conn, url, variant, n)
        }
        Backend::Sqlite => {
            let mut conn = diesel::SqliteConnection::establish(url)?;
            sqlite::run(&mut conn, url, variant, n)
        }
    }
}

/// A throwaway database for the run; dropped at the end.
struct Scratch {
    backend: Backend,
    admin: Option<String>,
    url: String,
    _dir: Option<tempfile::TempDir>,
}

impl Scratch {
    fn new(backend: Backend, url: Option<String>) -> Result<Self, AnyError> {
        if let Some(url) = url {
            return Ok(Scratch {
                backend,
                admin: None,
                url,
                _dir: None,
            });
        }
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir()?;
                let url = dir.path().join("bench.sqlite3").display().to_string();
                Ok(Scratch {
                    backend,
                    admin: None,
                    url,
                    _dir: Some(dir),
                })
            }
            Backend::Postgres => {
                let admin = "postgres://postgres@127.0.0.1:5432/postgres".to_owned();
                let mut conn = diesel::PgConnection::establish(&admin)?;
                // One statement each: PostgreSQL runs a multi-statement string as a transaction.
                for sql in [
                    "DROP DATABASE IF EXISTS bf_bench",
                    "CREATE DATABASE bf_bench",
                ] {
                    diesel::connection::SimpleConnection::batch_execute(&mut conn, sql)?;
                }
                let url = "postgres://postgres@127.0.0.1:5432/bf_bench".to_owned();
                Ok(Scratch {
                    backend,
                    admin: Some(admin),
                    url,
                    _dir: None,
                })
            }
            Backend::Mysql => {
                let admin = "mysql://root@127.0.0.1:3306/test".to_owned();
                let mut conn = diesel::MysqlConnection::establish(&admin)?;
                diesel::connection::SimpleConnection::batch_execute(
                    &mut conn,
                    "DROP DATABASE IF EXISTS bf_bench; CREATE DATABASE bf_bench",
                )?;
                let url = "mysql://root@127.0.0.1:3306/bf_bench".to_owned();
                Ok(Scratch {
                    backend,
                    admin: Some(admin),
                    url,
                    _dir: None,
                })
            }
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let Some(admin) = &self.admin else { return };
        let sql = "DROP DATABASE IF EXISTS bf_bench";
        let _ = match self.backend {
            Backend::Postgres => diesel::PgConnection::establish(admin)
                .map_err(AnyError::from)
                .and_then(|mut c| {
                    Ok(diesel::connection::SimpleConnection::batch_execute(
                        &mut c, sql,
                    )?)
                }),
            Backend::Mysql => diesel::MysqlConnection::establish(admin)
                .map_err(AnyError::from)
                .and_then(|mut c| {
                    Ok(diesel::connection::SimpleConnection::batch_execute(
                        &mut c, sql,
                    )?)
                }),
            Backend::Sqlite => Ok(()),
        };
    }
}

fn main() -> Result<(), AnyError> {
    let args = Args::parse();
    if let Some(variant) = args.only {
        // Child process: one variant, then its peak RSS.
        let url = args.url.ok_or("--only needs --url")?;
        let n = args.sizes.first().copied().unwrap_or(1_000_000);
        let took = run(args.backend, &url, variant, n)?;
        println!(
            "{:.3} {:.1}",
            took.as_secs_f64(),
            peak_rss_mib().unwrap_or(f64::NAN)
        );
        return Ok(());
    }

    if args.soak_child {
        let url = args.url.ok_or("--soak-child needs --url")?;
        return soak::child(&url, args.soak_threads, &args.soak_name);
    }
    if args.soak {
        if args.backend != Backend::Postgres {
            return Err("--soak runs on PostgreSQL only: use --backend postgres".into());
        }
        return soak::run(args.soak_minutes);
    }
    if args.peers {
        #[cfg(feature = "peers")]
        return peers::run(args.peers_rounds);
        #[cfg(not(feature = "peers"))]
        return Err("--peers compares with graphile_worker, which this build left out: build without `--no-default-features`, or with `--features peers`".into());
    }
    if args.admin {
        return admin::run(args.backend, args.admin_explain);
    }
    if args.web {
        return web::run(args.backend, args.web_explain, args.web_keep);
    }
    if args.scale {
        return scale::run(
            args.backend,
            args.scale_sizes.as_deref(),
            args.repeat,
            args.scale_explain,
            args.scale_keep,
        );
    }
    let scratch = Scratch::new(args.backend, args.url.clone())?;
    if args.workers {
        if args.backend != Backend::Postgres {
            return Err("--workers measures PostgreSQL only: use --backend postgres".into());
        }
        return workers::run(&scratch.url);
    }
    if args.batches {
        if args.backend != Backend::Postgres {
            return Err("--batches measures PostgreSQL only: use --backend postgres".into());
        }
        return batches::run(&scratch.url, args.repeat);
    }
    if args.workflows {
        if args.backend != Backend::Postgres {
            return Err("--workflows measures PostgreSQL only: use --backend postgres".into());
        }
        return workflows::run(&scratch.url, args.repeat);
    }
    println!(
        "backend: {:?}; N players with one card each; median of {} interleaved rounds; rows/s counts players + cards\n",
        args.backend, args.repeat
    );
    let postgres = args.backend == Backend::Postgres;
    if postgres {
        println!("| N | variant | seconds | rows/s | × psql \\copy (d) | × strict floor (e) |");
        println!("|---:|---|---:|---:|---:|---:|");
    } else {
        println!("| N | variant | seconds | rows/s |");
        println!("|---:|---|---:|---:|");
    }
    for &n in &args.sizes {
        let variants: Vec<Variant> = [
            Variant::Naive,
            Variant::Diesel,
            Variant::Pattern,
            Variant::Floor,
            Variant::StrictFloor,
        ]
        .into_iter()
        .filter(|variant| match variant {
            Variant::Naive => n <= 10_000,
            Variant::Floor | Variant::StrictFloor => postgres,
            _ => true,
        })
        .collect();
        // Round by round, each variant once per round.
        let mut times: Vec<Vec<Duration>> = vec![Vec::new(); variants.len()];
        for _ in 0..args.repeat.max(1) {
            for (variant, times) in variants.iter().zip(&mut times) {
                times.push(run(args.backend, &scratch.url, *variant, n)?);
            }
        }
        let medians: Vec<(Variant, Duration)> = variants
            .iter()
            .zip(&mut times)
            .map(|(variant, times)| {
                times.sort();
                (*variant, times[times.len() / 2])
            })
            .collect();
        let of = |wanted: Variant| medians.iter().find(|(v, _)| *v == wanted).map(|(_, d)| *d);
        let ratio = |took: Duration, floor: Option<Duration>| {
            floor.map_or("–".to_owned(), |f| {
                format!("{:.2}", took.as_secs_f64() / f.as_secs_f64())
            })
        };
        for (variant, took) in &medians {
            let mut row = format!(
                "| {n} | {} | {:.3} | {:.0} |",
                label(*variant),
                took.as_secs_f64(),
                (2 * n) as f64 / took.as_secs_f64()
            );
            if postgres {
                row += &format!(
                    " {} | {} |",
                    ratio(*took, of(Variant::Floor)),
                    ratio(*took, of(Variant::StrictFloor))
                );
            }
            println!("{row}");
        }
    }

    // Peak RSS of (c), in a process of its own per size.
    let rss_sizes = args
        .rss_sizes
        .clone()
        .unwrap_or_else(|| args.sizes.iter().max().copied().into_iter().collect());
    for n in rss_sizes {
        let exe = std::env::current_exe()?;
        let output = Command::new(exe)
            .args(["--backend", &format!("{:?}", args.backend).to_lowercase()])
            .args([
                "--only",
                "pattern",
                "--url",
                &scratch.url,
                "--sizes",
                &n.to_string(),
            ])
            .output()?;
        let text = String::from_utf8_lossy(&output.stdout);
        match text.split_whitespace().collect::<Vec<_>>()[..] {
            [seconds, rss] => {
                println!("\npeak RSS of (c) at N = {n}: {rss} MiB ({seconds} s, separate process)")
            }
            _ => println!(
                "\npeak RSS of (c) at N = {n}: child failed: {}",
                String::from_utf8_lossy(&output.stderr)
            ),
        }
    }
    Ok(())
}

fn label(variant: Variant) -> &'static str {
    match variant {
        Variant::Naive => "(a) one INSERT per row",
        Variant::Diesel => "(b) Diesel insert_into(..).values(&chunk).returning(id)",
        Variant::Pattern => "(c) batchframework 5-query pattern",
        Variant::Floor => "(d) psql \\copy (floor)",
        Variant::StrictFloor => "(e) binary COPY, ids chosen by the bench (strict floor)",
    }
}
