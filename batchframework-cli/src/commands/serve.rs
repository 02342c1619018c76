//! `serve`: the web dashboard of batchframework-web, on its own.

use std::io::Write;

use batchframework_diesel::worker::WorkerConnection;
use batchframework_diesel::BatchConnection;
use diesel::r2d2::{ConnectionManager, Pool};

use crate::cli::ServeArgs;
use crate::connect::{DatabaseUrl, OnConnection, OnPool};
use crate::error::CliError;
use crate::output::Outcome;

/// Checks the address, opens the pool and serves until Ctrl-C or SIGTERM.
pub(crate) fn run(url: &DatabaseUrl, args: ServeArgs) -> Result<Outcome, CliError> {
    if !args.bind.ip().is_loopback() && args.token.as_deref().is_none_or(str::is_empty) {
        return Err(CliError::usage(format!(
            "--bind {} would let anyone who can reach this machine see and change the \
             operations: pass --token <TOKEN> (or set BATCHFRAMEWORK_TOKEN), or bind a loopback \
             address such as 127.0.0.1:{}",
            args.bind,
            args.bind.port()
        )));
    }
    url.run(false, CheckMigrated)?;
    url.run_pooled(args.pool_size, Serve { args })
}

/// Refuses a database without this library's tables (or with migrations pending), on one
/// connection of its own before the pool opens. The pool opens connections on background
/// threads; were the check made on the pool, the process could exit with its error while one of
/// them is still connecting, and libpq's TLS on that thread would race the exit's cleanup.
struct CheckMigrated;

impl OnConnection for CheckMigrated {
    type Output = ();

    fn run<C: BatchConnection>(self, conn: &mut C) -> Result<(), CliError> {
        let pending = batchframework_diesel::pending_migrations(conn)
            .map_err(|e| CliError::failed(e.to_string()))?;
        if pending.is_empty() {
            return Ok(());
        }
        Err(CliError::failed(format!(
            "the database is not migrated ({} batchframework migration(s) pending); run \
             `batchframework migrate` first",
            pending.len()
        )))
    }
}

struct Serve {
    args: ServeArgs,
}

impl OnPool for Serve {
    type Output = Outcome;

    fn run<C: WorkerConnection>(
        self,
        pool: Pool<ConnectionManager<C>>,
    ) -> Result<Outcome, CliError> {
        let args = self.args;
        let mut options = batchframework_web::Options::default()
            .read_only(args.read_only)
            .title(args.title);
        if let Some(token) = args.token.filter(|token| !token.is_empty()) {
            options = options.token(token);
        }
        let app = batchframework_web::router(pool, options);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| CliError::failed(format!("cannot start the async runtime: {e}")))?;
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind(args.bind)
                .await
                .map_err(|e| CliError::failed(format!("cannot listen on {}: {e}", args.bind)))?;
            let address = listener
                .local_addr()
                .map_err(|e| CliError::failed(format!("cannot read the bound address: {e}")))?;
            let mut stdout = std::io::stdout().lock();
            // Whoever started the command reads the address here (with port 0, the one chosen).
            let _ = writeln!(stdout, "dashboard: http://{address}/ (Ctrl-C stops it)");
            let _ = stdout.flush();
            drop(stdout);
            axum::serve(listener, app)
                .with_graceful_shutdown(stop_signal())
                .await
                .map_err(|e| CliError::failed(format!("the server stopped: {e}")))
        })?;
        Ok(Outcome::ok(String::new()))
    }
}

/// Ctrl-C, or SIGTERM on Unix (what service managers send).
async fn stop_signal() {
    let interrupt = async {
        // If the handler cannot be installed, the server runs until killed.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
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
