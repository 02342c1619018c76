//! From a database URL to a connection: which backend the URL names, whether this build has
//! it, and keeping the URL's password out of everything the command prints.
//!
//! The backend is chosen here once, and every command is written once, generic over
//! [`BatchConnection`]: [`OnConnection`] is what a command is to this module.

use batchframework_diesel::worker::WorkerConnection;
use batchframework_diesel::{BatchConnection, Dialect};
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool};

use crate::error::CliError;

/// The databases the command knows, whether or not this build has their driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Postgres,
    Sqlite,
    Mysql,
}

impl Backend {
    /// The cargo feature that builds this backend's driver.
    pub(crate) fn feature(self) -> &'static str {
        match self {
            Backend::Postgres => "postgres",
            Backend::Sqlite => "sqlite",
            Backend::Mysql => "mysql",
        }
    }

    /// The SQL dialect of generated DDL.
    pub(crate) fn dialect(self) -> Dialect {
        match self {
            Backend::Postgres => Dialect::Postgres,
            Backend::Sqlite => Dialect::Sqlite,
            Backend::Mysql => Dialect::Mysql,
        }
    }
}

/// A database URL, checked and classified, with what must never be printed of it.
#[derive(Debug, Clone)]
pub(crate) struct DatabaseUrl {
    backend: Backend,
    /// What the driver is given: the URL as written, or for SQLite the file path or `file:` URI.
    target: String,
    /// A plain SQLite file path (not a `file:` URI or `:memory:`), checked to exist before
    /// anything but `migrate` opens it, so a typo does not leave an empty database behind.
    sqlite_file: Option<String>,
    redactor: Redactor,
}

impl DatabaseUrl {
    /// Classifies `url` by its scheme: `postgres://` and `postgresql://` are PostgreSQL,
    /// `mysql://` is MySQL/MariaDB, `sqlite://path`, `file:path` and anything without a scheme
    /// are SQLite files.
    pub(crate) fn parse(url: &str) -> Result<Self, CliError> {
        let redactor = Redactor::for_url(url);
        let malformed = |why: &str| {
            CliError::usage(format!(
                "malformed database URL `{}`: {why}",
                redactor.redact(url)
            ))
        };
        if url.trim().is_empty() {
            return Err(malformed("it is empty"));
        }
        if url.chars().any(char::is_whitespace) {
            return Err(malformed("it contains whitespace"));
        }
        let scheme = if url.starts_with("file:") {
            None // an SQLite URI, `file:a.db` or `file:///tmp/a.db?mode=ro`
        } else {
            url.split_once("://")
        };
        let (backend, target, sqlite_file) = match scheme {
            Some(("postgres" | "postgresql", rest)) => {
                check_authority(rest).map_err(|why| malformed(&why))?;
                (Backend::Postgres, url.to_owned(), None)
            }
            Some(("mysql", rest)) => {
                check_authority(rest).map_err(|why| malformed(&why))?;
                (Backend::Mysql, url.to_owned(), None)
            }
            Some(("sqlite", path)) => {
                if path.is_empty() {
                    return Err(malformed("`sqlite://` needs a file path after it"));
                }
                (Backend::Sqlite, path.to_owned(), Some(path.to_owned()))
            }
            Some((scheme, _)) if is_scheme(scheme) => {
                return Err(malformed(&format!(
                    "unknown scheme `{scheme}`; use postgres://, postgresql://, mysql://, \
                     sqlite://<path>, file:<path> or a plain file path"
                )))
            }
            _ if url.starts_with("file:") => (Backend::Sqlite, url.to_owned(), None),
            _ if url == ":memory:" => (Backend::Sqlite, url.to_owned(), None),
            _ => (Backend::Sqlite, url.to_owned(), Some(url.to_owned())),
        };
        Ok(DatabaseUrl {
            backend,
            target,
            sqlite_file,
            redactor,
        })
    }

    /// The backend the URL names.
    pub(crate) fn backend(&self) -> Backend {
        self.backend
    }

    /// Connects and runs `job` on the connection, on whichever backend the URL names.
    ///
    /// `creating` says the job creates the database's tables (`migrate`): only then may a
    /// missing SQLite file be created.
    pub(crate) fn run<J: OnConnection>(
        &self,
        creating: bool,
        job: J,
    ) -> Result<J::Output, CliError> {
        if !creating {
            self.check_sqlite_file()?;
        }
        match self.backend {
            Backend::Postgres => self.postgres(job),
            Backend::Sqlite => self.sqlite(job),
            Backend::Mysql => self.mysql(job),
        }
    }

    /// Opens a pool of `size` connections and runs `job` with it, on whichever backend the
    /// URL names. Fails when no connection can be made.
    pub(crate) fn run_pooled<J: OnPool>(&self, size: u32, job: J) -> Result<J::Output, CliError> {
        self.check_sqlite_file()?;
        match self.backend {
            #[cfg(feature = "postgres")]
            Backend::Postgres => job.run(self.pool::<diesel::PgConnection>(size)?),
            #[cfg(feature = "sqlite")]
            Backend::Sqlite => job.run(self.pool::<diesel::SqliteConnection>(size)?),
            #[cfg(feature = "mysql")]
            Backend::Mysql => job.run(self.pool::<diesel::MysqlConnection>(size)?),
            #[allow(unreachable_patterns)] // reached only by builds without some backend
            _ => {
                let _ = (size, job);
                Err(self.not_built())
            }
        }
    }

    /// An SQLite file must exist before anything but `migrate` opens it: opening would create
    /// an empty one.
    fn check_sqlite_file(&self) -> Result<(), CliError> {
        match &self.sqlite_file {
            Some(path) if !std::path::Path::new(path).exists() => Err(CliError::failed(format!(
                "there is no SQLite database at `{path}`; check the path, or create it with \
                 `batchframework migrate`"
            ))),
            _ => Ok(()),
        }
    }

    #[cfg(any(feature = "postgres", feature = "sqlite", feature = "mysql"))]
    fn pool<C: WorkerConnection + SetUp>(
        &self,
        size: u32,
    ) -> Result<Pool<ConnectionManager<C>>, CliError> {
        Pool::builder()
            .max_size(size)
            .min_idle(Some(1))
            .connection_timeout(std::time::Duration::from_secs(10))
            .connection_customizer(Box::new(SetUpConnection))
            .build(ConnectionManager::new(&self.target))
            .map_err(|e| self.connect_error(&e.to_string()))
    }

    #[cfg(feature = "postgres")]
    fn postgres<J: OnConnection>(&self, job: J) -> Result<J::Output, CliError> {
        let mut conn = self.establish::<diesel::PgConnection>()?;
        job.run(&mut conn)
    }

    #[cfg(feature = "sqlite")]
    fn sqlite<J: OnConnection>(&self, job: J) -> Result<J::Output, CliError> {
        let mut conn = self.establish::<diesel::SqliteConnection>()?;
        conn.set_up()
            .map_err(|e| self.connect_error(&e.to_string()))?;
        job.run(&mut conn)
    }

    #[cfg(feature = "mysql")]
    fn mysql<J: OnConnection>(&self, job: J) -> Result<J::Output, CliError> {
        let mut conn = self.establish::<diesel::MysqlConnection>()?;
        job.run(&mut conn)
    }

    #[cfg(not(feature = "postgres"))]
    fn postgres<J: OnConnection>(&self, _job: J) -> Result<J::Output, CliError> {
        Err(self.not_built())
    }

    #[cfg(not(feature = "sqlite"))]
    fn sqlite<J: OnConnection>(&self, _job: J) -> Result<J::Output, CliError> {
        Err(self.not_built())
    }

    #[cfg(not(feature = "mysql"))]
    fn mysql<J: OnConnection>(&self, _job: J) -> Result<J::Output, CliError> {
        Err(self.not_built())
    }

    #[cfg(any(feature = "postgres", feature = "sqlite", feature = "mysql"))]
    fn establish<C: diesel::Connection>(&self) -> Result<C, CliError> {
        C::establish(&self.target).map_err(|e| self.connect_error(&e.to_string()))
    }

    #[cfg(any(feature = "postgres", feature = "sqlite", feature = "mysql"))]
    fn connect_error(&self, message: &str) -> CliError {
        CliError::failed(format!(
            "cannot connect to {}: {}",
            self.redactor.redact(&self.target),
            message.trim()
        ))
    }

    #[allow(dead_code)] // used only by builds without some backend
    fn not_built(&self) -> CliError {
        let feature = self.backend.feature();
        CliError::failed(format!(
            "this build of batchframework has no {feature} support; rebuild it with \
             `--features {feature}` (e.g. `cargo install --path batchframework-cli --features {feature}`)"
        ))
    }
}

/// A command, as the backend dispatch sees it: something to run once on a connection of
/// whichever type the URL named.
pub(crate) trait OnConnection {
    /// What the command returns.
    type Output;

    /// Runs the command on `conn`.
    fn run<C: BatchConnection>(self, conn: &mut C) -> Result<Self::Output, CliError>;
}

/// A command that needs a pool of connections rather than one (`serve`).
pub(crate) trait OnPool {
    /// What the command returns.
    type Output;

    /// Runs the command with `pool`.
    fn run<C: WorkerConnection>(
        self,
        pool: Pool<ConnectionManager<C>>,
    ) -> Result<Self::Output, CliError>;
}

/// The session settings the command's connections get.
trait SetUp {
    fn set_up(&mut self) -> diesel::QueryResult<()> {
        Ok(())
    }
}

#[cfg(feature = "postgres")]
impl SetUp for diesel::PgConnection {}

#[cfg(feature = "mysql")]
impl SetUp for diesel::MysqlConnection {}

#[cfg(feature = "sqlite")]
impl SetUp for diesel::SqliteConnection {
    /// Waits for a worker's write lock instead of failing at once, and enforces the tracking
    /// columns' `ON DELETE SET NULL` when pruning, as the other backends always do.
    fn set_up(&mut self) -> diesel::QueryResult<()> {
        use diesel::connection::SimpleConnection;
        self.batch_execute("PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON")
    }
}

/// Applies [`SetUp`] to each pooled connection.
#[derive(Debug)]
struct SetUpConnection;

impl<C: SetUp> CustomizeConnection<C, diesel::r2d2::Error> for SetUpConnection {
    fn on_acquire(&self, conn: &mut C) -> Result<(), diesel::r2d2::Error> {
        conn.set_up().map_err(diesel::r2d2::Error::QueryError)
    }
}

/// `postgres`, `mysql`, `http`: an RFC 3986 scheme, as opposed to a Windows drive or a path
/// that merely contains `://`.
fn is_scheme(text: &str) -> bool {
    let mut chars = text.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && text.len() > 1
}

/// Checks the `user:password@host:port` part of a server URL: a port, if given, is a number.
fn check_authority(rest: &str) -> Result<(), String> {
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    // `[::1]:5432`: the port follows the bracket.
    let port = if let Some(after) = host_port.strip_prefix('[') {
        match after.split_once(']') {
            Some((_, tail)) => tail.strip_prefix(':'),
            None => return Err("an IPv6 host is missing its closing `]`".to_owned()),
        }
    } else {
        host_port.split_once(':').map(|(_, port)| port)
    };
    match port {
        Some(port) if port.is_empty() || port.parse::<u16>().is_err() => {
            Err(format!("the port `{port}` is not a number from 0 to 65535"))
        }
        _ => Ok(()),
    }
}

/// Replaces passwords with `***`: the one of the URL it was made for (as written and
/// percent-decoded, wherever it appears, e.g. in a driver's error message), and that of any
/// `scheme://user:password@host` or `password=...` in the text.
#[derive(Debug, Clone, Default)]
pub(crate) struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    /// A redactor for the secrets of `url`.
    pub(crate) fn for_url(url: &str) -> Self {
        let mut secrets = Vec::new();
        if let Some((_, rest)) = url.split_once("://") {
            let authority = rest.split(['/', '?']).next().unwrap_or_default();
            if let Some((userinfo, _)) = authority.rsplit_once('@') {
                if let Some((_, password)) = userinfo.split_once(':') {
                    secrets.push(password.to_owned());
                }
            }
        }
        let mut rest = url;
        while let Some(at) = rest.find("password=") {
            rest = &rest[at + "password=".len()..];
            let end = rest.find(['&', ' ']).unwrap_or(rest.len());
            secrets.push(rest[..end].to_owned());
        }
        let decoded: Vec<String> = secrets.iter().map(|s| percent_decode(s)).collect();
        secrets.extend(decoded);
        secrets.retain(|s| !s.is_empty());
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor { secrets }
    }

    /// `text` with every password replaced by `***`.
    pub(crate) fn redact(&self, text: &str) -> String {
        let mut text = redact_userinfo(text);
        for secret in &self.secrets {
            text = text.replace(secret.as_str(), "***");
        }
        redact_password_parameters(&text)
    }
}

/// `scheme://user:secret@host` → `scheme://user:***@host`, for every URL in `text`.
fn redact_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        let end = after
            .find(|c: char| c == '/' || c == '?' || c.is_whitespace() || "\"'`".contains(c))
            .unwrap_or(after.len());
        let authority = &after[..end];
        match authority.rsplit_once('@') {
            Some((userinfo, host)) => match userinfo.split_once(':') {
                Some((user, _)) => {
                    out.push_str(user);
                    out.push_str(":***@");
                    out.push_str(host);
                }
                None => out.push_str(authority),
            },
            None => out.push_str(authority),
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// `password=secret` → `password=***` (libpq's URL and keyword parameters).
fn redact_password_parameters(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("password=") {
        let (before, after) = rest.split_at(at + "password=".len());
        out.push_str(before);
        let mut end = after
            .find(|c: char| c == '&' || c.is_whitespace() || "\"'`".contains(c))
            .unwrap_or(after.len());
        // `...?password=x: message`: the colon belongs to the message.
        if after[..end].ends_with(':') && after[end..].starts_with(' ') {
            end -= 1;
        }
        if end > 0 {
            out.push_str("***");
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// `%40` → `@`; anything not a valid escape stays as it is.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_choose_the_backend() {
        let backend = |url: &str| DatabaseUrl::parse(url).map(|u| u.backend()).ok();
        assert_eq!(backend("postgres://u@h/db"), Some(Backend::Postgres));
        assert_eq!(backend("postgresql://h:5432/db"), Some(Backend::Postgres));
        assert_eq!(
            backend("mysql://root@127.0.0.1:3306/x"),
            Some(Backend::Mysql)
        );
        assert_eq!(backend("sqlite:///tmp/a.db"), Some(Backend::Sqlite));
        assert_eq!(backend("file:a.db?mode=ro"), Some(Backend::Sqlite));
        assert_eq!(backend("./a.sqlite3"), Some(Backend::Sqlite));
        assert_eq!(backend("redis://h"), None);
        assert_eq!(backend("postgres://h:port/db"), None);
        assert_eq!(backend(""), None);
    }

    #[test]
    fn sqlite_urls_become_paths() {
        let url = DatabaseUrl::parse("sqlite:///tmp/a.db").ok();
        assert_eq!(url.map(|u| u.target), Some("/tmp/a.db".to_owned()));
    }

    #[test]
    fn passwords_are_redacted_everywhere() {
        let url = "postgres://ann:s3c%40ret@db:5432/x?sslmode=require";
        let redactor = Redactor::for_url(url);
        let message = format!("cannot connect to {url}: password s3c@ret was refused");
        let redacted = redactor.redact(&message);
        assert!(!redacted.contains("s3c"), "{redacted}");
        assert!(
            redacted.contains("postgres://ann:***@db:5432/x"),
            "{redacted}"
        );

        let other = Redactor::default().redact("see mysql://root:hunter2@h/db and password=x1&y");
        assert_eq!(other, "see mysql://root:***@h/db and password=***&y");

        let query = Redactor::for_url("postgres://h/db?user=a&password=p4ss");
        assert_eq!(query.redact("echo p4ss"), "echo ***");
    }

    #[test]
    fn a_malformed_url_does_not_echo_its_password() {
        let err = DatabaseUrl::parse("postgres://u:s3cret@h:port/db").err();
        let message = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("malformed"), "{message}");
        assert!(!message.contains("s3cret"), "{message}");
    }
}
