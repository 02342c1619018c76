//! The blog post email of ievv_batchframework's documentation: when a blog post is created, an email is queued to go out
//! after a delay (15 minutes); if the author cancels in time the pending email is removed,
//! otherwise a worker sends it.
//!
//! ```text
//! cargo run --example blogpost_email -- --delay-seconds 2     # SQLite file, a short delay
//! DATABASE_URL=postgres://postgres@127.0.0.1/test cargo run --example blogpost_email --features postgres -- --delay-seconds 2
//! ```

use std::sync::Arc;
use std::time::Duration;

use batchframework_diesel::registry::{action_fn, ActionGroup, Registry, RunArgs};
use batchframework_diesel::worker::{Worker, WorkerConnection};
use batchframework_diesel::{BatchOperation, ContextRef, OperationFilter};
use clap::Parser;
use diesel::connection::SimpleConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool};
use serde_json::json;

type AnyError = Box<dyn std::error::Error + Send + Sync>;

/// Queue two new-post emails, cancel one in time, let a worker send the other.
#[derive(Parser)]
struct Args {
    /// How long an email waits before it may be sent (15 minutes by default).
    #[arg(long, default_value_t = 15 * 60)]
    delay_seconds: u64,
}

/// SQLite connections in the pool wait for the write lock instead of failing at once.
#[derive(Debug)]
struct BusyTimeout;

impl<C: SimpleConnection> CustomizeConnection<C, diesel::r2d2::Error> for BusyTimeout {
    fn on_acquire(&self, conn: &mut C) -> Result<(), diesel::r2d2::Error> {
        conn.batch_execute("PRAGMA busy_timeout = 10000")
            .map_err(diesel::r2d2::Error::QueryError)
    }
}

fn main() -> Result<(), AnyError> {
    let args = Args::parse();
    match std::env::var("DATABASE_URL").ok() {
        #[cfg(feature = "postgres")]
        Some(url) if url.starts_with("postgres") => demo::<diesel::PgConnection>(&url, None, &args),
        #[cfg(feature = "mysql")]
        Some(url) if url.starts_with("mysql") => demo::<diesel::MysqlConnection>(&url, None, &args),
        Some(url) if url.starts_with("postgres") || url.starts_with("mysql") => Err(format!(
            "DATABASE_URL names {url}, but this build has no driver for it: \
             add `--features postgres` or `--features mysql`"
        )
        .into()),
        Some(path) => demo::<diesel::SqliteConnection>(&path, Some(BusyTimeout), &args),
        None => {
            let path = std::env::temp_dir().join("batchframework-blogpost-email.sqlite3");
            let _ = std::fs::remove_file(&path); // a fresh file per run
            println!("using the SQLite file {}", path.display());
            demo::<diesel::SqliteConnection>(&path.to_string_lossy(), Some(BusyTimeout), &args)
        }
    }
}

fn demo<C>(url: &str, customizer: Option<BusyTimeout>, args: &Args) -> Result<(), AnyError>
where
    C: WorkerConnection + SimpleConnection,
{
    let mut builder = Pool::builder().max_size(3);
    if let Some(customizer) = customizer {
        builder = builder.connection_customizer(Box::new(customizer));
    }
    let pool: Pool<ConnectionManager<C>> = builder.build(ConnectionManager::new(url))?;
    let mut conn = pool.get()?;
    batchframework_diesel::run_migrations(&mut *conn)?;

    let registry: Arc<Registry<C>> = Arc::new(
        Registry::builder()
            .group(
                ActionGroup::new("new-blogpost-email")
                    .asynchronous()
                    .max_attempts(3)
                    .action(action_fn("send-email", |ctx| {
                        let post = ctx.context_object().map(|p| p.to_string());
                        let to: Option<String> = ctx.input()?;
                        println!(
                            "  worker: emailing {} about {}",
                            to.unwrap_or_default(),
                            post.unwrap_or_default()
                        );
                        Ok(json!({ "sent": true }))
                    })),
            )
            .build()?,
    );

    // Two posts are created; each queues its email.
    let delay = Duration::from_secs(args.delay_seconds);
    let mut queued = Vec::new();
    for id in [1, 2] {
        let post = ContextRef::new("blog_posts", id);
        let info = registry.run(
            &mut *conn,
            "new-blogpost-email",
            RunArgs::new()
                .context_object(&post)
                .input(&"followers@example.com")
                .delay(delay),
        )?;
        println!("post {id} created: queued {}", info.operation);
        queued.push(info.operation.id());
    }

    // The author of post 1 cancels within the delay: its pending email is removed.
    let removed = OperationFilter::new()
        .operation_type("new-blogpost-email")
        .context_object(&ContextRef::new("blog_posts", 1))
        .remove_pending(&mut *conn)?;
    println!("post 1 cancelled: {removed} pending email removed");

    let worker = Worker::new(Arc::clone(&registry), pool.clone());
    let early = worker.run_until_idle(2)?;
    println!(
        "a worker looks before the delay is over: {} sent",
        early.succeeded
    );

    if args.delay_seconds > 60 {
        println!(
            "(the delay is {}s; rerun with --delay-seconds 2 to see the email go out)",
            args.delay_seconds
        );
        return Ok(());
    }
    std::thread::sleep(delay);
    let stats = worker.run_until_idle(2)?;
    println!("after the delay: {} sent", stats.succeeded);
    // This run's operations only: a database given with DATABASE_URL may hold earlier runs'.
    for id in queued {
        match BatchOperation::find(&mut *conn, id) {
            Ok(op) => println!("  {op}: output {}", op.output_data_json()),
            Err(batchframework_diesel::Error::NotFound { .. }) => println!("  #{id}: removed"),
            Err(error) => return Err(error.into()),
        }
    }
    Ok(())
}
