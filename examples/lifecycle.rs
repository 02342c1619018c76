//! The batch operation lifecycle, end to end: a synchronous import, and a blog post
//! email that is either cancelled while pending or sent by a worker.
//!
//! ```text
//! cargo run --example lifecycle                       # an SQLite file, no server needed
//! DATABASE_URL=postgres://postgres@127.0.0.1/test cargo run --example lifecycle --features postgres
//! DATABASE_URL=mysql://root@127.0.0.1/test cargo run --example lifecycle --features mysql
//! ```

use batchframework_diesel::{BatchConnection, BatchOperation, ContextRef, OperationFilter, Status};
use diesel::Connection;
use serde_json::json;

type AnyError = Box<dyn std::error::Error>;

fn main() -> Result<(), AnyError> {
    let url = std::env::var("DATABASE_URL").ok();
    match url.as_deref() {
        #[cfg(feature = "postgres")]
        Some(url) if url.starts_with("postgres") => {
            demo(&mut diesel::PgConnection::establish(url)?)
        }
        #[cfg(feature = "mysql")]
        Some(url) if url.starts_with("mysql") => {
            demo(&mut diesel::MysqlConnection::establish(url)?)
        }
        Some(url) if url.starts_with("postgres") || url.starts_with("mysql") => Err(format!(
            "DATABASE_URL names {url}, but this build has no driver for it: \
             add `--features postgres` or `--features mysql`"
        )
        .into()),
        Some(path) => demo(&mut diesel::SqliteConnection::establish(path)?),
        None => {
            let path = std::env::temp_dir().join("batchframework-lifecycle.sqlite3");
            // Start from an empty file so every run prints the same story.
            let _ = std::fs::remove_file(&path);
            println!("using the SQLite file {}", path.display());
            demo(&mut diesel::SqliteConnection::establish(
                &path.to_string_lossy(),
            )?)
        }
    }
}

fn demo<C: BatchConnection>(conn: &mut C) -> Result<(), AnyError> {
    let applied = batchframework_diesel::run_migrations(conn)?;
    println!("migrations applied: {applied:?}");

    // A synchronous operation: recorded as running, finished by the same code.
    let mut import = BatchOperation::create_synchronous("import-users")
        .started_by("admin")
        .input(&json!({"file": "users.csv"}))
        .insert(conn)?;
    println!("started   {import}");
    import.finish_with_output(conn, &json!({"imported": 120}))?;
    println!("finished  {import}, output {}", import.output_data_json());

    // Finishing twice is refused, and nothing changes.
    if let Err(error) = import.finish(conn) {
        println!("refused   {error}");
    }

    // Asynchronous work: an email 15 minutes after a post is created...
    let post = ContextRef::new("blog_posts", 17);
    let email = OperationFilter::new()
        .operation_type("new-blogpost-email")
        .context_object(&post);
    let pending = BatchOperation::create_asynchronous("new-blogpost-email")
        .context_object(&post)
        .insert(conn)?;
    println!("queued    {pending}");
    // ...that the user cancels in time: the pending operation is removed.
    println!("cancelled {} pending email(s)", email.remove_pending(conn)?);

    // Queued again, and this time a worker picks it up before any cancel.
    let mut queued = BatchOperation::create_asynchronous("new-blogpost-email")
        .context_object(&post)
        .insert(conn)?;
    queued.mark_as_running(conn)?;
    println!(
        "cancel of a running email removes {}",
        email.remove_pending(conn)?
    );
    queued.finish(conn)?;
    println!("sent      {queued}");

    let finished = email.clone().status(Status::Finished).load(conn)?;
    println!(
        "finished emails for the post: {:?}",
        finished.iter().map(ToString::to_string).collect::<Vec<_>>()
    );
    Ok(())
}
