//! A web service that queues work for a worker running in the same process, with the
//! batchframework dashboard mounted beside its own routes: the shape of an application that
//! adopts batchframework, ready to copy.
//!
//! * `POST /imports` with `{"source": "customers.csv", "rows": 300}` queues an import (an
//!   asynchronous action group, through the registry) and answers `202` with its id;
//! * `GET /imports/{id}` answers its status, progress and result as JSON;
//! * a [`Worker`] with 2 threads runs the imports (a row takes 10 ms; a source not ending in
//!   `.csv` fails, and is retried once);
//! * the dashboard ([`batchframework_web::router`]) is mounted at `/admin/batch`;
//! * Ctrl-C (or SIGTERM) stops the server, then the worker: claiming stops and running imports
//!   get 10 seconds to finish.
//!
//! ```text
//! cargo run --example axum_app                            # an SQLite file, 127.0.0.1:3000
//! cargo run --example axum_app -- --bind 127.0.0.1:8080   # or BIND=127.0.0.1:8080
//! DATABASE_URL=postgres://postgres@127.0.0.1/test cargo run --example axum_app --features postgres
//! DATABASE_URL=mysql://root@127.0.0.1/test cargo run --example axum_app --features mysql
//!
//! curl -X POST http://127.0.0.1:3000/imports -H 'content-type: application/json' \
//!      -d '{"source": "customers.csv", "rows": 300}'
//! curl http://127.0.0.1:3000/imports/1
//! ```
//!
//! Then open <http://127.0.0.1:3000/admin/batch> in a browser: the `imports` queue, the
//! finishes per minute, the failures (queue `{"source": "customers.xlsx"}` for one), and each
//! operation's input, progress and results.
//!
//! The dashboard has no login of its own here: in an application, mount it behind the
//! application's authentication, or give it a token (`--token`, or `DASHBOARD_TOKEN`; the
//! browser then asks for it once). Without a token this example listens on loopback only.
//!
//! The SQLite file (in the temporary directory) is kept between runs, as an application's
//! database is: imports queued before a stop are run after the next start. Delete it to start
//! over.

mod imports;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::response::Redirect;
use axum::routing::get;
use axum::Router;
use batchframework_diesel::registry::Registry;
use batchframework_diesel::worker::{Worker, WorkerConnection};
use clap::Parser;
use diesel::connection::SimpleConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool};

use imports::Imports;

type AnyError = Box<dyn std::error::Error + Send + Sync>;

/// How long running imports may take to finish once the service is told to stop.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// An axum service that queues imports, runs them with a worker in the same process, and
/// mounts the batchframework dashboard at /admin/batch.
#[derive(Parser)]
struct Args {
    /// Where the server listens (port 0: any free port).
    #[arg(long, env = "BIND", default_value = "127.0.0.1:3000")]
    bind: SocketAddr,
    /// Worker threads running imports.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// A token the dashboard asks for (a browser logs in once; scripts send
    /// `Authorization: Bearer <token>`). Needed to listen beyond loopback.
    #[arg(long, env = "DASHBOARD_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

/// SQLite connections in the pool wait for the write lock instead of failing at once: the
/// worker's threads, its keeper and the request handlers take turns at it.
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
    if args.token.is_none() && !args.bind.ip().is_loopback() {
        return Err(format!(
            "{} is not a loopback address: the dashboard would be open to anyone who can reach \
             it; give it a token (--token or DASHBOARD_TOKEN), or bind 127.0.0.1",
            args.bind
        )
        .into());
    }
    match std::env::var("DATABASE_URL").ok() {
        #[cfg(feature = "postgres")]
        Some(url) if url.starts_with("postgres") => {
            run::<diesel::PgConnection>("PostgreSQL", &url, None, &args)
        }
        #[cfg(feature = "mysql")]
        Some(url) if url.starts_with("mysql") => {
            run::<diesel::MysqlConnection>("MySQL/MariaDB", &url, None, &args)
        }
        Some(url) if url.starts_with("postgres") || url.starts_with("mysql") => Err(format!(
            "DATABASE_URL names {url}, but this build has no driver for it: \
             add `--features postgres` or `--features mysql`"
        )
        .into()),
        Some(path) => run::<diesel::SqliteConnection>("SQLite", &path, Some(BusyTimeout), &args),
        None => {
            let path = std::env::temp_dir().join("batchframework-axum-app.sqlite3");
            let path = path.to_string_lossy();
            run::<diesel::SqliteConnection>("SQLite", &path, Some(BusyTimeout), &args)
        }
    }
}

/// Sets up the database, the registry and the worker, serves until Ctrl-C, then stops the
/// worker.
fn run<C>(
    backend: &str,
    url: &str,
    customizer: Option<BusyTimeout>,
    args: &Args,
) -> Result<(), AnyError>
where
    C: WorkerConnection + SimpleConnection,
{
    // One pool for everything: the worker takes `threads + 1` connections (its threads and its
    // keeper) for as long as it runs; the API and the dashboard share the rest.
    let mut builder = Pool::builder().max_size(args.threads as u32 + 1 + 4);
    if let Some(customizer) = customizer {
        builder = builder.connection_customizer(Box::new(customizer));
    }
    let pool: Pool<ConnectionManager<C>> = builder.build(ConnectionManager::new(url))?;
    let applied = batchframework_diesel::run_migrations(&mut *pool.get()?)?;
    println!(
        "axum_app on {backend} ({url}): {} migration(s) applied",
        applied.len()
    );

    let registry: Arc<Registry<C>> = Arc::new(imports::register(Registry::builder()).build()?);
    let worker = Worker::new(Arc::clone(&registry), pool.clone()).start(args.threads)?;
    println!(
        "worker: {} thread(s) on the queue(s) {}",
        args.threads,
        registry.queues().collect::<Vec<_>>().join(", ")
    );

    let mut dashboard = batchframework_web::Options::default();
    if let Some(token) = &args.token {
        dashboard = dashboard.token(token.clone());
    }
    let app = Router::new()
        .merge(imports::routes(Imports {
            pool: pool.clone(),
            registry,
        }))
        .nest(
            "/admin/batch",
            batchframework_web::router(pool.clone(), dashboard),
        )
        // The dashboard's own links name it without a trailing slash; a typed one finds it too.
        .route(
            "/admin/batch/",
            get(|| async { Redirect::permanent("/admin/batch") }),
        )
        .route("/", get(index));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let served = runtime.block_on(serve(app, args.bind));

    // The server has stopped (or never started): now the worker. Claiming stops, running
    // imports get SHUTDOWN_TIMEOUT to finish, imports claimed but not started go back to the
    // queue for the next start.
    println!(
        "stopping the worker (running imports get {}s to finish) ...",
        SHUTDOWN_TIMEOUT.as_secs()
    );
    let stats = worker.shutdown(SHUTDOWN_TIMEOUT)?;
    println!(
        "worker stopped: {} succeeded, {} failed, {} retried",
        stats.succeeded, stats.failed, stats.retried
    );
    served
}

/// Listens on `bind` and serves `app` until Ctrl-C or SIGTERM; requests in flight are
/// answered first.
async fn serve(app: Router, bind: SocketAddr) -> Result<(), AnyError> {
    let listener = tokio::net::TcpListener::bind(bind).await?;
    let base = format!("http://{}", listener.local_addr()?);
    println!("listening on {base}");
    println!(
        "  queue an import: curl -X POST {base}/imports -H 'content-type: application/json' \
         -d '{{\"source\": \"customers.csv\", \"rows\": 300}}'"
    );
    println!("  its status:      curl {base}/imports/1");
    println!("  the dashboard:   {base}/admin/batch");
    println!("Ctrl-C stops the server and the worker");
    axum::serve(listener, app)
        .with_graceful_shutdown(stop_signal())
        .await?;
    println!("server stopped");
    Ok(())
}

/// `GET /`: what this service offers, for whoever opens it in a browser.
async fn index() -> &'static str {
    "axum_app: POST /imports {\"source\": \"customers.csv\", \"rows\": 300} queues an import, \
     GET /imports/{id} reports on it; the dashboard is at /admin/batch\n"
}

/// Completes on Ctrl-C (SIGINT) or, on Unix, SIGTERM.
async fn stop_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            // No signal handler could be installed: never complete from here.
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                terminate.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
