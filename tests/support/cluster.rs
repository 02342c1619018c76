//! A private PostgreSQL cluster, for tests that restart or crash the server itself, which they
//! must not do to the shared test server: `initdb` into a temporary directory, a free port on
//! 127.0.0.1, the socket in the same directory, `fsync=off`. Dropping it stops the server
//! (`pg_ctl stop -m immediate`) and removes the directory, also when the test panics.
//!
//! The server binaries come from `pg_config --bindir`, else `/usr/lib/postgresql/*/bin`.
//! Without them [`Cluster::start`] prints `SKIPPED: ...` and returns `None`, or panics when
//! `CI` is `true`, `1` or `yes`: CI must not skip these tests silently. `initdb` refuses to run
//! as root: as root, every server command runs as the `postgres` user (`runuser`, else `su`),
//! which gets the directory.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// How `pg_ctl` stops the server: `fast` (clients are disconnected, a clean shutdown) or
/// `immediate` (a crash: recovery from the WAL at the next start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    /// `-m fast`.
    Fast,
    /// `-m immediate`.
    Immediate,
}

impl StopMode {
    fn flag(self) -> &'static str {
        match self {
            StopMode::Fast => "fast",
            StopMode::Immediate => "immediate",
        }
    }
}

/// See the module documentation.
pub struct Cluster {
    dir: tempfile::TempDir,
    bindir: PathBuf,
    port: u16,
    /// Whether the server commands run as the `postgres` user (this process is root).
    as_postgres: bool,
    running: bool,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("dir", &self.dir.path())
            .field("port", &self.port)
            .field("running", &self.running)
            .finish()
    }
}

impl Cluster {
    /// Creates and starts a cluster; `None` (after printing why) where the server binaries
    /// are missing, outside CI.
    pub fn start() -> Option<Cluster> {
        let Some(bindir) = server_bindir() else {
            skip("the PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found: neither `pg_config --bindir` nor /usr/lib/postgresql/*/bin has them (apt-get install postgresql)");
            return None;
        };
        let as_postgres = is_root();
        let dir = tempfile::Builder::new()
            .prefix("bf-faults-pg-")
            .tempdir()
            .expect("create the cluster's directory");
        if as_postgres {
            let (Some(uid), Some(gid)) = (id_of("-u"), id_of("-g")) else {
                skip("running as root, and there is no `postgres` user to run initdb as");
                return None;
            };
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .expect("give the cluster's directory to the postgres user");
        }
        let mut cluster = Cluster {
            dir,
            bindir,
            port: 0,
            as_postgres,
            running: false,
        };
        cluster.initdb();
        // The port is free when chosen, and could be taken before the server binds it: try
        // another then.
        for attempt in 1..=5 {
            cluster.port = free_port();
            cluster.configure();
            let started = cluster.pg_ctl(&["-w", "-t", "60", "start"]);
            if started.status.success() {
                cluster.running = true;
                return Some(cluster);
            }
            assert!(
                attempt < 5 && cluster.log().contains("could not bind"),
                "pg_ctl start failed: {}\n{}",
                describe(&started),
                cluster.log()
            );
        }
        unreachable!("the loop returns or panics")
    }

    /// The URL of `database` on this cluster, as the `postgres` superuser (trust auth).
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `pg_ctl restart -m <mode>`: stops the server (disconnecting every client) and starts it
    /// again, waiting until it accepts connections.
    pub fn restart(&self, mode: StopMode) {
        let output = self.pg_ctl(&["-w", "-t", "60", "-m", mode.flag(), "restart"]);
        assert!(
            output.status.success(),
            "pg_ctl restart -m {} failed: {}\n{}",
            mode.flag(),
            describe(&output),
            self.log()
        );
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn initdb(&self) {
        let data = self.data();
        let output = self.run(
            "initdb",
            &[
                "-D",
                path_str(&data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        assert!(
            output.status.success(),
            "initdb failed: {}",
            describe(&output)
        );
    }

    /// Writes this run's settings: the port, loopback only, the socket in the cluster's
    /// directory, and no waiting for the disk (`fsync`, which only an operating system crash
    /// would make count). Commits stay synchronous: with `synchronous_commit = off` a crash
    /// (`-m immediate`) would lose the last transactions the server had acknowledged, which no
    /// worker can make up for.
    fn configure(&self) {
        let settings = format!(
            "\n# bf-faults\nport = {}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             fsync = off\nfull_page_writes = off\nmax_connections = 60\n\
             shared_buffers = 32MB\nlogging_collector = off\n",
            self.port,
            self.dir.path().display()
        );
        // postgresql.auto.conf is read after postgresql.conf, and is the cluster's own.
        std::fs::write(self.data().join("postgresql.auto.conf"), settings)
            .expect("write the cluster's settings");
    }

    fn pg_ctl(&self, args: &[&str]) -> Output {
        let data = self.data();
        let log = self.dir.path().join("server.log");
        let mut all = vec!["-D", path_str(&data), "-l", path_str(&log)];
        all.extend_from_slice(args);
        self.run("pg_ctl", &all)
    }

    /// Runs a server binary, as the `postgres` user when this process is root, in the
    /// cluster's directory (which that user can read; the test's own may not be).
    fn run(&self, program: &str, args: &[&str]) -> Output {
        let binary = self.bindir.join(program);
        let mut command = if self.as_postgres {
            if Path::new("/usr/sbin/runuser").exists() || Path::new("/sbin/runuser").exists() {
                let mut command = Command::new("runuser");
                command
                    .args(["-u", "postgres", "--"])
                    .arg(&binary)
                    .args(args);
                command
            } else {
                let mut line = shell_quote(path_str(&binary));
                for arg in args {
                    line.push(' ');
                    line.push_str(&shell_quote(arg));
                }
                let mut command = Command::new("su");
                command.args(["postgres", "-s", "/bin/sh", "-c", &line]);
                command
            }
        } else {
            let mut command = Command::new(&binary);
            command.args(args);
            command
        };
        command
            .current_dir(self.dir.path())
            .env_remove("PGDATA")
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.running {
            let output = self.pg_ctl(&["-w", "-t", "60", "-m", "immediate", "stop"]);
            if !output.status.success() {
                eprintln!("pg_ctl stop failed: {}", describe(&output));
            }
        }
        // The TempDir removes the directory.
    }
}

/// Prints why the test is skipped, or panics under CI.
fn skip(why: &str) {
    let ci = matches!(std::env::var("CI").as_deref(), Ok("true" | "1" | "yes"));
    assert!(!ci, "CI=true and {why}: refusing to skip");
    println!("SKIPPED: {why}");
    eprintln!("SKIPPED: {why}");
}

fn server_bindir() -> Option<PathBuf> {
    let complete = |dir: &Path| {
        ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|binary| dir.join(binary).is_file())
    };
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()));
    if let Some(dir) = from_pg_config.filter(|dir| complete(dir)) {
        return Some(dir);
    }
    // The newest version installed.
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, dir)| complete(dir))
        .collect();
    versions.sort();
    versions.pop().map(|(_, dir)| dir)
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("Uid:"))
                .and_then(|line| line.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// The `postgres` user's uid (`-u`) or gid (`-g`).
fn id_of(which: &str) -> Option<u32> {
    let output = Command::new("id").args([which, "postgres"]).output().ok()?;
    if !output.status.success() {
        return None;
    }
    String::from_utf8_lossy(&output.stdout).trim().parse().ok()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("find a free port")
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 temporary path")
}

fn shell_quote(arg: &str) -> String {
    format!("'{}'", arg.replace('\'', r"'\''"))
}

fn describe(output: &Output) -> String {
    format!(
        "{}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
