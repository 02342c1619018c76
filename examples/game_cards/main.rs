//! The Game/Player/Card example of ievv_batchframework's documentation, end to end: give every player of a game one card, in
//! 5 statements whatever the number of players (on PostgreSQL; plus one per extra chunk on
//! SQLite and MySQL, whose INSERTs are limited in size).
//!
//! ```text
//! cargo run --example game_cards                          # SQLite file, 1,000 players
//! cargo run --release --example game_cards -- --players 1000000
//! DATABASE_URL=postgres://postgres@127.0.0.1/test cargo run --example game_cards --features postgres
//! DATABASE_URL=mysql://root@127.0.0.1/test cargo run --example game_cards --features mysql
//! ```
//!
//! It prints every statement it runs (from Diesel's instrumentation), their count and the time.

mod models;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use batchframework_diesel::BatchOperation;
use clap::Parser;
use diesel::connection::InstrumentationEvent;
use diesel::Connection;
use indicatif::{ProgressBar, ProgressIterator, ProgressStyle};

type AnyError = Box<dyn std::error::Error + Send + Sync>;

/// Give every player of a new game one card, with the 5-query pattern.
#[derive(Parser)]
struct Args {
    /// How many players to create (each gets one card).
    #[arg(long, default_value_t = 1000)]
    players: usize,
    /// Do not print each statement, only the count.
    #[arg(long)]
    quiet: bool,
}

/// What the pattern did.
struct Report {
    operation: BatchOperation,
    players: usize,
    cards: usize,
}

/// A progress bar for large runs; nothing for small ones.
struct Progress {
    total: usize,
    visible: bool,
}

impl Progress {
    fn wrap<I: Iterator>(&self, what: &str, rows: I) -> impl Iterator<Item = I::Item> {
        let bar = if self.visible {
            let style = ProgressStyle::with_template("{msg:>8} [{bar:40}] {pos}/{len} {per_sec}")
                .unwrap_or_else(|_| ProgressStyle::default_bar());
            ProgressBar::new(self.total as u64)
                .with_style(style)
                .with_message(what.to_owned())
        } else {
            ProgressBar::hidden()
        };
        rows.progress_with(bar)
    }
}

/// Card ids drawn from a 52-card deck with a small deterministic generator (no dependency).
#[derive(Default)]
struct Deck(u32);

impl Deck {
    fn draw(&mut self) -> i32 {
        self.0 = self.0.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        ((self.0 >> 16) % 52) as i32 + 1
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    type Conn = diesel::PgConnection;
    /// Stream the select-back instead of buffering the whole result in libpq.
    type Loading = diesel::pg::PgRowByRowLoadingMode;
    const MIGRATIONS: diesel_migrations::EmbeddedMigrations =
        diesel_migrations::embed_migrations!("game_cards/migrations/postgres");
    include!("pattern.rs");
}

#[cfg(feature = "mysql")]
mod mysql {
    type Conn = diesel::MysqlConnection;
    type Loading = diesel::connection::DefaultLoadingMode;
    const MIGRATIONS: diesel_migrations::EmbeddedMigrations =
        diesel_migrations::embed_migrations!("game_cards/migrations/mysql");
    include!("pattern.rs");
}

mod sqlite {
    type Conn = diesel::SqliteConnection;
    type Loading = diesel::connection::DefaultLoadingMode;
    const MIGRATIONS: diesel_migrations::EmbeddedMigrations =
        diesel_migrations::embed_migrations!("game_cards/migrations/sqlite");
    include!("pattern.rs");
}

/// Statements seen by Diesel's instrumentation, transaction control left out.
#[derive(Clone, Default)]
struct Statements(Arc<Mutex<Vec<(String, Instant)>>>);

impl Statements {
    fn install(&self, conn: &mut impl Connection, echo: bool) {
        let seen = Arc::clone(&self.0);
        conn.set_instrumentation(move |event: InstrumentationEvent<'_>| {
            if let InstrumentationEvent::StartQuery { query, .. } = event {
                let text = query.to_string();
                let head = text.trim_start().to_ascii_uppercase();
                let control = ["BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE"];
                if control.iter().any(|c| head.starts_with(c)) {
                    return;
                }
                let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
                if echo {
                    let short: String = text.chars().take(110).collect();
                    let more = if text.len() > short.len() { " …" } else { "" };
                    println!("{:>4}  {short}{more}", seen.len() + 1);
                }
                seen.push((text, Instant::now()));
            }
        });
    }

    fn count(&self) -> usize {
        self.0.lock().map(|s| s.len()).unwrap_or(0)
    }
}

/// Runs the example on one backend: set-up, then the pattern with its statements counted.
macro_rules! run_on {
    ($backend:ident, $conn:expr, $args:expr) => {{
        let mut conn = $conn;
        let game = $backend::set_up(&mut conn)?;
        let statements = Statements::default();
        statements.install(&mut conn, !$args.quiet);
        let progress = Progress {
            total: $args.players,
            visible: $args.players >= 100_000,
        };
        let started = Instant::now();
        let report = $backend::deal(&mut conn, game, $args.players, &progress)?;
        (report, statements.count(), started.elapsed())
    }};
}

fn main() -> Result<(), AnyError> {
    let args = Args::parse();
    let url = std::env::var("DATABASE_URL").ok();
    let (backend, target) = match url.as_deref() {
        Some(u) if u.starts_with("postgres") => ("PostgreSQL", u.to_owned()),
        Some(u) if u.starts_with("mysql") => ("MySQL/MariaDB", u.to_owned()),
        Some(path) => ("SQLite", path.to_owned()),
        None => {
            let path = std::env::temp_dir().join("batchframework-game-cards.sqlite3");
            // A fresh file per run, so the numbers are those of this run alone.
            let _ = std::fs::remove_file(&path);
            ("SQLite", path.to_string_lossy().into_owned())
        }
    };
    println!(
        "game_cards: {} players, one card each, on {backend} ({target})",
        args.players
    );

    let (report, statements, elapsed): (Report, usize, Duration) = match backend {
        #[cfg(feature = "postgres")]
        "PostgreSQL" => run_on!(postgres, diesel::PgConnection::establish(&target)?, args),
        #[cfg(feature = "mysql")]
        "MySQL/MariaDB" => run_on!(mysql, diesel::MysqlConnection::establish(&target)?, args),
        "SQLite" => run_on!(sqlite, diesel::SqliteConnection::establish(&target)?, args),
        other => {
            return Err(format!(
                "DATABASE_URL names {other}, but this build has no driver for it: \
                 add `--features postgres` or `--features mysql`"
            )
            .into())
        }
    };
    println!(
        "{statements} statements (BEGIN/COMMIT/SAVEPOINT not counted) in {:.1} ms",
        elapsed.as_secs_f64() * 1000.0
    );
    println!(
        "{} players and {} cards; operation {}",
        report.players, report.cards, report.operation
    );
    Ok(())
}
